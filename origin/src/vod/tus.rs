//! tus 1.0.0 resumable uploads, server side (<https://tus.io/protocols/resumable-upload>):
//! core, creation, creation-with-upload, creation-defer-length, termination,
//! expiration and checksum (sha1). Request → reply, given the time, like the
//! WHIP endpoint; the request body is a [`BodySource`] read chunk by chunk
//! straight to disk, so a PATCH of any size is never held in memory.
//!
//! | Request | Answer |
//! |---|---|
//! | any but `OPTIONS` without `Tus-Resumable: 1.0.0` | `412` + `Tus-Version` |
//! | `OPTIONS` (plain or CORS preflight) | `204` + `Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm` |
//! | `POST /uploads/` + `Upload-Length` or `Upload-Defer-Length: 1`, `Upload-Metadata` | `201` + `Location: /uploads/<id>`, `Upload-Expires` |
//! | … not `authorized` and no `?direct=<token>` | `401` |
//! | … direct token tampered or malformed / expired / already used | `403` / `410` / `409` (`vod::upload_url`) |
//! | … both or neither length header, bad numbers, bad metadata | `400` |
//! | … length over `Tus-Max-Size` (or the direct upload's max size) | `413` |
//! | … with a body (`Content-Type: application/offset+octet-stream`) | as PATCH at offset 0; `201` + `Upload-Offset` |
//! | `HEAD /uploads/<id>` | `200` + `Upload-Offset`, `Upload-Length` (or `Upload-Defer-Length`), `Upload-Metadata`, `Upload-Expires`, `Cache-Control: no-store` |
//! | `PATCH /uploads/<id>` `application/offset+octet-stream`, `Upload-Offset` | `204` + `Upload-Offset` (+ [`TusReply::completed`] when the upload is complete) |
//! | … another content type / no or bad `Upload-Offset` / offset not the current one | `415` / `400` / `409` |
//! | … another PATCH or a DELETE of the same upload is running | `423 Locked` |
//! | … would go past `Upload-Length` | `413` (see below) |
//! | … `Upload-Checksum` of an unsupported algorithm / not matching the body | `400` / `460` (the body is discarded) |
//! | … the body breaks off (client gone) | what arrived is kept (`400`, nobody is listening) |
//! | `DELETE /uploads/<id>` | `204`, data removed; `423` while a PATCH runs |
//! | an unknown id / an expired upload not yet swept | `404` / `410` |
//! | `POST` with `X-HTTP-Method-Override` | the method it names |
//!
//! Every answer has `Tus-Resumable`, `Access-Control-Allow-Origin: *` and
//! `Access-Control-Expose-Headers` naming the tus headers (tus-js-client
//! reads `Location`, `Upload-Offset`, … cross-origin).
//!
//! **Who may create.** The upload id (128 random bits) is the capability for
//! HEAD/PATCH/DELETE, as in tusd. Creation needs either
//! [`TusRequest::authorized`] (the HTTP layer checked the API token) or a
//! direct upload URL, `POST /uploads/?direct=<token>` (`vod::upload_url`): the
//! grant's max size caps the upload, and its id may create one upload only,
//! ever (a marker file `<dir>/direct/<id>` created with `create_new`, so
//! restarts do not reopen it; markers are swept once the token has expired).
//! The grant comes back in [`CompletedUpload::direct`].
//!
//! **Past `Upload-Length`.** A PATCH whose `Content-Length` would pass it is
//! refused (`413`) before a byte is read. A body without a length that turns
//! out longer is refused when the excess arrives: `413`, and the bytes of that
//! PATCH not yet committed are dropped (a client sending more than it declared
//! is confused about its file), so the client's next HEAD shows where to go on.
//!
//! **Durability.** `<dir>/<id>` holds the data, `<dir>/<id>.info` the state
//! (JSON, written to a temporary file, fsynced, renamed). The offset in the
//! info file is the committed one: data is fsynced before the offset that
//! covers it is written. A PATCH commits when its body ends, when it breaks
//! off (client disconnect: the `BodySource` errors) and every
//! [`COMMIT_EVERY`] bytes, so an origin crash mid-PATCH loses at most that
//! much; on [`TusStore::open`] data past the committed offset is cut off. A
//! PATCH with `Upload-Checksum` commits only once the whole body matched, and
//! not at all otherwise (offset unchanged). If the caller drops the `handle`
//! future mid-body, the writer still commits what it wrote (in its `Drop`,
//! blocking briefly) and then frees the upload.
//!
//! **Expiry.** An unfinished upload expires `expiry_s` after its creation or
//! last write (`Upload-Expires`): `410` until [`TusStore::sweep`] removes it,
//! `404` after. A complete upload does not expire: it waits for
//! [`TusStore::take`] (listed by [`TusStore::completed`], after a restart too).
//!
//! Driving it:
//! ```text
//! let store = TusStore::open(config, Some(signer))?;      // at start-up
//! let reply = store.handle(TusRequest { .. }, now_unix_s).await;  // per request
//! if let Some(done) = reply.completed { /* start a job for done.id */ }
//! store.take(&done.id, &dest)?;                            // the job takes the file
//! store.sweep(now_unix_s);                                 // every minute or so
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tracing::{info, warn};

use super::upload_url::{self, DirectGrant, TokenError, UploadUrlSigner};

/// Where the upload collection is mounted; uploads are `PREFIX<id>`.
pub const PREFIX: &str = "/uploads/";
/// The one protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions supported (`Tus-Extension`).
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
/// `Tus-Checksum-Algorithm`.
pub const CHECKSUM_ALGORITHMS: &str = "sha1";
/// Response headers a page on another origin may read.
pub const EXPOSE_HEADERS: &str =
    "location, brook-asset-id, upload-offset, upload-length, upload-defer-length, \
     upload-metadata, upload-expires, tus-resumable, tus-version, tus-extension, tus-max-size, \
     tus-checksum-algorithm, content-type";
/// Request headers a preflight allows when it does not name its own.
const ALLOW_HEADERS: &str = "tus-resumable, upload-length, upload-defer-length, upload-metadata, \
     upload-offset, upload-checksum, upload-concat, content-type, x-http-method-override, \
     x-requested-with";
const METHODS: &str = "POST, HEAD, PATCH, DELETE, OPTIONS";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
const TEXT: &str = "text/plain; charset=utf-8";
/// A PATCH without a checksum commits (fsync data, write the offset) after
/// this many bytes: what an origin crash mid-PATCH may lose.
pub const COMMIT_EVERY: u64 = 8 << 20;
/// The longest `Upload-Metadata` accepted, in bytes.
const MAX_METADATA_LEN: usize = 8 << 10;
/// 460 Checksum Mismatch (tus checksum extension).
const CHECKSUM_MISMATCH: u16 = 460;

/// The upload store's settings (`[vod.tus]`-style section; the caller
/// flattens it into its config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TusConfig {
    /// Directory of the uploads (data, state, direct upload markers); created
    /// if missing. Default: `uploads`.
    pub dir: PathBuf,
    /// The largest upload, in bytes (`Tus-Max-Size`). Default: 16 GiB.
    pub max_size: u64,
    /// An unfinished upload expires this long after its creation or last
    /// write, in s. Default: 86400 (one day).
    pub expiry_s: u64,
}

impl Default for TusConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("uploads"),
            max_size: 16 << 30,
            expiry_s: 86_400,
        }
    }
}

/// A request body, read chunk by chunk.
#[async_trait]
pub trait BodySource: Send {
    /// The next chunk; `Ok(None)` at the end of the body; `Err` when it broke
    /// off (client gone, read timeout): what was read before is kept.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String>;
}

/// No body (HEAD, DELETE, OPTIONS, a creation POST without data).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyBody;

#[async_trait]
impl BodySource for EmptyBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
        Ok(None)
    }
}

/// A request as the tus endpoint needs it.
pub struct TusRequest<'a> {
    pub method: &'a Method,
    /// The path, starting with [`PREFIX`] (or `/uploads`), without the query.
    pub path: &'a str,
    /// The query string, without `?` (carries `direct=<token>`).
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The HTTP layer checked the API token: creation without a direct
    /// upload URL is allowed.
    pub authorized: bool,
    /// The body; read only by PATCH and a creation POST with data.
    pub body: &'a mut dyn BodySource,
}

impl TusRequest<'_> {
    fn header(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.headers.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| ()),
        }
    }

    fn content_type(&self) -> Option<String> {
        self.header("content-type").ok().flatten().map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    fn checksum(&self) -> Result<Option<[u8; 20]>, Refusal> {
        match self.header("upload-checksum") {
            Ok(None) => Ok(None),
            Ok(Some(v)) => parse_checksum(v)
                .map(Some)
                .map_err(|e| Refusal(StatusCode::BAD_REQUEST, e)),
            Err(()) => Err(Refusal(StatusCode::BAD_REQUEST, "bad Upload-Checksum")),
        }
    }

    fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .ok()
            .flatten()
            .and_then(parse_u64)
    }
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusReply {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// Set when this request completed an upload (a PATCH, or a creation with
    /// all the data or of length 0): start its job. Only once per upload;
    /// [`TusStore::completed`] lists those not yet taken.
    pub completed: Option<CompletedUpload>,
}

