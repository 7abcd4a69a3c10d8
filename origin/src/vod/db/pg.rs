//! The PostgreSQL backend: one queue shared by several origins (several
//! machines), `vod.database_url`.
//!
//! A job is claimed in a transaction that selects it `FOR UPDATE SKIP
//! LOCKED` and marks it running with this worker's lease: a second worker
//! claiming at the same moment skips the row the first one holds and takes
//! the next, and after the first commits the row no longer matches (it is
//! `running` with a lease in the future). A worker that dies stops renewing;
//! once its lease has run out any worker claims the job again.
//!
//! One connection per process, on a thread of its own, statements one at a
//! time. Not a pool: every statement is one short round trip (a row, or a
//! transaction of two or three), a process makes a few per second (claims
//! while idle, renewals, progress), and the heavy work is ffmpeg, not SQL.
//! The thread exists because the blocking `postgres` client drives its own
//! small tokio runtime, which must not be entered from a runtime thread (it
//! would panic): callers hand it a closure and wait for the answer, as they
//! would wait on the SQLite mutex. A connection that broke (the server
//! restarted, the network dropped) is opened again on the next statement.
//!
//! No TLS: this build connects with `NoTls`, so reach a remote server over
//! a local socket, a VPN or an SSH tunnel, or build with `postgres-native-tls`
//! (or `postgres-openssl`) and pass its connector here.

use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row};

use super::{Asset, AssetKey, DbError, Imported, Job, JobKind, NewImport, Status};

/// Tables as in SQLite, with PostgreSQL's types. Created under an advisory
/// lock: two origins starting at once would otherwise race in
/// `CREATE TABLE IF NOT EXISTS` (it is not atomic against itself).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    duration_s DOUBLE PRECISION,
    error TEXT,
    details TEXT,
    passthrough TEXT,
    max_duration_s BIGINT,
    direct_id TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after_ms BIGINT NOT NULL DEFAULT 0,
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    worker TEXT,
    last_error TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_after_ms);
CREATE TABLE IF NOT EXISTS asset_keys (
    asset_id TEXT PRIMARY KEY,
    scheme TEXT NOT NULL,
    kid TEXT NOT NULL,
    sealed TEXT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    clearkey BOOLEAN NOT NULL DEFAULT TRUE,
    drm TEXT,
    created_ms BIGINT NOT NULL
);
-- Added since the first schema (a database made before gets them here):
-- assets from a URL, the URL in its normal form, and the same for the
-- assets created with `dedupe` while they are live (unique: one per URL,
-- however many origins ask at once).
ALTER TABLE assets ADD COLUMN IF NOT EXISTS input_url TEXT;
ALTER TABLE assets ADD COLUMN IF NOT EXISTS dedupe_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS assets_dedupe ON assets (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS assets_input_url ON assets (input_url);
";

/// The live asset (not errored, not being deleted) a dedupe request made
/// from a URL. Only those: an asset imported without `dedupe` is never
/// handed to a dedupe request (the edge's ad creatives come from URLs ad
/// servers name, which must not reach the application's own assets).
const LIVE_FROM_URL: &str = "SELECT * FROM assets WHERE dedupe_key = $1
    AND status NOT IN ('errored', 'deleting') LIMIT 1";

/// The advisory lock key the schema is created under ("brookvod").
const SCHEMA_LOCK: i64 = 0x62726f6f6b766f64;

/// Statements taking longer than this fail (and the caller retries) rather
/// than hold the connection: none of them should take more than
/// milliseconds.
const STATEMENT_TIMEOUT_MS: u32 = 10_000;

type Call = Box<dyn FnOnce(&mut Conn) + Send>;

/// The connection, owned by its thread.
struct Conn {
    config: Config,
    client: Option<Client>,
}

impl Conn {
    fn client(&mut self) -> Result<&mut Client, DbError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        let client = match self.client.take() {
            Some(c) => c,
            None => {
                let mut c = self.config.connect(NoTls)?;
                c.batch_execute(&format!("SET statement_timeout = {STATEMENT_TIMEOUT_MS}"))?;
                c
            }
        };
        Ok(self.client.insert(client))
    }
}

/// The job queue in PostgreSQL.
pub struct PgDb {
    calls: mpsc::Sender<Call>,
    target: String,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDb")
            .field("target", &self.target)
            .finish()
    }
}

type Arg = Box<dyn ToSql + Sync + Send>;

