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
//! /vod/<asset>/index.m3u8                VOD multivariant           (personalized, 60 s)
//! /vod/<asset>/<rendition>.m3u8          VOD media playlist         (personalized, 60 s)
//! /vod/<asset>/<rendition>-iframes.m3u8  I-frame playlist           (personalized, 60 s)
//! /vod/<asset>/<name>.mpd                static DASH MPD            (personalized, 60 s)
//! /vod/<asset>/<rendition>-initN.mp4     init section               (cached for good)
//! /vod/<asset>/<rendition>-segM.m4s      segment                    (cached for good)
//! /vod/<asset>/poster.jpg, sprites.vtt, sprite-N.jpg  images     (cached for good)
//! /vod/<asset>/status                    processing state (JSON)    (never cached)
//! /_brook/metrics                        this isolate's counters    (needs METRICS_TOKEN)
//! /_brook/qoe                            viewer QoE aggregates      (METRICS_TOKEN or admin token; docs/qoe.md)
//! /_brook/streams                        the origin's /admin/streams (admin token)
//! /_brook/directory                      an origin's heartbeat (POST) (DIRECTORY_TOKEN; docs/scale.md)
//! /live/<stream>/qoe, /vod/<asset>/qoe   player QoE beacon (POST)   (viewer token; docs/qoe.md)
//! /live/<stream>/ads.json                a break's ad asset list    (viewer token, per viewer; docs/ads.md)
//! /whep/<stream>[/<session>]             WHEP offer / session       (to the origin, docs/whep.md)
//! /chat/<stream>                         chat room WebSocket        (docs/chat.md)
//! /chat/<stream>/history                 chat by PDT range (VOD replay)
//! /chat/<stream>/moderate                moderation API             (moderator token)
//! ```
//!
//! A `/live/` path is decoded and checked by [`LivePath::parse`], a `/vod/`
//! path by [`VodPath::parse`], the rules the origin applies too, before
//! anything else looks at it: a path they refuse (an encoded `/`, a dot
//! segment, a name the origin would never serve) is a 404 before any token
//! or geo check, and everything after works on the one spelling they
//! return. Both spaces then go through the same serving path ([`Media`]):
//! tokens, geo, rendition caps, cache, coalescing, personalized manifests.
//! Byte-range requests (`Range:`, the I-frame playlists' byte ranges) are
//! passed to the origin and its 206 back, never shared or stored
//! ([`crate::delivery::upstream::is_shareable`]).

use brook_common::{valid_rendition_name, valid_stream_name, LivePath, VodPath};

use crate::access::geo::Subject;

/// What the Worker does with a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// An LL-HLS delivery object under `/live/<stream>/`: checked (token,
    /// geo), then answered from the cache, the origin, or made here.
    Live(Live),
    /// A VOD object under `/vod/<asset>/`: checked and served as live ones.
    Vod(Vod),
    /// `/_brook/metrics`: Prometheus text of this isolate's counters.
    Metrics,
    /// `/_brook/qoe`: this isolate's viewer QoE aggregates as JSON
    /// (`crate::qoe`; `METRICS_TOKEN`, or the origin's admin token).
    Qoe,
    /// `/_brook/streams`: the origin's `/admin/streams` (ingest health) for
    /// the ops dashboard, with the caller's admin token.
    Streams,
    /// `/live/<stream>/qoe` and `/vod/<asset>/qoe`: the player's QoE beacon
    /// (`crate::qoe::beacon`), after the video's token and geo checks.
    Beacon(LicenseScope),
    /// `/live/<stream>/ads.json`: a break's HLS interstitial asset list for
    /// one viewer (`crate::ads`), after the stream's token and geo checks.
    AdList(LivePath),
    /// `/_brook/bench/rewrite`: the manifest rewrite benchmark (only when the
    /// `BROOK_BENCH` var is set).
    Bench,
    /// `/_brook/directory`: an origin's heartbeat for the stream directory
    /// (`crate::delivery::directory`; `DIRECTORY_TOKEN`).
    Directory,
    /// `/chat/<stream>[/...]`: the stream's chat room (a Durable Object).
    Chat(Chat<'a>),
    /// `/live/<stream>/license` and `/vod/<asset>/license`: ClearKey
    /// licenses for the stream's or the asset's keys (`access::license`),
    /// after the video's token and geo checks.
    License(LicenseScope),
    /// `/whep/<stream>[/<session>]`: WebRTC playback signalling, passed to
    /// the origin after the stream's token and geo checks
    /// ([`crate::delivery::whep`]).
    Whep(crate::delivery::whep::WhepPath),
    /// Anything else. Static files never get here: the assets layer answers
    /// them before the Worker runs.
    NotFound,
}

