//! VAST (IAB Video Ad Serving Template, 2.0 to 4.3): what server-side ad
//! insertion needs from an ad decision server's answer: the ads of a pod in
//! order, each with its linear creative's duration and media files, and the
//! impression, error and tracking URLs to fire; wrappers, whose tracking is
//! added to the ad they lead to.
//!
//! Sans-IO: [`parse`] reads one document; [`Resolver`] follows wrappers
//! (bounded depth and count): it says which URL to fetch next, the caller
//! fetches it (with its own time budget) and hands the answer back.
//!
//! Why not `vast4-rs`: it models VAST 4.2 to the letter (required
//! `AdServingId`, `Category`, ...) and refuses the VAST 2/3/4.0 documents ad
//! servers still send; this reader is lenient about what it does not use and
//! strict about what it does (URLs are absolute http(s), durations parse,
//! sizes are bounded). quick-xml, already the edge's XML reader, does the
//! lexing; DTDs and entities other than the five predefined ones are refused.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Largest VAST document read.
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// Most ads, media files and tracking URLs kept per document or ad.
const MAX_ADS: usize = 32;
const MAX_MEDIA_FILES: usize = 64;
const MAX_URLS: usize = 256;
/// Longest URL kept.
const MAX_URL_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VastError {
    #[error("VAST document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("not XML: {0}")]
    Xml(String),
    #[error("not a VAST document (root <{0}>)")]
    NotVast(String),
    #[error("DTDs and custom entities are not accepted")]
    Dtd,
}

/// One `<Ad>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ad {
    pub id: String,
    /// Position in the pod (`sequence`); `None`: a stand-alone ad.
    pub sequence: Option<u32>,
    pub impressions: Vec<String>,
    pub errors: Vec<String>,
    /// Tracking events of its linear creative: `start`, `firstQuartile`,
    /// `midpoint`, `thirdQuartile`, `complete`, ... (names as VAST spells
    /// them), each with its URLs.
    pub tracking: BTreeMap<String, Vec<String>>,
    pub kind: AdKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdKind {
    /// A wrapper: where the real ad is.
    Wrapper { ad_tag_uri: String },
    /// An inline ad with a linear creative.
    InLine {
        /// The linear creative's `<Duration>`, ms.
        duration_ms: u64,
        media_files: Vec<MediaFile>,
        /// The creative's `id` / `adId`, or its `UniversalAdId`.
        creative_id: String,
    },
    /// An ad with nothing SSAI can play (no linear creative, no duration).
    #[default]
    Unplayable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    pub url: String,
    pub mime: String,
    pub delivery: String,
    pub width: u32,
    pub height: u32,
    pub bitrate_kbps: u32,
}

/// A parsed document: its ads in document order, and the root `<Error>`
/// URLs (a no-ad answer's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vast {
    pub version: String,
    pub ads: Vec<Ad>,
    pub errors: Vec<String>,
}

/// Absolute http(s) URLs only; whitespace around them (CDATA) trimmed.
fn url(text: &str) -> Option<String> {
    let t = text.trim();
    let lower = t.get(..8).unwrap_or(t).to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && t.len() <= MAX_URL_BYTES
        && !t.chars().any(|c| c.is_control() || c == ' ');
    ok.then(|| t.to_string())
}

