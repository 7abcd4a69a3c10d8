//! The pipeline with a real transcoder, driven through the same interface the
//! ingest adapters use (`Admission` → `Publish`), fed real encoder output at
//! its own pace: what a transcoded stream serves when its source changes size,
//! and what the origin does with a transcoder that cannot keep up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_origin::config::Config;
use brook_origin::ingest::{Admission, Claim, Protocol, Publish};
use brook_origin::metrics::Metrics;
use brook_origin::pipeline::ladder::{LadderConfig, Rung};
use brook_origin::pipeline::Pipelines;
use brook_origin::serve::hub::{Hub, Snapshot};

const RESOLUTION_CHANGE: &[u8] =
    include_bytes!("../../packager/tests/fixtures/lavfi_h264_aac_resolution_change.ts");

/// `seconds` of a small test pattern and tone as an encoder sends it.
fn source_ts(seconds: u32) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=30")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
        ])
        .arg(seconds.to_string())
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", "-",
        ])
        .output()
        .expect("ffmpeg (cargo xtask setup installs it)");
    assert!(out.status.success());
    out.stdout
}

fn rung(height: u32, kbps: u32) -> Rung {
    Rung {
        preset: Some("ultrafast".into()),
        ..Rung::new(height, kbps)
    }
}

fn setup(ladder: LadderConfig) -> (Pipelines, Arc<Hub>, Arc<Metrics>) {
    let mut config = Config {
        ladder,
        ..Config::default()
    };
    config.packager.segment_target_ms = 1000;
    let hub = Arc::new(Hub::default());
    let metrics = Arc::new(Metrics::default());
    let pipelines = Pipelines::new(
        hub.clone(),
        Arc::new(config),
        metrics.clone(),
        None,
        tokio::runtime::Handle::current(),
    );
    (pipelines, hub, metrics)
}

fn open(p: &Pipelines) -> Box<dyn Publish> {
    p.open(&Claim {
        stream: "cam1",
        key: Some("dev-key"),
        peer: "127.0.0.1:5000".parse::<SocketAddr>().unwrap(),
        protocol: Protocol::Srt,
    })
    .unwrap()
}

/// Sends `ts` as a live encoder would: 7 TS packets at a time, paced so that
/// the whole file takes `seconds`.
async fn publish(session: &mut Box<dyn Publish>, ts: &[u8], seconds: f64) {
    let chunks: Vec<&[u8]> = ts.chunks(1316).collect();
    let start = Instant::now();
    for (i, c) in chunks.iter().enumerate() {
        let due = start + Duration::from_secs_f64(seconds * i as f64 / chunks.len() as f64);
        tokio::time::sleep_until(due.into()).await;
        session.ts(c, brook_origin::unix_now()).unwrap();
    }
}

fn snapshot(hub: &Hub) -> Arc<Snapshot> {
    hub.stream("cam1").unwrap().snapshot()
}

fn text(bytes: &bytes::Bytes) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A source that changes size mid-stream (320x240, then 480x270) keeps its
/// renditions: each rung at most as tall as the source, a new init segment
/// where the size changed, after a discontinuity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_changing_size_keeps_a_valid_ladder() {
    let (p, hub, metrics) = setup(LadderConfig {
        rungs: vec![rung(240, 300), rung(120, 100)],
        ..LadderConfig::default()
    });
    let mut session = open(&p);
    publish(&mut session, RESOLUTION_CHANGE, 4.0).await;
    let s = hub.stream("cam1").unwrap();
    wait_until("the second init segment", Duration::from_secs(15), || {
        s.object("240p-init1.mp4").is_some()
    })
    .await;
    let snap = snapshot(&hub);
    let names: Vec<&String> = snap.playlists.keys().collect();
    assert_eq!(names, ["120p.m3u8", "240p.m3u8", "audio.m3u8"]);
    let pl = text(&snap.playlist("240p.m3u8").unwrap().text.identity);
    assert!(pl.contains("#EXT-X-DISCONTINUITY"), "{pl}");
    assert!(pl.contains("#EXT-X-MAP:URI=\"240p-init1.mp4\""), "{pl}");
    let mv = text(&snap.multivariant.as_ref().unwrap().identity);
    assert_eq!(mv.matches("#EXT-X-STREAM-INF").count(), 3, "{mv}");
    assert!(metrics.transcoder_restarts.get("source_change") >= 1);
    session.close("done");
}

/// A transcoder that falls behind (here: an ffmpeg whose output a wrapper
/// lets through at 40 kB/s) loses its most expensive rung, then the next, and the
/// renditions left keep going; it is counted and never buffered without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcoder_that_cannot_keep_up_drops_its_most_expensive_rung() {
    let dir = std::env::temp_dir().join(format!("brook-slow-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrapper = dir.join("ffmpeg");
    // Its output reaches the origin at 40 kB/s, below what the three rungs
    // make: it falls further behind every second.
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nffmpeg \"$@\" | python3 -c '\n\
import sys, time\n\
while True:\n    \
b = sys.stdin.buffer.read1(4096)\n    \
if not b: break\n    \
sys.stdout.buffer.write(b); sys.stdout.buffer.flush(); time.sleep(len(b) / 40000)\n'\n",
    )
    .unwrap();
    let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&wrapper, exec).unwrap();
    let (p, hub, metrics) = setup(LadderConfig {
        rungs: vec![rung(240, 300), rung(180, 200), rung(120, 100)],
        ffmpeg: wrapper,
        max_lag_ms: 1000,
        ..LadderConfig::default()
    });
    let mut session = open(&p);
    // 12 s of one continuous source: past the 5 s start-up grace, then further
    // and further behind against a 1 s limit.
    publish(&mut session, &source_ts(12), 12.0).await;
    let dropped = metrics
        .transcoder_rungs_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped >= 1, "a rung was dropped");
    assert!(metrics.transcoder_restarts.get("slow") >= 1);
    let snap = snapshot(&hub);
    assert!(
        snap.playlist("240p.m3u8").is_none(),
        "the most expensive rung left the playlists: {:?}",
        snap.playlists.keys().collect::<Vec<_>>()
    );
    assert!(
        snap.playlist("120p.m3u8").is_some(),
        "the cheapest rung stays"
    );
    session.close("done");
}
