//! Storage: the [`storage::Storage`] interface and its backends, and the
//! live-to-VOD [`archive::Archive`] written through it.

pub mod archive;
pub mod storage;
