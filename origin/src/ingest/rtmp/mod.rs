//! RTMP ingest: `rtmp://host/live/<stream>?key=<key>` (or, as OBS asks for
//! it, server `rtmp://host/live` and stream key `<stream>?key=<key>`), the
//! way OBS, ffmpeg, vMix and hardware encoders publish by default.
//!
//! - `session.rs`: one blocking thread per TCP connection: the handshake and
//!   RTMP session (chunking, AMF commands) from `rml_rtmp`, sans-IO; the
//!   publish request becomes an [`ingest::Claim`](crate::ingest::Claim) and
//!   goes through the same [`Admission`] as SRT and WHIP.
//! - `flv.rs`: the FLV tag bodies in video and audio messages, classic and
//!   Enhanced RTMP (FourCC `avc1`, `hvc1`).
//! - `media.rs`: those tags onto the packager's timeline (32-bit millisecond
//!   timestamps unwrapped, composition offsets, AAC sample counting) as
//!   track lists and frames, the same [`Publish`](crate::ingest::Publish)
//!   calls WHIP makes.
//!
//! See docs/rtmp.md.

pub mod flv;
pub mod media;
mod session;
pub mod tls;

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::ingest::Admission;

/// How the RTMP listener behaves.
#[derive(Debug, Clone)]
pub struct RtmpIngestConfig {
    pub listen: SocketAddr,
    /// The application name publishers use (`rtmp://host/<app>/...`).
    pub app: String,
    /// Concurrent connections, publishing or not; more are closed at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The handshake and the publish request must complete within this.
    pub setup_timeout: Duration,
    /// RTMPS: a second listener whose connections are TLS
    /// ([`tls::server_config`]).
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
}

impl Default for RtmpIngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            app: "live".into(),
            max_connections: 64,
            idle_timeout: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

struct Shared {
    config: RtmpIngestConfig,
    admission: Arc<dyn Admission>,
    stopping: AtomicBool,
    active: AtomicUsize,
    next_id: AtomicU64,
    /// Open connections, to close them on shutdown.
    connections: Mutex<HashMap<u64, (TcpStream, JoinHandle<()>)>>,
}

/// The running RTMP listener.
pub struct RtmpIngest {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    accept_threads: Vec<JoinHandle<()>>,
}

/// Binds the listener and starts accepting publishers.
pub fn start(config: RtmpIngestConfig, admission: Arc<dyn Admission>) -> io::Result<RtmpIngest> {
    let listener = TcpListener::bind(config.listen)?;
    let local_addr = listener.local_addr()?;
    let tls_listener = match &config.tls {
        Some((addr, tls)) => Some((TcpListener::bind(addr)?, Arc::clone(tls))),
        None => None,
    };
    let tls_addr = match &tls_listener {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    let shared = Arc::new(Shared {
        config,
        admission,
        stopping: AtomicBool::new(false),
        active: AtomicUsize::new(0),
        next_id: AtomicU64::new(1),
        connections: Mutex::new(HashMap::new()),
    });
    let mut accept_threads = Vec::new();
    {
        let shared = Arc::clone(&shared);
        accept_threads.push(
            thread::Builder::new()
                .name("rtmp-accept".into())
                .spawn(move || accept_loop(&shared, &listener, None))?,
        );
    }
    if let Some((listener, tls)) = tls_listener {
        let shared = Arc::clone(&shared);
        accept_threads.push(
            thread::Builder::new()
                .name("rtmps-accept".into())
                .spawn(move || accept_loop(&shared, &listener, Some(tls)))?,
        );
    }
    tracing::info!(listen = %local_addr, tls = ?tls_addr, app = %shared.config.app, "RTMP ingest listening");
    Ok(RtmpIngest {
        local_addr,
        tls_addr,
        shared,
        accept_threads,
    })
}

impl RtmpIngest {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The RTMPS listener's address, when TLS is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Connections open now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Stops accepting and closes every connection (their publishers end
    /// with reason "shutdown").
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.accept_threads.is_empty() {
            return;
        }
        self.shared.stopping.store(true, Ordering::Release);
        // Wake the blocking accepts (a wildcard address through loopback:
        // not every platform connects to 0.0.0.0).
        for mut addr in std::iter::once(self.local_addr).chain(self.tls_addr) {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
        for thread in self.accept_threads.drain(..) {
            let _ = thread.join();
        }
        let connections: Vec<_> = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        for (_, (stream, thread)) in connections {
            let _ = stream.shutdown(Shutdown::Both);
            if thread.join().is_err() {
                tracing::error!("RTMP connection thread panicked");
            }
        }
    }
}

impl Drop for RtmpIngest {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "RTMP accept failed");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(p) => p,
            Err(_) => continue,
        };
        if shared.active.fetch_add(1, Ordering::AcqRel) >= shared.config.max_connections {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%peer, "RTMP connection refused: max_connections reached");
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let Ok(handle) = stream.try_clone() else {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            continue;
        };
        let mut connections = shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Finished connections leave their handles here; drop them as new
        // ones come (their threads have ended or are ending).
        connections.retain(|_, (_, t)| !t.is_finished());
        let spawned = {
            let shared = Arc::clone(shared);
            let tls = tls.clone();
            thread::Builder::new()
                .name(format!("rtmp-{id}"))
                .spawn(move || {
                    // The slot is given back however the thread ends.
                    let _slot = Slot(&shared.active);
                    let run = std::panic::AssertUnwindSafe(|| {
                        session::run(&shared, stream, peer, tls.as_ref())
                    });
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!(%peer, "RTMP connection thread panicked; connection closed");
                    }
                })
        };
        match spawned {
            Ok(thread) => {
                connections.insert(id, (handle, thread));
            }
            Err(e) => {
                shared.active.fetch_sub(1, Ordering::AcqRel);
                tracing::error!(%peer, error = %e, "spawning an RTMP connection thread");
            }
        }
    }
}

