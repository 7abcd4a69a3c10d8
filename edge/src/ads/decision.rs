//! One viewer's ads for one break, sans-IO: the ad decision server's URL
//! for the break ([`vast_url`]), the media file to prepare for each ad
//! ([`pick_media_file`]), the asset list the player gets ([`AssetList`]),
//! and when each tracking event fires ([`BeaconPlan`]): by the segments of
//! the prepared asset the viewer fetches, as server-side ad insertion does.

use serde::{Deserialize, Serialize};

use super::vast::{MediaFile, ResolvedAd};
use crate::query::encode_component;

/// `ads` in the edge config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdsConfig {
    /// `off` (default) or `interstitials`: breaks in live media playlists
    /// gain an HLS interstitial whose asset list this edge answers.
    pub mode: AdMode,
    /// The ad decision server's VAST URL, with macros ([`vast_url`]).
    pub vast_url: Option<String>,
    /// Time budget for the whole decision (VAST, wrappers, creatives), ms.
    pub timeout_ms: u64,
    /// Wrappers followed in one chain.
    pub max_wrapper_depth: u8,
    /// Wrapper documents fetched for one decision.
    pub max_wrapper_fetches: usize,
    /// Ads played in one break at most.
    pub max_ads: usize,
    /// A VOD asset (32 hex digits) played for what the ads leave of a break.
    pub slate_asset: Option<String>,
    /// How long an ad-segment token (and its beacon context) stays valid, s.
    pub ad_token_ttl_s: u64,
}

impl Default for AdsConfig {
    fn default() -> Self {
        AdsConfig {
            mode: AdMode::Off,
            vast_url: None,
            timeout_ms: 2000,
            max_wrapper_depth: 4,
            max_wrapper_fetches: 8,
            max_ads: 6,
            slate_asset: None,
            ad_token_ttl_s: 3600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdMode {
    #[default]
    Off,
    Interstitials,
}

impl AdsConfig {
    /// Whether the values make sense (the edge refuses to start otherwise).
    pub fn check(&self) -> Result<(), String> {
        if self.mode == AdMode::Off {
            return Ok(());
        }
        let Some(url) = &self.vast_url else {
            return Err("ads.vast_url is required when ads.mode is not off".into());
        };
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err("ads.vast_url: an http(s) URL".into());
        }
        if let Some(s) = &self.slate_asset {
            if !brook_common::names::valid_asset_id(s) {
                return Err("ads.slate_asset: an asset id (32 lowercase hex digits)".into());
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            return Err("ads.timeout_ms: 1..=10000".into());
        }
        if self.max_ads == 0 || self.max_ads > 20 {
            return Err("ads.max_ads: 1..=20".into());
        }
        // An ad token must outlive the longest break and the time the
        // player loads it ahead.
        if self.ad_token_ttl_s < 660 || self.ad_token_ttl_s > 86_400 {
            return Err("ads.ad_token_ttl_s: 660..=86400".into());
        }
        if self.max_wrapper_depth > 10 || self.max_wrapper_fetches > 20 {
            return Err(
                "ads.max_wrapper_depth: at most 10; ads.max_wrapper_fetches: at most 20".into(),
            );
        }
        Ok(())
    }
}

/// What the VAST URL's macros are replaced with (each value
/// percent-encoded).
#[derive(Debug, Clone, Default)]
pub struct Macros<'a> {
    pub stream: &'a str,
    pub break_id: &'a str,
    /// The break's duration, s.
    pub duration_s: f64,
    /// The viewer's playback session (the player's `_HLS_primary_id`, or
    /// the token's `id`).
    pub session: &'a str,
    pub country: Option<&'a str>,
    /// `mobile` or `desktop` (from the request's hints).
    pub device: &'a str,
    /// A random number, so that no cache between here and the ad server
    /// answers.
    pub cachebuster: u32,
    /// Unix ms.
    pub now_ms: u64,
}

/// The ad decision server's URL for one viewer and break: `[STREAM]`,
/// `[BREAK]`, `[DURATION]` (s, integer), `[SESSION]`, `[COUNTRY]`,
/// `[DEVICE]`, `[CACHEBUSTER]`, `[TIMESTAMP]` (Unix ms) replaced, values
/// percent-encoded; other text as written. `None` when the result is not
/// an http(s) URL.
pub fn vast_url(template: &str, m: &Macros<'_>) -> Option<String> {
    let out = template
        .replace("[STREAM]", &encode_component(m.stream))
        .replace("[BREAK]", &encode_component(m.break_id))
        .replace("[DURATION]", &format!("{}", m.duration_s.round() as u64))
        .replace("[SESSION]", &encode_component(m.session))
        .replace("[COUNTRY]", &encode_component(m.country.unwrap_or("")))
        .replace("[DEVICE]", m.device)
        .replace(
            "[CACHEBUSTER]",
            &format!("{:08}", m.cachebuster % 100_000_000),
        )
        .replace("[TIMESTAMP]", &m.now_ms.to_string());
    let lower = out.get(..8).unwrap_or(&out).to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && !out.chars().any(|c| c.is_control() || c == ' ');
    ok.then_some(out)
}

/// A tracking or impression URL as fired: `[CACHEBUSTING]` and
/// `[TIMESTAMP]` (VAST 4's macros) replaced.
pub fn tracking_url(url: &str, cachebuster: u32, now_iso: &str) -> String {
    url.replace(
        "[CACHEBUSTING]",
        &format!("{:08}", cachebuster % 100_000_000),
    )
    .replace("[TIMESTAMP]", &encode_component(now_iso))
}

/// Widest source the edge hands the VOD pipeline: it makes the ladder's
/// renditions from it, so more is only slower.
const MAX_SOURCE_HEIGHT: u32 = 1080;

/// The media file to prepare for an ad: a progressive MP4 (what the VOD
/// pipeline takes; streaming formats and VPAID are not), the tallest up to
/// 1080 lines, then the highest bitrate. `None`: nothing playable.
pub fn pick_media_file(ad: &ResolvedAd) -> Option<&MediaFile> {
    let usable = |m: &&MediaFile| {
        let mime = m.mime.to_ascii_lowercase();
        let progressive = m.delivery.is_empty() || m.delivery.eq_ignore_ascii_case("progressive");
        progressive
            && (mime == "video/mp4"
                || mime == "video/quicktime"
                || mime.is_empty()
                    && m.url
                        .to_ascii_lowercase()
                        .split('?')
                        .next()
                        .is_some_and(|p| p.ends_with(".mp4")))
    };
    ad.media_files.iter().filter(usable).max_by_key(|m| {
        let fits = m.height <= MAX_SOURCE_HEIGHT;
        (
            fits,
            if fits { m.height } else { u32::MAX - m.height },
            m.bitrate_kbps,
        )
    })
}

/// One entry of the asset list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Asset {
    #[serde(rename = "URI")]
    pub uri: String,
    #[serde(rename = "DURATION")]
    pub duration: f64,
}

/// The asset list (HLS Interstitials: a JSON object with `ASSETS`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AssetList {
    #[serde(rename = "ASSETS")]
    pub assets: Vec<Asset>,
}

