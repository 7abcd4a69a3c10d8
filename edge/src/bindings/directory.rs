//! The stream directory on the Workers runtime ([`crate::delivery::directory`]
//! decides everything):
//!
//! - `StreamDirectory` (binding `DIRECTORY`): one Durable Object, named
//!   `directory`, holding the [`Registry`] in memory and in its storage, one
//!   key per origin (`origin:<id>`, written alone by that origin's
//!   heartbeats, memory changed only once the write succeeded; a restarted
//!   object lists them and carries on where it was);
//!   `POST https://directory/heartbeat` applies a heartbeat,
//!   `GET https://directory/lookup?stream=<name>` answers who serves a stream.
//!   Only this Worker reaches it.
//! - The Worker's side: origins' heartbeats at `POST /_brook/directory`
//!   (`DIRECTORY_TOKEN`, the allow rules), and [`live_origins`], which the
//!   live requests ask (through this isolate's
//!   [`LookupCache`](crate::delivery::directory::LookupCache), which also
//!   answers, up to
//!   [`STALE_IF_ERROR_MS`](crate::delivery::directory::STALE_IF_ERROR_MS)
//!   past its TTL, when the object does not).

use std::cell::RefCell;

use wasm_bindgen::JsValue;
use worker::{
    console_error, console_warn, durable_object, Date, DurableObject, Env, ListOptions, Method,
    Request, RequestInit, Response, Result, State, Storage,
};

use super::fetch::{count, load, now_ms, with_state};
use super::io::{json_response, plain, read_limited, read_response, with_timeout};
use super::upstream::order_of;
use crate::config::Edge;
use crate::delivery::directory::{
    Answer, Heartbeat, Refused, Registry, MAX_HEARTBEAT_BYTES, MAX_ORIGINS, STORAGE_PREFIX,
};
use crate::delivery::origins::{Location, Region};
use crate::metrics;

/// The Durable Object namespace.
const BINDING: &str = "DIRECTORY";
/// The bearer secret origins register with.
const TOKEN_SECRET: &str = "DIRECTORY_TOKEN";
/// The one object every isolate asks.
const OBJECT_NAME: &str = "directory";
/// Largest answer read from the object (a lookup names at most
/// [`MAX_ORIGINS`] origins).
const ANSWER_MAX_BYTES: usize = MAX_ORIGINS * 2048 + 1024;

#[durable_object]
pub struct StreamDirectory {
    state: State,
    /// `None` until read from storage (once per object instance).
    registry: RefCell<Option<Registry>>,
}

impl StreamDirectory {
    /// Reads the registry from storage the first time (every `origin:` key:
    /// the registered origins, and expired ones whose deletion failed). A
    /// failed read is an error, tried again by the next request.
    async fn ensure_loaded(&self) -> Result<()> {
        if self.registry.borrow().is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        let listed = storage
            .list_with_options(ListOptions::new().prefix(STORAGE_PREFIX))
            .await?;
        // Kept as JSON text: the layout `Entry`'s serde derives, tested
        // natively, rather than a structured clone of it.
        let mut stored = Vec::new();
        listed.for_each(&mut |value, key| {
            if let Some(key) = key.as_string() {
                stored.push((key, value.as_string().unwrap_or_default()));
            }
        });
        let (registry, dropped) = Registry::load(stored, Date::now().as_millis());
        if !dropped.is_empty() {
            console_warn!(
                "directory: dropping {} stored entries (expired or unreadable)",
                dropped.len()
            );
        }
        if let Err(e) = delete_keys(&storage, dropped).await {
            console_warn!("directory: deleting stale keys: {e}");
        }
        self.registry.borrow_mut().get_or_insert(registry);
        Ok(())
    }