/// One of `max_connections`, released when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A publish name as encoders send it: `<stream>?key=<key>` (the query may
/// hold other parameters) or `<stream>:<key>`; `None` for the key when there
/// is none.
pub fn parse_publish_name(name: &str) -> (&str, Option<std::borrow::Cow<'_, str>>) {
    if let Some((stream, query)) = name.split_once('?') {
        return (stream, brook_common::credentials::query_value(query, "key"));
    }
    match name.split_once(':') {
        Some((stream, key)) => (stream, Some(key.into())),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RTMP chunks of one AMF0 message (type 20, chunk stream 3, 128-byte
    /// chunks as a client sends before it changes the chunk size).
    fn amf_message(payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![0x03, 0, 0, 0];
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(20);
        out.extend_from_slice(&[0, 0, 0, 0]);
        for (i, chunk) in payload.chunks(128).enumerate() {
            if i > 0 {
                out.push(0xC3);
            }
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A 65 KB command of nested strict arrays used to overflow the
    /// connection thread's stack in rml_amf0, aborting the whole origin
    /// before any key check; the patched copy (third_party/rml_amf0) refuses
    /// it as an error, which ends that connection only.
    #[test]
    fn deeply_nested_amf_is_an_error_not_an_abort() {
        use rml_rtmp::sessions::{ServerSession, ServerSessionConfig};
        let nested: Vec<u8> = [0x0A, 0, 0, 0, 1].repeat(13_000);
        // On a small stack, so an unbounded recursion could not go unnoticed.
        let outcome = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
                session.handle_input(&amf_message(&nested)).map(drop)
            })
            .unwrap()
            .join()
            .expect("no panic");
        let err = outcome.expect_err("refused");
        assert!(err.to_string().contains("nested deeper"), "{err}");
        // What RTMP clients send still parses: a connect command.
        let mut connect = vec![0x02, 0, 7];
        connect.extend_from_slice(b"connect");
        connect.push(0x00);
        connect.extend_from_slice(&1f64.to_be_bytes());
        connect.extend_from_slice(&[0x03, 0, 3]);
        connect.extend_from_slice(b"app");
        connect.extend_from_slice(&[0x02, 0, 4]);
        connect.extend_from_slice(b"live");
        connect.extend_from_slice(&[0, 0, 0x09]);
        let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
        let message = amf_message(&connect);
        let results = session.handle_input(&message).unwrap();
        assert!(
            results.iter().any(|r| matches!(
                r,
                rml_rtmp::sessions::ServerSessionResult::RaisedEvent(
                    rml_rtmp::sessions::ServerSessionEvent::ConnectionRequested { .. }
                )
            )),
            "{results:?}"
        );
    }

    /// rml_rtmp 0.8.0 panicked on a command with fewer than three values
    /// (found by the `rtmp_session` fuzzer); the patched copy
    /// (third_party/rml_rtmp) answers an error.
    #[test]
    fn a_short_amf_command_is_an_error_not_a_panic() {
        use rml_rtmp::sessions::{ServerSession, ServerSessionConfig};
        let mut command = vec![0x02, 0, 7];
        command.extend_from_slice(b"connect");
        let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            session.handle_input(&amf_message(&command)).map(drop)
        }));
        assert!(outcome.expect("no panic").is_err());
    }

    #[test]
    fn publish_names() {
        assert_eq!(
            parse_publish_name("cam1?key=abc"),
            ("cam1", Some("abc".into()))
        );
        assert_eq!(
            parse_publish_name("cam1?foo=1&key=a%2Bb"),
            ("cam1", Some("a+b".into()))
        );
        assert_eq!(parse_publish_name("cam1:abc"), ("cam1", Some("abc".into())));
        assert_eq!(parse_publish_name("cam1"), ("cam1", None));
        assert_eq!(parse_publish_name("cam1?nokey=1"), ("cam1", None));
        assert_eq!(parse_publish_name(""), ("", None));
    }
}
