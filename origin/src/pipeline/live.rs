//! One live stream session: which connection feeds it, and the media path
//! from that connection to the packager: direct (`passthrough`), or through
//! the stream's transcoder (`transcode`), which this module supervises.
//!
//! Transcoder supervision:
//! - started once the source's tracks are known, at a video keyframe (the
//!   source frames since the last keyframe are kept, so a start or restart
//!   does not wait for the next one);
//! - restarted when it exits (a crash: players see a discontinuity), when the
//!   source changes (new tracks, a timestamp jump, a reconnecting encoder);
//!   more than `max_restarts_per_minute` restarts and the next waits 30 s;
//! - too slow for real time (its output more than `max_lag_ms` behind its
//!   input, or its input queue full): the most expensive rung is dropped and
//!   it restarts with the rest. Never an unbounded buffer;
//! - down for a while (restart backoff, spawn failures) with a source rung:
//!   the source's video and AAC audio are packaged directly meanwhile
//!   (`source_while_down`), the other rungs pause.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use brook_packager::frontend::{FrontEndEvent, TsFrontEnd};
use brook_packager::media::{CodecConfig, Frame, TrackInfo, TrackKind};
use brook_packager::{PackagerConfig, UnixMillis};
use tracing::{error, info, warn};

use super::ladder::{self, LadderConfig, Mode, Plan};
use super::output::Output;
use super::transcoder::{self, Event, Transcoder};
use crate::egress::feed::{Feed, Feeds};
use crate::ingest::{Protocol, Stop};
use crate::metrics::Metrics;
use crate::serve::hub::Stream;
use crate::store::archive::Archive;

/// A stream whose session has not ended.
pub struct Live {
    output: Output,
    route: Route,
    /// Bumped whenever the feeding connection changes (reconnect, takeover, kick):
    /// a connection whose generation is stale is told to go away.
    generation: u64,
    connected: bool,
    /// The input cannot be packaged: this session cannot continue.
    failed: bool,
    ended: bool,
    metrics: Arc<Metrics>,
    /// Where the source's frames go for real-time egress (WHEP), and the
    /// registry it is closed in when the session ends.
    feed: Option<(Arc<Feeds>, Arc<Feed>)>,
    /// Demuxes a passthrough MPEG-TS source for the feed, while someone watches
    /// (the packager demuxes it for itself).
    tap: Option<TsFrontEnd>,
    /// For the transcoder's reader thread to find its way back.
    this: Weak<Mutex<Live>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("stream", &self.output.stream.name)
            .field("session", &self.output.session)
            .finish()
    }
}

enum Route {
    Passthrough,
    Transcode(Box<Ladder>),
}

