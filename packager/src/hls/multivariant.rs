//! The multivariant playlist (RFC 8216bis §4.4.6): variants, renditions, content
//! steering; a typed model for what Brook reads or writes, verbatim attributes
//! for the rest.

use std::fmt::{self, Write};
use std::str::FromStr;

use super::attr::{parse_f64, AttrValue, AttrWriter, AttributeList};
use super::{ParseError, UriKind};

/// `EXT-X-STREAM-INF` and the URI that follows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variant {
    pub uri: String,
    /// Peak segment bit rate, bits/s.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub codecs: Vec<String>,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    pub audio: Option<String>,
    pub video: Option<String>,
    pub subtitles: Option<String>,
    /// Content steering pathway (`PATHWAY-ID`).
    pub pathway_id: Option<String>,
    /// Other attributes (CLOSED-CAPTIONS, HDCP-LEVEL, SCORE, VIDEO-RANGE, ...).
    pub extra: AttributeList,
}

/// `EXT-X-MEDIA` (§4.4.6.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendition {
    /// `AUDIO`, `VIDEO`, `SUBTITLES` or `CLOSED-CAPTIONS`.
    pub kind: String,
    pub group_id: String,
    pub name: String,
    pub uri: Option<String>,
    pub language: Option<String>,
    pub default: bool,
    pub autoselect: bool,
    pub channels: Option<String>,
    pub extra: AttributeList,
}

/// `EXT-X-CONTENT-STEERING` (§4.4.6.6).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContentSteering {
    pub server_uri: String,
    pub pathway_id: Option<String>,
    pub extra: AttributeList,
}

/// `EXT-X-I-FRAME-STREAM-INF`, kept as written apart from its URI.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IFrameVariant {
    pub uri: String,
    pub attrs: AttributeList,
}

impl IFrameVariant {
    /// The I-frame playlist `uri` with the attributes Brook writes:
    /// `BANDWIDTH` (the peak bit rate of its entries), `CODECS` and
    /// `RESOLUTION` (those of the video rendition it is made of).
    pub fn new(
        uri: impl Into<String>,
        bandwidth: u64,
        codecs: &[String],
        resolution: Option<(u32, u32)>,
    ) -> Self {
        let mut attrs = vec![(
            "BANDWIDTH".to_string(),
            AttrValue::Bare(bandwidth.to_string()),
        )];
        if !codecs.is_empty() {
            attrs.push(("CODECS".into(), AttrValue::Quoted(codecs.join(","))));
        }
        if let Some((w, h)) = resolution {
            attrs.push(("RESOLUTION".into(), AttrValue::Bare(format!("{w}x{h}"))));
        }
        Self {
            uri: uri.into(),
            attrs: AttributeList(attrs),
        }
    }

    /// `BANDWIDTH`, if present and a number.
    pub fn bandwidth(&self) -> Option<u64> {
        self.attrs.get("BANDWIDTH")?.parse().ok()
    }

    /// `RESOLUTION`, if present and well formed.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        parse_resolution(self.attrs.get("RESOLUTION")?)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MultivariantPlaylist {
    pub version: Option<u8>,
    pub independent_segments: bool,
    pub content_steering: Option<ContentSteering>,
    pub renditions: Vec<Rendition>,
    pub variants: Vec<Variant>,
    pub i_frame_variants: Vec<IFrameVariant>,
    /// Tags this model does not know (`EXT-X-SESSION-DATA`, `EXT-X-START`, ...).
    pub other_tags: Vec<String>,
}

impl MultivariantPlaylist {
    /// Visits every URI the playlist references.
    pub fn for_each_uri_mut(&mut self, mut f: impl FnMut(UriKind, &mut String)) {
        for t in &mut self.other_tags {
            super::visit_raw_tag_uri(t, &mut f);
        }
        if let Some(cs) = &mut self.content_steering {
            f(UriKind::SteeringServer, &mut cs.server_uri);
        }
        for r in &mut self.renditions {
            if let Some(uri) = &mut r.uri {
                f(UriKind::Rendition, uri);
            }
        }
        for v in &mut self.variants {
            f(UriKind::Variant, &mut v.uri);
        }
        for v in &mut self.i_frame_variants {
            f(UriKind::IFrameVariant, &mut v.uri);
        }
    }
}

