//! Per-stream and per-asset country rules, decided from `request.cf.country`
//! (ISO 3166-1 alpha-2). A blocked viewer gets **451 Unavailable For Legal Reasons**
//! (RFC 7725): geo restrictions are licensing obligations, and 451 tells the
//! viewer (and support) that this is not an authentication problem.
//!
//! ```json
//! "geo": {
//!   "default": { "deny": ["KP"], "unknown": "allow" },
//!   "streams": { "cam1": { "allow": ["DE", "AT", "CH"], "unknown": "deny" } },
//!   "assets": { "0123456789abcdef0123456789abcdef": { "allow": ["FR"] } }
//! }
//! ```

use std::collections::BTreeMap;

use brook_common::valid_asset_id;
use serde::Deserialize;

use crate::Error;

/// What happens to viewers whose country is unknown: no `cf.country`,
/// Cloudflare's `XX` (unknown) or `T1` (Tor, no country can be told).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unknown {
    /// Let them in (the default).
    #[default]
    Allow,
    /// Block them like a listed country.
    Deny,
}

/// One rule: an allow-list or a deny-list (not both), plus the policy for an
/// unknown country.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    /// Only these countries may watch. Default: not set.
    pub allow: Option<Vec<String>>,
    /// These countries may not watch. Default: not set.
    pub deny: Option<Vec<String>>,
    /// Policy for an unknown country. Default: `allow`.
    pub unknown: Unknown,
}

/// The geo rules: one default, overridden per stream name and per VOD asset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    /// Rule for streams and assets not listed below. Default: everyone
    /// allowed.
    pub default: Rule,
    /// Per-stream rules (`/live/<stream>/`), by stream name. Default: none.
    pub streams: BTreeMap<String, Rule>,
    /// Per-asset rules (`/vod/<asset>/`), by asset id. Default: none.
    pub assets: BTreeMap<String, Rule>,
}

/// What a geo rule is looked up for. Streams and assets have their own
/// tables: an asset id (32 hex digits) is also a valid stream name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Stream(&'a str),
    Asset(&'a str),
}

impl Default for Subject<'_> {
    fn default() -> Self {
        Subject::Stream("")
    }
}

/// The outcome for one viewer and stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Block,
}

impl Rule {
    fn validate(&self, name: &str) -> Result<(), Error> {
        let invalid = |msg: String| Error::InvalidConfig(format!("geo rule {name}: {msg}"));
        if self.allow.is_some() && self.deny.is_some() {
            return Err(invalid("set `allow` or `deny`, not both".into()));
        }
        for code in self.allow.iter().chain(&self.deny).flatten() {
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(invalid(format!(
                    "{code:?} is not an ISO 3166-1 alpha-2 country code"
                )));
            }
        }
        Ok(())
    }

    /// Whether a viewer in `country` may watch.
    pub fn decide(&self, country: Option<&str>) -> Decision {
        let known = country.map(str::trim).filter(|c| {
            c.len() == 2 && !c.eq_ignore_ascii_case("XX") && !c.eq_ignore_ascii_case("T1")
        });
        let Some(country) = known else {
            return match self.unknown {
                Unknown::Allow => Decision::Allow,
                Unknown::Deny => Decision::Block,
            };
        };
        let listed = |list: &Vec<String>| list.iter().any(|c| c.eq_ignore_ascii_case(country));
        let allowed = match (&self.allow, &self.deny) {
            (Some(allow), _) => listed(allow),
            (None, Some(deny)) => !listed(deny),
            (None, None) => true,
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::Block
        }
    }
}

impl GeoConfig {
    pub fn validate(&self) -> Result<(), Error> {
        self.default.validate("default")?;
        for (name, rule) in self.streams.iter().chain(&self.assets) {
            rule.validate(name)?;
        }
        // An id in another spelling would never match: refused, not ignored.
        if let Some(bad) = self.assets.keys().find(|a| !valid_asset_id(a)) {
            return Err(Error::InvalidConfig(format!(
                "geo rule {bad}: asset ids are 32 lowercase hex digits"
            )));
        }
        Ok(())
    }

    /// The rule that applies to `subject`.
    pub fn rule(&self, subject: Subject<'_>) -> &Rule {
        let listed = match subject {
            Subject::Stream(stream) => self.streams.get(stream),
            Subject::Asset(asset) => self.assets.get(asset),
        };
        listed.unwrap_or(&self.default)
    }

    pub fn decide(&self, subject: Subject<'_>, country: Option<&str>) -> Decision {
        self.rule(subject).decide(country)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GeoConfig {
        serde_json::from_str(
            r#"{
                "default": { "deny": ["KP", "ir"] },
                "streams": {
                    "cam1": { "allow": ["DE", "AT"], "unknown": "deny" },
                    "open": {}
                },
                "assets": {
                    "0123456789abcdef0123456789abcdef": { "allow": ["FR"] }
                }
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn decisions() {
        use Decision::*;
        let c = config();
        c.validate().unwrap();
        let cases = [
            ("cam1", Some("DE"), Allow),
            ("cam1", Some("de"), Allow),
            ("cam1", Some("AT"), Allow),
            ("cam1", Some("US"), Block),
            ("cam1", None, Block),
            ("cam1", Some("XX"), Block),
            ("cam1", Some("T1"), Block),
            ("cam1", Some(""), Block),
            ("other", Some("US"), Allow),
            ("other", Some("KP"), Block),
            ("other", Some("IR"), Block),
            ("other", None, Allow),
            ("other", Some("XX"), Allow),
            ("open", Some("KP"), Allow),
        ];
        for (stream, country, want) in cases {
            assert_eq!(
                c.decide(Subject::Stream(stream), country),
                want,
                "{stream} {country:?}"
            );
        }
        assert_eq!(
            GeoConfig::default().decide(Subject::Stream("x"), Some("KP")),
            Allow
        );
        // Assets have their own table; unlisted ones get the default.
        const A: &str = "0123456789abcdef0123456789abcdef";
        let assets = [
            (Subject::Asset(A), Some("FR"), Allow),
            (Subject::Asset(A), Some("DE"), Block),
            (Subject::Stream(A), Some("DE"), Allow),
            (Subject::Asset("cam1"), Some("US"), Allow),
            (
                Subject::Asset("ffffffffffffffffffffffffffffffff"),
                Some("KP"),
                Block,
            ),
        ];
        for (subject, country, want) in assets {
            assert_eq!(c.decide(subject, country), want, "{subject:?} {country:?}");
        }
    }

    #[test]
    fn invalid_rules() {
        for bad in [
            r#"{"default": {"allow": ["DE"], "deny": ["FR"]}}"#,
            r#"{"streams": {"a": {"allow": ["DEU"]}}}"#,
            r#"{"streams": {"a": {"deny": ["1A"]}}}"#,
            r#"{"assets": {"0123456789abcdef0123456789abcdef": {"deny": ["1A"]}}}"#,
            r#"{"assets": {"0123456789ABCDEF0123456789abcdef": {"deny": ["US"]}}}"#,
            r#"{"assets": {"cam1": {}}}"#,
        ] {
            let c: GeoConfig = serde_json::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        for bad in [
            r#"{"default": {"alow": ["DE"]}}"#,
            r#"{"default": {"unknown": "maybe"}}"#,
            r#"{"rules": {}}"#,
        ] {
            assert!(serde_json::from_str::<GeoConfig>(bad).is_err(), "{bad}");
        }
    }
}
