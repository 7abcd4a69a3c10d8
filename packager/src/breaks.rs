//! Ad breaks: cues in (SCTE-35 from the transport stream, or a caller's "a
//! break of N seconds, now or at this time"), breaks out, on segment
//! boundaries, with their markers in the playlists and the MPD.
//!
//! Sans-IO and clock-free like the rest of the packager: [`Breaks`] keeps the
//! schedule in lead-track ticks; the packager asks the segmenter to start a
//! segment at each break's start and end (the first keyframe at or after the
//! splice point: a transcoder keys every segment target, so a splice moves by
//! less than one segment; a passthrough encoder's GOP decides), then hands
//! each rendition the markers of the segment it begins:
//!
//! - [`AdMarkers::DateRange`] (default, RFC 8216bis §4.4.5.1 and its SCTE-35
//!   mapping §4.4.5.1.4): `EXT-X-DATERANGE` with `ID`, `START-DATE`,
//!   `PLANNED-DURATION` and `SCTE35-OUT` on the break's first segment, and a
//!   second tag with the same `ID`, `DURATION` and `SCTE35-IN` on the first
//!   segment after it. Breaks from the API carry a `splice_insert` Brook
//!   writes ([`scte35::write_splice_insert`]), so downstream ad systems see SCTE-35
//!   either way.
//! - [`AdMarkers::CueOut`]: the older `EXT-X-CUE-OUT:DURATION=`,
//!   `EXT-X-CUE-OUT-CONT:ElapsedTime=,Duration=` on every segment of the
//!   break, `EXT-X-CUE-IN` on the first one after it.
//!
//! DASH gets one `EventStream` (`urn:scte:scte35:2014:xml+bin`) event per
//! break with the section in base64.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::Bytes;

use crate::hls::attr::AttributeList;
use crate::scte35::{self, Cue, SpliceInfo};
use crate::time::{rescale, UnixMillis};

/// Longest break Brook schedules (a cue asking for more is clamped; a break
/// opened without a duration and never closed ends after this too).
pub const MAX_BREAK_MS: u64 = 3 * 60 * 60 * 1000;
/// Breaks (and ends) kept for markers and the MPD.
const KEPT: usize = 32;

/// How breaks are marked in HLS media playlists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdMarkers {
    #[default]
    DateRange,
    CueOut,
}

impl AdMarkers {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daterange" => Some(Self::DateRange),
            "cue-out" => Some(Self::CueOut),
            _ => None,
        }
    }
}

/// When a cue takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CueAt {
    /// At the next keyframe.
    Now,
    /// At this presentation time: 90 kHz ticks on the input's (unwrapped)
    /// timeline, the frames' clock.
    Pts(i64),
    /// At this wall-clock time (mapped through the stream's date anchor).
    Wall(UnixMillis),
}

/// A break starting or ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceCue {
    /// The break's identity (`EXT-X-DATERANGE` ID): repeated cues with the same
    /// id are one break.
    pub id: String,
    /// True: the break starts (out of the network); false: it ends.
    pub out: bool,
    pub at: CueAt,
    /// Planned length of a starting break, ms.
    pub duration_ms: Option<u64>,
    /// The break ends by itself after `duration_ms` (no closing cue comes).
    pub auto_return: bool,
    /// The `splice_info_section` that carried the cue, as it came.
    pub scte35: Option<Bytes>,
}

impl SpliceCue {
    /// The cue a decoded section carries, if it starts or ends a break;
    /// `unwrap` maps its 33-bit PTS onto the frames' timeline.
    pub fn from_section(
        info: &SpliceInfo,
        raw: &[u8],
        unwrap: impl FnOnce(u64) -> i64,
    ) -> Option<Self> {
        let auto_return = match &info.command {
            scte35::SpliceCommand::Insert(i) => i.duration.is_some_and(|d| d.auto_return),
            _ => false,
        };
        let (out, pts, duration, event_id) = match info.cue()? {
            Cue::Out {
                pts,
                duration,
                event_id,
            } => (true, pts, duration, event_id),
            Cue::In { pts, event_id } => (false, pts, None, event_id),
        };
        Some(SpliceCue {
            id: format!("splice-{event_id}"),
            out,
            at: pts.map_or(CueAt::Now, |p| CueAt::Pts(unwrap(p))),
            duration_ms: duration.map(|d| d / 90),
            auto_return,
            scte35: Some(Bytes::copy_from_slice(raw)),
        })
    }
}

