//! `cargo xtask bench origin [VIEWERS] [SECONDS] [--pin]`: the origin under
//! LL-HLS load, and its part-serving rate against nginx on the same files, in
//! one run. With `--pin` the server under test (the origin with one thread,
//! then nginx with one worker) runs on CPU 0 alone (`taskset`) and everything
//! else (the publisher, the load client) on the other CPUs, so the figures
//! are the server's, not what is left of a machine it shares with its load.
//!
//! `cargo xtask bench package [RUNS]`: packaging a file, whole process against
//! whole process: `brook package` (release) and `ffmpeg -c copy -f hls
//! -hls_segment_type fmp4` on the same 60 s 1080p30 MPEG-TS (the file the
//! packager's in-process criterion bench uses), RUNS times each (default 5),
//! alternating; min and median wall time of each, from process start to exit.
//!
//! `cargo xtask bench ladder [SECONDS]`: the live ladder's cost: a 1080p30
//! source (made once, cached: test pattern with temporal noise, so the encoders
//! work as on camera content) through the full default ladder and through each
//! rung alone, with Brook's transcoder adapter (`origin/examples/ladder.rs`):
//! speed, cores, RSS, and the delay it adds. Report in
//! `$BROOK_CACHE/bench/ladder-report.json`.
//!
//! 1. Builds `brook-origin` and its `viewers` example (release).
//! 2. Makes (once, cached) a 20 s 640x360 H.264 + AAC MPEG-TS at ~1 Mbit/s and
//!    publishes it in a loop with ffmpeg (`-c copy`, no encoding) over SRT.
//! 3. `viewers follow`: VIEWERS (default 5000) simulated LL-HLS viewers, each on
//!    the blocking-reload chain and fetching every part, measured for SECONDS
//!    (default 30) after a warm-up. Meanwhile the origin's CPU time and RSS are
//!    read from /proc.
//! 4. The publisher stops (the stream ends; its parts stay in memory); the parts
//!    of the last playlist are copied to a directory that nginx (Debian's
//!    `nginx-light`, started with a generated config, as many workers as the
//!    origin has threads) serves at the same paths. `viewers fetch` then requests
//!    them from Brook and from nginx, alternately, twice each, same connection
//!    count: Brook's parts/s over nginx's.
//!
//! Everything listens on 127.0.0.1 and stops by itself. Results are printed and
//! written to `$BROOK_CACHE/bench/origin-report.json`.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::util::{have, run_cmd, test_pattern_args, Error, Result};
use crate::Ctx;

const KEY: &str = "bench-key-0123";
const FETCH_CONNECTIONS: usize = 256;
const FETCH_SECONDS: u64 = 8;
const WARMUP_SECONDS: u64 = 12;

