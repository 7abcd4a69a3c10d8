//! `brook-origin`: SRT in, LL-HLS out. Runs with no configuration file at all (the
//! embedded defaults publish `live/cam1` with the development key `dev-key`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use clap::Parser;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;
use tracing::{info, warn};

use brook_origin::config::{Config, LadderMode, DEV_KEY};
use brook_origin::ingest::whip;
use brook_origin::ingest::{rtmp, rtsp, srt};
use brook_origin::metrics::Metrics;
use brook_origin::pipeline::Pipelines;
use brook_origin::serve::http::admin::Admin;
use brook_origin::serve::http::OriginHttp;
use brook_origin::serve::hub::Hub;
use brook_origin::store::archive::Archive;
use brook_origin::store::storage::{Key, ObjectStorage};

#[derive(Debug, Parser)]
#[command(
    name = "brook-origin",
    version,
    about = "Brook origin: SRT ingest, LL-HLS delivery"
)]
struct Args {
    /// TOML configuration file (see origin/brook.example.toml). Without it the
    /// embedded defaults apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// HTTP listen address (overrides http.listen).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// SRT listen address (overrides srt.listen).
    #[arg(long)]
    srt: Option<SocketAddr>,
    /// RTMP listen address (overrides rtmp.listen).
    #[arg(long)]
    rtmp: Option<SocketAddr>,
    /// WHIP UDP address for every WebRTC session (overrides whip.listen).
    #[arg(long)]
    whip: Option<SocketAddr>,
    /// Archive directory (overrides archive.dir).
    #[arg(long)]
    archive_dir: Option<PathBuf>,
    /// Separate listen address for /admin and /metrics (overrides admin.listen).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// HTTP worker threads, 0 = one per CPU (overrides http.threads).
    #[arg(long)]
    threads: Option<usize>,
    /// Reconnect grace period, ms (overrides publish.reconnect_grace_ms).
    #[arg(long)]
    reconnect_grace_ms: Option<u64>,
    /// `transcode` or `passthrough` (overrides ladder.mode; streams with a
    /// ladder of their own keep it).
    #[arg(long, value_parser = ["transcode", "passthrough"])]
    ladder_mode: Option<String>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> anyhow::Result<()> {
    // Logs first: Pingora reports bind failures only through the logger.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pingora_core=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    raise_fd_limit();
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(addr) = args.http {
        config.http.listen = addr;
    }
    if let Some(addr) = args.srt {
        config.srt.listen = addr;
    }
    if let Some(addr) = args.rtmp {
        config.rtmp.listen = addr;
    }
    if let Some(addr) = args.whip {
        config.whip.listen = addr;
    }
    if let Some(dir) = args.archive_dir {
        config.archive.dir = Some(dir);
    }
    if let Some(addr) = args.admin_listen {
        config.admin.listen = Some(addr);
    }
    if let Some(n) = args.threads {
        config.http.threads = n;
    }
    if let Some(ms) = args.reconnect_grace_ms {
        config.publish.reconnect_grace_ms = ms;
    }
    match args.ladder_mode.as_deref() {
        Some("passthrough") => config.ladder.mode = LadderMode::Passthrough,
        Some("transcode") => config.ladder.mode = LadderMode::Transcode,
        _ => {}
    }
    if let Some(token) = std::env::var("BROOK_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        config.admin.token = Some(token);
    }
    config.vod = std::mem::take(&mut config.vod).with_env();
    config.keys = std::mem::take(&mut config.keys).with_env();
    config.qoe = std::mem::take(&mut config.qoe).with_env();
    config.validate()?;
    let directory = config
        .directory
        .settings(std::env::var(brook_origin::directory::TOKEN_ENV).ok())
        .context("[directory]")?;
    if args.check_config {
        println!("configuration ok");
        return Ok(());
    }
    if config.uses_dev_key() {
        warn!("a stream uses the development key {DEV_KEY:?}; configure real keys for production");
    }
    let config = Arc::new(config);
    let hub = Arc::new(Hub::default());
    let metrics = Arc::new(Metrics::default());

    // Archive writes and reconnect timers run here, apart from Pingora's runtimes
    // (which stop before the archive is flushed on shutdown).
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("brook-bg")
        .enable_all()
        .build()
        .context("starting the background runtime")?;
    // TLS for the object store and webhook clients (reqwest on rustls): the
    // ring provider Pingora's rustls already uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let storage = match &config.storage {
        Some(c) => Some(ObjectStorage::from_config(c).context("[storage]")?),
        None => None,
    };
    let archive_storage = match (&config.archive.dir, config.archive.in_storage, &storage) {
        (Some(dir), _, _) => Some(
            ObjectStorage::local(dir)
                .with_context(|| format!("archive directory {}", dir.display()))?,
        ),
        (None, true, Some(s)) => Some(s.under(&Key::new("live").expect("a valid key"))),
        _ => None,
    };
    let archive = match archive_storage {
        Some(storage) => {
            let dir = storage.describe().to_owned();
            let storage = Arc::new(storage);
            let archive = background
                .block_on(Archive::open(storage, metrics.clone(), background.handle()))
                .context("opening the archive")?;
            info!(%dir, "archiving every session (live-to-VOD)");
            Some(archive)
        }
        None => {
            info!("no archive.dir: sessions are not archived (no VOD)");
            None
        }
    };

