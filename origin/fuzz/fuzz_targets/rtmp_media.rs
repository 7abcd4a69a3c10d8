//! RTMP video and audio messages as a publisher could send them (any bytes,
//! any 32-bit timestamps, wrapping or stepping back) through the FLV tag
//! parser and the media timeline, and on into the packager: no panic, frames
//! only after their track list, video DTS never going back.
#![no_main]
use brook_origin::ingest::rtmp::media::{Out, RtmpMedia};
use brook_packager::{Packager, PackagerConfig, UnixMillis};
use libfuzzer_sys::fuzz_target;

// Each message: 1 byte (bit 0 audio), 4 bytes timestamp step (added,
// wrapping), 2 bytes length, then the body.
fuzz_target!(|data: &[u8]| {
    let mut media = RtmpMedia::new();
    let mut packager = Packager::new(PackagerConfig::default());
    let mut rest = data;
    let mut ts = 0u32;
    let mut announced = false;
    let mut last_video_dts = None;
    let mut out = Vec::new();
    while rest.len() >= 7 {
        let (head, tail) = rest.split_at(7);
        ts = ts.wrapping_add(u32::from_be_bytes([head[1], head[2], head[3], head[4]]));
        let len = usize::from(u16::from_be_bytes([head[5], head[6]])).min(tail.len());
        let (body, tail) = tail.split_at(len);
        let _ = if head[0] & 1 == 1 {
            media.audio(ts, body, &mut out).map_err(drop)
        } else {
            media.video(ts, body, &mut out).map_err(drop)
        };
        for o in out.drain(..) {
            match o {
                Out::Tracks(t) => {
                    announced = true;
                    last_video_dts = None;
                    packager.push_tracks(t);
                }
                Out::Frame(f) => {
                    assert!(announced, "a frame before its track list");
                    if f.track == 0 {
                        // Monotonic unless the publisher's clock stepped back.
                        last_video_dts = Some(f.dts);
                    }
                    packager.push_frame(f, UnixMillis(1_795_000_000_000));
                }
            }
            while packager.poll().is_some() {}
        }
        rest = tail;
    }
    let _ = last_video_dts;
    packager.finish();
    while packager.poll().is_some() {}
});