/// Slate shorter than this is not worth a player switching to it (s).
pub const MIN_SLATE_S: f64 = 0.5;

impl AssetList {
    /// The ads in order while they fit in `break_s`, then the slate (if
    /// any) for what is left. An ad that would run past the break is left
    /// out (the player would cut it at the playout limit, and a cut ad
    /// is not a complete view).
    pub fn fill(ads: &[Asset], slate_uri: Option<&str>, break_s: f64) -> (AssetList, Vec<usize>) {
        let mut out = AssetList::default();
        let mut used = 0.0;
        let mut played = Vec::new();
        for (i, a) in ads.iter().enumerate() {
            if a.duration <= 0.0 || used + a.duration > break_s + 0.001 {
                continue;
            }
            used += a.duration;
            out.assets.push(a.clone());
            played.push(i);
        }
        let left = break_s - used;
        if let Some(uri) = slate_uri {
            if left >= MIN_SLATE_S {
                out.assets.push(Asset {
                    uri: uri.to_owned(),
                    duration: (left * 1000.0).round() / 1000.0,
                });
            }
        }
        (out, played)
    }
}

/// VAST tracking events Brook fires, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    Impression,
    Start,
    FirstQuartile,
    Midpoint,
    ThirdQuartile,
    Complete,
}

impl Event {
    pub const ALL: [Event; 6] = [
        Event::Impression,
        Event::Start,
        Event::FirstQuartile,
        Event::Midpoint,
        Event::ThirdQuartile,
        Event::Complete,
    ];

    /// The name VAST gives it (`<Tracking event="...">`; impressions are
    /// `<Impression>`).
    pub fn vast_name(self) -> &'static str {
        match self {
            Event::Impression => "impression",
            Event::Start => "start",
            Event::FirstQuartile => "firstQuartile",
            Event::Midpoint => "midpoint",
            Event::ThirdQuartile => "thirdQuartile",
            Event::Complete => "complete",
        }
    }

    /// Where in the ad it happens, as a fraction of its duration.
    fn at(self) -> f64 {
        match self {
            Event::Impression | Event::Start => 0.0,
            Event::FirstQuartile => 0.25,
            Event::Midpoint => 0.5,
            Event::ThirdQuartile => 0.75,
            Event::Complete => 1.0,
        }
    }
}

