//! Rendition caps on every request they govern. A token's `maxh` / `maxbw`
//! claims ([`crate::access::token::Entitlements`]) filter the multivariant
//! playlist and the MPD ([`crate::manifest`]); this module decides the
//! requests those point at, media playlists and objects of one rendition,
//! so a capped viewer who asks for a higher rendition's URL gets 403.
//!
//! ```text
//! /live/<stream>/<session>/<rendition>.m3u8 | <rendition>-{init,seg,part}...
//! /vod/<asset>/<rendition>.m3u8 | <rendition>-iframes.m3u8 | <rendition>-{init,seg}...
//!   no caps in the token                    -> not looked at (costs nothing)
//!   Ladders::check(multivariant path, session, rendition, caps, now)
//!     Decided(Allowed)                      -> served
//!     Decided(OverCap | Unknown)            -> 403
//!     Fetch                                 -> the stream's multivariant playlist, through the
//!                                              edge's cache and coalescing (one key for every
//!                                              viewer; /live/<stream>/index.m3u8 or
//!                                              /vod/<asset>/index.m3u8), Ladder::parse,
//!                                              Ladders::store, decide:
//!                                              Unknown is 403 (fail closed); the origin down and
//!                                              no ladder known for the session: 503
//! ```
//!
//! A rendition is known by how the multivariant lists it: as a variant
//! (`EXT-X-STREAM-INF`, `S/<rendition>.m3u8`; capped by its `RESOLUTION`
//! height and `BANDWIDTH`, so an audio-only variant is never capped by
//! `maxh`), as an `EXT-X-MEDIA` rendition (allowed when a variant within the
//! caps uses its group: the audio every allowed variant plays with), or as
//! an I-frame variant. It is allowed when any listing allows it. VOD
//! playlists name no session (`720p.m3u8`): their listings match a request
//! without one. A VOD I-frame playlist (`<rendition>-iframes.m3u8`) is
//! decided as its rendition: it points into that rendition's segments, so a
//! viewer may have it exactly when it may have them (and the multivariant
//! drops it with its rendition's variant, `manifest`).

use std::collections::HashMap;
use std::rc::Rc;

use brook_common::{valid_rendition_name, valid_session_id};
use brook_packager::hls::{MultivariantPlaylist, ParseError};

use crate::manifest::{iframe_size, Limits};

/// Where one rendition stands for one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Listed, and within the viewer's caps.
    Allowed,
    /// Listed, but only above the caps.
    OverCap,
    /// Not in this ladder (another session, a name never listed).
    Unknown,
}

/// How a multivariant playlist lists one rendition.
#[derive(Debug, Clone, PartialEq)]
enum How {
    Variant {
        height: Option<u32>,
        bandwidth: u64,
        groups: Vec<String>,
    },
    Media {
        group: String,
    },
    IFrame {
        height: Option<u32>,
        bandwidth: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Listing {
    session: Option<String>,
    rendition: String,
    how: How,
}

/// A stream's renditions, as its multivariant playlist lists them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ladder {
    listings: Vec<Listing>,
}

impl Ladder {
    /// From the multivariant playlist's text, as the origin wrote it.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        text.parse::<MultivariantPlaylist>()
            .map(|pl| Self::from_playlist(&pl))
    }

    pub fn from_playlist(pl: &MultivariantPlaylist) -> Self {
        let mut listings = Vec::new();
        let mut add = |uri: &str, how: How| {
            if let Some((session, rendition)) = session_and_rendition(uri) {
                listings.push(Listing {
                    session: session.map(str::to_owned),
                    rendition: rendition.to_owned(),
                    how,
                });
            }
        };
        for v in &pl.variants {
            let groups = [&v.audio, &v.video, &v.subtitles]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            add(
                &v.uri,
                How::Variant {
                    height: v.resolution.map(|(_, h)| h),
                    bandwidth: v.bandwidth,
                    groups,
                },
            );
        }
        for r in &pl.renditions {
            if let Some(uri) = &r.uri {
                add(
                    uri,
                    How::Media {
                        group: r.group_id.clone(),
                    },
                );
            }
        }
        for v in &pl.i_frame_variants {
            let (height, bandwidth) = iframe_size(v);
            // No BANDWIDTH (the spec requires one): never within a cap.
            let bandwidth = bandwidth.unwrap_or(u64::MAX);
            add(&v.uri, How::IFrame { height, bandwidth });
        }
        Self { listings }
    }

