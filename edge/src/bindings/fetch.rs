//! The Workers runtime binding: the `#[event(fetch)]` entry point translates
//! between `worker` types and the plain-Rust logic of this crate, and owns
//! the per-isolate state (counters, origin and pathway health, the in-flight
//! map). Decisions belong in the other modules; see the crate docs for the
//! order they run in.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use wasm_bindgen::JsValue;
use worker::js_sys::{Promise, Reflect, JSON};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    console_error, console_log, console_warn, event, AbortController, Cache, Context, Date, Delay,
    Env, Fetch, Headers, Request, RequestInit, RequestRedirect, Response, ResponseBody, Result,
};

use crate::access::token::KeySet;
use crate::access::{self, AccessRequest, Admitted, Denied};
use crate::config::Edge;
use crate::delivery::cache::{self, Lookup};
use crate::delivery::coalesce::{Coalescer, Join};
use crate::delivery::origins::{self, Health, Location, Region};
use crate::manifest::{self, DeviceHints, Limits, ManifestError, Personalization, SteeringPlan};
use crate::metrics::Metrics;
use crate::steering::{Flavor, PathwayHealth, Viewer};
use crate::{forward_headers, is_allowed_method, query, route, Kind, Live, Route, ALLOWED_METHODS};

/// Where the config document lives in the optional KV namespace.
const CONFIG_KV: &str = "EDGE_KV";
const CONFIG_KEY: &str = "config";
/// How long an isolate keeps the KV config before reading it again.
const CONFIG_KV_REFRESH_MS: u64 = 30_000;

