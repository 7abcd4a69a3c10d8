//! MPEG-TS front end: demuxed PES packets → track descriptions and timed frames.
//!
//! Takes the H.264 or H.265 streams of the program (the first one only, unless
//! [`TsFrontEnd::with_max_video`] allows more: a transcoder's ladder arrives as
//! one transport stream with a video stream per rung) and the first AAC (ADTS)
//! stream. Tracks are listed video first, in PMT order, then audio. Frames are
//! held back until every announced track has its decoder configuration (SPS+PPS
//! and an IDR for video, an ADTS header for audio), or until one second of video
//! has gone by without the missing track, so the init segment describes the
//! stream exactly once.
//!
//! Later changes are reported in band, before the frame they apply to:
//! [`FrontEndEvent::Tracks`] again when a decoder configuration changes (new SPS/PPS
//! on an IDR, new AAC configuration, a new PMT), and
//! [`FrontEndEvent::Discontinuity`] when the timestamps of the first video
//! stream jump (encoder restart, splice). The packager turns both into
//! `EXT-X-DISCONTINUITY`.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::breaks::SpliceCue;
use crate::codec::aac::{self, AacConfig};
use crate::codec::h264::{self, AvcConfig, Sps};
use crate::codec::h265::{self, HevcConfig, HevcSps};
use crate::codec::opus::{self, OpusConfig, OPUS_CLOCK};
use crate::media::{CodecConfig, Frame, TrackInfo};
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
/// The most video streams [`TsFrontEnd::with_max_video`] accepts.
pub const MAX_VIDEO_STREAMS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontEndEvent {
    /// The tracks are known (or changed); frames that follow index into this list.
    Tracks(Vec<TrackInfo>),
    /// The timeline breaks before the next frame (timestamps jumped).
    Discontinuity,
    Frame(Frame),
    /// An ad break starts or ends (SCTE-35 on a stream of type 0x86), its
    /// time on the frames' clock.
    Cue(SpliceCue),
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
    /// SCTE-35 sections read, and those refused (bad CRC, encrypted, truncated).
    pub splice_sections: u64,
    pub splice_errors: u64,
}

/// One video elementary stream and its decoder state.
#[derive(Debug)]
struct VideoEs {
    pid: u16,
    stream_type: StreamType,
    clock: Unwrapper,
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// The decoder configuration in effect (H.264 or H.265).
    config: Option<CodecConfig>,
    last_dts: Option<i64>,
    /// Index in the track list once started.
    track: Option<usize>,
}

impl VideoEs {
    fn new(pid: u16, stream_type: StreamType) -> Self {
        Self {
            pid,
            stream_type,
            clock: Unwrapper::default(),
            vps: None,
            sps: None,
            pps: None,
            config: None,
            last_dts: None,
            track: None,
        }
    }

    /// On an IDR/IRAP: the configuration the parameter sets in effect describe,
    /// when it differs from the current one (`Err`: they do not parse).
    fn new_config(&self) -> Result<Option<CodecConfig>, ()> {
        let (Some(sps_nal), Some(pps_nal)) = (&self.sps, &self.pps) else {
            return Ok(None);
        };
        match self.stream_type {
            StreamType::H265 => {
                let Some(vps_nal) = &self.vps else {
                    return Ok(None);
                };
                if let Some(CodecConfig::Hevc(c)) = &self.config {
                    if c.vps_nal == *vps_nal && c.sps_nal == *sps_nal && c.pps_nal == *pps_nal {
                        return Ok(None);
                    }
                }
                let sps = HevcSps::parse(sps_nal).map_err(|_| ())?;
                Ok(Some(CodecConfig::Hevc(HevcConfig {
                    sps,
                    vps_nal: vps_nal.clone(),
                    sps_nal: sps_nal.clone(),
                    pps_nal: pps_nal.clone(),
                })))
            }
            _ => {
                if let Some(CodecConfig::Avc(c)) = &self.config {
                    if c.sps_nal == *sps_nal && c.pps_nal == *pps_nal {
                        return Ok(None);
                    }
                }
                let sps = Sps::parse(sps_nal).map_err(|_| ())?;
                Ok(Some(CodecConfig::Avc(AvcConfig {
                    sps,
                    sps_nal: sps_nal.clone(),
                    pps_nal: pps_nal.clone(),
                })))
            }
        }
    }
}

