//! Publish sessions: admission (stream keys), the stream lifecycle (publish,
//! reconnect within a grace period, takeover, end), and the bridge from an ingest
//! connection to the packager, the hub and the archive. Ingest adapters (SRT
//! today) call into [`Publisher`]; this is the only module that drives the
//! packager.
//!
//! A stream's packager outlives the connection that feeds it: when an encoder
//! drops, the stream waits `publish.reconnect_grace_ms` for it (viewers keep the
//! playlist; blocked requests keep waiting). An encoder that comes back within
//! the grace period continues the same session (same URLs) after an
//! `EXT-X-DISCONTINUITY`; otherwise the stream ends (`EXT-X-ENDLIST`) and its
//! archive becomes a VOD.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use brook_packager::hls::MediaPlaylist;
use brook_packager::media::{Frame, TrackInfo};
use brook_packager::{Event, ObjectKind, Packager, UnixMillis, MPD_NAME};
use bytes::Bytes;
use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::config::{Config, OnConflict};
use crate::ingest::srt::{IngestSink, Mode, PublishRequest, PublishSession, Rejection, SrtStats};
use crate::metrics::Metrics;
use crate::serve::hub::{
    unix_ms, Hub, Object, PlaylistEntry, Progress, Rendered, Snapshot, Stream,
};
use crate::store::archive::Archive;

/// Admits publishers by stream key and runs one [`Live`] stream per name.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Arc<Hub>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    archive: Option<Arc<Archive>>,
    /// Runs the reconnect-grace timers.
    runtime: Handle,
    lives: Mutex<HashMap<String, Arc<Mutex<Live>>>>,
    shutting_down: AtomicBool,
}

/// A stream whose session has not ended: its packager, and which publisher
/// connection currently feeds it.
struct Live {
    stream: Arc<Stream>,
    session: String,
    packager: Packager,
    /// Bumped whenever the feeding connection changes (reconnect, takeover, kick):
    /// a connection whose generation is stale is told to go away.
    generation: u64,
    connected: bool,
    /// The packager refused input: this session cannot continue.
    failed: bool,
    ended: bool,
    multivariant_archived: bool,
}

/// What an admin action found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Done,
    NotLive,
}

