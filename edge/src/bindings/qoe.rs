//! Viewer QoE on the Workers runtime: each admitted media request's CMCD
//! and each beacon go to Workers Analytics Engine (the `QOE` dataset, when
//! bound) and to this isolate's aggregator, which `GET /_brook/qoe` reports
//! (the ops dashboard, `web/dashboard.html`, reads it). Parsing and the
//! math are `crate::qoe`; see docs/qoe.md.

use sha2::{Digest, Sha256};
use std::rc::Rc;

use futures_util::future::join_all;
use std::time::Duration;

use wasm_bindgen::JsValue;
use worker::{
    console_error, console_warn, AnalyticsEngineDataPointBuilder, Context, Delay, Env, Fetch,
    Method, Request, RequestInit, Response, Result,
};

use super::directory::{live_origins, LiveOrigins};
use super::fetch::{count, deny, load, now_ms, with_state, Client};
use super::io::{
    fetch_text, headers, method_gate, plain, read_limited, read_response, with_timeout,
};
use super::upstream::{order_of, origin_order};
use crate::access;
use crate::config::Edge;
use crate::delivery::origins::{Location, Region};
use crate::metrics;
use crate::qoe::{self, datapoint, push, Beacon, Cmcd, Origin};
use crate::route::{LicenseScope, Media, BEACON_METHODS};

/// The Analytics Engine dataset binding (wrangler.toml, terraform).
const AE_BINDING: &str = "QOE";
/// The origin's admin API that lists streams and their ingest health.
const ORIGIN_STREAMS: &str = "/admin/streams";
/// Largest `/admin/streams` answer passed on.
const STREAMS_MAX_BYTES: usize = 1 << 20;
/// How long an admin token the origin accepted is trusted without asking
/// it again, ms.
const ADMIN_TRUST_MS: u64 = 30_000;
/// The secret the origin's `POST /qoe/push` expects (its `qoe.push_token`).
const QOE_PUSH_TOKEN: &str = "QOE_PUSH_TOKEN";
/// Directory look-ups a push makes at once.
const LOOKUPS_AT_ONCE: usize = 6;
/// Longest answer read from a push.
const PUSH_ANSWER_MAX_BYTES: usize = 64 << 10;

/// What this isolate keeps for QoE.
#[derive(Default)]
pub(super) struct QoeState {
    pub(super) aggregator: qoe::Aggregator,
    /// SHA-256 of the admin token the origin last accepted, and when.
    admin: Option<([u8; 32], u64)>,
    /// Questions to the origin about other tokens.
    admin_checks: qoe::AdminChecks,
    /// Live streams' watch and stall time for the origins' counters.
    pending: push::Pending,
}

/// After a media request was admitted: its CMCD, if any, recorded. Invalid
/// CMCD is counted and otherwise ignored: the request is served the same.
pub(super) fn record_request(env: &Env, url: &worker::Url, media: Media<'_>, client: &Client) {
    let Some(value) = qoe::cmcd_param(url.query()) else {
        return;
    };
    let cmcd = match Cmcd::parse(&value) {
        Ok(c) => c,
        Err(e) => {
            count("brook_edge_cmcd_total", &[("result", "invalid")]);
            console_warn!("CMCD refused on {}: {e}", url.path());
            return;
        }
    };
    let stream = match media {
        Media::Live(l) => l.stream(),
        Media::Vod(v) => v.asset(),
    };
    let at = Origin {
        stream,
        country: client.country(),
        rendition: media.rendition(),
        media_object: matches!(
            media.kind(),
            crate::Kind::Init | crate::Kind::Part | crate::Kind::Segment
        ) || matches!(
            media.kind(),
            crate::Kind::Vod(crate::VodKind::Init | crate::VodKind::Segment)
        ),
    };
    let recorded = with_state(|s| s.qoe.aggregator.record_cmcd(at, &cmcd, now_ms()));
    let label = match recorded {
        qoe::aggregate::Recorded::Yes => "recorded",
        qoe::aggregate::Recorded::NoSession => "no_session",
    };
    count("brook_edge_cmcd_total", &[("result", label)]);
    write(env, datapoint::cmcd_row(at, &cmcd));
}

