//! The `#[event(fetch)]` binding: translates between `worker` types and the
//! plain-Rust modules of this crate, carries out their decisions, and owns
//! the per-isolate state (counters, origin and pathway health, ladders, the
//! in-flight map). Routing, access, rendition caps, steering, the chat
//! handoff and operations are here; the origin side (Cache API, coalescing,
//! origins, the response built from them) is in `upstream.rs`. What to do is
//! decided elsewhere; see the crate docs for the order it runs in.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::js_sys::{Reflect, JSON};
use worker::{
    console_error, console_log, console_warn, event, Context, Date, Env, Headers, Request,
    RequestInit, Response, Result,
};

use super::directory::{live_origins, LiveOrigins};
use super::io::{plain, preflight, read_limited, read_response, with_cors};
use super::upstream::{self as origin_side, fetch_ladder, respond, LadderUnavailable};
use crate::access::caps::{Check, Ladders, Placement};
use crate::access::geo::Subject;
use crate::access::token::KeySet;
use crate::access::{self, AccessRequest, Admitted, Denied};
use crate::chat::handoff::{self, Step};
use crate::config::{Edge, Memo, Refreshed};
use crate::delivery::cache::Lookup;
use crate::delivery::coalesce::Coalescer;
use crate::delivery::origins::{Health, Location, Region};
use crate::delivery::upstream::Flight;
use crate::manifest::{self, Limits, Personalization};
use crate::metrics::{self, Metrics};
use crate::route::{Chat, ChatKind, Media};
use crate::steering::{self, Flavor, PathwayHealth, Viewer};
use crate::{is_allowed_method, query, route, Kind, Live, Route, ALLOWED_METHODS};

/// Where the config document lives in the optional KV namespace.
const CONFIG_KV: &str = "EDGE_KV";
const CONFIG_KEY: &str = "config";
/// How long an isolate keeps the KV config before reading it again.
const CONFIG_KV_REFRESH_MS: u64 = 30_000;
/// The chat rooms' Durable Object namespace (`chat_room.rs`).
const CHAT_BINDING: &str = "CHAT";
/// Largest answer the edge reads from a chat room (a history page of 500
/// messages is well under 1 MiB).
const ROOM_ANSWER_MAX_BYTES: usize = 4 << 20;

/// What one isolate keeps between requests.
#[derive(Default)]
pub(super) struct State {
    pub(super) metrics: Metrics,
    pub(super) health: Health,
    pub(super) pathways: PathwayHealth,
    /// The config, by its source text.
    edge: Memo<Edge>,
    /// The KV config text, read at most every [`CONFIG_KV_REFRESH_MS`].
    kv_config: Refreshed<Option<String>>,
    /// `TOKEN_KEYS`, by its text.
    keys: Memo<KeySet>,
    /// Stream starts and ends this isolate told the chat rooms about.
    notices: crate::chat::Notices,
    /// Streams' renditions, for rendition caps.
    ladders: Ladders,
    /// Content keys from the origin, for ClearKey licenses.
    pub(super) license_keys: crate::access::license::KeyCache,
    /// Viewer sessions and QoE aggregates (`qoe.rs`).
    pub(super) qoe: super::qoe::QoeState,
    /// Prepared creatives, ad decisions, fired beacons (`ads.rs`).
    pub(super) ads: super::ads::AdState,
    /// The stream directory's answers (`directory.rs`).
    pub(super) directory: crate::delivery::directory::LookupCache,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
    pub(super) static FLIGHTS: Coalescer<Flight> = Coalescer::default();
}

pub(super) fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

pub(super) fn count(name: &'static str, labels: &[(&str, &str)]) {
    with_state(|s| s.metrics.inc(name, labels));
}

