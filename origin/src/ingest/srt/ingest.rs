//! The SRT socket loop: one listener, a hook that vets stream ids before the
//! handshake completes, an accept thread, and one thread per publisher.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::ffi;
use super::socket::{Incoming, KmState, Listener, Runtime, Socket, SrtError};
use super::streamid::{self, Mode, PublishRequest};
use crate::ingest::{Admission, Claim, LinkEncryption, LinkStats, Protocol, Publish, Refusal};

/// The SRT reject code (`SRT_REJC_PREDEFINED` + an HTTP-like status) a
/// refusal is answered with.
pub fn reject_code(refusal: &Refusal) -> i32 {
    match refusal {
        Refusal::Denied(_) => ffi::SRT_REJX_UNAUTHORIZED,
        Refusal::Busy(_) => ffi::SRT_REJX_CONFLICT,
        Refusal::Unavailable(_) => ffi::SRT_REJX_DOWN,
    }
}

/// Receiver-side link statistics of one SRT connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SrtStats {
    /// Smoothed round-trip time.
    pub rtt_ms: f64,
    /// Receive rate over the last interval, payload plus headers.
    pub recv_rate_mbps: f64,
    /// Data packets received since the connection started.
    pub packets_received: u64,
    /// Packets detected missing (each may later be recovered).
    pub packets_lost: u64,
    /// Retransmitted packets received.
    pub packets_retransmitted: u64,
    /// Packets given up on: too late to play, never delivered.
    pub packets_dropped: u64,
    /// Bytes received since the connection started.
    pub bytes_received: u64,
    /// Media time held in libsrt's receive buffer, waiting to be delivered.
    pub receive_buffer_ms: u32,
    /// Negotiated receiver latency (TSBPD delay).
    pub latency_ms: u32,
}

/// Listener settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtIngestConfig {
    /// UDP address to listen on. Default `0.0.0.0:9000`. An IPv6 wildcard
    /// (`[::]:9000`) also accepts IPv4. Port 0 picks a free port (see
    /// [`SrtIngest::local_addr`]).
    pub listen: SocketAddr,
    /// Receiver latency (`SRTO_RCVLATENCY`); the connection uses the larger
    /// of this and the caller's. Default 120 ms (libsrt's default).
    pub latency_ms: u32,
    /// A session that receives no data for this long ends with reason "idle
    /// timeout". Default 5 s.
    pub idle_timeout: Duration,
    /// Most concurrent publish sessions; callers beyond it are rejected with
    /// `SRT_REJX_OVERLOAD` (1402). Default 64.
    pub max_connections: usize,
    /// `SRTO_PAYLOADSIZE`, 1..=1456. Default 1316 (7 TS packets).
    pub payload_size: u32,
    /// How often sessions get [`Publish::link`] statistics. Default 1 s.
    pub stats_interval: Duration,
}

impl Default for SrtIngestConfig {
    fn default() -> Self {
        SrtIngestConfig {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9000)),
            latency_ms: 120,
            idle_timeout: Duration::from_secs(5),
            max_connections: 64,
            payload_size: 1316,
            stats_interval: Duration::from_secs(1),
        }
    }
}

/// Errors starting the SRT ingest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid SRT ingest config: {0}")]
    Config(String),
    #[error("SRT listener on {addr}: {source}")]
    Srt {
        addr: SocketAddr,
        #[source]
        source: SrtError,
    },
    #[error("spawning the SRT {what} thread: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A running SRT listener. Dropping it is the same as [`SrtIngest::shutdown`].
pub struct SrtIngest {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Arc<Listener>,
    accept_thread: Option<JoinHandle<()>>,
    /// Dropped last, after every socket is closed.
    runtime: Option<Runtime>,
}

struct Shared {
    config: SrtIngestConfig,
    admission: Arc<dyn Admission>,
    /// Accepted connections whose session thread has not finished.
    active: AtomicUsize,
    stopping: AtomicBool,
    sessions: Mutex<HashMap<i32, SessionHandle>>,
}

struct SessionHandle {
    socket: Arc<Socket>,
    thread: JoinHandle<()>,
}