/// `HH:MM:SS` or `HH:MM:SS.mmm`, ms.
pub fn parse_duration(text: &str) -> Option<u64> {
    let t = text.trim();
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut it = hms.split(':');
    let (h, m, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let num = |x: &str, max: u64| {
        (!x.is_empty() && x.len() <= 2 && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse::<u64>().ok())
            .flatten()
            .filter(|v| *v <= max)
    };
    let (h, m, s) = (num(h, 99)?, num(m, 59)?, num(s, 59)?);
    let ms = if frac.is_empty() {
        0
    } else {
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        frac.parse::<u64>().ok()? * 10u64.pow(3 - frac.len() as u32)
    };
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

fn push_bounded(v: &mut Vec<String>, s: Option<String>) {
    if let Some(s) = s {
        if v.len() < MAX_URLS {
            v.push(s);
        }
    }
}

/// The reader's state within one document.
#[derive(Default)]
struct State {
    vast: Vast,
    /// Element names from the root down.
    path: Vec<String>,
    text: String,
    root_seen: bool,
    ad: Option<Ad>,
    // Within the current ad: its (first) linear creative's pieces.
    linear_seen: bool,
    duration_ms: Option<u64>,
    media_files: Vec<MediaFile>,
    creative_id: String,
    ad_tag_uri: Option<String>,
    pending_media: Option<MediaFile>,
    pending_event: Option<String>,
}

impl State {
    fn start(&mut self, e: &BytesStart<'_>) -> Result<(), VastError> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        if !self.root_seen {
            self.root_seen = true;
            if name != "VAST" {
                return Err(VastError::NotVast(name.chars().take(64).collect()));
            }
            self.vast.version = attr(e, b"version").unwrap_or_default();
        }
        self.text.clear();
        match name.as_str() {
            "Ad" if self.path.len() == 1 && self.vast.ads.len() < MAX_ADS => {
                self.ad = Some(Ad {
                    id: attr(e, b"id").unwrap_or_default(),
                    sequence: attr(e, b"sequence").and_then(|s| s.trim().parse().ok()),
                    ..Ad::default()
                });
                self.linear_seen = false;
                self.duration_ms = None;
                self.media_files.clear();
                self.creative_id.clear();
                self.ad_tag_uri = None;
            }
            "Creative" if self.ad.is_some() && !self.linear_seen => {
                self.creative_id = attr(e, b"adId")
                    .or_else(|| attr(e, b"id"))
                    .unwrap_or_default();
            }
            "Linear" if self.ad.is_some() => self.linear_seen = true,
            "MediaFile" if self.ad.is_some() => {
                let num = |n: &[u8]| attr(e, n).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                self.pending_media = Some(MediaFile {
                    url: String::new(),
                    mime: attr(e, b"type").unwrap_or_default(),
                    delivery: attr(e, b"delivery").unwrap_or_default(),
                    width: num(b"width"),
                    height: num(b"height"),
                    bitrate_kbps: num(b"bitrate"),
                });
            }
            "Tracking" if self.ad.is_some() => self.pending_event = attr(e, b"event"),
            _ => {}
        }
        self.path.push(name);
        Ok(())
    }

    fn end(&mut self) {
        let Some(name) = self.path.pop() else {
            return;
        };
        let parent = self.path.last().cloned();
        let body = std::mem::take(&mut self.text);
        let Some(a) = self.ad.as_mut() else {
            if name == "Error" && self.path.len() == 1 {
                push_bounded(&mut self.vast.errors, url(&body));
            }
            return;
        };
        match name.as_str() {
            "Impression" => push_bounded(&mut a.impressions, url(&body)),
            "Error" => push_bounded(&mut a.errors, url(&body)),
            "VASTAdTagURI" => self.ad_tag_uri = url(&body),
            "Duration" if parent.as_deref() == Some("Linear") && self.duration_ms.is_none() => {
                self.duration_ms = parse_duration(&body)
            }
            "UniversalAdId" if self.creative_id.is_empty() => {
                self.creative_id = body.trim().chars().take(256).collect()
            }
            "MediaFile" => {
                if let (Some(mut m), Some(u)) = (self.pending_media.take(), url(&body)) {
                    m.url = u;
                    if self.media_files.len() < MAX_MEDIA_FILES {
                        self.media_files.push(m);
                    }
                }
            }
            "Tracking" => {
                if let (Some(ev), Some(u)) = (self.pending_event.take(), url(&body)) {
                    let v = a.tracking.entry(ev).or_default();
                    if v.len() < MAX_URLS {
                        v.push(u);
                    }
                }
            }
            "Ad" => {
                let mut done = self.ad.take().unwrap_or_default();
                done.kind = match (self.ad_tag_uri.take(), self.duration_ms) {
                    (Some(uri), _) => AdKind::Wrapper { ad_tag_uri: uri },
                    (None, Some(d)) if self.linear_seen && d > 0 => AdKind::InLine {
                        duration_ms: d,
                        media_files: std::mem::take(&mut self.media_files),
                        creative_id: std::mem::take(&mut self.creative_id),
                    },
                    _ => AdKind::Unplayable,
                };
                self.vast.ads.push(done);
            }
            _ => {}
        }
    }

    fn push_text(&mut self, s: &str) {
        if self.text.len() + s.len() <= MAX_URL_BYTES * 2 {
            self.text.push_str(s);
        }
    }
}

/// Reads one VAST document.
pub fn parse(text: &str) -> Result<Vast, VastError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(VastError::TooLarge);
    }
    let mut reader = Reader::from_str(text);
    let mut st = State::default();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| VastError::Xml(e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(VastError::Dtd),
            Event::Start(e) => st.start(&e)?,
            Event::Empty(e) => {
                st.start(&e)?;
                st.end();
            }
            Event::End(_) => st.end(),
            Event::Text(t) => {
                let s = t.decode().map_err(|e| VastError::Xml(e.to_string()))?;
                st.push_text(&s);
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|e| VastError::Xml(e.to_string()))?;
                st.push_text(&s);
            }
            Event::GeneralRef(r) => {
                let s = match r.as_ref() {
                    b"amp" => '&',
                    b"lt" => '<',
                    b"gt" => '>',
                    b"quot" => '"',
                    b"apos" => '\'',
                    _ => match r.resolve_char_ref() {
                        Ok(Some(c)) => c,
                        _ => return Err(VastError::Dtd),
                    },
                };
                st.push_text(s.encode_utf8(&mut [0; 4]));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !st.root_seen {
        return Err(VastError::NotVast(String::new()));
    }
    Ok(st.vast)
}

