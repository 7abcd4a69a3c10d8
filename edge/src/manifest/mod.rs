//! Per-viewer manifests: the origin's playlists (or MPDs), as cached, are
//! rewritten for one viewer just before they are sent.
//!
//! - **Token in child URIs.** Every relative URI (variants, renditions, map,
//!   segments, parts, preload hints, rendition reports, the steering server)
//!   gets `?__token__=<token>`, so the player's next request passes the
//!   check without cookies or headers. The cache key drops it again
//!   ([`crate::delivery::cache`]), so media objects stay shared by every viewer.
//!   Absolute URIs the origin wrote (another host's business) are left alone.
//! - **Rendition filtering.** Variants above the token's entitlement
//!   (`maxh`, `maxbw`) are removed (none left: the viewer is refused); device
//!   hints (`Save-Data`, mobile) remove more, but never the last one.
//! - **Content steering.** With pathways configured, each variant is
//!   repeated per base pathway (`PATHWAY-ID`, URIs on its `base_url`) and
//!   `EXT-X-CONTENT-STEERING` points at this edge's steering manifest.
//!
//! Playlists go through the packager's typed model (`brook_packager::hls`),
//! which keeps every tag it does not model verbatim. A media playlist the
//! model refuses is still personalized by [`rewrite_lines`], a line-level
//! rewriter that only ever appends to URIs (so a parser gap cannot take
//! playback down); the caller counts those fallbacks.

use std::fmt;

use brook_packager::hls::multivariant::IFrameVariant;
use brook_packager::hls::{
    AttrValue, ContentSteering, MediaPlaylist, MultivariantPlaylist, ParseError, UriKind, Variant,
};
use serde::Deserialize;

use crate::access::token::Entitlements;
use crate::query::{append_param, encode_component, is_relative};
use crate::route::Kind;
use crate::steering::BasePathway;

/// Hard and soft limits on the variants a viewer gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_height: Option<u32>,
    pub max_bandwidth: Option<u64>,
}

impl Limits {
    /// Whether a variant of this height (none: audio only) and bandwidth
    /// is within the limits.
    pub fn fits(&self, height: Option<u32>, bandwidth: u64) -> bool {
        self.max_height
            .is_none_or(|max| height.is_none_or(|h| h <= max))
            && self.max_bandwidth.is_none_or(|max| bandwidth <= max)
    }

    pub fn is_unlimited(&self) -> bool {
        self.max_height.is_none() && self.max_bandwidth.is_none()
    }
}

impl From<Entitlements> for Limits {
    fn from(e: Entitlements) -> Self {
        Self {
            max_height: e.max_height,
            max_bandwidth: e.max_bandwidth,
        }
    }
}

/// `renditions` in the edge config: caps from device hints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenditionConfig {
    /// Highest resolution height for mobile clients (`Sec-CH-UA-Mobile: ?1`,
    /// or `Mobi` in the User-Agent). Default: none.
    pub mobile_max_height: Option<u32>,
    /// Highest `BANDWIDTH` for clients sending `Save-Data: on`, bits/s.
    /// Default: none.
    pub save_data_max_bandwidth: Option<u64>,
}

/// What the client told about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceHints {
    pub mobile: bool,
    pub save_data: bool,
}

impl DeviceHints {
    /// From request headers (`header(name)` returns the value if present).
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        let mobile = match header("sec-ch-ua-mobile") {
            Some(v) => v.trim() == "?1",
            None => header("user-agent").is_some_and(|ua| ua.contains("Mobi")),
        };
        let save_data = header("save-data").is_some_and(|v| v.trim().eq_ignore_ascii_case("on"));
        Self { mobile, save_data }
    }

    /// The soft limits these hints imply under `cfg`.
    pub fn limits(&self, cfg: &RenditionConfig) -> Limits {
        Limits {
            max_height: cfg.mobile_max_height.filter(|_| self.mobile),
            max_bandwidth: cfg.save_data_max_bandwidth.filter(|_| self.save_data),
        }
    }
}

/// Content steering for one multivariant playlist.
#[derive(Debug, Clone)]
pub struct SteeringPlan<'a> {
    /// Base pathways, each getting a copy of the variants.
    pub pathways: Vec<BasePathway<'a>>,
    /// `PATHWAY-ID` of `EXT-X-CONTENT-STEERING`: the viewer's first choice.
    pub initial: &'a str,
    /// `SERVER-URI`, relative to the playlist (the token is added).
    pub server_uri: &'a str,
}