impl Shared {
    fn sessions(&self) -> MutexGuard<'_, HashMap<i32, SessionHandle>> {
        // A panicking session thread cannot leave the map half-updated.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// Binds the listener and starts the accept thread.
pub fn start(config: SrtIngestConfig, admission: Arc<dyn Admission>) -> Result<SrtIngest, Error> {
    validate(&config)?;
    let addr = config.listen;
    let srt_err = |source| Error::Srt { addr, source };

    let runtime = Runtime::acquire().map_err(srt_err)?;
    let socket = Socket::new(&runtime).map_err(srt_err)?;
    socket.set_live_mode().map_err(srt_err)?;
    // Accepted sockets inherit this: accept and receive block (receive up
    // to SRTO_RCVTIMEO), which the thread-per-session loop relies on.
    socket.set_blocking_receive(true).map_err(srt_err)?;
    socket
        .set_receive_latency(config.latency_ms)
        .map_err(srt_err)?;
    socket
        .set_payload_size(config.payload_size)
        .map_err(srt_err)?;
    // Encryption is checked after accept, per stream, with a logged reason
    // (see `check_encryption`), not by libsrt during the handshake.
    socket.set_enforced_encryption(false).map_err(srt_err)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_ipv6_only(false).map_err(srt_err)?;
    }
    socket.bind(addr).map_err(srt_err)?;

    let shared = Arc::new(Shared {
        admission,
        active: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        sessions: Mutex::new(HashMap::new()),
        config,
    });
    let hook_shared = Arc::clone(&shared);
    let listener = Listener::listen(
        socket,
        shared.config.max_connections,
        Box::new(move |incoming| vet_incoming(&hook_shared, incoming)),
    )
    .map_err(srt_err)?;
    let listener = Arc::new(listener);
    let local_addr = listener.local_addr().map_err(srt_err)?;

    let accept_thread = {
        let (shared, listener) = (Arc::clone(&shared), Arc::clone(&listener));
        thread::Builder::new()
            .name("srt-accept".into())
            .spawn(move || accept_loop(&shared, &listener))
            .map_err(|source| Error::Spawn {
                what: "accept",
                source,
            })?
    };
    tracing::info!(listen = %local_addr, "SRT ingest listening");
    Ok(SrtIngest {
        local_addr,
        shared,
        listener,
        accept_thread: Some(accept_thread),
        runtime: Some(runtime),
    })
}

fn validate(config: &SrtIngestConfig) -> Result<(), Error> {
    let problem = if config.max_connections == 0 {
        "max_connections must be at least 1"
    } else if !(1..=ffi::SRT_LIVE_MAX_PLSIZE as u32).contains(&config.payload_size) {
        "payload_size must be 1..=1456"
    } else if config.idle_timeout.is_zero() {
        "idle_timeout must be positive"
    } else if config.stats_interval.is_zero() {
        "stats_interval must be positive"
    } else {
        return Ok(());
    };
    Err(Error::Config(problem.into()))
}

impl SrtIngest {
    /// The bound address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Publish sessions currently running.
    pub fn active_sessions(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Stops accepting, ends every session (reason "shutdown", after its
    /// `close` returns) and joins all threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Release);
        if let Err(e) = self.listener.close() {
            tracing::error!(listen = %self.local_addr, error = %e, "closing SRT listener");
        }
        if accept_thread.join().is_err() {
            tracing::error!("SRT accept thread panicked");
        }
        // The accept thread is gone, so no session is added after this.
        let sessions: Vec<SessionHandle> = self.shared.sessions().drain().map(|(_, s)| s).collect();
        for session in &sessions {
            let _ = session.socket.close();
        }
        for session in sessions {
            let _ = session.thread.join();
        }
        drop(self.runtime.take());
        tracing::info!(listen = %self.local_addr, "SRT ingest stopped");
    }
}

impl Drop for SrtIngest {
    fn drop(&mut self) {
        self.stop();
    }
}

fn claim(req: &PublishRequest, peer: SocketAddr) -> Claim<'_> {
    Claim {
        stream: req.name(),
        key: req.key.as_deref(),
        peer,
        protocol: Protocol::Srt,
    }
}

