//! WebRTC frames → packager frames: one media timeline for audio and video, the
//! H.264 configuration the init segment needs, and when to ask for a keyframe.
//!
//! str0m hands over whole frames (RTP depacketized, reordered, NACKed): H.264 as
//! an Annex B access unit, Opus as one packet, each with its RTP timestamp. This
//! turns them into [`Frame`]s on one timeline (video 90 kHz, Opus 48 kHz):
//!
//! - **A/V sync** (RFC 3550 §6.4.1): each track's RTP clock has a random offset;
//!   the RTCP sender reports map both to the sender's NTP wallclock, which puts
//!   them on one timeline exactly as the sender captured them. Frames are held
//!   until both tracks have a sender report, or [`FramesConfig::sync_wait`]
//!   passed; then the RTP→timeline offsets are fixed for the session. Without
//!   reports, the first frames' arrival times align the tracks (off by the
//!   difference in encoder and network delay, tens of ms).
//! - **Codec configuration**: SPS/PPS come in band with every IDR; a new one
//!   (resolution change) yields new tracks, which the packager turns into a new
//!   init segment and a discontinuity.
//! - **Loss**: a frame that is not contiguous with the previous one (a packet
//!   was lost for good, after NACKs) breaks the reference chain: video frames
//!   are dropped until the next IDR, and a keyframe is requested.
//! - **Keyframes**: browsers send IDRs only when asked. The segmenter's rule
//!   (cut on the first IDR at least a segment target after the segment start) is
//!   mirrored here, and an IDR is requested one frame before the target, so
//!   segments start on an IDR near the configured duration.
//!
//! Drive contract: [`Frames::push`] each frame, then [`Frames::poll`] until
//! `None`; [`Frames::keyframe_wanted`] says when to send a PLI/FIR; call
//! [`Frames::tick`] now and then so held frames are released when no report
//! comes. Nothing here reads a clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use brook_packager::codec::h264::{annexb_nals, annexb_to_sample, nal_type, AvcConfig, Sps};
use brook_packager::codec::opus::{packet_duration, OpusConfig};
use brook_packager::media::{CodecConfig, Frame, TrackInfo};
use brook_packager::UnixMillis;
use bytes::Bytes;

pub const VIDEO_TIMESCALE: u32 = 90_000;
pub const AUDIO_TIMESCALE: u32 = 48_000;
/// Index of the video track in the track list; audio (when negotiated) is 1.
pub const VIDEO: usize = 0;
pub const AUDIO: usize = 1;
/// Frames held while waiting for sender reports, at most.
const MAX_HELD: usize = 600;
/// A timestamp step larger than this (or backwards) is a jump, not media time.
const MAX_STEP_SECS: i64 = 10;
/// Largest frame accepted (a 4K IDR is well under this).
const MAX_FRAME_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// An RTCP sender report's mapping of RTP time to the sender's wallclock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderClock {
    /// NTP time, as a duration since the Unix epoch.
    pub ntp: Duration,
    /// The RTP timestamp (32 bits, as on the wire) at that instant.
    pub rtp: u32,
}

/// One frame as the WebRTC stack delivered it.
#[derive(Debug, Clone, Copy)]
pub struct FrameIn<'a> {
    pub track: Track,
    /// RTP timestamp extended to 64 bits (no wrap), in the track's clock.
    pub rtp_time: u64,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// False when a frame before it was lost for good.
    pub contiguous: bool,
    /// The latest sender report of this track, if any came.
    pub sender_clock: Option<SenderClock>,
    /// H.264 Annex B access unit, or one Opus packet.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramesConfig {
    /// The packager's segment target: IDRs are requested to start segments there.
    pub segment_target: Duration,
    /// How long frames are held for sender reports before falling back to
    /// arrival times.
    pub sync_wait: Duration,
    /// Least time between two keyframe requests.
    pub keyframe_retry: Duration,
}

impl Default for FramesConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_millis(2000),
            sync_wait: Duration::from_millis(1000),
            keyframe_retry: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The track list changed (first configuration, or a new SPS/PPS): call
    /// `Packager::push_tracks`.
    Tracks(Vec<TrackInfo>),
    /// A frame and the wall-clock time it arrived.
    Frame(Frame, UnixMillis),
}