pub(super) fn now_ms() -> u64 {
    Date::now().as_millis()
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let url = req.url()?;
    match route(url.path()) {
        Route::NotFound => plain(404, "not found\n"),
        Route::Metrics => serve_metrics(&req, &env),
        Route::Qoe => super::qoe::serve_report(&req, &env, &url).await,
        Route::Streams => super::qoe::serve_streams(&req, &env).await,
        Route::Beacon(scope) => {
            let res = super::qoe::serve_beacon(&req, &env, &ctx, &url, &scope).await?;
            count_request("qoe_beacon", &res);
            with_cors(res)
        }
        Route::Bench => bench(&req, &env),
        Route::Directory => super::directory::serve_heartbeat(&req, &env).await,
        Route::AdList(path) => {
            let res = super::ads::serve_asset_list(&req, &env, &ctx, &url, &path).await?;
            count_request("ad_list", &res);
            with_cors(res)
        }
        Route::Live(live) => {
            let res = serve_media(&req, &env, &ctx, &url, Media::Live(&live)).await?;
            count_request(live.kind.as_str(), &res);
            with_cors(res)
        }
        Route::Vod(vod) => {
            let res = serve_media(&req, &env, &ctx, &url, Media::Vod(&vod)).await?;
            count_request(vod.kind.as_str(), &res);
            with_cors(res)
        }
        Route::License(path) => {
            let res = super::license::serve(&req, &env, &url, &path).await?;
            count_request("license", &res);
            with_cors(res)
        }
        Route::Whep(path) => {
            let res = super::whep::serve(&req, &env, &url, &path).await?;
            count_request("whep", &res);
            with_cors(res)
        }
        Route::Chat(chat) => {
            let res = serve_chat(&req, &env, &url, chat).await?;
            count_request(chat.kind.as_str(), &res);
            Ok(res)
        }
    }
}

fn count_request(kind: &str, res: &Response) {
    count(
        "brook_edge_requests_total",
        &[("kind", kind), ("status", &res.status_code().to_string())],
    );
}

/// What a request tells about the viewer, read once.
pub(super) struct Client {
    authorization: Option<String>,
    cookie: Option<String>,
    ip: Option<String>,
    cf: CfInfo,
}

impl Client {
    pub(super) fn of(req: &Request) -> Result<Self> {
        let headers = req.headers();
        Ok(Self {
            authorization: headers.get("authorization")?,
            cookie: headers.get("cookie")?,
            ip: headers.get("cf-connecting-ip")?,
            cf: cf_location(req),
        })
    }

    pub(super) fn access<'a>(
        &'a self,
        path: &'a str,
        query: Option<&'a str>,
        subject: Subject<'a>,
    ) -> AccessRequest<'a> {
        AccessRequest {
            now: now_ms() / 1000,
            path,
            query,
            authorization: self.authorization.as_deref(),
            cookie: self.cookie.as_deref(),
            client_ip: self.ip.as_deref(),
            country: self.cf.country.as_deref(),
            subject,
        }
    }

    pub(super) fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }

    pub(super) fn cf(&self) -> &CfInfo {
        &self.cf
    }

    pub(super) fn country(&self) -> Option<&str> {
        self.cf.country.as_deref()
    }

    pub(super) fn location(&self) -> Location<'_> {
        Location {
            country: self.cf.country.as_deref(),
            continent: self.cf.continent.as_deref(),
            colo: self.cf.colo.as_deref(),
        }
    }
}

/// The config and keys, or the 500 answer when either is invalid.
pub(super) async fn load(
    env: &Env,
) -> std::result::Result<(Rc<Edge>, Rc<KeySet>), Result<Response>> {
    match (load_edge(env).await, load_keys(env)) {
        (Ok(edge), Ok(keys)) => Ok((edge, keys)),
        (Err(e), _) | (_, Err(e)) => {
            console_error!("{e}");
            Err(plain(500, "edge misconfigured\n"))
        }
    }
}

