//! The hub: what each live stream currently serves. Ingest sessions write into it;
//! the HTTP layer reads from it. It moves named, immutable byte objects and
//! playlist snapshots, and knows nothing about codecs or containers.
//!
//! Ordering contract: a session stores new objects before it publishes the playlist
//! snapshot that references them, and removes evicted objects only after
//! publishing a snapshot that no longer does. A reader that sees a playlist can
//! therefore fetch everything in it.
//!
//! Waiting: a blocked playlist request holds one receiver of the stream's snapshot
//! `watch`; a request for the preload-hinted part holds one receiver of its
//! `objects` watch (bumped on every snapshot and when a part starts growing).
//! No task or thread per waiter.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use brook_packager::ObjectKind;
use bytes::Bytes;
use tokio::sync::watch;

/// One servable, complete object.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: ObjectKind,
    pub data: Bytes,
    /// When it became servable: the start of the part-publish-to-first-byte clock.
    pub published: Instant,
    /// The same instant as Unix microseconds (sent with parts, so a client on the
    /// same clock can measure delivery latency).
    pub published_unix_us: u64,
}

impl Object {
    pub fn new(kind: ObjectKind, data: Bytes) -> Self {
        Self {
            kind,
            data,
            published: Instant::now(),
            published_unix_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
        }
    }
}

/// An object still being produced (the preload-hinted part, written frame by frame):
/// readers stream its chunks as they are appended, then the rest once it is done.
#[derive(Debug)]
pub struct Growing {
    pub kind: ObjectKind,
    pub started: Instant,
    chunks: Mutex<Vec<Bytes>>,
    /// (chunks so far, state); readers wait on it.
    progress: watch::Sender<(usize, GrowState)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrowState {
    Growing,
    Done,
    /// Its producer went away without finishing it.
    Abandoned,
}

impl Growing {
    fn new(kind: ObjectKind) -> Self {
        Self {
            kind,
            started: Instant::now(),
            chunks: Mutex::new(Vec::new()),
            progress: watch::channel((0, GrowState::Growing)).0,
        }
    }

    fn append(&self, chunk: Bytes) {
        let n = match self.chunks.lock() {
            Ok(mut c) => {
                c.push(chunk);
                c.len()
            }
            Err(_) => return,
        };
        self.progress.send_replace((n, GrowState::Growing));
    }

    fn end(&self, state: GrowState) {
        self.progress.send_modify(|p| p.1 = state);
    }

    /// Chunks from index `from` on, and whether the object is complete after them.
    /// Waits (one watch receiver) while nothing new is there. `None` when the
    /// object was abandoned: what was sent of it must not pass for the whole.
    pub async fn next(&self, from: usize) -> Option<(Vec<Bytes>, bool)> {
        let mut rx = self.progress.subscribe();
        loop {
            let (n, state) = *rx.borrow_and_update();
            if state == GrowState::Abandoned {
                return None;
            }
            let done = state == GrowState::Done;
            if n > from || done {
                let chunks = self.chunks.lock().ok()?;
                return Some((chunks.get(from..).unwrap_or_default().to_vec(), done));
            }
            rx.changed().await.ok()?;
        }
    }
}

/// A rendered playlist with its compressed forms, made on first use.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub identity: Bytes,
    gzip: OnceLock<Bytes>,
    br: OnceLock<Bytes>,
}

impl Rendered {
    pub fn new(identity: Bytes) -> Self {
        Self {
            identity,
            ..Self::default()
        }
    }

    pub fn gzip(&self) -> &Bytes {
        self.gzip
            .get_or_init(|| crate::serve::http::encoding::gzip(&self.identity))
    }

    pub fn br(&self) -> &Bytes {
        self.br
            .get_or_init(|| crate::serve::http::encoding::brotli(&self.identity))
    }
}

