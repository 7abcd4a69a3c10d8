//! The SQLite backend: one file (WAL) on the local disk, for one origin.
//!
//! Every statement is small and runs under one mutex: SQLite answers in
//! microseconds, far below anything a request or a job waits on.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{Asset, AssetKey, DbError, Imported, Job, JobKind, NewImport, Status};

#[derive(Debug)]
pub struct SqliteDb {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    duration_s REAL,
    error TEXT,
    details TEXT,
    passthrough TEXT,
    max_duration_s INTEGER,
    direct_id TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after_ms INTEGER NOT NULL DEFAULT 0,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    last_error TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_after_ms);
CREATE TABLE IF NOT EXISTS asset_keys (
    asset_id TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    kid TEXT NOT NULL,
    sealed TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    clearkey INTEGER NOT NULL DEFAULT 1,
    drm TEXT,
    created_ms INTEGER NOT NULL
);
";

/// Columns added to `assets` since the first schema: a database made before
/// them gets them when it is opened (`ALTER TABLE ... ADD COLUMN`, which
/// keeps every row).
const ADDED_COLUMNS: &[(&str, &str)] = &[
    // Assets from a URL: the URL (normal form), and the same for the assets
    // created with `dedupe` while they are live (unique: one per URL).
    ("input_url", "TEXT"),
    ("dedupe_key", "TEXT"),
];

/// Indexes over added columns, made after them.
const ADDED_INDEXES: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS assets_dedupe ON assets (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS assets_input_url ON assets (input_url);
";

/// Brings an existing database up to the current schema.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let have: Vec<String> = tx
        .prepare("SELECT name FROM pragma_table_info('assets')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (column, kind) in ADDED_COLUMNS {
        if !have.iter().any(|h| h == column) {
            tx.execute_batch(&format!("ALTER TABLE assets ADD COLUMN {column} {kind}"))?;
        }
    }
    tx.execute_batch(ADDED_INDEXES)?;
    tx.commit()
}

/// The live asset (not errored, not being deleted) a dedupe request made
/// from a URL. Only those: an asset imported without `dedupe` is never
/// handed to a dedupe request (the edge's ad creatives come from URLs ad
/// servers name, which must not reach the application's own assets).
const LIVE_FROM_URL: &str = "SELECT * FROM assets WHERE dedupe_key = ?1
    AND status NOT IN ('errored', 'deleting') LIMIT 1";

fn asset_of(row: &Row<'_>) -> rusqlite::Result<Asset> {
    let details: Option<String> = row.get("details")?;
    Ok(Asset {
        id: row.get("id")?,
        status: Status::parse(&row.get::<_, String>("status")?),
        created_ms: row.get::<_, i64>("created_ms")? as u64,
        updated_ms: row.get::<_, i64>("updated_ms")? as u64,
        progress: row.get("progress")?,
        duration_s: row.get("duration_s")?,
        error: row.get("error")?,
        details: details.and_then(|d| serde_json::from_str(&d).ok()),
        passthrough: row.get("passthrough")?,
        max_duration_s: row
            .get::<_, Option<i64>>("max_duration_s")?
            .map(|v| v as u64),
        input_url: row.get("input_url")?,
    })
}