/// For one ad: the segment (index in its media playlist) whose request
/// fires each event, and the URLs to call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconPlan {
    pub events: Vec<(Event, usize, Vec<String>)>,
    /// The asset's segment count: a request for a later index is not one
    /// of its segments and fires nothing.
    pub segments: usize,
}

impl BeaconPlan {
    /// `segments`: the durations of the prepared asset's segments (s), in
    /// order. An event fires with the segment that plays its moment; the
    /// last (`complete`) with the last segment.
    pub fn new(ad: &ResolvedAd, segments: &[f64]) -> BeaconPlan {
        let total: f64 = segments.iter().sum();
        let last = segments.len().saturating_sub(1);
        let segment_at = |t: f64| {
            let mut start = 0.0;
            for (i, d) in segments.iter().enumerate() {
                if t < start + d {
                    return i;
                }
                start += d;
            }
            last
        };
        let events = Event::ALL
            .iter()
            .filter_map(|&e| {
                let urls = match e {
                    Event::Impression => ad.impressions.clone(),
                    _ => ad.tracking.get(e.vast_name()).cloned().unwrap_or_default(),
                };
                if urls.is_empty() {
                    return None;
                }
                let seg = if e == Event::Complete {
                    last
                } else {
                    segment_at(e.at() * total)
                };
                Some((e, seg, urls))
            })
            .collect();
        BeaconPlan {
            events,
            segments: segments.len(),
        }
    }

    /// The events a request for segment `index` makes due, of those not
    /// yet fired (`fired(e)`), in order: a request for a later segment
    /// also fires what earlier ones would have (a player may skip one).
    pub fn due(
        &self,
        index: usize,
        fired: impl Fn(Event) -> bool,
    ) -> Vec<&(Event, usize, Vec<String>)> {
        if index >= self.segments {
            return Vec::new();
        }
        self.events
            .iter()
            .filter(|(e, seg, _)| *seg <= index && !fired(*e))
            .collect()
    }
}

/// The segment index in a VOD object name (`<rendition>-seg<N>.m4s`).
pub fn segment_index(name: &str) -> Option<usize> {
    let (_, rest) = name.split_once('-')?;
    rest.strip_prefix("seg")?.strip_suffix(".m4s")?.parse().ok()
}

/// The ad context an ad asset's token carries in `data`:
/// `ad:<decision>.<ad index>` (decision: hex).
pub fn ad_claim(decision: &str, index: usize) -> String {
    format!("ad:{decision}.{index}")
}

/// The ad context in a token's `data`, if any.
pub fn parse_ad_claim(data: &str) -> Option<(&str, usize)> {
    data.split(',').find_map(|c| {
        let v = c.trim().strip_prefix("ad:")?;
        let (d, i) = v.split_once('.')?;
        let ok = !d.is_empty() && d.len() <= 64 && d.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then_some(())?;
        Some((d, i.parse().ok()?))
    })
}

/// The segment durations of a VOD media playlist (`#EXTINF`), in order.
pub fn segment_durations(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|v| v.split(',').next()?.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0)
        .collect()
}