impl Publisher {
    pub fn new(
        hub: Arc<Hub>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        archive: Option<Arc<Archive>>,
        runtime: Handle,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                hub,
                config,
                metrics,
                archive,
                runtime,
                lives: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    fn check(&self, req: &PublishRequest) -> Result<(), Rejection> {
        let result = self.check_inner(req);
        if result.is_err() {
            self.inner
                .metrics
                .publish_rejections
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn check_inner(&self, req: &PublishRequest) -> Result<(), Rejection> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(Rejection::Unavailable("the origin is shutting down".into()));
        }
        if req.mode != Mode::Publish {
            return Err(Rejection::BadRequest(
                "only publishing is supported over SRT; play over HLS".into(),
            ));
        }
        let name = req.name();
        let Some(stream) = self.inner.config.streams.get(name) else {
            return Err(Rejection::Forbidden(format!(
                "stream {name} is not configured"
            )));
        };
        let Some(key) = req.key.as_deref() else {
            return Err(Rejection::Unauthorized("no stream key".into()));
        };
        if !constant_time_eq(key.as_bytes(), stream.key.as_bytes()) {
            return Err(Rejection::Unauthorized("wrong stream key".into()));
        }
        if self.inner.config.publish.on_conflict == OnConflict::Reject
            && self.live(name).is_some_and(|l| lock(&l).connected)
        {
            return Err(Rejection::Unavailable(format!(
                "stream {name} already has a publisher"
            )));
        }
        Ok(())
    }

    fn live(&self, name: &str) -> Option<Arc<Mutex<Live>>> {
        self.inner.lives.lock().ok()?.get(name).cloned()
    }

    /// Attaches a new connection to stream `name`: continues its session when one
    /// is running (reconnect, takeover), or starts a new one.
    fn attach(&self, name: &str, peer: SocketAddr) -> Result<(Arc<Mutex<Live>>, u64), Rejection> {
        let mut lives = self
            .inner
            .lives
            .lock()
            .map_err(|_| Rejection::Unavailable("internal error".into()))?;
        if let Some(existing) = lives.get(name).cloned() {
            let mut live = lock(&existing);
            if live.connected && self.inner.config.publish.on_conflict == OnConflict::Reject {
                return Err(Rejection::Unavailable(format!(
                    "stream {name} already has a publisher"
                )));
            }
            if !live.failed && !live.ended {
                let was = if live.connected {
                    // The old connection's input ends here (it is told to go on
                    // its next write); after a disconnect this already happened.
                    live.packager.restart_input();
                    self.apply(&mut live);
                    "taken over"
                } else {
                    "resumed"
                };
                live.generation += 1;
                live.connected = true;
                if let Ok(mut st) = live.stream.stats.lock() {
                    st.connections += 1;
                    st.peer = Some(peer);
                }
                live.stream.set_publishing(true);
                let mut snap = (*live.stream.snapshot()).clone();
                snap.live = true;
                live.stream.publish(snap);
                info!(stream = %name, %peer, session = %live.session, "publish {was}");
                return Ok((existing.clone(), live.generation));
            }
            // The session cannot continue: end it, start a new one below.
            let generation = live.generation + 1;
            live.generation = generation;
            self.finish(&mut live);
            drop(live);
            lives.remove(name);
        }
        if let Some(stream) = self.inner.hub.stream(name) {
            stream.set_publishing(false); // ended above or long ago
        }
        let stream = self
            .inner
            .hub
            .begin_publish(name)
            .map_err(|e| Rejection::Unavailable(e.to_string()))?;
        if let Ok(mut st) = stream.stats.lock() {
            st.peer = Some(peer);
        }
        let session = stream.snapshot().session.clone();
        info!(stream = %name, %peer, %session, "publish started");
        let live = Arc::new(Mutex::new(Live {
            stream,
            session,
            packager: Packager::new(self.inner.config.packager.to_packager_config()),
            generation: 1,
            connected: true,
            failed: false,
            ended: false,
            multivariant_archived: false,
        }));
        lives.insert(name.to_string(), live.clone());
        Ok((live, 1))
    }

    /// A connection went away (or was told to). Starts the grace period, or ends
    /// the stream at once when it cannot continue.
    fn detach(&self, live: &Arc<Mutex<Live>>, generation: u64) {
        let mut l = lock(live);
        if l.generation != generation || l.ended {
            return; // another connection took over, or the stream ended
        }
        l.connected = false;
        if let Ok(mut st) = l.stream.stats.lock() {
            st.peer = None;
            st.bitrate_bps = 0.0;
        }
        let grace = self.inner.config.publish.reconnect_grace_ms;
        if l.failed || grace == 0 || self.inner.shutting_down.load(Ordering::Relaxed) {
            self.finish(&mut l);
            let name = l.stream.name.clone();
            drop(l);
            self.forget(&name, live);
            return;
        }
        // What the old input left (the current part and segment) goes out now; the
        // next input starts after an EXT-X-DISCONTINUITY.
        l.packager.restart_input();
        self.apply(&mut l);
        // Viewers see a stream that is not publishing but not over.
        let mut snap = (*l.stream.snapshot()).clone();
        snap.live = false;
        l.stream.publish(snap);
        let this = self.clone();
        let live = live.clone();
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(grace)).await;
            let mut l = lock(&live);
            if l.generation == generation && !l.connected && !l.ended {
                info!(stream = %l.stream.name, session = %l.session, "no reconnect within the grace period");
                this.finish(&mut l);
                let name = l.stream.name.clone();
                drop(l);
                this.forget(&name, &live);
            }
        });
    }

    fn forget(&self, name: &str, live: &Arc<Mutex<Live>>) {
        if let Ok(mut lives) = self.inner.lives.lock() {
            if lives.get(name).is_some_and(|l| Arc::ptr_eq(l, live)) {
                lives.remove(name);
            }
        }
    }

    /// Ends the session: last part and segment, ENDLIST, archive to VOD.
    fn finish(&self, l: &mut Live) {
        if l.ended {
            return;
        }
        l.ended = true;
        l.connected = false;
        l.packager.finish();
        self.apply(l);
        self.inner.hub.end_publish(&l.stream);
        if let Some(a) = &self.inner.archive {
            if let Some(mv) = l.packager.multivariant() {
                a.multivariant(&l.stream.name, &l.session, mv);
            }
            // The static MPD of the VOD (the packager is finished).
            if let Some(mpd) = l.packager.dash_manifest(now(), None) {
                a.object(&l.stream.name, &l.session, MPD_NAME, Bytes::from(mpd));
            }
            a.end(&l.stream.name, &l.session);
        }
        let p = l.packager.stats();
        info!(stream = %l.stream.name, session = %l.session, segments = p.segments, "stream ended");
    }

    /// Applies packager events to the hub in the order the hub's contract needs:
    /// objects in, then the new playlist, then evictions. New segments go to the
    /// archive once they are in a playlist.
    fn apply(&self, l: &mut Live) {
        let mut changed = false;
        let mut evicted = Vec::new();
        let mut new_segments: Vec<(String, Bytes)> = Vec::new();
        while let Some(event) = l.packager.poll() {
            match event {
                Event::Chunk { name, kind, data } => l.stream.append_chunk(&name, kind, data),
                Event::Object { name, kind, data } => {
                    match kind {
                        ObjectKind::Segment => new_segments.push((name.clone(), data.clone())),
                        ObjectKind::Init => {
                            if let Some(a) = &self.inner.archive {
                                a.object(&l.stream.name, &l.session, &name, data.clone());
                            }
                        }
                        ObjectKind::Part => {}
                    }
                    l.stream.insert(name, Object::new(kind, data));
                }
                Event::Evicted { name } => evicted.push(name),
                Event::PlaylistChanged => changed = true,
            }
        }
        if changed {
            let mut playlists = BTreeMap::new();
            let mut medias = BTreeMap::new();
            for (name, media) in l.packager.media_playlists() {
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
            let mv = l.packager.multivariant();
            if let (Some(a), Some(mv)) = (&self.inner.archive, &mv) {
                if !l.multivariant_archived {
                    l.multivariant_archived = true;
                    a.multivariant(&l.stream.name, &l.session, mv.clone());
                }
            }
            let multivariant = mv.map(|mut m| {
                m.for_each_uri_mut(|_, uri| *uri = format!("{}/{uri}", l.session));
                Rendered::new(Bytes::from(m.to_string()))
            });
            let mpd = l
                .packager
                .dash_manifest(now(), Some(crate::serve::http::TIME_PATH))
                .map(|m| Rendered::new(Bytes::from(m)));
            if let Some(a) = &self.inner.archive {
                for (name, data) in new_segments {
                    let found = medias.iter().find_map(|(pl_name, media)| {
                        media
                            .segments
                            .iter()
                            .find(|s| s.uri == name)
                            .map(|seg| (pl_name, *media, seg))
                    });
                    if let Some((pl_name, media, seg)) = found {
                        a.segment(&l.stream.name, &l.session, pl_name, media, seg, data);
                    }
                }
            }
            let stats = l.packager.stats();
            if let Ok(mut st) = l.stream.stats.lock() {
                st.parts = stats.parts;
                st.segments = stats.segments;
                st.continuity_errors = stats.demux.continuity_errors;
            }
            l.stream.publish(Snapshot {
                session: l.session.clone(),
                version: 0,
                playlists: Arc::new(playlists),
                multivariant,
                mpd,
                live: l.connected,
                ended: false,
            });
        }
        if !evicted.is_empty() {
            l.stream.remove(&evicted);
        }
    }

    /// Disconnects the stream's publisher (admin "kick"). It may reconnect within
    /// the grace period and continue the stream. A publisher that sends nothing
    /// more is only dropped by the SRT idle timeout.
    pub fn kick(&self, name: &str) -> Action {
        let Some(live) = self.live(name) else {
            return Action::NotLive;
        };
        let generation = {
            let mut l = lock(&live);
            if !l.connected {
                return Action::NotLive;
            }
            l.generation += 1;
            l.generation
        };
        info!(stream = %name, "publisher kicked");
        // As if that connection had closed: the grace period starts now.
        self.detach(&live, generation);
        Action::Done
    }

    /// Ends the stream now (admin "end"): the publisher is disconnected, the
    /// playlist ends and the archive becomes a VOD.
    pub fn end(&self, name: &str) -> Action {
        let Some(live) = self.live(name) else {
            return Action::NotLive;
        };
        {
            let mut l = lock(&live);
            l.generation += 1;
            self.finish(&mut l);
        }
        self.forget(name, &live);
        info!(stream = %name, "stream ended by the admin API");
        Action::Done
    }

    /// Stops admitting publishers and ends every stream (graceful shutdown).
    /// Sessions still attached end when they close. Then flush the archive.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        let lives: Vec<_> = self
            .inner
            .lives
            .lock()
            .map(|mut l| l.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for live in lives {
            let mut l = lock(&live);
            l.generation += 1;
            self.finish(&mut l);
        }
    }

    pub fn archive(&self) -> Option<&Arc<Archive>> {
        self.inner.archive.as_ref()
    }
}

