//! Ad insertion on the Workers runtime (HLS interstitials mode). What to do
//! is decided in `crate::ads`; here: the break's asset list for one viewer
//! (`/live/<stream>/ads.json`: the ad decision server's VAST and wrappers
//! within the time budget, the creatives the origin prepared, the signed
//! ad-asset URIs, the slate), and the tracking beacons fired when that
//! viewer fetches the ads' segments. docs/ads.md.
//!
//! State kept per isolate: prepared creatives by media file URL, decisions
//! (which beacons each ad fires, with which segment) and the events already
//! fired. Decisions and fired events are also in the Cache API, so another
//! isolate of the same data center finds them; two isolates racing on the
//! same event within one round trip could both fire it (documented).

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use worker::{
    console_error, console_warn, AbortController, Cache, Context, Env, Fetch, Method, Request,
    RequestInit, Response, Result,
};

use super::fetch::{count, deny, load, now_ms, with_state, Client};
use super::io::{fetch_text, headers, plain, preflight, with_timeout};
use super::upstream::origin_order;
use crate::access::geo::Subject;
use crate::access::token::{self, Grant};
use crate::access::{self};
use crate::ads::decision::{
    self, ad_claim, parse_ad_claim, pick_media_file, segment_index, Asset, AssetList, BeaconPlan,
    Event, Macros,
};
use crate::ads::interstitial;
use crate::ads::vast::{self, Resolver};
use crate::ads::AdMode;
use crate::config::Edge;
use crate::delivery::origins::Region;
use crate::query::{self, encode_component};
use brook_common::LivePath;
use brook_packager::UnixMillis;

/// The origin's asset API token (its `vod.api_token`): creatives are made
/// into assets through it.
const VOD_API_TOKEN: &str = "VOD_API_TOKEN";
/// Largest origin API answer or VOD playlist read here.
const ORIGIN_ANSWER_MAX_BYTES: usize = 256 * 1024;
/// How long a creative the origin is still preparing is not asked about
/// again by this isolate.
const PREPARING_RETRY_MS: u64 = 5_000;
/// ... and one that failed.
const FAILED_RETRY_MS: u64 = 60_000;
/// Bounds of the per-isolate maps.
const MAX_PREPARED: usize = 2_000;
const MAX_DECISIONS: usize = 20_000;
const MAX_FIRED: usize = 200_000;
/// A beacon call's time budget, and how often a failed one is tried.
const BEACON_TIMEOUT_MS: u64 = 3_000;
const BEACON_ATTEMPTS: u32 = 3;
/// Error URLs called for one decision at most.
const MAX_ERROR_REPORTS: usize = 32;
/// Cache API keys (under the request's own host, never shared with media).
const DECISION_KEY: &str = "/_brook/ads/decision/";
const LIST_KEY: &str = "/_brook/ads/list/";
const FIRED_KEY: &str = "/_brook/ads/fired/";

/// A creative the origin prepared.
#[derive(Debug, Clone)]
struct Prepared {
    asset: String,
    /// Its segments' durations (s), from its first variant.
    segments: Vec<f64>,
}

/// One viewer's ads for one break: each ad's beacons.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Decision {
    ads: Vec<BeaconPlan>,
    expires_ms: u64,
}

/// Beacons claimed for one ad of one decision and waiting to be sent, in
/// order, by one task at a time.
#[derive(Default)]
struct Queue {
    items: VecDeque<(Event, Vec<String>)>,
    /// When its sender last started an event (a `waitUntil` can be cut
    /// short: a queue that has not moved for [`QUEUE_STUCK_MS`] is taken
    /// over by the next request).
    progress_ms: u64,
}

/// See [`Queue::progress_ms`] (below the 30 s a `waitUntil` may run).
const QUEUE_STUCK_MS: u64 = 20_000;

/// What one isolate keeps.
#[derive(Default)]
pub(super) struct AdState {
    prepared: HashMap<String, Prepared>,
    /// Media file URL -> when the origin last said "not ready".
    preparing: HashMap<String, u64>,
    /// Media file URLs the origin is being asked about now.
    in_flight: HashSet<String>,
    decisions: HashMap<String, Rc<Decision>>,
    /// Asset lists answered, by decision.
    lists: HashMap<String, String>,
    fired: HashSet<(String, usize, Event)>,
    /// Events claimed and waiting to be sent, per (decision, ad), sent in
    /// order by one task at a time.
    queues: HashMap<(String, usize), Queue>,
}

