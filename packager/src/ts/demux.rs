//! The transport stream demuxer: bytes in (any chunking), PES packets out.
//!
//! ```
//! # use brook_packager::ts::{Demuxer, DemuxEvent};
//! let mut demux = Demuxer::default();
//! # let bytes_from_the_wire: &[u8] = &[];
//! demux.push(bytes_from_the_wire)?;
//! while let Some(event) = demux.poll() {
//!     match event {
//!         DemuxEvent::Program(streams) => { /* the PMT announced these */ }
//!         DemuxEvent::Pes(pes) => { /* one complete PES packet */ }
//!         DemuxEvent::Section { .. } => { /* a section of an SCTE-35 stream */ }
//!     }
//! }
//! # Ok::<(), brook_packager::ts::TsError>(())
//! ```

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::packet::{Packet, NULL_PID, PACKET_SIZE, SYNC_BYTE};
use super::pes;
use super::psi::{self, EsInfo, StreamType};
use super::TsError;

/// Input skipped while hunting for sync before the stream is declared not MPEG-TS.
const MAX_SYNC_SEARCH: u64 = 64 * 1024;
/// Valid packets accepted before a missing PAT/PMT becomes an error.
const MAX_BYTES_WITHOUT_PROGRAM: u64 = 4 * 1024 * 1024;
/// Largest PES packet kept; larger ones (never seen from real encoders) are dropped.
const MAX_PES_SIZE: usize = 16 * 1024 * 1024;
/// Packets that must line up on sync bytes before (re)acquiring sync.
const SYNC_RUN: usize = 3;

/// One complete PES packet of an elementary stream the PMT announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    pub pid: u16,
    pub stream_type: StreamType,
    /// 33-bit timestamps at 90 kHz, as carried (not unwrapped).
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    /// Elementary stream bytes (PES header removed).
    pub data: Bytes,
    /// Byte offset in the input of the packet that started this PES.
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    /// A (new) PMT: the elementary streams of the program, in PMT order.
    Program(Vec<EsInfo>),
    Pes(Pes),
    /// A complete section on the PID of a section-carrying elementary stream
    /// (SCTE-35, stream type 0x86), CRC not checked here (its parser does).
    Section {
        pid: u16,
        data: Bytes,
    },
}

/// Counters for what the demuxer recovered from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    pub bytes: u64,
    pub packets: u64,
    /// Continuity counter gaps: packets lost in transit.
    pub continuity_errors: u64,
    /// Bytes skipped to regain sync.
    pub resync_bytes: u64,
    /// PES packets dropped: malformed, oversized, or cut by packet loss.
    pub dropped_pes: u64,
    pub psi_errors: u64,
    /// Packets skipped for an impossible header (e.g. adaptation field length).
    pub malformed_packets: u64,
}

#[derive(Debug)]
struct PesAssembler {
    stream_type: StreamType,
    buf: Vec<u8>,
    offset: u64,
    /// True while `buf` holds the start of a PES packet not cut by loss.
    active: bool,
    last_cc: Option<u8>,
}

#[derive(Debug, Default)]
struct SectionAssembler {
    buf: Vec<u8>,
    last_cc: Option<u8>,
}

/// A map from PID to state for the handful of PIDs a program has: a linear scan
/// over a few entries beats hashing on every 188-byte packet.
#[derive(Debug)]
struct PidMap<V>(Vec<(u16, V)>);

