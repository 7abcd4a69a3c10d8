//! What happens between ingest and serving, the same for every ingest:
//! admission (stream keys), the stream lifecycle (publish, reconnect within a
//! grace period, takeover, end), and each live stream's media path: straight
//! into the packager (`passthrough`), or through a transcoder into a ladder of
//! renditions (`transcode`), then into the hub and the archive.
//!
//! ```text
//! ingest adapter ─ Claim ─▶ Pipelines (Admission) ─▶ PublishSession (ingest::Publish)
//!                                                        │ ts | tracks + frames
//!                                                        ▼
//!                                   Live ── passthrough ──────────────────────┐
//!                                     └── transcode: source demux ─▶ Transcoder (ffmpeg)
//!                                                                   │ MPEG-TS, a stream per rung
//!                                                                   ▼         ▼
//!                                                      Output: Packager ─▶ hub + archive
//! ```
//!
//! A stream's packager outlives the connection that feeds it: when an encoder
//! drops, the stream waits `publish.reconnect_grace_ms` for it (viewers keep the
//! playlist; blocked requests keep waiting). An encoder that comes back within
//! the grace period continues the same session (same URLs) after an
//! `EXT-X-DISCONTINUITY`; otherwise the stream ends (`EXT-X-ENDLIST`) and its
//! archive becomes a VOD.

pub mod ladder;
mod live;
mod output;
mod session;
pub mod transcoder;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tracing::{info, warn};

use crate::config::{Config, OnConflict};
use crate::egress::feed::Feeds;
use crate::ingest::{Admission, Claim, LinkEncryption, Publish, Refusal};
use crate::keys::KeyService;
use crate::metrics::Metrics;
use crate::serve::http::admin::StreamControl;
use crate::serve::hub::Hub;
use crate::store::archive::Archive;
use live::Live;
pub use session::PublishSession;

/// Viewers' keyframe requests reach a publisher that can be asked (WHIP) at
/// most this often, however many viewers ask.
const KEYFRAME_REQUEST_INTERVAL_MS: u64 = 500;

/// Admits publishers by stream key and runs one [`Live`] stream per name.
#[derive(Clone)]
pub struct Pipelines {
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
    /// Content keys of encrypted streams (set once at start, before any
    /// publisher; without it an encrypted stream is refused).
    keys: OnceLock<Arc<KeyService>>,
    /// Where each stream's source frames go for real-time egress (WHEP); set
    /// once at start. Encrypted streams get none: their media leaves only
    /// encrypted.
    feeds: OnceLock<Arc<Feeds>>,
}