fn lock(live: &Mutex<Live>) -> MutexGuard<'_, Live> {
    // A panic while holding the lock leaves a packager in an unknown state; the
    // data is still memory-safe to use, and the session ends soon after.
    live.lock().unwrap_or_else(|p| p.into_inner())
}

impl IngestSink for Publisher {
    fn authorize(&self, req: &PublishRequest, _peer: SocketAddr) -> Result<(), Rejection> {
        self.check(req)
    }

    fn open(
        &self,
        req: &PublishRequest,
        peer: SocketAddr,
    ) -> Result<Box<dyn PublishSession>, Rejection> {
        self.check(req)?;
        let (live, generation) = self.attach(req.name(), peer)?;
        self.inner.metrics.publishes.fetch_add(1, Ordering::Relaxed);
        let (stream, session) = {
            let l = lock(&live);
            (l.stream.clone(), l.session.clone())
        };
        Ok(Box::new(Session {
            publisher: self.clone(),
            live,
            generation,
            stream,
            session,
            peer,
            started: Instant::now(),
            bytes: 0,
            last_stats: None,
        }))
    }
}

/// One publisher connection: bytes in, objects and playlists into the hub.
pub struct Session {
    publisher: Publisher,
    live: Arc<Mutex<Live>>,
    generation: u64,
    stream: Arc<Stream>,
    session: String,
    peer: SocketAddr,
    started: Instant,
    bytes: u64,
    last_stats: Option<SrtStats>,
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

fn now() -> UnixMillis {
    UnixMillis(unix_ms())
}

impl PublishSession for Session {
    fn data(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.bytes += bytes.len() as u64;
        let mut l = lock(&self.live);
        if l.generation != self.generation {
            return Err("another publisher took over, or the publisher was kicked".into());
        }
        if l.ended {
            return Err("the stream was ended".into());
        }
        if let Ok(mut st) = l.stream.stats.lock() {
            st.bytes += bytes.len() as u64;
        }
        let result = l.packager.push_ts(bytes, now());
        self.publisher.apply(&mut l);
        if result.is_err() {
            l.failed = true;
        }
        result.map_err(|e| e.to_string())
    }

