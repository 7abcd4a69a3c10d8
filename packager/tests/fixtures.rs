//! End-to-end packaging of real encoder output (fixtures made by
//! `tests/fixtures/make.sh`), checked by decoding the result with ffmpeg.

use std::collections::BTreeMap;
use std::process::Command;

use brook_packager::{Event, ObjectKind, Packager, PackagerConfig, UnixMillis};
use bytes::Bytes;

const ZEROLATENCY: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");
const BFRAMES: &[u8] = include_bytes!("fixtures/lavfi_h264_bframes_aac.ts");
const GOP5S: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_gop5s.ts");

struct Output {
    objects: BTreeMap<String, (ObjectKind, Bytes)>,
    /// The lead playlist as rendered at every change.
    playlists: Vec<String>,
    /// Every media playlist as rendered at every change: (name, text).
    all_playlists: Vec<(String, String)>,
    packager: Packager,
}

fn package(ts: &[u8]) -> Output {
    package_with(ts, PackagerConfig::default(), Vec::new())
}

fn package_with(ts: &[u8], config: PackagerConfig, names: Vec<String>) -> Output {
    let mut p = Packager::new(config);
    p.set_rendition_names(names);
    let mut objects = BTreeMap::new();
    let mut growing: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut playlists = Vec::new();
    let mut all_playlists = Vec::new();
    let mut drain = |p: &mut Packager| {
        while let Some(ev) = p.poll() {
            match ev {
                Event::Chunk { name, data, .. } => {
                    assert!(!objects.contains_key(&name), "chunk after {name} completed");
                    growing.entry(name).or_default().extend_from_slice(&data);
                }
                Event::Object { name, kind, data } => {
                    // A part or segment is exactly the chunks sent before it.
                    if let Some(chunks) = growing.remove(&name) {
                        assert_eq!(chunks, data.to_vec(), "{name}: chunks differ");
                    } else {
                        assert_eq!(kind, ObjectKind::Init, "{name} came without chunks");
                    }
                    assert!(
                        objects.insert(name.clone(), (kind, data)).is_none(),
                        "{name} twice"
                    );
                }
                Event::Evicted { name } => {
                    objects.remove(&name);
                }
                Event::PlaylistChanged => {
                    playlists.push(
                        p.lead_playlist()
                            .map(|pl| pl.to_string())
                            .unwrap_or_default(),
                    );
                    all_playlists.extend(p.media_playlists().map(|(n, pl)| (n, pl.to_string())));
                }
            }
        }
    };
    for (i, chunk) in ts.chunks(1316).enumerate() {
        p.push_ts(chunk, UnixMillis(1_795_000_000_000 + i as u64))
            .unwrap();
        drain(&mut p);
    }
    p.finish();
    drain(&mut p);
    Output {
        objects,
        playlists,
        all_playlists,
        packager: p,
    }
}

/// Decodes `init + media` with ffmpeg; returns what it printed at `-v error`.
fn ffmpeg_decode(init: &[u8], media: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("brook-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Tests run in parallel threads of one process: every file gets its own name.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{n}.mp4"));
    let mut file = init.to_vec();
    file.extend_from_slice(media);
    std::fs::write(&path, file).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed by `cargo xtask setup`");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn check_fixture(ts: &[u8]) -> Output {
    let out = package(ts);
    for r in ["video", "audio"] {
        let init = &out.objects[&format!("{r}-init.mp4")].1;
        let segments: Vec<&String> = out
            .objects
            .iter()
            .filter(|(n, (k, _))| *k == ObjectKind::Segment && n.starts_with(r))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            segments,
            vec![&format!("{r}-seg0.m4s"), &format!("{r}-seg1.m4s")],
            "3 s of media: 2 s + 1 s"
        );
        for name in &segments {
            assert_eq!(ffmpeg_decode(init, &out.objects[*name].1), "", "{name}");
        }
        // The first part decodes on its own after the init segment, and the parts
        // of a segment concatenate to it.
        let part0 = &out.objects[&format!("{r}-part0.0.m4s")].1;
        assert_eq!(ffmpeg_decode(init, part0), "");
        let concat: Vec<u8> = (0..10)
            .flat_map(|i| out.objects[&format!("{r}-part0.{i}.m4s")].1.to_vec())
            .collect();
        assert_eq!(concat, out.objects[&format!("{r}-seg0.m4s")].1.to_vec());
    }
    let stats = out.packager.stats();
    assert_eq!(stats.demux.continuity_errors, 0);
    assert_eq!(stats.frames.dropped_video, 0);
    assert_eq!(stats.frames.dropped_audio, 0);
    assert_eq!(stats.frames.video_frames, 90);
    out
}