impl Live {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        stream: Arc<Stream>,
        peer: SocketAddr,
        protocol: Protocol,
        mut packager: PackagerConfig,
        ladder: Arc<LadderConfig>,
        segment_target_ms: u32,
        archive: Option<Arc<Archive>>,
        metrics: Arc<Metrics>,
        feed: Option<(Arc<Feeds>, Arc<Feed>)>,
    ) -> Arc<Mutex<Live>> {
        if let Ok(mut st) = stream.stats.lock() {
            st.peer = Some(peer);
        }
        let session = stream.snapshot().session.clone();
        let route = match ladder.mode {
            Mode::Passthrough => Route::Passthrough,
            Mode::Transcode => {
                // Every rung of the transcoder's output is a rendition.
                packager.max_video_tracks = brook_packager::frontend::ts::MAX_VIDEO_STREAMS;
                // WebRTC viewers get Opus: made from AAC by the transcoder.
                let webrtc = feed.is_some();
                Route::Transcode(Box::new(Ladder::new(ladder, segment_target_ms, webrtc)))
            }
        };
        let mode = match route {
            Route::Passthrough => "passthrough",
            Route::Transcode(_) => "transcode",
        };
        info!(stream = %stream.name, %peer, %session, protocol = protocol.as_str(), mode, "publish started");
        let demuxes_source = matches!(route, Route::Passthrough);
        let output = Output::new(stream, session, packager, archive, demuxes_source);
        Arc::new_cyclic(|this| {
            Mutex::new(Live {
                output,
                route,
                generation: 1,
                connected: true,
                failed: false,
                ended: false,
                metrics,
                feed,
                tap: None,
                this: this.clone(),
            })
        })
    }

    pub fn name(&self) -> &str {
        &self.output.stream.name
    }

    pub fn session(&self) -> &str {
        &self.output.session
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.output.stream
    }

    /// The stream session's real-time feed (none for encrypted streams, or
    /// without WHEP).
    pub fn feed(&self) -> Option<&Arc<Feed>> {
        self.feed.as_ref().map(|(_, f)| f)
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn bump_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    pub fn packager_stats(&self) -> brook_packager::PackagerStats {
        let mut stats = self.output.packager().stats();
        if let Route::Transcode(l) = &self.route {
            // The source's demuxer is ours, not the packager's.
            stats.demux = l.demux.demux_stats();
            stats.frames = l.demux.stats();
        }
        stats
    }

    /// A new connection continues this session (reconnect, takeover); `None`
    /// when the session cannot continue. Returns the new generation.
    pub fn resume(&mut self, peer: SocketAddr, protocol: Protocol) -> Option<u64> {
        if self.failed || self.ended {
            self.bump_generation();
            return None;
        }
        let was = if self.connected {
            // The old connection's input ends here (it is told to go on its
            // next write); after a disconnect this already happened.
            self.input_ended();
            "taken over"
        } else {
            "resumed"
        };
        self.bump_generation();
        self.connected = true;
        let stream = self.output.stream.clone();
        if let Ok(mut st) = stream.stats.lock() {
            st.connections += 1;
            st.peer = Some(peer);
        }
        stream.set_publishing(true);
        self.output.set_live(true);
        info!(stream = %stream.name, %peer, session = %self.output.session, protocol = protocol.as_str(), "publish {was}");
        Some(self.generation)
    }

    /// The connection of `generation` went away. `false`: it was not the
    /// current one (or the stream ended) and nothing changes.
    pub fn detach(&mut self, generation: u64) -> bool {
        if self.generation != generation || self.ended {
            return false;
        }
        self.connected = false;
        if let Ok(mut st) = self.output.stream.stats.lock() {
            st.peer = None;
            st.bitrate_bps = 0.0;
        }
        if !self.failed {
            self.input_ended();
            // Viewers see a stream that is not publishing but not over.
            self.output.set_live(false);
        }
        true
    }

    /// What the old input left goes out; the next input starts after an
    /// `EXT-X-DISCONTINUITY`.
    fn input_ended(&mut self) {
        let now = crate::unix_now();
        self.tap = None;
        if let Some((_, feed)) = &self.feed {
            feed.restart();
        }
        match &mut self.route {
            Route::Passthrough => self.output.restart_input(now),
            Route::Transcode(l) => {
                l.demux = TsFrontEnd::default();
                l.source_changed(
                    &mut self.output,
                    &self.metrics,
                    "the publisher reconnected",
                    now,
                );
            }
        }
    }

    /// Ends the session: last part and segment, ENDLIST, archive to VOD; the
    /// transcoder stops.
    pub fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.connected = false;
        if let Route::Transcode(l) = &mut self.route {
            l.stop();
        }
        let now = crate::unix_now();
        if let Some((feeds, feed)) = self.feed.take() {
            feeds.close(&feed);
        }
        self.output.finish(now);
        self.output.stream.set_publishing(false);
        self.output.stream.end_publish();
        let p = self.packager_stats();
        info!(stream = %self.name(), session = %self.session(), segments = p.segments, "stream ended");
    }

    /// Checks that `generation` still feeds this stream.
    pub fn current(&self, generation: u64) -> Result<(), Stop> {
        if self.ended {
            return Err(Stop::Ended);
        }
        if self.generation != generation {
            return Err(Stop::Replaced);
        }
        Ok(())
    }

    pub fn push_ts(&mut self, bytes: &[u8], now: UnixMillis) -> Result<(), Stop> {
        let feed = self.feed.as_ref().map(|(_, f)| f);
        let result = match &mut self.route {
            Route::Passthrough => {
                if let Some(feed) = feed.filter(|f| f.watched()) {
                    let tap = self.tap.get_or_insert_with(TsFrontEnd::default);
                    // The packager reports what is wrong with the input.
                    let _ = tap.push(bytes);
                    while let Some(ev) = tap.poll() {
                        to_feed(feed, &ev, now);
                    }
                } else {
                    self.tap = None;
                }
                self.output.push_ts(bytes, now)
            }
            Route::Transcode(l) => {
                let result = l.demux.push(bytes);
                while let Some(ev) = l.demux.poll() {
                    if let Some(feed) = feed {
                        to_feed(feed, &ev, now);
                    }
                    l.on_source(ev, &mut self.output, &self.metrics, &self.this, now);
                }
                if let Ok(mut st) = self.output.stream.stats.lock() {
                    st.continuity_errors = l.demux.demux_stats().continuity_errors;
                }
                result
            }
        };
        result.map_err(|e| {
            self.failed = true;
            Stop::Refused(e)
        })
    }

    /// An ad break from the admin API, for the packager of the renditions.
    pub fn push_cue(&mut self, cue: brook_packager::breaks::SpliceCue, now: UnixMillis) -> bool {
        self.output.push_cue(cue, now)
    }

    pub fn push_tracks(&mut self, tracks: Vec<TrackInfo>, now: UnixMillis) {
        if let Some((_, feed)) = &self.feed {
            feed.push_tracks(&tracks);
        }
        match &mut self.route {
            Route::Passthrough => self.output.push_tracks(tracks, now),
            Route::Transcode(l) => l.on_source(
                FrontEndEvent::Tracks(tracks),
                &mut self.output,
                &self.metrics,
                &self.this,
                now,
            ),
        }
    }

    pub fn push_frame(&mut self, frame: Frame, now: UnixMillis) {
        if let Some((_, feed)) = &self.feed {
            feed.push_frame(&frame, now);
        }
        match &mut self.route {
            Route::Passthrough => self.output.push_frame(frame, now),
            Route::Transcode(l) => l.on_source(
                FrontEndEvent::Frame(frame),
                &mut self.output,
                &self.metrics,
                &self.this,
                now,
            ),
        }
    }

    /// Something from the transcoder with id `id` (on its reader thread).
    fn on_transcoder(&mut self, id: u64, event: Event) {
        let Route::Transcode(l) = &mut self.route else {
            return;
        };
        if self.ended {
            return;
        }
        if let (Event::Output(bytes), Some((_, feed))) = (&event, &self.feed) {
            l.opus_to_feed(id, bytes, feed, crate::unix_now());
        }
        l.on_transcoder(
            id,
            event,
            &mut self.output,
            &self.metrics,
            crate::unix_now(),
        );
    }
}

