//! Cuts timed frames into LL-HLS parts and segments, one CMAF track per output:
//! every track gets its own parts and segments (what CMAF, DASH and Apple's HLS
//! authoring rules want), on boundaries the lead track decides, and every part is
//! written as a series of CMAF chunks (`moof`+`mdat`) as its frames arrive, so it
//! can be delivered while it is being made.
//!
//! The lead track (video if there is one) decides the cuts, whatever the input
//! does:
//!
//! - A segment starts on a keyframe once the current one has reached the segment
//!   target. One that reaches `max_segment_ms` without a keyframe is cut anyway:
//!   the next segment starts on a frame that is not a keyframe (its first part is
//!   not `INDEPENDENT`), and the next keyframe ends that run of segments whatever
//!   their length, so keyframes start segments again. No segment is ever longer
//!   than `max_segment_ms`, which is what `TARGETDURATION` is made of.
//! - A part ends as soon as adding one more frame would overrun the part target,
//!   and no part is ever longer than `PART-TARGET`, even when frames are missing:
//!   a frame's duration is the distance to the next one, so the frame before a
//!   gap (lost packets) would cover the gap. Such a frame is shortened to what
//!   its part can still take; the rest of the gap becomes the start of the next
//!   part (its first frame's `tfdt` carries it), and a whole part target or more
//!   of it becomes `GAP=YES` parts. Parts are thus contiguous in playlist time:
//!   their durations add up to the segment's, and segments follow one another.
//!
//! Other tracks (audio) close the same part once they have media past its end, or
//! once they lag the lead by more than `max_track_lag` (a silent track then gets
//! a gap part, so it can never stall the others); media that comes after its part
//! was closed is dropped, and so is media that would make a part longer than the
//! track's part target ([`part_target_ticks`]).
//!
//! Drive it with [`Segmenter::push`] for every frame, then call
//! [`Segmenter::poll`] until it returns `None`; [`Segmenter::flush`] at the end of
//! the stream closes the last part and segment of every track.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::cmaf;
use crate::cmaf::cenc::TrackCrypt;
use crate::media::{CodecConfig, Frame, Sample, TrackInfo, TrackKind};
use crate::time::rescale;

/// Timing targets, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    pub part_target_ms: u32,
    pub segment_target_ms: u32,
    /// Longest segment: one that reaches it without a keyframe is cut there, and
    /// the next one starts without a keyframe. Taken as at least
    /// `segment_target_ms` (see [`SegmenterConfig::max_segment`]).
    pub max_segment_ms: u32,
    /// How long (in lead-track media time) to wait for a lagging track before its
    /// part is closed without the missing media.
    pub max_track_lag_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            part_target_ms: 200,
            segment_target_ms: 2000,
            max_segment_ms: 4000,
            max_track_lag_ms: 1000,
        }
    }
}

impl SegmenterConfig {
    /// The longest segment made, ms: `max_segment_ms`, but never less than the
    /// segment target or the part target.
    pub fn max_segment(&self) -> u32 {
        self.max_segment_ms
            .max(self.segment_target_ms)
            .max(self.part_target_ms)
            .max(1)
    }

    /// `EXT-X-TARGETDURATION` for the playlist's life: the longest segment, in
    /// whole seconds rounded up. No video segment is longer; an audio segment
    /// ends within an audio frame of the video's cut, within the RFC's rounding.
    pub fn target_duration(&self) -> u32 {
        self.max_segment().div_ceil(1000)
    }
}

/// The part target of `track` in its own ticks: the part target itself for video;
/// for audio, rounded up to whole frames (a part holds the frames that start within
/// the lead's part, up to ceil(target / frame) of them). Opus is taken to come in
/// 20 ms frames, as WebRTC sends it. This is the `PART-TARGET` of the track's
/// playlist, and no part of the track is ever longer.
pub fn part_target_ticks(track: &TrackInfo, part_target_ms: u32) -> i64 {
    let timescale = track.timescale.max(1);
    let target = rescale(i64::from(part_target_ms), 1000, timescale).max(1);
    let frame = match &track.codec {
        CodecConfig::Aac(c) => rescale(1024, c.sample_rate.max(1), timescale),
        CodecConfig::Opus(_) => rescale(20, 1000, timescale),
        CodecConfig::Avc(_) | CodecConfig::Hevc(_) => return target,
    };
    if frame <= 0 {
        return target;
    }
    (target + frame - 1) / frame * frame
}

