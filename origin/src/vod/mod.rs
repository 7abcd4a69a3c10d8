//! Video on demand: resumable uploads (tus), assets and their jobs, the file
//! transcode into the ladder, packaging into CMAF HLS + DASH, thumbnails,
//! object storage and webhooks. See docs/vod.md.
//!
//! ```text
//! backend ─POST /api/v1/uploads─▶ api.rs ──▶ db (asset `waiting`) + upload_url (signed, one-time)
//! browser ─tus─▶ /uploads/ ──▶ tus.rs (disk, resumable) ──complete──▶ db: asset `queued`, process job
//! backend ─POST /api/v1/assets {input_url}─▶ api.rs ──▶ import::check (URL, addresses) ──▶ db (asset `queued`, process job)
//! worker.rs: claim (lease) ─▶ [import.rs: fetch the URL, every hop's addresses checked] ─▶ probe.rs ─▶ transcode.rs (ffmpeg, one MPEG-TS, every rung)
//!            ─▶ package.rs (brook_packager: CMAF, HLS VOD + I-frames, DASH) ─▶ thumbnails.rs
//!            ─▶ store::storage (`videos/<id>/...`, manifests last) ─▶ `ready` ─▶ webhook.rs
//! viewer ◀── /vod/<id>/<object> ◀── storage, only while the asset is `ready`
//! ```

pub mod api;
pub mod db;
pub mod http;
pub mod import;
pub mod keys;
pub mod package;
pub mod probe;
pub mod thumbnails;
pub mod transcode;
pub mod tus;
pub mod upload_url;
pub mod webhook;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tracing::info;

use crate::pipeline::ladder::LadderConfig;
use crate::store::storage::{Key, ObjectStorage, Storage};

/// `[vod]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VodConfig {
    /// Accept uploads and serve assets. Needs `[storage]` and an API token.
    /// Default false.
    pub enabled: bool,
    /// Where the job database (`vod.db`), unfinished uploads (`uploads/`) and
    /// transcodes in progress (`work/`) live, on the local disk. Default
    /// `brook-data`.
    pub data_dir: PathBuf,
    /// The job queue shared by several origins: `postgres://user:password@host/db`.
    /// Every origin pointing at it (with the same `[storage]` bucket) takes
    /// process jobs from one queue, and uploads reach the origin that
    /// transcodes them through storage (`sources/<asset>`). No TLS: a local
    /// socket (`postgres:///brook?host=/run/postgresql`) or a tunnel.
    /// `BROOK_DATABASE_URL` overrides it. Default: none, SQLite in
    /// `data_dir` (`vod.db`), one origin.
    pub database_url: Option<String>,
    /// Bearer token of the application's backend for `/api/v1/...` (at least
    /// 16 characters). `BROOK_API_TOKEN` overrides it.
    pub api_token: Option<String>,
    /// Key that signs direct upload URLs (at least 16 characters).
    /// `BROOK_UPLOAD_SECRET` overrides it. Default: derived from the API token.
    pub upload_secret: Option<String>,
    /// The origin's public base URL for the upload and playback URLs the API
    /// returns (`https://origin.example.com`). Default: from the request's
    /// `Host`.
    pub public_url: Option<String>,
    /// The largest upload, bytes. Default 20 GiB.
    pub max_upload_bytes: u64,
    /// The longest video, seconds. Default 4 h.
    pub max_duration_s: u64,
    /// An unfinished upload is removed after this long, s. Default 1 day.
    pub upload_expiry_s: u64,
    /// A direct upload URL can be used for this long, s, unless the request
    /// says otherwise (at most `upload_expiry_s`). Default 1 h.
    pub direct_upload_ttl_s: u64,
    /// Assets processed at once (each runs one ffmpeg). Default 1.
    pub workers: u32,
    /// A worker holds a job this long between renewals, s; a job whose
    /// worker died is picked up again after it. Default 30.
    pub lease_s: u64,
    /// Where `asset.ready` / `asset.errored` are POSTed. Default: none.
    pub webhook_url: Option<String>,
    /// The webhook signing secret. `BROOK_WEBHOOK_SECRET` overrides it.
    pub webhook_secret: Option<String>,
    /// Delivery attempts before a webhook is given up. Default 8.
    pub webhook_attempts: u32,
    /// The ffprobe to run and the limits an upload must stay within.
    pub probe: probe::ProbeConfig,
    /// How renditions are encoded (presets, CRF caps, segment length).
    pub encode: transcode::VodEncode,
    /// Trick-play sprites (`[vod.thumbnails]`).
    pub thumbnails: thumbnails::SpriteConfig,
    /// The poster's largest width, pixels. Default 1280.
    pub poster_max_width: u32,
    /// Common Encryption of every upload that does not say otherwise
    /// (`"cbcs"` or `"cenc"`; an upload request's `encryption` overrides
    /// it, `"none"` included). Needs the master key (`BROOK_KEY_MASTER`)
    /// and `keys.fetch_token`. Default: none, in the clear.
    pub encryption: Option<crate::keys::EncryptionScheme>,
    /// Assets from a URL (`POST /api/v1/assets`): the largest file fetched,
    /// bytes. Default: `max_upload_bytes`.
    pub import_max_bytes: Option<u64>,
    /// Assets from a URL: the whole fetch (every redirect, every byte) must
    /// end within this, s. Default 3600.
    pub import_timeout_s: u64,
    /// Assets from a URL: connecting to the server (each hop), s. Default 10.
    pub import_connect_timeout_s: u64,
    /// Assets from a URL: the longest wait for the next bytes of an answer,
    /// s (a server that stops sending fails before the whole budget is
    /// spent). Default 60.
    pub import_read_timeout_s: u64,
    /// Assets from a URL: redirects followed (each target checked like the
    /// first URL). Default 5.
    pub import_max_redirects: u32,
    /// Assets from a URL may name hosts on loopback, private (RFC 1918,
    /// fc00::/7), link-local, CGNAT and other non-public addresses. Only for
    /// tests and closed networks: with it, anyone holding the API token can
    /// make the origin fetch from inside its network. Default false.
    pub import_allow_private: bool,
}

