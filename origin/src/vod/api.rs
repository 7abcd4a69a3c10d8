//! The asset API (`/api/v1/...`, the application's backend, bearer token)
//! and the public asset paths (`/vod/<id>/...`). Documented in
//! `docs/openapi/vod.yaml`.
//!
//! ```text
//! POST   /api/v1/uploads          a direct upload URL (and its asset, `waiting`)
//! POST   /api/v1/assets           an asset from a URL (`queued`; with `dedupe`, the live one of that URL)
//! GET    /api/v1/assets           assets, newest first
//! GET    /api/v1/assets/<id>      one asset: status, progress, duration, renditions, URLs
//! DELETE /api/v1/assets/<id>      removes every object, then the asset (202)
//! GET    /vod/<id>/status         status and progress only (public: the upload page polls it)
//! GET    /vod/<id>/<object>       the asset's objects, only while it is `ready`
//! ```

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::db::{Asset, Status};
use super::{asset_key, new_asset_id, upload_url, valid_asset_id, Vod};

/// The largest API request body.
pub const MAX_API_BODY: usize = 64 * 1024;

/// A JSON (or small text) answer.
#[derive(Debug)]
pub struct ApiReply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl ApiReply {
    fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        ApiReply {
            status,
            headers: vec![
                ("content-type", "application/json".into()),
                ("cache-control", "no-store".into()),
            ],
            body: Bytes::from(value.to_string()),
        }
    }

    fn error(status: StatusCode, msg: &str) -> Self {
        Self::json(status, &json!({ "error": msg }))
    }
}

/// The options a deduplicated asset must share with the request.
#[derive(Debug, Clone, PartialEq)]
struct DedupeOptions {
    passthrough: Option<String>,
    max_duration_s: u64,
    max_size_bytes: u64,
    poster_time_s: Option<f64>,
    scheme: Option<String>,
}

/// What `/vod/<id>/...` answers.
#[derive(Debug)]
pub enum VodAnswer {
    Reply(ApiReply),
    /// A stored object: the HTTP layer answers ranges and conditional
    /// requests over it.
    Object {
        data: Bytes,
        content_type: &'static str,
        cache_control: &'static str,
    },
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Manifests of a ready asset do not change, but a deleted asset must stop
/// playing within a minute.
const MANIFEST_CACHE: &str = "public, max-age=60";

fn content_type(name: &str) -> Option<(&'static str, &'static str)> {
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "m3u8" => ("application/vnd.apple.mpegurl", MANIFEST_CACHE),
        "mpd" => ("application/dash+xml", MANIFEST_CACHE),
        "mp4" => ("video/mp4", IMMUTABLE),
        "m4s" => ("video/iso.segment", IMMUTABLE),
        "jpg" => ("image/jpeg", IMMUTABLE),
        "vtt" => ("text/vtt", IMMUTABLE),
        _ => return None,
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct NewUpload {
    max_size_bytes: Option<u64>,
    max_duration_s: Option<u64>,
    expires_in_s: Option<u64>,
    passthrough: Option<String>,
    /// The poster's time, s; default: a representative frame.
    poster_time_s: Option<f64>,
    /// `"cbcs"`, `"cenc"` or `"none"`; default `vod.encryption`.
    encryption: Option<String>,
}

/// `POST /api/v1/assets`: an asset from a URL. The same options as an
/// upload request, but for `expires_in_s` (nothing waits for a browser).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAsset {
    /// http or https.
    input_url: String,
    /// Answer with the live asset already made from the same URL, if any.
    #[serde(default)]
    dedupe: bool,
    /// The largest file fetched; default and most `vod.import_max_bytes`.
    #[serde(default)]
    max_size_bytes: Option<u64>,
    #[serde(default)]
    max_duration_s: Option<u64>,
    #[serde(default)]
    passthrough: Option<String>,
    #[serde(default)]
    poster_time_s: Option<f64>,
    #[serde(default)]
    encryption: Option<String>,
}

fn now_ms() -> u64 {
    crate::serve::hub::unix_ms()
}

impl Vod {
    /// The base of the URLs the API returns.
    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.config.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(want) = self.config.api_token.as_deref() else {
            return false;
        };
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(brook_common::credentials::bearer)
            .is_some_and(|got| {
                brook_common::secret::constant_time_eq(got.as_bytes(), want.as_bytes())
            })
    }