impl TusReply {
    fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            completed: None,
        }
    }

    fn text(status: StatusCode, msg: impl std::fmt::Display) -> Self {
        let mut r = Self::new(status);
        r.headers.push(("content-type", TEXT.into()));
        r.body = Bytes::from(format!("{msg}\n"));
        r
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A refusal before anything happened: status and text.
#[derive(Debug, Clone, Copy)]
struct Refusal(StatusCode, &'static str);

impl From<Refusal> for TusReply {
    fn from(Refusal(status, text): Refusal) -> Self {
        TusReply::text(status, text)
    }
}

/// Decoded `Upload-Metadata`: key → value (`None`: a key without value).
/// Values must be UTF-8 text (a Brook restriction; tus allows bytes).
pub type Metadata = BTreeMap<String, Option<String>>;

/// A complete upload, for the job system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    pub id: String,
    /// Its size, in bytes.
    pub length: u64,
    pub metadata: Metadata,
    /// The direct upload it was created with (max duration, passthrough).
    pub direct: Option<DirectGrant>,
    /// The data, in the store until [`TusStore::take`] moves it.
    pub path: PathBuf,
}

/// Why [`TusStore::take`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TakeError {
    #[error("no upload {0}")]
    Unknown(String),
    #[error("upload {0} is not complete")]
    Incomplete(String),
    #[error("moving upload {id}: {source}")]
    Io { id: String, source: io::Error },
}

/// The state of one upload, as `<id>.info` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Info {
    id: String,
    /// `None`: deferred (creation-defer-length), set by a later PATCH.
    length: Option<u64>,
    /// Bytes committed (fsynced).
    offset: u64,
    /// This upload's limit: the store's, or the direct upload's if lower.
    max_size: u64,
    metadata: Metadata,
    /// When it expires if still unfinished, unix s.
    expires_unix_s: u64,
    direct: Option<DirectGrant>,
}

impl Info {
    fn complete(&self) -> bool {
        self.length == Some(self.offset)
    }

    fn expired(&self, now_unix_s: u64) -> bool {
        !self.complete() && now_unix_s >= self.expires_unix_s
    }
}

struct Entry {
    info: Info,
    /// A PATCH (or the creation writing its body) owns it.
    busy: bool,
}

struct Inner {
    config: TusConfig,
    signer: Option<UploadUrlSigner>,
    uploads: Mutex<HashMap<String, Entry>>,
}