/// What happened to the frames pushed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramesStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bytes: u64,
    /// Video frames dropped waiting for an IDR (start, after loss), unparsable
    /// frames, audio before the video starts.
    pub dropped: u64,
    pub keyframe_requests: u64,
    /// Gaps the stack could not repair.
    pub losses: u64,
    /// Timestamp jumps re-anchored.
    pub jumps: u64,
    /// Whether the tracks were aligned by sender reports (else by arrival).
    pub synced_by_reports: bool,
    /// How far audio moved (48 kHz ticks, + = earlier) when the reports came
    /// after the tracks had been aligned by arrival.
    pub resync_ticks: i64,
    /// Picture size of the current configuration.
    pub width: u32,
    pub height: u32,
}

#[derive(Debug)]
struct Held {
    track: Track,
    rtp_time: u64,
    arrival: Instant,
    contiguous: bool,
    data: Bytes,
}

/// Per track: RTP time → timeline.
#[derive(Debug, Default, Clone, Copy)]
struct Clock {
    /// timeline ticks = rtp_time - base
    base: Option<i64>,
    last_rtp: Option<u64>,
    last_out: Option<i64>,
    last_clock: Option<SenderClock>,
    first_arrival: Option<(Instant, u64)>,
}

/// One WHIP session's frames. See the module docs.
#[derive(Debug)]
pub struct Frames {
    config: FramesConfig,
    has_audio: bool,
    /// Wall clock at `start`, to date frames for the packager.
    start: Instant,
    start_unix: UnixMillis,
    video: Clock,
    audio: Clock,
    synced: bool,
    held: VecDeque<Held>,
    avc: Option<AvcConfig>,
    /// Drop video until an IDR (start, after loss, before a configuration).
    need_idr: bool,
    /// Mirror of the segmenter: timeline tick of the current segment's IDR.
    segment_start: Option<i64>,
    frame_interval: i64,
    video_prev_out: Option<i64>,
    last_request: Option<Instant>,
    keyframe_pending: bool,
    /// An IDR waits among the held frames: no need to ask for one.
    held_idr: bool,
    /// When media could start (the peer connected).
    started: Option<Instant>,
    /// End of the last audio frame on the timeline.
    audio_end: Option<i64>,
    out: VecDeque<Output>,
    stats: FramesStats,
}

impl Frames {
    /// `start`/`start_unix`: one instant on both clocks, to date frames.
    pub fn new(
        config: FramesConfig,
        has_audio: bool,
        start: Instant,
        start_unix: UnixMillis,
    ) -> Self {
        Self {
            config,
            has_audio,
            start,
            start_unix,
            video: Clock::default(),
            audio: Clock::default(),
            synced: false,
            held: VecDeque::new(),
            avc: None,
            need_idr: true,
            segment_start: None,
            frame_interval: i64::from(VIDEO_TIMESCALE / 30),
            video_prev_out: None,
            last_request: None,
            keyframe_pending: true,
            held_idr: false,
            started: None,
            audio_end: None,
            out: VecDeque::new(),
            stats: FramesStats::default(),
        }
    }

    pub fn stats(&self) -> FramesStats {
        self.stats
    }

    pub fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// One frame from the stack, in order within its track.
    pub fn push(&mut self, f: FrameIn<'_>) {
        if f.data.is_empty() || f.data.len() > MAX_FRAME_BYTES {
            self.stats.dropped += 1;
            return;
        }
        self.stats.bytes += f.data.len() as u64;
        let clock = self.clock_mut(f.track);
        if clock.first_arrival.is_none() {
            clock.first_arrival = Some((f.arrival, f.rtp_time));
        }
        if let Some(c) = f.sender_clock {
            clock.last_clock = Some(c);
        }
        if f.track == Track::Audio && !self.has_audio {
            self.stats.dropped += 1;
            return;
        }
        let keyframe = f.track == Track::Video && annexb_nals(f.data).any(|n| nal_type(n) == 5);
        let held = Held {
            track: f.track,
            rtp_time: f.rtp_time,
            arrival: f.arrival,
            contiguous: f.contiguous,
            data: Bytes::copy_from_slice(f.data),
        };
        if self.synced {
            if f.sender_clock.is_some() && self.has_audio && !self.stats.synced_by_reports {
                self.resync_audio();
            }
            self.emit(held);
            return;
        }
        self.held_idr |= keyframe;
        self.held.push_back(held);
        if self.held.len() > MAX_HELD {
            self.stats.dropped += 1;
            self.held.pop_front();
        }
        self.try_sync(f.arrival);
    }