/// A break placed on the timeline, for markers and the MPD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub id: String,
    /// Lead ticks where its first segment starts.
    pub start: i64,
    /// `START-DATE`.
    pub start_date: Option<UnixMillis>,
    pub planned_ms: Option<u64>,
    /// Lead ticks where content resumes, once known.
    pub end: Option<i64>,
    pub out_section: Bytes,
    pub in_section: Option<Bytes>,
    /// Media sequence number of its first segment.
    pub msn: u64,
    /// 1 for the stream's first break, then 2, ... (the MPD event's id).
    pub number: u64,
}

/// What a rendition writes before one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub msn: u64,
    pub date_ranges: Vec<AttributeList>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    id: String,
    out: bool,
    /// Lead ticks.
    at: i64,
    planned_ms: Option<u64>,
    section: Option<Bytes>,
}

/// Counters for cues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakStats {
    pub cues: u64,
    /// Cues that changed nothing: repeats, an end without a break, a start
    /// during a break, a cue before the stream had a timeline.
    pub ignored: u64,
    pub breaks: u64,
}

/// The break schedule of one stream's timeline.
#[derive(Debug, Default)]
pub struct Breaks {
    style: AdMarkers,
    pending: Vec<Pending>,
    /// The break in progress (content is out).
    active: Option<Break>,
    /// Breaks placed, newest last.
    done: VecDeque<Break>,
    marks: VecDeque<Mark>,
    next_event_id: u32,
    stats: BreakStats,
    /// The lead timescale the ticks are in.
    timescale: u32,
}

impl Breaks {
    pub fn new(style: AdMarkers) -> Self {
        Self {
            style,
            next_event_id: 1,
            ..Self::default()
        }
    }

    pub fn stats(&self) -> BreakStats {
        self.stats
    }

    /// A cue that could not be placed (no timeline yet).
    pub fn ignore(&mut self) {
        self.stats.cues += 1;
        self.stats.ignored += 1;
    }

    /// Schedules `cue` at lead tick `at` (`timescale`: the lead's). Returns the
    /// lead ticks where the segmenter must start a segment, if any.
    pub fn schedule(&mut self, cue: SpliceCue, at: i64, timescale: u32) -> Vec<i64> {
        self.stats.cues += 1;
        self.timescale = timescale;
        let known =
            |id: &str, out: bool, p: &[Pending]| p.iter().any(|c| c.id == id && c.out == out);
        if cue.out {
            let busy = self.active.is_some() || self.pending.iter().any(|p| p.out);
            if busy || known(&cue.id, true, &self.pending) {
                self.stats.ignored += 1;
                return Vec::new();
            }
            let planned = cue.duration_ms.map(|d| d.min(MAX_BREAK_MS));
            let section = cue.scte35.clone().unwrap_or_else(|| {
                let id = self.take_event_id();
                scte35::write_splice_insert(
                    id,
                    true,
                    None,
                    planned.map(|d| d * 90),
                    cue.auto_return,
                )
            });
            self.pending.push(Pending {
                id: cue.id.clone(),
                out: true,
                at,
                planned_ms: planned,
                section: Some(section),
            });
            let mut cuts = vec![at];
            let end_after = if cue.auto_return { planned } else { None };
            let end_after = end_after.unwrap_or(MAX_BREAK_MS);
            let end = at.saturating_add(rescale(end_after as i64, 1000, timescale));
            self.pending.push(Pending {
                id: cue.id,
                out: false,
                at: end,
                planned_ms: None,
                section: None,
            });
            cuts.push(end);
            cuts
        } else {
            // An end: of the break in progress, or of one about to start.
            let open = self
                .active
                .as_ref()
                .map(|b| b.id.clone())
                .or_else(|| self.pending.iter().find(|p| p.out).map(|p| p.id.clone()));
            let Some(id) = open else {
                self.stats.ignored += 1;
                return Vec::new();
            };
            let Some(end) = self.pending.iter_mut().find(|p| !p.out && p.id == id) else {
                self.stats.ignored += 1;
                return Vec::new();
            };
            if end.section.is_some() {
                // Ended by a cue already (SCTE-35 encoders repeat theirs).
                self.stats.ignored += 1;
                return Vec::new();
            }
            end.at = end.at.min(at);
            end.section = Some(cue.scte35.unwrap_or_default());
            vec![end.at]
        }
    }

    fn take_event_id(&mut self) -> u32 {
        let id = self.next_event_id;
        self.next_event_id = self.next_event_id.wrapping_add(1).max(1);
        id
    }

