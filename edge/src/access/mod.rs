//! Who may fetch a `/live/` or `/vod/` URL: the token check, then the geo
//! rule. Both spaces use the same tokens: an ACL pattern over the path's one
//! spelling (`acl=/live/cam1/*`, `acl=/vod/<asset>/*`).
//!
//! ```text
//! token = query __token__ | Authorization: Bearer | cookie __token__   (first present wins;
//!         brook_common::credentials: Bearer in any case, `+` is a `+` everywhere)
//! no token and auth.required        -> 401 (WWW-Authenticate: Bearer)
//! token fails any check             -> 403 (the same bare body whatever failed)
//! viewer's country blocked          -> 451
//! ```
//!
//! With `auth.required = false` a valid token still counts (its entitlements
//! apply and it is carried into child URIs); an invalid one is ignored.

use std::borrow::Cow;

use crate::config::Edge;
use geo::{Decision, Subject};
use token::{Grant, KeySet, Reject};

pub mod caps;
pub mod geo;
pub mod license;
pub mod token;

/// One request, as far as access is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessRequest<'a> {
    /// Unix time, seconds.
    pub now: u64,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub country: Option<&'a str>,
    /// What the geo rule is looked up for: the stream or the asset.
    pub subject: Subject<'a>,
}

/// A request that may proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted<'a> {
    /// The token as presented (decoded), when it verified: carried into the
    /// URIs of personalized manifests.
    pub token: Option<Cow<'a, str>>,
    pub grant: Option<Grant>,
}

/// A request that may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, and one is required.
    Missing,
    /// A token that fails a check (which one is for logs only).
    Token(Reject),
    /// The stream's geo rule blocks the viewer's country.
    Geo,
    /// A valid token without the moderator claim, at the moderation API.
    NotModerator,
}

impl Denied {
    pub fn status(self) -> u16 {
        match self {
            Denied::Missing => 401,
            Denied::Token(_) | Denied::NotModerator => 403,
            Denied::Geo => 451,
        }
    }

    /// The response body: the same for every token failure.
    pub fn body(self) -> &'static str {
        match self {
            Denied::Missing => "token required\n",
            Denied::Token(_) | Denied::NotModerator => "forbidden\n",
            Denied::Geo => "not available in your country\n",
        }
    }

    /// Label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Token(r) => r.as_str(),
            Denied::Geo => "geo",
            Denied::NotModerator => "not_moderator",
        }
    }

    /// Label for `brook_edge_license_denied_total{reason}`: which check
    /// refused, without the token failure's detail.
    pub fn reason_class(self) -> &'static str {
        match self {
            Denied::Missing => "no_token",
            Denied::Token(_) | Denied::NotModerator => "token",
            Denied::Geo => "geo",
        }
    }

    /// The `WWW-Authenticate` challenge, for a missing token (RFC 6750 3).
    pub fn www_authenticate(self) -> Option<&'static str> {
        (self == Denied::Missing).then_some("Bearer realm=\"brook\"")
    }

    /// The counter a refusal adds to, and its labels.
    pub fn metric(self) -> (&'static str, Option<(&'static str, &'static str)>) {
        match self {
            Denied::Geo => ("brook_edge_geo_blocked_total", None),
            _ => (
                "brook_edge_auth_failures_total",
                Some(("reason", self.reason())),
            ),
        }
    }
}

/// Who a steering report comes from, so each viewer counts once: the
/// token's session id, else the token itself (its MAC: one per token
/// minted), else the client address (tokens off).
pub fn reporter_key(admitted: &Admitted<'_>, client_ip: Option<&str>) -> String {
    if let Some(id) = admitted
        .grant
        .as_ref()
        .and_then(|g| g.session_id.as_deref())
    {
        return format!("id:{id}");
    }
    if let Some(t) = &admitted.token {
        let mac = t.rsplit_once("~hmac=").map_or(t.as_ref(), |(_, m)| m);
        return format!("token:{mac}");
    }
    format!("ip:{}", client_ip.unwrap_or(""))
}

