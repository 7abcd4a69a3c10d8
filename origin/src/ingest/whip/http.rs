//! WHIP over HTTP (RFC 9725 §4): the endpoint `/whip/<stream>` and its session
//! resources `/whip/<stream>/<id>`. Pure request → reply, given the time; the
//! sessions it creates go to the socket loop through a channel.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /whip/<s>` `application/sdp`, `Authorization: Bearer <key>` | `201` + `Location` + `ETag` + SDP answer (+ `Link` per ICE server) |
//! | … wrong content type / offer too large | `415` / `413` (the HTTP layer's, `serve::http::body`) |
//! | … no or wrong key, or stream not configured (alike) / already published | `401` / `409` |
//! | … malformed SDP / no H.264 (or other unacceptable offer) | `400` / `422`, with the reason |
//! | … session limit reached, shutting down | `503` + `Retry-After` |
//! | `PATCH /whip/<s>/<id>` `application/trickle-ice-sdpfrag` | `204` (trickled candidates; ICE-lite does not need them) |
//! | … ICE restart (`If-Match: *`, or new ufrag/pwd) | `422`: not supported (§4.3.1) |
//! | … no `If-Match` / stale ETag | `428` / `412` |
//! | `DELETE /whip/<s>/<id>` | `200`; `404` when unknown (or already ended) |
//! | `OPTIONS` | `200` with CORS and `Accept-Post: application/sdp` (+ `Link` when not a preflight and the stream's key is given) |
//! | `GET` on the endpoint or a session | `204` (§4.1: no representation) |
//!
//! The broadcaster page (`web/publish.html`) is served at `/whip/` too, so a
//! page from the origin publishes without CORS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use brook_packager::UnixMillis;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use super::sdp::{self, OfferError};
use super::session::{Session, SessionConfig};
use super::IceServer;
use crate::constant_time_eq;
use crate::ingest::{Admission, Claim, Protocol, Refusal};

pub const PREFIX: &str = "/whip/";
pub(crate) const SDP: &str = "application/sdp";
pub(crate) const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const TEXT: &str = "text/plain; charset=utf-8";
/// Headers a cross-origin page may read (RFC 9725 §4.2 needs `Location`).
pub const EXPOSE: &str = "location, link, etag, accept-patch, accept-post, content-type";

/// The broadcaster page, served at `/whip/` (and, through the edge, from `web/`).
const PAGE: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../../../../web/publish.html"),
    ),
    (
        "publish.html",
        "text/html; charset=utf-8",
        include_str!("../../../../web/publish.html"),
    ),
    (
        "publish.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../../web/publish.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../../web/style.css"),
    ),
];

/// What the socket loop is told.
#[derive(Debug)]
pub enum Command {
    /// A session whose answer is being sent.
    Start(Box<Session>),
    /// End a session (DELETE).
    End { id: String, reason: String },
    /// Host another kind of session on the socket (WHEP viewers).
    Host(Box<super::server::Guest>),
    /// End every session and stop.
    Shutdown,
}

/// A request as the WHIP endpoint needs it.
#[derive(Debug)]
pub struct WhipRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The whole body, read by the HTTP layer within its limit
    /// (`max_offer_bytes` for POST and PATCH; `serve::http::body`).
    pub body: Bytes,
    pub peer: Option<SocketAddr>,
}

impl WhipRequest<'_> {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of `Content-Type`, without parameters, lowercased.
    pub(crate) fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1; the
    /// scheme in any case, RFC 9110).
    fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(brook_common::credentials::bearer)
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipReply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl WhipReply {
    pub(crate) fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: vec![("cache-control", "no-store".into())],
            body: Bytes::new(),
        }
    }

    pub(crate) fn text(status: StatusCode, msg: impl std::fmt::Display) -> Self {
        let mut r = Self::new(status);
        r.headers.push(("content-type", TEXT.into()));
        r.body = Bytes::from(format!("{msg}\n"));
        r
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Endpoint limits and what it tells clients.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    pub max_offer_bytes: usize,
    pub max_sessions: usize,
    pub ice_servers: Vec<IceServer>,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        let c = super::WhipConfig::default();
        Self {
            max_offer_bytes: c.max_offer_bytes,
            max_sessions: c.max_sessions,
            ice_servers: Vec::new(),
        }
    }
}