/// Everything a rewrite needs to know about the viewer.
#[derive(Debug, Clone)]
pub struct Personalization<'a> {
    /// Query parameter name for the token.
    pub token_name: &'a str,
    /// The viewer's token, carried into child URIs (`None`: nothing added).
    pub token: Option<&'a str>,
    /// Entitlement: variants above it are never offered.
    pub hard: Limits,
    /// Device hints: variants above it are dropped while one remains.
    pub soft: Limits,
    /// Multi-CDN steering, for multivariant playlists.
    pub steering: Option<SteeringPlan<'a>>,
    /// The request path of the manifest at this edge
    /// (`/live/cam1/index.m3u8`): pathway URIs on another host are this
    /// path's directory plus the variant's relative URI.
    pub path: &'a str,
    /// Live media playlists: an HLS interstitial beside every ad break
    /// (`crate::ads::interstitial`), its asset list signed with these keys.
    pub interstitials: Option<crate::ads::interstitial::AdMarks<'a>>,
}

impl Personalization<'_> {
    /// Whether a rewrite would change anything (if not, the origin's bytes
    /// are sent as they are).
    pub fn is_noop(&self) -> bool {
        self.token.is_none()
            && self.hard.is_unlimited()
            && self.soft.is_unlimited()
            && self.steering.is_none()
            && self.interstitials.is_none()
    }

    fn add_token(&self, uri: &mut String) {
        if let Some(t) = self.token {
            if is_relative(uri) {
                append_param(uri, self.token_name, &encode_component(t));
            }
        }
    }
}

/// Why a manifest could not be personalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// The origin's manifest does not parse.
    Parse(ParseError),
    /// No variant is within the viewer's entitlement.
    NothingEntitled,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Parse(e) => write!(f, "{e}"),
            ManifestError::NothingEntitled => f.write_str("no variant within the entitlement"),
        }
    }
}

/// The DASH steering manifest an MPD's `ContentSteering` names (relative to
/// the MPD; the token is added).
pub const DASH_STEERING_SERVER: &str = "steering-dash.json";

/// A manifest as one viewer gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personalized {
    pub body: String,
    /// Whether `body` differs from the origin's (then it carries this
    /// viewer's token or choices and must not be shared).
    pub rewritten: bool,
    /// The typed model (or the MPD parser) refused the manifest and the
    /// fallback did the work: why, for the log
    /// (`brook_edge_manifest_fallbacks_total`).
    pub fallback: Option<String>,
}

/// Why a viewer gets no manifest at all (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No variant (or video Representation) is within the viewer's caps.
    NothingEntitled,
    /// The viewer has caps and the manifest could not be read to apply
    /// them: refused rather than sent unfiltered.
    Unreadable(String),
}

/// Personalizes the manifest `text` of `kind` (a multivariant or media
/// playlist, or an MPD; live or VOD) for one viewer.
pub fn personalize(
    kind: Kind,
    text: &str,
    p: &Personalization<'_>,
) -> Result<Personalized, Refused> {
    if p.is_noop() {
        return Ok(Personalized {
            body: text.to_owned(),
            rewritten: false,
            fallback: None,
        });
    }
    let (body, fallback) = match kind {
        k if k.is_multivariant() => match personalize_multivariant(text, p) {
            Ok(out) => (out, None),
            Err(ManifestError::NothingEntitled) => return Err(Refused::NothingEntitled),
            Err(ManifestError::Parse(e)) => (rewrite_lines(text, p), Some(e.to_string())),
        },
        // VOD media and I-frame playlists too: the token into every URI
        // (the map, segments), byte ranges kept as written.
        k if k.is_media_playlist() => match personalize_media(text, p) {
            Ok(out) => (out, None),
            Err(e) => (rewrite_lines(text, p), Some(e.to_string())),
        },
        _ => {
            let (filtered, fallback) = match filter_representations(text, p.hard, p.soft) {
                Ok(t) => (t, None),
                Err(MpdError::NothingEntitled) => return Err(Refused::NothingEntitled),
                Err(MpdError::Unreadable(e)) if !p.hard.is_unlimited() => {
                    return Err(Refused::Unreadable(e))
                }
                // Device hints are advice: the MPD as it is.
                Err(MpdError::Unreadable(e)) => (std::borrow::Cow::Borrowed(text), Some(e)),
            };
            (
                personalize_mpd(&filtered, p, Some(DASH_STEERING_SERVER)),
                fallback,
            )
        }
    };
    Ok(Personalized {
        body,
        rewritten: true,
        fallback,
    })
}

