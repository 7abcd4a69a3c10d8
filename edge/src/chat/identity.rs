//! Who is in a room, decided at the edge from the viewer token that opened
//! the socket, and handed to the room's Durable Object with the request.
//!
//! - Joining checks the same token as the video, against the path
//!   `/live/<stream>/chat` (so `acl=/live/cam1/*` opens cam1's chat too).
//! - The user id is stable and opaque: a hash of the token's `id` (viewer
//!   session), else of the token itself, else (no token, `auth.required`
//!   off) random per connection. It is what moderators ban.
//! - The display name is the token's `name:` claim in `data` when present
//!   (then fixed), else what the viewer picks with `join`, else `viewer-`
//!   and the first characters of the user id.
//! - Moderators hold a token with an explicit claim in its signed `data`:
//!   `mod:<stream>` (repeatable) or `mod:*` (every stream). Never an ACL
//!   pattern: site-wide ACLs (`*`, `/*`, `/chat/*`) are common in EdgeAuth
//!   deployments and say nothing about moderation.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::access::token::Grant;
use crate::query::{self, decode_percent};

use super::text::clean_name;

/// The path a chat join's token is checked against.
pub fn access_path(stream: &str) -> String {
    format!("/live/{stream}/chat")
}

/// The `data` claim that makes a token's holder a moderator of `stream`
/// (`*`: of every stream), e.g. `data=name:Ann,mod:cam1`.
pub fn moderator_claim(stream: &str) -> String {
    format!("mod:{stream}")
}

/// Whether a token's `data` holds a moderator claim for `stream`: `mod:`
/// followed by exactly the stream name or `*` (read like the other claims:
/// percent-decoded, then split at commas).
pub fn moderates(data: &str, stream: &str) -> bool {
    let data = decode_percent(data);
    data.split(',').any(|c| {
        c.trim()
            .strip_prefix("mod:")
            .is_some_and(|v| v.trim() == stream || v.trim() == "*")
    })
}

/// Whether the holder of `grant` moderates `stream`.
pub fn is_moderator(grant: &Grant, stream: &str) -> bool {
    grant.data.as_deref().is_some_and(|d| moderates(d, stream))
}

/// A connection's identity, as the room sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub user: String,
    /// From the token: fixed, `join` cannot change it.
    pub token_name: Option<String>,
    pub moderator: bool,
    /// `CF-Connecting-IP`.
    pub ip: Option<String>,
}

impl Identity {
    /// From an admitted request. `anonymous` is a random id for viewers
    /// without a token (only when the edge does not require one).
    pub fn new(
        stream: &str,
        grant: Option<&Grant>,
        token: Option<&str>,
        ip: Option<&str>,
        anonymous: &str,
        max_name_chars: usize,
    ) -> Self {
        let basis = grant
            .and_then(|g| g.session_id.as_deref())
            .map(|s| ("id", s))
            .or_else(|| token.map(|t| ("token", t)));
        let user = match basis {
            Some((kind, value)) => {
                let mut h = Sha256::new();
                for part in ["brook-chat", stream, kind, value] {
                    h.update(part.as_bytes());
                    h.update([0]);
                }
                let mut user = String::from("u");
                for b in &h.finalize()[..8] {
                    let _ = write!(user, "{b:02x}");
                }
                user
            }
            None => format!("a{anonymous}"),
        };
        let token_name = grant
            .and_then(|g| g.data.as_deref())
            .and_then(name_claim)
            .and_then(|n| clean_name(&n, max_name_chars));
        let moderator = grant.is_some_and(|g| is_moderator(g, stream));
        Self {
            user,
            token_name,
            moderator,
            ip: ip.map(str::to_owned),
        }
    }

    /// The name shown when the viewer has not picked one.
    pub fn default_name(&self) -> String {
        let short: String = self.user.chars().skip(1).take(4).collect();
        format!("viewer-{short}")
    }

    /// The query string the edge sends to the room (the room is reachable
    /// only through the edge, so it trusts it).
    pub fn to_query(&self) -> String {
        let mut q = format!("user={}", query::encode_component(&self.user));
        if let Some(n) = &self.token_name {
            let _ = write!(q, "&name={}", query::encode_component(n));
        }
        if self.moderator {
            q.push_str("&mod=1");
        }
        if let Some(ip) = &self.ip {
            let _ = write!(q, "&ip={}", query::encode_component(ip));
        }
        q
    }

    /// Reads [`Identity::to_query`] back; `None` without a user.
    pub fn from_query(q: &str) -> Option<Self> {
        let mut out = Self::default();
        for (k, v) in query::params(q) {
            match &*k {
                "user" => out.user = v.into_owned(),
                "name" => out.token_name = Some(v.into_owned()),
                "mod" => out.moderator = v == "1",
                "ip" => out.ip = Some(v.into_owned()),
                _ => {}
            }
        }
        (!out.user.is_empty()).then_some(out)
    }
}

