//! The CORS headers of every answer Brook serves to browsers (origin and
//! edge alike): players and pages on other origins may read any answer, a
//! fixed set of response headers, and the status of refusals (so a player
//! stops retrying). Preflights are answered, never forwarded.

/// Response headers a page on another origin may read.
pub const EXPOSE_HEADERS: &str = "content-length, content-range, date, etag, age, location, link, \
     accept-patch, accept-post, x-brook-cache";

/// The headers added to every answer.
pub const RESPONSE_HEADERS: [(&str, &str); 2] = [
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", EXPOSE_HEADERS),
];

/// How long a browser may reuse a preflight answer, in s.
pub const PREFLIGHT_MAX_AGE_S: u32 = 86_400;

/// The headers of a preflight answer (204) for a resource allowing
/// `methods` (`Allow` form, e.g. `GET, HEAD, OPTIONS`). `requested` is the
/// `Access-Control-Request-Headers` value: each name in it that is a plain
/// header name is allowed back (a `*` would not cover `Authorization`).
pub fn preflight_headers(methods: &str, requested: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(5);
    out.extend(RESPONSE_HEADERS.map(|(k, v)| (k, v.to_owned())));
    out.push(("access-control-allow-methods", methods.to_owned()));
    let names: Vec<&str> = requested
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .collect();
    if !names.is_empty() {
        out.push(("access-control-allow-headers", names.join(", ")));
    }
    out.push(("access-control-max-age", PREFLIGHT_MAX_AGE_S.to_string()));
    out.push(("cache-control", "no-store".to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflights_echo_plain_header_names() {
        let h = preflight_headers(
            "GET, HEAD, OPTIONS",
            Some("Authorization, x-bad header,,content-type"),
        );
        let get = |name: &str| h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("access-control-allow-origin"), Some("*"));
        assert_eq!(
            get("access-control-allow-methods"),
            Some("GET, HEAD, OPTIONS")
        );
        assert_eq!(
            get("access-control-allow-headers"),
            Some("Authorization, content-type")
        );
        assert_eq!(get("access-control-max-age"), Some("86400"));
        assert_eq!(get("cache-control"), Some("no-store"));
        let none = preflight_headers("GET", None);
        assert!(none
            .iter()
            .all(|(k, _)| *k != "access-control-allow-headers"));
    }

    #[test]
    fn every_answer_exposes_the_same_headers() {
        assert_eq!(RESPONSE_HEADERS[0], ("access-control-allow-origin", "*"));
        for name in ["content-length", "etag", "location", "x-brook-cache"] {
            assert!(EXPOSE_HEADERS.split(", ").any(|n| n == name), "{name}");
        }
    }
}
