//! The origin side of the fetch binding: an answer from the Cache API, a
//! flight shared with identical requests, or the origins in failover order
//! (`delivery::*` decides each step), then the response built from it
//! (personalized manifests, streamed shared bodies, passed-through answers),
//! and the ladder rendition caps are checked against (`access::caps`).

use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::js_sys::Promise;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    console_error, AbortController, Cache, Context, Fetch, Request, RequestInit, RequestRedirect,
    Response, ResponseBody, Result,
};

use super::fetch::{count, now_ms, with_state, FLIGHTS};
use super::io::{self, headers, plain, read_response, response, with_timeout};
use crate::access::caps::Ladder;
use crate::access::token::KeySet;
use crate::access::Admitted;
use crate::ads::interstitial::AdMarks;
use crate::config::Edge;
use crate::delivery::cache::Lookup;
use crate::delivery::coalesce::Join;
use crate::delivery::origins::{self, Location, Region, Tried};
use crate::delivery::shared::{End, SharedBody};
use crate::delivery::upstream::{self, Fetched, Flight, Source};
use crate::manifest::{self, DeviceHints, Limits, Personalization, Refused, SteeringPlan};
use crate::steering::Viewer;
use crate::Kind;

/// Why a stream's ladder could not be learnt.
pub(super) enum LadderUnavailable {
    /// The origin answered, but no ladder (not found, not a playlist).
    NotServed(String),
    /// The origin failed (5xx, unreachable).
    OriginDown(String),
}

/// The stream's (asset's) multivariant playlist at `path`, of `kind`,
/// through the same cache and coalescing as viewers' requests for it (one
/// key for everyone), from `regions`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_ladder(
    req: &Request,
    ctx: &Context,
    edge: &Edge,
    regions: &[Region],
    path: &str,
    kind: Kind,
    url: &worker::Url,
    location: Location<'_>,
) -> Result<std::result::Result<Ladder, LadderUnavailable>> {
    let lookup = Lookup {
        kind,
        path,
        query: None,
    };
    let f = match upstream(req, ctx, edge, regions, &lookup, url, location, "GET").await? {
        Upstream::Shared(flight, _) => match collect(&flight, edge).await {
            Ok(f) => f,
            Err(why) => return Ok(Err(LadderUnavailable::OriginDown(why))),
        },
        Upstream::Stream(res, _) => buffer(res, edge.cache.max_shared_bytes).await?,
    };
    Ok(match f.status {
        200 => Ladder::parse(&String::from_utf8_lossy(&f.body))
            .map_err(|e| LadderUnavailable::NotServed(format!("does not parse ({e})"))),
        s if s >= 500 => Err(LadderUnavailable::OriginDown(format!(
            "origin answered {s}"
        ))),
        s => Err(LadderUnavailable::NotServed(format!("origin answered {s}"))),
    })
}

pub(super) enum Upstream {
    /// An origin answer shared with the requests that coalesced on it,
    /// its body arriving.
    Shared(Rc<Flight>, Source),
    /// A response of this request's own (Cache API hit, or not shareable).
    Stream(Response, Source),
}

/// The answer for `lookup`: the Cache API's, a flight's in this isolate,
/// or `regions`' (in failover order).
#[allow(clippy::too_many_arguments)]
pub(super) async fn upstream(
    req: &Request,
    ctx: &Context,
    edge: &Edge,
    regions: &[Region],
    lookup: &Lookup<'_>,
    url: &worker::Url,
    location: Location<'_>,
    method: &str,
) -> Result<Upstream> {
    let names: Vec<String> = req.headers().keys().collect();
    let conditional = upstream::has_conditional(names.iter().map(String::as_str));
    if !upstream::is_shareable(method, lookup, conditional) {
        let res = fetch_origins(req, edge, regions, lookup, location, method, false).await?;
        return Ok(Upstream::Stream(res, Source::Pass));
    }
    let base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("edge"));
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
                    let res =
                        fetch_origins(req, edge, regions, lookup, location, method, false).await?;
                    return Ok(Upstream::Stream(res, Source::Pass));
                }
                if let Some(Some(flight)) = follower.outcome() {
                    count(
                        "brook_edge_coalesced_total",
                        &[("kind", lookup.kind.as_str())],
                    );
                    return Ok(Upstream::Shared(flight, Source::Coalesced));
                }
                // The leader was cancelled: take over.
            }
            Join::Leader(lead) => {
                let res = fetch_origins(req, edge, regions, lookup, location, method, true).await?;
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
                // Shared as soon as the origin's headers are in: every
                // request on this key reads the body while it arrives (a
                // hinted part chunk by chunk as the origin makes it).
                let limit = usize::try_from(edge.cache.max_shared_bytes).unwrap_or(usize::MAX);
                let flight = Rc::new(Flight {
                    status: res.status_code(),
                    headers: upstream::decoded_headers(res.headers().entries()),
                    body: SharedBody::new(limit),
                });
                lead.publish(flight.clone());
                let store =
                    lookup.store_for(&edge.cache, flight.status, flight.header("cache-control"));
                let shared = flight.clone();
                ctx.wait_until(async move {
                    io::pump(res, &shared.body).await;
                    match (store, shared.body.complete_bytes(), shared.body.end()) {
                        (Some(ttl), Some(bytes), _) => {
                            let stored = response(
                                shared.status,
                                &upstream::stored_headers(&shared.headers, ttl),
                                Some(bytes),
                            );
                            let put = match stored {
                                Ok(copy) => Cache::default().put(key.as_str(), copy).await,
                                Err(e) => Err(e),
                            };
                            if let Err(e) = put {
                                console_error!("cache put {key}: {e}");
                            }
                        }
                        (_, _, Some(End::Failed(why))) => {
                            console_error!("origin body {key}: {why}")
                        }
                        _ => {}
                    }
                    // The flight ends once its copy is stored: until then
                    // later requests share it instead of asking again.
                    drop(lead);
                });
                return Ok(Upstream::Shared(flight, Source::Miss));
            }
        }
    }
}

