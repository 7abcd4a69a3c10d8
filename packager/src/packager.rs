//! One live stream: MPEG-TS bytes (or frames) in; named CMAF objects, LL-HLS
//! playlists and a DASH MPD out.
//!
//! Every track is its own rendition (`video`, `audio`): its own init segment,
//! parts, segments and media playlist, all cut on the same boundaries, so HLS
//! (an audio group beside the video variant) and DASH (one adaptation set per
//! track) serve the very same objects.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::breaks::{AdMarkers, BreakStats, Breaks, CueAt, SpliceCue};
use crate::cmaf;
use crate::cmaf::cenc::{self, Encryption, KeySystem, TrackCrypt};
use crate::codec::opus::OPUS_CLOCK;
use crate::dash::{self, ContentKind, TimelineEntry};
use crate::frontend::{FrontEndEvent, FrontEndStats, TsFrontEnd};
use crate::hls::{
    ByteRange, IFrameVariant, Key, Map, MediaPlaylist, MultivariantPlaylist, Part, PreloadHint,
    Rendition as MediaRendition, RenditionReport, Segment, ServerControl, Variant,
};
use crate::media::{CodecConfig, Frame, TrackInfo, TrackKind};
use crate::segmenter::{
    track_part_targets, ChunkOut, PartOut, SegmentOut, Segmenter, SegmenterConfig, SegmenterOutput,
    SegmenterStats,
};
use crate::thumbnail::{ThumbnailTrack, THUMBNAIL_PLAYLIST_NAME};
use crate::time::UnixMillis;
use crate::ts::DemuxStats;
use crate::Error;

/// Name of the DASH manifest, beside the media playlists.
pub const MPD_NAME: &str = "manifest.mpd";
/// Highest bandwidth first (ties: larger picture first).
fn sort_variants(variants: &mut [Variant]) {
    variants.sort_by(|a, b| {
        b.bandwidth
            .cmp(&a.bandwidth)
            .then_with(|| b.resolution.cmp(&a.resolution))
    });
}

/// The HLS audio group every audio rendition belongs to.
const AUDIO_GROUP: &str = "audio";
/// Complete segments whose parts stay listed, besides the segment being made.
const PARTS_KEPT_SEGMENTS: usize = 2;
/// Cues held until the stream has a frame.
const MAX_HELD_CUES: usize = 8;
/// Segment timing kept for the DASH timeline (about 24 h of 2 s segments).
const MAX_TIMELINE: usize = 43_200;

/// The rendition a track becomes when the caller did not name it: `video` and
/// `audio` for the first track of each kind, then `video2`, `video3`, ...
pub fn rendition_name(kind: TrackKind, nth_of_kind: usize) -> String {
    let base = match kind {
        TrackKind::Video => "video",
        TrackKind::Audio => "audio",
    };
    if nth_of_kind == 0 {
        base.to_string()
    } else {
        format!("{base}{}", nth_of_kind + 1)
    }
}

/// Rendition names a caller may give ([`Packager::set_rendition_names`]): they
/// become object names and URL path segments (brook-common's rule, which the
/// edge checks too).
pub use brook_common::valid_rendition_name;

pub fn playlist_name(rendition: &str) -> String {
    format!("{rendition}.m3u8")
}

/// The `n`th init segment of a rendition (a new one after each configuration change).
pub fn init_name(rendition: &str, n: u32) -> String {
    if n == 0 {
        format!("{rendition}-init.mp4")
    } else {
        format!("{rendition}-init{n}.mp4")
    }
}

/// The I-frame playlist of a video rendition (`video-iframes.m3u8`).
pub fn i_frame_playlist_name(rendition: &str) -> String {
    format!("{rendition}-iframes.m3u8")
}

pub fn segment_name(rendition: &str, msn: u64) -> String {
    format!("{rendition}-seg{msn}.m4s")
}

pub fn part_name(rendition: &str, msn: u64, index: u64) -> String {
    format!("{rendition}-part{msn}.{index}.m4s")
}

/// Packaging settings. Defaults favour latency; see `docs/packager.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagerConfig {
    pub segmenter: SegmenterConfig,
    /// Complete segments kept in the live playlist.
    pub window_segments: usize,
    /// Video streams of an MPEG-TS input that become renditions (a transcoder's
    /// ladder arrives as one transport stream); 1 takes the first only.
    pub max_video_tracks: usize,
    /// Common Encryption of every track (default `None`: clear). See
    /// [`Encryption`] and docs/packager.md.
    pub encryption: Option<Encryption>,
    /// How ad breaks are marked in the HLS media playlists.
    pub ad_markers: AdMarkers,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            segmenter: SegmenterConfig::default(),
            window_segments: 10,
            max_video_tracks: 1,
            encryption: None,
            ad_markers: AdMarkers::default(),
        }
    }
}