impl AdState {
    fn trim(&mut self, now: u64) {
        if self.decisions.len() > MAX_DECISIONS {
            self.decisions.retain(|_, d| d.expires_ms > now);
            if self.decisions.len() > MAX_DECISIONS {
                self.decisions.clear();
            }
        }
        if self.lists.len() > MAX_DECISIONS {
            self.lists.clear();
        }
        if self.queues.len() > MAX_DECISIONS {
            // Only stuck ones grow this: a queue is removed once sent.
            self.queues
                .retain(|_, q| now.saturating_sub(q.progress_ms) < QUEUE_STUCK_MS);
        }
        if self.fired.len() > MAX_FIRED {
            self.fired.clear();
        }
        if self.prepared.len() > MAX_PREPARED {
            self.prepared.clear();
        }
        if self.preparing.len() > MAX_PREPARED {
            self.preparing.clear();
        }
    }
}

fn json_answer(body: String) -> Result<Response> {
    let res = Response::builder()
        .with_status(200)
        .fixed(body.into_bytes());
    res.headers().set("content-type", "application/json")?;
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}

/// `/live/<stream>/ads.json?break=<id>&dur=<s>[&_HLS_primary_id=<session>]`.
pub(super) async fn serve_asset_list(
    req: &Request,
    env: &Env,
    ctx: &Context,
    url: &worker::Url,
    path: &LivePath,
) -> Result<Response> {
    let method = req.inner().method();
    if method == "OPTIONS" {
        return preflight(req, LIST_METHODS);
    }
    // Not HEAD either: a decision is made only to be played.
    if method != "GET" {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", LIST_METHODS)?;
        return Ok(res);
    }
    let (edge, keys) = match load(env).await {
        Ok(loaded) => loaded,
        Err(answer) => return answer,
    };
    // No keys: no interstitial points here (their URIs are signed).
    if edge.ads.mode == AdMode::Off || keys.is_empty() {
        return plain(404, "not found\n");
    }
    let client = Client::of(req)?;
    let spelled = path.to_string();
    let admitted = match access::admit(
        &edge,
        &keys,
        &client.access(&spelled, url.query(), Subject::Stream(&path.stream)),
    ) {
        Ok(a) => a,
        Err(denied) => return deny(denied, url.path(), client.cf()),
    };
    let q = url.query();
    let param = |name: &str| {
        q.and_then(|q| query::param(q, name))
            .map(|v| v.into_owned())
    };
    let Some(break_id) = param("break").filter(|b| !b.is_empty() && b.len() <= 128) else {
        return plain(400, "break: missing or too long\n");
    };
    let Some((dur, break_s)) = param("dur").and_then(|d| {
        let s = d.parse::<f64>().ok()?;
        (s.is_finite() && s > 0.0 && s <= interstitial::MAX_BREAK_S).then_some((d, s))
    }) else {
        return plain(400, "dur: a duration in seconds, at most 600\n");
    };
    let start = param("start").unwrap_or_default();
    let sig = param("sig").unwrap_or_default();
    // Only a break this edge announced (its interstitial's signed URI)
    // gets a decision: no asking for impressions and ad tokens at will.
    let message = interstitial::signed_message(&spelled, &break_id, &start, &dur);
    if !keys.check_tag(&message, &sig) {
        count("brook_edge_ad_decisions_total", &[("result", "refused")]);
        console_warn!("ads: asset list with a bad signature refused {spelled}");
        return plain(403, "forbidden\n");
    }
    let started = now_ms();
    // A break more than an hour old, or that far ahead, is not live.
    let fresh =
        UnixMillis::parse_iso8601(&start).is_some_and(|t| t.0.abs_diff(started) <= 3_600_000);
    if !fresh {
        count("brook_edge_ad_decisions_total", &[("result", "refused")]);
        return plain(410, "this break is over\n");
    }
    // Who the viewer is, for the ad server and for de-duplication: the
    // token's `id`, else the client's address, else the player's session
    // id (hls.js's `_HLS_primary_id`, plain characters only), else none.
    let viewer = admitted
        .grant
        .as_ref()
        .and_then(|g| g.session_id.clone())
        .or_else(|| client.ip().map(str::to_owned))
        .or_else(|| param("_HLS_primary_id").filter(|s| plain_id(s)))
        .unwrap_or_else(super::random_hex);
    // One decision per viewer and break: asking again returns it, with the
    // same beacons (fired once), not a new one.
    let Some(current) = keys.current() else {
        return plain(404, "not found\n");
    };
    let decision_id = current.tag(&format!("brook-ads-decision-v1|{message}|{viewer}"));
    let list_key = cache_key(url, LIST_KEY, &decision_id);
    let known = with_state(|s| s.ads.lists.get(&decision_id).cloned());
    let known = match known {
        Some(l) => Some(l),
        None => cache_get(&list_key).await,
    };
    if let Some(list) = known {
        count("brook_edge_ad_decisions_total", &[("result", "repeated")]);
        return json_answer(list);
    }
    let session = viewer.clone();
    let deadline = started + edge.ads.timeout_ms;

    let ua = req.headers().get("user-agent")?.unwrap_or_default();
    let hints = crate::manifest::DeviceHints::from_headers(|n| match n {
        "user-agent" => Some(ua.as_str()),
        _ => None,
    });
    let macros = Macros {
        stream: &path.stream,
        break_id: &break_id,
        duration_s: break_s,
        session: &session,
        country: client.country(),
        device: if hints.mobile { "mobile" } else { "desktop" },
        cachebuster: (worker::js_sys::Math::random() * 1e8) as u32,
        now_ms: started,
    };
    let template = edge.ads.vast_url.as_deref().unwrap_or_default();
    let pod = match decision::vast_url(template, &macros) {
        Some(vast_url) => resolve_pod(&edge, &vast_url, &ua, deadline).await,
        None => {
            console_error!("ads.vast_url does not make an http(s) URL for {spelled}");
            None
        }
    };

    // The creatives the origin has ready, in pod order; what failed, with
    // its VAST error code, for the ad server's error URLs.
    let mut ads: Vec<(Asset, BeaconPlan)> = Vec::new();
    let mut errors: Vec<(u16, String)> = pod
        .as_ref()
        .map(|p| p.error_urls.clone())
        .unwrap_or_default();
    if let Some(pod) = &pod {
        for ad in pod.ads.iter().take(edge.ads.max_ads) {
            let Some(file) = pick_media_file(ad) else {
                count("brook_edge_ads_total", &[("result", "unplayable")]);
                errors.extend(
                    ad.errors
                        .iter()
                        .map(|u| (vast::code::NO_SUPPORTED_MEDIA, u.clone())),
                );
                continue;
            };
            match prepared(&edge, &client, env, &file.url, deadline).await {
                Some(p) => {
                    let duration = (p.segments.iter().sum::<f64>() * 1000.0).round() / 1000.0;
                    let uri = format!("/vod/{}/index.m3u8", p.asset);
                    ads.push((Asset { uri, duration }, BeaconPlan::new(ad, &p.segments)));
                }
                None => count("brook_edge_ads_total", &[("result", "not_prepared")]),
            }
        }
    }
    // Error URLs, once per decision (this is the decision's first answer).
    if !errors.is_empty() {
        errors.truncate(MAX_ERROR_REPORTS);
        ctx.wait_until(async move {
            let sends = errors.iter().map(|(c, u)| {
                let url = u.replace("[ERRORCODE]", &c.to_string());
                async move { send_beacon("error", &url).await }
            });
            futures_util::future::join_all(sends).await;
        });
    }
    let candidates: Vec<Asset> = ads.iter().map(|(a, _)| a.clone()).collect();
    let slate = edge
        .ads
        .slate_asset
        .as_ref()
        .map(|s| format!("/vod/{s}/index.m3u8"));
    let (mut list, played) = AssetList::fill(&candidates, slate.as_deref(), break_s);
    for _ in &played {
        count("brook_edge_ads_total", &[("result", "played")]);
    }
    let too_long = candidates.len() - played.len();
    for _ in 0..too_long {
        count("brook_edge_ads_total", &[("result", "too_long")]);
    }

    // Each played ad's URI carries a token for its asset with the beacon
    // context; the slate's a token without one.
    let plans: Vec<BeaconPlan> = played.iter().map(|&i| ads[i].1.clone()).collect();
    let signer = Some(current);
    let no_grant = Grant::default();
    let grant = admitted.grant.as_ref().unwrap_or(&no_grant);
    // Never past the viewer's own token, unless the break needs it to play
    // to its end; never longer than `ad_token_ttl_s`.
    let now_s = started / 1000;
    let break_end = now_s + break_s.ceil() as u64 + 120;
    let expires = match admitted.grant.as_ref() {
        Some(g) => (now_s + edge.ads.ad_token_ttl_s).min(g.expires.max(break_end)),
        None => now_s + edge.ads.ad_token_ttl_s,
    };
    for (n, asset) in list.assets.iter_mut().enumerate() {
        let Some(key) = signer else {
            continue;
        };
        let asset_id = asset
            .uri
            .trim_start_matches("/vod/")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut data: Vec<String> = grant.entitlements().to_data().into_iter().collect();
        if n < plans.len() {
            data.push(ad_claim(&decision_id, n));
        }
        let ad_grant = Grant {
            expires,
            start: None,
            acl: vec![format!("/vod/{asset_id}/*")],
            ip: grant.ip.clone(),
            session_id: Some(session.clone()),
            data: (!data.is_empty()).then(|| data.join(",")),
            key_id: Some(key.id().to_owned()),
        };
        let signed = token::sign(&ad_grant, key);
        asset.uri = format!(
            "{}?{}={}",
            asset.uri,
            edge.auth.token_name,
            encode_component(&signed)
        );
    }
    let outcome = match (pod.is_some(), played.len()) {
        (false, _) => "no_decision",
        (true, 0) => "empty",
        (true, n) if n < candidates.len() || list.assets.len() > n => "partial",
        _ => "filled",
    };
    count("brook_edge_ad_decisions_total", &[("result", outcome)]);
    if !plans.is_empty() {
        let d = Decision {
            ads: plans,
            expires_ms: started + edge.ads.ad_token_ttl_s * 1000,
        };
        if let Ok(text) = serde_json::to_string(&d) {
            let key = cache_key(url, DECISION_KEY, &decision_id);
            let ttl = edge.ads.ad_token_ttl_s;
            ctx.wait_until(async move {
                if let Err(e) = cache_put(&key, text, ttl).await {
                    console_error!("ads: storing decision {key}: {e}");
                }
            });
        }
        with_state(|s| {
            s.ads.trim(started);
            s.ads.decisions.insert(decision_id.clone(), Rc::new(d));
        });
    }
    let body = serde_json::to_string(&list).unwrap_or_else(|_| "{\"ASSETS\":[]}".into());
    // The same answer for this viewer and break from now on (a decision
    // that found no ad server is not kept: the next request tries again).
    if pod.is_some() {
        let ttl = edge.ads.ad_token_ttl_s;
        let (key, text) = (list_key, body.clone());
        ctx.wait_until(async move {
            if let Err(e) = cache_put(&key, text, ttl).await {
                console_error!("ads: storing asset list {key}: {e}");
            }
        });
        with_state(|s| {
            s.ads.trim(started);
            s.ads.lists.insert(decision_id, body.clone());
        });
    }
    json_answer(body)
}