/// A source event into the real-time feed.
fn to_feed(feed: &Feed, ev: &FrontEndEvent, now: UnixMillis) {
    match ev {
        FrontEndEvent::Tracks(t) => feed.push_tracks(t),
        FrontEndEvent::Frame(f) => feed.push_frame(f, now),
        FrontEndEvent::Discontinuity => feed.restart(),
        FrontEndEvent::Cue(_) => {}
    }
}

/// The source's frames per second, from the spacing of its video DTS.
#[derive(Debug, Default)]
struct FrameRate {
    first: Option<i64>,
    last: i64,
    frames: u64,
    timescale: u32,
}

impl FrameRate {
    fn observe(&mut self, dts: i64, timescale: u32) {
        self.timescale = timescale;
        self.first.get_or_insert(dts);
        self.last = dts;
        self.frames += 1;
    }

    fn fps(&self) -> Option<f64> {
        let first = self.first?;
        (self.frames >= 8 && self.last > first).then(|| {
            (self.frames - 1) as f64 * f64::from(self.timescale) / (self.last - first) as f64
        })
    }
}

/// Source frames kept for a (re)start at the latest keyframe.
const MAX_GOP_FRAMES: usize = 600;
/// Video frames seen before a first start (to know the source's frame rate).
const FRAMES_BEFORE_START: usize = 8;
/// After a (re)start: the backlog of buffered frames is not a sign of slowness.
const START_GRACE: Duration = Duration::from_secs(5);
/// Wait after too many restarts within a minute.
const RESTART_BACKOFF: Duration = Duration::from_secs(30);
/// Frames the transcoder's input queue holds (~2 s of 30 fps video and audio).
const QUEUE_FRAMES: usize = 200;

