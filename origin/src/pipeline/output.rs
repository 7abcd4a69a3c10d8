//! The end of a stream's pipeline: one packager for every rendition, and what
//! its events become in the hub (objects, then the snapshot that names them,
//! then evictions) and in the archive (init segments and segments once a
//! playlist names them, the multivariant playlist, the VOD's MPD).

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_packager::breaks::SpliceCue;
use brook_packager::hls::MediaPlaylist;
use brook_packager::media::{Frame, TrackInfo};
use brook_packager::{Event, ObjectKind, Packager, PackagerConfig, UnixMillis, MPD_NAME};
use bytes::Bytes;
use tracing::warn;

use crate::serve::http::TIME_PATH;
use crate::serve::hub::{Object, PlaylistEntry, Progress, Rendered, Snapshot, Stream};
use crate::store::archive::Archive;

/// One stream session's packager and where its output goes.
#[derive(Debug)]
pub struct Output {
    pub stream: Arc<Stream>,
    pub session: String,
    packager: Packager,
    archive: Option<Arc<Archive>>,
    multivariant_archived: bool,
    /// A publisher feeds the stream now (shown in snapshots).
    live: bool,
    /// The packager demuxes the source itself (passthrough), so its
    /// continuity counts are the source's.
    demuxes_source: bool,
    /// The first segment cut without a keyframe was logged.
    warned_keyframes: bool,
}

impl Output {
    pub fn new(
        stream: Arc<Stream>,
        session: String,
        config: PackagerConfig,
        archive: Option<Arc<Archive>>,
        demuxes_source: bool,
    ) -> Self {
        Self {
            demuxes_source,
            stream,
            session,
            packager: Packager::new(config),
            archive,
            multivariant_archived: false,
            live: true,
            warned_keyframes: false,
        }
    }

    pub fn packager(&self) -> &Packager {
        &self.packager
    }

    /// MPEG-TS in (a passthrough source, or a transcoder's ladder).
    pub fn push_ts(&mut self, bytes: &[u8], now: UnixMillis) -> Result<(), brook_packager::Error> {
        let result = self.packager.push_ts(bytes, now);
        self.apply(now);
        result
    }

    pub fn push_tracks(&mut self, tracks: Vec<TrackInfo>, now: UnixMillis) {
        self.packager.push_tracks(tracks);
        self.apply(now);
    }

    /// An ad break starts or ends ([`Packager::push_cue`]).
    /// Whether it changed the schedule.
    pub fn push_cue(&mut self, cue: SpliceCue, now: UnixMillis) -> bool {
        let accepted = self.packager.push_cue(cue);
        self.apply(now);
        accepted
    }

    pub fn push_frame(&mut self, frame: Frame, now: UnixMillis) {
        self.packager.push_frame(frame, now);
        self.apply(now);
    }

    /// The next timeline's media time `media_secs` arrived at `wall`
    /// ([`Packager::anchor_next_timeline`]).
    pub fn anchor_next_timeline(&mut self, media_secs: f64, wall: UnixMillis) {
        self.packager.anchor_next_timeline(media_secs, wall);
    }

    /// Names the renditions of the next track list ([`Packager::set_rendition_names`]).
    pub fn set_rendition_names(&mut self, names: Vec<String>) {
        self.packager.set_rendition_names(names);
    }

    /// Input tracks of the next track list not to package
    /// ([`Packager::set_skipped_tracks`]).
    pub fn set_skipped_tracks(&mut self, skipped: Vec<usize>) {
        self.packager.set_skipped_tracks(skipped);
    }

    /// The input that fed the packager ended (a publisher went away, a
    /// transcoder restarts): what it left goes out, and the next input starts
    /// after a discontinuity.
    pub fn restart_input(&mut self, now: UnixMillis) {
        self.packager.restart_input();
        self.apply(now);
    }

    /// Takes a rendition out of the stream for good (a dropped rung); call
    /// after [`Output::restart_input`].
    pub fn retire_rendition(&mut self, name: &str, now: UnixMillis) {
        self.packager.retire_rendition(name);
        self.apply(now);
    }

    /// Whether a publisher feeds the stream: republishes the snapshot with it.
    pub fn set_live(&mut self, live: bool) {
        self.live = live;
        let mut snap = (*self.stream.snapshot()).clone();
        snap.live = live;
        self.stream.publish(snap);
    }

    /// Ends the session: last parts and segments, ENDLIST, the archive's VOD.
    pub fn finish(&mut self, now: UnixMillis) {
        self.live = false;
        self.packager.finish();
        self.apply(now);
        if let Some(a) = &self.archive {
            if let Some(mv) = self.packager.multivariant() {
                a.multivariant(&self.stream.name, &self.session, mv);
            }
            // The static MPD of the VOD (the packager is finished).
            if let Some(mpd) = self.packager.dash_manifest(now, None) {
                a.object(&self.stream.name, &self.session, MPD_NAME, Bytes::from(mpd));
            }
            a.end(&self.stream.name, &self.session);
        }
    }

