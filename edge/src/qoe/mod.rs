//! Viewer quality of experience: what players report and what ops read.
//!
//! ```text
//! media request with ?CMCD=...  ─▶ cmcd::Cmcd::parse ─┐  (after the token and geo checks)
//! POST /live/<stream>/qoe beacon ─▶ beacon::Beacon::parse ┤
//!                                                     ├─▶ datapoint::{cmcd_row, beacon_row} ─▶ Analytics Engine (QOE binding)
//!                                                     └─▶ aggregate::Aggregator (per isolate) ─▶ GET /_brook/qoe (JSON)
//! ```
//!
//! Parsing and the aggregation math are plain Rust, tested here and
//! fuzzed (`edge/fuzz`, target `cmcd`); `bindings/qoe.rs` only moves bytes.
//! The cache key never carries CMCD (`delivery::cache` keeps only the
//! LL-HLS directives). Definitions and the Analytics Engine SQL are in
//! docs/qoe.md.

pub mod aggregate;
pub mod beacon;
pub mod cmcd;
pub mod datapoint;
pub mod push;

pub use aggregate::{Aggregator, Filter, Origin, Report};
pub use beacon::{Beacon, BeaconError, Delta};
pub use cmcd::{Cmcd, CmcdError, StreamType};

/// The `CMCD=` value of a query string (decoded), if there is one.
pub fn cmcd_param(query: Option<&str>) -> Option<std::borrow::Cow<'_, str>> {
    crate::query::param(query?, "CMCD")
}

/// A report's filter from `/_brook/qoe`'s query (`stream`, `country`,
/// `rendition`); values that could never match are refused.
pub fn filter_from_query(query: Option<&str>) -> Result<Filter, &'static str> {
    let q = query.unwrap_or("");
    let get = |name| crate::query::param(q, name).map(|v| v.into_owned());
    let f = Filter {
        stream: get("stream"),
        country: get("country").map(|c| c.to_ascii_uppercase()),
        rendition: get("rendition"),
    };
    let name_ok = |v: &Option<String>| {
        v.as_deref().is_none_or(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        })
    };
    if !(name_ok(&f.stream) && name_ok(&f.country) && name_ok(&f.rendition)) {
        return Err("bad filter");
    }
    Ok(f)
}

/// How often this isolate may ask the origin whether a bearer token is an
/// admin token (for `/_brook/qoe`): at most [`AdminChecks::MAX`] questions
/// per [`AdminChecks::WINDOW_MS`], so the edge is no faster a way to guess
/// the origin's admin token than the origin itself. Accepted tokens are
/// trusted for a while (the caller keeps that), so a dashboard polling
/// every 2 s asks once per trust period.
#[derive(Debug, Default)]
pub struct AdminChecks {
    asked: std::collections::VecDeque<u64>,
}

impl AdminChecks {
    pub const MAX: usize = 5;
    pub const WINDOW_MS: u64 = 10_000;

    /// Whether one more question may go to the origin now (and counts it).
    pub fn allow(&mut self, now: u64) -> bool {
        while self
            .asked
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= Self::WINDOW_MS)
        {
            self.asked.pop_front();
        }
        if self.asked.len() >= Self::MAX {
            return false;
        }
        self.asked.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_checks_are_rate_limited() {
        let mut c = AdminChecks::default();
        let t = 1_000_000;
        for i in 0..AdminChecks::MAX as u64 {
            assert!(c.allow(t + i));
        }
        assert!(!c.allow(t + 100));
        assert!(!c.allow(t + AdminChecks::WINDOW_MS - 1));
        assert!(c.allow(t + AdminChecks::WINDOW_MS));
    }

    #[test]
    fn finds_cmcd_among_other_parameters() {
        let q = "__token__=abc&CMCD=br%3D3200%2Cot%3Dv%2Csid%3D%22s%201%22&_HLS_msn=3";
        let v = cmcd_param(Some(q)).unwrap();
        assert_eq!(v, "br=3200,ot=v,sid=\"s 1\"");
        assert_eq!(Cmcd::parse(&v).unwrap().br, Some(3200));
        assert_eq!(cmcd_param(Some("_HLS_msn=3")), None);
        assert_eq!(cmcd_param(None), None);
    }

    #[test]
    fn filters_from_the_query() {
        let f = filter_from_query(Some("stream=cam1&country=nl")).unwrap();
        assert_eq!(f.stream.as_deref(), Some("cam1"));
        assert_eq!(f.country.as_deref(), Some("NL"));
        assert_eq!(filter_from_query(None).unwrap(), Filter::default());
        assert!(filter_from_query(Some("stream=%3Cb%3E")).is_err());
        assert!(filter_from_query(Some("rendition=")).is_err());
    }
}
