//! RTSP pull: the origin plays an IP camera's `rtsp://user:pass@camera/...`
//! (configured per stream, `[streams.<name>.rtsp]`) and publishes it as that
//! stream, through the same admission, reconnect grace, ladder and packager
//! as every other ingest.
//!
//! - `mod.rs`: the supervisor: one thread per pull, each with its own
//!   current-thread tokio runtime, running sessions one after another with a
//!   backoff (1 s doubling to 30 s; back to 1 s once a session delivered
//!   media) while the pull should play, until the origin stops.
//! - `demand.rs`: when a pull plays: always, or on demand (from a viewer's
//!   request until its idle time passed with nobody watching).
//! - `session.rs`: one session with the camera through `retina` (DESCRIBE,
//!   SETUP over TCP interleaved or UDP, PLAY, depacketized frames), into the
//!   pipeline's [`Publish`](crate::ingest::Publish).
//! - `media.rs`: sans-IO: which streams to take, decoder configurations and
//!   frames onto the packager's timeline (fuzzed: `origin/fuzz`, target
//!   `rtsp_media`).
//! - `url.rs`: the camera URL with its credentials kept apart and redacted
//!   in every log line and `Debug`.
//!
//! ```text
//! thread rtsp-<stream> ─ current-thread runtime
//!   demand::control ─ Run (Play / Idle / Shutdown) ─┐
//!   loop { while Run::Play:                          ▼
//!          session::run ─ retina ─▶ RtspMedia ─▶ Admission::open(Claim { key: the stream's own })
//!          ─▶ Publish::tracks/frame ... close; sleep(backoff) }
//! ```
//!
//! See docs/rtsp.md.

mod demand;
pub mod media;
mod session;
pub mod url;

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::sync::watch;

use crate::ingest::Admission;
use crate::serve::demand::Demand;
pub use demand::Audience;
use demand::{OnDemand, Run};
pub use url::{CameraUrl, UrlError};

/// How the camera sends RTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: through NAT and firewalls, no
    /// loss (TCP retransmits). The default.
    #[default]
    Tcp,
    /// RTP over UDP: less delay on a clean LAN; retina has no reorder buffer
    /// (a reordered packet is a lost one) and sends no receiver reports.
    Udp,
}

/// One stream to pull.
#[derive(Clone)]
pub struct Pull {
    pub stream: String,
    /// The stream's own key: the pull is admitted like any publisher.
    pub key: String,
    pub url: CameraUrl,
    pub transport: RtspTransport,
    /// Some: played only while watched, stopped after this long without a
    /// viewer. None: always on.
    pub on_demand: Option<Duration>,
}

/// The key is never shown, the URL only redacted.
impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pull")
            .field("stream", &self.stream)
            .field("key", &"<redacted>")
            .field("url", &self.url)
            .field("transport", &self.transport)
            .field("on_demand", &self.on_demand)
            .finish()
    }
}

/// Timings shared by every pull.
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// First wait after a failed or ended session.
    pub backoff_min: Duration,
    /// The wait doubles up to this.
    pub backoff_max: Duration,
    /// Resolving, connecting, DESCRIBE, SETUP and PLAY together.
    pub connect_timeout: Duration,
    /// A playing camera that sends no frame for this long is dropped and
    /// called again.
    pub idle_timeout: Duration,
}

