//! Elementary stream formats: what the packager must read from each codec's
//! bitstream to describe it in CMAF and HLS.

pub mod aac;
pub(crate) mod bits;
pub mod h264;
pub mod h265;
pub mod opus;

/// The NAL units of an access unit in MP4 form (each behind a 4-byte
/// big-endian length), up to the first length that runs past the end.
pub fn length_prefixed_nals(mut au: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = au.split_first_chunk::<4>()?;
        let nal = rest.get(..u32::from_be_bytes(*len) as usize)?;
        au = &rest[nal.len()..];
        Some(nal)
    })
}

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