/// `/live/` and `/vod/`: one path for both (`route::Media` says what
/// differs: the geo subject, the ladder the caps are checked against, the
/// kinds the cache decides by).
async fn serve_media(
    req: &Request,
    env: &Env,
    ctx: &Context,
    url: &worker::Url,
    media: Media<'_>,
) -> Result<Response> {
    // The raw method: `worker::Method` maps unknown methods to GET.
    let method = req.inner().method();
    if method == "OPTIONS" {
        return preflight(req, ALLOWED_METHODS);
    }
    if !is_allowed_method(&method) {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", ALLOWED_METHODS)?;
        return Ok(res);
    }
    let (edge, keys) = match load(env).await {
        Ok(loaded) => loaded,
        Err(answer) => return answer,
    };
    let client = Client::of(req)?;
    // The one spelling of the path: what the token is checked against, the
    // cache is keyed by and the origin is asked for.
    let path = media.path();
    let admitted = match access::admit(
        &edge,
        &keys,
        &client.access(&path, url.query(), media.subject()),
    ) {
        Ok(a) => a,
        Err(denied) => return deny(denied, url.path(), &client.cf),
    };
    let location = client.location();
    let viewer_key = access::viewer_key(admitted.grant.as_ref(), client.ip.as_deref());
    // A live stream's origins: the static regions, or those registered in
    // the stream directory (`directory.rs`); no origin, no origin request.
    let registered = match media {
        Media::Live(live) => match live_origins(env, &edge, live.stream()).await {
            LiveOrigins::Static => None,
            LiveOrigins::Registered(regions) => Some(regions),
            LiveOrigins::Unknown => return plain(404, "not found\n"),
            LiveOrigins::Unavailable => {
                let res = plain(503, "try again\n")?;
                res.headers().set("retry-after", "2")?;
                return Ok(res);
            }
        },
        Media::Vod(_) => None,
    };
    let regions = registered.as_deref().unwrap_or(&edge.regions);
    let now = now_ms();

    // Rendition caps: a media playlist or object of a rendition above the
    // token's caps is refused, not only left out of the playlists.
    let caps = admitted
        .grant
        .as_ref()
        .map(|g| Limits::from(g.entitlements()))
        .unwrap_or_default();
    if media.is_capped_kind() && !caps.is_unlimited() {
        if let Some(refusal) =
            enforce_caps(req, ctx, &edge, regions, media, url, location, caps).await?
        {
            return Ok(refusal);
        }
    }
    // Admitted (token, geo, rendition caps): its CMCD counts.
    super::qoe::record_request(env, url, media, &client);

    match media.kind() {
        kind @ (Kind::SteeringHls | Kind::SteeringDash) => {
            let flavor = if kind == Kind::SteeringHls {
                Flavor::Hls
            } else {
                Flavor::Dash
            };
            steering_manifest(
                &edge,
                &admitted,
                flavor,
                url,
                &path,
                location,
                &viewer_key,
                client.ip.as_deref(),
                now,
            )
        }
        kind => {
            let lookup = Lookup {
                kind,
                path: &path,
                query: url.query(),
            };
            let upstream =
                origin_side::upstream(req, ctx, &edge, regions, &lookup, url, location, &method)
                    .await?;
            let viewer = Viewer {
                location,
                key: &viewer_key,
                pathway: None,
                throughput: None,
            };
            let announce = |playlist: &str| {
                if let Media::Live(live) = media {
                    announce_stream(env, ctx, live, &path, playlist)
                }
            };
            let res = respond(
                req, &edge, &keys, &admitted, &lookup, upstream, &viewer, now, &announce,
            )
            .await?;
            // An ad's segment served (its token names the viewer's ad
            // decision): the beacons it makes due, after the answer.
            if let Media::Vod(vod) = media {
                let served = method == "GET" && matches!(res.status_code(), 200 | 206);
                if served && vod.kind == crate::route::VodKind::Segment {
                    super::ads::on_vod_segment(ctx, url, admitted.grant.as_ref(), &vod.path.name);
                }
            }
            Ok(res)
        }
    }
}