/// `POST /live/<stream>/qoe` (and `/vod/<asset>/qoe`): the video's token and
/// geo checks, then the beacon recorded. 204 when taken, 400 when refused.
/// A live stream's watch and stall time also go to the origins (`push`).
pub(super) async fn serve_beacon(
    req: &Request,
    env: &Env,
    ctx: &Context,
    url: &worker::Url,
    scope: &LicenseScope,
) -> Result<Response> {
    let post = req.inner().method() == "POST";
    if let Some(answer) = method_gate(req, BEACON_METHODS, post)? {
        return Ok(answer);
    }
    let (edge, keys) = match load(env).await {
        Ok(loaded) => loaded,
        Err(answer) => return answer,
    };
    let client = Client::of(req)?;
    let spelled = scope.spelled();
    if let Err(denied) = access::admit(
        &edge,
        &keys,
        &client.access(&spelled, url.query(), scope.subject()),
    ) {
        return deny(denied, url.path(), client.cf());
    }
    let declared = req.headers().get("content-length")?;
    let body = req.clone()?.stream().ok();
    let beacon = match read_limited(body, declared.as_deref(), qoe::beacon::MAX_BYTES).await? {
        Err(_) => Err(qoe::BeaconError::TooLarge),
        Ok(body) => Beacon::parse(&body),
    };
    let beacon = match beacon {
        Ok(b) => b,
        Err(e) => {
            count("brook_edge_qoe_beacons_total", &[("result", "invalid")]);
            console_warn!("beacon refused on {}: {e}", url.path());
            return plain(400, "bad beacon\n");
        }
    };
    let owner = match scope {
        LicenseScope::Stream(p) => p.stream.as_str(),
        LicenseScope::Asset(p) => p.asset.as_str(),
    };
    let at = Origin {
        stream: owner,
        country: client.country(),
        rendition: None,
        media_object: false,
    };
    let now = now_ms();
    let delta = with_state(|s| s.qoe.aggregator.record_beacon(at, &beacon, now));
    count("brook_edge_qoe_beacons_total", &[("result", "recorded")]);
    write(env, datapoint::beacon_row(at, &beacon));
    if let (LicenseScope::Stream(_), Some(delta)) = (scope, delta) {
        queue_push(env, ctx, &edge, &client, owner, delta, now);
    }
    let res = Response::builder().with_status(204).empty();
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}

/// Adds a live beacon's delta to what the origins are told and, unless a
/// push task is already waiting, starts one (`waitUntil`) that pushes
/// when the next push is due (within 10 s). Nothing without the
/// `QOE_PUSH_TOKEN` secret: the origin would refuse it.
fn queue_push(
    env: &Env,
    ctx: &Context,
    edge: &Rc<Edge>,
    client: &Client,
    stream: &str,
    delta: qoe::Delta,
    now: u64,
) {
    let Ok(token) = env.secret(QOE_PUSH_TOKEN).map(|s| s.to_string()) else {
        return;
    };
    let wait_ms = with_state(|s| {
        if !s.qoe.pending.add(stream, delta) {
            count("brook_edge_qoe_pushes_total", &[("result", "dropped")]);
        }
        s.qoe.pending.schedule(now)
    });
    let Some(wait_ms) = wait_ms else {
        return;
    };
    let static_order = origin_order(edge, &client.location());
    let (env, edge) = (env.clone(), edge.clone());
    ctx.wait_until(async move {
        if wait_ms > 0 {
            Delay::from(Duration::from_millis(wait_ms)).await;
        }
        let Some(batch) = with_state(|s| s.qoe.pending.take(now_ms())) else {
            return;
        };
        let (groups, mut unsent) = destinations(&env, &edge, batch, static_order).await;
        // The groups at once: the task's time is one group's, not their sum
        // (a waitUntil cut short would lose the batch).
        let pushes = groups.iter().map(|(order, part)| {
            push_to_origins(part.clone(), order, &token, edge.origins.timeout_ms)
        });
        for left in join_all(pushes).await.into_iter().flatten() {
            unsent.merge(left);
        }
        if !unsent.is_empty() {
            with_state(|s| s.qoe.pending.restore(unsent));
        }
    });
}