/// A session resource, as the HTTP side knows it.
#[derive(Debug, Clone)]
struct Resource {
    stream: String,
    key: Option<String>,
    etag: String,
    remote_ufrag: Option<String>,
}

/// The WHIP endpoint and its session resources.
pub struct Endpoint {
    admission: Arc<dyn Admission>,
    session: SessionConfig,
    settings: EndpointSettings,
    resources: Mutex<HashMap<String, Resource>>,
    control: UnboundedSender<Command>,
}

impl Endpoint {
    pub fn new(
        admission: Arc<dyn Admission>,
        session: SessionConfig,
        settings: EndpointSettings,
        control: UnboundedSender<Command>,
    ) -> Self {
        Self {
            admission,
            session,
            settings,
            resources: Mutex::new(HashMap::new()),
            control,
        }
    }

    pub fn session_config(&self) -> &SessionConfig {
        &self.session
    }

    pub fn max_offer_bytes(&self) -> usize {
        self.settings.max_offer_bytes
    }

    /// Sessions the endpoint knows (connecting or live).
    pub fn sessions(&self) -> usize {
        self.resources().len()
    }

    fn resources(&self) -> MutexGuard<'_, HashMap<String, Resource>> {
        self.resources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The socket loop reports a session that ended on its own (timeout, the
    /// client left): its resource goes (a later DELETE is a 404).
    pub fn forget(&self, id: &str) {
        self.resources().remove(id);
    }

    /// Answers one request under `/whip/`. `now`/`now_unix`: the time, on both
    /// clocks.
    pub fn handle(&self, req: &WhipRequest<'_>, now: Instant, now_unix: UnixMillis) -> WhipReply {
        let Some(rest) = req.path.strip_prefix(PREFIX) else {
            return WhipReply::text(StatusCode::NOT_FOUND, "not found");
        };
        if let Some((_, content_type, body)) = PAGE.iter().find(|(name, _, _)| *name == rest) {
            return match *req.method {
                Method::GET | Method::HEAD => {
                    let mut r =
                        WhipReply::new(StatusCode::OK).header("content-type", *content_type);
                    r.headers[0].1 = "no-cache".into();
                    r.body = Bytes::from_static(body.as_bytes());
                    r
                }
                _ => WhipReply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                    .header("allow", "GET, HEAD"),
            };
        }
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [stream] if crate::valid_stream_name(stream) => {
                self.endpoint(req, stream, now, now_unix)
            }
            [stream, id] if crate::valid_stream_name(stream) && valid_id(id) => {
                self.resource(req, stream, id)
            }
            _ => WhipReply::text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn endpoint(
        &self,
        req: &WhipRequest<'_>,
        stream: &str,
        now: Instant,
        now_unix: UnixMillis,
    ) -> WhipReply {
        match *req.method {
            Method::POST => self.post(req, stream, now, now_unix),
            Method::OPTIONS => {
                let mut r = cors(WhipReply::new(StatusCode::OK), req, "POST, OPTIONS")
                    .header("accept-post", SDP);
                // §4.6: ICE servers on OPTIONS, but not on a CORS preflight, and
                // only to a client that may publish the stream: TURN credentials
                // are the operator's, not for anyone who asks.
                let claim = Claim {
                    stream,
                    key: req.bearer(),
                    peer: req.peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                    protocol: Protocol::Whip,
                };
                if req.header("access-control-request-method").is_none()
                    && self.admission.admit(&claim).is_ok()
                {
                    r = self.links(r);
                }
                r
            }
            Method::GET | Method::HEAD => WhipReply::new(StatusCode::NO_CONTENT),
            _ => WhipReply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "POST, OPTIONS"),
        }
    }

    fn links(&self, mut r: WhipReply) -> WhipReply {
        for server in &self.settings.ice_servers {
            for url in &server.urls {
                let mut link = format!("<{url}>; rel=\"ice-server\"");
                if let (Some(u), Some(c)) = (&server.username, &server.credential) {
                    link.push_str(&format!(
                        "; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""
                    ));
                }
                r = r.header("link", link);
            }
        }
        r
    }

    fn post(
        &self,
        req: &WhipRequest<'_>,
        stream: &str,
        now: Instant,
        now_unix: UnixMillis,
    ) -> WhipReply {
        let body = &req.body;
        if req.content_type().as_deref() != Some(SDP) {
            return WhipReply::text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a WHIP offer is Content-Type: application/sdp",
            )
            .header("accept-post", SDP);
        }
        let key = req.bearer();
        let claim = Claim {
            stream,
            key,
            peer: req.peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            protocol: Protocol::Whip,
        };
        if let Err(refusal) = self.admission.admit(&claim) {
            info!(%stream, peer = ?req.peer, "WHIP publish refused: {refusal}");
            return refused(&refusal);
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return WhipReply::text(StatusCode::BAD_REQUEST, "malformed SDP offer: not UTF-8");
        };
        let (offer, accepted) = match sdp::check_offer(text) {
            Ok(o) => o,
            Err(e) => return offer_error(&e, stream, req.peer),
        };
        let remote_ufrag = remote_ufrag(text);
        let Some(id) = new_id() else {
            return WhipReply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no randomness for a session id",
            );
        };
        let session = Session::new(
            id.clone(),
            stream.to_string(),
            key.map(str::to_string),
            offer,
            accepted,
            &self.session,
            self.admission.clone(),
            now,
            now_unix,
        );
        let (session, answer) = match session {
            Ok(s) => s,
            Err(e) => return offer_error(&e, stream, req.peer),
        };
        let etag = format!("\"{}\"", &id[..16]);
        {
            // The limit is checked and the slot taken under one lock: concurrent
            // offers cannot together exceed it.
            let mut resources = self.resources();
            if resources.len() >= self.settings.max_sessions {
                return WhipReply::text(StatusCode::SERVICE_UNAVAILABLE, "too many WHIP sessions")
                    .header("retry-after", "5");
            }
            resources.insert(
                id.clone(),
                Resource {
                    stream: stream.to_string(),
                    key: key.map(str::to_string),
                    etag: etag.clone(),
                    remote_ufrag,
                },
            );
        }
        if self
            .control
            .send(Command::Start(Box::new(session)))
            .is_err()
        {
            self.forget(&id);
            return WhipReply::text(StatusCode::SERVICE_UNAVAILABLE, "WHIP is shutting down")
                .header("retry-after", "5");
        }
        info!(%stream, peer = ?req.peer, session = %id, "WHIP session created: {accepted}");
        let mut r = WhipReply::new(StatusCode::CREATED)
            .header("content-type", SDP)
            .header("location", format!("{PREFIX}{stream}/{id}"))
            .header("etag", etag)
            .header("accept-patch", SDPFRAG);
        r.body = Bytes::from(answer);
        self.links(r)
    }

    fn resource(&self, req: &WhipRequest<'_>, stream: &str, id: &str) -> WhipReply {
        if *req.method == Method::OPTIONS {
            return cors(
                WhipReply::new(StatusCode::OK),
                req,
                "PATCH, DELETE, OPTIONS",
            )
            .header("accept-patch", SDPFRAG);
        }
        let Some(resource) = self
            .resources()
            .get(id)
            .filter(|r| r.stream == stream)
            .cloned()
        else {
            return WhipReply::text(StatusCode::NOT_FOUND, "no such WHIP session");
        };
        // §4.5: the session takes the same bearer token as the endpoint.
        if let Some(expected) = &resource.key {
            let ok = req
                .bearer()
                .is_some_and(|k| constant_time_eq(k.as_bytes(), expected.as_bytes()));
            if !ok {
                return refused(&Refusal::Denied(String::new()));
            }
        }
        match *req.method {
            Method::DELETE => {
                self.forget(id);
                let _ = self.control.send(Command::End {
                    id: id.to_string(),
                    reason: "the client sent DELETE".into(),
                });
                WhipReply::new(StatusCode::OK)
            }
            Method::PATCH => patch(req, &resource.etag, resource.remote_ufrag.as_deref()),
            Method::GET | Method::HEAD => WhipReply::new(StatusCode::NO_CONTENT),
            _ => WhipReply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "PATCH, DELETE, OPTIONS"),
        }
    }
}

