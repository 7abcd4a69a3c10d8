//! The Workers runtime binding: the `#[event(fetch)]` entry point translates
//! between `worker` types and the plain-Rust logic of this crate. Decisions
//! belong in [`crate::route`], [`crate::headers`] and [`crate::origin`].

use worker::{
    console_error, event, Context, Env, Fetch, Headers, Request, RequestInit, RequestRedirect,
    Response, ResponseBody, Result,
};

use crate::{forward_headers, is_allowed_method, route, Origin, Route, ALLOWED_METHODS};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    match route(url.path()) {
        Route::NotFound => return plain(404, "not found\n"),
        Route::Live => {}
    }
    // The raw method: `worker::Method` maps unknown methods to GET.
    let method = req.inner().method();
    if !is_allowed_method(&method) {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", ALLOWED_METHODS)?;
        return Ok(res);
    }

    let configured = env
        .var("ORIGIN_URL")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let origin = match Origin::parse(&configured) {
        Ok(origin) => origin,
        Err(e) => {
            console_error!("{e}");
            return plain(500, "edge misconfigured\n");
        }
    };
    let upstream_url = origin.url_for(url.path(), url.query());

    let mut init = RequestInit::new();
    init.with_method(method.into())
        .with_headers(copy_headers(req.headers())?)
        // Pass the origin's redirects to the client instead of chasing them here.
        .with_redirect(RequestRedirect::Manual);
    let upstream_req = Request::new_with_init(&upstream_url, &init)?;

    let upstream = match Fetch::Request(upstream_req).send().await {
        Ok(res) => res,
        Err(e) => {
            console_error!("origin fetch {upstream_url} failed: {e}");
            return plain(502, "origin unreachable\n");
        }
    };

    let status = upstream.status_code();
    let headers = copy_headers(upstream.headers())?;
    let (_, body) = upstream.into_parts();
    // The origin's body stream is handed over as is: bytes reach the client as
    // they arrive (parts of a segment still being written included), and the
    // runtime keeps the length it learnt from the origin's Content-Length.
    let body = if has_null_body(status) {
        ResponseBody::Empty
    } else {
        body
    };
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body))
}

/// A fresh header list holding what a proxy may forward from `from`.
fn copy_headers(from: &Headers) -> Result<Headers> {
    let out = Headers::new();
    for (name, value) in forward_headers(from.entries()) {
        out.append(&name, &value)?;
    }
    Ok(out)
}

/// Statuses whose responses must not carry a body (the `Response`
/// constructor throws otherwise).
fn has_null_body(status: u16) -> bool {
    matches!(status, 101 | 103 | 204 | 205 | 304)
}

/// A short plain-text answer that is never cached.
fn plain(status: u16, text: &str) -> Result<Response> {
    let res = Response::builder()
        .with_status(status)
        .fixed(text.as_bytes().to_vec());
    res.headers()
        .set("content-type", "text/plain; charset=utf-8")?;
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}
