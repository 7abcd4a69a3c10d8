//! Pulls that run only while watched (`on_demand = true`): the serving layer
//! says "stream X was asked for" ([`Demand`]), a pull that was idle starts;
//! a playing one stops once nobody has watched for its idle time.
//!
//! ```text
//! HTTP playlist request ─ Demand::wanted("door") ─▶ asked (watch) ─┐
//! every CHECK: audience("door") (hub viewers + WHEP viewers) ───────┤
//!                                                       IdleClock ─┴─▶ Run::Play / Run::Idle ─▶ supervisor
//! ```
//!
//! The clock is sans-IO ([`IdleClock`]: "now" and the viewer count are
//! arguments), so its rules are tested without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::serve::demand::Demand;

/// How many viewers stream X has now (HLS clients seen in the hub's viewer
/// window, WebRTC viewers). Given by whoever starts the pulls.
pub type Audience = Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// How often a playing on-demand pull looks at its audience.
const CHECK: Duration = Duration::from_secs(1);

/// What a pull should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    /// Call the camera and keep calling it (with the backoff).
    Play,
    /// Nobody watches: no session (an on-demand pull between viewers).
    Idle,
    /// The origin stops.
    Shutdown,
}

/// The on-demand pulls' "asked for" signals, by stream. Built once at start
/// (the set of pulls is fixed), so [`Demand::wanted`] takes no lock.
pub struct OnDemand {
    asked: HashMap<String, watch::Sender<u64>>,
}

impl OnDemand {
    pub(super) fn new() -> Self {
        Self {
            asked: HashMap::new(),
        }
    }

    /// Registers an on-demand pull; its controller watches the receiver.
    pub(super) fn add(&mut self, stream: &str) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        self.asked.insert(stream.to_owned(), tx);
        rx
    }

    pub(super) fn is_empty(&self) -> bool {
        self.asked.is_empty()
    }
}

impl Demand for OnDemand {
    fn wanted(&self, stream: &str) -> bool {
        match self.asked.get(stream) {
            Some(tx) => {
                tx.send_modify(|n| *n = n.wrapping_add(1));
                true
            }
            None => false,
        }
    }
}

/// When an on-demand pull plays: from the first request until `idle_after`
/// has passed with no viewer and no request.
#[derive(Debug)]
pub(super) struct IdleClock {
    idle_after: Duration,
    playing: bool,
    last_wanted: Option<Instant>,
}

impl IdleClock {
    pub(super) fn new(idle_after: Duration) -> Self {
        Self {
            idle_after,
            playing: false,
            last_wanted: None,
        }
    }

    /// A viewer asked for the stream. `Some(Play)` when that starts the pull.
    pub(super) fn asked(&mut self, now: Instant) -> Option<Run> {
        self.last_wanted = Some(now);
        (!std::mem::replace(&mut self.playing, true)).then_some(Run::Play)
    }

    /// The periodic look: `viewers` watch now. `Some(Idle)` when the pull
    /// should stop.
    pub(super) fn tick(&mut self, now: Instant, viewers: usize) -> Option<Run> {
        if !self.playing {
            return None;
        }
        if viewers > 0 {
            self.last_wanted = Some(now);
            return None;
        }
        let since = self
            .last_wanted
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        if since >= self.idle_after {
            self.playing = false;
            return Some(Run::Idle);
        }
        None
    }
}

/// Drives one pull's [`Run`]: always [`Run::Play`] for an always-on pull, the
/// [`IdleClock`] for an on-demand one; [`Run::Shutdown`] when `stop` is set.
pub(super) async fn control(
    stream: String,
    on_demand: Option<(watch::Receiver<u64>, Duration, Audience)>,
    mut stop: watch::Receiver<bool>,
    run: watch::Sender<Run>,
) {
    let Some((mut asked, idle_after, audience)) = on_demand else {
        let _ = stop.wait_for(|s| *s).await;
        let _ = run.send(Run::Shutdown);
        return;
    };
    let mut clock = IdleClock::new(idle_after);
    let mut check = tokio::time::interval(CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            s = stop.wait_for(|s| *s) => {
                let _ = s;
                break;
            }
            r = asked.changed() => {
                if r.is_err() {
                    break;
                }
                clock.asked(Instant::now())
            }
            _ = check.tick() => clock.tick(Instant::now(), audience(&stream)),
        };
        match next {
            Some(Run::Play) => {
                tracing::info!(%stream, "RTSP pull starting: a viewer asked (on demand)");
            }
            Some(Run::Idle) => tracing::info!(
                %stream,
                idle_ms = idle_after.as_millis() as u64,
                "RTSP pull stopping: no viewers (on demand)"
            ),
            _ => {}
        }
        if let Some(next) = next {
            let _ = run.send(next);
        }
    }
    let _ = run.send(Run::Shutdown);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Idle until asked; plays while watched; stops once `idle_after` passed
    /// with no viewer and no request; the next request starts it again.
    #[test]
    fn idle_clock_plays_while_watched() {
        let t0 = Instant::now();
        let mut c = IdleClock::new(Duration::from_secs(5));
        assert_eq!(c.tick(at(t0, 0), 0), None, "idle stays idle");
        assert_eq!(
            c.tick(at(t0, 60_000), 3),
            None,
            "viewers alone do not start it"
        );
        assert_eq!(c.asked(at(t0, 1_000)), Some(Run::Play));
        assert_eq!(c.asked(at(t0, 1_500)), None, "already playing");
        // Watched for a minute: no stop, whatever the idle time.
        for s in 2..62 {
            assert_eq!(c.tick(at(t0, s * 1_000), 1), None);
        }
        // The last viewer left at 61 s.
        assert_eq!(c.tick(at(t0, 63_000), 0), None);
        assert_eq!(c.tick(at(t0, 65_999), 0), None);
        assert_eq!(c.tick(at(t0, 66_000), 0), Some(Run::Idle));
        assert_eq!(c.tick(at(t0, 67_000), 0), None, "stopped once");
        assert_eq!(c.asked(at(t0, 90_000)), Some(Run::Play), "asked again");
        // A request alone (a player between its playlist loads) keeps it.
        assert_eq!(c.asked(at(t0, 93_000)), None);
        assert_eq!(c.tick(at(t0, 97_000), 0), None);
        assert_eq!(c.tick(at(t0, 98_000), 0), Some(Run::Idle));
    }

    /// Only configured on-demand streams are "wanted", and each request is
    /// signalled to that pull alone.
    #[test]
    fn demand_signals_only_its_pulls() {
        let mut d = OnDemand::new();
        let mut door = d.add("door");
        let mut gate = d.add("gate");
        assert!(!d.wanted("other"));
        assert!(d.wanted("door"));
        assert!(door.has_changed().unwrap());
        assert!(!gate.has_changed().unwrap());
        door.mark_unchanged();
        gate.mark_unchanged();
        assert!(d.wanted("gate"));
        assert!(!door.has_changed().unwrap());
        assert!(gate.has_changed().unwrap());
    }
}
