use std::process::Command;

use super::*;

/// FLV tags (type, timestamp, body) from a file ffmpeg writes now: what an
/// RTMP publisher sends, one message per tag.
fn ffmpeg_flv(extra: &[&str]) -> Vec<(u8, u32, Vec<u8>)> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=30")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "2",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-bf",
            "2",
        ])
        .args(extra)
        .args(["-c:a", "aac", "-f", "flv", "pipe:1"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flv = out.stdout;
    assert_eq!(&flv[..3], b"FLV");
    let mut at = usize::try_from(u32::from_be_bytes(flv[5..9].try_into().unwrap())).unwrap() + 4;
    let mut tags = Vec::new();
    while at + 11 <= flv.len() {
        let h = &flv[at..at + 11];
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]);
        tags.push((h[0], ts, flv[at + 11..at + 11 + size].to_vec()));
        at += 11 + size + 4;
    }
    tags
}

fn feed(media: &mut RtmpMedia, tags: &[(u8, u32, Vec<u8>)], shift: u32) -> Vec<Out> {
    let mut out = Vec::new();
    for (kind, ts, body) in tags {
        let ts = ts.wrapping_add(shift);
        match kind {
            9 => media.video(ts, body, &mut out).unwrap(),
            8 => media.audio(ts, body, &mut out).unwrap(),
            _ => {}
        }
    }
    out
}