impl fmt::Display for MultivariantPlaylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("#EXTM3U\n");
        if let Some(v) = self.version {
            let _ = writeln!(out, "#EXT-X-VERSION:{v}");
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(cs) = &self.content_steering {
            let mut w = AttrWriter::default();
            w.quoted("SERVER-URI", &cs.server_uri);
            if let Some(p) = &cs.pathway_id {
                w.quoted("PATHWAY-ID", p);
            }
            let _ = writeln!(
                out,
                "#EXT-X-CONTENT-STEERING:{}",
                w.extra(&cs.extra).finish()
            );
        }
        for t in &self.other_tags {
            let _ = writeln!(out, "#{t}");
        }
        for r in &self.renditions {
            let mut w = AttrWriter::default();
            w.bare("TYPE", &r.kind)
                .quoted("GROUP-ID", &r.group_id)
                .quoted("NAME", &r.name);
            if let Some(l) = &r.language {
                w.quoted("LANGUAGE", l);
            }
            w.yes("DEFAULT", r.default).yes("AUTOSELECT", r.autoselect);
            if let Some(c) = &r.channels {
                w.quoted("CHANNELS", c);
            }
            if let Some(u) = &r.uri {
                w.quoted("URI", u);
            }
            let _ = writeln!(out, "#EXT-X-MEDIA:{}", w.extra(&r.extra).finish());
        }
        for v in &self.variants {
            let mut w = AttrWriter::default();
            w.bare("BANDWIDTH", v.bandwidth);
            if let Some(avg) = v.average_bandwidth {
                w.bare("AVERAGE-BANDWIDTH", avg);
            }
            if !v.codecs.is_empty() {
                w.quoted("CODECS", &v.codecs.join(","));
            }
            if let Some((width, height)) = v.resolution {
                w.bare("RESOLUTION", format_args!("{width}x{height}"));
            }
            if let Some(fr) = v.frame_rate {
                w.bare("FRAME-RATE", format_args!("{fr:.3}"));
            }
            for (name, val) in [
                ("AUDIO", &v.audio),
                ("VIDEO", &v.video),
                ("SUBTITLES", &v.subtitles),
                ("PATHWAY-ID", &v.pathway_id),
            ] {
                if let Some(val) = val {
                    w.quoted(name, val);
                }
            }
            let _ = writeln!(
                out,
                "#EXT-X-STREAM-INF:{}\n{}",
                w.extra(&v.extra).finish(),
                v.uri
            );
        }
        for v in &self.i_frame_variants {
            let mut w = AttrWriter::default();
            w.extra(&v.attrs).quoted("URI", &v.uri);
            let _ = writeln!(out, "#EXT-X-I-FRAME-STREAM-INF:{}", w.finish());
        }
        f.write_str(&out)
    }
}

