//! The stream directory: which origins serve a live stream, learnt from the
//! origins themselves instead of the edge config (`origins.regions`).
//!
//! ```text
//! origin ── POST /_brook/directory {origin, url, streams, ttl_s} ──▶ edge Worker
//!            (Bearer DIRECTORY_TOKEN; url checked against origins.directory.allow)
//!                                                                   └─▶ StreamDirectory (one Durable Object):
//!                                                                       Registry::apply, kept in its storage
//! viewer ── /live/<stream>/... ──▶ edge Worker: LookupCache (per isolate, 2 s found / 1 s unknown)
//!                                   └─ miss ─▶ StreamDirectory: Registry::lookup(stream, now)
//!                                   registered origins (allowed now) → failover order as for regions;
//!                                   none → 404 (or the static regions with `fallback_to_static`)
//! ```
//!
//! A heartbeat *replaces* what its origin serves: the streams it lists, for
//! `ttl_s` from when the directory got it. An empty list (an origin shutting
//! down cleanly) removes the origin at once; an origin that stops sending is
//! gone `ttl_s` after its last heartbeat. Everything here is plain data and
//! rules; the Durable Object and the Worker's handler are
//! `bindings/directory.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use brook_common::valid_stream_name;
use serde::{Deserialize, Serialize};

use super::origins::{Origin, Region};

/// Most streams one heartbeat may list.
pub const MAX_STREAMS_PER_ORIGIN: usize = 4096;
/// Most origins the directory keeps at once (a new one past this is refused
/// until one expires).
pub const MAX_ORIGINS: usize = 256;
/// Largest heartbeat body the edge reads (4096 names of 64 bytes, quoted).
pub const MAX_HEARTBEAT_BYTES: usize = 320 * 1024;
/// Bounds on a heartbeat's `ttl_s`.
pub const TTL_S: std::ops::RangeInclusive<u64> = 1..=300;
/// Most streams an isolate keeps a directory answer for.
const CACHE_MAX_STREAMS: usize = 4096;

/// `origins.directory` in the edge config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// Whether live streams are looked up in the directory (the
    /// `DIRECTORY` Durable Object) and origins may register at
    /// `POST /_brook/directory`. Default: false (only the static
    /// `regions` / `ORIGIN_URL`).
    pub enabled: bool,
    /// A stream no origin registered goes to the static regions
    /// (`regions`, else `ORIGIN_URL`) instead of being a 404 at the edge.
    /// Default: false.
    pub fallback_to_static: bool,
    /// Which origin URLs a registration may name, e.g.
    /// `["https://*.origins.example", "http://10.0.0.7:8080"]`: scheme,
    /// host (a leading `*.` matches any subdomain, never the bare domain)
    /// and port (`:*` any; none: the scheme's default). A registration
    /// naming any other URL is refused (403), and the rules are applied
    /// again to every answer of the directory, so a rule removed takes
    /// effect at once. Default: none (no registration is accepted).
    pub allow: Vec<AllowRule>,
    /// How long an isolate keeps the directory's answer for a stream it
    /// found, in ms. Default: 2000.
    pub found_ttl_ms: u64,
    /// The same for a stream the directory does not know. Default: 1000.
    pub unknown_ttl_ms: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            fallback_to_static: false,
            allow: Vec::new(),
            found_ttl_ms: 2000,
            unknown_ttl_ms: 1000,
        }
    }
}

impl DirectoryConfig {
    /// Whether `origin` matches one of the `allow` rules.
    pub fn allows(&self, origin: &Origin) -> bool {
        let Some(at) = Authority::of(origin.base()) else {
            return false;
        };
        self.allow.iter().any(|rule| rule.matches(&at))
    }
}

/// One `origins.directory.allow` entry, checked when the config is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AllowRule {
    https: bool,
    /// Lowercase; for `*.suffix`, the suffix (and `wildcard`).
    host: String,
    wildcard: bool,
    /// `None`: any port.
    port: Option<u16>,
}

