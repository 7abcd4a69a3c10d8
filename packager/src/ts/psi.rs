//! Program-specific information: PAT and PMT sections (ISO/IEC 13818-1 §2.4.4).

use super::TsError;

/// MPEG-TS `stream_type` values Brook knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    H264,
    H265,
    AacAdts,
    /// Opus in MPEG-TS (ETSI TS 102 366 style private stream: stream type 0x06
    /// with an `Opus` registration descriptor).
    Opus,
    /// SCTE-35 splice information (stream type 0x86): sections, not PES.
    Scte35,
    Other(u8),
}

impl StreamType {
    pub fn from_u8(v: u8) -> Self {
        match v {
            0x1B => StreamType::H264,
            0x24 => StreamType::H265,
            0x0F => StreamType::AacAdts,
            0x86 => StreamType::Scte35,
            other => StreamType::Other(other),
        }
    }
}

/// One elementary stream announced by a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsInfo {
    pub pid: u16,
    pub stream_type: StreamType,
    /// Opus: the `channel_config_code` of its extension descriptor (0x7f, tag
    /// 0x80): 1 mono, 2 stereo, ...
    pub opus_channels: Option<u8>,
}

/// Reads the ES descriptors that change what a stream is: the registration
/// descriptor (tag 0x05) naming `Opus` on a private stream, and Opus's
/// channel configuration (extension descriptor 0x7f, extension tag 0x80).
fn classify(stream_type: StreamType, mut descriptors: &[u8]) -> (StreamType, Option<u8>) {
    let mut registration = None;
    let mut channels = None;
    while let [tag, len, rest @ ..] = descriptors {
        let Some(body) = rest.get(..usize::from(*len)) else {
            break;
        };
        match (*tag, body) {
            (0x05, [a, b, c, d, ..]) => registration = Some([*a, *b, *c, *d]),
            (0x7f, [0x80, code, ..]) => channels = Some(*code),
            _ => {}
        }
        descriptors = &rest[usize::from(*len)..];
    }
    match (stream_type, registration) {
        (StreamType::Other(0x06), Some(r)) if &r == b"Opus" => (StreamType::Opus, channels),
        _ => (stream_type, None),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    /// (program_number, PMT PID); program 0 (the network PID) is left out.
    pub programs: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub version: u8,
    pub pcr_pid: u16,
    pub streams: Vec<EsInfo>,
}

/// A PSI section with its CRC checked; `body` runs from after the common
/// syntax header (table_id_extension.. last_section_number) to before the CRC.
struct Section<'a> {
    table_id: u8,
    table_id_extension: u16,
    version: u8,
    body: &'a [u8],
}

/// Length of a complete section starting at `buf[0]` (table_id), if the header is there.
pub(crate) fn section_len(buf: &[u8]) -> Option<usize> {
    let b1 = *buf.get(1)?;
    let b2 = *buf.get(2)?;
    Some(3 + ((usize::from(b1 & 0x0F) << 8) | usize::from(b2)))
}

fn parse_section(pid: u16, buf: &[u8]) -> Result<Section<'_>, TsError> {
    let len = section_len(buf).ok_or(TsError::Psi {
        pid,
        what: "truncated section header",
    })?;
    let sec = buf.get(..len).ok_or(TsError::Psi {
        pid,
        what: "section longer than data",
    })?;
    if sec.len() < 12 || sec[1] & 0x80 == 0 {
        return Err(TsError::Psi {
            pid,
            what: "not a long-form section",
        });
    }
    let (data, crc) = sec.split_at(sec.len() - 4);
    let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32_mpeg2(data) != want {
        return Err(TsError::Crc { pid });
    }
    Ok(Section {
        table_id: sec[0],
        table_id_extension: u16::from_be_bytes([sec[3], sec[4]]),
        version: (sec[5] >> 1) & 0x1F,
        body: &data[8..],
    })
}

pub fn parse_pat(pid: u16, buf: &[u8]) -> Result<Pat, TsError> {
    let s = parse_section(pid, buf)?;
    if s.table_id != 0x00 {
        return Err(TsError::Psi {
            pid,
            what: "PAT with wrong table_id",
        });
    }
    let programs = s
        .body
        .chunks_exact(4)
        .map(|e| {
            (
                u16::from_be_bytes([e[0], e[1]]),
                (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]),
            )
        })
        .filter(|(program, _)| *program != 0)
        .collect();
    Ok(Pat { programs })
}