impl Default for VodConfig {
    fn default() -> Self {
        VodConfig {
            enabled: false,
            data_dir: PathBuf::from("brook-data"),
            database_url: None,
            api_token: None,
            upload_secret: None,
            public_url: None,
            max_upload_bytes: 20 << 30,
            max_duration_s: 4 * 3600,
            upload_expiry_s: 24 * 3600,
            direct_upload_ttl_s: 3600,
            workers: 1,
            lease_s: 30,
            webhook_url: None,
            webhook_secret: None,
            webhook_attempts: 8,
            probe: probe::ProbeConfig::default(),
            encode: transcode::VodEncode::default(),
            thumbnails: thumbnails::SpriteConfig::default(),
            poster_max_width: 1280,
            encryption: None,
            import_max_bytes: None,
            import_timeout_s: 3600,
            import_connect_timeout_s: 10,
            import_read_timeout_s: 60,
            import_max_redirects: 5,
            import_allow_private: false,
        }
    }
}

impl VodConfig {
    /// The config with the environment's secrets applied.
    pub fn with_env(mut self) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("BROOK_API_TOKEN") {
            self.api_token = Some(v);
        }
        if let Some(v) = env("BROOK_UPLOAD_SECRET") {
            self.upload_secret = Some(v);
        }
        if let Some(v) = env("BROOK_WEBHOOK_SECRET") {
            self.webhook_secret = Some(v);
        }
        if let Some(v) = env("BROOK_DATABASE_URL") {
            self.database_url = Some(v);
        }
        self
    }

    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        match &self.api_token {
            Some(t) if t.len() >= 16 => {}
            _ => return Err("vod.api_token (or BROOK_API_TOKEN) of at least 16 characters is required with vod.enabled".into()),
        }
        if self
            .upload_secret
            .as_ref()
            .is_some_and(|s| s.len() < upload_url::MIN_KEY_LEN)
        {
            return Err(format!(
                "vod.upload_secret must be at least {} characters",
                upload_url::MIN_KEY_LEN
            ));
        }
        if self.webhook_url.is_some() && self.webhook_secret.as_ref().is_none_or(|s| s.len() < 16) {
            return Err("vod.webhook_url needs vod.webhook_secret (or BROOK_WEBHOOK_SECRET) of at least 16 characters".into());
        }
        if let Some(u) = &self.webhook_url {
            url::Url::parse(u).map_err(|e| format!("vod.webhook_url: {e}"))?;
            // Webhooks carry the asset's playback URLs, which need a base
            // that is not taken from a request.
            if self.public_url.is_none() {
                return Err("vod.webhook_url needs vod.public_url (the base of the playback URLs webhooks carry)".into());
            }
        }
        if let Some(u) = &self.database_url {
            validate_database_url(u)?;
        }
        if !(1..=64).contains(&self.workers) {
            return Err("vod.workers must be within 1..=64".into());
        }
        if self.lease_s < 5 {
            return Err("vod.lease_s must be at least 5".into());
        }
        self.encode.validate("vod.encode")?;
        self.thumbnails.validate("vod.thumbnails")?;
        if !(64..=3840).contains(&self.poster_max_width) {
            return Err("vod.poster_max_width must be within 64..=3840".into());
        }
        if self.max_upload_bytes == 0 || self.max_duration_s == 0 {
            return Err("vod.max_upload_bytes and vod.max_duration_s must be positive".into());
        }
        if self.import_max_bytes == Some(0) {
            return Err("vod.import_max_bytes must be positive".into());
        }
        if self.import_timeout_s == 0
            || self.import_connect_timeout_s == 0
            || self.import_read_timeout_s == 0
        {
            return Err("vod.import_timeout_s, vod.import_connect_timeout_s and vod.import_read_timeout_s must be positive".into());
        }
        if self.import_max_redirects > 20 {
            return Err("vod.import_max_redirects must be within 0..=20".into());
        }
        Ok(())
    }

    /// The key direct upload URLs are signed with.
    pub fn upload_key(&self) -> Vec<u8> {
        match (&self.upload_secret, &self.api_token) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(t)) => {
                use hmac::{Hmac, Mac};
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(t.as_bytes())
                    .expect("HMAC takes any key length");
                m.update(b"brook direct upload URLs");
                m.finalize().into_bytes().to_vec()
            }
            (None, None) => Vec::new(),
        }
    }
}