/// The listen hook: parse, check capacity, ask the admission. Runs on libsrt's
/// receive thread; everything here is quick and non-blocking (an atomic load
/// and the sink's `authorize`).
fn vet_incoming(shared: &Shared, incoming: &Incoming<'_>) -> Result<(), i32> {
    let peer = incoming
        .peer
        .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let verdict = admit_request(shared, incoming.stream_id, peer);
    if let Err((code, reason)) = &verdict {
        tracing::warn!(
            %peer,
            stream_id = %streamid::redact(incoming.stream_id),
            reason = %reason,
            code,
            hs_version = incoming.hs_version,
            "SRT connection rejected"
        );
    }
    let req = verdict.map_err(|(code, _)| code)?;
    if let Some(encryption) = shared.admission.link_encryption(req.name()) {
        if let Err(e) = incoming.set_passphrase(&encryption.passphrase) {
            tracing::error!(%peer, stream = req.name(), error = %e, "SRT passphrase not set; connection rejected");
            return Err(ffi::SRT_REJX_ISE);
        }
    }
    Ok(())
}

/// Whether an accepted connection's encryption is what its stream asks for;
/// `Err` is the reason it is refused (never the passphrase).
fn check_encryption(wanted: Option<&LinkEncryption>, state: KmState) -> Result<(), &'static str> {
    match (wanted, state) {
        (Some(_), KmState::Secured) => Ok(()),
        (Some(_), KmState::BadSecret) => Err("wrong SRT passphrase"),
        (Some(e), KmState::Unsecured) if e.required => {
            Err("the stream requires an SRT passphrase; the publisher sent none")
        }
        (Some(_), KmState::Unsecured) => Ok(()),
        (None, KmState::Unsecured) => Ok(()),
        (None, KmState::NoSecret | KmState::BadSecret | KmState::Secured) => {
            Err("the publisher encrypts but the stream has no SRT passphrase")
        }
        (Some(_), KmState::NoSecret) => Err("SRT key exchange failed (no secret)"),
        (_, KmState::Other(_)) => Err("SRT key exchange did not complete"),
    }
}

/// The checks shared by the hook and the accept thread; `Err` is the reject
/// code and a reason for the log.
fn admit_request(
    shared: &Shared,
    stream_id: &[u8],
    peer: SocketAddr,
) -> Result<PublishRequest, (i32, String)> {
    if shared.stopping() {
        return Err((ffi::SRT_REJX_DOWN, "shutting down".into()));
    }
    let req = PublishRequest::parse(stream_id)
        .map_err(|e| (ffi::SRT_REJX_BAD_REQUEST, format!("stream id: {e}")))?;
    if req.mode != Mode::Publish {
        return Err((
            ffi::SRT_REJX_BAD_MODE,
            "only publishing (m=publish) is supported".into(),
        ));
    }
    if shared.active.load(Ordering::Acquire) >= shared.config.max_connections {
        return Err((ffi::SRT_REJX_OVERLOAD, "max_connections reached".into()));
    }
    shared
        .admission
        .admit(&claim(&req, peer))
        .map_err(|refusal| (reject_code(&refusal), refusal.to_string()))?;
    Ok(req)
}

