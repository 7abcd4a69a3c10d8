//! HTTP delivery over Pingora: playlists (with LL-HLS blocking reload and delta
//! updates) and media objects from the hub, archived sessions from the archive.
//! This layer knows HLS request semantics (RFC 8216bis §6.2.5) and HTTP caching,
//! and nothing about codecs.
//!
//! URL layout, for stream `cam1` and publish session `S`:
//!
//! ```text
//! /live/cam1/index.m3u8          multivariant playlist (stable URL, never cached long)
//! /live/cam1/S/video.m3u8        media playlist per rendition (video, audio);
//!                                ?_HLS_msn=M&_HLS_part=P blocks,
//!                                ?_HLS_skip=YES|v2 asks for a delta update
//! /live/cam1/S/manifest.mpd      DASH manifest over the same segments
//! /live/cam1/S/<object>          video-init.mp4, video-partM.P.m4s, video-segM.m4s,
//!                                audio-... (immutable; streamed while being made)
//! /live/cam1/S/time              the time, for DASH UTCTiming
//! /healthz                       liveness
//! /metrics, /admin/...           see `admin` (here or on their own listener)
//! /keys/<stream>/<kid>           content keys for the edge (`keys`; bearer token)
//! POST /qoe/push                 viewers' watch and stall time from the edge
//!                                (`qoe`; bearer token)
//! ```
//!
//! The same URLs keep working when the session ends (the media playlists become the
//! archived VOD) and after an origin restart (served from the archive).

pub mod admin;
pub mod body;
pub mod encoding;
pub mod keys;
pub mod qoe;
pub mod query;
pub mod range;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use brook_packager::{ObjectKind, UnixMillis, MPD_NAME};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use pingora_core::apps::{
    HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream,
};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use tokio::time::Instant;
use tracing::debug;

use crate::config::HlsConfig;
use crate::metrics::Metrics;
use crate::serve::demand::Demand;
use crate::serve::hub::{Growing, Hub, Rendered, Snapshot, Stream};
use crate::store::archive::Archive;
use brook_common::LivePath;
use encoding::Coding;
use query::{BlockingRequest, Skip};
use range::RangeRequest;

const M3U8: &str = "application/vnd.apple.mpegurl";
const MPD: &str = "application/dash+xml";
/// Object name, beside a session's playlists, answering the current time (ISO
/// 8601) for DASH `UTCTiming` (`urn:mpeg:dash:utc:http-iso:2014`); relative, so
/// it resolves next to the MPD wherever it is served from (edge or origin).
pub const TIME_PATH: &str = "time";
const MP4: &str = "video/mp4";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// On parts: when the part became servable, Unix microseconds (for latency
/// measurements such as `cargo xtask bench origin`).
pub const PUBLISHED_HEADER: &str = "brook-part-published-us";
/// Longest wait for a request head, kept-alive idle time included.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a request body may take to arrive, once its head has.
const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a single write may wait for the client to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// An ended session's playlist no longer changes.
const ENDED: &str = "public, max-age=300";

/// The parts of a request the origin looks at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub peer: Option<SocketAddr>,
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response body: whole, or an object still being produced (streamed chunked).
#[derive(Debug, Clone)]
pub enum Body {
    Full(Bytes),
    Growing(Arc<Growing>),
}

/// An HTTP response before it is written.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// A complete part: when it was published (for the first-byte latency).
    pub part_published: Option<std::time::Instant>,
}