/// `vod.database_url`: a PostgreSQL URL the client can parse. The error
/// never repeats the URL (it may hold a password).
fn validate_database_url(u: &str) -> Result<(), String> {
    if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
        return Err("vod.database_url must be a postgres:// or postgresql:// URL".into());
    }
    <postgres::Config as std::str::FromStr>::from_str(u)
        .map(drop)
        .map_err(|e| format!("vod.database_url: {e}"))
}

/// Where an asset's objects are in storage: `videos/<id>/<name>`.
pub fn asset_prefix(id: &str) -> String {
    format!("videos/{id}/")
}

/// A storage key of an asset's object.
pub fn asset_key(id: &str, name: &str) -> Result<Key, crate::store::storage::StorageError> {
    Key::new(format!("videos/{id}/{name}"))
}

/// Where an uploaded file waits in storage for the origin that processes it,
/// when several share the queue: `sources/<id>`.
pub fn source_key(id: &str) -> Result<Key, crate::store::storage::StorageError> {
    Key::new(format!("sources/{id}"))
}

/// A process job's payload that names a storage key rather than a local
/// file: `storage:sources/<id>`.
pub const SOURCE_IN_STORAGE: &str = "storage:";

/// A process job's payload that names a URL to fetch first (an asset from
/// a URL): `url:<input URL>`.
pub const SOURCE_AT_URL: &str = "url:";

/// This process's name in job leases: the host name and a random id kept in
/// `data_dir/worker-id`. A restart over the same directory keeps the name (and
/// recovers its own jobs); two machines never share one, even with the same
/// `data_dir` path or a copied directory (the host names differ).
fn worker_id(data: &std::path::Path) -> std::io::Result<String> {
    let file = data.join("worker-id");
    let id = match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => {
            let id = new_asset_id();
            let tmp = data.join("worker-id.tmp");
            std::fs::write(&tmp, &id)?;
            std::fs::rename(&tmp, &file)?;
            id
        }
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    Ok(format!(
        "{}:{id}",
        if host.is_empty() { "origin" } else { &host }
    ))
}

/// A new asset id: 32 lowercase hex digits (128 random bits).
pub fn new_asset_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random generator");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub use brook_common::valid_asset_id;