/// Rewrites a multivariant playlist for one viewer.
pub fn personalize_multivariant(
    text: &str,
    p: &Personalization<'_>,
) -> Result<String, ManifestError> {
    let mut pl: MultivariantPlaylist = text.parse().map_err(ManifestError::Parse)?;
    filter_variants(&mut pl, p.hard, p.soft)?;
    if let Some(plan) = &p.steering {
        apply_steering(&mut pl, plan, p);
    } else {
        pl.for_each_uri_mut(|_, uri| p.add_token(uri));
    }
    Ok(pl.to_string())
}

/// Rewrites a media playlist for one viewer: the token into every relative
/// URI, nothing else. Errors only when the model refuses the playlist; see
/// [`rewrite_lines`] for the fallback.
pub fn personalize_media(text: &str, p: &Personalization<'_>) -> Result<String, ParseError> {
    let mut pl: MediaPlaylist = text.parse()?;
    if let Some(marks) = &p.interstitials {
        crate::ads::interstitial::add(&mut pl, marks);
    }
    pl.for_each_uri_mut(|_, uri| p.add_token(uri));
    Ok(pl.to_string())
}

/// The fallback media playlist rewriter: appends the token to URI lines and
/// to `URI="..."` attributes, byte for byte otherwise.
pub fn rewrite_lines(text: &str, p: &Personalization<'_>) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            },
        };
        if body.trim().is_empty() {
            out.push_str(line);
        } else if !body.starts_with('#') {
            let mut uri = body.to_string();
            p.add_token(&mut uri);
            out.push_str(&uri);
            out.push_str(end);
        } else {
            let mut rest = body;
            while let Some(at) = rest.find("URI=\"") {
                let start = at + "URI=\"".len();
                let Some(len) = rest[start..].find('"') else {
                    break;
                };
                let mut uri = rest[start..start + len].to_string();
                p.add_token(&mut uri);
                out.push_str(&rest[..start]);
                out.push_str(&uri);
                rest = &rest[start + len..];
            }
            out.push_str(rest);
            out.push_str(end);
        }
    }
    out
}

fn filter_variants(
    pl: &mut MultivariantPlaylist,
    hard: Limits,
    soft: Limits,
) -> Result<(), ManifestError> {
    let height = |v: &Variant| v.resolution.map(|(_, h)| h);
    let listed_before: Vec<String> = pl
        .variants
        .iter()
        .map(|v| uri_path(&v.uri).to_owned())
        .collect();
    // A stream with video needs a video variant left: its audio-only variant
    // (background listening) is not what a capped viewer was entitled to.
    let had_video = pl.variants.iter().any(is_video);
    if !hard.is_unlimited() {
        let used_before = groups_used(&pl.variants);
        pl.variants.retain(|v| hard.fits(height(v), v.bandwidth));
        if pl.variants.is_empty() || (had_video && !pl.variants.iter().any(is_video)) {
            return Err(ManifestError::NothingEntitled);
        }
        // Renditions only removed variants played with go too: the viewer
        // may not fetch them (`access::caps`).
        let used_after = groups_used(&pl.variants);
        pl.renditions
            .retain(|r| !used_before.contains(&r.group_id) || used_after.contains(&r.group_id));
    }
    if !soft.is_unlimited() {
        let fits = |v: &Variant| soft.fits(height(v), v.bandwidth);
        if pl
            .variants
            .iter()
            .any(|v| fits(v) && (is_video(v) || !had_video))
        {
            pl.variants.retain(fits);
        } else if let Some(lightest) = pl
            .variants
            .iter()
            .filter(|v| is_video(v) || !had_video)
            .min_by_key(|v| v.bandwidth)
            .cloned()
        {
            // Hints are advice: the lightest video variant rather than
            // nothing (and the audio-only one if it fits).
            pl.variants
                .retain(|v| (!is_video(v) && fits(v)) || *v == lightest);
        }
    }
    let limits = [hard, soft];
    let kept: Vec<String> = pl
        .variants
        .iter()
        .map(|v| uri_path(&v.uri).to_owned())
        .collect();
    pl.i_frame_variants.retain(|v| {
        let (h, bw) = iframe_size(v);
        // `<r>-iframes.m3u8` is byte ranges into `<r>`'s segments: it goes
        // with `<r>.m3u8`'s variant, whose caps its segments are checked by
        // (`access::caps`), whatever its own BANDWIDTH says.
        let follows = iframe_rendition_uri(&v.uri)
            .filter(|r| listed_before.contains(r))
            .is_none_or(|r| kept.contains(&r));
        follows && limits.iter().all(|l| l.fits(h, bw.unwrap_or(0)))
    });
    Ok(())
}

