//! SRT ingest: publishers (OBS, ffmpeg, hardware encoders) push MPEG-TS over
//! SRT to a listener; every accepted stream id becomes a [`Claim`] for the
//! origin's [`Admission`], and its bytes go to the [`Publish`] it returns.
//!
//! Built on libsrt (the reference implementation) through a small safe
//! wrapper; see `docs/srt.md` for why, the accepted stream id forms, keys,
//! threading and limits.
//!
//! ```no_run
//! use std::sync::Arc;
//! use brook_origin::ingest::{srt, Admission, Claim, Publish, Refusal, Stop};
//! use brook_packager::{media::{Frame, TrackInfo}, UnixMillis};
//!
//! struct Gate;
//! impl Admission for Gate {
//!     fn admit(&self, claim: &Claim<'_>) -> Result<(), Refusal> {
//!         match claim.key {
//!             Some("secret") => Ok(()), // use a constant-time comparison in real code
//!             _ => Err(Refusal::Denied("bad key".into())),
//!         }
//!     }
//!     fn open(&self, claim: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
//!         self.admit(claim)?;
//!         Ok(Box::new(Session(claim.stream.to_string())))
//!     }
//! }
//!
//! struct Session(String);
//! impl Publish for Session {
//!     fn ts(&mut self, ts: &[u8], _arrived: UnixMillis) -> Result<(), Stop> {
//!         Ok(()) // demux and package; Err ends the session
//!     }
//!     fn tracks(&mut self, _: Vec<TrackInfo>) -> Result<(), Stop> { Ok(()) }
//!     fn frame(&mut self, _: Frame, _: UnixMillis) -> Result<(), Stop> { Ok(()) }
//!     fn close(self: Box<Self>, reason: &str) {
//!         eprintln!("{} ended: {reason}", self.0);
//!     }
//! }
//!
//! let ingest = srt::start(srt::SrtIngestConfig::default(), Arc::new(Gate))?;
//! println!("SRT on {}", ingest.local_addr());
//! // ... until the origin shuts down:
//! ingest.shutdown();
//! # Ok::<(), srt::Error>(())
//! ```
//!
//! [`Claim`]: crate::ingest::Claim
//! [`Admission`]: crate::ingest::Admission
//! [`Publish`]: crate::ingest::Publish

mod ffi;
mod ingest;
mod socket;
pub mod streamid;

pub use ingest::{reject_code, start, Error, SrtIngest, SrtIngestConfig, SrtStats};
pub use socket::SrtError;
pub use streamid::{Mode, PublishRequest, StreamIdError};