impl Pipelines {
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
                keys: OnceLock::new(),
                feeds: OnceLock::new(),
            }),
        }
    }

    /// The key service encrypted streams take their keys from. Call once,
    /// before ingest starts.
    pub fn set_keys(&self, keys: Arc<KeyService>) {
        let _ = self.inner.keys.set(keys);
    }

    /// Where streams' source frames go for WHEP viewers. Call once, before
    /// ingest starts.
    pub fn set_feeds(&self, feeds: Arc<Feeds>) {
        let _ = self.inner.feeds.set(feeds);
    }

    /// The packager settings of a new session of `name`: with its encryption
    /// and keys when the stream is encrypted (never in the clear when keys
    /// cannot be had: the publisher is refused instead).
    fn session_packager(&self, name: &str) -> Result<brook_packager::PackagerConfig, Refusal> {
        let config = &self.inner.config;
        let mut packager = config.packager.to_packager_config();
        let Some(stream) = config.streams.get(name) else {
            return Ok(packager);
        };
        if let Some(scheme) = stream.encryption {
            let Some(keys) = self.inner.keys.get() else {
                warn!(stream = %name, "encrypted stream, but no key service: refused");
                return Err(Refusal::Unavailable("no key service".into()));
            };
            let enc = keys
                .session_encryption(name, scheme, stream.rotate_every_segments)
                .map_err(|e| {
                    warn!(stream = %name, error = %e, "no content keys: refused");
                    Refusal::Unavailable("key service unavailable".into())
                })?;
            packager.encryption = Some(enc);
        }
        Ok(packager)
    }

    fn check(&self, claim: &Claim<'_>) -> Result<(), Refusal> {
        let result = self.check_inner(claim);
        if result.is_err() {
            self.inner
                .metrics
                .publish_rejections
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn check_inner(&self, claim: &Claim<'_>) -> Result<(), Refusal> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(Refusal::Unavailable("the origin is shutting down".into()));
        }
        let name = claim.stream;
        // An unknown stream and a wrong key are refused alike (the log says which).
        let configured = self.inner.config.streams.get(name);
        let expected = configured.map_or("", |s| s.key.as_str());
        let presented = claim.key.unwrap_or("");
        let key_ok = crate::constant_time_eq(presented.as_bytes(), expected.as_bytes());
        match (configured, claim.key) {
            (None, _) => return Err(Refusal::Denied(format!("stream {name} is not configured"))),
            (Some(_), None) => return Err(Refusal::Denied("no stream key".into())),
            (Some(_), Some(_)) if !key_ok => {
                return Err(Refusal::Denied("wrong stream key".into()))
            }
            _ => {}
        }
        if self.inner.config.publish.on_conflict == OnConflict::Reject
            && self.live(name).is_some_and(|l| lock(&l).connected())
        {
            return Err(Refusal::Busy(format!(
                "stream {name} already has a publisher"
            )));
        }
        Ok(())
    }

    fn live(&self, name: &str) -> Option<Arc<Mutex<Live>>> {
        self.inner.lives.lock().ok()?.get(name).cloned()
    }

    /// True while a publisher (of any ingest) feeds stream `name`.
    pub fn is_publishing(&self, name: &str) -> bool {
        self.live(name).is_some_and(|l| lock(&l).connected())
    }

    /// Attaches a new connection to stream `name`: continues its session when one
    /// is running (reconnect, takeover), or starts a new one.
    fn attach(&self, claim: &Claim<'_>) -> Result<(Arc<Mutex<Live>>, u64), Refusal> {
        let name = claim.stream;
        let peer = claim.peer;
        let mut lives = self
            .inner
            .lives
            .lock()
            .map_err(|_| Refusal::Unavailable("internal error".into()))?;
        if let Some(existing) = lives.get(name).cloned() {
            let mut live = lock(&existing);
            if live.connected() && self.inner.config.publish.on_conflict == OnConflict::Reject {
                return Err(Refusal::Busy(format!(
                    "stream {name} already has a publisher"
                )));
            }
            if let Some(generation) = live.resume(peer, claim.protocol) {
                return Ok((existing.clone(), generation));
            }
            // The session cannot continue: end it, start a new one below.
            live.finish();
            drop(live);
            lives.remove(name);
        }
        let packager = self.session_packager(name)?;
        if let Some(stream) = self.inner.hub.stream(name) {
            stream.set_publishing(false); // ended above or long ago
        }
        let stream = self
            .inner
            .hub
            .begin_publish(name)
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let config = &self.inner.config;
        let ladder = config.ladder_for(name).clone();
        let encrypted = config
            .streams
            .get(name)
            .is_some_and(|s| s.encryption.is_some());
        let feed = match self.inner.feeds.get() {
            Some(feeds) if !encrypted => Some((
                feeds.clone(),
                feeds.open(name, Duration::from_millis(KEYFRAME_REQUEST_INTERVAL_MS)),
            )),
            _ => None,
        };
        let live = Live::start(
            stream,
            peer,
            claim.protocol,
            packager,
            Arc::new(ladder),
            config.packager.segment_target_ms,
            self.inner.archive.clone(),
            self.inner.metrics.clone(),
            feed,
        );
        lives.insert(name.to_string(), live.clone());
        Ok((live, 1))
    }

    /// A connection went away (or was told to). Starts the grace period, or ends
    /// the stream at once when it cannot continue.
    fn detach(&self, live: &Arc<Mutex<Live>>, generation: u64) {
        let mut l = lock(live);
        if !l.detach(generation) {
            return; // another connection took over, or the stream ended
        }
        let grace = self.inner.config.publish.reconnect_grace_ms;
        if l.failed() || grace == 0 || self.inner.shutting_down.load(Ordering::Relaxed) {
            l.finish();
            let name = l.name().to_string();
            drop(l);
            self.forget(&name, live);
            return;
        }
        let this = self.clone();
        let live = live.clone();
        let generation = l.generation();
        drop(l);
        self.inner.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(grace)).await;
            let mut l = lock(&live);
            if l.generation() == generation && !l.connected() && !l.ended() {
                info!(stream = %l.name(), session = %l.session(), "no reconnect within the grace period");
                l.finish();
                let name = l.name().to_string();
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

    /// Disconnects the stream's publisher (admin "kick"). It may reconnect within
    /// the grace period and continue the stream. A publisher that sends nothing
    /// more is only dropped by its ingest's idle timeout.
    pub fn kick(&self, name: &str) -> bool {
        let Some(live) = self.live(name) else {
            return false;
        };
        let generation = {
            let mut l = lock(&live);
            if !l.connected() {
                return false;
            }
            l.bump_generation()
        };
        info!(stream = %name, "publisher kicked");
        // As if that connection had closed: the grace period starts now.
        self.detach(&live, generation);
        true
    }

    /// Ends the stream now (admin "end"): the publisher is disconnected, the
    /// playlist ends and the archive becomes a VOD.
    pub fn end(&self, name: &str) -> bool {
        let Some(live) = self.live(name) else {
            return false;
        };
        {
            let mut l = lock(&live);
            l.bump_generation();
            l.finish();
        }
        self.forget(name, &live);
        info!(stream = %name, "stream ended by the admin API");
        true
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
            l.bump_generation();
            l.finish();
        }
    }

    pub fn archive(&self) -> Option<&Arc<Archive>> {
        self.inner.archive.as_ref()
    }
}

