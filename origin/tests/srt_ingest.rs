//! End-to-end tests of the SRT ingest against real peers: ffmpeg (built with
//! libsrt) and srt-live-transmit publishing to a listener on loopback.
//! Both tools are required; a missing one fails the test.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use brook_origin::ingest::srt::{self, SrtIngest, SrtIngestConfig};
use brook_origin::ingest::{Admission, Claim, LinkStats, Publish, Refusal, Stop};
use brook_packager::media::{Frame, TrackInfo};
use brook_packager::UnixMillis;

const TS_PACKET: usize = 188;

#[derive(Debug, Default)]
struct Record {
    resource: String,
    bytes: Vec<u8>,
    stats: Vec<LinkStats>,
    data_error: bool,
    closed: Option<String>,
}

/// Accepts `live/cam1` with key `k1`; sessions insist on 188-byte-aligned TS.
#[derive(Default)]
struct TestSink {
    authorize_calls: AtomicUsize,
    sessions: Mutex<Vec<Arc<Mutex<Record>>>>,
}

impl TestSink {
    fn records(&self) -> Vec<Arc<Mutex<Record>>> {
        self.sessions.lock().unwrap().clone()
    }
}

impl Admission for TestSink {
    fn admit(&self, claim: &Claim<'_>) -> Result<(), Refusal> {
        self.authorize_calls.fetch_add(1, Ordering::SeqCst);
        match (claim.stream, claim.key) {
            ("cam1", Some("k1")) => Ok(()),
            _ => Err(Refusal::Denied(format!("{} / wrong key", claim.stream))),
        }
    }

    fn open(&self, claim: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
        let record = Arc::new(Mutex::new(Record {
            resource: format!("live/{}", claim.stream),
            ..Record::default()
        }));
        self.sessions.lock().unwrap().push(Arc::clone(&record));
        Ok(Box::new(TestSession(record)))
    }
}

struct TestSession(Arc<Mutex<Record>>);