pub fn parse_pmt(pid: u16, buf: &[u8]) -> Result<Pmt, TsError> {
    let s = parse_section(pid, buf)?;
    if s.table_id != 0x02 {
        return Err(TsError::Psi {
            pid,
            what: "PMT with wrong table_id",
        });
    }
    let truncated = TsError::Psi {
        pid,
        what: "truncated PMT",
    };
    let b = s.body;
    if b.len() < 4 {
        return Err(truncated);
    }
    let pcr_pid = (u16::from(b[0] & 0x1F) << 8) | u16::from(b[1]);
    let info_len = (usize::from(b[2] & 0x0F) << 8) | usize::from(b[3]);
    let mut rest = b.get(4 + info_len..).ok_or(truncated.clone())?;
    let mut streams = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(truncated);
        }
        let stream_type = StreamType::from_u8(rest[0]);
        let es_pid = (u16::from(rest[1] & 0x1F) << 8) | u16::from(rest[2]);
        let es_info_len = (usize::from(rest[3] & 0x0F) << 8) | usize::from(rest[4]);
        let descriptors = rest.get(5..5 + es_info_len).ok_or(truncated.clone())?;
        let (stream_type, opus_channels) = classify(stream_type, descriptors);
        rest = rest.get(5 + es_info_len..).ok_or(truncated.clone())?;
        streams.push(EsInfo {
            pid: es_pid,
            stream_type,
            opus_channels,
        });
    }
    Ok(Pmt {
        program_number: s.table_id_extension,
        version: s.version,
        pcr_pid,
        streams,
    })
}

/// CRC-32/MPEG-2: polynomial 0x04C11DB7, initial value all ones, no reflection.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a long-form section with a valid CRC (also used by the demuxer tests).
    pub(crate) fn section(table_id: u8, ext: u16, body: &[u8]) -> Vec<u8> {
        let len = 5 + body.len() + 4;
        let mut s = vec![
            table_id,
            0xB0 | ((len >> 8) as u8 & 0x0F),
            len as u8,
            (ext >> 8) as u8,
            ext as u8,
            0xC1, // version 0, current_next 1
            0,
            0,
        ];
        s.extend_from_slice(body);
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        s
    }

    #[test]
    fn crc_check_value() {
        // CRC-32/MPEG-2 check value for "123456789".
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn pat_round_trip() {
        let s = section(0, 1, &[0, 0, 0xE0, 0x10, 0, 1, 0xF0, 0x00]);
        let pat = parse_pat(0, &s).unwrap();
        assert_eq!(pat.programs, vec![(1, 0x1000)]);
    }

    #[test]
    fn pmt_streams() {
        let body = [
            0xE1, 0x00, 0xF0, 0x00, // PCR PID 0x100, no program info
            0x1B, 0xE1, 0x00, 0xF0, 0x00, // H.264 on 0x100
            0x0F, 0xE1, 0x01, 0xF0, 0x02, 0xAA,
            0xBB, // AAC on 0x101 with 2 bytes of descriptors
        ];
        let pmt = parse_pmt(0x1000, &section(2, 1, &body)).unwrap();
        assert_eq!(pmt.pcr_pid, 0x100);
        assert_eq!(
            pmt.streams,
            vec![
                EsInfo {
                    pid: 0x100,
                    stream_type: StreamType::H264,
                    opus_channels: None,
                },
                EsInfo {
                    pid: 0x101,
                    stream_type: StreamType::AacAdts,
                    opus_channels: None,
                },
            ]
        );
    }

    #[test]
    fn bad_crc_and_truncation_are_errors() {
        let mut s = section(0, 1, &[0, 1, 0xF0, 0x00]);
        let last = s.len() - 1;
        s[last] ^= 1;
        assert!(matches!(parse_pat(0, &s), Err(TsError::Crc { .. })));
        assert!(parse_pmt(0x1000, &s[..6]).is_err());
        // ES info length pointing past the end.
        let body = [0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x40];
        assert!(parse_pmt(0x1000, &section(2, 1, &body)).is_err());
    }

    /// ffmpeg's Opus in MPEG-TS: a private stream whose registration names
    /// Opus, with its channel configuration.
    #[test]
    fn opus_is_recognised_by_its_registration_descriptor() {
        let opus = [0x05, 0x04, b'O', b'p', b'u', b's', 0x7f, 0x02, 0x80, 0x02];
        assert_eq!(
            classify(StreamType::Other(0x06), &opus),
            (StreamType::Opus, Some(2))
        );
        // Another registration, or the descriptor on another stream type.
        let other = [0x05, 0x04, b'A', b'C', b'-', b'3'];
        assert_eq!(
            classify(StreamType::Other(0x06), &other),
            (StreamType::Other(0x06), None)
        );
        assert_eq!(classify(StreamType::H264, &opus), (StreamType::H264, None));
        // Truncated descriptors are ignored, not read past.
        assert_eq!(
            classify(StreamType::Other(0x06), &[0x05, 0x09, b'O']),
            (StreamType::Other(0x06), None)
        );
    }
}