    async fn heartbeat(&self, mut req: Request) -> Result<Response> {
        // The Worker read it with its limit; read again with one anyway.
        let body = req.bytes().await?;
        if body.len() > MAX_HEARTBEAT_BYTES {
            return plain(413, "too large\n");
        }
        let hb = match Heartbeat::parse(&body) {
            Ok(hb) => hb,
            Err(e) => return plain(400, &format!("{e}\n")),
        };
        self.ensure_loaded().await?;
        let storage = self.state.storage();
        let now = Date::now().as_millis();
        // Expired origins leave memory, then storage (a failed delete:
        // they are dropped again when loaded); the heartbeat's change is
        // decided, not yet applied.
        let (expired, prepared) = {
            let mut registry = self.registry.borrow_mut();
            let registry = registry.get_or_insert_with(Registry::default);
            (registry.expire(now), registry.prepare(&hb, now))
        };
        if let Err(e) = delete_keys(&storage, expired).await {
            console_warn!("directory: deleting expired entries: {e}");
        }
        let change = match prepared {
            Ok(change) => change,
            Err(e @ Refused::Full) => return plain(503, &format!("{e}\n")),
            Err(e) => return plain(400, &format!("{e}\n")),
        };
        // Stored first, then applied: a failed write changes nothing. The
        // answer waits for the write (the runtime's output gate), so an
        // origin told "registered" is registered after a restart too.
        let key = change.key();
        let written = match change.value() {
            Some(text) => storage.put(&key, text).await,
            None => storage.delete(&key).await.map(|_| ()),
        };
        if let Err(e) = written {
            console_error!("directory: storing {key}: {e}");
            return plain(500, "storage failed\n");
        }
        let (applied, origins) = {
            let mut registry = self.registry.borrow_mut();
            let registry = registry.get_or_insert_with(Registry::default);
            (registry.commit(change), registry.len())
        };
        json_response(
            200,
            serde_json::json!({ "result": applied.as_str(), "origins": origins }).to_string(),
        )
    }

    async fn lookup(&self, req: &Request) -> Result<Response> {
        let url = req.url()?;
        let stream = url
            .query_pairs()
            .find(|(k, _)| k == "stream")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        self.ensure_loaded().await?;
        let answer = self
            .registry
            .borrow()
            .as_ref()
            .map(|r| r.lookup(&stream, Date::now().as_millis()))
            .unwrap_or_default();
        json_response(
            200,
            serde_json::to_string(&answer).map_err(|e| worker::Error::RustError(e.to_string()))?,
        )
    }
}

/// Deletes `keys` (the runtime takes at most 128 per call).
async fn delete_keys(storage: &Storage, keys: Vec<String>) -> Result<()> {
    for chunk in keys.chunks(128) {
        storage.delete_multiple(chunk.to_vec()).await?;
    }
    Ok(())
}

impl DurableObject for StreamDirectory {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            registry: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let path = req.url()?.path().to_owned();
        match (path.as_str(), req.method()) {
            ("/heartbeat", Method::Post) => self.heartbeat(req).await,
            ("/lookup", Method::Get) => self.lookup(&req).await,
            _ => plain(404, "not found\n"),
        }
    }
}

// --- the Worker's side -------------------------------------------------------

fn registration(result: &str) {
    count(
        "brook_edge_directory_registrations_total",
        &[("result", result)],
    );
}