/// The lead (video) rendition's playlist.
fn video(out: &Output) -> &brook_packager::hls::MediaPlaylist {
    out.packager.media_playlist("video.m3u8").unwrap()
}

#[test]
fn zerolatency_h264_aac_packages_and_decodes() {
    let out = check_fixture(ZEROLATENCY);
    let last = out.playlists.last().unwrap();
    for tag in [
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-PART-INF:PART-TARGET=0.2",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,PART-HOLD-BACK=0.6",
        "#EXT-X-MAP:URI=\"video-init.mp4\"",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-18T",
        "#EXT-X-PART:DURATION=0.2,URI=\"video-part0.0.m4s\",INDEPENDENT=YES",
        "#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=1,LAST-PART=4",
        "#EXT-X-ENDLIST",
    ] {
        assert!(last.contains(tag), "missing {tag} in\n{last}");
    }
    // While live, the playlist ends with a preload hint and the rendition report.
    let live = &out.playlists[out.playlists.len() / 2];
    let lines: Vec<&str> = live.lines().collect();
    assert!(lines[lines.len() - 2].starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video-part"));
    assert!(lines[lines.len() - 1].starts_with("#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\""));
    let mv = out.packager.multivariant().unwrap().to_string();
    assert!(mv.contains("CODECS=\"avc1.64000d,mp4a.40.2\""), "{mv}");
    assert!(mv.contains("RESOLUTION=320x240"), "{mv}");
    assert!(mv.contains("FRAME-RATE=30.000"), "{mv}");
    assert!(mv.contains("AUDIO=\"audio\""), "{mv}");
    assert!(
        mv.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio.m3u8\""),
        "{mv}"
    );
    let audio = out
        .packager
        .media_playlist("audio.m3u8")
        .unwrap()
        .to_string();
    assert!(
        audio.contains("#EXT-X-MAP:URI=\"audio-init.mp4\""),
        "{audio}"
    );
    assert!(
        audio.contains("#EXT-X-RENDITION-REPORT:URI=\"video.m3u8\""),
        "{audio}"
    );
}

#[test]
fn b_frames_keep_composition_offsets() {
    check_fixture(BFRAMES);
}

/// (track_ID, tfdt, summed sample durations) of every `traf` in `fragments`.
fn trafs(mut fragments: &[u8]) -> Vec<(u32, u64, u64)> {
    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    fn children(mut b: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let size = be32(b) as usize;
            out.push(([b[4], b[5], b[6], b[7]], &b[8..size]));
            b = &b[size..];
        }
        out
    }
    let mut out = Vec::new();
    while !fragments.is_empty() {
        let size = be32(fragments) as usize;
        if &fragments[4..8] == b"moof" {
            for (kind, traf) in children(&fragments[8..size]) {
                if &kind != b"traf" {
                    continue;
                }
                let mut entry = (0, 0, 0);
                for (k, body) in children(traf) {
                    match &k {
                        b"tfhd" => entry.0 = be32(&body[4..]),
                        b"tfdt" => entry.1 = u64::from_be_bytes(body[4..12].try_into().unwrap()),
                        b"trun" => {
                            let count = be32(&body[4..]) as usize;
                            // v1 trun with data offset: 16-byte entries from byte 12.
                            entry.2 = (0..count)
                                .map(|i| u64::from(be32(&body[12 + 16 * i..])))
                                .sum();
                        }
                        _ => {}
                    }
                }
                out.push(entry);
            }
        }
        fragments = &fragments[size..];
    }
    out
}

#[test]
fn every_track_is_gapless_across_parts_and_segments() {
    for ts in [ZEROLATENCY, BFRAMES] {
        let out = package(ts);
        for (r, track) in [("video", 1), ("audio", 2)] {
            let media: Vec<u8> = [0, 1]
                .iter()
                .flat_map(|n| out.objects[&format!("{r}-seg{n}.m4s")].1.to_vec())
                .collect();
            let runs: Vec<(u64, u64)> = trafs(&media)
                .into_iter()
                .filter(|t| t.0 == track)
                .map(|t| (t.1, t.2))
                .collect();
            assert!(runs.len() >= 10, "track {track}: {} fragments", runs.len());
            for w in runs.windows(2) {
                assert_eq!(
                    w[0].0 + w[0].1,
                    w[1].0,
                    "track {track}: gap or overlap in {runs:?}"
                );
            }
        }
    }
}

const AAC_44100: &[u8] = include_bytes!("fixtures/lavfi_h264_aac44100.ts");
const TIMESTAMP_JUMP: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_timestamp_jump.ts");
const RESOLUTION_CHANGE: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_resolution_change.ts");

/// Sum of EXTINF durations in the final playlist.
fn total_duration(out: &Output) -> f64 {
    video(out).segments.iter().map(|s| s.duration).sum()
}

