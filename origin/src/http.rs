//! HTTP delivery over Pingora: playlists (with LL-HLS blocking reload) and media
//! objects from the hub. This layer knows HLS request semantics (RFC 8216bis §6.2.5)
//! and HTTP caching, and nothing about codecs.
//!
//! URL layout, for stream `cam1` and publish session `S`:
//!
//! ```text
//! /live/cam1/index.m3u8          multivariant playlist (stable URL, never cached long)
//! /live/cam1/S/media.m3u8        media playlist; ?_HLS_msn=M&_HLS_part=P blocks
//! /live/cam1/S/<object>          init.mp4, partM.P.m4s, segM.m4s (immutable)
//! /healthz                       liveness
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use brook_packager::{ObjectKind, MEDIA_PLAYLIST_NAME};
use bytes::Bytes;
use http::{Method, StatusCode};
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use tokio::time::Instant;
use tracing::debug;

use crate::config::HlsConfig;
use crate::hub::{Hub, Snapshot, Stream};

const M3U8: &str = "application/vnd.apple.mpegurl";
const MP4: &str = "video/mp4";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// An HTTP response before it is written.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Reply {
    fn new(status: StatusCode, content_type: &str, body: Bytes) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.to_string())],
            body,
        }
    }

    fn text(status: StatusCode, msg: &str) -> Self {
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
}

/// The origin's HTTP application.
pub struct OriginHttp {
    hub: Arc<Hub>,
    hls: HlsConfig,
}

impl OriginHttp {
    pub fn new(hub: Arc<Hub>, hls: HlsConfig) -> Self {
        Self { hub, hls }
    }

    /// Routes one request. Public so tests can drive it without sockets.
    pub async fn handle(&self, method: &Method, path: &str, query: Option<&str>) -> Reply {
        if method == Method::OPTIONS {
            return Reply::new(StatusCode::NO_CONTENT, "text/plain", Bytes::new())
                .header("access-control-allow-methods", "GET, HEAD, OPTIONS")
                .header("access-control-allow-headers", "*")
                .header("access-control-max-age", "86400");
        }
        if method != Method::GET && method != Method::HEAD {
            return Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "GET, HEAD, OPTIONS");
        }
        if path == "/healthz" {
            return Reply::text(StatusCode::OK, "ok");
        }
        let Some(rest) = path.strip_prefix("/live/") else {
            return Reply::text(StatusCode::NOT_FOUND, "not found");
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let Some(stream) = parts.first().and_then(|name| self.hub.stream(name)) else {
            return Reply::text(StatusCode::NOT_FOUND, "unknown stream");
        };
        match parts.as_slice() {
            [_, "index.m3u8"] => self.multivariant(&stream).await,
            [_, session, MEDIA_PLAYLIST_NAME] => self.media(&stream, session, query).await,
            [_, session, object] if !object.is_empty() => {
                self.object(&stream, session, object).await
            }
            _ => Reply::text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    async fn multivariant(&self, stream: &Stream) -> Reply {
        let deadline = Instant::now() + Duration::from_millis(self.hls.startup_wait_ms);
        let ready = wait_for(stream, deadline, |s| s.multivariant.is_some() || !s.live).await;
        match ready.and_then(|s| s.multivariant.clone()) {
            Some(body) => {
                Reply::new(StatusCode::OK, M3U8, body).header("cache-control", "no-cache")
            }
            None => Reply::text(StatusCode::SERVICE_UNAVAILABLE, "stream is starting")
                .header("retry-after", "1"),
        }
    }

    async fn media(&self, stream: &Stream, session: &str, query: Option<&str>) -> Reply {
        let request = match BlockingRequest::parse(query.unwrap_or("")) {
            Ok(r) => r,
            Err(msg) => return Reply::text(StatusCode::BAD_REQUEST, msg),
        };
        let wait = if request.msn.is_some() {
            self.hls.blocking_timeout_ms
        } else {
            self.hls.startup_wait_ms
        };
        let deadline = Instant::now() + Duration::from_millis(wait);
        let mut too_far = false;
        let snapshot = wait_for(stream, deadline, |s| {
            if s.session != session {
                return true; // answered below with 404
            }
            let Some(media) = &s.media else {
                return !s.live;
            };
            if media.end_list {
                return true;
            }
            match request.msn {
                None => true,
                Some(msn) => {
                    if request.too_far_ahead(media) {
                        too_far = true;
                        return true;
                    }
                    media.contains(msn, request.part)
                }
            }
        })
        .await;
        let Some(s) = snapshot else {
            return Reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the requested part did not become available in time",
            );
        };
        if s.session != session {
            return Reply::text(StatusCode::NOT_FOUND, "unknown session");
        }
        if too_far {
            return Reply::text(
                StatusCode::BAD_REQUEST,
                "_HLS_msn/_HLS_part is too far ahead of the live edge",
            );
        }
        if s.media.is_none() {
            return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "stream is starting")
                .header("retry-after", "1");
        }
        // A blocking response describes a fixed state of the stream and can be cached
        // (keyed on the query) by a CDN; a plain reload must not be.
        let cache = if request.msn.is_some() {
            "public, max-age=6"
        } else {
            "no-cache"
        };
        Reply::new(StatusCode::OK, M3U8, s.media_text.clone()).header("cache-control", cache)
    }