impl Reply {
    fn new(status: StatusCode, content_type: &str, body: Bytes) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.to_string())],
            body: Body::Full(body),
            part_published: None,
        }
    }

    pub(crate) fn text(status: StatusCode, msg: &str) -> Self {
        let mut r = Self::new(
            status,
            "text/plain; charset=utf-8",
            Bytes::from(format!("{msg}\n")),
        );
        r.headers.push(("cache-control", "no-store".into()));
        r
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The full body, when there is one (tests).
    pub fn bytes(&self) -> Bytes {
        match &self.body {
            Body::Full(b) => b.clone(),
            Body::Growing(_) => Bytes::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The origin's HTTP application.
pub struct OriginHttp {
    hub: Arc<Hub>,
    hls: HlsConfig,
    metrics: Arc<Metrics>,
    archive: Option<Arc<Archive>>,
    /// Serves `/admin/...` and `/metrics` (none: they are not on this listener).
    admin: Option<admin::Admin>,
    /// Answers `/whip/...` (none: WHIP is off).
    whip: Option<Arc<crate::ingest::whip::Endpoint>>,
    /// Answers `/whep/...` (none: WHEP is off).
    whep: Option<Arc<crate::egress::whep::Endpoint>>,
    /// Answers `/api/v1/...`, `/uploads/...` and `/vod/...` (none: VOD is off).
    vod: Option<Arc<crate::vod::Vod>>,
    /// Answers `/keys/...` (none: no stream is encrypted, 404).
    keys: Option<keys::KeyEndpoint>,
    /// Answers `POST /qoe/push` (none: no push token, 404).
    qoe: Option<Arc<qoe::QoeEndpoint>>,
    /// Told about playlist requests; starts streams on demand (none: every
    /// stream is started by its publisher).
    demand: Option<Arc<dyn Demand>>,
    options: HttpServerOptions,
}

impl OriginHttp {
    pub fn new(hub: Arc<Hub>, hls: HlsConfig) -> Self {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        Self {
            hub,
            hls,
            metrics: Arc::new(Metrics::default()),
            archive: None,
            admin: None,
            whip: None,
            whep: None,
            vod: None,
            keys: None,
            qoe: None,
            demand: None,
            options,
        }
    }

    /// Streams that start when a viewer asks (RTSP pulls with `on_demand`).
    pub fn with_demand(mut self, demand: Option<Arc<dyn Demand>>) -> Self {
        self.demand = demand;
        self
    }

    /// Serve content keys to the edge (`/keys/...`).
    pub fn with_keys(mut self, keys: Option<keys::KeyEndpoint>) -> Self {
        self.keys = keys;
        self
    }

    /// Take the edge's QoE pushes (`POST /qoe/push`).
    pub fn with_qoe(mut self, qoe: Option<qoe::QoeEndpoint>) -> Self {
        self.qoe = qoe.map(Arc::new);
        self
    }

    /// Serve video on demand (`/api/v1/`, `/uploads/`, `/vod/`).
    pub fn with_vod(mut self, vod: Option<Arc<crate::vod::Vod>>) -> Self {
        self.vod = vod;
        self
    }

    /// Serve WHIP ingest (`/whip/...`) from this endpoint.
    pub fn with_whip(mut self, whip: Option<Arc<crate::ingest::whip::Endpoint>>) -> Self {
        self.whip = whip;
        self
    }

    /// Serve WHEP playback (`/whep/...`) from this endpoint.
    pub fn with_whep(mut self, whep: Option<Arc<crate::egress::whep::Endpoint>>) -> Self {
        self.whep = whep;
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_archive(mut self, archive: Option<Arc<Archive>>) -> Self {
        self.archive = archive;
        self
    }

    pub fn with_admin(mut self, admin: Option<admin::Admin>) -> Self {
        self.admin = admin;
        self
    }

    /// Accept HTTP/2 with prior knowledge on cleartext connections (h2c).
    pub fn with_h2c(mut self, on: bool) -> Self {
        self.options.h2c = on;
        self
    }

    /// Routes one request. Public so tests can drive it without sockets.
    pub async fn handle(&self, req: &Request<'_>) -> Reply {
        let path = req.path;
        if let Some(admin) = &self.admin {
            if path == "/metrics" || path.starts_with("/admin/") {
                return admin.handle(req).await;
            }
        }
        if path.starts_with("/keys/") {
            return match &self.keys {
                Some(k) => k.handle(req),
                None => Reply::text(StatusCode::NOT_FOUND, "not found"),
            };
        }
        if req.method == Method::OPTIONS {
            let mut r = Reply::new(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
            r.headers = brook_common::cors::preflight_headers(
                "GET, HEAD, OPTIONS",
                req.header("access-control-request-headers"),
            );
            return r;
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            return Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "GET, HEAD, OPTIONS");
        }
        if path == "/healthz" {
            return Reply::text(StatusCode::OK, "ok");
        }
        if let (Some(vod), true) = (&self.vod, path.starts_with("/vod/")) {
            return match vod.serve(req.method, path).await {
                crate::vod::api::VodAnswer::Reply(r) => Reply {
                    status: r.status,
                    headers: r.headers,
                    body: Body::Full(r.body),
                    part_published: None,
                },
                crate::vod::api::VodAnswer::Object {
                    data,
                    content_type,
                    cache_control,
                } => {
                    let etag = etag_of(&data);
                    stored_object(req, data, etag, content_type, cache_control)
                }
            };
        }
        if !path.starts_with("/live/") {
            return Reply::text(StatusCode::NOT_FOUND, "not found");
        }
        // Decoded and checked by the same function the edge uses.
        let Ok(live) = LivePath::parse(path) else {
            return Reply::text(StatusCode::NOT_FOUND, "not found");
        };
        let (name, object) = (live.stream.as_str(), live.name.as_str());
        // Every playlist request says "stream X is watched" (also a player
        // that returns straight to its media playlist); the object requests
        // that follow them need not.
        let on_demand = (object.ends_with(".m3u8") || object == MPD_NAME)
            && self.demand.as_ref().is_some_and(|d| d.wanted(name));
        let stream = self.hub.stream(name);
        match live.session.as_deref() {
            None if object == "index.m3u8" => {
                // One wait in all: for the stream to start, then for its playlist.
                let deadline = Instant::now() + Duration::from_millis(self.hls.startup_wait_ms);
                if on_demand && !stream.as_ref().is_some_and(|s| s.is_publishing()) {
                    return match self.started(name, deadline).await {
                        Some(s) => self.multivariant(req, name, Some(&s), deadline).await,
                        None => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "stream is starting")
                            .header("retry-after", "1"),
                    };
                }
                self.multivariant(req, name, stream.as_ref(), deadline)
                    .await
            }
            None => Reply::text(StatusCode::NOT_FOUND, "not found"),
            Some(_) if object == TIME_PATH => {
                let now = UnixMillis(crate::serve::hub::unix_ms()).to_string();
                let mut r = Reply::text(StatusCode::OK, &now);
                r.body = Body::Full(Bytes::from(now));
                r
            }
            Some(session) if object == "index.m3u8" => {
                // A recording's own multivariant playlist (an ended,
                // archived session), for the asset API's playback URL.
                let text = match &self.archive {
                    Some(a) => a.session_multivariant_text(name, session).await,
                    None => None,
                };
                match text {
                    Some(text) => {
                        playlist(req, &Rendered::new(text.clone()), etag_of(&text), ENDED)
                    }
                    None => Reply::text(StatusCode::NOT_FOUND, "no such recording"),
                }
            }
            Some(session) if object.ends_with(".m3u8") => {
                self.media(req, name, stream.as_ref(), session, object)
                    .await
            }
            Some(session) if object == MPD_NAME => {
                self.mpd(req, name, stream.as_ref(), session).await
            }
            Some(session) => {
                self.object(req, name, stream.as_ref(), session, object)
                    .await
            }
        }
    }

    async fn multivariant(
        &self,
        req: &Request<'_>,
        name: &str,
        stream: Option<&Arc<Stream>>,
        deadline: Instant,
    ) -> Reply {
        let Some(stream) = stream else {
            // Not in memory (e.g. after a restart): the newest archived session.
            let archived = match (
                &self.archive,
                self.archive.as_ref().and_then(|a| a.latest(name)),
            ) {
                (Some(a), Some(session)) => a.multivariant_text(name, &session).await,
                _ => None,
            };
            return match archived {
                Some(text) => playlist(
                    req,
                    &Rendered::new(text.clone()),
                    etag_of(&text),
                    "no-cache",
                ),
                None => Reply::text(StatusCode::NOT_FOUND, "unknown stream"),
            };
        };
        let ready = {
            let _held = stream.hold();
            wait_for(stream, deadline, |s| s.multivariant.is_some() || s.ended).await
        };
        match ready {
            Some(s) => match &s.multivariant {
                Some(body) => playlist(
                    req,
                    body,
                    format!("\"{}-{}m\"", s.session, s.version),
                    "no-cache",
                ),
                None => Reply::text(StatusCode::NOT_FOUND, "the stream ended before it started"),
            },
            None => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "stream is starting")
                .header("retry-after", "1"),
        }
    }

    /// The DASH manifest of a session: live from memory, or the archived VOD's.
    async fn mpd(
        &self,
        req: &Request<'_>,
        name: &str,
        stream: Option<&Arc<Stream>>,
        session: &str,
    ) -> Reply {
        if let Some(stream) = stream.filter(|s| s.snapshot().session == session) {
            let deadline = Instant::now() + Duration::from_millis(self.hls.startup_wait_ms);
            let ready = wait_for(stream, deadline, |s| s.mpd.is_some() || s.ended).await;
            if let Some(s) = ready {
                // Once ended, the packager's last MPD is the static one of the VOD.
                if let Some(body) = &s.mpd {
                    let etag = format!("\"{}-{}x\"", s.session, s.version);
                    let cache = if s.ended { ENDED } else { "no-cache" };
                    return with_content_type(playlist(req, body, etag, cache), MPD);
                }
            }
        }
        if let Some(a) = &self.archive {
            if a.session(name, session).is_some_and(|i| i.ended) {
                if let Some(text) = a.get(name, session, MPD_NAME).await {
                    let etag = etag_of(&text);
                    let r = playlist(req, &Rendered::new(text), etag, ENDED);
                    return with_content_type(r, MPD);
                }
            }
        }
        Reply::text(StatusCode::NOT_FOUND, "no DASH manifest for this session")
    }

    /// An archived session's media playlist (the VOD), if there is one.
    async fn archived_media(
        &self,
        req: &Request<'_>,
        name: &str,
        session: &str,
        playlist_name: &str,
    ) -> Option<Reply> {
        let a = self.archive.as_ref()?;
        if !a.session(name, session)?.ended {
            return None;
        }
        let text = a.get(name, session, playlist_name).await?;
        Some(playlist(
            req,
            &Rendered::new(text.clone()),
            etag_of(&text),
            ENDED,
        ))
    }

    async fn media(
        &self,
        req: &Request<'_>,
        name: &str,
        stream: Option<&Arc<Stream>>,
        session: &str,
        playlist_name: &str,
    ) -> Reply {
        let request = match BlockingRequest::parse(req.query.unwrap_or("")) {
            Ok(r) => r,
            Err(msg) => return Reply::text(StatusCode::BAD_REQUEST, msg),
        };
        let current = stream.filter(|s| s.snapshot().session == session);
        let Some(stream) = current else {
            return match self.archived_media(req, name, session, playlist_name).await {
                Some(r) => r,
                None => Reply::text(StatusCode::NOT_FOUND, "unknown session"),
            };
        };
        if let Some(peer) = req.peer {
            stream.saw_viewer(peer);
        }
        let wait = if request.msn.is_some() {
            self.hls.blocking_timeout_ms
        } else {
            self.hls.startup_wait_ms
        };
        let deadline = Instant::now() + Duration::from_millis(wait);
        let mut too_far = false;
        let snapshot = {
            let _held = stream.hold();
            wait_for(stream, deadline, |s| {
                if s.session != session || s.ended {
                    return true;
                }
                let Some(progress) = s.playlist(playlist_name).map(|e| &e.progress) else {
                    // Every rendition's playlist exists from the start: when others
                    // do and this one does not, there is no such playlist.
                    return !s.playlists.is_empty();
                };
                if progress.ended {
                    return true;
                }
                match request.msn {
                    None => true,
                    Some(msn) => {
                        if progress.too_far_ahead(msn, request.part) {
                            too_far = true;
                            return true;
                        }
                        progress.reached(msn, request.part)
                    }
                }
            })
            .await
        };
        let Some(s) = snapshot else {
            return Reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the requested part did not become available in time",
            )
            .header("retry-after", "1");
        };
        if s.session != session {
            return match self.archived_media(req, name, session, playlist_name).await {
                Some(r) => r,
                None => Reply::text(StatusCode::NOT_FOUND, "unknown session"),
            };
        }
        if too_far {
            return Reply::text(
                StatusCode::BAD_REQUEST,
                "_HLS_msn/_HLS_part is too far ahead of the live edge",
            );
        }
        if s.ended {
            // Live-to-VOD: the whole archived session once the archive has it.
            if let Some(r) = self.archived_media(req, name, session, playlist_name).await {
                return r;
            }
        }
        let Some(entry) = s.playlist(playlist_name) else {
            return if !s.playlists.is_empty() {
                Reply::text(StatusCode::NOT_FOUND, "no such playlist")
            } else if s.ended {
                Reply::text(StatusCode::NOT_FOUND, "the stream ended before it started")
            } else {
                Reply::text(StatusCode::SERVICE_UNAVAILABLE, "stream is starting")
                    .header("retry-after", "1")
            };
        };
        // A blocking response describes a fixed state of the stream and can be cached
        // (keyed on the query) by a CDN; a plain reload must not be.
        let cache = if s.ended {
            "no-cache".to_string()
        } else if request.msn.is_some() {
            format!(
                "public, max-age={}",
                self.hls.blocking_timeout_ms.div_ceil(1000)
            )
        } else {
            "no-cache".to_string()
        };
        let (body, tag) = match (&entry.delta, request.skip) {
            (Some(delta), Skip::Yes | Skip::V2) => (delta, "d"),
            _ => (&entry.text, ""),
        };
        let kind = playlist_name.trim_end_matches(".m3u8");
        playlist(
            req,
            body,
            format!("\"{}-{}-{kind}{tag}\"", s.session, s.version),
            &cache,
        )
    }

    async fn object(
        &self,
        req: &Request<'_>,
        name: &str,
        stream: Option<&Arc<Stream>>,
        session: &str,
        object: &str,
    ) -> Reply {
        let current = stream.filter(|s| s.snapshot().session == session);
        if let Some(stream) = current {
            if let Some(r) = self.live_object(req, stream, session, object).await {
                return r;
            }
        }
        // Not (or no longer) in memory: the archive keeps init and segments.
        if let Some(a) = &self.archive {
            if let Some(data) = a.get(name, session, object).await {
                let etag = format!("\"{session}-{object}-{:x}\"", data.len());
                return media_object(req, data, etag);
            }
        }
        Reply::text(StatusCode::NOT_FOUND, "no such object")
    }

    /// An object of the current session from memory; waits for the preload-hinted
    /// part. `None`: not in memory (try the archive).
    async fn live_object(
        &self,
        req: &Request<'_>,
        stream: &Arc<Stream>,
        session: &str,
        name: &str,
    ) -> Option<Reply> {
        let deadline = Instant::now() + Duration::from_millis(self.hls.blocking_timeout_ms);
        let mut rx = stream.subscribe_objects();
        let mut held = None;
        loop {
            rx.borrow_and_update();
            let snap = stream.snapshot();
            if snap.session != session {
                return None;
            }
            if let Some(obj) = stream.object(name) {
                let etag = format!("\"{session}-{name}-{:x}\"", obj.data.len());
                let mut r = media_object(req, obj.data, etag);
                if obj.kind == ObjectKind::Part {
                    r.part_published = Some(obj.published);
                    if r.status == StatusCode::OK {
                        r = r.header(PUBLISHED_HEADER, obj.published_unix_us.to_string());
                    }
                }
                return Some(r);
            }
            if let Some(g) = stream.growing(name) {
                // Streamed as the packager produces it: no length, no range, no ETag
                // until complete (RFC 8216bis §6.2.6 lets the origin send a hinted
                // part chunked).
                return Some(Reply {
                    status: StatusCode::OK,
                    headers: vec![
                        ("content-type", MP4.into()),
                        ("cache-control", IMMUTABLE.into()),
                    ],
                    body: Body::Growing(g),
                    part_published: None,
                });
            }
            // The preload-hinted part may be requested before it exists (RFC 8216bis
            // §4.4.5.3): hold the request until the packager produces it.
            let hinted = snap.is_hinted(name);
            if !hinted || snap.ended {
                return None;
            }
            if held.is_none() {
                held = Some(stream.hold());
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Some(
                    Reply::text(StatusCode::SERVICE_UNAVAILABLE, "part not produced in time")
                        .header("retry-after", "1"),
                );
            }
        }
    }
}

/// A strong ETag for bytes whose identity is otherwise unknown.
fn etag_of(data: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// `If-None-Match` lists `etag` (or `*`).
fn not_modified(req: &Request<'_>, etag: &str) -> bool {
    req.header("if-none-match").is_some_and(|h| {
        h.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
        })
    })
}

