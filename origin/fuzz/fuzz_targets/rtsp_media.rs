//! The RTSP pull's media path (ingest/rtsp/media.rs) with whatever a camera
//! and retina could hand over: any configuration records, access units,
//! AAC frames, RTP timestamps stepping any way, loss, arrival times; and on
//! into the packager. No panic; frames only after a track list; video DTS
//! strictly increasing and audio DTS increasing within a track list; the
//! media path's invariants after every step.
#![no_main]
use brook_origin::ingest::rtsp::media::{
    AudioIn, Out, RtspMedia, VideoCodec, VideoIn, AUDIO, VIDEO,
};
use brook_packager::{Packager, PackagerConfig, UnixMillis};
use libfuzzer_sys::fuzz_target;

// Each step: kind (0 H.264 record, 1 H.265 record, 2 AudioSpecificConfig,
// 3 video frame, 4 audio frame), i32 timestamp step, u16 arrival step (ms),
// flags (bit 0 random access, bits 1-7 loss), u16 length, then the body.
fuzz_target!(|data: &[u8]| {
    let mut media = RtspMedia::new();
    let mut packager = Packager::new(PackagerConfig::default());
    let mut rest = data;
    let (mut video_ts, mut audio_ts) = (0i64, 0i64);
    let mut arrival = 1_795_000_000_000u64;
    let mut announced = false;
    let mut last = [None::<i64>; 2];
    let mut out = Vec::new();
    while rest.len() >= 10 {
        let (head, tail) = rest.split_at(10);
        let step = i64::from(i32::from_be_bytes([head[1], head[2], head[3], head[4]]));
        arrival += u64::from(u16::from_be_bytes([head[5], head[6]]));
        let flags = head[7];
        let len = usize::from(u16::from_be_bytes([head[8], head[9]])).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let _ = match head[0] % 5 {
            0 => media.set_video(VideoCodec::H264, body),
            1 => media.set_video(VideoCodec::H265, body),
            2 => media.set_audio(body),
            3 => {
                video_ts = video_ts.saturating_add(step);
                media.video(
                    VideoIn {
                        timestamp: video_ts,
                        clock_rate: 90_000,
                        random_access: flags & 1 == 1,
                        loss: u16::from(flags >> 1),
                        arrival: UnixMillis(arrival),
                        data: body,
                    },
                    &mut out,
                )
            }
            _ => {
                audio_ts = audio_ts.saturating_add(step);
                media.audio(
                    AudioIn {
                        timestamp: audio_ts,
                        clock_rate: 48_000,
                        frame_length: 1024,
                        arrival: UnixMillis(arrival),
                        data: body,
                    },
                    &mut out,
                )
            }
        };
        media.check_invariants();
        for o in out.drain(..) {
            match o {
                Out::Tracks(t) => {
                    assert_eq!(t[VIDEO].timescale, 90_000);
                    announced = true;
                    last = [None; 2];
                    packager.push_tracks(t);
                }
                Out::Frame(f) => {
                    assert!(announced, "a frame before its track list");
                    assert!(f.track == VIDEO || f.track == AUDIO);
                    if let Some(prev) = last[f.track] {
                        assert!(
                            f.dts > prev,
                            "track {} DTS {} after {}",
                            f.track,
                            f.dts,
                            prev
                        );
                    }
                    assert!(f.pts >= f.dts);
                    last[f.track] = Some(f.dts);
                    packager.push_frame(f, UnixMillis(arrival));
                }
            }
            while packager.poll().is_some() {}
        }
    }
    packager.finish();
    while packager.poll().is_some() {}
});