/// Where each stream of `batch` goes: the origins a viewer of it would be
/// sent to (the stream directory's, or the static regions in the beacon's
/// viewer's order), streams with the same origins together. Streams the
/// directory does not know are dropped (counted); those it could not answer
/// for come back in the second value, for the next push.
async fn destinations(
    env: &Env,
    edge: &Edge,
    mut batch: push::Batch,
    static_order: Vec<Region>,
) -> (Vec<(Vec<Region>, push::Batch)>, push::Batch) {
    let mut later = push::Batch::default();
    if !edge.origins.directory.enabled {
        return (vec![(static_order, batch)], later);
    }
    let mut groups: Vec<(Vec<Region>, push::Batch)> = Vec::new();
    let names: Vec<String> = batch.streams().map(str::to_owned).collect();
    // Six at a time (a Worker's simultaneous connections), all within the
    // origin timeout and a second: the push must finish inside its
    // waitUntil; out of time, everything waits for the next push.
    let lookups = async {
        let mut answers = Vec::with_capacity(names.len());
        for chunk in names.chunks(LOOKUPS_AT_ONCE) {
            answers.extend(join_all(chunk.iter().map(|name| live_origins(env, edge, name))).await);
        }
        answers
    };
    let Some(answers) = with_timeout(lookups, edge.origins.timeout_ms + 1000).await else {
        later.merge(batch);
        return (groups, later);
    };
    for (name, answer) in names.into_iter().zip(answers) {
        let order = match answer {
            LiveOrigins::Static => static_order.clone(),
            LiveOrigins::Registered(regions) => order_of(&regions, &Location::default()),
            LiveOrigins::Unknown => {
                count(
                    "brook_edge_qoe_pushes_total",
                    &[("result", "unknown_stream")],
                );
                batch.split_off(|s| s != name);
                continue;
            }
            LiveOrigins::Unavailable => {
                later.merge(batch.split_off(|s| s != name));
                continue;
            }
        };
        let one = batch.split_off(|s| s != name);
        match groups.iter_mut().find(|(o, _)| same_origins(o, &order)) {
            Some((_, group)) => group.merge(one),
            None => groups.push((order, one)),
        }
    }
    (groups, later)
}

fn same_origins(a: &[Region], b: &[Region]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.id == y.id)
}

/// Pushes `batch` to the origins in order: a stream an origin does not have
/// (or a push it refuses, 4xx) goes on to the next; what is left when every
/// origin has been asked is dropped if each answered (no origin has the
/// stream), returned (for the next push) if one did not answer or failed
/// (5xx, network, timeout).
async fn push_to_origins(
    mut batch: push::Batch,
    order: &[Region],
    token: &str,
    timeout_ms: u64,
) -> Option<push::Batch> {
    let (mut unanswered, mut refused) = (false, false);
    for region in order {
        if batch.is_empty() {
            break;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from_str(&String::from_utf8_lossy(
                &batch.body(),
            ))));
        init.with_redirect(worker::RequestRedirect::Manual);
        init.with_headers(
            headers(&[
                ("authorization", format!("Bearer {token}")),
                ("content-type", "application/json".to_owned()),
            ])
            .ok()?,
        );
        let url = region.origin.url_for(push::PATH, None);
        let deadline = now_ms() + timeout_ms;
        match fetch_text(&url, &init, deadline, PUSH_ANSWER_MAX_BYTES).await {
            Ok((200, body)) => match batch.settle(body.as_bytes()) {
                Ok((left, refused)) => {
                    count("brook_edge_qoe_pushes_total", &[("result", "pushed")]);
                    if refused > 0 {
                        console_warn!("QoE push to {}: {refused} streams' sums refused", region.id);
                        count(
                            "brook_edge_qoe_pushes_total",
                            &[("result", "stream_refused")],
                        );
                    }
                    batch = left;
                    continue;
                }
                Err(whole) => {
                    console_error!("QoE push to {}: 200 without the origin's answer", region.id);
                    batch = whole;
                }
            },
            Ok((status, body)) if (400..500).contains(&status) && !matches!(status, 408 | 429) => {
                // Refused (a token that differs, a push it will never take):
                // the next origin may take it; pushing it again would not help.
                console_error!(
                    "QoE push to {}: the origin refused it ({status}): {}",
                    region.id,
                    body.trim()
                );
                count("brook_edge_qoe_pushes_total", &[("result", "refused")]);
                refused = true;
                continue;
            }
            Ok((status, body)) => {
                console_error!(
                    "QoE push to {}: the origin answered {status}: {}",
                    region.id,
                    body.trim()
                );
            }
            Err(why) => console_error!("QoE push to {}: {why}", region.id),
        }
        count("brook_edge_qoe_pushes_total", &[("result", "failed")]);
        unanswered = true;
    }
    if batch.is_empty() {
        return None;
    }
    if unanswered {
        return Some(batch);
    }
    if refused {
        // Counted as refused already.
        return None;
    }
    count(
        "brook_edge_qoe_pushes_total",
        &[("result", "unknown_stream")],
    );
    console_warn!("QoE push: no origin has {} of the streams", batch.len());
    None
}