/// A stable key for the viewer behind a request: the token's session id,
/// else the client address (steering order, per-viewer reports).
pub fn viewer_key(grant: Option<&Grant>, client_ip: Option<&str>) -> String {
    grant
        .and_then(|g| g.session_id.clone())
        .or_else(|| client_ip.map(str::to_owned))
        .unwrap_or_default()
}

/// The token a request presents, if any: query parameter, then `Bearer`,
/// then cookie (the rules shared with the origin, `brook_common`).
pub use brook_common::credentials::find_token;

/// Decides whether `req` may proceed.
pub fn admit<'a>(
    edge: &Edge,
    keys: &KeySet,
    req: &AccessRequest<'a>,
) -> Result<Admitted<'a>, Denied> {
    let presented = find_token(
        &edge.auth.token_name,
        req.query,
        req.authorization,
        req.cookie,
    );
    let check = token::Request {
        now: req.now,
        path: req.path,
        client_ip: req.client_ip,
    };
    let admitted = match presented {
        None if edge.auth.required => return Err(Denied::Missing),
        None => Admitted {
            token: None,
            grant: None,
        },
        Some(t) => match token::verify(&t, keys, &check) {
            Ok(grant) => Admitted {
                token: Some(t),
                grant: Some(grant),
            },
            Err(reject) if edge.auth.required => return Err(Denied::Token(reject)),
            Err(_) => Admitted {
                token: None,
                grant: None,
            },
        },
    };
    match edge.geo.decide(req.subject, req.country) {
        Decision::Allow => Ok(admitted),
        Decision::Block => Err(Denied::Geo),
    }
}

#[cfg(test)]
mod tests {
    use super::token::{sign, Grant};
    use super::*;
    use crate::query;

    const HEX: &str = "00112233445566778899aabbccddeeff";

    fn setup(config: &str) -> (Edge, KeySet, String) {
        let edge = Edge::new(Some(config), Some("http://o.example")).unwrap();
        let keys = KeySet::parse(&format!("k1:{HEX}")).unwrap();
        let grant = Grant {
            expires: 2000,
            acl: vec!["/live/cam1/*".into()],
            key_id: Some("k1".into()),
            ..Grant::default()
        };
        let token = sign(&grant, keys.get("k1").unwrap());
        (edge, keys, token)
    }

    fn req<'a>(query: Option<&'a str>, country: Option<&'a str>) -> AccessRequest<'a> {
        AccessRequest {
            now: 1500,
            path: "/live/cam1/index.m3u8",
            query,
            country,
            subject: Subject::Stream("cam1"),
            ..Default::default()
        }
    }

    #[test]
    fn token_places_and_precedence() {
        let t = "exp=1~acl=/x~hmac=00";
        let enc = query::encode_component(t);
        let q = format!("a=1&__token__={enc}");
        assert_eq!(
            find_token("__token__", Some(&q), None, None).as_deref(),
            Some(t)
        );
        assert_eq!(
            find_token(
                "__token__",
                None,
                Some("Bearer  exp=1~acl=/x~hmac=00 "),
                None
            )
            .as_deref(),
            Some(t)
        );
        assert_eq!(
            find_token("__token__", None, Some("bearer x"), None).as_deref(),
            Some("x")
        );
        assert_eq!(find_token("__token__", None, Some("Basic x"), None), None);
        assert_eq!(find_token("__token__", None, Some("Bearer "), None), None);
        let cookie = format!("a=b; __token__={enc}; c=d");
        assert_eq!(
            find_token("__token__", None, None, Some(&cookie)).as_deref(),
            Some(t)
        );
        assert_eq!(
            find_token(
                "__token__",
                None,
                None,
                Some("__token__=\"exp=1~acl=/x~hmac=00\"")
            )
            .as_deref(),
            Some(t)
        );
        assert_eq!(
            find_token(
                "__token__",
                Some("__token__=q"),
                Some("Bearer h"),
                Some("__token__=c")
            )
            .as_deref(),
            Some("q")
        );
        assert_eq!(
            find_token(
                "__token__",
                Some("x=1"),
                Some("Bearer h"),
                Some("__token__=c")
            )
            .as_deref(),
            Some("h")
        );
        assert_eq!(find_token("t", Some("__token__=q"), None, None), None);
    }