/// Every track's part target in its own ticks: the lead's is
/// [`part_target_ticks`]; another track's parts span the lead's, so its target
/// covers the lead's too (an AAC lead's 0.2133 s parts under an Opus track's
/// 20 ms frames give that track 0.22 s), in its own whole frames.
pub fn track_part_targets(tracks: &[TrackInfo], part_target_ms: u32) -> Vec<i64> {
    let lead = tracks
        .iter()
        .position(|t| t.kind() == TrackKind::Video)
        .unwrap_or(0);
    let Some(lead_info) = tracks.get(lead) else {
        return Vec::new();
    };
    let lead_ticks = part_target_ticks(lead_info, part_target_ms);
    let lead_ms = rescale(lead_ticks, lead_info.timescale.max(1), 1000).max(1);
    let lead_ms = if rescale(lead_ms, 1000, lead_info.timescale.max(1)) < lead_ticks {
        lead_ms + 1
    } else {
        lead_ms
    };
    let follower_ms = u32::try_from(lead_ms)
        .unwrap_or(u32::MAX)
        .max(part_target_ms);
    tracks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i == lead {
                lead_ticks
            } else {
                part_target_ticks(t, follower_ms)
            }
        })
        .collect()
}

/// Non-lead samples gathered before a chunk is written (about 100 ms of AAC).
const CHUNK_SAMPLES: usize = 5;

/// A CMAF chunk of a part in progress: append it to what was sent of that part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkOut {
    pub track: usize,
    pub msn: u64,
    pub index: u32,
    pub data: Bytes,
}

/// A complete part of one track: its chunks, concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOut {
    pub track: usize,
    pub msn: u64,
    pub index: u32,
    /// Start and duration in the track's ticks. The lead's parts are contiguous:
    /// a part may start before its first frame (after frames went missing).
    pub start: i64,
    pub duration: i64,
    /// Starts with a sync sample.
    pub independent: bool,
    /// The track had no media for this part (`GAP=YES`); `data` is empty.
    pub gap: bool,
    /// The next part of this track will most likely start a new segment (for the
    /// preload hint; the segmenter only knows for sure once the next frame came).
    pub next_starts_segment: bool,
    /// On the lead's first part of a segment that starts at a forced cut
    /// ([`Segmenter::cut_at`]): the latest cut point it honours.
    pub cut: Option<i64>,
    pub data: Bytes,
}

/// A complete segment of one track: its parts, concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOut {
    pub track: usize,
    pub msn: u64,
    pub start: i64,
    pub duration: i64,
    /// Every part of the segment was a gap.
    pub gap: bool,
    /// Length in bytes of the segment's first CMAF chunk (`moof`+`mdat` at
    /// offset 0) when that chunk holds a single keyframe and nothing else:
    /// the byte range of an I-frame playlist entry. `None` when the segment
    /// starts without a keyframe (or is a gap, or is not video).
    pub keyframe_chunk: Option<u64>,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmenterOutput {
    Chunk(ChunkOut),
    Part(PartOut),
    Segment(SegmentOut),
}

/// What the segmenter did to keep its bounds, counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmenterStats {
    /// Lead segments whose first frame is not a keyframe: cut at the longest
    /// segment because no keyframe came.
    pub segments_without_keyframe: u64,
    /// Segments of other video tracks (a ladder's encoded rungs) whose first
    /// frame is not a keyframe: an encoder that did not key where the lead did.
    pub follower_segments_without_keyframe: u64,
    /// Video frames shortened to what their part could still take (each leaves
    /// a timestamp gap before the next frame).
    pub frames_shortened: u64,
    /// Frames of other tracks dropped: they came after their part was closed, or
    /// (audio) the part had no room left for them.
    pub frames_dropped: u64,
}

impl SegmenterStats {
    /// Adds `other`'s counts (the stats of an earlier timeline).
    pub fn add(&mut self, other: SegmenterStats) {
        self.segments_without_keyframe += other.segments_without_keyframe;
        self.follower_segments_without_keyframe += other.follower_segments_without_keyframe;
        self.frames_shortened += other.frames_shortened;
        self.frames_dropped += other.frames_dropped;
    }
}

/// Follower samples waiting for the lead at most (~40 s of 48 kHz AAC).
const MAX_WAITING: usize = 2000;