impl Admission for Pipelines {
    fn admit(&self, claim: &Claim<'_>) -> Result<(), Refusal> {
        self.check(claim)
    }

    fn open(&self, claim: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
        self.check(claim)?;
        let (live, generation) = self.attach(claim)?;
        self.inner.metrics.publishes.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(PublishSession::new(
            self.clone(),
            live,
            generation,
            claim,
        )))
    }

    fn link_encryption(&self, stream: &str) -> Option<LinkEncryption> {
        self.inner.config.streams.get(stream)?.link_encryption()
    }
}

impl StreamControl for Pipelines {
    fn kick(&self, stream: &str) -> bool {
        Pipelines::kick(self, stream)
    }

    fn end(&self, stream: &str) -> bool {
        Pipelines::end(self, stream)
    }

    fn cue(&self, stream: &str, cue: brook_packager::breaks::SpliceCue) -> Option<bool> {
        let live = self.live(stream)?;
        let mut l = lock(&live);
        if l.ended() {
            return None;
        }
        let (out, duration_ms) = (cue.out, cue.duration_ms);
        let now = brook_packager::UnixMillis(crate::serve::hub::unix_ms());
        let accepted = l.push_cue(cue, now);
        info!(stream = %stream, out, ?duration_ms, accepted, "ad break cue from the admin API");
        Some(accepted)
    }
}

