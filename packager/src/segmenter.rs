//! Cuts timed frames into LL-HLS parts and segments, one CMAF track per output:
//! every track gets its own parts and segments (what CMAF, DASH and Apple's HLS
//! authoring rules want), on boundaries the lead track decides, and every part is
//! written as a series of CMAF chunks (`moof`+`mdat`) as its frames arrive, so it
//! can be delivered while it is being made.
//!
//! The lead track (video if there is one) decides the cuts: a segment starts on a
//! keyframe once the current one has reached the segment target; a part ends as
//! soon as adding one more frame would overrun the part target, so no part is ever
//! longer than `PART-TARGET`. Other tracks (audio) close the same part once they
//! have media past its end, or once they lag the lead by more than
//! `max_track_lag` (a silent track then gets a gap part, so it can never stall the
//! others).
//!
//! Drive it with [`Segmenter::push`] for every frame, then call
//! [`Segmenter::poll`] until it returns `None`; [`Segmenter::flush`] at the end of
//! the stream closes the last part and segment of every track.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::cmaf;
use crate::media::{Frame, Sample, TrackInfo, TrackKind};
use crate::time::rescale;

/// Timing targets, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    pub part_target_ms: u32,
    pub segment_target_ms: u32,
    /// How long (in lead-track media time) to wait for a lagging track before its
    /// part is closed without the missing media.
    pub max_track_lag_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            part_target_ms: 200,
            segment_target_ms: 2000,
            max_track_lag_ms: 1000,
        }
    }
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
    /// Start and duration in the track's ticks.
    pub start: i64,
    pub duration: i64,
    /// Starts with a sync sample.
    pub independent: bool,
    /// The track had no media for this part (`GAP=YES`); `data` is empty.
    pub gap: bool,
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
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmenterOutput {
    Chunk(ChunkOut),
    Part(PartOut),
    Segment(SegmentOut),
}

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
    part_start: Option<i64>,
    part_duration: i64,
    part_independent: bool,
    /// Non-lead tracks: boundaries of parts the lead closed, oldest first.
    boundaries: VecDeque<Boundary>,
    /// Non-lead tracks: samples ahead of the lead, held until the lead decides
    /// which part they belong to.
    waiting: VecDeque<Sample>,
    segment_parts: Vec<Bytes>,
    segment_start: Option<i64>,
    segment_duration: i64,
    segment_has_media: bool,
}

