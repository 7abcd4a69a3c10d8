//! The asset and job tables, durable across restarts, in one of two
//! databases:
//!
//! - SQLite (the default, `sqlite.rs`): one file (WAL) in `vod.data_dir`,
//!   for one origin that transcodes what it receives.
//! - PostgreSQL (`vod.database_url`, `pg.rs`): one queue shared by every
//!   origin that points at it, so transcoding grows past one machine; a job
//!   is claimed with `SELECT ... FOR UPDATE SKIP LOCKED`, so two workers never
//!   take the same one.
//!
//! Both keep the same two tables and answer the same calls ([`Db`]):
//!
//! - `assets`: one row per on-demand asset, its status (`waiting` for its
//!   upload, `queued`, `processing`, `ready`, `errored`, `deleting`), what the
//!   probe and the transcode found, and the reason when it failed.
//! - `jobs`: the work queue. A job is claimed with a lease
//!   (`lease_until_ms`) that its worker renews while it runs; a job whose
//!   lease ran out (its worker died) is claimed again. A process that starts
//!   over the same worker id hands its own jobs back first (`recover`), so a
//!   job interrupted by a restart runs again from its start at once.
//!
//! Times are the caller's clock (`now_ms` arguments): with several machines
//! on one queue, their clocks must agree (NTP) to well within a lease.
//!
//! Both backends are synchronous and called from async code: every statement
//! is short (one row or one small transaction), like a lock taken briefly.

mod pg;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

pub use pg::PgDb;
pub use sqlite::SqliteDb;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("asset database (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("asset database (PostgreSQL): {0}")]
    Postgres(#[from] ::postgres::Error),
    /// A row that does not read back as what was written (a column of
    /// another type: a schema changed under Brook).
    #[error("asset database: {0}")]
    Row(String),
    /// The PostgreSQL connection's thread is gone.
    #[error("asset database: {0}")]
    Unavailable(&'static str),
}

/// An asset's state, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created (a direct upload URL exists); its upload has not finished.
    Waiting,
    /// Uploaded, waiting for a worker.
    Queued,
    /// Being probed, transcoded, packaged and stored.
    Processing,
    /// Every object it names is in storage; served.
    Ready,
    /// It could not be made; `error` says why.
    Errored,
    /// Being removed from storage.
    Deleting,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Ready => "ready",
            Status::Errored => "errored",
            Status::Deleting => "deleting",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "waiting" => Status::Waiting,
            "queued" => Status::Queued,
            "processing" => Status::Processing,
            "ready" => Status::Ready,
            "deleting" => Status::Deleting,
            _ => Status::Errored,
        }
    }
}

/// One asset row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Asset {
    pub id: String,
    pub status: Status,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Percent of the current job done (0-100).
    pub progress: f64,
    /// Seconds of video, once probed.
    pub duration_s: Option<f64>,
    /// Why it failed (`errored`).
    pub error: Option<String>,
    /// What the transcode and packaging produced (renditions, thumbnails),
    /// JSON, set when the asset becomes ready.
    pub details: Option<serde_json::Value>,
    /// The application's own value from the upload request.
    pub passthrough: Option<String>,
    /// Longest video this asset may be, seconds (from its upload URL).
    pub max_duration_s: Option<u64>,
    /// The URL it is made from (an asset from a URL), in its normal form
    /// (`import::check::parse_input_url`).
    pub input_url: Option<String>,
}

/// A new asset made from a URL, created `queued` with its process job (and
/// its key, if encrypted) in one transaction.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub id: String,
    /// The normal form of the URL (the dedupe key).
    pub input_url: String,
    /// Answer with a live asset already made from the same URL instead.
    pub dedupe: bool,
    pub passthrough: Option<String>,
    pub max_duration_s: Option<u64>,
    /// `{"request": {...}}`, as `set_details` takes it.
    pub details: Option<serde_json::Value>,
    pub key: Option<AssetKey>,
    /// The process job's payload.
    pub payload: String,
    pub now_ms: u64,
}

