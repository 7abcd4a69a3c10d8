//! Arbitrary bytes in any chunking into the MPEG-TS demuxer: no panic, and the
//! counters stay consistent with what was fed.
#![no_main]
use brook_packager::ts::{DemuxEvent, Demuxer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1) * 7;
    let mut d = Demuxer::default();
    let mut pes_bytes = 0usize;
    for c in input.chunks(chunk) {
        if d.push(c).is_err() {
            break;
        }
        while let Some(ev) = d.poll() {
            if let DemuxEvent::Pes(p) = ev {
                pes_bytes += p.data.len();
            }
        }
    }
    d.flush();
    while let Some(ev) = d.poll() {
        if let DemuxEvent::Pes(p) = ev {
            pes_bytes += p.data.len();
        }
    }
    let s = d.stats();
    assert!(s.bytes as usize <= input.len());
    assert!(s.packets * 188 <= s.bytes);
    assert!(pes_bytes <= input.len(), "more PES bytes out than bytes in");
});