#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    infos: Vec<TrackInfo>,
    lead: usize,
    tracks: Vec<Track>,
    /// Lead-track time of the start of the first part: earlier media is dropped.
    origin: Option<i64>,
    /// Lead ticks where the current segment started.
    segment_start: Option<i64>,
    /// Lead ticks where the current lead part started.
    lead_part_start: i64,
    sequence: u32,
    out: VecDeque<SegmenterOutput>,
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
        Self {
            config,
            infos: tracks,
            lead,
            tracks: state,
            origin: None,
            segment_start: None,
            lead_part_start: 0,
            sequence: 1,
            out: VecDeque::new(),
        }
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

    fn ms_to_lead(&self, ms: u32) -> i64 {
        rescale(i64::from(ms), 1000, self.lead_timescale())
    }

    fn to_lead(&self, track: usize, ticks: i64) -> i64 {
        let ts = self.infos.get(track).map_or(1, |t| t.timescale);
        rescale(ticks, ts, self.lead_timescale())
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
            let end = self.tracks[self.lead].end.unwrap_or(self.lead_part_start);
            if self.tracks[self.lead].chunks.is_empty() {
                self.close_segment_between_parts();
            } else {
                self.cut(end, true);
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
        } else {
            self.on_follower_sample(t, sample);
        }
    }

    fn on_lead_sample(&mut self, s: Sample) {
        let dur = i64::from(s.duration);
        match self.segment_start {
            None if !s.keyframe => return, // wait for the first keyframe
            None => {
                self.segment_start = Some(s.dts);
                self.origin.get_or_insert(s.dts);
                self.lead_part_start = s.dts;
            }
            Some(start) => {
                let seg_target = self.ms_to_lead(self.config.segment_target_ms);
                if s.keyframe && s.dts - start + dur / 2 >= seg_target {
                    if self.tracks[self.lead].chunks.is_empty() {
                        // The last part was closed already (it was full).
                        self.close_segment_between_parts();
                    } else {
                        self.cut(s.dts, true);
                    }
                    self.segment_start = Some(s.dts);
                }
            }
        }
        let lead = self.lead;
        let end = s.dts + dur;
        if self.tracks[lead].chunks.is_empty() {
            self.lead_part_start = s.dts;
        }
        self.add_to_part(lead, s, true);
        // Close the part as soon as one more frame of this length would overrun it.
        if end - self.lead_part_start + dur > self.ms_to_lead(self.config.part_target_ms) {
            self.cut(end, false);
        }
        for t in 0..self.infos.len() {
            if t != lead {
                self.release(t);
            }
        }
    }

    fn on_follower_sample(&mut self, t: usize, s: Sample) {
        let Some(origin) = self.origin else {
            return; // nothing before the first lead keyframe
        };
        if self.to_lead(t, s.dts + i64::from(s.duration)) <= origin {
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
                self.add_to_part(t, s, false);
            }
            if limit.is_some_and(|b_end| end >= b_end) {
                self.close_follower_part(t);
            }
        }
    }

    /// Adds a sample to track `t`'s current part; writes a chunk when enough is
    /// gathered (every lead sample; a few follower samples).
    fn add_to_part(&mut self, t: usize, s: Sample, immediate: bool) {
        let track = &mut self.tracks[t];
        if track.part_start.is_none() {
            track.part_start = Some(s.dts);
            track.part_independent = s.keyframe;
            track.part_duration = 0;
        }
        if track.segment_start.is_none() {
            track.segment_start = Some(s.dts);
            track.segment_duration = 0;
        }
        track.part_duration += i64::from(s.duration);
        track.pending.push(s);
        if immediate || track.pending.len() >= CHUNK_SAMPLES {
            self.write_chunk(t);
        }
    }

    fn write_chunk(&mut self, t: usize) {
        let samples = std::mem::take(&mut self.tracks[t].pending);
        if samples.is_empty() {
            return;
        }
        let data = Bytes::from(cmaf::write_fragment(
            self.sequence,
            std::slice::from_ref(&self.infos[t]),
            std::slice::from_ref(&samples),
        ));
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

    /// The lead closes its current part at `end` (lead ticks); followers will
    /// close theirs at the same boundary.
    fn cut(&mut self, end: i64, closes_segment: bool) {
        let lead = self.lead;
        let start = self.lead_part_start;
        self.finish_part(lead, closes_segment, end - start);
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
    }

    /// A segment ends on a part boundary already cut (the last part was full):
    /// the lead closes its segment now, followers at that boundary.
    fn close_segment_between_parts(&mut self) {
        let lead = self.lead;
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
        let nominal = rescale(
            (b.end - b.start).max(1),
            self.lead_timescale(),
            self.infos[t].timescale,
        );
        self.finish_part(t, b.closes_segment, nominal);
    }

    /// Closes track `t`'s current part (a gap part if it has no media), and its
    /// segment when `closes_segment`.
    fn finish_part(&mut self, t: usize, closes_segment: bool, gap_duration: i64) {
        self.write_chunk(t);
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
        let duration = if gap {
            gap_duration.max(1)
        } else {
            track.part_duration
        };
        let start = track.part_start.take().unwrap_or(0);
        if !gap {
            track.segment_parts.push(data.clone());
            track.segment_has_media = true;
        }
        track.segment_duration += duration;
        self.out.push_back(SegmenterOutput::Part(PartOut {
            track: t,
            msn: track.msn,
            index: track.index,
            start,
            duration,
            independent: !gap && track.part_independent,
            gap,
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
            data: Bytes::from(buf),
        }));
        track.msn += 1;
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
