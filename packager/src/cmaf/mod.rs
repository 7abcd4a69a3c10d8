//! CMAF / fragmented MP4 writing (ISO/IEC 23000-19, ISO/IEC 14496-12):
//! [`init`] writes the header (init segment), [`fragment`] writes `moof`+`mdat`.

pub(crate) mod boxes;
pub mod cenc;
pub mod fragment;
pub mod init;

pub use fragment::write_fragment;
pub use init::{write_init, write_protected_init};

#[cfg(test)]
mod tests;