/// The `name:` claim of a token's `data` (read like the entitlement claims:
/// percent-decoded, then split at commas).
fn name_claim(data: &str) -> Option<String> {
    let data = decode_percent(data);
    data.split(',')
        .find_map(|c| c.trim().strip_prefix("name:").map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(acl: &[&str], id: Option<&str>, data: Option<&str>) -> Grant {
        Grant {
            expires: 10,
            acl: acl.iter().map(|s| s.to_string()).collect(),
            session_id: id.map(str::to_owned),
            data: data.map(str::to_owned),
            ..Grant::default()
        }
    }

    #[test]
    fn users() {
        let g = grant(&["/live/cam1/*"], Some("viewer-42"), None);
        let a = Identity::new("cam1", Some(&g), Some("tok-a"), None, "r", 32);
        let b = Identity::new("cam1", Some(&g), Some("tok-b"), None, "r", 32);
        assert_eq!(
            a.user, b.user,
            "same session id, same user, whatever the token"
        );
        assert_eq!(a.user.len(), 17);
        assert!(a.user.starts_with('u'));
        let other_stream = Identity::new("cam2", Some(&g), Some("tok-a"), None, "r", 32);
        assert_ne!(
            a.user, other_stream.user,
            "ids do not link viewers across rooms"
        );
        let no_id = grant(&["/live/cam1/*"], None, None);
        let c = Identity::new("cam1", Some(&no_id), Some("tok-a"), None, "r", 32);
        let d = Identity::new("cam1", Some(&no_id), Some("tok-b"), None, "r", 32);
        assert_ne!(c.user, d.user, "without id, the token is the user");
        let anon = Identity::new("cam1", None, None, None, "0123abcd", 32);
        assert_eq!(anon.user, "a0123abcd");
        assert_eq!(anon.default_name(), "viewer-0123");
        assert!(!a.moderator && !anon.moderator);
    }

    #[test]
    fn names_from_tokens() {
        for (data, want) in [
            (Some("name:Alice"), Some("Alice")),
            (Some("maxh:720,name:Bob%20B"), Some("Bob B")),
            (Some("name%3AC%C3%A9line%2Cmaxh%3A720"), Some("Céline")),
            (Some("name:  "), None),
            (Some("maxh:720"), None),
            (None, None),
        ] {
            let g = grant(&["/live/cam1/*"], None, data);
            let id = Identity::new("cam1", Some(&g), Some("t"), None, "r", 32);
            assert_eq!(id.token_name.as_deref(), want, "{data:?}");
        }
        let g = grant(&["/live/cam1/*"], None, Some("name:abcdefghij"));
        let id = Identity::new("cam1", Some(&g), Some("t"), None, "r", 4);
        assert_eq!(id.token_name.as_deref(), Some("abcd"));
    }

    /// issue 16: moderator rights used to follow from the ACL covering
    /// `/chat/<stream>/moderate`, so any site-wide token made a moderator.
    #[test]
    fn wide_acls_are_not_moderators() {
        for acl in [
            vec!["*"],
            vec!["/*"],
            vec!["/chat/*"],
            vec!["/live/*", "/chat/*"],
            vec!["/live/cam1/*", "/chat/cam1/*"],
            vec!["/live/cam1/*", "/chat/cam1/moderate"],
        ] {
            let g = grant(&acl, None, Some("name:Ann"));
            let id = Identity::new("cam1", Some(&g), Some("t"), None, "r", 32);
            assert!(!id.moderator, "{acl:?}");
        }
    }

    #[test]
    fn moderators_hold_an_explicit_claim() {
        let cases = [
            (Some("mod:cam1"), true),
            (Some("name:Ann,mod:cam1"), true),
            (Some("mod:cam2,mod:cam1"), true),
            (Some("mod:*"), true),
            (Some("mod%3Acam1"), true),
            (Some(" mod: cam1 "), true),
            (Some("mod:cam2"), false),
            (Some("mod:cam10"), false),
            (Some("mod:cam*"), false),
            (Some("mod:"), false),
            (Some("name:mod:cam1"), false),
            (Some("moderator:cam1"), false),
            (None, false),
        ];
        for (data, want) in cases {
            let g = grant(&["/live/cam1/*"], None, data);
            let id = Identity::new("cam1", Some(&g), Some("t"), None, "r", 32);
            assert_eq!(id.moderator, want, "{data:?}");
            assert_eq!(is_moderator(&g, "cam1"), want, "{data:?}");
        }
        assert_eq!(moderator_claim("cam1"), "mod:cam1");
        assert!(moderates(&moderator_claim("cam1"), "cam1"));
    }

    #[test]
    fn query_round_trip() {
        let id = Identity {
            user: "u0011".into(),
            token_name: Some("Zoë & <co>".into()),
            moderator: true,
            ip: Some("2001:db8::1".into()),
        };
        assert_eq!(Identity::from_query(&id.to_query()), Some(id));
        let plain = Identity {
            user: "a1".into(),
            ..Identity::default()
        };
        assert_eq!(plain.to_query(), "user=a1");
        assert_eq!(Identity::from_query(&plain.to_query()), Some(plain));
        assert_eq!(Identity::from_query("name=x"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(access_path("cam1"), "/live/cam1/chat");
        assert!(crate::access::token::acl_matches(
            "/live/cam1/*",
            &access_path("cam1")
        ));
    }
}