#[test]
fn summed_durations_match_the_input_within_a_frame() {
    for (name, ts, seconds) in [
        ("zerolatency", ZEROLATENCY, 3.0),
        ("bframes", BFRAMES, 3.0),
        ("aac44100", AAC_44100, 3.0),
    ] {
        let out = package(ts);
        let total = total_duration(&out);
        assert!((total - seconds).abs() <= 1.0 / 30.0, "{name}: {total} s");
    }
}

#[test]
fn aac_at_44100_packages_and_decodes() {
    let out = package(AAC_44100);
    let init = &out.objects["audio-init.mp4"].1;
    for seg in ["audio-seg0.m4s", "audio-seg1.m4s"] {
        assert_eq!(ffmpeg_decode(init, &out.objects[seg].1), "", "{seg}");
    }
    let audio = out.packager.media_playlist("audio.m3u8").unwrap();
    let total: f64 = audio.segments.iter().map(|s| s.duration).sum();
    assert!((total - 3.0).abs() < 0.05, "{total}");
    let mv = out.packager.multivariant().unwrap().to_string();
    assert!(mv.contains("mp4a.40.2"), "{mv}");
}

/// Segment names in the final playlist that follow an EXT-X-DISCONTINUITY.
fn discontinuities(out: &Output) -> Vec<String> {
    video(out)
        .segments
        .iter()
        .filter(|s| s.tags.discontinuity)
        .map(|s| s.uri.clone())
        .collect()
}

#[test]
fn a_timestamp_jump_is_a_discontinuity_with_the_same_init() {
    let out = package(TIMESTAMP_JUMP);
    assert_eq!(out.packager.stats().frames.timestamp_jumps, 1);
    assert_eq!(discontinuities(&out).len(), 1);
    let text = video(&out).to_string();
    assert_eq!(
        text.matches("#EXT-X-MAP").count(),
        1,
        "same configuration, one map\n{text}"
    );
    let init = &out.objects["video-init.mp4"].1;
    for s in &video(&out).segments {
        assert_eq!(ffmpeg_decode(init, &out.objects[&s.uri].1), "", "{}", s.uri);
    }
    // Both halves are there: 2 s + 2 s of media.
    assert!(
        (total_duration(&out) - 4.0).abs() <= 2.0 / 30.0,
        "{}",
        total_duration(&out)
    );
    // The playlist round-trips through the parser.
    let reparsed: brook_packager::hls::MediaPlaylist = text.parse().unwrap();
    assert_eq!(reparsed.to_string(), text);
}

#[test]
fn a_resolution_change_gets_a_new_init_segment_and_a_discontinuity() {
    let out = package(RESOLUTION_CHANGE);
    let pl = video(&out);
    assert_eq!(out.packager.stats().frames.config_changes, 1);
    let after: Vec<&brook_packager::hls::Segment> = pl
        .segments
        .iter()
        .skip_while(|s| !s.tags.discontinuity)
        .collect();
    assert!(!after.is_empty(), "{pl}");
    let map = after[0]
        .tags
        .map
        .as_ref()
        .expect("a new EXT-X-MAP at the change");
    assert_eq!(map.uri, "video-init1.mp4");
    assert!(out.packager.multivariant().is_some());
    for s in &pl.segments {
        let init = if after.iter().any(|a| a.uri == s.uri) {
            &out.objects["video-init1.mp4"].1
        } else {
            &out.objects["video-init.mp4"].1
        };
        assert_eq!(ffmpeg_decode(init, &out.objects[&s.uri].1), "", "{}", s.uri);
    }
    assert_eq!(out.packager.tracks()[0].resolution(), Some((480, 270)));
}

#[test]
fn restart_input_continues_the_playlist_after_a_discontinuity() {
    let mut p = Packager::new(PackagerConfig::default());
    let half = ZEROLATENCY.len() / 2;
    for c in ZEROLATENCY[..half].chunks(1316) {
        p.push_ts(c, UnixMillis(1_795_000_000_000)).unwrap();
    }
    let before = p.media_playlist("video.m3u8").unwrap().next_msn();
    p.restart_input();
    assert!(
        p.media_playlist("video.m3u8").unwrap().next_msn() > before,
        "the cut-off segment was closed"
    );
    for c in ZEROLATENCY.chunks(1316) {
        p.push_ts(c, UnixMillis(1_795_000_010_000)).unwrap();
    }
    p.finish();
    let mut objects = BTreeMap::new();
    while let Some(ev) = p.poll() {
        if let Event::Object { name, data, .. } = ev {
            objects.insert(name, data);
        }
    }
    let pl = p.media_playlist("video.m3u8").unwrap();
    assert_eq!(p.stats().discontinuities, 1);
    let resumed: Vec<_> = pl
        .segments
        .iter()
        .filter(|s| s.tags.discontinuity)
        .collect();
    assert_eq!(resumed.len(), 1);
    assert!(
        resumed[0].tags.map.is_none(),
        "same configuration: no new init"
    );
    assert!(!objects.contains_key("video-init1.mp4"));
    // MSNs are contiguous across the restart.
    for w in pl.segments.windows(2) {
        assert_eq!(w[0].msn + 1, w[1].msn);
    }
    assert!(resumed[0].tags.program_date_time.unwrap().0 >= 1_795_000_010_000 - 2000);
}

