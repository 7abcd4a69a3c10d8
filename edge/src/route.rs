//! Which requests the Worker handles, and what they ask for, decided from the
//! path alone. The URL layout follows the origin's:
//!
//! ```text
//! /live/<stream>/index.m3u8              multivariant playlist      (personalized)
//! /live/<stream>/steering.json           HLS steering manifest      (made here)
//! /live/<stream>/steering-dash.json      DASH steering manifest     (made here)
//! /live/<stream>/<name>.mpd              DASH MPD                   (personalized)
//! /live/<stream>/<session>/<name>.m3u8   media playlist             (personalized)
//! /live/<stream>/<session>/<name>.mpd    DASH MPD of a session      (personalized)
//! /live/<stream>/<session>/video-init.mp4     init section          (cached for good)
//! /live/<stream>/<session>/video-partM.P.m4s  part (audio-… too)    (cached for good)
//! /live/<stream>/<session>/video-segM.m4s     segment               (cached for good)
//! /live/<stream>/<session>/time          the time, for DASH UTCTiming
//! /_brook/metrics                        this isolate's counters    (needs METRICS_TOKEN)
//! /chat/<stream>                         chat room WebSocket        (docs/chat.md)
//! /chat/<stream>/history                 chat by PDT range (VOD replay)
//! /chat/<stream>/moderate                moderation API             (moderator token)
//! ```
//!
//! A `/live/` path is decoded and checked by [`LivePath::parse`], the rule
//! the origin applies too, before anything else looks at it: a path it
//! refuses (an encoded `/`, a dot segment, a name the origin would never
//! serve) is a 404 before any token or geo check, and everything after
//! works on the one spelling it returns.

use brook_common::{valid_rendition_name, valid_stream_name, LivePath};

/// What the Worker does with a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// An LL-HLS delivery object under `/live/<stream>/`: checked (token,
    /// geo), then answered from the cache, the origin, or made here.
    Live(Live),
    /// `/_brook/metrics`: Prometheus text of this isolate's counters.
    Metrics,
    /// `/_brook/bench/rewrite`: the manifest rewrite benchmark (only when the
    /// `BROOK_BENCH` var is set).
    Bench,
    /// `/chat/<stream>[/...]`: the stream's chat room (a Durable Object).
    Chat(Chat<'a>),
    /// Anything else. Static files never get here: the assets layer answers
    /// them before the Worker runs.
    NotFound,
}

/// A request under `/live/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The path, decoded and checked; its `Display` is the one spelling
    /// tokens are checked against, the cache is keyed by and the origin is
    /// asked for.
    pub path: LivePath,
    pub kind: Kind,
}

impl Live {
    /// The stream name (first path segment after `/live/`).
    pub fn stream(&self) -> &str {
        &self.path.stream
    }

    /// The publish session a media playlist or object belongs to.
    pub fn session(&self) -> Option<&str> {
        self.path.session.as_deref()
    }

    /// The rendition a media playlist or object belongs to (`None` for
    /// everything else, and for objects of sessions written before objects
    /// carried their rendition's name).
    pub fn rendition(&self) -> Option<&str> {
        match self.kind {
            Kind::MediaPlaylist | Kind::Init | Kind::Part | Kind::Segment
                if self.path.session.is_some() =>
            {
                object(&self.path.name).1
            }
            _ => None,
        }
    }

    /// Whether the token's rendition caps (`maxh`, `maxbw`) govern this
    /// request: a media playlist or object of one rendition. (The
    /// multivariant playlist and the MPD are filtered instead.)
    pub fn is_capped_kind(&self) -> bool {
        matches!(
            self.kind,
            Kind::MediaPlaylist | Kind::Init | Kind::Part | Kind::Segment
        )
    }
}

/// A request under `/chat/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chat<'a> {
    /// The stream name: `[A-Za-z0-9_-]{1,64}`, as the origin's.
    pub stream: &'a str,
    pub kind: ChatKind,
}

/// What a `/chat/` path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// `/chat/<stream>`: the WebSocket.
    Socket,
    /// `/chat/<stream>/history`: messages by timeline range.
    History,
    /// `/chat/<stream>/moderate`: moderation (POST) and room stats (GET).
    Moderate,
}

