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

/// A break starting, ending or called off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceCue {
    /// The break's identity (`EXT-X-DATERANGE` ID): repeated cues with the same
    /// id are one break.
    pub id: String,
    /// True: the break starts (out of the network); false: it ends.
    pub out: bool,
    /// The break with this id, not started yet, is called off
    /// (`splice_event_cancel_indicator`).
    pub cancel: bool,
    pub at: CueAt,
    /// Planned length of a starting break, ms: it ends then unless an end
    /// cue comes first.
    pub duration_ms: Option<u64>,
    /// The `splice_event_id` / `segmentation_event_id`, when the cue came in
    /// SCTE-35 (the end Brook writes for it carries the same).
    pub event_id: Option<u32>,
    /// The `splice_info_section` that carried the cue, as it came.
    pub scte35: Option<Bytes>,
}

impl SpliceCue {
    /// A break of `duration_ms` starting at `at` (the admin API).
    pub fn start(id: impl Into<String>, at: CueAt, duration_ms: u64) -> Self {
        SpliceCue {
            id: id.into(),
            out: true,
            cancel: false,
            at,
            duration_ms: Some(duration_ms),
            event_id: None,
            scte35: None,
        }
    }

    /// The break in progress ends at `at`; one not started yet is called
    /// off (the admin API).
    pub fn end(at: CueAt) -> Self {
        SpliceCue {
            id: String::new(),
            out: false,
            cancel: false,
            at,
            duration_ms: None,
            event_id: None,
            scte35: None,
        }
    }

    /// The cue a decoded section carries, if it starts, ends or cancels a
    /// break; `unwrap` maps its 33-bit PTS onto the frames' timeline.
    pub fn from_section(
        info: &SpliceInfo,
        raw: &[u8],
        unwrap: impl FnOnce(u64) -> i64,
    ) -> Option<Self> {
        if let Some(event_id) = cancelled_event(info) {
            return Some(SpliceCue {
                id: format!("splice-{event_id}"),
                out: true,
                cancel: true,
                at: CueAt::Now,
                duration_ms: None,
                event_id: Some(event_id),
                scte35: Some(Bytes::copy_from_slice(raw)),
            });
        }
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
            cancel: false,
            at: pts.map_or(CueAt::Now, |p| CueAt::Pts(unwrap(p))),
            duration_ms: duration.map(|d| d / 90),
            event_id: Some(event_id),
            scte35: Some(Bytes::copy_from_slice(raw)),
        })
    }
}

