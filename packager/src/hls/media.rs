//! The media playlist (RFC 8216bis §4.4.3-4.4.5), Low-Latency HLS included: a typed
//! model, its rendering, and a parser that keeps what it does not model.
//!
//! `text.parse::<MediaPlaylist>()` then `to_string()` is lossless for meaning:
//! every tag comes back (unknown ones verbatim, in their place relative to the
//! segments), numbers are rendered with up to five decimals.

use std::fmt::{self, Write};
use std::str::FromStr;

use super::attr::{parse_f64, AttrWriter, AttributeList};
use super::key::Key;
use super::{ParseError, UriKind};
use crate::time::UnixMillis;

/// `EXT-X-SERVER-CONTROL` (§4.4.3.8).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerControl {
    pub can_block_reload: bool,
    pub can_skip_until: Option<f64>,
    pub can_skip_dateranges: bool,
    pub hold_back: Option<f64>,
    pub part_hold_back: Option<f64>,
    pub extra: AttributeList,
}

impl ServerControl {
    fn is_empty(&self) -> bool {
        *self == ServerControl::default()
    }
}

/// `length[@offset]` of `EXT-X-BYTERANGE` and `BYTERANGE=` attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub length: u64,
    pub offset: Option<u64>,
}

impl ByteRange {
    fn parse(s: &str, line: usize) -> Result<Self, ParseError> {
        let err = || ParseError::new(line, "bad byte range");
        let (len, off) = match s.split_once('@') {
            Some((l, o)) => (l, Some(o.parse().map_err(|_| err())?)),
            None => (s, None),
        };
        Ok(ByteRange {
            length: len.parse().map_err(|_| err())?,
            offset: off,
        })
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{}@{o}", self.length),
            None => write!(f, "{}", self.length),
        }
    }
}

/// `EXT-X-MAP` (§4.4.4.5).
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub uri: String,
    pub byterange: Option<ByteRange>,
    pub extra: AttributeList,
}

impl Map {
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            byterange: None,
            extra: AttributeList::default(),
        }
    }
}

/// `EXT-X-PART` (§4.4.4.9).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
    pub byterange: Option<ByteRange>,
    pub gap: bool,
    pub extra: AttributeList,
    /// Unknown tags between the previous part and this one (e.g. a cue at part
    /// precision), verbatim without the leading `#`.
    pub before: Vec<String>,
}

impl Part {
    pub fn new(uri: impl Into<String>, duration: f64, independent: bool) -> Self {
        Self {
            uri: uri.into(),
            duration,
            independent,
            byterange: None,
            gap: false,
            extra: AttributeList::default(),
            before: Vec::new(),
        }
    }
}

/// `EXT-X-PRELOAD-HINT` (§4.4.5.3).
#[derive(Debug, Clone, PartialEq)]
pub struct PreloadHint {
    /// `PART` or `MAP`.
    pub kind: String,
    pub uri: String,
    pub byterange_start: Option<u64>,
    pub byterange_length: Option<u64>,
    pub extra: AttributeList,
}

impl PreloadHint {
    pub fn part(uri: impl Into<String>) -> Self {
        Self {
            kind: "PART".into(),
            uri: uri.into(),
            byterange_start: None,
            byterange_length: None,
            extra: AttributeList::default(),
        }
    }
}

/// `EXT-X-RENDITION-REPORT` (§4.4.5.4).
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: Option<u64>,
    pub last_part: Option<u64>,
    pub extra: AttributeList,
}

/// `EXT-X-SKIP` (§4.4.5.2): the segments a delta update leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub skipped_segments: u64,
    /// `RECENTLY-REMOVED-DATERANGES`, tab-separated IDs in the wire form.
    pub recently_removed_dateranges: Option<String>,
}

