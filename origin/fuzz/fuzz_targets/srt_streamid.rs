//! SRT stream ids from anyone (libsrt hands them over before the handshake
//! completes): no panic, and what parses is what Brook will act on: a
//! `live/<name>` resource with a valid name, a key of visible ASCII, a
//! canonical form that parses back to the same request, and logs that mask
//! the key.
#![no_main]
use brook_origin::ingest::srt::streamid::{redact, PublishRequest, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let redacted = redact(data);
    let Ok(req) = PublishRequest::parse(data) else {
        return;
    };
    assert!(brook_origin::valid_stream_name(req.name()), "{req:?}");
    assert_eq!(req.resource, format!("live/{}", req.name()));
    if let Some(key) = &req.key {
        assert!((1..=MAX_KEY_LEN).contains(&key.len()));
        assert!(key.bytes().all(|b| b.is_ascii_graphic() && b != b','));
        // Debug output does not depend on the key (a key may itself be `***`
        // or repeat the resource, so look for no substring).
        let other = PublishRequest {
            key: Some("other-key".into()),
            ..req.clone()
        };
        assert_eq!(format!("{req:?}"), format!("{other:?}"));
        // The key's own occurrence is masked in logs (checked where the count
        // is unambiguous: a visible-ASCII id and an alphanumeric key).
        if data.iter().all(u8::is_ascii_graphic)
            && key.len() >= 4
            && key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            let text = std::str::from_utf8(data).unwrap_or_default();
            assert!(
                redacted.matches(key.as_str()).count() < text.matches(key.as_str()).count(),
                "{redacted}"
            );
        }
    }
    let canonical = req.to_stream_id();
    assert_eq!(
        PublishRequest::parse(canonical.as_bytes()).as_ref(),
        Ok(&req)
    );
});