/// One row to Analytics Engine, when the dataset is bound. A failed write
/// is logged; the viewer's request never waits on or fails with it.
fn write(env: &Env, row: datapoint::DataPoint) {
    let Ok(dataset) = env.analytics_engine(AE_BINDING) else {
        return;
    };
    let written = AnalyticsEngineDataPointBuilder::new()
        .indexes([row.index.as_str()])
        .blobs(row.blobs)
        .doubles(row.doubles)
        .write_to(&dataset);
    if let Err(e) = written {
        count("brook_edge_qoe_writes_failed_total", &[]);
        console_error!("Analytics Engine write failed: {e}");
    }
}

/// `GET /_brook/qoe[?stream=&country=&rendition=]`: this isolate's
/// aggregates as JSON.
pub(super) async fn serve_report(req: &Request, env: &Env, url: &worker::Url) -> Result<Response> {
    if !matches!(req.inner().method().as_str(), "GET" | "HEAD") {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", "GET, HEAD")?;
        return Ok(res);
    }
    if let Some(refused) = authorize(req, env).await? {
        return Ok(refused);
    }
    let filter = match qoe::filter_from_query(url.query()) {
        Ok(f) => f,
        Err(why) => return plain(400, &format!("{why}\n")),
    };
    let report = with_state(|s| s.qoe.aggregator.report(&filter, now_ms()));
    let body = serde_json::to_vec(&report).unwrap_or_default();
    let res = Response::builder().with_status(200).fixed(body);
    res.headers().set("content-type", "application/json")?;
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}

/// `GET /_brook/streams`: the origin's `/admin/streams`, asked with the
/// caller's bearer token (the origin checks it), first origin that answers.
pub(super) async fn serve_streams(req: &Request, env: &Env) -> Result<Response> {
    if !matches!(req.inner().method().as_str(), "GET" | "HEAD") {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", "GET, HEAD")?;
        return Ok(res);
    }
    // The same gate as the report (and its limit on asking the origin about
    // tokens): never a faster way to guess the admin token than the origin.
    if let Some(refused) = authorize(req, env).await? {
        return Ok(refused);
    }
    let Some(authorization) = req.headers().get("authorization")? else {
        return unauthorized();
    };
    match origin_streams(req, env, &authorization).await? {
        Some((200, body)) => {
            let res = Response::builder().with_status(200).fixed(body);
            res.headers().set("content-type", "application/json")?;
            res.headers().set("cache-control", "no-store")?;
            Ok(res)
        }
        Some((401 | 403 | 404, _)) => unauthorized(),
        Some((status, _)) => plain(502, &format!("origin answered {status}\n")),
        None => unavailable("no origin answered"),
    }
}

/// The caller's token could not be checked now (no origin answered, or the
/// checks are over their limit): not a refusal; try again shortly.
fn unavailable(why: &str) -> Result<Response> {
    let res = plain(503, &format!("{why}\n"))?;
    res.headers().set("retry-after", "10")?;
    Ok(res)
}