/// Tags that apply to the next segment (and its parts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentTags {
    pub discontinuity: bool,
    /// `EXT-X-KEY` tags taking effect from this segment (one per key system),
    /// replacing those before. Rendered after the other known tags; the
    /// parser keeps `EXT-X-KEY` verbatim in `other`, which renders the same.
    pub keys: Vec<Key>,
    /// A new `EXT-X-MAP` taking effect from this segment.
    pub map: Option<Map>,
    pub program_date_time: Option<UnixMillis>,
    /// `EXT-X-DATERANGE` attribute lists, as written.
    pub date_ranges: Vec<AttributeList>,
    pub bitrate: Option<u64>,
    pub gap: bool,
    /// Tags this model does not know, verbatim without the leading `#`.
    pub other: Vec<String>,
}

impl SegmentTags {
    pub fn is_empty(&self) -> bool {
        *self == SegmentTags::default()
    }
}

/// A complete media segment with the parts it was published as.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number (derived from the playlist when parsed).
    pub msn: u64,
    pub tags: SegmentTags,
    /// Parts still advertised for this segment.
    pub parts: Vec<Part>,
    /// Unknown tags after the last part, before `EXTINF`.
    pub tail: Vec<String>,
    pub duration: f64,
    pub title: String,
    pub byterange: Option<ByteRange>,
    pub uri: String,
}

impl Segment {
    pub fn new(msn: u64, uri: impl Into<String>, duration: f64) -> Self {
        Self {
            msn,
            tags: SegmentTags::default(),
            parts: Vec::new(),
            tail: Vec::new(),
            duration,
            title: String::new(),
            byterange: None,
            uri: uri.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistType {
    Event,
    Vod,
}

/// A live (or ended, or VOD) media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    pub version: Option<u8>,
    pub target_duration: u32,
    pub part_target: Option<f64>,
    pub server_control: ServerControl,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub playlist_type: Option<PlaylistType>,
    pub independent_segments: bool,
    /// `EXT-X-I-FRAMES-ONLY` (§4.4.3.6): each segment is one I-frame, its
    /// `EXTINF` the time to the next one; see [`MediaPlaylist::i_frames`].
    pub i_frames_only: bool,
    /// Header tags this model does not know (`EXT-X-START`, `EXT-X-DEFINE`, ...).
    pub header_tags: Vec<String>,
    /// The `EXT-X-KEY` tags in effect from the first segment, rendered after
    /// `header_tags` (where the parser keeps them verbatim) and before the map.
    pub keys: Vec<Key>,
    /// The `EXT-X-MAP` in effect from the first segment.
    pub map: Option<Map>,
    pub skip: Option<Skip>,
    pub segments: Vec<Segment>,
    /// Tags for the segment being produced, before its parts.
    pub trailing_tags: SegmentTags,
    /// Parts of the segment being produced (after the last complete segment).
    pub trailing_parts: Vec<Part>,
    /// Unknown tags after the trailing parts.
    pub trailing_tail: Vec<String>,
    pub preload_hints: Vec<PreloadHint>,
    pub rendition_reports: Vec<RenditionReport>,
    pub end_list: bool,
}

impl MediaPlaylist {
    /// The same segments as a finished presentation (`EXT-X-PLAYLIST-TYPE:VOD`,
    /// `EXT-X-ENDLIST`), without what only means something while live: parts,
    /// the part being made, preload hints, server control, rendition reports.
    pub fn as_vod(&self) -> MediaPlaylist {
        MediaPlaylist {
            version: self.version,
            target_duration: self.target_duration,
            media_sequence: self.media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            playlist_type: Some(PlaylistType::Vod),
            independent_segments: self.independent_segments,
            i_frames_only: self.i_frames_only,
            header_tags: self.header_tags.clone(),
            keys: self.keys.clone(),
            map: self.map.clone(),
            segments: self
                .segments
                .iter()
                .map(|s| Segment {
                    parts: Vec::new(),
                    ..s.clone()
                })
                .collect(),
            end_list: true,
            ..MediaPlaylist::default()
        }
    }

    /// The I-frame playlist (RFC 8216bis §4.4.3.6) over this playlist's
    /// complete segments: one entry for each segment whose I-frame
    /// `keyframe` locates (the byte range of its first I-frame, relative to
    /// the segment; `None` for a segment that does not start with one), with
    /// the segment's URI and, as `EXTINF`, the time to the next entry (or to
    /// the end of its timeline: an entry never spans a discontinuity).
    /// Discontinuities, maps and keys of segments without an entry carry
    /// over to the next entry. Parts, hints and reports are left out: it is
    /// made for a finished presentation.
    pub fn i_frames(&self, keyframe: impl Fn(&Segment) -> Option<ByteRange>) -> MediaPlaylist {
        let mut entries: Vec<Segment> = Vec::new();
        // Tags of segments without an entry, for the next entry.
        let mut carry = SegmentTags::default();
        let raw_key = |t: &&String| t.starts_with("EXT-X-KEY:");
        for s in &self.segments {
            carry.discontinuity |= s.tags.discontinuity;
            if let Some(m) = &s.tags.map {
                carry.map = Some(m.clone());
            }
            if !s.tags.keys.is_empty() {
                carry.keys = s.tags.keys.clone();
            }
            // Parsed playlists keep `EXT-X-KEY` verbatim.
            let raw: Vec<String> = s.tags.other.iter().filter(raw_key).cloned().collect();
            if !raw.is_empty() {
                carry.other = raw;
            }
            match keyframe(s).filter(|_| !s.tags.gap) {
                Some(range) => {
                    let mut tags = std::mem::take(&mut carry);
                    tags.program_date_time = s.tags.program_date_time;
                    entries.push(Segment {
                        tags,
                        byterange: Some(range),
                        ..Segment::new(
                            self.media_sequence.saturating_add(entries.len() as u64),
                            s.uri.clone(),
                            s.duration,
                        )
                    });
                }
                None => {
                    if let Some(last) = entries.last_mut().filter(|_| !carry.discontinuity) {
                        last.duration += s.duration;
                    }
                }
            }
        }
        // §4.4.3.1: every EXTINF, rounded, within the target duration.
        let target_duration = entries
            .iter()
            .map(|e| e.duration.round() as u32)
            .fold(self.target_duration, u32::max);
        MediaPlaylist {
            version: self.version.map(|v| v.max(4)),
            target_duration,
            media_sequence: self.media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            playlist_type: self.playlist_type,
            // Every entry is an I-frame, decodable on its own.
            independent_segments: true,
            i_frames_only: true,
            header_tags: self.header_tags.clone(),
            keys: self.keys.clone(),
            map: self.map.clone(),
            segments: entries,
            end_list: self.end_list,
            ..MediaPlaylist::default()
        }
    }

    /// Peak bit rate of the segments, bits/s: the largest of each segment's
    /// bytes (its `EXT-X-BYTERANGE` length; segments without one are not
    /// counted) over its `EXTINF`. The `BANDWIDTH` of an I-frame playlist.
    pub fn peak_byterange_bitrate(&self) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.duration > 0.0)
            .filter_map(|s| Some(s.byterange?.length as f64 * 8.0 / s.duration))
            .fold(0.0, f64::max)
            .ceil() as u64
    }

