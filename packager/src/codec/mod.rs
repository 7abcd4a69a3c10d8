//! Elementary stream formats: what the packager must read from each codec's
//! bitstream to describe it in CMAF and HLS.

pub mod aac;
pub(crate) mod bits;
pub mod h264;
pub mod h265;
pub mod opus;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("H.264: {0}")]
    H264(&'static str),
    #[error("H.265: {0}")]
    H265(&'static str),
    #[error("AAC: {0}")]
    Aac(&'static str),
}