impl TryFrom<String> for AllowRule {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let bad = |why: &str| format!("origins.directory.allow {value:?}: {why}");
        let (https, rest) = split_scheme(&value).ok_or_else(|| bad("use http:// or https://"))?;
        if rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
            return Err(bad("scheme, host and port only"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, None),
            Some((h, p)) => (
                h,
                Some(p.parse::<u16>().map_err(|_| bad("port is not a number"))?),
            ),
            None => (rest, Some(default_port(https))),
        };
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad(
                "host is missing, or has a `*` other than a leading `*.`",
            ));
        }
        Ok(Self {
            https,
            host: host.to_ascii_lowercase(),
            wildcard,
            port,
        })
    }
}

impl AllowRule {
    fn matches(&self, at: &Authority) -> bool {
        let host_ok = if self.wildcard {
            at.host
                .strip_suffix(self.host.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            at.host == self.host
        };
        self.https == at.https && host_ok && self.port.is_none_or(|p| p == at.port)
    }
}

/// Scheme, host and port of an origin's base URL.
struct Authority {
    https: bool,
    host: String,
    port: u16,
}

impl Authority {
    fn of(base: &str) -> Option<Self> {
        let (https, rest) = split_scheme(base.trim())?;
        let authority = rest.split('/').next()?;
        // Userinfo would let `https://allowed.example@elsewhere` look allowed.
        if authority.contains('@') {
            return None;
        }
        let (host, port) = if authority.starts_with('[') {
            // An IPv6 literal: `[::1]` or `[::1]:8080`.
            let end = authority.find(']')?;
            let port = match &authority[end + 1..] {
                "" => default_port(https),
                p => p.strip_prefix(':')?.parse().ok()?,
            };
            (&authority[..=end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, default_port(https)),
            }
        };
        Some(Self {
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

fn split_scheme(s: &str) -> Option<(bool, &str)> {
    for (scheme, https) in [("https://", true), ("http://", false)] {
        if s.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            return Some((https, &s[scheme.len()..]));
        }
    }
    None
}

fn default_port(https: bool) -> u16 {
    if https {
        443
    } else {
        80
    }
}

/// What an origin sends, as JSON, to `POST /_brook/directory`.
///
/// ```json
/// {"origin": "eu-1", "url": "https://eu-1.origins.example", "streams": ["cam1", "cam2"], "ttl_s": 6}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The origin's name, as stream names are spelled: its id in failover,
    /// logs and `brook_edge_origin_*` metrics. Static region ids and
    /// registered ones share one namespace (one health record per id).
    pub origin: String,
    /// Where the edge fetches this origin's streams (as `ORIGIN_URL`).
    pub url: String,
    /// Every live stream the origin serves now; empty: it serves none (the
    /// clean-shutdown deregistration).
    pub streams: Vec<String>,
    /// How long this holds without another heartbeat, in seconds (1-300).
    pub ttl_s: u64,
}

/// Why a heartbeat is refused (a 400, or 403 for [`Refused::NotAllowed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a heartbeat: {0}")]
    Malformed(String),
    #[error("origin name {0:?} is not 1-64 of A-Z a-z 0-9 _ -")]
    BadName(String),
    #[error("stream name {0:?} is not 1-64 of A-Z a-z 0-9 _ -")]
    BadStream(String),
    #[error("{0} streams, more than {MAX_STREAMS_PER_ORIGIN}")]
    TooManyStreams(usize),
    #[error("ttl_s {0} is outside 1-300")]
    BadTtl(u64),
    #[error("{0}")]
    BadUrl(String),
    #[error("url {0:?} is not allowed by origins.directory.allow")]
    NotAllowed(String),
    #[error("the directory holds {MAX_ORIGINS} origins already")]
    Full,
}

impl Heartbeat {
    /// Parses and checks a heartbeat body (names, URL, TTL, limits); the
    /// streams come back sorted without repeats.
    pub fn parse(body: &[u8]) -> Result<Self, Refused> {
        let mut hb: Heartbeat =
            serde_json::from_slice(body).map_err(|e| Refused::Malformed(e.to_string()))?;
        hb.check()?;
        hb.streams.sort();
        hb.streams.dedup();
        Ok(hb)
    }

    fn check(&self) -> Result<Origin, Refused> {
        if !valid_stream_name(&self.origin) {
            return Err(Refused::BadName(self.origin.clone()));
        }
        if self.streams.len() > MAX_STREAMS_PER_ORIGIN {
            return Err(Refused::TooManyStreams(self.streams.len()));
        }
        if let Some(bad) = self.streams.iter().find(|s| !valid_stream_name(s)) {
            return Err(Refused::BadStream(bad.clone()));
        }
        if !TTL_S.contains(&self.ttl_s) {
            return Err(Refused::BadTtl(self.ttl_s));
        }
        Origin::parse(&self.url).map_err(|e| Refused::BadUrl(e.to_string()))
    }