fn accept_loop(shared: &Arc<Shared>, listener: &Listener) {
    loop {
        match listener.accept() {
            Ok((socket, peer)) => {
                let peer = peer.unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
                if shared.stopping() {
                    break;
                }
                admit(shared, socket, peer);
            }
            Err(_) if shared.stopping() => break,
            Err(e) if e.is_closed() => {
                tracing::error!(error = %e, "SRT listener closed unexpectedly; no more publishers accepted");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "SRT accept failed");
                // Do not spin on a persistent error.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Takes an accepted connection: re-reads its stream id (the hook's verdict
/// is not carried over), enforces the connection limit exactly (the hook's
/// check can race with other handshakes) and starts the session thread.
fn admit(shared: &Arc<Shared>, socket: Socket, peer: SocketAddr) {
    let stream_id = match socket.stream_id() {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "reading the stream id of an accepted SRT connection");
            return;
        }
    };
    let reject = |reason: &str| {
        tracing::warn!(
            %peer,
            stream_id = %streamid::redact(&stream_id),
            reason,
            "SRT connection rejected after accept"
        );
    };
    // The hook already authorized this; only parse and the limit matter here.
    let req = match PublishRequest::parse(&stream_id) {
        Ok(req) if req.mode == Mode::Publish => req,
        Ok(_) => return reject("only publishing is supported"),
        Err(e) => return reject(&format!("stream id: {e}")),
    };
    let encryption = shared.admission.link_encryption(req.name());
    match socket.receive_encryption() {
        Ok(state) => {
            if let Err(reason) = check_encryption(encryption.as_ref(), state) {
                return reject(reason);
            }
            if state == KmState::Unsecured && encryption.is_some() {
                tracing::info!(%peer, stream = req.name(), "SRT publisher sends in the clear (encryption optional for this stream)");
            }
        }
        Err(e) => return reject(&format!("reading the encryption state: {e}")),
    }
    let max = shared.config.max_connections;
    if shared.active.fetch_add(1, Ordering::AcqRel) >= max {
        shared.active.fetch_sub(1, Ordering::AcqRel);
        return reject("max_connections reached");
    }

    let id = socket.id();
    let socket = Arc::new(socket);
    // Hold the map across spawn + insert so the thread's own removal (on
    // exit) cannot run before the insert.
    let mut sessions = shared.sessions();
    let spawned = {
        let (shared, socket) = (Arc::clone(shared), Arc::clone(&socket));
        thread::Builder::new()
            .name(format!("srt-session-{id}"))
            .spawn(move || run_session(shared, socket, req, peer))
    };
    match spawned {
        Ok(thread) => {
            sessions.insert(id, SessionHandle { socket, thread });
        }
        Err(e) => {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(%peer, error = %e, "spawning an SRT session thread");
        }
    }
}

/// Releases the session's slot however its thread ends.
struct SlotGuard {
    shared: Arc<Shared>,
    id: i32,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        // Dropping our own JoinHandle detaches this (already ending) thread.
        drop(self.shared.sessions().remove(&self.id));
        self.shared.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn run_session(shared: Arc<Shared>, socket: Arc<Socket>, req: PublishRequest, peer: SocketAddr) {
    let _slot = SlotGuard {
        shared: Arc::clone(&shared),
        id: socket.id(),
    };
    let span =
        tracing::info_span!("srt_session", %peer, stream = %req.resource, socket = socket.id());
    let _entered = span.enter();
    let config = &shared.config;

    // Wake up at least every stats interval, so stats flow and the idle
    // timeout is noticed even when the peer sends nothing.
    let wakeup = config.idle_timeout.min(config.stats_interval);
    if let Err(e) = socket.set_receive_timeout(wakeup) {
        tracing::error!(error = %e, "setting SRTO_RCVTIMEO; dropping connection");
        return;
    }

    let opened = catch_unwind(AssertUnwindSafe(|| {
        shared.admission.open(&claim(&req, peer))
    }));
    let session = match opened {
        Ok(Ok(session)) => session,
        Ok(Err(refusal)) => {
            let _ = socket.close();
            tracing::warn!(reason = %refusal, "SRT publish refused at open");
            return;
        }
        Err(_) => {
            let _ = socket.close();
            tracing::error!("Admission::open panicked; dropping connection");
            return;
        }
    };
    tracing::info!("SRT publish session started");

    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let mut session = session;
        let reason = receive_loop(&shared, &socket, session.as_mut());
        let _ = socket.close();
        tracing::info!(%reason, "SRT publish session ended");
        session.close(&reason);
    }));
    if outcome.is_err() {
        tracing::error!("SRT publish session panicked");
    }
}

/// Reads until the session should end and says why.
fn receive_loop(shared: &Shared, socket: &Socket, session: &mut dyn Publish) -> String {
    let config = &shared.config;
    let mut buf = vec![0u8; ffi::SRT_LIVE_MAX_PLSIZE];
    let mut stats = StatsTotals::default();
    let mut last_data = Instant::now();
    let mut next_stats = last_data + config.stats_interval;

    let reason = loop {
        let received = socket.recv_msg(&mut buf);
        let now = Instant::now();
        match received {
            Ok(0) => break "peer disconnected".to_owned(),
            Ok(n) => {
                last_data = now;
                if let Err(e) = session.ts(&buf[..n], crate::unix_now()) {
                    break format!("ended by the pipeline: {e}");
                }
            }
            Err(_) if shared.stopping() => break "shutdown".to_owned(),
            Err(e) if e.is_timeout() => {
                if now.duration_since(last_data) >= config.idle_timeout {
                    break "idle timeout".to_owned();
                }
            }
            Err(e) if e.is_connection_lost() => break "peer disconnected".to_owned(),
            Err(e) => break format!("receive failed: {e}"),
        }
        if now >= next_stats {
            next_stats = now + config.stats_interval;
            stats.report(socket, session);
        }
    };
    // Final totals, when the link is still up (sink error, idle, shutdown).
    stats.report(socket, session);
    reason
}

