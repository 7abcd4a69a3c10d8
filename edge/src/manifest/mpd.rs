//! DASH MPDs, personalized for one viewer: Representations above the
//! viewer's caps dropped ([`filter_representations`]), then the token and
//! steering written in ([`personalize_mpd`]). Both change only what they
//! must; every other byte is the origin's.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{Limits, Personalization};
use crate::query::{encode_component, is_relative};

/// Why an MPD could not be filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpdError {
    /// Not well-formed XML (the reason, with the byte offset).
    Unreadable(String),
    /// Video Representations exist, and none is within the caps.
    NothingEntitled,
}

impl std::fmt::Display for MpdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MpdError::Unreadable(e) => write!(f, "MPD does not parse: {e}"),
            MpdError::NothingEntitled => f.write_str("no video Representation within the caps"),
        }
    }
}

/// One `Representation` as far as caps go.
#[derive(Debug)]
struct Rep {
    /// Its bytes: `<Representation` through its end tag (or `/>`).
    range: Range<usize>,
    /// Its `AdaptationSet` (index into the sets).
    set: Option<usize>,
    height: Option<u32>,
    bandwidth: Option<u64>,
    video: bool,
}

/// One `AdaptationSet`.
#[derive(Debug, Default)]
struct Set {
    range: Range<usize>,
    video: bool,
    /// Thumbnail sheets (DASH-IF IOP 6.2.6): sized, but never video.
    image: bool,
    height: Option<u32>,
}

