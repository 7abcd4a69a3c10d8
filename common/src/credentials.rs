//! Reading a credential from a request, one way everywhere:
//!
//! - `Authorization: Bearer <token>`: the scheme is case-insensitive
//!   (RFC 9110 11.1), one or more spaces before the token, surrounding
//!   whitespace ignored ([`bearer`]);
//! - a query parameter ([`query_value`]) or a cookie ([`cookie_value`]):
//!   percent-decoded, and `+` is a `+` in both (tokens contain no spaces,
//!   while EdgeAuth ACLs and `data` may hold a literal `+` that a client
//!   did not escape);
//! - a viewer token from any of the three, first found wins ([`find_token`]).

use std::borrow::Cow;

use crate::percent::decode_lossy;

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(authorization: &str) -> Option<&str> {
    let value = authorization.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The first value of parameter `name` in `query` (without the `?`),
/// names and values percent-decoded, `+` kept.
pub fn query_value<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_lossy(k) == name).then(|| decode_lossy(v))
    })
}

/// The value of cookie `name` in a `Cookie` header, percent-decoded,
/// without the optional double quotes (RFC 6265 4.1.1).
pub fn cookie_value<'a>(cookie: &'a str, name: &str) -> Option<Cow<'a, str>> {
    cookie.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k.trim() == name).then(|| decode_lossy(v.trim().trim_matches('"')))
    })
}

/// A viewer token, looked for in this order: query parameter `name`,
/// `Authorization: Bearer`, cookie `name`.
pub fn find_token<'a>(
    name: &str,
    query: Option<&'a str>,
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    if let Some(t) = query.and_then(|q| query_value(q, name)) {
        return Some(t);
    }
    if let Some(t) = authorization.and_then(bearer) {
        return Some(Cow::Borrowed(t));
    }
    cookie.and_then(|c| cookie_value(c, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        for (header, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("Bearer   abc  ", Some("abc")),
            ("  Bearer\tabc", Some("abc")),
            ("Bearer a+b/c=", Some("a+b/c=")),
            ("Bearer ", None),
            ("Bearer", None),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("", None),
        ] {
            assert_eq!(bearer(header), want, "{header:?}");
        }
    }

    #[test]
    fn plus_is_a_plus_in_queries_and_cookies() {
        let token = "exp=1~acl=/live/cam1/*~data=a+b~hmac=00";
        let raw = format!("__token__={token}");
        assert_eq!(query_value(&raw, "__token__").as_deref(), Some(token));
        assert_eq!(cookie_value(&raw, "__token__").as_deref(), Some(token));
        let escaped = "__token__=exp%3D1~data%3Da%2Bb";
        assert_eq!(
            query_value(escaped, "__token__").as_deref(),
            Some("exp=1~data=a+b")
        );
        assert_eq!(
            cookie_value(escaped, "__token__").as_deref(),
            Some("exp=1~data=a+b")
        );
    }

    #[test]
    fn queries_and_cookies() {
        assert_eq!(query_value("a=1&b=2&a=3", "a").as_deref(), Some("1"));
        assert_eq!(query_value("a&b=2", "a").as_deref(), Some(""));
        assert_eq!(query_value("%61=x", "a").as_deref(), Some("x"));
        assert_eq!(query_value("ab=1", "a"), None);
        assert_eq!(query_value("", "a"), None);
        assert_eq!(cookie_value("x=1; t=\"v\"; y=2", "t").as_deref(), Some("v"));
        assert_eq!(cookie_value("x=1;t=v%20w", "t").as_deref(), Some("v w"));
        assert_eq!(cookie_value("xt=1", "t"), None);
    }

    #[test]
    fn token_precedence() {
        let q = Some("__token__=q");
        let h = Some("Bearer h");
        let c = Some("__token__=c");
        assert_eq!(find_token("__token__", q, h, c).as_deref(), Some("q"));
        assert_eq!(
            find_token("__token__", Some("x=1"), h, c).as_deref(),
            Some("h")
        );
        assert_eq!(
            find_token("__token__", None, Some("Basic h"), c).as_deref(),
            Some("c")
        );
        assert_eq!(find_token("t", q, None, None), None);
    }
}