pub fn run(ctx: &Ctx, args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("origin") => {}
        Some("ladder") => return ladder(ctx, args.get(1)),
        Some("package") => return package(ctx, args.get(1)),
        Some("vod") => return crate::bench_vod::run(ctx, args.get(1)),
        Some("whep") => return crate::bench_whep::run(ctx, args.get(1)),
        _ => {
            return Err(Error::msg(
                "usage: cargo xtask bench origin [VIEWERS] [SECONDS] [--pin] | ladder [SECONDS] | package [RUNS] | vod [RUNS] | whep [RUNS]",
            ))
        }
    }
    let pin = args.iter().any(|a| a == "--pin");
    let args: Vec<String> = args.iter().filter(|a| *a != "--pin").cloned().collect();
    let number = |i: usize, default: u64| -> Result<u64> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| Error::msg(format!("not a number: {s}")))
        })
    };
    let viewers = number(1, 5000)?;
    let seconds = number(2, 30)?;
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    if pin && (cpus < 2 || !have("taskset")) {
        return Err(Error::msg(
            "--pin needs 2 or more CPUs and taskset (util-linux)",
        ));
    }
    // The server under test on CPU 0, the rest on the others (or anywhere).
    let server_cpus = pin.then(|| "0".to_string());
    let load_cpus = pin.then(|| format!("1-{}", cpus - 1));
    let on = |cpus: &Option<String>, program: &Path| -> Command {
        match cpus {
            Some(list) => {
                let mut c = Command::new("taskset");
                c.args(["-c", list]).arg(program);
                c
            }
            None => Command::new(program),
        }
    };
    for tool in ["ffmpeg", "nginx"] {
        if !have(tool) && !Path::new("/usr/sbin/nginx").exists() {
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
        "--bin",
        "brook-origin",
        "--example",
        "viewers",
    ]))?;
    let release = ctx.target_dir.join("release");
    let dir = ctx.cache.join("bench");
    fs::create_dir_all(&dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    let input = make_input(&dir)?;

    let http = free_port()?;
    let srt = free_port()?;
    let threads = if pin { 1 } else { cpus };
    let config = dir.join("origin.toml");
    write(
        &config,
        &format!(
            "[http]\nlisten = \"127.0.0.1:{http}\"\nthreads = {threads}\nshutdown_grace_seconds = 1\n\
             [srt]\nlisten = \"127.0.0.1:{srt}\"\n[publish]\nreconnect_grace_ms = 0\n\
             [ladder]\nmode = \"passthrough\"\n\
             [streams.cam1]\nkey = \"{KEY}\"\n"
        ),
    )?;
    let mut procs = Procs::default();
    let origin_log = dir.join("origin.log");
    let origin = procs.spawn(
        on(&server_cpus, &release.join("brook-origin"))
            .args(["--config".as_ref(), config.as_os_str()])
            .env("RUST_LOG", "warn")
            .stderr(file(&origin_log)?),
    )?;
    // taskset execs the program: the pid is the origin's either way.
    let origin_pid = origin;
    wait_http(http, "/healthz", Duration::from_secs(10))?;
    let publisher = procs.spawn(
        on(&load_cpus, Path::new("ffmpeg"))
            .args(["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(&input)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!(
                "srt://127.0.0.1:{srt}?mode=caller&latency=120000&pkt_size=1316&streamid=publish:live/cam1:{KEY}"
            ))
            .stdin(Stdio::null()),
    )?;
    wait_http(http, "/live/cam1/index.m3u8", Duration::from_secs(20))?;
    println!("bench: origin up, stream published; {viewers} viewers for {WARMUP_SECONDS} s warm-up + {seconds} s");

    let client = procs.spawn_piped(on(&load_cpus, &release.join("examples/viewers")).args([
        "follow".to_string(),
        format!("http://127.0.0.1:{http}/live/cam1/index.m3u8"),
        viewers.to_string(),
        seconds.to_string(),
        WARMUP_SECONDS.to_string(),
    ]))?;
    sleep(Duration::from_secs(WARMUP_SECONDS));
    let cpu0 = cpu_ticks(origin_pid)?;
    let t0 = Instant::now();
    let mut rss_max_kb = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        sleep(Duration::from_millis(500));
        rss_max_kb = rss_max_kb.max(status_kb(origin_pid, "VmRSS:").unwrap_or(0));
    }
    let cpu1 = cpu_ticks(origin_pid)?;
    let cpu_secs = (cpu1 - cpu0) as f64 / clock_ticks();
    let cpu_percent = 100.0 * cpu_secs / t0.elapsed().as_secs_f64();
    let follow = procs.wait_output(client)?;
    println!("bench: viewers: {}", follow.trim());
    let metrics = http_get(http, "/metrics").unwrap_or_default();
    let blocked_peak_hint = metrics
        .lines()
        .find(|l| l.starts_with("brook_part_publish_to_first_byte_seconds_count"))
        .unwrap_or("")
        .to_string();
    procs.kill(publisher);
    sleep(Duration::from_millis(1500));

    // The parts of the last playlist, served by Brook from memory and by nginx
    // from the same bytes on disk, under the same paths.
    let mv = http_get(http, "/live/cam1/index.m3u8")?;
    let media_rel = mv
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| Error::msg("no variant in the multivariant playlist"))?;
    let media_path = format!("/live/cam1/{media_rel}");
    let playlist = http_get(http, &media_path)?;
    let base = media_path[..media_path.rfind('/').map_or(0, |i| i + 1)].to_string();
    let www = dir.join("www");
    let _ = fs::remove_dir_all(&www);
    let mut paths = Vec::new();
    for line in playlist.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        let Some(uri) = line
            .split("URI=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        else {
            continue;
        };
        let path = format!("{base}{uri}");
        let body = http_get_bytes(http, &path)?;
        let file = www.join(path.trim_start_matches('/'));
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::msg(e.to_string()))?;
        }
        fs::write(&file, body).map_err(|e| Error::msg(e.to_string()))?;
        paths.push(path);
    }
    if paths.is_empty() {
        return Err(Error::msg(format!(
            "no parts in the last playlist:\n{playlist}"
        )));
    }
    let nginx_port = free_port()?;
    let nginx_conf = dir.join("nginx.conf");
    // As root, nginx's workers would drop to `nobody`, who cannot read the cache.
    let user = if crate::sys::is_root() {
        "user root;\n"
    } else {
        ""
    };
    write(
        &nginx_conf,
        &format!(
            "{user}worker_processes {threads};\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n\
             keepalive_requests 1000000;\n  keepalive_timeout 60s;\n\
             client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n\
             uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  open_file_cache max=1000;\n\
             server {{\n    listen 127.0.0.1:{nginx_port};\n    root {www};\n\
             location / {{ default_type video/mp4; }}\n  }}\n}}\n",
            d = dir.display(),
            www = www.display(),
        ),
    )?;
    fs::create_dir_all(dir.join("tmp")).map_err(|e| Error::msg(e.to_string()))?;
    let nginx_bin = if have("nginx") {
        "nginx".into()
    } else {
        "/usr/sbin/nginx".to_string()
    };
    let nginx = procs.spawn(
        on(&server_cpus, Path::new(&nginx_bin))
            .args([
                "-p".as_ref(),
                dir.as_os_str(),
                "-c".as_ref(),
                nginx_conf.as_os_str(),
            ])
            .args(["-g", "daemon off;"]),
    )?;
    wait_http(nginx_port, &paths[0], Duration::from_secs(10))?;
    let list = |port: u16, name: &str| -> Result<PathBuf> {
        let f = dir.join(name);
        let text: String = paths
            .iter()
            .map(|p| format!("http://127.0.0.1:{port}{p}\n"))
            .collect();
        write(&f, &text)?;
        Ok(f)
    };
    let brook_urls = list(http, "brook-urls.txt")?;
    let nginx_urls = list(nginx_port, "nginx-urls.txt")?;
    let mut rounds = Vec::new();
    for round in 0..2 {
        for (name, urls) in [("brook", &brook_urls), ("nginx", &nginx_urls)] {
            let c = procs.spawn_piped(
                on(&load_cpus, &release.join("examples/viewers"))
                    .arg("fetch")
                    .arg(urls)
                    .args([FETCH_CONNECTIONS.to_string(), FETCH_SECONDS.to_string()]),
            )?;
            let out = procs.wait_output(c)?;
            println!("bench: fetch round {} {name}: {}", round + 1, out.trim());
            rounds.push((
                name,
                json_number(&out, "requests_per_second").unwrap_or(0.0),
                out,
            ));
        }
    }
    procs.kill(nginx);
    procs.term(origin);
    let sum = |who: &str| {
        rounds
            .iter()
            .filter(|r| r.0 == who)
            .map(|r| r.1)
            .sum::<f64>()
    };
    let ratio = sum("brook") / sum("nginx").max(1.0);

    let report = format!(
        "{{\"viewers\":{viewers},\"pinned\":{pin},\"follow\":{},\"origin_cpu_percent\":{cpu_percent:.1},\
         \"origin_cpu_cores\":{threads},\"origin_rss_max_mb\":{:.1},\"origin_peak_rss_mb\":{:.1},\
         \"part_files\":{},\"fetch_connections\":{FETCH_CONNECTIONS},\"fetch_seconds\":{FETCH_SECONDS},\
         \"brook_parts_per_second\":{:.0},\"nginx_parts_per_second\":{:.0},\"brook_over_nginx\":{ratio:.3}}}",
        follow.trim(),
        rss_max_kb as f64 / 1024.0,
        status_kb(origin_pid, "VmHWM:").unwrap_or(rss_max_kb) as f64 / 1024.0,
        paths.len(),
        sum("brook") / 2.0,
        sum("nginx") / 2.0,
    );
    write(&dir.join("origin-report.json"), &report)?;
    println!("\nbench: viewers: {}", follow.trim());
    println!(
        "bench: origin CPU {cpu_percent:.0}% of one core ({threads} threads) over {seconds} s; \
         RSS max {:.0} MB",
        rss_max_kb as f64 / 1024.0
    );
    println!("bench: {blocked_peak_hint}");
    println!(
        "bench: parts/s Brook {:.0} vs nginx {:.0} ({} part files, {FETCH_CONNECTIONS} connections): \
         Brook / nginx = {ratio:.2}",
        sum("brook") / 2.0,
        sum("nginx") / 2.0,
        paths.len()
    );
    println!(
        "bench: report in {}",
        dir.join("origin-report.json").display()
    );
    Ok(())
}

