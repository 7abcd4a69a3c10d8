//! Publish sessions: admission (stream keys) and the bridge from an ingest
//! connection to the packager and the hub. Ingest adapters (SRT today) call into
//! [`Publisher`]; this is the only module that drives the packager.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use brook_packager::{Event, Packager, UnixMillis};
use bytes::Bytes;
use tracing::info;

use crate::config::Config;
use crate::hub::{Hub, Object, Snapshot, Stream};
use crate::srt::{IngestSink, Mode, PublishRequest, PublishSession, Rejection, SrtStats};

/// Admits publishers by stream key and runs one [`Session`] per publisher.
pub struct Publisher {
    hub: Arc<Hub>,
    config: Arc<Config>,
}

impl Publisher {
    pub fn new(hub: Arc<Hub>, config: Arc<Config>) -> Self {
        Self { hub, config }
    }

    fn check(&self, req: &PublishRequest) -> Result<(), Rejection> {
        if req.mode != Mode::Publish {
            return Err(Rejection::BadRequest(
                "only publishing is supported over SRT; play over HLS".into(),
            ));
        }
        let name = req.name();
        let Some(stream) = self.config.streams.get(name) else {
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
        if self.hub.stream(name).is_some_and(|s| s.is_publishing()) {
            return Err(Rejection::Unavailable(format!(
                "stream {name} already has a publisher"
            )));
        }
        Ok(())
    }
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
        let stream = self
            .hub
            .begin_publish(req.name())
            .map_err(|e| Rejection::Unavailable(e.to_string()))?;
        let session = stream.snapshot().session.clone();
        info!(stream = %stream.name, %peer, %session, "publish started");
        Ok(Box::new(Session {
            hub: self.hub.clone(),
            packager: Packager::new(self.config.packager.to_packager_config()),
            stream,
            session,
            peer,
            started: Instant::now(),
            bytes: 0,
            last_stats: None,
        }))
    }
}

/// One publisher's stream: bytes in, objects and playlists into the hub.
pub struct Session {
    hub: Arc<Hub>,
    packager: Packager,
    stream: Arc<Stream>,
    session: String,
    peer: SocketAddr,
    started: Instant,
    bytes: u64,
    last_stats: Option<SrtStats>,
}

fn now() -> UnixMillis {
    UnixMillis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

impl Session {
    /// Applies packager events to the hub in the order the hub's contract needs:
    /// objects in, then the new playlist, then evictions.
    fn apply(&mut self) {
        let mut changed = false;
        let mut evicted = Vec::new();
        while let Some(event) = self.packager.poll() {
            match event {
                Event::Object { name, kind, data } => {
                    self.stream.insert(name, Object { kind, data });
                }
                Event::Evicted { name } => evicted.push(name),
                Event::PlaylistChanged => changed = true,
            }
        }
        if changed {
            let media = self.packager.media_playlist().clone();
            let media_text = Bytes::from(media.to_string());
            self.stream.publish(Snapshot {
                session: self.session.clone(),
                media: Some(Arc::new(media)),
                media_text,
                multivariant: self.packager.multivariant().map(|mut m| {
                    for v in &mut m.variants {
                        v.uri = format!("{}/{}", self.session, v.uri);
                    }
                    Bytes::from(m.to_string())
                }),
                live: true,
            });
        }
        if !evicted.is_empty() {
            self.stream.remove(&evicted);
        }
    }
}

impl PublishSession for Session {
    fn data(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.bytes += bytes.len() as u64;
        let result = self.packager.push_ts(bytes, now());
        self.apply();
        result.map_err(|e| e.to_string())
    }

    fn stats(&mut self, stats: &SrtStats) {
        self.last_stats = Some(*stats);
    }

    fn close(mut self: Box<Self>, reason: &str) {
        self.packager.finish();
        self.apply();
        self.hub.end_publish(&self.stream);
        let p = self.packager.stats();
        let link = self.last_stats.take().unwrap_or_default();
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
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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

    #[test]
    fn admission_by_key_and_mode() {
        let p = Publisher::new(Arc::new(Hub::default()), Arc::new(Config::default()));
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

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
