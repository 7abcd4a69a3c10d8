//! The `/live/` URL space, decoded and checked in one place, before any
//! token, geo rule, cache key or lookup sees it:
//!
//! ```text
//! /live/<stream>/<name>             index.m3u8, steering.json, ...
//! /live/<stream>/<session>/<name>   video.m3u8, 720p-part12.3.m4s, manifest.mpd, time
//! ```
//!
//! Each segment is percent-decoded (strictly: a bad escape or a result
//! that is not UTF-8 is refused), then must be a [`valid_stream_name`],
//! [`valid_session_id`] or [`valid_object_name`] for its position. So an
//! encoded separator (`..%2fcam2`), a dot segment in any spelling, an empty
//! segment or a deeper path never gets through, and what does has exactly
//! one spelling: [`LivePath`]'s `Display`, which is what tokens are checked
//! against and what the origin is asked for.

use std::fmt;

use crate::names::{valid_object_name, valid_session_id, valid_stream_name};
use crate::percent::decode_strict;

/// A checked path under `/live/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePath {
    pub stream: String,
    /// The publish session, for objects within one.
    pub session: Option<String>,
    /// The last segment: a playlist, MPD or object name.
    pub name: String,
}

/// Why a path is not a [`LivePath`] (for logs: every one is a 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not under `/live/`.
    NotLive,
    /// Not `<stream>/<name>` or `<stream>/<session>/<name>` (empty
    /// segments included).
    Shape,
    /// A bad percent escape, or an escape that does not decode to UTF-8.
    Escape,
    /// A segment that decodes to `/` or `\` inside it.
    EncodedSeparator,
    /// A `.` or `..` segment, however spelt.
    DotSegment,
    BadStream,
    BadSession,
    BadName,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotLive => "not under /live/",
            PathError::Shape => "not /live/<stream>/[<session>/]<name>",
            PathError::Escape => "bad percent escape",
            PathError::EncodedSeparator => "encoded path separator",
            PathError::DotSegment => "dot segment",
            PathError::BadStream => "invalid stream name",
            PathError::BadSession => "invalid session id",
            PathError::BadName => "invalid object name",
        })
    }
}

impl std::error::Error for PathError {}

impl LivePath {
    /// Decodes and checks `path`, the URL path as received (no query).
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let rest = path.strip_prefix("/live/").ok_or(PathError::NotLive)?;
        let raw: Vec<&str> = rest.split('/').collect();
        if !(2..=3).contains(&raw.len()) || raw.iter().any(|s| s.is_empty()) {
            return Err(PathError::Shape);
        }
        let mut decoded = Vec::with_capacity(raw.len());
        for segment in &raw {
            let s = decode_strict(segment).map_err(|_| PathError::Escape)?;
            if s.contains(['/', '\\']) {
                return Err(PathError::EncodedSeparator);
            }
            if s == "." || s == ".." {
                return Err(PathError::DotSegment);
            }
            decoded.push(s.into_owned());
        }
        let name = decoded.pop().ok_or(PathError::Shape)?;
        let session = if decoded.len() == 2 {
            decoded.pop()
        } else {
            None
        };
        let stream = decoded.pop().ok_or(PathError::Shape)?;
        if !valid_stream_name(&stream) {
            return Err(PathError::BadStream);
        }
        if session.as_deref().is_some_and(|s| !valid_session_id(s)) {
            return Err(PathError::BadSession);
        }
        if !valid_object_name(&name) {
            return Err(PathError::BadName);
        }
        Ok(Self {
            stream,
            session,
            name,
        })
    }
}

