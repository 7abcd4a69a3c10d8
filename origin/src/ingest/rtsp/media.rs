//! A camera's depacketized frames onto the packager's timeline: which of the
//! camera's streams to take, decoder configurations in, track lists and
//! frames out. Sans-IO and deterministic: `session.rs` feeds it what retina
//! hands over (frames with extended RTP timestamps, `extra_data`), tests and
//! the fuzzer drive it directly, and "now" (a frame's arrival) is always an
//! argument.
//!
//! - **Streams**: the first H.264 or H.265 video stream and the first AAC
//!   (`mpeg4-generic`) audio stream are set up; everything else is left out
//!   ([`select`] says why, for one warning): G.711 (PCMU/PCMA) and other
//!   audio Brook cannot package, MJPEG, ONVIF metadata.
//! - **Configuration**: retina gives H.264/H.265 parameters as an
//!   `AVCDecoderConfigurationRecord` / `HEVCDecoderConfigurationRecord` and
//!   AAC's as an `AudioSpecificConfig` (`FrameFormat::MP4`); the packager
//!   reads them. Tracks are announced at the first video keyframe after a
//!   configuration, and again after a change (a camera that switches
//!   resolution). Frames before the first announcement are dropped: the
//!   packager starts at a keyframe.
//! - **Timeline**: RTP timestamps carry each stream's own clock from a random
//!   start. Each track starts where its first frame arrived, measured from
//!   the first frame of the session (of either track), and follows its RTP
//!   clock from there: video on 90 kHz, audio on its sample rate. (RTCP
//!   sender reports would align the tracks exactly; arrival times are off by
//!   the difference in encoder and network delay between the tracks, tens of
//!   milliseconds. docs/rtsp.md.)
//! - **Decode order**: RTP carries presentation times only. DTS = PTS, which
//!   is exact for streams without B-frames (what cameras and x264's
//!   zerolatency send); a picture whose time does not advance is nudged one
//!   tick past the previous one so the decode timeline stays monotonic.
//! - **Loss**: a video frame after lost packets breaks the reference chain:
//!   video is dropped until the next keyframe.
//! - **Clock jumps**: a step of more than [`MAX_JUMP_SECS`] either way (a
//!   camera that reset its clock) is an error: the session is restarted,
//!   which the pipeline turns into a discontinuity.
//!
//! Drive contract: [`select`] the streams; [`RtspMedia::set_video`] /
//! [`RtspMedia::set_audio`] with the configurations known at `PLAY` and again
//! whenever retina reports new parameters; then [`RtspMedia::video`] and
//! [`RtspMedia::audio`] for each frame in arrival order, handing what they
//! push onto `out` to the pipeline in that order.

use brook_packager::codec::aac::AacConfig;
use brook_packager::codec::h264::{self, AvcConfig};
use brook_packager::codec::h265::{self, HevcConfig};
use brook_packager::codec::CodecError;
use brook_packager::media::{CodecConfig, Frame, TrackInfo};
use brook_packager::UnixMillis;
use bytes::Bytes;

pub use crate::ingest::VIDEO_TIMESCALE;
/// Index of the video track in the track list; audio (when there is) is 1.
pub const VIDEO: usize = 0;
pub const AUDIO: usize = 1;
/// A timestamp step larger than this, forward or back, is a new clock.
pub const MAX_JUMP_SECS: i64 = 10;
/// Largest frame taken (a 4K IDR is well under this).
const MAX_FRAME_BYTES: usize = 16 << 20;

/// What the media path asks of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Tracks(Vec<TrackInfo>),
    Frame(Frame),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
}

/// One stream of the camera's presentation (its SDP media section).
#[derive(Debug, Clone, Copy)]
pub struct Offered<'a> {
    /// `video`, `audio`, `application`.
    pub media: &'a str,
    /// The RTP encoding name (`H264`, `mpeg4-generic`, `PCMU`, ...).
    pub encoding: &'a str,
}

/// Which streams to set up, and what is left out and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub video: Option<(usize, VideoCodec)>,
    pub audio: Option<usize>,
    /// Left out: (stream index, why).
    pub dropped: Vec<(usize, String)>,
}

