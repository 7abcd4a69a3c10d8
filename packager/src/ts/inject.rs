//! Puts an SCTE-35 ad break into a transport stream: what a broadcaster's
//! splicer does, for tests, fixtures and demos (`brook inject-scte35`), since
//! ffmpeg cannot write SCTE-35. Sans-IO: bytes in, bytes out, in any chunking.
//!
//! The PMT gains an elementary stream of type 0x86 (with the `CUEI`
//! registration descriptor in the program loop, SCTE 35 §8.1); from
//! `preroll` before the splice time on, a `splice_insert` (out of network,
//! with a break duration and auto-return) is sent once a second until the
//! splice time, as encoders repeat theirs. The splice time is counted from
//! the first video PTS.

use super::packet::{Packet, PACKET_SIZE, SYNC_BYTE};
use super::pes;
use super::psi::{crc32_mpeg2, section_len, StreamType};
use crate::scte35::write_splice_insert;
use crate::time::TS_TIMESCALE;

/// What to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    pub pid: u16,
    pub event_id: u32,
    /// Splice time after the first video PTS, ms.
    pub at_ms: u64,
    pub duration_ms: u64,
    /// How long before the splice the first cue goes out, ms.
    pub preroll_ms: u64,
}

impl Default for Injection {
    fn default() -> Self {
        Self {
            pid: 0x1F0,
            event_id: 1,
            at_ms: 6000,
            duration_ms: 10_000,
            preroll_ms: 2000,
        }
    }
}

#[derive(Debug)]
pub struct SpliceInjector {
    cfg: Injection,
    pending: Vec<u8>,
    pmt_pid: Option<u16>,
    video_pid: Option<u16>,
    first_pts: Option<u64>,
    /// PTS of the last cue sent.
    last_sent: Option<u64>,
    cc: u8,
    /// Cues sent.
    pub sent: u32,
}

impl SpliceInjector {
    pub fn new(cfg: Injection) -> Self {
        Self {
            cfg,
            pending: Vec::new(),
            pmt_pid: None,
            video_pid: None,
            first_pts: None,
            last_sent: None,
            cc: 0,
            sent: 0,
        }
    }