    let publisher = Pipelines::new(
        hub.clone(),
        config.clone(),
        metrics.clone(),
        archive.clone(),
        background.handle().clone(),
    );
    // Source frames for WHEP viewers, before any ingest starts a stream.
    let feeds = (config.whep.enabled && config.whip.enabled)
        .then(|| Arc::new(brook_origin::egress::feed::Feeds::default()));
    if let Some(f) = &feeds {
        publisher.set_feeds(f.clone());
    }
    // Content keys, before any ingest can start an encrypted stream.
    // Streams need it when one is encrypted; on-demand assets whenever a
    // master key is given (an upload may ask for encryption).
    let streams_encrypted = config.streams.values().any(|s| s.encryption.is_some());
    let vod_keys =
        config.vod.enabled && std::env::var_os(brook_origin::keys::MASTER_KEY_ENV).is_some();
    let keys = if streams_encrypted || vod_keys || config.vod.encryption.is_some() {
        let master = brook_origin::keys::MasterKey::from_env()
            .with_context(|| {
                format!(
                    "encryption needs the master key in {}",
                    brook_origin::keys::MASTER_KEY_ENV
                )
            })?
            .context("the master key")?;
        let keys = brook_origin::keys::KeyService::open(&config.keys, master)
            .context("opening the key store")?;
        info!(store = ?config.keys.dir, "key service for encrypted streams and assets");
        let keys = Arc::new(keys);
        publisher.set_keys(keys.clone());
        Some(keys)
    } else {
        None
    };
    let srt_config = srt::SrtIngestConfig {
        listen: config.srt.listen,
        latency_ms: config.srt.latency_ms,
        idle_timeout: Duration::from_millis(config.srt.idle_timeout_ms),
        max_connections: config.srt.max_connections,
        ..srt::SrtIngestConfig::default()
    };
    let ingest = srt::start(srt_config, Arc::new(publisher.clone()))
        .with_context(|| format!("starting SRT listener on {}", config.srt.listen))?;
    info!(srt = %ingest.local_addr(), http = %config.http.listen, "brook origin starting");
    let rtmp_ingest = if config.rtmp.enabled {
        let rtmp_config = rtmp::RtmpIngestConfig {
            listen: config.rtmp.listen,
            app: config.rtmp.app.clone(),
            max_connections: config.rtmp.max_connections,
            idle_timeout: Duration::from_millis(config.rtmp.idle_timeout_ms),
            tls: match &config.rtmp.tls {
                Some(t) => Some((
                    t.listen,
                    rtmp::tls::server_config(&t.cert, &t.key)
                        .map_err(|e| anyhow::anyhow!("rtmp.tls: {e}"))?,
                )),
                None => None,
            },
            ..rtmp::RtmpIngestConfig::default()
        };
        let ingest = rtmp::start(rtmp_config, Arc::new(publisher.clone()))
            .with_context(|| format!("starting RTMP listener on {}", config.rtmp.listen))?;
        Some(ingest)
    } else {
        info!("rtmp.enabled = false: no RTMP ingest");
        None
    };
    // Cameras are called once the pipeline can take their media.
    let pulls = config.rtsp_pulls();
    let rtsp_pulls = if pulls.is_empty() {
        None
    } else {
        let n = pulls.len();
        // On-demand pulls stop when this has been 0 for their idle time.
        let audience: rtsp::Audience = {
            let (hub, feeds) = (hub.clone(), feeds.clone());
            Arc::new(move |stream: &str| {
                let hls = hub.stream(stream).map_or(0, |s| s.viewers());
                let webrtc = feeds
                    .as_ref()
                    .and_then(|f| f.get(stream))
                    .map_or(0, |f| f.subscribers());
                hls + webrtc
            })
        };
        let running = rtsp::start(
            pulls,
            rtsp::PullSettings::default(),
            Arc::new(publisher.clone()),
            audience,
        )
        .context("starting the RTSP pulls")?;
        info!(pulls = n, "RTSP pulls started");
        Some(running)
    };
    let whip = if config.whip.enabled {
        let segment_target = Duration::from_millis(u64::from(config.packager.segment_target_ms));
        let server = whip::start(&config.whip, segment_target, Arc::new(publisher.clone()))
            .with_context(|| format!("starting WHIP on UDP {}", config.whip.listen))?;
        Some(Arc::new(server))
    } else {
        info!("whip.enabled = false: no WebRTC ingest");
        None
    };
    let whep = match (&whip, feeds) {
        (Some(whip), Some(feeds)) => {
            Some(brook_origin::egress::whep::start(&config.whep, whip, feeds))
        }
        _ => {
            if config.whep.enabled {
                info!(
                    "whip.enabled = false: no WebRTC playback either (WHEP uses the WHIP socket)"
                );
            }
            None
        }
    };