    /// Where `rendition` of `session` (none for VOD) stands under `caps`.
    pub fn place(&self, session: Option<&str>, rendition: &str, caps: Limits) -> Placement {
        let mine: Vec<&Listing> = self
            .listings
            .iter()
            .filter(|l| {
                l.rendition == rendition && l.session.as_deref().is_none_or(|s| Some(s) == session)
            })
            .collect();
        if mine.is_empty() {
            return Placement::Unknown;
        }
        // Groups used by a variant within the caps.
        let allowed_groups: Vec<&str> = self
            .listings
            .iter()
            .filter_map(|l| match &l.how {
                How::Variant {
                    height,
                    bandwidth,
                    groups,
                } if caps.fits(*height, *bandwidth) => Some(groups),
                _ => None,
            })
            .flatten()
            .map(String::as_str)
            .collect();
        let allowed = mine.iter().any(|l| match &l.how {
            How::Variant {
                height, bandwidth, ..
            }
            | How::IFrame { height, bandwidth } => caps.fits(*height, *bandwidth),
            How::Media { group } => allowed_groups.contains(&group.as_str()),
        });
        if allowed {
            Placement::Allowed
        } else {
            Placement::OverCap
        }
    }

    /// The sessions the ladder's URIs name.
    pub fn sessions(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .listings
            .iter()
            .filter_map(|l| l.session.as_deref())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `S/<rendition>.m3u8` (query and fragment ignored): the session (if the
/// segment before the name is one) and the rendition.
fn session_and_rendition(uri: &str) -> Option<(Option<&str>, &str)> {
    let path = uri.split(['?', '#']).next().unwrap_or("");
    let mut segments = path.rsplit('/');
    let rendition = segments.next()?.strip_suffix(".m3u8")?;
    if !valid_rendition_name(rendition) {
        return None;
    }
    let session = segments.next().filter(|s| valid_session_id(s));
    Some((session, rendition))
}

/// What the edge does with a capped request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The ladder known for the stream decides.
    Decided(Placement),
    /// Fetch the multivariant playlist first (none known, too old, or it
    /// does not know this rendition and may have changed since).
    Fetch,
}

/// How long a ladder is used before it is fetched again (a session's
/// renditions do not change; their measured `BANDWIDTH` may).
pub const LADDER_TTL_MS: u64 = 10_000;

/// A ladder that does not know a rendition is fetched again at most this
/// often per stream, so requests for made-up names cost the origin at most
/// one multivariant request a second.
pub const REFETCH_MIN_MS: u64 = 1_000;

/// Most streams whose ladders an isolate keeps (the oldest go first).
pub const MAX_STREAMS: usize = 1024;

/// The ladders this isolate knows, by the path of the multivariant playlist
/// they come from (`/live/<stream>/index.m3u8`, `/vod/<asset>/index.m3u8`).
#[derive(Debug, Default)]
pub struct Ladders {
    by_stream: HashMap<String, (Rc<Ladder>, u64)>,
}

impl Ladders {
    /// What to do with a request for `rendition` of `session` from a viewer
    /// capped at `caps`.
    pub fn check(
        &self,
        stream: &str,
        session: Option<&str>,
        rendition: &str,
        caps: Limits,
        now_ms: u64,
    ) -> Check {
        let Some((ladder, at)) = self.by_stream.get(stream) else {
            return Check::Fetch;
        };
        let age = now_ms.saturating_sub(*at);
        if age >= LADDER_TTL_MS {
            return Check::Fetch;
        }
        match ladder.place(session, rendition, caps) {
            Placement::Unknown if age >= REFETCH_MIN_MS => Check::Fetch,
            placement => Check::Decided(placement),
        }
    }

    /// Keeps `ladder`, fetched at `now_ms`, for `stream`.
    pub fn store(&mut self, stream: &str, ladder: Ladder, now_ms: u64) {
        if !self.by_stream.contains_key(stream) && self.by_stream.len() >= MAX_STREAMS {
            let oldest = self
                .by_stream
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.by_stream.remove(&k);
            }
        }
        self.by_stream
            .insert(stream.to_owned(), (Rc::new(ladder), now_ms));
    }

    /// The decision from the ladder known for `stream`, however old (when
    /// fetching a new one failed): `Unknown` if none is.
    pub fn place_known(
        &self,
        stream: &str,
        session: Option<&str>,
        rendition: &str,
        caps: Limits,
    ) -> Placement {
        self.by_stream
            .get(stream)
            .map_or(Placement::Unknown, |(l, _)| {
                l.place(session, rendition, caps)
            })
    }

    pub fn len(&self) -> usize {
        self.by_stream.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_stream.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "0a1b2c3d4e5f6a7b";

    /// The ladder the origin serves (issue 11): three video rungs sharing an
    /// audio group, and an audio-only variant.
    fn ladder_text() -> String {
        format!(
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{S}/audio.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,CODECS=\"avc1.640028,mp4a.40.2\",AUDIO=\"aac\"\n{S}/1080p.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aac\"\n{S}/720p.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aac\"\n{S}/360p.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=140000,CODECS=\"mp4a.40.2\",AUDIO=\"aac\"\n{S}/audio.m3u8\n"
        )
    }

    fn caps(h: Option<u32>, bw: Option<u64>) -> Limits {
        Limits {
            max_height: h,
            max_bandwidth: bw,
        }
    }

    #[test]
    fn placements() {
        use Placement::*;
        let ladder = Ladder::parse(&ladder_text()).unwrap();
        assert_eq!(ladder.sessions(), [S]);
        let cases = [
            // (caps, rendition, expected)
            (caps(None, None), "1080p", Allowed),
            (caps(Some(720), None), "1080p", OverCap),
            (caps(Some(720), None), "720p", Allowed),
            (caps(Some(720), None), "360p", Allowed),
            (caps(Some(720), None), "audio", Allowed),
            (caps(Some(359), None), "360p", OverCap),
            // Audio is never capped by height: the audio-only variant and the
            // group every variant uses.
            (caps(Some(100), None), "audio", Allowed),
            (caps(None, Some(3_000_000)), "1080p", OverCap),
            (caps(None, Some(3_000_000)), "720p", Allowed),
            (caps(None, Some(600_000)), "360p", Allowed),
            (caps(None, Some(599_999)), "360p", OverCap),
            // maxbw applies to variants: the audio-only variant (140 kb/s)
            // fits, so does its rendition.
            (caps(None, Some(150_000)), "audio", Allowed),
            (caps(Some(480), Some(3_000_000)), "720p", OverCap),
            (caps(None, None), "2160p", Unknown),
            (caps(Some(720), None), "source", Unknown),
        ];
        for (c, rendition, want) in cases {
            assert_eq!(
                ladder.place(Some(S), rendition, c),
                want,
                "{c:?} {rendition}"
            );
        }
        assert_eq!(
            ladder.place(Some("ffffffffffffffff"), "360p", caps(Some(720), None)),
            Unknown,
            "another session"
        );
    }

    #[test]
    fn audio_groups_follow_the_variants_that_use_them() {
        // A high-rate audio group only the 1080p variant uses.
        let text = format!(
            "#EXTM3U\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"hi\",NAME=\"a\",URI=\"{S}/audio_hi.m3u8\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"lo\",NAME=\"a\",URI=\"{S}/audio_lo.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,AUDIO=\"hi\"\n{S}/1080p.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=640x360,AUDIO=\"lo\"\n{S}/360p.m3u8\n"
        );
        let ladder = Ladder::parse(&text).unwrap();
        let c = caps(Some(720), None);
        assert_eq!(ladder.place(Some(S), "audio_lo", c), Placement::Allowed);
        assert_eq!(ladder.place(Some(S), "audio_hi", c), Placement::OverCap);
    }

    #[test]
    fn passthrough_streams_keep_video_and_audio() {
        // Today's single rendition (packager/tests/playlists/multivariant_brook.m3u8 shape).
        let text = format!(
            "#EXTM3U\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,URI=\"{S}/audio.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2747564,RESOLUTION=1280x720,AUDIO=\"audio\"\n{S}/video.m3u8\n"
        );
        let ladder = Ladder::parse(&text).unwrap();
        assert_eq!(
            ladder.place(Some(S), "video", caps(Some(720), None)),
            Placement::Allowed
        );
        assert_eq!(
            ladder.place(Some(S), "audio", caps(Some(720), None)),
            Placement::Allowed
        );
        assert_eq!(
            ladder.place(Some(S), "video", caps(Some(480), None)),
            Placement::OverCap
        );
        assert_eq!(
            ladder.place(Some(S), "audio", caps(Some(480), None)),
            Placement::OverCap,
            "its only variant is over the cap: nothing to play the audio with"
        );
    }

    /// A VOD asset's multivariant (the origin's layout): URIs without a
    /// session, an I-frame playlist per video rendition.
    #[test]
    fn vod_ladder() {
        use Placement::*;
        let text = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"audio\",DEFAULT=YES,URI=\"audio.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,AUDIO=\"aac\"\n1080p.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,AUDIO=\"aac\"\n720p.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=300000,RESOLUTION=1920x1080,URI=\"1080p-iframes.m3u8\"\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=150000,RESOLUTION=1280x720,URI=\"720p-iframes.m3u8\"\n";
        let ladder = Ladder::parse(text).unwrap();
        assert!(ladder.sessions().is_empty());
        let c = caps(Some(720), None);
        // VOD requests name no session (`route::Media::session`).
        assert_eq!(ladder.place(None, "720p", c), Allowed);
        assert_eq!(ladder.place(None, "1080p", c), OverCap);
        assert_eq!(ladder.place(None, "audio", c), Allowed);
        assert_eq!(ladder.place(None, "4k", c), Unknown);
        // Listings without a session match a live request's session too.
        assert_eq!(ladder.place(Some(S), "720p", c), Allowed);
        // A live ladder's session-bound listings never match a VOD request.
        let live = Ladder::parse(&ladder_text()).unwrap();
        assert_eq!(live.place(None, "720p", c), Unknown);
        // An I-frame variant's bandwidth does not open its rendition's
        // segments: `1080p-iframes.m3u8` is placed as `1080p` (`route::Vod`).
        assert_eq!(
            ladder.place(None, "1080p", caps(None, Some(1_000_000))),
            OverCap
        );
    }

    #[test]
    fn uris_name_session_and_rendition() {
        for (uri, want) in [
            (format!("{S}/720p.m3u8"), Some((Some(S), "720p"))),
            (format!("{S}/720p.m3u8?x=1#f"), Some((Some(S), "720p"))),
            (
                format!("https://cdn.example/live/cam1/{S}/720p.m3u8"),
                Some((Some(S), "720p")),
            ),
            ("720p.m3u8".to_string(), Some((None, "720p"))),
            (format!("{S}/a-b.m3u8"), None),
            (format!("{S}/720p.mpd"), None),
        ] {
            assert_eq!(session_and_rendition(&uri), want, "{uri}");
        }
    }

    #[test]
    fn ladders_are_fetched_when_missing_old_or_ignorant() {
        let mut l = Ladders::default();
        let c = caps(Some(720), None);
        assert_eq!(l.check("cam1", Some(S), "720p", c, 0), Check::Fetch);
        l.store("cam1", Ladder::parse(&ladder_text()).unwrap(), 1000);
        assert_eq!(
            l.check("cam1", Some(S), "720p", c, 1000),
            Check::Decided(Placement::Allowed)
        );
        assert_eq!(
            l.check("cam1", Some(S), "1080p", c, 1000),
            Check::Decided(Placement::OverCap)
        );
        // A name it does not know: decided (403) within a second of the
        // fetch, fetched again after (a new session may have started).
        assert_eq!(
            l.check("cam1", Some(S), "4k", c, 1500),
            Check::Decided(Placement::Unknown)
        );
        assert_eq!(l.check("cam1", Some(S), "4k", c, 2000), Check::Fetch);
        assert_eq!(
            l.check("cam1", Some(S), "720p", c, 1000 + LADDER_TTL_MS),
            Check::Fetch
        );
        // Another stream has its own.
        assert_eq!(l.check("cam2", Some(S), "720p", c, 1000), Check::Fetch);
        assert_eq!(
            l.place_known("cam1", Some(S), "720p", c),
            Placement::Allowed
        );
        assert_eq!(
            l.place_known("cam2", Some(S), "720p", c),
            Placement::Unknown
        );
    }

    #[test]
    fn ladders_are_bounded() {
        let mut l = Ladders::default();
        for i in 0..(MAX_STREAMS + 10) {
            l.store(&format!("cam{i}"), Ladder::default(), i as u64);
        }
        assert_eq!(l.len(), MAX_STREAMS);
        assert_eq!(
            l.check("cam0", Some(S), "x", Limits::default(), 0),
            Check::Fetch,
            "the oldest went"
        );
    }
}