    /// issue 16: a token read from the query was decoded as a form (`+`
    /// became a space) while the same token in a cookie kept its `+`; a
    /// token whose claims hold a `+` failed its MAC when sent unescaped.
    #[test]
    fn a_plus_in_a_query_token_is_a_plus_as_in_a_cookie() {
        let (edge, keys, _) = setup("{}");
        let grant = Grant {
            expires: 2000,
            acl: vec!["/live/cam1/*".into()],
            data: Some("name:a+b".into()),
            key_id: Some("k1".into()),
            ..Grant::default()
        };
        let token = sign(&grant, keys.get("k1").unwrap());
        let raw = format!("__token__={token}");
        let by_query = admit(&edge, &keys, &req(Some(&raw), None)).unwrap();
        assert_eq!(
            by_query.grant.and_then(|g| g.data).as_deref(),
            Some("name:a+b")
        );
        let by_cookie = AccessRequest {
            cookie: Some(&raw),
            ..req(None, None)
        };
        assert!(admit(&edge, &keys, &by_cookie).is_ok());
        let by_header = format!("BEARER {token}");
        let by_bearer = AccessRequest {
            authorization: Some(&by_header),
            ..req(None, None)
        };
        assert!(
            admit(&edge, &keys, &by_bearer).is_ok(),
            "the scheme in any case"
        );
    }