/// Methods the asset list answers.
const LIST_METHODS: &str = "GET, OPTIONS";

/// A session id made only of characters that need no escaping anywhere.
fn plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn cache_key(url: &worker::Url, prefix: &str, id: &str) -> String {
    format!(
        "{}://{}{prefix}{id}",
        url.scheme(),
        url.host_str().unwrap_or("edge")
    )
}

async fn cache_put(key: &str, body: String, ttl_s: u64) -> Result<()> {
    let res = Response::builder()
        .with_status(200)
        .fixed(body.into_bytes());
    res.headers()
        .set("cache-control", &format!("public, max-age={ttl_s}"))?;
    Cache::default().put(key, res).await
}

async fn cache_get(key: &str) -> Option<String> {
    match Cache::default().get(key, false).await {
        Ok(Some(mut res)) => res.text().await.ok(),
        Ok(None) => None,
        Err(e) => {
            console_error!("ads: cache lookup {key}: {e}");
            None
        }
    }
}

/// The ad decision server's pod, wrappers followed, within the budget.
async fn resolve_pod(edge: &Edge, vast_url: &str, ua: &str, deadline: u64) -> Option<vast::Pod> {
    let mut init = RequestInit::new();
    if let Ok(h) = headers(&[("x-device-user-agent", ua)]) {
        init.with_headers(h);
    }
    let text = match fetch_text(vast_url, &init, deadline, vast::MAX_DOCUMENT_BYTES).await {
        Ok((200, text)) => text,
        Ok((status, _)) => {
            console_warn!("ads: the ad server answered {status}");
            count(
                "brook_edge_ad_server_failures_total",
                &[("reason", "status")],
            );
            return None;
        }
        Err(why) => {
            console_warn!("ads: the ad server: {why}");
            let reason = if why.contains("time") {
                "timeout"
            } else {
                "fetch"
            };
            count("brook_edge_ad_server_failures_total", &[("reason", reason)]);
            return None;
        }
    };
    let doc = match vast::parse(&text) {
        Ok(doc) => doc,
        Err(e) => {
            console_warn!("ads: the ad server's answer: {e}");
            count(
                "brook_edge_ad_server_failures_total",
                &[("reason", "invalid")],
            );
            return None;
        }
    };
    let mut resolver = Resolver::new(
        &doc,
        edge.ads.max_wrapper_depth,
        edge.ads.max_wrapper_fetches,
    );
    while let Some(next) = resolver.next_fetch() {
        let answer = match fetch_text(&next.url, &init, deadline, vast::MAX_DOCUMENT_BYTES).await {
            Ok((200, text)) => Ok(text),
            Ok((status, _)) => Err(format!("wrapper answered {status}")),
            Err(why) => Err(why),
        };
        resolver.answer(next.id, answer.as_deref().map_err(|e| e.clone()));
    }
    let pod = resolver.finish();
    for why in &pod.failures {
        console_warn!("ads: {why}");
    }
    Some(pod)
}