    fn stats(&mut self, stats: &SrtStats) {
        // SRT totals count from connect; the stream's counters span reconnects.
        let prev = self.last_stats.unwrap_or_default();
        if let Ok(mut st) = self.stream.stats.lock() {
            st.rtt_ms = stats.rtt_ms;
            st.bitrate_bps = stats.recv_rate_mbps * 1e6;
            st.packets_received += stats.packets_received.saturating_sub(prev.packets_received);
            st.packets_lost += stats.packets_lost.saturating_sub(prev.packets_lost);
            st.packets_retransmitted += stats
                .packets_retransmitted
                .saturating_sub(prev.packets_retransmitted);
            st.packets_dropped += stats.packets_dropped.saturating_sub(prev.packets_dropped);
        }
        self.last_stats = Some(*stats);
    }

    fn close(self: Box<Self>, reason: &str) {
        let p = lock(&self.live).packager.stats();
        let link = self.last_stats.unwrap_or_default();
        info!(
            stream = %self.stream.name,
            peer = %self.peer,
            session = %self.session,
            seconds = self.started.elapsed().as_secs(),
            bytes = self.bytes,
            segments = p.segments,
            continuity_errors = p.demux.continuity_errors,
            dropped_frames = p.frames.dropped_video + p.frames.dropped_audio,
            lost_packets = link.packets_lost,
            "publish ended: {reason}"
        );
        if lock(&self.live).failed {
            warn!(stream = %self.stream.name, "input refused; the session ends without a grace period");
        }
        self.publisher.detach(&self.live, self.generation);
    }
}

/// Ingests that hand over frames rather than MPEG-TS (WHIP): the same admission
/// and stream lifecycle (reconnect grace, takeover, archive) as SRT.
impl Publisher {
    /// May `key` publish stream `name` now? The SRT checks, by name and key.
    pub fn admit(&self, name: &str, key: Option<&str>) -> Result<(), Rejection> {
        self.check(&frame_request(name, key))
    }

