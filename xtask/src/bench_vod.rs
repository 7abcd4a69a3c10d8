//! `cargo xtask bench vod [RUNS]`: the on-demand pipeline's cost, whole
//! process against whole process, in one run.
//!
//! 1. Builds `brook-origin` (release) and makes (once, cached) a 60 s
//!    1080p30 H.264 + AAC source with temporal noise (so the encoders work
//!    as on camera content) and a 512 MiB file of random bytes.
//! 2. Starts the origin with VOD on the local disk, the default ladder
//!    (1080p, 720p, 480p, 360p + AAC) and libx264 `veryfast` (the default
//!    `medium` takes many minutes per run on a small machine; both sides use
//!    the same preset and CRF cap, so the comparison holds).
//! 3. RUNS times (default 3), alternating which goes first:
//!    - Brook: a direct upload URL from the API, a tus upload of the source,
//!      then from the upload's end to `ready`: probe, transcode, thumbnails,
//!      packaging (CMAF HLS + I-frames + DASH) and storing, each step's time
//!      from the asset's `timings_ms`;
//!    - one plain ffmpeg command producing the same ladder (same filter
//!      graph shape, encoder settings and forced keyframes) as fMP4 HLS.
//! 4. Upload throughput: the 512 MiB file through tus (one PATCH) over
//!    loopback, RUNS times; the uploads are then refused by the probe (not
//!    media) and cleaned up.
//!
//! Medians are printed and written to `$BROOK_CACHE/bench/vod-report.json`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::util::{have, run_cmd, Error, Result};
use crate::Ctx;

const TOKEN: &str = "bench-vod-api-token-0123456789";
const SECONDS: u32 = 60;
const PRESET: &str = "veryfast";
const CRF: u32 = 23;
const SEGMENT_S: u32 = 4;
/// The default ladder: height, kbit/s.
const LADDER: &[(u32, u32)] = &[(1080, 5000), (720, 2500), (480, 1000), (360, 600)];

pub fn run(ctx: &Ctx, runs: Option<&String>) -> Result {
    let runs: usize = match runs {
        Some(s) => s
            .parse()
            .map_err(|_| Error::msg(format!("not a number: {s}")))?,
        None => 3,
    };
    for tool in ["ffmpeg", "curl"] {
        if !have(tool) {
            return Err(Error::msg(format!(
                "{tool} missing: run `cargo xtask setup`"
            )));
        }
    }
    run_cmd(Command::new("cargo").current_dir(&ctx.root).args([
        "build",
        "--release",
        "-p",
        "brook-origin",
    ]))?;
    let dir = ctx.cache.join("bench");
    fs::create_dir_all(&dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    let source = dir.join("vod-source-1080p30-60s.ts");
    crate::bench::lavfi_source(
        &source,
        SECONDS,
        &[
            "-vf",
            "noise=alls=12:allf=t",
            "-preset",
            "veryfast",
            "-g",
            "60",
        ],
    )?;
    let random = dir.join("vod-upload-512MiB.bin");
    if !random.exists() {
        println!("bench: making {} (once)", random.display());
        run_cmd(
            Command::new("head")
                .args(["-c", "536870912", "/dev/urandom"])
                .stdout(fs::File::create(&random).map_err(|e| Error::msg(e.to_string()))?),
        )?;
    }

    let work = dir.join("vod-run");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| Error::msg(e.to_string()))?;
    let port = free_port()?;
    let config = work.join("brook.toml");
    fs::write(
        &config,
        format!(
            "[storage]\nkind = \"fs\"\ndir = \"{storage}\"\n\n[vod]\nenabled = true\n\
             data_dir = \"{data}\"\napi_token = \"{TOKEN}\"\nmax_upload_bytes = 1073741824\n\n\
             [vod.encode]\npreset = \"{PRESET}\"\ncrf = {CRF}\nsegment_ms = {seg}\n",
            storage = work.join("storage").display(),
            data = work.join("data").display(),
            seg = SEGMENT_S * 1000,
        ),
    )
    .map_err(|e| Error::msg(e.to_string()))?;
    let origin_bin = ctx.target_dir.join("release/brook-origin");
    let mut origin = Command::new(&origin_bin)
        .args(["--config"])
        .arg(&config)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .args(["--srt", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--rtmp", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--whip", &format!("127.0.0.1:{}", free_port()?)])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Error::msg(format!("starting {}: {e}", origin_bin.display())))?;
    let result = (|| -> Result<report::Report> {
        wait_healthy(port)?;
        let base = format!("http://127.0.0.1:{port}");
        let mut report = report::Report::default();
        for i in 0..runs {
            // Alternate who goes first, so neither always gets the warm page cache.
            for ours in if i % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            } {
                if ours {
                    let (took, timings) = pipeline(&base, &source)?;
                    println!(
                        "  run {}: brook pipeline {:.1} s {timings}",
                        i + 1,
                        took.as_secs_f64()
                    );
                    report.brook.push(took);
                    report.timings.push(timings);
                } else {
                    let took = plain_ffmpeg(&source, &work.join(format!("plain-{i}")))?;
                    println!(
                        "  run {}: plain ffmpeg   {:.1} s",
                        i + 1,
                        took.as_secs_f64()
                    );
                    report.plain.push(took);
                }
            }
        }
        for i in 0..runs {
            let (took, bytes) = upload_only(&base, &random)?;
            let mbps = bytes as f64 / 1e6 / took.as_secs_f64();
            println!("  upload {}: {:.0} MB/s", i + 1, mbps);
            report.upload_mbps.push(mbps);
        }
        Ok(report)
    })();
    let _ = origin.kill();
    let _ = origin.wait();
    let mut report = result?;
    let _ = fs::remove_dir_all(&work);

    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let (b, p) = (median(&mut report.brook), median(&mut report.plain));
    report.upload_mbps.sort_by(f64::total_cmp);
    let up = report.upload_mbps[report.upload_mbps.len() / 2];
    let secs = f64::from(SECONDS);
    println!(
        "\n60 s of 1080p30 into 1080p/720p/480p/360p + AAC (libx264 {PRESET}, CRF {CRF} capped), {runs} runs, medians:"
    );
    println!(
        "  brook (upload end -> ready: probe, transcode, thumbnails, package, store) {b:6.1} s  {:.2}x real time",
        secs / b
    );
    println!(
        "  plain ffmpeg, same ladder as fMP4 HLS                                    {p:6.1} s  {:.2}x real time",
        secs / p
    );
    println!("  brook / plain: {:+.1} %", (b / p - 1.0) * 100.0);
    println!(
        "  brook's steps (median run): {}",
        report.timings[report.timings.len() / 2]
    );
    println!("  tus upload over loopback (512 MiB, one PATCH): {up:.0} MB/s");
    let json = format!(
        "{{\"source_s\":{SECONDS},\"preset\":\"{PRESET}\",\"runs\":{runs},\"brook_s\":{b:.2},\"plain_s\":{p:.2},\
         \"overhead_pct\":{:.1},\"upload_mb_s\":{up:.0},\"steps_ms\":[{}]}}",
        (b / p - 1.0) * 100.0,
        report.timings.join(",")
    );
    let path = dir.join("vod-report.json");
    fs::write(&path, json).map_err(|e| Error::msg(e.to_string()))?;
    println!("report: {}", path.display());
    Ok(())
}

