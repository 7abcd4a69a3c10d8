//! What the packager keeps bounded whatever the encoder does: an encoder that
//! sends keyframes rarely or never still gets segments no longer than the
//! longest (`max_segment_ms`), one `TARGETDURATION` from the first playlist to
//! the last, playlists of bounded size and a bounded set of live objects; and
//! the preload hint keeps naming the part that comes next.
//!
//! Frames are handed over through the frame API with the track descriptions of
//! a real capture (the fixture's H.264 and AAC), timed as a 30 fps encoder with
//! the keyframe interval under test would send them.

use std::collections::BTreeSet;

use brook_packager::frontend::{FrontEndEvent, TsFrontEnd};
use brook_packager::hls::MediaPlaylist;
use brook_packager::media::{Frame, TrackInfo};
use brook_packager::{Event, ObjectKind, Packager, PackagerConfig, UnixMillis};
use bytes::Bytes;

const TS: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");
const NOW: UnixMillis = UnixMillis(1_795_000_000_000);
/// A keyframe only at the start.
const NEVER: i64 = i64::MAX;

/// The capture's tracks: H.264 video, then AAC at 48 kHz.
fn tracks() -> Vec<TrackInfo> {
    let mut front = TsFrontEnd::default();
    front.push(TS).unwrap();
    front.flush().unwrap();
    while let Some(ev) = front.poll() {
        if let FrontEndEvent::Tracks(t) = ev {
            return t;
        }
    }
    panic!("no tracks in the fixture");
}

/// 30 fps video with a keyframe every `gop` frames (and at frame 0) and 48 kHz
/// audio ~100 ms behind it, for `seconds`; `observe` sees the packager after
/// every frame (its events not yet polled).
fn publish(seconds: i64, gop: i64, mut observe: impl FnMut(&mut Packager, i64)) -> Packager {
    let mut p = Packager::new(PackagerConfig::default());
    p.push_tracks(tracks());
    let mut next_audio = 0i64;
    for n in 0..seconds * 30 {
        p.push_frame(
            Frame {
                track: 0,
                dts: n * 3000,
                pts: n * 3000,
                keyframe: n == 0 || (gop != NEVER && n % gop == 0),
                duration: None,
                data: Bytes::from(vec![0x65; 600]),
            },
            NOW,
        );
        while next_audio * 1024 * 90_000 / 48_000 < n * 3000 - 9000 {
            p.push_frame(
                Frame {
                    track: 1,
                    dts: next_audio * 1024,
                    pts: next_audio * 1024,
                    keyframe: true,
                    duration: Some(1024),
                    data: Bytes::from(vec![0x21; 40]),
                },
                NOW,
            );
            next_audio += 1;
        }
        observe(&mut p, n);
    }
    p.finish();
    observe(&mut p, seconds * 30);
    p
}

#[test]
fn target_duration_playlists_and_objects_stay_bounded_however_rarely_keyframes_come() {
    // GOP in frames at 30 fps: 2 s (what platforms ask for), 20 s, and none after the first.
    for gop in [600, NEVER, 60] {
        let case = if gop == NEVER {
            "one keyframe".to_string()
        } else {
            format!("a keyframe every {} s", gop / 30)
        };
        let mut live: BTreeSet<String> = BTreeSet::new();
        let mut most_parts_live = 0;
        let mut longest_playlist = 0;
        let mut mpds = 0;
        let mut target_duration = None;
        let mut claims_independent = false;
        publish(60, gop, |p, n| {
            let mut changed = false;
            while let Some(ev) = p.poll() {
                match ev {
                    Event::Object { name, kind, .. } if kind != ObjectKind::Init => {
                        live.insert(name);
                    }
                    Event::Evicted { name } => {
                        live.remove(&name);
                    }
                    Event::PlaylistChanged => changed = true,
                    _ => {}
                }
            }
            let parts = live.iter().filter(|n| n.starts_with("video-part")).count();
            most_parts_live = most_parts_live.max(parts);
            if !changed {
                return;
            }
            // Once a segment was cut without a keyframe, nothing claims that
            // every segment starts with one; until then everything does.
            let keyless = p.stats().segmenter.segments_without_keyframe > 0;
            for (name, pl) in p.media_playlists() {
                let text = pl.to_string();
                longest_playlist = longest_playlist.max(text.len());
                let at = format!("{case}, frame {n}, {name}");
                let claims = text.contains("#EXT-X-INDEPENDENT-SEGMENTS");
                assert_eq!(claims, !keyless, "{at}: EXT-X-INDEPENDENT-SEGMENTS");
                claims_independent |= claims;
                let model: MediaPlaylist = text.parse().unwrap();
                // RFC 8216bis §6.2.1: the target duration never changes.
                let target = *target_duration.get_or_insert(model.target_duration);
                assert_eq!(
                    model.target_duration, target,
                    "{at}: TARGETDURATION changed"
                );
                assert_eq!(
                    model.server_control.can_skip_until,
                    Some(6.0 * f64::from(target)),
                    "{at}: the skip boundary follows the target duration"
                );
                let target = f64::from(target);
                let part_target = model.part_target.unwrap();
                // Video segments end on the lead's cuts, audio ones within an
                // audio frame of them (RFC 8216bis rounds to whole seconds).
                let slack = if name.starts_with("audio") {
                    1024.0 / 48_000.0
                } else {
                    0.0
                };
                for seg in &model.segments {
                    assert!(
                        seg.duration <= target + slack,
                        "{at}: {} lasts {}",
                        seg.uri,
                        seg.duration
                    );
                }
                let parts = model.segments.iter().flat_map(|s| &s.parts);
                for part in parts.chain(&model.trailing_parts) {
                    assert!(part.duration <= part_target, "{at}: {}", part.uri);
                }
            }
            if let Some(mpd) = p.dash_manifest(NOW, None) {
                mpds += 1;
                assert_eq!(
                    mpd.contains("startWithSAP=\"1\""),
                    !keyless,
                    "{case}: {mpd}"
                );
                let longest = mpd
                    .split("maxSegmentDuration=\"PT")
                    .nth(1)
                    .and_then(|rest| rest.split('S').next())
                    .and_then(|secs| secs.parse::<f64>().ok())
                    .unwrap();
                assert!(longest <= 4.0 + 1024.0 / 48_000.0, "{case}: {mpd}");
            }
        });
        assert!(mpds > 0, "{case}");
        // The longest segment is 4 s; no playlist claims what does not hold.
        assert_eq!(target_duration, Some(4), "{case}");
        // A 2 s GOP never needs a cut without a keyframe: the claim stands.
        if gop == 60 {
            assert!(claims_independent, "{case}: EXT-X-INDEPENDENT-SEGMENTS");
        }
        // Live objects: the window's 10 segments and the one being made, each at
        // most 4 s of 0.2 s parts (and a shorter last one).
        assert!(
            most_parts_live <= 11 * 21,
            "{case}: {most_parts_live} video parts live at once"
        );
        // Parts stay in the playlist for three segment targets (6 s), besides
        // those of the segment being made (at most 4 s): about 50 parts of
        // ~60 bytes, 10 segments, the header and the reports.
        assert!(
            longest_playlist < 6000,
            "{case}: a playlist of {longest_playlist} bytes"
        );
    }
}