    /// The lead track began segment `msn` at lead tick `start` (`date`: its
    /// `PROGRAM-DATE-TIME`); `tolerance`: half a frame. Places the breaks
    /// that start or end here and returns the markers for `msn`, which every
    /// rendition writes before its segment `msn` ([`Breaks::mark`]).
    pub fn segment_started(
        &mut self,
        msn: u64,
        start: i64,
        date: Option<UnixMillis>,
        timescale: u32,
        tolerance: i64,
    ) {
        let due = |p: &Pending| p.at <= start.saturating_add(tolerance);
        let mut mark = Mark {
            msn,
            date_ranges: Vec::new(),
            tags: Vec::new(),
        };
        let secs = |ticks: i64| ticks as f64 / f64::from(timescale.max(1));
        // An end first: a break may end and the next start on one boundary.
        if let Some(i) = self
            .pending
            .iter()
            .position(|p| !p.out && due(p) && self.active.as_ref().is_some_and(|b| b.id == p.id))
        {
            let p = self.pending.remove(i);
            if let Some(mut b) = self.active.take() {
                let in_section = match p.section.filter(|s| !s.is_empty()) {
                    Some(s) => s,
                    None => {
                        let id = self.take_event_id();
                        scte35::write_splice_insert(id, false, None, None, false)
                    }
                };
                b.end = Some(start);
                b.in_section = Some(in_section.clone());
                match self.style {
                    AdMarkers::DateRange => {
                        let mut a = AttributeList::default();
                        a.push_quoted("ID", &b.id);
                        if let Some(d) = b.start_date {
                            a.push_quoted("START-DATE", &d.to_string());
                        }
                        a.push_bare("DURATION", &fmt_secs(secs(start - b.start)));
                        a.push_bare("SCTE35-IN", &hex(&in_section));
                        mark.date_ranges.push(a);
                    }
                    AdMarkers::CueOut => mark.tags.push("EXT-X-CUE-IN".into()),
                }
                self.done.push_back(b);
            }
        }
        if self.active.is_none() {
            if let Some(i) = self.pending.iter().position(|p| p.out && due(p)) {
                let p = self.pending.remove(i);
                let b = Break {
                    id: p.id,
                    start,
                    start_date: date,
                    planned_ms: p.planned_ms,
                    end: None,
                    out_section: p.section.unwrap_or_default(),
                    in_section: None,
                    msn,
                    number: self.stats.breaks + 1,
                };
                self.stats.breaks += 1;
                match self.style {
                    AdMarkers::DateRange => {
                        let mut a = AttributeList::default();
                        a.push_quoted("ID", &b.id);
                        if let Some(d) = date {
                            a.push_quoted("START-DATE", &d.to_string());
                        }
                        if let Some(ms) = b.planned_ms {
                            a.push_bare("PLANNED-DURATION", &fmt_secs(ms as f64 / 1000.0));
                        }
                        a.push_bare("SCTE35-OUT", &hex(&b.out_section));
                        mark.date_ranges.push(a);
                    }
                    AdMarkers::CueOut => {
                        let d = b.planned_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
                        mark.tags
                            .push(format!("EXT-X-CUE-OUT:DURATION={}", fmt_secs(d)));
                    }
                }
                self.active = Some(b);
            }
        } else if let (Some(b), AdMarkers::CueOut) = (&self.active, self.style) {
            {
                if b.msn != msn {
                    let d = b.planned_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
                    mark.tags.push(format!(
                        "EXT-X-CUE-OUT-CONT:ElapsedTime={},Duration={}",
                        fmt_secs(secs(start - b.start)),
                        fmt_secs(d)
                    ));
                }
            }
        }
        // Ends whose break never started (cancelled by a later cue) go.
        let mut live: Vec<String> = self.active.iter().map(|b| b.id.clone()).collect();
        live.extend(self.pending.iter().filter(|p| p.out).map(|p| p.id.clone()));
        self.pending.retain(|p| p.out || live.contains(&p.id));
        while self.done.len() > KEPT {
            self.done.pop_front();
        }
        if !mark.date_ranges.is_empty() || !mark.tags.is_empty() {
            self.marks.push_back(mark);
            while self.marks.len() > KEPT {
                self.marks.pop_front();
            }
        }
    }

    /// The markers rendition playlists write before segment `msn`.
    pub fn mark(&self, msn: u64) -> Option<&Mark> {
        self.marks.iter().find(|m| m.msn == msn)
    }

    /// The timescale of [`Break`]'s ticks.
    pub fn timescale(&self) -> u32 {
        self.timescale.max(1)
    }

    /// Breaks placed on this timeline (the one in progress last), for the MPD.
    pub fn placed(&self) -> impl Iterator<Item = &Break> {
        self.done.iter().chain(self.active.iter())
    }

    /// The timeline ends (discontinuity, end of stream): cues not yet placed
    /// are dropped; a break in progress ends at the next segment (its times
    /// were on the old clock).
    pub fn end_timeline(&mut self) {
        self.pending.clear();
        if let Some(b) = &self.active {
            self.pending.push(Pending {
                id: b.id.clone(),
                out: false,
                at: i64::MIN,
                planned_ms: None,
                section: None,
            });
        }
    }

