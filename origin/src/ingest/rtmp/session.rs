//! One RTMP connection on its own thread: handshake, session, admission, and
//! the publisher's media into the pipeline. Everything `rml_rtmp` does runs
//! inside `catch_unwind`: a panic on hostile input ends this connection
//! only.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use super::media::{Out, RtmpMedia};
use super::tls::Io;
use super::{parse_publish_name, Shared};
use crate::ingest::{Claim, LinkStats, Protocol, Publish, Refusal};

const READ_TICK: Duration = Duration::from_millis(500);
/// What a connection may send before its publish is admitted: the connect,
/// createStream and publish commands take a few hundred bytes. Past this it is
/// closed (`rml_rtmp` would otherwise buffer commands and streams without a
/// limit for a peer that never presents a key).
const PRE_PUBLISH_BYTES: u64 = 64 * 1024;
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a connection to its end and logs why it ended.
pub(super) fn run(
    shared: &Shared,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<&Arc<rustls::ServerConfig>>,
) {
    let stream = match Io::new(tcp, tls) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "RTMPS session setup failed");
            return;
        }
    };
    let mut conn = Connection {
        shared,
        stream,
        peer,
        publish: None,
        stream_name: None,
        media: RtmpMedia::new(),
        bytes: 0,
        bytes_at_report: 0,
        next_report: Instant::now() + STATS_INTERVAL,
        audio_warned: false,
    };
    let reason = conn.serve();
    // The listener keeps a clone of this socket (to close it on shutdown):
    // shut it down explicitly so the peer sees the close now.
    conn.stream.close();
    let stats = conn.media.stats;
    match conn.publish.take() {
        Some(publish) => {
            tracing::info!(
                %peer,
                stream = conn.stream_name.as_deref().unwrap_or(""),
                reason,
                video_frames = stats.video_frames,
                audio_frames = stats.audio_frames,
                dropped = stats.dropped,
                bad_tags = stats.bad_tags,
                "RTMP publish ended"
            );
            publish.close(&reason);
        }
        None => tracing::info!(%peer, reason, "RTMP connection closed"),
    }
}

struct Connection<'a> {
    shared: &'a Shared,
    stream: Io,
    peer: SocketAddr,
    publish: Option<Box<dyn Publish>>,
    stream_name: Option<String>,
    media: RtmpMedia,
    bytes: u64,
    bytes_at_report: u64,
    next_report: Instant,
    audio_warned: bool,
}

/// Why a connection ends (for the log and the pipeline).
type End = String;

impl Drop for Connection<'_> {
    /// Only reached with a publisher still attached when the thread unwinds:
    /// the pipeline still hears that this connection is gone.
    fn drop(&mut self) {
        if let Some(publish) = self.publish.take() {
            publish.close("the RTMP connection's thread panicked");
        }
    }
}

/// A name from the wire as it may appear in a log: itself when it could be
/// a stream or application name, otherwise only its length (it may be a key
/// typed in the wrong field, or anything else).
fn shown(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        name.to_owned()
    } else {
        format!("<{} bytes>", name.len())
    }
}