/// The transcode route: the source's demuxer and the transcoder it feeds.
struct Ladder {
    config: Arc<LadderConfig>,
    settings: transcoder::Settings,
    /// Demuxes MPEG-TS sources (SRT); frame sources skip it.
    demux: TsFrontEnd,
    tracks: Option<Vec<TrackInfo>>,
    /// Index of the source's video track.
    video: Option<usize>,
    /// Source frames since the latest video keyframe, and when they arrived.
    gop: Vec<(Frame, UnixMillis)>,
    rate: FrameRate,
    /// The session's plan: its renditions stay for the session.
    plan: Option<Plan>,
    /// Rungs dropped because the machine could not keep up.
    dropped: BTreeSet<String>,
    running: Option<Running>,
    next_id: u64,
    /// When recent restarts happened (for the backoff).
    restarts: VecDeque<Instant>,
    not_before: Option<Instant>,
    /// Why the next start is a restart, for the log.
    restart_reason: Option<String>,
    /// The source rung served without the transcoder while it is down.
    fallback: Option<Fallback>,
    /// Make Opus from AAC for the real-time feed (the stream has one).
    webrtc_opus: bool,
    /// The running transcoder's Opus, demuxed back from its output for the
    /// feed while someone watches.
    opus_tap: Option<OpusTap>,
}

/// Opus bit rate made for WebRTC viewers from an AAC source (stereo).
const WEBRTC_OPUS_KBPS: u32 = 96;

/// Opus out of the transcoder's MPEG-TS, into the feed beside the source's
/// tracks. Its timestamps are the source's (`-copyts`), so it lines up with
/// the source's video there.
#[derive(Default)]
struct OpusTap {
    demux: TsFrontEnd,
    /// The Opus track's index in the output's track list.
    opus: Option<usize>,
}

/// The source's video and AAC audio, packaged directly while the transcoder
/// is down (`source_while_down`).
struct Fallback {
    /// The packager's track list: the source's video, then its AAC audio.
    tracks: Vec<TrackInfo>,
    /// Source track index -> index in `tracks`.
    map: Vec<Option<usize>>,
    /// Frames flow once a video keyframe has come.
    started: bool,
}

struct Running {
    id: u64,
    transcoder: Transcoder,
    started: Instant,
    /// The lead rung is the copied source (its output DTS are the source's).
    copy_lead: bool,
    /// (source DTS or PTS, as the lead's output will carry it; when it went in).
    sent: VecDeque<(i64, Instant)>,
    /// (when, lead output media seconds): the windowed speed.
    progress: VecDeque<(Instant, f64)>,
}

impl Ladder {
    fn new(config: Arc<LadderConfig>, segment_target_ms: u32, webrtc_opus: bool) -> Self {
        let settings = transcoder::Settings {
            ffmpeg: config.ffmpeg.clone(),
            keyframe_interval_ms: config
                .keyframe_interval_ms
                .map_or(segment_target_ms, |k| k.min(segment_target_ms)),
            threads: config.threads,
            queue_frames: QUEUE_FRAMES,
            filter_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            vaapi_device: config.vaapi_device.clone(),
        };
        Ladder {
            config,
            settings,
            demux: TsFrontEnd::default(),
            tracks: None,
            video: None,
            gop: Vec::new(),
            rate: FrameRate::default(),
            plan: None,
            dropped: BTreeSet::new(),
            running: None,
            next_id: 1,
            restarts: VecDeque::new(),
            not_before: None,
            restart_reason: None,
            fallback: None,
            webrtc_opus,
            opus_tap: None,
        }
    }

    /// The running transcoder's output, for the feed: its Opus track is
    /// appended to the source's tracks there, with its frames. WebRTC viewers
    /// take the first Opus track (`egress::whep`); the source's AAC beside it
    /// is ignored by them.
    fn opus_to_feed(&mut self, id: u64, bytes: &[u8], feed: &Feed, now: UnixMillis) {
        let makes_opus = self.plan.as_ref().is_some_and(|p| p.make_opus.is_some());
        if self.running.as_ref().map(|r| r.id) != Some(id) || !makes_opus {
            return;
        }
        let Some(source) = &self.tracks else {
            return;
        };
        if !feed.watched() {
            // Demuxed only for viewers; a new one starts on the next PSI.
            self.opus_tap = None;
            return;
        }
        let tap = self.opus_tap.get_or_insert_with(OpusTap::default);
        // The packager reports what is wrong with the output.
        let _ = tap.demux.push(bytes);
        while let Some(ev) = tap.demux.poll() {
            match ev {
                FrontEndEvent::Tracks(tracks) => {
                    tap.opus = tracks
                        .iter()
                        .position(|t| matches!(t.codec, CodecConfig::Opus(_)));
                    if let Some(opus) = tap.opus.and_then(|i| tracks.get(i)) {
                        let mut list = source.clone();
                        list.push(opus.clone());
                        feed.push_tracks(&list);
                    }
                }
                FrontEndEvent::Frame(mut f) if Some(f.track) == tap.opus => {
                    f.track = source.len();
                    feed.push_frame(&f, now);
                }
                _ => {}
            }
        }
    }

