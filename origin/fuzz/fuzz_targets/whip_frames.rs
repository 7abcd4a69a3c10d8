//! Frames as the WebRTC stack hands them over (any bytes, any timestamps,
//! contiguity and sender reports), through the timeline, configuration and
//! keyframe logic, and on into the packager: no panic, invariants hold.
#![no_main]
use std::time::{Duration, Instant};

use brook_origin::ingest::whip::frames::{FrameIn, Frames, FramesConfig, Output, SenderClock, Track};
use brook_origin::ingest::whip::sim::{PPS, SPS};
use brook_packager::{Packager, PackagerConfig, UnixMillis};
use libfuzzer_sys::fuzz_target;

// Each step: 8 header bytes, then the payload.
//   0: bit 0 audio, bit 1 not contiguous, bit 2 a sender report, bit 3 prefix
//      SPS/PPS/IDR, bit 7 step the RTP time backwards
//   1-2: RTP step, 3: ms passing, 4-5: report NTP/RTP jitter, 6-7: length
fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut frames = Frames::new(
        FramesConfig::default(),
        first & 1 == 0,
        t0,
        UnixMillis(1_795_000_000_000),
    );
    let mut packager = Packager::new(PackagerConfig::default());
    let mut now = t0;
    let mut rtp = [u64::from(first) << 24, 7 << 28];
    while rest.len() >= 8 {
        let (head, tail) = rest.split_at(8);
        let i = usize::from(head[0] & 1);
        let track = if i == 0 { Track::Video } else { Track::Audio };
        let step = u64::from(u16::from_be_bytes([head[1], head[2]]));
        rtp[i] = if head[0] & 0x80 != 0 {
            rtp[i].wrapping_sub(step)
        } else {
            rtp[i].wrapping_add(step)
        };
        now += Duration::from_millis(u64::from(head[3] % 64));
        let sender_clock = (head[0] & 4 != 0).then(|| SenderClock {
            ntp: Duration::from_millis(1_795_000_000_000 + u64::from(head[4]) * 7),
            rtp: (rtp[i] as u32) ^ u32::from(head[5]),
        });
        let len = usize::from(u16::from_be_bytes([head[6], head[7]])).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        let mut buf = Vec::new();
        if i == 0 && head[0] & 8 != 0 {
            for ps in [SPS, PPS] {
                buf.extend_from_slice(&[0, 0, 0, 1]);
                buf.extend_from_slice(ps);
            }
            buf.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        }
        buf.extend_from_slice(payload);
        frames.push(FrameIn {
            track,
            rtp_time: rtp[i],
            arrival: now,
            contiguous: head[0] & 2 == 0,
            sender_clock,
            data: &buf,
        });
        frames.tick(now);
        let _ = frames.keyframe_wanted(now);
        frames.check_invariants();
        while let Some(out) = frames.poll() {
            match out {
                Output::Tracks(t) => packager.push_tracks(t),
                Output::Frame(f, at) => packager.push_frame(f, at),
            }
            while packager.poll().is_some() {}
        }
        rest = tail;
    }
    packager.finish();
    while packager.poll().is_some() {}
});