impl ChatKind {
    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Socket => "chat_socket",
            ChatKind::History => "chat_history",
            ChatKind::Moderate => "chat_moderate",
        }
    }
}

/// What a `/live/` path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Multivariant,
    MediaPlaylist,
    Init,
    Part,
    Segment,
    SteeringHls,
    SteeringDash,
    Mpd,
    /// Anything else under `/live/<stream>/`: proxied as is.
    Other,
}

impl Kind {
    /// Playlists and MPDs: rewritten per viewer.
    pub fn is_manifest(self) -> bool {
        matches!(self, Kind::Multivariant | Kind::MediaPlaylist | Kind::Mpd)
    }

    /// Immutable media objects (their URL carries the publish session).
    pub fn is_object(self) -> bool {
        matches!(self, Kind::Init | Kind::Part | Kind::Segment)
    }

    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Multivariant => "multivariant",
            Kind::MediaPlaylist => "media_playlist",
            Kind::Init => "init",
            Kind::Part => "part",
            Kind::Segment => "segment",
            Kind::SteeringHls => "steering_hls",
            Kind::SteeringDash => "steering_dash",
            Kind::Mpd => "mpd",
            Kind::Other => "other",
        }
    }
}

/// Methods the [`Route::Live`] proxy accepts, in `Allow` header form
/// (`OPTIONS` is answered as a CORS preflight).
pub const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// Picks the route for a URL path (as received: percent-encoded).
pub fn route(path: &str) -> Route<'_> {
    match path {
        "/_brook/metrics" => return Route::Metrics,
        "/_brook/bench/rewrite" => return Route::Bench,
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/chat/") {
        return chat_route(rest);
    }
    let Ok(path) = LivePath::parse(path) else {
        return Route::NotFound;
    };
    let kind = match (&path.session, path.name.as_str()) {
        (None, "index.m3u8") => Kind::Multivariant,
        (None, "steering.json") => Kind::SteeringHls,
        (None, "steering-dash.json") => Kind::SteeringDash,
        (None, name) if name.ends_with(".mpd") => Kind::Mpd,
        (None, name) if name.ends_with(".m3u8") => Kind::MediaPlaylist,
        (None, _) => Kind::Other,
        (Some(_), name) => object_kind(name),
    };
    Route::Live(Live { path, kind })
}

fn chat_route(rest: &str) -> Route<'_> {
    let (stream, tail) = match rest.split_once('/') {
        Some((_, "")) => return Route::NotFound,
        Some(split) => split,
        None => (rest, ""),
    };
    let name_ok = valid_stream_name(stream);
    let kind = match tail {
        "" => ChatKind::Socket,
        "history" => ChatKind::History,
        "moderate" => ChatKind::Moderate,
        _ => return Route::NotFound,
    };
    if !name_ok {
        return Route::NotFound;
    }
    Route::Chat(Chat { stream, kind })
}

fn object_kind(name: &str) -> Kind {
    object(name).0
}

/// What an object name within a session is, and the rendition it belongs
/// to. Objects are named per rendition (`[A-Za-z0-9_]+`, chosen by the
/// origin's config: `video`, `audio`, `1080p`, `source`, ...):
/// `<rendition>.m3u8`, `<rendition>-init.mp4` (`-initN.mp4` after a
/// configuration change), `<rendition>-segM.m4s`, `<rendition>-partM.P.m4s`;
/// `<rendition>-iframes.m3u8` (a finished presentation's I-frame playlist,
/// byte ranges of the rendition's segments) belongs to its rendition too, so
/// the caps decide it as they decide those segments.
/// Older sessions wrote objects without the prefix (no rendition then).
fn object(name: &str) -> (Kind, Option<&str>) {
    if let Some(stem) = name.strip_suffix(".m3u8") {
        let stem = stem.strip_suffix("-iframes").unwrap_or(stem);
        return (
            Kind::MediaPlaylist,
            valid_rendition_name(stem).then_some(stem),
        );
    }
    if name.ends_with(".mpd") {
        return (Kind::Mpd, None);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (rendition, rest) = match name.split_once('-') {
        Some((rendition, rest)) if valid_rendition_name(rendition) => (Some(rendition), rest),
        _ => (None, name),
    };
    if let Some(n) = rest
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        if n.is_empty() || digits(n) {
            return (Kind::Init, rendition);
        }
    }
    if let Some(stem) = rest.strip_suffix(".m4s") {
        if let Some(n) = stem.strip_prefix("seg") {
            if digits(n) {
                return (Kind::Segment, rendition);
            }
        }
        if let Some((m, p)) = stem.strip_prefix("part").and_then(|r| r.split_once('.')) {
            if digits(m) && digits(p) {
                return (Kind::Part, rendition);
            }
        }
    }
    (Kind::Other, None)
}

