//! Table-driven playlist tests: every case in `tests/playlists/` parses, renders
//! back to the same text, and re-parses to the same model; then every rendered
//! playlist (these cases and live output of the packager) is checked by two
//! independent parsers run from node: hls.js's M3U8Parser and `hls-parser` in
//! strict mode (`tests/validate-playlists.mjs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use brook_packager::breaks::AdMarkers;
use brook_packager::hls::{MediaPlaylist, MultivariantPlaylist};
use brook_packager::ts::inject::{Injection, SpliceInjector};
use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};

fn cases() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/playlists");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "m3u8"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 7);
    out
}

#[test]
fn cases_render_back_to_themselves_and_reparse_to_the_same_model() {
    for (name, text) in cases() {
        if name.starts_with("multivariant") {
            let pl: MultivariantPlaylist = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(pl.to_string(), text, "{name}");
            assert_eq!(
                pl.to_string().parse::<MultivariantPlaylist>().unwrap(),
                pl,
                "{name}"
            );
        } else {
            let pl: MediaPlaylist = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(pl.to_string(), text, "{name}");
            assert_eq!(
                pl.to_string().parse::<MediaPlaylist>().unwrap(),
                pl,
                "{name}"
            );
        }
    }
}

/// Playlists the packager renders while packaging real captures, and their
/// delta forms: an encoder with a 1 s GOP; one with an IDR every 5 s, packaged
/// with 1 s segments and 2 s at most (segments cut without a keyframe); and the
/// first with 3 % of its MPEG-TS packets lost (shortened frames, gap parts).
fn live_renders() -> Vec<(String, String)> {
    let zerolatency = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");
    let gop5s = include_bytes!("fixtures/lavfi_h264_aac_gop5s.ts");
    let mut short = PackagerConfig::default();
    short.segmenter.segment_target_ms = 1000;
    short.segmenter.max_segment_ms = 2000;
    let mut lossy = Vec::new();
    let mut rng = 0x5EED_0001u64;
    for packet in zerolatency.chunks(188) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng % 100 >= 3 {
            lossy.extend_from_slice(packet);
        }
    }
    // An SCTE-35 break 1 s in, 1 s long (date ranges, and the CUE-OUT style).
    let mut inj = SpliceInjector::new(Injection {
        at_ms: 1000,
        duration_ms: 1000,
        preroll_ms: 900,
        ..Injection::default()
    });
    let mut ads = inj.push(zerolatency);
    ads.extend(inj.finish());
    let cue_out = PackagerConfig {
        ad_markers: AdMarkers::CueOut,
        ..PackagerConfig::default()
    };
    let mut out = Vec::new();
    for (label, ts, config) in [
        ("live", &zerolatency[..], PackagerConfig::default()),
        ("gop5s", &gop5s[..], short),
        ("lossy", &lossy[..], PackagerConfig::default()),
        ("ads", &ads[..], PackagerConfig::default()),
        ("adscueout", &ads[..], cue_out),
    ] {
        out.extend(renders(label, ts, config));
    }
    out
}

fn renders(label: &str, ts: &[u8], config: PackagerConfig) -> Vec<(String, String)> {
    let mut p = Packager::new(PackagerConfig {
        window_segments: 3,
        ..config
    });
    let mut out = Vec::new();
    let push = |p: &Packager, out: &mut Vec<(String, String)>| {
        let n = out.len();
        for (name, media) in p.media_playlists() {
            out.push((format!("{label}_{n}_{name}"), media.to_string()));
            if let Some(delta) = media.delta(false) {
                out.push((format!("{label}_{n}_delta_{name}"), delta.to_string()));
            }
        }
        if let Some(mv) = p.multivariant() {
            out.push((format!("multivariant_{label}_{n}.m3u8"), mv.to_string()));
        }
    };
    let mut changes = 0;
    for (i, chunk) in ts.chunks(1316).enumerate() {
        p.push_ts(chunk, UnixMillis(1_795_000_000_000 + i as u64))
            .unwrap();
        while let Some(ev) = p.poll() {
            if ev == Event::PlaylistChanged {
                changes += 1;
                if changes % 3 == 0 {
                    push(&p, &mut out);
                }
            }
        }
    }
    p.finish();
    while p.poll().is_some() {}
    push(&p, &mut out);
    // What a finished presentation adds: I-frame playlists and the
    // multivariant naming them.
    for (name, pl) in p.i_frame_playlists() {
        out.push((format!("{label}_vod_{name}"), pl.to_string()));
    }
    if let Some(mv) = p.vod_multivariant() {
        out.push((format!("multivariant_{label}_vod.m3u8"), mv.to_string()));
    }
    out
}

