//! The `/live/` and `/vod/` URL spaces, decoded and checked in one place,
//! before any token, geo rule, cache key or lookup sees them:
//!
//! ```text
//! /live/<stream>/<name>             index.m3u8, steering.json, ...
//! /live/<stream>/<session>/<name>   video.m3u8, 720p-part12.3.m4s, manifest.mpd, time
//! /vod/<asset>/<name>               index.m3u8, 720p-seg3.m4s, poster.jpg, status, ...
//! ```
//!
//! Each segment is percent-decoded (strictly: a bad escape or a result
//! that is not UTF-8 is refused), then must be a [`valid_stream_name`],
//! [`valid_session_id`], [`valid_asset_id`] or [`valid_object_name`] for its
//! position. So an encoded separator (`..%2fcam2`), a dot segment in any
//! spelling, an empty segment or a deeper path never gets through, and what
//! does has exactly one spelling: [`LivePath`]'s and [`VodPath`]'s
//! `Display`, which is what tokens are checked against and what the origin
//! is asked for.

use std::fmt;

use crate::names::{valid_asset_id, valid_object_name, valid_session_id, valid_stream_name};
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

/// A checked path under `/vod/`: `/vod/<asset>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodPath {
    /// The asset id: 32 lowercase hex digits.
    pub asset: String,
    /// The object name: a playlist, MPD, init, segment, image, `status`.
    pub name: String,
}

/// Why a path is not a [`LivePath`] or [`VodPath`] (for logs: every one is
/// a 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Not under `/live/`.
    NotLive,
    /// Not under `/vod/`.
    NotVod,
    /// Not `<stream>/<name>` or `<stream>/<session>/<name>` (`<asset>/<name>`
    /// under `/vod/`; empty segments included).
    Shape,
    /// A bad percent escape, or an escape that does not decode to UTF-8.
    Escape,
    /// A segment that decodes to `/` or `\` inside it.
    EncodedSeparator,
    /// A `.` or `..` segment, however spelt.
    DotSegment,
    BadStream,
    BadSession,
    /// Not 32 lowercase hex digits.
    BadAsset,
    BadName,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotLive => "not under /live/",
            PathError::NotVod => "not under /vod/",
            PathError::Shape => "not /live/<stream>/[<session>/]<name> or /vod/<asset>/<name>",
            PathError::Escape => "bad percent escape",
            PathError::EncodedSeparator => "encoded path separator",
            PathError::DotSegment => "dot segment",
            PathError::BadStream => "invalid stream name",
            PathError::BadSession => "invalid session id",
            PathError::BadAsset => "invalid asset id",
            PathError::BadName => "invalid object name",
        })
    }
}

impl std::error::Error for PathError {}

impl LivePath {
    /// Decodes and checks `path`, the URL path as received (no query).
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let rest = path.strip_prefix("/live/").ok_or(PathError::NotLive)?;
        let mut decoded = decode_segments(rest, 2..=3)?;
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

impl VodPath {
    /// Decodes and checks `path`, the URL path as received (no query):
    /// `/vod/<asset>/<name>`, the asset 32 lowercase hex digits, the name a
    /// [`valid_object_name`].
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let rest = path.strip_prefix("/vod/").ok_or(PathError::NotVod)?;
        let mut decoded = decode_segments(rest, 2..=2)?;
        let name = decoded.pop().ok_or(PathError::Shape)?;
        let asset = decoded.pop().ok_or(PathError::Shape)?;
        if !valid_asset_id(&asset) {
            return Err(PathError::BadAsset);
        }
        if !valid_object_name(&name) {
            return Err(PathError::BadName);
        }
        Ok(Self { asset, name })
    }
}

