//! Live-to-VOD: every session's init segment and segments go to [`Storage`] as
//! they are made, with a growing media playlist (`EXT-X-PLAYLIST-TYPE:EVENT`) that
//! becomes the VOD (`VOD`, `EXT-X-ENDLIST`) when the session ends.
//!
//! Layout, for stream `cam1` and session `S` (objects keep the names the packager
//! gives them, one media playlist per rendition):
//!
//! ```text
//! cam1/S/index.m3u8              multivariant playlist (URIs relative: main/video.m3u8, ...)
//! cam1/S/main/video.m3u8         media playlist of a rendition: every archived segment
//! cam1/S/main/video-init.mp4     init segment(s)
//! cam1/S/main/video-segN.m4s     segments (and audio.m3u8, audio-*, likewise)
//! cam1/S/main/manifest.mpd       the static DASH manifest, written when the session ends
//! ```
//!
//! The directory of a session is a complete HLS presentation on its own: copied to
//! any static server, it plays.
//!
//! Consistency: one writer task applies operations in order, a segment is stored
//! before the playlist that names it, and every store is atomic ([`Storage::put`]),
//! so at any instant (a crash included) the playlist names only stored segments.
//! A session whose playlist lacks `EXT-X-ENDLIST` when the origin starts was cut
//! by a crash: [`Archive::open`] ends it. Ingest never waits for the disk: a
//! writer that falls [`QUEUE`] operations behind drops segments (counted), and the
//! next stored one is marked `EXT-X-DISCONTINUITY`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use brook_packager::hls::{MediaPlaylist, MultivariantPlaylist, PlaylistType, Segment};
use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::metrics::Metrics;
use crate::store::storage::{Key, Storage, StorageError};

/// The directory a session's playlists and objects live in.
pub const RENDITION: &str = "main";
const MULTIVARIANT: &str = "index.m3u8";
/// Operations the writer may fall behind by before segments are dropped.
pub const QUEUE: usize = 512;

enum Op {
    Object {
        stream: String,
        session: String,
        name: String,
        data: Bytes,
    },
    Segment {
        stream: String,
        session: String,
        /// The media playlist it belongs to (`video.m3u8`).
        playlist: String,
        /// The live playlist's header (version, target duration, map) and this
        /// segment's entry.
        header: Box<MediaPlaylist>,
        segment: Box<Segment>,
        data: Bytes,
    },
    Multivariant {
        stream: String,
        session: String,
        playlist: Box<MultivariantPlaylist>,
    },
    End {
        stream: String,
        session: String,
    },
    Flush(oneshot::Sender<()>),
}

/// What the archive holds for one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionInfo {
    pub segments: u64,
    pub duration_secs: f64,
    /// The VOD playlist is final (`EXT-X-ENDLIST`).
    pub ended: bool,
}

type Index = BTreeMap<String, BTreeMap<String, SessionInfo>>;

/// The archive: a queue into one writer task, and an index of archived sessions.
#[derive(Debug)]
pub struct Archive {
    storage: Arc<dyn Storage>,
    tx: mpsc::Sender<Op>,
    index: Arc<RwLock<Index>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Object { .. } => "Object",
            Op::Segment { .. } => "Segment",
            Op::Multivariant { .. } => "Multivariant",
            Op::End { .. } => "End",
            Op::Flush(_) => "Flush",
        })
    }
}

fn key(stream: &str, session: &str, rest: &str) -> Result<Key, StorageError> {
    Key::new(format!("{stream}/{session}/{rest}"))
}

impl Archive {
    /// Opens the archive in `storage`: finishes sessions a crash left open, indexes
    /// all sessions, and starts the writer on `runtime`.
    pub async fn open(
        storage: Arc<dyn Storage>,
        metrics: Arc<Metrics>,
        runtime: &Handle,
    ) -> Result<Arc<Self>, StorageError> {
        let index = recover(storage.as_ref()).await?;
        let sessions: usize = index.values().map(BTreeMap::len).sum();
        info!(sessions, "archive opened");
        let (tx, rx) = mpsc::channel(QUEUE);
        let archive = Arc::new(Self {
            storage: storage.clone(),
            tx,
            index: Arc::new(RwLock::new(index)),
            metrics: metrics.clone(),
        });
        let writer = Writer {
            storage,
            index: archive.index.clone(),
            metrics,
            sessions: HashMap::new(),
        };
        runtime.spawn(writer.run(rx));
        Ok(archive)
    }