/// A part boundary the lead decided, waiting for a track to reach it.
#[derive(Debug, Clone, Copy)]
struct Boundary {
    /// Start and end of the part, in lead ticks.
    start: i64,
    end: i64,
    closes_segment: bool,
}

#[derive(Debug, Default)]
struct Track {
    /// A frame waiting for the next one to know its duration.
    held: Option<Frame>,
    last_duration: u32,
    /// End of the latest timed sample, in lead ticks.
    end: Option<i64>,
    msn: u64,
    index: u32,
    /// Samples of the current part not yet written as a chunk.
    pending: Vec<Sample>,
    chunks: Vec<Bytes>,
    /// The current part has a sample.
    part_open: bool,
    /// Its samples' durations, summed.
    part_duration: i64,
    part_independent: bool,
    /// Non-lead tracks: boundaries of parts the lead closed, oldest first.
    boundaries: VecDeque<Boundary>,
    /// Non-lead tracks: end (lead ticks) of the last part closed; media starting
    /// before it came too late for its part.
    closed_until: Option<i64>,
    /// Non-lead tracks: samples ahead of the lead, held until the lead decides
    /// which part they belong to.
    waiting: VecDeque<Sample>,
    segment_parts: Vec<Bytes>,
    /// Samples written in the current segment (part of `cenc` sample IVs).
    segment_samples: u32,
    segment_start: Option<i64>,
    segment_duration: i64,
    segment_has_media: bool,
    /// The current segment's first chunk, when it is a lone keyframe: its length.
    segment_keyframe_chunk: Option<u64>,
}

#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    infos: Vec<TrackInfo>,
    lead: usize,
    tracks: Vec<Track>,
    /// Each track's part target in its ticks ([`part_target_ticks`]).
    part_targets: Vec<i64>,
    /// Lead-track time of the start of the first part: earlier media is dropped.
    origin: Option<i64>,
    /// Lead ticks where the current segment started.
    segment_start: Option<i64>,
    /// Whether the current segment's first frame is a keyframe, once it has one.
    segment_first_keyframe: Option<bool>,
    /// Lead ticks where the current lead part starts: where the previous one ended.
    lead_part_start: i64,
    /// Lead ticks where the media of the open lead part ends (while it has media).
    lead_media_end: i64,
    /// The interval between the last two lead frames.
    lead_interval: Option<i64>,
    /// DTS of the latest lead keyframe and the interval before it: where the next
    /// one is expected (for the preload hint).
    last_keyframe: Option<i64>,
    keyframe_interval: Option<i64>,
    /// Prediction made when the lead last closed a part: its next part starts a
    /// new segment.
    lead_next_starts_segment: bool,
    sequence: u32,
    stats: SegmenterStats,
    out: VecDeque<SegmenterOutput>,
    /// Per track: its Common Encryption, if encrypted.
    crypts: Vec<Option<TrackCrypt>>,
    /// Lead presentation times (ticks) where a segment must start: at the
    /// first keyframe at or after each ([`Segmenter::cut_at`]).
    cuts: VecDeque<i64>,
    /// The latest cut the lead segment being made started for, until its
    /// first part is out.
    segment_cut: Option<i64>,
}

impl Segmenter {
    /// `tracks` must not be empty; the lead is the first video track, else track 0.
    pub fn new(config: SegmenterConfig, tracks: Vec<TrackInfo>, first_msn: u64) -> Self {
        let lead = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .unwrap_or(0);
        let state = (0..tracks.len())
            .map(|_| Track {
                msn: first_msn,
                ..Track::default()
            })
            .collect();
        let part_targets = track_part_targets(&tracks, config.part_target_ms);
        Self {
            config,
            infos: tracks,
            lead,
            tracks: state,
            part_targets,
            origin: None,
            segment_start: None,
            segment_first_keyframe: None,
            lead_part_start: 0,
            lead_media_end: 0,
            lead_interval: None,
            last_keyframe: None,
            keyframe_interval: None,
            lead_next_starts_segment: false,
            sequence: 1,
            stats: SegmenterStats::default(),
            out: VecDeque::new(),
            crypts: Vec::new(),
            cuts: VecDeque::new(),
            segment_cut: None,
        }
    }