/// `None` when `media` (a media playlist or object) is within `caps`;
/// otherwise the answer: 403, or 503 when the stream's (asset's) ladder
/// cannot be learnt because the origin is down (see `access::caps`).
#[allow(clippy::too_many_arguments)]
async fn enforce_caps(
    req: &Request,
    ctx: &Context,
    edge: &Edge,
    regions: &[Region],
    media: Media<'_>,
    url: &worker::Url,
    location: Location<'_>,
    caps: Limits,
) -> Result<Option<Response>> {
    // Ladders are kept by their multivariant's path: a stream and an asset
    // never share one.
    let (ladder_path, ladder_kind) = media.ladder();
    let stream = ladder_path.as_str();
    let refuse = |why: &str| -> Result<Option<Response>> {
        count("brook_edge_not_entitled_total", &[]);
        console_warn!("denied 403 (rendition over the caps: {why}) {}", url.path());
        plain(403, "forbidden\n").map(Some)
    };
    // A live object names its session (no rendition without one); VOD
    // objects name none.
    let session = media.session();
    let Some(rendition) = media.rendition() else {
        return refuse("no rendition in the name");
    };
    let check = with_state(|s| s.ladders.check(stream, session, rendition, caps, now_ms()));
    let placement = match check {
        Check::Decided(p) => p,
        Check::Fetch => {
            match fetch_ladder(req, ctx, edge, regions, stream, ladder_kind, url, location).await? {
                Ok(ladder) => {
                    let p = ladder.place(session, rendition, caps);
                    with_state(|s| s.ladders.store(stream, ladder, now_ms()));
                    p
                }
                Err(LadderUnavailable::NotServed(why)) => {
                    console_warn!("ladder of {stream}: {why}");
                    Placement::Unknown
                }
                Err(LadderUnavailable::OriginDown(why)) => {
                    match with_state(|s| s.ladders.place_known(stream, session, rendition, caps)) {
                        Placement::Unknown => {
                            console_error!("ladder of {stream}: {why}; 503 to a capped viewer");
                            let res = plain(503, "try again\n")?;
                            res.headers().set("retry-after", "2")?;
                            return Ok(Some(res));
                        }
                        known => known,
                    }
                }
            }
        }
    };
    match placement {
        Placement::Allowed => Ok(None),
        Placement::OverCap => refuse(rendition),
        Placement::Unknown => refuse("not in the stream's multivariant playlist"),
    }
}

// --- chat --------------------------------------------------------------------

