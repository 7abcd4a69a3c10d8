//! Load client for `cargo xtask bench origin`: simulated LL-HLS viewers, and a
//! plain request-rate mode for comparing servers on the same files.
//!
//! ```text
//! viewers follow URL VIEWERS SECONDS WARMUP   LL-HLS viewers on one stream
//! viewers fetch  URLS_FILE CONNS SECONDS      GET the URLs round robin, keep-alive
//! ```
//!
//! A viewer does what hls.js does at the live edge: with the preload-hinted part
//! `video-partM.P.m4s`, it sends the blocking reload `video.m3u8?_HLS_msn=M&_HLS_part=P
//! &_HLS_skip=YES` on one connection and the hinted part on another, both held by
//! the origin until the part exists; the playlist's next hint gives the next pair.
//! Every part is fetched. It follows the first variant and, when the
//! multivariant playlist has one, the audio rendition (`EXT-X-MEDIA:TYPE=AUDIO`)
//! the same way, on two more connections, as hls.js does.
//!
//! Latency is measured against the part's completion: the origin's
//! `brook-part-published-us` header (same machine, same clock). A viewer that
//! keeps up receives the hinted part streamed while it is being made, before
//! that time is known, so such responses carry no header; a probe fetches
//! each part again once it is complete to learn it. Per fetch: first byte −
//! completion (negative when the part was streamed as it was made) and last
//! byte − completion; per part, the figure is its last viewer's. Results are
//! one JSON line on stdout.
//!
//! A minimal HTTP/1.1 client over tokio (content-length and chunked bodies), so
//! the client costs little of the CPU the origin is measured on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Response {
    status: u16,
    published_us: Option<u64>,
    first_byte_us: u64,
    last_byte_us: u64,
    body: Vec<u8>,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

struct Conn {
    addr: String,
    host: String,
    io: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_string(),
            host: addr.to_string(),
            io: None,
        }
    }

    async fn get(&mut self, path: &str) -> std::io::Result<Response> {
        for attempt in 0..2 {
            if self.io.is_none() {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                self.io = Some(BufReader::with_capacity(64 * 1024, s));
            }
            match self.try_get(path).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.io = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        unreachable!()
    }

    async fn try_get(&mut self, path: &str) -> std::io::Result<Response> {
        let io = self.io.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: brook-viewers\r\n\r\n",
            self.host
        );
        io.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let first_byte_us = unix_us();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let (mut len, mut chunked, mut published_us, mut close) = (None, false, None, false);
        loop {
            line.clear();
            if io.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "brook-part-published-us" => published_us = v.parse().ok(),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                io.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| std::io::ErrorKind::InvalidData)?;
                let start = body.len();
                body.resize(start + size, 0);
                io.read_exact(&mut body[start..]).await?;
                line.clear();
                io.read_line(&mut line).await?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            io.read_exact(&mut body).await?;
        }
        if close {
            self.io = None;
        }
        Ok(Response {
            status,
            published_us,
            first_byte_us,
            last_byte_us: unix_us(),
            body,
        })
    }
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    part_requests: AtomicU64,
    bytes: AtomicU64,
    errors_http: AtomicU64,
    errors_io: AtomicU64,
    viewers_running: AtomicU64,
    /// Every part fetched while measuring.
    fetches: Mutex<Vec<Fetch>>,
    /// Completion time of each part (Unix µs), from any response that had it.
    published: Mutex<HashMap<PartKey, u64>>,
    /// Parts only seen streamed (no completion time yet): path, first seen.
    unresolved: Mutex<HashMap<PartKey, (String, Instant)>>,
}

/// (track: 0 video, 1 audio; media sequence number, part index).
type PartKey = (u8, u64, u64);

struct Fetch {
    part: PartKey,
    first_byte_us: u64,
    last_byte_us: u64,
}