/// The uploads on disk, and the tus endpoint over them. Cheap to clone.
#[derive(Clone)]
pub struct TusStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl TusStore {
    /// Opens (creating it if needed) the upload directory and reloads the
    /// uploads in it, cutting data past each committed offset. `signer`:
    /// the key of direct upload URLs (`None`: they are all refused, 403).
    /// Blocking; call it at start-up. One store per directory: two (or two
    /// processes) over the same one would cut each other's data.
    pub fn open(config: TusConfig, signer: Option<UploadUrlSigner>) -> io::Result<Self> {
        let dir = config.dir.clone();
        fs::create_dir_all(dir.join("direct"))?;
        let mut uploads = HashMap::new();
        let mut data_files = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            } else if let Some(id) = name.strip_suffix(".info").filter(|id| valid_id(id)) {
                match load(&dir, id) {
                    Ok(Some(info)) => {
                        uploads.insert(id.to_owned(), Entry { info, busy: false });
                    }
                    Ok(None) => {}
                    Err(e) => warn!(upload = %id, "tus upload not reloaded: {e}"),
                }
            } else if valid_id(name) {
                data_files.push(name.to_owned());
            }
        }
        // Data without state: a creation cut short before its info was written.
        for id in data_files.iter().filter(|id| !uploads.contains_key(*id)) {
            let _ = fs::remove_file(dir.join(id));
        }
        info!(dir = %dir.display(), uploads = uploads.len(), "tus upload store opened");
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                signer,
                uploads: Mutex::new(uploads),
            }),
        })
    }

    pub fn config(&self) -> &TusConfig {
        &self.inner.config
    }

    /// Answers one request under [`PREFIX`]. `now_unix_s`: the wall clock, s.
    /// Drive the future to its end: a client that goes away should show up
    /// as an `Err` from the body source (then what arrived is committed).
    pub async fn handle(&self, req: TusRequest<'_>, now_unix_s: u64) -> TusReply {
        let head = *req.method == Method::HEAD;
        let mut reply = self.route(req, now_unix_s).await;
        if head {
            reply.body = Bytes::new();
        }
        reply.headers.push(("tus-resumable", TUS_VERSION.into()));
        reply
            .headers
            .push(("access-control-allow-origin", "*".into()));
        reply
            .headers
            .push(("access-control-expose-headers", EXPOSE_HEADERS.into()));
        if !reply.headers.iter().any(|(k, _)| *k == "cache-control") {
            reply.headers.push(("cache-control", "no-store".into()));
        }
        reply
    }

    async fn route(&self, req: TusRequest<'_>, now: u64) -> TusReply {
        let Some(rest) = req
            .path
            .strip_prefix(PREFIX)
            .or_else(|| (req.path == "/uploads").then_some(""))
        else {
            return TusReply::text(StatusCode::NOT_FOUND, "not found");
        };
        let id = (!rest.is_empty()).then_some(rest);
        if id.is_some_and(|id| !valid_id(id)) {
            return TusReply::text(StatusCode::NOT_FOUND, "no such upload");
        }
        let mut method = req.method.clone();
        if method == Method::POST {
            match req.header("x-http-method-override") {
                Ok(None) => {}
                Ok(Some(m)) => match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => method = m,
                    Err(_) => {
                        return TusReply::text(
                            StatusCode::BAD_REQUEST,
                            "bad X-HTTP-Method-Override",
                        )
                    }
                },
                Err(()) => {
                    return TusReply::text(StatusCode::BAD_REQUEST, "bad X-HTTP-Method-Override")
                }
            }
        }
        if method == Method::OPTIONS {
            return self.options(&req);
        }
        if req.header("tus-resumable") != Ok(Some(TUS_VERSION)) {
            return TusReply::text(
                StatusCode::PRECONDITION_FAILED,
                "Tus-Resumable: 1.0.0 is the version spoken",
            )
            .header("tus-version", TUS_VERSION);
        }
        match (id, method) {
            (None, Method::POST) => self.create(req, now).await,
            (Some(id), Method::HEAD) => self.head(id, now),
            (Some(id), Method::PATCH) => self.patch(id, req, now).await,
            (Some(id), Method::DELETE) => self.delete(id, now),
            (None, _) => TusReply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "POST, OPTIONS"),
            (Some(_), _) => TusReply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .header("allow", "HEAD, PATCH, DELETE, OPTIONS"),
        }
    }

    fn options(&self, req: &TusRequest<'_>) -> TusReply {
        let mut r = TusReply::new(StatusCode::NO_CONTENT)
            .header("tus-version", TUS_VERSION)
            .header("tus-extension", EXTENSIONS)
            .header("tus-max-size", self.inner.config.max_size.to_string())
            .header("tus-checksum-algorithm", CHECKSUM_ALGORITHMS);
        if let Ok(Some(_)) = req.header("access-control-request-method") {
            let requested = req
                .header("access-control-request-headers")
                .ok()
                .flatten()
                .unwrap_or(ALLOW_HEADERS);
            // Allow-origin and expose-headers are added to every answer (with
            // the tus list, not the common one).
            r.headers.extend(
                brook_common::cors::preflight_headers(METHODS, Some(requested))
                    .into_iter()
                    .filter(|(k, _)| {
                        *k != "access-control-allow-origin" && *k != "access-control-expose-headers"
                    }),
            );
        }
        r
    }

    async fn create(&self, req: TusRequest<'_>, now: u64) -> TusReply {
        // Who: the API token, or a direct upload URL.
        let token = req.query.and_then(upload_url::token_from_query);
        let grant = match token {
            Some(token) => {
                let verified = match &self.inner.signer {
                    Some(signer) => signer.verify(token, now),
                    None => Err(TokenError::BadSignature),
                };
                match verified {
                    Ok(g) => Some(g),
                    Err(e) => return TusReply::text(e.status(), e),
                }
            }
            None if req.authorized => None,
            None => {
                return TusReply::text(
                    StatusCode::UNAUTHORIZED,
                    "creating an upload needs the API token or a direct upload URL",
                )
            }
        };
        let (Ok(length), Ok(defer)) = (
            req.header("upload-length"),
            req.header("upload-defer-length"),
        ) else {
            return TusReply::text(StatusCode::BAD_REQUEST, "bad Upload-Length");
        };
        let length = match (length, defer) {
            (Some(l), None) => match parse_u64(l) {
                Some(l) => Some(l),
                None => return TusReply::text(StatusCode::BAD_REQUEST, "bad Upload-Length"),
            },
            (None, Some("1")) => None,
            (None, Some(_)) => {
                return TusReply::text(StatusCode::BAD_REQUEST, "Upload-Defer-Length must be 1")
            }
            _ => {
                return TusReply::text(
                    StatusCode::BAD_REQUEST,
                    "one of Upload-Length or Upload-Defer-Length is needed",
                )
            }
        };
        let max_size = grant.as_ref().map_or(self.inner.config.max_size, |g| {
            g.max_size.min(self.inner.config.max_size)
        });
        if length.is_some_and(|l| l > max_size) {
            return TusReply::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("uploads are at most {max_size} bytes"),
            );
        }
        let metadata = match req.header("upload-metadata") {
            Ok(None) => Metadata::new(),
            Ok(Some(v)) => match parse_metadata(v) {
                Ok(m) => m,
                Err(e) => {
                    return TusReply::text(StatusCode::BAD_REQUEST, format!("Upload-Metadata: {e}"))
                }
            },
            Err(()) => return TusReply::text(StatusCode::BAD_REQUEST, "bad Upload-Metadata"),
        };
        let with_data = match req.content_type() {
            Some(ct) if ct == OFFSET_OCTET_STREAM => true,
            Some(_) if req.content_length().is_some_and(|l| l > 0) => {
                return TusReply::text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "upload data is Content-Type: application/offset+octet-stream",
                )
            }
            _ => false,
        };
        let checksum = match req.checksum() {
            Ok(c) if with_data => c,
            Ok(_) => None,
            Err(r) => return r.into(),
        };
        if with_data
            && req
                .content_length()
                .is_some_and(|l| l > length.unwrap_or(max_size))
        {
            return TusReply::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body goes past Upload-Length",
            );
        }
        let Some(id) = new_id() else {
            return TusReply::text(StatusCode::SERVICE_UNAVAILABLE, "no randomness for an id");
        };
        let info = Info {
            id: id.clone(),
            length,
            offset: 0,
            max_size,
            metadata,
            expires_unix_s: now.saturating_add(self.inner.config.expiry_s),
            direct: grant,
        };
        let dir = self.inner.config.dir.clone();
        let created = {
            let info = info.clone();
            blocking(move || create_files(&dir, &info)).await
        };
        match created {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return TusReply::text(TokenError::AlreadyUsed.status(), TokenError::AlreadyUsed)
            }
            Err(e) => {
                warn!(upload = %id, "tus upload not created: {e}");
                return TusReply::text(StatusCode::INTERNAL_SERVER_ERROR, "upload not created");
            }
        }
        info!(
            upload = %id,
            length = ?length,
            direct = ?info.direct.as_ref().map(|g| &g.id),
            "tus upload created"
        );
        let complete = info.complete();
        self.uploads().insert(
            id.clone(),
            Entry {
                info: info.clone(),
                busy: with_data,
            },
        );
        let mut r = TusReply::new(StatusCode::CREATED).header("location", format!("{PREFIX}{id}"));
        if with_data {
            let mut writer = match Writer::open(self.inner.clone(), info, now).await {
                Ok(w) => w,
                Err(e) => {
                    warn!(upload = %id, "tus upload data not opened: {e}");
                    self.release(&id);
                    return r.header("upload-offset", "0");
                }
            };
            writer.checksum = checksum.map(|expected| (Sha1::new(), expected));
            let (patched, info) = write_body(writer, req.body).await;
            r = r.header("upload-offset", info.offset.to_string());
            r.completed = patched.completed;
            return with_expiry(r, &info);
        }
        if complete {
            r.completed = Some(self.completed_upload(&info));
        }
        with_expiry(r, &info)
    }

    fn head(&self, id: &str, now: u64) -> TusReply {
        let info = match self.live(id, now) {
            Ok(info) => info,
            Err(r) => return r.into(),
        };
        let mut r = TusReply::new(StatusCode::OK)
            .header("upload-offset", info.offset.to_string())
            .header("cache-control", "no-store");
        r = match info.length {
            Some(l) => r.header("upload-length", l.to_string()),
            None => r.header("upload-defer-length", "1"),
        };
        if !info.metadata.is_empty() {
            r = r.header("upload-metadata", render_metadata(&info.metadata));
        }
        with_expiry(r, &info)
    }

    async fn patch(&self, id: &str, req: TusRequest<'_>, now: u64) -> TusReply {
        if let Err(r) = self.live(id, now) {
            return r.into();
        }
        if req.content_type().as_deref() != Some(OFFSET_OCTET_STREAM) {
            return TusReply::text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "PATCH is Content-Type: application/offset+octet-stream",
            );
        }
        let Some(offset) = req
            .header("upload-offset")
            .ok()
            .flatten()
            .and_then(parse_u64)
        else {
            return TusReply::text(StatusCode::BAD_REQUEST, "a good Upload-Offset is needed");
        };
        let checksum = match req.checksum() {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        let new_length = match req.header("upload-length") {
            Ok(None) => None,
            Ok(Some(l)) => match parse_u64(l) {
                Some(l) => Some(l),
                None => return TusReply::text(StatusCode::BAD_REQUEST, "bad Upload-Length"),
            },
            Err(()) => return TusReply::text(StatusCode::BAD_REQUEST, "bad Upload-Length"),
        };
        // Checks and the claim under one lock: two PATCHes cannot both pass.
        let info = {
            let mut uploads = self.uploads();
            let Some(entry) = uploads.get_mut(id) else {
                return TusReply::text(StatusCode::NOT_FOUND, "no such upload");
            };
            if entry.busy {
                return TusReply::text(
                    StatusCode::LOCKED,
                    "another request is writing this upload",
                );
            }
            let info = &entry.info;
            if offset != info.offset {
                return TusReply::text(
                    StatusCode::CONFLICT,
                    format!("Upload-Offset is {}", info.offset),
                )
                .header("upload-offset", info.offset.to_string());
            }
            let mut info = info.clone();
            match (info.length, new_length) {
                (_, None) => {}
                (Some(l), Some(n)) if l == n => {}
                (Some(_), Some(_)) => {
                    return TusReply::text(StatusCode::BAD_REQUEST, "Upload-Length cannot change")
                }
                (None, Some(n)) if n > info.max_size => {
                    return TusReply::text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("uploads are at most {} bytes", info.max_size),
                    )
                }
                (None, Some(n)) if n < info.offset => {
                    return TusReply::text(
                        StatusCode::BAD_REQUEST,
                        "Upload-Length is below Upload-Offset",
                    )
                }
                (None, Some(n)) => info.length = Some(n),
            }
            let limit = info.length.unwrap_or(info.max_size);
            if req
                .content_length()
                .is_some_and(|l| offset.saturating_add(l) > limit)
            {
                return TusReply::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body goes past Upload-Length",
                )
                .header("upload-offset", info.offset.to_string());
            }
            entry.busy = true;
            info
        };
        let mut writer = match Writer::open(self.inner.clone(), info, now).await {
            Ok(w) => w,
            Err(e) => {
                warn!(upload = %id, "tus upload data not opened: {e}");
                self.release(id);
                return TusReply::text(StatusCode::INTERNAL_SERVER_ERROR, "upload not writable");
            }
        };
        writer.checksum = checksum.map(|expected| (Sha1::new(), expected));
        let (r, info) = write_body(writer, req.body).await;
        let r = r.header("upload-offset", info.offset.to_string());
        with_expiry(r, &info)
    }

    fn delete(&self, id: &str, now: u64) -> TusReply {
        if let Err(r) = self.live(id, now) {
            return r.into();
        }
        {
            let mut uploads = self.uploads();
            match uploads.get(id) {
                None => return TusReply::text(StatusCode::NOT_FOUND, "no such upload"),
                Some(e) if e.busy => {
                    return TusReply::text(
                        StatusCode::LOCKED,
                        "another request is writing this upload",
                    )
                }
                Some(_) => {
                    uploads.remove(id);
                }
            }
        }
        remove_files(&self.inner.config.dir, id);
        info!(upload = %id, "tus upload terminated");
        TusReply::new(StatusCode::NO_CONTENT)
    }

    /// The upload's state if it exists and has not expired; an expired one is
    /// removed (unless a request is writing it) and answered 410.
    fn live(&self, id: &str, now: u64) -> Result<Info, Refusal> {
        let mut uploads = self.uploads();
        let Some(entry) = uploads.get(id) else {
            return Err(Refusal(StatusCode::NOT_FOUND, "no such upload"));
        };
        if entry.info.expired(now) && !entry.busy {
            uploads.remove(id);
            drop(uploads);
            remove_files(&self.inner.config.dir, id);
            info!(upload = %id, "tus upload expired");
            return Err(Refusal(StatusCode::GONE, "the upload has expired"));
        }
        Ok(entry.info.clone())
    }

    /// Complete uploads not yet taken (after a restart too): jobs to start.
    pub fn completed(&self) -> Vec<CompletedUpload> {
        let uploads = self.uploads();
        let mut out: Vec<_> = uploads
            .values()
            .filter(|e| e.info.complete() && !e.busy)
            .map(|e| self.completed_upload(&e.info))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Moves complete upload `id`'s data to `dest` (a rename; a copy when
    /// `dest` is on another file system) and forgets the upload (its id is
    /// 404 from then on). Blocking: a copy may take a while.
    pub fn take(&self, id: &str, dest: &Path) -> Result<CompletedUpload, TakeError> {
        let info = {
            let mut uploads = self.uploads();
            match uploads.get(id) {
                None => return Err(TakeError::Unknown(id.to_owned())),
                Some(e) if !e.info.complete() || e.busy => {
                    return Err(TakeError::Incomplete(id.to_owned()))
                }
                Some(_) => {}
            }
            uploads.remove(id).map(|e| e.info)
        };
        let Some(info) = info else {
            return Err(TakeError::Unknown(id.to_owned()));
        };
        let dir = &self.inner.config.dir;
        let src = dir.join(id);
        let moved = fs::rename(&src, dest).or_else(|e| {
            if e.kind() == io::ErrorKind::CrossesDevices {
                fs::copy(&src, dest)
                    .and_then(|_| File::open(dest)?.sync_all())
                    .and_then(|()| fs::remove_file(&src))
            } else {
                Err(e)
            }
        });
        if let Err(source) = moved {
            // Still ours: put it back so it can be taken again.
            self.uploads()
                .insert(id.to_owned(), Entry { info, busy: false });
            return Err(TakeError::Io {
                id: id.to_owned(),
                source,
            });
        }
        let _ = fs::remove_file(dir.join(format!("{id}.info")));
        let _ = sync_dir(dir);
        info!(upload = %id, dest = %dest.display(), "tus upload taken");
        let mut done = self.completed_upload(&info);
        done.path = dest.to_owned();
        Ok(done)
    }

    /// Removes the unfinished uploads expired at `now_unix_s` (not those a
    /// request is writing) and the direct upload markers whose token has
    /// expired. Returns how many uploads went. Blocking (file removals).
    pub fn sweep(&self, now_unix_s: u64) -> usize {
        let expired: Vec<String> = {
            let mut uploads = self.uploads();
            let ids: Vec<String> = uploads
                .iter()
                .filter(|(_, e)| !e.busy && e.info.expired(now_unix_s))
                .map(|(id, _)| id.clone())
                .collect();
            for id in &ids {
                uploads.remove(id);
            }
            ids
        };
        let dir = &self.inner.config.dir;
        for id in &expired {
            remove_files(dir, id);
            info!(upload = %id, "tus upload expired");
        }
        if let Ok(markers) = fs::read_dir(dir.join("direct")) {
            for m in markers.flatten() {
                let stale = fs::read_to_string(m.path())
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .is_none_or(|expires| now_unix_s >= expires);
                if stale {
                    let _ = fs::remove_file(m.path());
                }
            }
        }
        expired.len()
    }

    fn completed_upload(&self, info: &Info) -> CompletedUpload {
        CompletedUpload {
            id: info.id.clone(),
            length: info.offset,
            metadata: info.metadata.clone(),
            direct: info.direct.clone(),
            path: self.inner.config.dir.join(&info.id),
        }
    }

    fn uploads(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.uploads()
    }

    fn release(&self, id: &str) {
        if let Some(e) = self.uploads().get_mut(id) {
            e.busy = false;
        }
    }
}