    /// Starts a segment at the first lead keyframe presented at or after `at`
    /// (lead ticks; within half a frame), whatever the segment target says:
    /// an ad break's splice point.
    pub fn cut_at(&mut self, at: i64) {
        let i = self.cuts.partition_point(|c| *c <= at);
        if self.cuts.get(i) != Some(&at) && (i == 0 || self.cuts[i - 1] != at) {
            self.cuts.insert(i, at);
        }
    }

    /// A forced cut is due at lead keyframe `s`.
    fn cut_due(&self, s: &Sample) -> bool {
        let pts = s.dts + i64::from(s.cts_offset) + i64::from(s.duration / 2);
        s.keyframe && self.cuts.front().is_some_and(|c| *c <= pts)
    }

    /// Removes a cut asked for earlier (a break that was called off or
    /// ended early); one already made stays.
    pub fn cancel_cut(&mut self, at: i64) {
        self.cuts.retain(|c| *c != at);
    }

    /// Lead keyframe `s` starts a segment: the cuts it honours are done.
    fn pop_due_cuts(&mut self, s: &Sample) {
        let pts = s.dts + i64::from(s.cts_offset) + i64::from(s.duration / 2);
        while let Some(c) = self.cuts.front().copied().filter(|c| *c <= pts) {
            self.cuts.pop_front();
            self.segment_cut = Some(c);
        }
    }

    /// Encrypts track `i`'s samples with `crypts[i]` (where present) from the
    /// next chunk on; call before the first [`Segmenter::push`].
    pub fn set_encryption(&mut self, crypts: Vec<Option<TrackCrypt>>) {
        self.crypts = crypts;
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.infos
    }

    pub fn lead(&self) -> usize {
        self.lead
    }

    pub fn lead_timescale(&self) -> u32 {
        self.infos.get(self.lead).map_or(90_000, |t| t.timescale)
    }

    pub fn stats(&self) -> SegmenterStats {
        self.stats
    }

    fn ms_to_lead(&self, ms: u32) -> i64 {
        rescale(i64::from(ms), 1000, self.lead_timescale())
    }

    fn to_lead(&self, track: usize, ticks: i64) -> i64 {
        let ts = self.infos.get(track).map_or(1, |t| t.timescale);
        rescale(ticks, ts, self.lead_timescale())
    }

    fn lead_part_target(&self) -> i64 {
        self.part_targets
            .get(self.lead)
            .copied()
            .unwrap_or(1)
            .max(1)
    }

    fn max_segment(&self) -> i64 {
        self.ms_to_lead(self.config.max_segment())
            .max(self.lead_part_target())
    }

    /// Adds one frame. Frames of a track must come in decoding order.
    pub fn push(&mut self, frame: Frame) {
        let t = frame.track;
        if t >= self.infos.len() {
            return;
        }
        match frame.duration {
            Some(d) => self.on_timed(t, frame, d),
            None => {
                if let Some(prev) = self.tracks[t].held.take() {
                    let d = self.settle_duration(t, frame.dts - prev.dts);
                    self.on_timed(t, prev, d);
                }
                self.tracks[t].held = Some(frame);
            }
        }
        self.enforce_lag();
    }

    /// Ends the stream: writes what is buffered as the last part and segment of
    /// every track.
    pub fn flush(&mut self) {
        for t in 0..self.infos.len() {
            if let Some(prev) = self.tracks[t].held.take() {
                let d = self.settle_duration(t, 0);
                self.on_timed(t, prev, d);
            }
        }
        if self.segment_start.is_some() {
            if self.lead_has_media() {
                let (start, end) = (self.lead_part_start, self.lead_media_end);
                self.close_lead_part(start, end, true);
            } else {
                self.close_segment_between_parts();
            }
            self.segment_start = None;
        }
        for t in 0..self.infos.len() {
            if t != self.lead {
                self.release(t);
                while !self.tracks[t].boundaries.is_empty() {
                    self.close_follower_part(t);
                }
                self.tracks[t].waiting.clear(); // after the last video frame
            }
        }
    }

    pub fn poll(&mut self) -> Option<SegmenterOutput> {
        self.out.pop_front()
    }

    /// A frame's duration is the distance to the next DTS; when that is missing or
    /// implausible (a timestamp jump), reuse the previous duration.
    fn settle_duration(&mut self, t: usize, delta: i64) -> u32 {
        let timescale = i64::from(self.infos[t].timescale);
        let track = &mut self.tracks[t];
        let d = if delta > 0 && delta <= 10 * timescale {
            delta as u32
        } else if track.last_duration > 0 {
            track.last_duration
        } else {
            (timescale / 30).max(1) as u32
        };
        track.last_duration = d;
        d
    }

