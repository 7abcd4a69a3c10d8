//! FLV tag bodies as RTMP carries them in video and audio messages: classic
//! FLV (`VideoTagHeader` with CodecID 7, AVC; `AudioTagHeader` with
//! SoundFormat 10, AAC) and Enhanced RTMP v1 video (the `IsExHeader` bit, a
//! FourCC and a packet type, so HEVC can travel over RTMP). Pure parsing: no
//! state, no IO, borrowed slices out.
//!
//! References: the FLV specification v10.1 §E.4.2-E.4.3, and veovera's
//! Enhanced RTMP specification (v1: `ExVideoTagHeader`).

/// A video codec an RTMP publisher may send that Brook packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Avc,
    Hevc,
}

/// What one video message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoTag<'a> {
    /// The decoder configuration record (`AVCDecoderConfigurationRecord`,
    /// `HEVCDecoderConfigurationRecord`) for the frames that follow.
    Config { codec: VideoCodec, record: &'a [u8] },
    /// One access unit: NAL units, each prefixed by its length (of the size
    /// the configuration record gives).
    Frame {
        codec: VideoCodec,
        /// The tag says it is a keyframe (FrameType 1).
        keyframe: bool,
        /// Presentation minus decoding time, milliseconds.
        composition_ms: i32,
        data: &'a [u8],
    },
    /// End of sequence, video info/command frames, metadata: nothing to
    /// package.
    Other,
}

/// What one audio message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioTag<'a> {
    /// The AAC `AudioSpecificConfig`.
    Config(&'a [u8]),
    /// One raw AAC frame.
    Frame(&'a [u8]),
}

/// Why a tag cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("empty tag")]
    Empty,
    #[error("tag cut short")]
    Truncated,
    #[error("unsupported video codec {0}")]
    VideoCodec(String),
    #[error("unsupported audio format {0} (Brook takes AAC)")]
    AudioFormat(u8),
    #[error("unsupported Enhanced RTMP packet type {0}")]
    PacketType(u8),
}

const FRAME_KEY: u8 = 1;
const FRAME_COMMAND: u8 = 5;
const CODEC_AVC: u8 = 7;
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
const AUDIO_AAC: u8 = 10;

// Enhanced RTMP v1 `VideoPacketType`.
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_CODED_FRAMES_X: u8 = 3;
const EX_METADATA: u8 = 4;

/// Parses the body of an RTMP video message.
pub fn video(data: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let &b0 = data.first().ok_or(FlvError::Empty)?;
    if b0 & 0x80 != 0 {
        return enhanced_video(data);
    }
    let frame_type = b0 >> 4;
    let codec_id = b0 & 0x0F;
    if frame_type == FRAME_COMMAND {
        return Ok(VideoTag::Other);
    }
    if codec_id != CODEC_AVC {
        return Err(FlvError::VideoCodec(format!("FLV CodecID {codec_id}")));
    }
    let header = data.get(1..5).ok_or(FlvError::Truncated)?;
    let composition_ms = si24(&header[1..4]);
    let body = &data[5..];
    match header[0] {
        AVC_SEQUENCE_HEADER => Ok(VideoTag::Config {
            codec: VideoCodec::Avc,
            record: body,
        }),
        AVC_NALU => Ok(VideoTag::Frame {
            codec: VideoCodec::Avc,
            keyframe: frame_type == FRAME_KEY,
            composition_ms,
            data: body,
        }),
        _ => Ok(VideoTag::Other),
    }
}

