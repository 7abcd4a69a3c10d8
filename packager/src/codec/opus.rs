//! Opus (RFC 6716) as WebRTC carries it, and its CMAF mapping: the `Opus` sample
//! entry with a `dOps` box ("Encapsulation of Opus in ISO Base Media File Format",
//! opus-codec.org, §4.3.2).

/// Opus always runs on a 48 kHz clock, whatever the input rate was.
pub const OPUS_CLOCK: u32 = 48_000;

/// The decoder setup an `OpusHead` / `dOps` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    pub channels: u8,
    /// Samples (at 48 kHz) to discard from the decoder's start.
    pub pre_skip: u16,
    /// Informational: the rate the encoder's input had.
    pub input_sample_rate: u32,
    /// Q7.8 dB.
    pub output_gain: i16,
}

impl OpusConfig {
    /// What WebRTC senders use: stereo signalling, 48 kHz, the libopus default
    /// pre-skip of 312 samples (6.5 ms).
    pub fn webrtc() -> Self {
        Self {
            channels: 2,
            pre_skip: 312,
            input_sample_rate: OPUS_CLOCK,
            output_gain: 0,
        }
    }

    /// Reads an `OpusHead` identification header (RFC 7845 §5.1).
    pub fn from_opus_head(head: &[u8]) -> Option<Self> {
        if head.len() < 19 || &head[..8] != b"OpusHead" || head[8] != 1 {
            return None;
        }
        let channels = head[9];
        let family = head[18];
        if channels == 0 || (family == 0 && channels > 2) {
            return None; // mapping family 0 is mono or stereo only
        }
        if family != 0 {
            return None; // multichannel mappings are not carried yet
        }
        Some(Self {
            channels,
            pre_skip: u16::from_le_bytes([head[10], head[11]]),
            input_sample_rate: u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
            output_gain: i16::from_le_bytes([head[16], head[17]]),
        })
    }

    /// The body of the `dOps` box (big-endian, unlike `OpusHead`).
    pub fn dops(&self) -> Vec<u8> {
        let mut out = vec![0, self.channels];
        out.extend_from_slice(&self.pre_skip.to_be_bytes());
        out.extend_from_slice(&self.input_sample_rate.to_be_bytes());
        out.extend_from_slice(&self.output_gain.to_be_bytes());
        out.push(0); // ChannelMappingFamily 0: mono/stereo, no table
        out
    }

    /// RFC 6381 codec string.
    pub fn codec_string(&self) -> String {
        "opus".to_string()
    }
}

/// Duration in 48 kHz samples of one Opus packet, from its TOC byte and frame
/// count (RFC 6716 §3.1-3.2); `None` for a malformed packet.
pub fn packet_duration(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size in 48 kHz samples per configuration number.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)], // SILK: 10/20/40/60 ms
        12..=15 => [480, 960][usize::from(config % 2)],            // Hybrid: 10/20 ms
        _ => [120, 240, 480, 960][usize::from(config % 4)],        // CELT: 2.5/5/10/20 ms
    };
    let frames = match toc & 0b11 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let total = frame * frames;
    (frames > 0 && total <= 5760).then_some(total) // at most 120 ms per packet
}

/// The Opus packets of one MPEG-TS PES payload: each behind an
/// `opus_control_header` ("Encapsulation of Opus in MPEG-2 Transport Stream",
/// opus-codec.org, §6.1): an 11-bit `0x3ff` prefix, start/end trim and control
/// extension flags, the packet size as a run of `0xff` bytes plus one, then
/// the optional trim and extension fields. Stops at the first malformed
/// header; the bool says whether one was found.
pub fn ts_packets(mut payload: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let Some(packet) = ts_packet(&mut payload) else {
            return (out, true);
        };
        out.push(packet);
    }
    (out, false)
}

fn ts_packet<'a>(payload: &mut &'a [u8]) -> Option<&'a [u8]> {
    let [0x7f, flags, rest @ ..] = *payload else {
        return None;
    };
    if flags & 0xe0 != 0xe0 {
        return None;
    }
    let mut rest = rest;
    let mut size = 0usize;
    loop {
        let (&b, tail) = rest.split_first()?;
        rest = tail;
        size += usize::from(b);
        if b != 0xff {
            break;
        }
    }
    let skip = 2 * usize::from(flags & 0x10 != 0) + 2 * usize::from(flags & 0x08 != 0);
    rest = rest.get(skip..)?;
    if flags & 0x04 != 0 {
        let (&len, tail) = rest.split_first()?;
        rest = tail.get(usize::from(len)..)?;
    }
    let packet = rest.get(..size)?;
    *payload = &rest[size..];
    (size > 0).then_some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_control_headers_split_the_packets() {
        // Two packets: 3 bytes, then 300 bytes (0xff + 45) with a start trim.
        let mut payload = vec![0x7f, 0xe0, 3, 0xfc, 1, 2];
        payload.extend_from_slice(&[0x7f, 0xf0, 0xff, 45, 0x00, 0x10]);
        payload.extend(std::iter::repeat_n(0xfc, 300));
        let (packets, bad) = ts_packets(&payload);
        assert!(!bad);
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0], &[0xfc, 1, 2]);
        assert_eq!(packets[1].len(), 300);
        // Garbage, a truncated packet, a wrong prefix: stop, flagged.
        assert_eq!(ts_packets(&[0x7f, 0xe0, 9, 1]), (vec![], true));
        assert_eq!(ts_packets(&[0x7e, 0xe0, 1, 1]), (vec![], true));
        let (first, bad) = ts_packets(&[0x7f, 0xe0, 1, 0xfc, 0x00]);
        assert_eq!((first.len(), bad), (1, true));
    }

    #[test]
    fn opus_head_to_dops() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        let c = OpusConfig::from_opus_head(&head).unwrap();
        assert_eq!(c, OpusConfig::webrtc());
        assert_eq!(c.dops(), vec![0, 2, 0x01, 0x38, 0, 0, 0xBB, 0x80, 0, 0, 0]);
        head[18] = 1;
        assert!(OpusConfig::from_opus_head(&head).is_none());
        assert!(OpusConfig::from_opus_head(b"OpusHead").is_none());
    }

    #[test]
    fn packet_durations() {
        assert_eq!(packet_duration(&[0xFC]), Some(960)); // CELT FB 20 ms, one frame
        assert_eq!(packet_duration(&[0x78]), Some(960)); // hybrid FB 20 ms
        assert_eq!(packet_duration(&[0x18]), Some(2880)); // SILK NB 60 ms
        assert_eq!(packet_duration(&[0x1B, 0x02]), Some(5760)); // code 3: two 60 ms frames
        assert_eq!(packet_duration(&[0x1B, 0x03]), None); // 180 ms: too long
        assert_eq!(packet_duration(&[0x1B]), None); // code 3 without its count byte
        assert_eq!(packet_duration(&[]), None);
        assert_eq!(packet_duration(&[0xFD]), Some(1920)); // two 20 ms CELT frames
    }
}
