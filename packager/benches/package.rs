//! Packaging throughput against ffmpeg doing the same job, in the same run:
//! 60 s of 1080p30 H.264 + AAC in MPEG-TS → CMAF LL-HLS.
//!
//! ```text
//! cargo bench -p brook-packager --bench package
//! ```
//!
//! ffmpeg's side is `ffmpeg -i in.ts -c copy -bsf:a aac_adtstoasc -f hls
//! -hls_segment_type fmp4 -hls_time 2` (ffmpeg 5.1 needs the bitstream filter for
//! ADTS audio in MP4; it writes files, while Brook's side keeps objects in memory,
//! as the origin does; both write every object once). The input is made once with ffmpeg's lavfi sources and cached in
//! `$BROOK_CACHE/bench` (default `~/.cache/brook/bench`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use brook_packager::cmaf::cenc::{ContentKey, Encryption, Scheme};
use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};

fn input() -> Vec<u8> {
    let cache = std::env::var_os("BROOK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/brook"))
        .join("bench");
    std::fs::create_dir_all(&cache).unwrap();
    let path = cache.join("lavfi_1080p30_60s_h264_aac.ts");
    if !path.exists() {
        eprintln!("making {} (once)...", path.display());
        let tmp = path.with_extension("tmp.ts");
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-t",
                "60",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "30",
            ])
            .args([
                "-pix_fmt", "yuv420p", "-b:v", "6000k", "-c:a", "aac", "-b:a", "128k",
            ])
            .args(["-f", "mpegts"])
            .arg(&tmp)
            .status()
            .expect("ffmpeg");
        assert!(status.success());
        std::fs::rename(&tmp, &path).unwrap();
    }
    std::fs::read(&path).unwrap()
}

fn brook(ts: &[u8]) -> (Duration, usize) {
    brook_with(ts, None)
}

fn brook_with(ts: &[u8], encryption: Option<Encryption>) -> (Duration, usize) {
    let start = Instant::now();
    let mut p = Packager::new(PackagerConfig {
        encryption,
        ..PackagerConfig::default()
    });
    let mut bytes_out = 0;
    for (i, chunk) in ts.chunks(1316).enumerate() {
        p.push_ts(chunk, UnixMillis(i as u64)).unwrap();
        while let Some(ev) = p.poll() {
            match ev {
                Event::Object { data, .. } => bytes_out += data.len(),
                Event::PlaylistChanged => {
                    for (_, pl) in p.media_playlists() {
                        bytes_out += pl.to_string().len();
                    }
                }
                Event::Chunk { .. } | Event::Evicted { .. } => {}
            }
        }
    }
    p.finish();
    while p.poll().is_some() {}
    (start.elapsed(), bytes_out)
}

fn ffmpeg(path: &std::path::Path) -> Duration {
    let out = std::env::temp_dir().join(format!("brook-bench-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let start = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(path)
        .args(["-c", "copy", "-bsf:a", "aac_adtstoasc", "-f", "hls"])
        .args(["-hls_segment_type", "fmp4", "-hls_time", "2"])
        .arg(out.join("index.m3u8"))
        .status()
        .expect("ffmpeg");
    let took = start.elapsed();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&out);
    took
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; only measure when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let ts = input();
    let mb = ts.len() as f64 / 1e6;
    let path = std::env::var_os("BROOK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/brook"))
        .join("bench/lavfi_1080p30_60s_h264_aac.ts");
    let runs = 5;
    let mut brook_best = Duration::MAX;
    let mut ffmpeg_best = Duration::MAX;
    let mut out_bytes = 0;
    for _ in 0..runs {
        let (t, b) = brook(&ts);
        brook_best = brook_best.min(t);
        out_bytes = b;
        ffmpeg_best = ffmpeg_best.min(ffmpeg(&path));
    }
    let b = brook_best.as_secs_f64();
    let f = ffmpeg_best.as_secs_f64();
    println!("input: {mb:.1} MB, 60 s of 1080p30 H.264 + AAC (best of {runs} runs each)");
    println!(
        "brook-packager: {:>8.1} ms  {:>7.1} MB/s  {:>6.0}x realtime  ({:.1} MB of CMAF + playlists)",
        b * 1e3,
        mb / b,
        60.0 / b,
        out_bytes as f64 / 1e6
    );
    println!(
        "ffmpeg -c copy -f hls (fmp4): {:>8.1} ms  {:>7.1} MB/s  {:>6.0}x realtime",
        f * 1e3,
        mb / f,
        60.0 / f
    );
    println!("ratio: brook is {:.1}x ffmpeg's throughput", f / b);

    // The cost of Common Encryption: the same input clear, cbcs and cenc,
    // interleaved, median of the runs.
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let enc = |scheme| Encryption {
        scheme,
        keys: vec![ContentKey {
            kid: [1; 16],
            key: [2; 16],
            iv: [3; 16],
        }],
        ..Encryption::default()
    };
    let (mut clear, mut cbcs, mut cenc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        clear.push(brook_with(&ts, None).0.as_secs_f64());
        cbcs.push(brook_with(&ts, Some(enc(Scheme::Cbcs))).0.as_secs_f64());
        cenc.push(brook_with(&ts, Some(enc(Scheme::Cenc))).0.as_secs_f64());
    }
    let c = median(clear);
    for (name, t) in [("clear", c), ("cbcs", median(cbcs)), ("cenc", median(cenc))] {
        println!(
            "brook-packager {name:>5}: {:>8.1} ms  {:>7.1} MB/s  (+{:.0} % of clear, median of {runs})",
            t * 1e3,
            mb / t,
            (t / c - 1.0) * 100.0
        );
    }
}