/// A URI without its query and fragment.
fn uri_path(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or("")
}

/// The media playlist an I-frame playlist `<dir>/<r>-iframes.m3u8` belongs
/// to: `<dir>/<r>.m3u8`.
fn iframe_rendition_uri(uri: &str) -> Option<String> {
    uri_path(uri)
        .strip_suffix("-iframes.m3u8")
        .map(|stem| format!("{stem}.m3u8"))
}

/// Anything but an audio-only variant (one that names only audio codecs and
/// no picture size); a variant that says neither counts as video.
fn is_video(v: &Variant) -> bool {
    let video_codec = |c: &String| {
        [
            "avc1", "avc3", "hvc1", "hev1", "av01", "vp09", "dvh1", "dvhe",
        ]
        .iter()
        .any(|p| c.starts_with(p))
    };
    v.resolution.is_some() || v.codecs.is_empty() || v.codecs.iter().any(video_codec)
}

/// An I-frame variant's `RESOLUTION` height and `BANDWIDTH` (its model
/// keeps attributes as written).
pub fn iframe_size(v: &IFrameVariant) -> (Option<u32>, Option<u64>) {
    let height = v
        .attrs
        .get("RESOLUTION")
        .and_then(|r| r.split_once('x'))
        .and_then(|(_, h)| h.parse().ok());
    let bandwidth = v.attrs.get("BANDWIDTH").and_then(|b| b.parse().ok());
    (height, bandwidth)
}

/// The `AUDIO`/`VIDEO`/`SUBTITLES` groups `variants` use.
fn groups_used(variants: &[Variant]) -> Vec<String> {
    variants
        .iter()
        .flat_map(|v| [&v.audio, &v.video, &v.subtitles])
        .flatten()
        .cloned()
        .collect()
}

fn apply_steering(pl: &mut MultivariantPlaylist, plan: &SteeringPlan<'_>, p: &Personalization<'_>) {
    let dir = p.path.rsplit_once('/').map_or("/", |(d, _)| d);
    let on_pathway = |uri: &str, pathway: &BasePathway<'_>| -> String {
        let mut out = uri.to_string();
        p.add_token(&mut out);
        match pathway.base_url {
            Some(base) if is_relative(uri) => {
                format!("{}{}", base.trim_end_matches('/'), resolve(dir, &out))
            }
            _ => out,
        }
    };

    // Renditions with their own playlists get one group per pathway, so a
    // variant on pathway X only ever points at media on pathway X.
    let groups_with_uris: Vec<String> = pl
        .renditions
        .iter()
        .filter(|r| r.uri.is_some())
        .map(|r| r.group_id.clone())
        .collect();
    let group_for = |group: &Option<String>, pathway: &str| -> Option<String> {
        group.as_ref().map(|g| {
            if groups_with_uris.contains(g) {
                format!("{g}-{pathway}")
            } else {
                g.clone()
            }
        })
    };

    let mut renditions = Vec::with_capacity(pl.renditions.len() * plan.pathways.len());
    for r in &pl.renditions {
        if r.uri.is_none() {
            renditions.push(r.clone());
            continue;
        }
        for pw in &plan.pathways {
            let mut copy = r.clone();
            copy.group_id = format!("{}-{}", r.group_id, pw.id);
            copy.uri = r.uri.as_deref().map(|u| on_pathway(u, pw));
            renditions.push(copy);
        }
    }
    let mut variants = Vec::with_capacity(pl.variants.len() * plan.pathways.len());
    let mut i_frames = Vec::with_capacity(pl.i_frame_variants.len() * plan.pathways.len());
    for pw in &plan.pathways {
        for v in &pl.variants {
            let mut copy = v.clone();
            copy.pathway_id = Some(pw.id.to_string());
            copy.uri = on_pathway(&v.uri, pw);
            copy.audio = group_for(&v.audio, pw.id);
            copy.video = group_for(&v.video, pw.id);
            copy.subtitles = group_for(&v.subtitles, pw.id);
            variants.push(copy);
        }
        for v in &pl.i_frame_variants {
            let mut copy = v.clone();
            copy.uri = on_pathway(&v.uri, pw);
            copy.attrs.0.retain(|(name, _)| name != "PATHWAY-ID");
            copy.attrs
                .0
                .push(("PATHWAY-ID".into(), AttrValue::Quoted(pw.id.to_string())));
            i_frames.push(copy);
        }
    }
    pl.renditions = renditions;
    pl.variants = variants;
    pl.i_frame_variants = i_frames;
    // The thumbnails' image playlist (kept verbatim among the other tags)
    // stays on the origin's pathway, with the token.
    pl.for_each_uri_mut(|kind, uri| {
        if kind == UriKind::ImageVariant {
            p.add_token(uri);
        }
    });
    let mut server_uri = plan.server_uri.to_string();
    p.add_token(&mut server_uri);
    pl.content_steering = Some(ContentSteering {
        server_uri,
        pathway_id: Some(plan.initial.to_string()),
        extra: Default::default(),
    });
}

