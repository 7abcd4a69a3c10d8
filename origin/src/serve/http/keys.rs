//! `GET /keys/<stream>/<kid>`: the edge's authenticated channel to content
//! keys (`Authorization: Bearer <keys.fetch_token>`, compared in constant
//! time). `200 {"kid":"<hex>","key":"<hex>"}` with `no-store`; an unknown or
//! revoked KID, or another stream's, is a 404; a missing or wrong token a
//! 401 that does not say which. Never cached, never logged.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};

use super::{Reply, Request};
use crate::keys::{hex, kid_from_hex, KeyService};

/// The key endpoint: the service and the token the edge presents.
pub struct KeyEndpoint {
    pub keys: Arc<KeyService>,
    pub token: String,
}

impl std::fmt::Debug for KeyEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEndpoint").finish_non_exhaustive()
    }
}

impl KeyEndpoint {
    /// Answers a request under `/keys/`.
    pub fn handle(&self, req: &Request<'_>) -> Reply {
        if req.method != Method::GET {
            return Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "GET");
        }
        let given = req
            .header("authorization")
            .and_then(brook_common::credentials::bearer)
            .unwrap_or("");
        if !crate::constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            return Reply::text(StatusCode::UNAUTHORIZED, "unauthorized")
                .header("www-authenticate", "Bearer realm=\"brook keys\"");
        }
        let rest = req.path.strip_prefix("/keys/").unwrap_or("");
        let found = rest.split_once('/').and_then(|(stream, kid)| {
            let kid = kid_from_hex(kid)?;
            if !crate::valid_stream_name(stream) {
                return None;
            }
            Some((kid, self.keys.lookup(stream, &kid)?))
        });
        match found {
            Some((kid, key)) => {
                let body = format!(r#"{{"kid":"{}","key":"{}"}}"#, hex(&kid), hex(&key));
                Reply::new(StatusCode::OK, "application/json", Bytes::from(body))
                    .header("cache-control", "no-store")
            }
            None => Reply::text(StatusCode::NOT_FOUND, "not found"),
        }
    }
}
