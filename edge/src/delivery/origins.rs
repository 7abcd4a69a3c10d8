//! The origins (regions) behind the edge: which one a request goes to, in
//! which order the others are tried when it fails, and which ones are
//! skipped for a while after failing.
//!
//! ```text
//! order = regions sorted by (marked unhealthy?, location match), config order breaking ties
//! for origin in order:
//!     network error or timeout        -> mark unhealthy, try the next
//!     5xx (but see [`fails_over`])    -> mark unhealthy, try the next
//!     anything else                   -> that is the answer
//! ```
//!
//! Health is kept per isolate (a Worker instance), so each isolate learns on
//! its own; `unhealthy_ms` bounds how long an origin is passed over.

use std::collections::HashMap;

use serde::Deserialize;

use super::directory::DirectoryConfig;
use crate::Error;

/// A validated origin base URL, e.g. `http://127.0.0.1:8080` or
/// `https://origin.example/brook` (a path prefix is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Scheme, authority and optional path prefix, without a trailing `/`.
    base: String,
}

impl Origin {
    /// Validates an `ORIGIN_URL` value: `http://` or `https://`, a non-empty
    /// host, no query or fragment. A trailing `/` is ignored. Refused too,
    /// since `fetch` would read them otherwise than this does (or than the
    /// stream directory's allow rules do): whitespace and control
    /// characters, `\` (a path separator to `fetch`), and userinfo (`@`) or
    /// percent-escapes (`%`) in the authority.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidOriginUrl {
            value: value.to_owned(),
            reason,
        };
        let trimmed = value.trim();
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|s| {
                trimmed
                    .get(..s.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(s))
            })
            .map(|s| s.len())
            .ok_or_else(|| invalid("scheme must be http:// or https://"))?;
        if trimmed.contains(['?', '#']) {
            return Err(invalid("must not have a query or fragment"));
        }
        if trimmed.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain whitespace or control characters"));
        }
        if trimmed.contains('\\') {
            return Err(invalid("must not contain a backslash"));
        }
        let rest = &trimmed[scheme_len..];
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.starts_with(':') {
            return Err(invalid("host is missing"));
        }
        if authority.contains(['@', '%']) {
            return Err(invalid("the host must not have userinfo (@) or %-escapes"));
        }
        Ok(Self {
            base: trimmed.trim_end_matches('/').to_owned(),
        })
    }

    /// Scheme, authority and path prefix, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The upstream URL for a request: the request's path (which starts with
    /// `/`) and query string appended unchanged.
    pub fn url_for(&self, path: &str, query: Option<&str>) -> String {
        let mut url = String::with_capacity(self.base.len() + path.len() + 64);
        url.push_str(&self.base);
        if !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

/// One origin region.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Name in logs and metrics.
    pub id: String,
    /// Base URL, as for `ORIGIN_URL`.
    pub url: String,
    /// Viewer countries (`cf.country`) this region serves first. Default: none.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Viewer continents (`cf.continent`: AF AN AS EU NA OC SA) this region
    /// serves first, after country matches. Default: none.
    #[serde(default)]
    pub continents: Vec<String>,
}

/// `origins` in the edge config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginsConfig {
    /// The regions, most preferred first when location says nothing.
    /// Default: empty, meaning one region `origin` at the `ORIGIN_URL` var.
    pub regions: Vec<RegionConfig>,
    /// How long to wait for an origin's response headers before failing
    /// over, in ms. Default: 4000.
    pub timeout_ms: u64,
    /// The same for requests an origin may legitimately hold (playlists,
    /// which block for `_HLS_msn`/`_HLS_part` or wait for a stream to start,
    /// and preload-hinted parts), in ms. Default: 10000 (the origin's own
    /// blocking timeout is 6000).
    pub hold_timeout_ms: u64,
    /// How long an origin that failed is tried last, in ms. Default: 10000.
    pub unhealthy_ms: u64,
    /// Live streams' origins from the stream directory the origins register
    /// with (`delivery::directory`). Default: off.
    pub directory: DirectoryConfig,
}

impl Default for OriginsConfig {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            timeout_ms: 4000,
            hold_timeout_ms: 10_000,
            unhealthy_ms: 10_000,
            directory: DirectoryConfig::default(),
        }
    }
}

/// A validated region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub id: String,
    pub origin: Origin,
    countries: Vec<String>,
    continents: Vec<String>,
}

/// Where the viewer is, from `request.cf`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Location<'a> {
    pub country: Option<&'a str>,
    pub continent: Option<&'a str>,
    pub colo: Option<&'a str>,
}

impl Region {
    /// An origin from the stream directory: no location preference.
    pub fn registered(id: String, origin: Origin) -> Self {
        Self {
            id,
            origin,
            countries: Vec::new(),
            continents: Vec::new(),
        }
    }