/// `/chat/<stream>[/history|/moderate]`: the video's token check and geo
/// rule (`chat::handoff` says against which path), then the stream's room.
/// See docs/chat.md.
async fn serve_chat(
    req: &Request,
    env: &Env,
    url: &worker::Url,
    chat: Chat<'_>,
) -> Result<Response> {
    let method = req.inner().method();
    let upgrade = req.headers().get("upgrade")?;
    match handoff::first_step(chat.kind, &method, upgrade.as_deref()) {
        Step::Preflight => return with_cors(preflight(req, ALLOWED_METHODS)?),
        Step::MethodNotAllowed(allow) => {
            let res = plain(405, "method not allowed\n")?;
            res.headers().set("allow", allow)?;
            return Ok(res);
        }
        Step::UpgradeRequired => {
            let res = plain(426, "WebSocket upgrade required\n")?;
            res.headers().set("upgrade", "websocket")?;
            return Ok(res);
        }
        Step::Admit => {}
    }
    let (edge, keys) = match load(env).await {
        Ok(loaded) => loaded,
        Err(answer) => return answer,
    };
    let client = Client::of(req)?;
    let path = handoff::access_path(chat.stream);
    let admitted = match access::admit(
        &edge,
        &keys,
        &client.access(&path, url.query(), Subject::Stream(chat.stream)),
    ) {
        Ok(a) => a,
        Err(denied) => return deny(denied, url.path(), &client.cf),
    };
    match handoff::moderation_refused(chat.kind, admitted.grant.as_ref(), chat.stream) {
        None => {}
        // Moderation needs a moderator's token even where viewers need none.
        Some(handoff::Refused::NoToken) => return deny(Denied::Missing, url.path(), &client.cf),
        Some(handoff::Refused::NotModerator) => {
            return deny(Denied::NotModerator, url.path(), &client.cf)
        }
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
                client.ip.as_deref(),
                &super::random_hex(),
                64,
            );
            init_headers.set("upgrade", "websocket")?;
            handoff::connect_url(&identity)
        }
        ChatKind::History => handoff::history_url(url.query()),
        ChatKind::Moderate => {
            if method == "POST" {
                // The size is checked while reading: a larger body is never
                // held, whatever its Content-Length says.
                let declared = req.headers().get("content-length")?;
                let body = req.clone()?.stream().ok();
                let body =
                    match read_limited(body, declared.as_deref(), handoff::MAX_MODERATION_BODY)
                        .await?
                    {
                        Ok(body) => body,
                        Err(_) => return plain(413, "too large\n"),
                    };
                init.with_method(worker::Method::Post)
                    .with_body(Some(JsValue::from_str(&String::from_utf8_lossy(&body))));
                init_headers.set("content-type", "application/json")?;
            }
            handoff::MODERATE_URL.to_owned()
        }
    };
    init.with_headers(init_headers);
    let res = stub
        .fetch_with_request(Request::new_with_init(&room_url, &init)?)
        .await?;
    if chat.kind == ChatKind::Socket {
        return Ok(res);
    }
    // The room's answer, with headers this edge may change.
    let mut res = res;
    let status = res.status_code();
    let Ok(body) = read_response(&mut res, ROOM_ANSWER_MAX_BYTES).await? else {
        console_error!(
            "chat: the room's answer to {} passed {ROOM_ANSWER_MAX_BYTES} bytes",
            url.path()
        );
        return plain(502, "room answer too large\n");
    };
    let out = Response::builder().with_status(status).fixed(body);
    out.headers().set("content-type", "application/json")?;
    out.headers().set("cache-control", "no-store")?;
    with_cors(out)
}