    /// MSN of the first segment listed (after any skipped ones).
    fn first_listed_msn(&self) -> u64 {
        self.media_sequence + self.skip.as_ref().map_or(0, |s| s.skipped_segments)
    }

    /// MSN of the segment the trailing parts belong to (the next complete segment).
    pub fn next_msn(&self) -> u64 {
        self.first_listed_msn() + self.segments.len() as u64
    }

    /// True once segment `msn` is complete, or (with `part`) once part `part` of
    /// segment `msn` is published: the condition a blocking reload waits for
    /// (RFC 8216bis §6.2.5.2).
    pub fn contains(&self, msn: u64, part: Option<u64>) -> bool {
        let next = self.next_msn();
        if msn < next {
            return true;
        }
        match part {
            Some(p) => msn == next && (self.trailing_parts.len() as u64) > p,
            None => false,
        }
    }

    /// The last published (msn, part index), if any part was published.
    pub fn last_part(&self) -> Option<(u64, u64)> {
        if let Some(n) = self.trailing_parts.len().checked_sub(1) {
            return Some((self.next_msn(), n as u64));
        }
        let last = self.segments.last()?;
        let n = last.parts.len().checked_sub(1)?;
        Some((last.msn, n as u64))
    }

    /// The first `EXT-X-PRELOAD-HINT:TYPE=PART`, if any.
    pub fn preload_part(&self) -> Option<&str> {
        self.preload_hints
            .iter()
            .find(|h| h.kind == "PART")
            .map(|h| h.uri.as_str())
    }