    /// The asset as the API shows it.
    pub fn asset_json(&self, a: &Asset, base: &str) -> serde_json::Value {
        let mut v = json!({
            "id": a.id,
            "status": a.status,
            "progress": (a.progress * 10.0).round() / 10.0,
            "created_ms": a.created_ms,
            "updated_ms": a.updated_ms,
            "duration_s": a.duration_s,
            "error": a.error,
            "passthrough": a.passthrough,
            "input_url": a.input_url,
        });
        if let Some(e) = self.encryption_json(&a.id) {
            v["encryption"] = e;
        }
        if a.status == Status::Ready {
            let p = format!("{base}/vod/{}", a.id);
            v["playback"] = json!({
                "hls": format!("{p}/index.m3u8"),
                "dash": format!("{p}/manifest.mpd"),
                "poster": format!("{p}/poster.jpg"),
                "thumbnails_vtt": format!("{p}/{}", super::thumbnails::SPRITES_VTT),
            });
            if let Some(d) = &a.details {
                for k in ["renditions", "thumbnails", "source", "timings_ms"] {
                    if let Some(x) = d.get(k) {
                        v[k] = x.clone();
                    }
                }
            }
        }
        v
    }

    /// `/api/v1/...`.
    pub async fn api(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> ApiReply {
        if !self.authorized(headers) {
            let mut r = ApiReply::error(StatusCode::UNAUTHORIZED, "a valid API token is required");
            r.headers.push(("www-authenticate", "Bearer".into()));
            return r;
        }
        let base = self.base_url(headers);
        let rest = path.strip_prefix("/api/v1/").unwrap_or("");
        let result = match (method, rest) {
            (&Method::POST, "uploads") => self.create_upload(body, &base).await,
            (&Method::POST, "assets") => self.create_from_url(body, &base).await,
            (&Method::GET, "assets") => self
                .db
                .assets(1000)
                .map(|all| {
                    let list: Vec<_> = all.iter().map(|a| self.asset_json(a, &base)).collect();
                    ApiReply::json(StatusCode::OK, &json!({ "assets": list }))
                })
                .map_err(|e| e.to_string()),
            (m, r)
                if r.strip_prefix("assets/")
                    .and_then(|r| r.strip_suffix("/key/revoke"))
                    .is_some() =>
            {
                let id = r
                    .strip_prefix("assets/")
                    .and_then(|r| r.strip_suffix("/key/revoke"))
                    .unwrap_or_default();
                if !valid_asset_id(id) {
                    return ApiReply::error(StatusCode::NOT_FOUND, "no such asset");
                }
                if *m != Method::POST {
                    return method_not_allowed("POST");
                }
                match self.db.revoke_asset_key(id) {
                    Ok(true) => {
                        tracing::info!(asset = id, "asset content key revoked");
                        Ok(ApiReply::json(
                            StatusCode::OK,
                            &json!({ "id": id, "encryption": self.encryption_json(id) }),
                        ))
                    }
                    Ok(false) => Ok(ApiReply::error(
                        StatusCode::NOT_FOUND,
                        "no such asset, or it is not encrypted",
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
            (m, r) if r.starts_with("assets/") => {
                let id = &r["assets/".len()..];
                if !valid_asset_id(id) {
                    return ApiReply::error(StatusCode::NOT_FOUND, "no such asset");
                }
                match *m {
                    Method::GET => match self.db.asset(id) {
                        Ok(Some(a)) => {
                            Ok(ApiReply::json(StatusCode::OK, &self.asset_json(&a, &base)))
                        }
                        Ok(None) => Ok(ApiReply::error(StatusCode::NOT_FOUND, "no such asset")),
                        Err(e) => Err(e.to_string()),
                    },
                    Method::DELETE => match self.db.start_delete(id, now_ms()) {
                        Ok(true) => {
                            // An upload still in progress for it expires;
                            // completing it no longer queues anything.
                            Ok(ApiReply::json(
                                StatusCode::ACCEPTED,
                                &json!({ "id": id, "status": "deleting" }),
                            ))
                        }
                        Ok(false) => Ok(ApiReply::error(StatusCode::NOT_FOUND, "no such asset")),
                        Err(e) => Err(e.to_string()),
                    },
                    _ => Ok(method_not_allowed("GET, DELETE")),
                }
            }
            (&Method::GET, "recordings") => Ok(self.recordings(&base)),
            (m, r) if r.starts_with("recordings/") => {
                Ok(self.recording(m, &r["recordings/".len()..]).await)
            }
            (_, "recordings") => Ok(method_not_allowed("GET")),
            (_, "uploads") => Ok(method_not_allowed("POST")),
            (_, "assets") => Ok(method_not_allowed("GET, POST")),
            _ => Ok(ApiReply::error(StatusCode::NOT_FOUND, "no such API path")),
        };
        result.unwrap_or_else(|e| {
            tracing::error!("VOD API: {e}");
            ApiReply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
    }

    async fn create_upload(&self, body: &[u8], base: &str) -> Result<ApiReply, String> {
        let req: NewUpload = if body.iter().all(u8::is_ascii_whitespace) {
            NewUpload::default()
        } else {
            match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => {
                    return Ok(ApiReply::error(
                        StatusCode::BAD_REQUEST,
                        &format!("the request body is not an upload request: {e}"),
                    ))
                }
            }
        };
        let c = &self.config;
        let max_size = req.max_size_bytes.unwrap_or(c.max_upload_bytes);
        let max_duration = req.max_duration_s.unwrap_or(c.max_duration_s);
        let ttl = req.expires_in_s.unwrap_or(c.direct_upload_ttl_s);
        if max_size == 0 || max_size > c.max_upload_bytes {
            return Ok(ApiReply::error(
                StatusCode::BAD_REQUEST,
                &format!("max_size_bytes must be within 1..={}", c.max_upload_bytes),
            ));
        }
        if max_duration == 0 || max_duration > c.max_duration_s {
            return Ok(ApiReply::error(
                StatusCode::BAD_REQUEST,
                &format!("max_duration_s must be within 1..={}", c.max_duration_s),
            ));
        }
        if ttl == 0 || ttl > c.upload_expiry_s {
            return Ok(ApiReply::error(
                StatusCode::BAD_REQUEST,
                &format!("expires_in_s must be within 1..={}", c.upload_expiry_s),
            ));
        }
        if req
            .passthrough
            .as_ref()
            .is_some_and(|p| p.len() > upload_url::MAX_PASSTHROUGH)
        {
            return Ok(ApiReply::error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "passthrough is limited to {} bytes",
                    upload_url::MAX_PASSTHROUGH
                ),
            ));
        }
        if req.poster_time_s.is_some_and(|t| !t.is_finite() || t < 0.0) {
            return Ok(ApiReply::error(
                StatusCode::BAD_REQUEST,
                "poster_time_s must be a number of seconds >= 0",
            ));
        }
        let scheme = match self.requested_scheme(req.encryption.as_deref()) {
            Ok(s) => s,
            Err(e) => return Ok(ApiReply::error(StatusCode::BAD_REQUEST, &e)),
        };
        let id = new_asset_id();
        // The key before the asset (a provider may take seconds to answer),
        // stored with it before anyone can upload: an asset that asked for
        // encryption is never packaged in the clear.
        let key = match self.key_for(&id, scheme).await? {
            Ok(k) => k,
            Err(reply) => return Ok(reply),
        };
        let now = now_ms();
        let spec = upload_url::DirectUploadSpec {
            ttl_s: ttl,
            max_size,
            max_duration_s: Some(u32::try_from(max_duration).unwrap_or(u32::MAX)),
            passthrough: req.passthrough.clone(),
        };
        let direct = self
            .signer
            .issue(&spec, now / 1000)
            .map_err(|e| e.to_string())?;
        self.db
            .create_asset(
                &id,
                Status::Waiting,
                now,
                req.passthrough.as_deref(),
                Some(max_duration),
                Some(&direct.grant.id),
            )
            .map_err(|e| e.to_string())?;
        if let Some(key) = &key {
            if let Err(e) = self.store_key(&id, key, now) {
                let _ = self.db.remove_asset(&id);
                return Err(format!("storing the asset's key: {e}"));
            }
        }
        if let Some(t) = req.poster_time_s {
            self.db
                .set_details(&id, &json!({ "request": { "poster_time_s": t } }))
                .map_err(|e| e.to_string())?;
        }
        let url = direct.url(&format!("{base}{}", super::tus::PREFIX));
        let expires_s = direct.grant.expires_unix_s;
        Ok(ApiReply::json(
            StatusCode::CREATED,
            &json!({
                "id": id,
                "asset_id": id,
                "url": url,
                "expires_at_ms": expires_s * 1000,
                "max_size_bytes": max_size,
                "max_duration_s": max_duration,
                "encryption": scheme.map(|s| s.as_str()),
            }),
        ))
    }

    /// `POST /api/v1/assets`: an asset made from `input_url`, fetched by its
    /// process job. 201 and the asset; 200 and the live asset already made
    /// from the same URL with `dedupe`; 400 for a bad request or URL, 422
    /// for a URL whose host Brook does not fetch from (a private address,
    /// a name that does not resolve).
    async fn create_from_url(&self, body: &[u8], base: &str) -> Result<ApiReply, String> {
        let bad = |msg: &str| Ok(ApiReply::error(StatusCode::BAD_REQUEST, msg));
        let req: NewAsset = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                return bad(&format!(
                    "the request body is not an asset request (input_url is required): {e}"
                ))
            }
        };
        let c = &self.config;
        let limits = super::import::Limits::from_config(c);
        let max_size = req.max_size_bytes.unwrap_or(limits.max_bytes);
        let max_duration = req.max_duration_s.unwrap_or(c.max_duration_s);
        if max_size == 0 || max_size > limits.max_bytes {
            return bad(&format!(
                "max_size_bytes must be within 1..={}",
                limits.max_bytes
            ));
        }
        if max_duration == 0 || max_duration > c.max_duration_s {
            return bad(&format!(
                "max_duration_s must be within 1..={}",
                c.max_duration_s
            ));
        }
        if req
            .passthrough
            .as_ref()
            .is_some_and(|p| p.len() > upload_url::MAX_PASSTHROUGH)
        {
            return bad(&format!(
                "passthrough is limited to {} bytes",
                upload_url::MAX_PASSTHROUGH
            ));
        }
        if req.poster_time_s.is_some_and(|t| !t.is_finite() || t < 0.0) {
            return bad("poster_time_s must be a number of seconds >= 0");
        }
        let scheme = match self.requested_scheme(req.encryption.as_deref()) {
            Ok(s) => s,
            Err(e) => return bad(&e),
        };
        let imports = &self.metrics.vod_imports;
        let url = match super::import::check::parse_input_url(&req.input_url) {
            Ok(u) => u,
            Err(e) => {
                imports.request("refused");
                return bad(&e.to_string());
            }
        };
        if let Err(e) =
            super::import::precheck(&url, limits.allow_private, limits.connect_timeout).await
        {
            let status = if e.is_about_the_host() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            };
            imports.request("refused");
            return Ok(ApiReply::error(status, &e.to_string()));
        }
        let input_url = url.to_string();
        // What a deduplicated asset must have been asked with: the same
        // options, or the caller would get another caller's asset (say, in
        // the clear when it asked for encryption): 409 otherwise.
        let wanted = DedupeOptions {
            passthrough: req.passthrough.clone(),
            max_duration_s: max_duration,
            max_size_bytes: max_size,
            poster_time_s: req.poster_time_s,
            scheme: scheme.map(|s| s.as_str().to_owned()),
        };
        // The common case of a repeated request answers before a key is
        // made; `create_import` decides for good.
        if req.dedupe {
            if let Some(a) = self
                .db
                .live_asset_from_url(&input_url)
                .map_err(|e| e.to_string())?
            {
                return Ok(self.deduped(&a, &wanted, base));
            }
        }
        let id = new_asset_id();
        let key = match self.key_for(&id, scheme).await? {
            Ok(k) => k,
            Err(reply) => return Ok(reply),
        };
        let mut request = json!({ "max_size_bytes": max_size });
        if let Some(t) = req.poster_time_s {
            request["poster_time_s"] = json!(t);
        }
        let new = super::db::NewImport {
            id: id.clone(),
            input_url: input_url.clone(),
            dedupe: req.dedupe,
            passthrough: req.passthrough,
            max_duration_s: Some(max_duration),
            details: Some(json!({ "request": request })),
            key,
            payload: format!("{}{input_url}", super::SOURCE_AT_URL),
            now_ms: now_ms(),
        };
        match self.db.create_import(&new).map_err(|e| e.to_string())? {
            super::db::Imported::Created(a) => {
                imports.request("created");
                tracing::info!(asset = %a.id, dedupe = req.dedupe, "asset from a URL queued");
                Ok(ApiReply::json(
                    StatusCode::CREATED,
                    &self.asset_json(&a, base),
                ))
            }
            super::db::Imported::Existing(a) => Ok(self.deduped(&a, &wanted, base)),
        }
    }

    /// The new asset's content key, when `scheme` asks for one; the 502
    /// to answer when the DRM key provider fails.
    async fn key_for(
        &self,
        id: &str,
        scheme: Option<crate::keys::EncryptionScheme>,
    ) -> Result<Result<Option<super::db::AssetKey>, ApiReply>, String> {
        let Some(scheme) = scheme else {
            return Ok(Ok(None));
        };
        match self.make_key(id, scheme).await {
            Ok(k) => Ok(Ok(Some(k))),
            Err(super::keys::KeyFailure::Provider(e)) => {
                tracing::warn!(asset = %id, "DRM key provider: {e}");
                Ok(Err(ApiReply::error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the DRM key provider: {e}"),
                )))
            }
            Err(e) => Err(format!("making the asset's key: {e}")),
        }
    }

