//! The proxy's decisions around one origin exchange, as plain functions over
//! header lists: whether a request may share an origin fetch, which headers
//! go to the origin, and which headers each kind of answer carries back
//! (straight through, shared between viewers, stored in the Cache API).
//! `bindings/fetch.rs` applies them to the runtime's `Headers`.

use crate::delivery::cache::{personalized_cache_control, Lookup};
use crate::delivery::headers::forward_headers;
use crate::delivery::shared::SharedBody;

/// Headers that make a request about one client's copy, not the object.
pub const CONDITIONAL: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// Header naming where an answer came from (a [`Source`]).
pub const CACHE_STATUS: &str = "x-brook-cache";

/// Where the Cache API copy keeps the origin's own `Cache-Control` (its
/// `Cache-Control` is the edge TTL).
pub const ORIGIN_CACHE_CONTROL: &str = "x-brook-origin-cache-control";

/// Where a response came from (the `x-brook-cache` header says it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Workers Cache API.
    Hit,
    /// This request's own origin fetch.
    Miss,
    /// Another request's origin fetch, shared in flight.
    Coalesced,
    /// Not shareable: streamed through as the origin sent it.
    Pass,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Miss => "miss",
            Source::Coalesced => "coalesced",
            Source::Pass => "pass",
        }
    }
}

/// Whether a request may share an origin fetch with identical ones (and the
/// Cache API): plain GETs of kinds the origin answers the same for everyone.
/// A conditional or range request is about one client's copy.
pub fn is_shareable(method: &str, lookup: &Lookup<'_>, conditional: bool) -> bool {
    method == "GET" && lookup.is_shared() && !conditional
}

/// Whether any of `names` (the request's header names) is in [`CONDITIONAL`].
pub fn has_conditional<'a>(mut names: impl Iterator<Item = &'a str>) -> bool {
    names.any(|n| CONDITIONAL.iter().any(|c| n.eq_ignore_ascii_case(c)))
}

/// What the origin gets from the client's headers: end-to-end ones, never
/// the token carriers, and for `shared` fetches nothing conditional.
pub fn upstream_headers<I, K, V>(from: I, shared: bool) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    forward_headers(from)
        .into_iter()
        .filter(|(name, _)| {
            let lower = name.as_ref().to_ascii_lowercase();
            lower != "authorization"
                && lower != "cookie"
                && !(shared && CONDITIONAL.contains(&lower.as_str()))
        })
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect()
}

/// An origin answer shared by the requests that coalesced on it: status and
/// headers once they arrived, the body while it arrives ([`SharedBody`]).
#[derive(Debug)]
pub struct Flight {
    pub status: u16,
    /// As [`decoded_headers`] leaves them.
    pub headers: Vec<(String, String)>,
    pub body: SharedBody,
}

impl Flight {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// An origin response held in memory (a manifest to personalize, a
/// multivariant playlist to learn a ladder from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Fetched {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The first value of header `name` in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The headers of an origin response whose body the runtime hands over
/// decoded: the coding, and the length that described the bytes on the
/// wire, no longer apply (Cloudflare compresses again on the way out).
pub fn decoded_headers<I, K, V>(from: I) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    forward_headers(from)
        .into_iter()
        .filter(|(k, _)| {
            let k = k.as_ref();
            !k.eq_ignore_ascii_case("content-encoding") && !k.eq_ignore_ascii_case("content-length")
        })
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect()
}

/// The copy kept in the Cache API: the edge TTL as `Cache-Control`, the
/// origin's own value kept aside ([`ORIGIN_CACHE_CONTROL`]) for the
/// responses made from it; never a cookie.
pub fn stored_headers(headers: &[(String, String)], ttl: u32) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len() + 1);
    for (k, v) in headers {
        match k.to_ascii_lowercase().as_str() {
            "cache-control" => {
                out.retain(|(n, _)| !n.eq_ignore_ascii_case(ORIGIN_CACHE_CONTROL));
                out.push((ORIGIN_CACHE_CONTROL.into(), v.clone()));
            }
            "set-cookie" | "content-length" => {}
            _ => out.push((k.clone(), v.clone())),
        }
    }
    out.push(("cache-control".into(), format!("public, max-age={ttl}")));
    out
}