    fn send(&self, op: Op) -> bool {
        match self.tx.try_send(op) {
            Ok(()) => true,
            Err(e) => {
                self.metrics.archive_dropped.fetch_add(1, Ordering::Relaxed);
                warn!("archive writer is behind; dropped {:?}", e.into_inner());
                false
            }
        }
    }

    /// Archives an object that is not a segment (the init segment).
    pub fn object(&self, stream: &str, session: &str, name: &str, data: Bytes) {
        self.send(Op::Object {
            stream: stream.into(),
            session: session.into(),
            name: name.into(),
            data,
        });
    }

    /// Archives a complete segment; `live` is the playlist (named `playlist`) it was
    /// published in.
    pub fn segment(
        &self,
        stream: &str,
        session: &str,
        playlist: &str,
        live: &MediaPlaylist,
        segment: &Segment,
        data: Bytes,
    ) {
        let header = MediaPlaylist {
            version: live.version,
            target_duration: live.target_duration,
            map: live.map.clone(),
            independent_segments: live.independent_segments,
            ..MediaPlaylist::default()
        };
        let mut segment = segment.clone();
        segment.parts.clear();
        self.send(Op::Segment {
            stream: stream.into(),
            session: session.into(),
            playlist: playlist.into(),
            header: Box::new(header),
            segment: Box::new(segment),
            data,
        });
    }

    /// Archives the multivariant playlist; its variant URIs are replaced by the
    /// archive's own.
    pub fn multivariant(&self, stream: &str, session: &str, mut playlist: MultivariantPlaylist) {
        playlist.for_each_uri_mut(|_, uri| *uri = format!("{RENDITION}/{uri}"));
        self.send(Op::Multivariant {
            stream: stream.into(),
            session: session.into(),
            playlist: Box::new(playlist),
        });
    }

    /// The session ended: its playlist becomes the final VOD.
    pub fn end(&self, stream: &str, session: &str) {
        // Ending must not be lost to a full queue: wait for room (the writer is
        // the only consumer and never blocks on ingest).
        let op = Op::End {
            stream: stream.into(),
            session: session.into(),
        };
        if let Err(mpsc::error::TrySendError::Full(op)) = self.tx.try_send(op) {
            let tx = self.tx.clone();
            if let Ok(handle) = Handle::try_current() {
                handle.spawn(async move { tx.send(op).await });
            } else {
                let _ = tx.blocking_send(op);
            }
        }
    }

    /// Resolves once everything queued so far is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// [`Archive::flush`] from a thread outside the runtime.
    pub fn flush_blocking(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.blocking_send(Op::Flush(tx)).is_ok() {
            let _ = rx.blocking_recv();
        }
    }

    /// Deletes an ended session: it leaves the index first (nothing of it is
    /// served from then on), then every object goes. `Ok(false)`: no such
    /// session; `Err` also when it is still being recorded.
    pub async fn delete(&self, stream: &str, session: &str) -> Result<bool, StorageError> {
        {
            let Ok(mut index) = self.index.write() else {
                return Ok(false);
            };
            let Some(sessions) = index.get_mut(stream) else {
                return Ok(false);
            };
            match sessions.get(session) {
                None => return Ok(false),
                Some(info) if !info.ended => {
                    return Err(StorageError::BadKey(format!(
                        "{stream}/{session} is still being recorded"
                    )))
                }
                Some(_) => {}
            }
            sessions.remove(session);
            if sessions.is_empty() {
                index.remove(stream);
            }
        }
        // Whatever was queued for it is written before it is removed.
        self.flush().await;
        let n = self
            .storage
            .delete_prefix(&format!("{stream}/{session}/"))
            .await?;
        info!(%stream, %session, objects = n, "archived session deleted");
        Ok(true)
    }

    pub fn session(&self, stream: &str, session: &str) -> Option<SessionInfo> {
        self.index.read().ok()?.get(stream)?.get(session).cloned()
    }