    /// Visits every URI the playlist references, e.g. to rewrite them per viewer.
    pub fn for_each_uri_mut(&mut self, mut f: impl FnMut(UriKind, &mut String)) {
        use super::{visit_daterange_uris, visit_raw_tag_uri};
        for t in &mut self.header_tags {
            visit_raw_tag_uri(t, &mut f);
        }
        for k in &mut self.keys {
            if let Some(u) = &mut k.uri {
                f(UriKind::Key, u);
            }
        }
        if let Some(m) = &mut self.map {
            f(UriKind::Map, &mut m.uri);
        }
        let visit_tags = |t: &mut SegmentTags, f: &mut dyn FnMut(UriKind, &mut String)| {
            let mut f = |k: UriKind, u: &mut String| f(k, u);
            for k in &mut t.keys {
                if let Some(u) = &mut k.uri {
                    f(UriKind::Key, u);
                }
            }
            if let Some(m) = &mut t.map {
                f(UriKind::Map, &mut m.uri);
            }
            for d in &mut t.date_ranges {
                visit_daterange_uris(d, &mut f);
            }
            for o in &mut t.other {
                visit_raw_tag_uri(o, &mut f);
            }
        };
        for s in &mut self.segments {
            visit_tags(&mut s.tags, &mut f);
            for p in &mut s.parts {
                for t in &mut p.before {
                    visit_raw_tag_uri(t, &mut f);
                }
                f(UriKind::Part, &mut p.uri);
            }
            for t in &mut s.tail {
                visit_raw_tag_uri(t, &mut f);
            }
            f(UriKind::Segment, &mut s.uri);
        }
        visit_tags(&mut self.trailing_tags, &mut f);
        for p in &mut self.trailing_parts {
            for t in &mut p.before {
                visit_raw_tag_uri(t, &mut f);
            }
            f(UriKind::Part, &mut p.uri);
        }
        for t in &mut self.trailing_tail {
            visit_raw_tag_uri(t, &mut f);
        }
        for h in &mut self.preload_hints {
            f(UriKind::PreloadHint, &mut h.uri);
        }
        for r in &mut self.rendition_reports {
            f(UriKind::RenditionReport, &mut r.uri);
        }
    }

    /// The delta update for `_HLS_skip=YES` (or `v2` with `skip_dateranges`),
    /// RFC 8216bis §6.2.5.1: segments that end at least `CAN-SKIP-UNTIL` seconds
    /// before the end of the playlist are replaced by `EXT-X-SKIP`. `None` when the
    /// playlist does not offer delta updates or nothing can be skipped.
    pub fn delta(&self, skip_dateranges: bool) -> Option<MediaPlaylist> {
        let until = self.server_control.can_skip_until?;
        if self.skip.is_some() {
            return None;
        }
        let skip_dateranges = skip_dateranges && self.server_control.can_skip_dateranges;
        // Time from each segment's end to the end of the playlist; a segment is
        // skipped only when all of it lies before the skip boundary.
        let mut after: f64 = self.trailing_parts.iter().map(|p| p.duration).sum();
        let mut skippable = 0;
        for (i, s) in self.segments.iter().enumerate().rev() {
            if after >= until {
                skippable = i + 1;
                break;
            }
            after += s.duration;
        }
        if skippable == 0 {
            return None;
        }
        let mut out = self.clone();
        let kept = out.segments.split_off(skippable);
        let skipped = std::mem::replace(&mut out.segments, kept);
        // The keys in effect after the skipped segments stay in effect: they
        // go before the skip, where the first listed segment finds them.
        // (Parsed playlists hold them verbatim among the segment's tags.)
        let raw_key = |t: &String| t.starts_with("EXT-X-KEY:");
        if let Some(s) = skipped
            .iter()
            .rev()
            .find(|s| !s.tags.keys.is_empty() || s.tags.other.iter().any(raw_key))
        {
            out.keys = s.tags.keys.clone();
            out.header_tags
                .extend(s.tags.other.iter().filter(|t| raw_key(t)).cloned());
        }
        let mut moved: Vec<AttributeList> = Vec::new();
        if !skip_dateranges {
            // With _HLS_skip=YES the date ranges of skipped segments stay in the
            // playlist: move them onto the first segment that remains.
            for s in &skipped {
                moved.extend(s.tags.date_ranges.iter().cloned());
            }
        }
        if let Some(first) = out.segments.first_mut() {
            let mut all = moved;
            all.append(&mut first.tags.date_ranges);
            first.tags.date_ranges = all;
        }
        out.skip = Some(Skip {
            skipped_segments: skipped.len() as u64,
            recently_removed_dateranges: skip_dateranges.then(String::new),
        });
        Some(out)
    }
}