/// An inline ad ready to play: with the impressions, errors and tracking of
/// every wrapper on the way to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedAd {
    pub id: String,
    pub creative_id: String,
    pub duration_ms: u64,
    pub media_files: Vec<MediaFile>,
    pub impressions: Vec<String>,
    pub errors: Vec<String>,
    pub tracking: BTreeMap<String, Vec<String>>,
}

/// A wrapper to fetch: [`Resolver::answer`] takes its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub id: usize,
    pub url: String,
}

/// What a resolution found: the pod's playable ads in order, and why the
/// others were dropped (wrapper too deep, fetch failed, no ad, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pod {
    pub ads: Vec<ResolvedAd>,
    pub failures: Vec<String>,
    /// Error URLs of what failed, each with the VAST error code for its
    /// `[ERRORCODE]` macro ([`code`]).
    pub error_urls: Vec<(u16, String)>,
}

#[derive(Debug, Clone)]
struct Slot {
    depth: u8,
    /// Inherited from the wrappers above.
    carried: ResolvedAd,
    /// The wrapper URL being fetched, or the resolved ad.
    state: SlotState,
}

#[derive(Debug, Clone)]
enum SlotState {
    Waiting(String),
    Asked,
    Done(Option<ResolvedAd>),
}

/// Follows wrappers, sans-IO: a pod's slots in order, each an inline ad or a
/// wrapper chain being followed.
#[derive(Debug)]
pub struct Resolver {
    slots: Vec<Slot>,
    max_depth: u8,
    fetches_left: usize,
    failures: Vec<String>,
    error_urls: Vec<(u16, String)>,
}

/// VAST error codes Brook reports (VAST 4.x, section 2.3.6.3).
pub mod code {
    /// XML parsing error.
    pub const XML: u16 = 100;
    /// Not a VAST document (schema).
    pub const SCHEMA: u16 = 101;
    /// Trafficking error: an ad the player cannot display (no linear creative).
    pub const TRAFFICKING: u16 = 200;
    /// Wrapper error (general).
    pub const WRAPPER: u16 = 300;
    /// Timeout of a VAST URI in a wrapper (no answer in time, or no answer).
    pub const WRAPPER_TIMEOUT: u16 = 301;
    /// Wrapper limit reached.
    pub const WRAPPER_LIMIT: u16 = 302;
    /// No ads in the answer (after one or more wrappers, or at the root).
    pub const NO_ADS: u16 = 303;
    /// No media file of a supported type.
    pub const NO_SUPPORTED_MEDIA: u16 = 403;
}

fn merge(into: &mut ResolvedAd, ad: &Ad) {
    into.impressions.extend(ad.impressions.iter().cloned());
    into.errors.extend(ad.errors.iter().cloned());
    for (ev, urls) in &ad.tracking {
        into.tracking
            .entry(ev.clone())
            .or_default()
            .extend(urls.iter().cloned());
    }
}

/// The ads of a document that make the pod: those with a `sequence`, in
/// its order, or (none has one) the first ad.
fn pod_of(vast: &Vast) -> Vec<&Ad> {
    let mut seq: Vec<&Ad> = vast.ads.iter().filter(|a| a.sequence.is_some()).collect();
    if seq.is_empty() {
        return vast.ads.iter().take(1).collect();
    }
    seq.sort_by_key(|a| a.sequence);
    seq
}

impl Resolver {
    /// `max_depth`: wrappers followed in a chain; `max_fetches`: wrapper
    /// documents fetched in all.
    pub fn new(vast: &Vast, max_depth: u8, max_fetches: usize) -> Self {
        let mut r = Resolver {
            slots: Vec::new(),
            max_depth,
            fetches_left: max_fetches,
            failures: Vec::new(),
            error_urls: Vec::new(),
        };
        // The root's <Error> is for an answer with no ad.
        if vast.ads.is_empty() {
            r.failures.push("no ad in the answer".into());
            r.error_urls
                .extend(vast.errors.iter().map(|u| (code::NO_ADS, u.clone())));
        }
        for ad in pod_of(vast) {
            let slot = r.slot_for(ad, 0, ResolvedAd::default());
            r.slots.push(slot);
        }
        r
    }