fn parse_resolution(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

impl FromStr for MultivariantPlaylist {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let mut pl = MultivariantPlaylist::default();
        let mut pending: Option<Variant> = None;
        for (n, line) in super::lines(text)? {
            let Some(tag) = line.strip_prefix('#') else {
                let mut v = pending.take().ok_or(ParseError::new(
                    n,
                    "URI without a preceding EXT-X-STREAM-INF",
                ))?;
                v.uri = line.to_string();
                pl.variants.push(v);
                continue;
            };
            if !tag.starts_with("EXT") {
                continue;
            }
            if pending.is_some() {
                return Err(ParseError::new(
                    n,
                    "EXT-X-STREAM-INF not followed by its URI",
                ));
            }
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXTM3U" => return Err(ParseError::new(n, "EXTM3U repeated")),
                "EXT-X-VERSION" => {
                    pl.version = Some(
                        value
                            .parse()
                            .map_err(|_| ParseError::new(n, "bad EXT-X-VERSION"))?,
                    )
                }
                "EXT-X-INDEPENDENT-SEGMENTS" => pl.independent_segments = true,
                "EXT-X-CONTENT-STEERING" => {
                    let mut a = AttributeList::parse(value, n)?;
                    pl.content_steering = Some(ContentSteering {
                        server_uri: a.take_str("SERVER-URI").ok_or(ParseError::new(
                            n,
                            "EXT-X-CONTENT-STEERING without SERVER-URI",
                        ))?,
                        pathway_id: a.take_str("PATHWAY-ID"),
                        extra: a,
                    });
                }
                "EXT-X-MEDIA" => {
                    let mut a = AttributeList::parse(value, n)?;
                    let missing = |what| ParseError::new(n, what);
                    pl.renditions.push(Rendition {
                        kind: a
                            .take_str("TYPE")
                            .ok_or(missing("EXT-X-MEDIA without TYPE"))?,
                        group_id: a
                            .take_str("GROUP-ID")
                            .ok_or(missing("EXT-X-MEDIA without GROUP-ID"))?,
                        name: a
                            .take_str("NAME")
                            .ok_or(missing("EXT-X-MEDIA without NAME"))?,
                        language: a.take_str("LANGUAGE"),
                        default: a.take_yes("DEFAULT"),
                        autoselect: a.take_yes("AUTOSELECT"),
                        channels: a.take_str("CHANNELS"),
                        uri: a.take_str("URI"),
                        extra: a,
                    });
                }
                "EXT-X-STREAM-INF" => {
                    let mut a = AttributeList::parse(value, n)?;
                    let bad = |what| ParseError::new(n, what);
                    pending = Some(Variant {
                        uri: String::new(),
                        bandwidth: a
                            .take_u64("BANDWIDTH", n)?
                            .ok_or(bad("EXT-X-STREAM-INF without BANDWIDTH"))?,
                        average_bandwidth: a.take_u64("AVERAGE-BANDWIDTH", n)?,
                        codecs: a
                            .take_str("CODECS")
                            .map(|c| c.split(',').map(|s| s.trim().to_string()).collect())
                            .unwrap_or_default(),
                        resolution: match a.take_str("RESOLUTION") {
                            Some(r) => Some(parse_resolution(&r).ok_or(bad("bad RESOLUTION"))?),
                            None => None,
                        },
                        frame_rate: match a.take_str("FRAME-RATE") {
                            Some(r) => Some(parse_f64(&r).ok_or(bad("bad FRAME-RATE"))?),
                            None => None,
                        },
                        audio: a.take_str("AUDIO"),
                        video: a.take_str("VIDEO"),
                        subtitles: a.take_str("SUBTITLES"),
                        pathway_id: a.take_str("PATHWAY-ID"),
                        extra: a,
                    });
                }
                "EXT-X-I-FRAME-STREAM-INF" => {
                    let mut attrs = AttributeList::parse(value, n)?;
                    let uri = match attrs.take("URI") {
                        Some(AttrValue::Quoted(u)) | Some(AttrValue::Bare(u)) => u,
                        None => {
                            return Err(ParseError::new(n, "EXT-X-I-FRAME-STREAM-INF without URI"))
                        }
                    };
                    pl.i_frame_variants.push(IFrameVariant { uri, attrs });
                }
                "EXTINF" | "EXT-X-TARGETDURATION" | "EXT-X-PART" | "EXT-X-MEDIA-SEQUENCE" => {
                    return Err(ParseError::new(n, "a media playlist tag"));
                }
                _ => pl.other_tags.push(tag.to_string()),
            }
        }
        if pending.is_some() {
            return Err(ParseError::new(
                0,
                "EXT-X-STREAM-INF at the end without a URI",
            ));
        }
        Ok(pl)
    }
}