    /// 0: country match, 1: continent match, 2: neither.
    fn distance(&self, loc: &Location<'_>) -> u8 {
        let has = |list: &[String], v: Option<&str>| {
            v.is_some_and(|v| list.iter().any(|c| c.eq_ignore_ascii_case(v)))
        };
        if has(&self.countries, loc.country) {
            0
        } else if has(&self.continents, loc.continent) {
            1
        } else {
            2
        }
    }
}

impl OriginsConfig {
    /// The regions to use: `regions`, or `ORIGIN_URL` (`fallback_url`) when
    /// none are configured.
    pub fn resolve(&self, fallback_url: Option<&str>) -> Result<Vec<Region>, Error> {
        if self.regions.is_empty() {
            let url = fallback_url.unwrap_or_default();
            return Ok(vec![Region {
                id: "origin".into(),
                origin: Origin::parse(url)?,
                countries: Vec::new(),
                continents: Vec::new(),
            }]);
        }
        let mut out: Vec<Region> = Vec::with_capacity(self.regions.len());
        for r in &self.regions {
            if r.id.is_empty() || out.iter().any(|o| o.id == r.id) {
                return Err(Error::InvalidConfig(format!(
                    "origins.regions: id {:?} is empty or repeated",
                    r.id
                )));
            }
            out.push(Region {
                id: r.id.clone(),
                origin: Origin::parse(&r.url)?,
                countries: r.countries.clone(),
                continents: r.continents.clone(),
            });
        }
        Ok(out)
    }

    /// Headers timeout for a request, in ms.
    pub fn timeout_for(&self, holdable: bool) -> u64 {
        if holdable {
            self.hold_timeout_ms
        } else {
            self.timeout_ms
        }
    }
}

/// The order in which to try `regions` for a viewer at `loc`: healthy ones
/// before unhealthy ones, then nearest first, then config order.
pub fn order<'r>(
    regions: &'r [Region],
    loc: &Location<'_>,
    health: &Health,
    now_ms: u64,
) -> Vec<&'r Region> {
    let mut out: Vec<&Region> = regions.iter().collect();
    // Stable: config order breaks ties.
    out.sort_by_key(|r| (!health.is_up(&r.id, now_ms), r.distance(loc)));
    out
}

/// Whether an origin's `status` means "try the next origin" (and mark this
/// one unhealthy). Any 5xx does, except a 503 to a request the origin may
/// hold (`holdable`): for a blocking playlist reload or a hinted part, 503 is
/// the origin saying "not produced in time" (RFC 8216bis 6.2.5.2), and for a
/// playlist it is "stream is starting"; another region would not know better.
pub fn fails_over(status: u16, holdable: bool) -> bool {
    (500..=599).contains(&status) && !(status == 503 && holdable)
}

/// What one try at an origin came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tried {
    /// No response headers within the timeout (the fetch is then aborted).
    TimedOut,
    /// The fetch failed (connection refused, reset, DNS, ...).
    NetworkError,
    /// Response headers with this status.
    Answered(u16),
}

impl Tried {
    /// `None`: this is the answer. Otherwise the failure, as the
    /// `brook_edge_origin_failures_total` `reason` label: mark the origin
    /// unhealthy and try the next one.
    pub fn failure(self, holdable: bool) -> Option<&'static str> {
        match self {
            Tried::TimedOut => Some("timeout"),
            Tried::NetworkError => Some("network"),
            Tried::Answered(status) if fails_over(status, holdable) => Some("status"),
            Tried::Answered(_) => None,
        }
    }
}

/// Origins marked unhealthy, and until when (ms since the epoch).
#[derive(Debug, Clone, Default)]
pub struct Health {
    down_until: HashMap<String, u64>,
}

impl Health {
    pub fn is_up(&self, id: &str, now_ms: u64) -> bool {
        self.down_until.get(id).is_none_or(|&until| now_ms >= until)
    }

    /// Marks `id` unhealthy for `for_ms` from `now_ms`.
    pub fn mark_down(&mut self, id: &str, now_ms: u64, for_ms: u64) {
        self.down_until
            .insert(id.to_owned(), now_ms.saturating_add(for_ms));
    }