/// Whose keys a license request asks for, or whose viewer a QoE beacon
/// reports on: a stream or an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenseScope {
    Stream(LivePath),
    Asset(VodPath),
}

impl LicenseScope {
    /// The path tokens are checked against.
    pub fn spelled(&self) -> String {
        match self {
            LicenseScope::Stream(p) => p.to_string(),
            LicenseScope::Asset(p) => p.to_string(),
        }
    }

    /// What the geo rules apply to.
    pub fn subject(&self) -> Subject<'_> {
        match self {
            LicenseScope::Stream(p) => Subject::Stream(&p.stream),
            LicenseScope::Asset(p) => Subject::Asset(&p.asset),
        }
    }

    /// Whose keys: the stream's name, or `asset/<id>` (no stream name has a
    /// `/`), as the origin's key endpoint names them (`/keys/<owner>/<kid>`)
    /// and the key cache keeps them.
    pub fn owner(&self) -> String {
        match self {
            LicenseScope::Stream(p) => p.stream.clone(),
            LicenseScope::Asset(p) => format!("asset/{}", p.asset),
        }
    }
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

/// A request under `/vod/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vod {
    /// The path, decoded and checked; its `Display` is the one spelling.
    pub path: VodPath,
    pub kind: VodKind,
}

/// What a `/vod/<asset>/` path names (the origin's layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VodKind {
    /// `index.m3u8`.
    Multivariant,
    /// `<rendition>.m3u8`.
    MediaPlaylist,
    /// `<rendition>-iframes.m3u8`: byte ranges into the rendition's segments.
    IFramePlaylist,
    /// `<name>.mpd` (static).
    Mpd,
    /// `<rendition>-initN.mp4`.
    Init,
    /// `<rendition>-segM.m4s`.
    Segment,
    /// `poster.jpg`, `sprites.vtt`, `sprite-N.jpg`: immutable, no
    /// rendition.
    Image,
    /// `status`: the asset's processing state, polled; never cached.
    Status,
    /// Any other name: proxied as is, like [`Kind::Other`].
    Other,
}

impl VodKind {
    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            VodKind::Multivariant => "vod_multivariant",
            VodKind::MediaPlaylist => "vod_media_playlist",
            VodKind::IFramePlaylist => "vod_iframe_playlist",
            VodKind::Mpd => "vod_mpd",
            VodKind::Init => "vod_init",
            VodKind::Segment => "vod_segment",
            VodKind::Image => "vod_image",
            VodKind::Status => "vod_status",
            VodKind::Other => "vod_other",
        }
    }
}

impl Vod {
    pub fn asset(&self) -> &str {
        &self.path.asset
    }

    /// The rendition a media or I-frame playlist, init or segment belongs
    /// to. An I-frame playlist's is the rendition whose segments it points
    /// into: a viewer may have it exactly when it may have those segments.
    pub fn rendition(&self) -> Option<&str> {
        vod_object(&self.path.name).1
    }

    /// Whether the token's rendition caps govern this request.
    pub fn is_capped_kind(&self) -> bool {
        matches!(
            self.kind,
            VodKind::MediaPlaylist | VodKind::IFramePlaylist | VodKind::Init | VodKind::Segment
        )
    }
}

/// A delivery request under `/live/` or `/vod/`, as the serving path sees
/// it: one spelling, one kind, what its geo rule and rendition caps are
/// looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media<'a> {
    Live(&'a Live),
    Vod(&'a Vod),
}

impl<'a> Media<'a> {
    /// The one spelling: what tokens are checked against, the cache is
    /// keyed by and the origin is asked for.
    pub fn path(&self) -> String {
        match self {
            Media::Live(l) => l.path.to_string(),
            Media::Vod(v) => v.path.to_string(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Media::Live(l) => l.kind,
            Media::Vod(v) => Kind::Vod(v.kind),
        }
    }

    /// What the geo rule is looked up for.
    pub fn subject(&self) -> Subject<'a> {
        match self {
            Media::Live(l) => Subject::Stream(l.stream()),
            Media::Vod(v) => Subject::Asset(v.asset()),
        }
    }

    pub fn is_capped_kind(&self) -> bool {
        match self {
            Media::Live(l) => l.is_capped_kind(),
            Media::Vod(v) => v.is_capped_kind(),
        }
    }

    /// The publish session (live only).
    pub fn session(&self) -> Option<&'a str> {
        match self {
            Media::Live(l) => l.session(),
            Media::Vod(_) => None,
        }
    }

    pub fn rendition(&self) -> Option<&'a str> {
        match self {
            Media::Live(l) => l.rendition(),
            Media::Vod(v) => v.rendition(),
        }
    }

    /// The multivariant playlist whose ladder the rendition caps are checked
    /// against, and its kind (so it is fetched through the same cache key
    /// and TTL as viewers' requests for it). Also the key ladders are kept
    /// by: a stream and an asset never share one.
    pub fn ladder(&self) -> (String, Kind) {
        match self {
            Media::Live(l) => (
                format!("/live/{}/index.m3u8", l.stream()),
                Kind::Multivariant,
            ),
            Media::Vod(v) => (
                format!("/vod/{}/index.m3u8", v.asset()),
                Kind::Vod(VodKind::Multivariant),
            ),
        }
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

/// What a `/live/` or `/vod/` path names: what the cache, coalescing and
/// personalization decide by.
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
    /// Under `/vod/<asset>/`.
    Vod(VodKind),
}

