//! HLS playlists (RFC 8216bis): typed models, rendered to text and parsed back.
//! Shared by the packager (which builds them), the origin (which serves them) and
//! the edge (which rewrites them per viewer); builds for wasm32.
//!
//! Parsing keeps what the model does not know (unknown tags, unknown attributes)
//! and renders it back, so a parse → edit URIs → render pass loses no tag.

pub mod attr;
pub mod key;
pub mod media;
pub mod multivariant;

pub use attr::{AttrValue, AttributeList};
pub use key::Key;
pub use media::{
    ByteRange, Map, MediaPlaylist, Part, PlaylistType, PreloadHint, RenditionReport, Segment,
    SegmentTags, ServerControl, Skip,
};
pub use multivariant::{ContentSteering, IFrameVariant, MultivariantPlaylist, Rendition, Variant};

/// Which kind of reference a URI is, for [`MediaPlaylist::for_each_uri_mut`] and
/// [`MultivariantPlaylist::for_each_uri_mut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriKind {
    Map,
    Segment,
    Part,
    PreloadHint,
    RenditionReport,
    /// A variant's media playlist (`EXT-X-STREAM-INF`).
    Variant,
    /// An `EXT-X-MEDIA` rendition's media playlist.
    Rendition,
    /// An `EXT-X-I-FRAME-STREAM-INF` playlist.
    IFrameVariant,
    /// An `EXT-X-IMAGE-STREAM-INF` playlist (trick-play thumbnails, kept
    /// verbatim among the other tags).
    ImageVariant,
    /// `EXT-X-CONTENT-STEERING` `SERVER-URI`.
    SteeringServer,
    /// `EXT-X-KEY` / `EXT-X-SESSION-KEY` `URI` (a key server).
    Key,
    /// `EXT-X-SESSION-DATA` `URI`.
    SessionData,
    /// An `EXT-X-DATERANGE` interstitial's `X-ASSET-URI` / `X-ASSET-LIST`.
    Asset,
}

/// Visits the `URI` of a tag kept verbatim (`EXT-X-KEY:METHOD=...,URI="..."`),
/// re-rendering the tag when it has one. Tags without URIs are left as written.
pub(crate) fn visit_raw_tag_uri(tag: &mut String, f: &mut impl FnMut(UriKind, &mut String)) {
    let Some((name, value)) = tag.split_once(':') else {
        return;
    };
    let kind = match name {
        "EXT-X-KEY" | "EXT-X-SESSION-KEY" => UriKind::Key,
        "EXT-X-SESSION-DATA" => UriKind::SessionData,
        "EXT-X-IMAGE-STREAM-INF" => UriKind::ImageVariant,
        _ => return,
    };
    let Ok(mut attrs) = AttributeList::parse(value, 0) else {
        return;
    };
    let mut changed = false;
    for (n, v) in &mut attrs.0 {
        if let ("URI", AttrValue::Quoted(uri)) = (n.as_str(), v) {
            f(kind, uri);
            changed = true;
        }
    }
    if changed {
        *tag = format!("{name}:{attrs}");
    }
}

/// Visits interstitial asset URIs of a date range.
pub(crate) fn visit_daterange_uris(
    attrs: &mut AttributeList,
    f: &mut impl FnMut(UriKind, &mut String),
) {
    for (n, v) in &mut attrs.0 {
        if let ("X-ASSET-URI" | "X-ASSET-LIST", AttrValue::Quoted(uri)) = (n.as_str(), v) {
            f(UriKind::Asset, uri);
        }
    }
}

/// A playlist that does not follow RFC 8216bis, with the (1-based) line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("playlist line {line}: {what}")]
pub struct ParseError {
    /// 1-based line number; 0 when the problem is the playlist as a whole.
    pub line: usize,
    pub what: &'static str,
}

impl ParseError {
    pub(crate) fn new(line: usize, what: &'static str) -> Self {
        Self { line, what }
    }
}

/// Non-blank lines after `#EXTM3U`, numbered from 1, with line ends trimmed.
pub(crate) fn lines(text: &str) -> Result<impl Iterator<Item = (usize, &str)>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut it = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.is_empty());
    match it.next() {
        Some((_, "#EXTM3U")) => Ok(it),
        _ => Err(ParseError::new(1, "does not start with #EXTM3U")),
    }
}
