//! SCTE-35 splice information (ANSI/SCTE 35, `splice_info_section`, table id
//! 0xFC): the ad-break cues a broadcaster puts in its MPEG-TS. Sans-IO: a
//! whole section in, a typed [`SpliceInfo`] out, or an error saying what is
//! wrong; never a panic, whatever the bytes (fuzzed: `packager/fuzz`, target
//! `scte35`).
//!
//! What is decoded: the section header (`pts_adjustment`, `tier`, the
//! encryption flags), the commands `splice_null`, `splice_insert`,
//! `time_signal`, `bandwidth_reservation`, `private_command` (kept raw) and
//! `splice_schedule` (kept raw), `segmentation_descriptor`s (CUEI) with their
//! UPIDs, and other descriptors kept raw; the `CRC_32` is checked. Encrypted
//! sections are refused (their command cannot be read without the
//! conditional-access key). [`SpliceInfo::cue`] says what a section means for
//! an ad break: its start (with a duration when known) or its end, at which
//! PTS.
//!
//! Why not a crate: `scte35-splice` 4 (parse + serialize) needs rustc 1.95
//! and the workspace's `rust-version` is 1.85, `scte35-reader`
//! is tied to mpeg2ts-reader's demuxer (Brook has its own), `scte35` 0.2 is
//! young and unproven. This parser is checked against the SCTE 35
//! specification's examples and against `threefive` (PyPI), an independent
//! implementation (packager/tests/scte35.rs).

use std::fmt;

/// The 33-bit PTS wrap.
const PTS_MASK: u64 = (1 << 33) - 1;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scte35Error {
    /// Shorter than its fields say.
    Truncated(&'static str),
    /// Not a `splice_info_section` (table id, section syntax, lengths).
    NotSpliceInfo(&'static str),
    /// The CRC does not match the bytes.
    Crc { want: u32, got: u32 },
    /// An encrypted section (SCTE 35 §11): its command needs the CA key.
    Encrypted,
}

impl fmt::Display for Scte35Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scte35Error::Truncated(what) => write!(f, "SCTE-35 section truncated in {what}"),
            Scte35Error::NotSpliceInfo(what) => {
                write!(f, "not an SCTE-35 splice_info_section: {what}")
            }
            Scte35Error::Crc { want, got } => {
                write!(f, "SCTE-35 CRC_32 {got:#010x}, the bytes give {want:#010x}")
            }
            Scte35Error::Encrypted => f.write_str("SCTE-35 section is encrypted"),
        }
    }
}

impl std::error::Error for Scte35Error {}

/// A decoded `splice_info_section`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceInfo {
    pub protocol_version: u8,
    /// Added (mod 2^33) to every PTS in the command.
    pub pts_adjustment: u64,
    pub tier: u16,
    pub command: SpliceCommand,
    pub descriptors: Vec<SpliceDescriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpliceCommand {
    Null,
    /// `splice_schedule` (0x04): wall-clock schedules, kept raw.
    Schedule(Vec<u8>),
    Insert(SpliceInsert),
    /// `time_signal` (0x06): the time of the descriptors' events.
    TimeSignal {
        pts: Option<u64>,
    },
    BandwidthReservation,
    /// `private_command` (0xFF): its identifier and the rest.
    Private {
        identifier: u32,
        data: Vec<u8>,
    },
    /// A reserved command type, kept raw.
    Unknown {
        kind: u8,
        data: Vec<u8>,
    },
}

/// `splice_insert` (0x05).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpliceInsert {
    pub event_id: u32,
    /// `splice_event_cancel_indicator`: the event with this id is called off.
    pub cancel: bool,
    /// `out_of_network_indicator`: true leaves the network (a break starts),
    /// false returns to it.
    pub out_of_network: bool,
    pub program_splice: bool,
    /// `splice_immediate_flag`: at once, no time given.
    pub immediate: bool,
    /// The program's splice time (program splice, not immediate).
    pub pts: Option<u64>,
    /// Per component (component splice): tag and time.
    pub components: Vec<(u8, Option<u64>)>,
    pub duration: Option<BreakDuration>,
    pub unique_program_id: u16,
    pub avail_num: u8,
    pub avails_expected: u8,
}

/// `break_duration()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakDuration {
    pub auto_return: bool,
    /// 90 kHz ticks.
    pub duration: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpliceDescriptor {
    Segmentation(SegmentationDescriptor),
    /// Any other descriptor: its tag, identifier and payload.
    Other {
        tag: u8,
        identifier: u32,
        data: Vec<u8>,
    },
}

