//! The 188-byte transport stream packet (ISO/IEC 13818-1 §2.4.3.2).

use super::TsError;

pub const PACKET_SIZE: usize = 188;
pub const SYNC_BYTE: u8 = 0x47;
pub const NULL_PID: u16 = 0x1FFF;

/// One parsed packet, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub pid: u16,
    /// payload_unit_start_indicator: a PES packet or PSI section starts here.
    pub unit_start: bool,
    pub transport_error: bool,
    pub continuity_counter: u8,
    /// The adaptation field's discontinuity_indicator.
    pub discontinuity: bool,
    /// The adaptation field's random_access_indicator.
    pub random_access: bool,
    /// True when the packet carries a payload (adaptation_field_control 01 or 11).
    pub has_payload: bool,
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses exactly one packet; `buf` must be [`PACKET_SIZE`] bytes.
    pub fn parse(buf: &'a [u8]) -> Result<Self, TsError> {
        let header: &[u8; 4] = buf
            .get(..4)
            .and_then(|h| h.try_into().ok())
            .ok_or(TsError::ShortPacket { len: buf.len() })?;
        if buf.len() != PACKET_SIZE {
            return Err(TsError::ShortPacket { len: buf.len() });
        }
        if header[0] != SYNC_BYTE {
            return Err(TsError::LostSync);
        }
        let pid = (u16::from(header[1] & 0x1F) << 8) | u16::from(header[2]);
        let afc = (header[3] >> 4) & 0b11;
        let mut packet = Packet {
            pid,
            unit_start: header[1] & 0x40 != 0,
            transport_error: header[1] & 0x80 != 0,
            continuity_counter: header[3] & 0x0F,
            discontinuity: false,
            random_access: false,
            has_payload: afc & 0b01 != 0,
            payload: &[],
        };
        let mut pos = 4;
        if afc & 0b10 != 0 {
            let af_len = usize::from(buf[4]);
            // With a payload the adaptation field can use at most 182 bytes, without one 183.
            let max = if packet.has_payload { 182 } else { 183 };
            if af_len > max {
                return Err(TsError::AdaptationFieldLength { pid, len: af_len });
            }
            if af_len > 0 {
                let flags = buf[5];
                packet.discontinuity = flags & 0x80 != 0;
                packet.random_access = flags & 0x40 != 0;
            }
            pos = 5 + af_len;
        }
        if afc == 0 {
            // Reserved value: the packet is to be discarded by the decoder.
            packet.has_payload = false;
        }
        if packet.has_payload {
            packet.payload = &buf[pos..];
        }
        Ok(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(header: [u8; 4], rest: &[u8]) -> Vec<u8> {
        let mut p = header.to_vec();
        p.extend_from_slice(rest);
        p.resize(PACKET_SIZE, 0xFF);
        p
    }

    #[test]
    fn parses_header_fields() {
        let buf = packet([0x47, 0x41, 0x00, 0x17], &[1, 2, 3]);
        let p = Packet::parse(&buf).unwrap();
        assert_eq!(p.pid, 0x100);
        assert!(p.unit_start);
        assert!(!p.transport_error);
        assert_eq!(p.continuity_counter, 7);
        assert!(p.has_payload);
        assert_eq!(&p.payload[..3], &[1, 2, 3]);
        assert_eq!(p.payload.len(), 184);
    }

    #[test]
    fn adaptation_field_flags_and_payload_offset() {
        // afc = 11, af length 7 with discontinuity + random access flags.
        let buf = packet([0x47, 0x01, 0x00, 0x30], &[7, 0xC0, 0, 0, 0, 0, 0, 0, 0xAB]);
        let p = Packet::parse(&buf).unwrap();
        assert!(p.discontinuity && p.random_access);
        assert_eq!(p.payload[0], 0xAB);
        assert_eq!(p.payload.len(), 188 - 4 - 1 - 7);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Packet::parse(&[0x47, 0, 0]),
            Err(TsError::ShortPacket { .. })
        ));
        let buf = packet([0x46, 0, 0, 0x10], &[]);
        assert!(matches!(Packet::parse(&buf), Err(TsError::LostSync)));
        let buf = packet([0x47, 0, 0, 0x30], &[183]);
        assert!(matches!(
            Packet::parse(&buf),
            Err(TsError::AdaptationFieldLength { .. })
        ));
    }
}
