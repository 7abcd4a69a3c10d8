//! Rebuffering for Prometheus: what the viewers of each live stream watched
//! and stalled, added up in this isolate from the beacons' deltas
//! ([`super::Delta`]) and pushed to the origins every [`PUSH_MS`], where
//! `/metrics` has them as counters (`brook_qoe_watch_seconds_total`,
//! `brook_qoe_stall_seconds_total`, `brook_qoe_stalls_total`, by stream)
//! and the `BrookRebufferRatioHigh` alert divides one by the other.
//!
//! ```text
//! beacon ─▶ Pending::add; Pending::schedule ─▶ (a waitUntil task, up to 10 s later) Pending::take
//!        ─▶ Batch::body ─▶ POST <origin>/qoe/push ─▶ Batch::settle(answer): streams the origin
//!           does not have go to the next origin; what no origin answered goes back (Pending::restore)
//! ```
//!
//! What a beacon adds is pushed within [`PUSH_MS`] (the task that pushes it
//! is started by the beacon), and an isolate pushes at most once per
//! [`PUSH_MS`].
//!
//! Sans-IO: `now` is an argument; `bindings/qoe.rs` does the fetches.
//! Deltas, not totals: every isolate pushes only what it was told, so the
//! origin can simply add (a session whose beacons reach two isolates is not
//! counted twice). A push the origin applied but whose answer was lost is
//! pushed again (counted twice); a push no origin answers is kept for the
//! next one, [`MAX_STREAMS`] streams at most.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Delta;

/// How often an isolate pushes, ms (at most: a push happens on a beacon).
pub const PUSH_MS: u64 = 10_000;
/// Most streams kept between pushes (and sent in one).
pub const MAX_STREAMS: usize = 256;
/// The origin's endpoint.
pub const PATH: &str = "/qoe/push";
/// A push task not heard from for this long (its `waitUntil` was cut
/// short) is replaced by a new one, ms.
pub const STALE_MS: u64 = 60_000;

/// One stream's sums since the last push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sums {
    pub watch_ms: u64,
    pub stall_ms: u64,
    pub stalls: u64,
}

impl Sums {
    fn add(&mut self, other: Sums) {
        self.watch_ms = self.watch_ms.saturating_add(other.watch_ms);
        self.stall_ms = self.stall_ms.saturating_add(other.stall_ms);
        self.stalls = self.stalls.saturating_add(other.stalls);
    }
}

impl From<Delta> for Sums {
    fn from(d: Delta) -> Self {
        Self {
            watch_ms: d.watch_ms,
            stall_ms: d.stall_ms,
            stalls: u64::from(d.stalls),
        }
    }
}

/// What waits for the next push.
#[derive(Debug, Default)]
pub struct Pending {
    streams: BTreeMap<String, Sums>,
    /// When the last push was taken (ms since the epoch).
    last_push: Option<u64>,
    /// When the task that will take the next push was started.
    scheduled: Option<u64>,
    /// Deltas dropped because [`MAX_STREAMS`] streams were waiting.
    pub dropped: u64,
}

impl Pending {
    /// Adds a beacon's delta to `stream` (a checked name). Nothing (and
    /// `false`) when [`MAX_STREAMS`] other streams are waiting.
    pub fn add(&mut self, stream: &str, delta: Delta) -> bool {
        if delta == Delta::default() {
            return true;
        }
        self.merge(stream, delta.into())
    }

    fn merge(&mut self, stream: &str, sums: Sums) -> bool {
        if let Some(s) = self.streams.get_mut(stream) {
            s.add(sums);
            return true;
        }
        if self.streams.len() >= MAX_STREAMS {
            self.dropped += 1;
            return false;
        }
        self.streams.insert(stream.to_owned(), sums);
        true
    }

    /// Whether to start a push task now, and how long it should wait
    /// before it [`take`](Self::take)s the batch: `None` while something
    /// waits and a task (not [`STALE_MS`] old) will push it, or nothing waits.
    pub fn schedule(&mut self, now: u64) -> Option<u64> {
        let running = self
            .scheduled
            .is_some_and(|at| now.saturating_sub(at) < STALE_MS);
        if self.streams.is_empty() || running {
            return None;
        }
        self.scheduled = Some(now);
        let due = self.last_push.map_or(now, |at| at.saturating_add(PUSH_MS));
        Some(due.saturating_sub(now))
    }

