//! Query strings and percent-encoding, just as much as the edge needs: reading
//! `_HLS_*` directives and the token out of a request, and appending the token
//! to the URIs of a personalized playlist.

use std::borrow::Cow;

/// The query parameters of `query` (without the leading `?`), in order, names
/// and values percent-decoded with form semantics (`+` is a space), the way
/// `URLSearchParams` reads them. Pairs without `=` have an empty value.
pub fn params(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_form(k), decode_form(v))
    })
}

/// The first value of parameter `name`, decoded.
pub fn param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    params(query).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Percent-decodes `s`, treating `+` as a space (form encoding). Invalid
/// escapes are kept as they are; bytes that do not form UTF-8 are replaced.
pub fn decode_form(s: &str) -> Cow<'_, str> {
    if !s.contains('+') {
        return decode_percent(s);
    }
    Cow::Owned(decode_percent(&s.replace('+', " ")).into_owned())
}

/// Percent-decodes `s` (a `+` stays a `+`): `brook_common`'s lenient decode.
pub use brook_common::percent::decode_lossy as decode_percent;

/// Percent-encodes everything but RFC 3986 unreserved characters, like
/// `encodeURIComponent` minus its `!'()*` exceptions: safe in a query value
/// and inside a quoted playlist attribute.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// Appends `name=value` (value already encoded) to the query of `uri`,
/// keeping any fragment at the end.
pub fn append_param(uri: &mut String, name: &str, encoded_value: &str) {
    let fragment = uri.find('#').map(|at| uri.split_off(at));
    uri.push(if uri.contains('?') { '&' } else { '?' });
    uri.push_str(name);
    uri.push('=');
    uri.push_str(encoded_value);
    if let Some(f) = fragment {
        uri.push_str(&f);
    }
}

/// Whether `uri` is relative (no scheme, not protocol-relative): the kind of
/// URI that resolves against the playlist it appears in.
pub fn is_relative(uri: &str) -> bool {
    if uri.starts_with("//") {
        return false;
    }
    let scheme_end = uri.find(':');
    let path_start = uri.find(['/', '?', '#']).unwrap_or(uri.len());
    match scheme_end {
        Some(colon) if colon < path_start => {
            let scheme = &uri[..colon];
            scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_url_search_params() {
        let got: Vec<(String, String)> = params("a=1&b=%7E%3D+x&&c&_HLS_msn=12&a=2&bad=%zz%4")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let want = [
            ("a", "1"),
            ("b", "~= x"),
            ("c", ""),
            ("_HLS_msn", "12"),
            ("a", "2"),
            ("bad", "%zz%4"),
        ];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
        assert_eq!(param("a=1&a=2", "a").as_deref(), Some("1"));
        assert_eq!(param("a=1", "b"), None);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        for s in [
            "exp=1~acl=/live/cam1/*~hmac=00ff",
            "a b+c&d=e?f#g%h",
            "ünï",
            "",
        ] {
            let enc = encode_component(s);
            assert!(enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            assert_eq!(decode_form(&enc), s);
            assert_eq!(decode_percent(&enc), s);
        }
        assert_eq!(decode_percent("a+b"), "a+b");
    }

    #[test]
    fn appends_params() {
        let cases = [
            ("seg1.m4s", "seg1.m4s?t=x"),
            ("media.m3u8?a=1", "media.m3u8?a=1&t=x"),
            ("a.m4s#frag", "a.m4s?t=x#frag"),
            ("https://cdn.example/x", "https://cdn.example/x?t=x"),
        ];
        for (uri, want) in cases {
            let mut u = uri.to_string();
            append_param(&mut u, "t", "x");
            assert_eq!(u, want);
        }
    }

    #[test]
    fn relative_uris() {
        for (uri, rel) in [
            ("seg1.m4s", true),
            ("S/media.m3u8", true),
            ("/live/cam1/x", true),
            ("a:b/c", false),
            ("./a:b", true),
            ("seg:1.m4s", false),
            ("https://cdn.example/x", false),
            ("//cdn.example/x", false),
            ("data:application/json,{}", false),
            ("?x=1", true),
        ] {
            assert_eq!(is_relative(uri), rel, "{uri}");
        }
    }
}