    fn on_source(
        &mut self,
        ev: FrontEndEvent,
        output: &mut Output,
        metrics: &Metrics,
        this: &Weak<Mutex<Live>>,
        now: UnixMillis,
    ) {
        match ev {
            FrontEndEvent::Tracks(tracks) => {
                if self.tracks.as_ref() == Some(&tracks) {
                    return;
                }
                let reason = if self.tracks.is_some() {
                    "the source's configuration changed"
                } else {
                    "start"
                };
                self.video = tracks.iter().position(|t| t.kind() == TrackKind::Video);
                self.tracks = Some(tracks);
                self.rate = FrameRate::default();
                if reason != "start" {
                    self.source_changed(output, metrics, reason, now);
                }
            }
            FrontEndEvent::Discontinuity => {
                self.source_changed(output, metrics, "the source's timestamps jumped", now);
            }
            FrontEndEvent::Frame(frame) => self.on_frame(frame, output, metrics, this, now),
            // The source's SCTE-35: the rungs keep the source's timestamps,
            // so its splice times hold for the packager of the ladder.
            FrontEndEvent::Cue(cue) => {
                output.push_cue(cue, now);
            }
        }
    }

    /// The source changed under the transcoder: stop it; the next one starts
    /// at the next keyframe (with the same renditions).
    fn source_changed(
        &mut self,
        output: &mut Output,
        metrics: &Metrics,
        why: &str,
        now: UnixMillis,
    ) {
        self.gop.clear();
        if self.running.is_some() {
            self.stop();
            output.restart_input(now);
            metrics.transcoder_restarts.add("source_change");
            self.restart_reason = Some(why.to_string());
        } else if self.fallback.take().is_some() {
            // Serving the source directly: it goes on with the new source.
            output.restart_input(now);
            let copy = self.plan_copies_source(self.plan.as_ref());
            self.enter_fallback(output, copy);
        }
    }

    /// Whether `plan` serves the source as its top rung.
    fn plan_copies_source(&self, plan: Option<&Plan>) -> bool {
        plan.and_then(|p| p.rungs.first()).is_some_and(|r| r.copy)
    }

    /// The transcoder cannot run for a while: serve the source rung (and
    /// the source's AAC audio) directly until it can, if configured and the
    /// plan (`copy`) has a source rung. The caller has restarted the output's
    /// input, if it had one.
    fn enter_fallback(&mut self, output: &mut Output, copy: bool) {
        if !self.config.source_while_down || !copy || self.fallback.is_some() {
            return;
        }
        let Some(tracks) = &self.tracks else {
            return;
        };
        let mut map = vec![None; tracks.len()];
        let mut out: Vec<TrackInfo> = Vec::new();
        // The first H.264 video and the first AAC audio; other tracks stay out.
        for (i, t) in tracks.iter().enumerate() {
            let wanted = match (&t.codec, t.kind()) {
                (CodecConfig::Avc(_), TrackKind::Video)
                | (CodecConfig::Aac(_), TrackKind::Audio) => {
                    !out.iter().any(|o| o.kind() == t.kind())
                }
                _ => false,
            };
            if wanted {
                map[i] = Some(out.len());
                let mut info = t.clone();
                info.id = out.len() as u32 + 1;
                out.push(info);
            }
        }
        let has_audio = tracks.iter().any(|t| t.kind() == TrackKind::Audio);
        let why_not = if !out.iter().any(|t| t.kind() == TrackKind::Video) {
            Some("its video is not H.264")
        } else if has_audio && !out.iter().any(|t| t.kind() == TrackKind::Audio) {
            Some("its audio is not AAC")
        } else {
            None
        };
        if let Some(why) = why_not {
            warn!(stream = %output.stream.name, "the transcoder is down; the source rung is not served alone: {why}");
            return;
        }
        let names = out
            .iter()
            .map(|t| match t.kind() {
                TrackKind::Video => ladder::SOURCE_RUNG.to_string(),
                TrackKind::Audio => ladder::AUDIO.to_string(),
            })
            .collect();
        output.set_rendition_names(names);
        output.set_skipped_tracks(Vec::new());
        warn!(stream = %output.stream.name, "the transcoder is down: serving the source rung directly until it is back; the other rungs pause");
        self.fallback = Some(Fallback {
            tracks: out,
            map,
            started: false,
        });
    }