    /// Every archived session, by stream then session (oldest first).
    pub fn sessions(&self) -> Index {
        self.index.read().map(|i| i.clone()).unwrap_or_default()
    }

    /// The newest archived session of `stream`.
    pub fn latest(&self, stream: &str) -> Option<String> {
        let index = self.index.read().ok()?;
        index.get(stream)?.keys().next_back().cloned()
    }

    /// An archived object or media playlist of a session, by the name it has next
    /// to the media playlists (`video.m3u8`, `video-init.mp4`, `audio-seg3.m4s`).
    pub async fn get(&self, stream: &str, session: &str, name: &str) -> Option<Bytes> {
        self.session(stream, session)?;
        let key = key(stream, session, &format!("{RENDITION}/{name}")).ok()?;
        match self.storage.get(&key).await {
            Ok(v) => v,
            Err(e) => {
                error!(%stream, %session, "archive read: {e}");
                None
            }
        }
    }

    /// The multivariant playlist of an ended session, as served inside the
    /// session's directory (`video.m3u8`): what a recording is played from.
    pub async fn session_multivariant_text(&self, stream: &str, session: &str) -> Option<Bytes> {
        if !self.session(stream, session)?.ended {
            return None;
        }
        let key = key(stream, session, MULTIVARIANT).ok()?;
        let text = self.storage.get(&key).await.ok()??;
        let mut mv: MultivariantPlaylist = std::str::from_utf8(&text).ok()?.parse().ok()?;
        let prefix = format!("{RENDITION}/");
        mv.for_each_uri_mut(|_, uri| {
            *uri = uri.strip_prefix(&prefix).unwrap_or(uri).to_string();
        });
        Some(Bytes::from(mv.to_string()))
    }

    /// The multivariant playlist of an archived session, as served next to the
    /// session directories (`<session>/video.m3u8`).
    pub async fn multivariant_text(&self, stream: &str, session: &str) -> Option<Bytes> {
        let key = key(stream, session, MULTIVARIANT).ok()?;
        let text = self.storage.get(&key).await.ok()??;
        let mut mv: MultivariantPlaylist = std::str::from_utf8(&text).ok()?.parse().ok()?;
        let prefix = format!("{RENDITION}/");
        mv.for_each_uri_mut(|_, uri| {
            let name = uri.strip_prefix(&prefix).unwrap_or(uri).to_string();
            *uri = format!("{session}/{name}");
        });
        Some(Bytes::from(mv.to_string()))
    }
}

/// Per-session state of the writer.
struct Recording {
    /// The VOD-to-be of one rendition.
    playlist: MediaPlaylist,
    /// A segment was lost (queue full or write error): the next stored one starts
    /// a discontinuity.
    gap: bool,
}