/// What `create_import` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    Created(Asset),
    /// `dedupe`: the live asset (not errored, not being deleted) already
    /// made from the same URL; nothing was created.
    Existing(Asset),
}

/// An encrypted asset's content key, sealed under the master key
/// (`keys::KeyService::new_asset_key`): the database never holds it in the
/// clear.
#[derive(Clone, PartialEq, Eq)]
pub struct AssetKey {
    /// `cbcs` or `cenc`.
    pub scheme: String,
    /// The KID, 32 hex digits.
    pub kid: String,
    pub sealed: String,
    pub revoked: bool,
    /// Whether the edge's ClearKey license may hand the key out.
    pub clearkey: bool,
    /// A DRM key provider's signalling (JSON of
    /// `keys::speke::SystemSignalling`s), when the key came from one.
    pub drm: Option<String>,
}

impl std::fmt::Debug for AssetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetKey")
            .field("scheme", &self.scheme)
            .field("kid", &self.kid)
            .field("revoked", &self.revoked)
            .field("clearkey", &self.clearkey)
            .field("drm", &self.drm.is_some())
            .finish_non_exhaustive()
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Probe, transcode, package, thumbnails, store: the asset becomes ready.
    Process,
    /// Remove every object of the asset, then the row.
    Delete,
    /// Deliver one webhook (the payload is the body).
    Webhook,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Process => "process",
            JobKind::Delete => "delete",
            JobKind::Webhook => "webhook",
        }
    }

    fn parse(s: &str) -> Option<JobKind> {
        Some(match s {
            "process" => JobKind::Process,
            "delete" => JobKind::Delete,
            "webhook" => JobKind::Webhook,
            _ => return None,
        })
    }
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub asset_id: String,
    /// Kind-specific data (the webhook body; the process job's source file).
    pub payload: String,
    /// How many times it was claimed before, this claim not counted.
    pub attempts: u32,
}

/// The asset and job tables (see the module docs). Cheap to clone: every
/// clone talks to the same database.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(Arc<SqliteDb>),
    Postgres(Arc<PgDb>),
}

/// Runs the same call on whichever backend this is.
macro_rules! each {
    ($self:ident, $db:ident => $call:expr) => {
        match $self {
            Db::Sqlite($db) => $call,
            Db::Postgres($db) => $call,
        }
    };
}

impl Db {
    /// Opens (creating if missing) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        Ok(Db::Sqlite(Arc::new(SqliteDb::open(path)?)))
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://...`) and
    /// creates the tables if they are missing.
    pub fn connect(url: &str) -> Result<Self, DbError> {
        Ok(Db::Postgres(Arc::new(PgDb::connect(url)?)))
    }

