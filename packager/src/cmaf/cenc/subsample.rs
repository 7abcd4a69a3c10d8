//! Subsample maps: which bytes of a sample stay clear (ISO/IEC 23001-7 §9.5,
//! ISO/IEC 14496-15 and what shaka-packager writes):
//!
//! - every NAL unit's length prefix and header stay clear; parameter sets, SEI
//!   and every other non-slice NAL unit stay clear whole;
//! - in a slice the slice header stays clear too (players such as Apple's parse
//!   it); protection starts with the slice data;
//! - `cenc` protects whole 16-byte blocks only: the remainder moves to the
//!   clear bytes before the protected ones;
//! - clear runs are 16-bit: a longer one is split into clear-only subsamples.
//!
//! Consecutive clear NAL units join the clear bytes of the next protected one.

use super::Scheme;
use crate::codec::h264::SliceHeaderParser;
use crate::codec::h265::HevcSliceHeaderParser;

/// One `senc` subsample entry: clear bytes, then protected bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subsample {
    pub clear: u16,
    pub protected: u32,
}

/// Length of a NAL unit length prefix in Brook's samples (avcC/hvcC write
/// `lengthSizeMinusOne = 3`).
const NAL_LENGTH: usize = 4;

/// The subsample map of an H.264 sample (length-prefixed NAL units). Bytes the
/// NAL structure does not account for (a truncated last unit) stay clear.
pub fn avc(sample: &[u8], parser: &SliceHeaderParser, scheme: Scheme) -> Vec<Subsample> {
    let mut out = Vec::new();
    avc_into(sample, parser, scheme, &mut out);
    out
}

/// [`avc`], appending the map to `out` (one buffer for a whole fragment).
pub fn avc_into(
    sample: &[u8],
    parser: &SliceHeaderParser,
    scheme: Scheme,
    out: &mut Vec<Subsample>,
) {
    nal_units_into(sample, |nal| parser.clear_bytes(nal), scheme, out);
}

/// The subsample map of an H.265 sample (length-prefixed NAL units): the
/// same rules as [`avc`], with HEVC's 2-byte NAL headers and slice segment
/// headers. VPS, SPS, PPS, SEI and every other non-VCL unit stay clear whole.
pub fn hevc(sample: &[u8], parser: &HevcSliceHeaderParser, scheme: Scheme) -> Vec<Subsample> {
    let mut out = Vec::new();
    hevc_into(sample, parser, scheme, &mut out);
    out
}

/// [`hevc`], appending the map to `out`.
pub fn hevc_into(
    sample: &[u8],
    parser: &HevcSliceHeaderParser,
    scheme: Scheme,
    out: &mut Vec<Subsample>,
) {
    nal_units_into(sample, |nal| parser.clear_bytes(nal), scheme, out);
}

/// The map of length-prefixed NAL units, `clear_bytes` saying how many bytes
/// of each unit (from its header) stay clear; a unit it cannot tell
/// (`None`: a slice header that does not parse) stays clear whole.
fn nal_units_into(
    sample: &[u8],
    clear_bytes: impl Fn(&[u8]) -> Option<usize>,
    scheme: Scheme,
    out: &mut Vec<Subsample>,
) {
    let mut clear = 0usize;
    let mut rest = sample;
    while rest.len() >= NAL_LENGTH {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(NAL_LENGTH..NAL_LENGTH + len) else {
            break; // truncated: the rest stays clear
        };
        rest = &rest[NAL_LENGTH + len..];
        let header = clear_bytes(nal).unwrap_or(len);
        let mut nal_clear = NAL_LENGTH + header.min(len);
        let mut protected = len - header.min(len);
        if scheme == Scheme::Cenc {
            let misaligned = protected % 16;
            nal_clear += misaligned;
            protected -= misaligned;
        }
        clear += nal_clear;
        if protected > 0 {
            push(out, clear, protected as u32);
            clear = 0;
        }
    }
    clear += rest.len();
    if clear > 0 {
        push(out, clear, 0);
    }
}

/// Adds (clear, protected), splitting clear runs over 65535 bytes.
fn push(out: &mut Vec<Subsample>, mut clear: usize, protected: u32) {
    while clear > usize::from(u16::MAX) {
        out.push(Subsample {
            clear: u16::MAX,
            protected: 0,
        });
        clear -= usize::from(u16::MAX);
    }
    out.push(Subsample {
        clear: clear as u16,
        protected,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_clear_runs_are_split() {
        let mut out = Vec::new();
        push(&mut out, 70_000, 32);
        assert_eq!(
            out,
            vec![
                Subsample {
                    clear: 65535,
                    protected: 0
                },
                Subsample {
                    clear: 4465,
                    protected: 32
                }
            ]
        );
    }
}