const H265: &[u8] = include_bytes!("fixtures/lavfi_h265_aac.ts");

#[test]
fn h265_packages_as_hvc1_and_decodes() {
    let out = check_fixture(H265);
    let init = &out.objects["video-init.mp4"].1;
    assert!(init.windows(4).any(|w| w == b"hvc1") && init.windows(4).any(|w| w == b"hvcC"));
    let mv = out.packager.multivariant().unwrap().to_string();
    assert!(mv.contains("CODECS=\"hvc1.1.6.L60.90,mp4a.40.2\""), "{mv}");
    assert!(mv.contains("RESOLUTION=320x240"), "{mv}");
    assert!((total_duration(&out) - 3.0).abs() <= 1.0 / 30.0);
}

#[test]
fn durations_across_discontinuities_match_the_input_within_a_frame() {
    for (name, ts) in [("jump", TIMESTAMP_JUMP), ("resolution", RESOLUTION_CHANGE)] {
        let out = package(ts);
        let total = total_duration(&out);
        // Two 2 s halves (60 frames each at 30 fps).
        assert!(
            (total - 4.0).abs() <= 1.0 / 30.0 + 1e-9,
            "{name}: {total} s"
        );
    }
}

#[test]
fn live_mpd_covers_the_window_and_the_vod_mpd_everything() {
    use brook_packager::codec::aac::AacConfig;
    use brook_packager::codec::h264::{AvcConfig, Sps};
    use brook_packager::media::{CodecConfig, Frame, TrackInfo};
    let sps = Sps {
        profile_idc: 66,
        constraint_flags: 0xC0,
        level_idc: 30,
        chroma_format_idc: 1,
        bit_depth_luma: 8,
        bit_depth_chroma: 8,
        width: 320,
        height: 240,
    };
    let tracks = vec![
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
    ];
    let mut p = Packager::new(PackagerConfig {
        window_segments: 2,
        ..PackagerConfig::default()
    });
    p.push_tracks(tracks);
    let now = UnixMillis(1_795_000_000_000);
    let mut audio = 0i64;
    for n in 0..300i64 {
        // 10 s of 30 fps video with a 1 s GOP, and the audio that goes with it.
        p.push_frame(
            Frame {
                track: 0,
                dts: n * 3000,
                pts: n * 3000,
                keyframe: n % 30 == 0,
                duration: None,
                data: Bytes::from(vec![0u8; 100]),
            },
            now,
        );
        while audio * 1024 * 90_000 / 48_000 < n * 3000 {
            p.push_frame(
                Frame {
                    track: 1,
                    dts: audio * 1024,
                    pts: audio * 1024,
                    keyframe: true,
                    duration: Some(1024),
                    data: Bytes::from(vec![0u8; 20]),
                },
                now,
            );
            audio += 1;
        }
        while p.poll().is_some() {}
    }
    let live = p.dash_manifest(now, Some("time")).unwrap();
    assert!(live.contains("type=\"dynamic\""));
    let video = p.media_playlist("video.m3u8").unwrap();
    assert_eq!(video.segments.len(), 2);
    let first = video.media_sequence;
    assert!(first >= 2, "the window moved");
    assert_eq!(
        live.matches(&format!("startNumber=\"{first}\"")).count(),
        2,
        "{live}"
    );
    p.finish();
    while p.poll().is_some() {}
    let vod = p.dash_manifest(now, None).unwrap();
    assert!(vod.contains("type=\"static\""));
    assert_eq!(vod.matches("startNumber=\"0\"").count(), 2, "{vod}");
    assert!(
        vod.contains("mediaPresentationDuration=\"PT10.000S\""),
        "{vod}"
    );
}

const LADDER: &[u8] = include_bytes!("fixtures/lavfi_ladder_h264x2_aac.ts");

fn ladder_output() -> Output {
    let config = PackagerConfig {
        max_video_tracks: 4,
        ..PackagerConfig::default()
    };
    let names = ["180p", "90p", "audio"].map(String::from).to_vec();
    package_with(LADDER, config, names)
}

