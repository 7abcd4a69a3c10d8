//! SCTE-35 sections from a broadcaster's MPEG-TS: any bytes are decoded or
//! refused with a reason, never a panic; a section that decodes decodes the
//! same way again, and its cue's PTS is a 33-bit value.
#![no_main]
use brook_packager::scte35::{self, Cue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first = scte35::parse(data);
    assert_eq!(first, scte35::parse(data));
    if let Ok(s) = first {
        assert!(s.pts_adjustment < 1 << 33);
        match s.cue() {
            Some(Cue::Out { pts, .. } | Cue::In { pts, .. }) => assert!(pts.unwrap_or(0) < 1 << 33),
            None => {}
        }
    }
    // A valid section with these bytes as its body: the CRC passes, so the
    // fields are what is exercised.
    if data.len() < 1000 {
        let mut s = vec![0xFC, 0x30 | ((data.len() + 4) >> 8) as u8 & 0x0F, (data.len() + 4) as u8];
        s.extend_from_slice(data);
        let crc = scte35::crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        let _ = scte35::parse(&s);
    }
});
