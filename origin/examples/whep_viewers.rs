//! Load client for `cargo xtask bench whep`: real WebRTC viewers (str0m, the
//! browser's side: full ICE, DTLS, SRTP) of one stream over WHEP.
//!
//! ```text
//! whep_viewers URL VIEWERS WARMUP SECONDS     e.g. http://127.0.0.1:8080/whep/cam1 100 5 10
//! ```
//!
//! Each viewer binds its own UDP socket on 127.0.0.1, posts a recvonly offer
//! (audio + video) to URL, applies the answer and runs its session on one
//! current-thread runtime (so the client's own CPU stays small and apart from
//! the origin's). Once every viewer is connected and WARMUP seconds passed it
//! prints `measuring`; SECONDS later, one JSON line: how many connected, and
//! the media frames and bytes each received in the window (min and median),
//! so the bench can check that every viewer was served while it measured the
//! origin's CPU time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Default)]
struct Counters {
    connected: AtomicUsize,
    failed: AtomicUsize,
    stop: AtomicBool,
}

#[derive(Default)]
struct Received {
    frames: AtomicU64,
    bytes: AtomicU64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: whep_viewers URL VIEWERS WARMUP SECONDS";
    let (Some(url), Some(n), Some(warmup), Some(seconds)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<u64>().ok()),
        args.get(4).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Some((host, path)) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(h, p)| (h.to_owned(), format!("/{p}")))
    else {
        eprintln!("URL must be http://host:port/whep/<stream>");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(run(host, path, n, warmup, seconds));
    std::process::exit(code);
}

async fn run(host: String, path: String, n: usize, warmup: u64, seconds: u64) -> i32 {
    let counters = Arc::new(Counters::default());
    let received: Arc<Vec<Received>> = Arc::new((0..n).map(|_| Received::default()).collect());
    let mut tasks = Vec::new();
    for i in 0..n {
        let (host, path, counters, received) = (
            host.clone(),
            path.clone(),
            counters.clone(),
            received.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if let Err(e) = viewer(&host, &path, &counters, &received[i]).await {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("viewer {i}: {e}");
            }
        }));
    }
    let start = Instant::now();
    while counters.connected.load(Ordering::Relaxed) < n {
        if counters.failed.load(Ordering::Relaxed) > 0 || start.elapsed() > Duration::from_secs(30)
        {
            eprintln!(
                "only {} of {n} viewers connected",
                counters.connected.load(Ordering::Relaxed)
            );
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let before: Vec<(u64, u64)> = received
        .iter()
        .map(|r| {
            (
                r.frames.load(Ordering::Relaxed),
                r.bytes.load(Ordering::Relaxed),
            )
        })
        .collect();
    println!("measuring");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut frames: Vec<u64> = Vec::new();
    let mut bytes: Vec<u64> = Vec::new();
    for (r, (f0, b0)) in received.iter().zip(&before) {
        frames.push(r.frames.load(Ordering::Relaxed) - f0);
        bytes.push(r.bytes.load(Ordering::Relaxed) - b0);
    }
    counters.stop.store(true, Ordering::Relaxed);
    frames.sort_unstable();
    bytes.sort_unstable();
    let mid = |v: &[u64]| v.get(v.len() / 2).copied().unwrap_or(0);
    println!(
        "{{\"viewers\":{n},\"connected\":{},\"seconds\":{elapsed:.3},\"frames_min\":{},\"frames_median\":{},\"bytes_min\":{},\"bytes_median\":{}}}",
        counters.connected.load(Ordering::Relaxed),
        frames.first().copied().unwrap_or(0),
        mid(&frames),
        bytes.first().copied().unwrap_or(0),
        mid(&bytes),
    );
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    0
}

/// One viewer: offer, answer, then the session until told to stop.
async fn viewer(
    host: &str,
    path: &str,
    counters: &Counters,
    received: &Received,
) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("udp: {e}"))?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(addr, "udp").map_err(|e| e.to_string())?);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().ok_or("no offer")?;
    let (location, answer) = post(host, path, &offer.to_sdp_string()).await?;
    let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| format!("answer: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| format!("accept: {e}"))?;
    let mut buf = vec![0u8; 2048];
    let mut connected = false;
    while !counters.stop.load(Ordering::Relaxed) {
        let deadline = loop {
            match rtc.poll_output().map_err(|e| format!("rtc: {e}"))? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    socket
                        .send_to(&t.contents, t.destination)
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                }
                Output::Event(Event::Connected) if !connected => {
                    connected = true;
                    counters.connected.fetch_add(1, Ordering::Relaxed);
                }
                Output::Event(Event::MediaData(d)) => {
                    received.frames.fetch_add(1, Ordering::Relaxed);
                    received
                        .bytes
                        .fetch_add(d.data.len() as u64, Ordering::Relaxed);
                }
                Output::Event(_) => {}
            }
        };
        // Wake at least every 100 ms to see `stop`.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source): (usize, SocketAddr) = r.map_err(|e| format!("recv: {e}"))?;
                let Ok(contents) = buf[..n].try_into() else { continue };
                rtc.handle_input(Input::Receive(
                    Instant::now(),
                    Receive { proto: Protocol::Udp, source, destination: addr, contents },
                ))
                .map_err(|e| format!("rtc input: {e}"))?;
            }
            _ = tokio::time::sleep(wait) => {
                rtc.handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| format!("rtc timeout: {e}"))?;
            }
        }
    }
    // Leave as a browser does on `pagehide`, so the next measurement does
    // not pay for sessions that wait out their timeout.
    if let Some(location) = location {
        let _ = request(host, "DELETE", &location, "").await;
    }
    Ok(())
}

/// POSTs the offer; the session's `Location` and the answer's SDP on 201.
async fn post(host: &str, path: &str, sdp: &str) -> Result<(Option<String>, String), String> {
    let (head, body) = request(host, "POST", path, sdp).await?;
    if !head.starts_with("HTTP/1.1 201") {
        return Err(format!(
            "offer refused: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    let location = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
        })
        .map(|(_, v)| v.trim().to_owned());
    Ok((location, body))
}

/// One HTTP/1.1 request on its own connection: the response head and body.
async fn request(
    host: &str,
    method: &str,
    path: &str,
    sdp: &str,
) -> Result<(String, String), String> {
    let mut s = TcpStream::connect(host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sdp}",
        sdp.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    Ok((head.to_owned(), body.to_owned()))
}
