//! MPEG-2 transport stream demultiplexing (ISO/IEC 13818-1), one file per wire layer:
//! [`packet`] (188-byte packets), [`psi`] (PAT/PMT), [`pes`] (PES headers) and
//! [`demux`] (the push/poll state machine that ties them together).

pub mod demux;
pub mod inject;
pub mod packet;
pub mod pes;
pub mod psi;

pub use demux::{DemuxEvent, DemuxStats, Demuxer, Pes};
pub use psi::{EsInfo, StreamType};

/// What went wrong in the transport stream, with the PID or byte offset to find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    #[error("packet of {len} bytes, expected 188")]
    ShortPacket { len: usize },
    #[error("sync byte 0x47 missing")]
    LostSync,
    #[error("pid {pid:#x}: adaptation field length {len} too large")]
    AdaptationFieldLength { pid: u16, len: usize },
    #[error("pid {pid:#x}: PSI: {what}")]
    Psi { pid: u16, what: &'static str },
    #[error("pid {pid:#x}: PSI section CRC mismatch")]
    Crc { pid: u16 },
    #[error("pid {pid:#x}: PES: {what}")]
    Pes { pid: u16, what: &'static str },
    /// No run of valid packets in a long stretch of input: this is not MPEG-TS.
    #[error("no MPEG-TS sync in {skipped} bytes before offset {offset}")]
    NotTransportStream { offset: u64, skipped: u64 },
    /// Valid packets, but never a PAT and PMT to say what they carry.
    #[error("no PAT/PMT in the first {bytes} bytes")]
    NoProgram { bytes: u64 },
}
