//! Header filtering for the proxy, in both directions.
//!
//! A proxy forwards end-to-end headers (content-type, cache-control, etag,
//! content-length, if-none-match, ...) and drops hop-by-hop ones, which
//! describe a single connection (RFC 9110 section 7.6.1), including any
//! header the `Connection` header names.

/// Headers that only ever apply to one connection (RFC 9110 7.6.1, plus the
/// legacy `Proxy-Connection` and `Keep-Alive` that are still seen on the wire).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Headers the runtime derives from the URL it fetches; forwarding the
/// client's value would at best be ignored.
const DERIVED: &[&str] = &["host"];

/// Whether `name` is hop-by-hop, either by definition or because the
/// message's `Connection` header lists it (`connection` is that header's value).
pub fn is_hop_by_hop(name: &str, connection: Option<&str>) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || connection.is_some_and(|c| {
            c.split(',')
                .map(str::trim)
                .any(|token| !token.is_empty() && token.eq_ignore_ascii_case(name))
        })
}

/// The headers of one message that a proxy passes on: all of them except
/// hop-by-hop ones and `Host`. Order and repeated names are kept.
pub fn forward_headers<I, K, V>(headers: I) -> Vec<(K, V)>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let all: Vec<(K, V)> = headers.into_iter().collect();
    let connection: Vec<&str> = all
        .iter()
        .filter(|(k, _)| k.as_ref().eq_ignore_ascii_case("connection"))
        .map(|(_, v)| v.as_ref())
        .collect();
    let connection = connection.join(",");
    let keep: Vec<bool> = all
        .iter()
        .map(|(k, _)| {
            let k = k.as_ref();
            !is_hop_by_hop(k, Some(&connection))
                && !DERIVED.iter().any(|d| k.eq_ignore_ascii_case(d))
        })
        .collect();
    all.into_iter()
        .zip(keep)
        .filter_map(|(kv, keep)| keep.then_some(kv))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &[(&str, &str)]) -> Vec<String> {
        forward_headers(headers.iter().copied())
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect()
    }

    #[test]
    fn keeps_end_to_end_headers() {
        let h = [
            ("content-type", "application/vnd.apple.mpegurl"),
            ("cache-control", "max-age=1"),
            ("etag", "\"abc\""),
            ("content-length", "123"),
            ("last-modified", "Sun, 22 Nov 2026 10:00:00 GMT"),
            ("if-none-match", "\"abc\""),
            ("accept", "*/*"),
            ("age", "0"),
        ];
        assert_eq!(
            names(&h),
            h.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn drops_hop_by_hop_and_host() {
        let h = [
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("TE", "trailers"),
            ("Trailer", "x-checksum"),
            ("Upgrade", "websocket"),
            ("Proxy-Authorization", "Basic Zm9v"),
            ("Proxy-Authenticate", "Basic"),
            ("Proxy-Connection", "keep-alive"),
            ("Host", "edge.example"),
            ("ETag", "\"v1\""),
        ];
        assert_eq!(names(&h), ["ETag"]);
    }

    #[test]
    fn drops_headers_named_by_connection() {
        let h = [
            ("connection", "X-Debug, close"),
            ("connection", " x-other ,"),
            ("x-debug", "1"),
            ("X-Other", "2"),
            ("x-kept", "3"),
            ("close", "not really a header, but named"),
        ];
        assert_eq!(names(&h), ["x-kept"]);
    }

    #[test]
    fn keeps_repeated_names_in_order() {
        let h = [("vary", "a"), ("x", "1"), ("vary", "b")];
        let got = forward_headers(h);
        assert_eq!(got, [("vary", "a"), ("x", "1"), ("vary", "b")]);
    }

    #[test]
    fn empty_connection_tokens_match_nothing() {
        assert!(!is_hop_by_hop("", Some(" , ,")));
        assert!(!is_hop_by_hop("etag", Some("")));
        assert!(is_hop_by_hop("ETAG", Some("etag")));
        assert!(is_hop_by_hop("Transfer-Encoding", None));
    }
}
