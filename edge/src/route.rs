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

/// What the Worker does with a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// An LL-HLS delivery object under `/live/<stream>/`: checked (token,
    /// geo), then answered from the cache, the origin, or made here.
    Live(Live<'a>),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live<'a> {
    /// The stream name (first path segment after `/live/`).
    pub stream: &'a str,
    pub kind: Kind,
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

/// Picks the route for a URL path (as parsed by the runtime: percent-encoded,
/// dot segments already resolved).
///
/// Only `/live/<stream>/<something>` is served. Dot segments are refused
/// anyway, so a path that was not normalised upstream can never climb out of
/// `/live/` on the origin (nor out of a token's ACL).
pub fn route(path: &str) -> Route<'_> {
    match path {
        "/_brook/metrics" => return Route::Metrics,
        "/_brook/bench/rewrite" => return Route::Bench,
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/chat/") {
        return chat_route(rest);
    }
    let Some(rest) = path.strip_prefix("/live/") else {
        return Route::NotFound;
    };
    if rest.split('/').any(is_dot_segment) {
        return Route::NotFound;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let Some((&stream, tail)) = segments.split_first() else {
        return Route::NotFound;
    };
    if stream.is_empty() || tail.last().is_none_or(|last| last.is_empty()) {
        return Route::NotFound;
    }
    let kind = match tail {
        ["index.m3u8"] => Kind::Multivariant,
        ["steering.json"] => Kind::SteeringHls,
        ["steering-dash.json"] => Kind::SteeringDash,
        [name] if name.ends_with(".mpd") => Kind::Mpd,
        [name] if name.ends_with(".m3u8") => Kind::MediaPlaylist,
        [_session, name] => object_kind(name),
        _ => Kind::Other,
    };
    Route::Live(Live { stream, kind })
}

fn chat_route(rest: &str) -> Route<'_> {
    let (stream, tail) = match rest.split_once('/') {
        Some((_, "")) => return Route::NotFound,
        Some(split) => split,
        None => (rest, ""),
    };
    let name_ok = (1..=64).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
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
    if name.ends_with(".m3u8") {
        return Kind::MediaPlaylist;
    }
    if name.ends_with(".mpd") {
        return Kind::Mpd;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Objects are named per rendition: `video-init.mp4`, `audio-init2.mp4`,
    // `video-seg12.m4s`, `audio-part12.3.m4s` (older sessions: no prefix).
    let name = match name.split_once('-') {
        Some((rendition, rest)) if rendition.bytes().all(|b| b.is_ascii_lowercase()) => rest,
        _ => name,
    };
    if let Some(n) = name
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        if n.is_empty() || digits(n) {
            return Kind::Init;
        }
    }
    if let Some(stem) = name.strip_suffix(".m4s") {
        if let Some(n) = stem.strip_prefix("seg") {
            if digits(n) {
                return Kind::Segment;
            }
        }
        if let Some((m, p)) = stem.strip_prefix("part").and_then(|r| r.split_once('.')) {
            if digits(m) && digits(p) {
                return Kind::Part;
            }
        }
    }
    Kind::Other
}

/// Whether the live proxy serves `method` (HTTP methods are case-sensitive).
pub fn is_allowed_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

fn is_dot_segment(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase();
    matches!(s.as_str(), "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(stream: &str, kind: Kind) -> Route<'_> {
        Route::Live(Live { stream, kind })
    }

    fn chat(stream: &str, kind: ChatKind) -> Route<'_> {
        Route::Chat(Chat { stream, kind })
    }

    #[test]
    fn routes() {
        use Kind::*;
        let cases = [
            ("/live/cam1/index.m3u8", live("cam1", Multivariant)),
            ("/live/cam1/steering.json", live("cam1", SteeringHls)),
            ("/live/cam1/steering-dash.json", live("cam1", SteeringDash)),
            ("/live/cam1/manifest.mpd", live("cam1", Mpd)),
            ("/live/cam1/S1/media.m3u8", live("cam1", MediaPlaylist)),
            ("/live/cam1/S1/audio.m3u8", live("cam1", MediaPlaylist)),
            ("/live/cam1/other.m3u8", live("cam1", MediaPlaylist)),
            ("/live/cam1/S1/init.mp4", live("cam1", Init)),
            ("/live/cam1/S1/video-init.mp4", live("cam1", Init)),
            ("/live/cam1/S1/audio-init2.mp4", live("cam1", Init)),
            ("/live/cam1/S1/video-part12.3.m4s", live("cam1", Part)),
            ("/live/cam1/S1/audio-seg12.m4s", live("cam1", Segment)),
            ("/live/cam1/S1/manifest.mpd", live("cam1", Mpd)),
            ("/live/cam1/S1/time", live("cam1", Other)),
            ("/live/cam1/S1/Video-seg1.m4s", live("cam1", Other)),
            ("/live/cam1/S1/part12.3.m4s", live("cam1", Part)),
            ("/live/cam1/S1/seg12.m4s", live("cam1", Segment)),
            ("/live/cam1/S1/seg.m4s", live("cam1", Other)),
            ("/live/cam1/S1/part1.m4s", live("cam1", Other)),
            ("/live/cam1/S1/partx.1.m4s", live("cam1", Other)),
            ("/live/cam1/S1/seg12.part3.m4s", live("cam1", Other)),
            ("/live/cam1/init.mp4", live("cam1", Other)),
            ("/live/cam1/slow.m4s", live("cam1", Other)),
            ("/live/cam1/a/b/c", live("cam1", Other)),
            ("/live/cam1/..m3u8", live("cam1", MediaPlaylist)),
            ("/live/x", Route::NotFound),
            ("/live/cam1/", Route::NotFound),
            ("/live/cam1/S1/", Route::NotFound),
            ("/live//index.m3u8", Route::NotFound),
            ("/live/", Route::NotFound),
            ("/live", Route::NotFound),
            ("/lively/cam1/index.m3u8", Route::NotFound),
            ("/", Route::NotFound),
            ("/index.html", Route::NotFound),
            ("/vendor/hls.min.js", Route::NotFound),
            ("", Route::NotFound),
            ("/LIVE/cam1/index.m3u8", Route::NotFound),
            ("/live/../admin", Route::NotFound),
            ("/live/cam1/./index.m3u8", Route::NotFound),
            ("/live/%2e%2e/admin", Route::NotFound),
            ("/live/%2E./admin", Route::NotFound),
            ("/live/cam1/..", Route::NotFound),
            ("/_brook/metrics", Route::Metrics),
            ("/_brook/bench/rewrite", Route::Bench),
            ("/_brook/other", Route::NotFound),
            ("/chat/cam1", chat("cam1", ChatKind::Socket)),
            ("/chat/cam_1-B", chat("cam_1-B", ChatKind::Socket)),
            ("/chat/cam1/history", chat("cam1", ChatKind::History)),
            ("/chat/cam1/moderate", chat("cam1", ChatKind::Moderate)),
            ("/chat/cam1/", Route::NotFound),
            ("/chat/cam1/other", Route::NotFound),
            ("/chat/cam1/history/x", Route::NotFound),
            ("/chat/", Route::NotFound),
            ("/chat", Route::NotFound),
            ("/chat/..", Route::NotFound),
            ("/chat/%2e%2e/history", Route::NotFound),
            ("/chat/a.b", Route::NotFound),
            ("/chat/caf%C3%A9", Route::NotFound),
            ("/chat.js", Route::NotFound),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "route({path:?})");
        }
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