impl Stats {
    fn record(&self, part: PartKey, path: &str, r: &Response) {
        if let Some(p) = r.published_us {
            if let Ok(mut m) = self.published.lock() {
                m.entry(part).or_insert(p);
            }
        } else if let Ok(mut u) = self.unresolved.lock() {
            u.entry(part)
                .or_insert_with(|| (path.to_owned(), Instant::now()));
        }
        if let Ok(mut f) = self.fetches.lock() {
            f.push(Fetch {
                part,
                first_byte_us: r.first_byte_us,
                last_byte_us: r.last_byte_us,
            });
        }
    }
}

/// Learns the completion time of parts that were only seen streamed: fetches
/// each again once it is surely complete (it stays servable for the playlist
/// window, seconds), so every fetch can be measured against it.
async fn probe(addr: String, stats: Arc<Stats>, until: Instant) {
    let mut conn = Conn::new(&addr);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let due: Vec<(PartKey, String)> = match stats.unresolved.lock() {
            Ok(mut u) => {
                let keys: Vec<PartKey> = u
                    .iter()
                    .filter(|(_, (_, seen))| seen.elapsed() > Duration::from_millis(600))
                    .map(|(k, _)| *k)
                    .collect();
                keys.into_iter()
                    .filter_map(|k| u.remove(&k).map(|(path, _)| (k, path)))
                    .collect()
            }
            Err(_) => return,
        };
        for (key, path) in due {
            let known = stats
                .published
                .lock()
                .map(|m| m.contains_key(&key))
                .unwrap_or(true);
            if known {
                continue;
            }
            if let Ok(r) = conn.get(&path).await {
                if let (200, Some(p)) = (r.status, r.published_us) {
                    if let Ok(mut m) = stats.published.lock() {
                        m.insert(key, p);
                    }
                }
            }
        }
    }
}

/// The preload hint of a playlist: its URI and (M, P) from its
/// `<rendition>-partM.P.m4s` name.
fn hint(playlist: &[u8]) -> Option<(u64, u64, String)> {
    let text = std::str::from_utf8(playlist).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART"))?;
    let uri = line.split("URI=\"").nth(1)?.split('"').next()?;
    let name = uri.rsplit('/').next()?;
    let (m, p) = name
        .rsplit_once("part")?
        .1
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?, uri.to_owned()))
}

/// One viewer: the video playlist's chain and, with `audio_path`, the audio's.
async fn viewer(
    addr: String,
    media_path: String,
    audio_path: Option<String>,
    stats: Arc<Stats>,
    measure_from: Instant,
    until: Instant,
) {
    stats.viewers_running.fetch_add(1, Ordering::Relaxed);
    let video = track(&addr, 0, &media_path, &stats, measure_from, until);
    match &audio_path {
        Some(audio) => {
            let audio = track(&addr, 1, audio, &stats, measure_from, until);
            tokio::join!(video, audio);
        }
        None => video.await,
    }
    stats.viewers_running.fetch_sub(1, Ordering::Relaxed);
}