/// The origin's answer to `/admin/streams` with `authorization`: status and
/// body, or `None` when no origin answered.
async fn origin_streams(
    req: &Request,
    env: &Env,
    authorization: &str,
) -> Result<Option<(u16, Vec<u8>)>> {
    let (edge, _) = match load(env).await {
        Ok(loaded) => loaded,
        Err(_) => return Ok(None),
    };
    let client = Client::of(req)?;
    for region in origin_order(&edge, &client.location()) {
        let mut init = RequestInit::new();
        init.with_headers(headers(&[("authorization", authorization)])?);
        // A redirect (to a login page, say) is not the origin's answer.
        init.with_redirect(worker::RequestRedirect::Manual);
        let request = Request::new_with_init(&region.origin.url_for(ORIGIN_STREAMS, None), &init)?;
        let answer = with_timeout(Fetch::Request(request).send(), edge.origins.timeout_ms).await;
        let mut res = match answer {
            Some(Ok(res)) => res,
            Some(Err(e)) => {
                console_error!("admin streams from {} failed: {e}", region.id);
                continue;
            }
            None => {
                console_error!("admin streams from {} timed out", region.id);
                continue;
            }
        };
        let status = res.status_code();
        if status >= 500 {
            console_error!("admin streams from {} answered {status}", region.id);
            continue;
        }
        let json = res
            .headers()
            .get("content-type")?
            .is_some_and(|t| t.starts_with("application/json"));
        let body = read_response(&mut res, STREAMS_MAX_BYTES)
            .await?
            .unwrap_or_default();
        // Only the admin API's own answer says yes: JSON with its `streams`.
        let streams_json = json
            && serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v.get("streams").is_some_and(|s| s.is_array()));
        if status == 200 && !streams_json {
            console_error!(
                "admin streams from {}: 200 without the admin API's JSON",
                region.id
            );
            return Ok(Some((502, Vec::new())));
        }
        return Ok(Some((status, body)));
    }
    Ok(None)
}

/// `None` when the caller may read the aggregates: `METRICS_TOKEN`, or an
/// admin token the origin accepts (remembered for [`ADMIN_TRUST_MS`]; the
/// origin asked at most `qoe::AdminChecks::MAX` times per 10 s).
async fn authorize(req: &Request, env: &Env) -> Result<Option<Response>> {
    let authorization = req.headers().get("authorization")?;
    let expected = env
        .secret("METRICS_TOKEN")
        .map(|s| s.to_string())
        .unwrap_or_default();
    if metrics::authorized(&expected, authorization.as_deref()) {
        return Ok(None);
    }
    let Some(authorization) = authorization else {
        return unauthorized().map(Some);
    };
    let Some(token) = brook_common::credentials::bearer(&authorization) else {
        return unauthorized().map(Some);
    };
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let now = now_ms();
    let trusted = with_state(|s| {
        s.qoe.admin.is_some_and(|(d, at)| {
            brook_common::secret::constant_time_eq(&d, &digest)
                && now.saturating_sub(at) < ADMIN_TRUST_MS
        })
    });
    if trusted {
        return Ok(None);
    }
    if !with_state(|s| s.qoe.admin_checks.allow(now)) {
        console_warn!(
            "/_brook/qoe: admin token checks over the limit; 503 without asking the origin"
        );
        return unavailable("too many token checks; try again shortly").map(Some);
    }
    match origin_streams(req, env, &authorization).await? {
        Some((200, _)) => {
            with_state(|s| s.qoe.admin = Some((digest, now)));
            Ok(None)
        }
        Some((401 | 403, _)) => unauthorized().map(Some),
        Some((status, _)) => plain(502, &format!("origin answered {status}\n")).map(Some),
        None => unavailable("no origin answered").map(Some),
    }
}

fn unauthorized() -> Result<Response> {
    let res = plain(401, "unauthorized\n")?;
    res.headers().set("www-authenticate", "Bearer")?;
    Ok(res)
}