impl Default for PullSettings {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The running pulls.
pub struct RtspPulls {
    stop: watch::Sender<bool>,
    threads: Vec<(String, JoinHandle<()>)>,
    demand: Option<Arc<OnDemand>>,
}

/// Starts one thread per pull. They run until [`RtspPulls::shutdown`].
///
/// Why a thread each, with its own current-thread runtime, rather than tasks
/// on the origin's background runtime: the [`Publish`](crate::ingest::Publish)
/// calls block (they run the packager, or write into the transcoder's pipe)
/// and must all come from one thread in order; on the shared one-worker
/// runtime they would hold up the reconnect timers and archive writes of every
/// stream, and `spawn_blocking` per frame would give up the ordering. A camera
/// is one long-lived connection, so a thread per pull is what the RTMP
/// ingest's thread per connection already is.
///
/// `audience` tells on-demand pulls how many viewers their stream has; the
/// serving layer tells them it was asked for through [`RtspPulls::demand`].
pub fn start(
    pulls: Vec<Pull>,
    settings: PullSettings,
    admission: Arc<dyn Admission>,
    audience: Audience,
) -> io::Result<RtspPulls> {
    let (stop, stopped) = watch::channel(false);
    let mut on_demand = OnDemand::new();
    let asked: Vec<_> = pulls
        .iter()
        .map(|p| p.on_demand.map(|idle| (on_demand.add(&p.stream), idle)))
        .collect();
    let mut threads = Vec::new();
    for (pull, asked) in pulls.into_iter().zip(asked) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (settings, admission, stopped) = (settings.clone(), admission.clone(), stopped.clone());
        let name = pull.stream.clone();
        let first = if asked.is_some() {
            Run::Idle
        } else {
            Run::Play
        };
        let (run_tx, mut run) = watch::channel(first);
        let control = demand::control(
            name.clone(),
            asked.map(|(rx, idle)| (rx, idle, audience.clone())),
            stopped,
            run_tx,
        );
        match pull.on_demand {
            Some(idle) => {
                tracing::info!(stream = %pull.stream, camera = %pull.url, transport = ?pull.transport, idle_stop_ms = idle.as_millis() as u64, "RTSP pull ready: on demand")
            }
            None => {
                tracing::info!(stream = %pull.stream, camera = %pull.url, transport = ?pull.transport, "RTSP pull starting")
            }
        }
        let thread = thread::Builder::new()
            .name(format!("rtsp-{name}"))
            .spawn(move || {
                runtime.block_on(async {
                    tokio::spawn(control);
                    supervise(&pull, &settings, &*admission, &mut run).await;
                });
            })?;
        threads.push((name, thread));
    }
    let demand = (!on_demand.is_empty()).then(|| Arc::new(on_demand));
    Ok(RtspPulls {
        stop,
        threads,
        demand,
    })
}

impl RtspPulls {
    /// What the serving layer tells about requests, when a pull is on demand.
    pub fn demand(&self) -> Option<Arc<dyn Demand>> {
        self.demand.clone().map(|d| d as Arc<dyn Demand>)
    }

    /// Stops every pull: playing sessions end with reason "shutdown".
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        let _ = self.stop.send(true);
        for (stream, thread) in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!(%stream, "RTSP pull thread panicked");
            }
        }
    }
}

impl Drop for RtspPulls {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Sessions one after another while the pull should play, with a backoff
/// between them.
async fn supervise(
    pull: &Pull,
    settings: &PullSettings,
    admission: &dyn Admission,
    run: &mut watch::Receiver<Run>,
) {
    let mut backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
    let mut memory = session::Memory::default();
    loop {
        let now = *run.borrow_and_update();
        match now {
            Run::Shutdown => break,
            Run::Idle => {
                if run.changed().await.is_err() {
                    break;
                }
                continue;
            }
            Run::Play => {}
        }
        // The session watches `run` itself, so a playing one closes its
        // publisher before it returns.
        let ended = session::run(pull, settings, admission, run, &mut memory).await;
        let now = *run.borrow();
        match now {
            Run::Shutdown => break,
            Run::Idle => {
                // Stopped, not failed: the next viewer's call is a first one.
                backoff.reset();
                continue;
            }
            Run::Play => {}
        }
        if ended.delivered {
            backoff.reset();
        }
        let wait = backoff.next();
        tracing::warn!(
            stream = %pull.stream,
            camera = %pull.url,
            reason = %ended.reason,
            retry_in_ms = wait.as_millis() as u64,
            "RTSP pull: camera unavailable, calling again"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = run.wait_for(|r| *r != Run::Play) => if r.is_err() { break },
        }
    }
    tracing::info!(stream = %pull.stream, "RTSP pull stopped");
}

/// Doubling waits between attempts, within bounds.
#[derive(Debug, Clone)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_starts_over() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<u64> = (0..7).map(|_| b.next().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next(), Duration::from_secs(1));
    }

    /// A pull's Debug (what a config dump or a log field would print) shows
    /// neither the user name nor the password.
    #[test]
    fn pull_debug_is_redacted() {
        let pull = Pull {
            stream: "cam1".into(),
            key: "the-stream-key".into(),
            url: CameraUrl::parse("rtsp://operator:pa55word@10.1.2.3/h264").unwrap(),
            transport: RtspTransport::Tcp,
            on_demand: None,
        };
        let shown = format!("{pull:?}");
        for secret in ["pa55word", "operator", "the-stream-key"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("rtsp://***@10.1.2.3/h264"), "{shown}");
    }
}
