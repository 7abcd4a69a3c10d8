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
//!
//! Then the cost of Common Encryption: the same input packaged clear, `cbcs`
//! and `cenc` in 15 rounds (each round runs all three, the order rotating);
//! the cost is the median over rounds of each round's encrypted/clear ratio,
//! in wall time and in this thread's CPU time (which leaves out time spent
//! waiting for a CPU on a shared host).

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

    // The cost of Common Encryption: the same input clear, cbcs and cenc in
    // rounds (each round runs all three, the order rotating), so that every
    // encrypted run has a clear run next to it. On a shared host the wall
    // clock drifts by tens of percent from round to round: the cost is the
    // median over rounds of each round's ratio, in wall time and, on Linux,
    // in CPU time (this thread's CPU time: time waiting for a CPU excluded).
    let rounds = 15;
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
    let configs = [
        ("clear", None),
        ("cbcs", Some(enc(Scheme::Cbcs))),
        ("cenc", Some(enc(Scheme::Cenc))),
    ];
    // [config][round] = (wall s, cpu s)
    let mut times = vec![Vec::new(); configs.len()];
    for round in 0..rounds {
        for k in 0..configs.len() {
            let k = (k + round) % configs.len();
            let cpu = thread_cpu();
            let wall = brook_with(&ts, configs[k].1.clone()).0.as_secs_f64();
            let cpu = thread_cpu().zip(cpu).map(|(b, a)| b - a);
            times[k].push((wall, cpu));
        }
    }
    println!(
        "encryption cost: {rounds} rounds of clear, cbcs, cenc; medians; cost = median of the rounds' ratios"
    );
    for (k, (name, _)) in configs.iter().enumerate() {
        let wall = median(times[k].iter().map(|t| t.0).collect());
        let ratio = |f: fn(&(f64, Option<f64>)) -> Option<f64>| {
            let r: Option<Vec<f64>> = times[k]
                .iter()
                .zip(&times[0])
                .map(|(e, c)| Some(f(e)? / f(c)? - 1.0))
                .collect();
            r.map(|r| median(r) * 100.0)
        };
        let cpu: Option<Vec<f64>> = times[k].iter().map(|t| t.1).collect();
        let cpu = cpu.map(median);
        print!("brook-packager {name:>5}: {:>7.1} ms wall", wall * 1e3);
        if let Some(cpu) = cpu {
            print!(" {:>7.1} ms CPU", cpu * 1e3);
        }
        if k > 0 {
            print!("  cost +{:.1} % wall", ratio(|t| Some(t.0)).unwrap_or(0.0));
            if let Some(r) = ratio(|t| t.1) {
                print!(", +{r:.1} % CPU");
            }
        }
        println!("  ({:.0} MB/s wall)", mb / wall);
    }
}

/// This thread's CPU time so far, in seconds (`CLOCK_THREAD_CPUTIME_ID`, exact
/// to the nanosecond, unlike `/proc/…/schedstat`, which lags by up to a tick).
#[cfg(unix)]
fn thread_cpu() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

#[cfg(not(unix))]
fn thread_cpu() -> Option<f64> {
    None
}
