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

fn parts(out: &[SegmenterOutput], track: usize) -> Vec<&PartOut> {
    out.iter()
        .filter_map(|o| match o {
            SegmenterOutput::Part(p) if p.track == track => Some(p),
            _ => None,
        })
        .collect()
}

fn segments(out: &[SegmenterOutput], track: usize) -> Vec<&SegmentOut> {
    out.iter()
        .filter_map(|o| match o {
            SegmenterOutput::Segment(s) if s.track == track => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn parts_never_exceed_target_and_segments_cut_on_keyframes() {
    let out = run(6);
    for track in [0, 1] {
        let parts = parts(&out, track);
        let segments = segments(&out, track);
        assert_eq!(segments.len(), 3, "track {track}");
        let scale = if track == 0 { 90_000 } else { 48_000 };
        for (i, seg) in segments.iter().enumerate() {
            assert_eq!(seg.msn, i as u64);
            let seg_parts: Vec<&&PartOut> = parts.iter().filter(|p| p.msn == seg.msn).collect();
            assert_eq!(seg_parts.len(), 10, "track {track} segment {i}");
            assert!(seg_parts[0].independent);
            let concat: Vec<u8> = seg_parts.iter().flat_map(|p| p.data.to_vec()).collect();
            assert_eq!(concat, seg.data.to_vec(), "a segment is its parts");
            // 2 s segments from a 1 s GOP, within one audio frame for audio.
            assert!((seg.duration - 2 * scale).abs() <= 1024, "{}", seg.duration);
        }
        for p in &parts {
            // No part longer than PART-TARGET (audio: within one AAC frame of it).
            let slack = if track == 0 { 0 } else { 1024 };
            assert!(
                p.duration <= scale / 5 + slack,
                "track {track}: {} ticks",
                p.duration
            );
            assert!(!p.gap);
        }
        for w in parts.windows(2) {
            assert_eq!(w[0].start + w[0].duration, w[1].start, "contiguous");
        }
    }
    // Every part is exactly the chunks that were emitted for it, in order.
    for p in parts(&out, 0).into_iter().chain(parts(&out, 1)) {
        let chunks: Vec<u8> = out
            .iter()
            .filter_map(|o| match o {
                SegmenterOutput::Chunk(c)
                    if (c.track, c.msn, c.index) == (p.track, p.msn, p.index) =>
                {
                    Some(c.data.to_vec())
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(chunks, p.data.to_vec());
    }
}

#[test]
fn video_parts_do_not_wait_for_lagging_audio() {
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    for n in 0..8 {
        s.push(video(n, 30));
    }
    let out = drain(&mut s);
    assert_eq!(parts(&out, 0).len(), 1, "video part 0 is out");
    assert!(parts(&out, 1).is_empty(), "audio part 0 waits for audio");
    for n in 0..10 {
        s.push(audio(n)); // 10 * 1024 / 48 kHz = 213 ms > 200 ms part
    }
    let out = drain(&mut s);
    let audio_parts = parts(&out, 1);
    assert_eq!(audio_parts.len(), 1);
    assert_eq!((audio_parts[0].msn, audio_parts[0].index), (0, 0));
    assert!(!audio_parts[0].gap);
}

#[test]
fn a_silent_track_gets_gap_parts_instead_of_stalling() {
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    let mut out = Vec::new();
    // 3.5 s of video: the audio parts of segment 0 are 1.5 s past the lag limit.
    for n in 0..105 {
        s.push(video(n, 30));
        out.extend(drain(&mut s));
    }
    let audio = parts(&out, 1);
    assert!(audio.len() >= 5, "got {} audio parts", audio.len());
    assert!(audio.iter().all(|p| p.gap && p.data.is_empty()));
    let audio_segments = segments(&out, 1);
    assert!(!audio_segments.is_empty() && audio_segments[0].gap);
}