/// The (track, tfdt) of every fragment in an object.
fn fragment_starts(data: &[u8]) -> Vec<u64> {
    trafs(data).into_iter().map(|t| t.1).collect()
}

/// A transcoder's ladder (one TS, a video stream per rung) becomes one rendition
/// per rung with the names the caller gave, every rung decodes, and the
/// multivariant lists them highest first with the shared audio group and an
/// audio-only variant.
#[test]
fn a_ladder_ts_becomes_one_rendition_per_rung() {
    let out = ladder_output();
    let names: Vec<String> = out.packager.media_playlists().map(|(n, _)| n).collect();
    assert_eq!(names, ["180p.m3u8", "90p.m3u8", "audio.m3u8"]);
    for (r, size) in [("180p", (320, 180)), ("90p", (160, 90))] {
        let init = &out.objects[&format!("{r}-init.mp4")].1;
        for n in 0..2 {
            let seg = &out.objects[&format!("{r}-seg{n}.m4s")].1;
            assert_eq!(ffmpeg_decode(init, seg), "", "{r}-seg{n}");
        }
        let track = out
            .packager
            .tracks()
            .into_iter()
            .find(|t| t.resolution() == Some(size));
        assert!(track.is_some(), "{r} is {size:?}");
    }
    let mv = out.packager.multivariant().unwrap();
    let uris: Vec<&str> = mv.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["180p.m3u8", "90p.m3u8", "audio.m3u8"]);
    assert!(mv.variants[0].bandwidth > mv.variants[1].bandwidth);
    assert_eq!(mv.variants[0].resolution, Some((320, 180)));
    assert_eq!(mv.variants[1].resolution, Some((160, 90)));
    for v in &mv.variants[..2] {
        assert_eq!(v.audio.as_deref(), Some("audio"));
        assert!(v.average_bandwidth.unwrap() <= v.bandwidth);
        // Every rung announces the same rate (hls.js will not switch up to a
        // variant announcing a lower one), a common one.
        assert_eq!(v.frame_rate, Some(30.0));
        assert_eq!(v.codecs.len(), 2);
    }
    assert_eq!(mv.variants[2].codecs, ["mp4a.40.2"]);
    assert_eq!(mv.renditions.len(), 1, "one audio rendition shared by all");
    // DASH: the rungs are one adaptation set.
    let mpd = out
        .packager
        .dash_manifest(UnixMillis(1_795_000_010_000), None)
        .unwrap();
    assert_eq!(mpd.matches("<AdaptationSet").count(), 2, "{mpd}");
    assert!(mpd.contains("maxWidth=\"320\" maxHeight=\"180\""), "{mpd}");
}

/// Players switch renditions at any part boundary: segment N and part N.P of
/// every rung start at the same presentation time (within one frame), and every
/// segment of every rung starts with a keyframe.
#[test]
fn ladder_rungs_are_aligned_on_every_part_and_segment() {
    let out = ladder_output();
    let playlists: Vec<_> = out.packager.media_playlists().collect();
    let video: Vec<_> = playlists
        .iter()
        .filter(|(n, _)| n != "audio.m3u8")
        .collect();
    let (_, lead) = video[0];
    let frame = 90_000 / 30;
    for (name, pl) in &video[1..] {
        assert_eq!(pl.segments.len(), lead.segments.len(), "{name}");
        for (a, b) in lead.segments.iter().zip(&pl.segments) {
            assert_eq!(a.msn, b.msn);
            assert!(
                (a.duration - b.duration).abs() < 1.0 / 30.0,
                "{name} {}",
                b.msn
            );
        }
    }
    let rung = |r: &str, obj: &str| -> Option<Vec<u64>> {
        out.objects
            .get(&format!("{r}-{obj}"))
            .map(|(_, d)| fragment_starts(d))
    };
    let mut parts_checked = 0;
    for msn in 0..2 {
        let a = rung("180p", &format!("seg{msn}.m4s")).unwrap();
        let b = rung("90p", &format!("seg{msn}.m4s")).unwrap();
        assert!(
            a[0].abs_diff(b[0]) <= frame,
            "seg{msn}: {} vs {}",
            a[0],
            b[0]
        );
        for part in 0..10 {
            let (Some(a), Some(b)) = (
                rung("180p", &format!("part{msn}.{part}.m4s")),
                rung("90p", &format!("part{msn}.{part}.m4s")),
            ) else {
                continue;
            };
            assert!(a[0].abs_diff(b[0]) <= frame, "part{msn}.{part}");
            parts_checked += 1;
        }
    }
    assert!(parts_checked >= 10, "{parts_checked} parts compared");
    for (_, pl) in &video {
        for seg in &pl.segments {
            let first = seg.parts.first().map(|p| p.independent);
            assert_ne!(first, Some(false), "segment {} starts dependent", seg.msn);
        }
    }
}