impl Connection<'_> {
    fn serve(&mut self) -> End {
        let config = &self.shared.config;
        let tcp = self.stream.tcp();
        if let Err(e) = tcp
            .set_read_timeout(Some(READ_TICK))
            .and_then(|()| tcp.set_write_timeout(Some(config.idle_timeout)))
            .and_then(|()| tcp.set_nodelay(true))
        {
            return format!("socket setup: {e}");
        }
        let setup_deadline = Instant::now() + config.setup_timeout;
        let remaining = match self.handshake(setup_deadline) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let (mut session, results) = match ServerSession::new(ServerSessionConfig::new()) {
            Ok(s) => s,
            Err(e) => return format!("RTMP session: {e}"),
        };
        if let Err(e) = self.handle(&mut session, results) {
            return e;
        }
        let mut input = remaining;
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_data = Instant::now();
        loop {
            if !input.is_empty() {
                let results = catch_unwind(AssertUnwindSafe(|| session.handle_input(&input)));
                input.clear();
                match results {
                    Ok(Ok(results)) => {
                        if let Err(e) = self.handle(&mut session, results) {
                            return e;
                        }
                    }
                    Ok(Err(e)) => return format!("RTMP protocol error: {e}"),
                    Err(_) => return "RTMP protocol error (the session library panicked)".into(),
                }
            }
            if self.shared.stopping.load(Ordering::Acquire) {
                return "shutdown".into();
            }
            let now = Instant::now();
            if self.publish.is_none() && now >= setup_deadline {
                return "no publish request in time".into();
            }
            if self.publish.is_none() && self.bytes > PRE_PUBLISH_BYTES {
                return format!("more than {PRE_PUBLISH_BYTES} bytes before publishing");
            }
            if now >= self.next_report {
                self.report(now);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return "peer disconnected".into(),
                Ok(n) => {
                    last_data = Instant::now();
                    self.bytes += n as u64;
                    input.extend_from_slice(&buf[..n]);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if last_data.elapsed() >= config.idle_timeout {
                        return "idle timeout".into();
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return format!("receive failed: {e}"),
            }
        }
    }

    /// The RTMP handshake (C0-C2 / S0-S2); the bytes that came after it.
    fn handshake(&mut self, deadline: Instant) -> Result<Vec<u8>, End> {
        let mut handshake = Handshake::new(PeerType::Server);
        let mut buf = [0u8; 4096];
        loop {
            if Instant::now() >= deadline {
                return Err("handshake timed out".into());
            }
            if self.shared.stopping.load(Ordering::Acquire) {
                return Err("shutdown".into());
            }
            let n = match self.stream.read(&mut buf) {
                Ok(0) => return Err("peer disconnected during the handshake".into()),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("receive failed: {e}")),
            };
            self.bytes += n as u64;
            let step = catch_unwind(AssertUnwindSafe(|| handshake.process_bytes(&buf[..n])));
            match step {
                Ok(Ok(HandshakeProcessResult::InProgress { response_bytes })) => {
                    self.send(&response_bytes)?;
                }
                Ok(Ok(HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                })) => {
                    self.send(&response_bytes)?;
                    return Ok(remaining_bytes);
                }
                Ok(Err(e)) => return Err(format!("RTMP handshake failed: {e}")),
                Err(_) => return Err("RTMP handshake failed (the library panicked)".into()),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), End> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("send failed: {e}"))
    }

    /// Sends what the session wants sent and acts on its events, including
    /// those raised by accepting a request.
    fn handle(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), End> {
        let mut queue = std::collections::VecDeque::from(results);
        let mut out = Vec::new();
        while let Some(result) = queue.pop_front() {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.send(&packet.bytes)?,
                ServerSessionResult::RaisedEvent(event) => {
                    let more = self.event(session, event, &mut out)?;
                    queue.extend(more);
                    self.deliver(&mut out)?;
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn event(
        &mut self,
        session: &mut ServerSession,
        event: ServerSessionEvent,
        out: &mut Vec<Out>,
    ) -> Result<Vec<ServerSessionResult>, End> {
        let app = &self.shared.config.app;
        let protocol = |r: Result<Vec<ServerSessionResult>, _>| {
            r.map_err(|e: rml_rtmp::sessions::ServerSessionError| format!("RTMP session: {e}"))
        };
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name != *app {
                    let reject = protocol(session.reject_request(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        "unknown application",
                    ))?;
                    self.flush(reject)?;
                    return Err(format!(
                        "connect refused: application {} (expected {app})",
                        shown(&app_name)
                    ));
                }
                protocol(session.accept_request(request_id))
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                if self.publish.is_some() {
                    let reject = protocol(session.reject_request(
                        request_id,
                        "NetStream.Publish.BadName",
                        "already publishing",
                    ))?;
                    self.flush(reject)?;
                    return Err("a second publish on one connection".into());
                }
                let (name, key) = parse_publish_name(&stream_key);
                if !brook_common::valid_stream_name(name) {
                    let reject = protocol(session.reject_request(
                        request_id,
                        "NetStream.Publish.BadName",
                        "not authorized",
                    ))?;
                    self.flush(reject)?;
                    tracing::warn!(peer = %self.peer, stream = %shown(name), "RTMP publish refused: not a stream name");
                    return Err("publish refused: not a stream name".into());
                }
                let claim = Claim {
                    stream: name,
                    key: key.as_deref(),
                    peer: self.peer,
                    protocol: Protocol::Rtmp,
                };
                match self.shared.admission.open(&claim) {
                    Ok(publish) => {
                        tracing::info!(peer = %self.peer, stream = name, "RTMP publish started");
                        self.publish = Some(publish);
                        self.stream_name = Some(name.to_owned());
                        protocol(session.accept_request(request_id))
                    }
                    Err(refusal) => {
                        let description = match refusal {
                            Refusal::Denied(_) => "not authorized",
                            Refusal::Busy(_) => "stream busy",
                            Refusal::Unavailable(_) => "unavailable",
                        };
                        let reject = protocol(session.reject_request(
                            request_id,
                            "NetStream.Publish.BadName",
                            description,
                        ))?;
                        self.flush(reject)?;
                        // The key is never logged; the refusal's text says why.
                        tracing::warn!(peer = %self.peer, stream = name, reason = %refusal, "RTMP publish refused");
                        Err(format!("publish refused: {refusal}"))
                    }
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                if self.publish.is_some() {
                    self.media
                        .video(timestamp.value, &data, out)
                        .map_err(|e| format!("unusable video: {e}"))?;
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                if self.publish.is_some() {
                    if let Err(e) = self.media.audio(timestamp.value, &data, out) {
                        if !std::mem::replace(&mut self.audio_warned, true) {
                            tracing::warn!(peer = %self.peer, error = %e, "RTMP audio dropped");
                        }
                    }
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::PublishStreamFinished { .. } => Err("unpublished".into()),
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let reject = protocol(session.reject_request(
                    request_id,
                    "NetStream.Play.Failed",
                    "playback is HLS and DASH",
                ))?;
                self.flush(reject)?;
                Err("play refused: only publishing is supported".into())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Sends the packets among `results` (a rejection before closing).
    fn flush(&mut self, results: Vec<ServerSessionResult>) -> Result<(), End> {
        for r in results {
            if let ServerSessionResult::OutboundResponse(packet) = r {
                self.send(&packet.bytes)?;
            }
        }
        Ok(())
    }

    /// Hands the media produced so far to the pipeline.
    fn deliver(&mut self, out: &mut Vec<Out>) -> Result<(), End> {
        let Some(publish) = self.publish.as_mut() else {
            out.clear();
            return Ok(());
        };
        for o in out.drain(..) {
            let result = match o {
                Out::Tracks(tracks) => publish.tracks(tracks),
                Out::Frame(frame) => publish.frame(frame, crate::unix_now()),
            };
            result.map_err(|e| format!("ended by the pipeline: {e}"))?;
        }
        Ok(())
    }

    fn report(&mut self, now: Instant) {
        let elapsed =
            STATS_INTERVAL.as_secs_f64() + now.duration_since(self.next_report).as_secs_f64();
        self.next_report = now + STATS_INTERVAL;
        let bits = (self.bytes - self.bytes_at_report) as f64 * 8.0;
        self.bytes_at_report = self.bytes;
        if let Some(publish) = self.publish.as_mut() {
            publish.link(&LinkStats {
                bitrate_bps: bits / elapsed.max(0.001),
                ..LinkStats::default()
            });
        }
    }
}
