//! Front ends turn an ingest format into the codec-neutral [`crate::media`] model:
//! track descriptions and timed frames that the segmenter consumes. MPEG-TS today;
//! RTP depacketizers (WHIP, RTSP) are further front ends over the same model.

pub mod ts;

pub use ts::{FrontEndEvent, FrontEndStats, TsFrontEnd};