/// The one spelling of the path: every segment is made of unreserved
/// characters, so nothing needs escaping.
impl fmt::Display for LivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/live/{}/", self.stream)?;
        if let Some(session) = &self.session {
            write!(f, "{session}/")?;
        }
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "0a1b2c3d4e5f6a7b";

    fn ok(stream: &str, session: Option<&str>, name: &str) -> Result<LivePath, PathError> {
        Ok(LivePath {
            stream: stream.into(),
            session: session.map(Into::into),
            name: name.into(),
        })
    }

    #[test]
    fn parses_and_refuses() {
        let cases = [
            ("/live/cam1/index.m3u8", ok("cam1", None, "index.m3u8")),
            (
                "/live/cam1/steering.json",
                ok("cam1", None, "steering.json"),
            ),
            (
                "/live/cam1/0a1b2c3d4e5f6a7b/720p-part12.3.m4s",
                ok("cam1", Some(S), "720p-part12.3.m4s"),
            ),
            (
                "/live/cam1/0a1b2c3d4e5f6a7b/manifest.mpd",
                ok("cam1", Some(S), "manifest.mpd"),
            ),
            // Escapes of unreserved characters mean those characters.
            ("/live/c%61m1/index%2Em3u8", ok("cam1", None, "index.m3u8")),
            // The issue's example: an encoded separator in a segment.
            (
                "/live/cam1/..%2fcam2/index.m3u8",
                Err(PathError::EncodedSeparator),
            ),
            (
                "/live/cam1/..%2Fcam2%2F0a1b2c3d4e5f6a7b/x.m4s",
                Err(PathError::EncodedSeparator),
            ),
            ("/live/cam1/a%5cb", Err(PathError::EncodedSeparator)),
            ("/live/cam1/../cam2/index.m3u8", Err(PathError::Shape)),
            ("/live/cam1/../index.m3u8", Err(PathError::DotSegment)),
            ("/live/cam1/%2e%2e/index.m3u8", Err(PathError::DotSegment)),
            ("/live/cam1/.%2E/index.m3u8", Err(PathError::DotSegment)),
            ("/live/cam1/./index.m3u8", Err(PathError::DotSegment)),
            ("/live/..", Err(PathError::Shape)),
            ("/live/cam1/..", Err(PathError::DotSegment)),
            ("/live/cam1/%zz", Err(PathError::Escape)),
            ("/live/cam1/%FF.m3u8", Err(PathError::Escape)),
            ("/live/cam1/", Err(PathError::Shape)),
            ("/live//index.m3u8", Err(PathError::Shape)),
            ("/live/cam1", Err(PathError::Shape)),
            ("/live/", Err(PathError::Shape)),
            ("/live/cam1/a/b/c", Err(PathError::Shape)),
            ("/live/cam1/0a1b2c3d4e5f6a7b/", Err(PathError::Shape)),
            ("/live", Err(PathError::NotLive)),
            ("/LIVE/cam1/index.m3u8", Err(PathError::NotLive)),
            ("/chat/cam1", Err(PathError::NotLive)),
            ("/live/cam.1/index.m3u8", Err(PathError::BadStream)),
            ("/live/caf%C3%A9/index.m3u8", Err(PathError::BadStream)),
            ("/live/cam1/S1/video.m3u8", Err(PathError::BadSession)),
            ("/live/cam1/..m3u8", Err(PathError::BadName)),
            ("/live/cam1/a%20b.m3u8", Err(PathError::BadName)),
            (
                "/live/cam1/0a1b2c3d4e5f6a7b/.hidden",
                Err(PathError::BadName),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(LivePath::parse(path), want, "{path:?}");
        }
    }

    #[test]
    fn one_spelling() {
        for path in [
            "/live/cam1/index.m3u8",
            "/live/cam1/0a1b2c3d4e5f6a7b/720p-part12.3.m4s",
        ] {
            assert_eq!(LivePath::parse(path).unwrap().to_string(), path);
        }
        assert_eq!(
            LivePath::parse("/live/%63am1/0a1b2c3d4e5f6a7b/video%2Dseg1.m4s")
                .unwrap()
                .to_string(),
            "/live/cam1/0a1b2c3d4e5f6a7b/video-seg1.m4s"
        );
    }
}