/// A playlist response: conditional (ETag), compressed as the client accepts.
fn playlist(req: &Request<'_>, body: &Rendered, etag: String, cache: &str) -> Reply {
    let coding = Coding::negotiate(req.header("accept-encoding"));
    // Each coding is its own representation, with its own validator.
    let etag = match coding.name() {
        Some(c) => format!("{}-{c}\"", etag.trim_end_matches('"')),
        None => etag,
    };
    let data = match coding {
        Coding::Identity => body.identity.clone(),
        Coding::Gzip => body.gzip().clone(),
        Coding::Br => body.br().clone(),
    };
    if not_modified(req, &etag) {
        return Reply {
            status: StatusCode::NOT_MODIFIED,
            headers: vec![
                ("etag", etag),
                ("cache-control", cache.into()),
                ("vary", "accept-encoding".into()),
                // The length of the representation the client holds (RFC 9110 §8.6).
                ("content-length", data.len().to_string()),
            ],
            body: Body::Full(Bytes::new()),
            part_published: None,
        };
    }
    let mut r = Reply::new(StatusCode::OK, M3U8, data)
        .header("cache-control", cache)
        .header("etag", etag)
        .header("vary", "accept-encoding");
    if let Some(c) = coding.name() {
        r = r.header("content-encoding", c);
    }
    r
}