    /// A source frame while the transcoder is down: straight to the packager
    /// (from the first video keyframe on).
    fn fallback_frame(&mut self, frame: &Frame, output: &mut Output, now: UnixMillis) {
        let Some(fb) = &mut self.fallback else {
            return;
        };
        let Some(track) = fb.map.get(frame.track).copied().flatten() else {
            return;
        };
        let is_video = fb.tracks[track].kind() == TrackKind::Video;
        if !fb.started {
            if !(is_video && frame.keyframe) {
                return;
            }
            fb.started = true;
            let timescale = fb.tracks[track].timescale.max(1);
            output.anchor_next_timeline(frame.dts as f64 / f64::from(timescale), now);
            output.push_tracks(fb.tracks.clone(), now);
        }
        output.push_frame(
            Frame {
                track,
                ..frame.clone()
            },
            now,
        );
    }

    fn on_frame(
        &mut self,
        frame: Frame,
        output: &mut Output,
        metrics: &Metrics,
        this: &Weak<Mutex<Live>>,
        now: UnixMillis,
    ) {
        let is_video = Some(frame.track) == self.video;
        if is_video {
            if let Some(ts) = self.tracks.as_ref().and_then(|t| t.get(frame.track)) {
                self.rate.observe(frame.dts, ts.timescale);
            }
            if frame.keyframe {
                self.gop.clear();
            }
        }
        // Keep the current GOP (from its keyframe) for a start or restart.
        let gop_open = !self.gop.is_empty() || (is_video && frame.keyframe) || self.video.is_none();
        if gop_open && self.gop.len() < MAX_GOP_FRAMES {
            self.gop.push((frame.clone(), now));
        }
        if let Some(run) = &mut self.running {
            if is_video {
                let key = if run.copy_lead { frame.dts } else { frame.pts };
                run.sent.push_back((key, Instant::now()));
                while run.sent.len() > MAX_GOP_FRAMES {
                    run.sent.pop_front();
                }
            }
            if run.transcoder.push(&frame).is_err() {
                metrics
                    .transcoder_input_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.too_slow(output, metrics, "its input queue is full", now);
            }
            return;
        }
        // While the source is served directly, the transcoder comes back only
        // at a keyframe: the GOP it would be given is then just that frame,
        // so nothing already served is served again (and the dates do not go
        // back).
        if self.fallback.is_none() || (is_video && frame.keyframe) {
            self.maybe_start(output, metrics, this, now);
        }
        if self.running.is_none() {
            self.fallback_frame(&frame, output, now);
        }
    }