    /// [`Heartbeat::parse`]'s checks, then the URL against `config.allow`.
    pub fn admit(body: &[u8], config: &DirectoryConfig) -> Result<Self, Refused> {
        let hb = Self::parse(body)?;
        let origin = hb.check()?;
        if !config.allows(&origin) {
            return Err(Refused::NotAllowed(hb.url.clone()));
        }
        Ok(hb)
    }
}

/// A registered origin, as the directory answers a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub id: String,
    pub url: String,
}

/// The directory's answer for one stream (`GET .../lookup?stream=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Every origin that registered the stream and has not expired, the
    /// most recently heard first.
    pub origins: Vec<Registered>,
}

impl Answer {
    /// The origins as regions to try (in the answer's order), keeping only
    /// those `config` allows now; `None` when none is left.
    pub fn regions(&self, config: &DirectoryConfig) -> Option<Vec<Region>> {
        let regions: Vec<Region> = self
            .origins
            .iter()
            .filter_map(|r| {
                let origin = Origin::parse(&r.url).ok()?;
                config
                    .allows(&origin)
                    .then(|| Region::registered(r.id.clone(), origin))
            })
            .collect();
        (!regions.is_empty()).then_some(regions)
    }
}

/// One origin's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    url: String,
    streams: BTreeSet<String>,
    /// When the last heartbeat came (ms since the epoch).
    heard_ms: u64,
    /// When it stops counting without another.
    expires_ms: u64,
}

/// What a heartbeat did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The origin is registered with this many streams.
    Registered(usize),
    /// The origin listed none and is gone from the directory.
    Removed,
}

impl Applied {
    /// The `brook_edge_directory_registrations_total` `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Registered(_) => "registered",
            Applied::Removed => "removed",
        }
    }
}

/// The directory itself: what the `StreamDirectory` Durable Object keeps
/// (and stores whole after every change: at most [`MAX_ORIGINS`] entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    origins: BTreeMap<String, Entry>,
}

impl Registry {
    /// Applies a heartbeat received at `now_ms` (checked again here: the
    /// Durable Object trusts no caller more than the rules).
    pub fn apply(&mut self, hb: &Heartbeat, now_ms: u64) -> Result<Applied, Refused> {
        hb.check()?;
        self.expire(now_ms);
        if hb.streams.is_empty() {
            self.origins.remove(&hb.origin);
            return Ok(Applied::Removed);
        }
        if !self.origins.contains_key(&hb.origin) && self.origins.len() >= MAX_ORIGINS {
            return Err(Refused::Full);
        }
        let streams: BTreeSet<String> = hb.streams.iter().cloned().collect();
        let n = streams.len();
        self.origins.insert(
            hb.origin.clone(),
            Entry {
                url: hb.url.clone(),
                streams,
                heard_ms: now_ms,
                expires_ms: now_ms.saturating_add(hb.ttl_s.saturating_mul(1000)),
            },
        );
        Ok(Applied::Registered(n))
    }

    /// The origins serving `stream` at `now_ms`, the most recently heard
    /// first (then by id).
    pub fn lookup(&self, stream: &str, now_ms: u64) -> Answer {
        let mut found: Vec<(&String, &Entry)> = self
            .origins
            .iter()
            .filter(|(_, e)| now_ms < e.expires_ms && e.streams.contains(stream))
            .collect();
        found.sort_by(|a, b| b.1.heard_ms.cmp(&a.1.heard_ms).then(a.0.cmp(b.0)));
        Answer {
            origins: found
                .into_iter()
                .map(|(id, e)| Registered {
                    id: id.clone(),
                    url: e.url.clone(),
                })
                .collect(),
        }
    }

    /// Forgets origins whose registration ran out; whether any did.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let before = self.origins.len();
        self.origins.retain(|_, e| now_ms < e.expires_ms);
        self.origins.len() != before
    }

    /// Registered origins (expired ones included until the next change).
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }
}

/// The directory's answers kept by one isolate, so a stream's viewers do
/// not each ask the Durable Object.
#[derive(Debug, Default)]
pub struct LookupCache {
    answers: HashMap<String, (Answer, u64)>,
}