/// Where a manifest that grows by numbered pieces stands: what exists, what
/// is next, and how far ahead a request may ask. The pipeline fills it in when it
/// renders the manifest; the serving layer waits on it without knowing the
/// manifest's format (for HLS: `_HLS_msn` / `_HLS_part`, RFC 8216bis §6.2.5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Number of the next piece to complete (every lower number is complete).
    pub next: u64,
    /// Sub-pieces of piece `next` published so far.
    pub subs: u64,
    /// How many sub-pieces past the last published one a request may ask for
    /// (the Advance Part Limit); more is refused at once.
    pub sub_limit: u64,
    /// The object announced as coming next (the preload hint): requests for it
    /// are held until it exists.
    pub hint: Option<String>,
    /// Final: nothing will be added.
    pub ended: bool,
}

impl Progress {
    /// True once piece `n` is complete, or (with `sub`) once sub-piece `sub` of
    /// it is published.
    pub fn reached(&self, n: u64, sub: Option<u64>) -> bool {
        if n < self.next {
            return true;
        }
        match sub {
            Some(p) => n == self.next && self.subs > p,
            None => false,
        }
    }

    /// More than two pieces past the last complete one, or more than
    /// `sub_limit` sub-pieces past the last published one: a request that
    /// should be refused rather than held.
    pub fn too_far_ahead(&self, n: u64, sub: Option<u64>) -> bool {
        // The last complete piece is next - 1; `n` may be at most two past it.
        if n > self.next + 1 {
            return true;
        }
        match sub {
            None => false,
            Some(p) if n == self.next => p > self.subs + self.sub_limit,
            Some(p) if n == self.next + 1 => p > self.sub_limit,
            Some(_) => false,
        }
    }
}

/// One media manifest of a stream, rendered.
#[derive(Debug, Clone)]
pub struct PlaylistEntry {
    pub progress: Progress,
    pub text: Rendered,
    /// Its delta update (for HLS, `EXT-X-SKIP` for `_HLS_skip=YES`), when offered.
    pub delta: Option<Rendered>,
}

/// What a stream serves at one instant; replaced whole on every change.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Random per publish session; part of every media URL so that caches never mix
    /// a previous session's objects with the current one's.
    pub session: String,
    /// Bumped on every change of this stream: playlist ETags derive from it.
    pub version: u64,
    /// Media playlists by name (`video.m3u8`, `audio.m3u8`, `720p.m3u8`).
    pub playlists: Arc<BTreeMap<String, PlaylistEntry>>,
    /// Rendered multivariant playlist, once codecs and bit rate are known.
    pub multivariant: Option<Rendered>,
    /// The DASH manifest over the same segments.
    pub mpd: Option<Rendered>,
    /// A publisher is connected.
    pub live: bool,
    /// The session is over (ENDLIST published, or it ended before any media):
    /// nothing will change any more.
    pub ended: bool,
}

impl Snapshot {
    pub fn empty(session: String) -> Self {
        Self {
            session,
            version: 0,
            playlists: Arc::default(),
            multivariant: None,
            mpd: None,
            live: true,
            ended: false,
        }
    }

    pub fn playlist(&self, name: &str) -> Option<&PlaylistEntry> {
        self.playlists.get(name)
    }

    /// True when some playlist's hint names `object`.
    pub fn is_hinted(&self, object: &str) -> bool {
        self.playlists
            .values()
            .any(|p| p.progress.hint.as_deref() == Some(object))
    }
}