/// The VOD service: shared by the HTTP handlers and the workers.
pub struct Vod {
    pub config: VodConfig,
    pub ladder: LadderConfig,
    pub db: db::Db,
    pub storage: Arc<dyn Storage>,
    pub uploads: tus::TusStore,
    /// Live-to-VOD recordings, listed and deleted through the same API.
    pub archive: Option<Arc<crate::store::archive::Archive>>,
    /// Issues and checks direct upload URLs.
    pub signer: upload_url::UploadUrlSigner,
    pub http_client: reqwest::Client,
    /// This process's name in job leases.
    pub worker_id: String,
    /// The origin is stopping: running jobs are abandoned as they are (they
    /// run again at the next start), nothing new is claimed.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Content keys of encrypted assets (sealed in the database under its
    /// master key); `None` without `BROOK_KEY_MASTER`: no encryption.
    pub keys: Option<Arc<crate::keys::KeyService>>,
    /// The process's metrics (VOD counts assets from a URL).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Vod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vod")
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

impl Vod {
    pub fn open(
        config: VodConfig,
        ladder: LadderConfig,
        storage: ObjectStorage,
        archive: Option<Arc<crate::store::archive::Archive>>,
        keys: Option<Arc<crate::keys::KeyService>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        if config.encryption.is_some() && keys.is_none() {
            anyhow::bail!(
                "vod.encryption needs the master key in {}",
                crate::keys::MASTER_KEY_ENV
            );
        }
        let data = &config.data_dir;
        std::fs::create_dir_all(data)
            .with_context(|| format!("creating vod.data_dir {}", data.display()))?;
        let db = match &config.database_url {
            Some(url) => db::Db::connect(url).context("connecting to vod.database_url")?,
            None => db::Db::open(&data.join("vod.db"))?,
        };
        let signer = upload_url::UploadUrlSigner::new(&config.upload_key())
            .map_err(|e| anyhow::anyhow!("vod.upload_secret: {e}"))?;
        let uploads = tus::TusStore::open(
            tus::TusConfig {
                dir: data.join("uploads"),
                max_size: config.max_upload_bytes,
                expiry_s: config.upload_expiry_s,
            },
            Some(signer.clone()),
        )
        .context("opening the upload directory")?;
        // A restarted origin over the same directory recognizes its own
        // unfinished jobs.
        let worker_id = worker_id(data)
            .with_context(|| format!("writing {}", data.join("worker-id").display()))?;
        let recovered = db.recover(&worker_id)?;
        if recovered > 0 {
            info!(recovered, "VOD jobs interrupted by the last stop run again");
        }
        let http_client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .context("building the webhook HTTP client")?;
        if db.is_shared() && storage.describe().starts_with("directory ") {
            tracing::warn!(
                storage = storage.describe(),
                "vod.database_url with [storage] on a local directory: origins on other \
                 machines see uploads and assets only if they mount the same directory"
            );
        }
        info!(
            storage = storage.describe(),
            database = db.describe(),
            worker = worker_id,
            "video on demand enabled"
        );
        let vod = Arc::new(Vod {
            config,
            ladder,
            db,
            storage: Arc::new(storage),
            uploads,
            archive,
            signer,
            http_client,
            worker_id,
            stopping: std::sync::atomic::AtomicBool::new(false),
            keys,
            metrics,
        });
        Ok(vod)
    }

    /// After a restart: uploads that completed without being handed over,
    /// and sources handed over whose asset was not queued yet. Runs from
    /// `worker::start`, in the runtime (a shared queue's hand-over is a task).
    pub(crate) fn recover_uploads(&self) {
        for done in self.uploads.completed() {
            self.upload_completed(&done);
        }
        let dir = self.config.data_dir.join("sources");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().filter(|n| valid_asset_id(n)) else {
                continue;
            };
            match self.db.asset(id) {
                Ok(Some(a)) if a.status == db::Status::Waiting => {
                    self.hand_over(id, entry.path());
                }
                // The job reads this file; with a shared queue it reads
                // storage's copy (queued only once that was written).
                Ok(Some(a))
                    if matches!(a.status, db::Status::Queued | db::Status::Processing)
                        && !self.db.is_shared() => {}
                Ok(_) => {
                    let _ = std::fs::remove_file(entry.path());
                }
                Err(e) => tracing::warn!(asset = id, "{e}"),
            }
        }
    }

    /// Where an uploaded file waits for (and during) its processing.
    pub fn source_path(&self, asset: &str) -> PathBuf {
        self.config.data_dir.join("sources").join(asset)
    }

    /// The origin is stopping (see [`Vod::stopping`]).
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Scratch space of one asset's job.
    pub fn work_dir(&self, asset: &str) -> PathBuf {
        self.config.data_dir.join("work").join(asset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_is_checked_without_repeating_it() {
        let mut c = VodConfig {
            enabled: true,
            api_token: Some("0123456789abcdef".into()),
            ..VodConfig::default()
        };
        assert!(c.validate().is_ok());
        for good in [
            "postgres://brook:secret@db.internal:5432/brook",
            "postgresql://brook@127.0.0.1/brook?connect_timeout=3",
            "postgres:///brook?host=/run/postgresql",
        ] {
            c.database_url = Some(good.into());
            assert_eq!(c.validate(), Ok(()), "{good}");
        }
        for bad in [
            "mysql://brook:secret@db/brook",
            "db.internal",
            "postgres://brook:secret@db/brook?sslmode=bogus",
        ] {
            c.database_url = Some(bad.into());
            let e = c.validate().unwrap_err();
            assert!(e.starts_with("vod.database_url"), "{bad}: {e}");
            assert!(!e.contains("secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn worker_id_is_kept_per_directory_and_names_the_host() {
        let dir = std::env::temp_dir().join(format!(
            "brook-vod-worker-id-{}",
            crate::serve::hub::new_session_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let first = worker_id(&dir).unwrap();
        assert_eq!(worker_id(&dir).unwrap(), first);
        let (host, id) = first.rsplit_once(':').unwrap();
        assert!(!host.is_empty());
        assert!(valid_asset_id(id), "{id}");
        let other = dir.join("other");
        std::fs::create_dir_all(&other).unwrap();
        assert_ne!(worker_id(&other).unwrap(), first);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