    let conf = ServerConf {
        threads: config.http.worker_threads(),
        grace_period_seconds: Some(config.http.shutdown_grace_seconds),
        graceful_shutdown_timeout_seconds: Some(config.http.shutdown_grace_seconds),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let admin = || Admin {
        token: config.admin.token.clone(),
        metrics_need_token: config.admin.metrics_need_token,
        hub: hub.clone(),
        metrics: metrics.clone(),
        publisher: Some(
            Arc::new(publisher.clone()) as Arc<dyn brook_origin::serve::http::admin::StreamControl>
        ),
        archive: archive.clone(),
        keys: keys.clone(),
    };
    let vod = match (config.vod.enabled, &storage) {
        (true, Some(storage)) => {
            let vod = brook_origin::vod::Vod::open(
                config.vod.clone(),
                config.ladder.clone(),
                storage.clone(),
                archive.clone(),
                keys.clone(),
                metrics.clone(),
            )
            .context("starting video on demand")?;
            brook_origin::vod::worker::start(&vod, background.handle());
            Some(vod)
        }
        _ => None,
    };
    let app = OriginHttp::new(hub.clone(), config.hls.clone())
        .with_metrics(metrics.clone())
        .with_archive(archive.clone())
        .with_vod(vod.clone())
        .with_h2c(config.http.h2c)
        .with_keys(
            keys.as_ref()
                .zip(config.keys.fetch_token.as_ref())
                .map(
                    |(keys, token)| brook_origin::serve::http::keys::KeyEndpoint {
                        keys: keys.clone(),
                        token: token.clone(),
                        assets: vod.clone(),
                    },
                ),
        )
        .with_qoe(config.qoe.push_token.as_ref().map(|token| {
            brook_origin::serve::http::qoe::QoeEndpoint {
                token: token.clone(),
                hub: hub.clone(),
                metrics: metrics.clone(),
            }
        }))
        .with_admin(config.admin.listen.is_none().then(admin))
        .with_whip(whip.as_ref().map(|w| w.endpoint()))
        .with_whep(whep)
        .with_demand(rtsp_pulls.as_ref().and_then(|p| p.demand()));
    let mut http = Service::new("brook http".to_string(), app);
    http.add_tcp(&config.http.listen.to_string());
    if let Some(tls) = &config.http.tls {
        let (cert, key) = (
            tls.cert.display().to_string(),
            tls.key.display().to_string(),
        );
        // Pingora panics on unreadable PEM when the listener starts; check first.
        pingora_core::tls::load_certs_and_key_files(&cert, &key)
            .ok()
            .flatten()
            .with_context(|| format!("http.tls: no certificate/key in {cert} / {key}"))?;
        let mut settings =
            TlsSettings::intermediate(&cert, &key).map_err(|e| anyhow::anyhow!("http.tls: {e}"))?;
        settings.enable_h2();
        http.add_tls_with_settings(&tls.listen.to_string(), None, settings);
        info!(https = %tls.listen, "HTTPS (HTTP/2 and HTTP/1.1)");
    }
    server.add_service(http);
    if let Some(addr) = config.admin.listen {
        let app = OriginHttp::new(hub.clone(), config.hls.clone())
            .with_metrics(metrics.clone())
            .with_admin(Some(admin()));
        let mut service = Service::new("brook admin".to_string(), app);
        service.add_tcp(&addr.to_string());
        info!(admin = %addr, "admin API and metrics");
        server.add_service(service);
    }
    if let Some(settings) = directory {
        let registrar = brook_origin::directory::Registrar::new(settings, hub.clone())?;
        server.add_service(background_service("stream directory", registrar));
    }
    server.add_service(background_service(
        "lifecycle",
        Lifecycle {
            ingest: Mutex::new(Some(ingest)),
            rtmp: Mutex::new(rtmp_ingest),
            rtsp: Mutex::new(rtsp_pulls),
            whip: whip.clone(),
            publisher: publisher.clone(),
            archive: archive.clone(),
            vod: vod.clone(),
        },
    ));
    server.run(pingora_core::server::RunArgs::default());
    // Normally done by Lifecycle at the start of the grace period; again here in
    // case the server stopped some other way.
    publisher.shutdown();
    if let Some(a) = &archive {
        background.block_on(a.flush());
    }
    background.shutdown_timeout(Duration::from_secs(5));
    info!("brook origin stopped");
    Ok(())
}

/// Graceful shutdown, first step: when Pingora starts its grace period (HTTP keeps
/// answering in-flight requests), stop the ingest and end every stream, so viewers
/// get `EXT-X-ENDLIST` and the archive is complete before the process exits.
struct Lifecycle {
    ingest: Mutex<Option<srt::SrtIngest>>,
    rtmp: Mutex<Option<rtmp::RtmpIngest>>,
    rtsp: Mutex<Option<rtsp::RtspPulls>>,
    whip: Option<Arc<whip::WhipServer>>,
    publisher: Pipelines,
    archive: Option<Arc<Archive>>,
    vod: Option<Arc<brook_origin::vod::Vod>>,
}

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        info!("shutting down: closing publishers, ending streams");
        if let Some(v) = &self.vod {
            v.stop();
        }
        let ingest = self.ingest.lock().ok().and_then(|mut i| i.take());
        let rtmp = self.rtmp.lock().ok().and_then(|mut i| i.take());
        let rtsp = self.rtsp.lock().ok().and_then(|mut i| i.take());
        let publisher = self.publisher.clone();
        let whip = self.whip.clone();
        let _ = tokio::task::spawn_blocking(move || {
            publisher.shutdown(); // refuse newcomers first
            if let Some(i) = ingest {
                i.shutdown();
            }
            if let Some(r) = rtmp {
                r.shutdown();
            }
            if let Some(r) = rtsp {
                r.shutdown();
            }
            if let Some(w) = whip {
                w.shutdown();
            }
            publisher.shutdown();
        })
        .await;
        if let Some(a) = &self.archive {
            a.flush().await;
        }
        info!("streams ended, archive flushed");
    }
}