/// Ingest-side counters of a stream, for `/metrics` and the admin API.
#[derive(Debug, Clone, Default)]
pub struct IngestStats {
    /// Address of the connected publisher.
    pub peer: Option<SocketAddr>,
    /// Publisher connections in this session (1 + reconnects and takeovers).
    pub connections: u64,
    pub bytes: u64,
    pub bitrate_bps: f64,
    pub rtt_ms: f64,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub packets_retransmitted: u64,
    pub packets_dropped: u64,
    pub continuity_errors: u64,
    pub parts: u64,
    pub segments: u64,
    /// Segments cut at the longest segment because no keyframe came.
    pub segments_without_keyframe: u64,
    /// Ad-break cues (SCTE-35 or the admin API), those ignored (repeats,
    /// strays, before the stream started), and breaks placed.
    pub ad_cues: u64,
    pub ad_cues_ignored: u64,
    pub ad_breaks: u64,
    /// Unix ms the current session started.
    pub started_unix_ms: u64,
    /// The running transcoder's process id (transcoded streams).
    pub transcoder_pid: Option<u32>,
    /// Video renditions the transcoder makes.
    pub renditions: u64,
    /// Transcoder restarts in this session (exits, source changes, slowness).
    pub transcoder_restarts: u64,
    /// How long the latest frame took through the transcoder, seconds.
    pub transcoder_latency_s: f64,
    /// Media seconds the transcoder produced per second, over ~10 s.
    pub transcoder_speed: f64,
}

/// The viewers of a stream, as the origin can tell them apart: **clients**
/// (by address) that asked for one of its media playlists in the last
/// [`VIEWER_WINDOW`], not connections. An LL-HLS player holds a blocking reload
/// and a part request at once (two HTTP/1.1 connections, or streams of one
/// HTTP/2 connection) and opens new connections as it goes, from new ports: all
/// of them are one client. The port is therefore ignored, and an IPv6 address
/// counts by its /64 (one subscriber's prefix, whose host part may change for
/// privacy). Clients behind one address (a NAT, a CDN) count once; behind a CDN
/// the origin sees the CDN's nodes, not the audience (docs/ops.md).
///
/// Bounded whatever the traffic: at most [`MAX_VIEWERS`] clients are tracked
/// (past that the count stays there), and expired entries are swept as new
/// ones arrive, not only when the count is read.
#[derive(Debug, Default)]
struct Viewers {
    shards: [Mutex<ViewerShard>; VIEWER_SHARDS],
}

#[derive(Debug, Default)]
struct ViewerShard {
    seen: HashMap<IpAddr, Instant>,
    /// When expired entries were last removed.
    swept: Option<Instant>,
}

const VIEWER_SHARDS: usize = 16;
/// How long a client counts as a viewer after its last playlist request.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(10);
/// The most clients a stream tracks (16 maps of 4,096 40-byte entries in
/// 8,192 buckets: about 5 MB when full).
pub const MAX_VIEWERS: usize = 65_536;
const SHARD_CAPACITY: usize = MAX_VIEWERS / VIEWER_SHARDS;
/// How often a shard that is written to drops its expired entries.
const VIEWER_SWEEP: Duration = Duration::from_secs(1);

/// The address a client is counted by: IPv4 as is (also when mapped into
/// IPv6), IPv6 by its /64.
fn viewer_key(peer: &SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

impl ViewerShard {
    fn sweep(&mut self, now: Instant) {
        self.seen
            .retain(|_, t| now.saturating_duration_since(*t) < VIEWER_WINDOW);
        self.swept = Some(now);
    }
}

impl Viewers {
    fn shard(&self, key: &IpAddr) -> &Mutex<ViewerShard> {
        let spread = match key {
            IpAddr::V4(v4) => u128::from(u32::from(*v4)),
            IpAddr::V6(v6) => u128::from(*v6) >> 64,
        };
        // Fold every byte in, so neighbouring addresses land in different shards.
        let folded = spread.to_le_bytes().iter().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(*b))
        });
        &self.shards[folded % VIEWER_SHARDS]
    }

    fn touch(&self, peer: SocketAddr, now: Instant) {
        let key = viewer_key(&peer);
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        if shard
            .swept
            .is_none_or(|t| now.saturating_duration_since(t) >= VIEWER_SWEEP)
        {
            shard.sweep(now);
        }
        if shard.seen.len() < SHARD_CAPACITY || shard.seen.contains_key(&key) {
            shard.seen.insert(key, now);
        }
    }

    fn count(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock().map_or(0, |mut s| {
                    s.sweep(now);
                    s.seen.len()
                })
            })
            .sum()
    }

    /// Entries held, expired ones included (tests: the bound).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.seen.len()))
            .sum()
    }
}