    /// True while a publisher (of any ingest) feeds stream `name`.
    pub fn is_publishing(&self, name: &str) -> bool {
        self.live(name).is_some_and(|l| lock(&l).connected)
    }

    /// Starts publishing `name` from a frame-based ingest, or resumes it within
    /// the reconnect grace period (same session, after a discontinuity).
    pub fn open_frames(
        &self,
        name: &str,
        key: Option<&str>,
        peer: SocketAddr,
    ) -> Result<FrameSession, Rejection> {
        self.check(&frame_request(name, key))?;
        let (live, generation) = self.attach(name, peer)?;
        self.inner.metrics.publishes.fetch_add(1, Ordering::Relaxed);
        let stream = lock(&live).stream.clone();
        Ok(FrameSession {
            publisher: self.clone(),
            live,
            generation,
            stream,
            peer,
            started: Instant::now(),
            bytes: 0,
        })
    }
}

fn frame_request(name: &str, key: Option<&str>) -> PublishRequest {
    PublishRequest {
        resource: format!("live/{name}"),
        mode: Mode::Publish,
        key: key.map(str::to_string),
    }
}

/// One frame-based publisher connection: tracks and frames into the stream's
/// packager. `Err` from a method: this connection was replaced or the stream
/// ended; stop feeding and `close`.
pub struct FrameSession {
    publisher: Publisher,
    live: Arc<Mutex<Live>>,
    generation: u64,
    stream: Arc<Stream>,
    peer: SocketAddr,
    started: Instant,
    bytes: u64,
}

impl FrameSession {
    fn current(&self) -> Result<MutexGuard<'_, Live>, String> {
        let l = lock(&self.live);
        if l.generation != self.generation {
            return Err("another publisher took over, or the publisher was kicked".into());
        }
        if l.ended {
            return Err("the stream was ended".into());
        }
        Ok(l)
    }

    /// The track list (again on a configuration change: new init segment).
    pub fn tracks(&mut self, tracks: Vec<TrackInfo>) -> Result<(), String> {
        let mut l = self.current()?;
        l.packager.push_tracks(tracks);
        self.publisher.apply(&mut l);
        Ok(())
    }

    /// One frame and the wall-clock time it arrived.
    pub fn frame(&mut self, frame: Frame, arrived: UnixMillis) -> Result<(), String> {
        let len = frame.data.len() as u64;
        self.bytes += len;
        let mut l = self.current()?;
        if let Ok(mut st) = l.stream.stats.lock() {
            st.bytes += len;
        }
        l.packager.push_frame(frame, arrived);
        self.publisher.apply(&mut l);
        Ok(())
    }

