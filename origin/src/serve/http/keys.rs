//! `GET /keys/<stream>/<kid>` and `GET /keys/asset/<asset id>/<kid>`: the
//! edge's authenticated channel to content keys of live streams and of
//! on-demand assets (`Authorization: Bearer <keys.fetch_token>`, compared in
//! constant time). `200 {"kid":"<hex>","key":"<hex>"}` with `no-store`; an
//! unknown or revoked KID, or another stream's or asset's, is a 404; a
//! missing or wrong token a 401 that does not say which. Never cached,
//! never logged.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};

use super::{Reply, Request};
use crate::keys::{hex, kid_from_hex, KeyService};

/// The key endpoint: the service and the token the edge presents.
pub struct KeyEndpoint {
    pub keys: Arc<KeyService>,
    pub token: String,
    /// On-demand assets' keys, when VOD is on.
    pub assets: Option<Arc<crate::vod::Vod>>,
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
        // `<stream>/<kid>` or `asset/<id>/<kid>` (a stream may be named
        // `asset`: two segments are always a stream's).
        let parts: Vec<&str> = rest.split('/').collect();
        let found = match parts.as_slice() {
            [stream, kid] => kid_from_hex(kid).and_then(|kid| {
                if !crate::valid_stream_name(stream) {
                    return None;
                }
                Some((kid, self.keys.lookup(stream, &kid)?))
            }),
            ["asset", asset, kid] => {
                let Some(kid) = kid_from_hex(kid).filter(|_| crate::vod::valid_asset_id(asset))
                else {
                    return Reply::text(StatusCode::NOT_FOUND, "not found");
                };
                // An origin without VOD, or that cannot tell now: not a
                // "no such key" (the edge tries another origin).
                let Some(vod) = &self.assets else {
                    return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "no on-demand keys here")
                        .header("retry-after", "2");
                };
                match vod.content_key(asset, &kid) {
                    Ok(found) => found.map(|key| (kid, key)),
                    Err(crate::vod::keys::Unavailable) => {
                        return Reply::text(StatusCode::SERVICE_UNAVAILABLE, "try again")
                            .header("retry-after", "2")
                    }
                }
            }
            _ => None,
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeysConfig, MasterKey};
    use http::HeaderMap;

    fn get(endpoint: &KeyEndpoint, path: &str, auth: Option<&str>, method: &Method) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert("authorization", a.parse().unwrap());
        }
        endpoint.handle(&Request {
            method,
            path,
            query: None,
            headers: &headers,
            peer: None,
        })
    }

    #[test]
    fn keys_only_with_the_token_per_stream_and_not_revoked() {
        let keys = Arc::new(
            KeyService::open(
                &KeysConfig::default(),
                MasterKey::from_hex(&"07".repeat(32)).unwrap(),
            )
            .unwrap(),
        );
        let k = keys.session_keys("cam1", 1).unwrap().remove(0);
        let e = KeyEndpoint {
            keys: keys.clone(),
            token: "fetch-token-0123456789".into(),
            assets: None,
        };
        let path = format!("/keys/cam1/{}", hex(&k.kid));
        let good = Some("Bearer fetch-token-0123456789");
        let r = get(&e, &path, good, &Method::GET);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.get("cache-control"), Some("no-store"));
        let body = String::from_utf8(r.bytes().to_vec()).unwrap();
        assert!(body.contains(&hex(&k.key)) && body.contains(&hex(&k.kid)));
        for auth in [None, Some("Bearer wrong"), Some("fetch-token-0123456789")] {
            assert_eq!(
                get(&e, &path, auth, &Method::GET).status,
                StatusCode::UNAUTHORIZED
            );
        }
        for p in [
            format!("/keys/cam2/{}", hex(&k.kid)),
            "/keys/cam1/".to_owned(),
            "/keys/cam1".to_owned(),
            "/keys/cam1/zz".to_owned(),
            format!("/keys/c%2Fm/{}", hex(&k.kid)),
            format!("/keys/cam1/{}/x", hex(&k.kid)),
        ] {
            assert_eq!(
                get(&e, &p, good, &Method::GET).status,
                StatusCode::NOT_FOUND,
                "{p}"
            );
        }
        assert_eq!(
            get(&e, &path, good, &Method::POST).status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        // A stream named `asset` is a stream: two segments.
        let a = keys.session_keys("asset", 1).unwrap().remove(0);
        let r = get(
            &e,
            &format!("/keys/asset/{}", hex(&a.kid)),
            good,
            &Method::GET,
        );
        assert_eq!(r.status, StatusCode::OK);
        // An asset's key on an origin without VOD: not "unknown" (another
        // origin may have it), and a malformed asset path is a 404.
        let asset_path = format!("/keys/asset/{}/{}", "0".repeat(32), hex(&a.kid));
        assert_eq!(
            get(&e, &asset_path, good, &Method::GET).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        for p in [
            format!("/keys/asset/{}/{}", "0".repeat(31), hex(&a.kid)),
            format!("/keys/asset/{}/zz", "0".repeat(32)),
            format!("/keys/asset/{}/{}/x", "0".repeat(32), hex(&a.kid)),
        ] {
            assert_eq!(
                get(&e, &p, good, &Method::GET).status,
                StatusCode::NOT_FOUND,
                "{p}"
            );
        }
        keys.revoke("cam1", &k.kid).unwrap();
        assert_eq!(
            get(&e, &path, good, &Method::GET).status,
            StatusCode::NOT_FOUND
        );
    }
}
