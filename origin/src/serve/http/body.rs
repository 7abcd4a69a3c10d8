//! Request bodies, read in one place for every request the origin answers:
//! the limit is checked before reading (a declared `Content-Length`) and
//! while reading (before each chunk is kept), under one deadline, so no client
//! can make the origin hold or read more than the limit.
//!
//! Only WHIP's offer (`POST`) and trickle (`PATCH`) take a body, up to
//! `whip.max_offer_bytes`. Any other request may carry up to
//! [`UNUSED_BODY_LIMIT`] bytes, read and ignored (a client that sends `{}` with
//! an admin `POST` keeps its connection); more is a 413. Without this, Pingora
//! would drain an unread body of any size to reuse the connection.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora_core::protocols::http::ServerSession;

/// The most a request that takes no body may carry (read and ignored).
pub const UNUSED_BODY_LIMIT: usize = 4096;

/// Why a request body could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Declared or found larger than the limit; the rest is not read.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Not all of it arrived before the deadline.
    #[error("the request body did not arrive within {0:?}")]
    Timeout(Duration),
    /// The connection failed while reading it.
    #[error("reading the request body: {0}")]
    Read(#[source] Box<pingora_core::Error>),
}

/// The parsed `Content-Length`, if the request declares one.
fn declared_length(http: &ServerSession) -> Option<u64> {
    http.req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads the request body of at most `limit` bytes within `deadline`. On an
/// error the rest of the body is unread: the caller closes the connection
/// after answering.
pub async fn read(
    http: &mut ServerSession,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    if declared_length(http).is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    if http.is_body_done() {
        return Ok(Bytes::new());
    }
    let read = async {
        let mut body = BytesMut::new();
        loop {
            match http.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(BodyError::TooLarge { limit });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(e) => return Err(BodyError::Read(e)),
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(BodyError::Timeout(deadline)))
}