/// The creative made from `media_url`, if the origin has it ready; asks the
/// origin to make it otherwise (this viewer goes without it).
async fn prepared(
    edge: &Edge,
    client: &Client,
    env: &Env,
    media_url: &str,
    deadline: u64,
) -> Option<Prepared> {
    if let Some(p) = with_state(|s| s.ads.prepared.get(media_url).cloned()) {
        return Some(p);
    }
    // Another request of this isolate is asking the origin right now (at a
    // break's start every viewer's decision wants the same creatives): wait
    // for its answer rather than ask again.
    if with_state(|s| s.ads.in_flight.contains(media_url)) {
        while now_ms() < deadline {
            worker::Delay::from(std::time::Duration::from_millis(25)).await;
            let (done, p) = with_state(|s| {
                (
                    !s.ads.in_flight.contains(media_url),
                    s.ads.prepared.get(media_url).cloned(),
                )
            });
            if done || p.is_some() {
                return p;
            }
        }
        return None;
    }
    // Asked about lately (not ready, or failed): not again yet.
    let now = now_ms();
    let asked = with_state(|s| s.ads.preparing.get(media_url).copied());
    if asked.is_some_and(|until| now < until) {
        return None;
    }
    with_state(|s| s.ads.in_flight.insert(media_url.to_owned()));
    let p = ask_origin(edge, client, env, media_url, deadline).await;
    with_state(|s| {
        s.ads.in_flight.remove(media_url);
        if p.is_none() && !s.ads.preparing.contains_key(media_url) {
            s.ads
                .preparing
                .insert(media_url.to_owned(), now + PREPARING_RETRY_MS);
        }
    });
    p
}