    fn on_timed(&mut self, t: usize, frame: Frame, duration: u32) {
        let sample = Sample {
            dts: frame.dts,
            duration,
            cts_offset: (frame.pts - frame.dts).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                as i32,
            keyframe: frame.keyframe,
            data: frame.data,
        };
        let end = self.to_lead(t, sample.dts + i64::from(duration));
        let track = &mut self.tracks[t];
        track.end = Some(track.end.map_or(end, |e| e.max(end)));
        if t == self.lead {
            self.on_lead_sample(sample);
            for f in 0..self.infos.len() {
                if f != self.lead {
                    self.release(f);
                }
            }
        } else {
            self.on_follower_sample(t, sample);
        }
    }

    fn lead_has_media(&self) -> bool {
        !self.tracks[self.lead].chunks.is_empty()
    }

    /// The lead sample's way into a part: first the gap before it (if frames went
    /// missing), then the segment cut it may call for, then the part.
    fn on_lead_sample(&mut self, s: Sample) {
        if self.segment_start.is_none() {
            if !s.keyframe {
                return; // wait for the first keyframe
            }
            self.origin.get_or_insert(s.dts);
            self.pop_due_cuts(&s);
            let at = s.dts;
            self.begin_segment(at);
            self.place_lead_sample(s, at);
            return;
        }
        // Nothing goes before what is already placed (misordered input).
        let placed = if self.lead_has_media() {
            self.lead_media_end
        } else {
            self.lead_part_start
        };
        let at = s.dts.max(placed);
        self.fill_lead_gap(at);
        self.cut_segment_before(&s, at);
        if s.keyframe {
            self.pop_due_cuts(&s);
        }
        self.place_lead_sample(s, at);
    }

    /// Frames missing before `at`: a part target or more of lead time without
    /// media. The open part ends with its media, and the gap becomes `GAP=YES`
    /// parts until less than a part target of it is left (the next part starts
    /// with that).
    fn fill_lead_gap(&mut self, at: i64) {
        let part_target = self.lead_part_target();
        if at - self.lead_part_start < part_target {
            return;
        }
        if self.lead_has_media() {
            let (start, end) = (self.lead_part_start, self.lead_media_end);
            self.close_lead_part(start, end, false);
        }
        while at - self.lead_part_start >= part_target {
            let seg_start = self.segment_start.unwrap_or(self.lead_part_start);
            let seg_end = seg_start + self.max_segment();
            if self.lead_part_start >= seg_end {
                self.end_lead_segment();
                continue;
            }
            let start = self.lead_part_start;
            self.close_lead_part(start, (start + part_target).min(seg_end), false);
        }
    }

    /// Ends the current segment before sample `s` (placed at `at`) when `s` is a
    /// keyframe past the segment target (or the first keyframe after segments cut
    /// without one), or when `s` would take the segment past its longest.
    fn cut_segment_before(&mut self, s: &Sample, at: i64) {
        let Some(seg_start) = self.segment_start else {
            return;
        };
        let empty = !self.lead_has_media() && self.tracks[self.lead].segment_duration == 0;
        if empty {
            return;
        }
        let duration = i64::from(s.duration);
        let room = self.lead_part_target() - (at - self.lead_part_start);
        let seg_target = self.ms_to_lead(self.config.segment_target_ms);
        let on_keyframe = s.keyframe
            && (at - seg_start + duration / 2 >= seg_target
                || self.segment_first_keyframe == Some(false)
                || self.cut_due(s));
        let too_long = at + duration.min(room) - seg_start > self.max_segment();
        if !on_keyframe && !too_long {
            return;
        }
        if self.lead_has_media() {
            // The segment ends with its media; a gap before `s` starts the next.
            let (start, end) = (self.lead_part_start, self.lead_media_end);
            self.close_lead_part(start, end, true);
            self.begin_segment(end);
        } else {
            self.end_lead_segment();
        }
    }

