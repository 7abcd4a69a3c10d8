//! The transcoder adapter against the real ffmpeg: a real encoder capture goes
//! in as frames, the ladder comes out as one MPEG-TS, and Brook's packager
//! turns it into aligned renditions that ffmpeg decodes cleanly.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use brook_origin::pipeline::ladder::{self, LadderConfig, Rung};
use brook_origin::pipeline::transcoder::{Event, Settings, Transcoder};
use brook_packager::frontend::{FrontEndEvent, TsFrontEnd};
use brook_packager::media::{Frame, TrackInfo};
use brook_packager::{Event as PackagerEvent, Packager, PackagerConfig, UnixMillis};

const SOURCE: &[u8] = include_bytes!("../../packager/tests/fixtures/lavfi_h264_aac_zerolatency.ts");
const WITH_OPUS: &[u8] = include_bytes!("../../packager/tests/fixtures/lavfi_h264_aac_opus.ts");

fn source() -> (Vec<TrackInfo>, Vec<Frame>) {
    source_from(SOURCE)
}

fn source_from(ts: &[u8]) -> (Vec<TrackInfo>, Vec<Frame>) {
    let mut front = TsFrontEnd::default();
    front.push(ts).unwrap();
    front.flush().unwrap();
    let (mut tracks, mut frames) = (Vec::new(), Vec::new());
    while let Some(ev) = front.poll() {
        match ev {
            FrontEndEvent::Tracks(t) => tracks = t,
            FrontEndEvent::Frame(f) => frames.push(f),
            FrontEndEvent::Discontinuity => panic!("no jump in the fixture"),
            FrontEndEvent::Cue(_) => {}
        }
    }
    (tracks, frames)
}

fn settings() -> Settings {
    Settings {
        ffmpeg: "ffmpeg".into(),
        keyframe_interval_ms: 1000,
        threads: 1,
        queue_frames: 1000,
        filter_threads: 2,
        vaapi_device: String::new(),
    }
}

/// Runs the whole source through a transcoder; returns its output TS.
fn transcode(plan: &ladder::Plan, tracks: Vec<TrackInfo>, frames: &[Frame]) -> Vec<u8> {
    let (tx, rx) = mpsc::channel();
    let mut t = Transcoder::spawn(plan, tracks, &settings(), "test".into(), move |e| {
        let _ = tx.send(e);
    })
    .expect("ffmpeg starts (cargo xtask setup installs it)");
    for f in frames {
        t.push(f).expect("the queue holds the whole fixture");
    }
    t.end_input();
    let mut out = Vec::new();
    loop {
        match rx
            .recv_timeout(Duration::from_secs(30))
            .expect("ffmpeg finishes")
        {
            Event::Output(b) => out.extend_from_slice(&b),
            Event::Exited { status, stderr } => {
                assert!(
                    status.is_some_and(|s| s.success()),
                    "ffmpeg: {status:?}\n{}",
                    stderr.join("\n")
                );
                break;
            }
        }
    }
    out
}

fn package(ts: &[u8], names: Vec<String>) -> (Packager, BTreeMap<String, bytes::Bytes>) {
    package_skipping(ts, names, Vec::new())
}

fn package_skipping(
    ts: &[u8],
    names: Vec<String>,
    skipped: Vec<usize>,
) -> (Packager, BTreeMap<String, bytes::Bytes>) {
    let mut config = PackagerConfig {
        max_video_tracks: 8,
        ..PackagerConfig::default()
    };
    config.segmenter.segment_target_ms = 1000;
    let mut p = Packager::new(config);
    p.set_rendition_names(names);
    p.set_skipped_tracks(skipped);
    let mut objects = BTreeMap::new();
    for chunk in ts.chunks(1316) {
        p.push_ts(chunk, UnixMillis(1_795_000_000_000)).unwrap();
        while let Some(ev) = p.poll() {
            if let PackagerEvent::Object { name, data, .. } = ev {
                objects.insert(name, data);
            }
        }
    }
    p.finish();
    while let Some(ev) = p.poll() {
        if let PackagerEvent::Object { name, data, .. } = ev {
            objects.insert(name, data);
        }
    }
    (p, objects)
}

