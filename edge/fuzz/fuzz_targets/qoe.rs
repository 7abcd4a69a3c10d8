//! Viewer QoE input (edge/src/qoe/) on arbitrary bytes. The input is a
//! sequence of records split on 0xFF; each record's first byte says what
//! it is (even: a `CMCD=` value, odd: a beacon body) and how far the clock
//! moves (its value × 100 ms). Checked: no panic; parsing is deterministic;
//! an accepted CMCD value renders to one that parses to the same thing;
//! the aggregator's bounds and definitions hold after every record
//! (`check_invariants`), and every report's ratios stay within 0..=1.
#![no_main]
use brook_edge::qoe::{Aggregator, Beacon, Cmcd, Filter, Origin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut agg = Aggregator::default();
    let mut now: u64 = 1_795_000_000_000;
    for record in data.split(|&b| b == 0xFF) {
        let Some((&head, body)) = record.split_first() else {
            continue;
        };
        now += u64::from(head) * 100;
        let renditions = ["720p", "360p", "audio"];
        let at = Origin {
            stream: if head & 2 == 0 { "cam1" } else { "cam2" },
            country: Some(if head & 4 == 0 { "NL" } else { "US" }),
            rendition: Some(renditions[usize::from(head >> 3) % 3]),
            media_object: head & 64 == 0,
        };
        if head & 1 == 0 {
            let text = String::from_utf8_lossy(body);
            let first = Cmcd::parse(&text);
            assert_eq!(first, Cmcd::parse(&text), "deterministic");
            if let Ok(c) = first {
                let rendered = c.to_string();
                let mut back = Cmcd::parse(&rendered).expect("a rendered value parses");
                back.unknown_keys = c.unknown_keys;
                assert_eq!(back, c, "round trip of {rendered:?}");
                agg.record_cmcd(at, &c, now);
            }
        } else {
            let first = Beacon::parse(body);
            assert_eq!(first, Beacon::parse(body), "deterministic");
            if let Ok(b) = first {
                agg.record_beacon(at, &b, now);
            }
        }
        agg.check_invariants();
    }
    let report = agg.report(&Filter::default(), now);
    let unit = |v: Option<f64>| v.is_none_or(|r| (0.0..=1.0).contains(&r));
    let t = &report.totals;
    assert!(t.viewers <= t.sessions);
    assert!(unit(t.rebuffer_ratio) && unit(t.error_rate) && unit(t.exit_before_start_rate));
    assert!(t.startup_p50_ms <= t.startup_p95_ms);
    assert!(report.renditions.iter().all(|r| (0.0..=1.0).contains(&r.share)));
    agg.check_invariants();
});