/// A shared origin answer, whole (waiting for its body to complete).
async fn collect(flight: &Flight, edge: &Edge) -> std::result::Result<Fetched, String> {
    Ok(Fetched {
        status: flight.status,
        headers: flight.headers.clone(),
        body: io::read_all(&flight.body, edge.origins.hold_timeout_ms).await?,
    })
}

/// An origin answer held in memory, at most `limit` bytes of body (checked
/// while reading; a larger one becomes a 502, not stored).
pub(super) async fn buffer(mut res: Response, limit: u64) -> Result<Fetched> {
    let status = res.status_code();
    let headers = upstream::decoded_headers(res.headers().entries());
    if upstream::has_null_body(status) {
        return Ok(Fetched {
            status,
            headers,
            body: Vec::new(),
        });
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match read_response(&mut res, limit).await? {
        Ok(body) => Ok(Fetched {
            status,
            headers,
            body,
        }),
        Err(e) => {
            console_error!("origin answer {e}: not passed on");
            Ok(Fetched {
                status: 502,
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: b"origin answer too large\n".to_vec(),
            })
        }
    }
}

/// The static origins to ask for a viewer at `location`, in failover order
/// (`delivery::origins::order`: nearness, then this isolate's health view).
pub(super) fn origin_order(edge: &Edge, location: &Location<'_>) -> Vec<Region> {
    order_of(&edge.regions, location)
}

/// [`origin_order`] for any set of regions (a live stream's registered
/// origins among them).
pub(super) fn order_of(regions: &[Region], location: &Location<'_>) -> Vec<Region> {
    let now = now_ms();
    with_state(|s| {
        origins::order(regions, location, &s.health, now)
            .into_iter()
            .cloned()
            .collect()
    })
}

/// Tries `regions` in order; see [`origins`] for the rules. `shared`
/// requests go out without the client's conditional headers.
async fn fetch_origins(
    req: &Request,
    edge: &Edge,
    regions: &[Region],
    lookup: &Lookup<'_>,
    location: Location<'_>,
    method: &str,
    shared: bool,
) -> Result<Response> {
    let order = order_of(regions, &location);
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
            .with_headers(headers(&upstream::upstream_headers(
                req.headers().entries(),
                shared,
            ))?)
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
        let (tried, answer) = match with_timeout(fetch.send_with_signal(&signal), timeout).await {
            None => {
                controller.abort();
                (Tried::TimedOut, None)
            }
            Some(Err(e)) => {
                console_error!("origin {} ({url}) failed: {e}", region.id);
                (Tried::NetworkError, None)
            }
            Some(Ok(res)) => (Tried::Answered(res.status_code()), Some(res)),
        };
        let failure = match (tried.failure(holdable), answer) {
            (None, Some(res)) => {
                with_state(|s| s.health.mark_up(&region.id));
                return Ok(res);
            }
            (failure, answer) => {
                if let Some(res) = answer {
                    console_error!(
                        "origin {} ({url}) answered {}",
                        region.id,
                        res.status_code()
                    );
                    last_5xx = Some(res);
                }
                failure.unwrap_or("status")
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

// --- responses ---------------------------------------------------------------

/// `announce` sees every playlist served, as the origin wrote it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn respond(
    req: &Request,
    edge: &Edge,
    keys: &KeySet,
    admitted: &Admitted<'_>,
    lookup: &Lookup<'_>,
    upstream: Upstream,
    viewer: &Viewer<'_>,
    now: u64,
    announce: &dyn Fn(&str),
) -> Result<Response> {
    let personalize = lookup.kind.is_manifest() && req.inner().method() == "GET";
    match upstream {
        Upstream::Stream(res, source) if personalize && res.status_code() == 200 => {
            // A manifest from the Cache API (or one too big to share).
            let f = buffer(res, edge.cache.max_shared_bytes).await?;
            if f.status != 200 {
                return response(f.status, &f.headers, Some(f.body));
            }
            finish_manifest(
                req, edge, keys, admitted, lookup, &f, viewer, now, source, announce,
            )
        }
        Upstream::Stream(res, source) => passthrough(res, source),
        Upstream::Shared(flight, source) if personalize && flight.status == 200 => {
            // Personalized whole: playlists are small, and the origin sends
            // them whole anyway.
            let f = match collect(&flight, edge).await {
                Ok(f) => f,
                Err(why) => {
                    console_error!("manifest {}: {why}", lookup.path);
                    return plain(502, "origin answer failed\n");
                }
            };
            finish_manifest(
                req, edge, keys, admitted, lookup, &f, viewer, now, source, announce,
            )
        }
        Upstream::Shared(flight, source) if lookup.kind == Kind::Part && flight.status == 200 => {
            // LL-HLS parts go out whole, still from one origin request: a
            // part is at most a PART-TARGET long, so this costs at most that
            // much, and hls.js uses a part only once it has all of it anyway
            // (measured: 1.17 s live latency streamed, 1.18 s whole). Streamed,
            // a part trickles in at the media's own rate, and the player's
            // bandwidth estimate never rises above the rendition it plays: it
            // cannot switch up again (docs/edge.md). Segments (DASH's chunked
            // low-latency delivery) and other objects stream.
            let f = match collect(&flight, edge).await {
                Ok(f) => f,
                Err(why) => {
                    console_error!("part {}: {why}", lookup.path);
                    return plain(502, "origin answer failed\n");
                }
            };
            response(
                f.status,
                &upstream::shared_headers(&f.headers, source),
                Some(f.body),
            )
        }
        Upstream::Shared(flight, source) => io::streaming_response(
            flight.status,
            &upstream::shared_headers(&flight.headers, source),
            &flight.body,
            edge.origins.hold_timeout_ms,
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn finish_manifest(
    req: &Request,
    edge: &Edge,
    keys: &KeySet,
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
        // Live only: VOD has no steering manifest to point at (yet).
        (Some(s), Some(initial)) if matches!(lookup.kind, Kind::Multivariant | Kind::Mpd) => {
            Some(SteeringPlan {
                pathways: s.base_pathways().collect(),
                initial,
                server_uri: "steering.json",
            })
        }
        _ => None,
    };
    // Live media playlists announce ad breaks as interstitials (with keys
    // to sign their asset lists: without, none).
    let ad_list = (lookup.kind == Kind::MediaPlaylist
        && edge.ads.mode == crate::ads::AdMode::Interstitials
        && !keys.is_empty())
    .then(|| crate::ads::interstitial::asset_list_path(lookup.path))
    .flatten();
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
        interstitials: ad_list
            .as_deref()
            .map(|list_path| AdMarks { list_path, keys }),
    };
    let out = match manifest::personalize(lookup.kind, &text, &p) {
        Ok(out) => out,
        Err(refused) => {
            count("brook_edge_not_entitled_total", &[]);
            if let Refused::Unreadable(e) = &refused {
                console_error!(
                    "{} {}: {e}; refused to a capped viewer",
                    lookup.kind.as_str(),
                    lookup.path
                );
            }
            return plain(403, "forbidden\n");
        }
    };
    if let Some(e) = &out.fallback {
        count("brook_edge_manifest_fallbacks_total", &[]);
        console_error!(
            "{} {} does not parse ({e}); fallback rewrite",
            lookup.kind.as_str(),
            lookup.path
        );
    }
    response(
        200,
        &upstream::manifest_headers(&f.headers, out.rewritten, source),
        Some(out.body.into_bytes()),
    )
}

fn passthrough(res: Response, source: Source) -> Result<Response> {
    let status = res.status_code();
    let headers = headers(&upstream::passthrough_headers(
        res.headers().entries(),
        source,
    ))?;
    let (_, body) = res.into_parts();
    // The origin's body stream is handed over as is: bytes reach the client as
    // they arrive (parts of a segment still being written included), and the
    // runtime keeps the length it learnt from the origin's Content-Length.
    let body = if upstream::has_null_body(status) {
        ResponseBody::Empty
    } else {
        body
    };
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body))
}