    pub fn in_break(&self) -> bool {
        self.active.is_some()
    }
}

/// `0x` and the bytes in upper-case hex (RFC 8216bis hexadecimal-sequence).
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// Seconds with up to three decimals, no float noise.
fn fmt_secs(v: f64) -> String {
    crate::hls::media::Secs((v * 1000.0).round() / 1000.0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: u32 = 90_000;

    fn api(id: &str, out: bool, ms: Option<u64>) -> SpliceCue {
        SpliceCue {
            id: id.into(),
            out,
            at: CueAt::Now,
            duration_ms: ms,
            auto_return: true,
            scte35: None,
        }
    }

    #[test]
    fn an_auto_return_break_starts_and_ends_on_segment_boundaries() {
        let mut b = Breaks::new(AdMarkers::DateRange);
        let cuts = b.schedule(api("b1", true, Some(4000)), 180_000, TS);
        assert_eq!(cuts, vec![180_000, 180_000 + 360_000]);
        // A segment before the splice point carries nothing.
        b.segment_started(1, 90_000, Some(UnixMillis(1_000)), TS, 1500);
        assert!(b.mark(1).is_none());
        b.segment_started(2, 180_000, Some(UnixMillis(2_000)), TS, 1500);
        let m = b.mark(2).unwrap().date_ranges[0].to_string();
        assert!(m.starts_with("ID=\"b1\",START-DATE=\"1970-01-01T00:00:02.000Z\",PLANNED-DURATION=4,SCTE35-OUT=0xFC"), "{m}");
        assert!(b.in_break());
        b.segment_started(3, 360_000, Some(UnixMillis(4_000)), TS, 1500);
        assert!(b.mark(3).is_none());
        b.segment_started(4, 540_000, Some(UnixMillis(6_000)), TS, 1500);
        let m = b.mark(4).unwrap().date_ranges[0].to_string();
        assert!(
            m.starts_with(
                "ID=\"b1\",START-DATE=\"1970-01-01T00:00:02.000Z\",DURATION=4,SCTE35-IN=0xFC"
            ),
            "{m}"
        );
        assert!(!b.in_break());
        assert_eq!(b.placed().count(), 1);
    }

    #[test]
    fn repeated_and_stray_cues_change_nothing() {
        let mut b = Breaks::new(AdMarkers::DateRange);
        assert!(b.schedule(api("x", false, None), 0, TS).is_empty());
        assert_eq!(b.schedule(api("b", true, Some(1000)), 0, TS).len(), 2);
        assert!(b.schedule(api("b", true, Some(1000)), 10, TS).is_empty());
        assert!(b.schedule(api("c", true, Some(1000)), 10, TS).is_empty());
        assert_eq!(b.stats().ignored, 3);
    }

    #[test]
    fn an_early_end_cuts_the_break_short_and_cue_out_style_counts_elapsed_time() {
        let mut b = Breaks::new(AdMarkers::CueOut);
        b.schedule(api("b", true, Some(30_000)), 0, TS);
        b.segment_started(5, 0, None, TS, 0);
        assert_eq!(b.mark(5).unwrap().tags, vec!["EXT-X-CUE-OUT:DURATION=30"]);
        b.segment_started(6, 180_000, None, TS, 0);
        assert_eq!(
            b.mark(6).unwrap().tags,
            vec!["EXT-X-CUE-OUT-CONT:ElapsedTime=2,Duration=30"]
        );
        let section = scte35::write_splice_insert(9, false, None, None, false);
        let end = SpliceCue {
            scte35: Some(section),
            ..api("other", false, None)
        };
        assert_eq!(b.schedule(end, 270_000, TS), vec![270_000]);
        b.segment_started(7, 270_000, None, TS, 0);
        assert_eq!(b.mark(7).unwrap().tags, vec!["EXT-X-CUE-IN"]);
        assert!(!b.in_break());
    }

    #[test]
    fn a_section_becomes_a_cue_on_the_frames_timeline() {
        let raw = scte35::write_splice_insert(42, true, Some(1000), Some(900_000), true);
        let info = scte35::parse(&raw).unwrap();
        let cue = SpliceCue::from_section(&info, &raw, |p| p as i64 + (1 << 33)).unwrap();
        assert_eq!(cue.id, "splice-42");
        assert!(cue.out && cue.auto_return);
        assert_eq!(cue.at, CueAt::Pts(1000 + (1 << 33)));
        assert_eq!(cue.duration_ms, Some(10_000));
    }
}
