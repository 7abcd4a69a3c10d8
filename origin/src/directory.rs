//! Registration with the edge's stream directory (docs/scale.md, *Stream
//! directory*): an IO adapter, a task that tells the edge which live streams
//! this origin serves, so the edge finds a stream's origin without a config
//! change.
//!
//! ```text
//! every 250 ms: live = hub streams now publishing (sorted)
//!     if Schedule::due(now, &live):            // changed, or heartbeat_s since the last (any live)
//!         POST <directory.url> {origin, url, streams: live, ttl_s: 3 × heartbeat_s}
//!              Authorization: Bearer <DIRECTORY_TOKEN>
//!         Schedule::sent(now, live) | Schedule::failed(now)
//! on shutdown: POST the same with streams: [] (deregistered at once)
//! ```
//!
//! A heartbeat replaces what the directory holds for this origin, so a lost
//! one costs nothing but time: the next carries the whole list. An origin
//! that stops without deregistering (killed, cut off) drops out `ttl_s`
//! after its last heartbeat.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::serve::hub::Hub;

/// The environment variable holding the token (over `token_file`).
pub const TOKEN_ENV: &str = "BROOK_DIRECTORY_TOKEN";
/// How often the hub is looked at for streams starting or ending.
const POLL: Duration = Duration::from_millis(250);
/// A failed heartbeat is tried again after at most this long.
const RETRY: Duration = Duration::from_secs(1);
/// Registrations last this many heartbeats.
pub const TTL_HEARTBEATS: u64 = 3;

/// `[directory]`: registration with the edge's stream directory.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// The edge's registration endpoint,
    /// e.g. `https://live.example.com/_brook/directory`. Default: none (this
    /// origin does not register; the edge must list it in
    /// `origins.regions` / `ORIGIN_URL`).
    pub url: Option<String>,
    /// This origin's name in the directory, the edge's logs and metrics
    /// (1-64 of `A-Z a-z 0-9 _ -`). Required with `url`.
    pub name: Option<String>,
    /// Where the edge reaches this origin's HTTP listener (its
    /// `ORIGIN_URL` for this origin), e.g. `https://origin-eu.example.com`;
    /// the edge's `origins.directory.allow` must name it. Required with
    /// `url`.
    pub public_url: Option<String>,
    /// A file holding the bearer token (the edge's `DIRECTORY_TOKEN`;
    /// surrounding whitespace ignored). `BROOK_DIRECTORY_TOKEN` overrides
    /// it. One of them is required with `url`. Default: none.
    pub token_file: Option<PathBuf>,
    /// Seconds between heartbeats; the edge forgets this origin's streams
    /// 3 heartbeats after the last (1-100). Default: 2.
    pub heartbeat_s: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            url: None,
            name: None,
            public_url: None,
            token_file: None,
            heartbeat_s: 2,
        }
    }
}

impl std::fmt::Debug for DirectoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryConfig")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("public_url", &self.public_url)
            .field("token_file", &self.token_file)
            .field("heartbeat_s", &self.heartbeat_s)
            .finish()
    }
}

/// What the registration task needs, checked.
#[derive(Clone)]
pub struct Settings {
    pub endpoint: String,
    pub name: String,
    pub public_url: String,
    pub token: String,
    pub heartbeat: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("name", &self.name)
            .field("public_url", &self.public_url)
            .field("token", &"<redacted>")
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

fn http_url(what: &str, value: &str) -> Result<(), String> {
    let url = url::Url::parse(value).map_err(|e| format!("directory.{what} {value:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "directory.{what} {value:?}: needs http:// or https:// and a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("directory.{what} {value:?}: no query or fragment"));
    }
    Ok(())
}

impl DirectoryConfig {
    /// The settings when `url` is set (`None`: no registration), with the
    /// token from `token_env` (the value of `BROOK_DIRECTORY_TOKEN`, if set)
    /// or `token_file`.
    pub fn settings(&self, token_env: Option<String>) -> anyhow::Result<Option<Settings>> {
        let Some(endpoint) = &self.url else {
            return Ok(None);
        };
        self.validate().map_err(anyhow::Error::msg)?;
        let token = match (token_env.filter(|t| !t.is_empty()), &self.token_file) {
            (Some(t), _) => t,
            (None, Some(file)) => std::fs::read_to_string(file)
                .with_context(|| format!("directory.token_file {}", file.display()))?
                .trim()
                .to_owned(),
            (None, None) => {
                anyhow::bail!("directory.url needs directory.token_file or {TOKEN_ENV}")
            }
        };
        if token.len() < 16 {
            anyhow::bail!("the directory token is too short (at least 16 characters)");
        }
        Ok(Some(Settings {
            endpoint: endpoint.clone(),
            name: self.name.clone().unwrap_or_default(),
            public_url: self
                .public_url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            token,
            heartbeat: Duration::from_secs(self.heartbeat_s),
        }))
    }

    /// The checks that need no file or environment (`Config::validate`).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.heartbeat_s) {
            return Err("directory.heartbeat_s must be within 1..=100".into());
        }
        let Some(url) = &self.url else {
            return Ok(());
        };
        http_url("url", url)?;
        match &self.name {
            Some(n) if brook_common::valid_stream_name(n) => {}
            Some(n) => return Err(format!("directory.name {n:?}: use 1-64 of A-Z a-z 0-9 _ -")),
            None => return Err("directory.url needs directory.name".into()),
        }
        match &self.public_url {
            Some(u) => http_url("public_url", u),
            None => Err("directory.url needs directory.public_url".into()),
        }
    }
}