/// A playlist about to be served: tells the stream's chat room, after the
/// response, when it shows a publish session starting or ending
/// (`chat::notices`; the room announces each once).
fn announce_stream(env: &Env, ctx: &Context, live: &Live, path: &str, playlist: &str) {
    if live.kind != Kind::MediaPlaylist || env.durable_object(CHAT_BINDING).is_err() {
        // Not a media playlist, or an edge deployed without chat rooms.
        return;
    }
    let Some(event) = with_state(|s| s.notices.observe(live.stream(), live.kind, path, playlist))
    else {
        return;
    };
    let stream = live.stream().to_owned();
    let env = env.clone();
    ctx.wait_until(async move {
        let delivered = async {
            let stub = env
                .durable_object(CHAT_BINDING)?
                .id_from_name(&stream)?
                .get_stub()?;
            let mut init = RequestInit::new();
            init.with_method(worker::Method::Post);
            let url = handoff::announce_url(&event);
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
pub(super) struct CfInfo {
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

pub(super) fn deny(denied: Denied, path: &str, cf: &CfInfo) -> Result<Response> {
    let (metric, label) = denied.metric();
    count(metric, label.as_slice());
    console_warn!(
        "denied {} ({}) {path} country={} colo={}",
        denied.status(),
        denied.reason(),
        cf.country.as_deref().unwrap_or("-"),
        cf.colo.as_deref().unwrap_or("-")
    );
    let res = plain(denied.status(), denied.body())?;
    if let Some(challenge) = denied.www_authenticate() {
        res.headers().set("www-authenticate", challenge)?;
    }
    Ok(res)
}

// --- config ------------------------------------------------------------------

/// The config document: KV (if bound and set) over the `EDGE_CONFIG` var.
async fn config_text(env: &Env) -> Option<String> {
    if let Ok(kv) = env.kv(CONFIG_KV) {
        let now = now_ms();
        let cached = with_state(|s| s.kv_config.fresh(now, CONFIG_KV_REFRESH_MS).cloned());
        let text = match cached {
            Some(text) => text,
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
                with_state(|s| s.kv_config.set(text.clone(), now));
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
    with_state(|s| {
        s.edge
            .get_or_parse(&source, || Edge::new(Some(&text), origin_url.as_deref()))
    })
    .map_err(|e| e.to_string())
}

fn load_keys(env: &Env) -> std::result::Result<Rc<KeySet>, String> {
    let text = env
        .secret("TOKEN_KEYS")
        .map(|s| s.to_string())
        .unwrap_or_default();
    with_state(|s| s.keys.get_or_parse(&text, || KeySet::parse(&text))).map_err(|e| e.to_string())
}

// --- steering ----------------------------------------------------------------

/// The steering manifest for one viewer (whose report, if the query holds
/// one, is recorded first).
#[allow(clippy::too_many_arguments)]
fn steering_manifest(
    edge: &Edge,
    admitted: &Admitted<'_>,
    flavor: Flavor,
    url: &worker::Url,
    path: &str,
    location: Location<'_>,
    viewer_key: &str,
    client_ip: Option<&str>,
    now: u64,
) -> Result<Response> {
    let Some(steering) = &edge.steering else {
        return plain(404, "no steering configured\n");
    };
    let (pathway, throughput) = flavor.report(url.query().unwrap_or(""));
    if let (Some(p), Some(t)) = (&pathway, throughput) {
        let reporter = access::reporter_key(admitted, client_ip);
        with_state(|s| s.pathways.record(steering.config(), p, &reporter, t, now));
    }
    let viewer = Viewer {
        location,
        key: viewer_key,
        pathway: pathway.as_deref(),
        throughput,
    };
    let reload = steering::reload_uri(path, &edge.auth.token_name, admitted.token.as_deref());
    let manifest = with_state(|s| steering.manifest(flavor, &viewer, &s.pathways, now, reload));
    count(
        "brook_edge_steering_manifests_total",
        &[("flavor", flavor.as_str())],
    );
    let res = Response::builder()
        .with_status(200)
        .fixed(manifest.to_json().into_bytes());
    res.headers().set("content-type", "application/json")?;
    res.headers().set("cache-control", "private, no-store")?;
    Ok(res)
}

// --- operations --------------------------------------------------------------

fn serve_metrics(req: &Request, env: &Env) -> Result<Response> {
    let expected = env
        .secret("METRICS_TOKEN")
        .map(|s| s.to_string())
        .unwrap_or_default();
    let authorization = req.headers().get("authorization")?;
    if !metrics::authorized(&expected, authorization.as_deref()) {
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

/// `GET /_brook/bench/rewrite?n=N&kind=media|lines|break` (`break`: a
/// playlist with an ad break, given its interstitial): runs the rewrite
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
    let media = if kind.as_deref() == Some("break") {
        manifest::bench_playlist_with_break()
    } else {
        manifest::bench_playlist()
    };
    let mut p = Personalization {
        token_name: "__token__",
        token: Some("st=1795440000~exp=1795443600~acl=/live/cam1/*~id=viewer-42~data=maxh:720~kid=2026a~hmac=5e0c81c7bc3a63b7ff5b28c2ff66b7a8e0e7b9b1d8f0f4de7bb46b3fa2bbb4e1"),
        hard: Limits::default(),
        soft: Limits::default(),
        steering: None,
        path: "/live/cam1/S/media.m3u8",
        interstitials: None,
    };
    let bench_keys = KeySet::parse("bench:00112233445566778899aabbccddeeff").unwrap_or_default();
    if kind.as_deref() == Some("break") {
        p.interstitials = Some(crate::ads::interstitial::AdMarks {
            list_path: "/live/cam1/ads.json",
            keys: &bench_keys,
        });
    }
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
