//! HLS Interstitials for ad breaks (RFC 8216bis appendix D, Apple's
//! "HLS Interstitials"): beside every break the origin marked with an
//! `EXT-X-DATERANGE` carrying `SCTE35-OUT` and `PLANNED-DURATION`, the
//! viewer's media playlist gains a second date range of class
//! `com.apple.hls.interstitial` whose `X-ASSET-LIST` points at this edge's
//! asset list for the break (`/live/<stream>/ads.json`, answered per
//! viewer; an absolute path, as media playlists live at the stream's level
//! or in a session's directory).
//!
//! ```text
//! #EXT-X-DATERANGE:ID="splice-7",START-DATE="2026-12-06T02:00:07.000Z",PLANNED-DURATION=12,SCTE35-OUT=0xFC...
//! #EXT-X-DATERANGE:ID="brook-ad-splice-7",CLASS="com.apple.hls.interstitial",START-DATE="2026-12-06T02:00:07.000Z",
//!   X-ASSET-LIST="/live/cam1/ads.json?break=splice-7&dur=12",X-RESUME-OFFSET=12,X-PLAYOUT-LIMIT=12,X-RESTRICT="SKIP,JUMP"
//! ```
//!
//! Nothing else changes: media sequence numbers, parts, preload hints and
//! rendition reports stay the origin's, so blocking playlist reload works as
//! without ads. `X-RESUME-OFFSET` is the break's planned duration (the ads
//! replace the break's content, the player comes back where the break
//! ends), `X-PLAYOUT-LIMIT` the same (ads and slate never run past it).
//! The added date range is a function of the origin's alone, so every
//! reload (and a delta update that still lists the break) carries it with
//! the same attributes, as RFC 8216bis requires of a date range's ID.

use brook_packager::hls::{AttributeList, MediaPlaylist, SegmentTags};

use crate::access::token::KeySet;
use crate::query::encode_component;

/// What the interstitials of one playlist need: the asset list's path
/// ([`asset_list_path`]) and the keys its URIs are signed with.
#[derive(Debug, Clone, Copy)]
pub struct AdMarks<'a> {
    pub list_path: &'a str,
    pub keys: &'a KeySet,
}

/// What an asset list URI's `sig` covers: the stream's list path, the
/// break's ID, start and duration as the URI carries them. Only a break the
/// origin marked (and this edge signed) gets an asset list, so a viewer
/// cannot ask for decisions, impressions and ad tokens at will.
pub fn signed_message(list_path: &str, id: &str, start_date: &str, dur: &str) -> String {
    format!("brook-ads-v1|{list_path}|{id}|{start_date}|{dur}")
}

/// The date range class players know as an interstitial.
pub const CLASS: &str = "com.apple.hls.interstitial";

/// The asset list's name under `/live/<stream>/`.
pub const ASSET_LIST_NAME: &str = "ads.json";

/// The asset list's path for the stream whose media playlist is at
/// `playlist_path` (`/live/<stream>/...`, as checked by the router).
pub fn asset_list_path(playlist_path: &str) -> Option<String> {
    let stream = playlist_path.strip_prefix("/live/")?.split('/').next()?;
    (!stream.is_empty()).then(|| format!("/live/{stream}/{ASSET_LIST_NAME}"))
}

/// The prefix of the added date ranges' IDs (the break's ID follows).
pub const ID_PREFIX: &str = "brook-ad-";

/// Longest break given an interstitial (s): a `PLANNED-DURATION` above it is
/// a mistake upstream, not three hours of ads.
pub const MAX_BREAK_S: f64 = 600.0;

/// An ad break as the origin marked it.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    pub id: String,
    /// `START-DATE`, as written.
    pub start_date: String,
    /// `PLANNED-DURATION`, seconds.
    pub planned_s: f64,
}

impl Break {
    /// The break a date range starts, if it is one: `SCTE35-OUT` (the
    /// origin's marker, from SCTE-35 or the admin API) with an ID, a
    /// `START-DATE` and a positive `PLANNED-DURATION` of at most
    /// [`MAX_BREAK_S`]. A break without a planned duration gets no
    /// interstitial (nothing says how long the ads may run).
    pub fn of(attrs: &AttributeList) -> Option<Break> {
        attrs.get("SCTE35-OUT")?;
        if attrs.get("CLASS").is_some() {
            return None;
        }
        let id = attrs.get("ID")?;
        let start_date = attrs.get("START-DATE")?;
        let planned_s: f64 = attrs.get("PLANNED-DURATION")?.parse().ok()?;
        let ok = planned_s.is_finite() && planned_s > 0.0 && planned_s <= MAX_BREAK_S;
        let clean = |s: &str| !s.is_empty() && !s.contains(['"', '\r', '\n']);
        (ok && clean(id) && clean(start_date)).then(|| Break {
            id: id.to_owned(),
            start_date: start_date.to_owned(),
            planned_s,
        })
    }