/// Picks the streams Brook packages from a presentation.
pub fn select(streams: &[Offered<'_>]) -> Selection {
    let mut s = Selection::default();
    for (i, o) in streams.iter().enumerate() {
        let media = o.media.to_ascii_lowercase();
        let encoding = o.encoding.to_ascii_lowercase();
        let codec = match encoding.as_str() {
            "h264" => Some(VideoCodec::H264),
            "h265" => Some(VideoCodec::H265),
            _ => None,
        };
        let why = match (media.as_str(), codec, encoding.as_str()) {
            ("video", Some(c), _) if s.video.is_none() => {
                s.video = Some((i, c));
                continue;
            }
            ("audio", _, "mpeg4-generic") if s.audio.is_none() => {
                s.audio = Some(i);
                continue;
            }
            ("video", Some(_), _) | ("audio", _, "mpeg4-generic") => {
                format!("a second {media} stream ({})", o.encoding)
            }
            ("audio", _, "pcmu" | "pcma") => format!(
                "G.711 audio ({}) is not packaged: dropped by policy (HLS/DASH players want AAC)",
                o.encoding.to_ascii_uppercase()
            ),
            ("video", None, _) => format!("video codec {} is not supported", o.encoding),
            ("audio", _, _) => format!("audio codec {} is not supported", o.encoding),
            _ => format!(
                "{} stream ({}) is not media Brook packages",
                o.media, o.encoding
            ),
        };
        s.dropped.push((i, why));
    }
    s
}

/// One video frame as retina delivered it.
#[derive(Debug, Clone, Copy)]
pub struct VideoIn<'a> {
    /// RTP timestamp extended to 64 bits, in the stream's clock.
    pub timestamp: i64,
    pub clock_rate: u32,
    /// The depacketizer saw an IDR (H.264) / IDR or BLA (H.265) picture.
    pub random_access: bool,
    /// RTP packets lost before this frame.
    pub loss: u16,
    pub arrival: UnixMillis,
    /// NAL units with 4-byte big-endian lengths.
    pub data: &'a [u8],
}

/// One AAC access unit as retina delivered it.
#[derive(Debug, Clone, Copy)]
pub struct AudioIn<'a> {
    pub timestamp: i64,
    pub clock_rate: u32,
    /// Samples in this frame, in the stream's clock (1024 for AAC-LC).
    pub frame_length: u32,
    pub arrival: UnixMillis,
    pub data: &'a [u8],
}

/// Why the camera's media cannot go on in this session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("video configuration: {0}")]
    VideoConfig(CodecError),
    #[error("audio configuration: {0}")]
    AudioConfig(CodecError),
    #[error("{track} clock jumped by {ticks} ticks at {clock_rate} Hz")]
    TimestampJump {
        track: &'static str,
        ticks: i64,
        clock_rate: u32,
    },
    #[error("clock rate 0")]
    ClockRate,
}

/// Counts for the session's end-of-life log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MediaStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Before the first keyframe, after a loss until the next keyframe,
    /// malformed, or audio before its track was announced.
    pub dropped: u64,
    /// Video frames that came after lost packets.
    pub loss_events: u64,
}

/// One track's RTP clock mapped onto its timescale.
#[derive(Debug, Clone, Copy)]
struct Clock {
    first: i64,
    last: i64,
    rate: u32,
    /// Where the first frame sits on the track's timescale.
    offset: i64,
}

#[derive(Debug, Default)]
pub struct RtspMedia {
    video: Option<CodecConfig>,
    audio: Option<AacConfig>,
    /// The track list last announced; `None` until the first keyframe.
    announced: Option<Vec<TrackInfo>>,
    changed: bool,
    /// Arrival of the session's first frame: the timeline's zero.
    origin: Option<UnixMillis>,
    video_clock: Option<Clock>,
    audio_clock: Option<Clock>,
    /// Video is dropped until a keyframe (start, loss, malformed frame).
    need_keyframe: bool,
    last_video_dts: Option<i64>,
    last_audio_dts: Option<i64>,
    pub stats: MediaStats,
}

impl RtspMedia {
    pub fn new() -> Self {
        Self::default()
    }