    /// Adds lead sample `s` at `at` to the open part (which ends before `at` plus
    /// a part target), shortened if it would overrun the part target.
    fn place_lead_sample(&mut self, mut s: Sample, at: i64) {
        let part_target = self.lead_part_target();
        let room = (part_target - (at - self.lead_part_start)).max(1);
        let interval = i64::from(s.duration);
        if self.segment_first_keyframe.is_none() {
            self.segment_first_keyframe = Some(s.keyframe);
            if !s.keyframe {
                self.stats.segments_without_keyframe += 1;
            }
        }
        if s.keyframe {
            if let Some(last) = self.last_keyframe {
                self.keyframe_interval = Some(s.dts - last).filter(|i| *i > 0);
            }
            self.last_keyframe = Some(s.dts);
        }
        if interval > room {
            // The frame before a gap: it lasts until its part ends, the next
            // frame's tfdt carries the rest of the gap.
            s.duration = room as u32;
            self.stats.frames_shortened += 1;
        }
        let end = at + i64::from(s.duration);
        self.lead_media_end = end;
        let lead = self.lead;
        self.add_to_part(lead, s, true);
        // Close the part as soon as one more frame would overrun it. The next
        // interval is taken as the shorter of the last two: the one before a gap
        // is not the frame rate, and a part closed early for it would be shorter
        // than the RFC allows (85 % of the target).
        let next = self.lead_interval.map_or(interval, |i| i.min(interval));
        self.lead_interval = Some(interval);
        if end - self.lead_part_start + next > part_target {
            let start = self.lead_part_start;
            self.close_lead_part(start, end, false);
        }
    }

    /// Starts a lead segment at `start` (lead ticks): its parts start there.
    fn begin_segment(&mut self, start: i64) {
        self.segment_start = Some(start);
        self.segment_first_keyframe = None;
        self.lead_part_start = start;
        let lead = self.lead;
        self.tracks[lead].segment_start = Some(start);
    }

    /// Ends the lead segment between parts (its last part is closed already).
    fn end_lead_segment(&mut self) {
        self.close_segment_between_parts();
        let start = self.lead_part_start;
        self.begin_segment(start);
    }

    /// The lead closes its open part as `[start, end)` (lead ticks; a gap part if
    /// it has no media); followers will close theirs at the same boundary. A
    /// segment that reaches its longest ends with it.
    fn close_lead_part(&mut self, start: i64, end: i64, closes_segment: bool) {
        let lead = self.lead;
        let seg_start = self.segment_start.unwrap_or(start);
        let full = end - seg_start >= self.max_segment();
        let closes_segment = closes_segment || full;
        self.lead_next_starts_segment = closes_segment || self.next_starts_segment(end);
        self.finish_part(lead, closes_segment, start, end - start);
        self.lead_part_start = end;
        for t in 0..self.infos.len() {
            if t != lead {
                self.tracks[t].boundaries.push_back(Boundary {
                    start,
                    end,
                    closes_segment,
                });
                self.release(t);
            }
        }
        if full {
            self.begin_segment(end);
        }
    }

    /// Whether the lead part after one ending at `end` most likely starts a new
    /// segment: the next frame cannot fit in this one, or a keyframe is due (at
    /// the interval of the last two; at the segment target while that is unknown).
    fn next_starts_segment(&self, end: i64) -> bool {
        let Some(seg_start) = self.segment_start else {
            return false;
        };
        let frame = i64::from(self.tracks[self.lead].last_duration);
        if end - seg_start + frame.max(1) > self.max_segment() {
            return true;
        }
        let keyframe_due = match (self.last_keyframe, self.keyframe_interval) {
            (Some(k), Some(i)) => k + i <= end + frame / 2,
            _ => true,
        };
        let seg_target = self.ms_to_lead(self.config.segment_target_ms);
        keyframe_due
            && (end - seg_start + frame / 2 >= seg_target
                || self.segment_first_keyframe == Some(false))
    }

    fn on_follower_sample(&mut self, t: usize, s: Sample) {
        let Some(origin) = self.origin else {
            return; // nothing before the first lead keyframe
        };
        if self.to_lead(t, s.dts + i64::from(s.duration)) <= origin {
            return;
        }
        // A track far ahead of the lead (its clock jumped, the lead's did
        // not) would wait without end: beyond ten longest segments it is
        // dropped, and a hard cap bounds what waits in any case.
        let progress = self.tracks[self.lead].end.unwrap_or(origin);
        let too_far = self.to_lead(t, s.dts) - progress > 10 * self.max_segment();
        if too_far || self.tracks[t].waiting.len() >= MAX_WAITING {
            self.stats.frames_dropped += 1;
            return;
        }
        self.tracks[t].waiting.push_back(s);
        self.release(t);
    }