/// `segmentation_descriptor()` (tag 0x02, identifier `CUEI`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentationDescriptor {
    pub event_id: u32,
    pub cancel: bool,
    /// 90 kHz ticks, when given.
    pub duration: Option<u64>,
    pub upid_type: u8,
    pub upid: Vec<u8>,
    /// `segmentation_type_id` (0x34 provider placement opportunity start, ...).
    pub type_id: u8,
    pub segment_num: u8,
    pub segments_expected: u8,
    pub sub_segment_num: Option<u8>,
    pub sub_segments_expected: Option<u8>,
}

impl SegmentationDescriptor {
    /// Type ids that open a break an ad may replace: break start,
    /// (provider/distributor) advertisement, (provider/distributor)
    /// placement opportunity, (provider/distributor) ad block. Overlay
    /// placement opportunities (0x38, 0x3A) do not cut the content, and
    /// promos (0x3C, 0x3E) are not ad breaks.
    pub fn starts_break(&self) -> bool {
        matches!(self.type_id, 0x22 | 0x30 | 0x32 | 0x34 | 0x36 | 0x44 | 0x46)
    }

    /// The matching ends (start + 1).
    pub fn ends_break(&self) -> bool {
        matches!(self.type_id, 0x23 | 0x31 | 0x33 | 0x35 | 0x37 | 0x45 | 0x47)
    }
}

/// What a section means for an ad break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cue {
    /// A break starts at `pts` (None: at once), lasting `duration` ticks
    /// when known.
    Out {
        pts: Option<u64>,
        duration: Option<u64>,
        event_id: u32,
    },
    /// The break ends at `pts` (None: at once).
    In { pts: Option<u64>, event_id: u32 },
}

impl SpliceInfo {
    fn adjust(&self, pts: Option<u64>) -> Option<u64> {
        pts.map(|p| (p + self.pts_adjustment) & PTS_MASK)
    }

    /// The break this section starts or ends, if it does: a `splice_insert`
    /// (out of network: start; back: end; cancelled: nothing), or a
    /// `time_signal` with a break-opening or closing segmentation
    /// descriptor (the first one that is not cancelled). PTS adjusted by
    /// `pts_adjustment`.
    pub fn cue(&self) -> Option<Cue> {
        match &self.command {
            SpliceCommand::Insert(i) if !i.cancel => {
                let pts = if i.immediate {
                    None
                } else {
                    self.adjust(i.pts.or_else(|| i.components.iter().find_map(|c| c.1)))
                };
                Some(if i.out_of_network {
                    Cue::Out {
                        pts,
                        duration: i.duration.map(|d| d.duration),
                        event_id: i.event_id,
                    }
                } else {
                    Cue::In {
                        pts,
                        event_id: i.event_id,
                    }
                })
            }
            SpliceCommand::TimeSignal { pts } => {
                let pts = self.adjust(*pts);
                self.descriptors.iter().find_map(|d| match d {
                    SpliceDescriptor::Segmentation(s) if !s.cancel && s.starts_break() => {
                        Some(Cue::Out {
                            pts,
                            duration: s.duration,
                            event_id: s.event_id,
                        })
                    }
                    SpliceDescriptor::Segmentation(s) if !s.cancel && s.ends_break() => {
                        Some(Cue::In {
                            pts,
                            event_id: s.event_id,
                        })
                    }
                    _ => None,
                })
            }
            _ => None,
        }
    }
}

/// A byte cursor whose reads fail instead of panicking.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Scte35Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(Scte35Error::Truncated(what))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Scte35Error> {
        Ok(self.take(1, what)?[0])
    }

    fn uint(&mut self, bytes: usize, what: &'static str) -> Result<u64, Scte35Error> {
        Ok(self
            .take(bytes, what)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn rest(&self) -> &'a [u8] {
        &self.data[self.at..]
    }
}

/// MPEG-2 CRC-32, as every PSI section uses (the PAT/PMT parser's).
pub use crate::ts::psi::crc32_mpeg2;

/// `splice_time()`: a PTS when `time_specified_flag` is set.
fn splice_time(c: &mut Cursor<'_>) -> Result<Option<u64>, Scte35Error> {
    let first = c.u8("splice_time")?;
    if first & 0x80 == 0 {
        return Ok(None);
    }
    let rest = c.uint(4, "splice_time")?;
    Ok(Some((u64::from(first & 1) << 32) | rest))
}

fn break_duration(c: &mut Cursor<'_>) -> Result<BreakDuration, Scte35Error> {
    let first = c.u8("break_duration")?;
    let rest = c.uint(4, "break_duration")?;
    Ok(BreakDuration {
        auto_return: first & 0x80 != 0,
        duration: (u64::from(first & 1) << 32) | rest,
    })
}

