//! Viewer sessions and the aggregates ops look at, computed from what the
//! edge sees: each media request's CMCD and each player beacon. Sans-IO:
//! `now` (ms since the epoch) is always an argument.
//!
//! Definitions (Mux Data's are the reference; docs/qoe.md compares):
//!
//! | aggregate | definition |
//! |---|---|
//! | viewers | sessions with a request or beacon in the last [`ACTIVE_MS`], not ended |
//! | watch time | sum of the sessions' `watch_ms`: from the play request to now or the end, startup and stalls included |
//! | startup time p50/p95 | over sessions that started: play request to first frame |
//! | rebuffering ratio | total stall time / total watch time |
//! | average bitrate | the CMCD `br` of the video objects requested, weighted by their duration `d` |
//! | rendition mix | share of the requested video duration per rendition |
//! | live latency p50/p95 | over the sessions' latest latency (live only) |
//! | error rate | sessions that ended on a fatal error / sessions |
//! | exits before start | sessions that left before the first frame, without an error / sessions |
//!
//! Sessions are kept per (stream, `sid`). Memory is bounded whatever viewers
//! send: at most [`MAX_SESSIONS`] sessions (the least recently seen go
//! first, [`EVICT_BATCH`] at a time), [`MAX_RENDITIONS`] renditions each, [`MAX_POINTS`] history
//! points; sessions quiet for [`RETAIN_MS`] are dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// The largest CMCD `br` (kbit/s) and `d` (ms) counted: 1 Gbit/s and a
/// minute-long segment; larger values are not a real player's.
const MAX_CMCD_KBPS: u32 = 1_000_000;
const MAX_CMCD_DURATION_MS: u32 = 60_000;

use serde::Serialize;

use super::beacon::{valid_sid, Beacon, Delta, Event};
use super::cmcd::Cmcd;

/// A session is a current viewer while it was heard from this recently.
pub const ACTIVE_MS: u64 = 20_000;
/// Sessions quiet for this long are forgotten.
pub const RETAIN_MS: u64 = 15 * 60_000;
/// Most sessions kept.
pub const MAX_SESSIONS: usize = 10_000;
/// Sessions dropped at once when [`MAX_SESSIONS`] is reached.
pub const EVICT_BATCH: usize = 100;
/// Most renditions tracked per session; more are counted under `other`.
pub const MAX_RENDITIONS: usize = 8;
/// One history point per this interval.
pub const POINT_MS: u64 = 5_000;
/// History points kept (30 min at [`POINT_MS`]).
pub const MAX_POINTS: usize = 360;
/// Streams named in one history point (the ones with most viewers).
pub const MAX_POINT_STREAMS: usize = 16;
/// Sessions listed in a report (most recently heard first).
pub const MAX_LISTED_SESSIONS: usize = 50;
/// How far a beacon's `watch_ms` may run ahead of the time the edge has
/// known the session (the page loads before its first request).
pub const WATCH_SLACK_MS: u64 = 30_000;
/// Longest country code kept (`cf.country` is two letters, `T1` for Tor).
const COUNTRY_LEN: usize = 2;

/// Where a request or beacon came from, as the edge knows it (never from
/// the viewer's own words).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The stream or asset (a checked name from the path).
    pub stream: &'a str,
    /// `cf.country`, or `None`.
    pub country: Option<&'a str>,
    /// The rendition the path names, if any (a checked name).
    pub rendition: Option<&'a str>,
    /// Whether the path is an init, part or segment (media the viewer
    /// watches), for players that send no `ot`.
    pub media_object: bool,
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Yes,
    /// No (valid) session id: nothing to attach it to.
    NoSession,
}

#[derive(Debug, Clone, Default)]
struct RenditionTime {
    name: String,
    /// Requested video duration, ms.
    media_ms: u64,
    /// Sum of `br` (kbps) × `d` (ms) of the objects requested.
    kbps_ms: u64,
}

#[derive(Debug, Clone, Default)]
struct Session {
    country: String,
    first_ms: u64,
    last_ms: u64,
    renditions: Vec<RenditionTime>,
    /// Requests with CMCD `bs` (the buffer starved before them).
    starved: u32,
    /// Latest CMCD `mtp`, kbps.
    throughput_kbps: Option<u32>,
    // From beacons:
    beacons: u32,
    started: bool,
    startup_ms: Option<u64>,
    watch_ms: u64,
    stalls: u32,
    stall_ms: u64,
    latency_ms: Option<u64>,
    error: Option<String>,
    ended: bool,
    exited_before_start: bool,
    /// Watch time and stalls this session's beacons have added to the
    /// stream's counters here ([`Beacon::delta`]).
    delta_watch_ms: u64,
    delta_stalls: u64,
}

impl Session {
    fn active(&self, now: u64) -> bool {
        !self.ended && now.saturating_sub(self.last_ms) <= ACTIVE_MS
    }

