//! Brook's packager: a sans-IO live packager. MPEG-TS bytes go in with the wall-clock
//! time they arrived; CMAF objects (init segment, parts, segments) and LL-HLS
//! playlists come out. It never touches a socket, a task or a clock, so the origin,
//! the tests, fuzzers and benchmarks all drive the same deterministic code, and it
//! builds for wasm32 so the edge can share the playlist model.
//!
//! The layers, each in its own module:
//!
//! ```text
//! bytes ─▶ ts (packets, PSI, PES) ─▶ frontend::ts (H.264 / AAC access units, codec
//!          config) ─▶ segmenter (parts on the lead track, segments on IDR) ─▶ cmaf
//!          (init, moof+mdat per track) ─▶ packager (renditions, named objects, live
//!          window) ─▶ hls (playlists) and dash (MPD)
//! ```
//!
//! The run loop, as the origin drives it:
//!
//! ```
//! use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};
//! let mut p = Packager::new(PackagerConfig::default());
//! # let chunks: Vec<(Vec<u8>, UnixMillis)> = vec![];
//! for (bytes, arrived) in chunks {
//!     p.push_ts(&bytes, arrived)?;
//!     while let Some(event) = p.poll() {
//!         if let Event::PlaylistChanged = event {
//!             for (name, playlist) in p.media_playlists() {
//!                 let _ = (name, playlist.to_string()); // video.m3u8, audio.m3u8
//!             }
//!         }
//!     }
//! }
//! p.finish();
//! # Ok::<(), brook_packager::Error>(())
//! ```

#![forbid(unsafe_code)]

pub mod breaks;
pub mod cmaf;
pub mod codec;
pub mod dash;
pub mod frontend;
pub mod hls;
pub mod media;
mod packager;
pub mod scte35;
pub mod segmenter;
pub mod thumbnail;
pub mod time;
pub mod ts;

pub use packager::{
    i_frame_playlist_name, init_name, part_name, playlist_name, rendition_name, segment_name,
    valid_rendition_name, Event, ObjectKind, Packager, PackagerConfig, PackagerStats, MPD_NAME,
};
pub use segmenter::{SegmenterConfig, SegmenterStats};
pub use time::UnixMillis;

/// Why the packager refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("MPEG-TS: {0}")]
    Ts(ts::TsError),
    #[error("unsupported input: {0}")]
    Unsupported(String),
}