    async fn object(&self, stream: &Stream, session: &str, name: &str) -> Reply {
        let deadline = Instant::now() + Duration::from_millis(self.hls.blocking_timeout_ms);
        loop {
            let snap = stream.snapshot();
            if snap.session != session {
                return Reply::text(StatusCode::NOT_FOUND, "unknown session");
            }
            if let Some(obj) = stream.object(name) {
                let content_type = match obj.kind {
                    ObjectKind::Init | ObjectKind::Part | ObjectKind::Segment => MP4,
                };
                return Reply::new(StatusCode::OK, content_type, obj.data)
                    .header("cache-control", IMMUTABLE);
            }
            // The preload-hinted part may be requested before it exists (RFC 8216bis
            // §4.4.5.3): hold the request until the packager produces it.
            let hinted = snap
                .media
                .as_ref()
                .and_then(|m| m.preload_hint.as_deref())
                .is_some_and(|h| h == name);
            if !hinted || !snap.live {
                return Reply::text(StatusCode::NOT_FOUND, "no such object");
            }
            let mut rx = stream.subscribe();
            rx.borrow_and_update();
            if stream.object(name).is_some() {
                continue;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "part not produced in time");
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

/// `_HLS_msn` / `_HLS_part` of a blocking playlist reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockingRequest {
    pub msn: Option<u64>,
    pub part: Option<u64>,
}

impl BlockingRequest {
    pub fn parse(query: &str) -> Result<Self, &'static str> {
        let mut r = BlockingRequest::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "_HLS_msn" => r.msn = Some(v.parse().map_err(|_| "_HLS_msn is not a number")?),
                "_HLS_part" => r.part = Some(v.parse().map_err(|_| "_HLS_part is not a number")?),
                _ => {}
            }
        }
        if r.part.is_some() && r.msn.is_none() {
            return Err("_HLS_part without _HLS_msn");
        }
        Ok(r)
    }

    /// RFC 8216bis §6.2.5.2: more than two segments past the last one, or more than
    /// the Advance Part Limit past the last part, is answered 400 at once.
    pub fn too_far_ahead(&self, media: &brook_packager::hls::MediaPlaylist) -> bool {
        let Some(msn) = self.msn else {
            return false;
        };
        let next = media.next_msn();
        // The last complete segment is next - 1; `msn` may be at most two past it.
        if msn > next + 1 {
            return true;
        }
        let Some(part) = self.part else {
            return false;
        };
        let part_target = media.part_target.unwrap_or(1.0);
        let limit = if part_target < 1.0 {
            (3.0 / part_target).ceil() as u64
        } else {
            3
        };
        let published = media.trailing_parts.len() as u64;
        if msn == next {
            part > published + limit
        } else if msn == next + 1 {
            part > limit
        } else {
            false
        }
    }
}

#[async_trait]
impl HttpServerApp for OriginHttp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match http.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                debug!("reading request: {e}");
                return None;
            }
        }
        http.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let req = http.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let query = req.uri.query().map(str::to_string);
        let reply = self.handle(&method, &path, query.as_deref()).await;
        let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 3)).ok()?;
        for (k, v) in reply.headers {
            header.insert_header(k, v).ok()?;
        }
        header
            .insert_header("content-length", reply.body.len().to_string())
            .ok()?;
        header
            .insert_header("access-control-allow-origin", "*")
            .ok()?;
        let head_only = method == Method::HEAD;
        if let Err(e) = http.write_response_header(Box::new(header)).await {
            debug!("writing response header: {e}");
            return None;
        }
        if !head_only && !reply.body.is_empty() {
            if let Err(e) = http.write_response_body(reply.body, true).await {
                debug!("writing response body: {e}");
                return None;
            }
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
}

#[cfg(test)]
mod tests;