/// Whether the live proxy serves `method` (HTTP methods are case-sensitive).
pub fn is_allowed_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "0a1b2c3d4e5f6a7b";

    fn live(path: &str, kind: Kind) -> Route<'static> {
        Route::Live(Live {
            path: LivePath::parse(path).unwrap(),
            kind,
        })
    }

    fn chat(stream: &str, kind: ChatKind) -> Route<'_> {
        Route::Chat(Chat { stream, kind })
    }

    #[test]
    fn routes() {
        use Kind::*;
        let obj = |name: &str| format!("/live/cam1/{S}/{name}");
        let cases: Vec<(String, Route<'static>)> = vec![
            (
                "/live/cam1/index.m3u8".into(),
                live("/live/cam1/index.m3u8", Multivariant),
            ),
            (
                "/live/cam1/steering.json".into(),
                live("/live/cam1/steering.json", SteeringHls),
            ),
            (
                "/live/cam1/steering-dash.json".into(),
                live("/live/cam1/steering-dash.json", SteeringDash),
            ),
            (
                "/live/cam1/manifest.mpd".into(),
                live("/live/cam1/manifest.mpd", Mpd),
            ),
            (
                "/live/cam1/other.m3u8".into(),
                live("/live/cam1/other.m3u8", MediaPlaylist),
            ),
            (
                "/live/cam1/init.mp4".into(),
                live("/live/cam1/init.mp4", Other),
            ),
            (
                "/live/cam1/slow.m4s".into(),
                live("/live/cam1/slow.m4s", Other),
            ),
            (obj("media.m3u8"), live(&obj("media.m3u8"), MediaPlaylist)),
            (obj("audio.m3u8"), live(&obj("audio.m3u8"), MediaPlaylist)),
            (obj("init.mp4"), live(&obj("init.mp4"), Init)),
            (obj("video-init.mp4"), live(&obj("video-init.mp4"), Init)),
            (obj("audio-init2.mp4"), live(&obj("audio-init2.mp4"), Init)),
            (
                obj("video-part12.3.m4s"),
                live(&obj("video-part12.3.m4s"), Part),
            ),
            (
                obj("audio-seg12.m4s"),
                live(&obj("audio-seg12.m4s"), Segment),
            ),
            (obj("manifest.mpd"), live(&obj("manifest.mpd"), Mpd)),
            (obj("time"), live(&obj("time"), Other)),
            (obj("Video-seg1.m4s"), live(&obj("Video-seg1.m4s"), Segment)),
            (
                obj("1080p-part3.1.m4s"),
                live(&obj("1080p-part3.1.m4s"), Part),
            ),
            (obj("720p.m3u8"), live(&obj("720p.m3u8"), MediaPlaylist)),
            (obj("a-b-seg1.m4s"), live(&obj("a-b-seg1.m4s"), Other)),
            (obj("part12.3.m4s"), live(&obj("part12.3.m4s"), Part)),
            (obj("seg12.m4s"), live(&obj("seg12.m4s"), Segment)),
            (obj("seg.m4s"), live(&obj("seg.m4s"), Other)),
            (obj("part1.m4s"), live(&obj("part1.m4s"), Other)),
            (obj("partx.1.m4s"), live(&obj("partx.1.m4s"), Other)),
            (obj("seg12.part3.m4s"), live(&obj("seg12.part3.m4s"), Other)),
            // One spelling: escapes of unreserved characters are decoded.
            (
                "/live/c%61m1/index.m3u8".into(),
                live("/live/cam1/index.m3u8", Multivariant),
            ),
            ("/live/x".into(), Route::NotFound),
            ("/live/cam1/".into(), Route::NotFound),
            (format!("/live/cam1/{S}/"), Route::NotFound),
            ("/live/cam1/S1/media.m3u8".into(), Route::NotFound),
            ("/live/cam1/a/b/c".into(), Route::NotFound),
            ("/live/cam1/..m3u8".into(), Route::NotFound),
            ("/live//index.m3u8".into(), Route::NotFound),
            ("/live/".into(), Route::NotFound),
            ("/live".into(), Route::NotFound),
            ("/lively/cam1/index.m3u8".into(), Route::NotFound),
            ("/".into(), Route::NotFound),
            ("/index.html".into(), Route::NotFound),
            ("/vendor/hls.min.js".into(), Route::NotFound),
            ("".into(), Route::NotFound),
            ("/LIVE/cam1/index.m3u8".into(), Route::NotFound),
            ("/live/../admin".into(), Route::NotFound),
            ("/live/cam1/./index.m3u8".into(), Route::NotFound),
            ("/live/%2e%2e/admin".into(), Route::NotFound),
            ("/live/%2E./admin".into(), Route::NotFound),
            ("/live/cam1/..".into(), Route::NotFound),
            ("/_brook/metrics".into(), Route::Metrics),
            ("/_brook/bench/rewrite".into(), Route::Bench),
            ("/_brook/other".into(), Route::NotFound),
            ("/chat/cam1".into(), chat("cam1", ChatKind::Socket)),
            ("/chat/cam_1-B".into(), chat("cam_1-B", ChatKind::Socket)),
            ("/chat/cam1/history".into(), chat("cam1", ChatKind::History)),
            (
                "/chat/cam1/moderate".into(),
                chat("cam1", ChatKind::Moderate),
            ),
            ("/chat/cam1/".into(), Route::NotFound),
            ("/chat/cam1/other".into(), Route::NotFound),
            ("/chat/cam1/history/x".into(), Route::NotFound),
            ("/chat/".into(), Route::NotFound),
            ("/chat".into(), Route::NotFound),
            ("/chat/..".into(), Route::NotFound),
            ("/chat/%2e%2e/history".into(), Route::NotFound),
            ("/chat/a.b".into(), Route::NotFound),
            ("/chat/caf%C3%A9".into(), Route::NotFound),
            ("/chat.js".into(), Route::NotFound),
        ];
        for (path, want) in cases {
            assert_eq!(route(&path), want, "route({path:?})");
        }
    }

    /// issue 16: `/live/cam1/..%2fcam2/...` must not pass as a cam1 request
    /// (it used to route as cam1's media playlist, so a cam1 token opened
    /// it, and only the origin stopped it).
    #[test]
    fn an_encoded_separator_never_passes_as_another_streams_path() {
        for path in [
            "/live/cam1/..%2fcam2/index.m3u8",
            "/live/cam1/..%2Fcam2/video.m3u8",
            "/live/cam1/%2e%2e%2fcam2/index.m3u8",
            "/live/cam1/x%5c..%5ccam2/index.m3u8",
        ] {
            assert_eq!(route(path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn renditions() {
        let cases = [
            ("video.m3u8", Some("video")),
            ("1080p.m3u8", Some("1080p")),
            ("source_hd.m3u8", Some("source_hd")),
            ("720p-iframes.m3u8", Some("720p")),
            ("-iframes.m3u8", None),
            ("720p-init.mp4", Some("720p")),
            ("audio-init2.mp4", Some("audio")),
            ("360p-seg12.m4s", Some("360p")),
            ("1080p-part12.3.m4s", Some("1080p")),
            ("seg12.m4s", None),
            ("init.mp4", None),
            ("manifest.mpd", None),
            ("time", None),
            ("a.b.m3u8", None),
        ];
        for (name, want) in cases {
            let path = format!("/live/cam1/{S}/{name}");
            let Route::Live(live) = route(&path) else {
                panic!("{path} does not route")
            };
            assert_eq!(live.rendition(), want, "{name}");
        }
        let Route::Live(mv) = route("/live/cam1/index.m3u8") else {
            panic!()
        };
        assert_eq!(mv.rendition(), None);
        assert!(!mv.is_capped_kind());
    }

    #[test]
    fn methods() {
        for m in ["GET", "HEAD"] {
            assert!(is_allowed_method(m), "{m}");
        }
        for m in [
            "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "get", "",
        ] {
            assert!(!is_allowed_method(m), "{m}");
        }
    }
}