/// Splits `rest` at `/` into `segments` (a count) non-empty segments and
/// decodes each, refusing encoded separators and dot segments.
fn decode_segments(
    rest: &str,
    segments: std::ops::RangeInclusive<usize>,
) -> Result<Vec<String>, PathError> {
    let raw: Vec<&str> = rest.split('/').collect();
    if !segments.contains(&raw.len()) || raw.iter().any(|s| s.is_empty()) {
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
    Ok(decoded)
}

/// The one spelling of the path: every segment is made of unreserved
/// characters, so nothing needs escaping.
impl fmt::Display for VodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/vod/{}/{}", self.asset, self.name)
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

    const A: &str = "0123456789abcdef0123456789abcdef";

    fn vod(name: &str) -> Result<VodPath, PathError> {
        Ok(VodPath {
            asset: A.into(),
            name: name.into(),
        })
    }

    #[test]
    fn vod_parses_and_refuses() {
        let at = |name: &str| format!("/vod/{A}/{name}");
        let cases: Vec<(String, Result<VodPath, PathError>)> = vec![
            (at("index.m3u8"), vod("index.m3u8")),
            (at("720p.m3u8"), vod("720p.m3u8")),
            (at("720p-iframes.m3u8"), vod("720p-iframes.m3u8")),
            (at("manifest.mpd"), vod("manifest.mpd")),
            (at("720p-init0.mp4"), vod("720p-init0.mp4")),
            (at("720p-seg12.m4s"), vod("720p-seg12.m4s")),
            (at("poster.jpg"), vod("poster.jpg")),
            (at("sprite-3.jpg"), vod("sprite-3.jpg")),
            (at("status"), vod("status")),
            // Escapes of unreserved characters mean those characters.
            (
                "/vod/%30123456789abcdef0123456789abcdef/index%2Em3u8".into(),
                vod("index.m3u8"),
            ),
            // Encoded separators, dot segments, however spelt.
            (at("..%2fother"), Err(PathError::EncodedSeparator)),
            (format!("/vod/{A}%2Findex.m3u8"), Err(PathError::Shape)),
            (
                format!("/vod/{A}%2F/index.m3u8"),
                Err(PathError::EncodedSeparator),
            ),
            (at("a%5cb"), Err(PathError::EncodedSeparator)),
            (at(".."), Err(PathError::DotSegment)),
            (at("%2e%2E"), Err(PathError::DotSegment)),
            (at("."), Err(PathError::DotSegment)),
            ("/vod/../index.m3u8".into(), Err(PathError::DotSegment)),
            (format!("/vod/{A}/../{A}/index.m3u8"), Err(PathError::Shape)),
            (at("%zz"), Err(PathError::Escape)),
            (at("%FF"), Err(PathError::Escape)),
            // Shapes.
            (at(""), Err(PathError::Shape)),
            (format!("/vod/{A}"), Err(PathError::Shape)),
            (format!("/vod//{A}/x"), Err(PathError::Shape)),
            (format!("/vod/{A}//x"), Err(PathError::Shape)),
            (at("720p/seg1.m4s"), Err(PathError::Shape)),
            ("/vod/".into(), Err(PathError::Shape)),
            ("/vod".into(), Err(PathError::NotVod)),
            (format!("/VOD/{A}/index.m3u8"), Err(PathError::NotVod)),
            (format!("/live/{A}/index.m3u8"), Err(PathError::NotVod)),
            // Bad ids: uppercase, short, long, not hex, escaped uppercase.
            (
                "/vod/0123456789ABCDEF0123456789abcdef/index.m3u8".into(),
                Err(PathError::BadAsset),
            ),
            (
                "/vod/0123456789abcdef0123456789abcde/index.m3u8".into(),
                Err(PathError::BadAsset),
            ),
            (
                "/vod/0123456789abcdef0123456789abcdef0/index.m3u8".into(),
                Err(PathError::BadAsset),
            ),
            (
                "/vod/0123456789abcdef0123456789abcdeg/index.m3u8".into(),
                Err(PathError::BadAsset),
            ),
            (
                "/vod/%41123456789abcdef0123456789abcdef/index.m3u8".into(),
                Err(PathError::BadAsset),
            ),
            ("/vod/cam1/index.m3u8".into(), Err(PathError::BadAsset)),
            // Bad names.
            (at(".hidden"), Err(PathError::BadName)),
            (at("a%20b.jpg"), Err(PathError::BadName)),
            (at(&"a".repeat(129)), Err(PathError::BadName)),
        ];
        for (path, want) in cases {
            assert_eq!(VodPath::parse(&path), want, "{path:?}");
        }
        assert_eq!(VodPath::parse(&at(&"a".repeat(128))), vod(&"a".repeat(128)));
    }

    #[test]
    fn vod_one_spelling() {
        let path = format!("/vod/{A}/720p-seg3.m4s");
        assert_eq!(VodPath::parse(&path).unwrap().to_string(), path);
        assert_eq!(
            VodPath::parse(&format!("/vod/{A}/%37%32%30p-seg3.m4s"))
                .unwrap()
                .to_string(),
            path
        );
        let round = vod("poster.jpg").unwrap();
        assert_eq!(VodPath::parse(&round.to_string()), Ok(round));
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
