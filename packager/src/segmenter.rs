//! Cuts timed frames into LL-HLS parts and segments, and writes each part as one
//! CMAF fragment.
//!
//! The lead track (video if there is one) decides the cuts: a segment starts on a
//! keyframe once the current one has reached the segment target; a part ends as
//! soon as adding one more frame would overrun the part target, so no part is ever
//! longer than `PART-TARGET`. Other tracks (audio) follow the lead's boundaries: a
//! part is written once every track has media up to its end, or once a track lags
//! the lead by more than `max_track_lag` (then it is written without that media).
//!
//! Drive it with [`Segmenter::push`] for every frame, then call
//! [`Segmenter::poll`] until it returns `None`; [`Segmenter::flush`] at the end of
//! the stream closes the last part and segment.

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
    /// How long (in lead-track media time) to wait for a lagging track before a
    /// part is written without it.
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

/// A written part: one CMAF fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOut {
    pub msn: u64,
    pub index: u32,
    /// Start and duration in lead-track ticks.
    pub start: i64,
    pub duration: i64,
    /// Starts with a keyframe of the lead track.
    pub independent: bool,
    pub data: Bytes,
}

/// A completed segment: the concatenation of its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOut {
    pub msn: u64,
    pub start: i64,
    pub duration: i64,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmenterOutput {
    Part(PartOut),
    Segment(SegmentOut),
}

#[derive(Debug)]
enum Pending {
    Part {
        start: i64,
        end: i64,
        lead: Vec<Sample>,
        independent: bool,
    },
    SegmentEnd,
}

#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    tracks: Vec<TrackInfo>,
    lead: usize,
    /// Per track: a frame waiting for the next one to know its duration.
    held: Vec<Option<Frame>>,
    last_duration: Vec<u32>,
    /// Per non-lead track: timed samples not yet written.
    queues: Vec<VecDeque<Sample>>,
    /// Per track: end of the latest timed sample, in lead ticks.
    track_end: Vec<Option<i64>>,
    /// Lead samples of the part being built.
    part: Vec<Sample>,
    part_start: i64,
    segment_start: Option<i64>,
    pending: VecDeque<Pending>,
    flushing: bool,
    msn: u64,
    part_index: u32,
    sequence: u32,
    segment_parts: Vec<Bytes>,
    segment_begin: Option<i64>,
    segment_duration: i64,
    out: VecDeque<SegmenterOutput>,
}