#[derive(Default)]
struct State {
    metrics: Metrics,
    health: Health,
    pathways: PathwayHealth,
    /// The last config parsed, by its source text.
    edge: Option<(String, Rc<Edge>)>,
    /// The KV config text and when it was read.
    kv_config: Option<(Option<String>, u64)>,
    /// The last `TOKEN_KEYS` parsed, by its text.
    keys: Option<(String, Rc<KeySet>)>,
    /// Stream starts and ends this isolate told the chat rooms about.
    notices: crate::chat::Notices,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
    static FLIGHTS: Coalescer<Fetched> = Coalescer::default();
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

fn count(name: &'static str, labels: &[(&str, &str)]) {
    with_state(|s| s.metrics.inc(name, labels));
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let url = req.url()?;
    match route(url.path()) {
        Route::NotFound => plain(404, "not found\n"),
        Route::Metrics => metrics(&req, &env),
        Route::Bench => bench(&req, &env),
        Route::Live(live) => {
            let kind = live.kind;
            let res = serve_live(&req, &env, &ctx, &url, live).await?;
            count(
                "brook_edge_requests_total",
                &[
                    ("kind", kind.as_str()),
                    ("status", &res.status_code().to_string()),
                ],
            );
            with_cors(res)
        }
        Route::Chat(chat) => {
            let res = serve_chat(&req, &env, &url, chat).await?;
            count(
                "brook_edge_requests_total",
                &[
                    ("kind", chat.kind.as_str()),
                    ("status", &res.status_code().to_string()),
                ],
            );
            Ok(res)
        }
    }
}

async fn serve_live(
    req: &Request,
    env: &Env,
    ctx: &Context,
    url: &worker::Url,
    live: Live<'_>,
) -> Result<Response> {
    // The raw method: `worker::Method` maps unknown methods to GET.
    let method = req.inner().method();
    if method == "OPTIONS" {
        return preflight(req);
    }
    if !is_allowed_method(&method) {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", ALLOWED_METHODS)?;
        return Ok(res);
    }

    let (edge, keys) = match (load_edge(env).await, load_keys(env)) {
        (Ok(edge), Ok(keys)) => (edge, keys),
        (Err(e), _) | (_, Err(e)) => {
            console_error!("{e}");
            return plain(500, "edge misconfigured\n");
        }
    };

    let headers = req.headers();
    let authorization = headers.get("authorization")?;
    let cookie = headers.get("cookie")?;
    let client_ip = headers.get("cf-connecting-ip")?;
    let cf = cf_location(req);
    let now = now_ms();
    let access_req = AccessRequest {
        now: now / 1000,
        path: url.path(),
        query: url.query(),
        authorization: authorization.as_deref(),
        cookie: cookie.as_deref(),
        client_ip: client_ip.as_deref(),
        country: cf.country.as_deref(),
        stream: live.stream,
    };
    let admitted = match access::admit(&edge, &keys, &access_req) {
        Ok(a) => a,
        Err(denied) => return deny(denied, url.path(), &cf),
    };

    let location = Location {
        country: cf.country.as_deref(),
        continent: cf.continent.as_deref(),
        colo: cf.colo.as_deref(),
    };
    let viewer_key = admitted
        .grant
        .as_ref()
        .and_then(|g| g.session_id.clone())
        .or_else(|| client_ip.clone())
        .unwrap_or_default();

    match live.kind {
        Kind::SteeringHls | Kind::SteeringDash => {
            let flavor = if live.kind == Kind::SteeringHls {
                Flavor::Hls
            } else {
                Flavor::Dash
            };
            steering_manifest(&edge, &admitted, flavor, url, location, &viewer_key, now)
        }
        kind => {
            let lookup = Lookup {
                kind,
                path: url.path(),
                query: url.query(),
            };
            let upstream = upstream(req, ctx, &edge, &lookup, url, location, &method).await?;
            let viewer = Viewer {
                location,
                key: &viewer_key,
                pathway: None,
                throughput: None,
            };
            let announce = |playlist: &str| announce_stream(env, ctx, live, url.path(), playlist);
            respond(
                req, &edge, &admitted, &lookup, upstream, &viewer, now, &announce,
            )
            .await
        }
    }
}

// --- chat --------------------------------------------------------------------

/// The chat rooms' Durable Object namespace (`chat_room.rs`).
const CHAT_BINDING: &str = "CHAT";
/// Largest moderation request body.
const CHAT_MAX_BODY: usize = 16 * 1024;

/// `/chat/<stream>[/history|/moderate]`: the video's token check and geo
/// rule (the token against `/live/<stream>/chat`; moderation against
/// `/chat/<stream>/moderate`), then the stream's room. See docs/chat.md.
async fn serve_chat(
    req: &Request,
    env: &Env,
    url: &worker::Url,
    chat: crate::route::Chat<'_>,
) -> Result<Response> {
    use crate::chat::identity::{access_path, moderate_path};
    use crate::route::ChatKind;

    let method = req.inner().method();
    let socket = chat.kind == ChatKind::Socket;
    if method == "OPTIONS" && !socket {
        return with_cors(preflight(req)?);
    }
    let allowed = match chat.kind {
        ChatKind::Socket | ChatKind::History => method == "GET",
        ChatKind::Moderate => method == "GET" || method == "POST",
    };
    if !allowed {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set(
            "allow",
            if chat.kind == ChatKind::Moderate {
                "GET, POST"
            } else {
                "GET"
            },
        )?;
        return Ok(res);
    }
    let upgrade = req.headers().get("upgrade")?.unwrap_or_default();
    if socket && !upgrade.eq_ignore_ascii_case("websocket") {
        let res = plain(426, "WebSocket upgrade required\n")?;
        res.headers().set("upgrade", "websocket")?;
        return Ok(res);
    }

    let (edge, keys) = match (load_edge(env).await, load_keys(env)) {
        (Ok(edge), Ok(keys)) => (edge, keys),
        (Err(e), _) | (_, Err(e)) => {
            console_error!("{e}");
            return plain(500, "edge misconfigured\n");
        }
    };
    let headers = req.headers();
    let authorization = headers.get("authorization")?;
    let cookie = headers.get("cookie")?;
    let client_ip = headers.get("cf-connecting-ip")?;
    let cf = cf_location(req);
    let path = match chat.kind {
        ChatKind::Moderate => moderate_path(chat.stream),
        _ => access_path(chat.stream),
    };
    let access_req = AccessRequest {
        now: now_ms() / 1000,
        path: &path,
        query: url.query(),
        authorization: authorization.as_deref(),
        cookie: cookie.as_deref(),
        client_ip: client_ip.as_deref(),
        country: cf.country.as_deref(),
        stream: chat.stream,
    };
    let admitted = match access::admit(&edge, &keys, &access_req) {
        Ok(a) => a,
        Err(denied) => return deny(denied, url.path(), &cf),
    };
    if chat.kind == ChatKind::Moderate && admitted.grant.is_none() {
        // Moderation needs a moderator's token even where viewers need none.
        return deny(Denied::Missing, url.path(), &cf);
    }

    let Ok(rooms) = env.durable_object(CHAT_BINDING) else {
        return plain(503, "chat is not configured\n");
    };
    let stub = rooms.id_from_name(chat.stream)?.get_stub()?;
    let init_headers = Headers::new();
    let mut init = RequestInit::new();
    let room_url = match chat.kind {
        ChatKind::Socket => {
            let identity = crate::chat::Identity::new(
                chat.stream,
                admitted.grant.as_ref(),
                admitted.token.as_deref(),
                client_ip.as_deref(),
                &crate::bindings::random_hex(),
                64,
            );
            init_headers.set("upgrade", "websocket")?;
            format!("https://room/connect?{}", identity.to_query())
        }
        ChatKind::History => {
            // Only the range: the token goes no further than here.
            let mut q = String::new();
            for (k, v) in query::params(url.query().unwrap_or("")) {
                if matches!(&*k, "from" | "to" | "limit") {
                    query::append_param(&mut q, &k, &query::encode_component(&v));
                }
            }
            format!("https://room/history{q}")
        }
        ChatKind::Moderate => {
            if method == "POST" {
                let body = req.clone()?.text().await?;
                if body.len() > CHAT_MAX_BODY {
                    return plain(413, "too large\n");
                }
                init.with_method(worker::Method::Post)
                    .with_body(Some(JsValue::from_str(&body)));
                init_headers.set("content-type", "application/json")?;
            }
            "https://room/moderate".to_owned()
        }
    };
    init.with_headers(init_headers);
    let res = stub
        .fetch_with_request(Request::new_with_init(&room_url, &init)?)
        .await?;
    if socket {
        return Ok(res);
    }
    // The room's answer, with headers this edge may change.
    let mut res = res;
    let status = res.status_code();
    let body = res.bytes().await?;
    let out = Response::builder().with_status(status).fixed(body);
    out.headers().set("content-type", "application/json")?;
    out.headers().set("cache-control", "no-store")?;
    with_cors(out)
}

/// A playlist about to be served: tells the stream's chat room, after the
/// response, when it shows a publish session starting or ending
/// (`chat::notices`; the room announces each once).
fn announce_stream(env: &Env, ctx: &Context, live: Live<'_>, path: &str, playlist: &str) {
    if live.kind != Kind::MediaPlaylist || env.durable_object(CHAT_BINDING).is_err() {
        // Not a media playlist, or an edge deployed without chat rooms.
        return;
    }
    let Some(event) = with_state(|s| s.notices.observe(live.stream, live.kind, path, playlist))
    else {
        return;
    };
    let stream = live.stream.to_owned();
    let env = env.clone();
    ctx.wait_until(async move {
        let delivered = async {
            let stub = env
                .durable_object(CHAT_BINDING)?
                .id_from_name(&stream)?
                .get_stub()?;
            let mut init = RequestInit::new();
            init.with_method(worker::Method::Post);
            let url = format!("https://room/announce?{}", event.to_query());
            stub.fetch_with_request(Request::new_with_init(&url, &init)?)
                .await
                .map(|res| res.status_code())
        };
        match delivered.await {
            Ok(200) => {}
            outcome => {
                console_error!("chat: announcing {event:?} to {stream}: {outcome:?}");
                with_state(|s| s.notices.forget(&stream, &event));
            }
        }
    });
}

// --- access ------------------------------------------------------------------

#[derive(Default)]
struct CfInfo {
    country: Option<String>,
    continent: Option<String>,
    colo: Option<String>,
}

/// `request.cf` fields, read defensively: a hand-made cf object in tests may
/// lack any of them (`Cf::colo()` would panic).
fn cf_location(req: &Request) -> CfInfo {
    let Ok(cf) = Reflect::get(req.inner(), &JsValue::from_str("cf")) else {
        return CfInfo::default();
    };
    if !cf.is_object() {
        return CfInfo::default();
    }
    let field = |name: &str| {
        Reflect::get(&cf, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    CfInfo {
        country: field("country"),
        continent: field("continent"),
        colo: field("colo"),
    }
}

fn deny(denied: Denied, path: &str, cf: &CfInfo) -> Result<Response> {
    let reason = denied.reason();
    match denied {
        Denied::Geo => count("brook_edge_geo_blocked_total", &[]),
        _ => count("brook_edge_auth_failures_total", &[("reason", reason)]),
    }
    console_warn!(
        "denied {} ({reason}) {path} country={} colo={}",
        denied.status(),
        cf.country.as_deref().unwrap_or("-"),
        cf.colo.as_deref().unwrap_or("-")
    );
    let res = plain(denied.status(), denied.body())?;
    if denied == Denied::Missing {
        res.headers()
            .set("www-authenticate", "Bearer realm=\"brook\"")?;
    }
    Ok(res)
}

// --- config ------------------------------------------------------------------

/// The config document: KV (if bound and set) over the `EDGE_CONFIG` var.
async fn config_text(env: &Env) -> Option<String> {
    if let Ok(kv) = env.kv(CONFIG_KV) {
        let now = now_ms();
        let cached = with_state(|s| {
            s.kv_config
                .clone()
                .filter(|(_, at)| now.saturating_sub(*at) < CONFIG_KV_REFRESH_MS)
        });
        let text = match cached {
            Some((text, _)) => text,
            None => {
                let text = kv
                    .get(CONFIG_KEY)
                    .cache_ttl(60)
                    .text()
                    .await
                    .unwrap_or_else(|e| {
                        console_error!("reading {CONFIG_KV}/{CONFIG_KEY}: {e}");
                        None
                    });
                with_state(|s| s.kv_config = Some((text.clone(), now)));
                text
            }
        };
        if text.is_some() {
            return text;
        }
    }
    let value = Reflect::get(env.as_ref(), &JsValue::from_str("EDGE_CONFIG")).ok()?;
    if let Some(s) = value.as_string() {
        return Some(s);
    }
    // A `[vars.EDGE_CONFIG]` table in wrangler.toml arrives as an object.
    if value.is_object() {
        return JSON::stringify(&value).ok().and_then(|s| s.as_string());
    }
    None
}

async fn load_edge(env: &Env) -> std::result::Result<Rc<Edge>, String> {
    let text = config_text(env).await.unwrap_or_default();
    let origin_url = env.var("ORIGIN_URL").ok().map(|v| v.to_string());
    let source = format!("{text}\u{0}{}", origin_url.as_deref().unwrap_or(""));
    if let Some(edge) = with_state(|s| {
        s.edge
            .as_ref()
            .filter(|(src, _)| *src == source)
            .map(|(_, e)| e.clone())
    }) {
        return Ok(edge);
    }
    let edge = Rc::new(Edge::new(Some(&text), origin_url.as_deref()).map_err(|e| e.to_string())?);
    with_state(|s| s.edge = Some((source, edge.clone())));
    Ok(edge)
}

fn load_keys(env: &Env) -> std::result::Result<Rc<KeySet>, String> {
    let text = env
        .secret("TOKEN_KEYS")
        .map(|s| s.to_string())
        .unwrap_or_default();
    if let Some(keys) = with_state(|s| {
        s.keys
            .as_ref()
            .filter(|(t, _)| *t == text)
            .map(|(_, k)| k.clone())
    }) {
        return Ok(keys);
    }
    let keys = Rc::new(KeySet::parse(&text).map_err(|e| e.to_string())?);
    with_state(|s| s.keys = Some((text, keys.clone())));
    Ok(keys)
}

// --- steering ----------------------------------------------------------------

fn steering_manifest(
    edge: &Edge,
    admitted: &Admitted<'_>,
    flavor: Flavor,
    url: &worker::Url,
    location: Location<'_>,
    viewer_key: &str,
    now: u64,
) -> Result<Response> {
    let Some(steering) = &edge.steering else {
        return plain(404, "no steering configured\n");
    };
    let (pathway_param, throughput_param) = flavor.report_params();
    let q = url.query().unwrap_or("");
    let pathway = query::param(q, pathway_param);
    let throughput = query::param(q, throughput_param).and_then(|t| t.parse::<u64>().ok());
    if let (Some(p), Some(t)) = (&pathway, throughput) {
        with_state(|s| s.pathways.record(steering.config(), p, t, now));
    }
    let viewer = Viewer {
        location,
        key: viewer_key,
        pathway: pathway.as_deref(),
        throughput,
    };
    let name = url.path().rsplit('/').next().unwrap_or("steering.json");
    let mut reload = name.to_string();
    if let Some(t) = &admitted.token {
        query::append_param(
            &mut reload,
            &edge.auth.token_name,
            &query::encode_component(t),
        );
    }
    let manifest = with_state(|s| steering.manifest(flavor, &viewer, &s.pathways, now, reload));
    count(
        "brook_edge_steering_manifests_total",
        &[(
            "flavor",
            match flavor {
                Flavor::Hls => "hls",
                Flavor::Dash => "dash",
            },
        )],
    );
    let res = Response::builder()
        .with_status(200)
        .fixed(manifest.to_json().into_bytes());
    res.headers().set("content-type", "application/json")?;
    res.headers().set("cache-control", "private, no-store")?;
    Ok(res)
}

// --- upstream: cache, coalescing, origins ------------------------------------

/// An origin response held in memory: shared by coalesced requests and
/// stored in the Cache API.
struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where a response came from (the `x-brook-cache` header says it too).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Workers Cache API.
    Hit,
    /// This request's own origin fetch.
    Miss,
    /// Another request's origin fetch, shared in flight.
    Coalesced,
    /// Not shareable: streamed through as the origin sent it.
    Pass,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Miss => "miss",
            Source::Coalesced => "coalesced",
            Source::Pass => "pass",
        }
    }
}