/// Asks the origin for the creative made from `media_url` (making it if
/// there is none): `Some` once it is ready.
async fn ask_origin(
    edge: &Edge,
    client: &Client,
    env: &Env,
    media_url: &str,
    deadline: u64,
) -> Option<Prepared> {
    let now = now_ms();
    let Ok(api_token) = env.secret(VOD_API_TOKEN).map(|s| s.to_string()) else {
        console_error!("ads: the {VOD_API_TOKEN} secret is not set: no creative can be prepared");
        return None;
    };
    let region = origin_order(edge, &client.location()).into_iter().next()?;
    // In the clear (a creative plays in the viewer's interstitial player,
    // with no license), no longer than a break can be.
    let body = serde_json::json!({
        "input_url": media_url,
        "dedupe": true,
        "encryption": "none",
        "max_duration_s": interstitial::MAX_BREAK_S as u64,
        "passthrough": "brook-ad-creative",
    })
    .to_string();
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(JsValue::from_str(&body)));
    init.with_headers(
        headers(&[
            ("authorization", format!("Bearer {api_token}")),
            ("content-type", "application/json".to_owned()),
        ])
        .ok()?,
    );
    let api = region.origin.url_for("/api/v1/assets", None);
    let asset: serde_json::Value =
        match fetch_text(&api, &init, deadline, ORIGIN_ANSWER_MAX_BYTES).await {
            Ok((200 | 201, text)) => serde_json::from_str(&text).ok()?,
            Ok((status, text)) => {
                console_error!(
                    "ads: preparing {media_url}: the origin answered {status}: {}",
                    text.trim()
                );
                with_state(|s| {
                    s.ads
                        .preparing
                        .insert(media_url.to_owned(), now + FAILED_RETRY_MS)
                });
                return None;
            }
            Err(why) => {
                console_error!("ads: preparing {media_url}: {why}");
                with_state(|s| {
                    s.ads
                        .preparing
                        .insert(media_url.to_owned(), now + FAILED_RETRY_MS)
                });
                return None;
            }
        };
    let id = asset.get("id")?.as_str()?.to_owned();
    if !brook_common::names::valid_asset_id(&id) {
        return None;
    }
    match asset.get("status").and_then(|s| s.as_str()) {
        Some("ready") => {}
        // A creative that failed (not media, gone, refused) is not asked
        // for again soon: each ask would be a new download and transcode.
        Some("errored") => {
            console_warn!(
                "ads: creative {media_url} could not be prepared: {}",
                asset.get("error").and_then(|e| e.as_str()).unwrap_or("?")
            );
            with_state(|s| {
                s.ads
                    .preparing
                    .insert(media_url.to_owned(), now + FAILED_RETRY_MS)
            });
            return None;
        }
        _ => return None,
    }
    // Its segments, from the first variant (the ladder's renditions are
    // cut at the same times).
    let mv = origin_text(&region, &format!("/vod/{id}/index.m3u8"), deadline).await?;
    let variant = decision::first_variant(&mv)?;
    let variant = variant.split('?').next().unwrap_or(variant);
    if variant.contains('/') || variant.contains("..") {
        return None;
    }
    let media = origin_text(&region, &format!("/vod/{id}/{variant}"), deadline).await?;
    let segments = decision::segment_durations(&media);
    if segments.is_empty() {
        return None;
    }
    let p = Prepared {
        asset: id,
        segments,
    };
    with_state(|s| {
        s.ads.trim(now);
        s.ads.preparing.remove(media_url);
        s.ads.prepared.insert(media_url.to_owned(), p.clone());
    });
    Some(p)
}