/// A caller that knows when the media really arrived (the origin, behind a
/// transcoder) anchors the dates: the first segment's date is that arrival
/// time, not the time the packager saw its first frame.
#[test]
fn an_explicit_anchor_dates_the_timeline() {
    let mut p = Packager::new(PackagerConfig::default());
    let mut front = brook_packager::frontend::TsFrontEnd::default();
    front.push(ZEROLATENCY).unwrap();
    front.flush().unwrap();
    let mut first_video_pts = None;
    let mut events = Vec::new();
    while let Some(ev) = front.poll() {
        if let brook_packager::frontend::FrontEndEvent::Frame(f) = &ev {
            if f.track == 0 && first_video_pts.is_none() {
                first_video_pts = Some(f.dts);
            }
        }
        events.push(ev);
    }
    let first = first_video_pts.unwrap() as f64 / 90_000.0;
    let arrived = UnixMillis(1_795_000_000_000);
    p.anchor_next_timeline(first, arrived);
    for ev in events {
        match ev {
            brook_packager::frontend::FrontEndEvent::Tracks(t) => p.push_tracks(t),
            // Pushed much later than it arrived.
            brook_packager::frontend::FrontEndEvent::Frame(f) => {
                p.push_frame(f, UnixMillis(1_795_000_005_000))
            }
            brook_packager::frontend::FrontEndEvent::Discontinuity
            | brook_packager::frontend::FrontEndEvent::Cue(_) => {}
        }
    }
    while p.poll().is_some() {}
    let pl = p.media_playlist("video.m3u8").unwrap();
    let pdt = pl.segments[0].tags.program_date_time.unwrap();
    assert_eq!(pdt, arrived);
}

const AAC_AND_OPUS: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_opus.ts");

