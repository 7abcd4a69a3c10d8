//! Stream start and end notices, decided at the edge from the playlists it
//! serves anyway: no hook in the origin, no polling.
//!
//! ```text
//! GET /live/<stream>/<session>/video.m3u8   served 200      bindings/fetch.rs
//!   Notices::observe(stream, kind, path, playlist) -> Some(event)     once per isolate
//!   ctx.wait_until(POST room/announce?session=...&state=...)          after the response
//!     Room::announce: advances(last stored, event)?                   room.rs, store.rs
//!       stored, then `system` stream_started / stream_ended to everyone
//! ```
//!
//! - **started**: a media playlist of a session without `EXT-X-ENDLIST`;
//! - **ended**: a media playlist of that session with `EXT-X-ENDLIST`.
//!
//! Multivariant playlists are not looked at: one looks the same while the
//! stream is live and after it ended (brook-origin keeps pointing it at the
//! newest session, archived), so it cannot say "live", and every player
//! asks for a media playlist right after it anyway.
//!
//! Every isolate in every colo sees the same playlists, so an isolate's memo
//! ([`Notices`]) only keeps it from asking the room again and again; the
//! room decides ([`advances`]) against the last event it stored, so the
//! room and its history get each start and end once.
//!
//! Sessions are ordered: brook-origin's session ids are 16 hex digits that
//! begin with the start time in seconds (docs/origin.md), so a later
//! session's id is greater. That is what keeps a stale cached playlist of
//! the previous session, or a viewer replaying an old session's VOD, from
//! announcing anything. Ids of another shape are only compared for
//! equality (a different one counts as later).

use std::cmp::Ordering;
use std::collections::HashMap;

use super::schema::StreamState;
use crate::route::Kind;

/// Streams an isolate remembers; past that the memo starts over (the room
/// still refuses repeats, so this only costs requests).
const MAX_STREAMS: usize = 1024;

/// A publish session started or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The session id from the media playlist's URL (`[A-Za-z0-9_-]{1,64}`).
    pub session: String,
    pub state: StreamState,
}

impl StreamEvent {
    /// `session=<id>&state=started|ended` (the id needs no escaping).
    pub fn to_query(&self) -> String {
        format!("session={}&state={}", self.session, self.state.as_str())
    }

    /// The inverse of [`StreamEvent::to_query`]; `None` for anything else.
    pub fn from_query(query: &str) -> Option<Self> {
        let session = crate::query::param(query, "session")?;
        let state = StreamState::parse(&crate::query::param(query, "state")?)?;
        is_name(&session).then(|| Self {
            session: session.into_owned(),
            state,
        })
    }
}

/// Stream names and session ids the edge accepts: `[A-Za-z0-9_-]{1,64}`
/// (the origin's rule for stream names, and the chat room's).
pub fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A session id as brook-origin makes them: 16 lowercase hex digits.
fn is_ordered_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// How session `a` compares with `b` in time; `None` when that cannot be
/// told (different ids not both made by brook-origin).
fn order(a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        Some(Ordering::Equal)
    } else if is_ordered_id(a) && is_ordered_id(b) {
        Some(a.cmp(b))
    } else {
        None
    }
}

/// `a` is a later session than `b` (or a different one that cannot be ordered).
fn is_later(a: &str, b: &str) -> bool {
    matches!(order(a, b), Some(Ordering::Greater) | None)
}

/// The room's rule: whether `next` is news after `last`, the newest event
/// the room announced.
///
/// - a session starts once, and only when it is later than the last one
///   announced: a stale playlist of an earlier session never restarts it,
///   and nothing starts a session again after its end;
/// - a session ends once, and only after the room announced its start: a
///   VOD of an old session, or of one nobody watched live, announces
///   nothing.
pub fn advances(last: Option<&StreamEvent>, next: &StreamEvent) -> bool {
    match next.state {
        StreamState::Started => {
            last.is_none_or(|l| l.session != next.session && is_later(&next.session, &l.session))
        }
        StreamState::Ended => {
            last.is_some_and(|l| l.session == next.session && l.state == StreamState::Started)
        }
    }
}

