//! The frame API other ingests use (WHIP, RTSP): tracks and frames handed over
//! directly, here H.264 taken from a TS capture and Opus packets from an Ogg file,
//! packaged together and decoded with ffmpeg.

use std::process::Command;

use brook_packager::codec::opus::{packet_duration, OpusConfig};
use brook_packager::frontend::{FrontEndEvent, TsFrontEnd};
use brook_packager::media::{CodecConfig, Frame, TrackInfo};
use brook_packager::{Event, ObjectKind, Packager, PackagerConfig, UnixMillis};
use bytes::Bytes;

const TS: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");
const OGG: &[u8] = include_bytes!("fixtures/lavfi_opus_20ms.ogg");

/// The capture's tracks and frames, as the TS front end hands them over.
fn capture() -> (Vec<TrackInfo>, Vec<Frame>) {
    let mut front = TsFrontEnd::default();
    front.push(TS).unwrap();
    front.flush().unwrap();
    let mut tracks = None;
    let mut frames = Vec::new();
    while let Some(ev) = front.poll() {
        match ev {
            FrontEndEvent::Tracks(t) => tracks = Some(t),
            FrontEndEvent::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    (tracks.unwrap(), frames)
}

/// The capture's video track and frames (what a WHIP or RTMP depacketizer
/// would produce).
fn capture_video() -> (TrackInfo, Vec<Frame>) {
    let (tracks, frames) = capture();
    let video = frames.into_iter().filter(|f| f.track == 0).collect();
    (tracks[0].clone(), video)
}

/// Packets of the first logical stream of an Ogg file (RFC 3533).
fn ogg_packets(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    while data.len() >= 27 && &data[..4] == b"OggS" {
        let nsegs = usize::from(data[26]);
        let table = &data[27..27 + nsegs];
        let mut body = &data[27 + nsegs..];
        for &lace in table {
            current.extend_from_slice(&body[..usize::from(lace)]);
            body = &body[usize::from(lace)..];
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        let page_len = 27 + nsegs + table.iter().map(|&l| usize::from(l)).sum::<usize>();
        data = &data[page_len..];
    }
    packets
}

#[test]
fn h264_and_opus_frames_package_and_decode() {
    // Video frames and their configuration, as a WHIP depacketizer would produce them.
    let (video_track, video) = capture_video();

    let packets = ogg_packets(OGG);
    let opus = OpusConfig::from_opus_head(&packets[0]).expect("OpusHead");
    let tracks = vec![
        video_track,
        TrackInfo {
            id: 2,
            timescale: 48_000,
            codec: CodecConfig::Opus(opus),
        },
    ];
    let mut p = Packager::new(PackagerConfig::default());
    p.push_tracks(tracks);
    // Interleave by time, audio slightly late as from a real network.
    let first_video = video[0].dts;
    let mut audio_ts = 0i64;
    let mut audio = packets[2..].iter().peekable();
    let mut objects = std::collections::BTreeMap::new();
    for frame in video {
        let video_time = frame.dts - first_video;
        p.push_frame(frame, UnixMillis(1_795_000_000_000));
        while let Some(pkt) = audio.peek() {
            if audio_ts * 90_000 / 48_000 > video_time - 9000 {
                break;
            }
            let d = packet_duration(pkt).unwrap();
            p.push_frame(
                Frame {
                    track: 1,
                    dts: audio_ts + first_video * 48_000 / 90_000,
                    pts: audio_ts + first_video * 48_000 / 90_000,
                    keyframe: true,
                    duration: Some(d),
                    data: Bytes::from(audio.next().unwrap().clone()),
                },
                UnixMillis(1_795_000_000_000),
            );
            audio_ts += i64::from(d);
        }
        while let Some(ev) = p.poll() {
            if let Event::Object { name, data, kind } = ev {
                objects.insert(name, (kind, data));
            }
        }
    }
    p.finish();
    while let Some(ev) = p.poll() {
        if let Event::Object { name, data, kind } = ev {
            objects.insert(name, (kind, data));
        }
    }
    let mv = p.multivariant().unwrap().to_string();
    assert!(mv.contains("CODECS=\"avc1.64000d,opus\""), "{mv}");

    for (rendition, codec) in [("video", "h264"), ("audio", "opus,2")] {
        let mut file = objects[&format!("{rendition}-init.mp4")].1.to_vec();
        for (name, (kind, data)) in objects.iter() {
            if *kind == ObjectKind::Segment && name.starts_with(rendition) {
                file.extend_from_slice(data);
            }
        }
        let path =
            std::env::temp_dir().join(format!("brook-{rendition}-{}.mp4", std::process::id()));
        std::fs::write(&path, file).unwrap();
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,channels",
                "-of",
                "csv",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let decode = Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let streams = String::from_utf8_lossy(&probe.stdout);
        assert!(streams.contains(&format!("stream,{codec}")), "{streams}");
        assert!(decode.status.success());
        assert_eq!(String::from_utf8_lossy(&decode.stderr), "");
    }
}

/// A frame ingest whose caller does not report a timestamp jump (an RTMP
/// publisher's clock leaping an hour, found by the `rtmp_media` fuzzer): the
/// packager starts a new timeline instead of filling the hour with gap parts
/// (18,000 of them, which ran the fuzzer out of memory).
#[test]
fn an_unreported_jump_beyond_the_live_window_is_a_new_timeline() {
    let (track, video) = capture_video();
    let mut p = Packager::new(PackagerConfig::default());
    p.push_tracks(vec![track]);
    let (first, last) = (video[0].dts, video[video.len() - 1].dts);
    let hour = 3600 * 90_000;
    let mut parts = 0;
    for (i, shift) in [(0usize, 0i64), (1, hour)] {
        for f in &video {
            let mut f = f.clone();
            // The second pass an hour (plus the first pass) later.
            f.dts += shift + i as i64 * (last - first);
            f.pts += shift + i as i64 * (last - first);
            p.push_frame(f, UnixMillis(1_795_000_000_000));
            while let Some(ev) = p.poll() {
                if matches!(
                    ev,
                    Event::Object {
                        kind: ObjectKind::Part,
                        ..
                    }
                ) {
                    parts += 1;
                }
            }
        }
    }
    let stats = p.stats();
    assert_eq!(stats.jumps, 1, "{stats:?}");
    assert!(stats.discontinuities >= 1, "{stats:?}");
    assert!(
        parts < 200,
        "{parts} parts for two passes of a short capture"
    );
}

/// Audio whose clock jumped an hour ahead of the video's (an encoder that
/// reset one clock only): its frames are dropped and counted, not kept
/// waiting for a video that will not get there for an hour.
#[test]
fn a_follower_far_ahead_of_the_lead_is_dropped_not_buffered() {
    let (tracks, frames) = capture();
    let audio = tracks
        .iter()
        .position(|t| t.kind() == brook_packager::media::TrackKind::Audio)
        .unwrap();
    let audio_rate = i64::from(tracks[audio].timescale);
    let mut p = Packager::new(PackagerConfig::default());
    p.push_tracks(tracks);
    let mut audio_frames = 0;
    for mut f in frames {
        if f.track == audio {
            f.dts += 3600 * audio_rate;
            f.pts += 3600 * audio_rate;
            audio_frames += 1;
        }
        p.push_frame(f, UnixMillis(1_795_000_000_000));
        while p.poll().is_some() {}
    }
    let dropped = p.stats().segmenter.frames_dropped;
    assert!(
        audio_frames > 50 && dropped >= audio_frames - 2,
        "{dropped} of {audio_frames} dropped"
    );
}

/// A ladder whose second rung does not key where the lead does (an encoder
/// ignoring forced keyframes): once such a segment exists, neither the
/// playlists nor the MPD claim that every segment starts with a keyframe;
/// with both rungs keyed alike they do.
#[test]
fn a_rung_that_does_not_key_with_the_lead_withdraws_the_independence_claim() {
    let (track, video) = capture_video();
    for keyed_alike in [true, false] {
        let mut second = track.clone();
        second.id = 2;
        let mut p = Packager::new(PackagerConfig::default());
        p.push_tracks(vec![track.clone(), second]);
        for (i, f) in video.iter().enumerate() {
            p.push_frame(f.clone(), UnixMillis(1_795_000_000_000));
            let mut g = f.clone();
            g.track = 1;
            // The second rung keys only on its first frame.
            g.keyframe = f.keyframe && (keyed_alike || i == 0);
            p.push_frame(g, UnixMillis(1_795_000_000_000));
            while p.poll().is_some() {}
        }
        p.finish();
        while p.poll().is_some() {}
        let claims: Vec<bool> = p
            .media_playlists()
            .map(|(_, pl)| pl.to_string().contains("#EXT-X-INDEPENDENT-SEGMENTS"))
            .collect();
        assert_eq!(
            claims,
            [keyed_alike, keyed_alike],
            "keyed alike: {keyed_alike}"
        );
        let mpd = p
            .dash_manifest(UnixMillis(1_795_000_010_000), None)
            .unwrap();
        assert_eq!(mpd.contains("startWithSAP=\"1\""), keyed_alike, "{mpd}");
    }
}