    fn rendition_mut(&mut self, name: &str) -> &mut RenditionTime {
        let at = match self.renditions.iter().position(|r| r.name == name) {
            Some(at) => at,
            None if self.renditions.len() < MAX_RENDITIONS => {
                self.renditions.push(RenditionTime {
                    name: name.to_owned(),
                    ..Default::default()
                });
                self.renditions.len() - 1
            }
            None => match self.renditions.iter().position(|r| r.name == "other") {
                Some(at) => at,
                None => {
                    // Fold the last slot into `other`.
                    let last = self.renditions.len() - 1;
                    if let Some(r) = self.renditions.get_mut(last) {
                        r.name = "other".into();
                    }
                    last
                }
            },
        };
        // `at` is an index that exists: found, pushed or the last one.
        let last = self.renditions.len().saturating_sub(1);
        &mut self.renditions[at.min(last)]
    }

    /// The rendition with the most requested time.
    fn main_rendition(&self) -> Option<&str> {
        self.renditions
            .iter()
            .max_by_key(|r| r.media_ms)
            .map(|r| r.name.as_str())
    }

    fn played(&self, rendition: &str) -> bool {
        self.renditions.iter().any(|r| r.name == rendition)
    }

    fn bitrate(&self, rendition: Option<&str>) -> (u64, u64) {
        self.renditions
            .iter()
            .filter(|r| rendition.is_none_or(|want| r.name == want))
            .fold((0u64, 0u64), |(kd, d), r| {
                (kd.saturating_add(r.kbps_ms), d.saturating_add(r.media_ms))
            })
    }
}

/// Which sessions a report covers (`None`: all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub stream: Option<String>,
    pub country: Option<String>,
    pub rendition: Option<String>,
}

/// The aggregates of a set of sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Aggregates {
    pub viewers: u32,
    pub sessions: u32,
    pub watch_time_s: f64,
    pub startup_p50_ms: Option<u64>,
    pub startup_p95_ms: Option<u64>,
    pub rebuffer_ratio: Option<f64>,
    pub stalls: u64,
    pub avg_bitrate_kbps: Option<f64>,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    pub errors: u32,
    pub error_rate: Option<f64>,
    pub exits_before_start: u32,
    pub exit_before_start_rate: Option<f64>,
    /// Media requests whose CMCD said the buffer had starved.
    pub starved_requests: u64,
}

/// One rendition's share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenditionShare {
    pub rendition: String,
    /// Share of the requested video duration, 0..=1.
    pub share: f64,
    pub media_s: f64,
    pub avg_bitrate_kbps: Option<f64>,
}

/// One session, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub sid: String,
    pub stream: String,
    pub country: String,
    pub rendition: Option<String>,
    pub state: &'static str,
    pub watch_s: f64,
    pub startup_ms: Option<u64>,
    pub stalls: u32,
    pub rebuffer_ratio: Option<f64>,
    pub avg_bitrate_kbps: Option<f64>,
    pub throughput_kbps: Option<u32>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

/// One point of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub t: u64,
    pub viewers: u32,
    pub avg_bitrate_kbps: Option<f64>,
    pub rebuffer_ratio: Option<f64>,
    pub startup_p50_ms: Option<u64>,
    pub latency_p50_ms: Option<u64>,
    /// Viewers per stream (the [`MAX_POINT_STREAMS`] largest).
    pub streams: BTreeMap<String, u32>,
}

/// `GET /_brook/qoe`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub now_ms: u64,
    pub active_window_s: u64,
    pub filter: FilterEcho,
    pub totals: Aggregates,
    pub streams: Vec<Labelled>,
    pub countries: Vec<Labelled>,
    pub renditions: Vec<RenditionShare>,
    pub sessions: Vec<SessionRow>,
    pub history: Vec<Point>,
    /// Sessions forgotten early because [`MAX_SESSIONS`] was reached.
    pub sessions_evicted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterEcho {
    pub stream: Option<String>,
    pub country: Option<String>,
    pub rendition: Option<String>,
}

/// Aggregates under a label (a stream or a country).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Labelled {
    pub key: String,
    #[serde(flatten)]
    pub aggregates: Aggregates,
}

/// One isolate's (or a test's) sessions and history.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// By (stream, sid).
    sessions: HashMap<(String, String), Session>,
    history: VecDeque<Point>,
    last_point_ms: u64,
    last_sweep_ms: u64,
    evicted: u64,
}