/// A GET of `path` at `region`'s origin: its body if it answered 200.
async fn origin_text(region: &Region, path: &str, deadline: u64) -> Option<String> {
    let url = region.origin.url_for(path, None);
    match fetch_text(&url, &RequestInit::new(), deadline, ORIGIN_ANSWER_MAX_BYTES).await {
        Ok((200, text)) => Some(text),
        _ => None,
    }
}

/// A VOD segment request admitted with `grant`: if its token carries an ad
/// context, the beacons this segment makes due are sent (after the answer).
pub(super) fn on_vod_segment(ctx: &Context, url: &worker::Url, grant: Option<&Grant>, name: &str) {
    let Some(data) = grant.and_then(|g| g.data.as_deref()) else {
        return;
    };
    let Some((decision, ad)) = parse_ad_claim(data) else {
        return;
    };
    let Some(index) = segment_index(name) else {
        return;
    };
    let decision = decision.to_owned();
    let url = url.clone();
    ctx.wait_until(async move {
        fire_due(&url, decision, ad, index).await;
    });
}

async fn fire_due(url: &worker::Url, decision_id: String, ad: usize, index: usize) {
    let now = now_ms();
    let known = with_state(|s| s.ads.decisions.get(&decision_id).cloned());
    let decision = match known {
        Some(d) => d,
        None => {
            let Some(text) = cache_get(&cache_key(url, DECISION_KEY, &decision_id)).await else {
                console_warn!("ads: decision {decision_id} unknown here (expired?)");
                return;
            };
            let Ok(d) = serde_json::from_str::<Decision>(&text) else {
                return;
            };
            let d = Rc::new(d);
            with_state(|s| s.ads.decisions.insert(decision_id.clone(), d.clone()));
            d
        }
    };
    if decision.expires_ms < now {
        return;
    }
    let Some(plan) = decision.ads.get(ad) else {
        return;
    };
    let candidates: Vec<(Event, Vec<String>)> = with_state(|s| {
        plan.due(index, |e| {
            s.ads.fired.contains(&(decision_id.clone(), ad, e))
        })
        .into_iter()
        .map(|(e, _, urls)| (*e, urls.clone()))
        .collect()
    });
    if candidates.is_empty() {
        return;
    }
    // Another isolate may have fired some: its markers.
    let mut due = Vec::with_capacity(candidates.len());
    for (e, urls) in candidates {
        let marker = cache_key(
            url,
            FIRED_KEY,
            &format!("{decision_id}/{ad}/{}", e.vast_name()),
        );
        if cache_get(&marker).await.is_some() {
            with_state(|s| s.ads.fired.insert((decision_id.clone(), ad, e)));
            continue;
        }
        due.push((e, urls, marker));
    }
    // Claimed here, synchronously: a concurrent request finds them fired.
    let (claimed, start_sender) = with_state(|s| {
        let mut claimed = Vec::new();
        for (e, urls, marker) in due {
            if s.ads.fired.insert((decision_id.clone(), ad, e)) {
                claimed.push((e, urls, marker));
            }
        }
        let now = now_ms();
        let q = s.ads.queues.entry((decision_id.clone(), ad));
        let vacant = matches!(q, std::collections::hash_map::Entry::Vacant(_));
        let queue = q.or_default();
        // No sender, or one that stopped (its waitUntil was cut): this
        // request sends.
        let starting = vacant || now.saturating_sub(queue.progress_ms) >= QUEUE_STUCK_MS;
        if starting {
            queue.progress_ms = now;
        }
        for (e, urls, _) in &claimed {
            queue.items.push_back((*e, urls.clone()));
        }
        (claimed, starting)
    });
    let ttl = (decision.expires_ms.saturating_sub(now) / 1000).max(60);
    for (_, _, marker) in &claimed {
        if let Err(e) = cache_put(marker, "1".into(), ttl).await {
            console_error!("ads: beacon marker {marker}: {e}");
        }
    }
    if !start_sender {
        // The task already sending this ad's beacons sends these too, in order.
        return;
    }
    loop {
        let next = with_state(|s| {
            let key = (decision_id.clone(), ad);
            let next = s.ads.queues.get_mut(&key).and_then(|q| {
                q.progress_ms = now_ms();
                q.items.pop_front()
            });
            if next.is_none() {
                s.ads.queues.remove(&key);
            }
            next
        });
        let Some((event, urls)) = next else {
            break;
        };
        // An event's URLs (the ad's and its wrappers') at once.
        futures_util::future::join_all(urls.iter().map(|u| send_beacon(event.vast_name(), u)))
            .await;
    }
}