/// Trickle ICE and ICE restarts (RFC 9725 §4.3). Brook is ICE-lite: it learns
/// the client's address from the client's own connectivity checks, so trickled
/// candidates are accepted and need no action; ICE restarts are not supported.
pub(crate) fn patch(req: &WhipRequest<'_>, etag: &str, remote_ufrag: Option<&str>) -> WhipReply {
    if req.content_type().as_deref() != Some(SDPFRAG) {
        return WhipReply::text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "PATCH takes Content-Type: application/trickle-ice-sdpfrag",
        )
        .header("accept-patch", SDPFRAG);
    }
    let restart = || {
        WhipReply::text(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ICE restarts are not supported; start a new session (DELETE, then POST)",
        )
    };
    match req.header("if-match").map(str::trim) {
        None => return WhipReply::text(StatusCode::PRECONDITION_REQUIRED, "PATCH needs If-Match"),
        Some("*") => return restart(),
        Some(tag) if tag != etag => {
            return WhipReply::text(
                StatusCode::PRECONDITION_FAILED,
                "stale ETag for this ICE session",
            )
        }
        Some(_) => {}
    }
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return WhipReply::text(StatusCode::BAD_REQUEST, "malformed SDP fragment: not UTF-8");
    };
    for (n, line) in text.lines().map(|l| l.trim_end_matches('\r')).enumerate() {
        if line.is_empty() {
            continue;
        }
        let valid = line.len() >= 2
            && line.as_bytes()[1] == b'='
            && line.as_bytes()[0].is_ascii_lowercase();
        if !valid {
            return WhipReply::text(
                StatusCode::BAD_REQUEST,
                format!(
                    "malformed SDP fragment: line {} is not <type>=<value>",
                    n + 1
                ),
            );
        }
        if let Some(ufrag) = line.strip_prefix("a=ice-ufrag:") {
            if remote_ufrag != Some(ufrag.trim()) {
                return restart();
            }
        }
    }
    WhipReply::new(StatusCode::NO_CONTENT)
}