    /// Takes input bytes; returns the output for every whole packet so far.
    /// Bytes that are not aligned 188-byte packets are passed on untouched.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let whole = self.pending.len() / PACKET_SIZE * PACKET_SIZE;
        let input: Vec<u8> = self.pending.drain(..whole).collect();
        let mut out = Vec::with_capacity(input.len() + PACKET_SIZE);
        for pkt in input.chunks_exact(PACKET_SIZE) {
            self.packet(pkt, &mut out);
        }
        out
    }

    /// The bytes held back (a partial packet at the end of the input).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    fn packet(&mut self, pkt: &[u8], out: &mut Vec<u8>) {
        let Ok(p) = Packet::parse(pkt) else {
            out.extend_from_slice(pkt);
            return;
        };
        if p.pid == 0 && p.unit_start {
            self.read_pat(p.payload);
        }
        if Some(p.pid) == self.pmt_pid && p.unit_start {
            if let Some(rewritten) = self.rewrite_pmt(pkt, p.payload) {
                out.extend_from_slice(&rewritten);
                return;
            }
        }
        out.extend_from_slice(pkt);
        if Some(p.pid) == self.video_pid && p.unit_start {
            if let Ok(h) = pes::parse_header(p.pid, p.payload) {
                if let Some(pts) = h.pts {
                    self.on_video_pts(pts, out);
                }
            }
        }
    }

    fn read_pat(&mut self, payload: &[u8]) {
        let Some(sec) = payload
            .split_first()
            .and_then(|(&ptr, rest)| rest.get(usize::from(ptr)..))
        else {
            return;
        };
        if let Ok(pat) = super::psi::parse_pat(0, sec) {
            self.pmt_pid = pat.programs.first().map(|p| p.1);
        }
    }

    /// The PMT with the SCTE-35 stream added (a one-packet PMT, as muxers
    /// write them); `None` leaves the packet as it is.
    fn rewrite_pmt(&mut self, pkt: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
        let (&ptr, rest) = payload.split_first()?;
        let sec = rest.get(usize::from(ptr)..)?;
        let pmt = super::psi::parse_pmt(self.pmt_pid?, sec).ok()?;
        self.video_pid = pmt
            .streams
            .iter()
            .find(|s| matches!(s.stream_type, StreamType::H264 | StreamType::H265))
            .map(|s| s.pid);
        if pmt.streams.iter().any(|s| s.pid == self.cfg.pid) {
            return None;
        }
        let len = section_len(sec)?;
        let sec = sec.get(..len)?;
        // table_id .. last_section_number (8), PCR_PID (2), program_info_length (2).
        let info_len = usize::from(u16::from_be_bytes([sec.get(10)? & 0x0F, *sec.get(11)?]));
        let es_start = 12 + info_len;
        let es_loop = sec.get(es_start..len - 4)?;
        let mut body = Vec::with_capacity(len + 16);
        body.extend_from_slice(&sec[..10]);
        let info_len = info_len + 6;
        body.extend_from_slice(&[0xF0 | (info_len >> 8) as u8, info_len as u8]);
        body.extend_from_slice(&sec[12..es_start]);
        body.extend_from_slice(&[0x05, 4, b'C', b'U', b'E', b'I']);
        body.extend_from_slice(es_loop);
        let pid = self.cfg.pid;
        body.extend_from_slice(&[0x86, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0]);
        let section_length = body.len() - 3 + 4;
        body[1] = (body[1] & 0xF0) | ((section_length >> 8) as u8 & 0x0F);
        body[2] = section_length as u8;
        let crc = crc32_mpeg2(&body);
        body.extend_from_slice(&crc.to_be_bytes());
        // Header of the original packet, pointer field 0, the section, stuffing.
        let header_len = PACKET_SIZE - payload.len();
        if header_len + 1 + body.len() > PACKET_SIZE {
            return None;
        }
        let mut out = pkt[..header_len].to_vec();
        out.push(0);
        out.extend_from_slice(&body);
        out.resize(PACKET_SIZE, 0xFF);
        Some(out)
    }

    fn on_video_pts(&mut self, pts: u64, out: &mut Vec<u8>) {
        let first = *self.first_pts.get_or_insert(pts);
        let ms = |v: u64| v * TS_TIMESCALE as u64 / 1000;
        let splice = first + ms(self.cfg.at_ms);
        let from = splice.saturating_sub(ms(self.cfg.preroll_ms));
        let since_first = pts.wrapping_sub(first) & ((1 << 33) - 1);
        let pts_lin = first + since_first;
        if pts_lin < from || pts_lin >= splice {
            return;
        }
        if self
            .last_sent
            .is_some_and(|last| pts_lin < last + TS_TIMESCALE as u64)
        {
            return;
        }
        self.last_sent = Some(pts_lin);
        let section = write_splice_insert(
            self.cfg.event_id,
            true,
            Some(splice & ((1 << 33) - 1)),
            Some(ms(self.cfg.duration_ms)),
            true,
        );
        let pid = self.cfg.pid;
        let mut pkt = vec![
            SYNC_BYTE,
            0x40 | (pid >> 8) as u8,
            pid as u8,
            0x10 | (self.cc & 0x0F),
            0,
        ];
        self.cc = self.cc.wrapping_add(1);
        pkt.extend_from_slice(&section);
        pkt.resize(PACKET_SIZE, 0xFF);
        out.extend_from_slice(&pkt);
        self.sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::{DemuxEvent, Demuxer};

    #[test]
    fn the_injected_stream_carries_a_cue_the_demuxer_reads() {
        let ts = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/lavfi_h264_aac_zerolatency.ts"
        ))
        .unwrap();
        let mut inj = SpliceInjector::new(Injection {
            at_ms: 2000,
            duration_ms: 5000,
            preroll_ms: 1500,
            ..Injection::default()
        });
        let mut out = Vec::new();
        for chunk in ts.chunks(1000) {
            out.extend(inj.push(chunk));
        }
        out.extend(inj.finish());
        assert!(inj.sent >= 2, "one cue a second: {}", inj.sent);
        let mut d = Demuxer::default();
        d.push(&out).unwrap();
        let mut sections = Vec::new();
        while let Some(ev) = d.poll() {
            if let DemuxEvent::Section { pid, data } = ev {
                assert_eq!(pid, 0x1F0);
                sections.push(crate::scte35::parse(&data).unwrap());
            }
        }
        assert_eq!(sections.len() as u32, inj.sent);
        assert!(matches!(
            sections[0].cue(),
            Some(crate::scte35::Cue::Out {
                duration: Some(450_000),
                event_id: 1,
                ..
            })
        ));
        assert_eq!(d.stats().psi_errors, 0);
    }
}
