//! `/live/<stream>/license` and `/vod/<asset>/license`: the ClearKey license
//! endpoint on the Workers runtime. Decisions are in `access::license` (request, response, cache)
//! and `access::admit` (token, geo); here: the body read with its limit, the
//! origin's key endpoint (`KEY_FETCH_TOKEN`), the per-isolate key cache, the
//! counters. See docs/drm.md.

use worker::{console_error, console_warn, Env, Fetch, Request, RequestInit, Response, Result};

use super::directory::live_order;
use super::fetch::{count, deny, load, now_ms, with_state, Client};
use super::io::{headers, method_gate, plain, read_limited, read_response, with_timeout};
use super::upstream::origin_order;
use crate::access::license::{self, Kid, LicenseError};
use crate::access::{self};
use crate::config::Edge;
use crate::delivery::origins::Region;
use crate::route::{LicenseScope, LICENSE_METHODS};

/// The secret the origin's `/keys/` endpoint expects (its `keys.fetch_token`).
const KEY_FETCH_TOKEN: &str = "KEY_FETCH_TOKEN";
/// Largest key answer read from the origin.
const KEY_ANSWER_MAX_BYTES: usize = 1024;

/// Why a key could not be had from any origin.
enum KeyFetch {
    Found(Kid),
    /// The origin answered 404: unknown, revoked, another stream's.
    Unknown,
    /// No origin answered usefully (down, misconfigured).
    Failed,
}

pub(super) async fn serve(
    req: &Request,
    env: &Env,
    url: &worker::Url,
    scope: &LicenseScope,
) -> Result<Response> {
    let post = req.inner().method() == "POST";
    if let Some(answer) = method_gate(req, LICENSE_METHODS, post)? {
        return Ok(answer);
    }
    let (edge, keys) = match load(env).await {
        Ok(loaded) => loaded,
        Err(answer) => return answer,
    };
    let client = Client::of(req)?;
    // The stream's name or `asset/<id>`: whose keys, in the cache and at the origin.
    let owner = scope.owner();
    let stream = owner.as_str();
    let spelled = scope.spelled();
    if let Err(denied) = access::admit(
        &edge,
        &keys,
        &client.access(&spelled, url.query(), scope.subject()),
    ) {
        count(
            "brook_edge_license_denied_total",
            &[("reason", denied.reason_class())],
        );
        return deny(denied, url.path(), client.cf());
    }
    let declared = req.headers().get("content-length")?;
    let body = req.clone()?.stream().ok();
    let kids = match read_limited(body, declared.as_deref(), license::MAX_BODY).await? {
        Err(_) => Err(LicenseError::TooLarge),
        Ok(body) => license::parse_request(&body),
    };
    let kids = match kids {
        Ok(kids) => kids,
        Err(e) => return refuse(e, url.path()),
    };
    let Ok(fetch_token) = env.secret(KEY_FETCH_TOKEN).map(|s| s.to_string()) else {
        console_error!("license for {stream}: the {KEY_FETCH_TOKEN} secret is not set");
        count(
            "brook_edge_license_denied_total",
            &[("reason", "no_key_service")],
        );
        return plain(503, "licenses unavailable\n");
    };
    // A live stream's origins: the stream directory's when it is on.
    let order = match scope {
        LicenseScope::Stream(p) => {
            match live_order(env, &edge, &p.stream, &client.location()).await? {
                Ok(order) => order,
                Err(answer) => return Ok(answer),
            }
        }
        LicenseScope::Asset(_) => origin_order(&edge, &client.location()),
    };
    let mut found = Vec::with_capacity(kids.len());
    for kid in kids {
        // A cached key keeps the time it was fetched: hits never extend it,
        // so a revoked key is gone within the TTL however often it is asked for.
        if let Some(key) = with_state(|s| s.license_keys.get(stream, &kid, now_ms())) {
            found.push((kid, key));
            continue;
        }
        match fetch_key(&edge, &order, stream, &kid, &fetch_token).await? {
            KeyFetch::Found(key) => {
                with_state(|s| s.license_keys.put(stream, kid, key, now_ms()));
                found.push((kid, key));
            }
            KeyFetch::Unknown => {}
            KeyFetch::Failed => {
                count("brook_edge_license_denied_total", &[("reason", "origin")]);
                let res = plain(503, "try again\n")?;
                res.headers().set("retry-after", "2")?;
                return Ok(res);
            }
        }
    }
    if found.is_empty() {
        return refuse(LicenseError::UnknownKids, url.path());
    }
    count("brook_edge_licenses_total", &[]);
    let res = Response::builder()
        .with_status(200)
        .fixed(license::render_license(&found).into_bytes());
    res.headers().set("content-type", "application/json")?;
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}

fn refuse(e: LicenseError, path: &str) -> Result<Response> {
    count("brook_edge_license_denied_total", &[("reason", e.reason())]);
    console_warn!("license refused {} ({e}) {path}", e.status());
    plain(e.status(), &format!("{}\n", e.reason()))
}

/// The key of `stream`/`kid` from the origins, in failover `order`.
async fn fetch_key(
    edge: &Edge,
    order: &[Region],
    stream: &str,
    kid: &Kid,
    token: &str,
) -> Result<KeyFetch> {
    let path = license::origin_key_path(stream, kid);
    for region in order {
        let url = region.origin.url_for(&path, None);
        let mut init = RequestInit::new();
        init.with_headers(headers(&[("authorization", format!("Bearer {token}"))])?);
        let request = Request::new_with_init(&url, &init)?;
        count(
            "brook_edge_origin_requests_total",
            &[("origin", &region.id)],
        );
        let answer = with_timeout(Fetch::Request(request).send(), edge.origins.timeout_ms).await;
        let mut res = match answer {
            Some(Ok(res)) => res,
            Some(Err(e)) => {
                console_error!("key fetch from {} failed: {e}", region.id);
                continue;
            }
            None => {
                console_error!("key fetch from {} timed out", region.id);
                continue;
            }
        };
        match res.status_code() {
            200 => {
                let body = read_response(&mut res, KEY_ANSWER_MAX_BYTES).await?;
                if let Some(key) = body.ok().and_then(|b| license::parse_origin_key(&b, kid)) {
                    return Ok(KeyFetch::Found(key));
                }
                console_error!("key fetch from {}: unreadable answer", region.id);
            }
            404 => return Ok(KeyFetch::Unknown),
            status => console_error!("key fetch from {} answered {status}", region.id),
        }
    }
    Ok(KeyFetch::Failed)
}