/// The event a section calls off: a cancelled `splice_insert`, or a
/// `time_signal` whose segmentation descriptor is cancelled.
fn cancelled_event(info: &SpliceInfo) -> Option<u32> {
    match &info.command {
        scte35::SpliceCommand::Insert(i) if i.cancel => Some(i.event_id),
        scte35::SpliceCommand::TimeSignal { .. } => info.descriptors.iter().find_map(|d| match d {
            scte35::SpliceDescriptor::Segmentation(s) if s.cancel => Some(s.event_id),
            _ => None,
        }),
        _ => None,
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
    event_id: u32,
    /// Started on a timeline that has since ended (its ticks are another
    /// clock's): not for the MPD.
    stale: bool,
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
    /// Lead ticks; `i64::MIN`: at the next segment, whatever it is.
    at: i64,
    planned_ms: Option<u64>,
    /// Start: the OUT section. End: the IN section once an end cue came
    /// (empty: one without a section), `None` while the end is the planned one.
    section: Option<Bytes>,
    event_id: u32,
    /// An end carried over a timeline change: where the break's content
    /// ended, on the old clock.
    ended_at: Option<i64>,
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

/// What [`Breaks::schedule`] asks of the segmenter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scheduled {
    /// The cue changed the schedule.
    pub accepted: bool,
    /// Lead ticks where a segment must start.
    pub cuts: Vec<i64>,
    /// Cuts asked for earlier that are no longer wanted.
    pub cancelled: Vec<i64>,
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

    fn ignored(&mut self) -> Scheduled {
        self.stats.ignored += 1;
        Scheduled::default()
    }

    /// Schedules `cue` at lead tick `at` (`timescale`: the lead's).
    pub fn schedule(&mut self, cue: SpliceCue, at: i64, timescale: u32) -> Scheduled {
        self.stats.cues += 1;
        self.timescale = timescale;
        if cue.cancel {
            return self.call_off(|p| p.id == cue.id);
        }
        if cue.out {
            self.schedule_start(cue, at, timescale)
        } else {
            self.schedule_end(cue, at)
        }
    }

    /// Removes a break not started yet (and its end).
    fn call_off(&mut self, which: impl Fn(&Pending) -> bool) -> Scheduled {
        let Some(start) = self.pending.iter().find(|p| p.out && which(p)).cloned() else {
            return self.ignored();
        };
        let mut cancelled = Vec::new();
        self.pending.retain(|p| {
            let gone = p.id == start.id;
            if gone {
                cancelled.push(p.at);
            }
            !gone
        });
        Scheduled {
            accepted: true,
            cuts: Vec::new(),
            cancelled,
        }
    }

    fn schedule_start(&mut self, cue: SpliceCue, at: i64, timescale: u32) -> Scheduled {
        // The same break again (splicers repeat their cues, before and even
        // after the splice): one break per id.
        let known = self.active.as_ref().is_some_and(|b| b.id == cue.id)
            || self.done.iter().any(|b| b.id == cue.id)
            || self.pending.iter().any(|p| p.id == cue.id);
        // One break at a time: a start during a break counts only at or after
        // its end (back-to-back avails).
        let busy = self.pending.iter().any(|p| p.out)
            || self.active.as_ref().is_some_and(|b| {
                self.pending
                    .iter()
                    .find(|p| !p.out && p.id == b.id)
                    .is_some_and(|end| end.at > at)
            });
        if known || busy {
            return self.ignored();
        }
        let planned = cue.duration_ms.map(|d| d.min(MAX_BREAK_MS));
        let event_id = match cue.event_id {
            Some(id) => id,
            None => self.take_event_id(),
        };
        let section = cue.scte35.clone().unwrap_or_else(|| {
            scte35::write_splice_insert(
                event_id,
                true,
                None,
                planned.map(|d| d * 90),
                planned.is_some(),
            )
        });
        // The break ends when planned, unless an end cue comes first; with
        // neither, after the longest break.
        let end_after = planned.unwrap_or(MAX_BREAK_MS);
        let end = at.saturating_add(rescale(end_after as i64, 1000, timescale));
        self.pending.push(Pending {
            id: cue.id.clone(),
            out: true,
            at,
            planned_ms: planned,
            section: Some(section),
            event_id,
            ended_at: None,
        });
        self.pending.push(Pending {
            id: cue.id,
            out: false,
            at: end,
            planned_ms: None,
            section: None,
            event_id,
            ended_at: None,
        });
        Scheduled {
            accepted: true,
            cuts: vec![at, end],
            cancelled: Vec::new(),
        }
    }

    fn schedule_end(&mut self, cue: SpliceCue, at: i64) -> Scheduled {
        // An end: of the break in progress, or of one about to start.
        let open = self
            .active
            .as_ref()
            .map(|b| b.id.clone())
            .or_else(|| self.pending.iter().find(|p| p.out).map(|p| p.id.clone()));
        let Some(id) = open else {
            return self.ignored();
        };
        if self.active.is_none() && cue.scte35.is_none() {
            // "End the break" before it began: it is called off.
            return self.call_off(|p| p.id == id);
        }
        let Some(end) = self.pending.iter_mut().find(|p| !p.out && p.id == id) else {
            return self.ignored();
        };
        if end.section.is_some() {
            // Ended by a cue already (SCTE-35 encoders repeat theirs).
            self.stats.ignored += 1;
            return Scheduled::default();
        }
        let planned = end.at;
        end.at = planned.min(at);
        end.section = Some(cue.scte35.unwrap_or_default());
        let at = end.at;
        Scheduled {
            accepted: true,
            cuts: vec![at],
            cancelled: if planned != at {
                vec![planned]
            } else {
                Vec::new()
            },
        }
    }

    fn take_event_id(&mut self) -> u32 {
        let id = self.next_event_id;
        self.next_event_id = self.next_event_id.wrapping_add(1).max(1);
        id
    }

    /// The lead track began segment `msn` at lead tick `start`, at the
    /// segmenter's forced cut `cut` if it made one there (`date`: the
    /// segment's `PROGRAM-DATE-TIME`). Places the breaks that start or end
    /// here; every rendition then writes [`Breaks::mark`]`(msn)` before its
    /// segment `msn`.
    pub fn segment_started(
        &mut self,
        msn: u64,
        start: i64,
        cut: Option<i64>,
        date: Option<UnixMillis>,
        timescale: u32,
    ) {
        // Cues are due where the segmenter honoured their cut: it compares
        // presentation times; a segment's start is its first frame's decode
        // time.
        let due = |p: &Pending| p.at == i64::MIN || cut.is_some_and(|c| p.at <= c);
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
                    None => scte35::write_splice_insert(b.event_id, false, None, None, false),
                };
                let end = p.ended_at.unwrap_or(start);
                b.end = Some(end);
                b.in_section = Some(in_section.clone());
                match self.style {
                    AdMarkers::DateRange => {
                        if let Some(d) = b.start_date {
                            let mut a = AttributeList::default();
                            a.push_quoted("ID", &b.id);
                            a.push_quoted("START-DATE", &d.to_string());
                            a.push_bare("DURATION", &fmt_secs(secs((end - b.start).max(0))));
                            a.push_bare("SCTE35-IN", &hex(&in_section));
                            mark.date_ranges.push(a);
                        }
                    }
                    AdMarkers::CueOut => mark.tags.push("EXT-X-CUE-IN".into()),
                }
                if !b.stale {
                    self.done.push_back(b);
                }
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
                    event_id: p.event_id,
                    stale: false,
                };
                self.stats.breaks += 1;
                match self.style {
                    // START-DATE is required: without a date anchor (no
                    // frame has arrived with a clock yet) the break is
                    // placed but not marked.
                    AdMarkers::DateRange => {
                        if let Some(d) = date {
                            let mut a = AttributeList::default();
                            a.push_quoted("ID", &b.id);
                            a.push_quoted("START-DATE", &d.to_string());
                            if let Some(ms) = b.planned_ms {
                                a.push_bare("PLANNED-DURATION", &fmt_secs(ms as f64 / 1000.0));
                            }
                            a.push_bare("SCTE35-OUT", &hex(&b.out_section));
                            mark.date_ranges.push(a);
                        }
                    }
                    AdMarkers::CueOut => mark.tags.push(match b.planned_ms {
                        Some(ms) => {
                            format!("EXT-X-CUE-OUT:DURATION={}", fmt_secs(ms as f64 / 1000.0))
                        }
                        None => "EXT-X-CUE-OUT".into(),
                    }),
                }
                self.active = Some(b);
            }
        } else if let (Some(b), AdMarkers::CueOut) = (&self.active, self.style) {
            if b.msn != msn {
                let elapsed = fmt_secs(secs((start - b.start).max(0)));
                mark.tags.push(match b.planned_ms {
                    Some(ms) => format!(
                        "EXT-X-CUE-OUT-CONT:ElapsedTime={elapsed},Duration={}",
                        fmt_secs(ms as f64 / 1000.0)
                    ),
                    None => format!("EXT-X-CUE-OUT-CONT:ElapsedTime={elapsed}"),
                });
            }
        }
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
        self.done
            .iter()
            .chain(self.active.iter().filter(|b| !b.stale))
    }

    /// The timeline ends at lead tick `last_end` (its last segment's end):
    /// cues not yet placed are dropped. A break in progress ends there: at
    /// the end of the stream (`finishing`) it stays open in the playlists
    /// (no segment follows for its end marker) and its end is kept for the
    /// MPD; at a discontinuity its end marker goes on the next timeline's
    /// first segment, with the duration measured on the old clock, and the
    /// old timeline's breaks leave the MPD.
    pub fn end_timeline(&mut self, last_end: Option<i64>, finishing: bool) {
        self.pending.clear();
        if finishing {
            if let Some(mut b) = self.active.take() {
                b.end = last_end;
                self.done.push_back(b);
            }
            return;
        }
        self.done.clear();
        if let Some(b) = &mut self.active {
            b.stale = true;
            self.pending.push(Pending {
                id: b.id.clone(),
                out: false,
                at: i64::MIN,
                planned_ms: None,
                section: None,
                event_id: b.event_id,
                ended_at: last_end,
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

    fn api(id: &str, ms: u64) -> SpliceCue {
        SpliceCue::start(id, CueAt::Now, ms)
    }

    /// The lead began segment `msn` at `start`, at a cut the segmenter made
    /// for every cue due by then.
    fn seg(b: &mut Breaks, msn: u64, start: i64) {
        let due = b.pending.iter().map(|p| p.at).filter(|a| *a <= start).max();
        b.segment_started(msn, start, due, Some(UnixMillis(start as u64 / 90)), TS);
    }

    fn hex_of(section: &[u8]) -> String {
        hex(section)
    }

    #[test]
    fn a_break_starts_and_ends_on_segment_boundaries_with_one_event_id() {
        let mut b = Breaks::new(AdMarkers::DateRange);
        let s = b.schedule(api("b1", 4000), 180_000, TS);
        assert_eq!(s.cuts, vec![180_000, 180_000 + 360_000]);
        // A segment before the splice point carries nothing.
        seg(&mut b, 1, 90_000);
        assert!(b.mark(1).is_none());
        seg(&mut b, 2, 180_000);
        let m = b.mark(2).unwrap().date_ranges[0].to_string();
        assert!(m.starts_with("ID=\"b1\",START-DATE=\"1970-01-01T00:00:02.000Z\",PLANNED-DURATION=4,SCTE35-OUT=0xFC"), "{m}");
        assert!(b.in_break());
        seg(&mut b, 3, 360_000);
        assert!(b.mark(3).is_none());
        seg(&mut b, 4, 540_000);
        let m = b.mark(4).unwrap().date_ranges[0].to_string();
        assert!(
            m.starts_with(
                "ID=\"b1\",START-DATE=\"1970-01-01T00:00:02.000Z\",DURATION=4,SCTE35-IN=0xFC"
            ),
            "{m}"
        );
        assert!(!b.in_break());
        // The IN Brook wrote carries the OUT's splice_event_id.
        let placed: Vec<&Break> = b.placed().collect();
        let id = |s: &Bytes| match scte35::parse(s).unwrap().cue() {
            Some(Cue::Out { event_id, .. } | Cue::In { event_id, .. }) => event_id,
            None => panic!(),
        };
        assert_eq!(
            id(&placed[0].out_section),
            id(placed[0].in_section.as_ref().unwrap())
        );
    }

    #[test]
    fn a_cue_is_due_where_the_segmenter_cut_for_it_not_by_decode_time() {
        // B-frames: the keyframe presented at the splice (180 000) is decoded
        // 6 000 ticks earlier; the segment starts at its decode time.
        let mut b = Breaks::new(AdMarkers::DateRange);
        b.schedule(api("b", 2000), 180_000, TS);
        b.segment_started(2, 174_000, Some(180_000), Some(UnixMillis(1_934)), TS);
        assert!(b.mark(2).is_some());
        // A natural cut just before it is not the break's.
        let mut b = Breaks::new(AdMarkers::DateRange);
        b.schedule(api("b", 2000), 180_000, TS);
        b.segment_started(2, 179_000, None, Some(UnixMillis(1_989)), TS);
        assert!(b.mark(2).is_none());
    }

    #[test]
    fn repeats_stray_ends_and_starts_during_a_break_change_nothing() {
        let mut b = Breaks::new(AdMarkers::DateRange);
        assert!(!b.schedule(SpliceCue::end(CueAt::Now), 0, TS).accepted);
        assert!(b.schedule(api("b", 1000), 0, TS).accepted);
        assert!(!b.schedule(api("b", 1000), 10, TS).accepted);
        assert!(!b.schedule(api("c", 1000), 10, TS).accepted);
        seg(&mut b, 0, 0);
        // During the break, before its end: ignored; at its end: back to back.
        assert!(!b.schedule(api("d", 1000), 45_000, TS).accepted);
        assert!(b.schedule(api("e", 1000), 90_000, TS).accepted);
        seg(&mut b, 1, 90_000);
        let m = b.mark(1).unwrap();
        assert_eq!(m.date_ranges.len(), 2, "{m:?}");
        assert!(m.date_ranges[0].to_string().contains("ID=\"b\""));
        assert!(m.date_ranges[1].to_string().contains("ID=\"e\""));
        // A repeat of an id already used is not a second break.
        seg(&mut b, 2, 180_000);
        assert!(!b.schedule(api("b", 1000), 200_000, TS).accepted);
        assert_eq!(b.stats().ignored, 5);
    }

    #[test]
    fn an_early_end_cuts_the_break_short_and_cue_out_style_counts_elapsed_time() {
        let mut b = Breaks::new(AdMarkers::CueOut);
        b.schedule(api("b", 30_000), 0, TS);
        seg(&mut b, 5, 0);
        assert_eq!(b.mark(5).unwrap().tags, vec!["EXT-X-CUE-OUT:DURATION=30"]);
        seg(&mut b, 6, 180_000);
        assert_eq!(
            b.mark(6).unwrap().tags,
            vec!["EXT-X-CUE-OUT-CONT:ElapsedTime=2,Duration=30"]
        );
        let section = scte35::write_splice_insert(9, false, None, None, false);
        let end = SpliceCue {
            scte35: Some(section),
            ..SpliceCue::end(CueAt::Now)
        };
        let s = b.schedule(end, 270_000, TS);
        assert_eq!(s.cuts, vec![270_000]);
        assert_eq!(
            s.cancelled,
            vec![30 * 90_000],
            "the planned end's cut is withdrawn"
        );
        seg(&mut b, 7, 270_000);
        assert_eq!(b.mark(7).unwrap().tags, vec!["EXT-X-CUE-IN"]);
        assert!(!b.in_break());
        // Without a planned duration the markers say so.
        let mut b = Breaks::new(AdMarkers::CueOut);
        let mut open = api("o", 0);
        open.duration_ms = None;
        b.schedule(open, 0, TS);
        seg(&mut b, 1, 0);
        seg(&mut b, 2, 90_000);
        assert_eq!(b.mark(1).unwrap().tags, vec!["EXT-X-CUE-OUT"]);
        assert_eq!(
            b.mark(2).unwrap().tags,
            vec!["EXT-X-CUE-OUT-CONT:ElapsedTime=1"]
        );
    }

    #[test]
    fn a_cancel_or_an_api_end_before_the_start_calls_the_break_off() {
        let mut b = Breaks::new(AdMarkers::DateRange);
        let raw = scte35::write_splice_insert(7, true, Some(900_000), Some(90_000), true);
        let info = scte35::parse(&raw).unwrap();
        let cue = SpliceCue::from_section(&info, &raw, |p| p as i64).unwrap();
        assert!(b.schedule(cue, 900_000, TS).accepted);
        let mut cancel = raw.to_vec();
        cancel[18] |= 0x80; // splice_event_cancel_indicator
        let n = cancel.len();
        let crc = crate::ts::psi::crc32_mpeg2(&cancel[..n - 4]);
        cancel[n - 4..].copy_from_slice(&crc.to_be_bytes());
        let info = scte35::parse(&cancel).unwrap();
        let cue = SpliceCue::from_section(&info, &cancel, |p| p as i64).unwrap();
        assert!(cue.cancel);
        let s = b.schedule(cue, 0, TS);
        assert_eq!(s.cancelled, vec![900_000, 990_000]);
        seg(&mut b, 10, 900_000);
        assert!(b.mark(10).is_none());

        let mut b = Breaks::new(AdMarkers::DateRange);
        b.schedule(api("x", 4000), 900_000, TS);
        let s = b.schedule(SpliceCue::end(CueAt::Now), 100, TS);
        assert!(s.accepted);
        assert_eq!(s.cancelled.len(), 2);
        assert_eq!(b.stats().breaks, 0);
    }

    #[test]
    fn a_break_across_a_timeline_change_ends_on_the_new_one_measured_on_the_old_clock() {
        let mut b = Breaks::new(AdMarkers::DateRange);
        b.schedule(api("b", 30_000), 900_000, TS);
        seg(&mut b, 10, 900_000);
        b.end_timeline(Some(1_080_000), false);
        // The new timeline's clock restarted near zero.
        b.segment_started(12, 3_000, None, Some(UnixMillis(99_000)), TS);
        let m = b.mark(12).unwrap().date_ranges[0].to_string();
        assert!(m.contains("DURATION=2,"), "{m}");
        assert_eq!(b.placed().count(), 0, "old-clock breaks leave the MPD");
        // At the end of the stream the open break is kept, with its end.
        let mut b = Breaks::new(AdMarkers::DateRange);
        b.schedule(api("b", 30_000), 0, TS);
        seg(&mut b, 0, 0);
        b.end_timeline(Some(180_000), true);
        assert_eq!(b.placed().next().unwrap().end, Some(180_000));
    }

    #[test]
    fn a_section_becomes_a_cue_on_the_frames_timeline() {
        let raw = scte35::write_splice_insert(42, true, Some(1000), Some(900_000), true);
        let info = scte35::parse(&raw).unwrap();
        let cue = SpliceCue::from_section(&info, &raw, |p| p as i64 + (1 << 33)).unwrap();
        assert_eq!(cue.id, "splice-42");
        assert!(cue.out && !cue.cancel);
        assert_eq!(cue.event_id, Some(42));
        assert_eq!(cue.at, CueAt::Pts(1000 + (1 << 33)));
        assert_eq!(cue.duration_ms, Some(10_000));
        assert!(hex_of(&raw).starts_with("0xFC"));
    }
}