fn with_content_type(mut r: Reply, content_type: &str) -> Reply {
    for (k, v) in &mut r.headers {
        if *k == "content-type" {
            *v = content_type.to_string();
        }
    }
    r
}

/// An immutable media object: conditional, byte ranges.
fn media_object(req: &Request<'_>, data: Bytes, etag: String) -> Reply {
    stored_object(req, data, etag, MP4, IMMUTABLE)
}

/// A stored object: conditional, byte ranges, with its type and caching.
fn stored_object(
    req: &Request<'_>,
    data: Bytes,
    etag: String,
    content_type: &str,
    cache_control: &str,
) -> Reply {
    if not_modified(req, &etag) {
        return Reply {
            status: StatusCode::NOT_MODIFIED,
            headers: vec![
                ("etag", etag),
                ("cache-control", cache_control.into()),
                ("content-length", data.len().to_string()),
            ],
            body: Body::Full(Bytes::new()),
            part_published: None,
        };
    }
    let len = data.len() as u64;
    // If-Range with another validator: the client's copy is stale, send it all.
    let range_header = match req.header("if-range") {
        Some(v) if v.trim() != etag => None,
        _ => req.header("range"),
    };
    let r = match RangeRequest::parse(range_header, len) {
        RangeRequest::Full => Reply::new(StatusCode::OK, content_type, data),
        RangeRequest::Partial { start, end } => Reply::new(
            StatusCode::PARTIAL_CONTENT,
            content_type,
            data.slice(start as usize..end as usize),
        )
        .header("content-range", format!("bytes {start}-{}/{len}", end - 1)),
        RangeRequest::Unsatisfiable => {
            return Reply::text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable")
                .header("content-range", format!("bytes */{len}"))
        }
    };
    r.header("cache-control", cache_control)
        .header("etag", etag)
        .header("accept-ranges", "bytes")
}

