//! SCTE-35 sections from the SCTE 35 specification's examples (§14, "Sample
//! SCTE 35 messages"), decoded by Brook's parser and checked two ways: the
//! fields the specification's walk-through gives, and every field against
//! `threefive` (PyPI, an independent implementation, in the project's venv:
//! `cargo xtask setup` installs it).

use std::process::Command;

use brook_packager::scte35::{self, Cue, SpliceCommand, SpliceDescriptor};

/// (what the specification calls it, the section in base64).
const EXAMPLES: &[(&str, &str)] = &[
    ("time_signal placement opportunity start", "/DA0AAAAAAAA///wBQb+cr0AUAAeAhxDVUVJSAAAjn/PAAGlmbAICAAAAAAsoKGKNAIAmsnRfg=="),
    ("splice_insert", "/DAvAAAAAAAA///wFAVIAACPf+/+c2nALv4AUsz1AAAAAAAKAAhDVUVJAAABNWLbowo="),
    ("time_signal placement opportunity end", "/DAvAAAAAAAA///wBQb+dGKQoAAZAhdDVUVJSAAAjn+fCAgAAAAALKChijUCAKnMZ1g="),
    ("time_signal program start/end", "/DBIAAAAAAAA///wBQb+ek2ItgAyAhdDVUVJSAAAGH+fCAgAAAAALMvDRBEAAAIXQ1VFSUgAABl/nwgIAAAAACyk26AQAACZcuND"),
    ("time_signal program overlap start", "/DAvAAAAAAAA///wBQb+rr//ZAAZAhdDVUVJSAAACH+fCAgAAAAALKVs9RcAAJUdsKg="),
    ("time_signal program blackout override / program end", "/DBIAAAAAAAA///wBQb+ky44CwAyAhdDVUVJSAAACn+fCAgAAAAALKCh4xgAAAIXQ1VFSUgAAAl/nwgIAAAAACygoYoRAAC0IX6w"),
    ("time_signal program end", "/DAvAAAAAAAA///wBQb+rvF8TAAZAhdDVUVJSAAAB3+fCAgAAAAALKVslxEAAMSHai4="),
    ("time_signal program start/end, placement opportunity end", "/DBhAAAAAAAA///wBQb+qM1E7QBLAhdDVUVJSAAArX+fCAgAAAAALLLXnTUCAAIXQ1VFSUgAACZ/nwgIAAAAACyy150RAAACF0NVRUlIAAAnf58ICAAAAAAsstezEAAAihiGnw=="),
];

fn b64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Seconds as threefive prints them (6 decimals).
fn secs(ticks: u64) -> String {
    format!("{:.6}", ticks as f64 / 90_000.0)
}

/// The fields compared, one line per section, from Brook's parser.
fn ours(section: &[u8]) -> String {
    let s = scte35::parse(section).expect("parses");
    let mut line = format!("tier={:#06x} adj={}", s.tier, secs(s.pts_adjustment));
    match &s.command {
        SpliceCommand::TimeSignal { pts } => {
            line += &format!(" time_signal pts={}", pts.map(secs).unwrap_or_default());
        }
        SpliceCommand::Insert(i) => {
            line += &format!(
                " splice_insert id={} cancel={} out={} immediate={} pts={} dur={} auto={} upid={} avail={}/{}",
                i.event_id,
                i.cancel,
                i.out_of_network,
                i.immediate,
                i.pts.map(secs).unwrap_or_default(),
                i.duration.map(|d| secs(d.duration)).unwrap_or_default(),
                i.duration.is_some_and(|d| d.auto_return),
                i.unique_program_id,
                i.avail_num,
                i.avails_expected
            );
        }
        other => line += &format!(" {other:?}"),
    }
    for d in &s.descriptors {
        match d {
            SpliceDescriptor::Segmentation(g) => {
                line +=
                    &format!(
                    " | seg id={:#010x} cancel={} type={} dur={} upid_type={} upid={} num={}/{}",
                    g.event_id,
                    g.cancel,
                    g.type_id,
                    g.duration.map(secs).unwrap_or_default(),
                    g.upid_type,
                    g.upid.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    g.segment_num,
                    g.segments_expected
                );
            }
            SpliceDescriptor::Other {
                tag, identifier, ..
            } => {
                line += &format!(" | tag={tag} id={identifier:#010x}");
            }
            _ => {}
        }
    }
    line
}