    /// The answer to a dedupe request that found `a`: it, or 409 when it
    /// was made with other options.
    fn deduped(&self, a: &Asset, wanted: &DedupeOptions, base: &str) -> ApiReply {
        let details = a.details.as_ref().and_then(|d| d.get("request"));
        let has = DedupeOptions {
            passthrough: a.passthrough.clone(),
            max_duration_s: a.max_duration_s.unwrap_or(0),
            max_size_bytes: details
                .and_then(|r| r.get("max_size_bytes"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
            poster_time_s: details
                .and_then(|r| r.get("poster_time_s"))
                .and_then(|v| v.as_f64()),
            scheme: self
                .encryption_json(&a.id)
                .and_then(|e| e.get("scheme").and_then(|s| s.as_str()).map(str::to_owned)),
        };
        // Once made, an asset keeps no record of its download's size
        // limit or poster time (the details become its renditions): those
        // are compared while they are known.
        let known = details.is_some();
        let same = has.passthrough == wanted.passthrough
            && has.max_duration_s == wanted.max_duration_s
            && has.scheme == wanted.scheme
            && (!known
                || (has.max_size_bytes == wanted.max_size_bytes
                    && has.poster_time_s == wanted.poster_time_s));
        if !same {
            self.metrics.vod_imports.request("conflict");
            let mut r = ApiReply::error(
                StatusCode::CONFLICT,
                "an asset from this URL exists with other options (passthrough, max_duration_s, \
                 max_size_bytes, poster_time_s or encryption); ask without dedupe, or with the same options",
            );
            r.headers
                .push(("location", format!("{base}/api/v1/assets/{}", a.id)));
            return r;
        }
        self.metrics.vod_imports.request("deduped");
        ApiReply::json(StatusCode::OK, &self.asset_json(a, base))
    }

    /// Live-to-VOD recordings: every archived session.
    fn recordings(&self, base: &str) -> ApiReply {
        let Some(archive) = &self.archive else {
            return ApiReply::json(StatusCode::OK, &json!({ "recordings": [] }));
        };
        let mut list = Vec::new();
        for (stream, sessions) in archive.sessions() {
            for (session, info) in sessions {
                list.push(json!({
                    "stream": stream,
                    "session": session,
                    "status": if info.ended { "ready" } else { "recording" },
                    "segments": info.segments,
                    "duration_s": (info.duration_secs * 1000.0).round() / 1000.0,
                    "playback": {
                        "hls": format!("{base}/live/{stream}/{session}/index.m3u8"),
                        "dash": format!("{base}/live/{stream}/{session}/manifest.mpd"),
                    },
                }));
            }
        }
        ApiReply::json(StatusCode::OK, &json!({ "recordings": list }))
    }

    /// `/api/v1/recordings/<stream>/<session>`: GET one, DELETE it (every
    /// object goes; a session still recording is refused, 409).
    async fn recording(&self, method: &Method, rest: &str) -> ApiReply {
        let not_found = || ApiReply::error(StatusCode::NOT_FOUND, "no such recording");
        let Some(archive) = &self.archive else {
            return not_found();
        };
        let Some((stream, session)) = rest.split_once('/') else {
            return not_found();
        };
        if !brook_common::valid_stream_name(stream) || !brook_common::valid_session_id(session) {
            return not_found();
        }
        match *method {
            Method::GET => match archive.session(stream, session) {
                Some(info) => ApiReply::json(
                    StatusCode::OK,
                    &json!({
                        "stream": stream,
                        "session": session,
                        "status": if info.ended { "ready" } else { "recording" },
                        "segments": info.segments,
                        "duration_s": (info.duration_secs * 1000.0).round() / 1000.0,
                    }),
                ),
                None => not_found(),
            },
            Method::DELETE => match archive.delete(stream, session).await {
                Ok(true) => ApiReply::json(
                    StatusCode::OK,
                    &json!({ "stream": stream, "session": session, "deleted": true }),
                ),
                Ok(false) => not_found(),
                Err(crate::store::storage::StorageError::BadKey(reason)) => {
                    ApiReply::error(StatusCode::CONFLICT, &reason)
                }
                Err(e) => {
                    tracing::error!("deleting a recording: {e}");
                    ApiReply::error(StatusCode::BAD_GATEWAY, "storage unavailable")
                }
            },
            _ => method_not_allowed("GET, DELETE"),
        }
    }

    /// `/vod/<id>/<name>`.
    pub async fn serve(&self, method: &Method, path: &str) -> VodAnswer {
        let not_found = || VodAnswer::Reply(ApiReply::error(StatusCode::NOT_FOUND, "not found"));
        if method != Method::GET && method != Method::HEAD {
            return VodAnswer::Reply(method_not_allowed("GET, HEAD, OPTIONS"));
        }
        let Ok(p) = brook_common::VodPath::parse(path) else {
            return not_found();
        };
        let asset = match self.db.asset(&p.asset) {
            Ok(Some(a)) => a,
            Ok(None) => return not_found(),
            Err(e) => {
                tracing::error!("VOD: {e}");
                return VodAnswer::Reply(ApiReply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                ));
            }
        };
        if p.name == "status" {
            let v = json!({
                "id": asset.id,
                "status": asset.status,
                "progress": (asset.progress * 10.0).round() / 10.0,
                "error": asset.error,
            });
            return VodAnswer::Reply(ApiReply::json(StatusCode::OK, &v));
        }
        // Nothing of an asset is served before every object it names is
        // stored, nor once its deletion started.
        if asset.status != Status::Ready {
            return not_found();
        }
        let Some((content_type, cache_control)) = content_type(&p.name) else {
            return not_found();
        };
        let Ok(key) = asset_key(&p.asset, &p.name) else {
            return not_found();
        };
        match self.storage.get(&key).await {
            Ok(Some(data)) => VodAnswer::Object {
                data,
                content_type,
                cache_control,
            },
            Ok(None) => not_found(),
            Err(e) => {
                tracing::error!("VOD: {e}");
                VodAnswer::Reply(ApiReply::error(
                    StatusCode::BAD_GATEWAY,
                    "storage unavailable",
                ))
            }
        }
    }
}

fn method_not_allowed(allow: &str) -> ApiReply {
    let mut r = ApiReply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers.push(("allow", allow.to_owned()));
    r
}
