//! The stream directory: which origins serve a live stream, learnt from the
//! origins themselves instead of the edge config (`origins.regions`).
//!
//! ```text
//! origin ── POST /_brook/directory {origin, url, streams, ttl_s} ──▶ edge Worker
//!            (Bearer DIRECTORY_TOKEN; url checked against origins.directory.allow)
//!                                                                   └─▶ StreamDirectory (one Durable Object):
//!                                                                       Registry::prepare → storage (key origin:<id>) → commit
//! viewer ── /live/<stream>/... ──▶ edge Worker: LookupCache (per isolate, 2 s found / 1 s unknown)
//!                                   └─ miss ─▶ StreamDirectory: Registry::lookup(stream, now)
//!                                   registered origins (allowed now) → failover order as for regions;
//!                                   none → 404 (or the static regions with `fallback_to_static`);
//!                                   no answer → a found answer up to 30 s past its TTL (stale-if-error)
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

/// Most streams one heartbeat may list (an origin with more live streams
/// is refused whole: far more than one origin transcodes).
pub const MAX_STREAMS_PER_ORIGIN: usize = 1024;
/// Most origins the directory keeps at once (a new one past this is refused
/// until one expires).
pub const MAX_ORIGINS: usize = 256;
/// Largest heartbeat body the edge reads (1024 names of 64 bytes, quoted,
/// and the rest).
pub const MAX_HEARTBEAT_BYTES: usize = 80 * 1024;
/// Bounds on a heartbeat's `ttl_s`.
pub const TTL_S: std::ops::RangeInclusive<u64> = 1..=300;
/// Longest `url` a heartbeat may carry, in bytes (so that a lookup naming
/// [`MAX_ORIGINS`] origins stays small).
pub const MAX_URL_BYTES: usize = 512;
/// Most streams an isolate keeps a directory answer for.
const CACHE_MAX_STREAMS: usize = 4096;
/// How long past `found_ttl_ms` an isolate still uses a found answer when
/// the directory does not answer (stale-if-error).
pub const STALE_IF_ERROR_MS: u64 = 30_000;
/// The storage key prefix of the directory's entries: one key per origin,
/// `origin:<id>`, holding its [`Entry`] as JSON.
pub const STORAGE_PREFIX: &str = "origin:";

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
    /// host (a leading `*.` matches any subdomain, never the bare domain;
    /// IP addresses and names compared as a URL parser reads them, so
    /// `http://012.0.0.7` is `10.0.0.7`; IPv6 in brackets) and port (`:*`
    /// any; none: the scheme's default). A registration
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
    /// As [`url::Host`] prints it (a domain in lowercase ASCII, IPv4
    /// normalised, IPv6 in brackets); for `*.suffix`, the suffix (a domain,
    /// and `wildcard`).
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
        if rest.contains(['/', '\\', '?', '#', '@', '%'])
            || rest.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(bad("scheme, host and port only"));
        }
        // `host`, `host:port`, `[v6]`, `[v6]:port`; a port of `*`: any.
        let (host, port) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains(']') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let port = match port {
            Some("*") => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<u16>().map_err(|_| bad("port is not a number"))?)
            }
            Some(_) => return Err(bad("port is not a number")),
            None => Some(default_port(https)),
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
        let host = match url::Host::parse(host) {
            Ok(url::Host::Domain(domain)) => domain,
            Ok(ip) if !wildcard => ip.to_string(),
            Ok(_) => return Err(bad("a `*.` wildcard needs a domain name")),
            Err(e) => return Err(bad(&format!("host: {e}"))),
        };
        Ok(Self {
            https,
            host,
            wildcard,
            port,
        })
    }
}

