//! `cargo xtask bench whep [RUNS]`: what WebRTC fan-out costs the origin.
//!
//! 1. Builds `brook-origin` and its `whep_viewers` example (release).
//! 2. Makes (once, cached) a 20 s 1280x720 30 fps H.264 (2.5 Mbit/s, a
//!    keyframe a second) + AAC MPEG-TS and publishes it in a loop with ffmpeg
//!    (`-c copy`, no encoding) over SRT to a passthrough stream (no
//!    transcoder: the cost measured is ingest, packaging and fan-out).
//! 3. For N = 0, 10, 50, 100 (RUNS rounds, default 3, the Ns in turn within
//!    each): `whep_viewers` connects N real WebRTC peers (str0m: ICE, DTLS,
//!    SRTP) over WHEP; after every one is connected and a 5 s warm-up, the
//!    origin's CPU time (utime + stime from `/proc/<pid>/stat`) is read over
//!    10 s while the client checks that every viewer keeps receiving frames.
//!    The viewers leave with `DELETE` (as the player does on `pagehide`) and
//!    the next measurement starts 3 s later.
//! 4. Prints the median cores per N, the cost per viewer ((median(N) −
//!    median(0)) / N) and viewers per core; writes
//!    `$BROOK_CACHE/bench/whep-report.json`.
//!
//! Everything runs on 127.0.0.1 on this machine, client included (its CPU is
//! reported beside the origin's, not in it).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::bench::{clock_ticks, cpu_ticks, file, free_port, json_number, wait_http, write, Procs};
use crate::util::{have, run_cmd, Error, Result};
use crate::Ctx;

const KEY: &str = "bench-key-0123";
const VIEWERS: [usize; 4] = [0, 10, 50, 100];
const WARMUP_SECONDS: u64 = 5;
const MEASURE_SECONDS: u64 = 10;
const SETTLE_SECONDS: u64 = 3;

pub fn run(ctx: &Ctx, runs: Option<&String>) -> Result {
    let runs: usize = match runs {
        Some(s) => s
            .parse()
            .map_err(|_| Error::msg(format!("not a number: {s}")))?,
        None => 3,
    };
    if !have("ffmpeg") {
        return Err(Error::msg("ffmpeg missing: run `cargo xtask setup`"));
    }
    run_cmd(Command::new("cargo").current_dir(&ctx.root).args([
        "build",
        "--release",
        "-p",
        "brook-origin",
        "--bin",
        "brook-origin",
        "--example",
        "whep_viewers",
    ]))?;
    let release = ctx.target_dir.join("release");
    let dir = ctx.cache.join("bench");
    fs::create_dir_all(&dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    let input = make_input(&dir)?;

    let http = free_port()?;
    let srt = free_port()?;
    let udp = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::msg(format!("no free UDP port: {e}")))?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = dir.join("whep-origin.toml");
    write(
        &config,
        &format!(
            "[http]\nlisten = \"127.0.0.1:{http}\"\nthreads = {threads}\nshutdown_grace_seconds = 1\n\
             [srt]\nlisten = \"127.0.0.1:{srt}\"\n[whip]\nlisten = \"127.0.0.1:{udp}\"\n\
             [publish]\nreconnect_grace_ms = 0\n[ladder]\nmode = \"passthrough\"\n\
             [streams.cam1]\nkey = \"{KEY}\"\n"
        ),
    )?;
    let mut procs = Procs::default();
    let origin = procs.spawn(
        Command::new(release.join("brook-origin"))
            .args(["--config".as_ref(), config.as_os_str()])
            .env("RUST_LOG", "warn")
            .stderr(file(&dir.join("whep-origin.log"))?),
    )?;
    wait_http(http, "/healthz", Duration::from_secs(10))?;
    let _publisher = procs.spawn(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(&input)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!(
                "srt://127.0.0.1:{srt}?mode=caller&latency=120000&pkt_size=1316&streamid=publish:live/cam1:{KEY}"
            ))
            .stdin(Stdio::null()),
    )?;
    wait_http(http, "/live/cam1/index.m3u8", Duration::from_secs(20))?;
    sleep(Duration::from_secs(3));
    println!(
        "bench: 1280x720 30 fps H.264 2.5 Mbit/s over SRT (passthrough); {runs} rounds of N = {VIEWERS:?}, \
         {WARMUP_SECONDS} s warm-up + {MEASURE_SECONDS} s each"
    );
    let url = format!("http://127.0.0.1:{http}/whep/cam1");
    let viewers = release.join("examples/whep_viewers");
    let mut cores: Vec<Vec<f64>> = vec![Vec::new(); VIEWERS.len()];
    let mut client_cores: Vec<Vec<f64>> = vec![Vec::new(); VIEWERS.len()];
    for round in 1..=runs {
        for (i, &n) in VIEWERS.iter().enumerate() {
            let m = measure(&mut procs, origin, &viewers, &url, n)?;
            println!(
                "bench: round {round}, {n:>3} viewers: origin {:.3} cores, client {:.3} cores{}",
                m.origin_cores,
                m.client_cores,
                m.received
                    .as_deref()
                    .map(|r| format!(", per viewer {r}"))
                    .unwrap_or_default()
            );
            cores[i].push(m.origin_cores);
            client_cores[i].push(m.client_cores);
        }
    }
    let medians: Vec<f64> = cores.iter().map(|c| median(c)).collect();
    println!("\nviewers | origin cores (median of {runs}) | cores per viewer | viewers per core");
    let mut rows = Vec::new();
    for (i, &n) in VIEWERS.iter().enumerate() {
        let extra = medians[i] - medians[0];
        let (per, per_core) = if n == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.5}", extra / n as f64),
                if extra > 0.0 {
                    format!("{:.0}", n as f64 / extra)
                } else {
                    "n/a".into()
                },
            )
        };
        println!(
            "{n:>7} | {:.3} (runs {:?}) | {per} | {per_core}",
            medians[i],
            cores[i]
                .iter()
                .map(|c| (c * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>()
        );
        rows.push(format!(
            "{{\"viewers\":{n},\"origin_cores\":{:?},\"origin_cores_median\":{:.4},\"client_cores_median\":{:.4}}}",
            cores[i],
            medians[i],
            median(&client_cores[i])
        ));
    }
    let report = dir.join("whep-report.json");
    fs::write(&report, format!("[{}]\n", rows.join(",")))
        .map_err(|e| Error::msg(format!("{}: {e}", report.display())))?;
    println!("report: {}", report.display());
    Ok(())
}

