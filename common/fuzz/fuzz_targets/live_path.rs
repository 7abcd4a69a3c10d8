//! `/live/` paths from anyone, as the origin and the edge check them before
//! any token, geo rule, cache key or lookup: no panic, and what passes has
//! exactly one spelling, made of valid names only, that parses back to
//! itself and can never climb out of its stream.
#![no_main]
use brook_common::{valid_object_name, valid_session_id, valid_stream_name, LivePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(live) = LivePath::parse(path) else {
        return;
    };
    assert!(valid_stream_name(&live.stream), "{live:?}");
    assert!(live.session.as_deref().is_none_or(valid_session_id));
    assert!(valid_object_name(&live.name));
    assert!(live.name != "." && live.name != "..");
    let spelled = live.to_string();
    assert!(spelled.starts_with(&format!("/live/{}/", live.stream)));
    assert!(
        !spelled.contains(['%', '\\']) && !spelled.contains("/./") && !spelled.contains("/../")
    );
    assert_eq!(
        spelled.matches('/').count(),
        3 + usize::from(live.session.is_some())
    );
    assert_eq!(LivePath::parse(&spelled).as_ref(), Ok(&live));
    // Without escapes in the input, the one spelling is the input itself.
    if !path.contains('%') {
        assert_eq!(spelled, path);
    }
});
