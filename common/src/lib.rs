//! What Brook's origin and edge must agree on, in one place: the names that
//! may appear in a `/live/` or `/vod/` URL, how such a path is decoded and checked, how
//! a credential is read from a request, how secrets are compared, the
//! Prometheus text format, and the CORS headers every answer carries.
//!
//! Plain functions over `&str`, no I/O and no allocation beyond the values
//! returned, so the same code runs in the origin (Pingora) and in the edge
//! Worker (wasm32).
//!
//! ```
//! use brook_common::{credentials, path::LivePath, path::VodPath, secret};
//!
//! // Every request under /live/: decode and check before anything else.
//! let live = LivePath::parse("/live/cam1/0a1b2c3d4e5f6a7b/720p-part12.3.m4s").unwrap();
//! assert_eq!(live.stream, "cam1");
//! assert_eq!(live.to_string(), "/live/cam1/0a1b2c3d4e5f6a7b/720p-part12.3.m4s");
//! // `..%2f` never climbs out of a stream (nor out of a token's ACL).
//! assert!(LivePath::parse("/live/cam1/..%2fcam2/index.m3u8").is_err());
//!
//! // The same for every request under /vod/.
//! let vod = VodPath::parse("/vod/0123456789abcdef0123456789abcdef/720p-seg3.m4s").unwrap();
//! assert_eq!((vod.asset.as_str(), vod.name.as_str()), ("0123456789abcdef0123456789abcdef", "720p-seg3.m4s"));
//! assert_eq!(vod.to_string(), "/vod/0123456789abcdef0123456789abcdef/720p-seg3.m4s");
//!
//! // Credentials: Bearer is case-insensitive, secrets compare in constant time.
//! let key = credentials::bearer("bearer s3cret").unwrap();
//! assert!(secret::constant_time_eq(key.as_bytes(), b"s3cret"));
//! ```

#![forbid(unsafe_code)]

pub mod cors;
pub mod credentials;
pub mod names;
pub mod path;
pub mod percent;
pub mod prometheus;
pub mod secret;

pub use names::{
    valid_asset_id, valid_object_name, valid_rendition_name, valid_session_id, valid_stream_name,
};
pub use path::{LivePath, PathError, VodPath};