fn enhanced_video(data: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let b0 = data[0];
    let frame_type = (b0 >> 4) & 0x07;
    let packet_type = b0 & 0x0F;
    let fourcc = data.get(1..5).ok_or(FlvError::Truncated)?;
    let codec = match fourcc {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        other => {
            return Err(FlvError::VideoCodec(format!(
                "FourCC {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    if frame_type == FRAME_COMMAND {
        return Ok(VideoTag::Other);
    }
    let body = &data[5..];
    let keyframe = frame_type == FRAME_KEY;
    match packet_type {
        EX_SEQUENCE_START => Ok(VideoTag::Config {
            codec,
            record: body,
        }),
        EX_CODED_FRAMES => {
            let cts = body.get(..3).ok_or(FlvError::Truncated)?;
            Ok(VideoTag::Frame {
                codec,
                keyframe,
                composition_ms: si24(cts),
                data: &body[3..],
            })
        }
        EX_CODED_FRAMES_X => Ok(VideoTag::Frame {
            codec,
            keyframe,
            composition_ms: 0,
            data: body,
        }),
        EX_SEQUENCE_END | EX_METADATA => Ok(VideoTag::Other),
        // MPEG2TSSequenceStart, Multitrack (OBS's enhanced broadcasting),
        // ModEx (E-RTMP v2): not parsed; the publisher's other tags go on.
        other => Err(FlvError::PacketType(other)),
    }
}

/// Parses the body of an RTMP audio message.
pub fn audio(data: &[u8]) -> Result<AudioTag<'_>, FlvError> {
    let &b0 = data.first().ok_or(FlvError::Empty)?;
    let format = b0 >> 4;
    if format != AUDIO_AAC {
        return Err(FlvError::AudioFormat(format));
    }
    let &packet_type = data.get(1).ok_or(FlvError::Truncated)?;
    let body = &data[2..];
    Ok(if packet_type == 0 {
        AudioTag::Config(body)
    } else {
        AudioTag::Frame(body)
    })
}

/// A signed 24-bit big-endian integer.
fn si24(b: &[u8]) -> i32 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    (v << 8) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_avc_tags() {
        let config = [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f];
        assert_eq!(
            video(&config),
            Ok(VideoTag::Config {
                codec: VideoCodec::Avc,
                record: &[1, 0x64, 0, 0x1f]
            })
        );
        // An inter frame with a composition offset of -1 ms (0xFFFFFF).
        let frame = [0x27, 1, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0x41];
        assert_eq!(
            video(&frame),
            Ok(VideoTag::Frame {
                codec: VideoCodec::Avc,
                keyframe: false,
                composition_ms: -1,
                data: &[0, 0, 0, 1, 0x41]
            })
        );
        let key = [0x17, 1, 0, 0, 66, 9];
        assert!(matches!(
            video(&key),
            Ok(VideoTag::Frame {
                keyframe: true,
                composition_ms: 66,
                ..
            })
        ));
        assert_eq!(video(&[0x17, 2, 0, 0, 0]), Ok(VideoTag::Other));
        assert_eq!(video(&[0x57, 0]), Ok(VideoTag::Other));
    }

    #[test]
    fn enhanced_hevc_tags() {
        let mut start = vec![0x80 | 0x10 | EX_SEQUENCE_START];
        start.extend_from_slice(b"hvc1");
        start.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            video(&start),
            Ok(VideoTag::Config {
                codec: VideoCodec::Hevc,
                record: &[1, 2, 3]
            })
        );
        let mut coded = vec![0x80 | 0x10 | EX_CODED_FRAMES];
        coded.extend_from_slice(b"hvc1");
        coded.extend_from_slice(&[0, 0, 33, 0, 0, 0, 1, 0x26]);
        assert!(matches!(
            video(&coded),
            Ok(VideoTag::Frame {
                codec: VideoCodec::Hevc,
                keyframe: true,
                composition_ms: 33,
                ..
            })
        ));
        let mut x = vec![0x80 | 0x20 | EX_CODED_FRAMES_X];
        x.extend_from_slice(b"hvc1");
        x.extend_from_slice(&[0, 0, 0, 1, 2]);
        assert_eq!(
            video(&x),
            Ok(VideoTag::Frame {
                codec: VideoCodec::Hevc,
                keyframe: false,
                composition_ms: 0,
                data: &[0, 0, 0, 1, 2]
            })
        );
        let mut av1 = vec![0x80 | 0x10];
        av1.extend_from_slice(b"av01");
        assert!(matches!(video(&av1), Err(FlvError::VideoCodec(_))));
    }

    #[test]
    fn aac_tags_and_refusals() {
        assert_eq!(
            audio(&[0xAF, 0, 0x12, 0x10]),
            Ok(AudioTag::Config(&[0x12, 0x10]))
        );
        assert_eq!(audio(&[0xAF, 1, 9, 9]), Ok(AudioTag::Frame(&[9, 9])));
        assert_eq!(audio(&[0x2F, 1]), Err(FlvError::AudioFormat(2)));
        assert_eq!(audio(&[]), Err(FlvError::Empty));
        assert_eq!(audio(&[0xAF]), Err(FlvError::Truncated));
        assert_eq!(video(&[]), Err(FlvError::Empty));
        assert_eq!(video(&[0x17, 1, 0]), Err(FlvError::Truncated));
        assert!(matches!(
            video(&[0x12, 1, 0, 0, 0]),
            Err(FlvError::VideoCodec(_))
        ));
    }

    /// Every prefix of every byte pattern: an answer, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let len = (seed % 16) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            let _ = video(&bytes);
            let _ = audio(&bytes);
        }
    }
}