    #[test]
    fn decisions() {
        let (edge, keys, token) = setup(r#"{"geo": {"streams": {"cam1": {"deny": ["KP"]}}}}"#);
        let q = format!("__token__={}", query::encode_component(&token));
        let ok = admit(&edge, &keys, &req(Some(&q), Some("DE"))).unwrap();
        assert_eq!(ok.token.as_deref(), Some(token.as_str()));
        assert_eq!(
            admit(&edge, &keys, &req(None, Some("DE"))),
            Err(Denied::Missing)
        );
        assert_eq!(
            admit(&edge, &keys, &req(Some("__token__=junk"), Some("DE"))),
            Err(Denied::Token(Reject::Malformed))
        );
        assert_eq!(
            admit(&edge, &keys, &req(Some(&q), Some("KP"))),
            Err(Denied::Geo)
        );
        // Token first: an unauthenticated viewer learns nothing about geo rules.
        assert_eq!(
            admit(&edge, &keys, &req(None, Some("KP"))),
            Err(Denied::Missing)
        );
        let statuses: Vec<u16> = [Denied::Missing, Denied::Token(Reject::Expired), Denied::Geo]
            .iter()
            .map(|d| d.status())
            .collect();
        assert_eq!(statuses, [401, 403, 451]);
        // Every token failure looks the same from outside.
        for r in Reject::ALL {
            assert_eq!(Denied::Token(r).body(), "forbidden\n");
            assert_eq!(Denied::Token(r).status(), 403);
        }
    }

    #[test]
    fn refusals_as_the_viewer_and_the_metrics_see_them() {
        assert_eq!(
            Denied::Missing.www_authenticate(),
            Some("Bearer realm=\"brook\"")
        );
        assert_eq!(Denied::Token(Reject::Expired).www_authenticate(), None);
        assert_eq!(Denied::Geo.www_authenticate(), None);
        assert_eq!(
            Denied::Token(Reject::Expired).metric(),
            (
                "brook_edge_auth_failures_total",
                Some(("reason", "expired"))
            )
        );
        assert_eq!(
            Denied::Missing.metric(),
            (
                "brook_edge_auth_failures_total",
                Some(("reason", "missing"))
            )
        );
        assert_eq!(Denied::Geo.metric(), ("brook_edge_geo_blocked_total", None));
    }

    #[test]
    fn reporter_keys() {
        let with_id = Admitted {
            token: Some("exp=1~acl=/x~id=v1~hmac=ab".into()),
            grant: Some(Grant {
                session_id: Some("v1".into()),
                ..Grant::default()
            }),
        };
        assert_eq!(reporter_key(&with_id, Some("1.2.3.4")), "id:v1");
        let without_id = Admitted {
            token: Some("exp=1~acl=/x~hmac=ab12".into()),
            grant: Some(Grant::default()),
        };
        assert_eq!(reporter_key(&without_id, Some("1.2.3.4")), "token:ab12");
        let anonymous = Admitted {
            token: None,
            grant: None,
        };
        assert_eq!(reporter_key(&anonymous, Some("1.2.3.4")), "ip:1.2.3.4");
    }

    #[test]
    fn viewer_keys() {
        let with_id = Grant {
            session_id: Some("viewer-42".into()),
            ..Grant::default()
        };
        assert_eq!(viewer_key(Some(&with_id), Some("1.2.3.4")), "viewer-42");
        assert_eq!(
            viewer_key(Some(&Grant::default()), Some("1.2.3.4")),
            "1.2.3.4"
        );
        assert_eq!(viewer_key(None, None), "");
    }

    /// VOD uses the same tokens: an ACL over the path's one spelling. A
    /// token for one asset opens nothing else, a `/live/` one no asset.
    #[test]
    fn vod_tokens_and_geo() {
        const A: &str = "0123456789abcdef0123456789abcdef";
        const B: &str = "fedcba9876543210fedcba9876543210";
        let (edge, keys, live_token) = setup(&format!(
            r#"{{"geo": {{"assets": {{"{A}": {{"allow": ["FR"]}}}}}}}}"#
        ));
        let sign_for = |acl: String| {
            let grant = Grant {
                expires: 2000,
                acl: vec![acl],
                key_id: Some("k1".into()),
                ..Grant::default()
            };
            sign(&grant, keys.get("k1").unwrap())
        };
        let vod_token = sign_for(format!("/vod/{A}/*"));
        let all_vod = sign_for("/vod/*".into());
        let at = |asset: &'static str, name: &str| format!("/vod/{asset}/{name}");
        let ask = |token: &str, path: &str, subject, country| {
            let q = format!("__token__={}", query::encode_component(token));
            admit(
                &edge,
                &keys,
                &AccessRequest {
                    now: 1500,
                    path,
                    query: Some(&q),
                    country,
                    subject,
                    ..Default::default()
                },
            )
            .map(|_| ())
        };
        let a = Subject::Asset(A);
        let b = Subject::Asset(B);
        for name in ["index.m3u8", "720p-seg3.m4s", "status", "poster.jpg"] {
            assert_eq!(
                ask(&vod_token, &at(A, name), a, Some("FR")),
                Ok(()),
                "{name}"
            );
            assert_eq!(ask(&all_vod, &at(A, name), a, Some("FR")), Ok(()), "{name}");
        }
        assert_eq!(
            ask(&vod_token, &at(B, "index.m3u8"), b, Some("FR")),
            Err(Denied::Token(Reject::PathNotAllowed))
        );
        assert_eq!(
            ask(&live_token, &at(A, "index.m3u8"), a, Some("FR")),
            Err(Denied::Token(Reject::PathNotAllowed))
        );
        // The asset's geo rule; other assets get the default.
        assert_eq!(
            ask(&vod_token, &at(A, "index.m3u8"), a, Some("DE")),
            Err(Denied::Geo)
        );
        assert_eq!(ask(&all_vod, &at(B, "index.m3u8"), b, Some("DE")), Ok(()));
    }

    #[test]
    fn optional_auth() {
        let (edge, keys, token) = setup(r#"{"auth": {"required": false}}"#);
        let anon = admit(&edge, &keys, &req(None, None)).unwrap();
        assert_eq!(anon.grant, None);
        let bad = admit(&edge, &keys, &req(Some("__token__=junk"), None)).unwrap();
        assert_eq!(bad.token, None, "an invalid token is not carried on");
        let q = format!("__token__={}", query::encode_component(&token));
        let good = admit(&edge, &keys, &req(Some(&q), None)).unwrap();
        assert!(good.grant.is_some());
    }
}