impl Aggregator {
    /// Records one media request's CMCD.
    pub fn record_cmcd(&mut self, at: Origin<'_>, cmcd: &Cmcd, now: u64) -> Recorded {
        let Some(sid) = cmcd.sid.as_deref().filter(|s| valid_sid(s)) else {
            return Recorded::NoSession;
        };
        self.tick(now);
        let s = self.session(at, sid, now);
        if cmcd.bs {
            s.starved = s.starved.saturating_add(1);
        }
        if let Some(mtp) = cmcd.mtp {
            s.throughput_kbps = Some(mtp);
        }
        let video = match cmcd.ot {
            Some(ot) => ot.is_media() && ot != super::cmcd::ObjectType::Audio,
            None => at.media_object,
        };
        // Plausible values only: a segment of at most a minute at up to
        // 1 Gbit/s (one viewer's CMCD must not set everyone's averages).
        let plausible = |br: u32, d: u32| br <= MAX_CMCD_KBPS && d <= MAX_CMCD_DURATION_MS;
        if let (true, Some(br), Some(d)) = (video, cmcd.br, cmcd.d) {
            if !plausible(br, d) {
                return Recorded::Yes;
            }
            let r = s.rendition_mut(at.rendition.unwrap_or("unknown"));
            r.media_ms = r.media_ms.saturating_add(u64::from(d));
            r.kbps_ms = r
                .kbps_ms
                .saturating_add(u64::from(br).saturating_mul(u64::from(d)));
        }
        Recorded::Yes
    }

    /// Records a beacon (already checked by [`Beacon::parse`]). Returns what
    /// it adds to the stream's counters: its [`Beacon::delta`], cut so that
    /// a session never adds more watch time than the edge has known it
    /// (plus the page's load).
    pub fn record_beacon(&mut self, at: Origin<'_>, b: &Beacon, now: u64) -> Option<Delta> {
        self.tick(now);
        let s = self.session(at, &b.sid, now);
        // Totals since the page started: keep the largest, and never more
        // watch time than the edge has known the session (plus the page's
        // load), so one viewer cannot inflate the aggregates at will.
        let known = now.saturating_sub(s.first_ms) + WATCH_SLACK_MS;
        let delta = b.delta().map(|d| {
            let watch_ms = d.watch_ms.min(known.saturating_sub(s.delta_watch_ms));
            s.delta_watch_ms += watch_ms;
            // A stall takes time: over the session, no more than one begun
            // per second of the watch time its deltas brought (and one more).
            let budget = if s.delta_watch_ms == 0 {
                0
            } else {
                (s.delta_watch_ms / 1000 + 1).saturating_sub(s.delta_stalls)
            };
            let stalls = d.stalls.min(u32::try_from(budget).unwrap_or(u32::MAX));
            s.delta_stalls += u64::from(stalls);
            Delta {
                watch_ms,
                stall_ms: d.stall_ms.min(watch_ms),
                stalls,
            }
        });
        s.watch_ms = s.watch_ms.max(b.watch_ms.min(known));
        s.stall_ms = s.stall_ms.max(b.stall_ms.min(s.watch_ms));
        s.stalls = s.stalls.max(b.stalls);
        s.beacons = s.beacons.saturating_add(1);
        if b.started && !s.started {
            s.started = true;
            s.startup_ms = b.startup_ms.map(|ms| ms.min(s.watch_ms));
        }
        if b.latency_ms.is_some() {
            s.latency_ms = b.latency_ms;
        }
        if s.error.is_none() {
            s.error.clone_from(&b.error);
        }
        if b.ev == Event::End {
            s.ended = true;
            s.exited_before_start = b.exited_before_start() && !s.started;
        }
        delta
    }

    fn session(&mut self, at: Origin<'_>, sid: &str, now: u64) -> &mut Session {
        let key = (at.stream.to_owned(), sid.to_owned());
        if !self.sessions.contains_key(&key) && self.sessions.len() >= MAX_SESSIONS {
            self.sweep(now, true);
        }
        let country = country(at.country);
        let s = self.sessions.entry(key).or_insert_with(|| Session {
            first_ms: now,
            ..Default::default()
        });
        s.last_ms = s.last_ms.max(now);
        s.country = country;
        s
    }

    /// Drops quiet sessions; when `make_room`, also the least recently
    /// heard until one slot is free.
    fn sweep(&mut self, now: u64, make_room: bool) {
        self.last_sweep_ms = now;
        self.sessions
            .retain(|_, s| now.saturating_sub(s.last_ms) <= RETAIN_MS);
        if make_room && self.sessions.len() >= MAX_SESSIONS {
            // Ended sessions first, then the longest quiet; a batch at a
            // time, so a flood of new session ids costs one scan per
            // [`EVICT_BATCH`] sessions, not one per session.
            let mut order: Vec<((bool, u64), (String, String))> = self
                .sessions
                .iter()
                .map(|(k, s)| ((!s.ended, s.last_ms), k.clone()))
                .collect();
            let n = EVICT_BATCH.min(order.len());
            if n > 0 {
                order.select_nth_unstable_by_key(n - 1, |e| e.0);
                for (_, k) in order.into_iter().take(n) {
                    self.sessions.remove(&k);
                    self.evicted += 1;
                }
            }
        }
    }

