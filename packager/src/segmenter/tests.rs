use super::*;
use crate::codec::aac::AacConfig;
use crate::codec::h264::{AvcConfig, Sps};
use crate::media::CodecConfig;

fn tracks() -> Vec<TrackInfo> {
    let sps = Sps {
        profile_idc: 100,
        constraint_flags: 0,
        level_idc: 31,
        chroma_format_idc: 1,
        bit_depth_luma: 8,
        bit_depth_chroma: 8,
        width: 320,
        height: 240,
    };
    vec![
        TrackInfo {
            id: 1,
            timescale: 90_000,
            codec: CodecConfig::Avc(AvcConfig {
                sps,
                sps_nal: vec![0x67],
                pps_nal: vec![0x68],
            }),
        },
        TrackInfo {
            id: 2,
            timescale: 48_000,
            codec: CodecConfig::Aac(AacConfig {
                object_type: 2,
                sample_rate_index: 3,
                sample_rate: 48_000,
                channel_config: 2,
            }),
        },
    ]
}

fn video(n: i64, gop: i64) -> Frame {
    Frame {
        track: 0,
        dts: n * 3000,
        pts: n * 3000,
        keyframe: n % gop == 0,
        duration: None,
        data: Bytes::from(vec![n as u8; 10]),
    }
}

fn audio(n: i64) -> Frame {
    Frame {
        track: 1,
        dts: n * 1024,
        pts: n * 1024,
        keyframe: true,
        duration: Some(1024),
        data: Bytes::from(vec![0xA0; 4]),
    }
}

fn drain(s: &mut Segmenter) -> Vec<SegmenterOutput> {
    std::iter::from_fn(|| s.poll()).collect()
}

/// 30 fps video with a 1 s GOP and 48 kHz audio lagging ~200 ms behind, as
/// ffmpeg's MPEG-TS muxer interleaves it.
fn run(seconds: i64) -> Vec<SegmenterOutput> {
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    let mut out = Vec::new();
    let mut next_audio = 0;
    for n in 0..seconds * 30 {
        s.push(video(n, 30));
        // Audio up to 200 ms behind the video frame just pushed.
        while next_audio * 1024 * 90_000 / 48_000 < n * 3000 - 18_000 {
            s.push(audio(next_audio));
            next_audio += 1;
        }
        out.extend(drain(&mut s));
    }
    while next_audio * 1024 * 90_000 / 48_000 < seconds * 90_000 {
        s.push(audio(next_audio));
        next_audio += 1;
    }
    s.flush();
    out.extend(drain(&mut s));
    out
}

#[test]
fn parts_never_exceed_target_and_segments_cut_on_keyframes() {
    let out = run(6);
    let parts: Vec<&PartOut> = out
        .iter()
        .filter_map(|o| match o {
            SegmenterOutput::Part(p) => Some(p),
            _ => None,
        })
        .collect();
    let segments: Vec<&SegmentOut> = out
        .iter()
        .filter_map(|o| match o {
            SegmenterOutput::Segment(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(segments.len(), 3);
    for (i, seg) in segments.iter().enumerate() {
        assert_eq!(seg.msn, i as u64);
        assert_eq!(seg.duration, 180_000, "2 s segments from a 1 s GOP");
        let seg_parts: Vec<&&PartOut> = parts.iter().filter(|p| p.msn == seg.msn).collect();
        assert_eq!(seg_parts.len(), 10);
        assert!(seg_parts[0].independent);
        let concat: Vec<u8> = seg_parts.iter().flat_map(|p| p.data.to_vec()).collect();
        assert_eq!(concat, seg.data.to_vec(), "a segment is its parts");
    }
    for p in &parts {
        assert!(p.duration <= 18_000, "part of {} ticks", p.duration);
    }
    // Parts are numbered 0.. within their segment and contiguous in time.
    for w in parts.windows(2) {
        assert_eq!(w[0].start + w[0].duration, w[1].start);
    }
}

#[test]
fn parts_wait_for_lagging_audio() {
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    for n in 0..8 {
        s.push(video(n, 30));
    }
    // Six video frames are timed (the 7th is known, the 8th held): part 0 is cut,
    // but no audio has arrived, so it is not written yet.
    assert!(drain(&mut s).is_empty());
    for n in 0..10 {
        s.push(audio(n)); // 10 * 1024 / 48 kHz = 213 ms > 200 ms part
    }
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert!(matches!(&out[0], SegmenterOutput::Part(p) if p.msn == 0 && p.index == 0));
}

#[test]
fn a_silent_track_does_not_stall_parts_forever() {
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    let mut out = Vec::new();
    for n in 0..60 {
        s.push(video(n, 30));
        out.extend(drain(&mut s));
    }
    // 2 s of video, no audio: parts older than the 1 s lag limit were written.
    assert!(out.len() >= 4, "got {} outputs", out.len());
}