/// An owned statement argument (the statement runs on another thread).
fn arg<T: ToSql + Sync + Send + 'static>(v: T) -> Arg {
    Box::new(v)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn row_err(e: postgres::Error) -> DbError {
    DbError::Row(e.to_string())
}

fn asset_of(row: &Row) -> Result<Asset, DbError> {
    let details: Option<String> = row.try_get("details").map_err(row_err)?;
    Ok(Asset {
        id: row.try_get("id").map_err(row_err)?,
        status: Status::parse(row.try_get("status").map_err(row_err)?),
        created_ms: row.try_get::<_, i64>("created_ms").map_err(row_err)? as u64,
        updated_ms: row.try_get::<_, i64>("updated_ms").map_err(row_err)? as u64,
        progress: row.try_get("progress").map_err(row_err)?,
        duration_s: row.try_get("duration_s").map_err(row_err)?,
        error: row.try_get("error").map_err(row_err)?,
        details: details.and_then(|d| serde_json::from_str(&d).ok()),
        passthrough: row.try_get("passthrough").map_err(row_err)?,
        max_duration_s: row
            .try_get::<_, Option<i64>>("max_duration_s")
            .map_err(row_err)?
            .map(|v| v as u64),
        input_url: row.try_get("input_url").map_err(row_err)?,
    })
}

impl PgDb {
    /// Connects (the first connection is made here, so a wrong URL or an
    /// unreachable server fails the start) and creates the tables.
    pub fn connect(url: &str) -> Result<Self, DbError> {
        let mut config = Config::from_str(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let target = describe(&config);
        let (calls, queue) = mpsc::channel::<Call>();
        std::thread::Builder::new()
            .name("vod-postgres".into())
            .spawn(move || {
                let mut conn = Conn {
                    config,
                    client: None,
                };
                // Ends when the last PgDb (its sender) is dropped.
                for call in queue {
                    call(&mut conn);
                }
            })
            .map_err(|_| DbError::Unavailable("cannot start the PostgreSQL thread"))?;
        let db = PgDb { calls, target };
        db.run(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()?;
            Ok(())
        })?;
        Ok(db)
    }

    pub fn describe(&self) -> String {
        self.target.clone()
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let (answer, answered) = mpsc::sync_channel(1);
        let call: Call = Box::new(move |conn: &mut Conn| {
            let out = conn.client().and_then(f);
            if let Err(DbError::Postgres(e)) = &out {
                if e.is_closed() {
                    conn.client = None;
                }
            }
            let _ = answer.send(out);
        });
        self.calls
            .send(call)
            .map_err(|_| DbError::Unavailable("the PostgreSQL thread stopped"))?;
        answered
            .recv()
            .map_err(|_| DbError::Unavailable("the PostgreSQL thread stopped"))?
    }

    pub fn create_asset(
        &self,
        id: &str,
        status: Status,
        now_ms: u64,
        passthrough: Option<&str>,
        max_duration_s: Option<u64>,
        direct_id: Option<&str>,
    ) -> Result<(), DbError> {
        let (id, passthrough, direct_id) = (
            id.to_owned(),
            passthrough.map(str::to_owned),
            direct_id.map(str::to_owned),
        );
        let max = max_duration_s.map(i64_of);
        self.run(move |c| {
            c.execute(
                "INSERT INTO assets (id, status, created_ms, updated_ms, passthrough, max_duration_s, direct_id)
                 VALUES ($1, $2, $3, $3, $4, $5, $6)",
                &[&id, &status.as_str(), &i64_of(now_ms), &passthrough, &max, &direct_id],
            )?;
            Ok(())
        })
    }