impl SqliteDb {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    pub fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (every statement is atomic): keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
        self.conn().execute(
            "INSERT INTO assets (id, status, created_ms, updated_ms, passthrough, max_duration_s, direct_id)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
            params![
                id,
                status.as_str(),
                now_ms as i64,
                passthrough,
                max_duration_s.map(|v| v as i64),
                direct_id
            ],
        )?;
        Ok(())
    }

    /// A new asset from a URL; `None`: the dedupe key's holder went away
    /// between the conflict and the look-up (the caller asks again). Under
    /// the connection's lock: the look-up and the insert see one state.
    pub fn create_import(&self, new: &NewImport) -> Result<Option<Imported>, DbError> {
        self.insert_import(new, true)
    }

    /// The insert without the look-up first: only the unique index stands
    /// between two dedupe assets of one URL (the tests show it does).
    #[cfg(test)]
    pub(super) fn create_import_unchecked(
        &self,
        new: &NewImport,
    ) -> Result<Option<Imported>, DbError> {
        self.insert_import(new, false)
    }

    fn insert_import(
        &self,
        new: &NewImport,
        look_first: bool,
    ) -> Result<Option<Imported>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if new.dedupe && look_first {
            if let Some(a) = tx
                .query_row(LIVE_FROM_URL, [&new.input_url], asset_of)
                .optional()?
            {
                return Ok(Some(Imported::Existing(a)));
            }
        }
        let now = new.now_ms as i64;
        let inserted = tx.execute(
            "INSERT INTO assets (id, status, created_ms, updated_ms, passthrough, max_duration_s,
                                 details, input_url, dedupe_key)
             VALUES (?1, 'queued', ?2, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
            params![
                new.id,
                now,
                new.passthrough,
                new.max_duration_s.map(|v| v as i64),
                new.details.as_ref().map(|d| d.to_string()),
                new.input_url,
                new.dedupe.then_some(&new.input_url),
            ],
        )?;
        if inserted == 0 {
            return Ok(tx
                .query_row(
                    "SELECT * FROM assets WHERE dedupe_key = ?1",
                    [&new.input_url],
                    asset_of,
                )
                .optional()?
                .map(Imported::Existing));
        }
        if let Some(key) = &new.key {
            tx.execute(
                "INSERT INTO asset_keys (asset_id, scheme, kid, sealed, revoked, clearkey, drm, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![new.id, key.scheme, key.kid, key.sealed, key.revoked, key.clearkey, key.drm, now],
            )?;
        }
        tx.execute(
            "INSERT INTO jobs (kind, asset_id, payload, created_ms, run_after_ms)
             VALUES ('process', ?1, ?2, ?3, ?3)",
            params![new.id, new.payload, now],
        )?;
        let asset = tx.query_row("SELECT * FROM assets WHERE id = ?1", [&new.id], asset_of)?;
        tx.commit()?;
        Ok(Some(Imported::Created(asset)))
    }

    pub fn live_asset_from_url(&self, input_url: &str) -> Result<Option<Asset>, DbError> {
        Ok(self
            .conn()
            .query_row(LIVE_FROM_URL, [input_url], asset_of)
            .optional()?)
    }

    /// The asset a direct upload fills.
    pub fn asset_of_direct(&self, direct_id: &str) -> Result<Option<Asset>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM assets WHERE direct_id = ?1",
                [direct_id],
                asset_of,
            )
            .optional()?)
    }

    pub fn asset(&self, id: &str) -> Result<Option<Asset>, DbError> {
        Ok(self
            .conn()
            .query_row("SELECT * FROM assets WHERE id = ?1", [id], asset_of)
            .optional()?)
    }

    /// Every asset, newest first.
    pub fn assets(&self, limit: u32) -> Result<Vec<Asset>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT * FROM assets ORDER BY created_ms DESC, id LIMIT ?1")?;
        let rows = st.query_map([limit], asset_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_status(&self, id: &str, status: Status, now_ms: u64) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE assets SET status = ?2, updated_ms = ?3 WHERE id = ?1 AND status <> 'deleting'",
            params![id, status.as_str(), now_ms as i64],
        )?;
        Ok(n == 1)
    }

    pub fn set_progress(&self, id: &str, percent: f64, now_ms: u64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE assets SET progress = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, percent.clamp(0.0, 100.0), now_ms as i64],
        )?;
        Ok(())
    }

    pub fn set_duration(&self, id: &str, seconds: f64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE assets SET duration_s = ?2 WHERE id = ?1",
            params![id, seconds],
        )?;
        Ok(())
    }

    pub fn set_details(&self, id: &str, details: &serde_json::Value) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE assets SET details = ?2 WHERE id = ?1",
            params![id, details.to_string()],
        )?;
        Ok(())
    }

    pub fn set_ready(
        &self,
        id: &str,
        details: &serde_json::Value,
        now_ms: u64,
    ) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE assets SET status = 'ready', progress = 100, error = NULL, details = ?2,
             updated_ms = ?3 WHERE id = ?1 AND status <> 'deleting'",
            params![id, details.to_string(), now_ms as i64],
        )?;
        Ok(n == 1)
    }

    pub fn set_errored(&self, id: &str, reason: &str, now_ms: u64) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE assets SET status = 'errored', error = ?2, updated_ms = ?3, dedupe_key = NULL
             WHERE id = ?1 AND status <> 'deleting'",
            params![id, reason, now_ms as i64],
        )?;
        Ok(n == 1)
    }

    /// Marks the asset for deletion and queues the job, unless it is already
    /// being deleted. `false`: no such asset.
    pub fn start_delete(&self, id: &str, now_ms: u64) -> Result<bool, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM assets WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(status) = status else {
            return Ok(false);
        };
        if status != "deleting" {
            tx.execute(
                "UPDATE assets SET status = 'deleting', updated_ms = ?2, dedupe_key = NULL WHERE id = ?1",
                params![id, now_ms as i64],
            )?;
            // The asset's other jobs stop mattering.
            tx.execute(
                "DELETE FROM jobs WHERE asset_id = ?1 AND kind = 'process' AND state = 'queued'",
                [id],
            )?;
            tx.execute(
                "INSERT INTO jobs (kind, asset_id, created_ms) VALUES ('delete', ?1, ?2)",
                params![id, now_ms as i64],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    pub fn remove_asset(&self, id: &str) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM asset_keys WHERE asset_id = ?1", [id])?;
        tx.execute("DELETE FROM assets WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    pub fn put_asset_key(&self, asset: &str, key: &AssetKey, now_ms: u64) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO asset_keys (asset_id, scheme, kid, sealed, revoked, clearkey, drm, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (asset_id) DO NOTHING",
            params![
                asset,
                key.scheme,
                key.kid,
                key.sealed,
                key.revoked,
                key.clearkey,
                key.drm,
                now_ms as i64
            ],
        )?;
        Ok(())
    }

    pub fn asset_key(&self, asset: &str) -> Result<Option<AssetKey>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT scheme, kid, sealed, revoked, clearkey, drm FROM asset_keys WHERE asset_id = ?1",
                [asset],
                |r| {
                    Ok(AssetKey {
                        scheme: r.get(0)?,
                        kid: r.get(1)?,
                        sealed: r.get(2)?,
                        revoked: r.get(3)?,
                        clearkey: r.get(4)?,
                        drm: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn revoke_asset_key(&self, asset: &str) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE asset_keys SET revoked = 1 WHERE asset_id = ?1",
            [asset],
        )?;
        Ok(n == 1)
    }

    pub fn enqueue(
        &self,
        kind: JobKind,
        asset_id: &str,
        payload: &str,
        now_ms: u64,
    ) -> Result<i64, DbError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO jobs (kind, asset_id, payload, created_ms, run_after_ms)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![kind.as_str(), asset_id, payload, now_ms as i64],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The asset's upload finished: it is queued and its process job created,
    /// in one transaction (a crash leaves both or neither).
    pub fn queue_processing(
        &self,
        asset_id: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<bool, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE assets SET status = 'queued', progress = 0, updated_ms = ?2
             WHERE id = ?1 AND status = 'waiting'",
            params![asset_id, now_ms as i64],
        )?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO jobs (kind, asset_id, payload, created_ms, run_after_ms)
             VALUES ('process', ?1, ?2, ?3, ?3)",
            params![asset_id, source, now_ms as i64],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Claims the oldest runnable job of one of `kinds` for `worker` until
    /// `now_ms + lease_ms`: a queued job whose time has come, or a running one
    /// whose lease ran out.
    pub fn claim(
        &self,
        kinds: &[JobKind],
        worker: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<Job>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let placeholders = vec!["?"; kinds.len()].join(",");
        let sql = format!(
            "SELECT id, kind, asset_id, payload, attempts FROM jobs
             WHERE kind IN ({placeholders})
               AND ((state = 'queued' AND run_after_ms <= ?) OR (state = 'running' AND lease_until_ms < ?))
             ORDER BY id LIMIT 1"
        );
        let mut args: Vec<rusqlite::types::Value> = kinds
            .iter()
            .map(|k| rusqlite::types::Value::Text((*k).to_owned()))
            .collect();
        args.push((now_ms as i64).into());
        args.push((now_ms as i64).into());
        let found = tx
            .query_row(&sql, rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        let Some((id, kind, asset_id, payload, attempts)) = found else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE jobs SET state = 'running', worker = ?2, lease_until_ms = ?3,
             attempts = attempts + 1 WHERE id = ?1",
            params![id, worker, (now_ms + lease_ms) as i64],
        )?;
        tx.commit()?;
        let Some(kind) = JobKind::parse(&kind) else {
            return Ok(None);
        };
        Ok(Some(Job {
            id,
            kind,
            asset_id,
            payload,
            attempts: attempts as u32,
        }))
    }

    /// Extends a running job's lease; `false` when the job is no longer this
    /// worker's (its lease ran out and another took it, or it was removed).
    pub fn renew(&self, job: i64, worker: &str, until_ms: u64) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE jobs SET lease_until_ms = ?3 WHERE id = ?1 AND worker = ?2 AND state = 'running'",
            params![job, worker, until_ms as i64],
        )?;
        Ok(n == 1)
    }

    pub fn finish(&self, job: i64) -> Result<(), DbError> {
        self.conn()
            .execute("DELETE FROM jobs WHERE id = ?1", [job])?;
        Ok(())
    }

    /// Puts a job back to run again at `run_after_ms` (a retry with backoff).
    pub fn retry(&self, job: i64, error: &str, run_after_ms: u64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until_ms = 0,
             run_after_ms = ?2, last_error = ?3 WHERE id = ?1",
            params![job, run_after_ms as i64, error],
        )?;
        Ok(())
    }

    /// Jobs this worker held when it stopped (a crash or restart) run again
    /// at once.
    pub fn recover(&self, worker: &str) -> Result<usize, DbError> {
        Ok(self.conn().execute(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until_ms = 0
             WHERE state = 'running'
               AND (worker = ?1 OR substr(worker, 1, length(?1) + 1) = ?1 || '/')",
            [worker],
        )?)
    }

    /// Whether a job of `kind` for the asset is queued or running.
    pub fn has_job(&self, asset_id: &str, kind: JobKind) -> Result<bool, DbError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM jobs WHERE asset_id = ?1 AND kind = ?2",
            params![asset_id, kind.as_str()],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
}