/// The same fields, from threefive.
const THREEFIVE: &str = r#"
import sys
from threefive import Cue
def secs(v): return "" if v is None else "%.6f" % float(v)
def b(v): return "true" if v else "false"
for b64 in sys.argv[1:]:
    c = Cue(b64); c.decode(); d = c.get(); i = d["info_section"]; m = d["command"]
    line = "tier=%#06x adj=%s" % (int(i["tier"], 16), secs(i["pts_adjustment"]))
    if m["command_type"] == 6:
        line += " time_signal pts=%s" % secs(m.get("pts_time"))
    elif m["command_type"] == 5:
        line += " splice_insert id=%d cancel=%s out=%s immediate=%s pts=%s dur=%s auto=%s upid=%d avail=%d/%d" % (
            m["splice_event_id"], b(m["splice_event_cancel_indicator"]), b(m.get("out_of_network_indicator")),
            b(m.get("splice_immediate_flag")), secs(m.get("pts_time")), secs(m.get("break_duration")),
            b(m.get("break_auto_return")), m.get("unique_program_id", 0), m.get("avail_num", 0), m.get("avails_expected", 0))
    for x in d["descriptors"]:
        if x["tag"] == 2:
            line += " | seg id=%#010x cancel=%s type=%d dur=%s upid_type=%d upid=%s num=%d/%d" % (
                int(x["segmentation_event_id"], 16), b(x["segmentation_event_cancel_indicator"]),
                x["segmentation_type_id"], secs(x.get("segmentation_duration") if x.get("segmentation_duration_flag") else None),
                x["segmentation_upid_type"], (x.get("segmentation_upid") or "0x")[2:].lower().rjust(2 * x["segmentation_upid_length"], "0") if x["segmentation_upid_length"] else "",
                x["segment_num"], x["segments_expected"])
        else:
            line += " | tag=%d id=%#010x" % (x["tag"], int.from_bytes(x["identifier"].encode(), "big"))
    print(line)
"#;

fn venv_python() -> std::path::PathBuf {
    let cache = std::env::var_os("BROOK_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/brook")
        });
    cache.join("python/bin/python")
}

#[test]
fn every_example_decodes_as_threefive_decodes_it() {
    let python = venv_python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(THREEFIVE)
        .args(EXAMPLES.iter().map(|e| e.1))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} (cargo xtask setup installs threefive): {e}",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(theirs.len(), EXAMPLES.len());
    for ((name, b), theirs) in EXAMPLES.iter().zip(&theirs) {
        assert_eq!(&ours(&b64(b)), theirs, "{name}");
    }
}

#[test]
fn the_specifications_walk_through() {
    // time_signal, provider placement opportunity start (0x34), 307 s,
    // AiringID UPID 0x2ca0a18a, segment 2 of 0.
    let s = scte35::parse(&b64(EXAMPLES[0].1)).unwrap();
    assert_eq!(s.tier, 0x0FFF);
    assert_eq!(
        s.command,
        SpliceCommand::TimeSignal {
            pts: Some(0x0_72BD_0050)
        }
    );
    let SpliceDescriptor::Segmentation(g) = &s.descriptors[0] else {
        panic!("a segmentation descriptor")
    };
    assert_eq!(
        (g.event_id, g.type_id, g.duration),
        (0x4800_008E, 0x34, Some(307 * 90_000))
    );
    assert_eq!(
        (g.upid_type, g.upid.as_slice()),
        (8, &[0, 0, 0, 0, 0x2C, 0xA0, 0xA1, 0x8A][..])
    );
    assert_eq!(
        s.cue(),
        Some(Cue::Out {
            pts: Some(0x0_72BD_0050),
            duration: Some(307 * 90_000),
            event_id: 0x4800_008E
        })
    );
    // splice_insert out of network, auto return, 60.293567 s.
    let s = scte35::parse(&b64(EXAMPLES[1].1)).unwrap();
    let Some(Cue::Out {
        pts,
        duration,
        event_id,
    }) = s.cue()
    else {
        panic!("a break start")
    };
    assert_eq!(
        (pts, duration, event_id),
        (Some(0x0_7369_C02E), Some(0x0052_CCF5), 0x4800_008F)
    );
    // Placement opportunity end (0x35): the break's end.
    let s = scte35::parse(&b64(EXAMPLES[2].1)).unwrap();
    assert_eq!(
        s.cue(),
        Some(Cue::In {
            pts: Some(0x0_7462_90A0),
            event_id: 0x4800_008E
        })
    );
    // Program start/end only: not an ad break.
    assert_eq!(scte35::parse(&b64(EXAMPLES[3].1)).unwrap().cue(), None);
}

#[test]
fn a_changed_byte_fails_the_crc_and_nothing_panics() {
    let good = b64(EXAMPLES[1].1);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        let _ = scte35::parse(&bad); // never a panic
        if i >= 3 {
            assert!(scte35::parse(&bad).is_err(), "byte {i} changed");
        }
        for cut in [i, i.saturating_sub(1)] {
            assert!(scte35::parse(&good[..cut]).is_err());
        }
    }
}