    /// A new asset from a URL; `None`: the dedupe key's holder went away
    /// between the conflict and the look-up (the caller asks again). Two
    /// origins inserting the same URL at once: the unique index makes the
    /// second `INSERT ... ON CONFLICT DO NOTHING` wait for the first to
    /// commit, then insert nothing; it answers with the first's asset.
    pub fn create_import(&self, new: &NewImport) -> Result<Option<Imported>, DbError> {
        let new = new.clone();
        self.run(move |c| {
            let now = i64_of(new.now_ms);
            let mut tx = c.transaction()?;
            if new.dedupe {
                if let Some(row) = tx.query_opt(LIVE_FROM_URL, &[&new.input_url])? {
                    return Ok(Some(Imported::Existing(asset_of(&row)?)));
                }
            }
            let details = new.details.as_ref().map(|d| d.to_string());
            let dedupe_key = new.dedupe.then(|| new.input_url.clone());
            let inserted = tx.execute(
                "INSERT INTO assets (id, status, created_ms, updated_ms, passthrough, max_duration_s,
                                     details, input_url, dedupe_key)
                 VALUES ($1, 'queued', $2, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
                &[
                    &new.id,
                    &now,
                    &new.passthrough,
                    &new.max_duration_s.map(i64_of),
                    &details,
                    &new.input_url,
                    &dedupe_key,
                ],
            )?;
            if inserted == 0 {
                let holder = tx
                    .query_opt("SELECT * FROM assets WHERE dedupe_key = $1", &[&new.input_url])?
                    .as_ref()
                    .map(asset_of)
                    .transpose()?;
                return Ok(holder.map(Imported::Existing));
            }
            if let Some(key) = &new.key {
                tx.execute(
                    "INSERT INTO asset_keys (asset_id, scheme, kid, sealed, revoked, clearkey, drm, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[&new.id, &key.scheme, &key.kid, &key.sealed, &key.revoked, &key.clearkey, &key.drm, &now],
                )?;
            }
            tx.execute(
                "INSERT INTO jobs (kind, asset_id, payload, created_ms, run_after_ms)
                 VALUES ('process', $1, $2, $3, $3)",
                &[&new.id, &new.payload, &now],
            )?;
            let row = tx.query_one("SELECT * FROM assets WHERE id = $1", &[&new.id])?;
            let asset = asset_of(&row)?;
            tx.commit()?;
            Ok(Some(Imported::Created(asset)))
        })
    }

    pub fn live_asset_from_url(&self, input_url: &str) -> Result<Option<Asset>, DbError> {
        let input_url = input_url.to_owned();
        self.run(move |c| {
            c.query_opt(LIVE_FROM_URL, &[&input_url])?
                .as_ref()
                .map(asset_of)
                .transpose()
        })
    }

    pub fn asset_of_direct(&self, direct_id: &str) -> Result<Option<Asset>, DbError> {
        let direct_id = direct_id.to_owned();
        self.run(move |c| {
            c.query_opt("SELECT * FROM assets WHERE direct_id = $1", &[&direct_id])?
                .as_ref()
                .map(asset_of)
                .transpose()
        })
    }

