//! AAC in ADTS framing (ISO/IEC 13818-7 §6.2 / 14496-3 §1.A.2) and the
//! `AudioSpecificConfig` MP4 needs (ISO/IEC 14496-3 §1.6.2.1).

use super::CodecError;

pub const SAMPLES_PER_FRAME: u32 = 1024;

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// The stream configuration an ADTS header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// MPEG-4 audio object type (2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate_index: u8,
    pub sample_rate: u32,
    pub channel_config: u8,
}

impl AacConfig {
    /// Reads an `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1), as RTMP/FLV
    /// and MP4 carry it: the object type, sampling frequency index and
    /// channel configuration. An escaped object type (31), an explicit
    /// frequency (index 15) or a channel configuration of 0 (a program
    /// config element) are refused: the `mp4a` entry Brook writes cannot say
    /// them.
    pub fn from_audio_specific_config(asc: &[u8]) -> Result<AacConfig, CodecError> {
        let [b0, b1, ..] = *asc else {
            return Err(CodecError::Aac("AudioSpecificConfig shorter than 2 bytes"));
        };
        let object_type = b0 >> 3;
        let sample_rate_index = ((b0 & 0x07) << 1) | (b1 >> 7);
        let channel_config = (b1 >> 3) & 0x0F;
        if object_type == 0 || object_type == 31 {
            return Err(CodecError::Aac("unsupported audio object type"));
        }
        let sample_rate = *SAMPLE_RATES
            .get(usize::from(sample_rate_index))
            .ok_or(CodecError::Aac("explicit or reserved sampling frequency"))?;
        if channel_config == 0 || channel_config > 7 {
            return Err(CodecError::Aac("unsupported channel configuration"));
        }
        Ok(AacConfig {
            object_type,
            sample_rate_index,
            sample_rate,
            channel_config,
        })
    }

    /// The 2-byte `AudioSpecificConfig`.
    pub fn audio_specific_config(&self) -> [u8; 2] {
        let v: u16 = (u16::from(self.object_type) << 11)
            | (u16::from(self.sample_rate_index) << 7)
            | (u16::from(self.channel_config) << 3);
        v.to_be_bytes()
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    pub fn channels(&self) -> u16 {
        match self.channel_config {
            7 => 8,
            c => u16::from(c).max(1),
        }
    }
}

/// One ADTS frame: its configuration and its raw AAC payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdtsFrame<'a> {
    pub config: AacConfig,
    pub payload: &'a [u8],
    /// AAC frames in this ADTS frame (number_of_raw_data_blocks + 1).
    pub blocks: u32,
}

/// Splits a buffer of concatenated ADTS frames. Stops at the first malformed or
/// truncated frame and reports it.
pub fn adts_frames(mut data: &[u8]) -> (Vec<AdtsFrame<'_>>, Option<CodecError>) {
    let mut frames = Vec::new();
    while !data.is_empty() {
        match parse_adts(data) {
            Ok((frame, len)) => {
                frames.push(frame);
                data = &data[len..];
            }
            Err(e) => return (frames, Some(e)),
        }
    }
    (frames, None)
}

/// Parses one ADTS frame at the start of `data`; returns it and its total length.
pub fn parse_adts(data: &[u8]) -> Result<(AdtsFrame<'_>, usize), CodecError> {
    let h = data
        .get(..7)
        .ok_or(CodecError::Aac("truncated ADTS header"))?;
    if h[0] != 0xFF || h[1] & 0xF0 != 0xF0 {
        return Err(CodecError::Aac("missing ADTS syncword"));
    }
    let protection_absent = h[1] & 1 == 1;
    let profile = (h[2] >> 6) & 0b11;
    let sample_rate_index = (h[2] >> 2) & 0x0F;
    let channel_config = ((h[2] & 1) << 2) | (h[3] >> 6);
    let frame_len =
        (usize::from(h[3] & 0b11) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
    let blocks = u32::from(h[6] & 0b11) + 1;
    let header_len = if protection_absent { 7 } else { 9 };
    let sample_rate = *SAMPLE_RATES
        .get(usize::from(sample_rate_index))
        .ok_or(CodecError::Aac("reserved sampling frequency index"))?;
    if frame_len < header_len {
        return Err(CodecError::Aac("ADTS frame shorter than its header"));
    }
    let payload = data
        .get(header_len..frame_len)
        .ok_or(CodecError::Aac("truncated ADTS frame"))?;
    Ok((
        AdtsFrame {
            config: AacConfig {
                object_type: profile + 1,
                sample_rate_index,
                sample_rate,
                channel_config,
            },
            payload,
            blocks,
        },
        frame_len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn adts(payload: &[u8]) -> Vec<u8> {
        // AAC-LC, 48 kHz (index 3), stereo, no CRC.
        let len = payload.len() + 7;
        let mut h = vec![
            0xFF,
            0xF1,
            (1 << 6) | (3 << 2),
            (2 << 6) | ((len >> 11) as u8 & 0b11),
            (len >> 3) as u8,
            ((len as u8 & 0b111) << 5) | 0x1F,
            0xFC,
        ];
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn splits_frames_and_builds_asc() {
        let mut data = adts(b"first");
        data.extend(adts(b"second"));
        let (frames, err) = adts_frames(&data);
        assert!(err.is_none());
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].payload, b"second");
        let c = frames[0].config;
        assert_eq!(
            (c.object_type, c.sample_rate, c.channel_config),
            (2, 48_000, 2)
        );
        assert_eq!(c.audio_specific_config(), [0x11, 0x90]);
        assert_eq!(c.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn truncation_and_garbage() {
        let data = adts(b"payload");
        let (frames, err) = adts_frames(&data[..data.len() - 1]);
        assert!(frames.is_empty() && err.is_some());
        assert!(parse_adts(&[0xFF, 0xF1, 0xFF, 0, 0, 0, 0]).is_err());
        assert!(parse_adts(&[0x00; 16]).is_err());
    }
}
