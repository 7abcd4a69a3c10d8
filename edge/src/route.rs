//! Which requests the Worker handles, decided from the path alone.

/// What the Worker does with a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An LL-HLS delivery object under `/live/` (playlist, init section,
    /// part, segment): proxied to the origin with the same path and query,
    /// so blocking playlist reloads (`_HLS_msn`, `_HLS_part`) reach it as sent.
    Live,
    /// Anything else. Static files never get here: the assets layer answers
    /// them before the Worker runs.
    NotFound,
}

/// Methods the [`Route::Live`] proxy accepts, in `Allow` header form.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// Picks the route for a URL path (as parsed by the runtime: percent-encoded,
/// dot segments already resolved).
///
/// Only `/live/<something>` is proxied. Dot segments are refused anyway, so a
/// path that was not normalised upstream can never climb out of `/live/` on
/// the origin.
pub fn route(path: &str) -> Route {
    match path.strip_prefix("/live/") {
        Some(rest) if !rest.is_empty() && !rest.split('/').any(is_dot_segment) => Route::Live,
        _ => Route::NotFound,
    }
}

/// Whether the live proxy serves `method` (HTTP methods are case-sensitive).
pub fn is_allowed_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

fn is_dot_segment(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase();
    matches!(s.as_str(), "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases = [
            ("/live/cam1/index.m3u8", Route::Live),
            ("/live/cam1/init.mp4", Route::Live),
            ("/live/cam1/seg12.part3.m4s", Route::Live),
            ("/live/x", Route::Live),
            ("/live/cam1/", Route::Live),
            ("/live/", Route::NotFound),
            ("/live", Route::NotFound),
            ("/lively/cam1/index.m3u8", Route::NotFound),
            ("/", Route::NotFound),
            ("/index.html", Route::NotFound),
            ("/vendor/hls.min.js", Route::NotFound),
            ("", Route::NotFound),
            ("/LIVE/cam1/index.m3u8", Route::NotFound),
            ("/live/../admin", Route::NotFound),
            ("/live/cam1/./index.m3u8", Route::NotFound),
            ("/live/%2e%2e/admin", Route::NotFound),
            ("/live/%2E./admin", Route::NotFound),
            ("/live/cam1/..", Route::NotFound),
            ("/live/cam1/..m3u8", Route::Live),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "route({path:?})");
        }
    }

    #[test]
    fn methods() {
        for m in ["GET", "HEAD"] {
            assert!(is_allowed_method(m), "{m}");
        }
        for m in [
            "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "get", "",
        ] {
            assert!(!is_allowed_method(m), "{m}");
        }
    }
}
