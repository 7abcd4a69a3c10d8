//! The codec-neutral media model every front end (MPEG-TS, and later RTP from WHIP
//! or RTSP) produces: tracks with their decoder configuration, and timed frames.

use bytes::Bytes;

use crate::codec::aac::AacConfig;
use crate::codec::h264::AvcConfig;
use crate::codec::h265::HevcConfig;
use crate::codec::opus::OpusConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
}

/// Decoder configuration of a track, as the init segment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecConfig {
    Avc(AvcConfig),
    Hevc(HevcConfig),
    Aac(AacConfig),
    Opus(OpusConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// MP4 `track_ID`, 1-based.
    pub id: u32,
    /// Ticks per second of this track's timestamps.
    pub timescale: u32,
    pub codec: CodecConfig,
}

impl TrackInfo {
    pub fn kind(&self) -> TrackKind {
        match self.codec {
            CodecConfig::Avc(_) | CodecConfig::Hevc(_) => TrackKind::Video,
            CodecConfig::Aac(_) | CodecConfig::Opus(_) => TrackKind::Audio,
        }
    }

    /// RFC 6381 codec string for `CODECS`.
    pub fn codec_string(&self) -> String {
        match &self.codec {
            CodecConfig::Avc(c) => c.sps.codec_string(),
            CodecConfig::Hevc(c) => c.sps.codec_string(),
            CodecConfig::Aac(c) => c.codec_string(),
            CodecConfig::Opus(c) => c.codec_string(),
        }
    }

    /// Picture size for video tracks.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        match &self.codec {
            CodecConfig::Avc(c) => Some((c.sps.width, c.sps.height)),
            CodecConfig::Hevc(c) => Some((c.sps.width, c.sps.height)),
            CodecConfig::Aac(_) | CodecConfig::Opus(_) => None,
        }
    }
}

/// One coded frame handed to the segmenter, in its track's timescale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Index into the track list the segmenter was started with.
    pub track: usize,
    pub dts: i64,
    pub pts: i64,
    /// Starts a decodable sequence (IDR for video; every audio frame).
    pub keyframe: bool,
    /// Known duration (audio frames have one); `None` for video, where it is the
    /// distance to the next frame's DTS.
    pub duration: Option<u32>,
    /// Sample bytes in MP4 form (length-prefixed NAL units, raw AAC).
    pub data: Bytes,
}

/// A frame with its duration settled, ready to be written into a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub dts: i64,
    pub duration: u32,
    /// PTS - DTS.
    pub cts_offset: i32,
    pub keyframe: bool,
    pub data: Bytes,
}