#[test]
fn the_preload_hint_names_the_next_part_once_the_keyframe_interval_is_known() {
    for gop in [60, 600] {
        let mut hint: Option<String> = None;
        let mut newest: Option<String> = None;
        let mut checked = 0;
        publish(70, gop, |p, n| {
            while p.poll().is_some() {}
            let pl = p.media_playlist("video.m3u8").unwrap();
            let last = pl
                .trailing_parts
                .last()
                .or_else(|| pl.segments.last().and_then(|s| s.parts.last()))
                .map(|part| part.uri.clone());
            if last != newest && !pl.end_list {
                // A part was published: the one hinted before, once two keyframes
                // came (their interval is known).
                if n > 2 * gop {
                    assert_eq!(
                        hint, last,
                        "GOP {gop}, frame {n}: the hint named another part"
                    );
                    checked += 1;
                }
                newest = last;
            }
            hint = pl.preload_part().map(str::to_string);
        });
        assert!(checked > 100, "GOP {gop}: {checked} parts checked");
    }
}

/// Found by the `packager` fuzz target: a stream whose video goes away (its
/// PMT changes, an encoder restart) continues with AAC alone as the lead,
/// whose parts are whole frames (0.2133 s for a 0.2 s target); the
/// playlists announced `PART-TARGET=0.2` with the video and cannot change
/// it, so the audio-led timeline must keep its parts within 0.2 s.
#[test]
fn a_timeline_led_by_audio_keeps_the_part_target_the_playlists_announced() {
    let data = include_bytes!("regressions/audio_lead_after_video_went_away.bin");
    let (&chunk, input) = data.split_first().unwrap();
    // As the fuzz target drives it: chunk byte 0x10 (clear), pushes of
    // 16 x 11 bytes, a restart after the fourth.
    assert_eq!(chunk, 0x10);
    let mut p = Packager::new(PackagerConfig {
        window_segments: 4,
        ..PackagerConfig::default()
    });
    let check = |p: &Packager| {
        for (name, pl) in p.media_playlists() {
            let target = pl.part_target.unwrap();
            for part in pl
                .segments
                .iter()
                .flat_map(|s| &s.parts)
                .chain(&pl.trailing_parts)
            {
                assert!(
                    part.duration <= target,
                    "{name}: {} {} > {target}\n{pl}",
                    part.uri,
                    part.duration
                );
            }
        }
    };
    for (i, c) in input.chunks(usize::from(chunk) * 11).enumerate() {
        let r = p.push_ts(c, UnixMillis(i as u64 * 20));
        while p.poll().is_some() {}
        check(&p);
        if r.is_err() {
            break;
        }
        if i == 3 {
            p.restart_input();
        }
    }
    p.finish();
    while p.poll().is_some() {}
    check(&p);
    let audio = p.media_playlist("audio.m3u8").unwrap().to_string();
    assert!(audio.contains("#EXT-X-DISCONTINUITY"), "{audio}");
}
