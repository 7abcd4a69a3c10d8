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
    let creating_for = if method == Method::POST {
        query
            .as_deref()
            .and_then(upload_url::token_from_query)
            .and_then(|t| vod.signer.verify(t, unix_s()).ok())
            .and_then(|g| vod.db.asset_of_direct(&g.id).ok().flatten())
    } else {
        None
    };
    if let Some(a) = &creating_for {
        if a.status != Status::Waiting {
            // Deleted (or already filled) before its upload started.
            http.set_keepalive(None);
            return Reply::text(StatusCode::GONE, "this upload URL's asset is gone");
        }
    }
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
        let now = crate::serve::hub::unix_ms();
        match self
            .db
            .queue_processing(&asset.id, &dest.display().to_string(), now)
        {
            Ok(()) => info!(asset = %asset.id, bytes = done.length, "uploaded; queued"),
            Err(e) => warn!(asset = %asset.id, "queueing: {e}"),
        }
    }
}
