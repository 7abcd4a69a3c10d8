//! I-frame playlists of a finished presentation, checked on real encoder
//! output (fixtures made by `tests/fixtures/make.sh`): every entry's byte
//! range is one `moof`+`mdat` at the start of its segment, and ffmpeg
//! decodes exactly one frame from the rendition's init plus that range.

use std::collections::BTreeMap;
use std::process::Command;

use brook_packager::hls::{MediaPlaylist, MultivariantPlaylist};
use brook_packager::thumbnail::ThumbnailTrack;
use brook_packager::{Event, ObjectKind, Packager, PackagerConfig, UnixMillis};

const BFRAMES: &[u8] = include_bytes!("fixtures/lavfi_h264_bframes_aac.ts");
const H265: &[u8] = include_bytes!("fixtures/lavfi_h265_aac.ts");
const LADDER: &[u8] = include_bytes!("fixtures/lavfi_ladder_h264x2_aac.ts");

/// Packages `ts` as `brook package` does (every segment kept, 1 s segments
/// so a 3 s fixture with 1 s GOPs has three); returns the objects written.
fn package(ts: &[u8], all_video: bool) -> (Packager, BTreeMap<String, Vec<u8>>) {
    let mut config = PackagerConfig::default();
    config.segmenter.segment_target_ms = 1000;
    config.window_segments = usize::MAX;
    if all_video {
        config.max_video_tracks = brook_packager::frontend::ts::MAX_VIDEO_STREAMS;
    }
    let mut p = Packager::new(config);
    let mut objects = BTreeMap::new();
    let mut drain = |p: &mut Packager| {
        while let Some(ev) = p.poll() {
            if let Event::Object { name, kind, data } = ev {
                if matches!(kind, ObjectKind::Init | ObjectKind::Segment) {
                    objects.insert(name, data.to_vec());
                }
            }
        }
    };
    for chunk in ts.chunks(188 * 7) {
        p.push_ts(chunk, UnixMillis(1_795_000_000_000)).unwrap();
        drain(&mut p);
    }
    assert!(p.i_frame_playlists().is_empty(), "VOD only");
    assert!(p.vod_multivariant().is_none(), "VOD only");
    p.finish();
    drain(&mut p);
    (p, objects)
}

