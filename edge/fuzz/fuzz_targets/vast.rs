//! Any bytes as an ad server's VAST answer, and as the documents its wrappers
//! lead to: no panic; what is kept stays within its bounds (absolute http(s)
//! URLs, positive durations, each wrapper asked at most once).
#![no_main]
use brook_edge::ads::vast::{self, AdKind, Resolver};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(doc) = vast::parse(&text) else {
        return;
    };
    for ad in &doc.ads {
        for u in ad.impressions.iter().chain(&ad.errors).chain(ad.tracking.values().flatten()) {
            let lower = u.to_ascii_lowercase();
            assert!(lower.starts_with("http://") || lower.starts_with("https://"), "{u}");
            assert!(!u.chars().any(|c| c.is_control() || c == ' '), "{u:?}");
        }
        if let AdKind::InLine { duration_ms, .. } = &ad.kind {
            assert!(*duration_ms > 0);
        }
    }
    // Every wrapper answered with the same document (a loop a hostile
    // server could build): bounded by the limits.
    let mut r = Resolver::new(&doc, 3, 8);
    let mut asked = 0;
    while let Some(f) = r.next_fetch() {
        asked += 1;
        assert!(asked <= 8, "more fetches than allowed");
        r.answer(f.id, Ok(&text));
    }
    let pod = r.finish();
    assert!(pod.ads.len() <= doc.ads.len().max(1));
});