/// A 20 s loopable test stream, made once.
fn make_input(dir: &Path) -> Result<PathBuf> {
    let input = dir.join("input-640x360-1mbps.ts");
    if input.exists() {
        return Ok(input);
    }
    println!("bench: encoding the test stream (once)");
    let tmp = dir.join("input.tmp.ts");
    run_cmd(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(test_pattern_args("640x360", "900k", "96k"))
            .args(["-t", "20", "-maxrate", "900k", "-bufsize", "900k"])
            .arg(&tmp),
    )?;
    fs::rename(&tmp, &input).map_err(|e| Error::msg(e.to_string()))?;
    Ok(input)
}

pub(crate) fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::msg(format!("no free port: {e}")))
}

pub(crate) fn write(path: &Path, text: &str) -> Result {
    fs::write(path, text).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}

pub(crate) fn file(path: &Path) -> Result<fs::File> {
    fs::File::create(path).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}

/// A GET over a fresh connection; the body when the status is 200.
pub(crate) fn http_get_bytes(port: u16, path: &str) -> Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| Error::msg(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| Error::msg(e.to_string()))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| Error::msg(e.to_string()))?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::msg(format!("GET {path}: no response")))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(Error::msg(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(buf[split + 4..].to_vec())
}

pub(crate) fn http_get(port: u16, path: &str) -> Result<String> {
    http_get_bytes(port, path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(crate) fn wait_http(port: u16, path: &str, timeout: Duration) -> Result {
    let end = Instant::now() + timeout;
    loop {
        match http_get_bytes(port, path) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > end => return Err(e),
            Err(_) => sleep(Duration::from_millis(200)),
        }
    }
}

pub(crate) fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat =
        fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| Error::msg(e.to_string()))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Ok(n(11) + n(12))
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Children of the bench, all stopped when it ends (also on error).
#[derive(Default)]
pub(crate) struct Procs(Vec<Child>);

impl Procs {
    pub(crate) fn spawn(&mut self, cmd: &mut Command) -> Result<u32> {
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| Error::msg(format!("starting {cmd:?}: {e}")))?;
        let pid = child.id();
        self.0.push(child);
        Ok(pid)
    }

    pub(crate) fn spawn_piped(&mut self, cmd: &mut Command) -> Result<u32> {
        let child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::msg(format!("starting {cmd:?}: {e}")))?;
        let pid = child.id();
        self.0.push(child);
        Ok(pid)
    }

    pub(crate) fn take(&mut self, pid: u32) -> Option<Child> {
        let i = self.0.iter().position(|c| c.id() == pid)?;
        Some(self.0.swap_remove(i))
    }

    fn wait_output(&mut self, pid: u32) -> Result<String> {
        let child = self.take(pid).ok_or_else(|| Error::msg("no such child"))?;
        let out = child
            .wait_with_output()
            .map_err(|e| Error::msg(e.to_string()))?;
        if !out.status.success() {
            return Err(Error::msg(format!("load client failed: {}", out.status)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn kill(&mut self, pid: u32) {
        if let Some(mut c) = self.take(pid) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (graceful), then SIGKILL after 10 s.
    pub(crate) fn term(&mut self, pid: u32) {
        if let Some(mut c) = self.take(pid) {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `bench ladder`: see the module docs.
fn ladder(ctx: &Ctx, seconds: Option<&String>) -> Result {
    let seconds: u64 = match seconds {
        Some(s) => s
            .parse()
            .map_err(|_| Error::msg(format!("not a number: {s}")))?,
        None => 30,
    };
    if !have("ffmpeg") {
        return Err(Error::msg("ffmpeg missing: run `cargo xtask setup`"));
    }
    run_cmd(Command::new("cargo").current_dir(&ctx.root).args([
        "build",
        "--release",
        "-p",
        "brook-origin",
        "--example",
        "ladder",
    ]))?;
    let dir = ctx.cache.join("bench");
    fs::create_dir_all(&dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    let source = dir.join("ladder-source-1080p30.ts");
    // Temporal noise: the encoders work as on camera content.
    lavfi_source(
        &source,
        40,
        &[
            "-vf",
            "noise=alls=12:allf=t",
            "-preset",
            "veryfast",
            "-g",
            "60",
        ],
    )?;
    let example = ctx.target_dir.join("release/examples/ladder");
    let out = Command::new(example)
        .arg(&source)
        .arg(seconds.to_string())
        .output()
        .map_err(|e| Error::msg(format!("running the ladder bench: {e}")))?;
    print!("{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::msg(format!("the ladder bench failed:\n{text}")));
    }
    let mut lines: Vec<&str> = text.lines().collect();
    let json = lines.pop().unwrap_or("[]");
    for l in lines {
        println!("{l}");
    }
    let report = dir.join("ladder-report.json");
    fs::write(&report, json).map_err(|e| Error::msg(format!("{}: {e}", report.display())))?;
    println!("report: {}", report.display());
    Ok(())
}

/// `bench package`: see the module docs.
fn package(ctx: &Ctx, runs: Option<&String>) -> Result {
    let runs: usize = match runs {
        Some(s) => s
            .parse()
            .map_err(|_| Error::msg(format!("not a number: {s}")))?,
        None => 5,
    };
    if !have("ffmpeg") {
        return Err(Error::msg("ffmpeg missing: run `cargo xtask setup`"));
    }
    run_cmd(Command::new("cargo").current_dir(&ctx.root).args([
        "build",
        "--release",
        "-p",
        "brook-cli",
        "--bin",
        "brook",
    ]))?;
    let dir = ctx.cache.join("bench");
    fs::create_dir_all(&dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    // The same file (and the same recipe) as packager/benches/package.rs.
    let input = dir.join("lavfi_1080p30_60s_h264_aac.ts");
    lavfi_source(&input, 60, &["-preset", "ultrafast", "-g", "30"])?;
    let brook = ctx.target_dir.join("release/brook");
    let out = dir.join("package-out");
    let timed = |cmd: &mut Command| -> Result<Duration> {
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).map_err(|e| Error::msg(e.to_string()))?;
        let start = Instant::now();
        let status = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::msg(e.to_string()))?;
        let took = start.elapsed();
        if !status.success() {
            return Err(Error::msg(format!("{cmd:?} failed")));
        }
        Ok(took)
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let mut b = Command::new(&brook);
        b.arg("package").arg(&input).arg(&out);
        let mut f = Command::new("ffmpeg");
        f.args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(&input)
            .args(["-c", "copy", "-bsf:a", "aac_adtstoasc", "-f", "hls"])
            .args(["-hls_segment_type", "fmp4", "-hls_time", "2"])
            .args(["-hls_playlist_type", "vod"])
            .arg(out.join("ffmpeg.m3u8"));
        // Alternate who goes first, so neither always gets the warm page cache.
        if i % 2 == 0 {
            ours.push(timed(&mut b)?);
            theirs.push(timed(&mut f)?);
        } else {
            theirs.push(timed(&mut f)?);
            ours.push(timed(&mut b)?);
        }
    }
    let _ = fs::remove_dir_all(&out);
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        (v[0], v[v.len() / 2])
    };
    let (b_min, b_med) = stats(&mut ours);
    let (f_min, f_med) = stats(&mut theirs);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "60 s of 1080p30 H.264 + AAC MPEG-TS ({} MB), whole process, {runs} runs each:",
        fs::metadata(&input).map_or(0, |m| m.len() / 1_000_000)
    );
    println!(
        "  brook package (CMAF + HLS + DASH)      min {:6.1} ms  median {:6.1} ms",
        ms(b_min),
        ms(b_med)
    );
    println!(
        "  ffmpeg -c copy -f hls (fMP4, HLS only) min {:6.1} ms  median {:6.1} ms",
        ms(f_min),
        ms(f_med)
    );
    println!(
        "  ffmpeg / brook (medians): {:.2}x",
        ms(f_med) / ms(b_med).max(0.001)
    );
    Ok(())
}

/// Makes `path` once (kept in the cache): `seconds` of a 1080p30 test pattern
/// (H.264 at 6 Mbit/s, with `extra` encoder or filter arguments) and a tone
/// (AAC 128 kbit/s), as MPEG-TS.
pub(crate) fn lavfi_source(path: &Path, seconds: u32, extra: &[&str]) -> Result {
    if path.exists() {
        return Ok(());
    }
    println!("bench: making {} (once)", path.display());
    let tmp = path.with_extension("tmp.ts");
    run_cmd(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", &seconds.to_string(), "-c:v", "libx264"])
            .args(extra)
            .args([
                "-b:v", "6000k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
            ])
            .args(["-f", "mpegts"])
            .arg(&tmp),
    )?;
    fs::rename(&tmp, path).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}