/// The body of a heartbeat (the edge's `delivery::directory::Heartbeat`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Heartbeat<'a> {
    pub origin: &'a str,
    pub url: &'a str,
    pub streams: &'a [String],
    pub ttl_s: u64,
}

impl Settings {
    pub fn heartbeat<'a>(&'a self, streams: &'a [String]) -> Heartbeat<'a> {
        Heartbeat {
            origin: &self.name,
            url: &self.public_url,
            streams,
            ttl_s: self.heartbeat.as_secs().saturating_mul(TTL_HEARTBEATS),
        }
    }
}

/// When to send (sans-IO: the caller passes the time and the live list).
#[derive(Debug)]
pub struct Schedule {
    heartbeat: Duration,
    /// What the edge last accepted (`None`: nothing, or unknown after a
    /// failure).
    sent: Option<Vec<String>>,
    /// When a heartbeat is due even if nothing changed.
    next: Option<Instant>,
    /// No send before this (after a failure).
    not_before: Option<Instant>,
}

impl Schedule {
    pub fn new(heartbeat: Duration) -> Self {
        Self {
            heartbeat,
            sent: None,
            next: None,
            not_before: None,
        }
    }

    /// Whether to send `live` at `now`: it differs from what the edge has
    /// (and no failure is being waited out), or a heartbeat is due. An
    /// empty list is sent once (at start, it clears what an earlier run of
    /// this origin left), not every heartbeat: there is nothing to keep
    /// alive.
    pub fn due(&self, now: Instant, live: &[String]) -> bool {
        let waited = self.not_before.is_none_or(|t| now >= t);
        let changed = self.sent.as_deref() != Some(live);
        let periodic = !live.is_empty() && self.next.is_none_or(|t| now >= t);
        waited && (changed || periodic)
    }

    /// The edge took `live` at `now`.
    pub fn sent(&mut self, now: Instant, live: Vec<String>) {
        self.sent = Some(live);
        self.next = Some(now + self.heartbeat);
        self.not_before = None;
    }

    /// A send failed at `now`: try again after [`RETRY`] (or the heartbeat,
    /// if shorter).
    pub fn failed(&mut self, now: Instant) {
        let again = now + RETRY.min(self.heartbeat);
        self.sent = None;
        self.next = Some(again);
        self.not_before = Some(again);
    }
}

/// Streams publishing now, sorted.
pub fn live_streams(hub: &Hub) -> Vec<String> {
    // `Hub::streams` is sorted by name.
    hub.streams()
        .iter()
        .filter(|s| s.is_publishing())
        .map(|s| s.name.clone())
        .collect()
}

/// The registration task (a Pingora background service).
pub struct Registrar {
    settings: Settings,
    hub: Arc<Hub>,
    client: reqwest::Client,
}

impl Registrar {
    pub fn new(settings: Settings, hub: Arc<Hub>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the directory HTTP client")?;
        Ok(Self {
            settings,
            hub,
            client,
        })
    }

    async fn send(&self, streams: &[String], timeout: Duration) -> Result<(), String> {
        let body = serde_json::to_vec(&self.settings.heartbeat(streams))
            .map_err(|e| format!("encoding the heartbeat: {e}"))?;
        let res = self
            .client
            .post(&self.settings.endpoint)
            .bearer_auth(&self.settings.token)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let text = res.text().await.unwrap_or_default();
        let text: String = text.trim().chars().take(200).collect();
        Err(format!("answered {status}: {text}"))
    }
}