mod report {
    use std::time::Duration;

    #[derive(Default)]
    pub struct Report {
        pub brook: Vec<Duration>,
        pub plain: Vec<Duration>,
        /// `timings_ms` of each run's asset, as JSON text.
        pub timings: Vec<String>,
        pub upload_mbps: Vec<f64>,
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::msg(e.to_string()))?;
    Ok(l.local_addr()
        .map_err(|e| Error::msg(e.to_string()))?
        .port())
}

fn wait_healthy(port: u16) -> Result {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if curl(&["-sf", &format!("http://127.0.0.1:{port}/healthz")]).is_ok() {
            return Ok(());
        }
        sleep(Duration::from_millis(200));
    }
    Err(Error::msg("the origin did not come up"))
}

/// curl's stdout (headers too with `-i`); an error when curl fails.
fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl")
        .args(args)
        .output()
        .map_err(|e| Error::msg(format!("curl: {e}")))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of `"key":"..."` or `"key":number` in a JSON text.
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    if let Some(s) = rest.strip_prefix('"') {
        return s.split('"').next();
    }
    rest.split([',', '}']).next()
}

/// The JSON object after `"key":` (balanced braces).
fn json_object<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\":{{"))? + key.len() + 3;
    let mut depth = 0;
    for (i, c) in json[at..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&json[at..at + i + 1]);
                }
            }
            _ => {}
        }
    }
    None
}

