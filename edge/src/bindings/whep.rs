//! `/whep/<stream>[/<session>]`: WHEP signalling passed to the origin after
//! the stream's token and geo checks. What is decided (paths, methods,
//! headers, the `Location`) is in `delivery::whep`; here: the body read with
//! its limit, the origin asked in failover order, the answer passed back.

use worker::js_sys::Uint8Array;
use worker::{console_error, Env, Fetch, Request, RequestInit, Response, Result};

use super::directory::live_order;
use super::fetch::{count, deny, load, Client};
use super::io::{headers, method_gate, plain, read_limited, read_response, response, with_timeout};
use crate::access::geo::Subject;
use crate::access::{self};
use crate::delivery::whep::{self, WhepPath};

/// Largest origin answer passed back (an SDP answer is a few KiB).
const ANSWER_MAX_BYTES: usize = 64 * 1024;

pub(super) async fn serve(
    req: &Request,
    env: &Env,
    url: &worker::Url,
    path: &WhepPath,
) -> Result<Response> {
    let method = req.inner().method();
    if let Some(answer) = method_gate(req, path.methods(), path.allows(&method))? {
        return Ok(answer);
    }
    let (edge, keys) = match load(env).await {
        Ok(loaded) => loaded,
        Err(answer) => return answer,
    };
    let client = Client::of(req)?;
    let spelled = path.access_path();
    if let Err(denied) = access::admit(
        &edge,
        &keys,
        &client.access(&spelled, url.query(), Subject::Stream(&path.stream)),
    ) {
        return deny(denied, url.path(), client.cf());
    }
    let body = if WhepPath::takes_body(&method) {
        let declared = req.headers().get("content-length")?;
        match read_limited(
            req.clone()?.stream().ok(),
            declared.as_deref(),
            whep::MAX_BODY,
        )
        .await?
        {
            Ok(b) => Some(b),
            Err(_) => return plain(413, "offer too large\n"),
        }
    } else {
        None
    };
    let mut forwarded = Vec::new();
    for name in whep::REQUEST_HEADERS {
        if let Some(v) = req.headers().get(name)? {
            forwarded.push((name.to_string(), v));
        }
    }
    // The stream's origins: the stream directory's when it is on.
    let order = match live_order(env, &edge, &path.stream, &client.location()).await? {
        Ok(order) => order,
        Err(answer) => return Ok(answer),
    };
    // An offer goes to the first origin that answers; a session lives on the
    // origin that answered its offer, which is first in the same order unless
    // it went down (then the session is gone anyway).
    for region in &order {
        let target = region.origin.url_for(&path.origin_path(), None);
        let mut init = RequestInit::new();
        init.with_method(method.to_string().into())
            .with_headers(headers(&forwarded)?);
        if let Some(b) = &body {
            let array = Uint8Array::from(b.as_slice());
            init.with_body(Some(array.into()));
        }
        let request = Request::new_with_init(&target, &init)?;
        count(
            "brook_edge_origin_requests_total",
            &[("origin", &region.id)],
        );
        let mut res =
            match with_timeout(Fetch::Request(request).send(), edge.origins.timeout_ms).await {
                Some(Ok(res)) => res,
                Some(Err(e)) => {
                    console_error!("WHEP to {} failed: {e}", region.id);
                    continue;
                }
                None => {
                    console_error!("WHEP to {} timed out", region.id);
                    continue;
                }
            };
        let status = res.status_code();
        if status >= 500 && status != 503 {
            console_error!("WHEP at {} answered {status}", region.id);
            continue;
        }
        let mut pairs = vec![("cache-control".to_string(), "no-store".to_string())];
        for name in whep::RESPONSE_HEADERS {
            let Some(v) = res.headers().get(name)? else {
                continue;
            };
            let v = if *name == "location" {
                match whep::location(&v) {
                    Some(l) => l,
                    None => continue,
                }
            } else {
                v
            };
            pairs.push((name.to_string(), v));
        }
        let body = match read_response(&mut res, ANSWER_MAX_BYTES).await? {
            Ok(b) => b,
            Err(_) => {
                console_error!("WHEP at {}: answer too large", region.id);
                return plain(502, "bad answer from the origin\n");
            }
        };
        return response(status, &pairs, Some(body));
    }
    let res = plain(503, "try again\n")?;
    res.headers().set("retry-after", "2")?;
    Ok(res)
}