    /// The asset list's URI for this break (`list_path`: see
    /// [`asset_list_path`]), signed with the current key.
    pub fn asset_list_uri(&self, marks: &AdMarks<'_>) -> Option<String> {
        let dur = seconds(self.planned_s);
        let message = signed_message(marks.list_path, &self.id, &self.start_date, &dur);
        let sig = marks.keys.current()?.tag(&message);
        Some(format!(
            "{}?break={}&start={}&dur={dur}&sig={sig}",
            marks.list_path,
            encode_component(&self.id),
            encode_component(&self.start_date),
        ))
    }

    /// The interstitial date range for this break (`None`: no key to sign
    /// its asset list with).
    pub fn interstitial(&self, marks: &AdMarks<'_>) -> Option<AttributeList> {
        let list = self.asset_list_uri(marks)?;
        let dur = seconds(self.planned_s);
        let mut a = AttributeList::default();
        a.push_quoted("ID", &format!("{ID_PREFIX}{}", self.id));
        a.push_quoted("CLASS", CLASS);
        a.push_quoted("START-DATE", &self.start_date);
        a.push_quoted("X-ASSET-LIST", &list);
        a.push_bare("X-RESUME-OFFSET", &dur);
        a.push_bare("X-PLAYOUT-LIMIT", &dur);
        // A viewer may neither skip the ads nor seek past them.
        a.push_quoted("X-RESTRICT", "SKIP,JUMP");
        Some(a)
    }
}

/// Milliseconds precision, no trailing zeros (`12`, `12.5`).
pub fn seconds(s: f64) -> String {
    let ms = (s * 1000.0).round() as u64;
    if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        let t = format!("{}.{:03}", ms / 1000, ms % 1000);
        t.trim_end_matches('0').to_owned()
    }
}

