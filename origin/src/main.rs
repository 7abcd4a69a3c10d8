//! `brook-origin`: SRT in, LL-HLS out. Runs with no configuration file at all (the
//! embedded defaults publish `live/cam1` with the development key `dev-key`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use tracing::{info, warn};

use brook_origin::config::{Config, DEV_KEY};
use brook_origin::http::OriginHttp;
use brook_origin::hub::Hub;
use brook_origin::publish::Publisher;
use brook_origin::srt;

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
    config.validate()?;
    if args.check_config {
        println!("configuration ok");
        return Ok(());
    }
    if config.uses_dev_key() {
        warn!("a stream uses the development key {DEV_KEY:?}; configure real keys for production");
    }
    let config = Arc::new(config);
    let hub = Arc::new(Hub::default());

    let publisher = Arc::new(Publisher::new(hub.clone(), config.clone()));
    let srt_config = srt::SrtIngestConfig {
        listen: config.srt.listen,
        latency_ms: config.srt.latency_ms,
        idle_timeout: Duration::from_millis(config.srt.idle_timeout_ms),
        max_connections: config.srt.max_connections,
        ..srt::SrtIngestConfig::default()
    };
    let ingest = srt::start(srt_config, publisher)
        .with_context(|| format!("starting SRT listener on {}", config.srt.listen))?;
    info!(srt = %ingest.local_addr(), http = %config.http.listen, "brook origin starting");

    let conf = ServerConf {
        grace_period_seconds: Some(config.http.shutdown_grace_seconds),
        graceful_shutdown_timeout_seconds: Some(config.http.shutdown_grace_seconds),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut http = Service::new(
        "brook http".to_string(),
        OriginHttp::new(hub, config.hls.clone()),
    );
    http.add_tcp(&config.http.listen.to_string());
    server.add_service(http);
    server.run(pingora_core::server::RunArgs::default());
    ingest.shutdown();
    info!("brook origin stopped");
    Ok(())
}