enum Upstream {
    Shared(Rc<Fetched>, Source),
    Stream(Response, Source),
}

/// Headers that make a request about one client's copy, not the object.
const CONDITIONAL: [&str; 6] = [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

async fn upstream(
    req: &Request,
    ctx: &Context,
    edge: &Edge,
    lookup: &Lookup<'_>,
    url: &worker::Url,
    location: Location<'_>,
    method: &str,
) -> Result<Upstream> {
    let conditional = CONDITIONAL
        .iter()
        .any(|h| req.headers().has(h).unwrap_or(false));
    let shareable = method == "GET" && lookup.is_shared() && !conditional;
    let base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("edge"));
    if !shareable {
        let res = fetch_origins(req, edge, lookup, location, method, false).await?;
        return Ok(Upstream::Stream(res, Source::Pass));
    }

    let key = lookup.key(&base);
    let cache = Cache::default();
    match cache.get(key.as_str(), false).await {
        Ok(Some(res)) => {
            count(
                "brook_edge_cache_hits_total",
                &[("kind", lookup.kind.as_str())],
            );
            return Ok(Upstream::Stream(res, Source::Hit));
        }
        Ok(None) => {}
        Err(e) => console_error!("cache lookup {key}: {e}"),
    }
    count(
        "brook_edge_cache_misses_total",
        &[("kind", lookup.kind.as_str())],
    );

    loop {
        let join = FLIGHTS.with(|f| f.join(&key));
        match join {
            Join::Follower(follower) => {
                // A promise made in this request, resolved by the leader's:
                // workerd then runs this request on in its own context (see
                // `coalesce` for why a Rust waker would not do).
                let settled = Promise::new(&mut |resolve, _reject| {
                    follower.on_settled(Box::new(move || {
                        let _ = resolve.call0(&JsValue::UNDEFINED);
                    }));
                });
                // The timer also keeps this request visibly busy: a request
                // that only waits on another request's promise is cancelled
                // by workerd as hung.
                let wait_ms = edge.origins.timeout_for(lookup.is_holdable()) + 1000;
                if with_timeout(JsFuture::from(settled), wait_ms)
                    .await
                    .is_none()
                {
                    let res = fetch_origins(req, edge, lookup, location, method, false).await?;
                    return Ok(Upstream::Stream(res, Source::Pass));
                }
                if let Some(Some(fetched)) = follower.outcome() {
                    count(
                        "brook_edge_coalesced_total",
                        &[("kind", lookup.kind.as_str())],
                    );
                    return Ok(Upstream::Shared(fetched, Source::Coalesced));
                }
                // The leader was cancelled: take over.
            }
            Join::Leader(lead) => {
                let res = fetch_origins(req, edge, lookup, location, method, true).await?;
                let too_big = res
                    .headers()
                    .get("content-length")?
                    .and_then(|l| l.parse::<u64>().ok())
                    .is_some_and(|l| l > edge.cache.max_shared_bytes);
                if too_big {
                    // Let followers fetch on their own; this one streams.
                    drop(lead);
                    return Ok(Upstream::Stream(res, Source::Pass));
                }
                let fetched = Rc::new(buffer(res).await?);
                lead.finish(fetched.clone());
                if let Some(ttl) =
                    lookup.store_for(&edge.cache, fetched.status, fetched.header("cache-control"))
                {
                    let stored = stored_copy(&fetched, ttl)?;
                    ctx.wait_until(async move {
                        if let Err(e) = Cache::default().put(key.as_str(), stored).await {
                            console_error!("cache put {key}: {e}");
                        }
                    });
                }
                return Ok(Upstream::Shared(fetched, Source::Miss));
            }
        }
    }
}

