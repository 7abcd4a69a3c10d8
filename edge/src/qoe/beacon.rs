//! The player's own beacon: what CMCD does not carry (startup time, stalls
//! and their duration, fatal errors, live latency, exits before the video
//! started). `web/qoe.js` sends it with `navigator.sendBeacon` as
//! `text/plain` (no CORS preflight) to `/live/<stream>/qoe` or
//! `/vod/<asset>/qoe`, every 10 s while the page is open and once more when
//! it goes away:
//!
//! ```json
//! {"v":1,"sid":"4f1c…","ev":"hb","started":true,"startup_ms":840,
//!  "watch_ms":30120,"stalls":2,"stall_ms":1830,"latency_ms":1400,"error":null}
//! ```
//!
//! Counters are totals since the page started (a lost beacon loses
//! nothing), so the edge keeps the latest. Beside them the page sends what
//! changed since its previous beacon (`d_watch_ms`, `d_stall_ms`,
//! `d_stalls`): the edge adds those up per stream for the origin's
//! Prometheus counters (`qoe::push`), where totals would count a session
//! twice once its beacons reach two isolates. Everything is bounded: the
//! body size, every number, the error's length and alphabet.

use serde::Deserialize;

/// Largest beacon body read, in bytes.
pub const MAX_BYTES: usize = 1024;
/// Largest duration a beacon may report (a day), in ms.
pub const MAX_MS: u64 = 86_400_000;
/// Most stalls a beacon may report.
pub const MAX_STALLS: u32 = 100_000;
/// Longest error code.
pub const MAX_ERROR_LEN: usize = 64;
/// Most watch time one beacon may add (`d_watch_ms`), ms: heartbeats come
/// every 10 s, a hidden tab's timers once a minute.
pub const MAX_DELTA_MS: u64 = 120_000;

/// What a beacon says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Event {
    /// `hb`: a heartbeat while the page is open.
    #[serde(rename = "hb")]
    Heartbeat,
    /// `end`: the page is going away (pagehide), or the player gave up.
    #[serde(rename = "end")]
    End,
}

/// One beacon, checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beacon {
    /// Format version; only 1 exists.
    pub v: u32,
    /// The playback session: the same id the player sends as CMCD `sid`.
    pub sid: String,
    pub ev: Event,
    /// Whether the first frame has been shown.
    pub started: bool,
    /// From the play request (page load) to the first frame, ms.
    #[serde(default)]
    pub startup_ms: Option<u64>,
    /// From the play request until now, ms: startup, playing and stalls
    /// (Mux's "watch time").
    pub watch_ms: u64,
    /// Rebuffering events after the first frame.
    pub stalls: u32,
    /// Their total duration, ms.
    pub stall_ms: u64,
    /// Live latency now (wall clock minus the program date-time shown), ms.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// The fatal error the player gave up on, if any (e.g.
    /// `networkError:fragLoadError`).
    #[serde(default)]
    pub error: Option<String>,
    /// Watch time since the page's previous beacon, ms.
    #[serde(default)]
    pub d_watch_ms: Option<u64>,
    /// Stall time since the previous beacon, ms.
    #[serde(default)]
    pub d_stall_ms: Option<u64>,
    /// Stalls begun since the previous beacon.
    #[serde(default)]
    pub d_stalls: Option<u32>,
}

/// What one beacon adds to its stream's counters (see [`Beacon::delta`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta {
    pub watch_ms: u64,
    pub stall_ms: u64,
    pub stalls: u32,
}

/// Why a beacon was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BeaconError {
    #[error("beacon larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("beacon is not valid JSON of the expected shape: {0}")]
    Shape(String),
    #[error("beacon version {0} is not 1")]
    Version(u32),
    #[error("beacon field {field} is out of range")]
    Range { field: &'static str },
}

impl Beacon {
    /// Parses and checks a beacon body.
    pub fn parse(body: &[u8]) -> Result<Self, BeaconError> {
        if body.len() > MAX_BYTES {
            return Err(BeaconError::TooLarge);
        }
        let b: Beacon =
            serde_json::from_slice(body).map_err(|e| BeaconError::Shape(e.to_string()))?;
        if b.v != 1 {
            return Err(BeaconError::Version(b.v));
        }
        let range = |field| Err(BeaconError::Range { field });
        if !valid_sid(&b.sid) {
            return range("sid");
        }
        if b.watch_ms > MAX_MS {
            return range("watch_ms");
        }
        if b.stall_ms > b.watch_ms {
            return range("stall_ms");
        }
        if b.stalls > MAX_STALLS {
            return range("stalls");
        }
        if b.startup_ms
            .is_some_and(|s| s > b.watch_ms.max(1) + 1000 || s > MAX_MS)
        {
            return range("startup_ms");
        }
        if b.started != b.startup_ms.is_some() {
            return range("started");
        }
        if b.latency_ms.is_some_and(|l| l > MAX_MS) {
            return range("latency_ms");
        }
        match (b.d_watch_ms, b.d_stall_ms, b.d_stalls) {
            (None, None, None) => {}
            (Some(w), Some(st), Some(n)) => {
                if w > b.watch_ms || w > MAX_DELTA_MS {
                    return range("d_watch_ms");
                }
                // Rounding may put a stall a millisecond past the watch time.
                if st > b.stall_ms || st > w + 1 {
                    return range("d_stall_ms");
                }
                if n > b.stalls {
                    return range("d_stalls");
                }
            }
            _ => return range("d_watch_ms"),
        }
        if let Some(e) = &b.error {
            if e.is_empty()
                || e.len() > MAX_ERROR_LEN
                || !e
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"_:.-".contains(&c))
            {
                return range("error");
            }
        }
        Ok(b)
    }

    /// What the beacon adds to its stream's counters, if it says (stall
    /// time never more than the watch time it came with).
    pub fn delta(&self) -> Option<Delta> {
        let watch_ms = self.d_watch_ms?;
        Some(Delta {
            watch_ms,
            stall_ms: self.d_stall_ms?.min(watch_ms),
            stalls: self.d_stalls?,
        })
    }

    /// An `end` before the first frame without an error: the viewer left
    /// while waiting (Mux's "exits before video start").
    pub fn exited_before_start(&self) -> bool {
        self.ev == Event::End && !self.started && self.error.is_none()
    }
}

