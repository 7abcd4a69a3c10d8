//! The edge configuration: one JSON document that the ops team edits, in the
//! `EDGE_CONFIG` var (`wrangler.toml` `[vars]`, or the dashboard) or, when
//! the `EDGE_KV` KV namespace is bound and holds a key `config`, there (no
//! deploy needed; picked up within a minute). Unknown keys are refused, so a
//! typo is a 500 with the reason in the log, not a silently ignored rule.
//! Every field has a default; `{}` is a valid config.
//!
//! ```json
//! {
//!   "auth":       { "required": true, "token_name": "__token__" },
//!   "geo":        { "default": {}, "streams": { "cam1": { "allow": ["DE"], "unknown": "deny" } } },
//!   "origins":    { "regions": [ { "id": "eu", "url": "https://eu.origin.example", "continents": ["EU"] } ] },
//!   "steering":   { "pathways": [ { "id": "cf" }, { "id": "cdn-b", "base_url": "https://b.example" } ] },
//!   "cache":      { "blocking_playlist_ttl_s": 6 },
//!   "renditions": { "mobile_max_height": 720 },
//!   "ads":        { "mode": "interstitials", "vast_url": "https://ads.example/vast?d=[DURATION]&sid=[SESSION]" }
//! }
//! ```
//!
//! Secrets stay out of it: signing keys come from the `TOKEN_KEYS` secret.

use std::rc::Rc;

use serde::Deserialize;

use crate::access::geo::GeoConfig;
use crate::access::token::TOKEN_NAME;
use crate::ads::AdsConfig;
use crate::delivery::cache::CachePolicy;
use crate::delivery::origins::{OriginsConfig, Region};
use crate::manifest::RenditionConfig;
use crate::steering::{Steering, SteeringConfig};
use crate::Error;

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub auth: AuthConfig,
    pub geo: GeoConfig,
    pub origins: OriginsConfig,
    pub steering: SteeringConfig,
    pub cache: CachePolicy,
    pub renditions: RenditionConfig,
    pub ads: AdsConfig,
}

/// `auth`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether `/live/` needs a valid token. Default: true.
    pub required: bool,
    /// The query parameter and cookie carrying the token. Default:
    /// `__token__` (EdgeAuth's).
    pub token_name: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            required: true,
            token_name: TOKEN_NAME.into(),
        }
    }
}

/// A validated configuration, ready to answer requests.
#[derive(Debug, Clone)]
pub struct Edge {
    pub auth: AuthConfig,
    pub geo: GeoConfig,
    pub origins: OriginsConfig,
    pub regions: Vec<Region>,
    pub steering: Option<Steering>,
    pub cache: CachePolicy,
    pub renditions: RenditionConfig,
    /// Server-side ad insertion (`crate::ads`).
    pub ads: AdsConfig,
}

impl Edge {
    /// From the config document (`None` or blank: all defaults) and the
    /// `ORIGIN_URL` var (used when no `origins.regions` are configured).
    pub fn new(config_json: Option<&str>, origin_url: Option<&str>) -> Result<Self, Error> {
        let config: Config = match config_json.map(str::trim) {
            None | Some("") => Config::default(),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| Error::InvalidConfig(format!("EDGE_CONFIG: {e}")))?,
        };
        Self::from_config(config, origin_url)
    }

    pub fn from_config(config: Config, origin_url: Option<&str>) -> Result<Self, Error> {
        let Config {
            auth,
            geo,
            origins,
            steering,
            cache,
            renditions,
            ads,
        } = config;
        if auth.token_name.is_empty()
            || !auth
                .token_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::InvalidConfig(
                "auth.token_name: use A-Z a-z 0-9 _ -".into(),
            ));
        }
        geo.validate()?;
        ads.check().map_err(Error::InvalidConfig)?;
        let regions = origins.resolve(origin_url)?;
        let steering = Steering::new(steering)?;
        Ok(Self {
            auth,
            geo,
            origins,
            regions,
            steering,
            cache,
            renditions,
            ads,
        })
    }
}

/// The value last parsed from a source text (the config document, the
/// `TOKEN_KEYS` secret), reused while the text stays the same: an isolate
/// parses each once, not once per request.
#[derive(Debug)]
pub struct Memo<T> {
    last: Option<(String, Rc<T>)>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self { last: None }
    }
}

impl<T> Memo<T> {
    /// The value for `source`: the memo's when `source` is unchanged, else
    /// `parse()` (kept only when it succeeds).
    pub fn get_or_parse<E>(
        &mut self,
        source: &str,
        parse: impl FnOnce() -> Result<T, E>,
    ) -> Result<Rc<T>, E> {
        if let Some((s, v)) = &self.last {
            if s == source {
                return Ok(v.clone());
            }
        }
        let value = Rc::new(parse()?);
        self.last = Some((source.to_owned(), value.clone()));
        Ok(value)
    }
}

