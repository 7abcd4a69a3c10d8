//! WHEP over HTTP (draft-ietf-wish-whep-04 §4): the endpoint `/whep/<stream>`
//! and its session resources `/whep/<stream>/<id>`. Pure request → reply,
//! given the time; the viewers it creates go to the shared WebRTC socket loop
//! (`ingest::whip::server`) through a channel.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /whep/<s>` `application/sdp` (a recvonly offer) | `201` + `Location` + `ETag` + SDP answer |
//! | … wrong content type / offer too large | `415` (+ `Accept-Post`) / `413` (the HTTP layer's) |
//! | … the stream is not live (or is encrypted: its media leaves only encrypted) | `404` |
//! | … malformed SDP / nothing Brook can send (no H.264, `sendonly`, …) | `400` / `422`, with the reason |
//! | … `whep.max_sessions` reached, shutting down | `503` + `Retry-After` |
//! | `PATCH /whep/<s>/<id>` `application/trickle-ice-sdpfrag` | `204` (ICE-lite needs no candidates); ICE restart `422`; `428` / `412` / `415` / `400` as WHIP |
//! | `DELETE /whep/<s>/<id>` | `200`; `404` when unknown (or already ended) |
//! | `OPTIONS` | `200` with CORS and `Accept-Post: application/sdp` |
//! | `GET` on the endpoint or a session | `204` (no representation) |
//!
//! Viewer tokens are checked by the edge, as for `/live/` (the origin serves
//! whoever reaches it: run it behind the edge). The session id is 128 random
//! bits; it is the only key to the session resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::sdp;
use super::session::Viewer;
use crate::egress::feed::Feeds;
use crate::ingest::whip::http::{
    cors, new_id, patch, remote_ufrag, valid_id, WhipReply as Reply, WhipRequest as Request, SDP,
    SDPFRAG,
};
use crate::ingest::whip::sdp::OfferError;
use crate::ingest::whip::session::SessionConfig;
use crate::ingest::whip::GuestCommand;

pub const PREFIX: &str = "/whep/";

/// Endpoint limits.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_offer_bytes: usize,
    pub max_sessions: usize,
    /// Items (frames) a viewer's queue holds before it loses frames.
    pub queue_frames: usize,
}

#[derive(Debug, Clone)]
struct Resource {
    stream: String,
    etag: String,
    remote_ufrag: Option<String>,
}

/// The WHEP endpoint and its session resources.
pub struct Endpoint {
    feeds: Arc<Feeds>,
    session: SessionConfig,
    settings: Settings,
    resources: Mutex<HashMap<String, Resource>>,
    control: UnboundedSender<GuestCommand>,
    /// Wakes the socket loop when a viewer's frames arrive.
    wake: Arc<Notify>,
}