    fn maybe_start(
        &mut self,
        output: &mut Output,
        metrics: &Metrics,
        this: &Weak<Mutex<Live>>,
        now: UnixMillis,
    ) {
        let Some(tracks) = self.tracks.clone() else {
            return;
        };
        if self.gop.is_empty() {
            return;
        }
        // The first start waits a few frames to learn the source's frame rate.
        let video_frames = self
            .gop
            .iter()
            .filter(|(f, _)| Some(f.track) == self.video)
            .count();
        if self.plan.is_none() && self.video.is_some() && video_frames < FRAMES_BEFORE_START {
            return;
        }
        let at = Instant::now();
        if self.not_before.is_some_and(|t| at < t) {
            return;
        }
        let plan = match ladder::plan(
            &self.config,
            &tracks,
            self.rate.fps(),
            self.plan.as_ref(),
            &self.dropped,
        ) {
            Ok(mut p) => {
                let aac = tracks
                    .iter()
                    .find(|t| t.kind() == TrackKind::Audio)
                    .is_some_and(|t| matches!(t.codec, CodecConfig::Aac(_)));
                if self.webrtc_opus && aac && p.keep_opus.is_none() {
                    p.make_opus = Some(WEBRTC_OPUS_KBPS);
                }
                p
            }
            Err(e) => {
                error!(stream = %output.stream.name, "no ladder for this source: {e}");
                self.not_before = Some(at + RESTART_BACKOFF);
                return;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let weak = this.clone();
        let started = Transcoder::spawn(
            &plan,
            tracks,
            &self.settings,
            output.stream.name.clone(),
            move |event| {
                if let Some(live) = weak.upgrade() {
                    super::lock(&live).on_transcoder(id, event);
                }
            },
        );
        let mut transcoder = match started {
            Ok(t) => t,
            Err(e) => {
                error!(stream = %output.stream.name, ffmpeg = %self.settings.ffmpeg.display(), "starting the transcoder: {e}");
                metrics.transcoder_restarts.add("spawn_failed");
                self.note_restart(at);
                self.not_before = Some(at + Duration::from_secs(2).max(self.backoff(at)));
                let copy = self.plan_copies_source(Some(&plan));
                self.enter_fallback(output, copy);
                return;
            }
        };
        // The packager's input starts afresh for the new child's stream, its
        // dates those of the source's arrival (so the transcoder's delay shows
        // in every player's latency).
        if self.fallback.take().is_some() {
            info!(stream = %output.stream.name, "the transcoder is back: every rung again");
        }
        output.set_rendition_names(plan.rendition_names());
        output.set_skipped_tracks(plan.webrtc_only_outputs());
        output.restart_input(now);
        let copy_lead = plan.rungs.first().is_some_and(|r| r.copy);
        let lead_time = |f: &Frame| if copy_lead { f.dts } else { f.pts };
        let first = self
            .gop
            .iter()
            .find(|(f, _)| self.video.is_none() || Some(f.track) == self.video);
        if let Some((f, arrived)) = first {
            let timescale = tracks_timescale(self.tracks.as_deref(), f.track);
            output.anchor_next_timeline(lead_time(f) as f64 / f64::from(timescale), *arrived);
        }
        let mut sent = VecDeque::new();
        for (f, _) in &self.gop {
            if Some(f.track) == self.video {
                sent.push_back((lead_time(f), at));
            }
            let _ = transcoder.push(f);
        }
        let names = plan.rendition_names().join(",");
        match self.restart_reason.take() {
            Some(why) => {
                warn!(stream = %output.stream.name, pid = transcoder.pid(), renditions = %names, "transcoder restarted: {why}")
            }
            None => {
                info!(stream = %output.stream.name, pid = transcoder.pid(), renditions = %names, fps = ?self.rate.fps(), "transcoder started")
            }
        }
        metrics.transcoder_starts.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut st) = output.stream.stats.lock() {
            st.transcoder_pid = Some(transcoder.pid());
            st.renditions = plan.rungs.len() as u64;
        }
        self.plan = Some(plan);
        self.opus_tap = None;
        self.running = Some(Running {
            id,
            transcoder,
            started: at,
            copy_lead,
            sent,
            progress: VecDeque::new(),
        });
    }

    fn note_restart(&mut self, at: Instant) {
        self.restarts.push_back(at);
        while self
            .restarts
            .front()
            .is_some_and(|t| at.duration_since(*t) > Duration::from_secs(60))
        {
            self.restarts.pop_front();
        }
    }

    /// How long the next start must wait: nothing, unless restarts came too often.
    fn backoff(&self, _at: Instant) -> Duration {
        if self.restarts.len() as u32 > self.config.max_restarts_per_minute {
            RESTART_BACKOFF
        } else {
            Duration::ZERO
        }
    }

    fn stop(&mut self) {
        if let Some(mut run) = self.running.take() {
            run.transcoder.kill();
        }
    }

    /// The machine cannot keep up: drop the most expensive rung and restart
    /// with the rest (their renditions continue after a discontinuity).
    fn too_slow(&mut self, output: &mut Output, metrics: &Metrics, why: &str, now: UnixMillis) {
        let Some(plan) = &self.plan else {
            return;
        };
        let encoded = plan.rungs.iter().filter(|r| !r.copy).count();
        let victim = plan.most_expensive().map(|r| r.name.clone());
        let stream = output.stream.name.clone();
        match victim {
            Some(name) if encoded > 1 || plan.rungs.len() > 1 => {
                warn!(stream = %stream, rung = %name, "the transcoder cannot keep up ({why}): dropping its most expensive rung");
                self.dropped.insert(name.clone());
                metrics
                    .transcoder_rungs_dropped
                    .fetch_add(1, Ordering::Relaxed);
                metrics.transcoder_restarts.add("slow");
                self.restart_reason = Some(format!("too slow ({why}); without rung {name}"));
                self.stop();
                output.restart_input(now);
                output.retire_rendition(&name, now);
                self.gop.clear();
            }
            _ => {
                // One rung left: restarting would not help; keep it and say so.
                if let Some(run) = &mut self.running {
                    if run.started.elapsed() > START_GRACE {
                        warn!(stream = %stream, "the transcoder cannot keep up ({why}) with its last rung");
                        run.started = Instant::now();
                    }
                }
            }
        }
    }

    fn on_transcoder(
        &mut self,
        id: u64,
        event: Event,
        output: &mut Output,
        metrics: &Metrics,
        now: UnixMillis,
    ) {
        if self.running.as_ref().map(|r| r.id) != Some(id) {
            return; // a child that was stopped: its leftovers are not ours
        }
        match event {
            Event::Output(bytes) => {
                if let Err(e) = output.push_ts(&bytes, now) {
                    error!(stream = %output.stream.name, "the transcoder's output was refused: {e}");
                }
                self.measure(output, metrics, now);
            }
            Event::Exited { status, stderr } => {
                let at = Instant::now();
                let status = status.map_or("unknown".to_string(), |s| s.to_string());
                let uptime = self
                    .running
                    .as_ref()
                    .map_or(0, |r| r.started.elapsed().as_millis() as u64);
                error!(
                    stream = %output.stream.name,
                    %status,
                    uptime_ms = uptime,
                    stderr = %stderr.join(" | "),
                    "the transcoder exited; restarting it"
                );
                metrics.transcoder_restarts.add("exited");
                self.running = None;
                self.note_restart(at);
                let wait = self.backoff(at);
                if !wait.is_zero() {
                    warn!(stream = %output.stream.name, "{} transcoder restarts within a minute: waiting {} s", self.restarts.len(), wait.as_secs());
                }
                self.not_before = Some(at + wait);
                self.restart_reason = Some(format!("it exited ({status})"));
                output.restart_input(now);
                if !wait.is_zero() {
                    let copy = self.plan_copies_source(self.plan.as_ref());
                    self.enter_fallback(output, copy);
                }
                if let Ok(mut st) = output.stream.stats.lock() {
                    st.transcoder_pid = None;
                    st.transcoder_restarts += 1;
                }
            }
        }
    }

    /// The transcoder's delay (when its lead output came out against when that
    /// frame went in) and speed; acts when it has fallen too far behind.
    fn measure(&mut self, output: &mut Output, metrics: &Metrics, now: UnixMillis) {
        let Some(run) = &mut self.running else {
            return;
        };
        let Some((dts, pts, timescale)) = output.packager().latest_lead() else {
            return;
        };
        let at = Instant::now();
        let key = if run.copy_lead { dts } else { pts };
        // The output's clock may have wrapped where the source's was unwrapped.
        const WRAP: i64 = 1 << 33;
        // The newest input frame at or before the output's: that frame.
        let mut latency = None;
        while let Some(&(k, t)) = run.sent.front() {
            if k.rem_euclid(WRAP) > key.rem_euclid(WRAP) {
                break;
            }
            latency = Some(at.duration_since(t));
            run.sent.pop_front();
        }
        let media = dts as f64 / f64::from(timescale.max(1));
        run.progress.push_back((at, media));
        while run
            .progress
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > Duration::from_secs(10))
        {
            run.progress.pop_front();
        }
        let speed = match (run.progress.front(), run.progress.back()) {
            (Some((t0, m0)), Some((t1, m1)))
                if t1.duration_since(*t0) >= Duration::from_secs(5) =>
            {
                Some((m1 - m0) / t1.duration_since(*t0).as_secs_f64())
            }
            _ => None,
        };
        if let Ok(mut st) = output.stream.stats.lock() {
            if let Some(l) = latency {
                st.transcoder_latency_s = l.as_secs_f64();
            }
            if let Some(s) = speed {
                st.transcoder_speed = s;
            }
        }
        let settled = run.started.elapsed() > START_GRACE;
        let behind =
            latency.is_some_and(|l| l > Duration::from_millis(u64::from(self.config.max_lag_ms)));
        if settled && behind {
            let why = format!(
                "{:.1} s behind its input, speed {}",
                latency.unwrap_or_default().as_secs_f64(),
                speed.map_or("?".into(), |s| format!("{s:.2}x"))
            );
            self.too_slow(output, metrics, &why, now);
        }
    }
}

fn tracks_timescale(tracks: Option<&[TrackInfo]>, track: usize) -> u32 {
    tracks
        .and_then(|t| t.get(track))
        .map_or(90_000, |t| t.timescale)
        .max(1)
}

impl Drop for Ladder {
    fn drop(&mut self) {
        self.stop();
    }
}
