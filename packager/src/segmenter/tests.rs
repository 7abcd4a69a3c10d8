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
        keyframe: n == 0 || (gop != i64::MAX && n % gop == 0),
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
    run_with(seconds, 30, &|_| false)
}

/// 30 fps video (3000 ticks a frame), a keyframe every `gop` frames (`i64::MAX`:
/// only the first), frames for which `lost` holds left out (as when the packets
/// that carried them were lost), and 48 kHz audio lagging ~200 ms behind.
fn run_with(seconds: i64, gop: i64, lost: &dyn Fn(i64) -> bool) -> Vec<SegmenterOutput> {
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    let mut out = Vec::new();
    let mut next_audio = 0;
    for n in 0..seconds * 30 {
        if !lost(n) {
            s.push(video(n, gop));
        }
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

/// PART-TARGET in each track's ticks: 0.2 s of video, 10 AAC frames at 48 kHz.
const TARGETS: [i64; 2] = [18_000, 10_240];
/// The longest segment (4 s, the default), in video ticks.
const MAX_SEGMENT: i64 = 360_000;

/// What RFC 8216bis §4.4.4.9 asks of the parts of `track`: none longer than
/// PART-TARGET, none shorter than 85 % of it unless it is independent, a gap,
/// followed by a gap, or the last of its segment. Also what players assume of
/// a timeline: parts contiguous and adding up to their segment, segments
/// following one another, every track on the lead's (within a tick).
fn check_parts(case: &str, out: &[SegmenterOutput], track: usize) {
    let target = TARGETS[track];
    let parts = parts(out, track);
    assert!(!parts.is_empty(), "{case}");
    for (i, p) in parts.iter().enumerate() {
        assert!(
            p.duration <= target,
            "{case}: track {track} part {}.{} lasts {} ticks > {target}",
            p.msn,
            p.index,
            p.duration
        );
        let next = parts.get(i + 1);
        let last_of_segment = next.is_none_or(|n| n.msn != p.msn);
        let exempt = p.independent || p.gap || last_of_segment || next.is_some_and(|n| n.gap);
        assert!(
            exempt || p.duration * 100 >= target * 85,
            "{case}: track {track} part {}.{} lasts {} ticks < 85 % of {target}",
            p.msn,
            p.index,
            p.duration
        );
    }
    for w in parts.windows(2) {
        assert_eq!(
            w[0].start + w[0].duration,
            w[1].start,
            "{case}: lead parts {}.{} and {}.{} are not contiguous",
            w[0].msn,
            w[0].index,
            w[1].msn,
            w[1].index
        );
    }
    let segments = segments(out, track);
    for seg in &segments {
        let sum: i64 = parts
            .iter()
            .filter(|p| p.msn == seg.msn)
            .map(|p| p.duration)
            .sum();
        assert_eq!(
            sum, seg.duration,
            "{case}: segment {} is not its parts",
            seg.msn
        );
    }
    for w in segments.windows(2) {
        assert_eq!(w[0].start + w[0].duration, w[1].start, "{case}: segments");
    }
    let (num, den) = if track == 0 { (1, 1) } else { (90_000, 48_000) };
    for (seg, lead) in segments.iter().zip(&self::segments(out, 0)) {
        assert!(
            (seg.start * num / den - lead.start).abs() <= 2,
            "{case}: track {track} segment {} starts off the lead's",
            seg.msn
        );
    }
}

#[test]
fn no_part_exceeds_part_target_whatever_frames_are_missing() {
    // Frames lost as SRT loses them when it cannot recover a packet: the frame
    // before the gap gets the gap in its duration (the distance to the next DTS).
    let cases: [(&str, &dyn Fn(i64) -> bool); 9] = [
        ("nothing lost", &|_| false),
        ("two frames across parts", &|n| n == 11 || n == 12),
        ("one frame mid-part", &|n| n == 9),
        ("two frames mid-part", &|n| n == 9 || n == 10),
        ("seven frames: more than a part", &|n| (40..47).contains(&n)),
        ("a keyframe", &|n| n == 30),
        ("the frames before a keyframe", &|n| (26..30).contains(&n)),
        ("twenty frames before a keyframe", &|n| {
            (100..120).contains(&n)
        }),
        ("every third frame for two seconds", &|n| {
            (150..210).contains(&n) && n % 3 == 1
        }),
    ];
    for (case, lost) in cases {
        let out = run_with(8, 30, lost);
        check_parts(case, &out, 0);
        check_parts(case, &out, 1);
    }
}

#[test]
fn no_segment_exceeds_the_longest_whatever_the_keyframe_interval() {
    // (GOP in frames at 30 fps, seconds run): what encoders send, down to one that
    // sends a single keyframe.
    for (gop, seconds) in [
        (30, 8),
        (60, 8),
        (75, 10),
        (150, 16),
        (600, 45),
        (i64::MAX, 14),
    ] {
        let case = format!("GOP of {gop} frames");
        let out = run_with(seconds, gop, &|_| false);
        check_parts(&case, &out, 0);
        check_parts(&case, &out, 1);
        let segments = segments(&out, 0);
        let parts = parts(&out, 0);
        assert!(segments.len() >= 3, "{case}");
        for seg in &segments {
            assert!(
                seg.duration <= MAX_SEGMENT,
                "{case}: segment {} lasts {} ticks",
                seg.msn,
                seg.duration
            );
            // Its first part says whether it starts on a keyframe.
            let first = parts.iter().find(|p| p.msn == seg.msn).unwrap();
            let keyframe = gop != i64::MAX && (seg.start / 3000) % gop == 0 || seg.start == 0;
            assert_eq!(first.independent, keyframe, "{case}: segment {}", seg.msn);
        }
        // Every keyframe after the segment target starts a segment: no keyframe
        // is left in the middle of a run of segments cut without one.
        if gop >= 60 && gop != i64::MAX {
            for k in (gop..seconds * 30).step_by(gop as usize) {
                assert!(
                    segments.iter().any(|s| s.start == k * 3000),
                    "{case}: the keyframe at frame {k} does not start a segment"
                );
            }
        }
    }
}

#[test]
fn late_audio_never_lengthens_a_part() {
    // Audio that stops for two seconds (its parts are closed as gaps after the
    // 1 s lag limit), then comes back with everything it owed at once.
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    let mut out = Vec::new();
    let mut next_audio = 0;
    for n in 0..8 * 30 {
        s.push(video(n, 30));
        let silent = (30..90).contains(&n);
        while !silent && next_audio * 1024 * 90_000 / 48_000 < n * 3000 - 18_000 {
            s.push(audio(next_audio));
            next_audio += 1;
        }
        out.extend(drain(&mut s));
    }
    s.flush();
    out.extend(drain(&mut s));
    let audio = parts(&out, 1);
    assert!(audio.iter().any(|p| p.gap), "the silence became gap parts");
    for p in audio {
        assert!(
            p.duration <= TARGETS[1],
            "audio part {}.{} lasts {} ticks",
            p.msn,
            p.index,
            p.duration
        );
    }
}

#[test]
fn uneven_frame_intervals_never_overrun_a_part() {
    // A variable frame rate (WebRTC, cameras): 30-60 ms between frames.
    let mut s = Segmenter::new(SegmenterConfig::default(), tracks(), 0);
    let mut out = Vec::new();
    let mut dts = 0;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for n in 0..300i64 {
        s.push(Frame {
            dts,
            pts: dts,
            ..video(n, 50)
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        dts += 2700 + (rng % 2701) as i64;
        out.extend(drain(&mut s));
    }
    s.flush();
    out.extend(drain(&mut s));
    let parts = parts(&out, 0);
    assert!(parts.len() > 30);
    for p in &parts {
        assert!(
            p.duration <= TARGETS[0],
            "part {}.{}: {}",
            p.msn,
            p.index,
            p.duration
        );
    }
}
