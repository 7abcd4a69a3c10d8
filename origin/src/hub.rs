//! The hub: what each live stream currently serves. Ingest sessions write into it;
//! the HTTP layer reads from it. It moves named, immutable byte objects and
//! playlist snapshots, and knows nothing about codecs or containers.
//!
//! Ordering contract: a session stores new objects before it publishes the playlist
//! snapshot that references them, and removes evicted objects only after
//! publishing a snapshot that no longer does. A reader that sees a playlist can
//! therefore fetch everything in it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use brook_packager::hls::MediaPlaylist;
use brook_packager::ObjectKind;
use bytes::Bytes;
use tokio::sync::watch;

/// One servable object.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: ObjectKind,
    pub data: Bytes,
}

/// What a stream serves at one instant; replaced whole on every change.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Random per publish session; part of every media URL so that caches never mix
    /// a previous session's objects with the current one's.
    pub session: String,
    pub media: Option<Arc<MediaPlaylist>>,
    /// Rendered media playlist text for `media`.
    pub media_text: Bytes,
    /// Rendered multivariant playlist, once codecs and bit rate are known.
    pub multivariant: Option<Bytes>,
    /// A publisher is connected.
    pub live: bool,
}

/// A stream's state, shared by its publisher and its viewers.
#[derive(Debug)]
pub struct Stream {
    pub name: String,
    objects: RwLock<HashMap<String, Object>>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    publishing: Mutex<bool>,
}

impl Stream {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot: how blocking requests wait.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    pub fn object(&self, name: &str) -> Option<Object> {
        self.objects.read().ok()?.get(name).cloned()
    }

    pub fn insert(&self, name: String, object: Object) {
        if let Ok(mut objects) = self.objects.write() {
            objects.insert(name, object);
        }
    }

    pub fn remove(&self, names: &[String]) {
        if let Ok(mut objects) = self.objects.write() {
            for n in names {
                objects.remove(n);
            }
        }
    }

    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.send_replace(Arc::new(snapshot));
    }

    pub fn is_publishing(&self) -> bool {
        self.publishing.lock().map(|p| *p).unwrap_or(true)
    }
}

/// All streams this origin knows, by name (`cam1` for `live/cam1`).
#[derive(Debug, Default)]
pub struct Hub {
    streams: RwLock<HashMap<String, Arc<Stream>>>,
}

/// Returned by [`Hub::begin_publish`] when the stream already has a publisher.
#[derive(Debug, thiserror::Error)]
#[error("stream {0} already has a publisher")]
pub struct AlreadyPublishing(pub String);

impl Hub {
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.read().ok()?.get(name).cloned()
    }

    /// Starts a publish session: a fresh session id and an empty object set. The
    /// previous session's objects are dropped (they live on only in caches, under
    /// the old session's URLs).
    pub fn begin_publish(&self, name: &str) -> Result<Arc<Stream>, AlreadyPublishing> {
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
            existing.publish(empty_snapshot(new_session_id(), true));
            return Ok(existing.clone());
        }
        let (tx, _) = watch::channel(Arc::new(empty_snapshot(new_session_id(), true)));
        let stream = Arc::new(Stream {
            name: name.to_string(),
            objects: RwLock::new(HashMap::new()),
            snapshot: tx,
            publishing: Mutex::new(true),
        });
        streams.insert(name.to_string(), stream.clone());
        Ok(stream)
    }

    /// Ends a publish session; the last snapshot (with `EXT-X-ENDLIST`) stays served.
    pub fn end_publish(&self, stream: &Stream) {
        if let Ok(mut p) = stream.publishing.lock() {
            *p = false;
        }
        let mut last = (*stream.snapshot()).clone();
        last.live = false;
        stream.publish(last);
    }

    pub fn stream_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .streams
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn empty_snapshot(session: String, live: bool) -> Snapshot {
    Snapshot {
        session,
        media: None,
        media_text: Bytes::new(),
        multivariant: None,
        live,
    }
}

/// 12 hex digits, unpredictable enough to keep sessions apart in caches.
fn new_session_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(nanos);
    format!("{:012x}", h.finish() & 0xFFFF_FFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_publisher_at_a_time_and_a_new_session_each_time() {
        let hub = Hub::default();
        let s = hub.begin_publish("cam1").unwrap();
        let first = s.snapshot().session.clone();
        assert!(hub.begin_publish("cam1").is_err());
        s.insert(
            "seg0.m4s".into(),
            Object {
                kind: ObjectKind::Segment,
                data: Bytes::from_static(b"x"),
            },
        );
        hub.end_publish(&s);
        assert!(!s.snapshot().live);
        assert!(s.object("seg0.m4s").is_some(), "ended stream keeps serving");
        let again = hub.begin_publish("cam1").unwrap();
        assert_ne!(again.snapshot().session, first);
        assert!(again.object("seg0.m4s").is_none());
        assert_eq!(hub.stream_names(), vec!["cam1".to_string()]);
    }
}
