//! The admin API and `/metrics`.
//!
//! ```text
//! GET  /metrics                       Prometheus text format (token only if
//!                                     admin.metrics_need_token)
//! GET  /admin/streams                 streams with ingest and viewer stats (JSON)
//! POST /admin/streams/<name>/kick     disconnect the publisher (it may reconnect
//!                                     within the grace period)
//! POST /admin/streams/<name>/end      end the stream now (ENDLIST; archive -> VOD)
//! POST /admin/streams/<name>/break?duration_s=N[&at=T]
//!                                     an ad break of N seconds (1..=10800), now or
//!                                     at T (RFC 3339 date or Unix ms), marked like
//!                                     an SCTE-35 one (docs/ads.md)
//! POST /admin/streams/<name>/break/end
//!                                     the break in progress ends now
//! GET  /admin/archive                 archived sessions (JSON)
//! GET  /admin/streams/<name>/keys     the stream's content keys: KIDs, state (never keys)
//! POST /admin/streams/<name>/keys/rotate
//!                                     a new key set for the stream's next session
//! POST /admin/streams/<name>/keys/<kid>/revoke
//!                                     the key is never served again
//! ```
//!
//! Every `/admin/` request needs `Authorization: Bearer <admin.token>`, compared
//! in constant time; a missing or wrong token is a 401 that does not say which.
//! Without a configured token the admin API does not exist (404).

use std::sync::Arc;

use brook_packager::breaks::{CueAt, SpliceCue, MAX_BREAK_MS};
use brook_packager::UnixMillis;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::json;

use super::{Reply, Request};
use crate::constant_time_eq;
use crate::keys::KeyService;
use crate::metrics::Metrics;
use crate::serve::hub::Hub;
use crate::store::archive::Archive;

/// What the admin API may do to a live stream (the pipeline implements it).
pub trait StreamControl: Send + Sync {
    /// Disconnects the stream's publisher; `false` when none is connected.
    fn kick(&self, stream: &str) -> bool;
    /// Ends the stream now; `false` when it is not live.
    fn end(&self, stream: &str) -> bool;
    /// Starts (`cue.out`) or ends an ad break: `None` when the stream is
    /// not live, `Some(false)` when the cue changed nothing (a break is
    /// already scheduled or under way; nothing to end).
    fn cue(&self, stream: &str, cue: SpliceCue) -> Option<bool>;
}

pub struct Admin {
    pub token: Option<String>,
    pub metrics_need_token: bool,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub publisher: Option<Arc<dyn StreamControl>>,
    pub archive: Option<Arc<Archive>>,
    /// The key service (none: no stream is encrypted, the key routes are 404).
    pub keys: Option<Arc<KeyService>>,
}

/// A JSON answer that no cache keeps.
pub(super) fn json_reply(status: StatusCode, value: serde_json::Value) -> Reply {
    Reply::new(
        status,
        "application/json",
        Bytes::from(value.to_string() + "\n"),
    )
    .header("cache-control", "no-store")
}

