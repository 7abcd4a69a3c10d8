//! PES packet headers (ISO/IEC 13818-1 §2.4.3.6).

use super::TsError;

/// A parsed PES header: where the elementary stream bytes start, and the timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    pub stream_id: u8,
    /// PES_packet_length: 0 means "unbounded" (allowed for video).
    pub packet_length: u16,
    /// 33-bit presentation timestamp at 90 kHz.
    pub pts: Option<u64>,
    /// 33-bit decoding timestamp at 90 kHz (absent when equal to the PTS).
    pub dts: Option<u64>,
    /// Offset of the elementary stream data within the PES packet.
    pub payload_offset: usize,
}

/// Bytes needed before `packet_length` can be read.
pub const PREFIX_LEN: usize = 6;

/// Total PES size announced by the header, if bounded and the prefix is present.
pub fn announced_len(buf: &[u8]) -> Option<usize> {
    let len = u16::from_be_bytes([*buf.get(4)?, *buf.get(5)?]);
    (len != 0).then_some(PREFIX_LEN + usize::from(len))
}

/// Stream ids whose PES packets have no optional header (§2.4.3.7, Table 2-22).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    )
}

pub fn parse_header(pid: u16, buf: &[u8]) -> Result<PesHeader, TsError> {
    let err = |what| TsError::Pes { pid, what };
    if buf.len() < PREFIX_LEN {
        return Err(err("shorter than a PES header"));
    }
    if buf[..3] != [0, 0, 1] {
        return Err(err("missing packet_start_code_prefix"));
    }
    let stream_id = buf[3];
    let packet_length = u16::from_be_bytes([buf[4], buf[5]]);
    if !has_optional_header(stream_id) {
        return Ok(PesHeader {
            stream_id,
            packet_length,
            pts: None,
            dts: None,
            payload_offset: PREFIX_LEN,
        });
    }
    let opt = buf.get(6..9).ok_or(err("truncated optional header"))?;
    if opt[0] & 0xC0 != 0x80 {
        return Err(err("bad optional header marker bits"));
    }
    let pts_dts = opt[1] >> 6;
    let header_data_len = usize::from(opt[2]);
    let payload_offset = 9 + header_data_len;
    let fields = buf
        .get(9..payload_offset)
        .ok_or(err("header_data_length past the end"))?;
    let (pts, dts) = match pts_dts {
        0b10 => (
            Some(timestamp(fields.get(..5)).ok_or(err("bad PTS"))?),
            None,
        ),
        0b11 => (
            Some(timestamp(fields.get(..5)).ok_or(err("bad PTS"))?),
            Some(timestamp(fields.get(5..10)).ok_or(err("bad DTS"))?),
        ),
        0b00 => (None, None),
        _ => return Err(err("forbidden PTS_DTS_flags value")),
    };
    Ok(PesHeader {
        stream_id,
        packet_length,
        pts,
        dts,
        payload_offset,
    })
}

/// Reads a 33-bit timestamp from its 5-byte, marker-bit-interleaved encoding.
fn timestamp(b: Option<&[u8]>) -> Option<u64> {
    let b = b?;
    if b.len() < 5 || b[0] & 1 == 0 || b[2] & 1 == 0 || b[4] & 1 == 0 {
        return None;
    }
    Some(
        (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn encode_ts(prefix: u8, ts: u64) -> [u8; 5] {
        [
            (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
            (ts >> 22) as u8,
            (((ts >> 15) as u8) << 1) | 1,
            (ts >> 7) as u8,
            ((ts as u8) << 1) | 1,
        ]
    }

    /// A PES packet with PTS (and DTS when given) around `payload`.
    pub(crate) fn pes(stream_id: u8, pts: u64, dts: Option<u64>, payload: &[u8]) -> Vec<u8> {
        let mut fields = encode_ts(if dts.is_some() { 3 } else { 2 }, pts).to_vec();
        if let Some(d) = dts {
            fields.extend_from_slice(&encode_ts(1, d));
        }
        let flags = if dts.is_some() { 0xC0 } else { 0x80 };
        let len = if stream_id == 0xE0 {
            0
        } else {
            3 + fields.len() + payload.len()
        };
        let mut out = vec![0, 0, 1, stream_id, (len >> 8) as u8, len as u8, 0x80, flags];
        out.push(fields.len() as u8);
        out.extend_from_slice(&fields);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn pts_and_dts() {
        let max = (1u64 << 33) - 1;
        let buf = pes(0xE0, max, Some(123_456), b"abc");
        let h = parse_header(0x100, &buf).unwrap();
        assert_eq!(h.pts, Some(max));
        assert_eq!(h.dts, Some(123_456));
        assert_eq!(&buf[h.payload_offset..], b"abc");
        assert_eq!(h.packet_length, 0);
        assert_eq!(announced_len(&buf), None);
    }

    #[test]
    fn bounded_length() {
        let buf = pes(0xC0, 90_000, None, b"xyz");
        assert_eq!(announced_len(&buf), Some(buf.len()));
        let h = parse_header(0x101, &buf).unwrap();
        assert_eq!((h.pts, h.dts), (Some(90_000), None));
    }

    #[test]
    fn malformed_headers() {
        assert!(parse_header(1, &[0, 0, 1]).is_err());
        assert!(parse_header(1, &[0, 0, 2, 0xE0, 0, 0, 0x80, 0x80, 5]).is_err());
        // header_data_length runs past the end.
        assert!(parse_header(1, &[0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 200, 0]).is_err());
        // Forbidden PTS_DTS_flags = 01.
        assert!(parse_header(1, &[0, 0, 1, 0xE0, 0, 0, 0x80, 0x40, 0]).is_err());
    }
}
