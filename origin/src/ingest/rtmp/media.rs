//! RTMP media onto the packager's timeline: FLV tags with 32-bit millisecond
//! timestamps in, track lists and frames out. Sans-IO and deterministic (the
//! connection loop feeds it; tests and the fuzzer drive it directly).
//!
//! - Timestamps: RTMP's 32-bit milliseconds wrap after 49.7 days and may step
//!   back a little between audio and video; each timestamp is read as the
//!   signed distance from the previous one, so the timeline is 64-bit and
//!   continuous through the wrap. Video is on a 90 kHz clock, PTS = DTS +
//!   the tag's composition offset. Audio counts samples (1024 per AAC frame)
//!   from its first frame, and re-anchors on the message time only when that
//!   drifts by more than a frame (a gap in the encoder's audio).
//! - Tracks are announced at the first video keyframe after a video
//!   configuration (with the audio configuration if one came), and again
//!   whenever either configuration changes. Frames before the first
//!   announcement are dropped: the packager starts at a keyframe.
//! - NAL units are rewritten to 4-byte lengths when the encoder used 1 or 2.

use brook_packager::codec::aac::{AacConfig, SAMPLES_PER_FRAME};
use brook_packager::codec::h264::{self, AvcConfig};
use brook_packager::codec::h265::{self, HevcConfig};
use brook_packager::media::{CodecConfig, Frame, TrackInfo};
use bytes::Bytes;

use super::flv::{self, AudioTag, FlvError, VideoCodec, VideoTag};

pub use crate::ingest::VIDEO_TIMESCALE;

/// What the media path asks of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Tracks(Vec<TrackInfo>),
    Frame(Frame),
}

/// Counts of what could not be used (reported when the connection ends).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MediaStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Frames dropped before the first keyframe, or with malformed NAL units.
    pub dropped: u64,
    /// Tags that were not understood (unsupported codec, truncated).
    pub bad_tags: u64,
}

/// Why the publisher's media cannot be packaged at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("video: {0}")]
    Video(FlvError),
    #[error("video configuration: {0}")]
    VideoConfig(brook_packager::codec::CodecError),
}

#[derive(Debug, Default)]
pub struct RtmpMedia {
    video: Option<(CodecConfig, usize)>,
    audio: Option<AacConfig>,
    /// What was last announced; `None` until the first keyframe.
    announced: Option<Vec<TrackInfo>>,
    /// The configurations changed since the last announcement.
    changed: bool,
    last_ms: Option<u32>,
    timeline_ms: i64,
    next_audio: Option<i64>,
    audio_warned: bool,
    pub stats: MediaStats,
}

impl RtmpMedia {
    pub fn new() -> Self {
        Self::default()
    }

    /// The message's time on the 64-bit millisecond timeline.
    fn unwrap(&mut self, ms: u32) -> i64 {
        if let Some(last) = self.last_ms {
            self.timeline_ms += i64::from(ms.wrapping_sub(last) as i32);
        } else {
            self.timeline_ms = i64::from(ms);
        }
        self.last_ms = Some(ms);
        self.timeline_ms
    }

    /// A video message. `Err` only when the video can never be packaged
    /// (a codec Brook does not take, an unreadable configuration).
    pub fn video(&mut self, ms: u32, data: &[u8], out: &mut Vec<Out>) -> Result<(), MediaError> {
        let t = self.unwrap(ms);
        match flv::video(data) {
            Ok(VideoTag::Config { codec, record }) => {
                let config = match codec {
                    VideoCodec::Avc => AvcConfig::from_decoder_configuration_record(record)
                        .map(|(c, len)| (CodecConfig::Avc(c), len)),
                    VideoCodec::Hevc => HevcConfig::from_decoder_configuration_record(record)
                        .map(|(c, len)| (CodecConfig::Hevc(c), len)),
                }
                .map_err(MediaError::VideoConfig)?;
                if self.video.as_ref() != Some(&config) {
                    self.video = Some(config);
                    self.changed = true;
                }
                Ok(())
            }
            Ok(VideoTag::Frame {
                codec,
                keyframe,
                composition_ms,
                data,
            }) => {
                self.video_frame(t, codec, keyframe, composition_ms, data, out);
                Ok(())
            }
            Ok(VideoTag::Other) => Ok(()),
            Err(e @ FlvError::VideoCodec(_)) => Err(MediaError::Video(e)),
            Err(_) => {
                self.stats.bad_tags += 1;
                Ok(())
            }
        }
    }