    /// Time passes: releases held frames once the sync wait is over.
    pub fn tick(&mut self, now: Instant) {
        if !self.synced {
            self.try_sync(now);
        }
    }

    /// When to call [`Frames::tick`] next, if anything waits on time.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.synced {
            return None;
        }
        self.video
            .first_arrival
            .map(|(t, _)| t + self.config.sync_wait)
    }

    /// The peer connected: media may come from now on.
    pub fn start(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// Whether to send a keyframe request (PLI, or FIR) now. Returns true at
    /// most once per [`FramesConfig::keyframe_retry`] while one is wanted.
    pub fn keyframe_wanted(&mut self, now: Instant) -> bool {
        // Senders start with an IDR: ask only when no video came within a
        // retry interval of the start (its first packets were lost), or what came
        // was not one. Not while an IDR waits among the held frames.
        let early = self.video.first_arrival.is_none()
            && self
                .started
                .is_none_or(|t| now.saturating_duration_since(t) < self.config.keyframe_retry);
        if !self.keyframe_pending || early || (!self.synced && self.held_idr) {
            return false;
        }
        if self
            .last_request
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.keyframe_retry)
        {
            return false;
        }
        self.last_request = Some(now);
        self.stats.keyframe_requests += 1;
        true
    }

    fn clock_mut(&mut self, track: Track) -> &mut Clock {
        match track {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        }
    }

    /// Fixes the tracks' offsets once the reports are in (or the wait is over),
    /// then releases what was held.
    fn try_sync(&mut self, now: Instant) {
        let Some((first_video_arrival, first_video_rtp)) = self.video.first_arrival else {
            // No video yet: nothing can start; audio waits (bounded by MAX_HELD).
            return;
        };
        let reports =
            self.video.last_clock.is_some() && (!self.has_audio || self.audio.last_clock.is_some());
        let waited = now.saturating_duration_since(first_video_arrival) >= self.config.sync_wait;
        if !reports && !waited {
            return;
        }
        let video_base = first_video_rtp as i64;
        self.video.base = Some(video_base);
        if self.has_audio {
            self.audio.base = match (self.video.last_clock, self.audio.last_clock) {
                (Some(v), Some(a)) => self.audio.first_arrival.map(|(_, rtp)| {
                    self.stats.synced_by_reports = true;
                    audio_base_from_reports(first_video_rtp, rtp, v, a)
                }),
                _ => self.audio.first_arrival.map(|(t, rtp)| {
                    // Align first arrivals: audio that came d later is d later.
                    let d = signed_secs(t, first_video_arrival);
                    rtp as i64 - (d * f64::from(AUDIO_TIMESCALE)).round() as i64
                }),
            };
        } else {
            self.stats.synced_by_reports = self.video.last_clock.is_some();
        }
        self.synced = true;
        self.held_idr = false;
        while let Some(h) = self.held.pop_front() {
            self.emit(h);
        }
    }

    /// The tracks were aligned by arrival; now both sender reports are in:
    /// move audio to where the reports put it. A step back drops the audio that
    /// would overlap (see `emit_audio`), a step forward leaves a gap; either is
    /// one-off and small (the difference between the tracks' send delays).
    fn resync_audio(&mut self) {
        let (Some(v), Some(a), Some(video_base), Some((_, audio_first))) = (
            self.video.last_clock,
            self.audio.last_clock,
            self.video.base,
            self.audio.first_arrival,
        ) else {
            return;
        };
        let base = audio_base_from_reports(video_base as u64, audio_first, v, a);
        if let Some(old) = self.audio.base {
            self.stats.resync_ticks = base - old;
        }
        self.audio.base = Some(base);
        self.stats.synced_by_reports = true;
    }

    fn timeline(&mut self, track: Track, rtp_time: u64, timescale: u32) -> Option<i64> {
        let clock = self.clock_mut(track);
        let rtp = rtp_time as i64;
        let base = clock.base?;
        if let (Some(last_rtp), Some(last_out)) = (clock.last_rtp, clock.last_out) {
            let step = rtp - last_rtp as i64;
            if step < 0 || step > MAX_STEP_SECS * i64::from(timescale) {
                // The sender's clock jumped: continue one frame later.
                let next = last_out + 1;
                clock.base = Some(rtp - next);
                clock.last_rtp = Some(rtp_time);
                clock.last_out = Some(next);
                self.stats.jumps += 1;
                return Some(next);
            }
        }
        let out = rtp - base;
        clock.last_rtp = Some(rtp_time);
        clock.last_out = Some(out);
        Some(out)
    }

    fn unix(&self, arrival: Instant) -> UnixMillis {
        let ms = arrival.saturating_duration_since(self.start).as_millis();
        UnixMillis(self.start_unix.0 + u64::try_from(ms).unwrap_or(0))
    }

    fn emit(&mut self, h: Held) {
        match h.track {
            Track::Video => self.emit_video(h),
            Track::Audio => self.emit_audio(h),
        }
    }

    fn emit_audio(&mut self, h: Held) {
        if self.audio.base.is_none() {
            // First audio after the tracks were synced by arrival alone.
            if let (Some((t, rtp)), Some((vt, vrtp))) =
                (self.audio.first_arrival, self.video.first_arrival)
            {
                let d = signed_secs(t, vt);
                let video_ticks = self.video.base.map_or(0, |b| vrtp as i64 - b);
                let at = video_ticks * i64::from(AUDIO_TIMESCALE) / i64::from(VIDEO_TIMESCALE)
                    + (d * f64::from(AUDIO_TIMESCALE)).round() as i64;
                self.audio.base = Some(rtp as i64 - at);
            }
        }
        let Some(duration) = packet_duration(&h.data) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(t) = self.timeline(Track::Audio, h.rtp_time, AUDIO_TIMESCALE) else {
            self.stats.dropped += 1;
            return;
        };
        if t < 0 || self.segment_start.is_none() {
            // Before the video's first IDR: nothing to attach it to.
            self.stats.dropped += 1;
            return;
        }
        if self.audio_end.is_some_and(|end| t < end) {
            // Overlaps the previous frame (audio moved back at a resync).
            self.stats.dropped += 1;
            return;
        }
        self.audio_end = Some(t + i64::from(duration));
        self.stats.audio_frames += 1;
        let at = self.unix(h.arrival);
        self.out.push_back(Output::Frame(
            Frame {
                track: AUDIO,
                dts: t,
                pts: t,
                keyframe: true,
                duration: Some(duration),
                data: h.data,
            },
            at,
        ));
    }

    fn emit_video(&mut self, h: Held) {
        if !h.contiguous {
            self.stats.losses += 1;
            self.need_idr = true;
            self.keyframe_pending = true;
        }
        let Some(t) = self.timeline(Track::Video, h.rtp_time, VIDEO_TIMESCALE) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(sample) = annexb_to_sample(&h.data) else {
            self.stats.dropped += 1;
            return;
        };
        if sample.keyframe {
            if let Some(config) = self.new_config(sample.sps.as_deref(), sample.pps.as_deref()) {
                self.stats.width = config.sps.width;
                self.stats.height = config.sps.height;
                self.avc = Some(config.clone());
                self.out.push_back(Output::Tracks(self.tracks(config)));
                // A new configuration starts a new segment at this IDR.
                self.segment_start = None;
            }
        }
        if self.need_idr && !(sample.keyframe && self.avc.is_some()) {
            self.stats.dropped += 1;
            self.keyframe_pending = true;
            return;
        }
        self.need_idr = false;
        self.update_interval(t);
        if sample.keyframe {
            let target = duration_ticks(self.config.segment_target, VIDEO_TIMESCALE);
            match self.segment_start {
                None => self.segment_start = Some(t),
                Some(start) if t - start + self.frame_interval / 2 >= target => {
                    self.segment_start = Some(t);
                }
                Some(_) => {}
            }
            self.keyframe_pending = false;
        }
        // Ask one frame ahead, so the IDR lands on or just after the target.
        if let Some(start) = self.segment_start {
            let target = duration_ticks(self.config.segment_target, VIDEO_TIMESCALE);
            if t + self.frame_interval - start >= target {
                self.keyframe_pending = true;
            }
        }
        self.stats.video_frames += 1;
        let at = self.unix(h.arrival);
        self.out.push_back(Output::Frame(
            Frame {
                track: VIDEO,
                dts: t,
                pts: t,
                keyframe: sample.keyframe,
                duration: None,
                data: Bytes::from(sample.data),
            },
            at,
        ));
    }

    /// Estimates the frame interval from consecutive timestamps (smoothed).
    fn update_interval(&mut self, t: i64) {
        if let Some(prev) = self.video_prev_out {
            let d = t - prev;
            if d > 0 && d < i64::from(VIDEO_TIMESCALE) {
                self.frame_interval = (self.frame_interval * 7 + d) / 8;
            }
        }
        self.video_prev_out = Some(t);
    }

    /// A configuration from this IDR's parameter sets, if it differs from the
    /// current one (or there is none yet).
    fn new_config(&self, sps: Option<&[u8]>, pps: Option<&[u8]>) -> Option<AvcConfig> {
        let (sps_nal, pps_nal) = match (sps, pps, &self.avc) {
            (Some(s), Some(p), _) => (s, p),
            (Some(s), None, Some(c)) => (s, c.pps_nal.as_slice()),
            (None, Some(p), Some(c)) => (c.sps_nal.as_slice(), p),
            _ => return None,
        };
        if self
            .avc
            .as_ref()
            .is_some_and(|c| c.sps_nal == sps_nal && c.pps_nal == pps_nal)
        {
            return None;
        }
        let sps = Sps::parse(sps_nal).ok()?;
        if sps.width == 0 || sps.height == 0 {
            return None;
        }
        Some(AvcConfig {
            sps,
            sps_nal: sps_nal.to_vec(),
            pps_nal: pps_nal.to_vec(),
        })
    }

    fn tracks(&self, avc: AvcConfig) -> Vec<TrackInfo> {
        let mut tracks = vec![TrackInfo {
            id: 1,
            timescale: VIDEO_TIMESCALE,
            codec: CodecConfig::Avc(avc),
        }];
        if self.has_audio {
            tracks.push(TrackInfo {
                id: 2,
                timescale: AUDIO_TIMESCALE,
                codec: CodecConfig::Opus(OpusConfig::webrtc()),
            });
        }
        tracks
    }

    /// Invariants that hold after every step (fuzzing checks them).
    pub fn check_invariants(&self) {
        assert!(self.held.len() <= MAX_HELD);
        assert!(self.synced || self.out.iter().all(|o| matches!(o, Output::Tracks(_))));
        assert!(self.frame_interval > 0);
        if self.stats.video_frames > 0 {
            assert!(self.avc.is_some() && self.segment_start.is_some());
        }
    }
}