impl Inner {
    fn uploads(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `offset` (and `length`) durable and current. The data up to
    /// `offset` must be synced already.
    fn commit(&self, id: &str, offset: u64, length: Option<u64>, now: u64) -> io::Result<Info> {
        let mut info = {
            let uploads = self.uploads();
            let entry = uploads
                .get(id)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "upload gone"))?;
            entry.info.clone()
        };
        let moved = info.offset != offset || info.length != length;
        info.offset = offset;
        info.length = length;
        if moved {
            info.expires_unix_s = now.saturating_add(self.config.expiry_s);
        }
        write_info(&self.config.dir, &info)?;
        if let Some(entry) = self.uploads().get_mut(id) {
            entry.info = info.clone();
        }
        Ok(info)
    }
}

/// The one writer of an upload's data while a PATCH runs. Dropping it commits
/// what was written (or, with a checksum pending, discards it) and frees the
/// upload.
struct Writer {
    inner: Arc<Inner>,
    id: String,
    file: File,
    /// The length to commit (deferred one set by this PATCH).
    length: Option<u64>,
    /// The most this PATCH may reach.
    limit: u64,
    /// Committed offset.
    committed: u64,
    /// End of what was written.
    pos: u64,
    /// sha1 of this PATCH's body, and the expected digest.
    checksum: Option<(Sha1, [u8; 20])>,
    now: u64,
    /// Committed or discarded explicitly: `Drop` only frees the upload.
    settled: bool,
}

impl Writer {
    /// The writer of `info`'s upload, which the caller marked busy (freed
    /// again when this fails).
    async fn open(inner: Arc<Inner>, info: Info, now: u64) -> io::Result<Box<Self>> {
        let path = inner.config.dir.join(&info.id);
        let file = blocking(move || {
            let mut file = OpenOptions::new().write(true).open(path)?;
            // Whatever lies past the committed offset was never acknowledged.
            file.set_len(info.offset)?;
            file.seek(SeekFrom::Start(info.offset))?;
            Ok((file, info))
        })
        .await;
        let (file, info) = file?;
        Ok(Box::new(Self {
            id: info.id.clone(),
            file,
            length: info.length,
            limit: info.length.unwrap_or(info.max_size),
            committed: info.offset,
            pos: info.offset,
            checksum: None,
            now,
            settled: false,
            inner,
        }))
    }

    /// Writes `chunk`; `Ok(false)` (nothing written) when it would pass the limit.
    fn write(&mut self, chunk: &[u8]) -> io::Result<bool> {
        let len = chunk.len() as u64;
        if self.pos.saturating_add(len) > self.limit {
            return Ok(false);
        }
        self.file.write_all(chunk)?;
        self.pos += len;
        match &mut self.checksum {
            Some((h, _)) => h.update(chunk),
            None if self.pos - self.committed >= COMMIT_EVERY => {
                self.commit()?;
            }
            None => {}
        }
        Ok(true)
    }

    fn commit(&mut self) -> io::Result<Info> {
        self.file.sync_data()?;
        let info = self
            .inner
            .commit(&self.id, self.pos, self.length, self.now)?;
        self.committed = self.pos;
        Ok(info)
    }

    fn discard(&mut self) -> io::Result<()> {
        self.pos = self.committed;
        self.file.set_len(self.committed)?;
        self.file.seek(SeekFrom::Start(self.committed))?;
        Ok(())
    }

    /// Commits what was written, or discards it when a checksum was pending.
    fn settle_interrupted(&mut self) {
        self.settled = true;
        let done = if self.checksum.is_some() {
            self.discard()
        } else {
            self.commit().map(|_| ())
        };
        if let Err(e) = done {
            warn!(upload = %self.id, "tus upload not committed: {e}");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.settled {
            self.settle_interrupted();
        }
        if let Some(e) = self.inner.uploads().get_mut(&self.id) {
            e.busy = false;
        }
    }
}

/// Runs file IO `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// Streams the body through `writer`; the answer (without `Upload-Offset`)
/// and the upload's state after it.
async fn write_body(mut writer: Box<Writer>, body: &mut dyn BodySource) -> (TusReply, Info) {
    let id = writer.id.clone();
    let inner = writer.inner.clone();
    let state = |inner: &Inner| inner.uploads().get(&id).map(|e| e.info.clone()).ok_or(());
    // Completion is reported by the request that completes, only.
    let was_complete = state(&inner).is_ok_and(|i| i.complete());
    // The writer goes into each blocking call and comes back: a dropped
    // future leaves it with the blocking task, which drops (settles) it.
    let outcome: Result<(), TusReply> = loop {
        let chunk = match body.next_chunk().await {
            Ok(Some(c)) if c.is_empty() => continue,
            Ok(Some(c)) => c,
            Ok(None) => break Ok(()),
            Err(e) => {
                info!(upload = %id, "tus PATCH body broke off: {e}");
                break Err(TusReply::text(
                    StatusCode::BAD_REQUEST,
                    "the body broke off",
                ));
            }
        };
        let done = tokio::task::spawn_blocking(move || {
            let r = writer.write(&chunk);
            (writer, r)
        })
        .await;
        match done {
            Ok((w, Ok(true))) => writer = w,
            Ok((mut w, Ok(false))) => {
                w.settled = true;
                if let Err(e) = w.discard() {
                    warn!(upload = %id, "tus upload not cut back: {e}");
                }
                writer = w;
                break Err(TusReply::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body goes past Upload-Length",
                ));
            }
            Ok((w, Err(e))) => {
                warn!(upload = %id, "tus upload write failed: {e}");
                writer = w;
                break Err(TusReply::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "upload write failed",
                ));
            }
            Err(e) => {
                // The writer was dropped (settled) with the task.
                warn!(upload = %id, "tus upload write task failed: {e}");
                let info = state(&inner).unwrap_or_else(|()| gone_info(&id));
                return (
                    TusReply::text(StatusCode::INTERNAL_SERVER_ERROR, "upload write failed"),
                    info,
                );
            }
        }
    };
    let settled = tokio::task::spawn_blocking(move || {
        let r = match outcome {
            Err(r) => {
                if !writer.settled {
                    writer.settle_interrupted();
                }
                r
            }
            Ok(()) => settle_complete_body(&mut writer),
        };
        drop(writer);
        r
    })
    .await;
    let mut r = settled.unwrap_or_else(|e| {
        TusReply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("upload write failed: {e}"),
        )
    });
    let info = state(&inner).unwrap_or_else(|()| gone_info(&id));
    // Also when the body broke off right after its last byte: it is complete.
    if info.complete() && !was_complete {
        info!(upload = %id, length = info.offset, "tus upload complete");
        r.completed = Some(CompletedUpload {
            id: info.id.clone(),
            length: info.offset,
            metadata: info.metadata.clone(),
            direct: info.direct.clone(),
            path: inner.config.dir.join(&info.id),
        });
    }
    (r, info)
}