/// The `tfdt` of the first fragment of a segment.
fn trafs_first_tfdt(seg: &[u8]) -> u64 {
    let at = seg.windows(4).position(|w| w == b"tfdt").unwrap();
    let version = seg[at + 4];
    let body = &seg[at + 8..];
    if version == 1 {
        u64::from_be_bytes(body[..8].try_into().unwrap())
    } else {
        u64::from(u32::from_be_bytes(body[..4].try_into().unwrap()))
    }
}

fn ffprobe_keyframes_and_size(init: &[u8], media: &[u8]) -> (String, usize, String) {
    let dir = std::env::temp_dir().join(format!("brook-transcoder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{n}.mp4"));
    std::fs::write(&path, [init, media].concat()).unwrap();
    let decode = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height:packet=flags", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout).to_string();
    let size = text
        .lines()
        .find(|l| l.contains(',') && l.split(',').all(|f| f.parse::<u32>().is_ok()))
        .unwrap_or("")
        .to_string();
    let keyframes = text.lines().filter(|l| l.starts_with('K')).count();
    (
        size,
        keyframes,
        String::from_utf8_lossy(&decode.stderr).to_string(),
    )
}

#[test]
fn the_ladder_comes_out_aligned_decodable_and_at_the_planned_sizes() {
    let (tracks, frames) = source();
    let config = LadderConfig {
        rungs: vec![
            Rung::new(240, 300),
            Rung::new(180, 200),
            Rung::new(120, 100),
        ],
        ..LadderConfig::default()
    };
    let plan = ladder::plan(&config, &tracks, Some(30.0), None, &Default::default()).unwrap();
    assert_eq!(plan.rendition_names(), ["240p", "180p", "120p", "audio"]);
    let ts = transcode(&plan, tracks, &frames);
    if let Ok(path) = std::env::var("BROOK_DUMP_TS") {
        std::fs::write(path, &ts).unwrap();
    }
    let (p, objects) = package(&ts, plan.rendition_names());

    let names: Vec<String> = p.media_playlists().map(|(n, _)| n).collect();
    assert_eq!(names, ["240p.m3u8", "180p.m3u8", "120p.m3u8", "audio.m3u8"]);
    // The input's timestamps came through unchanged (-copyts, the input's
    // time base): the first output frame is the first input frame.
    let first_video = frames.iter().find(|f| f.track == 0).unwrap();
    let first_out = trafs_first_tfdt(&objects["240p-seg0.m4s"]);
    assert_eq!(first_out, first_video.dts as u64);
    assert_eq!(
        p.media_playlist("240p.m3u8").unwrap().segments.len(),
        3,
        "3 s at 1 s keyframes"
    );
    for (rung, size) in [
        ("240p", "320,240"),
        ("180p", "240,180"),
        ("120p", "160,120"),
    ] {
        let init = &objects[&format!("{rung}-init.mp4")];
        for msn in 0..3 {
            let seg = &objects[&format!("{rung}-seg{msn}.m4s")];
            let (got, keyframes, errors) = ffprobe_keyframes_and_size(init, seg);
            assert_eq!(errors, "", "{rung}-seg{msn} decodes cleanly");
            assert_eq!(got, size, "{rung}-seg{msn}");
            assert_eq!(keyframes, 1, "{rung}-seg{msn}: one keyframe, at its start");
        }
    }
    // Every rung's segments line up with the first's, within a frame.
    let lead = p.media_playlist("240p.m3u8").unwrap();
    for rung in ["180p.m3u8", "120p.m3u8"] {
        let pl = p.media_playlist(rung).unwrap();
        for (a, b) in lead.segments.iter().zip(&pl.segments) {
            assert!(
                (a.duration - b.duration).abs() < 1.0 / 30.0,
                "{rung} {}",
                a.msn
            );
        }
    }
    let mv = p.multivariant().unwrap();
    assert_eq!(mv.variants.len(), 4, "three rungs and audio only");
}