/// One rendition's blocking-reload chain, on its own two connections.
async fn track(
    addr: &str,
    track: u8,
    media_path: &str,
    stats: &Stats,
    measure_from: Instant,
    until: Instant,
) {
    let base = media_path[..media_path.rfind('/').map_or(0, |i| i + 1)].to_string();
    let mut pl_conn = Conn::new(addr);
    let mut part_conn = Conn::new(addr);
    let mut next = None;
    while Instant::now() < until {
        let (msn, part, uri) = match next {
            Some(h) => h,
            None => match pl_conn.get(media_path).await {
                Ok(r) if r.status == 200 => match hint(&r.body) {
                    Some(h) => h,
                    None => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
                _ => {
                    stats.errors_io.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let pl_path = format!("{media_path}?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES");
        let part_path = format!("{base}{uri}");
        let (pl, pt) = tokio::join!(pl_conn.get(&pl_path), part_conn.get(&part_path));
        let measuring = Instant::now() >= measure_from;
        if measuring {
            stats.requests.fetch_add(2, Ordering::Relaxed);
            stats.part_requests.fetch_add(1, Ordering::Relaxed);
        }
        match &pt {
            Ok(r) if r.status == 200 => {
                if measuring {
                    stats
                        .bytes
                        .fetch_add(r.body.len() as u64, Ordering::Relaxed);
                    stats.record((track, msn, part), &part_path, r);
                }
            }
            Ok(_) => {
                if measuring {
                    stats.errors_http.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                if measuring {
                    stats.errors_io.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        next = match pl {
            Ok(r) if r.status == 200 => hint(&r.body),
            Ok(_) => {
                if measuring {
                    stats.errors_http.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            Err(_) => {
                if measuring {
                    stats.errors_io.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
        };
    }
}

/// The `p` quantile of `sorted` (µs) in ms; `None` (JSON null) when empty.
fn percentile(sorted: &[i64], p: f64) -> Option<f64> {
    let i = ((sorted.len().checked_sub(1)? as f64) * p).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)] as f64 / 1000.0)
}

async fn follow(url: &str, viewers: usize, seconds: u64, warmup: u64) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("http:// URL"))?;
    let (addr, path) = rest
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("bad URL"))?;
    let addr = addr.to_string();
    // The multivariant playlist names the session's media playlist.
    let mut c = Conn::new(&addr);
    let mv = c.get(&format!("/{path}")).await?;
    let mv = String::from_utf8_lossy(&mv.body).into_owned();
    let media_rel = mv
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| anyhow::anyhow!("no variant in {mv}"))?;
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let media_path = format!("/{dir}/{media_rel}");
    // The audio rendition, if the variants have one.
    let audio_path = mv
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:") && l.contains("TYPE=AUDIO"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(|uri| format!("/{dir}/{uri}"));
    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(warmup);
    let until = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(viewers);
    for i in 0..viewers {
        // Ramp up over ~warmup/2 so the listen backlog is not flooded.
        if i % 100 == 0 && i > 0 {
            tokio::time::sleep(Duration::from_millis(
                (warmup * 500 / (viewers as u64 / 100).max(1)).min(200),
            ))
            .await;
        }
        tasks.push(tokio::spawn(viewer(
            addr.clone(),
            media_path.clone(),
            audio_path.clone(),
            stats.clone(),
            measure_from,
            until,
        )));
    }
    let ramped = start.elapsed();
    let prober = tokio::spawn(probe(
        addr.clone(),
        stats.clone(),
        until + Duration::from_secs(2),
    ));
    for t in tasks {
        let _ = t.await;
    }
    // Wait for the probe to learn the last parts' completion times.
    let _ = prober.await;
    let published = stats
        .published
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let fetches = stats
        .fetches
        .lock()
        .map(|mut f| std::mem::take(&mut *f))
        .unwrap_or_default();
    // Per part: (last viewer's first byte, last viewer's last byte, fetches),
    // µs relative to its completion.
    let mut parts: HashMap<PartKey, (i64, i64, usize)> = HashMap::new();
    let (mut first_all, mut last_all) = (Vec::new(), Vec::new());
    let mut unmeasured = 0u64;
    for f in &fetches {
        let Some(&done) = published.get(&f.part) else {
            unmeasured += 1;
            continue;
        };
        let first = f.first_byte_us as i64 - done as i64;
        let last = f.last_byte_us as i64 - done as i64;
        first_all.push(first);
        last_all.push(last);
        let e = parts.entry(f.part).or_insert((i64::MIN, i64::MIN, 0));
        e.0 = e.0.max(first);
        e.1 = e.1.max(last);
        e.2 += 1;
    }
    // Parts (nearly) every viewer fetched: the edges of the window are partial.
    let most = parts.values().map(|v| v.2).max().unwrap_or(0);
    let full: Vec<&(i64, i64, usize)> = parts
        .values()
        .filter(|v| v.2 >= viewers.min(most) * 99 / 100)
        .collect();
    let mut full_first: Vec<i64> = full.iter().map(|v| v.0).collect();
    let mut full_last: Vec<i64> = full.iter().map(|v| v.1).collect();
    for v in [
        &mut full_first,
        &mut full_last,
        &mut first_all,
        &mut last_all,
    ] {
        v.sort_unstable();
    }
    let streamed = first_all.iter().filter(|&&l| l < 0).count();
    let secs = seconds as f64;
    let out = serde_json::json!({
        "viewers": viewers,
        "tracks": if audio_path.is_some() { "video+audio" } else { "video" },
        "ramp_seconds": ramped.as_secs_f64(),
        "measured_seconds": seconds,
        "requests": stats.requests.load(Ordering::Relaxed),
        "requests_per_second": stats.requests.load(Ordering::Relaxed) as f64 / secs,
        "part_requests_per_second": stats.part_requests.load(Ordering::Relaxed) as f64 / secs,
        "part_megabits_per_second": stats.bytes.load(Ordering::Relaxed) as f64 * 8.0 / secs / 1e6,
        "errors_http": stats.errors_http.load(Ordering::Relaxed),
        "errors_io": stats.errors_io.load(Ordering::Relaxed),
        "parts_seen": parts.len(),
        "parts_fetched_by_all": full.len(),
        "fetches_unmeasured": unmeasured,
        "fetches_streamed_before_completion": streamed,
        "last_viewer_first_byte_ms": {
            "p50": percentile(&full_first, 0.5), "p99": percentile(&full_first, 0.99), "max": percentile(&full_first, 1.0)
        },
        "last_viewer_last_byte_ms": {
            "p50": percentile(&full_last, 0.5), "p99": percentile(&full_last, 0.99), "max": percentile(&full_last, 1.0)
        },
        "any_viewer_first_byte_ms": {
            "p50": percentile(&first_all, 0.5), "p99": percentile(&first_all, 0.99)
        },
        "any_viewer_last_byte_ms": {
            "p50": percentile(&last_all, 0.5), "p99": percentile(&last_all, 0.99)
        },
    });
    println!("{out}");
    // A client that stopped following the origin's playlists must not pass
    // for a quiet run.
    anyhow::ensure!(
        !fetches.is_empty(),
        "no viewer fetched a part: the playlists at {media_path} had no preload hint this client understands"
    );
    Ok(())
}

async fn fetch(urls_file: &str, conns: usize, seconds: u64) -> anyhow::Result<()> {
    let urls: Vec<String> = std::fs::read_to_string(urls_file)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!urls.is_empty(), "no URLs in {urls_file}");
    let split = |u: &str| -> Option<(String, String)> {
        let rest = u.strip_prefix("http://")?;
        let (a, p) = rest.split_once('/')?;
        Some((a.to_string(), format!("/{p}")))
    };
    let targets: Vec<(String, String)> = urls.iter().filter_map(|u| split(u)).collect();
    let targets = Arc::new(targets);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (targets, done, errors, bytes) =
            (targets.clone(), done.clone(), errors.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(&targets[0].0);
            let mut i = c;
            while Instant::now() < until {
                let (_, path) = &targets[i % targets.len()];
                i += 1;
                match conn.get(path).await {
                    Ok(r) if r.status == 200 => {
                        done.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(r.body.len() as u64, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let n = done.load(Ordering::Relaxed) as f64;
    println!(
        "{}",
        serde_json::json!({
            "requests_per_second": n / seconds as f64,
            "megabytes_per_second": bytes.load(Ordering::Relaxed) as f64 / seconds as f64 / 1e6,
            "errors": errors.load(Ordering::Relaxed),
            "connections": conns,
        })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, what: &str| -> anyhow::Result<u64> {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{what} missing or not a number"))
    };
    // Two threads by default: one was the bottleneck at 5,000 viewers.
    let threads = std::env::var("BROOK_BENCH_CLIENT_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("follow") => {
            let url = args.get(1).ok_or_else(|| anyhow::anyhow!("URL missing"))?;
            rt.block_on(follow(url, num(2, "VIEWERS")? as usize, num(3, "SECONDS")?, num(4, "WARMUP")?))
        }
        Some("fetch") => {
            let file = args.get(1).ok_or_else(|| anyhow::anyhow!("URLS_FILE missing"))?;
            rt.block_on(fetch(file, num(2, "CONNS")? as usize, num(3, "SECONDS")?))
        }
        _ => anyhow::bail!(
            "usage: viewers follow URL VIEWERS SECONDS WARMUP | viewers fetch URLS_FILE CONNS SECONDS"
        ),
    }
}