/// The response head for `reply`: its headers, brook-common's CORS headers,
/// and the framing: `content-length` for a full body, chunked for one still
/// being made, nothing on 1xx and 204 (RFC 9110 §8.6 forbids it there) and,
/// on 304, only the length of the representation when the reply names it.
/// `None`: a header value was not valid.
pub fn response_header(reply: &Reply) -> Option<ResponseHeader> {
    let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 4)).ok()?;
    for (k, v) in &reply.headers {
        header.insert_header(*k, v.as_str()).ok()?;
    }
    // A reply that names its own CORS headers (tus exposes its headers)
    // keeps them: `insert_header` would replace them.
    for (k, v) in brook_common::cors::RESPONSE_HEADERS {
        if !reply
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(k))
        {
            header.insert_header(k, v).ok()?;
        }
    }
    let no_body = reply.status.is_informational()
        || reply.status == StatusCode::NO_CONTENT
        || reply.status == StatusCode::NOT_MODIFIED;
    match &reply.body {
        _ if no_body => {}
        Body::Full(b) => header.insert_header("content-length", b.len()).ok()?,
        // HTTP/2 drops it; HTTP/1.1 streams the body in chunks.
        Body::Growing(_) => header.insert_header("transfer-encoding", "chunked").ok()?,
    }
    Some(header)
}

