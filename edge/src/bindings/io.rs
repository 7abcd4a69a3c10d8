//! Runtime helpers both bindings use: a timer race, and reading a body with
//! its size checked while it is read ([`crate::delivery::body`]).

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use worker::{ByteStream, Delay, Response, ResponseBody, Result};

use crate::delivery::body::{Limited, TooLarge};

/// Polls `fut` until it finishes or `ms` pass (`None`).
pub(crate) async fn with_timeout<F: Future>(fut: F, ms: u64) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut delay = pin!(Delay::from(Duration::from_millis(ms)));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if delay.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Reads `body` (declared `content_length`, if known) up to `limit` bytes;
/// stops reading, and answers `Err(TooLarge)`, as soon as it passes them.
pub(crate) async fn read_limited(
    body: Option<ByteStream>,
    content_length: Option<&str>,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, TooLarge>> {
    let mut out = Limited::new(limit);
    if let Err(e) = out.declared(content_length) {
        return Ok(Err(e));
    }
    let Some(mut body) = body else {
        return Ok(Ok(Vec::new()));
    };
    while let Some(chunk) = body.next().await {
        if let Err(e) = out.push(&chunk?) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(out.finish()))
}

/// A response's body, up to `limit` bytes (see [`read_limited`]): streamed
/// bodies (the origin's, the Cache API's, a room's) are read with the limit
/// checked while reading; one this edge made is already in memory.
pub(crate) async fn read_response(
    res: &mut Response,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, TooLarge>> {
    match res.body() {
        ResponseBody::Empty => Ok(Ok(Vec::new())),
        ResponseBody::Body(bytes) => {
            let mut out = Limited::new(limit);
            Ok(out.push(bytes).map(|()| out.finish()))
        }
        ResponseBody::Stream(_) => read_limited(res.stream().ok(), None, limit).await,
    }
}
