//! A camera's `rtsp://user:pass@host/path` as configured, split into what
//! retina takes (the URL without credentials, which it refuses anyway, and
//! the credentials apart) and what may be logged: the same URL with the
//! password, the user name and secret-looking query values replaced.
//!
//! The configured text never leaves this type: `Display` and `Debug` show the
//! redacted form, and [`CameraUrl::scrub`] takes the secrets out of any text
//! that might quote them (an error from the camera or the library).

use retina::client::Credentials;
use url::Url;

/// Shown instead of a secret.
pub const REDACTED: &str = "***";

/// Query parameters whose values are taken for secrets (some cameras take
/// their credentials or a token in the query).
const SECRET_PARAMS: &[&str] = &[
    "user",
    "username",
    "login",
    "pass",
    "passwd",
    "password",
    "pwd",
    "token",
    "key",
    "auth",
    "secret",
    "signature",
    "sig",
];

/// Why a configured camera URL is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all; the reason comes from the parser, never the text.
    #[error("not a URL ({0})")]
    Syntax(url::ParseError),
    #[error("scheme {0:?}: only rtsp:// is supported (retina has no RTSP over TLS)")]
    Scheme(String),
    #[error("no host")]
    NoHost,
    #[error("the user name or password is not valid percent-encoding")]
    Credentials,
    #[error("a fragment (#...) is not part of an RTSP URL")]
    Fragment,
}

/// A camera URL with its secrets kept apart.
#[derive(Clone, PartialEq, Eq)]
pub struct CameraUrl {
    /// What is sent to the camera: no user name, no password.
    url: Url,
    credentials: Option<(String, String)>,
    /// For logs.
    redacted: String,
    /// Text to take out of anything logged: the password, the user name, the
    /// secret query values (raw and as they appear percent-encoded).
    secrets: Vec<String>,
}

impl CameraUrl {
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let mut url = Url::parse(text.trim()).map_err(UrlError::Syntax)?;
        if url.scheme() != "rtsp" {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let mut secrets = Vec::new();
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s)
                    .filter(|d| !d.chars().any(char::is_control))
                    .ok_or(UrlError::Credentials)
            };
            let user = decode(url.username())?;
            let password = decode(url.password().unwrap_or(""))?;
            secrets.extend([url.username().to_owned(), user.clone()]);
            if let Some(p) = url.password() {
                secrets.extend([p.to_owned(), password.clone()]);
            }
            Some((user, password))
        };
        // Url has no "clear the credentials" beyond setting them empty, which
        // cannot fail for an rtsp:// URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut shown = url.clone();
        if credentials.is_some() {
            let _ = shown.set_username(REDACTED);
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let raw_values: Vec<&str> = url
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|p| p.split_once('=').map(|(_, v)| v))
                .collect();
            let mut query = shown.query_pairs_mut();
            query.clear();
            for (i, (k, v)) in pairs.iter().enumerate() {
                if is_secret_param(k) && !v.is_empty() {
                    secrets.push(v.clone());
                    if let Some(raw) = raw_values.get(i) {
                        secrets.push((*raw).to_owned());
                    }
                    query.append_pair(k, REDACTED);
                } else {
                    query.append_pair(k, v);
                }
            }
            drop(query);
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a secret that contains another is taken whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Ok(Self {
            url,
            credentials,
            redacted: shown.as_str().replace("%2A%2A%2A", REDACTED),
            secrets,
        })
    }

    /// The URL to send to the camera (no credentials).
    pub fn request_url(&self) -> &Url {
        &self.url
    }

    /// The user name and password, for retina to answer the camera's
    /// authentication challenge with.
    pub fn credentials(&self) -> Option<Credentials> {
        self.credentials
            .as_ref()
            .map(|(username, password)| Credentials {
                username: username.clone(),
                password: password.clone(),
            })
    }

    /// The host and port to connect to (554 when the URL names none).
    pub fn host_port(&self) -> (String, u16) {
        let host = self
            .url
            .host_str()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        (host, self.url.port().unwrap_or(554))
    }

    /// `text` with every secret of this URL replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

impl std::fmt::Display for CameraUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Debug for CameraUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CameraUrl({})", self.redacted)
    }
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&name.as_str())
}

/// Percent-decodes `s` as UTF-8; `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The password and user name appear nowhere that could be logged:
    /// Display, Debug, the URL sent to the camera; scrub takes them out of
    /// any text, encoded or not.
    #[test]
    fn credentials_never_shown() {
        let u =
            CameraUrl::parse("rtsp://admin:s3cr%40t-pw@cam.local:8554/stream1?channel=2").unwrap();
        let creds = u.credentials().unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("admin", "s3cr@t-pw")
        );
        assert_eq!(
            u.request_url().as_str(),
            "rtsp://cam.local:8554/stream1?channel=2"
        );
        assert_eq!(u.to_string(), "rtsp://***@cam.local:8554/stream1?channel=2");
        for shown in [u.to_string(), format!("{u:?}"), u.request_url().to_string()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(!shown.contains("admin"), "{shown}");
        }
        let error = "401 from rtsp://admin:s3cr%40t-pw@cam.local (user admin, password s3cr@t-pw)";
        let scrubbed = u.scrub(error);
        assert!(
            !scrubbed.contains("s3cr") && !scrubbed.contains("admin"),
            "{scrubbed}"
        );
        assert_eq!(u.host_port(), ("cam.local".to_owned(), 8554));
    }

    #[test]
    fn secret_query_values_are_redacted() {
        let u = CameraUrl::parse(
            "rtsp://10.0.0.7/live?channel=1&user=bob&password=hunter%202&subtype=0",
        )
        .unwrap();
        assert!(u.credentials().is_none());
        let shown = u.to_string();
        assert_eq!(
            shown,
            "rtsp://10.0.0.7/live?channel=1&user=***&password=***&subtype=0"
        );
        assert_eq!(u.host_port(), ("10.0.0.7".to_owned(), 554));
        assert_eq!(
            u.scrub("bad request rtsp://10.0.0.7/live?channel=1&user=bob&password=hunter%202"),
            "bad request rtsp://10.0.0.7/live?channel=1&user=***&password=***"
        );
        assert_eq!(u.scrub("hunter 2"), "***");
    }

    #[test]
    fn user_without_password_and_ipv6() {
        let u = CameraUrl::parse("rtsp://viewer@[::1]:554/x").unwrap();
        let c = u.credentials().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("viewer", ""));
        assert_eq!(u.host_port(), ("::1".to_owned(), 554));
        assert_eq!(u.to_string(), "rtsp://***@[::1]:554/x");
    }

    /// Bad URLs are refused with a reason that never quotes the text.
    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("http://cam/x", "only rtsp://"),
            ("rtsps://cam/x", "only rtsp://"),
            ("rtsp://", "no host"),
            ("not a url with s3cret", "not a URL"),
            ("rtsp://a:%ff%fe@cam/x", "percent-encoding"),
            ("rtsp://a:b%0a@cam/x", "percent-encoding"),
            ("rtsp://cam/x#frag", "fragment"),
        ];
        for (text, reason) in cases {
            let e = CameraUrl::parse(text).unwrap_err().to_string();
            assert!(e.contains(reason), "{text}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
