//! Multi-CDN content steering: the HLS Content Steering manifest (Apple, HLS
//! Content Steering Specification v1.2; RFC 8216bis 4.4.6.6) and DASH-IF
//! Content Steering, served by the Worker per viewer.
//!
//! A *pathway* is one CDN (or a path through one). Base pathways get their
//! own copy of every variant in the multivariant playlist (`PATHWAY-ID`, URIs
//! on the pathway's `base_url`); clone pathways exist only in the steering
//! manifest (`PATHWAY-CLONES`: a base pathway with another `HOST` and/or
//! query `PARAMS`), so a CDN can be added by config without touching any
//! playlist. Each viewer gets the pathways in this order:
//!
//! ```text
//! 1. healthy before degraded (a quorum of distinct viewers on it report too
//!    little throughput, or this viewer just did via _HLS_throughput)
//! 2. weighted before fallback (weight 0)
//! 3. nearest first: colo match, country, continent, no preference, other region
//! 4. weighted rendezvous hashing on a stable viewer key: a pathway with
//!    weight 3 comes first for ~3x the viewers of one with weight 1, and a
//!    viewer keeps the same order from one reload to the next
//! ```
//!
//! Drained pathways (`enabled: false`) are left out of the priority list.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::delivery::origins::Location;
use crate::Error;

/// `steering` in the edge config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SteeringConfig {
    /// The pathways. Default: none (no steering: playlists keep one set of
    /// variants and no `EXT-X-CONTENT-STEERING`).
    pub pathways: Vec<PathwayConfig>,
    /// `TTL` of the steering manifest: how long clients wait before
    /// reloading it, in s. Default: 60.
    pub ttl_s: u32,
    /// A throughput report (`_HLS_throughput`, bits/s) below this counts
    /// against the reported pathway. Default: 0 (reports ignored).
    pub min_throughput_bps: u64,
    /// How long a report keeps counting (half-life of its weight), in s.
    /// Default: 30.
    pub report_half_life_s: u32,
    /// Distinct viewers (token session, else token, else address) whose
    /// latest report on a pathway is low before it is degraded for everyone
    /// in the isolate; one viewer's reports count once, however many. Default: 3.
    pub report_quorum: u32,
}

impl Default for SteeringConfig {
    fn default() -> Self {
        Self {
            pathways: Vec::new(),
            ttl_s: 60,
            min_throughput_bps: 0,
            report_half_life_s: 30,
            report_quorum: 3,
        }
    }
}

/// One pathway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathwayConfig {
    /// Pathway ID: 1-64 of `A-Z a-z 0-9 . - _`.
    pub id: String,
    /// Base pathways: scheme and host (and optional path prefix) its variant
    /// URIs point at, e.g. `https://cdn-b.example`. Default: none, meaning
    /// relative URIs (served by whoever served the playlist).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Makes this a clone of base pathway `clone_of`. Default: none.
    #[serde(default)]
    pub clone_of: Option<String>,
    /// Clones: `URI-REPLACEMENT` `HOST` (replaces the host name, keeps the
    /// port). Default: none.
    #[serde(default)]
    pub host: Option<String>,
    /// Clones: `URI-REPLACEMENT` `PARAMS` (query parameters set on every
    /// URI). Default: none.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Relative share of viewers that get this pathway first among equally
    /// near ones; 0 makes it a fallback only. Default: 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// Cloudflare colos (`cf.colo`, e.g. `FRA`) this pathway serves best.
    /// Default: none.
    #[serde(default)]
    pub colos: Vec<String>,
    /// Viewer countries this pathway serves best. Default: none.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Viewer continents this pathway serves best. Default: none.
    #[serde(default)]
    pub continents: Vec<String>,
    /// `false` drains the pathway: it is left out of `PATHWAY-PRIORITY`.
    /// Default: true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// Which steering flavour a manifest is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// HLS: `PATHWAY-PRIORITY`, `PATHWAY-CLONES`; client reports
    /// `_HLS_pathway` and `_HLS_throughput`.
    Hls,
    /// DASH-IF: `SERVICE-LOCATION-PRIORITY` (base pathways are the
    /// `serviceLocation`s of the MPD's `BaseURL`s); client reports
    /// `_DASH_pathway` and `_DASH_throughput`.
    Dash,
}

