//! Where the Worker sends proxied requests (`ORIGIN_URL`).

use crate::Error;

/// A validated origin base URL, e.g. `http://127.0.0.1:8080` or
/// `https://origin.example/brook` (a path prefix is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Scheme, authority and optional path prefix, without a trailing `/`.
    base: String,
}

impl Origin {
    /// Validates an `ORIGIN_URL` value: `http://` or `https://`, a non-empty
    /// host, no query or fragment. A trailing `/` is ignored.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidOriginUrl {
            value: value.to_owned(),
            reason,
        };
        let trimmed = value.trim();
        let scheme_len = ["http://", "https://"]
            .iter()
            .find(|s| {
                trimmed
                    .get(..s.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(s))
            })
            .map(|s| s.len())
            .ok_or_else(|| invalid("scheme must be http:// or https://"))?;
        if trimmed.contains(['?', '#']) {
            return Err(invalid("must not have a query or fragment"));
        }
        if trimmed.contains(char::is_whitespace) {
            return Err(invalid("must not contain whitespace"));
        }
        let rest = &trimmed[scheme_len..];
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.starts_with(':') {
            return Err(invalid("host is missing"));
        }
        Ok(Self {
            base: trimmed.trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URL for a request: the request's path (which starts with
    /// `/`) and query string appended unchanged.
    pub fn url_for(&self, path: &str, query: Option<&str>) -> String {
        let mut url = String::with_capacity(self.base.len() + path.len() + 64);
        url.push_str(&self.base);
        if !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_path_and_query_unchanged() {
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            (
                "http://127.0.0.1:8080",
                "/live/cam1/index.m3u8",
                Some("_HLS_msn=12&_HLS_part=3"),
                "http://127.0.0.1:8080/live/cam1/index.m3u8?_HLS_msn=12&_HLS_part=3",
            ),
            (
                "http://127.0.0.1:8080/",
                "/live/cam1/index.m3u8",
                None,
                "http://127.0.0.1:8080/live/cam1/index.m3u8",
            ),
            (
                "https://origin.example/brook/",
                "/live/a%20b/seg1.m4s",
                Some(""),
                "https://origin.example/brook/live/a%20b/seg1.m4s?",
            ),
            (
                " HTTPS://origin.example ",
                "/live/x",
                Some("a=1&a=2&_HLS_skip=YES"),
                "HTTPS://origin.example/live/x?a=1&a=2&_HLS_skip=YES",
            ),
        ];
        for (base, path, query, want) in cases {
            let origin = Origin::parse(base).unwrap();
            assert_eq!(
                origin.url_for(path, *query),
                *want,
                "{base} {path} {query:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_origin_urls() {
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http:///live",
            "http://:8080",
            "http://x?y=1",
            "http://x/#frag",
            "http://x y",
            "httpx://x",
        ] {
            assert!(
                matches!(Origin::parse(bad), Err(Error::InvalidOriginUrl { .. })),
                "{bad:?} should be rejected"
            );
        }
    }
}
