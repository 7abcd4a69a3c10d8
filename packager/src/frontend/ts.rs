//! MPEG-TS front end: demuxed PES packets → track descriptions and timed frames.
//!
//! Takes the first H.264 or H.265 stream and the first AAC (ADTS) stream of the
//! program. Frames are
//! held back until every announced track has its decoder configuration (SPS+PPS
//! and an IDR for video, an ADTS header for audio), or until one second of video has
//! gone by without the missing track, so the init segment describes the stream
//! exactly once.
//!
//! Later changes are reported in band, before the frame they apply to:
//! [`FrontEndEvent::Tracks`] again when a decoder configuration changes (new SPS/PPS
//! on an IDR, new AAC configuration, a new PMT), and
//! [`FrontEndEvent::Discontinuity`] when the timestamps jump (encoder restart,
//! splice). The packager turns both into `EXT-X-DISCONTINUITY`.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::codec::aac::{self, AacConfig};
use crate::codec::h264::{self, AvcConfig, Sps};
use crate::codec::h265::{self, HevcConfig, HevcSps};
use crate::media::{CodecConfig, Frame, TrackInfo, TrackKind};
use crate::time::{rescale, Unwrapper, TS_TIMESCALE};
use crate::ts::{DemuxEvent, Demuxer, EsInfo, Pes, StreamType, TsError};
use crate::Error;

const SECOND: i64 = TS_TIMESCALE as i64;
/// How much video is buffered waiting for an announced track that never shows.
const MAX_STARTUP_WAIT: i64 = SECOND;
/// Audio PTS may wander from the running sample count by this much before resyncing.
const AUDIO_RESYNC_FRAMES: i64 = 2;
/// A video DTS step forward larger than this, or backward at all beyond
/// [`MAX_BACKWARD_STEP`], is a timeline break, not a frame interval.
const MAX_FORWARD_STEP: i64 = 5 * SECOND;
const MAX_BACKWARD_STEP: i64 = SECOND / 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontEndEvent {
    /// The tracks are known (or changed); frames that follow index into this list.
    Tracks(Vec<TrackInfo>),
    /// The timeline breaks before the next frame (timestamps jumped).
    Discontinuity,
    Frame(Frame),
}

/// Counters for what the front end saw and could not use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrontEndStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub dropped_video: u64,
    pub dropped_audio: u64,
    /// Timeline breaks detected (timestamp jumps).
    pub timestamp_jumps: u64,
    /// Decoder configuration changes after the start.
    pub config_changes: u64,
}

#[derive(Debug, Default)]
pub struct TsFrontEnd {
    demux: Demuxer,
    program: Vec<EsInfo>,
    video_pid: Option<u16>,
    audio_pid: Option<u16>,
    video_clock: Unwrapper,
    audio_clock: Unwrapper,
    video_type: Option<StreamType>,
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// The video decoder configuration in effect (H.264 or H.265).
    video_config: Option<CodecConfig>,
    aac: Option<AacConfig>,
    audio_next: Option<i64>,
    last_video_dts: Option<i64>,
    /// After a video timeline break: audio is accepted again once it is near this
    /// video DTS (audio from before the break is dropped).
    audio_gate: Option<i64>,
    /// Track order once started: indices of video and audio in the track list.
    video_track: Option<usize>,
    audio_track: Option<usize>,
    started: bool,
    /// Frames held before start, tagged by kind.
    startup: Vec<(TrackKind, Frame)>,
    out: VecDeque<FrontEndEvent>,
    stats: FrontEndStats,
}

impl TsFrontEnd {
    pub fn stats(&self) -> FrontEndStats {
        self.stats
    }

    pub fn demux_stats(&self) -> crate::ts::DemuxStats {
        self.demux.stats()
    }

