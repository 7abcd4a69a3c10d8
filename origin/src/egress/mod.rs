//! Real-time egress: media that leaves the origin frame by frame instead of
//! as named objects through `serve/` (LL-HLS, DASH). The pipeline writes each
//! live stream's source frames into a [`feed::Feed`]; one module per protocol
//! reads them.
//!
//! ```text
//! pipeline::Live ── source tracks + frames ──▶ feed::Feed ──▶ a bounded queue per viewer
//!        ▲                                                    │
//!        └── keyframe requests (coalesced) ◀── whep/ (WHEP viewers on the WHIP socket)
//! ```

pub mod feed;
pub mod whep;