/// The (extended) audio RTP time that sits at timeline 0, the video's first
/// frame, from both tracks' sender reports: each report maps its track's RTP
/// clock to the sender's wallclock, so the first frames' wallclock distance is
/// their distance on the timeline.
fn audio_base_from_reports(
    first_video_rtp: u64,
    first_audio_rtp: u64,
    v: SenderClock,
    a: SenderClock,
) -> i64 {
    // Reports are seconds away from the frames: a wrapping 32-bit difference
    // (RTP timestamps on the wire are 32 bits) is exact.
    let wall = |rtp: u64, c: SenderClock, rate: u32| {
        let d = (rtp as u32).wrapping_sub(c.rtp) as i32;
        c.ntp.as_secs_f64() + f64::from(d) / f64::from(rate)
    };
    let video_wall = wall(first_video_rtp, v, VIDEO_TIMESCALE);
    let audio_wall = wall(first_audio_rtp, a, AUDIO_TIMESCALE);
    let at = ((audio_wall - video_wall) * f64::from(AUDIO_TIMESCALE)).round() as i64;
    first_audio_rtp as i64 - at
}

fn signed_secs(a: Instant, b: Instant) -> f64 {
    if a >= b {
        a.duration_since(b).as_secs_f64()
    } else {
        -b.duration_since(a).as_secs_f64()
    }
}