/// The whole body arrived: check the checksum, commit.
fn settle_complete_body(w: &mut Writer) -> TusReply {
    w.settled = true;
    if let Some((hasher, expected)) = w.checksum.take() {
        let got: [u8; 20] = hasher.finalize().into();
        if got != expected {
            if let Err(e) = w.discard() {
                warn!(upload = %w.id, "tus upload not cut back: {e}");
            }
            return TusReply::text(
                StatusCode::from_u16(CHECKSUM_MISMATCH).unwrap_or(StatusCode::BAD_REQUEST),
                "Upload-Checksum does not match the body",
            );
        }
    }
    match w.commit() {
        Ok(_) => TusReply::new(StatusCode::NO_CONTENT),
        Err(e) => {
            warn!(upload = %w.id, "tus upload not committed: {e}");
            let _ = w.discard();
            TusReply::text(StatusCode::INTERNAL_SERVER_ERROR, "upload not committed")
        }
    }
}

fn gone_info(id: &str) -> Info {
    Info {
        id: id.to_owned(),
        length: None,
        offset: 0,
        max_size: 0,
        metadata: Metadata::new(),
        expires_unix_s: 0,
        direct: None,
    }
}

/// `Upload-Expires` on answers about an unfinished upload.
fn with_expiry(r: TusReply, info: &Info) -> TusReply {
    if info.complete() {
        return r;
    }
    let at = UNIX_EPOCH + Duration::from_secs(info.expires_unix_s);
    r.header("upload-expires", httpdate::fmt_http_date(at))
}

/// Reads `<id>.info` and reconciles the data file with it; `None` when the
/// upload cannot be resumed (its state file goes).
fn load(dir: &Path, id: &str) -> io::Result<Option<Info>> {
    let text = fs::read(dir.join(format!("{id}.info")))?;
    let mut info: Info = serde_json::from_slice(&text).map_err(io::Error::other)?;
    if info.id != id {
        return Err(io::Error::other("the state names another upload"));
    }
    let data = dir.join(id);
    let len = match fs::metadata(&data) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound && info.offset == 0 => {
            File::create(&data)?;
            0
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warn!(upload = %id, "tus upload lost its data; removed");
            let _ = fs::remove_file(dir.join(format!("{id}.info")));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if len > info.offset {
        OpenOptions::new()
            .write(true)
            .open(&data)?
            .set_len(info.offset)?;
    } else if len < info.offset {
        warn!(upload = %id, offset = info.offset, len, "tus upload data shorter than its offset");
        info.offset = len;
        write_info(dir, &info)?;
    }
    Ok(Some(info))
}

/// The files of a new upload: its direct upload marker (`AlreadyExists` if
/// the direct upload was used), data file and state.
fn create_files(dir: &Path, info: &Info) -> io::Result<()> {
    let marker = match &info.direct {
        Some(g) if upload_url::valid_id(&g.id) => {
            let path = dir.join("direct").join(&g.id);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            f.write_all(g.expires_unix_s.to_string().as_bytes())?;
            f.sync_all()?;
            sync_dir(&dir.join("direct"))?;
            Some(path)
        }
        Some(_) => return Err(io::Error::other("bad direct upload id")),
        None => None,
    };
    let made = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(&info.id))
        .and_then(|_| write_info(dir, info));
    if made.is_err() {
        // Not the client's fault: the direct upload may be tried again.
        if let Some(m) = marker {
            let _ = fs::remove_file(m);
        }
        let _ = fs::remove_file(dir.join(&info.id));
    }
    made
}

/// Writes `<id>.info` atomically: temporary file, fsync, rename, fsync dir.
fn write_info(dir: &Path, info: &Info) -> io::Result<()> {
    let tmp = dir.join(format!("{}.info.tmp", info.id));
    let json = serde_json::to_vec(info).map_err(io::Error::other)?;
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(format!("{}.info", info.id)))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_files(dir: &Path, id: &str) {
    let _ = fs::remove_file(dir.join(format!("{id}.info")));
    let _ = fs::remove_file(dir.join(id));
    let _ = sync_dir(dir);
}

fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `id` has the form of an upload id (22 base64url characters), so
/// it can name a file.
pub fn valid_id(id: &str) -> bool {
    upload_url::valid_id(id)
}

/// A decimal without sign, as tus numbers are.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Standard base64, padded or not (tus-js-client pads, others do not).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `Upload-Metadata`: `key base64value` pairs separated by commas; keys
/// unique, without spaces or commas; a value may be absent.
pub fn parse_metadata(v: &str) -> Result<Metadata, &'static str> {
    if v.len() > MAX_METADATA_LEN {
        return Err("too long");
    }
    let mut out = Metadata::new();
    if v.trim().is_empty() {
        return Ok(out);
    }
    for pair in v.split(',') {
        let mut parts = pair.trim().split(' ');
        let key = parts.next().unwrap_or("");
        let value = parts.next();
        if parts.next().is_some() {
            return Err("a pair is a key and one value");
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("bad key");
        }
        let value = match value {
            None => None,
            Some(b64) => {
                let bytes = B64.decode(b64).map_err(|_| "a value is not base64")?;
                Some(String::from_utf8(bytes).map_err(|_| "a value is not UTF-8 text")?)
            }
        };
        if out.insert(key.to_owned(), value).is_some() {
            return Err("a key is repeated");
        }
    }
    Ok(out)
}

fn render_metadata(m: &Metadata) -> String {
    m.iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k} {}", B64.encode(v)),
            None => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `Upload-Checksum: sha1 <base64 digest>`.