async fn buffer(mut res: Response) -> Result<Fetched> {
    let status = res.status_code();
    // The runtime hands over decoded bytes: drop the coding (and the length)
    // that described the bytes on the wire. Cloudflare compresses again on
    // the way to the viewer.
    let headers = forward_headers(res.headers().entries())
        .into_iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("content-encoding") && !k.eq_ignore_ascii_case("content-length")
        })
        .collect();
    let body = if has_null_body(status) {
        Vec::new()
    } else {
        res.bytes().await?
    };
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// The copy kept in the Cache API: the edge TTL as `cache-control`, the
/// origin's own value kept aside for the responses made from it.
fn stored_copy(f: &Fetched, ttl: u32) -> Result<Response> {
    let headers = Headers::new();
    for (k, v) in &f.headers {
        match k.to_ascii_lowercase().as_str() {
            "cache-control" => headers.set("x-brook-origin-cache-control", v)?,
            "set-cookie" | "content-length" => {}
            _ => headers.append(k, v)?,
        }
    }
    headers.set("cache-control", &format!("public, max-age={ttl}"))?;
    Ok(Response::builder()
        .with_status(f.status)
        .with_headers(headers)
        .fixed(f.body.clone()))
}

/// Tries the regions in order; see [`origins`] for the rules. `shared`
/// requests go out without the client's conditional headers.
async fn fetch_origins(
    req: &Request,
    edge: &Edge,
    lookup: &Lookup<'_>,
    location: Location<'_>,
    method: &str,
    shared: bool,
) -> Result<Response> {
    let now = now_ms();
    let order: Vec<Region> = with_state(|s| {
        origins::order(&edge.regions, &location, &s.health, now)
            .into_iter()
            .cloned()
            .collect()
    });
    let holdable = lookup.is_holdable();
    let timeout = edge.origins.timeout_for(holdable);
    let upstream_query = lookup.upstream_query();
    let mut last_5xx: Option<Response> = None;
    for (i, region) in order.iter().enumerate() {
        if i > 0 {
            count("brook_edge_failovers_total", &[]);
        }
        let url = region
            .origin
            .url_for(lookup.path, upstream_query.as_deref());
        let mut init = RequestInit::new();
        init.with_method(method.to_string().into())
            .with_headers(upstream_headers(req.headers(), shared)?)
            // Pass the origin's redirects to the client instead of chasing them here.
            .with_redirect(RequestRedirect::Manual);
        let upstream_req = Request::new_with_init(&url, &init)?;
        count(
            "brook_edge_origin_requests_total",
            &[("origin", &region.id)],
        );
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(upstream_req);
        let outcome = with_timeout(fetch.send_with_signal(&signal), timeout).await;
        let failure = match outcome {
            None => {
                controller.abort();
                "timeout"
            }
            Some(Err(e)) => {
                console_error!("origin {} ({url}) failed: {e}", region.id);
                "network"
            }
            Some(Ok(res)) if origins::fails_over(res.status_code(), holdable) => {
                console_error!(
                    "origin {} ({url}) answered {}",
                    region.id,
                    res.status_code()
                );
                last_5xx = Some(res);
                "status"
            }
            Some(Ok(res)) => {
                with_state(|s| s.health.mark_up(&region.id));
                return Ok(res);
            }
        };
        count(
            "brook_edge_origin_failures_total",
            &[("origin", &region.id), ("reason", failure)],
        );
        with_state(|s| {
            s.health
                .mark_down(&region.id, now_ms(), edge.origins.unhealthy_ms)
        });
    }
    match last_5xx {
        Some(res) => Ok(res),
        None => plain(502, "origin unreachable\n"),
    }
}