struct Writer {
    storage: Arc<dyn Storage>,
    index: Arc<RwLock<Index>>,
    metrics: Arc<Metrics>,
    /// By (stream, session, playlist name).
    sessions: HashMap<(String, String, String), Recording>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(op) = rx.recv().await {
            match op {
                Op::Object {
                    stream,
                    session,
                    name,
                    data,
                } => {
                    if let Ok(k) = key(&stream, &session, &format!("{RENDITION}/{name}")) {
                        self.put(&k, data).await;
                    }
                }
                Op::Segment {
                    stream,
                    session,
                    playlist,
                    header,
                    segment,
                    data,
                } => {
                    self.segment(stream, session, playlist, *header, *segment, data)
                        .await
                }
                Op::Multivariant {
                    stream,
                    session,
                    playlist,
                } => {
                    if let Ok(k) = key(&stream, &session, MULTIVARIANT) {
                        self.put(&k, Bytes::from(playlist.to_string())).await;
                    }
                }
                Op::End { stream, session } => self.end(stream, session).await,
                Op::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn put(&self, key: &Key, data: Bytes) -> bool {
        let len = data.len() as u64;
        match self.storage.put(key, data).await {
            Ok(()) => {
                self.metrics.archive_bytes.fetch_add(len, Ordering::Relaxed);
                self.metrics.archive_objects.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.metrics.archive_errors.fetch_add(1, Ordering::Relaxed);
                error!("archive write failed: {e}");
                false
            }
        }
    }

    async fn segment(
        &mut self,
        stream: String,
        session: String,
        playlist: String,
        header: MediaPlaylist,
        mut segment: Segment,
        data: Bytes,
    ) {
        let Ok(seg_key) = key(&stream, &session, &format!("{RENDITION}/{}", segment.uri)) else {
            return;
        };
        let id = (stream.clone(), session.clone(), playlist.clone());
        let rec = self
            .sessions
            .entry(id.clone())
            .or_insert_with(|| Recording {
                playlist: MediaPlaylist {
                    playlist_type: Some(PlaylistType::Event),
                    ..header.clone()
                },
                gap: false,
            });
        if let Some(last) = rec.playlist.segments.last() {
            if segment.msn != last.msn + 1 {
                rec.gap = true;
            }
        }
        let stored = {
            let storage = self.storage.clone();
            let len = data.len() as u64;
            match storage.put(&seg_key, data).await {
                Ok(()) => {
                    self.metrics.archive_bytes.fetch_add(len, Ordering::Relaxed);
                    self.metrics.archive_objects.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    self.metrics.archive_errors.fetch_add(1, Ordering::Relaxed);
                    error!(%stream, %session, "archive write failed: {e}");
                    false
                }
            }
        };
        let Some(rec) = self.sessions.get_mut(&id) else {
            return;
        };
        if !stored {
            rec.gap = true;
            return;
        }
        if std::mem::take(&mut rec.gap) {
            segment.tags.discontinuity = true;
        }
        let pl = &mut rec.playlist;
        pl.version = pl.version.max(header.version);
        pl.target_duration = pl
            .target_duration
            .max(header.target_duration)
            .max(segment.duration.round() as u32);
        if pl.segments.is_empty() {
            pl.map = header.map.clone();
        } else if header.map != pl.map && segment.tags.map.is_none() {
            // The init segment changed (new codec configuration).
            segment.tags.map = header.map.clone();
        }
        let duration = segment.duration;
        pl.segments.push(segment);
        let text = Bytes::from(pl.to_string());
        let count = pl.segments.len() as u64;
        let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
        let _ = duration;
        if let Ok(k) = key(&stream, &session, &format!("{RENDITION}/{playlist}")) {
            if self.put(&k, text).await {
                if let Ok(mut index) = self.index.write() {
                    // A session is as long as its longest rendition.
                    let info = index.entry(stream).or_default().entry(session).or_default();
                    info.segments = info.segments.max(count);
                    info.duration_secs = info.duration_secs.max(total);
                }
            }
        }
    }

    async fn end(&mut self, stream: String, session: String) {
        let ids: Vec<(String, String, String)> = self
            .sessions
            .keys()
            .filter(|(st, se, _)| *st == stream && *se == session)
            .cloned()
            .collect();
        let mut ended = false;
        let mut segments = 0;
        for id in ids {
            let Some(mut rec) = self.sessions.remove(&id) else {
                continue;
            };
            rec.playlist.playlist_type = Some(PlaylistType::Vod);
            rec.playlist.end_list = true;
            let Ok(k) = key(&stream, &session, &format!("{RENDITION}/{}", id.2)) else {
                continue;
            };
            if self.put(&k, Bytes::from(rec.playlist.to_string())).await {
                ended = true;
                segments = segments.max(rec.playlist.segments.len());
            }
        }
        if ended {
            if let Ok(mut index) = self.index.write() {
                if let Some(info) = index.get_mut(&stream).and_then(|s| s.get_mut(&session)) {
                    info.ended = true;
                }
            }
            info!(%stream, %session, segments, "archived as VOD");
        }
    }
}

/// Indexes every session in `storage`, ending the ones a crash left open.
async fn recover(storage: &dyn Storage) -> Result<Index, StorageError> {
    let keys = storage.list("").await?;
    let mut index = Index::new();
    for k in &keys {
        let parts: Vec<&str> = k.as_str().split('/').collect();
        let [stream, session, RENDITION, name] = parts.as_slice() else {
            continue;
        };
        if !name.ends_with(".m3u8") {
            continue;
        }
        let Some(text) = storage.get(k).await? else {
            continue;
        };
        let Some(mut pl) = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.parse::<MediaPlaylist>().ok())
        else {
            warn!(key = %k, "archived playlist does not parse; skipped");
            continue;
        };
        if !pl.end_list {
            pl.end_list = true;
            pl.playlist_type = Some(PlaylistType::Vod);
            storage.put(k, Bytes::from(pl.to_string())).await?;
            info!(%stream, %session, "archived session cut by a restart, ended as VOD");
        }
        let info = index
            .entry(stream.to_string())
            .or_default()
            .entry(session.to_string())
            .or_default();
        info.segments = info.segments.max(pl.segments.len() as u64);
        info.duration_secs = info
            .duration_secs
            .max(pl.segments.iter().map(|s| s.duration).sum());
        info.ended = true;
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::storage::ObjectStorage;

    fn live_playlist(msns: std::ops::Range<u64>) -> MediaPlaylist {
        let mut pl = MediaPlaylist {
            version: Some(9),
            target_duration: 2,
            map: Some(brook_packager::hls::Map::new("init.mp4")),
            media_sequence: msns.start,
            ..MediaPlaylist::default()
        };
        for m in msns {
            pl.segments.push(Segment::new(
                m,
                brook_packager::segment_name("video", m),
                2.0,
            ));
        }
        pl
    }

    #[tokio::test]
    async fn records_a_session_ends_it_and_recovers_after_a_crash() {
        let dir = std::env::temp_dir().join(format!(
            "brook-archive-{}",
            crate::serve::hub::new_session_id()
        ));
        let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::local(&dir).unwrap());
        let metrics = Arc::new(Metrics::default());
        let a = Archive::open(storage.clone(), metrics.clone(), &Handle::current())
            .await
            .unwrap();
        a.object("cam1", "s1", "init.mp4", Bytes::from_static(b"init"));
        let live = live_playlist(0..3);
        for s in &live.segments {
            a.segment(
                "cam1",
                "s1",
                "video.m3u8",
                &live,
                s,
                Bytes::from(s.uri.clone()),
            );
        }
        a.flush().await;
        let text = a.get("cam1", "s1", "video.m3u8").await.unwrap();
        let pl: MediaPlaylist = std::str::from_utf8(&text).unwrap().parse().unwrap();
        assert_eq!(pl.segments.len(), 3);
        assert_eq!(pl.playlist_type, Some(PlaylistType::Event));
        assert!(!pl.end_list);
        assert_eq!(
            &a.get("cam1", "s1", "video-seg2.m4s").await.unwrap()[..],
            b"video-seg2.m4s"
        );
        assert_eq!(&a.get("cam1", "s1", "init.mp4").await.unwrap()[..], b"init");
        assert!(a.get("cam1", "s1", "../s1/init.mp4").await.is_none());
        assert!(a.get("cam1", "nope", "init.mp4").await.is_none());

        // A second session that "crashes" (never ended); the first one ends.
        a.segment(
            "cam1",
            "s2",
            "video.m3u8",
            &live,
            &live.segments[0],
            Bytes::from_static(b"x"),
        );
        // A gap (segment 1 lost) is a discontinuity in the VOD.
        a.segment(
            "cam1",
            "s2",
            "video.m3u8",
            &live,
            &live.segments[2],
            Bytes::from_static(b"z"),
        );
        a.end("cam1", "s1");
        a.flush().await;
        assert!(a.session("cam1", "s1").unwrap().ended);
        assert!(!a.session("cam1", "s2").unwrap().ended);
        let vod = a.get("cam1", "s1", "video.m3u8").await.unwrap();
        let vod = std::str::from_utf8(&vod).unwrap();
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{vod}");
        assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
        assert_eq!(a.latest("cam1").as_deref(), Some("s2"));

        // Restart: the open session is ended, both are indexed.
        let b = Archive::open(storage, metrics, &Handle::current())
            .await
            .unwrap();
        assert!(b.session("cam1", "s2").unwrap().ended);
        let s2 = b.get("cam1", "s2", "video.m3u8").await.unwrap();
        let s2 = std::str::from_utf8(&s2).unwrap();
        assert!(s2.ends_with("#EXT-X-ENDLIST\n"), "{s2}");
        assert_eq!(s2.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{s2}");
        assert_eq!(b.session("cam1", "s1").unwrap().segments, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