impl Admin {
    fn authorized(&self, req: &Request<'_>) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let given = req
            .header("authorization")
            .and_then(brook_common::credentials::bearer)
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), token.as_bytes())
    }

    fn unauthorized() -> Reply {
        Reply::text(StatusCode::UNAUTHORIZED, "unauthorized")
            .header("www-authenticate", "Bearer realm=\"brook admin\"")
    }

    pub async fn handle(&self, req: &Request<'_>) -> Reply {
        if req.path == "/metrics" {
            if req.method != Method::GET && req.method != Method::HEAD {
                return Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                    .header("allow", "GET, HEAD");
            }
            if self.metrics_need_token && !self.authorized(req) {
                return Self::unauthorized();
            }
            return Reply::new(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(self.metrics.render(&self.hub)),
            )
            .header("cache-control", "no-store");
        }
        if self.token.is_none() {
            return Reply::text(StatusCode::NOT_FOUND, "not found");
        }
        if !self.authorized(req) {
            return Self::unauthorized();
        }
        let parts: Vec<&str> = req.path.trim_start_matches("/admin/").split('/').collect();
        match (req.method.clone(), parts.as_slice()) {
            (Method::GET, ["streams"]) => self.streams(),
            (Method::GET, ["archive"]) => self.archived(),
            (Method::POST, ["streams", name, action @ ("kick" | "end")]) => {
                let Some(p) = &self.publisher else {
                    return Reply::text(StatusCode::NOT_FOUND, "no publisher");
                };
                let done = if *action == "kick" {
                    p.kick(name)
                } else {
                    p.end(name)
                };
                if done {
                    json_reply(StatusCode::OK, json!({ "ok": true }))
                } else {
                    json_reply(
                        StatusCode::NOT_FOUND,
                        json!({ "ok": false, "error": "stream is not publishing" }),
                    )
                }
            }
            (Method::POST, ["streams", name, "break", rest @ ..]) if rest.len() <= 1 => {
                let Some(p) = &self.publisher else {
                    return Reply::text(StatusCode::NOT_FOUND, "no publisher");
                };
                let cue = match rest {
                    [] => match break_request(req.query.unwrap_or("")) {
                        Ok(cue) => cue,
                        Err(e) => {
                            return json_reply(
                                StatusCode::BAD_REQUEST,
                                json!({ "ok": false, "error": e }),
                            )
                        }
                    },
                    ["end"] => SpliceCue::end(CueAt::Now),
                    _ => return Reply::text(StatusCode::NOT_FOUND, "not found"),
                };
                let (id, out) = (cue.id.clone(), cue.out);
                match p.cue(name, cue) {
                    Some(true) if out => {
                        json_reply(StatusCode::ACCEPTED, json!({ "ok": true, "id": id }))
                    }
                    Some(true) => json_reply(StatusCode::ACCEPTED, json!({ "ok": true })),
                    Some(false) => json_reply(
                        StatusCode::CONFLICT,
                        json!({ "ok": false, "error": if out {
                            "a break is already scheduled or under way"
                        } else {
                            "no break to end"
                        } }),
                    ),
                    None => json_reply(
                        StatusCode::NOT_FOUND,
                        json!({ "ok": false, "error": "stream is not publishing" }),
                    ),
                }
            }
            (method, ["streams", name, "keys", rest @ ..]) => self.keys(&method, name, rest),
            (_, ["streams"] | ["archive"] | ["streams", _, "kick" | "end" | "break"])
            | (_, ["streams", _, "break", "end"]) => {
                Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            _ => Reply::text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// `/admin/streams/<name>/keys[/...]`.
    fn keys(&self, method: &Method, name: &str, rest: &[&str]) -> Reply {
        let Some(keys) = &self.keys else {
            return Reply::text(StatusCode::NOT_FOUND, "no key service");
        };
        if !crate::valid_stream_name(name) {
            return Reply::text(StatusCode::NOT_FOUND, "not found");
        }
        let failed = |e: crate::keys::KeyError| {
            tracing::error!(stream = %name, error = %e, "key service");
            json_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "ok": false, "error": "key service failed" }),
            )
        };
        match (method, rest) {
            (&Method::GET, []) => json_reply(
                StatusCode::OK,
                json!({ "stream": name, "keys": keys.list(name) }),
            ),
            (&Method::POST, ["rotate"]) => match keys.rotate(name) {
                Ok(kids) => json_reply(
                    StatusCode::OK,
                    json!({ "ok": true, "kids": kids, "applies_from": "next_session" }),
                ),
                Err(e) => failed(e),
            },
            (&Method::POST, [kid, "revoke"]) => {
                let Some(kid) = crate::keys::kid_from_hex(kid) else {
                    return json_reply(
                        StatusCode::BAD_REQUEST,
                        json!({ "ok": false, "error": "a KID is 32 hex digits" }),
                    );
                };
                match keys.revoke(name, &kid) {
                    Ok(true) => json_reply(StatusCode::OK, json!({ "ok": true })),
                    Ok(false) => json_reply(
                        StatusCode::NOT_FOUND,
                        json!({ "ok": false, "error": "no such key" }),
                    ),
                    Err(e) => failed(e),
                }
            }
            (_, [] | ["rotate"] | [_, "revoke"]) => {
                Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            _ => Reply::text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn streams(&self) -> Reply {
        let streams: Vec<_> = self
            .hub
            .streams()
            .iter()
            .map(|s| {
                let snap = s.snapshot();
                let st = s.ingest_stats();
                json!({
                    "name": s.name,
                    "session": snap.session,
                    "live": snap.live,
                    "ended": snap.ended,
                    "publisher": st.peer.map(|p| p.to_string()),
                    "started_unix_ms": st.started_unix_ms,
                    "publisher_connections": st.connections,
                    "ingest_bytes": st.bytes,
                    "ingest_bitrate_bps": st.bitrate_bps,
                    "srt_rtt_ms": st.rtt_ms,
                    "srt_packets_received": st.packets_received,
                    "srt_packets_lost": st.packets_lost,
                    "srt_packets_retransmitted": st.packets_retransmitted,
                    "srt_packets_dropped": st.packets_dropped,
                    "continuity_errors": st.continuity_errors,
                    "parts": st.parts,
                    "segments": st.segments,
                    "viewers": s.viewers(),
                    "blocked_requests": s.blocked_requests(),
                    "transcoder_pid": st.transcoder_pid,
                    "transcoder_renditions": st.renditions,
                    "transcoder_restarts": st.transcoder_restarts,
                    "transcoder_latency_s": st.transcoder_latency_s,
                    "transcoder_speed": st.transcoder_speed,
                    "media_playlist": format!("/live/{}/{}/video.m3u8", s.name, snap.session),
                })
            })
            .collect();
        json_reply(StatusCode::OK, json!({ "streams": streams }))
    }

    fn archived(&self) -> Reply {
        let Some(a) = &self.archive else {
            return json_reply(StatusCode::OK, json!({ "enabled": false, "sessions": [] }));
        };
        let mut sessions = Vec::new();
        for (stream, by_session) in a.sessions() {
            for (session, info) in by_session {
                sessions.push(json!({
                    "stream": stream,
                    "session": session,
                    "segments": info.segments,
                    "duration_secs": info.duration_secs,
                    "ended": info.ended,
                    "media_playlist": format!("/live/{stream}/{session}/video.m3u8"),
                }));
            }
        }
        json_reply(
            StatusCode::OK,
            json!({ "enabled": true, "sessions": sessions }),
        )
    }
}

/// How far in the past (a break "now" sent late) and the future `at` may be.
const MAX_PAST_MS: u64 = 5 * 60 * 1000;
const MAX_AHEAD_MS: u64 = 60 * 60 * 1000;

/// `duration_s=N[&at=T]` of `POST /admin/streams/<name>/break`: a break of N
/// seconds (whole or decimal, at most 3 hours), now or at T (an RFC 3339
/// date or Unix milliseconds), returning on its own.
fn break_request(query: &str) -> Result<SpliceCue, String> {
    let (mut duration, mut at) = (None, CueAt::Now);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "duration_s" => {
                let d: f64 = v
                    .parse()
                    .map_err(|_| format!("duration_s: not a number: {v:?}"))?;
                let ms = (d * 1000.0).round();
                if !(1000.0..=MAX_BREAK_MS as f64).contains(&ms) {
                    return Err(format!(
                        "duration_s must be within 1..={}",
                        MAX_BREAK_MS / 1000
                    ));
                }
                duration = Some(ms as u64);
            }
            "at" => {
                let wall = match v.parse::<u64>() {
                    Ok(ms) => UnixMillis(ms),
                    Err(_) => UnixMillis::parse_iso8601(&v)
                        .ok_or_else(|| format!("at: not a date or Unix ms: {v:?}"))?,
                };
                let now = crate::serve::hub::unix_ms();
                if wall.0.saturating_add(MAX_PAST_MS) < now
                    || wall.0 > now.saturating_add(MAX_AHEAD_MS)
                {
                    return Err(format!(
                        "at: must be within {} s before and {} s after now",
                        MAX_PAST_MS / 1000,
                        MAX_AHEAD_MS / 1000
                    ));
                }
                at = CueAt::Wall(wall);
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    let duration = duration.ok_or("duration_s is required")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Ok(SpliceCue::start(format!("break-{now}"), at, duration))
}