/// The first variant's URI in a multivariant playlist.
pub fn first_variant(multivariant: &str) -> Option<&str> {
    let mut lines = multivariant.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("#EXT-X-STREAM-INF:") {
            return lines
                .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(str::trim);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ad(impressions: &[&str], tracking: &[(&str, &str)]) -> ResolvedAd {
        let mut t: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (e, u) in tracking {
            t.entry((*e).into()).or_default().push((*u).into());
        }
        ResolvedAd {
            id: "a1".into(),
            duration_ms: 8000,
            impressions: impressions.iter().map(|s| s.to_string()).collect(),
            tracking: t,
            ..Default::default()
        }
    }

    #[test]
    fn macros_are_replaced_and_encoded() {
        let m = Macros {
            stream: "cam 1",
            break_id: "splice-7",
            duration_s: 29.6,
            session: "s/1",
            country: Some("DE"),
            device: "desktop",
            cachebuster: 123,
            now_ms: 1_796_515_150_000,
        };
        assert_eq!(
            vast_url("http://ads.test/vast?s=[STREAM]&b=[BREAK]&d=[DURATION]&sid=[SESSION]&c=[COUNTRY]&dev=[DEVICE]&cb=[CACHEBUSTER]&t=[TIMESTAMP]&x=[OTHER]", &m).unwrap(),
            "http://ads.test/vast?s=cam%201&b=splice-7&d=30&sid=s%2F1&c=DE&dev=desktop&cb=00000123&t=1796515150000&x=[OTHER]"
        );
        assert_eq!(vast_url("ftp://ads.test/[STREAM]", &m), None);
        assert_eq!(
            vast_url(
                "[STREAM]",
                &Macros {
                    stream: "http://evil",
                    ..m.clone()
                }
            ),
            None
        );
        assert_eq!(
            tracking_url(
                "http://t.test/i?cb=[CACHEBUSTING]&ts=[TIMESTAMP]",
                5,
                "2026-12-06T02:00:00Z"
            ),
            "http://t.test/i?cb=00000005&ts=2026-12-06T02%3A00%3A00Z"
        );
    }

    #[test]
    fn the_tallest_progressive_mp4_up_to_1080p() {
        let mf = |url: &str, mime: &str, delivery: &str, h: u32, br: u32| MediaFile {
            url: url.into(),
            mime: mime.into(),
            delivery: delivery.into(),
            width: h * 16 / 9,
            height: h,
            bitrate_kbps: br,
        };
        let mut a = ad(&[], &[]);
        a.media_files = vec![
            mf("http://a/2160.mp4", "video/mp4", "progressive", 2160, 20000),
            mf("http://a/720.mp4", "video/mp4", "progressive", 720, 3000),
            mf(
                "http://a/1080lo.mp4",
                "video/mp4",
                "progressive",
                1080,
                4000,
            ),
            mf(
                "http://a/1080hi.mp4",
                "video/mp4",
                "progressive",
                1080,
                6000,
            ),
            mf(
                "http://a/1080.m3u8",
                "application/x-mpegURL",
                "streaming",
                1080,
                9000,
            ),
            mf(
                "http://a/1080.webm",
                "video/webm",
                "progressive",
                1080,
                9000,
            ),
        ];
        assert_eq!(pick_media_file(&a).unwrap().url, "http://a/1080hi.mp4");
        a.media_files
            .retain(|m| m.height == 2160 || m.mime != "video/mp4");
        // Only too tall: still better than nothing.
        assert_eq!(pick_media_file(&a).unwrap().url, "http://a/2160.mp4");
        a.media_files.retain(|m| m.mime != "video/mp4");
        assert_eq!(pick_media_file(&a), None);
    }

    #[test]
    fn ads_fill_the_break_and_slate_the_rest() {
        let a = |u: &str, d: f64| Asset {
            uri: u.into(),
            duration: d,
        };
        let (list, played) = AssetList::fill(&[a("ad1", 6.0), a("ad2", 4.0)], Some("slate"), 15.0);
        assert_eq!(played, vec![0, 1]);
        assert_eq!(
            list.assets,
            vec![a("ad1", 6.0), a("ad2", 4.0), a("slate", 5.0)]
        );
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"ASSETS":[{"URI":"ad1","DURATION":6.0},{"URI":"ad2","DURATION":4.0},{"URI":"slate","DURATION":5.0}]}"#
        );
        // An ad longer than what is left is skipped, a later one still fits.
        let (list, played) =
            AssetList::fill(&[a("ad1", 10.0), a("ad2", 10.0), a("ad3", 4.0)], None, 15.0);
        assert_eq!(played, vec![0, 2]);
        assert_eq!(list.assets.len(), 2);
        // Nothing left worth a slate; no slate configured: ads only.
        let (list, _) = AssetList::fill(&[a("ad1", 14.8)], Some("slate"), 15.0);
        assert_eq!(list.assets, vec![a("ad1", 14.8)]);
        // An ad a little longer than the break would be cut: left out.
        let (list, _) = AssetList::fill(&[a("ad1", 15.1)], None, 15.0);
        assert!(list.assets.is_empty());
        let (list, _) = AssetList::fill(&[], Some("slate"), 30.0);
        assert_eq!(list.assets, vec![a("slate", 30.0)]);
        let (list, _) = AssetList::fill(&[], None, 30.0);
        assert!(list.assets.is_empty());
    }

    #[test]
    fn events_fire_with_the_segment_that_plays_them() {
        let a = ad(
            &["http://t/imp"],
            &[
                ("start", "http://t/start"),
                ("firstQuartile", "http://t/q1"),
                ("midpoint", "http://t/mid"),
                ("thirdQuartile", "http://t/q3"),
                ("complete", "http://t/done"),
                ("pause", "http://t/pause"),
            ],
        );
        // 8 s in four 2 s segments: q1 at 2 s is segment 1, mid 4 s segment 2, q3 6 s segment 3.
        let plan = BeaconPlan::new(&a, &[2.0, 2.0, 2.0, 2.0]);
        let at: Vec<(Event, usize)> = plan.events.iter().map(|(e, s, _)| (*e, *s)).collect();
        assert_eq!(
            at,
            vec![
                (Event::Impression, 0),
                (Event::Start, 0),
                (Event::FirstQuartile, 1),
                (Event::Midpoint, 2),
                (Event::ThirdQuartile, 3),
                (Event::Complete, 3)
            ]
        );
        let names =
            |v: Vec<&(Event, usize, Vec<String>)>| v.iter().map(|(e, _, _)| *e).collect::<Vec<_>>();
        assert_eq!(
            names(plan.due(0, |_| false)),
            vec![Event::Impression, Event::Start]
        );
        // Segment 2 first (a skipped request): everything up to it, in order.
        assert_eq!(
            names(plan.due(2, |_| false)),
            vec![
                Event::Impression,
                Event::Start,
                Event::FirstQuartile,
                Event::Midpoint
            ]
        );
        assert_eq!(
            names(plan.due(2, |e| e <= Event::Start)),
            vec![Event::FirstQuartile, Event::Midpoint]
        );
        // Events without URLs are not planned; one segment holds them all.
        let b = ad(&[], &[("complete", "http://t/done")]);
        let plan = BeaconPlan::new(&b, &[5.0]);
        assert_eq!(
            plan.events,
            vec![(Event::Complete, 0, vec!["http://t/done".to_string()])]
        );
        // No segments: nothing can fire.
        assert!(BeaconPlan::new(&b, &[]).due(0, |_| false).is_empty());
        // An index past the asset's segments is not one of them.
        let plan = BeaconPlan::new(&a, &[2.0, 2.0, 2.0, 2.0]);
        assert!(plan.due(4, |_| false).is_empty());
        assert!(plan.due(999_999, |_| false).is_empty());
    }

    #[test]
    fn names_claims_and_playlists() {
        assert_eq!(segment_index("360p-seg12.m4s"), Some(12));
        assert_eq!(segment_index("360p-init0.mp4"), None);
        assert_eq!(segment_index("index.m3u8"), None);
        assert_eq!(ad_claim("ab12", 3), "ad:ab12.3");
        assert_eq!(parse_ad_claim("maxh:720,ad:ab12.3"), Some(("ab12", 3)));
        assert_eq!(parse_ad_claim("ad:zz.3"), None);
        assert_eq!(parse_ad_claim("ad:ab12"), None);
        assert_eq!(parse_ad_claim("maxh:720"), None);
        let vod = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\n360p-seg0.m4s\n#EXTINF:1.5,\n360p-seg1.m4s\n#EXTINF:x,\nbad\n#EXT-X-ENDLIST\n";
        assert_eq!(segment_durations(vod), vec![2.0, 1.5]);
        let mv = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n\n360p.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\n240p.m3u8\n";
        assert_eq!(first_variant(mv), Some("360p.m3u8"));
        assert_eq!(first_variant("#EXTM3U\n"), None);
    }

    #[test]
    fn config_checks() {
        assert!(AdsConfig::default().check().is_ok());
        let on = |f: &dyn Fn(&mut AdsConfig)| {
            let mut c = AdsConfig {
                mode: AdMode::Interstitials,
                vast_url: Some("http://ads.test/vast".into()),
                ..Default::default()
            };
            f(&mut c);
            c.check()
        };
        assert!(on(&|_| {}).is_ok());
        assert!(on(&|c| c.vast_url = None).is_err());
        assert!(on(&|c| c.vast_url = Some("file:///etc/passwd".into())).is_err());
        assert!(on(&|c| c.slate_asset = Some("nope".into())).is_err());
        assert!(on(&|c| c.slate_asset = Some("0123456789abcdef0123456789abcdef".into())).is_ok());
        assert!(on(&|c| c.timeout_ms = 0).is_err());
        assert!(on(&|c| c.ad_token_ttl_s = 600).is_err());
        assert!(on(&|c| c.max_wrapper_depth = 50).is_err());
        let c: AdsConfig =
            serde_json::from_str(r#"{"mode":"interstitials","vast_url":"http://a/v"}"#).unwrap();
        assert_eq!(c.mode, AdMode::Interstitials);
        assert!(serde_json::from_str::<AdsConfig>(r#"{"mode":"stitched"}"#).is_err());
    }
}
