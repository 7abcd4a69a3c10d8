//! HLS playlists (RFC 8216bis): typed models rendered to text. Shared by the
//! origin (which serves them) and, later, the edge (which rewrites them).

pub mod media;
pub mod multivariant;

pub use media::{MediaPlaylist, Part, Segment, ServerControl};
pub use multivariant::{MultivariantPlaylist, Variant};