    /// The video stream's decoder configuration record (avcC / hvcC).
    pub fn set_video(&mut self, codec: VideoCodec, record: &[u8]) -> Result<(), MediaError> {
        let config = match codec {
            VideoCodec::H264 => AvcConfig::from_decoder_configuration_record(record)
                .map(|(c, len)| (CodecConfig::Avc(c), len)),
            VideoCodec::H265 => HevcConfig::from_decoder_configuration_record(record)
                .map(|(c, len)| (CodecConfig::Hevc(c), len)),
        }
        .map_err(MediaError::VideoConfig)?;
        if config.1 != 4 {
            // retina writes 4-byte lengths (FrameFormat::MP4) and says so in
            // the record; a record that says otherwise is not retina's.
            return Err(MediaError::VideoConfig(match codec {
                VideoCodec::H264 => CodecError::H264("NAL length size is not 4"),
                VideoCodec::H265 => CodecError::H265("NAL length size is not 4"),
            }));
        }
        if self.video.as_ref() != Some(&config.0) {
            self.video = Some(config.0);
            self.changed = true;
        }
        Ok(())
    }

    /// The audio stream's `AudioSpecificConfig`.
    pub fn set_audio(&mut self, asc: &[u8]) -> Result<(), MediaError> {
        let config = AacConfig::from_audio_specific_config(asc).map_err(MediaError::AudioConfig)?;
        if self.audio != Some(config) {
            self.audio = Some(config);
            self.changed = true;
        }
        Ok(())
    }

    /// Where `timestamp` falls on a track's timescale; starts the track's
    /// clock at its first frame.
    fn place(
        clock: &mut Option<Clock>,
        origin: UnixMillis,
        track: &'static str,
        timestamp: i64,
        rate: u32,
        arrival: UnixMillis,
        timescale: u32,
    ) -> Result<i64, MediaError> {
        if rate == 0 {
            return Err(MediaError::ClockRate);
        }
        let c = match clock {
            Some(c) if c.rate == rate => c,
            _ => {
                let after_ms = i64::try_from(arrival.0.saturating_sub(origin.0)).unwrap_or(0);
                clock.insert(Clock {
                    first: timestamp,
                    last: timestamp,
                    rate,
                    offset: rescale(after_ms, 1000, timescale),
                })
            }
        };
        let step = timestamp.saturating_sub(c.last);
        if step.unsigned_abs() > MAX_JUMP_SECS.unsigned_abs() * u64::from(rate) {
            return Err(MediaError::TimestampJump {
                track,
                ticks: step,
                clock_rate: rate,
            });
        }
        c.last = timestamp;
        Ok(c.offset
            .saturating_add(rescale(timestamp.saturating_sub(c.first), rate, timescale)))
    }

    /// A video frame. `Err` ends the session (a clock jump).
    pub fn video(&mut self, f: VideoIn<'_>, out: &mut Vec<Out>) -> Result<(), MediaError> {
        let origin = *self.origin.get_or_insert(f.arrival);
        let t = Self::place(
            &mut self.video_clock,
            origin,
            "video",
            f.timestamp,
            f.clock_rate,
            f.arrival,
            VIDEO_TIMESCALE,
        )?;
        let codec = match &self.video {
            Some(CodecConfig::Avc(_)) => VideoCodec::H264,
            Some(CodecConfig::Hevc(_)) => VideoCodec::H265,
            _ => {
                self.stats.dropped += 1;
                return Ok(());
            }
        };
        if f.loss > 0 {
            self.stats.loss_events += 1;
            self.need_keyframe = true;
        }
        if f.data.is_empty() || f.data.len() > MAX_FRAME_BYTES || !length_prefixed(f.data) {
            self.stats.dropped += 1;
            self.need_keyframe = true;
            return Ok(());
        }
        // The depacketizer's flag, confirmed by the NAL units themselves. For
        // H.265 the NAL units decide alone: retina 0.4 does not count a CRA
        // picture (x265's keyframe after the first IDR) as random access;
        // Brook's MPEG-TS path takes every IRAP (BLA, IDR, CRA), and so does
        // this one.
        let keyframe =
            (f.random_access || codec == VideoCodec::H265) && has_random_access(f.data, codec);
        if (self.need_keyframe || self.announced.is_none() || self.changed) && !keyframe {
            self.stats.dropped += 1;
            return Ok(());
        }
        self.need_keyframe = false;
        if self.announced.is_none() || self.changed {
            self.announce(out);
        }
        let dts = match self.last_video_dts {
            Some(last) if t <= last => last + 1,
            _ => t,
        };
        self.last_video_dts = Some(dts);
        self.stats.video_frames += 1;
        out.push(Out::Frame(Frame {
            track: VIDEO,
            dts,
            pts: dts.max(t),
            keyframe,
            duration: None,
            data: Bytes::copy_from_slice(f.data),
        }));
        Ok(())
    }