impl<V> Default for PidMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> PidMap<V> {
    fn get_mut(&mut self, pid: &u16) -> Option<&mut V> {
        self.0.iter_mut().find(|(p, _)| p == pid).map(|(_, v)| v)
    }
    fn contains_key(&self, pid: &u16) -> bool {
        self.0.iter().any(|(p, _)| p == pid)
    }
    fn get_or_insert_with(&mut self, pid: u16, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.0.iter().position(|(p, _)| *p == pid) {
            Some(i) => i,
            None => {
                self.0.push((pid, make()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
    fn remove(&mut self, pid: &u16) {
        self.0.retain(|(p, _)| p != pid);
    }
    fn keys(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().map(|(p, _)| *p)
    }
    fn iter(&self) -> impl Iterator<Item = (&u16, &V)> {
        self.0.iter().map(|(p, v)| (p, v))
    }
}

/// Push/poll MPEG-TS demuxer. Sans-IO: call [`Demuxer::push`] with bytes as they
/// arrive, then [`Demuxer::poll`] until it returns `None`.
#[derive(Debug, Default)]
pub struct Demuxer {
    pending: Vec<u8>,
    /// Input offset of `pending[0]`.
    offset: u64,
    in_sync: bool,
    skipped_since_sync: u64,
    pmt_pid: Option<u16>,
    program: Vec<EsInfo>,
    have_program: bool,
    sections: HashMap<u16, SectionAssembler>,
    /// PIDs of the program's elementary streams carried in sections (SCTE-35).
    section_pids: Vec<u16>,
    streams: PidMap<PesAssembler>,
    events: VecDeque<DemuxEvent>,
    stats: DemuxStats,
}

impl Demuxer {
    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// Feeds bytes in any chunking. Recoverable damage (lost packets, bad PES, bad
    /// PSI) is counted in [`DemuxStats`]; an error means the input is not a usable
    /// transport stream and the session should end.
    pub fn push(&mut self, data: &[u8]) -> Result<(), TsError> {
        self.stats.bytes += data.len() as u64;
        if self.pending.is_empty() {
            // The common case (whole packets per message): parse straight from the
            // input, keep only a partial packet for next time.
            let (consumed, result) = self.process(data);
            self.pending.extend_from_slice(&data[consumed..]);
            self.offset += consumed as u64;
            return result;
        }
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let (consumed, result) = self.process(&buf);
        buf.drain(..consumed);
        self.pending = buf;
        self.offset += consumed as u64;
        result
    }

    /// Parses the packets in `buf` (which starts at input offset `self.offset`);
    /// returns how many bytes were used.
    fn process(&mut self, buf: &[u8]) -> (usize, Result<(), TsError>) {
        let mut pos = 0;
        while buf.len() - pos >= PACKET_SIZE {
            if !self.in_sync {
                let need = PACKET_SIZE * SYNC_RUN;
                if buf.len() - pos < need {
                    break; // wait for enough bytes to confirm sync
                }
                let aligned = (0..SYNC_RUN).all(|k| buf[pos + k * PACKET_SIZE] == SYNC_BYTE);
                if !aligned {
                    pos += 1;
                    self.stats.resync_bytes += 1;
                    self.skipped_since_sync += 1;
                    if self.skipped_since_sync > MAX_SYNC_SEARCH {
                        let err = TsError::NotTransportStream {
                            offset: self.offset + pos as u64,
                            skipped: self.skipped_since_sync,
                        };
                        return (pos, Err(err));
                    }
                    continue;
                }
                self.in_sync = true;
                self.skipped_since_sync = 0;
            }
            if buf[pos] != SYNC_BYTE {
                self.in_sync = false;
                continue;
            }
            let offset = self.offset + pos as u64;
            let packet = &buf[pos..pos + PACKET_SIZE];
            pos += PACKET_SIZE;
            self.stats.packets += 1;
            match Packet::parse(packet) {
                Ok(p) => self.handle_packet(&p, offset),
                Err(_) => self.stats.malformed_packets += 1,
            }
            if !self.have_program {
                let consumed = self.offset + pos as u64;
                if consumed > MAX_BYTES_WITHOUT_PROGRAM {
                    return (pos, Err(TsError::NoProgram { bytes: consumed }));
                }
            }
        }
        (pos, Ok(()))
    }

    /// Next demuxed event, if any.
    pub fn poll(&mut self) -> Option<DemuxEvent> {
        self.events.pop_front()
    }

    /// End of input: emits PES packets still being assembled (video PES packets with
    /// no announced length end only when the next one starts).
    pub fn flush(&mut self) {
        let mut pids: Vec<u16> = self.streams.keys().collect();
        pids.sort_unstable();
        for pid in pids {
            self.finish_pes(pid);
        }
    }

    fn handle_packet(&mut self, p: &Packet<'_>, offset: u64) {
        if p.transport_error || p.pid == NULL_PID {
            return;
        }
        if p.pid == 0 || Some(p.pid) == self.pmt_pid || self.section_pids.contains(&p.pid) {
            self.handle_psi(p);
        } else if self.streams.contains_key(&p.pid) {
            self.handle_pes_packet(p, offset);
        }
    }

    /// Checks the continuity counter; returns (duplicate, lost).
    fn continuity(last: &mut Option<u8>, p: &Packet<'_>) -> (bool, bool) {
        if !p.has_payload {
            return (false, false);
        }
        let result = match *last {
            Some(prev) if prev == p.continuity_counter && !p.discontinuity => (true, false),
            Some(prev) => (
                false,
                (prev + 1) & 0x0F != p.continuity_counter && !p.discontinuity,
            ),
            None => (false, false),
        };
        *last = Some(p.continuity_counter);
        result
    }

    /// Sections on a PSI or section-carrying PID (ISO/IEC 13818-1 §2.4.4):
    /// one may span packets, and a packet may end one section and start
    /// the next (its `pointer_field` says where), or hold several.
    fn handle_psi(&mut self, p: &Packet<'_>) {
        let asm = self.sections.entry(p.pid).or_default();
        let (duplicate, lost) = Self::continuity(&mut asm.last_cc, p);
        if duplicate || !p.has_payload {
            return;
        }
        if lost {
            self.stats.continuity_errors += 1;
            asm.buf.clear();
        }
        let mut buf = std::mem::take(&mut asm.buf);
        if p.unit_start {
            let Some((&pointer, rest)) = p.payload.split_first() else {
                return;
            };
            let Some(tail) = rest.get(..usize::from(pointer)) else {
                self.stats.psi_errors += 1;
                return;
            };
            if !buf.is_empty() {
                // The end of the section in progress.
                buf.extend_from_slice(tail);
                self.take_sections(p.pid, &mut buf);
            }
            buf.clear();
            buf.extend_from_slice(&rest[usize::from(pointer)..]);
        } else if !buf.is_empty() {
            buf.extend_from_slice(p.payload);
        } else {
            return;
        }
        self.take_sections(p.pid, &mut buf);
        if let Some(asm) = self.sections.get_mut(&p.pid) {
            asm.buf = buf;
        }
    }

    /// Handles every complete section at the start of `buf`, leaving an
    /// incomplete one there (or nothing: stuffing ends the packet's sections).
    fn take_sections(&mut self, pid: u16, buf: &mut Vec<u8>) {
        loop {
            if buf.first() == Some(&0xFF) {
                buf.clear(); // stuffing only
                return;
            }
            let Some(len) = psi::section_len(buf) else {
                return;
            };
            if buf.len() < len {
                if len > 4096 {
                    buf.clear();
                    self.stats.psi_errors += 1;
                }
                return;
            }
            let section: Vec<u8> = buf.drain(..len).collect();
            self.on_section(pid, section);
        }
    }

    fn on_section(&mut self, pid: u16, section: Vec<u8>) {
        if self.section_pids.contains(&pid) && pid != 0 && Some(pid) != self.pmt_pid {
            self.events.push_back(DemuxEvent::Section {
                pid,
                data: Bytes::from(section),
            });
        } else if pid == 0 {
            match psi::parse_pat(pid, &section) {
                Ok(pat) => {
                    let first = pat.programs.first().map(|&(_, pmt)| pmt);
                    if first != self.pmt_pid {
                        self.pmt_pid = first;
                    }
                }
                Err(_) => self.stats.psi_errors += 1,
            }
        } else if Some(pid) == self.pmt_pid {
            match psi::parse_pmt(pid, &section) {
                Ok(pmt) => self.apply_pmt(pmt.streams),
                Err(_) => self.stats.psi_errors += 1,
            }
        }
    }

    fn apply_pmt(&mut self, streams: Vec<EsInfo>) {
        self.have_program = true;
        if streams == self.program {
            return;
        }
        // Flush streams that went away or changed type, then (re)create assemblers.
        let mut gone: Vec<u16> = self
            .streams
            .iter()
            .filter(|(pid, a)| {
                !streams
                    .iter()
                    .any(|s| s.pid == **pid && s.stream_type == a.stream_type)
            })
            .map(|(pid, _)| *pid)
            .collect();
        gone.sort_unstable();
        for pid in gone {
            self.finish_pes(pid);
            self.streams.remove(&pid);
        }
        self.section_pids = streams
            .iter()
            .filter(|s| s.stream_type == StreamType::Scte35)
            .map(|s| s.pid)
            .collect();
        for s in streams
            .iter()
            .filter(|s| s.stream_type != StreamType::Scte35)
        {
            self.streams.get_or_insert_with(s.pid, || PesAssembler {
                stream_type: s.stream_type,
                buf: Vec::new(),
                offset: 0,
                active: false,
                last_cc: None,
            });
        }
        self.program = streams.clone();
        self.events.push_back(DemuxEvent::Program(streams));
    }

    fn handle_pes_packet(&mut self, p: &Packet<'_>, offset: u64) {
        let Some(asm) = self.streams.get_mut(&p.pid) else {
            return;
        };
        let (duplicate, lost) = Self::continuity(&mut asm.last_cc, p);
        if duplicate || !p.has_payload {
            return;
        }
        if lost {
            self.stats.continuity_errors += 1;
            if asm.active {
                // The PES in progress has a hole: drop it rather than pass on corrupt media.
                asm.active = false;
                asm.buf.clear();
                self.stats.dropped_pes += 1;
            }
        }
        if p.unit_start {
            self.finish_pes(p.pid);
            let Some(asm) = self.streams.get_mut(&p.pid) else {
                return;
            };
            asm.buf.clear();
            asm.buf.extend_from_slice(p.payload);
            asm.offset = offset;
            asm.active = true;
        } else if asm.active {
            if asm.buf.len() + p.payload.len() > MAX_PES_SIZE {
                asm.active = false;
                asm.buf.clear();
                self.stats.dropped_pes += 1;
                return;
            }
            asm.buf.extend_from_slice(p.payload);
        } else {
            return;
        }
        // A PES with an announced length can be emitted as soon as it is complete,
        // without waiting for the next one to start (this saves audio latency).
        let Some(asm) = self.streams.get_mut(&p.pid) else {
            return;
        };
        if let Some(total) = pes::announced_len(&asm.buf) {
            if asm.buf.len() >= total {
                asm.buf.truncate(total);
                self.finish_pes(p.pid);
            }
        }
    }

    fn finish_pes(&mut self, pid: u16) {
        let Some(asm) = self.streams.get_mut(&pid) else {
            return;
        };
        if !asm.active {
            return;
        }
        asm.active = false;
        let buf = std::mem::take(&mut asm.buf);
        match pes::parse_header(pid, &buf) {
            Ok(h) if h.payload_offset <= buf.len() => {
                let data = Bytes::from(buf).slice(h.payload_offset..);
                self.events.push_back(DemuxEvent::Pes(Pes {
                    pid,
                    stream_type: asm.stream_type,
                    pts: h.pts,
                    dts: h.dts,
                    data,
                    offset: asm.offset,
                }));
            }
            _ => self.stats.dropped_pes += 1,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::pes::tests::pes;
    use super::super::psi::tests::section;
    use super::*;

    /// Packetizes `payload` on `pid` (PUSI on the first packet), continuity from `cc`.
    pub(crate) fn packetize(pid: u16, payload: &[u8], cc: &mut u8, psi: bool) -> Vec<u8> {
        let mut data = Vec::new();
        if psi {
            data.push(0); // pointer_field
        }
        data.extend_from_slice(payload);
        let mut out = Vec::new();
        let mut first = true;
        for chunk in data.chunks(184) {
            let mut pkt = vec![
                SYNC_BYTE,
                (if first { 0x40 } else { 0 }) | (pid >> 8) as u8,
                pid as u8,
            ];
            if chunk.len() == 184 {
                pkt.push(0x10 | *cc);
                pkt.extend_from_slice(chunk);
            } else {
                // Pad with an adaptation field of stuffing.
                pkt.push(0x30 | *cc);
                let af_len = 183 - chunk.len();
                pkt.push(af_len as u8);
                if af_len > 0 {
                    pkt.push(0);
                    pkt.resize(pkt.len() + af_len - 1, 0xFF);
                }
                pkt.extend_from_slice(chunk);
            }
            assert_eq!(pkt.len(), PACKET_SIZE);
            out.extend_from_slice(&pkt);
            *cc = (*cc + 1) & 0x0F;
            first = false;
        }
        out
    }

    pub(crate) fn program_tables() -> Vec<u8> {
        let mut out = Vec::new();
        let mut cc = 0;
        out.extend(packetize(
            0,
            &section(0, 1, &[0, 1, 0xF0, 0x00]),
            &mut cc,
            true,
        ));
        let pmt = [
            0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00,
        ];
        let mut cc = 0;
        out.extend(packetize(0x1000, &section(2, 1, &pmt), &mut cc, true));
        out
    }

    #[test]
    fn sections_that_share_and_span_packets_all_come_out() {
        // PAT, then a PMT with H.264 on 0x100 and SCTE-35 on 0x1F0.
        let mut input = Vec::new();
        let mut cc = 0;
        input.extend(packetize(
            0,
            &section(0, 1, &[0, 1, 0xF0, 0x00]),
            &mut cc,
            true,
        ));
        let pmt = [
            0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x86, 0xE1, 0xF0, 0xF0, 0x00,
        ];
        let mut cc = 0;
        input.extend(packetize(0x1000, &section(2, 1, &pmt), &mut cc, true));
        // Eight splice_insert sections packed back to back: one starts in
        // the first packet and ends in the second, whose pointer_field
        // skips its tail.
        let sections: Vec<Vec<u8>> = (1..=8)
            .map(|id| {
                crate::scte35::write_splice_insert(id, true, Some(90_000), None, false).to_vec()
            })
            .collect();
        let all: Vec<u8> = sections.concat();
        let first = 183;
        // The section that straddles the packet boundary.
        let mut k = 0;
        let mut before = 0;
        while before + sections[k].len() <= first {
            before += sections[k].len();
            k += 1;
        }
        assert!(k >= 2 && k + 1 < sections.len());
        let mut p1 = vec![SYNC_BYTE, 0x41, 0xF0, 0x10, 0];
        p1.extend_from_slice(&all[..first]);
        let tail = sections[k].len() - (first - before);
        let mut p2 = vec![SYNC_BYTE, 0x41, 0xF0, 0x11, tail as u8];
        p2.extend_from_slice(&all[first..]);
        assert!(p2.len() <= PACKET_SIZE);
        p2.resize(PACKET_SIZE, 0xFF);
        input.extend(p1);
        input.extend(p2);
        let mut d = Demuxer::default();
        d.push(&input).unwrap();
        let got: Vec<Vec<u8>> = drain(&mut d)
            .into_iter()
            .filter_map(|e| match e {
                DemuxEvent::Section { pid: 0x1F0, data } => Some(data.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(got, sections);
        assert_eq!(d.stats().psi_errors, 0);
    }

    fn drain(d: &mut Demuxer) -> Vec<DemuxEvent> {
        std::iter::from_fn(|| d.poll()).collect()
    }

    #[test]
    fn demuxes_program_and_pes_in_any_chunking() {
        let mut input = program_tables();
        let mut vcc = 0;
        let mut acc = 0;
        let video = vec![0xAB; 1000];
        input.extend(packetize(
            0x100,
            &pes(0xE0, 3000, Some(0), &video),
            &mut vcc,
            false,
        ));
        input.extend(packetize(
            0x101,
            &pes(0xC0, 0, None, b"aac"),
            &mut acc,
            false,
        ));
        input.extend(packetize(
            0x100,
            &pes(0xE0, 6000, Some(3000), b"next"),
            &mut vcc,
            false,
        ));
        for chunk in [1usize, 7, 188, 1316, input.len()] {
            let mut d = Demuxer::default();
            for c in input.chunks(chunk) {
                d.push(c).unwrap();
            }
            d.flush();
            let events = drain(&mut d);
            assert!(matches!(&events[0], DemuxEvent::Program(s) if s.len() == 2));
            let pes: Vec<&Pes> = events
                .iter()
                .filter_map(|e| match e {
                    DemuxEvent::Pes(p) => Some(p),
                    _ => None,
                })
                .collect();
            assert_eq!(pes.len(), 3, "chunk size {chunk}");
            // Bounded audio PES comes out as soon as complete, before the first video
            // PES (unbounded) which ends only when the next one starts.
            assert_eq!(pes[0].pid, 0x101);
            assert_eq!(&pes[0].data[..], b"aac");
            assert_eq!(&pes[1].data[..], &video[..]);
            assert_eq!((pes[1].pts, pes[1].dts), (Some(3000), Some(0)));
            assert_eq!(&pes[2].data[..], b"next");
            assert_eq!(d.stats().continuity_errors, 0);
        }
    }

    #[test]
    fn resyncs_after_garbage_and_counts_loss() {
        let mut input = vec![0x12, 0x47, 0x00];
        input.extend(program_tables());
        let mut vcc = 0;
        let first = packetize(0x100, &pes(0xE0, 3000, Some(0), &[1; 500]), &mut vcc, false);
        // Drop the second packet of the first PES: a continuity gap.
        input.extend_from_slice(&first[..188]);
        input.extend_from_slice(&first[376..]);
        input.extend(packetize(
            0x100,
            &pes(0xE0, 6000, Some(3000), &[2; 10]),
            &mut vcc,
            false,
        ));
        let mut d = Demuxer::default();
        d.push(&input).unwrap();
        d.flush();
        let pes: Vec<Pes> = drain(&mut d)
            .into_iter()
            .filter_map(|e| match e {
                DemuxEvent::Pes(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(pes.len(), 1, "the damaged PES is dropped");
        assert_eq!(&pes[0].data[..], &[2; 10][..]);
        let s = d.stats();
        assert_eq!(s.resync_bytes, 3);
        assert_eq!(s.continuity_errors, 1);
        assert_eq!(s.dropped_pes, 1);
    }

    #[test]
    fn random_bytes_are_rejected_not_panicked_on() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let garbage: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut d = Demuxer::default();
        let err = garbage
            .chunks(1316)
            .find_map(|c| d.push(c).err())
            .expect("garbage must be refused");
        assert!(matches!(err, TsError::NotTransportStream { .. }));
    }
}