impl Flavor {
    /// The query parameters the client reports its pathway and throughput in.
    pub fn report_params(self) -> (&'static str, &'static str) {
        match self {
            Flavor::Hls => ("_HLS_pathway", "_HLS_throughput"),
            Flavor::Dash => ("_DASH_pathway", "_DASH_throughput"),
        }
    }

    /// The client's report in a steering manifest request's query: the
    /// pathway it is on and the throughput it measured (bits/s), each if
    /// present and well formed.
    pub fn report(self, query: &str) -> (Option<String>, Option<u64>) {
        let (pathway, throughput) = self.report_params();
        (
            crate::query::param(query, pathway).map(|p| p.into_owned()),
            crate::query::param(query, throughput).and_then(|t| t.parse::<u64>().ok()),
        )
    }

    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Hls => "hls",
            Flavor::Dash => "dash",
        }
    }
}

/// `RELOAD-URI` of a steering manifest served at `path`: its own name
/// (relative), with the viewer's token when there is one.
pub fn reload_uri(path: &str, token_name: &str, token: Option<&str>) -> String {
    let mut reload = path
        .rsplit('/')
        .next()
        .unwrap_or("steering.json")
        .to_owned();
    if let Some(t) = token {
        crate::query::append_param(&mut reload, token_name, &crate::query::encode_component(t));
    }
    reload
}

/// A validated steering setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steering {
    config: SteeringConfig,
}

/// A base pathway, as the playlist rewriter needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasePathway<'a> {
    pub id: &'a str,
    pub base_url: Option<&'a str>,
}

/// The viewer a steering decision is for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Viewer<'a> {
    pub location: Location<'a>,
    /// Stable per viewer (token session id, else client address): keeps the
    /// order stable across reloads while spreading viewers by weight.
    pub key: &'a str,
    /// The pathway the client says it is on.
    pub pathway: Option<&'a str>,
    /// The throughput the client measured, bits/s.
    pub throughput: Option<u64>,
}

impl Steering {
    pub fn new(config: SteeringConfig) -> Result<Option<Self>, Error> {
        if config.pathways.is_empty() {
            return Ok(None);
        }
        let invalid = |msg: String| Error::InvalidConfig(format!("steering: {msg}"));
        for (i, p) in config.pathways.iter().enumerate() {
            if !is_pathway_id(&p.id) {
                return Err(invalid(format!(
                    "pathway id {:?}: use 1-64 of A-Z a-z 0-9 . - _",
                    p.id
                )));
            }
            if config.pathways[..i].iter().any(|q| q.id == p.id) {
                return Err(invalid(format!("pathway id {:?} repeated", p.id)));
            }
            match &p.clone_of {
                Some(base) => {
                    let ok = config
                        .pathways
                        .iter()
                        .any(|q| &q.id == base && q.clone_of.is_none());
                    if !ok {
                        return Err(invalid(format!(
                            "{}: clone_of {base:?} is not a base pathway",
                            p.id
                        )));
                    }
                    if p.base_url.is_some() {
                        return Err(invalid(format!(
                            "{}: a clone takes host/params, not base_url",
                            p.id
                        )));
                    }
                    if let Some(h) = &p.host {
                        if h.is_empty() || h.contains(['/', ':', '?', '#', ' ']) {
                            return Err(invalid(format!(
                                "{}: host {h:?} is not a host name",
                                p.id
                            )));
                        }
                    }
                }
                None => {
                    if p.host.is_some() || !p.params.is_empty() {
                        return Err(invalid(format!(
                            "{}: host/params are for clones (set clone_of)",
                            p.id
                        )));
                    }
                    if let Some(url) = &p.base_url {
                        crate::delivery::origins::Origin::parse(url)
                            .map_err(|e| invalid(format!("{}: {e}", p.id)))?;
                    }
                }
            }
        }
        if config.ttl_s == 0 {
            return Err(invalid("ttl_s must be at least 1".into()));
        }
        if config.report_quorum == 0 {
            return Err(invalid("report_quorum must be at least 1".into()));
        }
        Ok(Some(Self { config }))
    }

    pub fn config(&self) -> &SteeringConfig {
        &self.config
    }