/// The audio elementary stream and its decoder state.
#[derive(Debug)]
struct AudioEs {
    pid: u16,
    clock: Unwrapper,
    aac: Option<AacConfig>,
    next: Option<i64>,
    /// After a video timeline break: audio is accepted again once it is near this
    /// video DTS (audio from before the break is dropped).
    gate: Option<i64>,
    track: Option<usize>,
}

impl AudioEs {
    fn new(pid: u16) -> Self {
        Self {
            pid,
            clock: Unwrapper::default(),
            aac: None,
            next: None,
            gate: None,
            track: None,
        }
    }
}

/// The Opus stream and its timing.
#[derive(Debug)]
struct OpusEs {
    pid: u16,
    clock: Unwrapper,
    config: OpusConfig,
    /// DTS (48 kHz) the next packet starts at.
    next: Option<i64>,
    track: Option<usize>,
}

/// Which elementary stream a held frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Video(usize),
    Audio,
    Opus,
}

#[derive(Debug)]
pub struct TsFrontEnd {
    demux: Demuxer,
    max_video: usize,
    videos: Vec<VideoEs>,
    audio: Option<AudioEs>,
    opus: Option<OpusEs>,
    started: bool,
    /// Frames held before start, tagged by the stream they came from.
    startup: Vec<(Source, Frame)>,
    out: VecDeque<FrontEndEvent>,
    stats: FrontEndStats,
}

impl Default for TsFrontEnd {
    fn default() -> Self {
        Self {
            demux: Demuxer::default(),
            max_video: 1,
            videos: Vec::new(),
            audio: None,
            opus: None,
            started: false,
            startup: Vec::new(),
            out: VecDeque::new(),
            stats: FrontEndStats::default(),
        }
    }
}