/// A tus upload of `file` through a new direct upload URL: the asset id and
/// how long the PATCH took.
fn tus_upload(base: &str, file: &Path) -> Result<(String, Duration)> {
    let auth = format!("authorization: Bearer {TOKEN}");
    let created = curl(&[
        "-sf",
        "-X",
        "POST",
        "-H",
        &auth,
        &format!("{base}/api/v1/uploads"),
    ])?;
    let asset = json_field(&created, "asset_id")
        .ok_or_else(|| Error::msg(format!("no asset_id in {created}")))?
        .to_owned();
    let url = json_field(&created, "url")
        .ok_or_else(|| Error::msg("no url"))?
        .to_owned();
    let len = fs::metadata(file)
        .map_err(|e| Error::msg(e.to_string()))?
        .len();
    let head = curl(&[
        "-sf",
        "-i",
        "-X",
        "POST",
        "-H",
        "tus-resumable: 1.0.0",
        "-H",
        &format!("upload-length: {len}"),
        &url,
    ])?;
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .ok_or_else(|| Error::msg(format!("no Location in {head}")))?
        .trim()
        .to_owned();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let file_arg = format!("@{}", file.display());
    let start = Instant::now();
    curl(&[
        "-sf",
        "-o",
        "/dev/null",
        "-X",
        "PATCH",
        "-H",
        "tus-resumable: 1.0.0",
        "-H",
        "content-type: application/offset+octet-stream",
        "-H",
        "upload-offset: 0",
        "-H",
        "expect:",
        "--data-binary",
        &file_arg,
        &location,
    ])?;
    Ok((asset, start.elapsed()))
}

/// Upload, then from the upload's end to `ready`.
fn pipeline(base: &str, source: &Path) -> Result<(Duration, String)> {
    let (asset, _) = tus_upload(base, source)?;
    let start = Instant::now();
    let auth = format!("authorization: Bearer {TOKEN}");
    loop {
        let a = curl(&["-sf", "-H", &auth, &format!("{base}/api/v1/assets/{asset}")])?;
        match json_field(&a, "status") {
            Some("ready") => {
                let took = start.elapsed();
                let timings = json_object(&a, "timings_ms").unwrap_or("{}").to_owned();
                let _ = curl(&[
                    "-sf",
                    "-X",
                    "DELETE",
                    "-H",
                    &auth,
                    &format!("{base}/api/v1/assets/{asset}"),
                ]);
                return Ok((took, timings));
            }
            Some("errored") => return Err(Error::msg(format!("the asset failed: {a}"))),
            _ => sleep(Duration::from_millis(100)),
        }
    }
}

/// An upload only (the file is then refused by the probe and removed).
fn upload_only(base: &str, file: &Path) -> Result<(Duration, u64)> {
    let (asset, took) = tus_upload(base, file)?;
    let auth = format!("authorization: Bearer {TOKEN}");
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        let a = curl(&["-sf", "-H", &auth, &format!("{base}/api/v1/assets/{asset}")])?;
        if json_field(&a, "status") == Some("errored") {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    let _ = curl(&[
        "-sf",
        "-X",
        "DELETE",
        "-H",
        &auth,
        &format!("{base}/api/v1/assets/{asset}"),
    ]);
    Ok((
        took,
        fs::metadata(file)
            .map_err(|e| Error::msg(e.to_string()))?
            .len(),
    ))
}

/// One ffmpeg command making the same ladder, as fMP4 HLS.
fn plain_ffmpeg(source: &Path, out: &PathBuf) -> Result<Duration> {
    fs::create_dir_all(out).map_err(|e| Error::msg(e.to_string()))?;
    let n = LADDER.len();
    let mut graph = format!("[0:v]split={n}");
    for i in 0..n {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, (h, _)) in LADDER.iter().enumerate() {
        graph.push_str(&format!(";[s{i}]scale=-2:{h}[v{i}]"));
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(source)
        .args(["-filter_complex", &graph]);
    let mut map = Vec::new();
    for (i, (_, kbps)) in LADDER.iter().enumerate() {
        cmd.args(["-map", &format!("[v{i}]")]);
        cmd.args([
            &format!("-c:v:{i}"),
            "libx264",
            &format!("-preset:v:{i}"),
            PRESET,
            &format!("-crf:v:{i}"),
            &CRF.to_string(),
            &format!("-maxrate:v:{i}"),
            &format!("{kbps}k"),
            &format!("-bufsize:v:{i}"),
            &format!("{}k", kbps * 2),
        ]);
        map.push(format!("v:{i},agroup:a"));
    }
    cmd.args([
        "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
    ]);
    map.push("a:0,agroup:a".into());
    cmd.args([
        "-force_key_frames",
        &format!("expr:gte(t,n_forced*{SEGMENT_S})"),
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "hls",
        "-hls_time",
        &SEGMENT_S.to_string(),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-master_pl_name",
        "index.m3u8",
        "-var_stream_map",
        &map.join(" "),
    ])
    .arg(out.join("r%v.m3u8"));
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .map_err(|e| Error::msg(format!("ffmpeg: {e}")))?;
    let took = start.elapsed();
    if !status.success() {
        return Err(Error::msg(format!(
            "the plain ffmpeg ladder failed: {status}"
        )));
    }
    let _ = fs::remove_dir_all(out);
    Ok(took)
}