/// A stream's state, shared by its publisher and its viewers.
#[derive(Debug)]
pub struct Stream {
    pub name: String,
    objects: RwLock<HashMap<String, Object>>,
    growing: RwLock<HashMap<String, Arc<Growing>>>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    objects_epoch: watch::Sender<u64>,
    publishing: Mutex<bool>,
    version: AtomicU64,
    pub stats: Mutex<IngestStats>,
    /// Requests currently held (blocking reload or preload-hinted part).
    blocked: AtomicI64,
    viewers: Viewers,
}

impl Stream {
    fn new(name: &str, session: String) -> Self {
        Self {
            name: name.to_string(),
            objects: RwLock::new(HashMap::new()),
            growing: RwLock::new(HashMap::new()),
            snapshot: watch::channel(Arc::new(Snapshot::empty(session))).0,
            objects_epoch: watch::channel(0).0,
            publishing: Mutex::new(true),
            version: AtomicU64::new(0),
            stats: Mutex::new(IngestStats {
                started_unix_ms: unix_ms(),
                connections: 1,
                ..IngestStats::default()
            }),
            blocked: AtomicI64::new(0),
            viewers: Viewers::default(),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot: how blocking requests wait.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    /// A receiver that wakes on every snapshot and whenever an object starts
    /// growing: how requests for the preload-hinted part wait.
    pub fn subscribe_objects(&self) -> watch::Receiver<u64> {
        self.objects_epoch.subscribe()
    }

    pub fn object(&self, name: &str) -> Option<Object> {
        self.objects.read().ok()?.get(name).cloned()
    }

    pub fn growing(&self, name: &str) -> Option<Arc<Growing>> {
        self.growing.read().ok()?.get(name).cloned()
    }

    /// Stores a complete object. If it was growing, its readers get the rest and
    /// end; the complete object replaces it for new readers.
    pub fn insert(&self, name: String, object: Object) {
        let grown = self.growing.write().ok().and_then(|mut g| g.remove(&name));
        if let Ok(mut objects) = self.objects.write() {
            objects.insert(name, object);
        }
        if let Some(g) = grown {
            g.end(GrowState::Done);
        }
    }

    /// Appends a chunk to object `name`, which is still being produced (it is
    /// created on the first chunk). The complete object must follow through
    /// [`Stream::insert`] with the same bytes as all chunks concatenated.
    pub fn append_chunk(&self, name: &str, kind: ObjectKind, chunk: Bytes) {
        let Ok(mut growing) = self.growing.write() else {
            return;
        };
        let (g, created) = match growing.get(name) {
            Some(g) => (g.clone(), false),
            None => {
                let g = Arc::new(Growing::new(kind));
                growing.insert(name.to_string(), g.clone());
                (g, true)
            }
        };
        drop(growing);
        g.append(chunk);
        if created {
            self.objects_epoch.send_modify(|e| *e += 1);
        }
    }

    pub fn remove(&self, names: &[String]) {
        if let Ok(mut objects) = self.objects.write() {
            for n in names {
                objects.remove(n);
            }
        }
    }

    /// Publishes a new snapshot (its `version` is assigned here).
    pub fn publish(&self, mut snapshot: Snapshot) {
        snapshot.version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
        self.snapshot.send_replace(Arc::new(snapshot));
        self.objects_epoch.send_modify(|e| *e += 1);
    }

    /// Ends the publish session; the last snapshot (with `EXT-X-ENDLIST`)
    /// stays served.
    pub fn end_publish(&self) {
        self.set_publishing(false);
        if let Ok(mut growing) = self.growing.write() {
            for (_, g) in growing.drain() {
                g.end(GrowState::Abandoned);
            }
        }
        let mut last = (*self.snapshot()).clone();
        last.live = false;
        last.ended = true;
        self.publish(last);
    }

    pub fn is_publishing(&self) -> bool {
        self.publishing.lock().map(|p| *p).unwrap_or(true)
    }

    pub fn set_publishing(&self, on: bool) {
        if let Ok(mut p) = self.publishing.lock() {
            *p = on;
        }
    }

    /// Counts a held request for as long as the guard lives.
    pub fn hold(self: &Arc<Self>) -> HeldGuard {
        self.blocked.fetch_add(1, Ordering::Relaxed);
        HeldGuard(self.clone())
    }

    pub fn blocked_requests(&self) -> i64 {
        self.blocked.load(Ordering::Relaxed)
    }

    pub fn saw_viewer(&self, peer: SocketAddr) {
        self.viewers.touch(peer, Instant::now());
    }

    pub fn viewers(&self) -> usize {
        self.viewers.count(Instant::now())
    }

    pub fn ingest_stats(&self) -> IngestStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// See [`Stream::hold`].
#[derive(Debug)]
pub struct HeldGuard(Arc<Stream>);

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::Relaxed);
    }
}