/// An answer passed on as the origin (or the Cache API) sent it: the
/// origin's `Cache-Control` back in place of the edge TTL, and the source.
pub fn passthrough_headers<I, K, V>(from: I, source: Source) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let forwarded: Vec<(String, String)> = forward_headers(from)
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    let origin_cc = header(&forwarded, ORIGIN_CACHE_CONTROL).map(str::to_owned);
    let mut out: Vec<(String, String)> = forwarded
        .into_iter()
        .filter(|(k, _)| {
            let replaced = origin_cc.is_some() && k.eq_ignore_ascii_case("cache-control");
            !(replaced
                || k.eq_ignore_ascii_case(ORIGIN_CACHE_CONTROL)
                || k.eq_ignore_ascii_case(CACHE_STATUS))
        })
        .collect();
    if let Some(cc) = origin_cc {
        out.push(("cache-control".into(), cc));
    }
    out.push((CACHE_STATUS.into(), source.as_str().into()));
    out
}

/// A shared origin answer as one viewer gets it, unchanged: the runtime
/// sets the length of the body it sends.
pub fn shared_headers(headers: &[(String, String)], source: Source) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case(CACHE_STATUS)
        })
        .cloned()
        .collect();
    out.push((CACHE_STATUS.into(), source.as_str().into()));
    out
}

/// A manifest as one viewer gets it. `rewritten`: the body was personalized
/// (it carries the viewer's token), so no shared cache may keep it and the
/// origin's validators no longer describe it; otherwise the origin's
/// `Cache-Control` is kept as is.
pub fn manifest_headers(
    headers: &[(String, String)],
    rewritten: bool,
    source: Source,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(headers.len() + 2);
    let mut origin_cc = None;
    for (k, v) in headers {
        match k.to_ascii_lowercase().as_str() {
            "content-length" | "cache-control" | CACHE_STATUS => {}
            ORIGIN_CACHE_CONTROL => origin_cc = Some(v.clone()),
            "etag" | "last-modified" | "age" if rewritten => {}
            _ => out.push((k.clone(), v.clone())),
        }
    }
    let origin_cc = origin_cc.or_else(|| header(headers, "cache-control").map(str::to_owned));
    if rewritten {
        out.push((
            "cache-control".into(),
            personalized_cache_control(origin_cc.as_deref()),
        ));
    } else if let Some(cc) = origin_cc {
        out.push(("cache-control".into(), cc));
    }
    out.push((CACHE_STATUS.into(), source.as_str().into()));
    out
}

