//! The request parts the origin's HTTP layer parses itself: the LL-HLS query
//! (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) and `Range`. No panic; a parsed
//! query renders and parses back to itself and never has a part without a
//! segment; a range lies within the body it was asked of (the origin slices
//! the object with it).
#![no_main]
use brook_origin::serve::http::query::{BlockingRequest, Skip};
use brook_origin::serve::http::range::RangeRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Input: 8 bytes of body length (big-endian, at most 16 MiB used), then
    // the text, used both as a query string and as a Range header value.
    let (len, text) = match data.split_first_chunk::<8>() {
        Some((len, rest)) => (u64::from_be_bytes(*len) % (16 << 20), rest),
        None => (0, data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(q) = BlockingRequest::parse(text) {
        assert!(q.part.is_none() || q.msn.is_some());
        let mut again = Vec::new();
        if let Some(m) = q.msn {
            again.push(format!("_HLS_msn={m}"));
        }
        if let Some(p) = q.part {
            again.push(format!("_HLS_part={p}"));
        }
        match q.skip {
            Skip::No => {}
            Skip::Yes => again.push("_HLS_skip=YES".into()),
            Skip::V2 => again.push("_HLS_skip=v2".into()),
        }
        assert_eq!(BlockingRequest::parse(&again.join("&")), Ok(q));
    }
    match RangeRequest::parse(Some(text), len) {
        RangeRequest::Full => {}
        RangeRequest::Partial { start, end } => {
            assert!(start < end && end <= len, "{start}..{end} of {len}");
        }
        RangeRequest::Unsatisfiable => {}
    }
    assert_eq!(RangeRequest::parse(None, len), RangeRequest::Full);
});