/// Whether an isolate that last sent `sent` for a stream should tell the
/// room about `next`. Looser than [`advances`] for ends (an isolate that
/// never saw the session live may be the only one to see its end), so the
/// room has the last word.
fn worth_sending(sent: Option<&StreamEvent>, next: &StreamEvent) -> bool {
    match sent {
        None => true,
        Some(s) if s.session == next.session => {
            s.state == StreamState::Started && next.state == StreamState::Ended
        }
        Some(s) => is_later(&next.session, &s.session),
    }
}

/// `<session>` of `/live/<stream>/<session>/<name>`.
fn session_of<'a>(stream: &str, path: &'a str) -> Option<&'a str> {
    let rest = path
        .strip_prefix("/live/")?
        .strip_prefix(stream)?
        .strip_prefix('/')?;
    let (session, name) = rest.split_once('/')?;
    (is_name(session) && !name.is_empty() && !name.contains('/')).then_some(session)
}

/// `EXT-X-ENDLIST` on a line of its own. Looked for from the end, where
/// packagers write it (RFC 8216bis allows it anywhere, so the whole playlist
/// is searched when it is not there).
fn has_endlist(playlist: &str) -> bool {
    playlist
        .lines()
        .rev()
        .any(|l| l.trim_end() == "#EXT-X-ENDLIST")
}

/// One isolate's memo: the last event it sent, per stream.
#[derive(Debug, Default)]
pub struct Notices {
    sent: HashMap<String, StreamEvent>,
}

impl Notices {
    /// A playlist the edge is about to serve (status 200): `path` is the
    /// request path, `playlist` the body as the origin wrote it. Returns the
    /// event to send to the stream's room, at most once per event in this
    /// isolate; it counts as sent from then on (see [`Notices::forget`]).
    pub fn observe(
        &mut self,
        stream: &str,
        kind: Kind,
        path: &str,
        playlist: &str,
    ) -> Option<StreamEvent> {
        if kind != Kind::MediaPlaylist || !is_name(stream) {
            return None;
        }
        let session = session_of(stream, path)?;
        let sent = self.sent.get(stream);
        // Nothing follows this session's end or comes from an earlier
        // session: the common case (a live session already announced) still
        // needs the scan for its end.
        if sent.is_some_and(|s| {
            (s.session == session && s.state == StreamState::Ended)
                || order(session, &s.session) == Some(Ordering::Less)
        }) {
            return None;
        }
        if !playlist.trim_start().starts_with("#EXTM3U") {
            return None;
        }
        let next = StreamEvent {
            session: session.to_owned(),
            state: if has_endlist(playlist) {
                StreamState::Ended
            } else {
                StreamState::Started
            },
        };
        if !worth_sending(sent, &next) {
            return None;
        }
        if self.sent.len() >= MAX_STREAMS && !self.sent.contains_key(stream) {
            self.sent.clear();
        }
        self.sent.insert(stream.to_owned(), next.clone());
        Some(next)
    }

