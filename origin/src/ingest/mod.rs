//! Ingest adapters: one module per protocol, each with its socket loop apart
//! from its protocol logic. Every adapter ends in the same place: an admitted
//! publisher handing media to the stream's pipeline.

pub mod srt;
pub mod whip;
