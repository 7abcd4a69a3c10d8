//! The tus endpoint on the origin's HTTP server: a request body read from
//! Pingora chunk by chunk (never whole) into `tus::TusStore`, and what a
//! completed upload starts (the asset's process job).
//!
//! Every upload is created through a direct upload URL (`POST
//! /uploads/?direct=<token>`): the backend makes one with the API first, so
//! an upload always belongs to an asset the API already knows.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode};
use pingora_core::protocols::http::ServerSession;
use tracing::{info, warn};

use super::db::Status;
use super::tus::{BodySource, TusRequest};
use super::{upload_url, Vod};
use crate::serve::http::{Body, Reply};

/// The request body of a tus request, one chunk per read, each within
/// `timeout` (a client that stops sending is a broken-off body).
struct PingoraBody<'a> {
    http: &'a mut ServerSession,
    timeout: Duration,
}

#[async_trait]
impl BodySource for PingoraBody<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        if self.http.is_body_done() {
            return Ok(None);
        }
        match tokio::time::timeout(self.timeout, self.http.read_request_body()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(format!("reading the upload: {e}")),
            Err(_) => Err(format!("no upload data for {:?}", self.timeout)),
        }
    }
}

fn unix_s() -> u64 {
    crate::serve::hub::unix_ms() / 1000
}

/// `/uploads/...`.
pub async fn tus(vod: &Vod, http: &mut ServerSession, timeout: Duration) -> Reply {
    let h = http.req_header();
    let method = h.method.clone();
    let path = h.uri.path().to_owned();
    let query = h.uri.query().map(str::to_owned);
    let headers = h.headers.clone();
    // The asset a creation fills, for the `Brook-Asset-Id` header the
    // upload page follows.
    let grant = if method == Method::POST {
        query
            .as_deref()
            .and_then(upload_url::token_from_query)
            .and_then(|t| vod.signer.verify(t, unix_s()).ok())
    } else {
        None
    };
    let creating_for = match &grant {
        Some(g) => match vod.db.asset_of_direct(&g.id) {
            Ok(Some(a)) if a.status == Status::Waiting => Some(a),
            // Deleted (or already filled) before its upload started: nothing
            // would ever be made of the upload.
            Ok(_) => {
                http.set_keepalive(None);
                return Reply::text(StatusCode::GONE, "this upload URL's asset is gone");
            }
            Err(e) => {
                warn!("looking up a direct upload: {e}");
                http.set_keepalive(None);
                return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "try again later");
            }
        },
        None => None,
    };
    let body_taken = matches!(method, Method::PATCH | Method::POST);
    let mut body = PingoraBody { http, timeout };
    let reply = vod
        .uploads
        .handle(
            TusRequest {
                method: &method,
                path: &path,
                query: query.as_deref(),
                headers: &headers,
                authorized: false,
                body: &mut body,
            },
            unix_s(),
        )
        .await;
    if body_taken && !body.http.is_body_done() {
        // Refused before its body was read: the connection cannot carry
        // another request.
        body.http.set_keepalive(None);
    }
    if let Some(done) = &reply.completed {
        vod.upload_completed(done);
    }
    let mut headers = reply.headers;
    if let (Some(a), true) = (&creating_for, reply.status == StatusCode::CREATED) {
        headers.push(("brook-asset-id", a.id.clone()));
    }
    Reply {
        status: reply.status,
        headers,
        body: Body::Full(reply.body),
        part_published: None,
    }
}

impl Vod {
    /// An upload is complete: its file moves to the asset's source and the
    /// asset is queued (or, if the asset is gone, the file is removed).
    pub fn upload_completed(&self, done: &super::tus::CompletedUpload) {
        let Some(grant) = &done.direct else {
            warn!(upload = %done.id, "a complete upload without a direct upload URL");
            return;
        };
        let asset = match self.db.asset_of_direct(&grant.id) {
            Ok(Some(a)) if a.status == Status::Waiting => a,
            Ok(_) => {
                info!(upload = %done.id, "upload complete, but its asset is gone");
                let _ = std::fs::remove_file(&done.path);
                return;
            }
            Err(e) => {
                // Left complete in the store: picked up again at start-up.
                warn!(upload = %done.id, "upload complete, asset unknown: {e}");
                return;
            }
        };
        let dest = self.source_path(&asset.id);
        if let Some(dir) = dest.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match self.uploads.take(&done.id, &dest) {
            Ok(_) => {}
            Err(e) => {
                warn!(upload = %done.id, "taking the upload: {e}");
                return;
            }
        }
        info!(asset = %asset.id, bytes = done.length, "uploaded");
        self.hand_over(&asset.id, dest);
    }

    /// Queues the asset's process job for its uploaded file at `path`.
    ///
    /// With SQLite (one origin) the job reads that file where it is. With a
    /// shared queue the origin that claims the job may be another machine:
    /// the file goes to storage first (`sources/<asset>`, in parts), then the
    /// job is queued naming that key, then the local copy goes. That runs as
    /// a task (gigabytes take a while; the upload's last request does not
    /// wait for it); an origin stopped before the job was queued starts over
    /// at its next start (`recover_uploads`: the asset is still `waiting`).
    pub fn hand_over(&self, asset: &str, path: std::path::PathBuf) {
        let now = crate::serve::hub::unix_ms();
        if !self.db.is_shared() {
            match self
                .db
                .queue_processing(asset, &path.display().to_string(), now)
            {
                Ok(true) => info!(%asset, "queued"),
                Ok(false) => {
                    info!(%asset, "its asset is gone; the upload is removed");
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => warn!(%asset, "queueing: {e}"),
            }
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            warn!(%asset, "no runtime to store the upload in; it is queued at the next start");
            return;
        };
        let (db, storage, asset) = (self.db.clone(), self.storage.clone(), asset.to_owned());
        rt.spawn(async move {
            let key = match super::source_key(&asset) {
                Ok(k) => k,
                Err(e) => return warn!(%asset, "{e}"),
            };
            let mut attempt = 0;
            while let Err(e) = storage.put_file(&key, &path).await {
                attempt += 1;
                if attempt >= 8 {
                    return warn!(%asset, "storing the upload failed {attempt} times, again at the next start: {e}");
                }
                let delay = super::webhook::backoff(attempt).min(Duration::from_secs(60));
                warn!(%asset, "storing the upload, again in {delay:?}: {e}");
                tokio::time::sleep(delay).await;
            }
            let payload = format!("{}{key}", super::SOURCE_IN_STORAGE);
            match db.queue_processing(&asset, &payload, crate::serve::hub::unix_ms()) {
                Ok(true) => {
                    info!(%asset, %key, "upload stored; queued");
                    let _ = tokio::fs::remove_file(&path).await;
                }
                // Deleted while it was being stored: nothing to queue.
                Ok(false) => {
                    info!(%asset, "upload stored, but its asset is gone");
                    let _ = storage.delete(&key).await;
                    let _ = tokio::fs::remove_file(&path).await;
                }
                Err(e) => warn!(%asset, "queueing: {e}"),
            }
        });
    }
}