impl AllowRule {
    fn matches(&self, at: &Authority) -> bool {
        let host_ok = if self.wildcard {
            at.domain
                && at
                    .host
                    .strip_suffix(self.host.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            at.host == self.host
        };
        self.https == at.https && host_ok && self.port.is_none_or(|p| p == at.port)
    }
}

/// Scheme, host and port of an origin's base URL, as the runtime's `fetch`
/// (a WHATWG URL parser) reads them: where the edge would connect.
#[derive(Debug, PartialEq, Eq)]
struct Authority {
    https: bool,
    /// As [`url::Host`] prints it: a domain in lowercase ASCII, an IPv4
    /// address normalised (`012.0.0.7` is `10.0.0.7`), IPv6 in brackets.
    host: String,
    /// Whether `host` is a domain name (only those match `*.` rules).
    domain: bool,
    port: u16,
}

impl Authority {
    /// `None` for anything but http(s) with a host, and for userinfo
    /// (`https://allowed.example@elsewhere` would look allowed to a
    /// reader that does not parse as `fetch` does). A `\` is a path
    /// separator here as in `fetch`, so
    /// `https://evil.example\.origins.example` is `evil.example`.
    fn of(base: &str) -> Option<Self> {
        let url = url::Url::parse(base).ok()?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host = url.host()?;
        Some(Self {
            https,
            domain: matches!(host, url::Host::Domain(_)),
            host: host.to_string(),
            port: url.port_or_known_default()?,
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
    /// Where the edge fetches this origin's streams (as `ORIGIN_URL`; at
    /// most [`MAX_URL_BYTES`]).
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
        if self.url.len() > MAX_URL_BYTES {
            return Err(Refused::BadUrl(format!(
                "url is {} bytes, more than {MAX_URL_BYTES}",
                self.url.len()
            )));
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
    /// longest registered first (then by id): an order that holds from one
    /// heartbeat to the next, so viewers stay on one origin.
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

/// One origin's registration, stored as JSON under `origin:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    url: String,
    streams: BTreeSet<String>,
    /// When this origin registered (ms since the epoch): kept by every
    /// heartbeat while it stays registered, the lookup order.
    #[serde(default)]
    since_ms: u64,
    /// When the last heartbeat came.
    heard_ms: u64,
    /// When it stops counting without another.
    expires_ms: u64,
}

impl Entry {
    fn live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }
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

/// The storage key of `origin`'s entry.
pub fn storage_key(origin: &str) -> String {
    format!("{STORAGE_PREFIX}{origin}")
}

/// What a heartbeat changes, decided but not yet applied: the Durable
/// Object stores it ([`Change::key`], [`Change::value`]) and only then
/// applies it in memory ([`Registry::commit`]), so a failed write changes
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    origin: String,
    /// `None`: the origin leaves.
    entry: Option<Entry>,
}

impl Change {
    /// The storage key it writes or deletes.
    pub fn key(&self) -> String {
        storage_key(&self.origin)
    }

    /// The JSON to store under [`Change::key`]; `None`: delete the key.
    pub fn value(&self) -> Option<String> {
        // Strings, a set of strings and integers: serialising cannot fail.
        self.entry
            .as_ref()
            .map(|e| serde_json::to_string(e).unwrap_or_default())
    }

    pub fn applied(&self) -> Applied {
        match &self.entry {
            Some(e) => Applied::Registered(e.streams.len()),
            None => Applied::Removed,
        }
    }
}

/// The directory itself: what the `StreamDirectory` Durable Object keeps in
/// memory, and in its storage one key per origin ([`STORAGE_PREFIX`]; at
/// most [`MAX_ORIGINS`] keys, each written alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    origins: BTreeMap<String, Entry>,
}

impl Registry {
    /// The registry from its stored `(key, JSON)` pairs, at `now_ms`, and
    /// the keys to delete: unreadable, not an origin's, or expired.
    /// Keys without [`STORAGE_PREFIX`] are not the directory's and left out.
    pub fn load(
        stored: impl IntoIterator<Item = (String, String)>,
        now_ms: u64,
    ) -> (Self, Vec<String>) {
        let mut registry = Self::default();
        let mut drop = Vec::new();
        for (key, text) in stored {
            let Some(id) = key.strip_prefix(STORAGE_PREFIX) else {
                continue;
            };
            match serde_json::from_str::<Entry>(&text) {
                Ok(entry) if valid_stream_name(id) && entry.live(now_ms) => {
                    registry.origins.insert(id.to_owned(), entry);
                }
                _ => drop.push(key),
            }
        }
        (registry, drop)
    }

    /// What a heartbeat received at `now_ms` changes (checked again here:
    /// the Durable Object trusts no caller more than the rules); nothing
    /// changes until [`Registry::commit`].
    pub fn prepare(&self, hb: &Heartbeat, now_ms: u64) -> Result<Change, Refused> {
        hb.check()?;
        if hb.streams.is_empty() {
            return Ok(Change {
                origin: hb.origin.clone(),
                entry: None,
            });
        }
        let current = self.origins.get(&hb.origin).filter(|e| e.live(now_ms));
        if current.is_none()
            && self.origins.values().filter(|e| e.live(now_ms)).count() >= MAX_ORIGINS
        {
            return Err(Refused::Full);
        }
        Ok(Change {
            origin: hb.origin.clone(),
            entry: Some(Entry {
                url: hb.url.clone(),
                streams: hb.streams.iter().cloned().collect(),
                since_ms: current.map_or(now_ms, |e| e.since_ms),
                heard_ms: now_ms,
                expires_ms: now_ms.saturating_add(hb.ttl_s.saturating_mul(1000)),
            }),
        })
    }

    /// Applies a change [`Registry::prepare`] made (once it is stored).
    pub fn commit(&mut self, change: Change) -> Applied {
        let applied = change.applied();
        match change.entry {
            Some(entry) => {
                self.origins.insert(change.origin, entry);
            }
            None => {
                self.origins.remove(&change.origin);
            }
        }
        applied
    }

    /// Expires, prepares and commits a heartbeat at once (nothing stored).
    pub fn apply(&mut self, hb: &Heartbeat, now_ms: u64) -> Result<Applied, Refused> {
        self.expire(now_ms);
        let change = self.prepare(hb, now_ms)?;
        Ok(self.commit(change))
    }

    /// The origins serving `stream` at `now_ms`, the longest registered
    /// first (then by id).
    pub fn lookup(&self, stream: &str, now_ms: u64) -> Answer {
        let mut found: Vec<(&String, &Entry)> = self
            .origins
            .iter()
            .filter(|(_, e)| e.live(now_ms) && e.streams.contains(stream))
            .collect();
        found.sort_by(|a, b| a.1.since_ms.cmp(&b.1.since_ms).then(a.0.cmp(b.0)));
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

    /// Forgets origins whose registration ran out; their storage keys.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .origins
            .iter()
            .filter(|(_, e)| !e.live(now_ms))
            .map(|(id, _)| storage_key(id))
            .collect();
        self.origins.retain(|_, e| e.live(now_ms));
        gone
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
    /// When the directory last failed to answer this isolate.
    failed_at: Option<u64>,
}

/// After the directory failed to answer, how long an isolate does not ask
/// it again (and answers from [`LookupCache::stale`] at once), in ms.
pub const BACKOFF_MS: u64 = 1_000;

impl LookupCache {
    /// The directory failed to answer at `now_ms`.
    pub fn failed(&mut self, now_ms: u64) {
        self.failed_at = Some(now_ms);
    }

    /// Whether to skip asking the directory now: it failed less than
    /// [`BACKOFF_MS`] ago (so a request does not wait out another timeout).
    pub fn backing_off(&self, now_ms: u64) -> bool {
        self.failed_at
            .is_some_and(|at| now_ms.saturating_sub(at) < BACKOFF_MS)
    }

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

    /// A found answer for `stream` up to [`STALE_IF_ERROR_MS`] past its
    /// TTL, for when the directory does not answer (an unknown one is not
    /// used: a 503 has players try again, a 404 has them stop).
    pub fn stale(&self, stream: &str, now_ms: u64, config: &DirectoryConfig) -> Option<&Answer> {
        let (answer, at) = self.answers.get(stream)?;
        let within = config.found_ttl_ms.saturating_add(STALE_IF_ERROR_MS);
        (!answer.origins.is_empty() && now_ms.saturating_sub(*at) < within).then_some(answer)
    }

    /// Keeps `answer` for `stream`, got at `now_ms` (past its TTL too, for
    /// [`LookupCache::stale`]). Past [`CACHE_MAX_STREAMS`] streams,
    /// everything older than a few seconds goes first (and everything, if
    /// that is not enough).
    pub fn put(&mut self, stream: &str, answer: Answer, now_ms: u64) {
        if self.answers.len() >= CACHE_MAX_STREAMS && !self.answers.contains_key(stream) {
            self.answers
                .retain(|_, (_, at)| now_ms.saturating_sub(*at) < 5_000);
            if self.answers.len() >= CACHE_MAX_STREAMS {
                self.answers.clear();
            }
        }
        self.answers.insert(stream.to_owned(), (answer, now_ms));
        self.failed_at = None;
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
mod backoff_tests {
    use super::*;

    #[test]
    fn a_failure_holds_off_asking_for_a_second_and_an_answer_ends_it() {
        let mut c = LookupCache::default();
        let t = 1_700_000_000_000;
        assert!(!c.backing_off(t));
        c.failed(t);
        assert!(c.backing_off(t + BACKOFF_MS - 1));
        assert!(!c.backing_off(t + BACKOFF_MS));
        c.failed(t);
        c.put("cam1", Answer::default(), t + 10);
        assert!(!c.backing_off(t + 20));
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
            ("http://127.0.0.1:8080", true),
            ("http://127.0.0.1", true),
            ("http://127.0.0.10:8080", false),
            ("https://127.0.0.1:8080", false),
            ("http://10.0.0.7:8080", true),
            ("http://10.0.0.7", false),
            ("http://10.0.0.7:8081", false),
            ("https://[2001:db8::1]:8443", true),
            ("https://[2001:DB8:0::1]:8443", true),
            ("https://[2001:db8::1]", false),
        ];
        for (url, want) in cases {
            let origin = Origin::parse(url).unwrap();
            assert_eq!(c.allows(&origin), want, "{url}");
        }
        assert!(!config(&[]).allows(&Origin::parse("http://127.0.0.1:80").unwrap()));
    }

    /// Whether a registration naming `url` passes both checks: the URL's
    /// own ([`Origin::parse`]) and the allow rules.
    fn admitted(c: &DirectoryConfig, url: &str) -> bool {
        Origin::parse(url).is_ok_and(|o| c.allows(&o))
    }

    #[test]
    fn hosts_are_read_as_fetch_reads_them() {
        let c = config(&["https://*.origins.example", "http://10.0.0.7:8080"]);
        // `fetch` connects to evil.example: `\` ends the authority.
        let backslash = "https://evil.example\\.origins.example";
        assert!(!admitted(&c, backslash));
        let at = Authority::of(backslash).unwrap();
        assert_eq!((at.host.as_str(), at.port), ("evil.example", 443));
        assert!(
            !c.allow.iter().any(|rule| rule.matches(&at)),
            "not even past Origin::parse"
        );
        for (url, want) in [
            ("https://a.origins.example", true),
            ("https://a.origins.example\\", false),
            ("https://a.origins.example@evil.example", false),
            ("https://evil.example@a.origins.example", false),
            ("https://a.origins.example:@evil.example", false),
            ("https://a%2eorigins.example", false),
            ("https://evil.example%2f.origins.example", false),
            ("https://evil.example%5c.origins.example", false),
            ("https://evil.example%40.origins.example", false),
            ("https://a.origins.example%2e", false),
            // The same address spelt otherwise is the same address ...
            ("http://012.0.0.7:8080", true),
            ("http://0x0a.0.0.7:8080", true),
            ("http://167772167:8080", true),
            // ... and a look-alike is not: 010 is octal, 8.0.0.7.
            ("http://010.0.0.7:8080", false),
            ("http://10.0.0.7.:8080", true),
        ] {
            assert_eq!(admitted(&c, url), want, "{url}");
        }
        // The allow check alone (past Origin::parse's refusals) agrees.
        for url in [
            "https://a.origins.example@evil.example",
            "https://u:p@a.origins.example",
            "https://evil.example%2f.origins.example",
            "https://evil.example%5c.origins.example",
        ] {
            let at = Authority::of(url);
            assert!(
                at.as_ref()
                    .is_none_or(|at| !c.allow.iter().any(|rule| rule.matches(at))),
                "{url}: {at:?}"
            );
        }
        // Percent-escapes decoded as fetch decodes them: a subdomain still.
        let at = Authority::of("https://a%2eorigins.example").unwrap();
        assert_eq!(at.host, "a.origins.example");
        // Rules are read the same way: octal, hex or dotted, one address.
        for rule in [
            "http://10.0.0.7:8080",
            "http://012.0.0.7:8080",
            "http://0xa.0.0.7:8080",
        ] {
            let c = config(&[rule]);
            assert!(admitted(&c, "http://10.0.0.7:8080"), "{rule}");
            assert!(!admitted(&c, "http://10.0.0.8:8080"), "{rule}");
        }
        // IPv6 rules, with and without a port.
        let c = config(&["https://[2001:db8::1]", "http://[::1]:*"]);
        for (url, want) in [
            ("https://[2001:db8::1]", true),
            ("https://[2001:db8::1]:443", true),
            ("https://[2001:db8:0:0::1]/brook", true),
            ("https://[2001:db8::1]:8443", false),
            ("http://[2001:db8::1]", false),
            ("https://[2001:db8::2]", false),
            ("http://[::1]:8080", true),
            ("http://[0:0::1]", true),
            ("https://[::1]", false),
        ] {
            assert_eq!(admitted(&c, url), want, "{url}");
        }
        // A wildcard matches domains only (and `*.` rules name one).
        assert!(!Authority::of("http://10.0.0.7").unwrap().domain);
        assert!(!Authority::of("http://[::1]").unwrap().domain);
        assert!(Authority::of("http://x.example").unwrap().domain);
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
            "https://x\\y",
            "https://x%2ey",
            "https://[2001:db8::1",
            "https://[2001:db8::1]x",
            "https://[nope]",
            "https://x:",
            "https://x:+80",
            "https://*.10.0.0.7",
            "https://*.[::1]",
            "https://a b",
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
            (
                br#"{"origin":"a","url":"https://evil.example\\.x.example","streams":[],"ttl_s":6}"#,
                |r| matches!(r, Refused::BadUrl(_)),
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
        assert_eq!(
            Heartbeat::parse(&body),
            Err(Refused::TooManyStreams(MAX_STREAMS_PER_ORIGIN + 1))
        );
        // A long URL: refused, so that an answer naming every origin stays
        // small.
        let url = |n: usize| format!("http://x.example/{}", "a".repeat(n - 17));
        assert_eq!(url(MAX_URL_BYTES).len(), MAX_URL_BYTES);
        assert!(hb("a", &url(MAX_URL_BYTES), &["s"], 6).check().is_ok());
        assert!(matches!(
            hb("a", &url(MAX_URL_BYTES + 1), &["s"], 6).check(),
            Err(Refused::BadUrl(_))
        ));
        let answer = Answer {
            origins: (0..MAX_ORIGINS)
                .map(|i| Registered {
                    id: format!("{i:0>64}"),
                    url: url(MAX_URL_BYTES),
                })
                .collect(),
        };
        assert!(serde_json::to_vec(&answer).unwrap().len() < MAX_ORIGINS * 1024);
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
        assert!(r.expire(5000).is_empty());
        assert_eq!(r.expire(15_000), ["origin:b"]);
    }

    #[test]
    fn a_stream_on_two_origins_keeps_its_order_across_heartbeats() {
        let mut r = Registry::default();
        r.apply(&hb("b", "http://b.example", &["cam1"], 6), 1000)
            .unwrap();
        r.apply(&hb("a", "http://a.example", &["cam1", "cam2"], 6), 1000)
            .unwrap();
        assert_eq!(ids(&r.lookup("cam1", 1500)), ["a", "b"], "same time: by id");
        // Heartbeats in turn change nothing: the longest registered first.
        r.apply(&hb("c", "http://c.example", &["cam1"], 6), 1200)
            .unwrap();
        for t in [2000, 2100, 4000, 4100, 6000] {
            for o in ["c", "b"] {
                r.apply(&hb(o, &format!("http://{o}.example"), &["cam1"], 6), t)
                    .unwrap();
                assert_eq!(ids(&r.lookup("cam1", t)), ["a", "b", "c"], "{o} at {t}");
            }
            r.apply(&hb("a", "http://a.example", &["cam1", "cam2"], 6), t + 50)
                .unwrap();
        }
        // Another list, or a new URL, is the same registration.
        r.apply(&hb("a", "http://a2.example", &["cam1"], 6), 6500)
            .unwrap();
        assert_eq!(ids(&r.lookup("cam1", 6500)), ["a", "b", "c"]);
        assert!(r.lookup("cam2", 6500).origins.is_empty());
        // Leaving, or expiring, and coming back: registered anew, so last.
        r.apply(&hb("a", "http://a.example", &[], 6), 7000).unwrap();
        r.apply(&hb("a", "http://a.example", &["cam1"], 6), 7000)
            .unwrap();
        assert_eq!(ids(&r.lookup("cam1", 7000)), ["b", "c", "a"]);
        r.apply(&hb("b", "http://b.example", &["cam1"], 1), 8000)
            .unwrap();
        r.apply(&hb("b", "http://b.example", &["cam1"], 6), 9000)
            .unwrap();
        assert_eq!(ids(&r.lookup("cam1", 9000)), ["c", "a", "b"]);
        // Entries stored before `since_ms` existed still load (as the oldest).
        let old =
            r#"{"url":"http://d.example","streams":["cam1"],"heard_ms":9000,"expires_ms":20000}"#;
        let (r2, dropped) = Registry::load([("origin:d".to_owned(), old.to_owned())], 9000);
        assert!(dropped.is_empty());
        assert_eq!(ids(&r2.lookup("cam1", 9000)), ["d"]);
    }

    /// What the Durable Object keeps in its storage: `change`s applied to
    /// a key-value map.
    fn store(kv: &mut BTreeMap<String, String>, change: &Change) {
        match change.value() {
            Some(v) => kv.insert(change.key(), v),
            None => kv.remove(&change.key()),
        };
    }

    #[test]
    fn stored_one_key_per_origin() {
        let mut r = Registry::default();
        let mut kv = BTreeMap::new();
        for (hb, t) in [
            (hb("a", "http://a.example", &["cam1"], 6), 1000),
            (hb("b", "http://b.example", &["cam1", "cam2"], 6), 1100),
            (hb("c", "http://c.example", &["cam3"], 2), 1200),
            (hb("a", "http://a.example", &["cam1", "cam4"], 6), 2000),
        ] {
            let change = r.prepare(&hb, t).unwrap();
            assert_eq!(r.clone().commit(change.clone()), change.applied());
            store(&mut kv, &change);
            r.commit(change);
        }
        assert_eq!(
            kv.keys().collect::<Vec<_>>(),
            ["origin:a", "origin:b", "origin:c"]
        );
        // Read back: the same registry (order included).
        let (loaded, dropped) = Registry::load(kv.clone(), 2000);
        assert_eq!(loaded, r);
        assert!(dropped.is_empty());
        // A prepared change is nothing until committed (a failed write).
        let leave = r
            .prepare(&hb("b", "http://b.example", &[], 6), 2100)
            .unwrap();
        assert_eq!(leave.value(), None);
        assert_eq!(leave.key(), "origin:b");
        assert_eq!(ids(&r.lookup("cam2", 2100)), ["b"]);
        store(&mut kv, &leave);
        assert_eq!(r.commit(leave), Applied::Removed);
        assert!(r.lookup("cam2", 2100).origins.is_empty());
        // Expired, unreadable and foreign keys at load; expired at a sweep.
        kv.insert("origin:bad name".into(), kv["origin:a"].clone());
        kv.insert("origin:x".into(), "{not json".into());
        kv.insert("registry".into(), "{}".into());
        let (loaded, mut dropped) = Registry::load(kv.clone(), 3200);
        dropped.sort();
        assert_eq!(dropped, ["origin:bad name", "origin:c", "origin:x"]);
        assert_eq!(loaded.len(), 1);
        assert_eq!(r.expire(3200), ["origin:c"]);
        assert_eq!(loaded, r);
        assert!(r.expire(3200).is_empty());
        // Full counts only the live.
        let mut full = Registry::default();
        for i in 0..MAX_ORIGINS {
            full.apply(
                &hb(&format!("o{i}"), "http://x", &["s"], 1 + (i as u64 % 2)),
                0,
            )
            .unwrap();
        }
        assert_eq!(
            full.prepare(&hb("new", "http://x", &["s"], 5), 500),
            Err(Refused::Full)
        );
        assert!(full
            .prepare(&hb("new", "http://x", &["s"], 5), 1000)
            .is_ok());
        assert_eq!(full.len(), MAX_ORIGINS, "prepare changes nothing");
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
        assert_eq!(r.len(), 1);
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

    #[test]
    fn isolates_use_expired_answers_when_the_directory_fails() {
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
        assert_eq!(
            cache.stale("cam3", 1000, &c),
            Some(&found),
            "fresh is usable too"
        );
        assert_eq!(cache.get("cam3", 3000, &c), None);
        assert_eq!(cache.stale("cam3", 3000, &c), Some(&found));
        let last = 1000 + c.found_ttl_ms + STALE_IF_ERROR_MS;
        assert_eq!(cache.stale("cam3", last - 1, &c), Some(&found));
        assert_eq!(cache.stale("cam3", last, &c), None, "30 s past its TTL");
        assert_eq!(
            cache.stale("nope", 1500, &c),
            None,
            "an unknown stream: 503, not 404"
        );
        assert_eq!(cache.stale("other", 1500, &c), None);
        // A newer answer replaces it; a heartbeat through this isolate drops it.
        cache.put("cam3", Answer::default(), 5000);
        assert_eq!(cache.stale("cam3", 5000, &c), None);
        cache.put("cam3", found.clone(), 6000);
        cache.forget(&hb("c", "http://c", &[], 3));
        assert_eq!(cache.stale("cam3", 9000, &c), None);
    }
}