    /// Whether other processes (other machines) share this queue: a job's
    /// input must then be somewhere every one of them can read.
    pub fn is_shared(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Which database this is, for logs (no password).
    pub fn describe(&self) -> String {
        match self {
            Db::Sqlite(db) => db.describe(),
            Db::Postgres(db) => db.describe(),
        }
    }

    /// A new asset; `direct_id`: the direct upload that will fill it.
    pub fn create_asset(
        &self,
        id: &str,
        status: Status,
        now_ms: u64,
        passthrough: Option<&str>,
        max_duration_s: Option<u64>,
        direct_id: Option<&str>,
    ) -> Result<(), DbError> {
        each!(self, db => db.create_asset(id, status, now_ms, passthrough, max_duration_s, direct_id))
    }

    /// A new asset from a URL (see [`NewImport`]). With `dedupe`, at most
    /// one is created per URL however many ask at once: the SQLite backend
    /// decides under its lock, PostgreSQL through a unique index on the URL
    /// of the assets that were created with `dedupe` (`assets_dedupe`);
    /// the key is released when that asset errors or is deleted, so the next
    /// request makes a new one.
    pub fn create_import(&self, new: &NewImport) -> Result<Imported, DbError> {
        // `None`: the asset that held the URL went (errored, deleted)
        // between the conflict and the look at it; ask again.
        for _ in 0..3 {
            if let Some(done) = each!(self, db => db.create_import(new))? {
                return Ok(done);
            }
        }
        Err(DbError::Row(format!(
            "no asset for {} after three tries",
            new.input_url
        )))
    }

    /// The oldest live asset (not errored, not being deleted) made from
    /// `input_url` (its normal form).
    pub fn live_asset_from_url(&self, input_url: &str) -> Result<Option<Asset>, DbError> {
        each!(self, db => db.live_asset_from_url(input_url))
    }

    /// The asset a direct upload fills.
    pub fn asset_of_direct(&self, direct_id: &str) -> Result<Option<Asset>, DbError> {
        each!(self, db => db.asset_of_direct(direct_id))
    }

    pub fn asset(&self, id: &str) -> Result<Option<Asset>, DbError> {
        each!(self, db => db.asset(id))
    }

    /// Every asset, newest first.
    pub fn assets(&self, limit: u32) -> Result<Vec<Asset>, DbError> {
        each!(self, db => db.assets(limit))
    }

    /// These three leave an asset being deleted alone: `false` when the asset
    /// is gone or `deleting` (the caller's work on it is moot).
    pub fn set_status(&self, id: &str, status: Status, now_ms: u64) -> Result<bool, DbError> {
        each!(self, db => db.set_status(id, status, now_ms))
    }

    pub fn set_progress(&self, id: &str, percent: f64, now_ms: u64) -> Result<(), DbError> {
        each!(self, db => db.set_progress(id, percent, now_ms))
    }

    pub fn set_duration(&self, id: &str, seconds: f64) -> Result<(), DbError> {
        each!(self, db => db.set_duration(id, seconds))
    }

    /// The asset's details before it is made: what the upload request asked
    /// for (`{"request": {...}}`); replaced by the results when it is ready.
    pub fn set_details(&self, id: &str, details: &serde_json::Value) -> Result<(), DbError> {
        each!(self, db => db.set_details(id, details))
    }

    pub fn set_ready(
        &self,
        id: &str,
        details: &serde_json::Value,
        now_ms: u64,
    ) -> Result<bool, DbError> {
        each!(self, db => db.set_ready(id, details, now_ms))
    }

    pub fn set_errored(&self, id: &str, reason: &str, now_ms: u64) -> Result<bool, DbError> {
        each!(self, db => db.set_errored(id, reason, now_ms))
    }

    /// Marks the asset for deletion and queues the job, unless it is already
    /// being deleted. `false`: no such asset.
    pub fn start_delete(&self, id: &str, now_ms: u64) -> Result<bool, DbError> {
        each!(self, db => db.start_delete(id, now_ms))
    }

    /// Removes the asset's row and its key.
    pub fn remove_asset(&self, id: &str) -> Result<(), DbError> {
        each!(self, db => db.remove_asset(id))
    }

    /// Stores an asset's content key (once: a key already there is kept).
    pub fn put_asset_key(&self, asset: &str, key: &AssetKey, now_ms: u64) -> Result<(), DbError> {
        each!(self, db => db.put_asset_key(asset, key, now_ms))
    }

    /// The asset's content key, if it is encrypted.
    pub fn asset_key(&self, asset: &str) -> Result<Option<AssetKey>, DbError> {
        each!(self, db => db.asset_key(asset))
    }

    /// Revokes the asset's key: never served again. `false`: the asset has
    /// no key.
    pub fn revoke_asset_key(&self, asset: &str) -> Result<bool, DbError> {
        each!(self, db => db.revoke_asset_key(asset))
    }

    pub fn enqueue(
        &self,
        kind: JobKind,
        asset_id: &str,
        payload: &str,
        now_ms: u64,
    ) -> Result<i64, DbError> {
        each!(self, db => db.enqueue(kind, asset_id, payload, now_ms))
    }

    /// The asset's upload finished: it is queued and its process job created
    /// (`source`: where the job finds the upload), in one transaction (a crash
    /// leaves both or neither). Only while the asset is `waiting`: `false`
    /// when it is not (deleted while its upload was handed over).
    pub fn queue_processing(
        &self,
        asset_id: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<bool, DbError> {
        each!(self, db => db.queue_processing(asset_id, source, now_ms))
    }

    /// Claims the oldest runnable job of one of `kinds` for `worker` until
    /// `now_ms + lease_ms`: a queued job whose time has come, or a running one
    /// whose lease ran out. No two claims ever get the same job while its
    /// lease holds, from this process or another.
    pub fn claim(
        &self,
        kinds: &[JobKind],
        worker: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<Job>, DbError> {
        each!(self, db => db.claim(kinds, worker, now_ms, lease_ms))
    }

    /// Extends a running job's lease; `false` when the job is no longer this
    /// worker's (its lease ran out and another took it, or it was removed).
    pub fn renew(&self, job: i64, worker: &str, until_ms: u64) -> Result<bool, DbError> {
        each!(self, db => db.renew(job, worker, until_ms))
    }

    pub fn finish(&self, job: i64) -> Result<(), DbError> {
        each!(self, db => db.finish(job))
    }

    /// Puts a job back to run again at `run_after_ms` (a retry with backoff).
    pub fn retry(&self, job: i64, error: &str, run_after_ms: u64) -> Result<(), DbError> {
        each!(self, db => db.retry(job, error, run_after_ms))
    }

    /// Jobs this worker held when it stopped (a crash or restart) run again
    /// at once. Only `worker`'s (claims made as `worker` or `worker/<n>`):
    /// another machine's running jobs are its own.
    pub fn recover(&self, worker: &str) -> Result<usize, DbError> {
        each!(self, db => db.recover(worker))
    }

    /// Whether a job of `kind` for the asset is queued or running.
    pub fn has_job(&self, asset_id: &str, kind: JobKind) -> Result<bool, DbError> {
        each!(self, db => db.has_job(asset_id, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "brook-vod-db-{}",
            crate::serve::hub::new_session_id()
        ));
        let path = dir.join("brook.db");
        (Db::open(&path).unwrap(), dir)
    }

    #[test]
    fn jobs_are_leased_renewed_recovered_and_taken_over() {
        let (db, dir) = db();
        db.create_asset("a1", Status::Waiting, 1, None, Some(60), Some("d1"))
            .unwrap();
        db.queue_processing("a1", "/up/a1", 10).unwrap();
        assert_eq!(db.asset("a1").unwrap().unwrap().status, Status::Queued);
        assert_eq!(db.asset_of_direct("d1").unwrap().unwrap().id, "a1");
        assert!(db.asset_of_direct("d2").unwrap().is_none());
        let job = db
            .claim(&[JobKind::Process], "w1", 20, 1000)
            .unwrap()
            .unwrap();
        assert_eq!(
            (job.kind, job.asset_id.as_str(), job.payload.as_str()),
            (JobKind::Process, "a1", "/up/a1")
        );
        assert_eq!(job.attempts, 0);
        // Held: nobody else gets it until the lease runs out.
        assert!(db
            .claim(&[JobKind::Process], "w2", 500, 1000)
            .unwrap()
            .is_none());
        assert!(db.renew(job.id, "w1", 2000).unwrap());
        assert!(db
            .claim(&[JobKind::Process], "w2", 1500, 1000)
            .unwrap()
            .is_none());
        // w1 dies: after the lease, w2 takes over and w1 cannot renew.
        let taken = db
            .claim(&[JobKind::Process], "w2", 2001, 1000)
            .unwrap()
            .unwrap();
        assert_eq!((taken.id, taken.attempts), (job.id, 1));
        assert!(!db.renew(job.id, "w1", 5000).unwrap());
        // w2 restarts: its job is queued again at once.
        assert_eq!(db.recover("w2").unwrap(), 1);
        let again = db
            .claim(&[JobKind::Process], "w2", 2002, 1000)
            .unwrap()
            .unwrap();
        assert_eq!(again.id, job.id);
        db.retry(again.id, "boom", 9000).unwrap();
        assert!(db
            .claim(&[JobKind::Process], "w2", 8999, 1000)
            .unwrap()
            .is_none());
        assert!(db
            .claim(&[JobKind::Webhook], "w2", 9000, 1000)
            .unwrap()
            .is_none());
        let last = db
            .claim(&[JobKind::Process], "w2", 9000, 1000)
            .unwrap()
            .unwrap();
        db.finish(last.id).unwrap();
        assert!(!db.has_job("a1", JobKind::Process).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn survives_reopening_and_deletes_once() {
        let (db, dir) = db();
        db.create_asset("a2", Status::Queued, 5, Some("x"), None, None)
            .unwrap();
        db.set_ready("a2", &serde_json::json!({"renditions": ["360p"]}), 7)
            .unwrap();
        drop(db);
        let db = Db::open(&dir.join("brook.db")).unwrap();
        let a = db.asset("a2").unwrap().unwrap();
        assert_eq!(a.status, Status::Ready);
        assert_eq!(a.passthrough.as_deref(), Some("x"));
        assert_eq!(a.details.unwrap()["renditions"][0], "360p");
        assert!(db.start_delete("a2", 8).unwrap());
        assert!(db.start_delete("a2", 9).unwrap());
        assert!(!db.start_delete("nope", 9).unwrap());
        assert!(db
            .claim(&[JobKind::Delete], "w", 10, 100)
            .unwrap()
            .is_some());
        assert!(db
            .claim(&[JobKind::Delete], "w", 10, 100)
            .unwrap()
            .is_none());
        assert_eq!(db.assets(10).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn import(id: &str, url: &str, dedupe: bool) -> NewImport {
        NewImport {
            id: id.into(),
            input_url: url.into(),
            dedupe,
            passthrough: Some("ad-1".into()),
            max_duration_s: Some(120),
            details: Some(serde_json::json!({"request": {"max_size_bytes": 1000}})),
            key: None,
            payload: format!("url:{url}"),
            now_ms: 100,
        }
    }

    #[test]
    fn imports_are_queued_with_their_job_and_deduped_per_url() {
        let (db, dir) = db();
        let u = "https://cdn.example/ad.mp4";
        let Imported::Created(a) = db.create_import(&import("i1", u, true)).unwrap() else {
            panic!("created");
        };
        assert_eq!(
            (a.status, a.input_url.as_deref(), a.passthrough.as_deref()),
            (Status::Queued, Some(u), Some("ad-1"))
        );
        assert_eq!(a.details.unwrap()["request"]["max_size_bytes"], 1000);
        let job = db
            .claim(&[JobKind::Process], "w", 200, 1000)
            .unwrap()
            .unwrap();
        assert_eq!(
            (job.asset_id.as_str(), job.payload.as_str()),
            ("i1", "url:https://cdn.example/ad.mp4")
        );
        // Same URL with dedupe: the first asset, nothing new.
        assert_eq!(
            db.create_import(&import("i2", u, true)).unwrap(),
            Imported::Existing(db.asset("i1").unwrap().unwrap())
        );
        assert!(db.asset("i2").unwrap().is_none());
        // Without dedupe: a second asset from the same URL.
        assert!(matches!(
            db.create_import(&import("i3", u, false)).unwrap(),
            Imported::Created(_)
        ));
        assert_eq!(db.live_asset_from_url(u).unwrap().unwrap().id, "i1");
        // The first errors: the dedupe key goes with it. The asset made
        // without dedupe is never a dedupe request's answer (ad servers
        // name these URLs; the application's own assets stay its own): a
        // new one is made, and answers from then on.
        assert!(db.set_errored("i1", "boom", 300).unwrap());
        assert!(db.live_asset_from_url(u).unwrap().is_none());
        assert!(matches!(
            db.create_import(&import("i4", u, true)).unwrap(),
            Imported::Created(a) if a.id == "i4"
        ));
        assert_eq!(db.live_asset_from_url(u).unwrap().unwrap().id, "i4");
        assert!(db.start_delete("i4", 400).unwrap());
        assert!(db.live_asset_from_url(u).unwrap().is_none());
        assert!(matches!(
            db.create_import(&import("i5", u, true)).unwrap(),
            Imported::Created(a) if a.id == "i5"
        ));
        // The unique index, not only the look-up, holds the rule: a row
        // from a dedupe request cannot be added twice for one URL.
        let Db::Sqlite(inner) = &db else {
            panic!("sqlite")
        };
        assert!(matches!(
            inner.create_import_unchecked(&import("i6", u, true)).unwrap(),
            Some(Imported::Existing(a)) if a.id == "i5"
        ));
        assert!(db.asset("i6").unwrap().is_none());
        // Another URL is another asset.
        assert!(matches!(
            db.create_import(&import("i7", "https://cdn.example/other.mp4", true))
                .unwrap(),
            Imported::Created(_)
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_dedupe_requests_make_one_asset() {
        let (db, dir) = db();
        let u = "https://cdn.example/same.mp4";
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|n| {
                    let db = db.clone();
                    s.spawn(move || {
                        match db
                            .create_import(&import(&format!("c{n}"), u, true))
                            .unwrap()
                        {
                            Imported::Created(a) | Imported::Existing(a) => a.id,
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(db.assets(100).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_old_database_gets_the_new_columns() {
        let dir = std::env::temp_dir().join(format!(
            "brook-vod-db-old-{}",
            crate::serve::hub::new_session_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("brook.db");
        {
            // The assets table as releases before input URLs made it.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE assets (id TEXT PRIMARY KEY, status TEXT NOT NULL,
                 created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
                 progress REAL NOT NULL DEFAULT 0, duration_s REAL, error TEXT, details TEXT,
                 passthrough TEXT, max_duration_s INTEGER, direct_id TEXT UNIQUE);
                 INSERT INTO assets (id, status, created_ms, updated_ms) VALUES ('old', 'ready', 1, 1);",
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.asset("old").unwrap().unwrap().input_url, None);
        assert!(matches!(
            db.create_import(&import("new", "https://h.example/a.mp4", true))
                .unwrap(),
            Imported::Created(_)
        ));
        drop(db);
        // Opening again changes nothing.
        let db = Db::open(&path).unwrap();
        assert_eq!(db.assets(10).unwrap().len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn asset_keys_are_kept_once_revoked_and_removed_with_the_asset() {
        let (db, dir) = db();
        db.create_asset("a3", Status::Waiting, 1, None, None, None)
            .unwrap();
        assert_eq!(db.asset_key("a3").unwrap(), None);
        let key = AssetKey {
            scheme: "cbcs".into(),
            kid: "0".repeat(32),
            sealed: "ab".repeat(60),
            revoked: false,
            clearkey: false,
            drm: Some("[]".into()),
        };
        db.put_asset_key("a3", &key, 2).unwrap();
        let other = AssetKey {
            kid: "1".repeat(32),
            ..key.clone()
        };
        db.put_asset_key("a3", &other, 3).unwrap();
        assert_eq!(
            db.asset_key("a3").unwrap().as_ref(),
            Some(&key),
            "the first is kept"
        );
        assert!(!format!("{key:?}").contains(&key.sealed));
        assert!(db.revoke_asset_key("a3").unwrap());
        assert!(db.asset_key("a3").unwrap().unwrap().revoked);
        assert!(!db.revoke_asset_key("nope").unwrap());
        db.remove_asset("a3").unwrap();
        assert_eq!(db.asset_key("a3").unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