/// ffmpeg's FLV (H.264 with B-frames, AAC at 44.1 kHz): one announcement of
/// both tracks, then every frame, video keyframes where the IDRs are, PTS
/// after DTS, audio counted in samples without gaps.
#[test]
fn ffmpeg_flv_becomes_tracks_and_frames() {
    let tags = ffmpeg_flv(&[]);
    let mut media = RtmpMedia::new();
    let out = feed(&mut media, &tags, 0);
    let Out::Tracks(tracks) = &out[0] else {
        panic!("first: {:?}", out[0]);
    };
    assert_eq!(tracks.len(), 2);
    assert!(
        matches!(&tracks[0].codec, CodecConfig::Avc(c) if c.sps.width == 320 && c.sps.height == 240)
    );
    assert!(matches!(&tracks[1].codec, CodecConfig::Aac(c) if c.sample_rate == 44_100));
    assert_eq!(
        out.iter().filter(|o| matches!(o, Out::Tracks(_))).count(),
        1
    );
    let frames: Vec<&Frame> = out
        .iter()
        .filter_map(|o| match o {
            Out::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    let video: Vec<&&Frame> = frames.iter().filter(|f| f.track == 0).collect();
    assert_eq!(video.len(), 60);
    assert!(video[0].keyframe && video[30].keyframe);
    assert_eq!(video.iter().filter(|f| f.keyframe).count(), 2);
    assert!(video.iter().all(|f| f.pts >= f.dts));
    assert!(video.iter().any(|f| f.pts > f.dts), "B-frames reorder");
    let audio: Vec<&&Frame> = frames.iter().filter(|f| f.track == 1).collect();
    assert!(audio.len() >= 80, "{}", audio.len());
    for w in audio.windows(2) {
        assert_eq!(w[1].dts - w[0].dts, 1024);
    }
    assert_eq!(media.stats.dropped, 0);
}

/// A publisher whose clock passes 2^32 ms mid-stream: the timeline goes on.
#[test]
fn timestamps_continue_through_the_32_bit_wrap() {
    let tags = ffmpeg_flv(&[]);
    let mut media = RtmpMedia::new();
    let shift = u32::MAX - 1000; // wraps one second in
    let out = feed(&mut media, &tags, shift);
    let dts: Vec<i64> = out
        .iter()
        .filter_map(|o| match o {
            Out::Frame(f) if f.track == 0 => Some(f.dts),
            _ => None,
        })
        .collect();
    assert!(
        dts.windows(2).all(|w| w[1] > w[0]),
        "monotonic through the wrap"
    );
    let span = dts[dts.len() - 1] - dts[0];
    assert!((span - 59 * 3000).abs() <= 90, "span {span}");
}

/// Frames before the configuration and before a keyframe are dropped, not
/// sent: the packager starts at a keyframe.
#[test]
fn nothing_before_the_first_keyframe() {
    let tags = ffmpeg_flv(&[]);
    let mut media = RtmpMedia::new();
    // Skip the sequence headers and the first GOP's keyframe.
    let first_key = tags
        .iter()
        .position(|(k, _, b)| *k == 9 && b[0] == 0x17 && b[1] == 1)
        .unwrap();
    let mut late: Vec<_> = tags[first_key + 1..].to_vec();
    let out = feed(&mut media, &late, 0);
    assert!(out.is_empty(), "no configuration yet");
    // With the headers, frames start at the second keyframe.
    late.splice(0..0, tags[..first_key].iter().cloned());
    let mut media = RtmpMedia::new();
    let out = feed(&mut media, &late, 0);
    let Some(Out::Frame(first)) = out.get(1) else {
        panic!("{:?}", out.first());
    };
    assert!(first.keyframe && first.track == 0);
    assert!(media.stats.dropped > 0);
}

/// NAL lengths of 2 bytes become 4; a length past the end drops the frame.
#[test]
fn nal_lengths_are_rewritten_and_checked() {
    assert_eq!(
        to_four_byte_lengths(&[0, 2, 0x65, 1, 0, 1, 0x41], 2),
        Some(vec![0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41])
    );
    assert_eq!(to_four_byte_lengths(&[0, 5, 0x65], 2), None);
    assert_eq!(to_four_byte_lengths(&[0, 0], 2), None);
    assert_eq!(to_four_byte_lengths(&[], 4), None);
    assert!(has_random_access(&[0, 0, 0, 1, 0x65], VideoCodec::Avc));
    assert!(!has_random_access(&[0, 0, 0, 1, 0x41], VideoCodec::Avc));
    assert!(has_random_access(
        &[0, 0, 0, 2, 19 << 1, 1],
        VideoCodec::Hevc
    ));
}

/// A video codec Brook cannot package is an error for the connection; audio
/// it cannot package is dropped (reported once).
#[test]
fn unsupported_codecs() {
    let mut media = RtmpMedia::new();
    let mut out = Vec::new();
    let mut av1 = vec![0x90];
    av1.extend_from_slice(b"av01");
    assert!(media.video(0, &av1, &mut out).is_err());
    assert!(media.video(0, &[0x12, 0, 0, 0, 0], &mut out).is_err());
    assert!(media.audio(0, &[0x2F, 1, 2], &mut out).is_err());
    assert!(
        media.audio(0, &[0x2F, 1, 2], &mut out).is_ok(),
        "reported once"
    );
    assert!(out.is_empty());
}

/// Arbitrary bytes as video and audio messages: no panic.
#[test]
fn arbitrary_messages_never_panic() {
    let tags = ffmpeg_flv(&[]);
    let mut media = RtmpMedia::new();
    let mut out = Vec::new();
    let mut seed = 0x9e37_79b9_u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for (kind, ts, body) in tags.iter().take(40) {
        let mut body = body.clone();
        for _ in 0..3 {
            if !body.is_empty() {
                let i = next() as usize % body.len();
                body[i] = next() as u8;
            }
        }
        body.truncate(next() as usize % (body.len() + 1));
        let _ = match kind {
            9 => media.video(*ts, &body, &mut out).map_err(drop),
            _ => media.audio(*ts, &body, &mut out).map_err(drop),
        };
    }
}

/// HEVC over Enhanced RTMP, as OBS ≥ 29.1 sends it (no such encoder on this
/// machine): x265's output wrapped in `hvc1` SequenceStart and CodedFramesX
/// tags goes through the timeline and Brook's packager, and the CMAF
/// segments decode with ffmpeg without a word.
#[test]
fn enhanced_rtmp_hevc_is_packaged_and_decodes() {
    use brook_packager::codec::h265::{self, HevcConfig, HevcSps};
    use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=30")
        .args(["-t", "3", "-c:v", "libx265", "-preset", "ultrafast"])
        .args([
            "-x265-params",
            "keyint=30:min-keyint=30:bframes=0:aud=1:log-level=error",
        ])
        .args(["-f", "hevc", "pipe:1"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Access units, split at the access unit delimiters.
    let mut units: Vec<Vec<&[u8]>> = Vec::new();
    for nal in brook_packager::codec::h264::annexb_nals(&out.stdout) {
        if h265::nal_type(nal) == 35 {
            units.push(Vec::new());
        } else if let Some(u) = units.last_mut() {
            u.push(nal);
        }
    }
    let find = |t: u8| *units[0].iter().find(|n| h265::nal_type(n) == t).unwrap();
    let (vps, sps, pps) = (find(32), find(33), find(34));
    let config = HevcConfig {
        sps: HevcSps::parse(sps).unwrap(),
        vps_nal: vps.to_vec(),
        sps_nal: sps.to_vec(),
        pps_nal: pps.to_vec(),
    };
    let mut tag = vec![0x80 | 0x10, b'h', b'v', b'c', b'1'];
    tag.extend_from_slice(&config.decoder_configuration_record());
    let mut media = RtmpMedia::new();
    let mut outs = Vec::new();
    media.video(0, &tag, &mut outs).unwrap();
    for (i, unit) in units.iter().enumerate() {
        let key = unit.iter().any(|n| (16..=23).contains(&h265::nal_type(n)));
        let mut tag = vec![
            0x80 | if key { 0x10 } else { 0x20 } | 3,
            b'h',
            b'v',
            b'c',
            b'1',
        ];
        for nal in unit {
            tag.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            tag.extend_from_slice(nal);
        }
        let ms = (i as u64 * 1000 / 30) as u32;
        media.video(ms, &tag, &mut outs).unwrap();
    }
    assert!(
        matches!(&outs[0], Out::Tracks(t) if matches!(&t[0].codec, CodecConfig::Hevc(c) if c.sps.width == 320))
    );
    assert_eq!(media.stats.video_frames, 90);
    let mut packager = Packager::new(PackagerConfig::default());
    let mut objects = std::collections::BTreeMap::new();
    let mut drain = |p: &mut Packager| {
        while let Some(e) = p.poll() {
            if let Event::Object { name, data, .. } = e {
                objects.insert(name, data);
            }
        }
    };
    for o in outs {
        match o {
            Out::Tracks(t) => packager.push_tracks(t),
            Out::Frame(f) => packager.push_frame(f, UnixMillis(1_795_000_000_000)),
        }
        drain(&mut packager);
    }
    packager.finish();
    drain(&mut packager);
    let init = objects
        .iter()
        .find(|(n, _)| n.ends_with("init.mp4"))
        .unwrap()
        .1
        .clone();
    let segments: Vec<_> = objects.iter().filter(|(n, _)| n.contains("-seg")).collect();
    assert!(
        segments.len() >= 2,
        "{:?}",
        objects.keys().collect::<Vec<_>>()
    );
    for (name, seg) in segments {
        let dir = std::env::temp_dir().join(format!("brook-ertmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("check.mp4");
        std::fs::write(&file, [&init[..], &seg[..]].concat()).unwrap();
        let decoded = Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(decoded.status.success(), "{name}");
        assert_eq!(
            String::from_utf8_lossy(&decoded.stderr),
            "",
            "{name} decodes cleanly"
        );
    }
}