    /// Moves follower `t`'s waiting samples into parts as far as the lead has
    /// decided: into the part of the oldest pending boundary (closing it once the
    /// track covers its end), or into the open part up to the lead's progress.
    fn release(&mut self, t: usize) {
        let progress = self.tracks[self.lead].end.unwrap_or(i64::MIN);
        while let Some(s) = self.tracks[t].waiting.front() {
            let start = self.to_lead(t, s.dts);
            let end = self.to_lead(t, s.dts + i64::from(s.duration));
            let limit = self.tracks[t].boundaries.front().map(|b| b.end);
            match limit {
                Some(b_end) if start >= b_end => {
                    self.close_follower_part(t);
                    continue;
                }
                Some(_) => {}
                None if start < progress => {}
                None => break, // ahead of the lead: wait for its decision
            }
            if let Some(s) = self.tracks[t].waiting.pop_front() {
                self.add_follower_sample(t, s, start);
            }
            if limit.is_some_and(|b_end| end >= b_end) {
                self.close_follower_part(t);
            }
        }
    }

    /// Adds follower sample `s` (starting at `start`, lead ticks) to its part,
    /// unless its part was closed already (it came late) or it would take the part
    /// past the track's part target: then audio is dropped (an audio frame plays
    /// its whole length) and video shortened (a frame shows until the next one).
    fn add_follower_sample(&mut self, t: usize, mut s: Sample, start: i64) {
        let track = &self.tracks[t];
        if track.closed_until.is_some_and(|c| start < c) {
            self.stats.frames_dropped += 1;
            return;
        }
        let room = self.part_targets[t] - track.part_duration;
        if i64::from(s.duration) > room {
            if room <= 0 || self.infos[t].kind() == TrackKind::Audio {
                self.stats.frames_dropped += 1;
                return;
            }
            s.duration = room as u32;
            self.stats.frames_shortened += 1;
        }
        self.add_to_part(t, s, false);
    }

    /// Adds a sample to track `t`'s current part; writes a chunk when enough is
    /// gathered (every lead sample; a few follower samples).
    fn add_to_part(&mut self, t: usize, s: Sample, immediate: bool) {
        // A video keyframe is a chunk of its own (a follower video track
        // gathers other frames): the byte range an I-frame playlist names.
        let own_chunk = s.keyframe && self.infos[t].kind() == TrackKind::Video;
        if own_chunk {
            self.write_chunk(t);
        }
        let track = &mut self.tracks[t];
        if !track.part_open {
            track.part_open = true;
            track.part_independent = s.keyframe;
            track.part_duration = 0;
        }
        track.part_duration += i64::from(s.duration);
        track.pending.push(s);
        if immediate || own_chunk || track.pending.len() >= CHUNK_SAMPLES {
            self.write_chunk(t);
        }
    }

    fn write_chunk(&mut self, t: usize) {
        let samples = std::mem::take(&mut self.tracks[t].pending);
        if samples.is_empty() {
            return;
        }
        let data = match self.crypts.get(t).and_then(Option::as_ref) {
            Some(crypt) => {
                let track = &self.tracks[t];
                let traf = crypt.prepare(track.msn, track.segment_samples, &samples);
                Bytes::from(cmaf::fragment::write_protected_fragment(
                    self.sequence,
                    &self.infos[t],
                    &samples,
                    &traf,
                ))
            }
            None => Bytes::from(cmaf::write_fragment(
                self.sequence,
                std::slice::from_ref(&self.infos[t]),
                std::slice::from_ref(&samples),
            )),
        };
        let written = samples.len() as u32;
        if self.tracks[t].segment_samples == 0 {
            let lone_keyframe = matches!(samples.as_slice(), [s] if s.keyframe)
                && self.infos[t].kind() == TrackKind::Video;
            self.tracks[t].segment_keyframe_chunk = lone_keyframe.then_some(data.len() as u64);
        }
        self.tracks[t].segment_samples = self.tracks[t].segment_samples.wrapping_add(written);
        self.sequence = self.sequence.wrapping_add(1);
        let track = &mut self.tracks[t];
        track.chunks.push(data.clone());
        self.out.push_back(SegmenterOutput::Chunk(ChunkOut {
            track: t,
            msn: track.msn,
            index: track.index,
            data,
        }));
    }