/// The answer to a request whose body could not be read.
fn body_error(e: &body::BodyError) -> Reply {
    let status = match e {
        body::BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        body::BodyError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    };
    Reply::text(status, &e.to_string())
}

impl OriginHttp {
    /// Waits until stream `name` has a publisher (a session started on
    /// demand) or `deadline` passes.
    async fn started(&self, name: &str, deadline: Instant) -> Option<Arc<Stream>> {
        let mut started = self.hub.subscribe_started();
        loop {
            started.borrow_and_update();
            if let Some(s) = self.hub.stream(name).filter(|s| s.is_publishing()) {
                return Some(s);
            }
            match tokio::time::timeout_at(deadline, started.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

/// Waits until `ready(snapshot)` holds or `deadline` passes; returns the snapshot
/// that satisfied it. One `watch` receiver per waiting request: no task, no thread.
async fn wait_for(
    stream: &Stream,
    deadline: Instant,
    mut ready: impl FnMut(&Snapshot) -> bool,
) -> Option<Arc<Snapshot>> {
    let mut rx = stream.subscribe();
    loop {
        let snap = rx.borrow_and_update().clone();
        if ready(&snap) {
            return Some(snap);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return None,
        }
    }
}

impl OriginHttp {
    /// `/whip/...` and `/whep/...`: the endpoint (`ingest::whip::http`,
    /// `egress::whep::http`) answers the request `handle` is given.
    fn webrtc_request(
        &self,
        http: &ServerSession,
        peer: Option<SocketAddr>,
        body: Bytes,
        handle: impl FnOnce(
            &crate::ingest::whip::WhipRequest<'_>,
        ) -> crate::ingest::whip::http::WhipReply,
    ) -> Reply {
        let h = http.req_header();
        let req = crate::ingest::whip::WhipRequest {
            method: &h.method,
            path: h.uri.path(),
            headers: &h.headers,
            body,
            peer,
        };
        let r = handle(&req);
        Reply {
            status: r.status,
            headers: r.headers,
            body: Body::Full(r.body),
            part_published: None,
        }
    }

    /// `/api/v1/...` (a small JSON body) and `/uploads/...` (tus: the body
    /// streams to disk). On an unread or partly read body the connection is
    /// not reused.
    async fn vod_request(&self, http: &mut ServerSession, vod: &crate::vod::Vod) -> Reply {
        let path = http.req_header().uri.path().to_owned();
        if path.starts_with(crate::vod::tus::PREFIX) {
            return crate::vod::http::tus(vod, http, REQUEST_BODY_TIMEOUT).await;
        }
        let body = match body::read(http, crate::vod::api::MAX_API_BODY, REQUEST_BODY_TIMEOUT).await
        {
            Ok(b) => b,
            Err(e) => {
                http.set_keepalive(None);
                return body_error(&e);
            }
        };
        let h = http.req_header();
        let r = vod.api(&h.method, &path, &h.headers, &body).await;
        Reply {
            status: r.status,
            headers: r.headers,
            body: Body::Full(r.body),
            part_published: None,
        }
    }

    /// Writes `reply` to the session. `false`: the connection cannot be reused.
    async fn write(&self, http: &mut ServerSession, reply: Reply, head_only: bool) -> bool {
        self.metrics.http_responses.add(reply.status.as_u16());
        let Some(header) = response_header(&reply) else {
            return false;
        };
        if let Err(e) = http.write_response_header(Box::new(header)).await {
            debug!("writing response header: {e}");
            return false;
        }
        if let Some(published) = reply.part_published {
            self.metrics.part_first_byte.observe(published.elapsed());
        }
        if head_only {
            return true;
        }
        match reply.body {
            Body::Full(b) => {
                if b.is_empty() {
                    return true;
                }
                if let Err(e) = http.write_response_body(b, true).await {
                    debug!("writing response body: {e}");
                    return false;
                }
            }
            Body::Growing(g) => {
                let mut sent = 0;
                loop {
                    let Some((chunks, done)) = g.next(sent).await else {
                        // Abandoned mid-way: cut the connection so the client sees an
                        // error, not a short part.
                        return false;
                    };
                    sent += chunks.len();
                    for c in chunks {
                        if let Err(e) = http.write_response_body(c, false).await {
                            debug!("writing response body: {e}");
                            return false;
                        }
                    }
                    if done {
                        break;
                    }
                }
                if let Err(e) = http.finish_body().await {
                    debug!("finishing chunked body: {e}");
                    return false;
                }
            }
        }
        true
    }
}

#[async_trait]
impl HttpServerApp for OriginHttp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // One deadline for the whole request head (and for a kept-alive connection's
        // idle time): a client trickling bytes (slow loris) cannot hold a connection.
        match tokio::time::timeout(REQUEST_HEAD_TIMEOUT, http.read_request()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return None,
            Ok(Err(e)) => {
                debug!("reading request: {e}");
                return None;
            }
            Err(_) => {
                debug!("request head not received in time");
                return None;
            }
        }
        // A client that stops reading a response is dropped too.
        http.set_write_timeout(Some(WRITE_TIMEOUT));
        http.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let peer = http.client_addr().and_then(|a| a.as_inet()).copied();
        let head_only = http.req_header().method == Method::HEAD;
        let whip = self.whip.clone().filter(|_| {
            http.req_header()
                .uri
                .path()
                .starts_with(crate::ingest::whip::http::PREFIX)
        });
        let whep = self.whep.clone().filter(|_| {
            http.req_header()
                .uri
                .path()
                .starts_with(crate::egress::whep::http::PREFIX)
        });
        // Only WHIP's and WHEP's offers and trickles take a body; every body
        // is read here, within its limit (`body`).
        let takes_body = matches!(http.req_header().method, Method::POST | Method::PATCH);
        let qoe = self
            .qoe
            .clone()
            .filter(|_| http.req_header().uri.path() == qoe::PATH);
        let limit = match (&whip, &whep) {
            (Some(w), _) if takes_body => w.max_offer_bytes(),
            (_, Some(w)) if takes_body => w.max_offer_bytes(),
            // Refused before its body is read unless it has the token.
            _ if takes_body && qoe.is_some() => qoe::MAX_BODY,
            _ => body::UNUSED_BODY_LIMIT,
        };
        let vod = self.vod.clone().filter(|_| {
            let path = http.req_header().uri.path();
            path.starts_with("/api/v1/") || path.starts_with(crate::vod::tus::PREFIX)
        });
        let qoe_refused = qoe
            .as_ref()
            .and_then(|q| q.refuse(&http.req_header().headers));
        let reply = if let Some(refused) = qoe_refused {
            // A small body is read and dropped (the connection stays, and the
            // client sees the 401 rather than a reset); a larger one is not
            // read, and the connection closes.
            if body::read(&mut http, body::UNUSED_BODY_LIMIT, REQUEST_BODY_TIMEOUT)
                .await
                .is_err()
            {
                http.set_keepalive(None);
            }
            refused
        } else if let Some(vod) = vod {
            self.vod_request(&mut http, &vod).await
        } else {
            match (
                body::read(&mut http, limit, REQUEST_BODY_TIMEOUT).await,
                whip,
                whep,
            ) {
                (Err(e), _, _) => {
                    debug!(?peer, "request body refused: {e}");
                    // The rest of the body is not read: the connection cannot be reused.
                    http.set_keepalive(None);
                    body_error(&e)
                }
                (Ok(body), Some(whip), _) => self.webrtc_request(&http, peer, body, |req| {
                    let now_unix = brook_packager::UnixMillis(crate::serve::hub::unix_ms());
                    whip.handle(req, std::time::Instant::now(), now_unix)
                }),
                (Ok(body), None, Some(whep)) => self.webrtc_request(&http, peer, body, |req| {
                    whep.handle(req, std::time::Instant::now())
                }),
                (Ok(body), None, None) => {
                    let h = http.req_header();
                    let req = Request {
                        method: &h.method,
                        path: h.uri.path(),
                        query: h.uri.query(),
                        headers: &h.headers,
                        peer,
                    };
                    match &qoe {
                        Some(qoe) => qoe.handle(&req, &body),
                        None => self.handle(&req).await,
                    }
                }
            }
        };
        if !self.write(&mut http, reply, head_only).await {
            return None;
        }
        let persistent = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, persistent)),
            Err(e) => {
                debug!("finishing response: {e}");
                None
            }
        }
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

#[cfg(test)]
mod tests;