/// Every viewer holds a connection or two open (an LL-HLS player keeps a
/// blocking playlist reload and a part request in flight), so the usual soft
/// limit of 1,024 descriptors (systemd's default, most shells) would cap the
/// origin at a few hundred viewers. The soft limit is raised to the hard one
/// at start, as Go's runtime does and nginx's `worker_rlimit_nofile` is for.
fn raise_fd_limit() {
    /// Beyond this the kernel refuses anyway (`fs.nr_open`'s default).
    const CEILING: libc::rlim_t = 1 << 20;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through the valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "reading the file descriptor limit");
        return;
    }
    let before = limit.rlim_cur;
    let wanted = limit.rlim_max.min(CEILING);
    if before < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the rlimit behind the valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = wanted;
        } else {
            warn!(error = %std::io::Error::last_os_error(), "raising the file descriptor limit");
        }
    }
    let viewers = limit.rlim_cur / 2;
    if limit.rlim_cur < 8192 {
        warn!(
            limit = limit.rlim_cur,
            "few file descriptors: about {viewers} viewers at two connections each \
             (raise the hard limit: LimitNOFILE= in systemd, ulimit -Hn)"
        );
    } else {
        info!(
            limit = limit.rlim_cur,
            raised_from = before,
            "file descriptors"
        );
    }
}