    pub fn asset(&self, id: &str) -> Result<Option<Asset>, DbError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.query_opt("SELECT * FROM assets WHERE id = $1", &[&id])?
                .as_ref()
                .map(asset_of)
                .transpose()
        })
    }

    pub fn assets(&self, limit: u32) -> Result<Vec<Asset>, DbError> {
        self.run(move |c| {
            c.query(
                "SELECT * FROM assets ORDER BY created_ms DESC, id LIMIT $1",
                &[&i64::from(limit)],
            )?
            .iter()
            .map(asset_of)
            .collect()
        })
    }

    /// One statement that changes an asset row, its arguments owned.
    fn update(&self, sql: &'static str, args: Vec<Arg>) -> Result<u64, DbError> {
        self.run(move |c| {
            let refs: Vec<&(dyn ToSql + Sync)> = args
                .iter()
                .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                .collect();
            Ok(c.execute(sql, &refs)?)
        })
    }

    pub fn set_status(&self, id: &str, status: Status, now_ms: u64) -> Result<bool, DbError> {
        self.update(
            "UPDATE assets SET status = $2, updated_ms = $3 WHERE id = $1 AND status <> 'deleting'",
            vec![
                arg(id.to_owned()),
                arg(status.as_str()),
                arg(i64_of(now_ms)),
            ],
        )
        .map(|n| n == 1)
    }

    pub fn set_progress(&self, id: &str, percent: f64, now_ms: u64) -> Result<(), DbError> {
        self.update(
            "UPDATE assets SET progress = $2, updated_ms = $3 WHERE id = $1",
            vec![
                arg(id.to_owned()),
                arg(percent.clamp(0.0, 100.0)),
                arg(i64_of(now_ms)),
            ],
        )
        .map(drop)
    }

    pub fn set_duration(&self, id: &str, seconds: f64) -> Result<(), DbError> {
        self.update(
            "UPDATE assets SET duration_s = $2 WHERE id = $1",
            vec![arg(id.to_owned()), arg(seconds)],
        )
        .map(drop)
    }

    pub fn set_details(&self, id: &str, details: &serde_json::Value) -> Result<(), DbError> {
        self.update(
            "UPDATE assets SET details = $2 WHERE id = $1",
            vec![arg(id.to_owned()), arg(details.to_string())],
        )
        .map(drop)
    }

    pub fn set_ready(
        &self,
        id: &str,
        details: &serde_json::Value,
        now_ms: u64,
    ) -> Result<bool, DbError> {
        self.update(
            "UPDATE assets SET status = 'ready', progress = 100, error = NULL, details = $2,
             updated_ms = $3 WHERE id = $1 AND status <> 'deleting'",
            vec![
                arg(id.to_owned()),
                arg(details.to_string()),
                arg(i64_of(now_ms)),
            ],
        )
        .map(|n| n == 1)
    }

    pub fn set_errored(&self, id: &str, reason: &str, now_ms: u64) -> Result<bool, DbError> {
        self.update(
            "UPDATE assets SET status = 'errored', error = $2, updated_ms = $3, dedupe_key = NULL
             WHERE id = $1 AND status <> 'deleting'",
            vec![
                arg(id.to_owned()),
                arg(reason.to_owned()),
                arg(i64_of(now_ms)),
            ],
        )
        .map(|n| n == 1)
    }

    pub fn start_delete(&self, id: &str, now_ms: u64) -> Result<bool, DbError> {
        let id = id.to_owned();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            // The row lock orders two deletes of one asset: the second sees
            // `deleting` and queues nothing.
            let status: Option<String> = tx
                .query_opt("SELECT status FROM assets WHERE id = $1 FOR UPDATE", &[&id])?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(row_err)?;
            let Some(status) = status else {
                return Ok(false);
            };
            if status != "deleting" {
                let now = i64_of(now_ms);
                tx.execute(
                    "UPDATE assets SET status = 'deleting', updated_ms = $2, dedupe_key = NULL WHERE id = $1",
                    &[&id, &now],
                )?;
                // The asset's other jobs stop mattering.
                tx.execute(
                    "DELETE FROM jobs WHERE asset_id = $1 AND kind = 'process' AND state = 'queued'",
                    &[&id],
                )?;
                tx.execute(
                    "INSERT INTO jobs (kind, asset_id, created_ms) VALUES ('delete', $1, $2)",
                    &[&id, &now],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    pub fn remove_asset(&self, id: &str) -> Result<(), DbError> {
        let id = id.to_owned();
        self.run(move |c| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM asset_keys WHERE asset_id = $1", &[&id])?;
            tx.execute("DELETE FROM assets WHERE id = $1", &[&id])?;
            tx.commit()?;
            Ok(())
        })
    }

    pub fn put_asset_key(&self, asset: &str, key: &AssetKey, now_ms: u64) -> Result<(), DbError> {
        self.update(
            "INSERT INTO asset_keys (asset_id, scheme, kid, sealed, revoked, clearkey, drm, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (asset_id) DO NOTHING",
            vec![
                arg(asset.to_owned()),
                arg(key.scheme.clone()),
                arg(key.kid.clone()),
                arg(key.sealed.clone()),
                arg(key.revoked),
                arg(key.clearkey),
                arg(key.drm.clone()),
                arg(i64_of(now_ms)),
            ],
        )
        .map(drop)
    }

    pub fn asset_key(&self, asset: &str) -> Result<Option<AssetKey>, DbError> {
        let asset = asset.to_owned();
        self.run(move |c| {
            let Some(r) = c.query_opt(
                "SELECT scheme, kid, sealed, revoked, clearkey, drm FROM asset_keys WHERE asset_id = $1",
                &[&asset],
            )?
            else {
                return Ok(None);
            };
            Ok(Some(AssetKey {
                scheme: r.try_get(0).map_err(row_err)?,
                kid: r.try_get(1).map_err(row_err)?,
                sealed: r.try_get(2).map_err(row_err)?,
                revoked: r.try_get(3).map_err(row_err)?,
                clearkey: r.try_get(4).map_err(row_err)?,
                drm: r.try_get(5).map_err(row_err)?,
            }))
        })
    }

    pub fn revoke_asset_key(&self, asset: &str) -> Result<bool, DbError> {
        self.update(
            "UPDATE asset_keys SET revoked = TRUE WHERE asset_id = $1",
            vec![arg(asset.to_owned())],
        )
        .map(|n| n == 1)
    }

    pub fn enqueue(
        &self,
        kind: JobKind,
        asset_id: &str,
        payload: &str,
        now_ms: u64,
    ) -> Result<i64, DbError> {
        let (asset_id, payload) = (asset_id.to_owned(), payload.to_owned());
        self.run(move |c| {
            let row = c.query_one(
                "INSERT INTO jobs (kind, asset_id, payload, created_ms, run_after_ms)
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
                &[&kind.as_str(), &asset_id, &payload, &i64_of(now_ms)],
            )?;
            row.try_get(0).map_err(row_err)
        })
    }

    pub fn queue_processing(
        &self,
        asset_id: &str,
        source: &str,
        now_ms: u64,
    ) -> Result<bool, DbError> {
        let (asset_id, source) = (asset_id.to_owned(), source.to_owned());
        self.run(move |c| {
            let now = i64_of(now_ms);
            let mut tx = c.transaction()?;
            // The row lock (UPDATE) orders this against a `start_delete`.
            let n = tx.execute(
                "UPDATE assets SET status = 'queued', progress = 0, updated_ms = $2
                 WHERE id = $1 AND status = 'waiting'",
                &[&asset_id, &now],
            )?;
            if n == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO jobs (kind, asset_id, payload, created_ms, run_after_ms)
                 VALUES ('process', $1, $2, $3, $3)",
                &[&asset_id, &source, &now],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    pub fn claim(
        &self,
        kinds: &[JobKind],
        worker: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<Option<Job>, DbError> {
        let kinds: Vec<&'static str> = kinds.iter().map(|k| k.as_str()).collect();
        let worker = worker.to_owned();
        self.run(move |c| {
            let now = i64_of(now_ms);
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "SELECT id, kind, asset_id, payload, attempts FROM jobs
                 WHERE kind = ANY($1)
                   AND ((state = 'queued' AND run_after_ms <= $2)
                        OR (state = 'running' AND lease_until_ms < $2))
                 ORDER BY id LIMIT 1
                 FOR UPDATE SKIP LOCKED",
                &[&kinds, &now],
            )?
            else {
                return Ok(None);
            };
            let id: i64 = row.try_get(0).map_err(row_err)?;
            let kind: String = row.try_get(1).map_err(row_err)?;
            let asset_id: String = row.try_get(2).map_err(row_err)?;
            let payload: String = row.try_get(3).map_err(row_err)?;
            let attempts: i32 = row.try_get(4).map_err(row_err)?;
            tx.execute(
                "UPDATE jobs SET state = 'running', worker = $2, lease_until_ms = $3,
                 attempts = attempts + 1 WHERE id = $1",
                &[&id, &worker, &i64_of(now_ms.saturating_add(lease_ms))],
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
                attempts: attempts.max(0) as u32,
            }))
        })
    }

    pub fn renew(&self, job: i64, worker: &str, until_ms: u64) -> Result<bool, DbError> {
        let n = self.update(
            "UPDATE jobs SET lease_until_ms = $3 WHERE id = $1 AND worker = $2 AND state = 'running'",
            vec![
                arg(job),
                arg(worker.to_owned()),
                arg(i64_of(until_ms)),
            ],
        )?;
        Ok(n == 1)
    }

    pub fn finish(&self, job: i64) -> Result<(), DbError> {
        self.update("DELETE FROM jobs WHERE id = $1", vec![arg(job)])
            .map(drop)
    }

    pub fn retry(&self, job: i64, error: &str, run_after_ms: u64) -> Result<(), DbError> {
        self.update(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until_ms = 0,
             run_after_ms = $2, last_error = $3 WHERE id = $1",
            vec![arg(job), arg(i64_of(run_after_ms)), arg(error.to_owned())],
        )
        .map(drop)
    }

    pub fn recover(&self, worker: &str) -> Result<usize, DbError> {
        let n = self.update(
            "UPDATE jobs SET state = 'queued', worker = NULL, lease_until_ms = 0
             WHERE state = 'running'
               AND (worker = $1 OR left(worker, length($1) + 1) = $1 || '/')",
            vec![arg(worker.to_owned())],
        )?;
        Ok(n as usize)
    }

    pub fn has_job(&self, asset_id: &str, kind: JobKind) -> Result<bool, DbError> {
        let asset_id = asset_id.to_owned();
        self.run(move |c| {
            let row = c.query_one(
                "SELECT COUNT(*) FROM jobs WHERE asset_id = $1 AND kind = $2",
                &[&asset_id, &kind.as_str()],
            )?;
            let n: i64 = row.try_get(0).map_err(row_err)?;
            Ok(n > 0)
        })
    }
}

/// `PostgreSQL user@host:port/dbname`, without the password.
fn describe(c: &Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "PostgreSQL {}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}
