//! One live stream: MPEG-TS bytes in; named CMAF objects and an LL-HLS playlist out.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::cmaf;
use crate::frontend::{FrontEndEvent, FrontEndStats, TsFrontEnd};
use crate::hls::{
    Map, MediaPlaylist, MultivariantPlaylist, Part, PreloadHint, Segment, ServerControl, Variant,
};
use crate::media::{Frame, TrackInfo, TrackKind};
use crate::segmenter::{PartOut, SegmentOut, Segmenter, SegmenterConfig, SegmenterOutput};
use crate::time::UnixMillis;
use crate::ts::DemuxStats;
use crate::Error;

/// Name of the initialization segment.
pub const INIT_NAME: &str = "init.mp4";
/// Name of the media playlist, relative to the multivariant playlist.
pub const MEDIA_PLAYLIST_NAME: &str = "media.m3u8";

pub fn segment_name(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

pub fn part_name(msn: u64, index: u64) -> String {
    format!("part{msn}.{index}.m4s")
}

/// Packaging settings. Defaults favour latency; see `docs/packager.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackagerConfig {
    pub segmenter: SegmenterConfig,
    /// Complete segments kept in the live playlist.
    pub window_segments: usize,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            segmenter: SegmenterConfig::default(),
            window_segments: 10,
        }
    }
}

/// What kind of object an [`Event::Object`] is; it decides how it is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Init,
    Part,
    Segment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new immutable object to serve under `name`, relative to the media playlist.
    Object {
        name: String,
        kind: ObjectKind,
        data: Bytes,
    },
    /// An object left the live window and is no longer referenced.
    Evicted { name: String },
    /// The media playlist changed; every object it references was emitted before.
    PlaylistChanged,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackagerStats {
    pub demux: DemuxStats,
    pub frames: FrontEndStats,
    pub parts: u64,
    pub segments: u64,
    /// Timeline breaks: input restarts, timestamp jumps, configuration changes.
    pub discontinuities: u64,
}

/// Packages one live stream.
///
/// ```
/// use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};
/// let mut packager = Packager::new(PackagerConfig::default());
/// # let bytes = &[][..]; let now = UnixMillis(0);
/// packager.push_ts(bytes, now)?;           // bytes off the wire, and the time they came
/// while let Some(event) = packager.poll() {
///     match event {
///         Event::Object { name, data, .. } => { /* store and serve `data` as `name` */ }
///         Event::Evicted { name } => { /* stop serving `name` */ }
///         Event::PlaylistChanged => { let _text = packager.media_playlist().to_string(); }
///     }
/// }
/// # Ok::<(), brook_packager::Error>(())
/// ```
#[derive(Debug)]
pub struct Packager {
    config: PackagerConfig,
    front: TsFrontEnd,
    segmenter: Option<Segmenter>,
    playlist: MediaPlaylist,
    events: VecDeque<Event>,
    /// (lead-track time, wall clock) pair that maps media time to program date time.
    anchor: Option<(i64, UnixMillis)>,
    latest_lead_dts: Option<i64>,
    /// Bytes and lead ticks of recent parts, for bit rate estimates.
    recent_parts: VecDeque<(usize, i64)>,
    peak_bitrate: u64,
    lead_frames: u64,
    lead_first_dts: Option<i64>,
    /// (msn, number of parts) of every segment in the window, to evict the parts.
    part_counts: VecDeque<(u64, usize)>,
    /// Tracks of the current (or, between inputs, the last) timeline.
    tracks: Vec<TrackInfo>,
    /// Name of the init segment describing `tracks`; empty before the first.
    init_name: String,
    inits_written: u32,
    /// The next segment starts a new timeline (`EXT-X-DISCONTINUITY`).
    discontinuity_pending: bool,
    stats: PackagerStats,
    finished: bool,
}

