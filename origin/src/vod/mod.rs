//! Video on demand: resumable uploads (tus), assets and their jobs, the file
//! transcode into the ladder, packaging into CMAF HLS + DASH, thumbnails,
//! object storage and webhooks. See docs/vod.md.

pub mod probe;
pub mod thumbnails;
pub mod transcode;
pub mod tus;
pub mod upload_url;