/// Drops the video Representations above `hard` (the token's caps), and
/// above `soft` (device hints) while one within them remains (else the
/// lightest one stays); an AdaptationSet left without Representations goes
/// too. Audio and text Representations are never dropped: they are what
/// every video plays with. A Representation's height is its own or its
/// AdaptationSet's; one without a height is dropped when a height cap
/// applies (it cannot be shown to be within it), one without a bandwidth
/// when a bandwidth cap does. Unchanged (borrowed) when nothing is dropped.
pub fn filter_representations<'a>(
    text: &'a str,
    hard: Limits,
    soft: Limits,
) -> Result<Cow<'a, str>, MpdError> {
    if hard.is_unlimited() && soft.is_unlimited() {
        return Ok(Cow::Borrowed(text));
    }
    let (reps, sets) = scan(text)?;
    let fits = |l: &Limits, r: &Rep| {
        let height_ok = match (l.max_height, r.height) {
            (Some(max), Some(h)) => h <= max,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let bandwidth_ok = match (l.max_bandwidth, r.bandwidth) {
            (Some(max), Some(b)) => b <= max,
            (Some(_), None) => false,
            (None, _) => true,
        };
        height_ok && bandwidth_ok
    };
    let video: Vec<usize> = (0..reps.len()).filter(|&i| reps[i].video).collect();
    let mut keep: Vec<usize> = video
        .iter()
        .copied()
        .filter(|&i| fits(&hard, &reps[i]))
        .collect();
    if !video.is_empty() && keep.is_empty() {
        return Err(MpdError::NothingEntitled);
    }
    if !soft.is_unlimited() {
        let within: Vec<usize> = keep
            .iter()
            .copied()
            .filter(|&i| fits(&soft, &reps[i]))
            .collect();
        keep = if within.is_empty() {
            // Hints are advice: the lightest rather than nothing.
            keep.iter()
                .copied()
                .min_by_key(|&i| reps[i].bandwidth.unwrap_or(u64::MAX))
                .into_iter()
                .collect()
        } else {
            within
        };
    }
    let dropped: Vec<usize> = video
        .iter()
        .copied()
        .filter(|i| !keep.contains(i))
        .collect();
    if dropped.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    // Whole sets whose every Representation goes; single ones otherwise.
    let mut cuts: Vec<Range<usize>> = Vec::new();
    for (si, set) in sets.iter().enumerate() {
        let mine: Vec<usize> = (0..reps.len())
            .filter(|&i| reps[i].set == Some(si))
            .collect();
        if !mine.is_empty() && mine.iter().all(|i| dropped.contains(i)) {
            cuts.push(set.range.clone());
        }
    }
    for &i in &dropped {
        let r = &reps[i].range;
        if !cuts.iter().any(|c| c.start <= r.start && r.end <= c.end) {
            cuts.push(r.clone());
        }
    }
    cuts.sort_by_key(|c| c.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for cut in cuts {
        let cut = whole_lines(text, cut);
        if cut.start < at {
            continue;
        }
        out.push_str(text.get(at..cut.start).unwrap_or(""));
        at = cut.end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    Ok(Cow::Owned(out))
}

/// `range` widened to the indentation before it and the line end after it
/// when it stands alone on its lines, so no blank line is left behind.
fn whole_lines(text: &str, range: Range<usize>) -> Range<usize> {
    let bytes = text.as_bytes();
    let mut start = range.start;
    while start > 0 && matches!(bytes.get(start - 1), Some(b' ' | b'\t')) {
        start -= 1;
    }
    let line_start = start == 0 || bytes.get(start - 1) == Some(&b'\n');
    let mut end = range.end;
    if line_start {
        if bytes.get(end) == Some(&b'\r') {
            end += 1;
        }
        if bytes.get(end) == Some(&b'\n') {
            return start..end + 1;
        }
    }
    range
}

/// Finds every AdaptationSet and Representation, with their byte ranges.
fn scan(text: &str) -> Result<(Vec<Rep>, Vec<Set>), MpdError> {
    let mut reader = Reader::from_str(text);
    let mut reps: Vec<Rep> = Vec::new();
    let mut sets: Vec<Set> = Vec::new();
    // Open AdaptationSets and Representations: (index, is_set).
    let mut open: Vec<(usize, bool)> = Vec::new();
    let offset = |p: u64| usize::try_from(p).unwrap_or(usize::MAX);
    loop {
        let start = offset(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|e| MpdError::Unreadable(format!("{e} (byte {start})")))?;
        let end = offset(reader.buffer_position());
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"AdaptationSet" => {
                let content = attr(&e, b"contentType").unwrap_or_default();
                let mime = attr(&e, b"mimeType").unwrap_or_default();
                sets.push(Set {
                    range: start..end,
                    video: content == "video" || mime.starts_with("video/"),
                    image: content == "image" || mime.starts_with("image/"),
                    height: attr(&e, b"height").and_then(|h| h.trim().parse().ok()),
                });
                if !is_empty_tag(text, end) {
                    open.push((sets.len() - 1, true));
                }
            }
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == b"Representation" => {
                let set = open
                    .iter()
                    .rev()
                    .find(|(_, is_set)| *is_set)
                    .map(|(i, _)| *i);
                let parent = set.and_then(|i| sets.get(i));
                let mime = attr(&e, b"mimeType").unwrap_or_default();
                let height = attr(&e, b"height")
                    .and_then(|h| h.trim().parse().ok())
                    .or(parent.and_then(|s| s.height));
                let audio_or_text = mime.starts_with("audio/")
                    || mime.starts_with("text/")
                    || mime.starts_with("application/")
                    || mime.starts_with("image/")
                    || parent.is_some_and(|s| s.image);
                let video = !audio_or_text
                    && (mime.starts_with("video/")
                        || parent.is_some_and(|s| s.video)
                        || height.is_some());
                reps.push(Rep {
                    range: start..end,
                    set,
                    height,
                    bandwidth: attr(&e, b"bandwidth").and_then(|b| b.trim().parse().ok()),
                    video,
                });
                if !is_empty_tag(text, end) {
                    open.push((reps.len() - 1, false));
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                let is_set = name.as_ref() == b"AdaptationSet";
                if is_set || name.as_ref() == b"Representation" {
                    if let Some((i, was_set)) = open.pop() {
                        if was_set != is_set {
                            return Err(MpdError::Unreadable(format!(
                                "unbalanced AdaptationSet/Representation (byte {start})"
                            )));
                        }
                        let range = if is_set {
                            sets.get_mut(i).map(|s| &mut s.range)
                        } else {
                            reps.get_mut(i).map(|r| &mut r.range)
                        };
                        if let Some(r) = range {
                            r.end = end;
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err(MpdError::Unreadable("an element is not closed".into()));
    }
    Ok((reps, sets))
}

/// Whether the tag ending at `end` was self-closing (`/>`).
fn is_empty_tag(text: &str, end: usize) -> bool {
    end >= 2 && text.get(end - 2..end) == Some("/>")
}

/// An attribute's value, by local name (raw: the numbers and media types
/// this module reads need no unescaping).
fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// Rewrites a DASH MPD for one viewer: the token on every `media`,
/// `initialization`, `sourceURL` and `index` attribute with a relative URL
/// (they resolve against `BaseURL`s, so the token goes on them, not on the
/// `BaseURL`), and with steering a `ContentSteering` element plus one
/// `BaseURL serviceLocation` per base pathway before the first `Period`.
/// Everything else is copied byte for byte.
pub fn personalize_mpd(
    text: &str,
    p: &Personalization<'_>,
    dash_server_uri: Option<&str>,
) -> String {
    const ATTRS: [&str; 4] = ["media", "initialization", "sourceURL", "index"];
    let mut out = String::with_capacity(text.len() + 512);
    let mut rest = text;
    let mut steering_done = false;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        // Comments, CDATA, declarations and processing instructions: verbatim.
        for (open, close) in [
            ("<!--", "-->"),
            ("<![CDATA[", "]]>"),
            ("<?", "?>"),
            ("<!", ">"),
        ] {
            if rest.starts_with(open) {
                let end = rest.find(close).map_or(rest.len(), |e| e + close.len());
                out.push_str(&rest[..end]);
                rest = &rest[end..];
                break;
            }
        }
        if !rest.starts_with('<') || rest.starts_with("<!") || rest.starts_with("<?") {
            continue;
        }
        let end = tag_end(rest);
        let tag = &rest[..end];
        if !steering_done && (tag.starts_with("<Period") || tag.starts_with("</MPD")) {
            if let (Some(plan), Some(server)) = (&p.steering, dash_server_uri) {
                let mut server_uri = server.to_string();
                p.add_token(&mut server_uri);
                out.push_str(&format!(
                    "<ContentSteering defaultServiceLocation=\"{}\" queryBeforeStart=\"false\">{}</ContentSteering>",
                    xml_escape(plan.initial),
                    xml_escape(&server_uri)
                ));
                let dir = p.path.rsplit_once('/').map_or("", |(d, _)| d);
                for pw in &plan.pathways {
                    let base = pw.base_url.unwrap_or("");
                    out.push_str(&format!(
                        "<BaseURL serviceLocation=\"{}\">{}</BaseURL>",
                        xml_escape(pw.id),
                        xml_escape(&format!("{base}{dir}/"))
                    ));
                }
            }
            steering_done = true;
        }
        out.push_str(&rewrite_attrs(tag, &ATTRS, p));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Length of the tag at the start of `s` (through its `>`), honouring quotes.
fn tag_end(s: &str) -> usize {
    let mut quote: Option<u8> = None;
    for (i, b) in s.bytes().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
    }
    s.len()
}

fn rewrite_attrs(tag: &str, names: &[&str], p: &Personalization<'_>) -> String {
    if p.token.is_none() {
        return tag.to_string();
    }
    let mut out = String::with_capacity(tag.len() + 64);
    let bytes = tag.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\'' {
            // Attribute value: find which attribute it belongs to.
            let close = tag[i + 1..]
                .find(b as char)
                .map_or(tag.len(), |e| i + 1 + e);
            let before = tag[..i].trim_end();
            let name_part = before.strip_suffix('=').map(str::trim_end);
            let name = name_part
                .and_then(|n| n.rsplit(|c: char| c.is_whitespace()).next())
                .unwrap_or("");
            if names.contains(&name) && close < tag.len() {
                let raw = &tag[i + 1..close];
                // The value is XML-escaped (`&amp;`); the suffix added needs no
                // escaping beyond its separator, so the original bytes stay.
                let decoded = raw.replace("&amp;", "&");
                if let (Some(t), true) = (p.token, is_relative(&decoded)) {
                    let (path, fragment) = raw.split_at(raw.find('#').unwrap_or(raw.len()));
                    let sep = if decoded.split('#').next().unwrap_or("").contains('?') {
                        "&amp;"
                    } else {
                        "?"
                    };
                    out.push_str(&tag[copied..=i]);
                    out.push_str(path);
                    out.push_str(sep);
                    out.push_str(p.token_name);
                    out.push('=');
                    out.push_str(&encode_component(t));
                    out.push_str(fragment);
                    copied = close;
                }
            }
            i = close + 1;
            continue;
        }
        i += 1;
    }
    out.push_str(&tag[copied..]);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