impl Packager {
    pub fn new(config: PackagerConfig) -> Self {
        let seg = config.segmenter;
        let part_target = f64::from(seg.part_target_ms) / 1000.0;
        let target_duration = seg.segment_target_ms.div_ceil(1000).max(1);
        Self {
            config,
            front: TsFrontEnd::default(),
            segmenter: None,
            playlist: MediaPlaylist {
                version: Some(9),
                target_duration,
                part_target: Some(part_target),
                server_control: ServerControl {
                    can_block_reload: true,
                    part_hold_back: Some(3.0 * part_target),
                    // Apple's authoring spec asks for at least six target durations.
                    can_skip_until: Some(6.0 * f64::from(target_duration)),
                    ..Default::default()
                },
                map: Some(Map::new(INIT_NAME)),
                ..Default::default()
            },
            events: VecDeque::new(),
            anchor: None,
            latest_lead_dts: None,
            recent_parts: VecDeque::new(),
            peak_bitrate: 0,
            lead_frames: 0,
            lead_first_dts: None,
            part_counts: VecDeque::new(),
            tracks: Vec::new(),
            init_name: String::new(),
            inits_written: 0,
            discontinuity_pending: false,
            stats: PackagerStats::default(),
            finished: false,
        }
    }

    /// Feeds MPEG-TS bytes that arrived at `now`. Afterwards call [`Packager::poll`]
    /// until it returns `None`. An error means the input is unusable (not MPEG-TS,
    /// no supported stream); what was packaged so far stays valid.
    pub fn push_ts(&mut self, data: &[u8], now: UnixMillis) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        let result = self.front.push(data);
        self.drain_front();
        if self.anchor.is_none() {
            // Anchor on the newest frame: it arrived now (older ones were buffered).
            self.anchor = self.latest_lead_dts.map(|dts| (dts, now));
        }
        self.drain_segmenter();
        result
    }

    /// Frames from an ingest that is not MPEG-TS (WHIP, RTSP): call this first, and
    /// again whenever a decoder configuration changes (the packager then writes a
    /// new init segment and cuts a discontinuity). Frames' `track` indexes `tracks`.
    pub fn push_tracks(&mut self, tracks: Vec<TrackInfo>) {
        if self.finished || tracks.is_empty() || (self.segmenter.is_some() && tracks == self.tracks)
        {
            return;
        }
        self.handle(FrontEndEvent::Tracks(tracks));
        self.drain_segmenter();
    }

    /// One frame that arrived at `now`, in decoding order for its track; then call
    /// [`Packager::poll`] until `None`. Frames before [`Packager::push_tracks`] are
    /// ignored; a timestamp jump is the caller's to report with
    /// [`Packager::push_discontinuity`].
    pub fn push_frame(&mut self, frame: Frame, now: UnixMillis) {
        if self.finished || frame.track >= self.tracks.len() {
            return;
        }
        self.handle(FrontEndEvent::Frame(frame));
        if self.anchor.is_none() {
            self.anchor = self.latest_lead_dts.map(|dts| (dts, now));
        }
        self.drain_segmenter();
    }

    /// The timeline of pushed frames breaks before the next frame.
    pub fn push_discontinuity(&mut self) {
        self.handle(FrontEndEvent::Discontinuity);
        self.drain_segmenter();
    }

    /// The stream ended: writes the last part and segment and ends the playlist.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let _ = self.front.flush();
        self.drain_front();
        self.end_timeline();
        self.playlist.preload_hints.clear();
        self.playlist.end_list = true;
        self.events.push_back(Event::PlaylistChanged);
    }

    pub fn poll(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn media_playlist(&self) -> &MediaPlaylist {
        &self.playlist
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// The encoder reconnected (a new SRT connection for the same stream): what
    /// the old input left is written out, the demuxer and codec state start afresh,
    /// and the playlist carries on. The next segment gets `EXT-X-DISCONTINUITY`,
    /// and a new `EXT-X-MAP` if the new input's configuration differs.
    pub fn restart_input(&mut self) {
        if self.finished {
            return;
        }
        let _ = self.front.flush();
        self.drain_front();
        self.end_timeline();
        self.front = TsFrontEnd::default();
        self.discontinuity_pending = self.playlist.next_msn() > 0;
        self.playlist.preload_hints.clear();
        self.events.push_back(Event::PlaylistChanged);
    }

    pub fn stats(&self) -> PackagerStats {
        PackagerStats {
            demux: self.front.demux_stats(),
            frames: self.front.stats(),
            ..self.stats
        }
    }

    /// The multivariant playlist, once the first part is out (codecs and a bit rate
    /// estimate are known by then).
    pub fn multivariant(&self) -> Option<MultivariantPlaylist> {
        let tracks = self.tracks();
        if tracks.is_empty() || self.recent_parts.is_empty() {
            return None;
        }
        let (bytes, ticks) = self
            .recent_parts
            .iter()
            .fold((0usize, 0i64), |(b, t), (pb, pt)| (b + pb, t + pt));
        let timescale = self
            .segmenter
            .as_ref()
            .map_or(90_000, |s| s.lead_timescale());
        let secs = ticks as f64 / f64::from(timescale);
        let average = if secs > 0.0 {
            (bytes as f64 * 8.0 / secs) as u64
        } else {
            0
        };
        let video = tracks.iter().find(|t| t.kind() == TrackKind::Video);
        let frame_rate = match (video, self.lead_first_dts, self.latest_lead_dts) {
            (Some(v), Some(first), Some(last)) if last > first && self.lead_frames > 1 => {
                Some((self.lead_frames - 1) as f64 * f64::from(v.timescale) / (last - first) as f64)
            }
            _ => None,
        };
        Some(MultivariantPlaylist {
            independent_segments: true,
            variants: vec![Variant {
                uri: MEDIA_PLAYLIST_NAME.to_string(),
                bandwidth: self.peak_bitrate.max(average),
                average_bandwidth: Some(average),
                codecs: tracks.iter().map(TrackInfo::codec_string).collect(),
                resolution: video.and_then(TrackInfo::resolution),
                frame_rate,
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn drain_front(&mut self) {
        while let Some(ev) = self.front.poll() {
            self.handle(ev);
        }
    }

    fn handle(&mut self, ev: FrontEndEvent) {
        {
            match ev {
                FrontEndEvent::Tracks(tracks) => {
                    if self.segmenter.is_some() {
                        self.end_timeline();
                        self.discontinuity_pending = true;
                    }
                    self.start_timeline(tracks);
                }
                FrontEndEvent::Discontinuity => {
                    if self.segmenter.is_some() {
                        self.end_timeline();
                        self.discontinuity_pending = true;
                        self.start_timeline(self.tracks.clone());
                    }
                }
                FrontEndEvent::Frame(frame) => {
                    let Some(seg) = self.segmenter.as_mut() else {
                        return;
                    };
                    if seg.tracks().get(frame.track).map(|t| t.kind()) == Some(TrackKind::Video)
                        || seg.tracks().len() == 1
                    {
                        self.latest_lead_dts = Some(frame.dts);
                        self.lead_first_dts.get_or_insert(frame.dts);
                        self.lead_frames += 1;
                    }
                    seg.push(frame);
                }
            }
        }
    }

    /// Starts a segmenter for `tracks`, writing a new init segment when they differ
    /// from the current ones and marking the timeline break if one is pending.
    fn start_timeline(&mut self, tracks: Vec<TrackInfo>) {
        let started = self.playlist.next_msn() > 0 || !self.playlist.trailing_parts.is_empty();
        if tracks != self.tracks || self.init_name.is_empty() {
            let name = if self.inits_written == 0 {
                INIT_NAME.to_string()
            } else {
                format!("init{}.mp4", self.inits_written)
            };
            self.inits_written += 1;
            self.events.push_back(Event::Object {
                name: name.clone(),
                kind: ObjectKind::Init,
                data: Bytes::from(cmaf::write_init(&tracks)),
            });
            if started {
                self.playlist.trailing_tags.map = Some(Map::new(&name));
            } else {
                self.playlist.map = Some(Map::new(&name));
            }
            self.init_name = name;
            self.tracks = tracks.clone();
        }
        if self.discontinuity_pending && started {
            self.playlist.trailing_tags.discontinuity = true;
            self.stats.discontinuities += 1;
        }
        self.discontinuity_pending = false;
        self.anchor = None;
        self.latest_lead_dts = None;
        self.lead_first_dts = None;
        self.lead_frames = 0;
        let next = self.playlist.next_msn();
        self.segmenter = Some(Segmenter::new(self.config.segmenter, tracks, next));
    }

    /// Writes out what the current segmenter holds as the last part and segment.
    fn end_timeline(&mut self) {
        if let Some(mut seg) = self.segmenter.take() {
            seg.flush();
            self.apply_outputs(&mut seg);
        }
    }

    fn drain_segmenter(&mut self) {
        if let Some(mut seg) = self.segmenter.take() {
            self.apply_outputs(&mut seg);
            self.segmenter = Some(seg);
        }
    }

    fn apply_outputs(&mut self, seg: &mut Segmenter) {
        let timescale = seg.lead_timescale();
        while let Some(out) = seg.poll() {
            match out {
                SegmenterOutput::Part(p) => self.on_part(p, timescale),
                SegmenterOutput::Segment(s) => self.on_segment(s, timescale),
            }
        }
    }

    fn on_part(&mut self, p: PartOut, timescale: u32) {
        let name = part_name(p.msn, u64::from(p.index));
        self.stats.parts += 1;
        self.recent_parts.push_back((p.data.len(), p.duration));
        while self.recent_parts.len() > 50 {
            self.recent_parts.pop_front();
        }
        self.events.push_back(Event::Object {
            name: name.clone(),
            kind: ObjectKind::Part,
            data: p.data,
        });
        self.playlist.trailing_parts.push(Part::new(
            name,
            p.duration as f64 / f64::from(timescale),
            p.independent,
        ));
        self.playlist.preload_hints =
            vec![PreloadHint::part(part_name(p.msn, u64::from(p.index) + 1))];
        self.events.push_back(Event::PlaylistChanged);
    }

    fn on_segment(&mut self, s: SegmentOut, timescale: u32) {
        let name = segment_name(s.msn);
        let secs = s.duration as f64 / f64::from(timescale);
        self.stats.segments += 1;
        if secs > 0.0 {
            self.peak_bitrate = self
                .peak_bitrate
                .max((s.data.len() as f64 * 8.0 / secs) as u64);
        }
        self.events.push_back(Event::Object {
            name: name.clone(),
            kind: ObjectKind::Segment,
            data: s.data,
        });
        let pdt = self
            .anchor
            .map(|(dts, wall)| wall.offset_by(s.start - dts, timescale));
        let parts = std::mem::take(&mut self.playlist.trailing_parts);
        self.part_counts.push_back((s.msn, parts.len()));
        let mut tags = std::mem::take(&mut self.playlist.trailing_tags);
        tags.program_date_time = pdt;
        self.playlist.segments.push(Segment {
            tags,
            parts,
            ..Segment::new(s.msn, name, secs)
        });
        self.playlist.target_duration = self.playlist.target_duration.max(secs.round() as u32);
        self.playlist.preload_hints = vec![PreloadHint::part(part_name(s.msn + 1, 0))];
        self.trim_window();
        self.events.push_back(Event::PlaylistChanged);
    }

    fn trim_window(&mut self) {
        let pl = &mut self.playlist;
        while pl.segments.len() > self.config.window_segments.max(1) {
            let old = pl.segments.remove(0);
            pl.media_sequence = old.msn + 1;
            // RFC 8216bis §6.2.2: removing a segment with EXT-X-DISCONTINUITY
            // increments the discontinuity sequence; a map it introduced stays in
            // effect for the segments after it.
            if old.tags.discontinuity {
                pl.discontinuity_sequence += 1;
            }
            if let Some(map) = old.tags.map {
                // The init segment the old map named is no longer referenced.
                if let Some(prev) = pl.map.replace(map) {
                    self.events.push_back(Event::Evicted { name: prev.uri });
                }
            }
            // Parts are evicted with their segment: a player that saw them in an
            // earlier playlist may still ask for them.
            let part_count = match self.part_counts.pop_front() {
                Some((msn, n)) if msn == old.msn => n,
                _ => 0,
            };
            for i in 0..part_count {
                self.events.push_back(Event::Evicted {
                    name: part_name(old.msn, i as u64),
                });
            }
            self.events.push_back(Event::Evicted { name: old.uri });
        }
        // Parts older than three target durations from the end leave the playlist
        // (RFC 8216bis §6.2.2); their objects stay until the segment is evicted.
        let limit = 3.0 * f64::from(pl.target_duration);
        let mut age: f64 = pl.trailing_parts.iter().map(|p| p.duration).sum();
        for seg in pl.segments.iter_mut().rev() {
            if age > limit {
                seg.parts.clear();
            }
            age += seg.duration;
        }
    }
}