/// Durations with millisecond-or-better precision and no float noise.
pub(crate) struct Secs(pub(crate) f64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fixed point in 1e-5 s, without float formatting (playlists are rendered
        // on every part, and a live playlist has hundreds of durations).
        let v = self.0;
        if !v.is_finite() || v.abs() >= 1e12 {
            let s = format!("{v:.5}");
            let s = s.trim_end_matches('0');
            return f.write_str(s.strip_suffix('.').unwrap_or(s));
        }
        let ticks = (v.abs() * 100_000.0).round() as u64;
        if v < 0.0 && ticks > 0 {
            f.write_str("-")?;
        }
        let (int, mut frac) = (ticks / 100_000, ticks % 100_000);
        if frac == 0 {
            return write!(f, "{int}");
        }
        let mut digits = 5;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{int}.{frac:0digits$}")
    }
}

fn map_attrs(m: &Map) -> String {
    let mut w = AttrWriter::default();
    w.quoted("URI", &m.uri);
    if let Some(b) = m.byterange {
        w.quoted("BYTERANGE", &b.to_string());
    }
    w.extra(&m.extra).finish()
}

fn write_tags(out: &mut String, t: &SegmentTags) {
    if t.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if let Some(m) = &t.map {
        let _ = writeln!(out, "#EXT-X-MAP:{}", map_attrs(m));
    }
    if let Some(pdt) = t.program_date_time {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{pdt}");
    }
    for d in &t.date_ranges {
        let _ = writeln!(out, "#EXT-X-DATERANGE:{d}");
    }
    if let Some(b) = t.bitrate {
        let _ = writeln!(out, "#EXT-X-BITRATE:{b}");
    }
    if t.gap {
        out.push_str("#EXT-X-GAP\n");
    }
    // Where the parser, which keeps `EXT-X-KEY` verbatim, puts them back.
    for k in &t.keys {
        let _ = writeln!(out, "#EXT-X-KEY:{}", k.attrs());
    }
    for o in &t.other {
        let _ = writeln!(out, "#{o}");
    }
}

fn write_part(out: &mut String, p: &Part) {
    for t in &p.before {
        let _ = writeln!(out, "#{t}");
    }
    let mut w = AttrWriter::default();
    w.bare("DURATION", Secs(p.duration)).quoted("URI", &p.uri);
    w.yes("INDEPENDENT", p.independent);
    if let Some(b) = p.byterange {
        w.quoted("BYTERANGE", &b.to_string());
    }
    w.yes("GAP", p.gap).extra(&p.extra);
    let _ = writeln!(out, "#EXT-X-PART:{}", w.finish());
}