    fn slot_for(&mut self, ad: &Ad, depth: u8, mut carried: ResolvedAd) -> Slot {
        merge(&mut carried, ad);
        let state = match &ad.kind {
            AdKind::InLine {
                duration_ms,
                media_files,
                creative_id,
            } => {
                carried.id = ad.id.clone();
                carried.creative_id = creative_id.clone();
                carried.duration_ms = *duration_ms;
                carried.media_files = media_files.clone();
                SlotState::Done(Some(carried.clone()))
            }
            AdKind::Wrapper { ad_tag_uri } if depth < self.max_depth && self.fetches_left > 0 => {
                self.fetches_left -= 1;
                SlotState::Waiting(ad_tag_uri.clone())
            }
            AdKind::Wrapper { .. } => {
                self.fail(
                    &carried,
                    code::WRAPPER_LIMIT,
                    format!("ad {:?}: wrapper limit reached", ad.id),
                );
                SlotState::Done(None)
            }
            AdKind::Unplayable => {
                self.fail(
                    &carried,
                    code::TRAFFICKING,
                    format!("ad {:?}: no linear creative", ad.id),
                );
                SlotState::Done(None)
            }
        };
        Slot {
            depth,
            carried,
            state,
        }
    }

    fn fail(&mut self, carried: &ResolvedAd, code: u16, why: String) {
        self.failures.push(why);
        self.error_urls
            .extend(carried.errors.iter().map(|u| (code, u.clone())));
    }

    /// The next wrapper document to fetch, if any (each is asked once).
    pub fn next_fetch(&mut self) -> Option<Fetch> {
        let (id, slot) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| matches!(s.state, SlotState::Waiting(_)))?;
        let SlotState::Waiting(url) = std::mem::replace(&mut slot.state, SlotState::Asked) else {
            return None;
        };
        Some(Fetch { id, url })
    }

    /// The answer to fetch `id`: the document, or why there is none.
    pub fn answer(&mut self, id: usize, body: Result<&str, String>) {
        let Some(slot) = self.slots.get(id).cloned() else {
            return;
        };
        if !matches!(slot.state, SlotState::Asked) {
            return;
        }
        let parsed = match body {
            Ok(b) => parse(b).map_err(|e| {
                let c = match e {
                    VastError::NotVast(_) => code::SCHEMA,
                    _ => code::XML,
                };
                (c, e.to_string())
            }),
            Err(e) => Err((code::WRAPPER_TIMEOUT, e)),
        };
        let next = match parsed {
            Ok(vast) => match pod_of(&vast).first() {
                Some(ad) => {
                    let ad = (*ad).clone();
                    self.slot_for(&ad, slot.depth + 1, slot.carried.clone())
                }
                None => {
                    self.error_urls
                        .extend(vast.errors.iter().map(|u| (code::NO_ADS, u.clone())));
                    self.fail(&slot.carried, code::NO_ADS, "wrapper led to no ad".into());
                    Slot {
                        state: SlotState::Done(None),
                        ..slot
                    }
                }
            },
            Err((c, e)) => {
                self.fail(&slot.carried, c, format!("wrapper: {e}"));
                Slot {
                    state: SlotState::Done(None),
                    ..slot
                }
            }
        };
        self.slots[id] = next;
    }

    /// Whether every wrapper was answered.
    pub fn is_done(&self) -> bool {
        self.slots
            .iter()
            .all(|s| matches!(s.state, SlotState::Done(_)))
    }

    /// The pod: what resolved, in order. Wrappers still unanswered (the
    /// caller's time budget ran out) count as failures.
    pub fn finish(mut self) -> Pod {
        let mut ads = Vec::new();
        for slot in std::mem::take(&mut self.slots) {
            match slot.state {
                SlotState::Done(Some(ad)) => ads.push(ad),
                SlotState::Done(None) => {}
                _ => self.fail(
                    &slot.carried,
                    code::WRAPPER_TIMEOUT,
                    "wrapper not answered in time".into(),
                ),
            }
        }
        Pod {
            ads,
            failures: self.failures,
            error_urls: self.error_urls,
        }
    }
}

#[cfg(test)]
mod tests;