    /// The batch to push now (the push task calls it when its wait is
    /// over): everything waiting, if anything is.
    pub fn take(&mut self, now: u64) -> Option<Batch> {
        self.scheduled = None;
        if self.streams.is_empty() {
            return None;
        }
        self.last_push = Some(now);
        Some(Batch {
            streams: std::mem::take(&mut self.streams),
        })
    }

    /// Puts back what could not be pushed, for the next push.
    pub fn restore(&mut self, batch: Batch) {
        for (stream, sums) in batch.streams {
            self.merge(&stream, sums);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Sums on their way to the origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    streams: BTreeMap<String, Sums>,
}

/// The request body: `{"v":1,"streams":{"<stream>":{"watch_ms":…,"stall_ms":…,"stalls":…}}}`.
#[derive(Serialize)]
struct Body<'a> {
    v: u32,
    streams: &'a BTreeMap<&'a String, Sums>,
}

/// The origin's answer: the streams it does not have, and those whose sums
/// it refused (neither counted there).
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    unknown: Vec<String>,
    #[serde(default)]
    refused: Vec<String>,
}

impl Batch {
    /// The request body. Sums are cut to what the origin takes (stall time
    /// within the watch time, at most one stall per 100 ms of it), so many
    /// sessions' small deltas never get a stream refused.
    pub fn body(&self) -> Vec<u8> {
        let streams: BTreeMap<&String, Sums> = self
            .streams
            .iter()
            .map(|(name, s)| {
                let sums = Sums {
                    watch_ms: s.watch_ms,
                    stall_ms: s.stall_ms.min(s.watch_ms),
                    stalls: s.stalls.min(s.watch_ms / 100 + 1),
                };
                (name, sums)
            })
            .collect();
        serde_json::to_vec(&Body {
            v: 1,
            streams: &streams,
        })
        .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// The streams in the batch.
    pub fn streams(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// Splits off the streams `keep` says no to.
    pub fn split_off(&mut self, keep: impl Fn(&str) -> bool) -> Batch {
        let (kept, rest) = std::mem::take(&mut self.streams)
            .into_iter()
            .partition(|(name, _)| keep(name));
        self.streams = kept;
        Batch { streams: rest }
    }

    /// Adds `other`'s sums to this batch.
    pub fn merge(&mut self, other: Batch) {
        for (name, sums) in other.streams {
            self.streams.entry(name).or_default().add(sums);
        }
    }

    /// After an origin answered 200 with `body`: what is left for the next
    /// origin (the streams it said it does not have) and how many streams it
    /// refused, or `Err` when the answer is not the origin's (then the whole
    /// batch goes on).
    pub fn settle(self, body: &[u8]) -> Result<(Batch, usize), Batch> {
        let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
            return Err(self);
        };
        let mut left = Batch::default();
        let mut streams = self.streams;
        for name in answer.unknown {
            if let Some((name, sums)) = streams.remove_entry(&name) {
                left.streams.insert(name, sums);
            }
        }
        Ok((left, answer.refused.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(watch_ms: u64, stall_ms: u64, stalls: u32) -> Delta {
        Delta {
            watch_ms,
            stall_ms,
            stalls,
        }
    }

    #[test]
    fn adds_up_and_pushes_every_ten_seconds() {
        let mut p = Pending::default();
        let t = 1_700_000_000_000;
        assert_eq!(p.schedule(t), None, "nothing waits");
        assert!(p.take(t).is_none());
        p.add("cam1", d(10_000, 500, 1));
        assert_eq!(p.schedule(t), Some(0), "the first push goes at once");
        assert_eq!(p.schedule(t), None, "one task at a time");
        p.add("cam1", d(9_000, 0, 0));
        p.add("cam2", d(10_000, 2_000, 2));
        p.add("cam3", Delta::default());
        let batch = p.take(t).unwrap();
        assert!(p.is_empty());
        assert_eq!(
            String::from_utf8(batch.body()).unwrap(),
            r#"{"v":1,"streams":{"cam1":{"watch_ms":19000,"stall_ms":500,"stalls":1},"cam2":{"watch_ms":10000,"stall_ms":2000,"stalls":2}}}"#
        );
        // The next one waits for the rest of the 10 s.
        p.add("cam1", d(1, 0, 0));
        assert_eq!(p.schedule(t + 4_000), Some(PUSH_MS - 4_000));
        assert_eq!(p.schedule(t + 5_000), None);
        assert!(p.take(t + PUSH_MS).is_some());
        assert_eq!(p.schedule(t + PUSH_MS + 1), None, "nothing waits");
        // A task cut short is replaced.
        p.add("cam1", d(1, 0, 0));
        assert_eq!(p.schedule(t + 30_000), Some(0));
        assert_eq!(p.schedule(t + 30_000 + STALE_MS - 1), None);
        assert_eq!(p.schedule(t + 30_000 + STALE_MS), Some(0));
    }

    #[test]
    fn unknown_streams_go_on_and_failures_come_back() {
        let mut p = Pending::default();
        p.add("cam1", d(10_000, 500, 1));
        p.add("cam2", d(10_000, 0, 0));
        let batch = p.take(0).unwrap();
        let (left, refused) = batch
            .clone()
            .settle(br#"{"unknown":["cam2","never-sent"],"refused":[]}"#)
            .unwrap();
        assert_eq!(refused, 0);
        assert_eq!(left.len(), 1);
        assert!(left.body().starts_with(br#"{"v":1,"streams":{"cam2""#));
        assert!(batch.clone().settle(b"{}").unwrap().0.is_empty());
        assert_eq!(
            batch.clone().settle(br#"{"refused":["cam1"]}"#).unwrap().1,
            1
        );
        let not_origin = batch.settle(b"<html>").unwrap_err();
        assert_eq!(not_origin.len(), 2);
        p.add("cam1", d(1_000, 0, 0));
        p.restore(not_origin);
        assert_eq!(p.schedule(1_000), Some(PUSH_MS - 1_000));
        let again = p.take(PUSH_MS).unwrap();
        assert!(again
            .body()
            .starts_with(br#"{"v":1,"streams":{"cam1":{"watch_ms":11000,"stall_ms":500"#));
    }

    #[test]
    fn bodies_are_what_the_origin_takes() {
        let mut p = Pending::default();
        // Many sessions' small deltas: 40 stalls in 1.5 s of watching.
        for _ in 0..40 {
            p.add("cam1", d(37, 37, 1));
        }
        let body = String::from_utf8(p.take(0).unwrap().body()).unwrap();
        assert_eq!(
            body,
            r#"{"v":1,"streams":{"cam1":{"watch_ms":1480,"stall_ms":1480,"stalls":15}}}"#
        );
    }

    #[test]
    fn batches_split_and_merge() {
        let mut p = Pending::default();
        p.add("cam1", d(1_000, 10, 1));
        p.add("cam2", d(2_000, 0, 0));
        p.add("cam3", d(3_000, 0, 0));
        let mut batch = p.take(0).unwrap();
        let rest = batch.split_off(|s| s == "cam2");
        assert_eq!(batch.streams().collect::<Vec<_>>(), ["cam2"]);
        assert_eq!(rest.streams().collect::<Vec<_>>(), ["cam1", "cam3"]);
        let mut again = Batch::default();
        again.merge(rest.clone());
        again.merge(rest);
        assert!(again.body().starts_with(
            br#"{"v":1,"streams":{"cam1":{"watch_ms":2000,"stall_ms":20,"stalls":2}"#
        ));
    }

    #[test]
    fn streams_waiting_are_bounded() {
        let mut p = Pending::default();
        for i in 0..MAX_STREAMS {
            assert!(p.add(&format!("s{i}"), d(1, 0, 0)));
        }
        assert!(!p.add("one-more", d(1, 0, 0)));
        assert!(p.add("s0", d(1, 0, 0)), "a waiting stream still adds up");
        assert_eq!(p.dropped, 1);
        assert_eq!(p.take(0).unwrap().len(), MAX_STREAMS);
    }
}