impl LookupCache {
    /// The kept answer for `stream`, if younger than its TTL
    /// (`found_ttl_ms` when it names an origin, else `unknown_ttl_ms`).
    pub fn get(&self, stream: &str, now_ms: u64, config: &DirectoryConfig) -> Option<&Answer> {
        let (answer, at) = self.answers.get(stream)?;
        let ttl = if answer.origins.is_empty() {
            config.unknown_ttl_ms
        } else {
            config.found_ttl_ms
        };
        (now_ms.saturating_sub(*at) < ttl).then_some(answer)
    }

    /// Keeps `answer` for `stream`, got at `now_ms`. Past
    /// [`CACHE_MAX_STREAMS`] streams, everything older than a few seconds
    /// goes first (and everything, if that is not enough).
    pub fn put(&mut self, stream: &str, answer: Answer, now_ms: u64) {
        if self.answers.len() >= CACHE_MAX_STREAMS && !self.answers.contains_key(stream) {
            self.answers
                .retain(|_, (_, at)| now_ms.saturating_sub(*at) < 5_000);
            if self.answers.len() >= CACHE_MAX_STREAMS {
                self.answers.clear();
            }
        }
        self.answers.insert(stream.to_owned(), (answer, now_ms));
    }

    /// Drops the kept answers a heartbeat through this isolate changed:
    /// those for the streams it lists, and those naming its origin.
    pub fn forget(&mut self, hb: &Heartbeat) {
        for stream in &hb.streams {
            self.answers.remove(stream);
        }
        self.answers
            .retain(|_, (answer, _)| !answer.origins.iter().any(|r| r.id == hb.origin));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allow: &[&str]) -> DirectoryConfig {
        let json = serde_json::json!({ "enabled": true, "allow": allow });
        serde_json::from_value(json).unwrap()
    }

    fn hb(origin: &str, url: &str, streams: &[&str], ttl_s: u64) -> Heartbeat {
        Heartbeat {
            origin: origin.into(),
            url: url.into(),
            streams: streams.iter().map(|s| s.to_string()).collect(),
            ttl_s,
        }
    }

    #[test]
    fn allow_rules_match_scheme_host_and_port() {
        let c = config(&[
            "https://*.origins.example",
            "http://127.0.0.1:*",
            "http://10.0.0.7:8080",
            "https://[2001:db8::1]:8443",
        ]);
        let cases = [
            ("https://eu-1.origins.example", true),
            ("https://eu-1.origins.example/brook", true),
            ("https://a.b.origins.example:443", true),
            ("HTTPS://EU-1.Origins.Example", true),
            ("https://origins.example", false),
            ("https://evilorigins.example", false),
            ("https://eu-1.origins.example.evil.example", false),
            ("http://eu-1.origins.example", false),
            ("https://eu-1.origins.example:8443", false),
            ("https://eu-1.origins.example@evil.example", false),
            ("http://127.0.0.1:8080", true),
            ("http://127.0.0.1", true),
            ("http://127.0.0.10:8080", false),
            ("https://127.0.0.1:8080", false),
            ("http://10.0.0.7:8080", true),
            ("http://10.0.0.7", false),
            ("http://10.0.0.7:8081", false),
            ("https://[2001:db8::1]:8443", true),
            ("https://[2001:db8::1]", false),
        ];
        for (url, want) in cases {
            let origin = Origin::parse(url).unwrap();
            assert_eq!(c.allows(&origin), want, "{url}");
        }
        assert!(!config(&[]).allows(&Origin::parse("http://127.0.0.1:80").unwrap()));
    }