/// A session id as CTA-5004 allows it (at most 64 characters), limited to
/// what players generate (UUIDs and the like): `[A-Za-z0-9_.-]`.
pub fn valid_sid(sid: &str) -> bool {
    !sid.is_empty()
        && sid.len() <= super::cmcd::MAX_ID_LEN
        && sid
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"v":1,"sid":"a-1","ev":"hb","started":true,"startup_ms":840,"watch_ms":30120,"stalls":2,"stall_ms":1830,"latency_ms":1400,"error":null}"#;

    #[test]
    fn parses_a_heartbeat_and_an_exit() {
        let b = Beacon::parse(OK.as_bytes()).unwrap();
        assert_eq!(b.ev, Event::Heartbeat);
        assert_eq!((b.startup_ms, b.stalls, b.stall_ms), (Some(840), 2, 1830));
        assert!(!b.exited_before_start());
        assert_eq!(b.delta(), None);
        let with_delta = r#"{"v":1,"sid":"a-1","ev":"hb","started":true,"startup_ms":840,"watch_ms":30120,"stalls":2,"stall_ms":12000,"d_watch_ms":10003,"d_stall_ms":10004,"d_stalls":1}"#;
        assert_eq!(
            Beacon::parse(with_delta.as_bytes()).unwrap().delta(),
            Some(Delta {
                watch_ms: 10003,
                stall_ms: 10003,
                stalls: 1
            })
        );
        let exit = r#"{"v":1,"sid":"a-1","ev":"end","started":false,"watch_ms":2500,"stalls":0,"stall_ms":0}"#;
        assert!(Beacon::parse(exit.as_bytes())
            .unwrap()
            .exited_before_start());
        let failed = r#"{"v":1,"sid":"a-1","ev":"end","started":false,"watch_ms":2500,"stalls":0,"stall_ms":0,"error":"networkError:manifestLoadError"}"#;
        assert!(!Beacon::parse(failed.as_bytes())
            .unwrap()
            .exited_before_start());
    }

    #[test]
    fn refuses_out_of_range_and_odd_shapes() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"v":2,"sid":"a","ev":"hb","started":false,"watch_ms":0,"stalls":0,"stall_ms":0}"#,
                "version",
            ),
            (
                r#"{"v":1,"sid":"a b","ev":"hb","started":false,"watch_ms":0,"stalls":0,"stall_ms":0}"#,
                "sid",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":10,"stalls":0,"stall_ms":11}"#,
                "stall_ms",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":100000000,"stalls":0,"stall_ms":0}"#,
                "watch_ms",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":true,"watch_ms":10,"stalls":0,"stall_ms":0}"#,
                "started",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":true,"startup_ms":99999,"watch_ms":10,"stalls":0,"stall_ms":0}"#,
                "startup_ms",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":0,"stalls":0,"stall_ms":0,"error":"<b>"}"#,
                "error",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":0,"stalls":0,"stall_ms":0,"extra":1}"#,
                "shape",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"bye","started":false,"watch_ms":0,"stalls":0,"stall_ms":0}"#,
                "shape",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":-1,"stalls":0,"stall_ms":0}"#,
                "shape",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":500000,"stalls":0,"stall_ms":0,"d_watch_ms":200000,"d_stall_ms":0,"d_stalls":0}"#,
                "d_watch_ms",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":50,"stalls":0,"stall_ms":0,"d_watch_ms":60,"d_stall_ms":0,"d_stalls":0}"#,
                "d_watch_ms",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":50,"stalls":0,"stall_ms":0,"d_watch_ms":10}"#,
                "d_watch_ms",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":50,"stalls":1,"stall_ms":40,"d_watch_ms":10,"d_stall_ms":20,"d_stalls":0}"#,
                "d_stall_ms",
            ),
            (
                r#"{"v":1,"sid":"a","ev":"hb","started":false,"watch_ms":50,"stalls":1,"stall_ms":5,"d_watch_ms":10,"d_stall_ms":5,"d_stalls":2}"#,
                "d_stalls",
            ),
            ("not json", "shape"),
        ];
        for (body, want) in cases {
            let e = Beacon::parse(body.as_bytes()).expect_err(body).to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        let big = format!("{}{}", OK, " ".repeat(MAX_BYTES));
        assert_eq!(Beacon::parse(big.as_bytes()), Err(BeaconError::TooLarge));
    }
}