fn lock(live: &Mutex<Live>) -> MutexGuard<'_, Live> {
    // A panic while holding the lock leaves a packager in an unknown state; the
    // data is still memory-safe to use, and the session ends soon after.
    live.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;

    use brook_packager::codec::aac::AacConfig;
    use brook_packager::codec::h264::{AvcConfig, Sps};
    use brook_packager::media::{CodecConfig, TrackInfo};

    use super::*;
    use crate::config::LadderMode;
    use crate::ingest::{Protocol, Stop};

    pub(crate) fn avc_track(width: u32, height: u32) -> TrackInfo {
        TrackInfo {
            id: 1,
            timescale: 90_000,
            codec: CodecConfig::Avc(AvcConfig {
                sps: Sps {
                    profile_idc: 100,
                    constraint_flags: 0,
                    level_idc: 31,
                    chroma_format_idc: 1,
                    bit_depth_luma: 8,
                    bit_depth_chroma: 8,
                    width,
                    height,
                },
                sps_nal: vec![],
                pps_nal: vec![],
            }),
        }
    }

    pub(crate) fn aac_track() -> TrackInfo {
        TrackInfo {
            id: 2,
            timescale: 48_000,
            codec: CodecConfig::Aac(AacConfig {
                object_type: 2,
                sample_rate_index: 3,
                sample_rate: 48_000,
                channel_config: 2,
            }),
        }
    }

    fn pipelines(mut config: Config) -> Pipelines {
        config.ladder.mode = LadderMode::Passthrough;
        Pipelines::new(
            Arc::new(Hub::default()),
            Arc::new(config),
            Arc::new(Metrics::default()),
            None,
            Handle::current(),
        )
    }

    fn claim<'a>(stream: &'a str, key: Option<&'a str>) -> Claim<'a> {
        Claim {
            stream,
            key,
            peer: "127.0.0.1:5000".parse::<SocketAddr>().unwrap(),
            protocol: Protocol::Srt,
        }
    }

    /// An unknown stream, a missing key and a wrong key get the same refusal,
    /// so a publisher cannot probe for stream names.
    #[tokio::test]
    async fn unknown_stream_and_wrong_key_are_refused_alike() {
        let p = pipelines(Config::default());
        assert!(p.check(&claim("cam1", Some("dev-key"))).is_ok());
        for c in [
            claim("cam1", Some("wrong-key")),
            claim("cam1", None),
            claim("other", Some("dev-key")),
        ] {
            assert!(matches!(p.check(&c), Err(Refusal::Denied(_))), "{c:?}");
        }
    }

    /// An encrypted stream is never packaged in the clear: without a key
    /// service its publisher is refused; with one, the session's packager
    /// gets the stream's keys and the ClearKey license URL.
    #[tokio::test]
    async fn encrypted_streams_need_keys() {
        let mut config = Config::default();
        if let Some(s) = config.streams.get_mut("cam1") {
            s.encryption = Some(crate::keys::EncryptionScheme::Cenc);
            s.rotate_every_segments = 3;
        }
        config.keys.rotation_keys = 2;
        let p = pipelines(config);
        assert!(matches!(
            p.open(&claim("cam1", Some("dev-key"))),
            Err(Refusal::Unavailable(_))
        ));
        let keys = KeyService::open(
            &p.inner.config.keys,
            crate::keys::MasterKey::from_hex(&"01".repeat(32)).unwrap(),
        )
        .unwrap();
        p.set_keys(Arc::new(keys));
        let enc = p.session_packager("cam1").unwrap().encryption.unwrap();
        assert_eq!(enc.scheme, brook_packager::cmaf::cenc::Scheme::Cenc);
        assert_eq!((enc.keys.len(), enc.rotate_every_segments), (2, 3));
        assert_eq!(
            enc.key_systems[0].url_for(&enc.keys[0].kid),
            format!(
                "/live/cam1/license?kid={}",
                crate::keys::hex(&enc.keys[0].kid)
            )
        );
        assert!(p.open(&claim("cam1", Some("dev-key"))).is_ok());
    }

    #[tokio::test]
    async fn second_publisher_rejected_or_taking_over() {
        let p = pipelines(Config::default());
        let first = p.open(&claim("cam1", Some("dev-key"))).unwrap();
        assert!(matches!(
            p.open(&claim("cam1", Some("dev-key"))),
            Err(Refusal::Busy(_))
        ));
        first.close("test");

        let mut config = Config::default();
        config.publish.on_conflict = OnConflict::Takeover;
        let p = pipelines(config);
        let mut first = p.open(&claim("cam1", Some("dev-key"))).unwrap();
        let mut second = p.open(&claim("cam1", Some("dev-key"))).unwrap();
        let now = crate::unix_now();
        assert_eq!(
            first.ts(&[], now),
            Err(Stop::Replaced),
            "the first publisher is told to go"
        );
        assert!(second.ts(&[], now).is_ok());
        first.close("taken over");
        assert!(p.inner.hub.stream("cam1").unwrap().is_publishing());
        second.close("test");
    }

    #[tokio::test]
    async fn end_and_kick() {
        let mut config = Config::default();
        config.publish.reconnect_grace_ms = 50;
        let p = pipelines(config);
        assert!(!p.end("cam1"));
        let mut s = p.open(&claim("cam1", Some("dev-key"))).unwrap();
        assert!(p.kick("cam1"));
        assert!(s.ts(&[], crate::unix_now()).is_err());
        s.close("kicked");
        let stream = p.inner.hub.stream("cam1").unwrap();
        assert!(!stream.snapshot().live);
        assert!(!stream.snapshot().ended, "within the grace period");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(stream.snapshot().ended, "after the grace period");

        let mut s = p.open(&claim("cam1", Some("dev-key"))).unwrap();
        assert!(p.end("cam1"));
        assert_eq!(s.ts(&[], crate::unix_now()), Err(Stop::Ended));
        assert!(p.inner.hub.stream("cam1").unwrap().snapshot().ended);
        s.close("ended");
    }
}