pub fn parse_checksum(v: &str) -> Result<[u8; 20], &'static str> {
    let (algo, digest) = v.split_once(' ').ok_or("bad Upload-Checksum")?;
    if !algo.eq_ignore_ascii_case("sha1") {
        return Err("unsupported checksum algorithm (Tus-Checksum-Algorithm: sha1)");
    }
    B64.decode(digest.trim())
        .ok()
        .and_then(|d| <[u8; 20]>::try_from(d).ok())
        .ok_or("bad Upload-Checksum digest")
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http::HeaderValue;

    use super::*;
    use crate::vod::upload_url::DirectUploadSpec;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;
    const EXPIRY: u64 = 100;
    const MAX: u64 = 1000;

    /// A body in chunks that may break off after them.
    struct Chunks {
        chunks: VecDeque<Bytes>,
        break_off: bool,
    }

    #[async_trait]
    impl BodySource for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
            match self.chunks.pop_front() {
                Some(c) => Ok(Some(c)),
                None if self.break_off => Err("connection reset".into()),
                None => Ok(None),
            }
        }
    }

    fn config(dir: &Path) -> TusConfig {
        TusConfig {
            dir: dir.to_owned(),
            max_size: MAX,
            expiry_s: EXPIRY,
        }
    }

    fn open(dir: &Path) -> TusStore {
        TusStore::open(config(dir), Some(UploadUrlSigner::new(KEY).unwrap())).unwrap()
    }

    /// One request: `path` may carry `?query`.
    struct Call<'a> {
        method: Method,
        path: &'a str,
        headers: Vec<(&'a str, &'a str)>,
        chunks: Vec<&'a [u8]>,
        break_off: bool,
        authorized: bool,
        now: u64,
    }

    fn call(method: Method, path: &str) -> Call<'_> {
        Call {
            method,
            path,
            headers: vec![("tus-resumable", "1.0.0")],
            chunks: Vec::new(),
            break_off: false,
            authorized: true,
            now: NOW,
        }
    }

    impl<'a> Call<'a> {
        fn h(mut self, k: &'a str, v: &'a str) -> Self {
            self.headers.push((k, v));
            self
        }
        fn body(mut self, chunks: &[&'a [u8]]) -> Self {
            self.chunks = chunks.to_vec();
            self
        }
        fn at(mut self, now: u64) -> Self {
            self.now = now;
            self
        }
        fn anonymous(mut self) -> Self {
            self.authorized = false;
            self
        }
        fn breaking_off(mut self) -> Self {
            self.break_off = true;
            self
        }
        fn without_version(mut self) -> Self {
            self.headers.retain(|(k, _)| *k != "tus-resumable");
            self
        }
        fn patch_at(id: &'a str, offset: &'a str) -> Self {
            call(Method::PATCH, id)
                .h("content-type", OFFSET_OCTET_STREAM)
                .h("upload-offset", offset)
        }
        async fn on(self, store: &TusStore) -> TusReply {
            let mut headers = HeaderMap::new();
            for (k, v) in &self.headers {
                headers.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            self.on_headers(store, headers).await
        }
        async fn on_headers(self, store: &TusStore, headers: HeaderMap) -> TusReply {
            let (path, query) = match self.path.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (self.path, None),
            };
            let mut body = Chunks {
                chunks: self
                    .chunks
                    .iter()
                    .map(|c| Bytes::copy_from_slice(c))
                    .collect(),
                break_off: self.break_off,
            };
            let r = store
                .handle(
                    TusRequest {
                        method: &self.method,
                        path,
                        query,
                        headers: &headers,
                        authorized: self.authorized,
                        body: &mut body,
                    },
                    self.now,
                )
                .await;
            // On every answer.
            assert_eq!(r.get("tus-resumable"), Some(TUS_VERSION), "{r:?}");
            assert_eq!(r.get("access-control-allow-origin"), Some("*"));
            r
        }
    }

    /// Creates an upload of `length`; its path.
    async fn create(store: &TusStore, length: &str) -> String {
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", length)
            .on(store)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.get("location").unwrap().to_owned()
    }

    fn offset(r: &TusReply) -> Option<u64> {
        r.get("upload-offset").and_then(|o| o.parse().ok())
    }

    async fn head_offset(store: &TusStore, path: &str) -> u64 {
        let r = call(Method::HEAD, path).on(store).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        offset(&r).unwrap()
    }

    fn sha1_b64(data: &[u8]) -> String {
        B64.encode(Sha1::digest(data))
    }

    #[tokio::test]
    async fn options_describes_the_server_and_answers_preflights() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        // No Tus-Resumable needed.
        let r = call(Method::OPTIONS, "/uploads/")
            .without_version()
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(r.get("tus-version"), Some("1.0.0"));
        assert_eq!(r.get("tus-max-size"), Some("1000"));
        assert_eq!(r.get("tus-checksum-algorithm"), Some("sha1"));
        let ext = r.get("tus-extension").unwrap();
        for e in ["creation", "termination", "expiration", "checksum"] {
            assert!(ext.split(',').any(|x| x == e), "{e}");
        }
        let expose = r.get("access-control-expose-headers").unwrap();
        for h in [
            "location",
            "upload-offset",
            "upload-length",
            "tus-resumable",
        ] {
            assert!(expose.split(", ").any(|x| x == h), "{h}");
        }
        assert!(r.get("access-control-allow-headers").is_none());
        let r = call(Method::OPTIONS, "/uploads/abcdefghijklmnopqrstuv")
            .without_version()
            .h("origin", "https://app.example")
            .h("access-control-request-method", "PATCH")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(r.get("access-control-allow-methods"), Some(METHODS));
        let allowed = r.get("access-control-allow-headers").unwrap();
        for h in [
            "tus-resumable",
            "upload-offset",
            "upload-metadata",
            "content-type",
        ] {
            assert!(allowed.split(", ").any(|x| x == h), "{h}");
        }
        assert_eq!(
            r.headers
                .iter()
                .filter(|(k, _)| *k == "access-control-allow-origin")
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn other_versions_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "10").await;
        for c in [
            call(Method::POST, "/uploads/").without_version(),
            call(Method::POST, "/uploads/").h("tus-resumable", "0.2.2"),
            call(Method::HEAD, &path).without_version(),
            Call::patch_at(&path, "0").without_version(),
            call(Method::DELETE, &path).without_version(),
        ] {
            let mut c = c;
            if c.headers
                .iter()
                .filter(|(k, _)| *k == "tus-resumable")
                .count()
                > 1
            {
                c.headers.remove(0);
            }
            let r = c.on(&store).await;
            assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{r:?}");
            assert_eq!(r.get("tus-version"), Some("1.0.0"));
        }
    }

    #[tokio::test]
    async fn creation_checks_its_headers() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "10")
            .h(
                "upload-metadata",
                "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential, type dmlkZW8vbXA0",
            )
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let location = r.get("location").unwrap();
        let id = location.strip_prefix(PREFIX).unwrap();
        assert!(valid_id(id), "{id}");
        assert!(r.get("upload-expires").unwrap().ends_with(" GMT"));
        let r = call(Method::HEAD, location).on(&store).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.is_empty());
        assert_eq!(offset(&r), Some(0));
        assert_eq!(r.get("upload-length"), Some("10"));
        assert_eq!(r.get("cache-control"), Some("no-store"));
        assert_eq!(
            r.get("upload-expires"),
            Some(httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(NOW + EXPIRY)).as_str())
        );
        let meta = parse_metadata(r.get("upload-metadata").unwrap()).unwrap();
        assert_eq!(
            meta.get("filename"),
            Some(&Some("world_domination_plan.pdf".into()))
        );
        assert_eq!(meta.get("is_confidential"), Some(&None));
        assert_eq!(meta.get("type"), Some(&Some("video/mp4".into())));
        // Who may create.
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "10")
            .anonymous()
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // Too large.
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "1001")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(create(&store, "1000").await.len(), PREFIX.len() + 22);
        // Bad headers.
        for headers in [
            vec![],
            vec![("upload-length", "10"), ("upload-defer-length", "1")],
            vec![("upload-length", "-1")],
            vec![("upload-length", "+5")],
            vec![("upload-length", "1e3")],
            vec![("upload-length", "")],
            vec![("upload-length", "99999999999999999999999")],
            vec![("upload-defer-length", "2")],
            vec![("upload-length", "1"), ("upload-metadata", "a !!!")],
            vec![("upload-length", "1"), ("upload-metadata", "a Zm9v YmFy")],
            vec![("upload-length", "1"), ("upload-metadata", "a Zm9v,a YmFy")],
            vec![("upload-length", "1"), ("upload-metadata", "a /w==")],
            vec![("upload-length", "1"), ("upload-metadata", ",a")],
            vec![("upload-length", "1"), ("upload-checksum", "md5 abc")],
            vec![("x-http-method-override", "P A T C H")],
        ] {
            let mut c = call(Method::POST, "/uploads/").h("content-type", OFFSET_OCTET_STREAM);
            c.headers.extend(headers.iter().copied());
            let r = c.on(&store).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{headers:?}: {r:?}");
        }
        // Header values that are not text: a 400, never a panic.
        for name in [
            "upload-length",
            "upload-metadata",
            "upload-defer-length",
            "tus-resumable",
            "x-http-method-override",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
            headers.insert("upload-length", HeaderValue::from_static("5"));
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
            );
            let r = call(Method::POST, "/uploads/")
                .on_headers(&store, headers)
                .await;
            assert!(
                r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::PRECONDITION_FAILED,
                "{name}: {r:?}"
            );
        }
        // Not a body type tus knows.
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "3")
            .h("content-type", "video/mp4")
            .h("content-length", "3")
            .body(&[b"abc"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn metadata_round_trips() {
        for (header, pairs) in [
            ("", vec![]),
            ("k", vec![("k", None)]),
            ("k Zm9v", vec![("k", Some("foo"))]),
            ("k Zm9vYg", vec![("k", Some("foob"))]),
            (
                "a YmFy,b,c w6k=",
                vec![("a", Some("bar")), ("b", None), ("c", Some("é"))],
            ),
            // Trailing blanks go with the pair's trimming.
            ("e ", vec![("e", None)]),
        ] {
            let m = parse_metadata(header).unwrap();
            let want: Metadata = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
                .collect();
            assert_eq!(m, want, "{header}");
            assert_eq!(parse_metadata(&render_metadata(&m)).unwrap(), m);
        }
        assert!(parse_metadata(&"a ".repeat(5000)).is_err());
    }

    #[tokio::test]
    async fn patches_append_and_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "11").await;
        let id = path.strip_prefix(PREFIX).unwrap();
        let r = call(Method::PATCH, &path)
            .h("content-type", "application/octet-stream")
            .h("upload-offset", "0")
            .body(&[b"hello"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        for bad in ["", "x", "-1"] {
            let r = Call::patch_at(&path, bad)
                .body(&[b"hello"])
                .on(&store)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let r = call(Method::PATCH, &path)
            .h("content-type", OFFSET_OCTET_STREAM)
            .body(&[b"hello"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = Call::patch_at(&path, "3")
            .body(&[b"hello"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let r = Call::patch_at(&path, "0")
            .h("content-type", "application/offset+octet-stream; charset=x")
            .body(&[b"hel", b"lo"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert_eq!(offset(&r), Some(5));
        assert!(r.get("upload-expires").is_some());
        assert!(r.completed.is_none());
        assert_eq!(head_offset(&store, &path).await, 5);
        // Replaying the same PATCH (a lost answer): the offset moved on.
        let r = Call::patch_at(&path, "0")
            .body(&[b"hello"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(offset(&r), Some(5));
        let r = Call::patch_at(&path, "5")
            .body(&[b" world"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(offset(&r), Some(11));
        assert!(r.get("upload-expires").is_none());
        let done = r.completed.unwrap();
        assert_eq!((done.id.as_str(), done.length), (id, 11));
        assert_eq!(fs::read(&done.path).unwrap(), b"hello world");
        // Complete: an empty PATCH changes nothing and completes nothing again.
        let r = Call::patch_at(&path, "11").on(&store).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(r.completed.is_none());
        assert_eq!(store.completed(), vec![done.clone()]);
        // Much later: complete uploads do not expire.
        assert_eq!(store.sweep(NOW + 10 * EXPIRY), 0);
        assert_eq!(head_offset(&store, &path).await, 11);
        // Taken by the job system.
        let dest = tmp.path().join("taken.bin");
        let taken = store.take(id, &dest).unwrap();
        assert_eq!(taken.path, dest);
        assert_eq!(fs::read(&dest).unwrap(), b"hello world");
        assert!(!tmp.path().join(id).exists());
        assert!(!tmp.path().join(format!("{id}.info")).exists());
        assert!(matches!(store.take(id, &dest), Err(TakeError::Unknown(_))));
        let r = call(Method::HEAD, &path).on(&store).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // Unfinished ones cannot be taken.
        let other = create(&store, "4").await;
        assert!(matches!(
            store.take(other.strip_prefix(PREFIX).unwrap(), &dest),
            Err(TakeError::Incomplete(_))
        ));
    }

    #[tokio::test]
    async fn nothing_goes_past_upload_length() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "6").await;
        let id = path.strip_prefix(PREFIX).unwrap();
        // Announced: refused before reading.
        let r = Call::patch_at(&path, "0")
            .h("content-length", "7")
            .body(&[b"1234567"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(offset(&r), Some(0));
        // Found out while streaming: this PATCH's bytes are dropped.
        let r = Call::patch_at(&path, "0")
            .body(&[b"1234", b"567"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(offset(&r), Some(0));
        assert_eq!(fs::metadata(tmp.path().join(id)).unwrap().len(), 0);
        let r = Call::patch_at(&path, "0")
            .body(&[b"123456"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(r.completed.is_some());
    }

    #[tokio::test]
    async fn checksums_are_verified() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "10").await;
        let good = format!("sha1 {}", sha1_b64(b"hello"));
        let r = Call::patch_at(&path, "0")
            .h("upload-checksum", &good)
            .body(&[b"he", b"llo"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert_eq!(offset(&r), Some(5));
        let r = Call::patch_at(&path, "5")
            .h("upload-checksum", &good)
            .body(&[b"world"])
            .on(&store)
            .await;
        assert_eq!(r.status.as_u16(), 460);
        assert_eq!(offset(&r), Some(5));
        assert_eq!(head_offset(&store, &path).await, 5);
        let id = path.strip_prefix(PREFIX).unwrap();
        assert_eq!(fs::read(tmp.path().join(id)).unwrap(), b"hello");
        for bad in [
            "md5 XUFAKrxLKna5cZ2REBfFkg==",
            "sha1 !!",
            "sha1 Zm9v",
            "sha1",
        ] {
            let r = Call::patch_at(&path, "5")
                .h("upload-checksum", bad)
                .body(&[b"world"])
                .on(&store)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        // A checksummed body that breaks off is not kept: it cannot be checked.
        let r = Call::patch_at(&path, "5")
            .h("upload-checksum", &format!("sha1 {}", sha1_b64(b"world")))
            .body(&[b"wor"])
            .breaking_off()
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(head_offset(&store, &path).await, 5);
        let r = Call::patch_at(&path, "5")
            .h("upload-checksum", &format!("SHA1 {}", sha1_b64(b"world")))
            .body(&[b"world"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(fs::read(&r.completed.unwrap().path).unwrap(), b"helloworld");
    }

    #[tokio::test]
    async fn a_broken_off_patch_keeps_what_arrived_and_resumes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "12").await;
        let r = Call::patch_at(&path, "0")
            .body(&[b"abc", b"def", b"g"])
            .breaking_off()
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(offset(&r), Some(7));
        assert_eq!(head_offset(&store, &path).await, 7);
        // The upload is free again.
        let r = Call::patch_at(&path, "7")
            .body(&[b"hijkl"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            fs::read(r.completed.unwrap().path).unwrap(),
            b"abcdefghijkl"
        );
        // Breaking off after the last byte still completes it.
        let path = create(&store, "3").await;
        let r = Call::patch_at(&path, "0")
            .body(&[b"xyz"])
            .breaking_off()
            .on(&store)
            .await;
        assert_eq!(offset(&r), Some(3));
        assert_eq!(r.completed.unwrap().length, 3);
    }

    #[tokio::test]
    async fn a_restart_keeps_committed_offsets_and_cuts_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, done_path) = {
            let store = open(tmp.path());
            let path = create(&store, "10").await;
            let r = Call::patch_at(&path, "0").body(&[b"0123"]).on(&store).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
            let done = create(&store, "2").await;
            let r = Call::patch_at(&done, "0").body(&[b"ok"]).on(&store).await;
            assert!(r.completed.is_some());
            (path, done)
        };
        let id = path.strip_prefix(PREFIX).unwrap();
        // Written but never committed (a crash mid-PATCH), and debris.
        let mut f = OpenOptions::new()
            .append(true)
            .open(tmp.path().join(id))
            .unwrap();
        f.write_all(b"junk").unwrap();
        fs::write(tmp.path().join(format!("{id}.info.tmp")), b"{").unwrap();
        fs::write(tmp.path().join("AAAAAAAAAAAAAAAAAAAAAA"), b"orphan").unwrap();
        let store = open(tmp.path());
        assert_eq!(head_offset(&store, &path).await, 4);
        assert_eq!(fs::read(tmp.path().join(id)).unwrap(), b"0123");
        assert!(!tmp.path().join(format!("{id}.info.tmp")).exists());
        assert!(!tmp.path().join("AAAAAAAAAAAAAAAAAAAAAA").exists());
        let r = call(Method::HEAD, &path).on(&store).await;
        assert_eq!(r.get("upload-length"), Some("10"));
        // Finished before the restart: still waiting to be taken.
        let done = store.completed();
        assert_eq!(done.len(), 1);
        assert_eq!(format!("{PREFIX}{}", done[0].id), done_path);
        let r = Call::patch_at(&path, "4")
            .body(&[b"456789"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(fs::read(r.completed.unwrap().path).unwrap(), b"0123456789");
    }

    #[tokio::test]
    async fn unfinished_uploads_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let a = create(&store, "10").await;
        let b = create(&store, "10").await;
        let c = create(&store, "10").await;
        // A write renews the expiry.
        let r = Call::patch_at(&c, "0")
            .body(&[b"x"])
            .at(NOW + 50)
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = call(Method::HEAD, &a).at(NOW + EXPIRY - 1).on(&store).await;
        assert_eq!(r.status, StatusCode::OK);
        for (c, want) in [
            (call(Method::HEAD, &a).at(NOW + EXPIRY), StatusCode::GONE),
            (
                call(Method::HEAD, &a).at(NOW + EXPIRY),
                StatusCode::NOT_FOUND,
            ),
            (
                Call::patch_at(&b, "0").body(&[b"x"]).at(NOW + EXPIRY),
                StatusCode::GONE,
            ),
        ] {
            assert_eq!(c.on(&store).await.status, want);
        }
        assert_eq!(store.sweep(NOW + EXPIRY), 0, "a and b went already");
        assert_eq!(head_offset(&store, &c).await, 1);
        assert_eq!(store.sweep(NOW + 50 + EXPIRY), 1);
        let r = call(Method::HEAD, &c).on(&store).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["direct"], "only the markers' directory is left");
    }

    #[tokio::test]
    async fn termination_removes_the_data() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "10").await;
        let id = path.strip_prefix(PREFIX).unwrap();
        let r = Call::patch_at(&path, "0").body(&[b"abc"]).on(&store).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = call(Method::DELETE, &path).on(&store).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert!(!tmp.path().join(id).exists());
        assert!(!tmp.path().join(format!("{id}.info")).exists());
        for m in [Method::HEAD, Method::DELETE] {
            assert_eq!(
                call(m, &path).on(&store).await.status,
                StatusCode::NOT_FOUND
            );
        }
        let r = Call::patch_at(&path, "3").on(&store).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // Through X-HTTP-Method-Override too.
        let path = create(&store, "10").await;
        let r = call(Method::POST, &path)
            .h("x-http-method-override", "DELETE")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            call(Method::HEAD, &path).on(&store).await.status,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn wrong_methods_and_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "10").await;
        for (c, want) in [
            (call(Method::GET, &path), StatusCode::METHOD_NOT_ALLOWED),
            (call(Method::POST, &path), StatusCode::METHOD_NOT_ALLOWED),
            (
                call(Method::PATCH, "/uploads/"),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                call(Method::GET, "/uploads"),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (call(Method::HEAD, "/uploads/../etc"), StatusCode::NOT_FOUND),
            (call(Method::HEAD, "/uploads/a/b"), StatusCode::NOT_FOUND),
            (
                call(Method::HEAD, "/uploads/AAAAAAAAAAAAAAAAAAAAAA"),
                StatusCode::NOT_FOUND,
            ),
            (call(Method::HEAD, "/other/"), StatusCode::NOT_FOUND),
        ] {
            let r = c.on(&store).await;
            assert_eq!(r.status, want, "{r:?}");
        }
    }

    #[tokio::test]
    async fn creation_with_upload_defer_length_and_empty_uploads() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "6")
            .h("content-type", OFFSET_OCTET_STREAM)
            .h("upload-checksum", &format!("sha1 {}", sha1_b64(b"abcdef")))
            .body(&[b"abc", b"def"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(offset(&r), Some(6));
        assert_eq!(fs::read(r.completed.unwrap().path).unwrap(), b"abcdef");
        // Part of it.
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "6")
            .h("content-type", OFFSET_OCTET_STREAM)
            .body(&[b"abc"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(offset(&r), Some(3));
        assert!(r.completed.is_none());
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "2")
            .h("content-type", OFFSET_OCTET_STREAM)
            .h("content-length", "3")
            .body(&[b"abc"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        // Length told later.
        let r = call(Method::POST, "/uploads/")
            .h("upload-defer-length", "1")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let path = r.get("location").unwrap().to_owned();
        let r = call(Method::HEAD, &path).on(&store).await;
        assert_eq!(r.get("upload-defer-length"), Some("1"));
        assert_eq!(r.get("upload-length"), None);
        let r = Call::patch_at(&path, "0").body(&[b"ab"]).on(&store).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = Call::patch_at(&path, "2")
            .h("upload-length", "1001")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        let r = Call::patch_at(&path, "2")
            .h("upload-length", "1")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = Call::patch_at(&path, "2")
            .h("upload-length", "4")
            .body(&[b"cd"])
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(fs::read(r.completed.unwrap().path).unwrap(), b"abcd");
        let r = call(Method::HEAD, &path).on(&store).await;
        assert_eq!(r.get("upload-length"), Some("4"));
        // Nothing to upload: complete at once.
        let r = call(Method::POST, "/uploads/")
            .h("upload-length", "0")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.completed.unwrap().length, 0);
    }

    /// A body fed by the test, telling when it is first read.
    struct Fed {
        started: Option<tokio::sync::oneshot::Sender<()>>,
        rx: tokio::sync::mpsc::Receiver<Bytes>,
    }

    #[async_trait]
    impl BodySource for Fed {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>, String> {
            if let Some(s) = self.started.take() {
                let _ = s.send(());
            }
            Ok(self.rx.recv().await)
        }
    }

    #[tokio::test]
    async fn one_patch_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "10").await;
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let first = tokio::spawn({
            let store = store.clone();
            let path = path.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
                headers.insert("upload-offset", HeaderValue::from_static("0"));
                headers.insert(
                    "content-type",
                    HeaderValue::from_static(OFFSET_OCTET_STREAM),
                );
                let mut body = Fed {
                    started: Some(started_tx),
                    rx,
                };
                store
                    .handle(
                        TusRequest {
                            method: &Method::PATCH,
                            path: &path,
                            query: None,
                            headers: &headers,
                            authorized: false,
                            body: &mut body,
                        },
                        NOW,
                    )
                    .await
            }
        });
        started.await.unwrap();
        let r = Call::patch_at(&path, "0").body(&[b"x"]).on(&store).await;
        assert_eq!(r.status, StatusCode::LOCKED);
        let r = call(Method::DELETE, &path).on(&store).await;
        assert_eq!(r.status, StatusCode::LOCKED);
        tx.send(Bytes::from_static(b"12345")).await.unwrap();
        drop(tx);
        let r = first.await.unwrap();
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(offset(&r), Some(5));
        let r = Call::patch_at(&path, "5").body(&[b"x"]).on(&store).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn long_patches_commit_as_they_go() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TusStore::open(
            TusConfig {
                max_size: 4 * COMMIT_EVERY,
                ..config(tmp.path())
            },
            None,
        )
        .unwrap();
        let length = (2 * COMMIT_EVERY).to_string();
        let path = create(&store, &length).await;
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let patch = tokio::spawn({
            let store = store.clone();
            let path = path.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
                headers.insert("upload-offset", HeaderValue::from_static("0"));
                headers.insert(
                    "content-type",
                    HeaderValue::from_static(OFFSET_OCTET_STREAM),
                );
                let mut body = Fed {
                    started: Some(started_tx),
                    rx,
                };
                store
                    .handle(
                        TusRequest {
                            method: &Method::PATCH,
                            path: &path,
                            query: None,
                            headers: &headers,
                            authorized: false,
                            body: &mut body,
                        },
                        NOW,
                    )
                    .await
            }
        });
        started.await.unwrap();
        let mib = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..(COMMIT_EVERY >> 20) + 1 {
            tx.send(mib.clone()).await.unwrap();
        }
        // The 9th MiB was taken: the first 8 were written and committed, so
        // a crash now would resume there.
        tx.reserve().await.unwrap().send(mib.clone());
        let id = path.strip_prefix(PREFIX).unwrap();
        let state = fs::read(tmp.path().join(format!("{id}.info"))).unwrap();
        let committed = serde_json::from_slice::<Info>(&state).unwrap().offset;
        assert!(committed >= COMMIT_EVERY, "{committed}");
        assert_eq!(head_offset(&store, &path).await, committed);
        drop(tx);
        let r = patch.await.unwrap();
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(offset(&r), Some(COMMIT_EVERY + 2 * (1 << 20)));
    }

    #[tokio::test]
    async fn a_dropped_patch_commits_and_frees_the_upload() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path());
        let path = create(&store, "10").await;
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let first = tokio::spawn({
            let store = store.clone();
            let path = path.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
                headers.insert("upload-offset", HeaderValue::from_static("0"));
                headers.insert(
                    "content-type",
                    HeaderValue::from_static(OFFSET_OCTET_STREAM),
                );
                let mut body = Fed {
                    started: Some(started_tx),
                    rx,
                };
                store
                    .handle(
                        TusRequest {
                            method: &Method::PATCH,
                            path: &path,
                            query: None,
                            headers: &headers,
                            authorized: false,
                            body: &mut body,
                        },
                        NOW,
                    )
                    .await
            }
        });
        started.await.unwrap();
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        // The chunk is taken once the channel has room again.
        tx.send(Bytes::from_static(b"d")).await.unwrap();
        tx.reserve().await.unwrap().send(Bytes::from_static(b"e"));
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        // "abc" and "d" were written (each write ends before the next
        // read); the last write may still be finishing on the blocking pool,
        // which then commits and frees the upload.
        let (mut offset, mut status) = (0, StatusCode::LOCKED);
        for _ in 0..500 {
            offset = head_offset(&store, &path).await;
            let at = offset.to_string();
            status = Call::patch_at(&path, &at)
                .body(&[b"x"])
                .on(&store)
                .await
                .status;
            if status != StatusCode::LOCKED {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!((4..=5).contains(&offset), "{offset}");
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn direct_upload_urls_create_one_upload() {
        let tmp = tempfile::tempdir().unwrap();
        let signer = UploadUrlSigner::new(KEY).unwrap();
        let spec = DirectUploadSpec {
            ttl_s: 600,
            max_size: 50,
            max_duration_s: Some(60),
            passthrough: Some("user-7".into()),
        };
        let up = signer.issue(&spec, NOW).unwrap();
        let url = up.url(PREFIX);
        {
            let store = open(tmp.path());
            // Over the grant's size: refused, and the URL is not used up.
            let r = call(Method::POST, &url)
                .anonymous()
                .h("upload-length", "51")
                .on(&store)
                .await;
            assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
            let r = call(Method::POST, &url)
                .anonymous()
                .h("upload-defer-length", "1")
                .on(&store)
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            let path = r.get("location").unwrap().to_owned();
            let r = call(Method::POST, &url)
                .anonymous()
                .h("upload-length", "5")
                .on(&store)
                .await;
            assert_eq!(r.status, StatusCode::CONFLICT);
            // The deferred length is held to the grant too.
            let r = Call::patch_at(&path, "0")
                .h("upload-length", "51")
                .on(&store)
                .await;
            assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
            let r = Call::patch_at(&path, "0")
                .h("upload-length", "3")
                .body(&[b"abc"])
                .on(&store)
                .await;
            let done = r.completed.unwrap();
            assert_eq!(done.direct.as_ref(), Some(&up.grant));
            assert_eq!(done.direct.unwrap().passthrough.as_deref(), Some("user-7"));
        }
        // Used stays used across a restart, until the token is dead anyway.
        let store = open(tmp.path());
        let r = call(Method::POST, &url)
            .anonymous()
            .h("upload-length", "5")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        store.sweep(NOW + 599);
        let r = call(Method::POST, &url)
            .anonymous()
            .h("upload-length", "5")
            .at(NOW + 599)
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        store.sweep(NOW + 600);
        assert_eq!(fs::read_dir(tmp.path().join("direct")).unwrap().count(), 0);
        let r = call(Method::POST, &url)
            .anonymous()
            .h("upload-length", "5")
            .at(NOW + 600)
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::GONE);
        // Tampered, malformed, or no key configured.
        let fresh = signer.issue(&spec, NOW).unwrap();
        let (payload, mac) = fresh.token.split_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
        raw[1 + 16 + 8 + 7] = 0xff;
        let tampered = format!("{PREFIX}?direct={}.{mac}", URL_SAFE_NO_PAD.encode(&raw));
        for url in [
            tampered.as_str(),
            "/uploads/?direct=nope",
            "/uploads/?direct=",
        ] {
            let r = call(Method::POST, url)
                .anonymous()
                .h("upload-length", "5")
                .on(&store)
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{url}");
        }
        let keyless_dir = tempfile::tempdir().unwrap();
        let keyless = TusStore::open(config(keyless_dir.path()), None).unwrap();
        let r = call(Method::POST, &fresh.url(PREFIX))
            .anonymous()
            .h("upload-length", "5")
            .on(&keyless)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // The fresh one works, once.
        let r = call(Method::POST, &fresh.url(PREFIX))
            .anonymous()
            .h("upload-length", "5")
            .on(&store)
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
}