struct Measured {
    origin_cores: f64,
    client_cores: f64,
    /// The client's summary of frames received per viewer.
    received: Option<String>,
}

/// The origin's CPU over the window with `n` viewers attached.
fn measure(
    procs: &mut Procs,
    origin: u32,
    viewers: &Path,
    url: &str,
    n: usize,
) -> Result<Measured> {
    let hz = clock_ticks();
    // The previous client's viewers have left (DELETE); let the origin settle.
    sleep(Duration::from_secs(SETTLE_SECONDS));
    if n == 0 {
        let (cpu0, t0) = (cpu_ticks(origin)?, Instant::now());
        sleep(Duration::from_secs(MEASURE_SECONDS));
        let cpu1 = cpu_ticks(origin)?;
        return Ok(Measured {
            origin_cores: (cpu1 - cpu0) as f64 / hz / t0.elapsed().as_secs_f64(),
            client_cores: 0.0,
            received: None,
        });
    }
    let pid = procs.spawn_piped(Command::new(viewers).args([
        url.to_string(),
        n.to_string(),
        WARMUP_SECONDS.to_string(),
        MEASURE_SECONDS.to_string(),
    ]))?;
    let mut child = procs
        .take(pid)
        .ok_or_else(|| Error::msg("the client is gone"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::msg("no client stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut window = None;
    let mut summary = None;
    for line in lines.by_ref() {
        let line = line.map_err(|e| Error::msg(e.to_string()))?;
        if line == "measuring" {
            window = Some((cpu_ticks(origin)?, cpu_ticks(pid)?, Instant::now()));
        } else if line.starts_with('{') {
            let (Some((o0, c0, t0)), o1, c1) = (window, cpu_ticks(origin)?, cpu_ticks(pid)?) else {
                break;
            };
            let secs = t0.elapsed().as_secs_f64();
            summary = Some((
                line,
                (o1 - o0) as f64 / hz / secs,
                (c1 - c0) as f64 / hz / secs,
            ));
            break;
        }
    }
    let status = child.wait().map_err(|e| Error::msg(e.to_string()))?;
    let Some((json, origin_cores, client_cores)) = summary else {
        return Err(Error::msg(format!(
            "the WHEP client ended without a result ({status})"
        )));
    };
    let connected = json_number(&json, "connected").unwrap_or(0.0) as usize;
    let frames_min = json_number(&json, "frames_min").unwrap_or(0.0);
    if connected != n || frames_min <= 0.0 {
        return Err(Error::msg(format!("not every viewer was served: {json}")));
    }
    let fps = |k: &str| json_number(&json, k).unwrap_or(0.0) / MEASURE_SECONDS as f64;
    let kbps =
        |k: &str| json_number(&json, k).unwrap_or(0.0) * 8.0 / 1000.0 / MEASURE_SECONDS as f64;
    Ok(Measured {
        origin_cores,
        client_cores,
        received: Some(format!(
            "min {:.1} fps {:.0} kbit/s, median {:.1} fps {:.0} kbit/s",
            fps("frames_min"),
            kbps("bytes_min"),
            fps("frames_median"),
            kbps("bytes_median")
        )),
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// 20 s of 720p30 H.264 at 2.5 Mbit/s (a keyframe a second) and AAC, once.
fn make_input(dir: &Path) -> Result<PathBuf> {
    let input = dir.join("input-1280x720-2500k.ts");
    if input.exists() {
        return Ok(input);
    }
    println!("bench: encoding the 720p test stream (once)");
    let tmp = dir.join("input-720p.tmp.ts");
    run_cmd(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(crate::util::test_pattern_args("1280x720", "2500k", "128k"))
            .args(["-t", "20", "-maxrate", "2500k", "-bufsize", "2500k"])
            .arg(&tmp),
    )?;
    fs::rename(&tmp, &input).map_err(|e| Error::msg(e.to_string()))?;
    Ok(input)
}
