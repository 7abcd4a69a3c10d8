//! `POST /qoe/push`: what viewers watched and stalled, from the edge, for
//! Prometheus. Each edge isolate adds up its viewers' beacons per live
//! stream and pushes the sums since its previous push
//! (`Authorization: Bearer <qoe.push_token>`, compared in constant time):
//!
//! ```json
//! {"v":1,"streams":{"cam1":{"watch_ms":41000,"stall_ms":1200,"stalls":2}}}
//! ```
//!
//! The origin adds them to `brook_qoe_watch_seconds_total`,
//! `brook_qoe_stall_seconds_total` and `brook_qoe_stalls_total` (by stream;
//! `crate::metrics::QoeTotals`), for streams it has; the others come back
//! as `{"unknown":[...]}` so the edge can try another origin, and a stream
//! whose sums are impossible as `{"refused":[...]}` (the others still
//! count). The
//! `BrookRebufferRatioHigh` alert (ops/prometheus) divides the two rates.
//! The numbers are what players report (docs/qoe.md): bounded per push, but
//! a viewer token holder can skew them, as with any player-side QoE.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::admin::json_reply;
use super::{Reply, Request};
use crate::metrics::{Metrics, QoeSums};
use crate::serve::hub::Hub;

/// The endpoint's path.
pub const PATH: &str = "/qoe/push";
/// Largest body read: 256 streams of sums and then some.
pub const MAX_BODY: usize = 64 << 10;
/// Most streams in one push (the edge sends at most 256).
pub const MAX_STREAMS: usize = 1024;
/// Most watch time one push may add to one stream, ms: a minute of a
/// million viewers, far more than one isolate sees in its 10 s.
pub const MAX_WATCH_MS: u64 = 60_000 * 1_000_000;

/// The endpoint: the token the edge presents, the streams this origin has,
/// and where the sums go.
pub struct QoeEndpoint {
    pub token: String,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for QoeEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QoeEndpoint").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    v: u32,
    streams: BTreeMap<String, QoeSums>,
}

impl QoeEndpoint {
    /// Whether `headers` carry the push token (compared in constant time).
    pub fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(brook_common::credentials::bearer)
            .unwrap_or("");
        crate::constant_time_eq(given.as_bytes(), self.token.as_bytes())
    }

    /// The 401 for a request without the token (counted), before its body
    /// is read; `None` with the token.
    pub fn refuse(&self, headers: &http::HeaderMap) -> Option<Reply> {
        if self.authorized(headers) {
            return None;
        }
        self.metrics.qoe.count_push("unauthorized");
        Some(
            Reply::text(StatusCode::UNAUTHORIZED, "unauthorized")
                .header("www-authenticate", "Bearer realm=\"brook qoe\""),
        )
    }

    /// Answers a request for [`PATH`] with its body (read within [`MAX_BODY`]).
    pub fn handle(&self, req: &Request<'_>, body: &[u8]) -> Reply {
        if req.method != Method::POST {
            return Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "POST");
        }
        if let Some(refused) = self.refuse(req.headers) {
            return refused;
        }
        let push = match check(body) {
            Ok(p) => p,
            Err(why) => {
                self.metrics.qoe.count_push("invalid");
                return json_reply(StatusCode::BAD_REQUEST, json!({ "error": why }));
            }
        };
        let (mut unknown, mut refused) = (Vec::new(), Vec::new());
        for (stream, sums) in push.streams {
            if !in_range(&sums) {
                refused.push(stream);
            } else if self.hub.stream(&stream).is_some() {
                self.metrics.qoe.add(&stream, sums);
            } else {
                unknown.push(stream);
            }
        }
        self.metrics.qoe.count_push(if refused.is_empty() {
            "accepted"
        } else {
            "invalid"
        });
        json_reply(
            StatusCode::OK,
            json!({ "unknown": unknown, "refused": refused }),
        )
    }
}

/// Whether one stream's sums are possible: stall time within the watch
/// time, at most one stall per 100 ms of it, within [`MAX_WATCH_MS`].
fn in_range(s: &QoeSums) -> bool {
    s.watch_ms <= MAX_WATCH_MS && s.stall_ms <= s.watch_ms && s.stalls <= s.watch_ms / 100 + 1
}