/// All streams this origin knows, by name (`cam1` for `live/cam1`).
#[derive(Debug)]
pub struct Hub {
    streams: RwLock<HashMap<String, Arc<Stream>>>,
    /// Bumped after every [`Hub::begin_publish`]: what a request for a stream
    /// that is not publishing yet (started on demand) waits on.
    started: watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            streams: RwLock::default(),
            started: watch::channel(0).0,
        }
    }
}

/// Returned by [`Hub::begin_publish`] when the stream already has a publisher.
#[derive(Debug, thiserror::Error)]
#[error("stream {0} already has a publisher")]
pub struct AlreadyPublishing(pub String);

impl Hub {
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().ok()?.get(name).cloned()
    }

    pub fn streams(&self) -> Vec<Arc<Stream>> {
        let mut all: Vec<_> = self
            .streams
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Starts a publish session: a fresh session id and an empty object set. The
    /// previous session's objects are dropped (they live on in the archive and in
    /// caches, under the old session's URLs).
    pub fn begin_publish(&self, name: &str) -> Result<Arc<Stream>, AlreadyPublishing> {
        let started = self.begin_publish_inner(name);
        if started.is_ok() {
            self.started.send_modify(|n| *n = n.wrapping_add(1));
        }
        started
    }

    /// Changes after every publish session that starts (any stream): wait on
    /// it, then look the stream up. Subscribe before looking, so a start in
    /// between is not missed.
    pub fn subscribe_started(&self) -> watch::Receiver<u64> {
        self.started.subscribe()
    }

    fn begin_publish_inner(&self, name: &str) -> Result<Arc<Stream>, AlreadyPublishing> {
        let mut streams = self
            .streams
            .write()
            .map_err(|_| AlreadyPublishing(name.to_string()))?;
        if let Some(existing) = streams.get(name) {
            let mut publishing = existing
                .publishing
                .lock()
                .map_err(|_| AlreadyPublishing(name.to_string()))?;
            if *publishing {
                return Err(AlreadyPublishing(name.to_string()));
            }
            *publishing = true;
            drop(publishing);
            if let Ok(mut objects) = existing.objects.write() {
                objects.clear();
            }
            if let Ok(mut growing) = existing.growing.write() {
                for (_, g) in growing.drain() {
                    g.end(GrowState::Abandoned);
                }
            }
            if let Ok(mut stats) = existing.stats.lock() {
                *stats = IngestStats {
                    started_unix_ms: unix_ms(),
                    connections: 1,
                    ..IngestStats::default()
                };
            }
            existing.publish(Snapshot::empty(new_session_id()));
            return Ok(existing.clone());
        }
        let stream = Arc::new(Stream::new(name, new_session_id()));
        streams.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    /// Ends a publish session; the last snapshot (with `EXT-X-ENDLIST`) stays served.
    pub fn end_publish(&self, stream: &Stream) {
        stream.end_publish();
    }

    pub fn stream_names(&self) -> Vec<String> {
        self.streams().iter().map(|s| s.name.clone()).collect()
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 16 hex digits: the start time in seconds (so sessions sort by age in the
/// archive), then 32 random bits from the operating system's generator (so
/// no two sessions share URLs in a cache, and none can be guessed).
pub fn new_session_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut random = [0u8; 4];
    if getrandom::fill(&mut random).is_err() {
        // No OS randomness (never seen on Linux): the clock's nanoseconds
        // still differ between sessions.
        random = now.subsec_nanos().to_be_bytes();
    }
    format!(
        "{:08x}{:08x}",
        now.as_secs() & 0xFFFF_FFFF,
        u32::from_be_bytes(random)
    )
}

/// Session ids as [`new_session_id`] makes them.
pub use brook_common::valid_session_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_publisher_at_a_time_and_a_new_session_each_time() {
        let hub = Hub::default();
        let s = hub.begin_publish("cam1").unwrap();
        let first = s.snapshot().session.clone();
        assert!(valid_session_id(&first), "{first}");
        assert!(hub.begin_publish("cam1").is_err());
        s.insert(
            "seg0.m4s".into(),
            Object::new(ObjectKind::Segment, Bytes::from_static(b"x")),
        );
        hub.end_publish(&s);
        assert!(!s.snapshot().live);
        assert!(s.snapshot().ended);
        assert!(s.object("seg0.m4s").is_some(), "ended stream keeps serving");
        let again = hub.begin_publish("cam1").unwrap();
        assert_ne!(again.snapshot().session, first);
        assert!(again.object("seg0.m4s").is_none());
        assert_eq!(hub.stream_names(), vec!["cam1".to_string()]);
    }

    /// What a request for a stream started on demand waits on: one change per
    /// session that starts, none for a refused one.
    #[test]
    fn every_started_session_is_signalled() {
        let hub = Hub::default();
        let mut started = hub.subscribe_started();
        assert!(!started.has_changed().unwrap());
        let s = hub.begin_publish("cam1").unwrap();
        assert!(started.has_changed().unwrap());
        started.mark_unchanged();
        assert!(hub.begin_publish("cam1").is_err());
        assert!(
            !started.has_changed().unwrap(),
            "a refused start is no start"
        );
        hub.end_publish(&s);
        hub.begin_publish("cam1").unwrap();
        assert!(
            started.has_changed().unwrap(),
            "a new session of a known stream"
        );
    }

    #[tokio::test]
    async fn growing_object_streams_chunks_then_completes() {
        let hub = Hub::default();
        let s = hub.begin_publish("cam1").unwrap();
        let mut epoch = s.subscribe_objects();
        epoch.borrow_and_update();
        s.append_chunk("part0.1.m4s", ObjectKind::Part, Bytes::from_static(b"ab"));
        assert!(epoch.has_changed().unwrap(), "waiters learn it exists");
        let g = s.growing("part0.1.m4s").unwrap();
        let (chunks, done) = g.next(0).await.unwrap();
        assert_eq!((chunks.len(), done), (1, false));
        let reader = {
            let g = g.clone();
            tokio::spawn(async move { g.next(1).await })
        };
        tokio::task::yield_now().await;
        assert!(!reader.is_finished(), "waits for the next chunk");
        s.append_chunk("part0.1.m4s", ObjectKind::Part, Bytes::from_static(b"cd"));
        let (chunks, done) = reader.await.unwrap().unwrap();
        assert_eq!((chunks, done), (vec![Bytes::from_static(b"cd")], false));
        s.insert(
            "part0.1.m4s".into(),
            Object::new(ObjectKind::Part, Bytes::from_static(b"abcd")),
        );
        assert!(s.growing("part0.1.m4s").is_none());
        assert_eq!(g.next(2).await.unwrap(), (vec![], true));
        assert_eq!(&s.object("part0.1.m4s").unwrap().data[..], b"abcd");
    }

    /// RFC 8216bis §6.2.5.2 in the serving layer's terms: complete pieces and
    /// published sub-pieces are reached; more than two pieces or the advance
    /// limit ahead is refused.
    #[test]
    fn progress_reached_and_too_far_ahead() {
        let p = Progress {
            next: 10,
            subs: 3,
            sub_limit: 15,
            hint: Some("x".into()),
            ended: false,
        };
        let cases = [
            // (n, sub, reached, too far)
            (9, None, true, false),
            (9, Some(7), true, false),
            (10, None, false, false),
            (10, Some(2), true, false),
            (10, Some(3), false, false),
            (10, Some(18), false, false),
            (10, Some(19), false, true),
            (11, None, false, false),
            (11, Some(15), false, false),
            (11, Some(16), false, true),
            (12, None, false, true),
        ];
        for (n, sub, reached, far) in cases {
            assert_eq!(p.reached(n, sub), reached, "reached({n}, {sub:?})");
            assert_eq!(p.too_far_ahead(n, sub), far, "too_far_ahead({n}, {sub:?})");
        }
    }

    /// The random half of session ids comes from the OS generator: a
    /// thousand ids made in the same second are all different.
    #[test]
    fn session_ids_are_random_within_a_second() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_session_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| valid_session_id(id)));
    }

    #[test]
    fn held_requests_are_counted() {
        let hub = Hub::default();
        let s = hub.begin_publish("cam1").unwrap();
        let a = s.hold();
        let b = s.hold();
        assert_eq!(s.blocked_requests(), 2);
        drop((a, b));
        assert_eq!(s.blocked_requests(), 0);
        s.saw_viewer("127.0.0.1:1000".parse().unwrap());
        s.saw_viewer("127.0.0.1:1001".parse().unwrap());
        s.saw_viewer("127.0.0.2:1000".parse().unwrap());
        assert_eq!(s.viewers(), 2);
    }

    fn v4(i: u32, port: u16) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(i), port))
    }

    /// A viewer is a client, not a connection: an LL-HLS player's many
    /// connections (each from a new port) count once, an IPv6 host by its /64,
    /// an IPv4-mapped address as the IPv4 one.
    #[test]
    fn viewers_are_clients_not_connections() {
        let v = Viewers::default();
        let now = Instant::now();
        for port in 40_000..40_100 {
            v.touch(v4(0x7f00_0001, port), now);
        }
        assert_eq!(v.count(now), 1, "100 connections of one client");
        for peer in [
            "[::ffff:127.0.0.1]:5",
            "10.0.0.2:1000",
            "[2001:db8::1]:1000",
            "[2001:db8::ffff:2]:1001",
            "[2001:db8:0:1::1]:1000",
        ] {
            v.touch(peer.parse().unwrap(), now);
        }
        assert_eq!(v.count(now), 4);
    }

    /// Bounded whatever the traffic, and whether or not anyone reads the
    /// count: a flood of distinct addresses holds at most `MAX_VIEWERS`, and
    /// clients that went quiet are dropped as new ones arrive.
    #[test]
    fn viewer_table_is_bounded_and_swept_without_reads() {
        let v = Viewers::default();
        let t0 = Instant::now();
        for i in 0..300_000 {
            v.touch(v4(0x0a00_0000 + i, 1), t0);
            if i % 4096 == 0 {
                assert!(v.tracked() <= MAX_VIEWERS, "{} held", v.tracked());
            }
        }
        assert!(v.tracked() <= MAX_VIEWERS, "{}", v.tracked());
        assert_eq!(v.count(t0), MAX_VIEWERS);
        // A client already counted stays counted when the table is full.
        v.touch(v4(0x0a00_0000, 2), t0 + Duration::from_secs(5));
        // The flood stops; 1,000 new clients arrive after the window. Nobody
        // reads the count in between, yet the flood is gone.
        let later = t0 + VIEWER_WINDOW + Duration::from_secs(1);
        for i in 0..1000 {
            v.touch(v4(0xc0a8_0000 + i, 1), later);
        }
        assert_eq!(v.tracked(), 1001);
        assert_eq!(v.count(later), 1001);
        assert_eq!(v.count(later + VIEWER_WINDOW), 0);
    }
}