    /// Forgets a failure once the origin answers again.
    pub fn mark_up(&mut self, id: &str) {
        self.down_until.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_try_came_to() {
        let cases = [
            (Tried::TimedOut, false, Some("timeout")),
            (Tried::NetworkError, true, Some("network")),
            (Tried::Answered(200), false, None),
            (Tried::Answered(404), false, None),
            (Tried::Answered(500), false, Some("status")),
            (Tried::Answered(502), true, Some("status")),
            (Tried::Answered(503), false, Some("status")),
            (Tried::Answered(503), true, None),
        ];
        for (tried, holdable, want) in cases {
            assert_eq!(
                tried.failure(holdable),
                want,
                "{tried:?} holdable={holdable}"
            );
        }
    }

    fn regions() -> Vec<Region> {
        let cfg: OriginsConfig = serde_json::from_str(
            r#"{"regions": [
                {"id": "us", "url": "http://us.example", "continents": ["NA"]},
                {"id": "eu", "url": "http://eu.example", "continents": ["EU"]},
                {"id": "de", "url": "http://de.example", "countries": ["DE", "AT"]}
            ]}"#,
        )
        .unwrap();
        cfg.resolve(None).unwrap()
    }

    fn ids(order: Vec<&Region>) -> Vec<&str> {
        order.into_iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn orders_by_location_then_config() {
        let regions = regions();
        let h = Health::default();
        let loc = |country, continent| Location {
            country,
            continent,
            colo: None,
        };
        let cases = [
            (loc(Some("DE"), Some("EU")), ["de", "eu", "us"]),
            (loc(Some("FR"), Some("EU")), ["eu", "us", "de"]),
            (loc(Some("US"), Some("NA")), ["us", "eu", "de"]),
            (loc(None, None), ["us", "eu", "de"]),
            (loc(Some("at"), Some("eu")), ["de", "eu", "us"]),
        ];
        for (l, want) in cases {
            assert_eq!(ids(order(&regions, &l, &h, 0)), want, "{l:?}");
        }
    }

    #[test]
    fn unhealthy_regions_go_last_for_a_while() {
        let regions = regions();
        let mut h = Health::default();
        let de = Location {
            country: Some("DE"),
            continent: Some("EU"),
            colo: None,
        };
        h.mark_down("de", 1000, 500);
        assert_eq!(ids(order(&regions, &de, &h, 1000)), ["eu", "us", "de"]);
        assert_eq!(ids(order(&regions, &de, &h, 1499)), ["eu", "us", "de"]);
        assert_eq!(ids(order(&regions, &de, &h, 1500)), ["de", "eu", "us"]);
        h.mark_down("de", 2000, 500);
        h.mark_down("eu", 2000, 500);
        assert_eq!(ids(order(&regions, &de, &h, 2000)), ["us", "de", "eu"]);
        h.mark_up("de");
        assert_eq!(ids(order(&regions, &de, &h, 2000)), ["de", "us", "eu"]);
    }

    #[test]
    fn failover_statuses() {
        for (status, holdable, want) in [
            (200, false, false),
            (404, false, false),
            (400, true, false),
            (500, false, true),
            (502, true, true),
            (503, false, true),
            (503, true, false),
            (504, true, true),
            (599, false, true),
        ] {
            assert_eq!(fails_over(status, holdable), want, "{status} {holdable}");
        }
    }

    #[test]
    fn resolves_regions() {
        let cfg = OriginsConfig::default();
        let r = cfg.resolve(Some("http://127.0.0.1:8080")).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, "origin");
        assert!(cfg.resolve(None).is_err());
        for bad in [
            r#"{"regions": [{"id": "a", "url": "nope"}]}"#,
            r#"{"regions": [{"id": "a", "url": "http://a"}, {"id": "a", "url": "http://b"}]}"#,
            r#"{"regions": [{"id": "", "url": "http://a"}]}"#,
        ] {
            let c: OriginsConfig = serde_json::from_str(bad).unwrap();
            assert!(c.resolve(None).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<OriginsConfig>(r#"{"regions": [{"id": "a"}]}"#).is_err());
        assert!(serde_json::from_str::<OriginsConfig>(r#"{"timeout": 1}"#).is_err());
    }

    #[test]
    fn joins_path_and_query_unchanged() {
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            (
                "http://127.0.0.1:8080",
                "/live/cam1/index.m3u8",
                Some("_HLS_msn=12&_HLS_part=3"),
                "http://127.0.0.1:8080/live/cam1/index.m3u8?_HLS_msn=12&_HLS_part=3",
            ),
            (
                "http://127.0.0.1:8080/",
                "/live/cam1/index.m3u8",
                None,
                "http://127.0.0.1:8080/live/cam1/index.m3u8",
            ),
            (
                "https://origin.example/brook/",
                "/live/a%20b/seg1.m4s",
                Some(""),
                "https://origin.example/brook/live/a%20b/seg1.m4s?",
            ),
            (
                " HTTPS://origin.example ",
                "/live/x",
                Some("a=1&a=2&_HLS_skip=YES"),
                "HTTPS://origin.example/live/x?a=1&a=2&_HLS_skip=YES",
            ),
        ];
        for (base, path, query, want) in cases {
            let origin = Origin::parse(base).unwrap();
            assert_eq!(
                origin.url_for(path, *query),
                *want,
                "{base} {path} {query:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_origin_urls() {
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http:///live",
            "http://:8080",
            "http://x?y=1",
            "http://x/#frag",
            "http://x y",
            "httpx://x",
            "https://evil.example\\.origins.example",
            "https://x.example/a\\b",
            "https://allowed.example@evil.example",
            "https://u:p@x.example/",
            "https://evil%2eexample",
            "https://x.example%2fevil.example",
            "http://x\u{0}.example",
            "http://x.example/\u{7f}",
        ] {
            assert!(
                matches!(Origin::parse(bad), Err(Error::InvalidOriginUrl { .. })),
                "{bad:?} should be rejected"
            );
        }
    }
}