    /// Base pathways in config order: each gets a copy of the variants.
    pub fn base_pathways(&self) -> impl Iterator<Item = BasePathway<'_>> {
        self.config
            .pathways
            .iter()
            .filter(|p| p.clone_of.is_none())
            .map(|p| BasePathway {
                id: &p.id,
                base_url: p.base_url.as_deref().map(|u| u.trim_end_matches('/')),
            })
    }

    /// This viewer's pathway order (enabled pathways; all of them if every
    /// one is drained, so the list is never empty).
    pub fn priority(&self, viewer: &Viewer<'_>, health: &PathwayHealth, now_ms: u64) -> Vec<&str> {
        let pathways = &self.config.pathways;
        let enabled: Vec<&PathwayConfig> = pathways.iter().filter(|p| p.enabled).collect();
        let mut list = if enabled.is_empty() {
            pathways.iter().collect()
        } else {
            enabled
        };
        let personal_low = |p: &PathwayConfig| {
            self.config.min_throughput_bps > 0
                && viewer.pathway == Some(p.id.as_str())
                && viewer
                    .throughput
                    .is_some_and(|t| t < self.config.min_throughput_bps)
        };
        // Sort key: degraded, fallback (weight 0), nearness, weighted race.
        let mut keyed: Vec<((bool, bool, u8), f64, &PathwayConfig)> = list
            .drain(..)
            .map(|p| {
                let degraded = personal_low(p) || health.is_degraded(&p.id, now_ms, &self.config);
                let rank = (degraded, p.weight == 0, nearness(p, &viewer.location));
                (rank, race(viewer.key, p), p)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        keyed.into_iter().map(|(_, _, p)| p.id.as_str()).collect()
    }

    /// The pathway a playlist names in `EXT-X-CONTENT-STEERING` (used until
    /// the first steering manifest arrives): the first base pathway in the
    /// viewer's priority.
    pub fn initial_pathway(
        &self,
        viewer: &Viewer<'_>,
        health: &PathwayHealth,
        now_ms: u64,
    ) -> Option<&str> {
        let bases: Vec<&str> = self.base_pathways().map(|b| b.id).collect();
        self.priority(viewer, health, now_ms)
            .into_iter()
            .find(|id| bases.contains(id))
            .or_else(|| bases.first().copied())
    }

    /// The steering manifest for `viewer`. `reload_uri` is where the client
    /// gets the next one (relative to this one's URL).
    pub fn manifest(
        &self,
        flavor: Flavor,
        viewer: &Viewer<'_>,
        health: &PathwayHealth,
        now_ms: u64,
        reload_uri: String,
    ) -> Manifest {
        let priority = self.priority(viewer, health, now_ms);
        match flavor {
            Flavor::Hls => {
                let clones = self
                    .config
                    .pathways
                    .iter()
                    .filter(|p| p.clone_of.is_some() && priority.contains(&p.id.as_str()))
                    .map(|p| PathwayClone {
                        base_id: p.clone_of.clone().unwrap_or_default(),
                        id: p.id.clone(),
                        uri_replacement: UriReplacement {
                            host: p.host.clone(),
                            params: (!p.params.is_empty()).then(|| p.params.clone()),
                        },
                    })
                    .collect();
                Manifest {
                    version: 1,
                    ttl: self.config.ttl_s,
                    reload_uri: Some(reload_uri),
                    pathway_priority: Some(priority.into_iter().map(String::from).collect()),
                    service_location_priority: None,
                    pathway_clones: clones,
                }
            }
            Flavor::Dash => {
                let bases: Vec<&str> = self.base_pathways().map(|b| b.id).collect();
                Manifest {
                    version: 1,
                    ttl: self.config.ttl_s,
                    reload_uri: Some(reload_uri),
                    pathway_priority: None,
                    service_location_priority: Some(
                        priority
                            .into_iter()
                            .filter(|id| bases.contains(id))
                            .map(String::from)
                            .collect(),
                    ),
                    pathway_clones: Vec::new(),
                }
            }
        }
    }
}

/// 0 colo, 1 country, 2 continent, 3 no preference, 4 prefers elsewhere.
fn nearness(p: &PathwayConfig, loc: &Location<'_>) -> u8 {
    let has = |list: &[String], v: Option<&str>| {
        v.is_some_and(|v| list.iter().any(|c| c.eq_ignore_ascii_case(v)))
    };
    if has(&p.colos, loc.colo) {
        0
    } else if has(&p.countries, loc.country) {
        1
    } else if has(&p.continents, loc.continent) {
        2
    } else if p.colos.is_empty() && p.countries.is_empty() && p.continents.is_empty() {
        3
    } else {
        4
    }
}

/// Weighted rendezvous hashing (an exponential race): `-ln(u) / weight` with
/// `u` uniform in (0, 1] from a hash of viewer and pathway. Lowest wins, and
/// pathway `i` wins with probability `w_i / Σw`.
fn race(viewer_key: &str, p: &PathwayConfig) -> f64 {
    if p.weight == 0 {
        return f64::INFINITY;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in viewer_key.bytes().chain([0xff]).chain(p.id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finalizer: FNV alone leaves the high bits poorly mixed.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let u = ((h >> 11) + 1) as f64 / (1u64 << 53) as f64;
    -u.ln() / f64::from(p.weight)
}

fn is_pathway_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// What viewers report about each pathway (per isolate): each viewer's
/// latest report, weighted by its age (half-life `report_half_life_s`).
///
/// A pathway is degraded while at least `report_quorum` distinct viewers'
/// current reports are low and the low ones outweigh the rest. One viewer
/// counts once however often it reports (its newest report replaces its
/// last), so no single token holder can demote a pathway for everyone; at
/// most [`MAX_REPORTERS`] viewers are remembered per pathway (the oldest
/// report is forgotten first), so memory stays bounded whoever reports.
#[derive(Debug, Clone, Default)]
pub struct PathwayHealth {
    pathways: HashMap<String, HashMap<String, Report>>,
}

/// Most viewers whose reports are kept per pathway.
pub const MAX_REPORTERS: usize = 4096;

/// A report counts for this many half-lives, then it is forgotten.
const REPORT_LIFETIME_HALF_LIVES: u64 = 4;

#[derive(Debug, Clone, Copy)]
struct Report {
    low: bool,
    at_ms: u64,
}

impl Report {
    fn weight(self, now_ms: u64, half_life_s: u32) -> f64 {
        let age_s = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        0.5f64.powf(age_s / f64::from(half_life_s.max(1)))
    }

    fn expired(self, now_ms: u64, half_life_s: u32) -> bool {
        let lifetime = u64::from(half_life_s.max(1)) * 1000 * REPORT_LIFETIME_HALF_LIVES;
        now_ms.saturating_sub(self.at_ms) >= lifetime
    }
}

impl PathwayHealth {
    /// Records a viewer's report (`_HLS_pathway`, `_HLS_throughput`):
    /// `reporter` is a stable key for the viewer, which replaces its last
    /// report on that pathway.
    pub fn record(
        &mut self,
        cfg: &SteeringConfig,
        pathway: &str,
        reporter: &str,
        throughput: u64,
        now_ms: u64,
    ) {
        if cfg.min_throughput_bps == 0 || !cfg.pathways.iter().any(|p| p.id == pathway) {
            return;
        }
        let reports = self.pathways.entry(pathway.to_owned()).or_default();
        reports.retain(|_, r| !r.expired(now_ms, cfg.report_half_life_s));
        if reports.len() >= MAX_REPORTERS && !reports.contains_key(reporter) {
            let oldest = reports
                .iter()
                .min_by_key(|(_, r)| r.at_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                reports.remove(&k);
            }
        }
        reports.insert(
            reporter.to_owned(),
            Report {
                low: throughput < cfg.min_throughput_bps,
                at_ms: now_ms,
            },
        );
    }

    pub fn is_degraded(&self, pathway: &str, now_ms: u64, cfg: &SteeringConfig) -> bool {
        let Some(reports) = self.pathways.get(pathway) else {
            return false;
        };
        let (mut low_viewers, mut low, mut all) = (0u32, 0.0, 0.0);
        for r in reports.values() {
            if r.expired(now_ms, cfg.report_half_life_s) {
                continue;
            }
            let w = r.weight(now_ms, cfg.report_half_life_s);
            all += w;
            if r.low {
                low += w;
                low_viewers += 1;
            }
        }
        low_viewers >= cfg.report_quorum && low * 2.0 > all
    }

    /// Viewers whose reports on `pathway` are remembered.
    pub fn reporters(&self, pathway: &str) -> usize {
        self.pathways.get(pathway).map_or(0, HashMap::len)
    }
}

/// A steering manifest, serialized field by field as the specs name them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    #[serde(rename = "VERSION")]
    pub version: u32,
    #[serde(rename = "TTL")]
    pub ttl: u32,
    #[serde(rename = "RELOAD-URI", skip_serializing_if = "Option::is_none")]
    pub reload_uri: Option<String>,
    #[serde(rename = "PATHWAY-PRIORITY", skip_serializing_if = "Option::is_none")]
    pub pathway_priority: Option<Vec<String>>,
    #[serde(
        rename = "SERVICE-LOCATION-PRIORITY",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_location_priority: Option<Vec<String>>,
    #[serde(rename = "PATHWAY-CLONES", skip_serializing_if = "Vec::is_empty")]
    pub pathway_clones: Vec<PathwayClone>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathwayClone {
    #[serde(rename = "BASE-ID")]
    pub base_id: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "URI-REPLACEMENT")]
    pub uri_replacement: UriReplacement,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UriReplacement {
    #[serde(rename = "HOST", skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(rename = "PARAMS", skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
}

impl Manifest {
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steering(json: &str) -> Steering {
        Steering::new(serde_json::from_str(json).unwrap())
            .unwrap()
            .unwrap()
    }

    const THREE: &str = r#"{
        "ttl_s": 30,
        "min_throughput_bps": 1000000,
        "pathways": [
            {"id": "a", "continents": ["EU"]},
            {"id": "b", "base_url": "https://b.example/", "countries": ["US"]},
            {"id": "c", "clone_of": "a", "host": "c.example", "params": {"cdn": "c"}, "colos": ["FRA"]}
        ]
    }"#;

    fn viewer<'a>(country: &'a str, continent: &'a str, colo: &'a str, key: &'a str) -> Viewer<'a> {
        Viewer {
            location: Location {
                country: Some(country),
                continent: Some(continent),
                colo: Some(colo),
            },
            key,
            pathway: None,
            throughput: None,
        }
    }

    #[test]
    fn orders_by_nearness() {
        let s = steering(THREE);
        let h = PathwayHealth::default();
        let cases = [
            (viewer("DE", "EU", "FRA", "v"), "c", "a"),
            (viewer("DE", "EU", "AMS", "v"), "a", ""),
            (viewer("US", "NA", "IAD", "v"), "b", "a"),
        ];
        for (v, first, second) in cases {
            let p = s.priority(&v, &h, 0);
            assert_eq!(p.len(), 3);
            assert_eq!(p[0], first, "{v:?}");
            if !second.is_empty() {
                assert_eq!(p[1], second, "{v:?}");
            }
        }
        assert_eq!(
            s.initial_pathway(&viewer("DE", "EU", "FRA", "v"), &h, 0),
            Some("a"),
            "clones never start a session: they are not in the playlist"
        );
    }

    #[test]
    fn weights_spread_viewers_and_stay_stable() {
        let s = steering(
            r#"{"pathways": [{"id": "x", "weight": 3}, {"id": "y", "weight": 1}, {"id": "z", "weight": 0}]}"#,
        );
        let h = PathwayHealth::default();
        let mut first_x = 0;
        for i in 0..4000 {
            let key = format!("viewer-{i}");
            let v = viewer("DE", "EU", "FRA", &key);
            let p = s.priority(&v, &h, 0);
            assert_eq!(p, s.priority(&v, &h, 0), "stable for a viewer");
            assert_eq!(p[2], "z", "weight 0 is always last");
            first_x += usize::from(p[0] == "x");
        }
        // Expect 3000 of 4000; allow generous noise.
        assert!(
            (2800..3200).contains(&first_x),
            "x first for {first_x}/4000"
        );
    }

    #[test]
    fn reports_move_pathways_down() {
        let s = steering(THREE);
        let cfg = s.config().clone();
        let mut h = PathwayHealth::default();
        let mut v = viewer("DE", "EU", "AMS", "v");
        assert_eq!(s.priority(&v, &h, 0)[0], "a");
        // This viewer reports too little throughput on a: a goes last for them.
        v.pathway = Some("a");
        v.throughput = Some(500_000);
        assert_eq!(s.priority(&v, &h, 0).last(), Some(&"a"));
        v.throughput = Some(5_000_000);
        assert_eq!(s.priority(&v, &h, 0)[0], "a");
        // A quorum of viewers reports low on a: a is degraded for everyone...
        for viewer in ["v1", "v2", "v3", "v4"] {
            h.record(&cfg, "a", viewer, 100_000, 1000);
        }
        h.record(&cfg, "a", "v5", 9_000_000, 1000);
        let other = viewer("DE", "EU", "AMS", "w");
        assert_eq!(s.priority(&other, &h, 1000).last(), Some(&"a"));
        assert!(h.is_degraded("a", 1000, &cfg));
        // ...until their reports age out (4 half-lives of 30 s)...
        assert!(!h.is_degraded("a", 1000 + 120_000, &cfg));
        // ...or they report good throughput again.
        for viewer in ["v1", "v2"] {
            h.record(&cfg, "a", viewer, 9_000_000, 2000);
        }
        assert!(
            !h.is_degraded("a", 2000, &cfg),
            "two low of five is no majority"
        );
        // Reports on unknown pathways are ignored.
        h.record(&cfg, "nope", "v1", 1, 0);
        assert!(!h.is_degraded("nope", 0, &cfg));
        assert_eq!(h.reporters("nope"), 0);
    }

    /// issue 16: three low reports from any one token holder used to demote a
    /// pathway for the whole isolate.
    #[test]
    fn one_viewer_cannot_demote_a_pathway_for_everyone() {
        let s = steering(THREE);
        let cfg = s.config().clone();
        let mut h = PathwayHealth::default();
        for t in 0..1000 {
            h.record(&cfg, "a", "attacker", 1, 1000 + t);
        }
        assert!(!h.is_degraded("a", 2000, &cfg));
        assert_eq!(h.reporters("a"), 1, "one viewer, one report kept");
        let other = viewer("DE", "EU", "AMS", "w");
        assert_eq!(s.priority(&other, &h, 2000)[0], "a");
    }

    #[test]
    fn a_quorum_of_distinct_viewers_demotes() {
        let s = steering(THREE);
        let cfg = s.config().clone();
        let mut h = PathwayHealth::default();
        h.record(&cfg, "a", "v1", 1, 0);
        h.record(&cfg, "a", "v2", 1, 0);
        assert!(
            !h.is_degraded("a", 0, &cfg),
            "two viewers are below the quorum of 3"
        );
        h.record(&cfg, "a", "v3", 1, 0);
        assert!(h.is_degraded("a", 0, &cfg));
        // Good reports from more viewers outweigh them.
        for v in ["g1", "g2", "g3"] {
            h.record(&cfg, "a", v, 9_000_000, 0);
        }
        assert!(!h.is_degraded("a", 0, &cfg), "3 low of 6 is no majority");
        // A higher quorum needs more viewers.
        let strict = SteeringConfig {
            report_quorum: 5,
            ..cfg.clone()
        };
        let mut h = PathwayHealth::default();
        for v in ["v1", "v2", "v3", "v4"] {
            h.record(&strict, "a", v, 1, 0);
        }
        assert!(!h.is_degraded("a", 0, &strict));
        h.record(&strict, "a", "v5", 1, 0);
        assert!(h.is_degraded("a", 0, &strict));
    }

    #[test]
    fn reporters_are_bounded_per_pathway() {
        let s = steering(THREE);
        let cfg = s.config().clone();
        let mut h = PathwayHealth::default();
        for i in 0..(MAX_REPORTERS + 500) {
            h.record(&cfg, "a", &format!("v{i}"), 1, i as u64);
        }
        assert_eq!(h.reporters("a"), MAX_REPORTERS);
        assert!(h.is_degraded("a", (MAX_REPORTERS + 500) as u64, &cfg));
    }

    #[test]
    fn drained_pathways_are_left_out() {
        let s = steering(
            r#"{"pathways": [{"id": "a", "enabled": false}, {"id": "b"}, {"id": "c", "clone_of": "a", "host": "c.example"}]}"#,
        );
        let h = PathwayHealth::default();
        let v = viewer("DE", "EU", "AMS", "v");
        let mut p = s.priority(&v, &h, 0);
        p.sort_unstable();
        assert_eq!(p, ["b", "c"]);
        assert_eq!(s.initial_pathway(&v, &h, 0), Some("b"));
        let all_off = steering(r#"{"pathways": [{"id": "a", "enabled": false}]}"#);
        assert_eq!(all_off.priority(&v, &h, 0), ["a"]);
    }

    #[test]
    fn manifests_field_by_field() {
        let s = steering(THREE);
        let h = PathwayHealth::default();
        let v = viewer("DE", "EU", "FRA", "v");
        let hls = s.manifest(Flavor::Hls, &v, &h, 0, "steering.json?t=1".into());
        let json: serde_json::Value = serde_json::from_str(&hls.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "VERSION": 1,
                "TTL": 30,
                "RELOAD-URI": "steering.json?t=1",
                "PATHWAY-PRIORITY": ["c", "a", "b"],
                "PATHWAY-CLONES": [{
                    "BASE-ID": "a",
                    "ID": "c",
                    "URI-REPLACEMENT": {"HOST": "c.example", "PARAMS": {"cdn": "c"}}
                }]
            })
        );
        let dash = s.manifest(Flavor::Dash, &v, &h, 0, "steering-dash.json".into());
        let json: serde_json::Value = serde_json::from_str(&dash.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "VERSION": 1,
                "TTL": 30,
                "RELOAD-URI": "steering-dash.json",
                "SERVICE-LOCATION-PRIORITY": ["a", "b"]
            })
        );
        let bases: Vec<_> = s.base_pathways().collect();
        assert_eq!(
            bases,
            [
                BasePathway {
                    id: "a",
                    base_url: None
                },
                BasePathway {
                    id: "b",
                    base_url: Some("https://b.example")
                }
            ]
        );
    }

    #[test]
    fn reports_and_reload_uris() {
        assert_eq!(
            Flavor::Hls.report("_HLS_pathway=a&_HLS_throughput=123&x=1"),
            (Some("a".into()), Some(123))
        );
        assert_eq!(
            Flavor::Dash.report("_DASH_pathway=b%20c&_DASH_throughput=-1"),
            (Some("b c".into()), None)
        );
        assert_eq!(Flavor::Dash.report("_HLS_pathway=a"), (None, None));
        assert_eq!(
            reload_uri("/live/cam1/steering.json", "__token__", Some("a=b~c")),
            "steering.json?__token__=a%3Db~c"
        );
        assert_eq!(
            reload_uri("/live/cam1/steering-dash.json", "t", None),
            "steering-dash.json"
        );
    }

    #[test]
    fn invalid_configs() {
        for bad in [
            r#"{"pathways": [{"id": "a b"}]}"#,
            r#"{"pathways": [{"id": ""}]}"#,
            r#"{"pathways": [{"id": "a"}, {"id": "a"}]}"#,
            r#"{"pathways": [{"id": "a"}, {"id": "c", "clone_of": "x"}]}"#,
            r#"{"pathways": [{"id": "a"}, {"id": "c", "clone_of": "a"}, {"id": "d", "clone_of": "c"}]}"#,
            r#"{"pathways": [{"id": "a", "host": "h"}]}"#,
            r#"{"pathways": [{"id": "a", "base_url": "ftp://x"}]}"#,
            r#"{"pathways": [{"id": "a"}, {"id": "c", "clone_of": "a", "base_url": "https://c"}]}"#,
            r#"{"pathways": [{"id": "a"}, {"id": "c", "clone_of": "a", "host": "c:8080"}]}"#,
            r#"{"ttl_s": 0, "pathways": [{"id": "a"}]}"#,
            r#"{"report_quorum": 0, "pathways": [{"id": "a"}]}"#,
        ] {
            let cfg: SteeringConfig = serde_json::from_str(bad).unwrap();
            assert!(Steering::new(cfg).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<SteeringConfig>(
            r#"{"pathways": [{"id": "a", "wieght": 2}]}"#
        )
        .is_err());
        assert_eq!(Steering::new(SteeringConfig::default()).unwrap(), None);
    }
}