    /// Link figures for the admin API and `/metrics`.
    pub fn link(&mut self, bitrate_bps: f64, rtt_ms: Option<f64>) {
        if let Ok(mut st) = self.stream.stats.lock() {
            st.bitrate_bps = bitrate_bps;
            if let Some(rtt) = rtt_ms {
                st.rtt_ms = rtt;
            }
        }
    }

    /// The connection ended: the reconnect grace period starts.
    pub fn close(self, reason: &str) {
        let p = lock(&self.live).packager.stats();
        info!(
            stream = %self.stream.name,
            peer = %self.peer,
            seconds = self.started.elapsed().as_secs(),
            bytes = self.bytes,
            segments = p.segments,
            "publish ended: {reason}"
        );
        self.publisher.detach(&self.live, self.generation);
    }
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str) -> PublishRequest {
        PublishRequest::parse(id.as_bytes()).unwrap()
    }

    fn publisher(config: Config) -> Publisher {
        Publisher::new(
            Arc::new(Hub::default()),
            Arc::new(config),
            Arc::new(Metrics::default()),
            None,
            Handle::current(),
        )
    }

    #[tokio::test]
    async fn admission_by_key_and_mode() {
        let p = publisher(Config::default());
        assert!(p.check(&req("publish:live/cam1:dev-key")).is_ok());
        assert!(matches!(
            p.check(&req("publish:live/cam1:wrong-key")),
            Err(Rejection::Unauthorized(_))
        ));
        assert!(matches!(
            p.check(&req("publish:live/cam1")),
            Err(Rejection::Unauthorized(_))
        ));
        assert!(matches!(
            p.check(&req("publish:live/other:dev-key")),
            Err(Rejection::Forbidden(_))
        ));
        assert!(matches!(
            p.check(&req("#!::r=live/cam1,m=request,s=dev-key")),
            Err(Rejection::BadRequest(_))
        ));
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[tokio::test]
    async fn second_publisher_rejected_or_taking_over() {
        let p = publisher(Config::default());
        let first = p.open(&req("publish:live/cam1:dev-key"), peer()).unwrap();
        assert!(matches!(
            p.open(&req("publish:live/cam1:dev-key"), peer()),
            Err(Rejection::Unavailable(_))
        ));
        first.close("test");

        let mut config = Config::default();
        config.publish.on_conflict = OnConflict::Takeover;
        let p = publisher(config);
        let mut first = p.open(&req("publish:live/cam1:dev-key"), peer()).unwrap();
        let mut second = p.open(&req("publish:live/cam1:dev-key"), peer()).unwrap();
        assert!(
            first.data(&[]).is_err(),
            "the first publisher is told to go"
        );
        assert!(second.data(&[]).is_ok());
        first.close("taken over");
        assert!(p.inner.hub.stream("cam1").unwrap().is_publishing());
        second.close("test");
    }

    #[tokio::test]
    async fn end_and_kick() {
        let mut config = Config::default();
        config.publish.reconnect_grace_ms = 50;
        let p = publisher(config);
        assert_eq!(p.end("cam1"), Action::NotLive);
        let mut s = p.open(&req("publish:live/cam1:dev-key"), peer()).unwrap();
        assert_eq!(p.kick("cam1"), Action::Done);
        assert!(s.data(&[]).is_err());
        s.close("kicked");
        let stream = p.inner.hub.stream("cam1").unwrap();
        assert!(!stream.snapshot().live);
        assert!(!stream.snapshot().ended, "within the grace period");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(stream.snapshot().ended, "after the grace period");

        let mut s = p.open(&req("publish:live/cam1:dev-key"), peer()).unwrap();
        assert_eq!(p.end("cam1"), Action::Done);
        assert!(s.data(&[]).is_err());
        assert!(p.inner.hub.stream("cam1").unwrap().snapshot().ended);
        s.close("ended");
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