/// Statuses whose responses must not carry a body (the `Response`
/// constructor throws otherwise).
pub fn has_null_body(status: u16) -> bool {
    matches!(status, 101 | 103 | 204 | 205 | 304)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Kind, VodKind};

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn what_may_share_a_fetch() {
        let seg = Lookup {
            kind: Kind::Segment,
            path: "/live/cam1/S/video-seg1.m4s",
            query: None,
        };
        let other = Lookup {
            kind: Kind::Other,
            ..seg
        };
        assert!(is_shareable("GET", &seg, false));
        assert!(!is_shareable("HEAD", &seg, false));
        assert!(!is_shareable("GET", &seg, true));
        assert!(!is_shareable("GET", &other, false));
        assert!(has_conditional(["accept", "Range"].into_iter()));
        // VOD objects share like live ones; a range request never does (its
        // 206 is passed back and never stored), nor does `status`.
        let vod_seg = Lookup {
            kind: Kind::Vod(VodKind::Segment),
            path: "/vod/0123456789abcdef0123456789abcdef/720p-seg1.m4s",
            query: None,
        };
        assert!(is_shareable("GET", &vod_seg, false));
        assert!(!is_shareable(
            "GET",
            &vod_seg,
            has_conditional(["range"].into_iter())
        ));
        let status = Lookup {
            kind: Kind::Vod(VodKind::Status),
            ..vod_seg
        };
        assert!(!is_shareable("GET", &status, false));
        assert!(has_conditional(["If-None-Match"].into_iter()));
        assert!(!has_conditional(["accept", "authorization"].into_iter()));
    }

    #[test]
    fn the_origin_never_sees_token_carriers() {
        let from = h(&[
            ("Authorization", "Bearer t"),
            ("Cookie", "__token__=t"),
            ("If-None-Match", "\"x\""),
            ("Range", "bytes=0-1"),
            ("Connection", "close"),
            ("Accept", "*/*"),
        ]);
        assert_eq!(
            upstream_headers(from.clone(), true),
            h(&[("Accept", "*/*")])
        );
        assert_eq!(
            upstream_headers(from, false),
            h(&[
                ("If-None-Match", "\"x\""),
                ("Range", "bytes=0-1"),
                ("Accept", "*/*")
            ])
        );
    }

    #[test]
    fn stored_copies_carry_the_edge_ttl() {
        let origin = h(&[
            ("content-type", "video/mp4"),
            ("Cache-Control", "public, max-age=31536000, immutable"),
            ("set-cookie", "a=b"),
            ("content-length", "12"),
        ]);
        let stored = stored_headers(&origin, 60);
        assert_eq!(
            stored,
            h(&[
                ("content-type", "video/mp4"),
                (ORIGIN_CACHE_CONTROL, "public, max-age=31536000, immutable"),
                ("cache-control", "public, max-age=60"),
            ])
        );
        // A hit answers with the origin's value again.
        assert_eq!(
            passthrough_headers(stored, Source::Hit),
            h(&[
                ("content-type", "video/mp4"),
                ("cache-control", "public, max-age=31536000, immutable"),
                (CACHE_STATUS, "hit"),
            ])
        );
        // Without a stored origin value the answer's own is kept.
        assert_eq!(
            passthrough_headers(h(&[("cache-control", "no-cache")]), Source::Pass),
            h(&[("cache-control", "no-cache"), (CACHE_STATUS, "pass")])
        );
    }

    #[test]
    fn decoded_and_shared_bodies_lose_their_wire_length() {
        let origin = h(&[
            ("content-encoding", "gzip"),
            ("Content-Length", "10"),
            ("keep-alive", "timeout=5"),
            ("etag", "\"e\""),
        ]);
        assert_eq!(decoded_headers(origin), h(&[("etag", "\"e\"")]));
        assert_eq!(
            shared_headers(
                &h(&[("etag", "\"e\""), ("content-length", "3")]),
                Source::Coalesced
            ),
            h(&[("etag", "\"e\""), (CACHE_STATUS, "coalesced")])
        );
    }

    #[test]
    fn personalized_manifests_are_private_and_lose_validators() {
        let origin = h(&[
            ("content-type", "application/vnd.apple.mpegurl"),
            ("cache-control", "public, max-age=6"),
            ("etag", "\"pl\""),
            ("age", "1"),
            ("content-length", "99"),
        ]);
        assert_eq!(
            manifest_headers(&origin, true, Source::Miss),
            h(&[
                ("content-type", "application/vnd.apple.mpegurl"),
                ("cache-control", "private, max-age=6"),
                (CACHE_STATUS, "miss"),
            ])
        );
        assert_eq!(
            manifest_headers(&origin, false, Source::Miss),
            h(&[
                ("content-type", "application/vnd.apple.mpegurl"),
                ("etag", "\"pl\""),
                ("age", "1"),
                ("cache-control", "public, max-age=6"),
                (CACHE_STATUS, "miss"),
            ])
        );
        // From the Cache API: the origin's value, not the edge TTL.
        let stored = stored_headers(&origin, 6);
        let got = manifest_headers(&stored, true, Source::Hit);
        assert_eq!(header(&got, "cache-control"), Some("private, max-age=6"));
        let got = manifest_headers(&stored, false, Source::Hit);
        assert_eq!(header(&got, "cache-control"), Some("public, max-age=6"));
    }

    #[test]
    fn null_body_statuses() {
        for s in [101, 103, 204, 205, 304] {
            assert!(has_null_body(s), "{s}");
        }
        for s in [200, 206, 302, 404, 503] {
            assert!(!has_null_body(s), "{s}");
        }
    }
}