fn splice_insert(c: &mut Cursor<'_>) -> Result<SpliceInsert, Scte35Error> {
    let mut i = SpliceInsert {
        event_id: c.uint(4, "splice_insert")? as u32,
        ..SpliceInsert::default()
    };
    i.cancel = c.u8("splice_insert")? & 0x80 != 0;
    if i.cancel {
        return Ok(i);
    }
    let flags = c.u8("splice_insert")?;
    i.out_of_network = flags & 0x80 != 0;
    i.program_splice = flags & 0x40 != 0;
    let has_duration = flags & 0x20 != 0;
    i.immediate = flags & 0x10 != 0;
    if i.program_splice && !i.immediate {
        i.pts = splice_time(c)?;
    }
    if !i.program_splice {
        let n = c.u8("splice_insert components")?;
        for _ in 0..n {
            let tag = c.u8("splice_insert component")?;
            let t = if i.immediate { None } else { splice_time(c)? };
            i.components.push((tag, t));
        }
    }
    if has_duration {
        i.duration = Some(break_duration(c)?);
    }
    i.unique_program_id = c.uint(2, "splice_insert")? as u16;
    i.avail_num = c.u8("splice_insert")?;
    i.avails_expected = c.u8("splice_insert")?;
    Ok(i)
}

fn segmentation(data: &[u8]) -> Result<SegmentationDescriptor, Scte35Error> {
    let mut c = Cursor { data, at: 0 };
    let mut s = SegmentationDescriptor {
        event_id: c.uint(4, "segmentation_descriptor")? as u32,
        ..SegmentationDescriptor::default()
    };
    s.cancel = c.u8("segmentation_descriptor")? & 0x80 != 0;
    if s.cancel {
        return Ok(s);
    }
    let flags = c.u8("segmentation_descriptor")?;
    let program = flags & 0x80 != 0;
    let has_duration = flags & 0x40 != 0;
    if !program {
        let n = c.u8("segmentation components")?;
        // component_tag, reserved + 33-bit pts_offset: 6 bytes each.
        c.take(usize::from(n) * 6, "segmentation components")?;
    }
    if has_duration {
        s.duration = Some(c.uint(5, "segmentation_duration")? & ((1 << 40) - 1));
    }
    s.upid_type = c.u8("segmentation_upid_type")?;
    let len = c.u8("segmentation_upid_length")?;
    s.upid = c.take(usize::from(len), "segmentation_upid")?.to_vec();
    s.type_id = c.u8("segmentation_type_id")?;
    s.segment_num = c.u8("segment_num")?;
    s.segments_expected = c.u8("segments_expected")?;
    // Sub-segments for these types (SCTE 35 §10.3.3.1), when present.
    if matches!(s.type_id, 0x34 | 0x36 | 0x38 | 0x3A) && c.rest().len() >= 2 {
        s.sub_segment_num = Some(c.u8("sub_segment_num")?);
        s.sub_segments_expected = Some(c.u8("sub_segments_expected")?);
    }
    Ok(s)
}

/// Writes a `splice_info_section` with one `splice_insert` (program splice,
/// no descriptors, clear, `sap_type` unspecified): out of the network (a
/// break starts) or back, at `pts` (90 kHz, 33 bits) or immediately, with
/// a `break_duration` when `duration` (90 kHz ticks) is given. What Brook
/// puts in the markers of a break that came without SCTE-35 (the admin API).
pub fn write_splice_insert(
    event_id: u32,
    out_of_network: bool,
    pts: Option<u64>,
    duration: Option<u64>,
    auto_return: bool,
) -> bytes::Bytes {
    let mut cmd = Vec::with_capacity(20);
    cmd.extend_from_slice(&event_id.to_be_bytes());
    cmd.push(0x7F); // not cancelled, reserved
    cmd.push(
        (u8::from(out_of_network) << 7)
            | 0x40 // program_splice_flag
            | (u8::from(duration.is_some()) << 5)
            | (u8::from(pts.is_none()) << 4)
            | 0x0F,
    );
    let time33 = |first: u8, t: u64| {
        let t = t & PTS_MASK;
        let mut b = [first | ((t >> 32) as u8 & 1), 0, 0, 0, 0];
        b[1..].copy_from_slice(&(t as u32).to_be_bytes());
        b
    };
    if let Some(pts) = pts {
        cmd.extend_from_slice(&time33(0xFE, pts)); // time_specified_flag
    }
    if let Some(d) = duration {
        cmd.extend_from_slice(&time33((u8::from(auto_return) << 7) | 0x7E, d));
    }
    cmd.extend_from_slice(&[0, 0, 0, 0]); // unique_program_id, avail_num, avails_expected
    let mut s = vec![0xFC, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF];
    let cmd_len = cmd.len() as u16;
    // tier 0xFFF, splice_command_length, splice_command_type
    s.extend_from_slice(&[0xFF, 0xF0 | (cmd_len >> 8) as u8, cmd_len as u8, 0x05]);
    s.extend_from_slice(&cmd);
    s.extend_from_slice(&[0, 0]); // descriptor_loop_length
    let section_length = (s.len() - 3 + 4) as u16;
    s[1] = 0x30 | (section_length >> 8) as u8; // sap_type 3
    s[2] = section_length as u8;
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    bytes::Bytes::from(s)
}