impl Kind {
    /// Playlists and MPDs: rewritten per viewer.
    pub fn is_manifest(self) -> bool {
        matches!(
            self,
            Kind::Multivariant
                | Kind::MediaPlaylist
                | Kind::Mpd
                | Kind::Vod(
                    VodKind::Multivariant
                        | VodKind::MediaPlaylist
                        | VodKind::IFramePlaylist
                        | VodKind::Mpd
                )
        )
    }

    /// Multivariant playlists, live or VOD (filtered by the caps).
    pub fn is_multivariant(self) -> bool {
        matches!(self, Kind::Multivariant | Kind::Vod(VodKind::Multivariant))
    }

    /// Media playlists, live or VOD, I-frame playlists included (the token
    /// goes into their URIs, nothing else changes).
    pub fn is_media_playlist(self) -> bool {
        matches!(
            self,
            Kind::MediaPlaylist | Kind::Vod(VodKind::MediaPlaylist | VodKind::IFramePlaylist)
        )
    }

    /// Immutable objects: their URL carries the publish session (live) or
    /// the asset (VOD, which is never re-encoded under the same id).
    pub fn is_object(self) -> bool {
        matches!(
            self,
            Kind::Init
                | Kind::Part
                | Kind::Segment
                | Kind::Vod(VodKind::Init | VodKind::Segment | VodKind::Image)
        )
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
            Kind::Vod(k) => k.as_str(),
        }
    }
}

/// Methods the [`Route::Live`] proxy accepts, in `Allow` header form
/// (`OPTIONS` is answered as a CORS preflight).
pub const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// The license endpoint's name under `/live/<stream>/` and `/vod/<asset>/`
/// (the origin's `keys.license_url` and `keys.asset_license_url` defaults
/// point here).
pub const LICENSE_NAME: &str = "license";

/// The QoE beacon's name under `/live/<stream>/` and `/vod/<asset>/`.
pub const BEACON_NAME: &str = "qoe";

/// Methods the beacon endpoint accepts (`OPTIONS`: CORS preflight).
pub const BEACON_METHODS: &str = "POST, OPTIONS";

/// Methods the license endpoint accepts (`OPTIONS`: CORS preflight).
pub const LICENSE_METHODS: &str = "POST, OPTIONS";

/// Picks the route for a URL path (as received: percent-encoded).
pub fn route(path: &str) -> Route<'_> {
    match path {
        "/_brook/metrics" => return Route::Metrics,
        "/_brook/qoe" => return Route::Qoe,
        "/_brook/streams" => return Route::Streams,
        "/_brook/bench/rewrite" => return Route::Bench,
        "/_brook/directory" => return Route::Directory,
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/chat/") {
        return chat_route(rest);
    }
    if path.starts_with(crate::delivery::whep::PREFIX) {
        return match crate::delivery::whep::WhepPath::parse(path) {
            Some(p) => Route::Whep(p),
            None => Route::NotFound,
        };
    }
    if path.starts_with("/vod/") {
        return match VodPath::parse(path) {
            Ok(path) if path.name == LICENSE_NAME => Route::License(LicenseScope::Asset(path)),
            Ok(path) if path.name == BEACON_NAME => Route::Beacon(LicenseScope::Asset(path)),
            Ok(path) => {
                let kind = vod_object(&path.name).0;
                Route::Vod(Vod { path, kind })
            }
            Err(_) => Route::NotFound,
        };
    }
    let Ok(path) = LivePath::parse(path) else {
        return Route::NotFound;
    };
    if path.session.is_none() && path.name == LICENSE_NAME {
        return Route::License(LicenseScope::Stream(path));
    }
    if path.session.is_none() && path.name == BEACON_NAME {
        return Route::Beacon(LicenseScope::Stream(path));
    }
    if path.session.is_none() && path.name == crate::ads::interstitial::ASSET_LIST_NAME {
        return Route::AdList(path);
    }
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

