//! The socket loop: one UDP socket, one thread (a current-thread tokio
//! runtime), every session. The only IO in `whip/`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::frames::FramesConfig;
use super::http::{Command, Endpoint, EndpointSettings};
use super::mux::{Mux, Peer};
use super::session::SessionConfig;
use super::WhipConfig;
use crate::ingest::Admission;

/// Largest datagram read (WebRTC keeps packets under the ~1200-byte MTU).
const RECV_BUF: usize = 2048;

/// Another kind of session on this socket: WHEP viewers (`egress::whep`)
/// share the port, the demultiplexer and the DTLS certificate with WHIP
/// publishers.
pub struct Guest {
    /// Sessions to start and end.
    pub commands: UnboundedReceiver<GuestCommand>,
    /// Notified when guest sessions have work from outside the socket (their
    /// frames arrived): every session's [`Peer::handle_wakeup`] runs.
    pub wake: Arc<Notify>,
    /// Told when a session ended on its own (its resource goes).
    pub forget: Forget,
}

/// Tells a guest's endpoint that a session of its ended.
pub type Forget = Box<dyn Fn(&str) + Send>;

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest").finish_non_exhaustive()
    }
}

/// What a guest's endpoint tells the socket loop.
#[derive(Debug)]
pub enum GuestCommand {
    /// A session whose answer is being sent.
    Start(Box<dyn Peer>),
    /// End a session (DELETE).
    End { id: String, reason: String },
}

/// A running WHIP ingest: its endpoint for the HTTP layer, and its socket.
pub struct WhipServer {
    endpoint: Arc<Endpoint>,
    local_addr: SocketAddr,
    candidates: Vec<SocketAddr>,
    control: UnboundedSender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WhipServer {
    pub fn endpoint(&self) -> Arc<Endpoint> {
        self.endpoint.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host candidates every answer carries.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// The DTLS certificate, crypto and host candidates every session on this
    /// socket uses (for a guest's sessions).
    pub fn session_config(&self) -> SessionConfig {
        self.endpoint.session_config().clone()
    }

    /// Hosts `guest`'s sessions on this socket (one guest).
    pub fn host(&self, guest: Guest) {
        let _ = self.control.send(Command::Host(Box::new(guest)));
    }

    /// Ends every session (their sinks are closed) and stops the socket loop.
    pub fn shutdown(&self) {
        let _ = self.control.send(Command::Shutdown);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Binds `config.listen` and starts the socket loop. `segment_target` is the
/// packager's (keyframes are requested to start segments there).
pub fn start(
    config: &WhipConfig,
    segment_target: Duration,
    sink: Arc<dyn Admission>,
) -> io::Result<WhipServer> {
    let socket = UdpSocket::bind(config.listen)?;
    socket.set_nonblocking(true)?;
    let local_addr = socket.local_addr()?;
    let candidates = config.candidate_addrs(local_addr);
    let mut session = SessionConfig::new(candidates.clone()).map_err(io::Error::other)?;
    session.ice_timeout = Duration::from_millis(config.ice_timeout_ms);
    session.media_timeout = Duration::from_millis(config.media_timeout_ms);
    session.jitter_buffer = Duration::from_millis(config.jitter_buffer_ms);
    session.frames = FramesConfig {
        segment_target,
        ..FramesConfig::default()
    };
    let settings = EndpointSettings {
        max_offer_bytes: config.max_offer_bytes,
        max_sessions: config.max_sessions,
        ice_servers: config.ice_servers.clone(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let endpoint = Arc::new(Endpoint::new(sink, session, settings, tx.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mux: Mux<Box<dyn Peer>> = Mux::new(candidates.clone());
    let ep = endpoint.clone();
    let thread = std::thread::Builder::new()
        .name("brook-whip".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::UdpSocket::from_std(socket) {
                    Ok(socket) => run(socket, rx, mux, ep).await,
                    Err(e) => warn!("WHIP socket: {e}"),
                }
            });
        })?;
    info!(udp = %local_addr, candidates = ?candidates, "WHIP ingest listening");
    Ok(WhipServer {
        endpoint,
        local_addr,
        candidates,
        control: tx,
        thread: Mutex::new(Some(thread)),
    })
}

async fn run(
    socket: tokio::net::UdpSocket,
    mut rx: UnboundedReceiver<Command>,
    mut mux: Mux<Box<dyn Peer>>,
    endpoint: Arc<Endpoint>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut guest_commands: Option<UnboundedReceiver<GuestCommand>> = None;
    let mut guest_wake: Option<Arc<Notify>> = None;
    let mut forget: Option<Forget> = None;
    loop {
        flush(&socket, &mut mux, &endpoint, forget.as_deref());
        let deadline = mux
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => mux.handle_datagram(Instant::now(), from, &buf[..n]),
                // ICMP port unreachable from a peer that went away, and the like.
                Err(e) => debug!("WHIP socket: {e}"),
            },
            cmd = rx.recv() => match cmd {
                Some(Command::Start(session)) => mux.insert(session as Box<dyn Peer>),
                Some(Command::End { id, reason }) => {
                    mux.end(&id, &reason);
                }
                Some(Command::Host(g)) => {
                    let Guest { commands, wake, forget: f } = *g;
                    guest_commands = Some(commands);
                    guest_wake = Some(wake);
                    forget = Some(f);
                }
                Some(Command::Shutdown) | None => break,
            },
            cmd = guest_command(guest_commands.as_mut()) => match cmd {
                Some(GuestCommand::Start(session)) => mux.insert(session),
                Some(GuestCommand::End { id, reason }) => {
                    mux.end(&id, &reason);
                }
                None => guest_commands = None,
            },
            _ = wakeup(guest_wake.as_deref()) => mux.handle_wakeup(Instant::now()),
            _ = tokio::time::sleep_until(deadline.into()) => mux.handle_timeout(Instant::now()),
        }
    }
    mux.end_all("the origin is shutting down");
    flush(&socket, &mut mux, &endpoint, forget.as_deref());
    let s = mux.stats();
    info!(
        datagrams = s.datagrams,
        unrouted = s.unrouted,
        sessions = s.sessions_started,
        "WHIP ingest stopped"
    );
}

/// Sends what the sessions produced (dropping what the socket cannot take now,
/// as UDP would), and retires ended sessions' resources.
async fn guest_command(
    commands: Option<&mut UnboundedReceiver<GuestCommand>>,
) -> Option<GuestCommand> {
    match commands {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

async fn wakeup(wake: Option<&Notify>) {
    match wake {
        Some(w) => w.notified().await,
        None => std::future::pending().await,
    }
}

fn flush(
    socket: &tokio::net::UdpSocket,
    mux: &mut Mux<Box<dyn Peer>>,
    endpoint: &Endpoint,
    forget: Option<&(dyn Fn(&str) + Send)>,
) {
    while let Some(d) = mux.poll_transmit() {
        if let Err(e) = socket.try_send_to(&d.data, d.destination) {
            debug!(to = %d.destination, "WHIP send: {e}");
        }
    }
    while let Some((id, _reason)) = mux.poll_ended() {
        // Ids are 128 random bits: each endpoint forgets only its own.
        endpoint.forget(&id);
        if let Some(f) = forget {
            f(&id);
        }
    }
}