/// Adds an interstitial beside every break in `pl` that has none yet;
/// returns how many were added.
pub fn add(pl: &mut MediaPlaylist, marks: &AdMarks<'_>) -> usize {
    let mut added = 0;
    let mut visit = |tags: &mut SegmentTags| {
        let breaks: Vec<Break> = tags.date_ranges.iter().filter_map(Break::of).collect();
        for b in breaks {
            let id = format!("{ID_PREFIX}{}", b.id);
            if tags.date_ranges.iter().any(|d| d.get("ID") == Some(&id)) {
                continue;
            }
            if let Some(d) = b.interstitial(marks) {
                tags.date_ranges.push(d);
                added += 1;
            }
        }
    };
    for s in &mut pl.segments {
        visit(&mut s.tags);
    }
    visit(&mut pl.trailing_tags);
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = "/live/cam1/ads.json";

    fn keys() -> KeySet {
        KeySet::parse("k1:00112233445566778899aabbccddeeff").unwrap()
    }

    const LIVE: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:40
#EXT-X-MAP:URI=\"s1/360p-init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T02:00:05.000Z
#EXTINF:2.000,
s1/360p-seg40.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T02:00:07.000Z
#EXT-X-DATERANGE:ID=\"splice-7\",START-DATE=\"2026-12-06T02:00:07.000Z\",PLANNED-DURATION=12.5,SCTE35-OUT=0xFC302000
#EXTINF:2.000,
s1/360p-seg41.m4s
#EXT-X-PART:DURATION=0.5,URI=\"s1/360p-part42.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s1/360p-part42.1.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"240p.m3u8\",LAST-MSN=41,LAST-PART=0
";

    #[test]
    fn a_break_gains_an_interstitial_and_nothing_else_changes() {
        let mut pl: MediaPlaylist = LIVE.parse().unwrap();
        assert_eq!(
            add(
                &mut pl,
                &AdMarks {
                    list_path: L,
                    keys: &keys()
                }
            ),
            1
        );
        let out = pl.to_string();
        let line = out
            .lines()
            .find(|l| l.contains(CLASS))
            .expect("an interstitial");
        let sig = keys().current().unwrap().tag(&signed_message(
            L,
            "splice-7",
            "2026-12-06T02:00:07.000Z",
            "12.5",
        ));
        assert_eq!(
            line,
            format!(
                "#EXT-X-DATERANGE:ID=\"brook-ad-splice-7\",CLASS=\"com.apple.hls.interstitial\",\
                 START-DATE=\"2026-12-06T02:00:07.000Z\",X-ASSET-LIST=\"/live/cam1/ads.json?break=splice-7\
                 &start=2026-12-06T02%3A00%3A07.000Z&dur=12.5&sig={sig}\",\
                 X-RESUME-OFFSET=12.5,X-PLAYOUT-LIMIT=12.5,X-RESTRICT=\"SKIP,JUMP\""
            )
        );
        // Everything else as the origin wrote it.
        let without: Vec<&str> = out.lines().filter(|l| !l.contains(CLASS)).collect();
        let origin: Vec<String> = LIVE
            .parse::<MediaPlaylist>()
            .unwrap()
            .to_string()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(without, origin);
        // Idempotent: a second pass adds nothing.
        assert_eq!(
            add(
                &mut pl,
                &AdMarks {
                    list_path: L,
                    keys: &keys()
                }
            ),
            0
        );
        // And the result parses again.
        assert!(out.parse::<MediaPlaylist>().is_ok());
    }

    #[test]
    fn only_starts_with_a_planned_duration_are_breaks() {
        let range = |s: &str| AttributeList::parse(s, 1).unwrap();
        let b = Break::of(&range(
            "ID=\"a\",START-DATE=\"2026-12-06T02:00:07Z\",PLANNED-DURATION=30,SCTE35-OUT=0xFC",
        ))
        .unwrap();
        assert_eq!(b.planned_s, 30.0);
        let k = keys();
        let marks = AdMarks {
            list_path: L,
            keys: &k,
        };
        let uri = b.asset_list_uri(&marks).unwrap();
        let sig = k
            .current()
            .unwrap()
            .tag(&signed_message(L, "a", "2026-12-06T02:00:07Z", "30"));
        assert_eq!(
            uri,
            format!("/live/cam1/ads.json?break=a&start=2026-12-06T02%3A00%3A07Z&dur=30&sig={sig}")
        );
        // No key: no interstitial (its asset list could not be checked).
        let none = KeySet::default();
        assert_eq!(
            b.interstitial(&AdMarks {
                list_path: L,
                keys: &none
            }),
            None
        );
        for no in [
            // The break's end (same ID, DURATION, SCTE35-IN).
            "ID=\"a\",START-DATE=\"2026-12-06T02:00:07Z\",DURATION=30,SCTE35-IN=0xFC",
            // No planned duration.
            "ID=\"a\",START-DATE=\"2026-12-06T02:00:07Z\",SCTE35-OUT=0xFC",
            "ID=\"a\",START-DATE=\"2026-12-06T02:00:07Z\",PLANNED-DURATION=0,SCTE35-OUT=0xFC",
            "ID=\"a\",START-DATE=\"2026-12-06T02:00:07Z\",PLANNED-DURATION=-3,SCTE35-OUT=0xFC",
            "ID=\"a\",START-DATE=\"2026-12-06T02:00:07Z\",PLANNED-DURATION=NaN,SCTE35-OUT=0xFC",
            "ID=\"a\",START-DATE=\"2026-12-06T02:00:07Z\",PLANNED-DURATION=601,SCTE35-OUT=0xFC",
            // No ID or start.
            "START-DATE=\"2026-12-06T02:00:07Z\",PLANNED-DURATION=30,SCTE35-OUT=0xFC",
            "ID=\"a\",PLANNED-DURATION=30,SCTE35-OUT=0xFC",
            // Already an interstitial (someone upstream made it).
            "ID=\"a\",CLASS=\"com.apple.hls.interstitial\",START-DATE=\"2026-12-06T02:00:07Z\",PLANNED-DURATION=30,SCTE35-OUT=0xFC",
        ] {
            assert_eq!(Break::of(&range(no)), None, "{no}");
        }
    }

    #[test]
    fn break_ids_are_escaped_in_the_asset_list_uri() {
        let b = Break {
            id: "a b&c=d/é".into(),
            start_date: "2026-12-06T02:00:07Z".into(),
            planned_s: 8.0,
        };
        let k = keys();
        let uri = b
            .asset_list_uri(&AdMarks {
                list_path: L,
                keys: &k,
            })
            .unwrap();
        assert!(
            uri.starts_with("/live/cam1/ads.json?break=a%20b%26c%3Dd%2F%C3%A9&start="),
            "{uri}"
        );
        assert_eq!(
            asset_list_path("/live/cam1/s1/360p.m3u8").as_deref(),
            Some(L)
        );
        assert_eq!(asset_list_path("/live/cam1/360p.m3u8").as_deref(), Some(L));
        assert_eq!(asset_list_path("/vod/x/360p.m3u8"), None);
    }

    #[test]
    fn a_break_in_the_segment_being_made_gets_one_too() {
        let text = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:40
#EXT-X-MAP:URI=\"s1/360p-init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T02:00:05.000Z
#EXTINF:2.000,
s1/360p-seg40.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T02:00:07.000Z
#EXT-X-DATERANGE:ID=\"splice-8\",START-DATE=\"2026-12-06T02:00:07.000Z\",PLANNED-DURATION=4,SCTE35-OUT=0xFC
#EXT-X-PART:DURATION=0.5,URI=\"s1/360p-part41.0.m4s\",INDEPENDENT=YES
";
        let mut pl: MediaPlaylist = text.parse().unwrap();
        assert_eq!(
            add(
                &mut pl,
                &AdMarks {
                    list_path: L,
                    keys: &keys()
                }
            ),
            1
        );
        let out = pl.to_string();
        let at = |needle: &str| out.find(needle).unwrap();
        assert!(at("brook-ad-splice-8") < at("360p-part41.0"), "{out}");
    }

    #[test]
    fn seconds_render_without_float_noise() {
        assert_eq!(seconds(30.0), "30");
        assert_eq!(seconds(12.5), "12.5");
        assert_eq!(seconds(0.1 + 0.2), "0.3");
        assert_eq!(seconds(7.125), "7.125");
    }
}