/// A value read from somewhere slow (the KV config), kept for `every_ms`.
#[derive(Debug, Clone, Default)]
pub struct Refreshed<T> {
    value: Option<(T, u64)>,
}

impl<T> Refreshed<T> {
    /// The value, if read less than `every_ms` before `now_ms`.
    pub fn fresh(&self, now_ms: u64, every_ms: u64) -> Option<&T> {
        self.value
            .as_ref()
            .filter(|(_, at)| now_ms.saturating_sub(*at) < every_ms)
            .map(|(v, _)| v)
    }

    /// Keeps `value`, read at `now_ms`.
    pub fn set(&mut self, value: T, now_ms: u64) {
        self.value = Some((value, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_parses_each_text_once() {
        let mut m: Memo<usize> = Memo::default();
        let mut calls = 0;
        let parse = |s: &str, m: &mut Memo<usize>, calls: &mut i32| {
            m.get_or_parse(s, || {
                *calls += 1;
                s.parse::<usize>()
            })
        };
        assert_eq!(*parse("1", &mut m, &mut calls).unwrap(), 1);
        assert_eq!(*parse("1", &mut m, &mut calls).unwrap(), 1);
        assert_eq!(calls, 1);
        assert!(parse("x", &mut m, &mut calls).is_err());
        assert_eq!(
            *parse("1", &mut m, &mut calls).unwrap(),
            1,
            "a failure keeps the last good one"
        );
        assert_eq!(*parse("2", &mut m, &mut calls).unwrap(), 2);
        assert_eq!(calls, 3);
    }

    #[test]
    fn refreshed_values_expire() {
        let mut r: Refreshed<Option<String>> = Refreshed::default();
        assert_eq!(r.fresh(0, 30_000), None);
        r.set(Some("{}".into()), 1000);
        assert_eq!(r.fresh(30_999, 30_000), Some(&Some("{}".into())));
        assert_eq!(r.fresh(31_000, 30_000), None);
    }

    #[test]
    fn defaults() {
        let e = Edge::new(None, Some("http://127.0.0.1:8080")).unwrap();
        assert!(e.auth.required);
        assert_eq!(e.auth.token_name, "__token__");
        assert_eq!(e.regions.len(), 1);
        assert!(e.steering.is_none());
        assert_eq!(e.cache, CachePolicy::default());
        assert!(Edge::new(Some("  "), Some("http://x")).is_ok());
        assert!(Edge::new(Some("{}"), Some("http://x")).is_ok());
    }

    #[test]
    fn full_document() {
        let json = r#"{
            "auth": {"required": false, "token_name": "t"},
            "geo": {"streams": {"cam1": {"allow": ["DE"], "unknown": "deny"}},
                    "assets": {"0123456789abcdef0123456789abcdef": {"deny": ["US"]}}},
            "origins": {"regions": [{"id": "eu", "url": "http://eu.example", "continents": ["EU"]},
                                    {"id": "us", "url": "http://us.example"}],
                        "timeout_ms": 500},
            "steering": {"ttl_s": 10, "pathways": [{"id": "a"}, {"id": "b", "base_url": "http://b.example"}]},
            "cache": {"playlist_ttl_s": 1, "vod_manifest_ttl_s": 30},
            "renditions": {"mobile_max_height": 720}
        }"#;
        let e = Edge::new(Some(json), None).unwrap();
        assert!(!e.auth.required);
        assert_eq!(e.regions.len(), 2);
        assert_eq!(e.origins.timeout_ms, 500);
        assert_eq!(e.origins.hold_timeout_ms, 10_000);
        assert_eq!(e.steering.as_ref().unwrap().config().ttl_s, 10);
        assert_eq!(e.cache.playlist_ttl_s, 1);
        assert_eq!(e.cache.object_ttl_s, 31_536_000);
        assert_eq!(e.cache.vod_manifest_ttl_s, 30);
        assert_eq!(e.geo.assets.len(), 1);
        assert_eq!(e.renditions.mobile_max_height, Some(720));
    }

    #[test]
    fn refuses_mistakes() {
        for bad in [
            "{",
            r#"{"auth": {"requried": false}}"#,
            r#"{"unknown": 1}"#,
            r#"{"auth": {"token_name": "a b"}}"#,
            r#"{"geo": {"default": {"allow": ["DE"], "deny": ["FR"]}}}"#,
            r#"{"steering": {"pathways": [{"id": "a b"}]}}"#,
            r#"{"origins": {"regions": [{"id": "a", "url": "nope"}]}}"#,
        ] {
            assert!(
                matches!(
                    Edge::new(Some(bad), Some("http://x")),
                    Err(Error::InvalidConfig(_) | Error::InvalidOriginUrl { .. })
                ),
                "{bad}"
            );
        }
        assert!(Edge::new(None, None).is_err(), "no origin at all");
    }
}