impl TsFrontEnd {
    /// A front end that takes up to `n` video streams (clamped to
    /// 1..=[`MAX_VIDEO_STREAMS`]), each its own track.
    pub fn with_max_video(n: usize) -> Self {
        Self {
            max_video: n.clamp(1, MAX_VIDEO_STREAMS),
            ..Self::default()
        }
    }

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
                DemuxEvent::Section { data, .. } => self.on_splice(&data),
                DemuxEvent::Pes(pes) => {
                    if let Some(i) = self.videos.iter().position(|v| v.pid == pes.pid) {
                        self.on_video(i, pes);
                    } else if self.audio.as_ref().is_some_and(|a| a.pid == pes.pid) {
                        self.on_audio(pes);
                    } else if self.opus.as_ref().is_some_and(|o| o.pid == pes.pid) {
                        self.on_opus(pes);
                    }
                }
            }
        }
        Ok(())
    }

    fn on_program(&mut self, streams: Vec<EsInfo>) -> Result<(), Error> {
        // All video of the first video codec in the program (a ladder is one codec).
        let video_type = streams
            .iter()
            .map(|s| s.stream_type)
            .find(|t| matches!(t, StreamType::H264 | StreamType::H265));
        let video: Vec<(u16, StreamType)> = streams
            .iter()
            .filter(|s| Some(s.stream_type) == video_type)
            .take(self.max_video)
            .map(|s| (s.pid, s.stream_type))
            .collect();
        let audio = streams
            .iter()
            .find(|s| s.stream_type == StreamType::AacAdts)
            .map(|s| s.pid);
        // Mapping family 0 (mono or stereo) only: more channels would need
        // the channel mapping table in `dOps`, which the descriptor does not
        // carry in a form we package; such a stream is left out.
        let opus = streams
            .iter()
            .find(|s| s.stream_type == StreamType::Opus)
            .map(|s| (s.pid, s.opus_channels.unwrap_or(2)))
            .filter(|(_, channels)| (1..=2).contains(channels));
        if video.is_empty() && audio.is_none() && opus.is_none() {
            return Err(Error::Unsupported(format!(
                "no H.264, H.265, AAC or Opus stream in the program (stream types: {:?})",
                streams.iter().map(|s| s.stream_type).collect::<Vec<_>>()
            )));
        }
        let current: Vec<(u16, StreamType)> =
            self.videos.iter().map(|v| (v.pid, v.stream_type)).collect();
        let current_opus = self.opus.as_ref().map(|o| (o.pid, o.config.channels));
        if current == video && self.audio.as_ref().map(|a| a.pid) == audio && current_opus == opus {
            return Ok(());
        }
        // A different set of streams: start over as for a new stream; the packager
        // sees new tracks and cuts a discontinuity.
        if self.started {
            self.stats.config_changes += 1;
            self.started = false;
        }
        self.videos = video
            .into_iter()
            .map(|(pid, ty)| VideoEs::new(pid, ty))
            .collect();
        self.audio = audio.map(AudioEs::new);
        self.opus = opus.map(|(pid, channels)| OpusEs {
            pid,
            clock: Unwrapper::default(),
            config: OpusConfig {
                channels,
                ..OpusConfig::webrtc()
            },
            next: None,
            track: None,
        });
        Ok(())
    }

    /// A `splice_info_section`: its cue, timed on the first video stream's
    /// clock (the one frames are unwrapped on).
    fn on_splice(&mut self, section: &[u8]) {
        self.stats.splice_sections += 1;
        let info = match crate::scte35::parse(section) {
            Ok(info) => info,
            Err(_) => {
                self.stats.splice_errors += 1;
                return;
            }
        };
        let clock = self.videos.first().map(|v| v.clock.clone());
        let unwrap = |pts: u64| match clock {
            Some(mut c) => c.unwrap(pts),
            None => pts as i64,
        };
        if let Some(cue) = SpliceCue::from_section(&info, section, unwrap) {
            self.out.push_back(FrontEndEvent::Cue(cue));
        }
    }

    fn on_video(&mut self, i: usize, pes: Pes) {
        let (Some(pts), dts) = (pes.pts, pes.dts) else {
            self.stats.dropped_video += 1;
            return;
        };
        let es = &mut self.videos[i];
        let dts = es.clock.unwrap(dts.unwrap_or(pts));
        let pts = dts + (pts as i64 - dts.rem_euclid(1 << 33)).rem_euclid(1 << 33);
        let converted = match es.stream_type {
            StreamType::H265 => h265::annexb_to_sample(&pes.data)
                .map(|s| (Bytes::from(s.data), s.keyframe, s.vps, s.sps, s.pps)),
            // The PES payload is ours alone: converted in place when its layout allows.
            _ => h264::annexb_to_sample_owned(pes.data)
                .map(|s| (s.data, s.keyframe, None, s.sps, s.pps)),
        };
        let Some((data, keyframe, vps, sps, pps)) = converted else {
            self.stats.dropped_video += 1;
            return;
        };
        for (slot, set) in [(&mut es.vps, vps), (&mut es.sps, sps), (&mut es.pps, pps)] {
            if set.is_some() {
                *slot = set;
            }
        }
        if keyframe {
            match es.new_config() {
                Ok(Some(config)) => {
                    let changed = es.config.is_some();
                    es.config = Some(config);
                    if changed && self.started {
                        self.stats.config_changes += 1;
                        self.announce_tracks();
                    }
                }
                Ok(None) => {}
                Err(()) => self.stats.dropped_video += 1,
            }
        }
        let es = &mut self.videos[i];
        if es.config.is_none() {
            self.stats.dropped_video += 1; // nothing decodable before the first IDR with parameter sets
            return;
        }
        let jumped = self.started
            && es.last_dts.is_some_and(|last| {
                !(-MAX_BACKWARD_STEP..=MAX_FORWARD_STEP).contains(&(dts - last))
            });
        es.last_dts = Some(dts);
        // The first video stream speaks for the timeline; the others of a ladder
        // jump with it.
        if jumped && i == 0 {
            self.stats.timestamp_jumps += 1;
            self.out.push_back(FrontEndEvent::Discontinuity);
            if let Some(a) = &mut self.audio {
                a.gate = Some(dts);
                a.next = None;
            }
        }
        self.stats.video_frames += 1;
        let frame = Frame {
            track: 0,
            dts,
            pts,
            keyframe,
            duration: None,
            data,
        };
        self.emit(Source::Video(i), frame);
    }

    fn on_audio(&mut self, pes: Pes) {
        let Some(pts) = pes.pts else {
            self.stats.dropped_audio += 1;
            return;
        };
        let Some(es) = &mut self.audio else {
            return;
        };
        let pts90 = es.clock.unwrap(pts);
        if let Some(gate) = es.gate {
            // Audio from before a video timeline break: drop until it has jumped too.
            if !(gate - SECOND..=gate + MAX_FORWARD_STEP).contains(&pts90) {
                self.stats.dropped_audio += 1;
                return;
            }
            es.gate = None;
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
            let Some(es) = &mut self.audio else {
                return;
            };
            if es.aac != Some(f.config) {
                // A first configuration, or a new one: after the start, either is a
                // track change (audio joining late, or a new sample rate/profile).
                let had = es.aac.is_some();
                es.aac = Some(f.config);
                es.next = None;
                if self.started || had {
                    self.stats.config_changes += 1;
                }
                if self.started {
                    self.announce_tracks();
                }
            }
            let Some(es) = &mut self.audio else {
                return;
            };
            let rate = f.config.sample_rate;
            let frame_len = i64::from(aac::SAMPLES_PER_FRAME);
            // The PES PTS is the first frame's; later frames of the PES follow by
            // sample count. Across PES packets the running count wins unless the PTS
            // has wandered off it (a gap or a jump in the source).
            let dts = match es.next {
                Some(next) if i > 0 => next,
                Some(next)
                    if (next - rescale(pts90, TS_TIMESCALE, rate)).abs()
                        <= AUDIO_RESYNC_FRAMES * frame_len =>
                {
                    next
                }
                _ => rescale(pts90, TS_TIMESCALE, rate),
            };
            es.next = Some(dts + frame_len);
            self.stats.audio_frames += 1;
            let frame = Frame {
                track: 0,
                dts,
                pts: dts,
                keyframe: true,
                duration: Some(aac::SAMPLES_PER_FRAME),
                data: pes.data.slice_ref(f.payload),
            };
            self.emit(Source::Audio, frame);
        }
    }

    /// Opus packets behind their control headers; the PES PTS dates the
    /// first, the others follow by their durations.
    fn on_opus(&mut self, pes: Pes) {
        let Some(pts) = pes.pts else {
            self.stats.dropped_audio += 1;
            return;
        };
        let Some(es) = &mut self.opus else {
            return;
        };
        let start = rescale(es.clock.unwrap(pts), TS_TIMESCALE, OPUS_CLOCK);
        let (packets, malformed) = opus::ts_packets(&pes.data);
        if malformed {
            self.stats.dropped_audio += 1;
        }
        let mut frames = Vec::with_capacity(packets.len());
        let mut dts = match es.next {
            // Keep the running count unless the PTS has wandered off it.
            Some(next) if (next - start).abs() <= 2 * 960 => next,
            _ => start,
        };
        for packet in packets {
            let Some(duration) = opus::packet_duration(packet) else {
                self.stats.dropped_audio += 1;
                continue;
            };
            frames.push(Frame {
                track: 0,
                dts,
                pts: dts,
                keyframe: true,
                duration: Some(duration),
                data: pes.data.slice_ref(packet),
            });
            dts += i64::from(duration);
        }
        es.next = Some(dts);
        for frame in frames {
            self.stats.audio_frames += 1;
            self.emit(Source::Opus, frame);
        }
    }

    fn track_of(&self, source: Source) -> Option<usize> {
        match source {
            Source::Video(i) => self.videos.get(i).and_then(|v| v.track),
            Source::Audio => self.audio.as_ref().and_then(|a| a.track),
            Source::Opus => self.opus.as_ref().and_then(|o| o.track),
        }
    }

    fn emit(&mut self, source: Source, mut frame: Frame) {
        if self.started {
            if let Some(t) = self.track_of(source) {
                frame.track = t;
                self.out.push_back(FrontEndEvent::Frame(frame));
            }
            return;
        }
        self.startup.push((source, frame));
        let video_ready = self.videos.iter().all(|v| v.config.is_some());
        let audio_ready = self.audio.as_ref().is_none_or(|a| a.aac.is_some());
        let mut lead = self.startup.iter().filter(|(s, _)| *s == Source::Video(0));
        let video_span = match (lead.next(), lead.last()) {
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
        for v in &mut self.videos {
            v.track = None;
            if let Some(config) = &v.config {
                v.track = Some(tracks.len());
                tracks.push(TrackInfo {
                    id: tracks.len() as u32 + 1,
                    timescale: TS_TIMESCALE,
                    codec: config.clone(),
                });
            }
        }
        if let Some(a) = &mut self.audio {
            a.track = None;
            if let Some(aac) = &a.aac {
                a.track = Some(tracks.len());
                tracks.push(TrackInfo {
                    id: tracks.len() as u32 + 1,
                    timescale: aac.sample_rate,
                    codec: CodecConfig::Aac(*aac),
                });
            }
        }
        if let Some(o) = &mut self.opus {
            o.track = Some(tracks.len());
            tracks.push(TrackInfo {
                id: tracks.len() as u32 + 1,
                timescale: OPUS_CLOCK,
                codec: CodecConfig::Opus(o.config),
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
        for (source, frame) in std::mem::take(&mut self.startup) {
            self.emit(source, frame);
        }
    }
}

impl From<TsError> for Error {
    fn from(e: TsError) -> Self {
        Error::Ts(e)
    }
}