/// Parses a push body and bounds its shape (each stream's sums are checked
/// on their own: [`in_range`]).
fn check(body: &[u8]) -> Result<Push, String> {
    let push: Push = serde_json::from_slice(body).map_err(|e| format!("not a QoE push: {e}"))?;
    if push.v != 1 {
        return Err(format!("version {} is not 1", push.v));
    }
    if push.streams.len() > MAX_STREAMS {
        return Err(format!("more than {MAX_STREAMS} streams"));
    }
    if push.streams.keys().any(|s| !crate::valid_stream_name(s)) {
        return Err("a stream name is not valid".into());
    }
    Ok(push)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn endpoint() -> QoeEndpoint {
        let hub = Arc::new(Hub::default());
        let _live = hub.begin_publish("cam1").unwrap();
        QoeEndpoint {
            token: "push-token-0123456789".into(),
            hub,
            metrics: Arc::new(Metrics::default()),
        }
    }

    fn post(e: &QoeEndpoint, auth: &str, body: &str) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", auth.parse().unwrap());
        let req = Request {
            method: &Method::POST,
            path: PATH,
            query: None,
            headers: &headers,
            peer: None,
        };
        e.handle(&req, body.as_bytes())
    }

    fn body_of(r: &Reply) -> String {
        match &r.body {
            super::super::Body::Full(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }

    #[test]
    fn adds_known_streams_and_names_the_others() {
        let e = endpoint();
        let auth = "Bearer push-token-0123456789";
        let push = r#"{"v":1,"streams":{"cam1":{"watch_ms":40000,"stall_ms":1000,"stalls":2},"elsewhere":{"watch_ms":5,"stall_ms":0,"stalls":0}}}"#;
        let r = post(&e, auth, push);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            body_of(&r).trim(),
            r#"{"refused":[],"unknown":["elsewhere"]}"#
        );
        post(
            &e,
            auth,
            r#"{"v":1,"streams":{"cam1":{"watch_ms":20000,"stall_ms":500,"stalls":1}}}"#,
        );
        let page = e.metrics.render(&e.hub);
        assert!(
            page.contains("brook_qoe_watch_seconds_total{stream=\"cam1\"} 60\n"),
            "{page}"
        );
        assert!(
            page.contains("brook_qoe_stall_seconds_total{stream=\"cam1\"} 1.5\n"),
            "{page}"
        );
        assert!(
            page.contains("brook_qoe_stalls_total{stream=\"cam1\"} 3\n"),
            "{page}"
        );
        assert!(!page.contains("elsewhere"), "{page}");
        assert!(
            page.contains("brook_qoe_pushes_total{result=\"accepted\"} 2\n"),
            "{page}"
        );
    }

    #[test]
    fn refuses_strangers_and_bad_pushes() {
        let e = endpoint();
        let ok = r#"{"v":1,"streams":{"cam1":{"watch_ms":1,"stall_ms":0,"stalls":0}}}"#;
        for auth in [
            "Bearer wrong-token-0123456789",
            "push-token-0123456789",
            "Bearer ",
        ] {
            assert_eq!(
                post(&e, auth, ok).status,
                StatusCode::UNAUTHORIZED,
                "{auth}"
            );
        }
        let auth = "Bearer push-token-0123456789";
        for bad in [
            "",
            "{}",
            r#"{"v":2,"streams":{}}"#,
            r#"{"v":1,"streams":{"cam1":{"watch_ms":-1,"stall_ms":0,"stalls":0}}}"#,
            r#"{"v":1,"streams":{"../x":{"watch_ms":1,"stall_ms":0,"stalls":0}}}"#,
            r#"{"v":1,"streams":{"cam1":{"watch_ms":1,"stall_ms":0,"stalls":0,"x":1}}}"#,
        ] {
            assert_eq!(post(&e, auth, bad).status, StatusCode::BAD_REQUEST, "{bad}");
        }
        // Impossible sums are refused stream by stream; the rest count.
        for sums in [
            r#"{"watch_ms":1,"stall_ms":2,"stalls":0}"#,
            r#"{"watch_ms":60000000001,"stall_ms":0,"stalls":0}"#,
            r#"{"watch_ms":1000,"stall_ms":0,"stalls":12}"#,
        ] {
            let body = format!(
                r#"{{"v":1,"streams":{{"cam1":{sums},"elsewhere":{{"watch_ms":5,"stall_ms":0,"stalls":0}}}}}}"#
            );
            let r = post(&e, auth, &body);
            assert_eq!(r.status, StatusCode::OK, "{sums}");
            assert_eq!(
                body_of(&r).trim(),
                r#"{"refused":["cam1"],"unknown":["elsewhere"]}"#,
                "{sums}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert("authorization", auth.parse().unwrap());
        let get = Request {
            method: &Method::GET,
            path: PATH,
            query: None,
            headers: &headers,
            peer: None,
        };
        assert_eq!(e.handle(&get, b"").status, StatusCode::METHOD_NOT_ALLOWED);
        let page = e.metrics.render(&e.hub);
        assert!(
            page.contains("brook_qoe_pushes_total{result=\"unauthorized\"} 3\n"),
            "{page}"
        );
        assert!(
            page.contains("brook_qoe_pushes_total{result=\"invalid\"} 9\n"),
            "{page}"
        );
        assert!(!page.contains("brook_qoe_watch_seconds_total{"), "{page}");
    }
}