impl fmt::Display for MediaPlaylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(256 + 160 * self.segments.len());
        out.push_str("#EXTM3U\n");
        if let Some(v) = self.version {
            let _ = writeln!(out, "#EXT-X-VERSION:{v}");
        }
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        match self.playlist_type {
            Some(PlaylistType::Vod) => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
            Some(PlaylistType::Event) => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            None => {}
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if self.i_frames_only {
            out.push_str("#EXT-X-I-FRAMES-ONLY\n");
        }
        let sc = &self.server_control;
        if !sc.is_empty() {
            let mut w = AttrWriter::default();
            w.yes("CAN-BLOCK-RELOAD", sc.can_block_reload);
            if let Some(v) = sc.can_skip_until {
                w.bare("CAN-SKIP-UNTIL", Secs(v));
            }
            w.yes("CAN-SKIP-DATERANGES", sc.can_skip_dateranges);
            if let Some(v) = sc.hold_back {
                w.bare("HOLD-BACK", Secs(v));
            }
            if let Some(v) = sc.part_hold_back {
                w.bare("PART-HOLD-BACK", Secs(v));
            }
            let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:{}", w.extra(&sc.extra).finish());
        }
        if let Some(pt) = self.part_target {
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", Secs(pt));
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for t in &self.header_tags {
            let _ = writeln!(out, "#{t}");
        }
        for k in &self.keys {
            let _ = writeln!(out, "#EXT-X-KEY:{}", k.attrs());
        }
        if let Some(m) = &self.map {
            let _ = writeln!(out, "#EXT-X-MAP:{}", map_attrs(m));
        }
        if let Some(skip) = &self.skip {
            let mut w = AttrWriter::default();
            w.bare("SKIPPED-SEGMENTS", skip.skipped_segments);
            if let Some(r) = &skip.recently_removed_dateranges {
                w.quoted("RECENTLY-REMOVED-DATERANGES", r);
            }
            let _ = writeln!(out, "#EXT-X-SKIP:{}", w.finish());
        }
        for s in &self.segments {
            write_tags(&mut out, &s.tags);
            for p in &s.parts {
                write_part(&mut out, p);
            }
            for t in &s.tail {
                let _ = writeln!(out, "#{t}");
            }
            let _ = writeln!(out, "#EXTINF:{},{}", Secs(s.duration), s.title);
            if let Some(b) = s.byterange {
                let _ = writeln!(out, "#EXT-X-BYTERANGE:{b}");
            }
            let _ = writeln!(out, "{}", s.uri);
        }
        write_tags(&mut out, &self.trailing_tags);
        for p in &self.trailing_parts {
            write_part(&mut out, p);
        }
        for t in &self.trailing_tail {
            let _ = writeln!(out, "#{t}");
        }
        for h in &self.preload_hints {
            let mut w = AttrWriter::default();
            w.bare("TYPE", &h.kind).quoted("URI", &h.uri);
            if let Some(v) = h.byterange_start {
                w.bare("BYTERANGE-START", v);
            }
            if let Some(v) = h.byterange_length {
                w.bare("BYTERANGE-LENGTH", v);
            }
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:{}", w.extra(&h.extra).finish());
        }
        for r in &self.rendition_reports {
            let mut w = AttrWriter::default();
            w.quoted("URI", &r.uri);
            if let Some(v) = r.last_msn {
                w.bare("LAST-MSN", v);
            }
            if let Some(v) = r.last_part {
                w.bare("LAST-PART", v);
            }
            let _ = writeln!(
                out,
                "#EXT-X-RENDITION-REPORT:{}",
                w.extra(&r.extra).finish()
            );
        }
        if self.end_list {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        f.write_str(&out)
    }
}

impl FromStr for MediaPlaylist {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let mut lines = super::lines(text)?;
        let mut pl = MediaPlaylist::default();
        let mut have_target = false;
        let mut in_body = false;
        let mut tags = SegmentTags::default();
        let mut parts: Vec<Part> = Vec::new();
        // Unknown tags seen after a part of the pending segment.
        let mut between: Vec<String> = Vec::new();
        let mut extinf: Option<(f64, String)> = None;
        let mut byterange: Option<ByteRange> = None;
        for (n, line) in lines.by_ref() {
            let Some(tag) = line.strip_prefix('#') else {
                let (duration, title) = extinf
                    .take()
                    .ok_or(ParseError::new(n, "URI without a preceding EXTINF"))?;
                pl.segments.push(Segment {
                    msn: 0,
                    tags: std::mem::take(&mut tags),
                    parts: std::mem::take(&mut parts),
                    tail: std::mem::take(&mut between),
                    duration,
                    title,
                    byterange: byterange.take(),
                    uri: line.to_string(),
                });
                continue;
            };
            if !tag.starts_with("EXT") {
                continue; // a comment
            }
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            let attrs = || AttributeList::parse(value, n);
            let num = |what| value.parse::<u64>().map_err(|_| ParseError::new(n, what));
            match name {
                "EXTM3U" => return Err(ParseError::new(n, "EXTM3U repeated")),
                "EXT-X-VERSION" => pl.version = Some(num("bad EXT-X-VERSION")? as u8),
                "EXT-X-TARGETDURATION" => {
                    pl.target_duration = num("bad EXT-X-TARGETDURATION")? as u32;
                    have_target = true;
                }
                "EXT-X-MEDIA-SEQUENCE" => pl.media_sequence = num("bad EXT-X-MEDIA-SEQUENCE")?,
                "EXT-X-DISCONTINUITY-SEQUENCE" => {
                    pl.discontinuity_sequence = num("bad EXT-X-DISCONTINUITY-SEQUENCE")?
                }
                "EXT-X-PLAYLIST-TYPE" => {
                    pl.playlist_type = Some(match value {
                        "VOD" => PlaylistType::Vod,
                        "EVENT" => PlaylistType::Event,
                        _ => return Err(ParseError::new(n, "bad EXT-X-PLAYLIST-TYPE")),
                    })
                }
                "EXT-X-INDEPENDENT-SEGMENTS" => pl.independent_segments = true,
                "EXT-X-I-FRAMES-ONLY" => pl.i_frames_only = true,
                "EXT-X-ENDLIST" => pl.end_list = true,
                // A media segment tag of image playlists (Roku / Apple "HLS
                // image" convention, `EXT-X-IMAGES-ONLY`): kept verbatim, but
                // with its segment even before the first `EXTINF`.
                "EXT-X-TILES" if parts.is_empty() => {
                    in_body = true;
                    tags.other.push(tag.to_string());
                }
                "EXT-X-PART-INF" => {
                    let mut a = attrs()?;
                    pl.part_target = Some(
                        a.take_f64("PART-TARGET", n)?
                            .ok_or(ParseError::new(n, "EXT-X-PART-INF without PART-TARGET"))?,
                    );
                }
                "EXT-X-SERVER-CONTROL" => {
                    let mut a = attrs()?;
                    pl.server_control = ServerControl {
                        can_block_reload: a.take_yes("CAN-BLOCK-RELOAD"),
                        can_skip_until: a.take_f64("CAN-SKIP-UNTIL", n)?,
                        can_skip_dateranges: a.take_yes("CAN-SKIP-DATERANGES"),
                        hold_back: a.take_f64("HOLD-BACK", n)?,
                        part_hold_back: a.take_f64("PART-HOLD-BACK", n)?,
                        extra: a,
                    };
                }
                "EXT-X-SKIP" => {
                    in_body = true;
                    let mut a = attrs()?;
                    pl.skip = Some(Skip {
                        skipped_segments: a
                            .take_u64("SKIPPED-SEGMENTS", n)?
                            .ok_or(ParseError::new(n, "EXT-X-SKIP without SKIPPED-SEGMENTS"))?,
                        recently_removed_dateranges: a.take_str("RECENTLY-REMOVED-DATERANGES"),
                    });
                }
                "EXT-X-MAP" => {
                    let mut a = attrs()?;
                    let map = Map {
                        uri: a
                            .take_str("URI")
                            .ok_or(ParseError::new(n, "EXT-X-MAP without URI"))?,
                        byterange: match a.take_str("BYTERANGE") {
                            Some(b) => Some(ByteRange::parse(&b, n)?),
                            None => None,
                        },
                        extra: a,
                    };
                    // The first map (before any complete segment) is the playlist's;
                    // later ones change it from the next segment on. Unknown tags after
                    // it belong to segments, as the renderer writes them.
                    if pl.map.is_none() && pl.segments.is_empty() {
                        pl.map = Some(map);
                    } else {
                        tags.map = Some(map);
                    }
                    in_body = true;
                }
                "EXT-X-PROGRAM-DATE-TIME" => {
                    in_body = true;
                    tags.program_date_time = Some(
                        UnixMillis::parse_iso8601(value)
                            .ok_or(ParseError::new(n, "bad EXT-X-PROGRAM-DATE-TIME"))?,
                    );
                }
                "EXT-X-DISCONTINUITY" => {
                    in_body = true;
                    tags.discontinuity = true;
                }
                "EXT-X-DATERANGE" => {
                    in_body = true;
                    tags.date_ranges.push(attrs()?);
                }
                "EXT-X-BITRATE" => {
                    in_body = true;
                    tags.bitrate = Some(num("bad EXT-X-BITRATE")?);
                }
                "EXT-X-GAP" => {
                    in_body = true;
                    tags.gap = true;
                }
                "EXT-X-BYTERANGE" => byterange = Some(ByteRange::parse(value, n)?),
                "EXTINF" => {
                    in_body = true;
                    let (d, title) = value.split_once(',').unwrap_or((value, ""));
                    let d = parse_f64(d).ok_or(ParseError::new(n, "bad EXTINF duration"))?;
                    extinf = Some((d, title.to_string()));
                }
                "EXT-X-PART" => {
                    in_body = true;
                    let mut a = attrs()?;
                    parts.push(Part {
                        duration: a
                            .take_f64("DURATION", n)?
                            .ok_or(ParseError::new(n, "EXT-X-PART without DURATION"))?,
                        uri: a
                            .take_str("URI")
                            .ok_or(ParseError::new(n, "EXT-X-PART without URI"))?,
                        independent: a.take_yes("INDEPENDENT"),
                        byterange: match a.take_str("BYTERANGE") {
                            Some(b) => Some(ByteRange::parse(&b, n)?),
                            None => None,
                        },
                        gap: a.take_yes("GAP"),
                        extra: a,
                        before: std::mem::take(&mut between),
                    });
                }
                "EXT-X-PRELOAD-HINT" => {
                    let mut a = attrs()?;
                    pl.preload_hints.push(PreloadHint {
                        kind: a
                            .take_str("TYPE")
                            .ok_or(ParseError::new(n, "EXT-X-PRELOAD-HINT without TYPE"))?,
                        uri: a
                            .take_str("URI")
                            .ok_or(ParseError::new(n, "EXT-X-PRELOAD-HINT without URI"))?,
                        byterange_start: a.take_u64("BYTERANGE-START", n)?,
                        byterange_length: a.take_u64("BYTERANGE-LENGTH", n)?,
                        extra: a,
                    });
                }
                "EXT-X-RENDITION-REPORT" => {
                    let mut a = attrs()?;
                    pl.rendition_reports.push(RenditionReport {
                        uri: a
                            .take_str("URI")
                            .ok_or(ParseError::new(n, "EXT-X-RENDITION-REPORT without URI"))?,
                        last_msn: a.take_u64("LAST-MSN", n)?,
                        last_part: a.take_u64("LAST-PART", n)?,
                        extra: a,
                    });
                }
                "EXT-X-STREAM-INF" | "EXT-X-MEDIA" | "EXT-X-I-FRAME-STREAM-INF" => {
                    return Err(ParseError::new(n, "a multivariant playlist tag"));
                }
                // After a part: keep the tag's place among the parts.
                _ if !parts.is_empty() => between.push(tag.to_string()),
                _ if in_body => tags.other.push(tag.to_string()),
                _ => pl.header_tags.push(tag.to_string()),
            }
        }
        if extinf.is_some() {
            return Err(ParseError::new(0, "EXTINF at the end without a URI"));
        }
        if !have_target {
            return Err(ParseError::new(0, "missing EXT-X-TARGETDURATION"));
        }
        pl.trailing_tags = tags;
        pl.trailing_parts = parts;
        pl.trailing_tail = between;
        let first = pl.first_listed_msn();
        for (i, s) in pl.segments.iter_mut().enumerate() {
            s.msn = first + i as u64;
        }
        Ok(pl)
    }
}

#[cfg(test)]
mod tests;
