//! Runtime helpers the bindings use: a timer race, reading a body with its
//! size checked while it is read ([`crate::delivery::body`]), and an origin
//! body shared while it arrives ([`crate::delivery::shared`]): the leader's
//! pump, and the readers' waits.

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use brook_common::cors;
use futures_util::StreamExt;
use wasm_bindgen::JsValue;
use worker::js_sys::Promise;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    AbortController, ByteStream, Delay, Fetch, Headers, Request, RequestInit, Response,
    ResponseBody, Result,
};

use crate::delivery::body::{Limited, TooLarge};
use crate::delivery::shared::{Next, Reader, SharedBody};
use crate::delivery::upstream::has_null_body;

/// How long a reader of a shared body waits on it before checking again.
/// The timer also keeps the request visibly busy: workerd cancels as hung a
/// request that only waits on another request's promise.
const WAIT_TICK_MS: u64 = 1000;

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

/// The runtime's header list for `pairs` (repeated names kept).
pub(crate) fn headers<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Headers> {
    let out = Headers::new();
    for (k, v) in pairs {
        out.append(k.as_ref(), v.as_ref())?;
    }
    Ok(out)
}

/// Reads the origin's body into `body` as it arrives (the leader's pump,
/// run after the response has started). Stops reading once the body fails
/// (past its limit).
pub(crate) async fn pump(mut res: Response, body: &SharedBody) {
    match res.body() {
        ResponseBody::Empty => body.finish(),
        ResponseBody::Body(bytes) => {
            if body.push(bytes).is_ok() {
                body.finish();
            }
        }
        ResponseBody::Stream(_) => {
            let Ok(mut stream) = res.stream() else {
                body.fail("the origin's body is not readable");
                return;
            };
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        if body.push(&c).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        body.fail(format!("origin body: {e}"));
                        return;
                    }
                }
            }
            body.finish();
        }
    }
}

/// Waits, in this request, until `reader` has something new (`true`) or
/// [`WAIT_TICK_MS`] pass. The promise is made here and resolved by the pump
/// (another request, maybe), so this request carries on in its own context.
async fn changed(reader: &Reader) -> bool {
    let promise = Promise::new(&mut |resolve, _reject| {
        reader.on_change(Box::new(move || {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }));
    });
    with_timeout(JsFuture::from(promise), WAIT_TICK_MS)
        .await
        .is_some()
}

/// The next chunk for `reader` (`None`: the end), waiting for it; a body
/// that makes no progress for `stall_ms` fails.
pub(crate) async fn next_chunk(
    reader: &mut Reader,
    stall_ms: u64,
) -> Option<std::result::Result<Rc<[u8]>, String>> {
    let mut idle = 0;
    loop {
        match reader.poll() {
            Next::Chunk(c) => return Some(Ok(c)),
            Next::End => return None,
            Next::Failed(why) => return Some(Err(why)),
            Next::Pending => {
                if changed(reader).await {
                    idle = 0;
                } else {
                    idle += WAIT_TICK_MS;
                    if idle >= stall_ms {
                        return Some(Err(format!("no data for {stall_ms} ms")));
                    }
                }
            }
        }
    }
}