/// Opus in MPEG-TS beside AAC (what the origin's transcoder writes for a
/// WebRTC source): both become renditions; HLS gets one audio group per codec
/// with the video variants repeated for each (the AAC group first), DASH an
/// adaptation set per codec; the Opus segments decode.
#[test]
fn opus_beside_aac_is_a_second_audio_group() {
    let out = package(AAC_AND_OPUS);
    check_bounds("AAC and Opus", &out);
    let names: Vec<String> = out.packager.media_playlists().map(|(n, _)| n).collect();
    assert_eq!(names, ["video.m3u8", "audio.m3u8", "audio2.m3u8"]);
    let opus = out
        .packager
        .tracks()
        .into_iter()
        .find(|t| t.codec_string() == "opus")
        .expect("an Opus track");
    assert_eq!(opus.timescale, 48_000);
    for n in 0..2 {
        let seg = &out.objects[&format!("audio2-seg{n}.m4s")].1;
        assert_eq!(ffmpeg_decode(&out.objects["audio2-init.mp4"].1, seg), "");
    }
    let mv = out.packager.multivariant().unwrap();
    let groups: Vec<(&str, &str)> = mv
        .renditions
        .iter()
        .map(|r| (r.group_id.as_str(), r.uri.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        groups,
        [("audio", "audio.m3u8"), ("audio-opus", "audio2.m3u8")]
    );
    let variants: Vec<(String, String)> = mv
        .variants
        .iter()
        .map(|v| (v.uri.clone(), v.codecs.join(",")))
        .collect();
    assert_eq!(variants[0].0, "video.m3u8");
    assert!(variants[0].1.ends_with("mp4a.40.2"), "{variants:?}");
    assert_eq!(variants[1].0, "video.m3u8");
    assert!(variants[1].1.ends_with("opus"), "{variants:?}");
    assert_eq!(variants[2], ("audio.m3u8".into(), "mp4a.40.2".into()));
    assert_eq!(variants[3], ("audio2.m3u8".into(), "opus".into()));
    let mpd = out
        .packager
        .dash_manifest(UnixMillis(1_795_000_010_000), None)
        .unwrap();
    assert_eq!(mpd.matches("contentType=\"audio\"").count(), 2, "{mpd}");
}

/// A track the caller skips (the origin's transcoder's Opus, made for WebRTC
/// viewers only) is not packaged: no rendition, no objects, one audio group;
/// the tracks after it keep their names and order.
#[test]
fn a_skipped_track_is_not_packaged() {
    let mut p = Packager::new(PackagerConfig::default());
    p.set_skipped_tracks(vec![2]);
    p.set_rendition_names(vec!["360p".into(), "audio".into()]);
    let mut objects = BTreeMap::new();
    for chunk in AAC_AND_OPUS.chunks(1316) {
        p.push_ts(chunk, UnixMillis(1_795_000_000_000)).unwrap();
        while let Some(ev) = p.poll() {
            if let Event::Object { name, data, .. } = ev {
                objects.insert(name, data);
            }
        }
    }
    p.finish();
    while let Some(ev) = p.poll() {
        if let Event::Object { name, data, .. } = ev {
            objects.insert(name, data);
        }
    }
    let codecs: Vec<String> = p.tracks().iter().map(|t| t.codec_string()).collect();
    assert_eq!(codecs.len(), 2, "{codecs:?}");
    assert_eq!(codecs[1], "mp4a.40.2");
    let names: Vec<String> = p.media_playlists().map(|(n, _)| n).collect();
    assert_eq!(names, ["360p.m3u8", "audio.m3u8"]);
    assert!(
        objects
            .keys()
            .all(|n| n.starts_with("360p-") || n.starts_with("audio-")),
        "{:?}",
        objects.keys()
    );
    assert_eq!(
        ffmpeg_decode(&objects["audio-init.mp4"], &objects["audio-seg0.m4s"]),
        ""
    );
    let mv = p.multivariant().unwrap().to_string();
    assert!(!mv.contains("opus"), "{mv}");
}

/// Every playlist rendered: `TARGETDURATION` the same from the first to the
/// last, no segment longer (once rounded, RFC 8216bis §4.4.3.1) and no part
/// longer than `PART-TARGET` (§4.4.4.9).
fn check_bounds(what: &str, out: &Output) {
    let mut targets = BTreeMap::new();
    for (name, text) in &out.all_playlists {
        let pl: brook_packager::hls::MediaPlaylist = text.parse().unwrap();
        let first = *targets.entry(name.clone()).or_insert(pl.target_duration);
        assert_eq!(
            pl.target_duration, first,
            "{what}: {name} changed TARGETDURATION:\n{text}"
        );
        let part_target = pl.part_target.unwrap();
        for seg in &pl.segments {
            assert!(
                seg.duration.round() <= f64::from(first),
                "{what}: {name}: {} lasts {}",
                seg.uri,
                seg.duration
            );
        }
        let parts = pl.segments.iter().flat_map(|s| &s.parts);
        for part in parts.chain(&pl.trailing_parts) {
            assert!(
                part.duration <= part_target,
                "{what}: {name}: {} lasts {} > PART-TARGET {part_target}",
                part.uri,
                part.duration
            );
        }
    }
    assert!(!targets.is_empty(), "{what}: no playlist");
}

/// An encoder with a keyframe every 5 s, packaged with 1 s segments and 2 s at
/// most: segments are cut without a keyframe in between and the next keyframe
/// starts a segment again. `TARGETDURATION` stays 2, each segment's first part
/// says whether it starts on a keyframe, and the segments decode in order.
#[test]
fn a_long_keyframe_interval_cuts_segments_without_keyframes_that_decode_in_order() {
    let mut config = PackagerConfig::default();
    config.segmenter.segment_target_ms = 1000;
    config.segmenter.max_segment_ms = 2000;
    let out = package_with(GOP5S, config, Vec::new());
    check_bounds("GOP 5 s", &out);
    assert!(out.playlists[0].contains("#EXT-X-TARGETDURATION:2\n"));
    // Whether each segment's first part was INDEPENDENT, from the playlists seen.
    let mut independent = BTreeMap::new();
    for text in &out.playlists {
        let pl: brook_packager::hls::MediaPlaylist = text.parse().unwrap();
        for seg in &pl.segments {
            if let Some(first) = seg.parts.first() {
                independent.insert(seg.msn, first.independent);
            }
        }
    }
    // 7 s with keyframes at 0 and 5 s: 0-2 s, 2-4 s and 4-5 s without one
    // after the first, then 5-7 s.
    assert_eq!(
        independent.into_iter().collect::<Vec<_>>(),
        vec![(0, true), (1, false), (2, false), (3, true)]
    );
    let stats = out.packager.stats();
    assert_eq!(stats.segmenter.segments_without_keyframe, 2);
    assert_eq!(stats.frames.video_frames, 210);
    let init = &out.objects["video-init.mp4"].1;
    let mut all = Vec::new();
    for msn in 0..4 {
        let seg = &out.objects[&format!("video-seg{msn}.m4s")].1;
        // A segment that starts on a keyframe decodes on its own.
        if msn == 0 || msn == 3 {
            assert_eq!(ffmpeg_decode(init, seg), "", "segment {msn}");
        }
        all.extend_from_slice(seg);
    }
    assert_eq!(ffmpeg_decode(init, &all), "", "the segments in order");
}

/// Real encoder output with MPEG-TS packets lost (as SRT loses what it could
/// not recover): damaged frames are dropped, and the frame before each gap
/// would cover it. Every part stays within `PART-TARGET`, every segment within
/// `TARGETDURATION`, in every playlist rendered.
#[test]
fn parts_stay_within_part_target_when_packets_are_lost() {
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }
    let mut shortened = 0;
    for seed in 1..=8u64 {
        let mut rng = Rng(0x5EED_0000 + seed);
        // 3 % of the packets lost, one at a time or in bursts of up to five.
        let mut lossy = Vec::with_capacity(ZEROLATENCY.len());
        let mut burst = 0;
        for packet in ZEROLATENCY.chunks(188) {
            if burst == 0 && rng.next() % 1000 < 10 {
                burst = 1 + rng.next() % 5;
            }
            if burst > 0 {
                burst -= 1;
                continue;
            }
            lossy.extend_from_slice(packet);
        }
        let out = package_with(&lossy, PackagerConfig::default(), Vec::new());
        check_bounds(&format!("seed {seed}"), &out);
        shortened += out.packager.stats().segmenter.frames_shortened;
    }
    assert!(shortened > 0, "some frame came before a gap");
}