fn duration_ticks(d: Duration, timescale: u32) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2 / i64::from(timescale))
        * i64::from(timescale)
        / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::whip::sim::{audio_frame, video_frame};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    struct T {
        frames: Frames,
        t0: Instant,
    }

    impl T {
        fn new(has_audio: bool) -> Self {
            let t0 = Instant::now();
            let mut frames = Frames::new(FramesConfig::default(), has_audio, t0, UnixMillis(1000));
            frames.start(t0);
            Self { frames, t0 }
        }

        fn video(
            &mut self,
            at_ms: u64,
            rtp: u64,
            idr: bool,
            contiguous: bool,
            clock: Option<SenderClock>,
        ) {
            let data = video_frame(rtp, idr, 100);
            self.frames.push(FrameIn {
                track: Track::Video,
                rtp_time: rtp,
                arrival: self.t0 + ms(at_ms),
                contiguous,
                sender_clock: clock,
                data: &data,
            });
        }

        fn audio(&mut self, at_ms: u64, rtp: u64, clock: Option<SenderClock>) {
            let data = audio_frame(rtp);
            self.frames.push(FrameIn {
                track: Track::Audio,
                rtp_time: rtp,
                arrival: self.t0 + ms(at_ms),
                contiguous: true,
                sender_clock: clock,
                data: &data,
            });
        }

        /// (track, dts, keyframe) of the frames out, and how many track lists.
        fn out(&mut self) -> (Vec<(usize, i64, bool)>, usize) {
            let (mut frames, mut tracks) = (Vec::new(), 0);
            while let Some(o) = self.frames.poll() {
                match o {
                    Output::Tracks(_) => tracks += 1,
                    Output::Frame(f, _) => frames.push((f.track, f.dts, f.keyframe)),
                }
            }
            self.frames.check_invariants();
            (frames, tracks)
        }
    }

    fn clock(ntp_ms: u64, rtp: u32) -> Option<SenderClock> {
        Some(SenderClock {
            ntp: Duration::from_millis(1_795_000_000_000 + ntp_ms),
            rtp,
        })
    }

    #[test]
    fn video_only_starts_at_the_first_idr_and_drops_to_the_next_after_loss() {
        let mut t = T::new(false);
        t.video(0, 1000, false, true, None);
        t.frames.tick(t.t0 + ms(1000));
        assert_eq!(t.out().0, [], "no IDR yet");
        assert!(t.frames.keyframe_wanted(t.t0 + ms(1000)));
        assert!(!t.frames.keyframe_wanted(t.t0 + ms(1100)), "rate limited");
        t.video(1033, 4000, true, true, None);
        t.video(1066, 7000, false, true, None);
        // A frame was lost for good: drop until the next IDR, and ask for one.
        t.video(1133, 13000, false, false, None);
        t.video(1166, 16000, false, true, None);
        assert!(
            !t.frames.keyframe_wanted(t.t0 + ms(1166)),
            "asked 166 ms ago"
        );
        assert!(t.frames.keyframe_wanted(t.t0 + ms(1500)));
        t.video(1200, 19000, true, true, None);
        let (frames, tracks) = t.out();
        assert_eq!(tracks, 1);
        assert_eq!(
            frames,
            [(0, 3000, true), (0, 6000, false), (0, 18000, true)]
        );
        let s = t.frames.stats();
        assert_eq!((s.losses, s.video_frames, s.dropped), (1, 3, 3));
    }

    #[test]
    fn timestamp_jumps_are_re_anchored() {
        let mut t = T::new(false);
        t.video(0, 90_000, true, true, clock(0, 90_000));
        t.video(33, 93_000, false, true, None);
        t.video(66, 5, false, true, None); // the sender's clock went back
        t.video(100, 3005, false, true, None);
        t.video(133, 3005 + 90_000 * 60, false, true, None); // a minute ahead
        let (frames, _) = t.out();
        let dts: Vec<i64> = frames.iter().map(|f| f.1).collect();
        assert_eq!(dts, [0, 3000, 3001, 6001, 6002]);
        assert_eq!(t.frames.stats().jumps, 2);
    }

    #[test]
    fn reports_align_audio_or_arrival_does_then_reports_correct_it() {
        // Both reports before the sync wait: audio lands where its capture time
        // says (video rtp 1000 and audio rtp 500 are the same instant).
        let mut t = T::new(true);
        t.video(0, 1000, true, true, clock(0, 1000));
        t.audio(5, 500 + 960, clock(0, 500));
        let (frames, _) = t.out();
        assert_eq!(frames, [(0, 0, true), (1, 960, true)]);
        assert!(t.frames.stats().synced_by_reports);

        // No reports within the wait: arrival aligns (audio came 40 ms later, so
        // it is put 40 ms later although it was captured at the same instant);
        // the reports correct it, and the audio that would overlap is dropped.
        let mut t = T::new(true);
        t.video(0, 1000, true, true, None);
        t.audio(40, 500, None);
        t.frames.tick(t.t0 + ms(1000));
        t.audio(1040, 500 + 960 * 50, None);
        t.video(1050, 1000 + 90_000, false, true, clock(0, 1000));
        t.audio(1060, 500 + 960 * 51, clock(0, 500));
        t.audio(1080, 500 + 960 * 52, None);
        t.audio(1100, 500 + 960 * 53, None);
        t.audio(1120, 500 + 960 * 54, None);
        let (frames, _) = t.out();
        let audio: Vec<i64> = frames.iter().filter(|f| f.0 == 1).map(|f| f.1).collect();
        let at_40ms = 40 * 48;
        assert_eq!(audio[..2], [at_40ms, at_40ms + 960 * 50]);
        // Audio moves 40 ms (two frames) back: 51 and 52 would overlap frame 50
        // (which ends at 960 * 53) and are dropped; 53 and 54 where they belong.
        assert_eq!(audio[2..], [960 * 53, 960 * 54]);
        assert_eq!(t.frames.stats().resync_ticks, at_40ms);
    }

    #[test]
    fn a_new_sps_is_a_new_configuration_and_segments_follow_the_target() {
        let mut t = T::new(false);
        t.video(0, 0, true, true, None);
        t.frames.tick(t.t0 + ms(1000));
        // 30 fps: one frame before the 2 s target, an IDR is wanted.
        for n in 1..=59u64 {
            t.video(n * 33, n * 3000, false, true, None);
        }
        assert!(
            t.frames.keyframe_wanted(t.t0 + ms(1990)),
            "asked one frame ahead"
        );
        t.video(2000, 60 * 3000, true, true, None);
        assert!(!t.frames.keyframe_wanted(t.t0 + ms(2600)), "the IDR came");
        let (_, tracks) = t.out();
        assert_eq!(tracks, 1, "same SPS/PPS: same configuration");
        // A different SPS (another level) arrives with the next IDR.
        let mut data = video_frame(61, true, 100);
        data[7] = 0x20;
        t.frames.push(FrameIn {
            track: Track::Video,
            rtp_time: 61 * 3000,
            arrival: t.t0 + ms(2033),
            contiguous: true,
            sender_clock: None,
            data: &data,
        });
        let (frames, tracks) = t.out();
        assert_eq!((tracks, frames.len()), (1, 1));
    }

    #[test]
    fn audio_without_an_audio_track_and_empty_frames_are_dropped() {
        let mut t = T::new(false);
        t.video(0, 0, true, true, None);
        t.audio(1, 0, None);
        t.frames.push(FrameIn {
            track: Track::Video,
            rtp_time: 3000,
            arrival: t.t0,
            contiguous: true,
            sender_clock: None,
            data: &[],
        });
        t.frames.tick(t.t0 + ms(2000));
        let (frames, _) = t.out();
        assert_eq!(frames, [(0, 0, true)]);
        assert_eq!(t.frames.stats().dropped, 2);
    }

    #[test]
    fn no_keyframe_request_right_after_connecting() {
        let mut t = T::new(true);
        assert!(
            !t.frames.keyframe_wanted(t.t0 + ms(100)),
            "the sender starts with one"
        );
        assert!(
            t.frames.keyframe_wanted(t.t0 + ms(600)),
            "no video after a while: ask"
        );
    }
}