/// The top-level boxes of `data`: (type, size).
fn boxes(data: &[u8]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(size >= 8 && size <= rest.len(), "box size {size}");
        out.push((String::from_utf8_lossy(&rest[4..8]).into_owned(), size));
        rest = &rest[size..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    out
}

/// The frames ffmpeg decodes from `init + media` (its `framemd5` lines), and
/// asserts it printed no error.
fn decoded_frames(init: &[u8], media: &[u8]) -> usize {
    let dir = std::env::temp_dir().join(format!("brook-iframes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{n}.mp4"));
    let mut file = init.to_vec();
    file.extend_from_slice(media);
    std::fs::write(&path, file).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&path)
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg is installed by `cargo xtask setup`");
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffmpeg: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

/// Checks every I-frame playlist of a packaged fixture; returns the
/// multivariant playlist.
fn check(ts: &[u8], all_video: bool, renditions: &[&str]) -> MultivariantPlaylist {
    let (p, objects) = package(ts, all_video);
    let iframes = p.i_frame_playlists();
    let names: Vec<&str> = iframes.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<String> = renditions
        .iter()
        .map(|r| format!("{r}-iframes.m3u8"))
        .collect();
    assert_eq!(names, want);
    for ((name, pl), rendition) in iframes.iter().zip(renditions) {
        let media = p.media_playlist(&format!("{rendition}.m3u8")).unwrap();
        let text = pl.to_string();
        assert!(text.contains("\n#EXT-X-I-FRAMES-ONLY\n"), "{text}");
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        // The model reads back what it wrote.
        assert_eq!(text.parse::<MediaPlaylist>().unwrap(), *pl);
        // Every segment starts with a keyframe here: one entry each, with the
        // segment's duration (the time to the next I-frame).
        assert_eq!(pl.segments.len(), media.segments.len(), "{name}");
        assert_eq!(pl.segments.len(), 3, "{name}");
        let map = pl.map.as_ref().unwrap();
        assert_eq!(Some(map), media.map.as_ref());
        let init = &objects[&map.uri];
        for (entry, segment) in pl.segments.iter().zip(&media.segments) {
            assert_eq!(entry.uri, segment.uri);
            assert!((entry.duration - segment.duration).abs() < 1e-9);
            let range = entry.byterange.unwrap();
            assert_eq!(range.offset, Some(0));
            let data = &objects[&entry.uri];
            let len = range.length as usize;
            assert!(
                len < data.len(),
                "{}: the I-frame is not the segment",
                entry.uri
            );
            let chunk = &data[..len];
            let kinds: Vec<String> = boxes(chunk).into_iter().map(|(t, _)| t).collect();
            assert_eq!(kinds, ["moof", "mdat"], "{}", entry.uri);
            // The range ends where the next chunk starts.
            assert_eq!(&data[len + 4..len + 8], b"moof", "{}", entry.uri);
            assert_eq!(decoded_frames(init, chunk), 1, "{}", entry.uri);
        }
    }
    let mv = p.vod_multivariant().unwrap();
    // The live multivariant of the same packager has none of it.
    let live = p.multivariant().unwrap();
    assert!(live.i_frame_variants.is_empty());
    assert_eq!(live.variants, mv.variants);
    let text = mv.to_string();
    assert_eq!(text.parse::<MultivariantPlaylist>().unwrap(), mv);
    for (v, rendition) in mv.i_frame_variants.iter().zip(renditions) {
        let (_, pl) = iframes
            .iter()
            .find(|(n, _)| *n == v.uri)
            .expect("names an I-frame playlist");
        assert_eq!(v.uri, format!("{rendition}-iframes.m3u8"));
        assert_eq!(v.bandwidth(), Some(pl.peak_byterange_bitrate()));
        let variant = mv
            .variants
            .iter()
            .find(|x| x.uri == format!("{rendition}.m3u8"))
            .unwrap();
        assert_eq!(v.resolution(), variant.resolution);
        assert_eq!(
            v.attrs.get("CODECS"),
            variant.codecs.first().map(String::as_str)
        );
        assert!(v.bandwidth().unwrap() < variant.bandwidth * 4);
    }
    assert_eq!(mv.i_frame_variants.len(), renditions.len());
    mv
}

#[test]
fn h264_with_b_frames() {
    let mv = check(BFRAMES, false, &["video"]);
    let text = mv.to_string();
    assert!(
        text.contains("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=")
            && text.contains(",CODECS=\"avc1.")
            && text.contains(",RESOLUTION=320x240,URI=\"video-iframes.m3u8\"\n"),
        "{text}"
    );
}

#[test]
fn h265() {
    check(H265, false, &["video"]);
}

/// The second rung is not the lead: its keyframes get chunks of their own too.
#[test]
fn every_rung_of_a_ladder() {
    let mv = check(LADDER, true, &["video", "video2"]);
    // Highest bit rate first, as the variants.
    assert_eq!(mv.i_frame_variants[0].uri, "video-iframes.m3u8");
}

#[test]
fn thumbnails_in_the_finished_manifests_only() {
    let (mut p, _) = package(BFRAMES, false);
    let thumbs = ThumbnailTrack {
        template: "thumbs/sheet-$Number$.jpg".into(),
        tile_width: 160,
        tile_height: 120,
        columns: 5,
        rows: 5,
        tile_duration: 1.0,
        duration: 3.0,
        max_sheet_bytes: 30_000,
    };
    p.set_thumbnails(Some(thumbs));
    let mv = p.vod_multivariant().unwrap().to_string();
    assert!(
        mv.contains("#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=9600,RESOLUTION=160x120,CODECS=\"jpeg\",URI=\"thumbnails.m3u8\"\n"),
        "{mv}"
    );
    assert!(!p.multivariant().unwrap().to_string().contains("IMAGE"));
    let (name, pl) = p.thumbnail_playlist().unwrap();
    assert_eq!(name, "thumbnails.m3u8");
    assert_eq!(pl.segments.len(), 1);
    let mpd = p
        .dash_manifest(UnixMillis(1_795_000_010_000), None)
        .unwrap();
    assert!(
        mpd.contains("contentType=\"image\" mimeType=\"image/jpeg\""),
        "{mpd}"
    );
    assert!(mpd.contains("value=\"5x5\""), "{mpd}");
}