    /// Applies packager events to the hub in the order the hub's contract needs:
    /// objects in, then the new snapshot, then evictions. New segments go to the
    /// archive once they are in a playlist.
    fn apply(&mut self, now: UnixMillis) {
        let mut changed = false;
        let mut evicted = Vec::new();
        let mut new_segments: Vec<(String, Bytes)> = Vec::new();
        while let Some(event) = self.packager.poll() {
            match event {
                Event::Chunk { name, kind, data } => self.stream.append_chunk(&name, kind, data),
                Event::Object { name, kind, data } => {
                    match kind {
                        ObjectKind::Segment => new_segments.push((name.clone(), data.clone())),
                        ObjectKind::Init => {
                            if let Some(a) = &self.archive {
                                a.object(&self.stream.name, &self.session, &name, data.clone());
                            }
                        }
                        ObjectKind::Part => {}
                    }
                    self.stream.insert(name, Object::new(kind, data));
                }
                Event::Evicted { name } => evicted.push(name),
                Event::PlaylistChanged => changed = true,
            }
        }
        if changed {
            self.publish(now, new_segments);
        }
        if !evicted.is_empty() {
            self.stream.remove(&evicted);
        }
    }

    fn publish(&mut self, now: UnixMillis, new_segments: Vec<(String, Bytes)>) {
        let mut playlists = BTreeMap::new();
        let mut medias: BTreeMap<String, &MediaPlaylist> = BTreeMap::new();
        for (name, media) in self.packager.media_playlists() {
            let entry = PlaylistEntry {
                progress: progress(media),
                text: Rendered::new(Bytes::from(media.to_string())),
                delta: media
                    .delta(false)
                    .map(|d| Rendered::new(Bytes::from(d.to_string()))),
            };
            playlists.insert(name.clone(), entry);
            medias.insert(name, media);
        }
        let mv = self.packager.multivariant();
        if let (Some(a), Some(mv)) = (&self.archive, &mv) {
            if !self.multivariant_archived {
                self.multivariant_archived = true;
                a.multivariant(&self.stream.name, &self.session, mv.clone());
            }
        }
        let session = &self.session;
        let multivariant = mv.map(|mut m| {
            m.for_each_uri_mut(|_, uri| *uri = format!("{session}/{uri}"));
            Rendered::new(Bytes::from(m.to_string()))
        });
        let mpd = self
            .packager
            .dash_manifest(now, Some(TIME_PATH))
            .map(|m| Rendered::new(Bytes::from(m)));
        if let Some(a) = &self.archive {
            for (name, data) in new_segments {
                let found = medias.iter().find_map(|(pl_name, media)| {
                    media
                        .segments
                        .iter()
                        .find(|s| s.uri == name)
                        .map(|seg| (pl_name, *media, seg))
                });
                if let Some((pl_name, media, seg)) = found {
                    a.segment(&self.stream.name, session, pl_name, media, seg, data);
                }
            }
        }
        let stats = self.packager.stats();
        let without_keyframe = stats.segmenter.segments_without_keyframe;
        if without_keyframe > 0 && !self.warned_keyframes {
            self.warned_keyframes = true;
            warn!(
                stream = %self.stream.name,
                session = %self.session,
                "the encoder sent no keyframe for a whole segment: segments are cut without \
                 one and players join at the next (set its keyframe interval to the segment \
                 target)"
            );
        }
        if let Ok(mut st) = self.stream.stats.lock() {
            st.parts = stats.parts;
            st.segments = stats.segments;
            st.segments_without_keyframe = without_keyframe;
            st.ad_cues = stats.breaks.cues;
            st.ad_cues_ignored = stats.breaks.ignored;
            st.ad_breaks = stats.breaks.breaks;
            if self.demuxes_source {
                st.continuity_errors = stats.demux.continuity_errors;
            }
        }
        self.stream.publish(Snapshot {
            session: self.session.clone(),
            version: 0,
            playlists: Arc::new(playlists),
            multivariant,
            mpd,
            live: self.live,
            ended: false,
        });
    }
}

/// Where a media playlist stands, for the serving layer's blocking requests.
fn progress(media: &MediaPlaylist) -> Progress {
    // RFC 8216bis §6.2.5.2: the Advance Part Limit is three target durations'
    // worth of parts (at least three parts).
    let part_target = media.part_target.unwrap_or(1.0);
    let sub_limit = if part_target < 1.0 {
        (3.0 / part_target).ceil() as u64
    } else {
        3
    };
    Progress {
        next: media.next_msn(),
        subs: media.trailing_parts.len() as u64,
        sub_limit,
        hint: media.preload_part().map(str::to_string),
        ended: media.end_list,
    }
}