#[test]
fn live_renders_reparse_to_the_same_model() {
    let renders = live_renders();
    assert!(renders.len() > 10);
    // The ad cases carry their markers (so the parsers below see them).
    let has = |label: &str, tag: &str| {
        renders
            .iter()
            .any(|(name, text)| name.starts_with(label) && text.contains(tag))
    };
    assert!(has("ads_", "SCTE35-OUT") && has("ads_", "SCTE35-IN"));
    assert!(has("adscueout_", "#EXT-X-CUE-OUT:DURATION=1") && has("adscueout_", "#EXT-X-CUE-IN"));
    for (name, text) in renders {
        if name.starts_with("multivariant") {
            let pl: MultivariantPlaylist = text.parse().unwrap();
            assert_eq!(pl.to_string(), text);
        } else {
            let pl: MediaPlaylist = text
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert_eq!(pl.to_string(), text, "{name}");
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn independent_parsers_accept_every_rendered_playlist() {
    let dir = std::env::temp_dir().join(format!("brook-playlists-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut all = cases();
    all.extend(live_renders());
    for (name, text) in &all {
        // Render through the model, so what is checked is what Brook writes.
        let rendered = if name.starts_with("multivariant") {
            text.parse::<MultivariantPlaylist>().unwrap().to_string()
        } else {
            text.parse::<MediaPlaylist>().unwrap().to_string()
        };
        std::fs::write(dir.join(name), rendered).unwrap();
    }
    let script = workspace_root().join("packager/tests/validate-playlists.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(&dir)
        .current_dir(workspace_root())
        .output()
        .expect("node is installed (cargo xtask setup installs the npm packages)");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{} playlists accepted", all.len())),
        "{stdout}"
    );
}

/// Players start from the multivariant playlist, and hls.js refuses a live
/// media playlist with parts but no complete segment (fatally for an audio
/// rendition): so the multivariant appears only once every rendition it names
/// has a segment, and from then on it stays.
#[test]
fn multivariant_waits_for_a_segment_in_every_rendition() {
    let ts = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");
    let mut p = Packager::new(PackagerConfig::default());
    let mut parts_before = 0;
    let mut seen = false;
    for (i, chunk) in ts.chunks(1316).enumerate() {
        p.push_ts(chunk, UnixMillis(1_795_000_000_000 + i as u64))
            .unwrap();
        while p.poll().is_some() {}
        let playlists: Vec<_> = p.media_playlists().collect();
        let ready = !playlists.is_empty() && playlists.iter().all(|(_, m)| !m.segments.is_empty());
        match p.multivariant() {
            Some(mv) => {
                assert!(ready, "multivariant before every rendition had a segment");
                // The video variant, then the audio-only one.
                assert_eq!(mv.variants.len(), 2);
                assert!(mv.variants[0].resolution.is_some());
                assert_eq!(mv.variants[1].uri, "audio.m3u8");
                assert_eq!(mv.variants[1].codecs, vec!["mp4a.40.2".to_string()]);
                seen = true;
            }
            None => {
                assert!(!seen, "the multivariant went away");
                assert!(!ready, "every rendition has a segment but no multivariant");
                parts_before = playlists
                    .iter()
                    .map(|(_, m)| m.trailing_parts.len())
                    .max()
                    .unwrap_or(0);
            }
        }
    }
    assert!(seen);
    assert!(
        parts_before > 0,
        "parts were published before the first segment"
    );
}
