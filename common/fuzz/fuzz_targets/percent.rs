//! Percent-decoding: no panic on any input; where the strict decoder accepts,
//! the lossy one agrees with it; both undo an encoder exactly; escape
//! positions in errors point at a `%`.
#![no_main]
use brook_common::percent::{decode_lossy, decode_strict, DecodeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lossy = decode_lossy(text);
    match decode_strict(text) {
        Ok(strict) => {
            assert_eq!(strict, lossy);
            assert!(strict.len() <= text.len());
        }
        Err(DecodeError::BadEscape(at)) => assert_eq!(text.as_bytes().get(at), Some(&b'%')),
        Err(DecodeError::NotUtf8) => assert!(lossy.contains('\u{FFFD}')),
    }
    if !text.contains('%') {
        assert_eq!(lossy, text);
    }
    let encoded: String = text.bytes().map(|b| format!("%{b:02x}")).collect();
    assert_eq!(decode_strict(&encoded).as_deref(), Ok(text));
    assert_eq!(decode_lossy(&encoded), text);
});