    fn announce(&mut self, out: &mut Vec<Out>) {
        let Some(video) = &self.video else {
            return;
        };
        let tracks = crate::ingest::video_and_aac_tracks(video.clone(), self.audio);
        self.changed = false;
        // A new track list is a new timeline in the packager.
        self.last_video_dts = None;
        self.last_audio_dts = None;
        self.announced = Some(tracks.clone());
        out.push(Out::Tracks(tracks));
    }

    /// An AAC frame. `Err` ends the session (a clock jump).
    pub fn audio(&mut self, f: AudioIn<'_>, out: &mut Vec<Out>) -> Result<(), MediaError> {
        let origin = *self.origin.get_or_insert(f.arrival);
        let Some(aac) = self.audio else {
            self.stats.dropped += 1;
            return Ok(());
        };
        let t = Self::place(
            &mut self.audio_clock,
            origin,
            "audio",
            f.timestamp,
            f.clock_rate,
            f.arrival,
            aac.sample_rate,
        )?;
        let announced = self.announced.as_ref().is_some_and(|t| t.len() > AUDIO);
        if !announced || self.changed || f.data.is_empty() || f.data.len() > MAX_FRAME_BYTES {
            // The announcement that includes this audio comes with the next
            // video keyframe.
            self.stats.dropped += 1;
            return Ok(());
        }
        if self.last_audio_dts.is_some_and(|last| t <= last) {
            self.stats.dropped += 1;
            return Ok(());
        }
        self.last_audio_dts = Some(t);
        let duration = rescale(i64::from(f.frame_length), f.clock_rate, aac.sample_rate);
        self.stats.audio_frames += 1;
        out.push(Out::Frame(Frame {
            track: AUDIO,
            dts: t,
            pts: t,
            keyframe: true,
            duration: u32::try_from(duration).ok().filter(|d| *d > 0),
            data: Bytes::copy_from_slice(f.data),
        }));
        Ok(())
    }

    /// What must hold between any two calls (the fuzzer checks it).
    pub fn check_invariants(&self) {
        if let Some(tracks) = &self.announced {
            assert!(!tracks.is_empty());
            assert!(self.video.is_some(), "tracks announced without video");
            assert_eq!(tracks[VIDEO].timescale, VIDEO_TIMESCALE);
        } else {
            assert!(self.last_video_dts.is_none() && self.last_audio_dts.is_none());
        }
    }
}

/// `ticks` at `from` Hz on a `to` Hz clock, rounded down; saturating.
fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return ticks;
    }
    let v = i128::from(ticks) * i128::from(to) / i128::from(from);
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// NAL units with 4-byte lengths that end exactly at the end, none empty.
fn length_prefixed(mut data: &[u8]) -> bool {
    while !data.is_empty() {
        let Some((len, rest)) = data.split_first_chunk::<4>() else {
            return false;
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len == 0 || len > rest.len() {
            return false;
        }
        data = &rest[len..];
    }
    true
}

/// Whether an access unit in 4-byte length form holds an IDR (H.264) or IRAP
/// (H.265) picture.
fn has_random_access(data: &[u8], codec: VideoCodec) -> bool {
    match codec {
        VideoCodec::H264 => h264::au_has_idr(data),
        VideoCodec::H265 => h265::au_has_irap(data),
    }
}

#[cfg(test)]
mod tests;