/// The configuration records Brook writes (`avcC`, `hvcC`, the AAC
/// `AudioSpecificConfig`) read back to the same configuration, as an RTMP
/// ingest reads them from an encoder's sequence headers; cut short or with
/// the wrong version, they are errors.
#[test]
fn configuration_records_read_back() {
    use brook_packager::codec::{aac::AacConfig, h264::AvcConfig, h265::HevcConfig};
    use brook_packager::media::CodecConfig;
    let mut seen = 0;
    for ts in [AAC_44100, H265] {
        for track in package(ts).packager.tracks() {
            seen += 1;
            match &track.codec {
                CodecConfig::Avc(c) => {
                    let record = c.decoder_configuration_record();
                    let (back, len) =
                        AvcConfig::from_decoder_configuration_record(&record).unwrap();
                    assert_eq!((&back, len), (c, 4));
                    // High profiles append chroma and bit depth fields, which are
                    // optional to a reader; everything up to the PPS is not.
                    let required = 6 + 2 + c.sps_nal.len() + 1 + 2 + c.pps_nal.len();
                    for n in 0..required {
                        assert!(AvcConfig::from_decoder_configuration_record(&record[..n]).is_err());
                    }
                    let mut v2 = record.clone();
                    v2[0] = 2;
                    assert!(AvcConfig::from_decoder_configuration_record(&v2).is_err());
                }
                CodecConfig::Hevc(c) => {
                    let record = c.decoder_configuration_record();
                    let (back, len) =
                        HevcConfig::from_decoder_configuration_record(&record).unwrap();
                    assert_eq!((&back, len), (c, 4));
                    for n in 0..record.len() {
                        assert!(
                            HevcConfig::from_decoder_configuration_record(&record[..n]).is_err()
                        );
                    }
                }
                CodecConfig::Aac(c) => {
                    let asc = c.audio_specific_config();
                    assert_eq!(&AacConfig::from_audio_specific_config(&asc).unwrap(), c);
                    assert!(AacConfig::from_audio_specific_config(&asc[..1]).is_err());
                    // Explicit frequency (index 15) is refused.
                    assert!(AacConfig::from_audio_specific_config(&[0x17, 0x90]).is_err());
                }
                _ => {}
            }
        }
    }
    assert_eq!(seen, 4, "H.264 + AAC, H.265 + AAC");
}

/// Opus parts stay within their PART-TARGET across an input restart (the
/// packager fuzzer's seed with Opus found a 0.213 s part against 0.2 s).
#[test]
fn opus_parts_stay_within_part_target_across_an_input_restart() {
    let config = PackagerConfig {
        window_segments: 4,
        ..PackagerConfig::default()
    };
    let mut p = Packager::new(config);
    // Cut short (as the fuzzer's seed is) and finished: the last parts too.
    let chunks: Vec<&[u8]> = AAC_AND_OPUS[..30_000].chunks(176).collect();
    for (i, c) in chunks.iter().enumerate() {
        p.push_ts(c, UnixMillis(i as u64 * 20)).unwrap();
        if i == 3 {
            p.restart_input();
        }
        if i == chunks.len() - 1 {
            p.finish();
        }
        while p.poll().is_some() {}
        for (name, pl) in p.media_playlists() {
            let part_target = pl.part_target.unwrap();
            let parts = pl.segments.iter().flat_map(|s| &s.parts);
            for part in parts.chain(&pl.trailing_parts) {
                assert!(
                    part.duration <= part_target,
                    "{name}: {} lasts {} > {part_target}\n{pl}",
                    part.uri,
                    part.duration
                );
            }
        }
    }
}