#[async_trait]
impl BackgroundService for Registrar {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let s = &self.settings;
        info!(endpoint = %s.endpoint, origin = %s.name, url = %s.public_url,
              heartbeat_s = s.heartbeat.as_secs(), "registering live streams with the stream directory");
        let timeout = s
            .heartbeat
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        let mut schedule = Schedule::new(s.heartbeat);
        let mut failing = false;
        while !*shutdown.borrow() {
            let live = live_streams(&self.hub);
            let now = Instant::now();
            if schedule.due(now, &live) {
                match self.send(&live, timeout).await {
                    Ok(()) => {
                        if failing {
                            info!(origin = %s.name, "stream directory: heartbeats accepted again");
                        }
                        failing = false;
                        schedule.sent(now, live);
                    }
                    Err(e) => {
                        // Once per outage, not once per try.
                        if !failing {
                            warn!(origin = %s.name, endpoint = %s.endpoint, error = %e,
                                  "stream directory: heartbeat failed; retrying");
                        }
                        failing = true;
                        schedule.failed(now);
                    }
                }
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    // The server is gone without saying so: stop too.
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        // Viewers of this origin's streams get 404s from the edge at once
        // instead of after the registration's ttl_s.
        match self.send(&[], Duration::from_secs(2)).await {
            Ok(()) => info!(origin = %s.name, "stream directory: deregistered"),
            Err(e) => warn!(origin = %s.name, error = %e,
                            "stream directory: deregistering failed; the edge forgets this origin after its ttl"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sends_on_change_and_every_heartbeat() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Schedule::new(Duration::from_secs(2));
        assert!(s.due(t0, &[]), "the first one, even empty");
        s.sent(t0, vec![]);
        assert!(!s.due(ms(250), &[]));
        assert!(!s.due(ms(60_000), &[]), "nothing to keep alive");
        assert!(s.due(ms(250), &names(&["cam3"])), "a stream started");
        s.sent(ms(250), names(&["cam3"]));
        assert!(!s.due(ms(300), &names(&["cam3"])));
        assert!(!s.due(ms(2249), &names(&["cam3"])));
        assert!(s.due(ms(2250), &names(&["cam3"])), "heartbeat");
        s.sent(ms(2250), names(&["cam3"]));
        assert!(s.due(ms(2500), &[]), "a stream ended");
        // A failure waits a second, changes or not.
        s.failed(ms(2500));
        assert!(!s.due(ms(3000), &[]));
        assert!(!s.due(ms(3000), &names(&["x"])));
        assert!(s.due(ms(3500), &[]));
        // A heartbeat shorter than the retry wait bounds it.
        let mut fast = Schedule::new(Duration::from_millis(300));
        fast.failed(t0);
        assert!(fast.due(ms(300), &[]));
    }

    #[test]
    fn the_heartbeat_is_what_the_edge_reads() {
        let cfg: DirectoryConfig = toml::from_str(
            r#"
            url = "http://127.0.0.1:8787/_brook/directory"
            name = "eu-1"
            public_url = "http://127.0.0.1:8080/"
            heartbeat_s = 1
            "#,
        )
        .unwrap();
        let s = cfg
            .settings(Some("0123456789abcdef".into()))
            .unwrap()
            .unwrap();
        let streams = names(&["cam1", "cam3"]);
        assert_eq!(
            serde_json::to_string(&s.heartbeat(&streams)).unwrap(),
            r#"{"origin":"eu-1","url":"http://127.0.0.1:8080","streams":["cam1","cam3"],"ttl_s":3}"#
        );
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn config_is_checked() {
        assert!(DirectoryConfig::default().settings(None).unwrap().is_none());
        let base = r#"url = "https://edge.example/_brook/directory"
            name = "eu-1"
            public_url = "https://origin.example""#;
        let ok: DirectoryConfig = toml::from_str(base).unwrap();
        assert!(ok.validate().is_ok());
        assert!(ok.settings(None).is_err(), "no token");
        assert!(ok.settings(Some("short".into())).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  0123456789abcdef0123\n").unwrap();
        let with_file = DirectoryConfig {
            token_file: Some(file),
            ..ok.clone()
        };
        assert_eq!(
            with_file.settings(None).unwrap().unwrap().token,
            "0123456789abcdef0123"
        );
        assert_eq!(
            with_file
                .settings(Some("from-the-environment".into()))
                .unwrap()
                .unwrap()
                .token,
            "from-the-environment"
        );
        for bad in [
            r#"url = "ftp://edge.example/x"
               name = "a"
               public_url = "https://o.example""#,
            r#"url = "https://edge.example/x"
               public_url = "https://o.example""#,
            r#"url = "https://edge.example/x"
               name = "a b"
               public_url = "https://o.example""#,
            r#"url = "https://edge.example/x"
               name = "a""#,
            r#"url = "https://edge.example/x"
               name = "a"
               public_url = "https://o.example/?x=1""#,
            r#"heartbeat_s = 0"#,
            r#"heartbeat_s = 101"#,
        ] {
            let cfg: DirectoryConfig = toml::from_str(bad).unwrap();
            assert!(cfg.validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<DirectoryConfig>("tll = 1").is_err());
    }
}