    /// Sending `event` failed: forget it (unless something newer was sent
    /// since), so the next playlist of the stream tries again.
    pub fn forget(&mut self, stream: &str, event: &StreamEvent) {
        if self.sent.get(stream) == Some(event) {
            self.sent.remove(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StreamState::{Ended, Started};

    const S1: &str = "69a0c8e1f3b2a417";
    const S2: &str = "69a0d2c400c0ffee";

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n\
        #EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2.0,\nvideo-seg4.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"video-part5.0.m4s\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"video-part5.1.m4s\"\n#EXT-X-RENDITION-REPORT:URI=\"audio.m3u8\",LAST-MSN=5\n";
    const ENDED: &str =
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
        #EXTINF:2.0,\nvideo-seg4.m4s\n#EXTINF:1.2,\nvideo-seg5.m4s\n#EXT-X-ENDLIST\n";

    fn ev(session: &str, state: StreamState) -> StreamEvent {
        StreamEvent {
            session: session.into(),
            state,
        }
    }

    fn media(session: &str) -> String {
        format!("/live/cam1/{session}/video.m3u8")
    }

    #[test]
    fn sessions_from_media_playlist_paths() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/live/cam1/69a0c8e1f3b2a417/video.m3u8", Some(S1)),
            ("/live/cam1/69a0c8e1f3b2a417/media.m3u8", Some(S1)),
            ("/live/cam1/legacy_1/audio.m3u8", Some("legacy_1")),
            ("/live/cam1/video.m3u8", None),
            ("/live/cam1/a/b/video.m3u8", None),
            ("/live/cam1/69a0c8e1f3b2a417/", None),
            ("/live/cam10/69a0c8e1f3b2a417/video.m3u8", None),
            ("/live/cam1/%2e%2e/video.m3u8", None),
            ("/chat/cam1/x/video.m3u8", None),
        ];
        for (path, want) in cases {
            assert_eq!(session_of("cam1", path), *want, "{path}");
        }
    }

    #[test]
    fn endlist_anywhere_on_its_own_line() {
        assert!(!has_endlist(LIVE));
        assert!(has_endlist(ENDED));
        assert!(has_endlist("#EXTM3U\r\n#EXT-X-ENDLIST\r\n"));
        assert!(has_endlist(
            "#EXTM3U\n#EXT-X-ENDLIST\n#EXTINF:2,\nseg1.m4s\n"
        ));
        assert!(!has_endlist("#EXTM3U\n#EXT-X-ENDLISTX\n"));
        assert!(!has_endlist("#EXTM3U\nseg#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn query_round_trip() {
        for e in [ev(S1, Started), ev("legacy_1", Ended)] {
            assert_eq!(StreamEvent::from_query(&e.to_query()), Some(e));
        }
        assert_eq!(
            StreamEvent::from_query("session=69a0c8e1f3b2a417&state=ended"),
            Some(ev(S1, Ended))
        );
        for bad in [
            "",
            "session=a",
            "state=started",
            "session=a&state=paused",
            "session=a%2Fb&state=started",
            "session=&state=started",
        ] {
            assert_eq!(StreamEvent::from_query(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_room_announces_each_start_and_end_once() {
        // (last stored, next, announced?)
        let cases: &[(Option<StreamEvent>, StreamEvent, bool)] = &[
            (None, ev(S1, Started), true),
            (None, ev(S1, Ended), false),
            (Some(ev(S1, Started)), ev(S1, Started), false),
            (Some(ev(S1, Started)), ev(S1, Ended), true),
            (Some(ev(S1, Ended)), ev(S1, Ended), false),
            (Some(ev(S1, Ended)), ev(S1, Started), false),
            (Some(ev(S1, Ended)), ev(S2, Started), true),
            (Some(ev(S1, Started)), ev(S2, Started), true),
            (Some(ev(S1, Ended)), ev(S2, Ended), false),
            // An earlier session: a stale cached playlist, a VOD replay.
            (Some(ev(S2, Started)), ev(S1, Started), false),
            (Some(ev(S2, Started)), ev(S1, Ended), false),
            (Some(ev(S2, Ended)), ev(S1, Started), false),
            // Ids that cannot be ordered: a different one is a new session.
            (Some(ev("a", Ended)), ev("b", Started), true),
            (Some(ev("a", Started)), ev("b", Ended), false),
        ];
        for (last, next, want) in cases {
            assert_eq!(
                advances(last.as_ref(), next),
                *want,
                "{last:?} then {next:?}"
            );
        }
    }

    #[test]
    fn an_isolate_sends_each_event_once() {
        let mut n = Notices::default();
        let mf = Kind::MediaPlaylist;
        assert_eq!(
            n.observe("cam1", mf, &media(S1), LIVE),
            Some(ev(S1, Started))
        );
        for _ in 0..3 {
            assert_eq!(n.observe("cam1", mf, &media(S1), LIVE), None);
        }
        // The other renditions' playlists are the same session.
        assert_eq!(
            n.observe("cam1", mf, &format!("/live/cam1/{S1}/audio.m3u8"), LIVE),
            None
        );
        assert_eq!(
            n.observe("cam1", mf, &media(S1), ENDED),
            Some(ev(S1, Ended))
        );
        assert_eq!(n.observe("cam1", mf, &media(S1), ENDED), None);
        assert_eq!(
            n.observe("cam1", mf, &media(S1), LIVE),
            None,
            "ended stays ended"
        );
        assert_eq!(
            n.observe("cam1", mf, &media(S2), LIVE),
            Some(ev(S2, Started))
        );
        assert_eq!(n.observe("cam1", mf, &media(S1), ENDED), None, "an old VOD");
        assert_eq!(
            n.observe("cam1", mf, &media(S1), LIVE),
            None,
            "a stale playlist"
        );
        // Streams are separate.
        assert_eq!(
            n.observe("cam2", mf, &format!("/live/cam2/{S1}/video.m3u8"), LIVE),
            Some(ev(S1, Started))
        );
    }

    #[test]
    fn an_isolate_that_only_sees_the_end_still_tells_the_room() {
        let mut n = Notices::default();
        let got = n.observe("cam1", Kind::MediaPlaylist, &media(S1), ENDED);
        assert_eq!(got, Some(ev(S1, Ended)));
        assert_eq!(
            n.observe("cam1", Kind::MediaPlaylist, &media(S1), ENDED),
            None
        );
    }

    #[test]
    fn only_media_playlists_of_a_session_count() {
        let mut n = Notices::default();
        let multivariant = format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{S1}/video.m3u8\n");
        let cases: &[(&str, Kind, &str, &str)] = &[
            (
                "cam1",
                Kind::Multivariant,
                "/live/cam1/index.m3u8",
                &multivariant,
            ),
            (
                "cam1",
                Kind::Mpd,
                &format!("/live/cam1/{S1}/manifest.mpd"),
                "<MPD/>",
            ),
            ("cam1", Kind::MediaPlaylist, "/live/cam1/video.m3u8", LIVE),
            ("cam1", Kind::MediaPlaylist, &media(S1), "not found\n"),
            ("cam1", Kind::MediaPlaylist, &media(S1), ""),
            (
                "bad.name",
                Kind::MediaPlaylist,
                &format!("/live/bad.name/{S1}/video.m3u8"),
                LIVE,
            ),
        ];
        for (stream, kind, path, body) in cases {
            assert_eq!(
                n.observe(stream, *kind, path, body),
                None,
                "{kind:?} {path}"
            );
        }
    }

    #[test]
    fn a_failed_delivery_is_tried_again() {
        let mut n = Notices::default();
        let mf = Kind::MediaPlaylist;
        let started = n.observe("cam1", mf, &media(S1), LIVE).unwrap();
        n.forget("cam1", &started);
        assert_eq!(
            n.observe("cam1", mf, &media(S1), LIVE),
            Some(started.clone())
        );
        // Something newer was sent meanwhile: that one is kept.
        let ended = n.observe("cam1", mf, &media(S1), ENDED).unwrap();
        n.forget("cam1", &started);
        assert_eq!(n.observe("cam1", mf, &media(S1), ENDED), None);
        n.forget("cam1", &ended);
        assert_eq!(n.observe("cam1", mf, &media(S1), ENDED), Some(ended));
    }

    #[test]
    fn the_memo_is_bounded() {
        let mut n = Notices::default();
        for i in 0..3 * MAX_STREAMS {
            let stream = format!("s{i}");
            let path = format!("/live/{stream}/{S1}/video.m3u8");
            assert!(n
                .observe(&stream, Kind::MediaPlaylist, &path, LIVE)
                .is_some());
            assert!(n.sent.len() <= MAX_STREAMS);
        }
    }
}
