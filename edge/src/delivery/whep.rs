//! WHEP playback through the edge (draft-ietf-wish-whep): `POST /whep/<stream>`
//! (the SDP offer) and `PATCH` / `DELETE /whep/<stream>/<session>` are passed
//! to the origin after the viewer's token and geo checks; the media itself
//! flows between the viewer and the origin's UDP port (WebRTC, ICE-lite), not
//! through the edge.
//!
//! The token is the stream's: it is checked against `/live/<stream>/whep`, so
//! an ACL that opens the stream's video (`/live/cam1/*`) opens its WHEP
//! playback too. WHEP clients send it as `Authorization: Bearer` (the draft's
//! way), which the access check reads; it is not passed on to the origin.
//!
//! Plain Rust: the path, the methods, what is forwarded each way;
//! `bindings/whep.rs` carries it out.

use brook_common::valid_stream_name;

/// The URL prefix (the origin's too).
pub const PREFIX: &str = "/whep/";

/// Largest offer or trickle fragment passed on (the origin's default limit).
pub const MAX_BODY: usize = 64 * 1024;

/// Methods of the endpoint and of a session resource (`OPTIONS`: CORS).
pub const ENDPOINT_METHODS: &str = "POST, OPTIONS";
pub const RESOURCE_METHODS: &str = "PATCH, DELETE, OPTIONS";

/// Request headers passed to the origin.
pub const REQUEST_HEADERS: &[&str] = &["content-type", "if-match", "accept"];

/// Response headers passed back to the viewer (the CORS set is the edge's).
pub const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "etag",
    "accept-patch",
    "accept-post",
    "retry-after",
    "allow",
    "link",
];

/// A request under `/whep/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhepPath {
    pub stream: String,
    /// The session resource's id (`None`: the endpoint).
    pub session: Option<String>,
}

impl WhepPath {
    /// `/whep/<stream>` or `/whep/<stream>/<id>` (id: 32 lowercase hex digits,
    /// as the origin makes them); anything else is not a WHEP path.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix(PREFIX)?;
        let (stream, session) = match rest.split_once('/') {
            Some((s, id)) => (s, Some(id)),
            None => (rest, None),
        };
        if !valid_stream_name(stream) {
            return None;
        }
        if let Some(id) = session {
            let ok = id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return None;
            }
        }
        Some(Self {
            stream: stream.to_string(),
            session: session.map(str::to_string),
        })
    }

    /// The path the viewer's token is checked against.
    pub fn access_path(&self) -> String {
        format!("/live/{}/whep", self.stream)
    }

    /// The path at the origin (the same layout).
    pub fn origin_path(&self) -> String {
        match &self.session {
            Some(id) => format!("{PREFIX}{}/{id}", self.stream),
            None => format!("{PREFIX}{}", self.stream),
        }
    }

    /// The methods this resource allows.
    pub fn methods(&self) -> &'static str {
        if self.session.is_some() {
            RESOURCE_METHODS
        } else {
            ENDPOINT_METHODS
        }
    }

    /// Whether `method` is passed to the origin (else 405 with `Allow`).
    pub fn allows(&self, method: &str) -> bool {
        match self.session {
            None => method == "POST",
            Some(_) => matches!(method, "PATCH" | "DELETE"),
        }
    }

    /// Whether the request has a body to pass on.
    pub fn takes_body(method: &str) -> bool {
        matches!(method, "POST" | "PATCH")
    }
}

/// The origin's `Location` as the viewer should see it: the origin answers
/// with a path (`/whep/<stream>/<id>`), which is the same at the edge; an
/// absolute URL is reduced to its path, so the session is always reached
/// through the edge (and its checks). Anything else is dropped.
pub fn location(origin_value: &str) -> Option<String> {
    let path = if let Some(rest) = origin_value
        .strip_prefix("http://")
        .or_else(|| origin_value.strip_prefix("https://"))
    {
        &rest[rest.find('/')?..]
    } else {
        origin_value
    };
    WhepPath::parse(path)
        .filter(|p| p.session.is_some())
        .map(|p| p.origin_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let id = "0123456789abcdef0123456789abcdef";
        let endpoint = WhepPath::parse("/whep/cam1").unwrap();
        assert_eq!(endpoint.session, None);
        assert_eq!(endpoint.access_path(), "/live/cam1/whep");
        assert_eq!(endpoint.origin_path(), "/whep/cam1");
        assert!(endpoint.allows("POST") && !endpoint.allows("DELETE") && !endpoint.allows("GET"));
        let resource = WhepPath::parse(&format!("/whep/cam1/{id}")).unwrap();
        assert_eq!(resource.session.as_deref(), Some(id));
        assert_eq!(resource.origin_path(), format!("/whep/cam1/{id}"));
        assert!(resource.allows("DELETE") && resource.allows("PATCH") && !resource.allows("POST"));
        assert_eq!(resource.methods(), RESOURCE_METHODS);
        for bad in [
            "/whep/",
            "/whep/cam1/",
            "/whep/..",
            "/whep/cam%2F1",
            "/whep/cam1/short",
            "/whep/cam1/0123456789ABCDEF0123456789ABCDEF",
            &format!("/whep/cam1/{id}/x"),
            "/whip/cam1",
        ] {
            assert_eq!(WhepPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn locations_stay_on_the_edge() {
        let id = "0123456789abcdef0123456789abcdef";
        let path = format!("/whep/cam1/{id}");
        assert_eq!(location(&path), Some(path.clone()));
        assert_eq!(
            location(&format!("http://10.0.0.5:8080{path}")),
            Some(path.clone())
        );
        assert_eq!(location("/whep/cam1"), None);
        assert_eq!(location("https://evil.example/"), None);
        assert_eq!(location("javascript:alert(1)"), None);
    }
}