impl Publish for TestSession {
    fn ts(&mut self, bytes: &[u8], _: UnixMillis) -> Result<(), Stop> {
        let mut record = self.0.lock().unwrap();
        let aligned = bytes.chunks_exact(TS_PACKET).remainder().is_empty()
            && bytes.chunks(TS_PACKET).all(|packet| packet[0] == 0x47);
        if !aligned {
            record.data_error = true;
            return Err(Stop::Refused(brook_packager::Error::Unsupported(format!(
                "not 188-byte-aligned MPEG-TS ({} bytes)",
                bytes.len()
            ))));
        }
        record.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn tracks(&mut self, _: Vec<TrackInfo>) -> Result<(), Stop> {
        Ok(())
    }

    fn frame(&mut self, _: Frame, _: UnixMillis) -> Result<(), Stop> {
        Ok(())
    }

    fn link(&mut self, stats: &LinkStats) {
        self.0.lock().unwrap().stats.push(*stats);
    }

    fn close(self: Box<Self>, reason: &str) {
        self.0.lock().unwrap().closed = Some(reason.to_owned());
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}

fn start_ingest(config: SrtIngestConfig) -> (SrtIngest, Arc<TestSink>) {
    init_logs();
    let sink = Arc::new(TestSink::default());
    let config = SrtIngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let ingest = srt::start(config, sink.clone()).expect("start SRT ingest");
    assert_ne!(ingest.local_addr().port(), 0);
    (ingest, sink)
}

/// Publishes 3 s of H.264 + AAC in MPEG-TS; returns the exit status and what
/// ffmpeg printed (errors only). ffmpeg 5.1 passes `streamid` through as is
/// (no URL decoding), so it goes in raw.
fn ffmpeg(port: u16, stream_id: &str) -> (ExitStatus, String) {
    let url = format!(
        "srt://127.0.0.1:{port}?mode=caller&latency=120000&pkt_size=1316&streamid={stream_id}"
    );
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine", "-t", "3"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
        ])
        .args(["-c:a", "aac", "-f", "mpegts", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ffmpeg (Debian package `ffmpeg`)");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (status, stderr)
}

/// srt-live-transmit forwarding its stdin, in 1316-byte messages.
fn srt_live_transmit(port: u16, stream_id: &str) -> Child {
    let url = format!("srt://127.0.0.1:{port}?mode=caller&latency=120&streamid={stream_id}");
    Command::new("srt-live-transmit")
        .args(["-q", "-chunk:1316", "file://con", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run srt-live-transmit (Debian package `srt-tools`)")
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("peer still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one ffmpeg publisher to completion and checks what the sink got.
fn publish_and_check(ingest: &SrtIngest, sink: &TestSink, stream_id: &str) {
    let before = sink.records().len();
    let (status, stderr) = ffmpeg(ingest.local_addr().port(), stream_id);
    assert!(
        status.success(),
        "ffmpeg with stream id {stream_id:?}: {status}\n{stderr}"
    );
    let records = sink.records();
    assert_eq!(
        records.len(),
        before + 1,
        "one new session for {stream_id:?}"
    );
    let record = Arc::clone(&records[before]);
    wait_for("close after ffmpeg exited", Duration::from_secs(10), || {
        record.lock().unwrap().closed.is_some()
    });
    let record = record.lock().unwrap();
    check_ts(&record, stream_id);
}

fn check_ts(record: &Record, what: &str) {
    assert_eq!(record.resource, "live/cam1");
    assert!(!record.data_error, "{what}: sink saw non-TS data");
    assert!(
        record.bytes.len() > 20_000,
        "{what}: only {} bytes arrived",
        record.bytes.len()
    );
    assert_eq!(record.bytes.len() % TS_PACKET, 0, "{what}");
    assert!(
        record.bytes.chunks(TS_PACKET).all(|p| p[0] == 0x47),
        "{what}: lost TS sync"
    );
    let last = record.stats.last().expect("stats reported");
    assert!(
        last.packets_received.unwrap_or(0) > 0 && last.bitrate_bps >= 0.0,
        "{what}: {last:?}"
    );
    let closed = record.closed.as_deref().unwrap();
    assert_eq!(closed, "peer disconnected", "{what}");
}

#[test]
fn ffmpeg_publishes_with_every_stream_id_form() {
    let (ingest, sink) = start_ingest(SrtIngestConfig::default());
    let forms = [
        "#!::r=live/cam1,m=publish,s=k1",
        "publish:live/cam1:k1",
        "live/cam1:k1",
    ];
    thread::scope(|scope| {
        for form in forms {
            let port = ingest.local_addr().port();
            scope.spawn(move || {
                let (status, stderr) = ffmpeg(port, form);
                assert!(
                    status.success(),
                    "ffmpeg with stream id {form:?}: {status}\n{stderr}"
                );
            });
        }
    });
    let records = sink.records();
    assert_eq!(records.len(), forms.len());
    for record in &records {
        wait_for("close after ffmpeg exited", Duration::from_secs(10), || {
            record.lock().unwrap().closed.is_some()
        });
        check_ts(&record.lock().unwrap(), "parallel publisher");
    }
    // Several stats reports over ~3 s of streaming.
    assert!(records.iter().all(|r| r.lock().unwrap().stats.len() >= 2));
    wait_for("sessions released", Duration::from_secs(5), || {
        ingest.active_sessions() == 0
    });
    ingest.shutdown();
}

#[test]
fn wrong_key_unknown_stream_and_play_requests_are_rejected() {
    let (ingest, sink) = start_ingest(SrtIngestConfig::default());
    let port = ingest.local_addr().port();
    for (stream_id, reaches_sink) in [
        ("publish:live/cam1:wrong", true),
        ("publish:live/cam1", true),
        ("publish:live/other:k1", true),
        ("#!::r=live/cam1,m=request,s=k1", false),
        ("publish:../cam1:k1", false),
    ] {
        let calls_before = sink.authorize_calls.load(Ordering::SeqCst);
        let (status, stderr) = ffmpeg(port, stream_id);
        assert!(!status.success(), "ffmpeg with {stream_id:?} must fail");
        assert!(stderr.contains("onnection"), "{stream_id:?}: {stderr}");
        let calls = sink.authorize_calls.load(Ordering::SeqCst) - calls_before;
        assert_eq!(
            calls > 0,
            reaches_sink,
            "{stream_id:?}: authorize called {calls}x"
        );
    }
    assert!(sink.records().is_empty(), "no session may open");
    ingest.shutdown();
}

#[test]
fn garbage_publisher_is_dropped_and_next_publisher_works() {
    let (ingest, sink) = start_ingest(SrtIngestConfig::default());
    let port = ingest.local_addr().port();

    let mut garbage = srt_live_transmit(port, "publish:live/cam1:k1");
    wait_for("garbage session to open", Duration::from_secs(10), || {
        !sink.records().is_empty()
    });
    // Only now: srt-live-transmit discards what it reads before its
    // (non-blocking) connect completes.
    let mut stdin = garbage.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let mut rng = 0x1234_5678_9abc_def0_u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 24) as u8
            })
            .collect();
        // Fails once the peer is killed; the pipe stays open until then.
        let _ = stdin.write_all(&noise);
        stdin
    });
    let record = Arc::clone(&sink.records()[0]);
    wait_for(
        "garbage session to be closed",
        Duration::from_secs(10),
        || record.lock().unwrap().closed.is_some(),
    );
    {
        let record = record.lock().unwrap();
        assert!(record.data_error);
        let reason = record.closed.as_deref().unwrap();
        assert!(
            reason.starts_with(
                "ended by the pipeline: input refused: unsupported input: not 188-byte-aligned"
            ),
            "{reason}"
        );
    }
    stop(garbage);
    drop(writer.join());

    publish_and_check(&ingest, &sink, "publish:live/cam1:k1");
    ingest.shutdown();
}

#[test]
fn listener_survives_random_udp_datagrams() {
    let (ingest, sink) = start_ingest(SrtIngestConfig::default());
    let target = ingest.local_addr();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..3000 {
        let len = (next() % 1500) as usize;
        let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Every third one looks like an SRT control packet addressed to the
        // listener (destination socket id 0): a handshake (type 0) or some
        // other control type, with random contents.
        if i % 3 == 0 && len >= 16 {
            let control_type = if i % 2 == 0 { 0 } else { (next() % 8) as u8 };
            datagram[0] = 0x80;
            datagram[1] = control_type;
            datagram[12..16].fill(0);
        }
        udp.send_to(&datagram, target).unwrap();
        if i % 100 == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(sink.records().is_empty());
    publish_and_check(&ingest, &sink, "#!::r=live/cam1,m=publish,s=k1");
    ingest.shutdown();
}

#[test]
fn silent_peer_times_out_and_counts_against_the_limit() {
    let (ingest, sink) = start_ingest(SrtIngestConfig {
        idle_timeout: Duration::from_secs(4),
        max_connections: 1,
        ..SrtIngestConfig::default()
    });
    let port = ingest.local_addr().port();

    // Connected, sends nothing: stdin stays open and empty.
    let silent = srt_live_transmit(port, "live/cam1:k1");
    wait_for("silent session to open", Duration::from_secs(10), || {
        ingest.active_sessions() == 1
    });
    let opened = Instant::now();

    // The only slot is taken: a second publisher is turned away before it
    // reaches the sink.
    let calls_before = sink.authorize_calls.load(Ordering::SeqCst);
    let (status, _) = ffmpeg(port, "live/cam1:k1");
    assert!(!status.success(), "second publisher must be rejected");
    assert_eq!(sink.authorize_calls.load(Ordering::SeqCst), calls_before);

    let record = Arc::clone(&sink.records()[0]);
    wait_for("idle timeout", Duration::from_secs(10), || {
        record.lock().unwrap().closed.is_some()
    });
    assert!(opened.elapsed() >= Duration::from_secs(2));
    let record = record.lock().unwrap();
    assert_eq!(record.closed.as_deref(), Some("idle timeout"));
    assert!(record.bytes.is_empty());
    // Stats keep flowing while the peer is silent.
    assert!(
        record.stats.len() >= 2,
        "{} stats reports",
        record.stats.len()
    );
    drop(record);
    stop(silent);
    ingest.shutdown();
}

#[test]
fn shutdown_ends_live_sessions() {
    let (ingest, sink) = start_ingest(SrtIngestConfig {
        idle_timeout: Duration::from_secs(60),
        ..SrtIngestConfig::default()
    });
    let peer = srt_live_transmit(ingest.local_addr().port(), "cam1:k1");
    wait_for("session to open", Duration::from_secs(10), || {
        ingest.active_sessions() == 1
    });
    let started = Instant::now();
    ingest.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let records = sink.records();
    assert_eq!(
        records[0].lock().unwrap().closed.as_deref(),
        Some("shutdown")
    );
    stop(peer);
}