/// `POST /_brook/directory`: an origin's heartbeat. 404 unless
/// `DIRECTORY_TOKEN` is set and `origins.directory.enabled`; 401 without
/// the token; 400 / 413 for a bad body; 403 for a URL the allow rules do
/// not name; the directory's answer otherwise.
pub(super) async fn serve_heartbeat(req: &Request, env: &Env) -> Result<Response> {
    let expected = env
        .secret(TOKEN_SECRET)
        .map(|s| s.to_string())
        .unwrap_or_default();
    if expected.is_empty() {
        return plain(404, "not found\n");
    }
    if req.inner().method() != "POST" {
        let res = plain(405, "method not allowed\n")?;
        res.headers().set("allow", "POST")?;
        return Ok(res);
    }
    let authorization = req.headers().get("authorization")?;
    if !metrics::authorized(&expected, authorization.as_deref()) {
        registration("unauthorized");
        console_warn!("directory: heartbeat refused (401: no or wrong DIRECTORY_TOKEN)");
        let res = plain(401, "unauthorized\n")?;
        res.headers().set("www-authenticate", "Bearer")?;
        return Ok(res);
    }
    let edge = match load(env).await {
        Ok((edge, _)) => edge,
        Err(answer) => return answer,
    };
    let config = &edge.origins.directory;
    if !config.enabled {
        return plain(
            404,
            "no stream directory configured (origins.directory.enabled)\n",
        );
    }
    let declared = req.headers().get("content-length")?;
    let body = req.clone()?.stream().ok();
    let body = match read_limited(body, declared.as_deref(), MAX_HEARTBEAT_BYTES).await? {
        Ok(body) => body,
        Err(_) => {
            registration("invalid");
            return plain(413, "too large\n");
        }
    };
    let hb = match Heartbeat::admit(&body, config) {
        Ok(hb) => hb,
        Err(e) => {
            let (status, result) = match e {
                Refused::NotAllowed(_) => (403, "refused"),
                _ => (400, "invalid"),
            };
            registration(result);
            console_warn!("directory: heartbeat refused ({status}): {e}");
            return plain(status, &format!("{e}\n"));
        }
    };
    let Ok(namespace) = env.durable_object(BINDING) else {
        console_error!("directory: origins.directory.enabled but no {BINDING} binding");
        return plain(503, "stream directory not bound\n");
    };
    let stub = namespace.id_from_name(OBJECT_NAME)?.get_stub()?;
    let text = serde_json::to_string(&hb).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(JsValue::from_str(&text)));
    let mut res = stub
        .fetch_with_request(Request::new_with_init(
            "https://directory/heartbeat",
            &init,
        )?)
        .await?;
    let status = res.status_code();
    let body = read_response(&mut res, ANSWER_MAX_BYTES)
        .await?
        .unwrap_or_default();
    let result = match status {
        200 if hb.streams.is_empty() => "removed",
        200 => "registered",
        503 => "full",
        _ => "failed",
    };
    registration(result);
    if status != 200 {
        console_error!(
            "directory: heartbeat of {} answered {status}: {}",
            hb.origin,
            String::from_utf8_lossy(&body).trim()
        );
    }
    // This isolate sees the change at once (others within their cache TTL).
    with_state(|s| s.directory.forget(&hb));
    let out = Response::builder().with_status(status).fixed(body);
    out.headers().set("content-type", "application/json")?;
    out.headers().set("cache-control", "no-store")?;
    Ok(out)
}

/// Where a live stream's requests go.
pub(super) enum LiveOrigins {
    /// The static regions (`origins.regions` / `ORIGIN_URL`): no directory,
    /// or `fallback_to_static` for a stream no origin registered.
    Static,
    /// The origins registered for it, in failover order before health.
    Registered(Vec<Region>),
    /// No origin serves it: a 404 from the edge, no origin asked.
    Unknown,
    /// The directory did not answer, this isolate has no answer to fall
    /// back on (stale-if-error) and there is no static fallback: a 503.
    Unavailable,
}

/// The origins to ask for live `stream` from a viewer at `location`, in
/// failover order ([`live_origins`], then health and nearness as for every
/// request); `Err`: the answer instead (404 unknown, 503 directory down).
pub(super) async fn live_order(
    env: &Env,
    edge: &Edge,
    stream: &str,
    location: &Location<'_>,
) -> Result<std::result::Result<Vec<Region>, Response>> {
    Ok(match live_origins(env, edge, stream).await {
        LiveOrigins::Static => Ok(order_of(&edge.regions, location)),
        LiveOrigins::Registered(regions) => Ok(order_of(&regions, location)),
        LiveOrigins::Unknown => Err(plain(404, "not found\n")?),
        LiveOrigins::Unavailable => {
            let res = plain(503, "try again\n")?;
            res.headers().set("retry-after", "2")?;
            Err(res)
        }
    })
}

