//! The VOD job queue against a real PostgreSQL server (Debian's `postgresql`
//! package, which `cargo xtask setup` installs) and against SQLite: the same
//! test bodies over both backends.
//!
//! Each test starts its own server: `initdb` into a temporary directory
//! (as the `postgres` user when the tests run as root: PostgreSQL refuses to
//! run as root), `pg_ctl start` on a free port of 127.0.0.1 with its socket in
//! that directory, and stops it (`pg_ctl stop -m immediate`) and removes the
//! directory when the test ends, passed or not. Missing server binaries fail
//! the tests: they are part of the test setup, not optional.
//!
//! Two `Db` handles on one database stand for two machines (for PostgreSQL,
//! two connections, each on its own thread; for SQLite, two connections to
//! one file).
//!
//! Test names start with `vod::` so `cargo test vod::` runs them.

mod vod {
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::{Arc, Barrier};

    use brook_origin::vod::db::{AssetKey, Db, Imported, JobKind, NewImport, Status};

    /// A PostgreSQL server of this test's own.
    struct PgServer {
        bin: PathBuf,
        dir: PathBuf,
        port: u16,
        /// `Some(user)`: the server runs as this user (the tests run as root).
        run_as: Option<&'static str>,
    }

    /// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
    fn server_bin() -> PathBuf {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        found.sort();
        match found.pop() {
            Some((_, bin)) => bin,
            None => panic!(
                "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: install Debian's \
                 `postgresql` package (`cargo xtask setup` does); these tests need a real server"
            ),
        }
    }

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        l.local_addr().expect("its address").port()
    }

    fn is_root() -> bool {
        let out = Command::new("id")
            .arg("-u")
            .output()
            .expect("running id -u");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    }

    impl PgServer {
        fn command(&self, program: &Path) -> Command {
            let mut c = match self.run_as {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(program);
                    c
                }
                None => Command::new(program),
            };
            // A directory the server's user can enter (not the tests' own).
            c.current_dir(&self.dir);
            c
        }

        fn run(&self, what: &str, mut cmd: Command) {
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("running {what}: {e}"));
            assert!(
                out.status.success(),
                "{what} failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn start() -> PgServer {
            let bin = server_bin();
            let dir = std::env::temp_dir().join(format!(
                "brook-pg-{}-{}",
                std::process::id(),
                brook_origin::serve::hub::new_session_id()
            ));
            std::fs::create_dir_all(&dir).expect("creating the server's directory");
            let run_as = is_root().then_some("postgres");
            if let Some(user) = run_as {
                let out = Command::new("id")
                    .args(["-u", user])
                    .output()
                    .expect("running id");
                let uid: u32 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| {
                        panic!("running as root, the server needs the `{user}` user (Debian's postgresql package makes it)")
                    });
                std::os::unix::fs::chown(&dir, Some(uid), None)
                    .expect("chown of the server's directory");
            }
            let server = PgServer {
                bin,
                dir,
                port: free_port(),
                run_as,
            };
            let data = server.dir.join("data");
            let mut initdb = server.command(&server.bin.join("initdb"));
            initdb.arg("-D").arg(&data).args([
                "-U",
                "brook",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
            server.run("initdb", initdb);
            let mut start = server.command(&server.bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(server.dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    server.port,
                    server.dir.display()
                ))
                .args(["-w", "-t", "60", "start"]);
            server.run("pg_ctl start", start);
            server
        }

        fn url(&self) -> String {
            format!("postgres://brook@127.0.0.1:{}/postgres", self.port)
        }
    }

    impl Drop for PgServer {
        fn drop(&mut self) {
            let mut stop = self.command(&self.bin.join("pg_ctl"));
            stop.arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"]);
            let _ = stop.output();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// One database and two handles on it ("two machines").
    struct Backend {
        a: Db,
        b: Db,
        _server: Option<PgServer>,
        dir: Option<PathBuf>,
    }

    impl Drop for Backend {
        fn drop(&mut self) {
            if let Some(d) = &self.dir {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }

    fn sqlite() -> Backend {
        let dir = std::env::temp_dir().join(format!(
            "brook-vodpg-sqlite-{}",
            brook_origin::serve::hub::new_session_id()
        ));
        let path = dir.join("vod.db");
        Backend {
            a: Db::open(&path).unwrap(),
            b: Db::open(&path).unwrap(),
            _server: None,
            dir: Some(dir),
        }
    }

    fn postgres() -> Backend {
        let server = PgServer::start();
        let a = Db::connect(&server.url()).unwrap();
        let b = Db::connect(&server.url()).unwrap();
        assert!(a.is_shared() && b.is_shared());
        assert!(!a.describe().contains("password"));
        Backend {
            a,
            b,
            _server: Some(server),
            dir: None,
        }
    }

    /// Every test body, over both backends.
    fn both(test: fn(&Db, &Db)) {
        let s = sqlite();
        test(&s.a, &s.b);
        let p = postgres();
        test(&p.a, &p.b);
    }

    /// N jobs, two machines claiming as fast as they can at once: every job is
    /// claimed exactly once.
    fn claims_are_exclusive(a: &Db, b: &Db) {
        const N: usize = 200;
        for i in 0..N {
            a.enqueue(JobKind::Process, &format!("asset{i}"), "", 1)
                .unwrap();
        }
        let start = Arc::new(Barrier::new(2));
        let claim_all = |db: Db, worker: &'static str, start: Arc<Barrier>| {
            std::thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                while let Some(job) = db.claim(&[JobKind::Process], worker, 10, 60_000).unwrap() {
                    assert_eq!(job.attempts, 0, "{worker} got job {} a second time", job.id);
                    mine.push(job.id);
                }
                mine
            })
        };
        let ta = claim_all(a.clone(), "machine-a", start.clone());
        let tb = claim_all(b.clone(), "machine-b", start);
        let (ma, mb) = (ta.join().unwrap(), tb.join().unwrap());
        let all: HashSet<i64> = ma.iter().chain(&mb).copied().collect();
        assert_eq!(ma.len() + mb.len(), N, "a job was claimed twice");
        assert_eq!(all.len(), N);
        // Held by their leases: nothing is left to claim for anyone.
        assert!(b
            .claim(&[JobKind::Process], "machine-c", 11, 1000)
            .unwrap()
            .is_none());
    }

    #[test]
    fn vod_claims_are_exclusive_across_two_machines() {
        both(claims_are_exclusive);
    }

    /// Sixteen identical dedupe requests for one URL at once, half through
    /// each machine: one asset, one process job, every answer names it; once
    /// it errored, the next request makes a new one.
    fn dedupe_makes_one_asset_across_two_machines(a: &Db, b: &Db) {
        const N: usize = 16;
        let url = "https://cdn.example/ads/one.mp4";
        let new = |id: String| NewImport {
            id,
            input_url: url.into(),
            dedupe: true,
            passthrough: None,
            max_duration_s: Some(60),
            details: None,
            key: None,
            payload: format!("url:{url}"),
            now_ms: 5,
        };
        let start = Arc::new(Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|i| {
                let db = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (start, new) = (start.clone(), new(format!("dd{i:02}")));
                std::thread::spawn(move || {
                    start.wait();
                    match db.create_import(&new).unwrap() {
                        Imported::Created(x) => (true, x.id),
                        Imported::Existing(x) => (false, x.id),
                    }
                })
            })
            .collect();
        let answers: Vec<(bool, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            answers.iter().filter(|(created, _)| *created).count(),
            1,
            "{answers:?}"
        );
        let id = &answers[0].1;
        assert!(answers.iter().all(|(_, x)| x == id), "{answers:?}");
        assert_eq!(a.assets(100).unwrap().len(), 1);
        let job = b
            .claim(&[JobKind::Process], "w", 10, 1000)
            .unwrap()
            .unwrap();
        assert_eq!(&job.asset_id, id);
        assert!(a
            .claim(&[JobKind::Process], "w", 10, 1000)
            .unwrap()
            .is_none());
        assert_eq!(
            b.asset(id).unwrap().unwrap().input_url.as_deref(),
            Some(url)
        );
        assert!(a.set_errored(id, "gone", 20).unwrap());
        assert!(b.live_asset_from_url(url).unwrap().is_none());
        assert!(matches!(
            b.create_import(&new("fresh".into())).unwrap(),
            Imported::Created(x) if x.id == "fresh"
        ));
    }

    #[test]
    fn vod_dedupe_makes_one_asset_across_two_machines() {
        both(dedupe_makes_one_asset_across_two_machines);
    }

    /// A worker that stops renewing loses its job to the other after the
    /// lease; a restart recovers only its own jobs; retries wait.
    fn leases_expire_and_recover_is_per_worker(a: &Db, b: &Db) {
        a.create_asset("a1", Status::Waiting, 1, None, Some(60), Some("d1"))
            .unwrap();
        a.queue_processing("a1", "storage:sources/a1", 10).unwrap();
        assert_eq!(b.asset("a1").unwrap().unwrap().status, Status::Queued);
        let job = a
            .claim(&[JobKind::Process], "w1", 20, 1000)
            .unwrap()
            .unwrap();
        assert_eq!(
            (job.kind, job.asset_id.as_str(), job.payload.as_str()),
            (JobKind::Process, "a1", "storage:sources/a1")
        );
        // Held: the other machine gets nothing while w1 renews.
        assert!(b
            .claim(&[JobKind::Process], "w2", 500, 1000)
            .unwrap()
            .is_none());
        assert!(a.renew(job.id, "w1", 2000).unwrap());
        assert!(b
            .claim(&[JobKind::Process], "w2", 1500, 1000)
            .unwrap()
            .is_none());
        // w1 stops renewing (its machine died): after the lease, w2 has it
        // and w1 cannot renew any more.
        let taken = b
            .claim(&[JobKind::Process], "w2", 2001, 1000)
            .unwrap()
            .unwrap();
        assert_eq!((taken.id, taken.attempts), (job.id, 1));
        assert!(!a.renew(job.id, "w1", 5000).unwrap());
        assert!(b.renew(job.id, "w2", 5000).unwrap());
        // w1 restarts: it recovers none of w2's jobs.
        assert_eq!(a.recover("w1").unwrap(), 0);
        assert!(a
            .claim(&[JobKind::Process], "w1", 2500, 1000)
            .unwrap()
            .is_none());
        // w2 restarts: its own job is queued again at once.
        assert_eq!(b.recover("w2").unwrap(), 1);
        let again = a
            .claim(&[JobKind::Process], "w1", 2600, 1000)
            .unwrap()
            .unwrap();
        assert_eq!((again.id, again.attempts), (job.id, 2));
        a.retry(again.id, "boom", 9000).unwrap();
        assert!(b
            .claim(&[JobKind::Process], "w2", 8999, 1000)
            .unwrap()
            .is_none());
        assert!(b
            .claim(&[JobKind::Webhook], "w2", 9000, 1000)
            .unwrap()
            .is_none());
        assert!(a.has_job("a1", JobKind::Process).unwrap());
        let last = b
            .claim(&[JobKind::Process], "w2", 9000, 1000)
            .unwrap()
            .unwrap();
        b.finish(last.id).unwrap();
        assert!(!a.has_job("a1", JobKind::Process).unwrap());
    }

    #[test]
    fn vod_leases_expire_and_recover_is_per_worker() {
        both(leases_expire_and_recover_is_per_worker);
    }

    /// Asset rows read back as written, from the other machine too.
    fn assets_round_trip(a: &Db, b: &Db) {
        a.create_asset(
            "r1",
            Status::Waiting,
            5,
            Some("pass"),
            Some(600),
            Some("dr1"),
        )
        .unwrap();
        a.create_asset("r2", Status::Queued, 6, None, None, None)
            .unwrap();
        assert!(a
            .create_asset("r3", Status::Waiting, 7, None, None, Some("dr1"))
            .is_err());
        let r1 = b.asset_of_direct("dr1").unwrap().unwrap();
        assert_eq!(
            (r1.id.as_str(), r1.status, r1.created_ms, r1.updated_ms),
            ("r1", Status::Waiting, 5, 5)
        );
        assert_eq!(r1.passthrough.as_deref(), Some("pass"));
        assert_eq!(r1.max_duration_s, Some(600));
        assert!(b.asset_of_direct("nope").unwrap().is_none());
        assert!(b.asset("nope").unwrap().is_none());
        a.set_status("r1", Status::Processing, 8).unwrap();
        a.set_progress("r1", 150.0, 9).unwrap();
        a.set_duration("r1", 12.5).unwrap();
        let r1 = b.asset("r1").unwrap().unwrap();
        assert_eq!(
            (r1.status, r1.progress, r1.duration_s, r1.updated_ms),
            (Status::Processing, 100.0, Some(12.5), 9)
        );
        a.set_ready("r1", &serde_json::json!({"renditions": ["360p"]}), 10)
            .unwrap();
        let r1 = b.asset("r1").unwrap().unwrap();
        assert_eq!(r1.status, Status::Ready);
        assert_eq!(r1.details.unwrap()["renditions"][0], "360p");
        a.set_errored("r2", "no video", 11).unwrap();
        let r2 = b.asset("r2").unwrap().unwrap();
        assert_eq!(
            (
                r2.status,
                r2.error.as_deref(),
                r2.passthrough,
                r2.max_duration_s
            ),
            (Status::Errored, Some("no video"), None, None)
        );
        // Newest first.
        let ids: Vec<String> = b.assets(10).unwrap().into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["r2", "r1"]);
        assert_eq!(b.assets(1).unwrap().len(), 1);
        // Webhook jobs carry their payload.
        let id = a.enqueue(JobKind::Webhook, "r1", "{\"x\":1}", 12).unwrap();
        let hook = b.claim(&[JobKind::Webhook], "w", 12, 100).unwrap().unwrap();
        assert_eq!((hook.id, hook.payload.as_str()), (id, "{\"x\":1}"));
    }

    #[test]
    fn vod_assets_round_trip() {
        both(assets_round_trip);
    }

    /// A delete is queued once, drops the asset's queued process job, and
    /// removes the row.
    fn deletes_once(a: &Db, b: &Db) {
        a.create_asset("d1", Status::Waiting, 1, None, None, None)
            .unwrap();
        a.queue_processing("d1", "/up/d1", 2).unwrap();
        assert!(a.start_delete("d1", 3).unwrap());
        assert!(b.start_delete("d1", 4).unwrap());
        // An upload handed over after the delete queues nothing.
        assert!(!b.queue_processing("d1", "/up/d1", 5).unwrap());
        assert!(!b.queue_processing("nope", "/up/nope", 5).unwrap());
        assert!(!b.start_delete("nope", 4).unwrap());
        assert_eq!(b.asset("d1").unwrap().unwrap().status, Status::Deleting);
        assert!(!a.has_job("d1", JobKind::Process).unwrap());
        assert!(a
            .claim(&[JobKind::Process], "w", 10, 100)
            .unwrap()
            .is_none());
        let del = b
            .claim(&[JobKind::Delete, JobKind::Webhook], "w", 10, 100)
            .unwrap()
            .unwrap();
        assert_eq!((del.kind, del.asset_id.as_str()), (JobKind::Delete, "d1"));
        assert!(a
            .claim(&[JobKind::Delete], "w2", 10, 100)
            .unwrap()
            .is_none());
        b.remove_asset("d1").unwrap();
        b.finish(del.id).unwrap();
        assert!(a.asset("d1").unwrap().is_none());
        assert!(!a.has_job("d1", JobKind::Delete).unwrap());
    }

    #[test]
    fn vod_deletes_once() {
        both(deletes_once);
    }

    /// An encrypted asset's sealed key: stored once (a second put keeps the
    /// first), seen by the other handle with its DRM signalling, revoked,
    /// removed with the asset.
    fn asset_keys(a: &Db, b: &Db) {
        a.create_asset("k1", Status::Waiting, 1, None, None, None)
            .unwrap();
        assert_eq!(b.asset_key("k1").unwrap(), None);
        let key = AssetKey {
            scheme: "cenc".into(),
            kid: "ab".repeat(16),
            sealed: "cd".repeat(60),
            revoked: false,
            clearkey: false,
            drm: Some("[{\"system\":\"widevine\"}]".into()),
        };
        a.put_asset_key("k1", &key, 2).unwrap();
        b.put_asset_key(
            "k1",
            &AssetKey {
                kid: "ef".repeat(16),
                ..key.clone()
            },
            3,
        )
        .unwrap();
        assert_eq!(b.asset_key("k1").unwrap().as_ref(), Some(&key));
        assert!(b.revoke_asset_key("k1").unwrap());
        assert!(a.asset_key("k1").unwrap().unwrap().revoked);
        assert!(!a.revoke_asset_key("nope").unwrap());
        b.remove_asset("k1").unwrap();
        assert_eq!(a.asset_key("k1").unwrap(), None);
        assert!(a.asset("k1").unwrap().is_none());
    }

    #[test]
    fn vod_asset_keys() {
        both(asset_keys);
    }

    /// The queue outlives the process: a new handle (a restarted origin)
    /// finds the rows, and a connection killed under a handle is made again.
    #[test]
    fn vod_postgres_survives_reconnects() {
        let server = PgServer::start();
        let db = Db::connect(&server.url()).unwrap();
        db.create_asset("s1", Status::Queued, 1, None, None, None)
            .unwrap();
        db.enqueue(JobKind::Process, "s1", "storage:sources/s1", 1)
            .unwrap();
        drop(db);
        let db = Db::connect(&server.url()).unwrap();
        assert_eq!(db.asset("s1").unwrap().unwrap().status, Status::Queued);
        // Every other backend's connection goes (as when the server restarts
        // or the network drops): the next statements connect again.
        let admin = Db::connect(&server.url()).unwrap();
        let killer = Command::new(server.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "brook",
                "-d",
                "postgres",
                "-c",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            ])
            .output()
            .expect("running psql");
        assert!(
            killer.status.success(),
            "{}",
            String::from_utf8_lossy(&killer.stderr)
        );
        // The first statement may meet the dead connection; the one after
        // reconnects.
        let _ = db.asset("s1");
        assert_eq!(db.asset("s1").unwrap().unwrap().status, Status::Queued);
        let _ = admin.has_job("s1", JobKind::Process);
        assert!(admin.has_job("s1", JobKind::Process).unwrap());
    }

    /// Two origins on one queue and one bucket: the upload that arrived at
    /// machine A goes to storage (`sources/<asset>`) and its job names that
    /// key; machine B claims it and can fetch it; deleting the asset removes
    /// the stored upload (B's delete runner).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn vod_uploads_reach_another_machine_through_storage() {
        use brook_origin::store::storage::{Key, ObjectStorage, Storage};
        use brook_origin::vod::{Vod, VodConfig};

        // As main does (the webhook client is built on it).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = PgServer::start();
        // Removed when the test ends, passed or not.
        let tmp = tempfile::Builder::new()
            .prefix("brook-vodpg-two-")
            .tempdir()
            .unwrap();
        let root = tmp.path().to_owned();
        let bucket = ObjectStorage::local(root.join("bucket")).unwrap();
        let machine = |name: &str| {
            let config = VodConfig {
                enabled: true,
                api_token: Some("0123456789abcdef0123".into()),
                data_dir: root.join(name),
                database_url: Some(server.url()),
                ..VodConfig::default()
            };
            config.validate().unwrap();
            Vod::open(
                config,
                Default::default(),
                bucket.clone(),
                None,
                None,
                Default::default(),
            )
            .unwrap()
        };
        let (a, b) = (machine("a"), machine("b"));
        assert_ne!(a.worker_id, b.worker_id);

        let id = brook_origin::vod::new_asset_id();
        a.db.create_asset(&id, Status::Waiting, 1, None, None, None)
            .unwrap();
        let upload = a.source_path(&id);
        std::fs::create_dir_all(upload.parent().unwrap()).unwrap();
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&upload, &content).unwrap();
        a.hand_over(&id, upload.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while b.db.asset(&id).unwrap().unwrap().status != Status::Queued {
            assert!(std::time::Instant::now() < deadline, "never queued");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let key = Key::new(format!("sources/{id}")).unwrap();
        assert!(!upload.exists(), "A's local copy stays after the hand-over");
        let job =
            b.db.claim(
                &[JobKind::Process],
                &b.worker_id,
                brook_origin::serve::hub::unix_ms(),
                60_000,
            )
            .unwrap()
            .unwrap();
        assert_eq!(job.payload, format!("storage:sources/{id}"));
        let fetched = root.join("b").join("fetched");
        assert_eq!(
            b.storage.get_to_file(&key, &fetched).await.unwrap(),
            Some(content.len() as u64)
        );
        assert_eq!(std::fs::read(&fetched).unwrap(), content);

        // Deleted: B's delete runner removes the stored upload and the row
        // (once the process job is done: a running one sees the deletion
        // and stops; here B's claim above stands for it and ends now).
        assert!(a.db.start_delete(&id, 20).unwrap());
        b.db.finish(job.id).unwrap();
        brook_origin::vod::worker::start(&b, &tokio::runtime::Handle::current());
        while b.db.asset(&id).unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "never deleted");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(bucket.get(&key).await.unwrap().is_none());
        b.stop();
        a.stop();
    }
}