    /// Takes a history point when one is due and sweeps at most once a
    /// second. Called by every record and report.
    pub fn tick(&mut self, now: u64) {
        if now.saturating_sub(self.last_sweep_ms) >= 1000 {
            self.sweep(now, false);
        }
        if self.last_point_ms == 0 || now.saturating_sub(self.last_point_ms) >= POINT_MS {
            self.last_point_ms = now;
            let point = self.point(now);
            self.history.push_back(point);
            while self.history.len() > MAX_POINTS {
                self.history.pop_front();
            }
        }
    }

    fn point(&self, now: u64) -> Point {
        let active: Vec<(&(String, String), &Session)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.active(now))
            .collect();
        let totals = aggregate(active.iter().map(|(_, s)| *s), None, now);
        let mut per_stream: BTreeMap<String, u32> = BTreeMap::new();
        for ((stream, _), _) in &active {
            *per_stream.entry(stream.clone()).or_default() += 1;
        }
        let mut ranked: Vec<(String, u32)> = per_stream.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(MAX_POINT_STREAMS);
        Point {
            t: now,
            viewers: totals.viewers,
            avg_bitrate_kbps: totals.avg_bitrate_kbps,
            rebuffer_ratio: totals.rebuffer_ratio,
            startup_p50_ms: totals.startup_p50_ms,
            latency_p50_ms: totals.latency_p50_ms,
            streams: ranked.into_iter().collect(),
        }
    }

    /// The aggregates of the sessions `filter` selects.
    pub fn report(&mut self, filter: &Filter, now: u64) -> Report {
        self.tick(now);
        let rendition = filter.rendition.as_deref();
        let chosen: Vec<(&str, &str, &Session)> = self
            .sessions
            .iter()
            .filter(|((stream, _), s)| {
                filter.stream.as_deref().is_none_or(|f| f == stream)
                    && filter.country.as_deref().is_none_or(|f| f == s.country)
                    && rendition.is_none_or(|r| s.played(r))
            })
            .map(|((stream, sid), s)| (stream.as_str(), sid.as_str(), s))
            .collect();
        let totals = aggregate(chosen.iter().map(|c| c.2), rendition, now);
        let grouped = |key: &dyn Fn(&(&str, &str, &Session)) -> String| {
            let mut groups: BTreeMap<String, Vec<&Session>> = BTreeMap::new();
            for c in &chosen {
                groups.entry(key(c)).or_default().push(c.2);
            }
            let mut out: Vec<Labelled> = groups
                .into_iter()
                .map(|(k, v)| Labelled {
                    key: k,
                    aggregates: aggregate(v.into_iter(), rendition, now),
                })
                .collect();
            out.sort_by(|a, b| {
                b.aggregates
                    .viewers
                    .cmp(&a.aggregates.viewers)
                    .then(b.aggregates.sessions.cmp(&a.aggregates.sessions))
                    .then(a.key.cmp(&b.key))
            });
            out
        };
        let streams = grouped(&|c| c.0.to_owned());
        let countries = grouped(&|c| c.2.country.clone());

        let mut mix: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (_, _, s) in &chosen {
            for r in &s.renditions {
                if rendition.is_none_or(|want| want == r.name) {
                    let e = mix.entry(r.name.as_str()).or_default();
                    e.0 = e.0.saturating_add(r.media_ms);
                    e.1 = e.1.saturating_add(r.kbps_ms);
                }
            }
        }
        let all_ms: u64 = mix.values().fold(0u64, |a, v| a.saturating_add(v.0));
        let mut renditions: Vec<RenditionShare> = mix
            .into_iter()
            .map(|(name, (ms, kms))| RenditionShare {
                rendition: name.to_owned(),
                share: ratio(ms, all_ms).unwrap_or(0.0),
                media_s: ms as f64 / 1000.0,
                avg_bitrate_kbps: ratio(kms, ms),
            })
            .collect();
        renditions.sort_by(|a, b| b.media_s.total_cmp(&a.media_s));

        let mut listed: Vec<&(&str, &str, &Session)> = chosen.iter().collect();
        listed.sort_by(|a, b| b.2.last_ms.cmp(&a.2.last_ms).then(a.1.cmp(b.1)));
        let sessions = listed
            .into_iter()
            .take(MAX_LISTED_SESSIONS)
            .map(|(stream, sid, s)| {
                let (kms, ms) = s.bitrate(rendition);
                SessionRow {
                    sid: (*sid).to_owned(),
                    stream: (*stream).to_owned(),
                    country: s.country.clone(),
                    rendition: s.main_rendition().map(str::to_owned),
                    state: state(s, now),
                    watch_s: s.watch_ms as f64 / 1000.0,
                    startup_ms: s.startup_ms,
                    stalls: s.stalls,
                    rebuffer_ratio: ratio(s.stall_ms, s.watch_ms),
                    avg_bitrate_kbps: ratio(kms, ms),
                    throughput_kbps: s.throughput_kbps,
                    latency_ms: s.latency_ms,
                    error: s.error.clone(),
                }
            })
            .collect();
        Report {
            now_ms: now,
            active_window_s: ACTIVE_MS / 1000,
            filter: FilterEcho {
                stream: filter.stream.clone(),
                country: filter.country.clone(),
                rendition: filter.rendition.clone(),
            },
            totals,
            streams,
            countries,
            renditions,
            sessions,
            history: self.history.iter().cloned().collect(),
            sessions_evicted: self.evicted,
        }
    }

    /// Panics if a bound or a definition's precondition does not hold
    /// (for tests and the fuzz target, after each step).
    pub fn check_invariants(&self) {
        assert!(self.sessions.len() <= MAX_SESSIONS, "session bound");
        assert!(self.history.len() <= MAX_POINTS, "history bound");
        for ((stream, sid), s) in &self.sessions {
            assert!(valid_sid(sid), "session ids are checked");
            assert!(!stream.is_empty());
            assert!(s.renditions.len() <= MAX_RENDITIONS, "rendition bound");
            assert!(s.stall_ms <= s.watch_ms, "stalls within watch time");
            assert!(
                s.startup_ms.is_none_or(|st| st <= s.watch_ms),
                "startup within watch time"
            );
            assert!(s.started == s.startup_ms.is_some());
            assert!(s.first_ms <= s.last_ms);
            assert!(s.country.len() == COUNTRY_LEN);
        }
        for p in &self.history {
            assert!(p.streams.len() <= MAX_POINT_STREAMS);
        }
    }

    /// Sessions held (for tests and the bound).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