/// Resolves relative reference `rel` against directory `dir` (a path without
/// a trailing `/`), RFC 3986 5.2 for the path-only case.
fn resolve(dir: &str, rel: &str) -> String {
    let (rel_path, rest) = match rel.find(['?', '#']) {
        Some(at) => rel.split_at(at),
        None => (rel, ""),
    };
    let joined = if rel_path.starts_with('/') {
        rel_path.to_string()
    } else {
        format!("{dir}/{rel_path}")
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = joined.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut path = out.join("/");
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    path + rest
}

/// `UriKind`s the rewriter touches, for documentation and tests.
pub const PERSONALIZED_URIS: [UriKind; 10] = [
    UriKind::Map,
    UriKind::Segment,
    UriKind::Part,
    UriKind::PreloadHint,
    UriKind::RenditionReport,
    UriKind::Variant,
    UriKind::Rendition,
    UriKind::IFrameVariant,
    UriKind::ImageVariant,
    UriKind::SteeringServer,
];

/// A 7-segment LL-HLS media playlist with parts (5 per segment), a preload
/// hint and a rendition report: the benchmark's input (native and workerd).
pub fn bench_playlist() -> String {
    use brook_packager::hls::{Map, Part, PreloadHint, RenditionReport, Segment, ServerControl};
    let first = 1000;
    let parts = |msn: u64, n: usize| -> Vec<Part> {
        (0..n)
            .map(|i| Part::new(format!("part{msn}.{i}.m4s"), 0.2, i == 0))
            .collect()
    };
    let segments = (0..7)
        .map(|i| {
            let msn = first + i;
            let mut s = Segment::new(msn, format!("seg{msn}.m4s"), 1.0);
            s.parts = parts(msn, 5);
            s.tags.program_date_time =
                Some(brook_packager::UnixMillis(1_795_445_850_000 + i * 1000));
            s
        })
        .collect();
    let pl = MediaPlaylist {
        version: Some(9),
        target_duration: 1,
        part_target: Some(0.2),
        server_control: ServerControl {
            can_block_reload: true,
            can_skip_until: Some(6.0),
            part_hold_back: Some(0.6),
            ..Default::default()
        },
        media_sequence: first,
        map: Some(Map::new("init.mp4")),
        segments,
        trailing_parts: parts(first + 7, 2),
        preload_hints: vec![PreloadHint::part(format!("part{}.2.m4s", first + 7))],
        rendition_reports: vec![RenditionReport {
            uri: "../audio/media.m3u8".into(),
            last_msn: Some(first + 7),
            last_part: Some(1),
            extra: Default::default(),
        }],
        ..Default::default()
    };
    pl.to_string()
}

/// [`bench_playlist`] with an ad break in its window (the origin's
/// `SCTE35-OUT` date range on its third segment, `SCTE35-IN` on its sixth),
/// for the interstitial rewrite's cost.
pub fn bench_playlist_with_break() -> String {
    let mut pl: MediaPlaylist = bench_playlist().parse().expect("the bench playlist parses");
    let section = "0xFC302F000000000000FFFFF014054800008F7FEFFE7369C02EFE0052CCF500000000000A0008435545490000013562DBA30A";
    let id = "splice-4242";
    let start = "2026-11-24T06:04:12.000Z";
    let out = format!("ID=\"{id}\",START-DATE=\"{start}\",PLANNED-DURATION=3,SCTE35-OUT={section}");
    let end = format!("ID=\"{id}\",START-DATE=\"{start}\",DURATION=3,SCTE35-IN={section}");
    let attrs = |t: &str| brook_packager::hls::AttributeList::parse(t, 0).expect("a date range");
    pl.segments[2].tags.date_ranges.push(attrs(&out));
    pl.segments[5].tags.date_ranges.push(attrs(&end));
    pl.to_string()
}

mod mpd;
pub use mpd::{filter_representations, personalize_mpd, MpdError};

#[cfg(test)]
mod tests;