    #[test]
    fn refuses_bad_allow_rules() {
        for bad in [
            "127.0.0.1",
            "ftp://x",
            "https://",
            "https://*.",
            "https://a.*.example",
            "https://x/path",
            "https://x:port",
            "https://x:99999",
            "https://u@x",
            "https://x?q",
        ] {
            let json = serde_json::json!({ "allow": [bad] });
            assert!(
                serde_json::from_value::<DirectoryConfig>(json).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<DirectoryConfig>(serde_json::json!({"ttl": 1})).is_err());
    }

    #[test]
    fn heartbeats_are_checked() {
        let ok =
            br#"{"origin":"eu-1","url":"http://127.0.0.1:8080","streams":["b","a","b"],"ttl_s":6}"#;
        let parsed = Heartbeat::parse(ok).unwrap();
        assert_eq!(parsed.streams, ["a", "b"], "sorted, no repeats");
        let c = config(&["http://127.0.0.1:*"]);
        assert_eq!(Heartbeat::admit(ok, &c).unwrap(), parsed);
        assert!(matches!(
            Heartbeat::admit(ok, &config(&["https://127.0.0.1:*"])),
            Err(Refused::NotAllowed(_))
        ));
        type Want = fn(&Refused) -> bool;
        let cases: &[(&[u8], Want)] = &[
            (b"{", |r| matches!(r, Refused::Malformed(_))),
            (b"[]", |r| matches!(r, Refused::Malformed(_))),
            (
                br#"{"origin":"a","url":"http://x","streams":[],"ttl_s":6,"extra":1}"#,
                |r| matches!(r, Refused::Malformed(_)),
            ),
            (br#"{"origin":"a","url":"http://x","streams":[]}"#, |r| {
                matches!(r, Refused::Malformed(_))
            }),
            (
                br#"{"origin":"a b","url":"http://x","streams":[],"ttl_s":6}"#,
                |r| matches!(r, Refused::BadName(_)),
            ),
            (
                br#"{"origin":"a","url":"http://x","streams":["../x"],"ttl_s":6}"#,
                |r| matches!(r, Refused::BadStream(_)),
            ),
            (
                br#"{"origin":"a","url":"http://x","streams":[],"ttl_s":0}"#,
                |r| matches!(r, Refused::BadTtl(0)),
            ),
            (
                br#"{"origin":"a","url":"http://x","streams":[],"ttl_s":301}"#,
                |r| matches!(r, Refused::BadTtl(301)),
            ),
            (
                br#"{"origin":"a","url":"ftp://x","streams":[],"ttl_s":6}"#,
                |r| matches!(r, Refused::BadUrl(_)),
            ),
            (
                br#"{"origin":"a","url":"http://x","streams":["a"],"ttl_s":-1}"#,
                |r| matches!(r, Refused::Malformed(_)),
            ),
        ];
        for (body, want) in cases {
            let got = Heartbeat::parse(body).unwrap_err();
            assert!(want(&got), "{}: {got:?}", String::from_utf8_lossy(body));
        }
        let many: Vec<String> = (0..=MAX_STREAMS_PER_ORIGIN)
            .map(|i| format!("s{i}"))
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "origin": "a", "url": "http://x", "streams": many, "ttl_s": 6
        }))
        .unwrap();
        assert!(body.len() < MAX_HEARTBEAT_BYTES);
        assert!(matches!(
            Heartbeat::parse(&body),
            Err(Refused::TooManyStreams(4097))
        ));
    }

    fn ids(a: &Answer) -> Vec<&str> {
        a.origins.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn registrations_expire_and_are_replaced() {
        let mut r = Registry::default();
        assert_eq!(
            r.apply(&hb("c", "http://c.example", &["cam3"], 3), 1000),
            Ok(Applied::Registered(1))
        );
        assert_eq!(ids(&r.lookup("cam3", 1000)), ["c"]);
        assert_eq!(ids(&r.lookup("cam3", 3999)), ["c"]);
        assert!(r.lookup("cam3", 4000).origins.is_empty(), "ttl_s after");
        assert!(r.lookup("cam1", 1000).origins.is_empty());
        // A heartbeat replaces the list and extends the time.
        r.apply(&hb("c", "http://c2.example", &["cam4"], 3), 3000)
            .unwrap();
        assert!(r.lookup("cam3", 3000).origins.is_empty());
        assert_eq!(r.lookup("cam4", 5999).origins[0].url, "http://c2.example");
        // An empty list is a deregistration, at once.
        assert_eq!(
            r.apply(&hb("c", "http://c2.example", &[], 3), 4000),
            Ok(Applied::Removed)
        );
        assert!(r.lookup("cam4", 4000).origins.is_empty());
        assert!(r.is_empty());
        // Expired entries are dropped on the next change.
        r.apply(&hb("a", "http://a.example", &["x"], 1), 0).unwrap();
        r.apply(&hb("b", "http://b.example", &["y"], 10), 5000)
            .unwrap();
        assert_eq!(r.len(), 1);
        assert!(!r.expire(5000));
        assert!(r.expire(15_000));
    }

    #[test]
    fn a_stream_on_two_origins_lists_the_freshest_first() {
        let mut r = Registry::default();
        r.apply(&hb("b", "http://b.example", &["cam1"], 6), 1000)
            .unwrap();
        r.apply(&hb("a", "http://a.example", &["cam1", "cam2"], 6), 1000)
            .unwrap();
        assert_eq!(ids(&r.lookup("cam1", 1500)), ["a", "b"], "same time: by id");
        r.apply(&hb("b", "http://b.example", &["cam1"], 6), 2000)
            .unwrap();
        assert_eq!(ids(&r.lookup("cam1", 2500)), ["b", "a"]);
        assert_eq!(ids(&r.lookup("cam2", 2500)), ["a"]);
        // Persisted whole and read back the same.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Registry>(&json).unwrap(), r);
    }

    #[test]
    fn the_directory_is_bounded() {
        let mut r = Registry::default();
        for i in 0..MAX_ORIGINS {
            r.apply(&hb(&format!("o{i}"), "http://x", &["s"], 10), 0)
                .unwrap();
        }
        assert_eq!(
            r.apply(&hb("new", "http://x", &["s"], 10), 0),
            Err(Refused::Full)
        );
        // Known origins still renew; one leaving makes room.
        assert!(r.apply(&hb("o1", "http://x", &["s"], 10), 0).is_ok());
        r.apply(&hb("o2", "http://x", &[], 10), 0).unwrap();
        assert!(r.apply(&hb("new", "http://x", &["s"], 10), 0).is_ok());
        // Expired ones make room too.
        assert!(r
            .apply(&hb("newer", "http://x", &["s"], 10), 10_000)
            .is_ok());
        assert_eq!(
            r.apply(&hb("bad", "nope", &["s"], 10), 0),
            Err(Refused::BadUrl(
                "origin URL \"nope\" is invalid: scheme must be http:// or https://".into()
            ))
        );
    }

    #[test]
    fn answers_become_regions_the_rules_allow_now() {
        let answer = Answer {
            origins: vec![
                Registered {
                    id: "c".into(),
                    url: "http://127.0.0.1:9000".into(),
                },
                Registered {
                    id: "d".into(),
                    url: "https://d.example".into(),
                },
            ],
        };
        let regions = answer.regions(&config(&["http://127.0.0.1:*"])).unwrap();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].id, "c");
        assert_eq!(
            regions[0].origin.url_for("/live/cam3/index.m3u8", None),
            "http://127.0.0.1:9000/live/cam3/index.m3u8"
        );
        assert!(answer.regions(&config(&[])).is_none());
        assert!(Answer::default()
            .regions(&config(&["http://127.0.0.1:*"]))
            .is_none());
    }

    #[test]
    fn isolates_keep_answers_briefly() {
        let c = config(&[]);
        let mut cache = LookupCache::default();
        let found = Answer {
            origins: vec![Registered {
                id: "c".into(),
                url: "http://c".into(),
            }],
        };
        cache.put("cam3", found.clone(), 1000);
        cache.put("nope", Answer::default(), 1000);
        assert_eq!(cache.get("cam3", 2999, &c), Some(&found));
        assert_eq!(cache.get("cam3", 3000, &c), None, "found: 2 s");
        assert_eq!(cache.get("nope", 1999, &c), Some(&Answer::default()));
        assert_eq!(cache.get("nope", 2000, &c), None, "unknown: 1 s");
        assert_eq!(cache.get("other", 1000, &c), None);
        for i in 0..CACHE_MAX_STREAMS {
            cache.put(&format!("s{i}"), Answer::default(), 10_000);
        }
        assert!(cache.answers.len() <= CACHE_MAX_STREAMS);
        assert!(cache.get("s4095", 10_000, &c).is_some());
        cache.put("cam3", found.clone(), 10_000);
        cache.forget(&hb("x", "http://x", &["s4095"], 3));
        assert!(cache.get("s4095", 10_000, &c).is_none());
        assert!(cache.get("cam3", 10_000, &c).is_some());
        cache.forget(&hb("c", "http://c", &[], 3));
        assert!(cache.get("cam3", 10_000, &c).is_none(), "c left");
    }
}