fn state(s: &Session, now: u64) -> &'static str {
    match (s.error.is_some(), s.ended, s.started, s.active(now)) {
        (true, _, _, _) => "failed",
        (false, true, false, _) => "exited before start",
        (false, true, true, _) => "ended",
        (false, false, _, false) => "gone quiet",
        (false, false, false, true) => "starting",
        (false, false, true, true) => "playing",
    }
}

fn country(c: Option<&str>) -> String {
    match c {
        Some(c) if c.len() == COUNTRY_LEN && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            c.to_ascii_uppercase()
        }
        _ => "XX".into(),
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Nearest-rank percentile of sorted `values` (`p` in 0..=1).
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn aggregate<'a>(
    sessions: impl Iterator<Item = &'a Session>,
    rendition: Option<&str>,
    now: u64,
) -> Aggregates {
    let mut a = Aggregates::default();
    let mut startups = Vec::new();
    let mut latencies = Vec::new();
    let (mut watch, mut stall, mut kms, mut ms) = (0u64, 0u64, 0u64, 0u64);
    for s in sessions {
        a.sessions += 1;
        if s.active(now) {
            a.viewers += 1;
        }
        watch = watch.saturating_add(s.watch_ms);
        stall = stall.saturating_add(s.stall_ms);
        a.stalls += u64::from(s.stalls);
        a.starved_requests += u64::from(s.starved);
        if let Some(st) = s.startup_ms {
            startups.push(st);
        }
        if let Some(l) = s.latency_ms {
            latencies.push(l);
        }
        if s.error.is_some() {
            a.errors += 1;
        }
        if s.exited_before_start {
            a.exits_before_start += 1;
        }
        let (k, m) = s.bitrate(rendition);
        kms = kms.saturating_add(k);
        ms = ms.saturating_add(m);
    }
    startups.sort_unstable();
    latencies.sort_unstable();
    a.watch_time_s = watch as f64 / 1000.0;
    a.startup_p50_ms = percentile(&startups, 0.5);
    a.startup_p95_ms = percentile(&startups, 0.95);
    a.latency_p50_ms = percentile(&latencies, 0.5);
    a.latency_p95_ms = percentile(&latencies, 0.95);
    a.rebuffer_ratio = ratio(stall, watch);
    a.avg_bitrate_kbps = ratio(kms, ms);
    a.error_rate = ratio(u64::from(a.errors), u64::from(a.sessions));
    a.exit_before_start_rate = ratio(u64::from(a.exits_before_start), u64::from(a.sessions));
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_000_000_000;

    fn at<'a>(stream: &'a str, country: &'a str, rendition: &'a str) -> Origin<'a> {
        Origin {
            stream,
            country: Some(country),
            rendition: Some(rendition),
            media_object: true,
        }
    }

    fn cmcd(s: &str) -> Cmcd {
        Cmcd::parse(s).unwrap()
    }

    fn beacon(s: &str) -> Beacon {
        Beacon::parse(s.as_bytes()).unwrap()
    }

    /// Two viewers of one stream, one of them starved: the aggregates
    /// follow the definitions in the module docs, number by number.
    #[test]
    fn two_viewers_one_throttled() {
        let mut agg = Aggregator::default();
        // Viewer a: 10 s of 720p at 2500 kbps (5 × 2 s), no stalls.
        for i in 0..5 {
            let c = cmcd(r#"br=2500,d=2000,ot=v,sid="a",mtp=9000"#);
            agg.record_cmcd(at("cam1", "NL", "720p"), &c, T0 + i * 2000);
        }
        // Viewer b: 2 s of 720p, then 8 s of 360p at 600 kbps, starved twice.
        agg.record_cmcd(
            at("cam1", "DE", "720p"),
            &cmcd(r#"br=2500,d=2000,ot=v,sid="b""#),
            T0,
        );
        for i in 0..4 {
            let c = cmcd(r#"br=600,d=2000,ot=v,sid="b",bs"#);
            let starved = if i < 2 {
                c
            } else {
                cmcd(r#"br=600,d=2000,ot=v,sid="b""#)
            };
            agg.record_cmcd(at("cam1", "DE", "360p"), &starved, T0 + 2000 + i * 2000);
        }
        // Audio and playlists never count towards bitrate or mix.
        agg.record_cmcd(
            at("cam1", "DE", "audio"),
            &cmcd(r#"br=128,d=2000,ot=a,sid="b""#),
            T0,
        );
        agg.record_cmcd(at("cam1", "DE", "360p"), &cmcd(r#"ot=m,sid="b""#), T0);
        let now = T0 + 10_000;
        agg.record_beacon(at("cam1", "NL", "720p"), &beacon(r#"{"v":1,"sid":"a","ev":"hb","started":true,"startup_ms":800,"watch_ms":10000,"stalls":0,"stall_ms":0,"latency_ms":1200}"#), now);
        agg.record_beacon(at("cam1", "DE", "360p"), &beacon(r#"{"v":1,"sid":"b","ev":"hb","started":true,"startup_ms":2400,"watch_ms":10000,"stalls":3,"stall_ms":3000,"latency_ms":4000}"#), now);

        agg.check_invariants();
        let r = agg.report(&Filter::default(), now);
        let t = &r.totals;
        assert_eq!((t.viewers, t.sessions), (2, 2));
        assert_eq!(t.watch_time_s, 20.0);
        assert_eq!(
            (t.startup_p50_ms, t.startup_p95_ms),
            (Some(800), Some(2400))
        );
        assert_eq!(t.rebuffer_ratio, Some(0.15));
        assert_eq!(t.stalls, 3);
        assert_eq!(t.starved_requests, 2);
        // (5×2500×2000 + 2500×2000 + 4×600×2000) / (12×2000)
        let want = (5.0 * 2500.0 + 2500.0 + 4.0 * 600.0) / 10.0;
        assert_eq!(t.avg_bitrate_kbps, Some(want));
        assert_eq!(
            (t.latency_p50_ms, t.latency_p95_ms),
            (Some(1200), Some(4000))
        );
        assert_eq!((t.errors, t.error_rate), (0, Some(0.0)));

        let mix: Vec<(&str, f64)> = r
            .renditions
            .iter()
            .map(|m| (m.rendition.as_str(), m.share))
            .collect();
        assert_eq!(mix, vec![("720p", 12.0 / 20.0), ("360p", 8.0 / 20.0)]);

        let row = |sid: &str| r.sessions.iter().find(|s| s.sid == sid).unwrap().clone();
        let (a, b) = (row("a"), row("b"));
        assert_eq!(a.avg_bitrate_kbps, Some(2500.0));
        assert_eq!(b.avg_bitrate_kbps, Some((2500.0 + 4.0 * 600.0) / 5.0));
        assert_eq!((a.rebuffer_ratio, b.rebuffer_ratio), (Some(0.0), Some(0.3)));
        assert_eq!((a.state, b.rendition.as_deref()), ("playing", Some("360p")));

        let by_country: Vec<(&str, u32)> = r
            .countries
            .iter()
            .map(|c| (c.key.as_str(), c.aggregates.viewers))
            .collect();
        assert_eq!(by_country, vec![("DE", 1), ("NL", 1)]);

        // Filters: a country, a rendition (bitrate of that rendition only).
        let de = agg.report(
            &Filter {
                country: Some("DE".into()),
                ..Default::default()
            },
            now,
        );
        assert_eq!(
            (de.totals.viewers, de.totals.rebuffer_ratio),
            (1, Some(0.3))
        );
        let low = agg.report(
            &Filter {
                rendition: Some("360p".into()),
                ..Default::default()
            },
            now,
        );
        assert_eq!(
            (low.totals.sessions, low.totals.avg_bitrate_kbps),
            (1, Some(600.0))
        );
        let other = agg.report(
            &Filter {
                stream: Some("cam2".into()),
                ..Default::default()
            },
            now,
        );
        assert_eq!(other.totals, Aggregates::default());

        // Quiet sessions stop being viewers, then are forgotten.
        let later = agg.report(&Filter::default(), now + ACTIVE_MS + 1);
        assert_eq!((later.totals.viewers, later.totals.sessions), (0, 2));
        agg.tick(now + RETAIN_MS + 2000);
        assert!(agg.is_empty());
    }

    #[test]
    fn errors_exits_and_clamps() {
        let mut agg = Aggregator::default();
        let o = at("cam1", "US", "720p");
        agg.record_beacon(o, &beacon(r#"{"v":1,"sid":"x","ev":"end","started":false,"watch_ms":3000,"stalls":0,"stall_ms":0}"#), T0);
        agg.record_beacon(o, &beacon(r#"{"v":1,"sid":"y","ev":"end","started":false,"watch_ms":5000,"stalls":0,"stall_ms":0,"error":"networkError:manifestLoadError"}"#), T0);
        // A beacon claiming a day of watching on its first contact counts
        // for the slack only.
        agg.record_beacon(o, &beacon(r#"{"v":1,"sid":"z","ev":"hb","started":true,"startup_ms":500,"watch_ms":86400000,"stalls":0,"stall_ms":0}"#), T0);
        // Stale totals never go backwards.
        agg.record_beacon(o, &beacon(r#"{"v":1,"sid":"z","ev":"hb","started":true,"startup_ms":500,"watch_ms":10,"stalls":0,"stall_ms":0}"#), T0 + 1);
        let r = agg.report(&Filter::default(), T0 + 1);
        let t = &r.totals;
        assert_eq!((t.sessions, t.viewers), (3, 1));
        assert_eq!((t.errors, t.exits_before_start), (1, 1));
        assert_eq!(t.error_rate, Some(1.0 / 3.0));
        assert_eq!(t.exit_before_start_rate, Some(1.0 / 3.0));
        assert_eq!(
            t.watch_time_s,
            (3000 + 5000 + WATCH_SLACK_MS) as f64 / 1000.0
        );
        let states: BTreeMap<String, &str> = r
            .sessions
            .iter()
            .map(|s| (s.sid.clone(), s.state))
            .collect();
        assert_eq!(states["x"], "exited before start");
        assert_eq!(states["y"], "failed");
        assert_eq!(states["z"], "playing");
        // CMCD without a session id is not attached to anything.
        assert_eq!(
            agg.record_cmcd(o, &cmcd("br=1,d=1"), T0),
            Recorded::NoSession
        );
        assert_eq!(
            agg.record_cmcd(o, &cmcd(r#"sid="bad id""#), T0),
            Recorded::NoSession
        );
    }

    /// A session's deltas add no more watch time than the edge has known it
    /// (plus the slack), and no stall time past the watch time they bring.
    #[test]
    fn deltas_are_bounded_by_the_time_known() {
        let mut agg = Aggregator::default();
        let o = at("cam1", "US", "720p");
        let hb = |watch: u64, stall: u64, dw: u64, ds: u64| {
            beacon(&format!(
                r#"{{"v":1,"sid":"d","ev":"hb","started":true,"startup_ms":500,"watch_ms":{watch},"stalls":1,"stall_ms":{stall},"d_watch_ms":{dw},"d_stall_ms":{ds},"d_stalls":1}}"#
            ))
        };
        let first = agg.record_beacon(o, &hb(10_000, 1_000, 10_000, 1_000), T0);
        assert_eq!(
            first,
            Some(Delta {
                watch_ms: 10_000,
                stall_ms: 1_000,
                stalls: 1
            })
        );
        // 120 s claimed one second later: only what is left of 1 s + slack.
        let second = agg
            .record_beacon(o, &hb(130_000, 100_000, 120_000, 100_000), T0 + 1_000)
            .unwrap();
        assert_eq!(second.watch_ms, 1_000 + WATCH_SLACK_MS - 10_000);
        assert_eq!(second.stall_ms, second.watch_ms);
        let third = agg
            .record_beacon(o, &hb(130_000, 100_000, 5_000, 0), T0 + 1_000)
            .unwrap();
        assert_eq!(third.watch_ms, 0);
        // Stalls without the watch time they need are not counted.
        let burst = beacon(
            r#"{"v":1,"sid":"f","ev":"hb","started":true,"startup_ms":1,"watch_ms":2500,"stalls":100000,"stall_ms":0,"d_watch_ms":2500,"d_stall_ms":0,"d_stalls":100000}"#,
        );
        assert_eq!(agg.record_beacon(o, &burst, T0).unwrap().stalls, 3);
        // The budget is the session's: many small beacons add no more.
        for _ in 0..10 {
            let small = beacon(
                r#"{"v":1,"sid":"f","ev":"hb","started":true,"startup_ms":1,"watch_ms":2600,"stalls":100000,"stall_ms":0,"d_watch_ms":10,"d_stall_ms":0,"d_stalls":5}"#,
            );
            assert_eq!(agg.record_beacon(o, &small, T0).unwrap().stalls, 0);
        }
        let none = beacon(
            r#"{"v":1,"sid":"g","ev":"hb","started":true,"startup_ms":1,"watch_ms":0,"stalls":9,"stall_ms":0,"d_watch_ms":0,"d_stall_ms":0,"d_stalls":9}"#,
        );
        assert_eq!(agg.record_beacon(o, &none, T0).unwrap().stalls, 0);
        // Totals-only beacons (an older page) add nothing.
        let old =
            r#"{"v":1,"sid":"e","ev":"hb","started":false,"watch_ms":10,"stalls":0,"stall_ms":0}"#;
        assert_eq!(agg.record_beacon(o, &beacon(old), T0), None);
    }

    /// One viewer's absurd CMCD does not set the averages, and sums of many
    /// sessions saturate instead of wrapping.
    #[test]
    fn implausible_cmcd_is_not_counted_and_sums_do_not_wrap() {
        let mut agg = Aggregator::default();
        agg.record_cmcd(
            at("cam1", "NL", "720p"),
            &cmcd(r#"br=2500,d=2000,ot=v,sid="a""#),
            T0,
        );
        for sid in ["x", "y", "z"] {
            let c = cmcd(&format!(r#"br=4294967295,d=4294967295,ot=v,sid="{sid}""#));
            agg.record_cmcd(at("cam1", "NL", "720p"), &c, T0);
            let c = cmcd(&format!(r#"br=1000000,d=60000,ot=v,sid="{sid}""#));
            for _ in 0..1000 {
                agg.record_cmcd(at("cam1", "NL", "720p"), &c, T0);
            }
        }
        let r = agg.report(&Filter::default(), T0 + 1000);
        let mix = &r.renditions[0];
        assert!(
            mix.avg_bitrate_kbps.is_some_and(|k| k <= 1_000_000.0),
            "{mix:?}"
        );
        let a = r.sessions.iter().find(|s| s.sid == "a").unwrap();
        assert_eq!(a.avg_bitrate_kbps, Some(2500.0));
    }

    #[test]
    fn memory_is_bounded() {
        let mut agg = Aggregator::default();
        for i in 0..(MAX_SESSIONS + 50) as u64 {
            let c = cmcd(&format!(r#"br=1,d=1,sid="s{i}""#));
            agg.record_cmcd(at("cam1", "NL", "720p"), &c, T0 + i);
        }
        // One batch went when the table was full: the oldest.
        assert_eq!(agg.len(), MAX_SESSIONS + 50 - EVICT_BATCH);
        agg.check_invariants();
        let r = agg.report(&Filter::default(), T0 + MAX_SESSIONS as u64 + 50);
        assert_eq!(r.sessions_evicted, EVICT_BATCH as u64);
        assert_eq!(r.sessions.len(), MAX_LISTED_SESSIONS);
        assert!(agg
            .sessions
            .keys()
            .all(|(_, sid)| sid[1..].parse::<usize>().unwrap() >= EVICT_BATCH));

        let mut one = Aggregator::default();
        for i in 0..(MAX_RENDITIONS as u64 + 5) {
            let name = format!("r{i}");
            one.record_cmcd(at("cam1", "NL", &name), &cmcd(r#"br=1,d=1,sid="s""#), T0);
        }
        let r = one.report(&Filter::default(), T0);
        assert_eq!(r.renditions.len(), MAX_RENDITIONS);
        assert!(r.renditions.iter().any(|m| m.rendition == "other"));

        let mut h = Aggregator::default();
        for i in 0..(MAX_POINTS as u64 + 10) {
            h.tick(T0 + i * POINT_MS);
        }
        assert_eq!(
            h.report(&Filter::default(), T0 + (MAX_POINTS as u64 + 10) * POINT_MS)
                .history
                .len(),
            MAX_POINTS
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=20).collect();
        assert_eq!(percentile(&v, 0.5), Some(10));
        assert_eq!(percentile(&v, 0.95), Some(19));
        assert_eq!(percentile(&[7], 0.95), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn countries_are_codes_or_xx() {
        assert_eq!(country(Some("nl")), "NL");
        assert_eq!(country(Some("T1")), "T1");
        assert_eq!(country(Some("NLD")), "XX");
        assert_eq!(country(None), "XX");
    }
}
