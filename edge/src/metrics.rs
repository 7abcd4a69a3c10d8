//! Counters for one isolate, rendered as Prometheus text at `/_brook/metrics`
//! (behind the `METRICS_TOKEN` secret). Workers run many isolates, so these
//! are per isolate: good for tests (Miniflare runs one) and for spot checks;
//! fleet-wide numbers come from the log lines each event also writes. Label
//! values come from config or fixed lists, never from the request, so a
//! client cannot grow the set.
//!
//! | counter | labels |
//! |---|---|
//! | `brook_edge_requests_total` | `kind`, `status` |
//! | `brook_edge_auth_failures_total` | `reason` (`missing`, or a [`crate::access::token::Reject`]) |
//! | `brook_edge_geo_blocked_total` | |
//! | `brook_edge_not_entitled_total` | |
//! | `brook_edge_origin_requests_total` | `origin` |
//! | `brook_edge_origin_failures_total` | `origin`, `reason` (`network`, `timeout`, `status`) |
//! | `brook_edge_failovers_total` | |
//! | `brook_edge_cache_hits_total` / `_misses_total` | `kind` |
//! | `brook_edge_coalesced_total` | `kind` (requests answered by another request's origin fetch) |
//! | `brook_edge_manifest_fallbacks_total` | (playlists the model refused, personalized line by line) |
//! | `brook_edge_steering_manifests_total` | `flavor` |
//! | `brook_edge_cmcd_total` | `result` (`recorded`, `no_session`, `invalid`) |
//! | `brook_edge_qoe_beacons_total` | `result` (`recorded`, `invalid`) |
//! | `brook_edge_qoe_writes_failed_total` | (Analytics Engine writes that failed) |
//! | `brook_edge_qoe_pushes_total` | `result` (`pushed`, `failed`, `refused`, `stream_refused`, `unknown_stream`, `dropped`): watch and stall time pushed to the origins |
//! | `brook_edge_ad_decisions_total` | `result` (`filled`, `partial`, `empty`, `no_decision`) |
//! | `brook_edge_ad_server_failures_total` | `reason` (`timeout`, `fetch`, `status`, `invalid`) |
//! | `brook_edge_ads_total` | `result` (`played`, `not_prepared`, `unplayable`, `too_long`) |
//! | `brook_edge_ad_beacons_total` | `event`, `result` (`sent`, `failed`, `invalid`) |
//! | `brook_edge_directory_lookups_total` | `result` (`found`, `unknown`, `failed`; `stale`: it failed and this isolate's found answer, up to 30 s past its TTL, was used): the stream directory asked (or skipped in the second after it failed) |
//! | `brook_edge_directory_cache_hits_total` | (live requests answered from this isolate's copy of the directory) |
//! | `brook_edge_directory_registrations_total` | `result` (`registered`, `removed`, `unauthorized`, `invalid`, `refused`, `full`, `failed`) |

use std::collections::BTreeMap;

use brook_common::credentials::bearer;
use brook_common::prometheus::{Text, Type};
use brook_common::secret::constant_time_eq;

type Labels = Vec<(String, String)>;

/// Labelled counters, by metric name then label set.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    counters: BTreeMap<&'static str, BTreeMap<Labels, u64>>,
}

impl Metrics {
    /// Adds one to `name{labels}`.
    pub fn inc(&mut self, name: &'static str, labels: &[(&str, &str)]) {
        let key = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        *self
            .counters
            .entry(name)
            .or_default()
            .entry(key)
            .or_default() += 1;
    }

    /// The value of `name` summed over every label set containing all of
    /// `labels` (for tests and logs).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters.get(name).map_or(0, |series| {
            series
                .iter()
                .filter(|(key, _)| {
                    labels
                        .iter()
                        .all(|(k, v)| key.iter().any(|(kk, vv)| kk == k && vv == v))
                })
                .map(|(_, v)| v)
                .sum()
        })
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Text::new();
        for (name, series) in &self.counters {
            out.family(name, Type::Counter, "");
            for (labels, value) in series {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                out.sample(name, &labels, *value);
            }
        }
        out.finish()
    }
}

/// Whether an `Authorization` header opens `/_brook/metrics` guarded by
/// the `METRICS_TOKEN` secret `expected` (unset: never): a `Bearer` token,
/// the scheme in any case, compared in constant time.
pub fn authorized(expected: &str, authorization: Option<&str>) -> bool {
    let given = authorization.and_then(bearer).unwrap_or_default();
    !expected.is_empty() && constant_time_eq(expected.as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 16: the metrics route compared `Bearer ` case-sensitively
    /// (RFC 9110 11.1: the scheme is case-insensitive).
    #[test]
    fn metrics_take_a_bearer_token_in_any_case() {
        for header in ["bearer s3cret", "BEARER s3cret", "Bearer  s3cret"] {
            assert!(authorized("s3cret", Some(header)), "{header}");
        }
    }

    #[test]
    fn metrics_need_the_secret() {
        assert!(authorized("s3cret", Some("Bearer s3cret")));
        assert!(!authorized("s3cret", Some("Bearer s3cre")));
        assert!(!authorized("s3cret", Some("s3cret")));
        assert!(!authorized("s3cret", None));
        assert!(!authorized("", Some("Bearer ")), "unset: never");
    }

    #[test]
    fn counts_and_renders() {
        let mut m = Metrics::default();
        m.inc("brook_edge_auth_failures_total", &[("reason", "expired")]);
        m.inc("brook_edge_auth_failures_total", &[("reason", "expired")]);
        m.inc("brook_edge_auth_failures_total", &[("reason", "missing")]);
        m.inc("brook_edge_failovers_total", &[]);
        m.inc(
            "brook_edge_requests_total",
            &[("kind", "part"), ("status", "200")],
        );
        m.inc("brook_edge_geo_blocked_total", &[("rule", "a\"b")]);
        assert_eq!(m.get("brook_edge_auth_failures_total", &[]), 3);
        assert_eq!(
            m.get("brook_edge_auth_failures_total", &[("reason", "expired")]),
            2
        );
        assert_eq!(m.get("brook_edge_requests_total", &[("status", "200")]), 1);
        assert_eq!(m.get("nope", &[]), 0);
        assert_eq!(
            m.render(),
            "# TYPE brook_edge_auth_failures_total counter\n\
             brook_edge_auth_failures_total{reason=\"expired\"} 2\n\
             brook_edge_auth_failures_total{reason=\"missing\"} 1\n\
             # TYPE brook_edge_failovers_total counter\n\
             brook_edge_failovers_total 1\n\
             # TYPE brook_edge_geo_blocked_total counter\n\
             brook_edge_geo_blocked_total{rule=\"a\\\"b\"} 1\n\
             # TYPE brook_edge_requests_total counter\n\
             brook_edge_requests_total{kind=\"part\",status=\"200\"} 1\n"
        );
    }
}