impl Segmenter {
    /// `tracks` must not be empty; the lead is the first video track, else track 0.
    pub fn new(config: SegmenterConfig, tracks: Vec<TrackInfo>, first_msn: u64) -> Self {
        let lead = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .unwrap_or(0);
        let n = tracks.len();
        Self {
            config,
            tracks,
            lead,
            held: vec![None; n],
            last_duration: vec![0; n],
            queues: vec![VecDeque::new(); n],
            track_end: vec![None; n],
            part: Vec::new(),
            part_start: 0,
            segment_start: None,
            pending: VecDeque::new(),
            flushing: false,
            msn: first_msn,
            part_index: 0,
            sequence: 1,
            segment_parts: Vec::new(),
            segment_begin: None,
            segment_duration: 0,
            out: VecDeque::new(),
        }
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    pub fn lead_timescale(&self) -> u32 {
        self.tracks.get(self.lead).map_or(90_000, |t| t.timescale)
    }

    fn ms_to_lead(&self, ms: u32) -> i64 {
        rescale(i64::from(ms), 1000, self.lead_timescale())
    }

    fn to_lead(&self, track: usize, ticks: i64) -> i64 {
        let ts = self.tracks.get(track).map_or(1, |t| t.timescale);
        rescale(ticks, ts, self.lead_timescale())
    }

    /// Adds one frame. Frames of a track must come in decoding order.
    pub fn push(&mut self, frame: Frame) {
        let t = frame.track;
        if t >= self.tracks.len() || self.flushing {
            return;
        }
        match frame.duration {
            Some(d) => self.on_timed(t, frame, d),
            None => {
                if let Some(prev) = self.held[t].take() {
                    let d = self.settle_duration(t, frame.dts - prev.dts);
                    self.on_timed(t, prev, d);
                }
                self.held[t] = Some(frame);
            }
        }
        self.finalize();
    }

    /// Ends the stream: writes what is buffered as the last part and segment.
    pub fn flush(&mut self) {
        for t in 0..self.tracks.len() {
            if let Some(prev) = self.held[t].take() {
                let d = self.settle_duration(t, 0);
                self.on_timed(t, prev, d);
            }
        }
        self.cut_part();
        if self.segment_start.is_some() {
            self.pending.push_back(Pending::SegmentEnd);
            self.segment_start = None;
        }
        self.flushing = true;
        self.finalize();
    }

    pub fn poll(&mut self) -> Option<SegmenterOutput> {
        self.out.pop_front()
    }

    /// A frame's duration is the distance to the next DTS; when that is missing or
    /// implausible (a timestamp jump), reuse the previous duration.
    fn settle_duration(&mut self, t: usize, delta: i64) -> u32 {
        let timescale = i64::from(self.tracks[t].timescale);
        let d = if delta > 0 && delta <= 10 * timescale {
            delta as u32
        } else if self.last_duration[t] > 0 {
            self.last_duration[t]
        } else {
            (timescale / 30).max(1) as u32
        };
        self.last_duration[t] = d;
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
        self.track_end[t] = Some(self.track_end[t].map_or(end, |e| e.max(end)));
        if t == self.lead {
            self.on_lead_sample(sample);
        } else {
            self.queues[t].push_back(sample);
        }
    }

    fn on_lead_sample(&mut self, s: Sample) {
        let dur = i64::from(s.duration);
        match self.segment_start {
            None if !s.keyframe => return, // wait for the first keyframe
            None => self.segment_start = Some(s.dts),
            Some(start) => {
                let seg_target = self.ms_to_lead(self.config.segment_target_ms);
                if s.keyframe && s.dts - start + dur / 2 >= seg_target {
                    self.cut_part();
                    self.pending.push_back(Pending::SegmentEnd);
                    self.segment_start = Some(s.dts);
                }
            }
        }
        if self.part.is_empty() {
            self.part_start = s.dts;
        }
        let end = s.dts + dur;
        self.part.push(s);
        // Close the part as soon as one more frame of this length would overrun it.
        if end - self.part_start + dur > self.ms_to_lead(self.config.part_target_ms) {
            self.cut_part();
        }
    }

    fn cut_part(&mut self) {
        if self.part.is_empty() {
            return;
        }
        let lead = std::mem::take(&mut self.part);
        let end = lead
            .last()
            .map_or(self.part_start, |s| s.dts + i64::from(s.duration));
        let independent = lead.first().is_some_and(|s| s.keyframe);
        self.pending.push_back(Pending::Part {
            start: self.part_start,
            end,
            lead,
            independent,
        });
    }

    /// Latest lead-track time seen, including a held frame.
    fn lead_progress(&self) -> i64 {
        let held = self.held[self.lead].as_ref().map(|f| f.dts);
        held.into_iter()
            .chain(self.track_end[self.lead])
            .max()
            .unwrap_or(0)
    }

    /// Writes pending parts whose media is complete on every track, in order.
    fn finalize(&mut self) {
        let max_lag = self.ms_to_lead(self.config.max_track_lag_ms);
        while let Some(front) = self.pending.front() {
            match front {
                Pending::SegmentEnd => {
                    self.pending.pop_front();
                    self.emit_segment();
                }
                Pending::Part { end, .. } => {
                    let end = *end;
                    let progress = self.lead_progress();
                    let ready = self.flushing
                        || (0..self.tracks.len()).filter(|&t| t != self.lead).all(|t| {
                            self.track_end[t].is_some_and(|e| e >= end) || progress - end >= max_lag
                        });
                    if !ready {
                        return;
                    }
                    if let Some(Pending::Part {
                        start,
                        end,
                        lead,
                        independent,
                    }) = self.pending.pop_front()
                    {
                        self.emit_part(start, end, lead, independent);
                    }
                }
            }
        }
    }

    fn emit_part(&mut self, start: i64, end: i64, lead: Vec<Sample>, independent: bool) {
        let lead_scale = self.lead_timescale();
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); self.tracks.len()];
        for (t, out) in samples.iter_mut().enumerate() {
            if t == self.lead {
                continue;
            }
            let scale = self.tracks[t].timescale;
            while let Some(s) = self.queues[t].front() {
                let s_start = rescale(s.dts, scale, lead_scale);
                let s_end = rescale(s.dts + i64::from(s.duration), scale, lead_scale);
                if s_end <= start && self.segment_begin.is_none() {
                    self.queues[t].pop_front(); // before the first video frame: drop
                    continue;
                }
                if s_start >= end {
                    break;
                }
                if let Some(s) = self.queues[t].pop_front() {
                    out.push(s);
                }
            }
        }
        samples[self.lead] = lead;
        let data = Bytes::from(cmaf::write_fragment(self.sequence, &self.tracks, &samples));
        self.sequence = self.sequence.wrapping_add(1);
        if self.segment_begin.is_none() {
            self.segment_begin = Some(start);
            self.segment_duration = 0;
        }
        self.segment_duration += end - start;
        self.segment_parts.push(data.clone());
        self.out.push_back(SegmenterOutput::Part(PartOut {
            msn: self.msn,
            index: self.part_index,
            start,
            duration: end - start,
            independent,
            data,
        }));
        self.part_index += 1;
    }

    fn emit_segment(&mut self) {
        let Some(start) = self.segment_begin.take() else {
            return;
        };
        let parts = std::mem::take(&mut self.segment_parts);
        let mut data = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in &parts {
            data.extend_from_slice(p);
        }
        self.out.push_back(SegmenterOutput::Segment(SegmentOut {
            msn: self.msn,
            start,
            duration: self.segment_duration,
            data: Bytes::from(data),
        }));
        self.msn += 1;
        self.part_index = 0;
        self.segment_duration = 0;
    }
}

#[cfg(test)]
mod tests;