    /// A segment ends on a part boundary already cut (the last part was full):
    /// the lead closes its segment now, followers at that boundary.
    fn close_segment_between_parts(&mut self) {
        let lead = self.lead;
        if self.tracks[lead].segment_duration == 0 {
            return; // no part yet: nothing to close
        }
        self.finish_segment(lead);
        for t in 0..self.infos.len() {
            if t == lead {
                continue;
            }
            match self.tracks[t].boundaries.back_mut() {
                Some(b) => b.closes_segment = true,
                None => self.finish_segment(t),
            }
        }
    }

    /// Closes follower `t`'s part at its oldest boundary.
    fn close_follower_part(&mut self, t: usize) {
        let Some(b) = self.tracks[t].boundaries.pop_front() else {
            return;
        };
        // The part covers the lead's part, in this track's ticks: whatever frames
        // of it are missing, and although its frames (audio) do not end exactly
        // where the lead's part does, the track's timeline is the lead's.
        let (from, to) = (self.lead_timescale(), self.infos[t].timescale);
        let start = rescale(b.start, from, to);
        let end = rescale(b.end, from, to);
        self.tracks[t].closed_until = Some(b.end);
        self.finish_part(t, b.closes_segment, start, end - start);
    }

    /// Closes track `t`'s current part as `[start, start + duration)` (its
    /// ticks; a gap part if it has no media), and its segment when
    /// `closes_segment`.
    fn finish_part(&mut self, t: usize, closes_segment: bool, start: i64, duration: i64) {
        self.write_chunk(t);
        let next_starts_segment = closes_segment
            || (self.lead_next_starts_segment
                && (t == self.lead || self.tracks[t].boundaries.is_empty()));
        let track = &mut self.tracks[t];
        let chunks = std::mem::take(&mut track.chunks);
        let gap = chunks.is_empty();
        let data = if chunks.len() == 1 {
            chunks[0].clone()
        } else {
            let mut buf = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in &chunks {
                buf.extend_from_slice(c);
            }
            Bytes::from(buf)
        };
        let duration = duration.max(1);
        track.part_open = false;
        track.part_duration = 0;
        track.segment_start.get_or_insert(start);
        if !gap {
            track.segment_parts.push(data.clone());
            track.segment_has_media = true;
        }
        track.segment_duration += duration;
        let follower_video = t != self.lead && self.infos[t].kind() == TrackKind::Video;
        if follower_video && track.index == 0 && !gap && !track.part_independent {
            self.stats.follower_segments_without_keyframe += 1;
        }
        let cut = if t == self.lead && track.index == 0 {
            self.segment_cut.take()
        } else {
            None
        };
        self.out.push_back(SegmenterOutput::Part(PartOut {
            track: t,
            msn: track.msn,
            index: track.index,
            start,
            duration,
            independent: !gap && track.part_independent,
            gap,
            next_starts_segment,
            cut,
            data,
        }));
        track.index += 1;
        if closes_segment {
            self.finish_segment(t);
        }
    }

    /// Emits track `t`'s segment from its closed parts.
    fn finish_segment(&mut self, t: usize) {
        let track = &mut self.tracks[t];
        let parts = std::mem::take(&mut track.segment_parts);
        let mut buf = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in &parts {
            buf.extend_from_slice(p);
        }
        self.out.push_back(SegmenterOutput::Segment(SegmentOut {
            track: t,
            msn: track.msn,
            start: track.segment_start.take().unwrap_or(0),
            duration: track.segment_duration,
            gap: !track.segment_has_media,
            keyframe_chunk: track.segment_keyframe_chunk.take(),
            data: Bytes::from(buf),
        }));
        track.msn += 1;
        track.segment_samples = 0;
        track.index = 0;
        track.segment_duration = 0;
        track.segment_has_media = false;
    }

    /// Followers that lag the lead by more than the limit close their parts
    /// without the missing media.
    fn enforce_lag(&mut self) {
        let max_lag = self.ms_to_lead(self.config.max_track_lag_ms);
        let progress = self.tracks[self.lead].end.unwrap_or(0);
        for t in 0..self.infos.len() {
            if t == self.lead {
                continue;
            }
            while let Some(b) = self.tracks[t].boundaries.front() {
                let reached = self.tracks[t].end.is_some_and(|e| e >= b.end);
                if progress - b.end < max_lag || reached {
                    break;
                }
                self.close_follower_part(t);
            }
        }
    }
}

#[cfg(test)]
mod tests;