/// Decodes one whole `splice_info_section` (from `table_id` to `CRC_32`).
pub fn parse(section: &[u8]) -> Result<SpliceInfo, Scte35Error> {
    let mut c = Cursor {
        data: section,
        at: 0,
    };
    if c.u8("table_id")? != 0xFC {
        return Err(Scte35Error::NotSpliceInfo("table_id is not 0xFC"));
    }
    let head = c.uint(2, "section_length")? as usize;
    if head & 0x8000 != 0 {
        return Err(Scte35Error::NotSpliceInfo(
            "section_syntax_indicator is set",
        ));
    }
    let length = head & 0x0FFF;
    let total = 3 + length;
    if section.len() < total {
        return Err(Scte35Error::Truncated("the section"));
    }
    if length < 17 {
        return Err(Scte35Error::NotSpliceInfo("section_length too small"));
    }
    let section = &section[..total];
    let got = u32::from_be_bytes([
        section[total - 4],
        section[total - 3],
        section[total - 2],
        section[total - 1],
    ]);
    let want = crc32_mpeg2(&section[..total - 4]);
    if want != got {
        return Err(Scte35Error::Crc { want, got });
    }
    let mut c = Cursor {
        data: &section[..total - 4],
        at: 3,
    };
    let protocol_version = c.u8("protocol_version")?;
    let b = c.u8("pts_adjustment")?;
    if b & 0x80 != 0 {
        return Err(Scte35Error::Encrypted);
    }
    let pts_adjustment = (u64::from(b & 1) << 32) | c.uint(4, "pts_adjustment")?;
    let _cw_index = c.u8("cw_index")?;
    let tier_len = c.uint(3, "tier")?;
    let tier = ((tier_len >> 12) & 0x0FFF) as u16;
    let command_length = (tier_len & 0x0FFF) as usize;
    let kind = c.u8("splice_command_type")?;
    // 0xFFF: the length is unknown (legacy); the command says itself.
    let command_bytes = if command_length == 0x0FFF {
        None
    } else {
        Some(c.take(command_length, "the splice command")?)
    };
    let mut cc = match command_bytes {
        Some(b) => Cursor { data: b, at: 0 },
        None => Cursor {
            data: c.rest(),
            at: 0,
        },
    };
    let command = match kind {
        0x00 => SpliceCommand::Null,
        0x04 => SpliceCommand::Schedule(cc.rest().to_vec()),
        0x05 => SpliceCommand::Insert(splice_insert(&mut cc)?),
        0x06 => SpliceCommand::TimeSignal {
            pts: splice_time(&mut cc)?,
        },
        0x07 => SpliceCommand::BandwidthReservation,
        0xFF => SpliceCommand::Private {
            identifier: cc.uint(4, "private_command")? as u32,
            data: cc.rest().to_vec(),
        },
        kind => SpliceCommand::Unknown {
            kind,
            data: cc.rest().to_vec(),
        },
    };
    if command_bytes.is_none() {
        if matches!(kind, 0x04 | 0xFF) || matches!(command, SpliceCommand::Unknown { .. }) {
            return Err(Scte35Error::NotSpliceInfo(
                "a command of unknown length that does not say its own",
            ));
        }
        c.at += cc.at;
    }
    let loop_length = c.uint(2, "descriptor_loop_length")? as usize;
    let mut d = Cursor {
        data: c.take(loop_length, "the descriptor loop")?,
        at: 0,
    };
    let mut descriptors = Vec::new();
    while !d.rest().is_empty() {
        let tag = d.u8("splice_descriptor_tag")?;
        let len = usize::from(d.u8("descriptor_length")?);
        let body = d.take(len, "a splice descriptor")?;
        if body.len() < 4 {
            return Err(Scte35Error::Truncated("a splice descriptor's identifier"));
        }
        let identifier = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        const CUEI: u32 = u32::from_be_bytes(*b"CUEI");
        descriptors.push(if tag == 0x02 && identifier == CUEI {
            SpliceDescriptor::Segmentation(segmentation(&body[4..])?)
        } else {
            SpliceDescriptor::Other {
                tag,
                identifier,
                data: body[4..].to_vec(),
            }
        });
    }
    Ok(SpliceInfo {
        protocol_version,
        pts_adjustment,
        tier,
        command,
        descriptors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_wrong_input_is_an_error() {
        assert!(parse(&[]).is_err());
        assert_eq!(
            parse(&[0xFB, 0, 0]),
            Err(Scte35Error::NotSpliceInfo("table_id is not 0xFC"))
        );
        assert_eq!(
            parse(&[0xFC, 0x00, 0x30]),
            Err(Scte35Error::Truncated("the section"))
        );
    }
}
