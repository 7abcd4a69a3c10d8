//! `/vod/` paths from anyone, as the origin and the edge check them before
//! any token, geo rule, cache key or lookup: no panic, and what passes has
//! exactly one spelling, made of valid names only, that parses back to
//! itself and can never climb out of its asset.
#![no_main]
use brook_common::{valid_asset_id, valid_object_name, VodPath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(vod) = VodPath::parse(path) else {
        return;
    };
    assert!(valid_asset_id(&vod.asset), "{vod:?}");
    assert!(valid_object_name(&vod.name));
    assert!(vod.name != "." && vod.name != "..");
    let spelled = vod.to_string();
    assert!(spelled.starts_with(&format!("/vod/{}/", vod.asset)));
    assert!(!spelled.contains(['%', '\\']));
    assert_eq!(spelled.matches('/').count(), 3);
    assert_eq!(VodPath::parse(&spelled).as_ref(), Ok(&vod));
    // Without escapes in the input, the one spelling is the input itself.
    if !path.contains('%') {
        assert_eq!(spelled, path);
    }
});