/// What an object name within an asset is, and the rendition it belongs to
/// (the origin's VOD layout: `index.m3u8`, `<rendition>.m3u8`,
/// `<rendition>-iframes.m3u8`, `*.mpd`, `<rendition>-initN.mp4`,
/// `<rendition>-segM.m4s`, `poster.jpg`, `sprites.vtt`, `sprite-N.jpg`,
/// `status`).
fn vod_object(name: &str) -> (VodKind, Option<&str>) {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match name {
        "index.m3u8" => return (VodKind::Multivariant, None),
        "status" => return (VodKind::Status, None),
        "poster.jpg" | "sprites.vtt" => return (VodKind::Image, None),
        _ => {}
    }
    if name
        .strip_prefix("sprite-")
        .and_then(|n| n.strip_suffix(".jpg"))
        .is_some_and(digits)
    {
        return (VodKind::Image, None);
    }
    if name.ends_with(".mpd") {
        return (VodKind::Mpd, None);
    }
    if let Some(stem) = name.strip_suffix(".m3u8") {
        if let Some(r) = stem.strip_suffix("-iframes") {
            if valid_rendition_name(r) {
                return (VodKind::IFramePlaylist, Some(r));
            }
        }
        if valid_rendition_name(stem) {
            return (VodKind::MediaPlaylist, Some(stem));
        }
        return (VodKind::Other, None);
    }
    let Some((rendition, rest)) = name
        .split_once('-')
        .filter(|(r, _)| valid_rendition_name(r))
    else {
        return (VodKind::Other, None);
    };
    if rest
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
        .is_some_and(digits)
    {
        return (VodKind::Init, Some(rendition));
    }
    if rest
        .strip_prefix("seg")
        .and_then(|r| r.strip_suffix(".m4s"))
        .is_some_and(digits)
    {
        return (VodKind::Segment, Some(rendition));
    }
    (VodKind::Other, None)
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
    fn whep_routes() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(matches!(route("/whep/cam1"), Route::Whep(p) if p.session.is_none()));
        assert!(
            matches!(route(&format!("/whep/cam1/{id}")), Route::Whep(p) if p.session.as_deref() == Some(id))
        );
        assert_eq!(route("/whep/cam1/nope"), Route::NotFound);
        assert_eq!(route("/whep/"), Route::NotFound);
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
                "/live/cam1/license".into(),
                Route::License(LicenseScope::Stream(
                    LivePath::parse("/live/cam1/license").unwrap(),
                )),
            ),
            (obj("license"), live(&obj("license"), Other)),
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
            ("/_brook/qoe".into(), Route::Qoe),
            (
                "/live/cam1/ads.json".into(),
                Route::AdList(LivePath::parse("/live/cam1/ads.json").unwrap()),
            ),
            (obj("ads.json"), live(&obj("ads.json"), Other)),
            ("/_brook/streams".into(), Route::Streams),
            ("/_brook/qoe/x".into(), Route::NotFound),
            (
                "/live/cam1/qoe".into(),
                Route::Beacon(LicenseScope::Stream(
                    LivePath::parse("/live/cam1/qoe").unwrap(),
                )),
            ),
            (obj("qoe"), live(&obj("qoe"), Other)),
            ("/_brook/bench/rewrite".into(), Route::Bench),
            ("/_brook/directory".into(), Route::Directory),
            ("/_brook/directory/x".into(), Route::NotFound),
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

    const A: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn vod_routes() {
        use VodKind::*;
        let cases = [
            ("index.m3u8", Multivariant, None),
            ("720p.m3u8", MediaPlaylist, Some("720p")),
            ("audio.m3u8", MediaPlaylist, Some("audio")),
            ("720p-iframes.m3u8", IFramePlaylist, Some("720p")),
            ("manifest.mpd", Mpd, None),
            ("720p-init0.mp4", Init, Some("720p")),
            ("audio-init12.mp4", Init, Some("audio")),
            ("1080p-seg0.m4s", Segment, Some("1080p")),
            ("poster.jpg", Image, None),
            ("sprites.vtt", Image, None),
            ("sprite-0.jpg", Image, None),
            ("sprite-17.jpg", Image, None),
            ("status", Status, None),
            // The layout names its init sections with a number.
            ("720p-init.mp4", Other, None),
            ("720p-part1.0.m4s", Other, None),
            ("seg1.m4s", Other, None),
            ("a.b.m3u8", Other, None),
            ("a-b-iframes.m3u8", Other, None),
            ("sprite-x.jpg", Other, None),
            ("sprite-.jpg", Other, None),
            ("720p-seg.m4s", Other, None),
            ("steering.json", Other, None),
        ];
        for (name, kind, rendition) in cases {
            let path = format!("/vod/{A}/{name}");
            let Route::Vod(vod) = route(&path) else {
                panic!("{path} does not route to VOD")
            };
            assert_eq!(vod.path.to_string(), path);
            assert_eq!((vod.kind, vod.rendition()), (kind, rendition), "{name}");
            assert_eq!(
                vod.is_capped_kind(),
                rendition.is_some() && kind != Other,
                "{name}"
            );
            let media = Media::Vod(&vod);
            assert_eq!(media.kind(), Kind::Vod(kind));
            assert_eq!(media.subject(), Subject::Asset(A));
            assert_eq!(media.session(), None);
            assert_eq!(
                media.ladder(),
                (
                    format!("/vod/{A}/index.m3u8"),
                    Kind::Vod(VodKind::Multivariant)
                )
            );
        }
        // One spelling, and everything VodPath refuses is a 404.
        let Route::Vod(v) = route(&format!("/vod/{A}/%37%32%30p.m3u8")) else {
            panic!()
        };
        assert_eq!(v.path.to_string(), format!("/vod/{A}/720p.m3u8"));
        // The asset's license endpoint: its keys, its token path, its geo rule.
        let Route::License(scope) = route(&format!("/vod/{A}/license")) else {
            panic!("/vod/<asset>/license is the license endpoint")
        };
        assert_eq!(scope.spelled(), format!("/vod/{A}/license"));
        assert_eq!(scope.owner(), format!("asset/{A}"));
        assert_eq!(scope.subject(), Subject::Asset(A));
        let Route::Beacon(scope) = route(&format!("/vod/{A}/qoe")) else {
            panic!("/vod/<asset>/qoe is the QoE beacon")
        };
        assert_eq!(scope.owner(), format!("asset/{A}"));
        let Route::License(scope) = route("/live/cam1/license") else {
            panic!()
        };
        assert_eq!(
            (scope.owner(), scope.subject()),
            ("cam1".to_owned(), Subject::Stream("cam1"))
        );
        for path in [
            format!("/vod/{A}/..%2f{A}/index.m3u8"),
            format!("/vod/{A}/..%2Findex.m3u8"),
            format!("/vod/{A}/%2e%2e"),
            format!("/vod/{A}/./index.m3u8"),
            format!("/vod/{A}/"),
            format!("/vod/{A}"),
            "/vod/0123456789ABCDEF0123456789abcdef/index.m3u8".into(),
            "/vod/cam1/index.m3u8".into(),
            "/vod/".into(),
            "/vod".into(),
            format!("/vod/{A}/.hidden"),
        ] {
            assert_eq!(route(&path), Route::NotFound, "{path}");
        }
    }

    #[test]
    fn kinds_live_and_vod() {
        use VodKind::*;
        for k in [Multivariant, MediaPlaylist, IFramePlaylist, Mpd] {
            assert!(
                Kind::Vod(k).is_manifest() && !Kind::Vod(k).is_object(),
                "{k:?}"
            );
        }
        for k in [Init, Segment, Image] {
            assert!(
                Kind::Vod(k).is_object() && !Kind::Vod(k).is_manifest(),
                "{k:?}"
            );
        }
        for k in [Status, Other] {
            assert!(
                !Kind::Vod(k).is_object() && !Kind::Vod(k).is_manifest(),
                "{k:?}"
            );
        }
        assert!(Kind::Vod(Multivariant).is_multivariant() && Kind::Multivariant.is_multivariant());
        assert!(Kind::Vod(IFramePlaylist).is_media_playlist());
        assert_eq!(Kind::Vod(Segment).as_str(), "vod_segment");
        let Route::Live(live) = route("/live/cam1/0a1b2c3d4e5f6a7b/720p-seg1.m4s") else {
            panic!()
        };
        let media = Media::Live(&live);
        assert_eq!(media.subject(), Subject::Stream("cam1"));
        assert_eq!(
            (media.session(), media.rendition()),
            (Some(S), Some("720p"))
        );
        assert_eq!(
            media.ladder(),
            ("/live/cam1/index.m3u8".to_string(), Kind::Multivariant)
        );
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