/// A source with Opus (as WHIP's): the ladder's audio is AAC, and the Opus
/// goes through as it is, a rendition of its own that decodes.
#[test]
fn an_opus_source_gets_aac_and_its_opus_kept() {
    let (tracks, frames) = source_from(WITH_OPUS);
    let config = LadderConfig {
        rungs: vec![Rung::new(240, 300)],
        ..LadderConfig::default()
    };
    let plan = ladder::plan(&config, &tracks, Some(30.0), None, &Default::default()).unwrap();
    assert_eq!(plan.rendition_names(), ["240p", "audio", "opus"]);
    let ts = transcode(&plan, tracks, &frames);
    let (p, objects) = package(&ts, plan.rendition_names());
    let codecs: Vec<String> = p.tracks().iter().map(|t| t.codec_string()).collect();
    assert_eq!(codecs.len(), 3, "{codecs:?}");
    assert_eq!(codecs[1], "mp4a.40.2");
    assert_eq!(codecs[2], "opus");
    let (_, _, errors) =
        ffprobe_keyframes_and_size(&objects["opus-init.mp4"], &objects["opus-seg0.m4s"]);
    assert_eq!(errors, "", "the kept Opus decodes");
    let mv = p.multivariant().unwrap().to_string();
    assert!(mv.contains("GROUP-ID=\"audio-opus\""), "{mv}");
}

/// An AAC source with WebRTC viewers possible: the transcoder also makes
/// Opus (which decodes; skipped by the packager: not a rendition), on the
/// source's clock: the first Opus frame is where the source's audio starts
/// (within the codec's pre-skip and one frame), and the Opus covers the
/// source's audio.
#[test]
fn an_aac_source_gets_opus_made_on_its_clock() {
    let (tracks, frames) = source();
    let config = LadderConfig {
        rungs: vec![Rung::new(240, 300)],
        ..LadderConfig::default()
    };
    let mut plan = ladder::plan(&config, &tracks, Some(30.0), None, &Default::default()).unwrap();
    assert_eq!(plan.make_opus, None, "only when the pipeline asks");
    plan.make_opus = Some(96);
    assert_eq!(plan.rendition_names(), ["240p", "audio"]);
    assert_eq!(plan.webrtc_only_outputs(), [2]);
    let aac = tracks
        .iter()
        .position(|t| matches!(t.codec, brook_packager::media::CodecConfig::Aac(_)))
        .unwrap();
    let seconds = |f: &Frame, t: &TrackInfo| f.dts as f64 / f64::from(t.timescale);
    let source_audio: Vec<f64> = frames
        .iter()
        .filter(|f| f.track == aac)
        .map(|f| seconds(f, &tracks[aac]))
        .collect();
    let ts = transcode(&plan, tracks.clone(), &frames);

    let (out_tracks, out_frames) = source_from(&ts);
    let opus = out_tracks
        .iter()
        .position(|t| matches!(t.codec, brook_packager::media::CodecConfig::Opus(_)))
        .expect("an Opus track in the output");
    let opus_times: Vec<f64> = out_frames
        .iter()
        .filter(|f| f.track == opus)
        .map(|f| seconds(f, &out_tracks[opus]))
        .collect();
    let (first_in, last_in) = (source_audio[0], *source_audio.last().unwrap());
    let (first_out, last_out) = (opus_times[0], *opus_times.last().unwrap());
    assert!(
        (first_out - first_in).abs() <= 0.030,
        "Opus starts at {first_out:.4} s, the source's AAC at {first_in:.4} s"
    );
    assert!(
        (last_out - last_in).abs() <= 0.060,
        "Opus ends at {last_out:.4} s, the source's AAC at {last_in:.4} s"
    );

    // Packaged with it skipped, as the pipeline does: the AAC alone.
    let (p, objects) = package_skipping(&ts, plan.rendition_names(), plan.webrtc_only_outputs());
    let codecs: Vec<String> = p.tracks().iter().map(|t| t.codec_string()).collect();
    assert_eq!(codecs.len(), 2, "{codecs:?}");
    assert_eq!(codecs[1], "mp4a.40.2");
    assert!(!objects.keys().any(|n| n.starts_with("opus")));
    // Packaged as a rendition (for this check only), the made Opus decodes.
    let mut names = plan.rendition_names();
    names.push(ladder::OPUS.into());
    let (_, objects) = package(&ts, names);
    let (_, _, errors) =
        ffprobe_keyframes_and_size(&objects["opus-init.mp4"], &objects["opus-seg0.m4s"]);
    assert_eq!(errors, "", "the made Opus decodes");
}