/// Polls `fut` until it finishes or `ms` pass (`None`).
async fn with_timeout<F: Future>(fut: F, ms: u64) -> Option<F::Output> {
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

/// What the origin gets from the client's headers: end-to-end ones, never
/// the token carriers, and for shared fetches nothing conditional.
fn upstream_headers(from: &Headers, shared: bool) -> Result<Headers> {
    let out = Headers::new();
    for (name, value) in forward_headers(from.entries()) {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" || lower == "cookie" {
            continue;
        }
        if shared && CONDITIONAL.contains(&lower.as_str()) {
            continue;
        }
        out.append(&name, &value)?;
    }
    Ok(out)
}

// --- responses ---------------------------------------------------------------

/// `announce` sees every playlist served, as the origin wrote it.
#[allow(clippy::too_many_arguments)]
async fn respond(
    req: &Request,
    edge: &Edge,
    admitted: &Admitted<'_>,
    lookup: &Lookup<'_>,
    upstream: Upstream,
    viewer: &Viewer<'_>,
    now: u64,
    announce: &dyn Fn(&str),
) -> Result<Response> {
    let personalize = lookup.kind.is_manifest() && req.inner().method() == "GET";
    match upstream {
        Upstream::Stream(mut res, source) if personalize && res.status_code() == 200 => {
            // A manifest from the Cache API (or one too big to share).
            let status = res.status_code();
            let headers = forward_headers(res.headers().entries())
                .into_iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-encoding"))
                .collect();
            let body = res.bytes().await?;
            let f = Fetched {
                status,
                headers,
                body,
            };
            finish_manifest(
                req, edge, admitted, lookup, &f, viewer, now, source, announce,
            )
        }
        Upstream::Stream(res, source) => passthrough(res, source),
        Upstream::Shared(f, source) if personalize && f.status == 200 => finish_manifest(
            req, edge, admitted, lookup, &f, viewer, now, source, announce,
        ),
        Upstream::Shared(f, source) => {
            let headers = Headers::new();
            for (k, v) in &f.headers {
                if !k.eq_ignore_ascii_case("content-length") {
                    headers.append(k, v)?;
                }
            }
            headers.set("x-brook-cache", source.as_str())?;
            let builder = Response::builder()
                .with_status(f.status)
                .with_headers(headers);
            Ok(if has_null_body(f.status) {
                builder.empty()
            } else {
                builder.fixed(f.body.clone())
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finish_manifest(
    req: &Request,
    edge: &Edge,
    admitted: &Admitted<'_>,
    lookup: &Lookup<'_>,
    f: &Fetched,
    viewer: &Viewer<'_>,
    now: u64,
    source: Source,
    announce: &dyn Fn(&str),
) -> Result<Response> {
    let text = String::from_utf8_lossy(&f.body);
    announce(&text);
    let mobile = req.headers().get("sec-ch-ua-mobile")?;
    let user_agent = req.headers().get("user-agent")?;
    let save_data = req.headers().get("save-data")?;
    let hints = DeviceHints::from_headers(|name| match name {
        "sec-ch-ua-mobile" => mobile.as_deref(),
        "user-agent" => user_agent.as_deref(),
        "save-data" => save_data.as_deref(),
        _ => None,
    });
    let initial = edge.steering.as_ref().and_then(|s| {
        with_state(|st| {
            s.initial_pathway(viewer, &st.pathways, now)
                .map(str::to_owned)
        })
    });
    let steering = match (&edge.steering, &initial) {
        (Some(s), Some(initial)) if lookup.kind != Kind::MediaPlaylist => Some(SteeringPlan {
            pathways: s.base_pathways().collect(),
            initial,
            server_uri: "steering.json",
        }),
        _ => None,
    };
    let p = Personalization {
        token_name: &edge.auth.token_name,
        token: admitted.token.as_deref(),
        hard: admitted
            .grant
            .as_ref()
            .map(|g| Limits::from(g.entitlements()))
            .unwrap_or_default(),
        soft: hints.limits(&edge.renditions),
        steering,
        path: lookup.path,
    };
    let body = if p.is_noop() {
        text.into_owned()
    } else {
        match lookup.kind {
            Kind::Multivariant => match manifest::personalize_multivariant(&text, &p) {
                Ok(out) => out,
                Err(ManifestError::NothingEntitled) => {
                    count("brook_edge_not_entitled_total", &[]);
                    return plain(403, "forbidden\n");
                }
                Err(ManifestError::Parse(e)) => {
                    count("brook_edge_manifest_fallbacks_total", &[]);
                    console_error!(
                        "multivariant {} does not parse ({e}); token only",
                        lookup.path
                    );
                    manifest::rewrite_lines(&text, &p)
                }
            },
            Kind::MediaPlaylist => match manifest::personalize_media(&text, &p) {
                Ok(out) => out,
                Err(e) => {
                    count("brook_edge_manifest_fallbacks_total", &[]);
                    console_error!(
                        "playlist {} does not parse ({e}); line rewrite",
                        lookup.path
                    );
                    manifest::rewrite_lines(&text, &p)
                }
            },
            _ => manifest::personalize_mpd(&text, &p, Some("steering-dash.json")),
        }
    };
    let noop = p.is_noop();
    let headers = Headers::new();
    let mut origin_cc = None;
    for (k, v) in &f.headers {
        match k.to_ascii_lowercase().as_str() {
            "content-length" | "cache-control" => {}
            "x-brook-origin-cache-control" => origin_cc = Some(v.clone()),
            // Validators describe the origin's bytes, not rewritten ones.
            "etag" | "last-modified" | "age" if !noop => {}
            _ => headers.append(k, v)?,
        }
    }
    let origin_cc = origin_cc.or_else(|| f.header("cache-control").map(str::to_owned));
    if noop {
        if let Some(cc) = &origin_cc {
            headers.set("cache-control", cc)?;
        }
    } else {
        headers.set(
            "cache-control",
            &cache::personalized_cache_control(origin_cc.as_deref()),
        )?;
    }
    headers.set("x-brook-cache", source.as_str())?;
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.into_bytes()))
}

fn passthrough(res: Response, source: Source) -> Result<Response> {
    let status = res.status_code();
    let headers = copy_headers(res.headers())?;
    if let Some(cc) = headers.get("x-brook-origin-cache-control")? {
        headers.set("cache-control", &cc)?;
        headers.delete("x-brook-origin-cache-control")?;
    }
    headers.set("x-brook-cache", source.as_str())?;
    let (_, body) = res.into_parts();
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

/// Every `/live/` answer may be read by a page on another origin (the
/// viewer page, or a player on a customer's site; steering moves players
/// between hosts).
fn with_cors(res: Response) -> Result<Response> {
    res.headers().set("access-control-allow-origin", "*")?;
    res.headers().set(
        "access-control-expose-headers",
        "x-brook-cache, content-length, date",
    )?;
    Ok(res)
}

fn preflight(req: &Request) -> Result<Response> {
    let res = Response::builder().with_status(204).empty();
    let h = res.headers();
    h.set("access-control-allow-methods", ALLOWED_METHODS)?;
    let asked = req
        .headers()
        .get("access-control-request-headers")?
        .unwrap_or_default();
    // Only simple header names are echoed back.
    let allowed: Vec<&str> = asked
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .collect();
    if !allowed.is_empty() {
        h.set("access-control-allow-headers", &allowed.join(", "))?;
    }
    h.set("access-control-max-age", "86400")?;
    h.set("cache-control", "no-store")?;
    Ok(res)
}

// --- operations --------------------------------------------------------------

fn metrics(req: &Request, env: &Env) -> Result<Response> {
    let expected = env
        .secret("METRICS_TOKEN")
        .map(|s| s.to_string())
        .unwrap_or_default();
    let given = req
        .headers()
        .get("authorization")?
        .and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
        .unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return plain(404, "not found\n");
    }
    let res = Response::builder()
        .with_status(200)
        .fixed(with_state(|s| s.metrics.render()).into_bytes());
    res.headers()
        .set("content-type", "text/plain; version=0.0.4")?;
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /_brook/bench/rewrite?n=N&kind=media|multivariant`: runs the rewrite
/// N times inside workerd. Only with the `BROOK_BENCH` var set to `1`.
/// Workers freeze the clock while code runs, so the caller times the
/// request from outside (see edge/bench/rewrite-workerd.mjs).
fn bench(req: &Request, env: &Env) -> Result<Response> {
    let enabled = env
        .var("BROOK_BENCH")
        .map(|v| v.to_string() == "1")
        .unwrap_or(false);
    if !enabled {
        return plain(404, "not found\n");
    }
    let url = req.url()?;
    let q = url.query().unwrap_or("");
    let n: u32 = query::param(q, "n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .min(1_000_000);
    let kind = query::param(q, "kind").map(|k| k.into_owned());
    let media = manifest::bench_playlist();
    let p = Personalization {
        token_name: "__token__",
        token: Some("st=1795440000~exp=1795443600~acl=/live/cam1/*~id=viewer-42~data=maxh:720~kid=2026a~hmac=5e0c81c7bc3a63b7ff5b28c2ff66b7a8e0e7b9b1d8f0f4de7bb46b3fa2bbb4e1"),
        hard: Limits::default(),
        soft: Limits::default(),
        steering: None,
        path: "/live/cam1/S/media.m3u8",
    };
    let mut bytes = 0usize;
    for _ in 0..n {
        let out = match kind.as_deref() {
            Some("lines") => manifest::rewrite_lines(&media, &p),
            _ => manifest::personalize_media(&media, &p).unwrap_or_default(),
        };
        bytes = bytes.wrapping_add(out.len());
    }
    console_log!("bench: {n} rewrites");
    plain(200, &format!("{n} {bytes}\n"))
}