/// The origins of `stream`, from this isolate's cache or the directory.
pub(super) async fn live_origins(env: &Env, edge: &Edge, stream: &str) -> LiveOrigins {
    let config = &edge.origins.directory;
    if !config.enabled {
        return LiveOrigins::Static;
    }
    let now = now_ms();
    let cached = with_state(|s| s.directory.get(stream, now, config).cloned());
    let answer = match cached {
        Some(answer) => {
            count("brook_edge_directory_cache_hits_total", &[]);
            answer
        }
        None => match ask_unless_down(env, stream, edge.origins.timeout_ms).await {
            Ok(answer) => {
                let result = if answer.origins.is_empty() {
                    "unknown"
                } else {
                    "found"
                };
                count("brook_edge_directory_lookups_total", &[("result", result)]);
                with_state(|s| s.directory.put(stream, answer.clone(), now));
                answer
            }
            Err(why) => {
                // Stale-if-error: this isolate's last found answer, up to
                // STALE_IF_ERROR_MS past its TTL.
                // Now, after the failed ask (which may have waited out its
                // timeout), not when it started.
                let stale = with_state(|s| s.directory.stale(stream, now_ms(), config).cloned());
                let result = if stale.is_some() { "stale" } else { "failed" };
                count("brook_edge_directory_lookups_total", &[("result", result)]);
                if why != BACKING_OFF {
                    console_error!("directory: looking up {stream}: {why} ({result})");
                }
                match stale {
                    Some(answer) => answer,
                    None if config.fallback_to_static => return LiveOrigins::Static,
                    None => return LiveOrigins::Unavailable,
                }
            }
        },
    };
    match answer.regions(config) {
        Some(regions) => LiveOrigins::Registered(regions),
        None if config.fallback_to_static => LiveOrigins::Static,
        None => LiveOrigins::Unknown,
    }
}

/// [`ask_unless_down`]'s error while it does not ask.
const BACKING_OFF: &str = "the directory failed less than a second ago";

/// [`ask`], unless the directory failed this isolate less than a second
/// ago (then an error at once: requests use a stale answer or fail fast
/// instead of each waiting out a timeout). A failure starts the pause.
async fn ask_unless_down(
    env: &Env,
    stream: &str,
    timeout_ms: u64,
) -> std::result::Result<Answer, String> {
    if with_state(|s| s.directory.backing_off(now_ms())) {
        return Err(BACKING_OFF.into());
    }
    let answer = ask(env, stream, timeout_ms).await;
    if answer.is_err() {
        with_state(|s| s.directory.failed(now_ms()));
    }
    answer
}

/// The directory's answer for `stream`, within `timeout_ms`.
async fn ask(env: &Env, stream: &str, timeout_ms: u64) -> std::result::Result<Answer, String> {
    let namespace = env
        .durable_object(BINDING)
        .map_err(|e| format!("no {BINDING} binding: {e}"))?;
    let asked = async {
        let stub = namespace.id_from_name(OBJECT_NAME)?.get_stub()?;
        // Stream names are [A-Za-z0-9_-]: nothing to encode.
        let mut res = stub
            .fetch_with_str(&format!("https://directory/lookup?stream={stream}"))
            .await?;
        let status = res.status_code();
        let body = read_response(&mut res, ANSWER_MAX_BYTES).await?;
        Ok::<_, worker::Error>((status, body))
    };
    match with_timeout(asked, timeout_ms).await {
        None => Err(format!("no answer within {timeout_ms} ms")),
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok((200, Ok(body)))) => {
            serde_json::from_slice::<Answer>(&body).map_err(|e| format!("unreadable answer: {e}"))
        }
        Some(Ok((200, Err(_)))) => Err("answer too large".into()),
        Some(Ok((status, _))) => Err(format!("answered {status}")),
    }
}
