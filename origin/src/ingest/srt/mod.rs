//! SRT ingest: publishers (OBS, ffmpeg, hardware encoders) push MPEG-TS over
//! SRT to a listener; every accepted stream becomes a [`PublishSession`].
//!
//! Built on libsrt (the reference implementation) through a small safe
//! wrapper; see `docs/srt.md` for why, the accepted stream id forms, keys,
//! threading and limits.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use brook_origin::ingest::srt::{self, IngestSink, PublishRequest, PublishSession, Rejection};
//!
//! struct Sink;
//! impl IngestSink for Sink {
//!     fn authorize(&self, req: &PublishRequest, _peer: SocketAddr) -> Result<(), Rejection> {
//!         match req.key.as_deref() {
//!             Some("secret") => Ok(()), // use a constant-time comparison in real code
//!             _ => Err(Rejection::Unauthorized("bad key".into())),
//!         }
//!     }
//!     fn open(&self, req: &PublishRequest, _peer: SocketAddr) -> Result<Box<dyn PublishSession>, Rejection> {
//!         Ok(Box::new(Session(req.resource.clone())))
//!     }
//! }
//!
//! struct Session(String);
//! impl PublishSession for Session {
//!     fn data(&mut self, ts: &[u8]) -> Result<(), String> {
//!         // feed the packager's TS demuxer; Err ends the session
//!         Ok(())
//!     }
//!     fn close(self: Box<Self>, reason: &str) {
//!         eprintln!("{} ended: {reason}", self.0);
//!     }
//! }
//!
//! let ingest = srt::start(srt::SrtIngestConfig::default(), Arc::new(Sink))?;
//! println!("SRT on {}", ingest.local_addr());
//! // ... until the origin shuts down:
//! ingest.shutdown();
//! # Ok::<(), srt::Error>(())
//! ```

mod ffi;
mod ingest;
mod socket;
pub mod streamid;

pub use ingest::{
    start, Error, IngestSink, PublishSession, Rejection, SrtIngest, SrtIngestConfig, SrtStats,
};
pub use socket::SrtError;
pub use streamid::{Mode, PublishRequest, StreamIdError};