/// Accumulates what libsrt only reports per interval.
#[derive(Default)]
struct StatsTotals {
    retransmitted: u64,
}

impl StatsTotals {
    fn report(&mut self, socket: &Socket, session: &mut dyn Publish) {
        // `clear` resets libsrt's interval counters, so the rate covers
        // exactly the time since the previous report.
        let perf = match socket.stats(true) {
            Ok(perf) => perf,
            Err(e) if e.is_connection_lost() => return,
            Err(e) => {
                tracing::debug!(error = %e, "reading SRT stats");
                return;
            }
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        self.retransmitted += count(perf.pktRcvRetrans.into());
        session.link(&LinkStats::from(SrtStats {
            rtt_ms: perf.msRTT,
            recv_rate_mbps: perf.mbpsRecvRate,
            packets_received: count(perf.pktRecvTotal),
            packets_lost: count(perf.pktRcvLossTotal.into()),
            packets_retransmitted: self.retransmitted,
            packets_dropped: count(perf.pktRcvDropTotal.into()),
            bytes_received: perf.byteRecvTotal,
            receive_buffer_ms: u32::try_from(perf.msRcvBuf).unwrap_or(0),
            latency_ms: u32::try_from(perf.msRcvTsbPdDelay).unwrap_or(0),
        }));
    }
}

impl From<SrtStats> for LinkStats {
    fn from(s: SrtStats) -> Self {
        LinkStats {
            bitrate_bps: s.recv_rate_mbps * 1e6,
            rtt_ms: Some(s.rtt_ms),
            packets_received: Some(s.packets_received),
            packets_lost: Some(s.packets_lost),
            packets_retransmitted: Some(s.packets_retransmitted),
            packets_dropped: Some(s.packets_dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown stream and a wrong key get the same code: the answer does
    /// not tell which stream names exist.
    #[test]
    fn refusals_map_to_access_control_codes() {
        let cases = [
            (Refusal::Denied("k".into()), 1401),
            (Refusal::Busy("k".into()), 1409),
            (Refusal::Unavailable("k".into()), 1503),
        ];
        for (refusal, code) in cases {
            assert_eq!(reject_code(&refusal), code, "{refusal}");
        }
    }

    /// Every pairing of a stream's encryption with what the publisher did.
    #[test]
    fn encryption_states_decide_admission() {
        let required = LinkEncryption {
            passphrase: "0123456789".into(),
            required: true,
        };
        let optional = LinkEncryption {
            required: false,
            ..required.clone()
        };
        let cases: [(Option<&LinkEncryption>, KmState, bool); 12] = [
            (Some(&required), KmState::Secured, true),
            (Some(&required), KmState::BadSecret, false),
            (Some(&required), KmState::Unsecured, false),
            (Some(&required), KmState::NoSecret, false),
            (Some(&optional), KmState::Secured, true),
            (Some(&optional), KmState::Unsecured, true),
            (Some(&optional), KmState::BadSecret, false),
            (Some(&optional), KmState::Other(1), false),
            (None, KmState::Unsecured, true),
            (None, KmState::NoSecret, false),
            (None, KmState::Secured, false),
            (None, KmState::Other(9), false),
        ];
        for (wanted, state, ok) in cases {
            assert_eq!(
                check_encryption(wanted, state).is_ok(),
                ok,
                "{wanted:?} {state:?}"
            );
        }
        assert!(!format!("{required:?}").contains("0123456789"));
    }

    #[test]
    fn config_is_validated() {
        let bad = [
            SrtIngestConfig {
                max_connections: 0,
                ..Default::default()
            },
            SrtIngestConfig {
                payload_size: 1457,
                ..Default::default()
            },
            SrtIngestConfig {
                idle_timeout: Duration::ZERO,
                ..Default::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(validate(&config), Err(Error::Config(_))),
                "{config:?}"
            );
        }
        assert!(validate(&SrtIngestConfig::default()).is_ok());
    }
}