    /// Feeds transport stream bytes; then call [`TsFrontEnd::poll`] until `None`.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Error> {
        let result = self.demux.push(data);
        self.drain_demuxer()?;
        result.map_err(Error::from)
    }

    /// End of input: releases the last PES packets.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.demux.flush();
        self.drain_demuxer()?;
        if !self.started && !self.startup.is_empty() {
            self.start();
        }
        Ok(())
    }

    pub fn poll(&mut self) -> Option<FrontEndEvent> {
        self.out.pop_front()
    }

    fn drain_demuxer(&mut self) -> Result<(), Error> {
        while let Some(ev) = self.demux.poll() {
            match ev {
                DemuxEvent::Program(streams) => self.on_program(streams)?,
                DemuxEvent::Pes(pes) => {
                    if Some(pes.pid) == self.video_pid {
                        self.on_video(pes);
                    } else if Some(pes.pid) == self.audio_pid {
                        self.on_audio(pes);
                    }
                }
            }
        }
        Ok(())
    }

    fn on_program(&mut self, streams: Vec<EsInfo>) -> Result<(), Error> {
        let find = |ty| streams.iter().find(|s| s.stream_type == ty).map(|s| s.pid);
        let video_type = [StreamType::H264, StreamType::H265]
            .into_iter()
            .find(|t| find(*t).is_some());
        let (video, audio) = (video_type.and_then(find), find(StreamType::AacAdts));
        if video.is_none() && audio.is_none() {
            return Err(Error::Unsupported(format!(
                "no H.264, H.265 or AAC stream in the program (stream types: {:?})",
                streams.iter().map(|s| s.stream_type).collect::<Vec<_>>()
            )));
        }
        let changed = self.started && (video, audio) != (self.video_pid, self.audio_pid);
        self.video_pid = video;
        self.video_type = video_type;
        self.audio_pid = audio;
        self.program = streams;
        if changed {
            // A different set of streams: start over as for a new stream; the
            // packager sees new tracks and cuts a discontinuity.
            self.stats.config_changes += 1;
            self.started = false;
            self.video_config = None;
            self.aac = None;
            self.vps = None;
            self.sps = None;
            self.pps = None;
            self.audio_next = None;
            self.last_video_dts = None;
            self.video_clock = Unwrapper::default();
            self.audio_clock = Unwrapper::default();
        }
        Ok(())
    }

    fn on_video(&mut self, pes: Pes) {
        let (Some(pts), dts) = (pes.pts, pes.dts) else {
            self.stats.dropped_video += 1;
            return;
        };
        let dts = self.video_clock.unwrap(dts.unwrap_or(pts));
        let pts = dts + (pts as i64 - dts.rem_euclid(1 << 33)).rem_euclid(1 << 33);
        let converted = match self.video_type {
            Some(StreamType::H265) => h265::annexb_to_sample(&pes.data)
                .map(|s| (Bytes::from(s.data), s.keyframe, s.vps, s.sps, s.pps)),
            // The PES payload is ours alone: converted in place when its layout allows.
            _ => h264::annexb_to_sample_owned(pes.data)
                .map(|s| (s.data, s.keyframe, None, s.sps, s.pps)),
        };
        let Some((data, keyframe, vps, sps, pps)) = converted else {
            self.stats.dropped_video += 1;
            return;
        };
        for (slot, set) in [
            (&mut self.vps, vps),
            (&mut self.sps, sps),
            (&mut self.pps, pps),
        ] {
            if set.is_some() {
                *slot = set;
            }
        }
        if keyframe {
            self.update_video_config();
        }
        if self.video_config.is_none() {
            self.stats.dropped_video += 1; // nothing decodable before the first IDR with parameter sets
            return;
        }
        if self.started {
            if let Some(last) = self.last_video_dts {
                let step = dts - last;
                if !(-MAX_BACKWARD_STEP..=MAX_FORWARD_STEP).contains(&step) {
                    self.stats.timestamp_jumps += 1;
                    self.out.push_back(FrontEndEvent::Discontinuity);
                    self.audio_gate = Some(dts);
                    self.audio_next = None;
                }
            }
        }
        self.last_video_dts = Some(dts);
        self.stats.video_frames += 1;
        let frame = Frame {
            track: self.video_track.unwrap_or(0),
            dts,
            pts,
            keyframe,
            duration: None,
            data,
        };
        self.emit(TrackKind::Video, frame);
    }

    /// On an IDR/IRAP: takes the parameter sets in effect as the configuration,
    /// and reports a change when they differ from the current one.
    fn update_video_config(&mut self) {
        let (Some(sps_nal), Some(pps_nal)) = (&self.sps, &self.pps) else {
            return;
        };
        let parsed = match self.video_type {
            Some(StreamType::H265) => {
                let Some(vps_nal) = &self.vps else {
                    return;
                };
                if let Some(CodecConfig::Hevc(c)) = &self.video_config {
                    if c.vps_nal == *vps_nal && c.sps_nal == *sps_nal && c.pps_nal == *pps_nal {
                        return;
                    }
                }
                HevcSps::parse(sps_nal).map(|sps| {
                    CodecConfig::Hevc(HevcConfig {
                        sps,
                        vps_nal: vps_nal.clone(),
                        sps_nal: sps_nal.clone(),
                        pps_nal: pps_nal.clone(),
                    })
                })
            }
            _ => {
                if let Some(CodecConfig::Avc(c)) = &self.video_config {
                    if c.sps_nal == *sps_nal && c.pps_nal == *pps_nal {
                        return;
                    }
                }
                Sps::parse(sps_nal).map(|sps| {
                    CodecConfig::Avc(AvcConfig {
                        sps,
                        sps_nal: sps_nal.clone(),
                        pps_nal: pps_nal.clone(),
                    })
                })
            }
        };
        match parsed {
            Ok(config) => {
                let changed = self.video_config.is_some();
                self.video_config = Some(config);
                if changed && self.started {
                    self.stats.config_changes += 1;
                    self.announce_tracks();
                }
            }
            Err(_) => self.stats.dropped_video += 1,
        }
    }

    fn on_audio(&mut self, pes: Pes) {
        let Some(pts) = pes.pts else {
            self.stats.dropped_audio += 1;
            return;
        };
        let pts90 = self.audio_clock.unwrap(pts);
        if let Some(gate) = self.audio_gate {
            // Audio from before a video timeline break: drop until it has jumped too.
            if !(gate - SECOND..=gate + MAX_FORWARD_STEP).contains(&pts90) {
                self.stats.dropped_audio += 1;
                return;
            }
            self.audio_gate = None;
        }
        let (frames, err) = aac::adts_frames(&pes.data);
        if err.is_some() {
            self.stats.dropped_audio += 1;
        }
        for (i, f) in frames.into_iter().enumerate() {
            if f.blocks != 1 {
                self.stats.dropped_audio += 1;
                continue;
            }
            if self.aac != Some(f.config) {
                // A first configuration, or a new one: after the start, either is a
                // track change (audio joining late, or a new sample rate/profile).
                let had = self.aac.is_some();
                self.aac = Some(f.config);
                self.audio_next = None;
                if self.started || had {
                    self.stats.config_changes += 1;
                }
                if self.started {
                    self.announce_tracks();
                }
            }
            let rate = f.config.sample_rate;
            let frame_len = i64::from(aac::SAMPLES_PER_FRAME);
            // The PES PTS is the first frame's; later frames of the PES follow by
            // sample count. Across PES packets the running count wins unless the PTS
            // has wandered off it (a gap or a jump in the source).
            let dts = match self.audio_next {
                Some(next) if i > 0 => next,
                Some(next)
                    if (next - rescale(pts90, TS_TIMESCALE, rate)).abs()
                        <= AUDIO_RESYNC_FRAMES * frame_len =>
                {
                    next
                }
                _ => rescale(pts90, TS_TIMESCALE, rate),
            };
            self.audio_next = Some(dts + frame_len);
            self.stats.audio_frames += 1;
            let frame = Frame {
                track: self.audio_track.unwrap_or(0),
                dts,
                pts: dts,
                keyframe: true,
                duration: Some(aac::SAMPLES_PER_FRAME),
                data: pes.data.slice_ref(f.payload),
            };
            self.emit(TrackKind::Audio, frame);
        }
    }

    fn emit(&mut self, kind: TrackKind, mut frame: Frame) {
        if self.started {
            let track = match kind {
                TrackKind::Video => self.video_track,
                TrackKind::Audio => self.audio_track,
            };
            if let Some(t) = track {
                frame.track = t;
                self.out.push_back(FrontEndEvent::Frame(frame));
            }
            return;
        }
        self.startup.push((kind, frame));
        let video_ready = self.video_pid.is_none() || self.video_config.is_some();
        let audio_ready = self.audio_pid.is_none() || self.aac.is_some();
        let mut video = self.startup.iter().filter(|(k, _)| *k == TrackKind::Video);
        let video_span = match (video.next(), video.last()) {
            (Some((_, first)), Some((_, last))) => last.dts - first.dts,
            _ => 0,
        };
        if (video_ready && audio_ready) || video_span > MAX_STARTUP_WAIT {
            self.start();
        }
    }

    /// The track list from the configurations known now.
    fn tracks(&mut self) -> Vec<TrackInfo> {
        let mut tracks = Vec::new();
        self.video_track = None;
        self.audio_track = None;
        if let Some(video) = &self.video_config {
            self.video_track = Some(tracks.len());
            tracks.push(TrackInfo {
                id: tracks.len() as u32 + 1,
                timescale: TS_TIMESCALE,
                codec: video.clone(),
            });
        }
        if let Some(aac) = &self.aac {
            self.audio_track = Some(tracks.len());
            tracks.push(TrackInfo {
                id: tracks.len() as u32 + 1,
                timescale: aac.sample_rate,
                codec: CodecConfig::Aac(*aac),
            });
        }
        tracks
    }

    fn announce_tracks(&mut self) {
        let tracks = self.tracks();
        self.out.push_back(FrontEndEvent::Tracks(tracks));
    }

    fn start(&mut self) {
        let tracks = self.tracks();
        self.started = true;
        if tracks.is_empty() {
            return;
        }
        self.out.push_back(FrontEndEvent::Tracks(tracks));
        for (kind, frame) in std::mem::take(&mut self.startup) {
            self.emit(kind, frame);
        }
    }
}

impl From<TsError> for Error {
    fn from(e: TsError) -> Self {
        Error::Ts(e)
    }
}