/// What kind of object an event names; it decides how it is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Init,
    Part,
    Segment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete, immutable object to serve under `name` (relative to the
    /// playlists). For a part or segment it replaces the chunks sent before.
    Object {
        name: String,
        kind: ObjectKind,
        data: Bytes,
    },
    /// The next bytes of a part or segment still being made: a CMAF chunk to
    /// append to what was sent under `name`. The object's `Object` event follows
    /// once it is complete, with exactly the chunks' bytes.
    Chunk {
        name: String,
        kind: ObjectKind,
        data: Bytes,
    },
    /// An object left the live window and is no longer referenced.
    Evicted { name: String },
    /// Playlists changed; every object they reference was emitted before.
    PlaylistChanged,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackagerStats {
    pub demux: DemuxStats,
    pub frames: FrontEndStats,
    /// Parts and segments written, counted on the lead track.
    pub parts: u64,
    pub segments: u64,
    /// Timeline breaks: input restarts, timestamp jumps, configuration changes.
    pub discontinuities: u64,
    /// Lead frames that jumped further than the live window without the
    /// caller saying so: each started a new timeline.
    pub jumps: u64,
    /// What the segmenter did to keep parts and segments within their targets.
    pub segmenter: SegmenterStats,
    /// Ad-break cues and breaks.
    pub breaks: BreakStats,
}

/// One track's output: its playlist, init segment and bit rate measurements.
#[derive(Debug)]
struct Rendition {
    name: String,
    info: TrackInfo,
    playlist: MediaPlaylist,
    init_name: String,
    inits_written: u32,
    /// The default KID of the init segment in use (encrypted renditions).
    init_kid: Option<[u8; 16]>,
    /// The key period whose `EXT-X-KEY` tags the playlist last got.
    key_period: Option<u64>,
    /// (msn, number of parts) of every segment in the window, to evict the parts.
    part_counts: VecDeque<(u64, usize)>,
    /// Segment timing of the current timeline, for the DASH manifest.
    timeline: VecDeque<TimelineEntry>,
    /// (msn, bytes) of each listed segment that starts with a chunk holding
    /// one keyframe (at offset 0): the I-frame playlist's byte ranges.
    keyframe_chunks: VecDeque<(u64, u64)>,
    /// Bytes and seconds of recent parts, for bit rate estimates.
    recent: VecDeque<(usize, f64)>,
    peak_bitrate: u64,
    /// Frames of the current timeline and the first and last DTS, for the
    /// frame rate.
    frames: u64,
    first_dts: Option<i64>,
    last_dts: i64,
    /// The track is part of the current timeline.
    active: bool,
}

impl Rendition {
    /// `part_target`: the lead track's part target, seconds. Every track's
    /// parts span the lead's (their `DURATION` is the lead part's, whatever
    /// whole audio frames they hold), so every playlist announces the lead's
    /// `PART-TARGET`: an audio playlist announcing its own, rounded up to whole
    /// frames (0.2133 s for AAC), made its parts short of 85 % of it whenever
    /// the video's were just under 0.2 s.
    fn new(
        name: String,
        info: TrackInfo,
        config: &PackagerConfig,
        first_msn: u64,
        part_target: f64,
    ) -> Self {
        let seg = config.segmenter;
        // Fixed for the playlist's life (RFC 8216bis §6.2.1): the segmenter never
        // makes a segment longer than the longest it is configured for.
        let target_duration = seg.target_duration();
        Self {
            name,
            info,
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
                // Claimed until a segment is cut at the longest without a
                // keyframe (then the packager withdraws it everywhere, see
                // `Packager::apply_outputs`). See docs/packager.md.
                independent_segments: true,
                media_sequence: first_msn,
                ..Default::default()
            },
            init_name: String::new(),
            inits_written: 0,
            init_kid: None,
            key_period: None,
            part_counts: VecDeque::new(),
            timeline: VecDeque::new(),
            keyframe_chunks: VecDeque::new(),
            recent: VecDeque::new(),
            peak_bitrate: 0,
            frames: 0,
            first_dts: None,
            last_dts: 0,
            active: true,
        }
    }

    fn peak_or_average(&self) -> u64 {
        self.peak_bitrate.max(self.average_bitrate())
    }

    /// Frames per second of the current timeline, once two frames came.
    fn frame_rate(&self) -> Option<f64> {
        let first = self.first_dts?;
        (self.frames > 1 && self.last_dts > first).then(|| {
            (self.frames - 1) as f64 * f64::from(self.info.timescale)
                / (self.last_dts - first) as f64
        })
    }

    fn average_bitrate(&self) -> u64 {
        let (bytes, secs) = self
            .recent
            .iter()
            .fold((0usize, 0f64), |(b, s), (pb, ps)| (b + pb, s + ps));
        if secs > 0.0 {
            (bytes as f64 * 8.0 / secs) as u64
        } else {
            0
        }
    }
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
///         Event::Chunk { name, data, .. } => { /* append to the growing `name` */ }
///         Event::Evicted { name } => { /* stop serving `name` */ }
///         Event::PlaylistChanged => {
///             for (name, playlist) in packager.media_playlists() { let _ = (name, playlist.to_string()); }
///         }
///     }
/// }
/// # Ok::<(), brook_packager::Error>(())
/// ```
#[derive(Debug)]
pub struct Packager {
    config: PackagerConfig,
    front: TsFrontEnd,
    segmenter: Option<Segmenter>,
    renditions: Vec<Rendition>,
    /// For the current segmenter: rendition index of each track.
    track_rendition: Vec<usize>,
    events: VecDeque<Event>,
    /// (lead-track time in seconds, wall clock): maps media time to date time.
    anchor: Option<(f64, UnixMillis)>,
    /// The anchor the next timeline starts with, when the caller knows better
    /// than "the newest frame arrived now".
    next_anchor: Option<(f64, UnixMillis)>,
    /// The newest lead frame: (DTS, PTS, timescale).
    latest_lead: Option<(i64, i64, u32)>,
    /// Names for the tracks of the next track list, by index.
    names: Vec<String>,
    /// Indexes of input tracks not packaged ([`Packager::set_skipped_tracks`]).
    skipped: Vec<usize>,
    /// For the current track list: input index -> packaged index (None:
    /// skipped). Empty when nothing is skipped.
    input_map: Vec<Option<usize>>,
    /// The next segment starts a new timeline (`EXT-X-DISCONTINUITY`).
    discontinuity_pending: bool,
    stats: PackagerStats,
    finished: bool,
    /// A segment was cut without a keyframe at its start: from then on
    /// neither the playlists (`EXT-X-INDEPENDENT-SEGMENTS`) nor the MPD
    /// (`startWithSAP`) claim that every segment starts with one.
    keyless: bool,
    /// The encryption settings, shared with every track's [`TrackCrypt`].
    encryption: Option<Arc<Encryption>>,
    /// Why the current input cannot be packaged (encryption of a codec not
    /// supported): `push_ts` reports it and nothing is packaged.
    refused: Option<Error>,
    /// Thumbnail sheets for the finished presentation's manifests.
    thumbnails: Option<ThumbnailTrack>,
    /// Ad breaks of the current timeline.
    breaks: Breaks,
    /// Cues that came before the first lead frame.
    held_cues: Vec<SpliceCue>,
    /// Where the lead's last part ended (its ticks), on this timeline.
    lead_end: Option<i64>,
}

impl Packager {
    pub fn new(config: PackagerConfig) -> Self {
        Self {
            encryption: config.encryption.clone().map(Arc::new),
            refused: None,
            thumbnails: None,
            breaks: Breaks::new(config.ad_markers),
            held_cues: Vec::new(),
            lead_end: None,
            front: TsFrontEnd::with_max_video(config.max_video_tracks),
            config,
            segmenter: None,
            renditions: Vec::new(),
            track_rendition: Vec::new(),
            events: VecDeque::new(),
            anchor: None,
            next_anchor: None,
            latest_lead: None,
            names: Vec::new(),
            skipped: Vec::new(),
            input_map: Vec::new(),
            discontinuity_pending: false,
            keyless: false,
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
        self.set_anchor(now);
        self.drain_segmenter();
        match self.refused.clone() {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Why the input's tracks are not packaged, if they are not (encryption
    /// asked for a codec it does not support yet).
    pub fn refused(&self) -> Option<&Error> {
        self.refused.as_ref()
    }

    /// Frames from an ingest that is not MPEG-TS (WHIP, RTSP): call this first, and
    /// again whenever a decoder configuration changes (the packager then writes a
    /// new init segment and cuts a discontinuity). Frames' `track` indexes `tracks`.
    pub fn push_tracks(&mut self, tracks: Vec<TrackInfo>) {
        let same = self
            .segmenter
            .as_ref()
            .is_some_and(|s| s.tracks() == tracks);
        if self.finished || tracks.is_empty() || same {
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
        if self.finished {
            return;
        }
        self.handle(FrontEndEvent::Frame(frame));
        self.set_anchor(now);
        self.drain_segmenter();
    }

    /// An ad break starts or ends (from the admin API, or SCTE-35 the caller
    /// read itself; SCTE-35 in the transport stream given to
    /// [`Packager::push_ts`] is read here). The break starts and ends on
    /// segments cut at the first keyframe at or after its time (docs/ads.md);
    /// a time already past means the next keyframe. Cues that arrive before
    /// the stream has a timeline, repeats and an end without a break are
    /// counted and ignored ([`PackagerStats::breaks`]).
    ///
    /// Returns whether the cue changed the schedule (or waits for the first
    /// frame).
    pub fn push_cue(&mut self, cue: SpliceCue) -> bool {
        if self.finished {
            return false;
        }
        let (Some(seg), Some((_, latest, _))) = (self.segmenter.as_mut(), self.latest_lead) else {
            // Before the first frame (a splicer's cue ahead of the stream's
            // start): placed once the lead track has a frame.
            if self.held_cues.len() < MAX_HELD_CUES {
                self.held_cues.push(cue);
                return true;
            }
            self.breaks.ignore();
            return false;
        };
        let ts = seg.lead_timescale();
        let at = match cue.at {
            CueAt::Now => latest,
            CueAt::Pts(p) => {
                // On the newest frame's side of the 33-bit wrap: the caller
                // may have unwrapped it on another clock (a ladder's source).
                const WRAP: i64 = 1 << 33;
                let latest90 = crate::time::rescale(latest, ts, crate::time::TS_TIMESCALE);
                let base = latest90 - latest90.rem_euclid(WRAP) + p.rem_euclid(WRAP);
                let p = [base - WRAP, base, base + WRAP]
                    .into_iter()
                    .min_by_key(|c| (c - latest90).abs())
                    .unwrap_or(base);
                crate::time::rescale(p, crate::time::TS_TIMESCALE, ts)
            }
            CueAt::Wall(w) => match self.anchor {
                Some((secs, wall)) => {
                    let ms = w.0 as f64 - wall.0 as f64;
                    ((secs + ms / 1000.0) * f64::from(ts)).round() as i64
                }
                None => latest,
            },
        };
        let s = self.breaks.schedule(cue, at.max(latest), ts);
        for cut in s.cancelled {
            seg.cancel_cut(cut);
        }
        for cut in s.cuts {
            seg.cut_at(cut);
        }
        s.accepted
    }

    /// The timeline of pushed frames breaks before the next frame.
    pub fn push_discontinuity(&mut self) {
        self.handle(FrontEndEvent::Discontinuity);
        self.drain_segmenter();
    }

    /// The encoder reconnected (a new SRT connection for the same stream): what
    /// the old input left is written out, the demuxer and codec state start afresh,
    /// and the playlists carry on. The next segment gets `EXT-X-DISCONTINUITY`,
    /// and a new `EXT-X-MAP` where the new input's configuration differs.
    pub fn restart_input(&mut self) {
        if self.finished {
            return;
        }
        let _ = self.front.flush();
        self.drain_front();
        self.end_timeline();
        self.front = TsFrontEnd::with_max_video(self.config.max_video_tracks);
        self.discontinuity_pending = self.started();
        for r in &mut self.renditions {
            r.playlist.preload_hints.clear();
        }
        self.events.push_back(Event::PlaylistChanged);
    }

    /// The stream ended: writes the last parts and segments and ends the playlists.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let _ = self.front.flush();
        self.drain_front();
        self.end_timeline();
        for r in &mut self.renditions {
            r.playlist.preload_hints.clear();
            r.playlist.end_list = true;
        }
        self.refresh_reports();
        self.events.push_back(Event::PlaylistChanged);
    }

    pub fn poll(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Every rendition's media playlist, with its name (`video.m3u8`, ...).
    pub fn media_playlists(&self) -> impl Iterator<Item = (String, &MediaPlaylist)> {
        self.renditions
            .iter()
            .map(|r| (playlist_name(&r.name), &r.playlist))
    }

    /// The media playlist named `name` (`video.m3u8`).
    pub fn media_playlist(&self, name: &str) -> Option<&MediaPlaylist> {
        self.renditions
            .iter()
            .find(|r| playlist_name(&r.name) == name)
            .map(|r| &r.playlist)
    }

    /// The playlist of the lead rendition (video if there is one).
    pub fn lead_playlist(&self) -> Option<&MediaPlaylist> {
        self.renditions
            .iter()
            .find(|r| r.info.kind() == TrackKind::Video)
            .or(self.renditions.first())
            .map(|r| &r.playlist)
    }

    /// The newest frame of the lead track in this timeline: (DTS, PTS,
    /// timescale).
    pub fn latest_lead(&self) -> Option<(i64, i64, u32)> {
        self.latest_lead
    }

    /// Takes rendition `name` out of the stream (its source went away for
    /// good, e.g. a transcoder rung dropped for cost): it leaves the media
    /// playlists, the multivariant playlist and the MPD, and every object of
    /// it is evicted. Call between timelines (after [`Packager::restart_input`]).
    pub fn retire_rendition(&mut self, name: &str) {
        let Some(i) = self.renditions.iter().position(|r| r.name == name) else {
            return;
        };
        let r = self.renditions.remove(i);
        // Track indexes into the old list are stale; the next track list
        // rebuilds the mapping.
        self.track_rendition.clear();
        self.segmenter = None;
        let pl = &r.playlist;
        let mut names: Vec<String> = Vec::new();
        for (msn, parts) in &r.part_counts {
            names.extend((0..*parts).map(|p| part_name(&r.name, *msn, p as u64)));
        }
        for p in &pl.trailing_parts {
            names.push(p.uri.clone());
        }
        names.extend(pl.segments.iter().map(|s| s.uri.clone()));
        names.extend(pl.map.iter().map(|m| m.uri.clone()));
        names.extend(
            pl.segments
                .iter()
                .filter_map(|s| s.tags.map.as_ref().map(|m| m.uri.clone())),
        );
        names.extend(pl.trailing_tags.map.iter().map(|m| m.uri.clone()));
        if !r.init_name.is_empty() {
            names.push(r.init_name.clone());
        }
        names.sort();
        names.dedup();
        for name in names {
            self.events.push_back(Event::Evicted { name });
        }
        self.refresh_reports();
        self.events.push_back(Event::PlaylistChanged);
    }

    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.renditions.iter().map(|r| r.info.clone()).collect()
    }

    pub fn stats(&self) -> PackagerStats {
        let mut segmenter = self.stats.segmenter;
        if let Some(seg) = &self.segmenter {
            segmenter.add(seg.stats());
        }
        PackagerStats {
            demux: self.front.demux_stats(),
            frames: self.front.stats(),
            segmenter,
            breaks: self.breaks.stats(),
            ..self.stats
        }
    }

    fn started(&self) -> bool {
        self.renditions
            .iter()
            .any(|r| !r.playlist.segments.is_empty() || !r.playlist.trailing_parts.is_empty())
    }

    /// The multivariant playlist, once every active rendition has a complete
    /// segment (codecs and a bit rate estimate are known by then, and every
    /// media playlist it leads to is playable: hls.js refuses a live playlist
    /// with parts but no segment, fatally for an audio rendition).
    ///
    /// One variant per video rendition, highest bandwidth first, each with the
    /// audio rendition as its audio group; then an audio-only variant (for
    /// background listening; players that show video skip it). `BANDWIDTH` is
    /// the peak segment bit rate of the variant's renditions together,
    /// `AVERAGE-BANDWIDTH` their recent average, both measured from what was
    /// produced. Without video: the audio rendition alone.
    pub fn multivariant(&self) -> Option<MultivariantPlaylist> {
        let active: Vec<&Rendition> = self.renditions.iter().filter(|r| r.active).collect();
        if active.is_empty()
            || active
                .iter()
                .any(|r| r.recent.is_empty() || r.playlist.segments.is_empty())
        {
            return None;
        }
        let videos: Vec<&Rendition> = active
            .iter()
            .copied()
            .filter(|r| r.info.kind() == TrackKind::Video)
            .collect();
        let audios: Vec<&Rendition> = active
            .iter()
            .copied()
            .filter(|r| r.info.kind() == TrackKind::Audio)
            .collect();
        // As the media playlists claim it.
        let mut pl = MultivariantPlaylist {
            independent_segments: !self.keyless,
            ..Default::default()
        };
        // The key of every rendition, so players can ask for its license
        // before they read a media playlist (RFC 8216bis §4.4.6.5: the same
        // METHOD, URI and KEYFORMAT as the media playlists' EXT-X-KEY). Only
        // without rotation: a rotating stream's key changes every few
        // segments, and a preloaded one would be the wrong one soon.
        if let Some(enc) = self
            .encryption
            .as_deref()
            .filter(|e| e.rotate_every_segments == 0)
        {
            pl.other_tags.extend(
                hls_session_keys(enc)
                    .iter()
                    .map(|a| format!("EXT-X-SESSION-KEY:{a}")),
            );
        }
        let audio_variant = |a: &Rendition, group: Option<String>| Variant {
            uri: playlist_name(&a.name),
            bandwidth: a.peak_or_average(),
            average_bandwidth: Some(a.average_bitrate()),
            codecs: vec![a.info.codec_string()],
            audio: group,
            ..Default::default()
        };
        if videos.is_empty() || audios.is_empty() {
            // Video alone, or audio alone.
            for r in videos.iter().chain(audios.first()).copied() {
                pl.variants.push(Variant {
                    resolution: r.info.resolution(),
                    frame_rate: self.announced_frame_rate(r),
                    ..audio_variant(r, None)
                });
            }
            sort_variants(&mut pl.variants);
            return Some(pl);
        }
        // One audio group per codec: `audio` for the first audio rendition (the
        // one every player decodes), `audio-<codec>` for each other (a
        // transcoder keeping a source's Opus beside its AAC). A variant names
        // one group and lists its codec, so the video variants repeat per
        // group, the first group's first: players start there, hls.js never
        // switches between variants of different codecs, and a player that
        // cannot decode a group's codec skips its variants.
        let mut groups: Vec<(String, &Rendition)> = Vec::new();
        for a in &audios {
            let family = a.info.codec_string();
            let family = family.split('.').next().unwrap_or("audio").to_string();
            if groups
                .iter()
                .any(|(_, g)| g.info.codec_string().split('.').next() == Some(&family))
            {
                continue; // one rendition per codec
            }
            let id = if groups.is_empty() {
                AUDIO_GROUP.to_string()
            } else {
                format!("{AUDIO_GROUP}-{family}")
            };
            groups.push((id, a));
        }
        for (id, a) in &groups {
            let channels = match &a.info.codec {
                CodecConfig::Aac(c) => Some(c.channels().to_string()),
                CodecConfig::Opus(c) => Some(c.channels.to_string()),
                _ => None,
            };
            pl.renditions.push(MediaRendition {
                kind: "AUDIO".into(),
                group_id: id.clone(),
                name: a.name.clone(),
                default: true,
                autoselect: true,
                channels,
                uri: Some(playlist_name(&a.name)),
                ..Default::default()
            });
        }
        for (id, a) in &groups {
            let mut variants: Vec<Variant> = videos
                .iter()
                .map(|v| {
                    let average = v.average_bitrate() + a.average_bitrate();
                    Variant {
                        uri: playlist_name(&v.name),
                        bandwidth: (v.peak_or_average() + a.peak_or_average()).max(average),
                        average_bandwidth: Some(average),
                        codecs: vec![v.info.codec_string(), a.info.codec_string()],
                        resolution: v.info.resolution(),
                        frame_rate: self.announced_frame_rate(v),
                        audio: Some(id.clone()),
                        ..Default::default()
                    }
                })
                .collect();
            sort_variants(&mut variants);
            pl.variants.extend(variants);
        }
        for (id, a) in &groups {
            pl.variants.push(audio_variant(a, Some(id.clone())));
        }
        Some(pl)
    }

    /// The I-frame playlists of the finished presentation (VOD only: empty
    /// until [`Packager::finish`]): for each video rendition,
    /// ([`i_frame_playlist_name`], playlist), in rendition order. Each
    /// entry is one segment's first CMAF chunk, the keyframe it starts with
    /// (`EXT-X-BYTERANGE:<len>@0`, the segment's URI, the rendition's
    /// `EXT-X-MAP`); see [`MediaPlaylist::i_frames`] for durations and the
    /// segments that have no entry.
    pub fn i_frame_playlists(&self) -> Vec<(String, MediaPlaylist)> {
        if !self.finished {
            return Vec::new();
        }
        self.renditions
            .iter()
            .filter(|r| r.info.kind() == TrackKind::Video && !r.keyframe_chunks.is_empty())
            .map(|r| {
                let pl = r.playlist.as_vod().i_frames(|s| {
                    let i = r.keyframe_chunks.binary_search_by_key(&s.msn, |(m, _)| *m);
                    i.ok().map(|i| ByteRange {
                        length: r.keyframe_chunks[i].1,
                        offset: Some(0),
                    })
                });
                (i_frame_playlist_name(&r.name), pl)
            })
            .collect()
    }

    /// The HLS image playlist of the configured thumbnails
    /// ([`Packager::set_thumbnails`]): ([`THUMBNAIL_PLAYLIST_NAME`],
    /// playlist), once finished and when valid.
    pub fn thumbnail_playlist(&self) -> Option<(String, MediaPlaylist)> {
        let t = self.vod_thumbnails()?;
        Some((THUMBNAIL_PLAYLIST_NAME.to_string(), t.hls_playlist()))
    }

    /// Trick-play thumbnail sheets made beside the packaging (ffmpeg's
    /// sprites of the same input): described in the finished
    /// presentation's MPD, its multivariant playlist
    /// ([`Packager::vod_multivariant`]) and [`Packager::thumbnail_playlist`].
    /// Live manifests never name them. An invalid description
    /// ([`ThumbnailTrack::is_valid`]) is left out.
    pub fn set_thumbnails(&mut self, thumbnails: Option<ThumbnailTrack>) {
        self.thumbnails = thumbnails;
    }

    fn vod_thumbnails(&self) -> Option<&ThumbnailTrack> {
        self.thumbnails
            .as_ref()
            .filter(|t| self.finished && t.is_valid())
    }

    /// The finished presentation's multivariant playlist: [`Packager::multivariant`]
    /// plus an `EXT-X-I-FRAME-STREAM-INF` per I-frame playlist
    /// ([`Packager::i_frame_playlists`]; `BANDWIDTH` the peak bit rate of its
    /// entries, `CODECS` and `RESOLUTION` its rendition's) and, with
    /// thumbnails, the `EXT-X-IMAGE-STREAM-INF` naming their playlist. `None`
    /// until [`Packager::finish`]; the live multivariant never has them.
    pub fn vod_multivariant(&self) -> Option<MultivariantPlaylist> {
        if !self.finished {
            return None;
        }
        let mut pl = self.multivariant()?;
        let active: Vec<&str> = pl.variants.iter().map(|v| v.uri.as_str()).collect();
        let mut i_frames: Vec<IFrameVariant> = self
            .i_frame_playlists()
            .into_iter()
            .filter_map(|(name, ipl)| {
                let r = self
                    .renditions
                    .iter()
                    .find(|r| i_frame_playlist_name(&r.name) == name)?;
                // Only renditions the multivariant offers.
                if !active.contains(&playlist_name(&r.name).as_str()) {
                    return None;
                }
                Some(IFrameVariant::new(
                    name,
                    ipl.peak_byterange_bitrate().max(1),
                    &[r.info.codec_string()],
                    r.info.resolution(),
                ))
            })
            .collect();
        i_frames.sort_by(|a, b| {
            b.bandwidth()
                .cmp(&a.bandwidth())
                .then_with(|| b.resolution().cmp(&a.resolution()))
        });
        pl.i_frame_variants = i_frames;
        if let Some(t) = self.vod_thumbnails() {
            pl.other_tags
                .push(t.image_stream_inf(THUMBNAIL_PLAYLIST_NAME));
        }
        Some(pl)
    }

    /// The DASH manifest over the same segments: dynamic while live, static (the
    /// VOD) once finished. It covers the current timeline (since the last
    /// discontinuity). `utc_timing` is a URL answering the time
    /// (`urn:mpeg:dash:utc:http-iso:2014`).
    pub fn dash_manifest(&self, now: UnixMillis, utc_timing: Option<&str>) -> Option<String> {
        self.multivariant()?;
        let (anchor_secs, anchor_wall) = self.anchor?;
        let reps: Vec<dash::Representation> = self
            .renditions
            .iter()
            .filter(|r| r.active && !r.timeline.is_empty())
            .map(|r| {
                let kind = match &r.info.codec {
                    CodecConfig::Aac(c) => ContentKind::Audio {
                        sample_rate: c.sample_rate,
                        channels: c.channels(),
                    },
                    CodecConfig::Opus(c) => ContentKind::Audio {
                        sample_rate: OPUS_CLOCK,
                        channels: u16::from(c.channels),
                    },
                    _ => {
                        let (width, height) = r.info.resolution().unwrap_or((0, 0));
                        ContentKind::Video {
                            width,
                            height,
                            frame_rate: self.announced_frame_rate(r),
                        }
                    }
                };
                dash::Representation {
                    id: r.name.clone(),
                    kind,
                    codecs: r.info.codec_string(),
                    bandwidth: r.peak_bitrate.max(r.average_bitrate()).max(1),
                    timescale: r.info.timescale,
                    initialization: r.init_name.clone(),
                    media: format!("{}-seg$Number$.m4s", r.name),
                    // Live: the segments of the live window (older ones are in the
                    // archive, not in memory); VOD: everything of this timeline.
                    protection: self.encryption.as_ref().zip(r.init_kid).map(|(enc, kid)| {
                        dash::Protection {
                            scheme: enc.scheme.name().to_string(),
                            default_kid: cenc::uuid(&kid),
                            clearkey_laurl: enc.key_systems.iter().find_map(|k| match k {
                                KeySystem::ClearKey { .. } => Some(k.url_for(&kid)),
                                _ => None,
                            }),
                            drm: enc
                                .key_systems
                                .iter()
                                .filter_map(|k| match k {
                                    KeySystem::Drm(d) => Some(dash::DrmProtection {
                                        system_id: cenc::uuid(&d.system_id),
                                        value: d.dash_value.clone(),
                                        children: d.dash_children.clone()?,
                                    }),
                                    _ => None,
                                })
                                .collect(),
                        }
                    }),
                    timeline: r
                        .timeline
                        .iter()
                        .filter(|e| self.finished || e.number >= r.playlist.media_sequence)
                        .copied()
                        .collect(),
                }
            })
            .collect();
        if reps.is_empty() {
            return None;
        }
        let seg = self.config.segmenter;
        let max_segment = reps
            .iter()
            .flat_map(|r| {
                r.timeline
                    .iter()
                    .map(move |e| e.duration as f64 / f64::from(r.timescale))
            })
            .fold(f64::from(seg.segment_target_ms) / 1000.0, f64::max);
        Some(dash::render_mpd(&dash::Manifest {
            live: !self.finished,
            availability_start: anchor_wall.offset_by(-(anchor_secs * 1000.0) as i64, 1000),
            publish_time: now,
            max_segment_duration: max_segment,
            time_shift_buffer: max_segment * self.config.window_segments as f64,
            chunk_duration: f64::from(seg.part_target_ms) / 1000.0,
            target_latency_ms: 3 * seg.part_target_ms + seg.segment_target_ms / 2,
            utc_timing: utc_timing.map(str::to_string),
            start_with_sap: !self.keyless,
            representations: reps,
            splice_events: self.splice_events(),
            thumbnails: self.vod_thumbnails().cloned(),
        }))
    }

    /// The breaks of this timeline, for the MPD's SCTE-35 event stream.
    fn splice_events(&self) -> Option<dash::SpliceEvents> {
        let timescale = self.breaks.timescale();
        let events: Vec<dash::SpliceEvent> = self
            .breaks
            .placed()
            .map(|b| dash::SpliceEvent {
                id: b.number,
                presentation_time: b.start.max(0) as u64,
                duration: b
                    .end
                    .map(|e| (e - b.start).max(0) as u64)
                    .or_else(|| b.planned_ms.map(|ms| ms * u64::from(timescale) / 1000)),
                section: b.out_section.to_vec(),
            })
            .collect();
        (!events.is_empty()).then_some(dash::SpliceEvents { timescale, events })
    }

    /// The frame rate a rendition announces (`FRAME-RATE`, DASH `frameRate`):
    /// the lead video rendition's when it measures within 1 % of it (a
    /// ladder's rungs carry the same frames, and players refuse to switch up
    /// to a variant announcing a lower rate than the current one), snapped to
    /// the nearest common rate when within 0.2 % of one.
    fn announced_frame_rate(&self, r: &Rendition) -> Option<f64> {
        let own = r.frame_rate()?;
        let lead = self
            .renditions
            .iter()
            .find(|x| x.active && x.info.kind() == TrackKind::Video)
            .and_then(Rendition::frame_rate);
        let rate = match lead {
            Some(l) if (own - l).abs() <= 0.01 * l => l,
            _ => own,
        };
        const COMMON: [f64; 9] = [
            24_000.0 / 1_001.0,
            24.0,
            25.0,
            30_000.0 / 1_001.0,
            30.0,
            48.0,
            50.0,
            60_000.0 / 1_001.0,
            60.0,
        ];
        Some(
            COMMON
                .iter()
                .copied()
                .filter(|c| (rate - c).abs() <= 0.002 * c)
                .min_by(|a, b| (rate - a).abs().total_cmp(&(rate - b).abs()))
                .unwrap_or((rate * 1000.0).round() / 1000.0),
        )
    }

    /// Names the tracks of the next track list (from the PMT, or
    /// [`Packager::push_tracks`]) by index; a track without a name here gets
    /// [`rendition_name`]. A rendition keeps its playlist across timelines by
    /// name. Names must pass [`valid_rendition_name`] and differ (others are
    /// ignored: the tracks get default names).
    pub fn set_rendition_names(&mut self, names: Vec<String>) {
        let distinct = names
            .iter()
            .enumerate()
            .all(|(i, n)| !names[..i].contains(n));
        if distinct && names.iter().all(|n| valid_rendition_name(n)) {
            self.names = names;
        } else {
            self.names.clear();
        }
    }

    /// The input's tracks at these indexes (of the next track list, from the
    /// PMT or [`Packager::push_tracks`]) are not packaged: their frames are
    /// dropped, the others keep their order; rendition names
    /// ([`Packager::set_rendition_names`]) index the tracks that remain. For
    /// input that carries a stream meant for someone else (the transcoder's
    /// Opus for WebRTC viewers). Empty: every track is packaged.
    pub fn set_skipped_tracks(&mut self, skipped: Vec<usize>) {
        self.skipped = skipped;
    }

    /// Media time `media_secs` (of the lead track, in the next timeline) is
    /// wall-clock time `wall`: what `EXT-X-PROGRAM-DATE-TIME` and the MPD's
    /// availability start derive from, instead of the arrival time of the
    /// first frame. For input that went through a delay the caller measures
    /// (a transcoder keeping the source's timestamps): dates stay those of
    /// the source's arrival, so the delay shows in players' latency.
    pub fn anchor_next_timeline(&mut self, media_secs: f64, wall: UnixMillis) {
        self.next_anchor = Some((media_secs, wall));
    }

    fn set_anchor(&mut self, now: UnixMillis) {
        if self.anchor.is_none() {
            // Anchor on the newest frame: it arrived now (older ones were buffered).
            self.anchor = self
                .latest_lead
                .map(|(dts, _, ts)| (dts as f64 / f64::from(ts), now));
        }
    }

    /// A lead frame further from the previous one, either way, than the
    /// whole live window (`window_segments` longest segments): frames the
    /// caller did not report as a discontinuity ([`Packager::push_discontinuity`]).
    fn is_timeline_jump(&self, frame: &Frame) -> bool {
        let (Some(seg), Some((last, _, timescale))) = (&self.segmenter, self.latest_lead) else {
            return false;
        };
        if frame.track != seg.lead() {
            return false;
        }
        // A VOD packaging keeps every segment (`window_segments` up to
        // usize::MAX): saturate rather than wrap.
        let window = i64::try_from(self.config.window_segments.max(1)).unwrap_or(i64::MAX);
        let window_ms = i64::from(self.config.segmenter.max_segment()).saturating_mul(window);
        let limit = window_ms.saturating_mul(i64::from(timescale.max(1))) / 1000;
        frame.dts.saturating_sub(last).saturating_abs() > limit
    }

    fn drain_front(&mut self) {
        while let Some(ev) = self.front.poll() {
            self.handle(ev);
        }
    }

    fn handle(&mut self, ev: FrontEndEvent) {
        match ev {
            FrontEndEvent::Tracks(mut tracks) => {
                self.input_map.clear();
                if !self.skipped.is_empty() {
                    let mut next = 0;
                    self.input_map = (0..tracks.len())
                        .map(|i| {
                            (!self.skipped.contains(&i)).then(|| {
                                next += 1;
                                next - 1
                            })
                        })
                        .collect();
                    let mut i = 0;
                    tracks.retain(|_| {
                        i += 1;
                        !self.skipped.contains(&(i - 1))
                    });
                    if tracks.is_empty() {
                        return;
                    }
                }
                if self.segmenter.is_some() {
                    self.end_timeline();
                    self.discontinuity_pending = true;
                }
                self.start_timeline(tracks);
            }
            FrontEndEvent::Cue(cue) => {
                self.push_cue(cue);
            }
            FrontEndEvent::Discontinuity => {
                if let Some(tracks) = self.segmenter.as_ref().map(|s| s.tracks().to_vec()) {
                    self.end_timeline();
                    self.discontinuity_pending = true;
                    self.start_timeline(tracks);
                }
            }
            FrontEndEvent::Frame(mut frame) => {
                if !self.input_map.is_empty() {
                    match self.input_map.get(frame.track) {
                        Some(Some(i)) => frame.track = *i,
                        _ => return,
                    }
                }
                if self.is_timeline_jump(&frame) {
                    // Gap parts for it would have no end (an hour of them is
                    // 18,000): a jump this far is a new timeline instead.
                    self.stats.jumps += 1;
                    self.handle(FrontEndEvent::Discontinuity);
                }
                let Some(seg) = self.segmenter.as_mut() else {
                    return;
                };
                let lead = frame.track == seg.lead();
                if lead {
                    let ts = seg.tracks()[frame.track].timescale;
                    self.latest_lead = Some((frame.dts, frame.pts, ts));
                }
                if lead && !self.held_cues.is_empty() {
                    for cue in std::mem::take(&mut self.held_cues) {
                        self.push_cue(cue);
                    }
                }
                let Some(seg) = self.segmenter.as_mut() else {
                    return;
                };
                if let Some(r) = self
                    .track_rendition
                    .get(frame.track)
                    .and_then(|&i| self.renditions.get_mut(i))
                {
                    r.first_dts.get_or_insert(frame.dts);
                    r.last_dts = frame.dts;
                    r.frames += 1;
                }
                seg.push(frame);
            }
        }
    }

    /// Starts a segmenter for `tracks`: each track continues its rendition (a new
    /// init segment when its configuration differs) or starts a new one.
    fn start_timeline(&mut self, tracks: Vec<TrackInfo>) {
        // Encryption that cannot cover every track packages none of them:
        // never a clear rendition when encryption was asked for.
        self.refused = None;
        if let Some(enc) = &self.encryption {
            let any_kid = enc.keys.first().map(|k| k.kid).unwrap_or_default();
            for (t, info) in tracks.iter().enumerate() {
                if let Err(e) = TrackCrypt::new(enc.clone(), info, t, any_kid) {
                    self.refused = Some(Error::Unsupported(format!("encryption: {e}")));
                    return;
                }
            }
        }
        let started = self.started();
        let next_msn = self
            .renditions
            .iter()
            .map(|r| r.playlist.next_msn())
            .max()
            .unwrap_or(0);
        for r in &mut self.renditions {
            r.active = false;
        }
        self.track_rendition.clear();
        let lead = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .unwrap_or(0);
        let lead_secs = |part_target_ms: u32| {
            track_part_targets(&tracks, part_target_ms)
                .get(lead)
                .map(|&ticks| ticks as f64 / f64::from(tracks[lead].timescale.max(1)))
        };
        // `PART-TARGET` is fixed for a playlist's life: a timeline whose lead
        // makes longer parts (audio alone after the video went away: whole
        // AAC frames, 0.2133 s for 0.2 s) gets a part target that keeps
        // them within what the playlists announced.
        let mut seg_config = self.config.segmenter;
        if let Some(announced) = self
            .renditions
            .iter()
            .filter_map(|r| r.playlist.part_target)
            .reduce(f64::min)
        {
            while seg_config.part_target_ms > 1
                && lead_secs(seg_config.part_target_ms).is_some_and(|s| s > announced + 1e-9)
            {
                seg_config.part_target_ms -= 1;
            }
        }
        let lead_part_target = lead_secs(seg_config.part_target_ms).unwrap_or(0.2);
        let mut crypts: Vec<Option<TrackCrypt>> = Vec::with_capacity(tracks.len());
        for (t, info) in tracks.iter().enumerate() {
            let name = match self.names.get(t) {
                Some(n) => n.clone(),
                None => {
                    let nth = tracks[..t]
                        .iter()
                        .filter(|o| o.kind() == info.kind())
                        .count();
                    rendition_name(info.kind(), nth)
                }
            };
            let index = match self.renditions.iter().position(|r| r.name == name) {
                Some(i) => i,
                None => {
                    self.renditions.push(Rendition::new(
                        name,
                        info.clone(),
                        &self.config,
                        next_msn,
                        lead_part_target,
                    ));
                    self.renditions.len() - 1
                }
            };
            self.track_rendition.push(index);
            let r = &mut self.renditions[index];
            r.playlist.independent_segments = !self.keyless;
            r.active = true;
            r.frames = 0;
            r.first_dts = None;
            let continuing =
                !r.playlist.segments.is_empty() || !r.playlist.trailing_parts.is_empty();
            let new_init = r.info != *info || r.init_name.is_empty();
            // The init's default KID: the key of the first segment it serves;
            // a reused init keeps its own (fragments under another key carry
            // a `seig` group).
            let crypt = self.encryption.as_ref().and_then(|enc| {
                let kid = match r.init_kid {
                    Some(kid) if !new_init => kid,
                    _ => enc.key_for(next_msn)?.kid,
                };
                TrackCrypt::new(enc.clone(), info, t, kid).ok()
            });
            if new_init {
                let name = init_name(&r.name, r.inits_written);
                r.inits_written += 1;
                r.init_kid = crypt.as_ref().map(|c| c.default_kid);
                self.events.push_back(Event::Object {
                    name: name.clone(),
                    kind: ObjectKind::Init,
                    data: Bytes::from(cmaf::write_protected_init(
                        std::slice::from_ref(info),
                        &[crypt.as_ref()],
                    )),
                });
                if continuing {
                    r.playlist.trailing_tags.map = Some(Map::new(&name));
                } else {
                    r.playlist.map = Some(Map::new(&name));
                }
                r.init_name = name;
                r.info = info.clone();
            }
            if self.discontinuity_pending && continuing {
                r.playlist.trailing_tags.discontinuity = true;
            }
            // DASH lists the current timeline only.
            r.timeline.clear();
            crypts.push(crypt);
        }
        if self.discontinuity_pending && started {
            self.stats.discontinuities += 1;
        }
        self.discontinuity_pending = false;
        self.anchor = self.next_anchor.take();
        self.latest_lead = None;
        let mut segmenter = Segmenter::new(seg_config, tracks, next_msn);
        if self.encryption.is_some() {
            segmenter.set_encryption(crypts);
        }
        self.segmenter = Some(segmenter);
    }

    /// Writes out what the current segmenter holds as the last parts and segments.
    fn end_timeline(&mut self) {
        if let Some(mut seg) = self.segmenter.take() {
            seg.flush();
            self.apply_outputs(&mut seg);
            self.stats.segmenter.add(seg.stats());
        }
        // The next timeline's clock is another: a break in progress ends
        // where this one did, cues not yet placed are dropped.
        self.breaks
            .end_timeline(self.lead_end.take(), self.finished);
    }

    fn drain_segmenter(&mut self) {
        if let Some(mut seg) = self.segmenter.take() {
            self.apply_outputs(&mut seg);
            self.segmenter = Some(seg);
        }
    }

    fn apply_outputs(&mut self, seg: &mut Segmenter) {
        // A segment that does not start with a keyframe, on the lead (cut at
        // the longest) or on another video track (an encoder that did not key
        // where the lead did).
        let keyless =
            |s: &SegmenterStats| s.segments_without_keyframe + s.follower_segments_without_keyframe;
        if !self.keyless && keyless(&self.stats.segmenter) + keyless(&seg.stats()) > 0 {
            self.keyless = true;
            for r in &mut self.renditions {
                r.playlist.independent_segments = false;
            }
        }
        let lead = seg.lead();
        let mut changed = false;
        while let Some(out) = seg.poll() {
            match out {
                SegmenterOutput::Chunk(c) => self.on_chunk(c),
                SegmenterOutput::Part(p) => {
                    if p.track == lead {
                        self.stats.parts += 1;
                    }
                    let lead = p.track == lead;
                    self.on_part(p, lead);
                    changed = true;
                }
                SegmenterOutput::Segment(s) => {
                    if s.track == lead {
                        self.stats.segments += 1;
                    }
                    self.on_segment(s);
                    changed = true;
                }
            }
        }
        if changed {
            self.refresh_reports();
            self.events.push_back(Event::PlaylistChanged);
        }
    }

    fn rendition_of(&self, track: usize) -> Option<usize> {
        self.track_rendition.get(track).copied()
    }

    fn on_chunk(&mut self, c: ChunkOut) {
        let Some(ri) = self.rendition_of(c.track) else {
            return;
        };
        let name = self.renditions[ri].name.as_str();
        // A chunk extends both the part and the segment being made.
        self.events.push_back(Event::Chunk {
            name: part_name(name, c.msn, u64::from(c.index)),
            kind: ObjectKind::Part,
            data: c.data.clone(),
        });
        self.events.push_back(Event::Chunk {
            name: segment_name(name, c.msn),
            kind: ObjectKind::Segment,
            data: c.data,
        });
    }

    fn on_part(&mut self, p: PartOut, lead: bool) {
        let Some(ri) = self.rendition_of(p.track) else {
            return;
        };
        if p.index == 0 {
            if lead {
                let timescale = self.renditions[ri].info.timescale;
                let date = self.anchor.map(|(anchor_secs, wall)| {
                    let start = p.start as f64 / f64::from(timescale);
                    wall.offset_by(((start - anchor_secs) * 1000.0).round() as i64, 1000)
                });
                self.breaks
                    .segment_started(p.msn, p.start, p.cut, date, timescale);
            }
            if let Some(mark) = self.breaks.mark(p.msn) {
                let tags = &mut self.renditions[ri].playlist.trailing_tags;
                tags.date_ranges.extend(mark.date_ranges.iter().cloned());
                tags.other.extend(mark.tags.iter().cloned());
            }
        }
        if lead {
            self.lead_end = Some(p.start + p.duration);
        }
        let r = &mut self.renditions[ri];
        if let Some(enc) = &self.encryption {
            note_key_period(r, enc, p.msn);
        }
        let timescale = f64::from(r.info.timescale);
        let secs = p.duration as f64 / timescale;
        let name = part_name(&r.name, p.msn, u64::from(p.index));
        if !p.gap {
            r.recent.push_back((p.data.len(), secs));
            while r.recent.len() > 50 {
                r.recent.pop_front();
            }
            self.events.push_back(Event::Object {
                name: name.clone(),
                kind: ObjectKind::Part,
                data: p.data,
            });
        }
        let mut part = Part::new(name, secs, p.independent);
        part.gap = p.gap;
        r.playlist.trailing_parts.push(part);
        // Hint the part that will most likely come next (the segmenter's guess: a
        // hint for part msn.(index+1) when the next keyframe starts segment msn+1
        // would name a part that never exists).
        let next = if p.next_starts_segment {
            part_name(&r.name, p.msn + 1, 0)
        } else {
            part_name(&r.name, p.msn, u64::from(p.index) + 1)
        };
        r.playlist.preload_hints = vec![PreloadHint::part(next)];
    }

    fn on_segment(&mut self, s: SegmentOut) {
        let Some(ri) = self.rendition_of(s.track) else {
            return;
        };
        let anchor = self.anchor;
        let r = &mut self.renditions[ri];
        if let Some(enc) = &self.encryption {
            note_key_period(r, enc, s.msn);
        }
        let timescale = f64::from(r.info.timescale);
        let secs = s.duration as f64 / timescale;
        let name = segment_name(&r.name, s.msn);
        if !s.gap {
            if secs > 0.0 {
                r.peak_bitrate = r
                    .peak_bitrate
                    .max((s.data.len() as f64 * 8.0 / secs) as u64);
            }
            self.events.push_back(Event::Object {
                name: name.clone(),
                kind: ObjectKind::Segment,
                data: s.data,
            });
            r.timeline.push_back(TimelineEntry {
                number: s.msn,
                start: s.start.max(0) as u64,
                duration: s.duration.max(0) as u64,
            });
            if let Some(len) = s.keyframe_chunk {
                r.keyframe_chunks.push_back((s.msn, len));
            }
            while r.timeline.len() > MAX_TIMELINE {
                r.timeline.pop_front();
            }
        }
        let pdt = anchor.map(|(anchor_secs, wall)| {
            let start = s.start as f64 / timescale;
            wall.offset_by(((start - anchor_secs) * 1000.0).round() as i64, 1000)
        });
        let parts = std::mem::take(&mut r.playlist.trailing_parts);
        r.part_counts.push_back((s.msn, parts.len()));
        let mut tags = std::mem::take(&mut r.playlist.trailing_tags);
        tags.program_date_time = pdt;
        tags.gap = s.gap;
        r.playlist.segments.push(Segment {
            tags,
            parts,
            ..Segment::new(s.msn, name, secs)
        });
        r.playlist.preload_hints = vec![PreloadHint::part(part_name(&r.name, s.msn + 1, 0))];
        let window = self.config.window_segments.max(1);
        Self::trim_window(r, window, &mut self.events);
    }

    fn trim_window(r: &mut Rendition, window: usize, events: &mut VecDeque<Event>) {
        let pl = &mut r.playlist;
        while pl.segments.len() > window {
            let old = pl.segments.remove(0);
            pl.media_sequence = old.msn + 1;
            // RFC 8216bis §6.2.2: removing a segment with EXT-X-DISCONTINUITY
            // increments the discontinuity sequence; a map it introduced stays in
            // effect for the segments after it.
            if old.tags.discontinuity {
                pl.discontinuity_sequence += 1;
            }
            if !old.tags.keys.is_empty() {
                pl.keys = old.tags.keys;
            }
            if let Some(map) = old.tags.map {
                // The init segment the old map named is no longer referenced.
                if let Some(prev) = pl.map.replace(map) {
                    events.push_back(Event::Evicted { name: prev.uri });
                }
            }
            // Parts are evicted with their segment: a player that saw them in an
            // earlier playlist may still ask for them.
            let part_count = match r.part_counts.pop_front() {
                Some((msn, n)) if msn == old.msn => n,
                _ => 0,
            };
            for i in 0..part_count {
                events.push_back(Event::Evicted {
                    name: part_name(&r.name, old.msn, i as u64),
                });
            }
            events.push_back(Event::Evicted { name: old.uri });
        }
        while r
            .keyframe_chunks
            .front()
            .is_some_and(|(msn, _)| *msn < pl.media_sequence)
        {
            r.keyframe_chunks.pop_front();
        }
        // Parts leave the playlist before they are three target durations from
        // its end (RFC 8216bis §6.2.2): those of the segment being made and of
        // the last two complete segments stay, less than three target durations
        // since no segment is longer than one. Their objects stay until the
        // segment is evicted.
        let keep = pl.segments.len().saturating_sub(PARTS_KEPT_SEGMENTS);
        for seg in &mut pl.segments[..keep] {
            seg.parts.clear();
        }
    }

    /// Each playlist reports where the other renditions are (`EXT-X-RENDITION-REPORT`).
    fn refresh_reports(&mut self) {
        /// (playlist URI, last published (msn, part), next msn) of a rendition.
        type Position = (String, Option<(u64, u64)>, u64);
        let positions: Vec<Position> = self
            .renditions
            .iter()
            .map(|r| {
                (
                    playlist_name(&r.name),
                    r.playlist.last_part(),
                    r.playlist.next_msn(),
                )
            })
            .collect();
        for (i, r) in self.renditions.iter_mut().enumerate() {
            r.playlist.rendition_reports = positions
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (uri, last, next))| RenditionReport {
                    uri: uri.clone(),
                    last_msn: Some(last.map_or(next.saturating_sub(1), |(m, _)| m)),
                    last_part: last.map(|(_, p)| p),
                    extra: Default::default(),
                })
                .collect();
        }
    }
}

/// The `EXT-X-KEY` tags of key period `period`: one per key system.
pub(crate) fn hls_keys(enc: &Encryption, period: u64) -> Vec<Key> {
    let Some(key) = enc.key_of_period(period) else {
        return Vec::new();
    };
    let method = enc.scheme.hls_method();
    let mut keys = Vec::new();
    for k in &enc.key_systems {
        let format = match k {
            KeySystem::ClearKey { .. } => "org.w3.clearkey",
            KeySystem::Identity { .. } => "identity",
            KeySystem::Drm(d) => {
                // The provider's tags (checked when they were received).
                keys.extend(d.hls_keys.iter().filter_map(|a| Key::from_attrs(a).ok()));
                continue;
            }
        };
        keys.push(Key::new(method, k.url_for(&key.kid), format, &key.kid));
    }
    keys
}

/// The multivariant playlist's `EXT-X-SESSION-KEY` attribute lists: the
/// media playlists' keys, or a DRM system's own session keys.
fn hls_session_keys(enc: &Encryption) -> Vec<String> {
    let mut out = Vec::new();
    for k in &enc.key_systems {
        match k {
            KeySystem::Drm(d) if !d.hls_session_keys.is_empty() => out.extend(
                d.hls_session_keys
                    .iter()
                    .filter_map(|a| Key::from_attrs(a).ok())
                    .map(|k| k.attrs()),
            ),
            _ => {
                let one = Encryption {
                    key_systems: vec![k.clone()],
                    ..enc.clone()
                };
                out.extend(hls_keys(&one, 0).iter().map(|k| k.attrs()));
            }
        }
    }
    out
}

/// Before the first part (or segment) of segment `msn` is listed: when it
/// starts a key period, its key tags go before it (the playlist's own when
/// nothing is listed yet).
fn note_key_period(r: &mut Rendition, enc: &Encryption, msn: u64) {
    let period = enc.period(msn);
    if r.key_period == Some(period) {
        return;
    }
    r.key_period = Some(period);
    let keys = hls_keys(enc, period);
    let pl = &mut r.playlist;
    if pl.segments.is_empty() && pl.trailing_parts.is_empty() && pl.trailing_tags.is_empty() {
        pl.keys = keys;
    } else {
        pl.trailing_tags.keys = keys;
    }
}
