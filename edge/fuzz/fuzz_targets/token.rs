//! Token and request parsing on arbitrary input: no panic, the same answer
//! twice, and a token that verifies is one this key could have signed (its
//! grant signs back to a token that verifies the same way).
#![no_main]
use brook_edge::access::find_token;
use brook_edge::access::token::{sign, verify, Entitlements, Key, KeySet, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Input: token \n path \n client ip \n query \n cookie (missing parts empty).
    let mut parts = text.splitn(5, '\n');
    let token = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/live/cam1/index.m3u8");
    let ip = parts.next().filter(|s| !s.is_empty());
    let query = parts.next();
    let cookie = parts.next();

    let key = Key::from_hex("k", "00112233445566778899aabbccddeeff").expect("valid key");
    let keys = KeySet::new(vec![key.clone()]);
    let req = Request {
        now: 1500,
        path,
        client_ip: ip,
    };
    let first = verify(token, &keys, &req);
    assert_eq!(
        first,
        verify(token, &keys, &req),
        "verification is deterministic"
    );
    if let Ok(grant) = &first {
        let _ = grant.entitlements();
        let again = sign(grant, &key);
        assert!(
            verify(&again, &keys, &req).is_ok(),
            "re-signed grant verifies"
        );
    }
    let _ = Entitlements::parse(token);
    let _ = KeySet::parse(token);
    let _ = find_token("__token__", query, Some(token), cookie);
});