impl Endpoint {
    pub fn new(
        feeds: Arc<Feeds>,
        session: SessionConfig,
        settings: Settings,
        control: UnboundedSender<GuestCommand>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            feeds,
            session,
            settings,
            resources: Mutex::new(HashMap::new()),
            control,
            wake,
        }
    }

    pub fn max_offer_bytes(&self) -> usize {
        self.settings.max_offer_bytes
    }

    /// Viewers the endpoint knows (connecting or watching).
    pub fn sessions(&self) -> usize {
        self.resources().len()
    }

    fn resources(&self) -> MutexGuard<'_, HashMap<String, Resource>> {
        self.resources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A viewer ended on its own (left, timed out, the stream ended).
    pub fn forget(&self, id: &str) {
        self.resources().remove(id);
    }

    /// Answers one request under `/whep/`.
    pub fn handle(&self, req: &Request<'_>, now: Instant) -> Reply {
        let Some(rest) = req.path.strip_prefix(PREFIX) else {
            return Reply::text(StatusCode::NOT_FOUND, "not found");
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [stream] if crate::valid_stream_name(stream) => self.endpoint(req, stream, now),
            [stream, id] if crate::valid_stream_name(stream) && valid_id(id) => {
                self.resource(req, stream, id)
            }
            _ => Reply::text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn endpoint(&self, req: &Request<'_>, stream: &str, now: Instant) -> Reply {
        match *req.method {
            Method::POST => self.post(req, stream, now),
            Method::OPTIONS => {
                cors(Reply::new(StatusCode::OK), req, "POST, OPTIONS").header("accept-post", SDP)
            }
            Method::GET | Method::HEAD => Reply::new(StatusCode::NO_CONTENT),
            _ => Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "POST, OPTIONS"),
        }
    }

    fn post(&self, req: &Request<'_>, stream: &str, now: Instant) -> Reply {
        if req.content_type().as_deref() != Some(SDP) {
            return Reply::text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a WHEP offer is Content-Type: application/sdp",
            )
            .header("accept-post", SDP);
        }
        let Ok(text) = std::str::from_utf8(&req.body) else {
            return Reply::text(StatusCode::BAD_REQUEST, "malformed SDP offer: not UTF-8");
        };
        let (offer, accepted) = match sdp::check_offer(text) {
            Ok(o) => o,
            Err(e) => return offer_error(&e, stream, req),
        };
        // After the offer's checks: a client learns what is wrong with its
        // offer whether or not the stream is live.
        let Some(feed) = self.feeds.get(stream) else {
            return Reply::text(StatusCode::NOT_FOUND, "the stream is not live");
        };
        let Some(id) = new_id() else {
            return Reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no randomness for a session id",
            );
        };
        let etag = format!("\"{}\"", &id[..16]);
        {
            // The limit is checked and the slot taken under one lock.
            let mut resources = self.resources();
            if resources.len() >= self.settings.max_sessions {
                return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "too many WHEP viewers")
                    .header("retry-after", "5");
            }
            resources.insert(
                id.clone(),
                Resource {
                    stream: stream.to_string(),
                    etag: etag.clone(),
                    remote_ufrag: remote_ufrag(text),
                },
            );
        }
        let wake = self.wake.clone();
        let subscription = feed.subscribe(
            self.settings.queue_frames,
            Arc::new(move || wake.notify_one()),
        );
        let summary = accepted.to_string();
        let created = Viewer::new(
            id.clone(),
            stream.to_string(),
            offer,
            accepted,
            subscription,
            &self.session,
            now,
        );
        let (viewer, answer) = match created {
            Ok(v) => v,
            Err(e) => {
                self.forget(&id);
                return offer_error(&e, stream, req);
            }
        };
        if self
            .control
            .send(GuestCommand::Start(Box::new(viewer)))
            .is_err()
        {
            self.forget(&id);
            return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "WHEP is shutting down")
                .header("retry-after", "5");
        }
        info!(%stream, peer = ?req.peer, viewer = %id, "WHEP viewer created: {summary}");
        let mut r = Reply::new(StatusCode::CREATED)
            .header("content-type", SDP)
            .header("location", format!("{PREFIX}{stream}/{id}"))
            .header("etag", etag)
            .header("accept-patch", SDPFRAG);
        r.body = Bytes::from(answer);
        r
    }

    fn resource(&self, req: &Request<'_>, stream: &str, id: &str) -> Reply {
        if *req.method == Method::OPTIONS {
            return cors(Reply::new(StatusCode::OK), req, "PATCH, DELETE, OPTIONS")
                .header("accept-patch", SDPFRAG);
        }
        let Some(resource) = self
            .resources()
            .get(id)
            .filter(|r| r.stream == stream)
            .cloned()
        else {
            return Reply::text(StatusCode::NOT_FOUND, "no such WHEP session");
        };
        match *req.method {
            Method::DELETE => {
                self.forget(id);
                let _ = self.control.send(GuestCommand::End {
                    id: id.to_string(),
                    reason: "the viewer sent DELETE".into(),
                });
                Reply::new(StatusCode::OK)
            }
            Method::PATCH => patch(req, &resource.etag, resource.remote_ufrag.as_deref()),
            Method::GET | Method::HEAD => Reply::new(StatusCode::NO_CONTENT),
            _ => Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "PATCH, DELETE, OPTIONS"),
        }
    }
}

fn offer_error(e: &OfferError, stream: &str, req: &Request<'_>) -> Reply {
    warn!(%stream, peer = ?req.peer, "WHEP offer refused: {e}");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    Reply::text(status, e)
}

#[cfg(test)]
mod tests;