/// The whole of a shared body, once it is complete.
pub(crate) async fn read_all(
    body: &SharedBody,
    stall_ms: u64,
) -> std::result::Result<Vec<u8>, String> {
    let mut reader = body.reader();
    let mut out = Vec::with_capacity(body.len());
    while let Some(chunk) = next_chunk(&mut reader, stall_ms).await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// A response whose body is `body`, sent chunk by chunk as the origin's
/// arrive (a failed body aborts the response: never a truncated whole).
pub(crate) fn streaming_response(
    status: u16,
    pairs: &[(String, String)],
    body: &SharedBody,
    stall_ms: u64,
) -> Result<Response> {
    let builder = Response::builder()
        .with_status(status)
        .with_headers(headers(pairs)?);
    if has_null_body(status) {
        return Ok(builder.empty());
    }
    let chunks = futures_util::stream::unfold(Some(body.reader()), move |reader| async move {
        let mut reader = reader?;
        match next_chunk(&mut reader, stall_ms).await {
            Some(Ok(c)) => Some((Ok::<Vec<u8>, worker::Error>(c.to_vec()), Some(reader))),
            Some(Err(why)) => Some((Err(worker::Error::RustError(why)), None)),
            None => None,
        }
    });
    builder.from_stream(chunks)
}

/// A response with a fixed body (dropped for statuses that have none).
pub(crate) fn response(
    status: u16,
    pairs: &[(String, String)],
    body: Option<Vec<u8>>,
) -> Result<Response> {
    let builder = Response::builder()
        .with_status(status)
        .with_headers(headers(pairs)?);
    Ok(match body {
        Some(b) if !has_null_body(status) => builder.fixed(b),
        _ => builder.empty(),
    })
}

/// A short plain-text answer that is never cached.
pub(crate) fn plain(status: u16, text: &str) -> Result<Response> {
    let res = Response::builder()
        .with_status(status)
        .fixed(text.as_bytes().to_vec());
    res.headers()
        .set("content-type", "text/plain; charset=utf-8")?;
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}

/// Every `/live/` and `/chat/` answer (but the socket) may be read by a page
/// on another origin (`brook_common::cors`, the origin's set too).
pub(crate) fn with_cors(res: Response) -> Result<Response> {
    for (k, v) in cors::RESPONSE_HEADERS {
        res.headers().set(k, v)?;
    }
    Ok(res)
}

/// An endpoint's method check: `OPTIONS` answered as a CORS preflight, a
/// method it does not take (`allowed` false) a 405 naming `methods`; `None`
/// for a request to serve.
pub(crate) fn method_gate(req: &Request, methods: &str, allowed: bool) -> Result<Option<Response>> {
    if req.inner().method() == "OPTIONS" {
        return preflight(req, methods).map(Some);
    }
    if !allowed {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", methods)?;
        return Ok(Some(res));
    }
    Ok(None)
}

pub(crate) fn preflight(req: &Request, methods: &str) -> Result<Response> {
    let asked = req.headers().get("access-control-request-headers")?;
    let res = Response::builder().with_status(204).empty();
    for (k, v) in cors::preflight_headers(methods, asked.as_deref()) {
        res.headers().set(k, &v)?;
    }
    Ok(res)
}

/// Fetches `url` (`init`: method, headers, body) within what is left until `deadline`; the body up to `limit`.
pub(super) async fn fetch_text(
    url: &str,
    init: &RequestInit,
    deadline: u64,
    limit: usize,
) -> std::result::Result<(u16, String), String> {
    let left = deadline.saturating_sub(super::fetch::now_ms());
    if left == 0 {
        return Err("out of time".into());
    }
    let request = Request::new_with_init(url, init).map_err(|e| e.to_string())?;
    // A request out of time is aborted, not left holding one of the few
    // connections a Worker request may have open.
    let abort = AbortController::default();
    let signal = abort.signal();
    let mut res = match with_timeout(Fetch::Request(request).send_with_signal(&signal), left).await
    {
        Some(Ok(res)) => res,
        Some(Err(e)) => return Err(e.to_string()),
        None => {
            abort.abort();
            return Err("timed out".into());
        }
    };
    let status = res.status_code();
    let body = match with_timeout(
        read_response(&mut res, limit),
        deadline.saturating_sub(super::fetch::now_ms()).max(1),
    )
    .await
    {
        Some(Ok(Ok(b))) => b,
        Some(Ok(Err(_))) => {
            abort.abort();
            return Err(format!("answer over {limit} bytes"));
        }
        Some(Err(e)) => return Err(e.to_string()),
        None => {
            abort.abort();
            return Err("timed out reading".into());
        }
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A JSON answer (`body`, already serialized) that no cache keeps.
pub(super) fn json_response(status: u16, body: String) -> Result<Response> {
    let res = Response::builder()
        .with_status(status)
        .fixed(body.into_bytes());
    res.headers().set("content-type", "application/json")?;
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}