/// A preflight's answer (brook-common's, as every answer Brook gives); the
/// headers a WHIP client sends are allowed even when the browser does not
/// list them (`*` would not cover `Authorization`).
pub(crate) fn cors(mut r: WhipReply, req: &WhipRequest<'_>, methods: &str) -> WhipReply {
    let requested = req
        .header("access-control-request-headers")
        .unwrap_or("authorization, content-type, if-match, link");
    r.headers.extend(brook_common::cors::preflight_headers(
        methods,
        Some(requested),
    ));
    r
}

fn refused(refusal: &Refusal) -> WhipReply {
    match refusal {
        // An unknown stream and a wrong key look the same: no hint of which
        // check failed, nor of which stream names exist.
        Refusal::Denied(_) => WhipReply::text(StatusCode::UNAUTHORIZED, "unauthorized")
            .header("www-authenticate", "Bearer realm=\"brook\""),
        Refusal::Busy(_) => {
            WhipReply::text(StatusCode::CONFLICT, "the stream already has a publisher")
        }
        Refusal::Unavailable(_) => {
            WhipReply::text(StatusCode::SERVICE_UNAVAILABLE, "try again later")
                .header("retry-after", "5")
        }
    }
}

pub(crate) fn offer_error(e: &OfferError, stream: &str, peer: Option<SocketAddr>) -> WhipReply {
    warn!(%stream, ?peer, "WHIP offer refused: {e}");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    WhipReply::text(status, e)
}

/// The offer's `a=ice-ufrag` (to tell a trickle PATCH from an ICE restart).
pub(crate) fn remote_ufrag(offer: &str) -> Option<String> {
    offer
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_string())
}

/// 128 random bits, hex: session URLs cannot be guessed.
pub(crate) fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests;