async fn send_beacon(event: &'static str, url: &str) {
    let iso: String = worker::js_sys::Date::new_0().to_iso_string().into();
    let target = decision::tracking_url(url, (worker::js_sys::Math::random() * 1e8) as u32, &iso);
    for attempt in 1..=BEACON_ATTEMPTS {
        let init = RequestInit::new();
        let Ok(request) = Request::new_with_init(&target, &init) else {
            count(
                "brook_edge_ad_beacons_total",
                &[("event", event), ("result", "invalid")],
            );
            return;
        };
        let abort = AbortController::default();
        let signal = abort.signal();
        let answer = with_timeout(
            Fetch::Request(request).send_with_signal(&signal),
            BEACON_TIMEOUT_MS,
        )
        .await;
        if answer.is_none() {
            abort.abort();
        }
        match answer {
            Some(Ok(res)) if res.status_code() < 400 => {
                count(
                    "brook_edge_ad_beacons_total",
                    &[("event", event), ("result", "sent")],
                );
                return;
            }
            Some(Ok(res)) if res.status_code() < 500 && res.status_code() != 429 => {
                // The tracker refused it: trying again changes nothing.
                console_warn!("ads: beacon {} answered {}", event, res.status_code());
                break;
            }
            Some(Ok(res)) => console_warn!(
                "ads: beacon {} answered {} (attempt {attempt})",
                event,
                res.status_code()
            ),
            Some(Err(e)) => {
                console_warn!("ads: beacon {}: {e} (attempt {attempt})", event)
            }
            None => console_warn!("ads: beacon {} timed out (attempt {attempt})", event),
        }
    }
    count(
        "brook_edge_ad_beacons_total",
        &[("event", event), ("result", "failed")],
    );
}