    fn video_frame(
        &mut self,
        t: i64,
        codec: VideoCodec,
        keyframe: bool,
        composition_ms: i32,
        data: &[u8],
        out: &mut Vec<Out>,
    ) {
        let Some((config, length_size)) = &self.video else {
            self.stats.dropped += 1;
            return;
        };
        let matches = matches!(
            (codec, config),
            (VideoCodec::Avc, CodecConfig::Avc(_)) | (VideoCodec::Hevc, CodecConfig::Hevc(_))
        );
        let Some(sample) = matches
            .then(|| to_four_byte_lengths(data, *length_size))
            .flatten()
        else {
            self.stats.dropped += 1;
            return;
        };
        // The tag's flag, confirmed by the NAL units: a random-access picture.
        let keyframe = keyframe && has_random_access(&sample, codec);
        if self.announced.is_none() || self.changed {
            if !keyframe {
                self.stats.dropped += 1;
                return;
            }
            self.announce(out);
        }
        let dts = t * i64::from(VIDEO_TIMESCALE / 1000);
        let pts = (t + i64::from(composition_ms)) * i64::from(VIDEO_TIMESCALE / 1000);
        self.stats.video_frames += 1;
        out.push(Out::Frame(Frame {
            track: 0,
            dts,
            pts,
            keyframe,
            duration: None,
            data: Bytes::from(sample),
        }));
    }

    fn announce(&mut self, out: &mut Vec<Out>) {
        let Some((video, _)) = &self.video else {
            return;
        };
        let tracks = crate::ingest::video_and_aac_tracks(video.clone(), self.audio);
        self.changed = false;
        self.next_audio = None;
        self.announced = Some(tracks.clone());
        out.push(Out::Tracks(tracks));
    }

    /// An audio message. Audio Brook cannot package is dropped (counted, and
    /// logged once by the caller through the returned error).
    pub fn audio(&mut self, ms: u32, data: &[u8], out: &mut Vec<Out>) -> Result<(), FlvError> {
        let t = self.unwrap(ms);
        let tag = match flv::audio(data) {
            Ok(tag) => tag,
            Err(e) => {
                self.stats.bad_tags += 1;
                if std::mem::replace(&mut self.audio_warned, true) {
                    return Ok(());
                }
                return Err(e);
            }
        };
        match tag {
            AudioTag::Config(asc) => match AacConfig::from_audio_specific_config(asc) {
                Ok(config) => {
                    if self.audio != Some(config) {
                        self.audio = Some(config);
                        self.changed = true;
                    }
                }
                Err(_) => self.stats.bad_tags += 1,
            },
            AudioTag::Frame(raw) => self.audio_frame(t, raw, out),
        }
        Ok(())
    }

    fn audio_frame(&mut self, t: i64, raw: &[u8], out: &mut Vec<Out>) {
        let (Some(aac), Some(tracks)) = (self.audio, &self.announced) else {
            self.stats.dropped += 1;
            return;
        };
        if self.changed || tracks.len() < 2 || raw.is_empty() {
            // The announcement that includes this audio comes with the next
            // video keyframe.
            self.stats.dropped += 1;
            return;
        }
        let rate = i64::from(aac.sample_rate);
        let from_clock = t * rate / 1000;
        let frame = i64::from(SAMPLES_PER_FRAME);
        let dts = match self.next_audio {
            Some(next) if (next - from_clock).abs() <= frame => next,
            _ => from_clock,
        };
        self.next_audio = Some(dts + frame);
        self.stats.audio_frames += 1;
        out.push(Out::Frame(Frame {
            track: 1,
            dts,
            pts: dts,
            keyframe: true,
            duration: Some(SAMPLES_PER_FRAME),
            data: Bytes::copy_from_slice(raw),
        }));
    }
}

/// Length-prefixed NAL units with `size`-byte lengths, rewritten with 4-byte
/// lengths; `None` when a length runs past the end or a unit is empty.
fn to_four_byte_lengths(data: &[u8], size: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + 8);
    let mut rest = data;
    while !rest.is_empty() {
        let len = rest
            .get(..size)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let nal = rest.get(size..size + len)?;
        if nal.is_empty() {
            return None;
        }
        out.extend_from_slice(&u32::try_from(len).ok()?.to_be_bytes());
        out.extend_from_slice(nal);
        rest = &rest[size + len..];
    }
    (!out.is_empty()).then_some(out)
}

/// Whether an access unit in 4-byte length form holds an IDR (H.264) or IRAP
/// (H.265) picture.
fn has_random_access(sample: &[u8], codec: VideoCodec) -> bool {
    match codec {
        VideoCodec::Avc => h264::au_has_idr(sample),
        VideoCodec::Hevc => h265::au_has_irap(sample),
    }
}

#[cfg(test)]
mod tests;
