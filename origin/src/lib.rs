//! Brook's regional origin: ingest adapters feed the packager, the hub holds what
//! each stream serves, and the HTTP layer (Pingora) delivers LL-HLS.
//!
//! ```text
//! srt (libsrt listener, one thread per publisher)
//!   └─▶ publish::Session ── Packager::push_ts ──▶ hub::Stream (objects + playlist snapshot)
//!          │                                          └─▶ http::OriginHttp (blocking reload,
//!          └─▶ archive::Archive ──▶ storage::Storage ───────▶ live-to-VOD, after restarts too)
//! ```
//!
//! The binary (`main.rs`) wires them up:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use brook_origin::{config::Config, serve::hub::Hub, metrics::Metrics, pipeline::Pipelines, serve::http::OriginHttp, ingest::srt};
//! # let runtime = tokio::runtime::Runtime::new().unwrap();
//! let config = Arc::new(Config::default());
//! let hub = Arc::new(Hub::default());
//! let metrics = Arc::new(Metrics::default());
//! let publisher = Pipelines::new(hub.clone(), config.clone(), metrics.clone(), None, runtime.handle().clone());
//! let _srt = srt::start(srt::SrtIngestConfig::default(), Arc::new(publisher));
//! let _http = OriginHttp::new(hub, config.hls.clone()).with_metrics(metrics); // a Pingora service
//! ```

pub mod config;
pub mod directory;
pub mod egress;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod pipeline;
pub mod serve;
pub mod store;
pub mod vod;

pub use brook_common::valid_stream_name;

/// The wall clock as the packager takes it (it never reads a clock itself).
pub fn unix_now() -> brook_packager::UnixMillis {
    brook_packager::UnixMillis(serve::hub::unix_ms())
}

pub use brook_common::secret::constant_time_eq;
