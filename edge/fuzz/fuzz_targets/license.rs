//! ClearKey license requests on arbitrary bodies: no panic, the same answer
//! twice, at most MAX_KIDS distinct KIDs, each of which survives a license
//! written for it (render, then read the JWK set's KIDs back).
#![no_main]
use brook_edge::access::license::{b64url_decode, parse_request, render_license, MAX_KIDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = parse_request(data);
    assert_eq!(first, parse_request(data), "deterministic");
    let Ok(kids) = first else {
        return;
    };
    assert!(!kids.is_empty() && kids.len() <= MAX_KIDS);
    for (i, k) in kids.iter().enumerate() {
        assert!(!kids[..i].contains(k), "KIDs are distinct");
    }
    let keys: Vec<_> = kids.iter().map(|k| (*k, *k)).collect();
    let license: serde_json::Value =
        serde_json::from_str(&render_license(&keys)).expect("a license is JSON");
    let back: Vec<[u8; 16]> = license["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            let b = b64url_decode(k["kid"].as_str().expect("kid")).expect("b64url");
            <[u8; 16]>::try_from(b.as_slice()).expect("16 bytes")
        })
        .collect();
    assert_eq!(back, kids);
});
