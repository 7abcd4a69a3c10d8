//! Origin configuration: one TOML file (every key optional, unknown keys rejected),
//! embedded defaults that run out of the box, and CLI overrides applied in `main`.
//! `origin/brook.example.toml` documents every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::pipeline::ladder::{LadderConfig, Mode as LadderMode};

/// The stream and key the embedded defaults publish to, for local development.
pub const DEV_STREAM: &str = "cam1";
pub const DEV_KEY: &str = "dev-key";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpConfig,
    pub srt: SrtConfig,
    /// RTMP ingest; see `docs/rtmp.md`.
    pub rtmp: RtmpConfig,
    pub packager: PackagerSettings,
    pub hls: HlsConfig,
    pub publish: PublishConfig,
    pub archive: ArchiveConfig,
    /// Object storage for on-demand assets (and the archive with
    /// `archive.in_storage`): `kind = "fs"` with `dir`, or `kind = "s3"`.
    /// Default: none.
    pub storage: Option<crate::store::storage::StorageConfig>,
    /// Video on demand (uploads, assets, jobs); see `docs/vod.md`.
    pub vod: crate::vod::VodConfig,
    pub admin: AdminConfig,
    /// WebRTC ingest (WHIP, RFC 9725); see `docs/whip.md`.
    pub whip: crate::ingest::whip::WhipConfig,
    /// WebRTC playback (WHEP) on the WHIP socket; see `docs/whep.md`.
    pub whep: crate::egress::whep::WhepConfig,
    /// The adaptive bitrate ladder every stream is transcoded into (unless a
    /// stream sets its own); see `docs/ladder.md`.
    pub ladder: LadderConfig,
    /// Content keys for encrypted streams (`streams.<name>.encryption`); see
    /// `docs/drm.md`.
    pub keys: crate::keys::KeysConfig,
    /// Viewer QoE pushed by the edge for Prometheus; see `docs/qoe.md`.
    pub qoe: QoeConfig,
    /// Registration of this origin's live streams with the edge's stream
    /// directory; see `docs/scale.md`. Default: none.
    pub directory: crate::directory::DirectoryConfig,
    /// Streams that may publish, by name (`live/<name>`). Default: only `cam1` with
    /// the development key `dev-key`; a config file replaces this table entirely.
    pub streams: BTreeMap<String, StreamConfig>,
}

impl Default for Config {
    fn default() -> Self {
        let mut streams = BTreeMap::new();
        streams.insert(
            DEV_STREAM.to_string(),
            StreamConfig {
                key: DEV_KEY.to_string(),
                ladder: None,
                srt_passphrase: None,
                srt_encryption: SrtEncryption::Required,
                rtsp: None,
                encryption: None,
                rotate_every_segments: 0,
            },
        );
        Self {
            http: HttpConfig::default(),
            srt: SrtConfig::default(),
            rtmp: RtmpConfig::default(),
            packager: PackagerSettings::default(),
            hls: HlsConfig::default(),
            publish: PublishConfig::default(),
            archive: ArchiveConfig::default(),
            storage: None,
            vod: crate::vod::VodConfig::default(),
            admin: AdminConfig::default(),
            whip: crate::ingest::whip::WhipConfig::default(),
            whep: crate::egress::whep::WhepConfig::default(),
            ladder: LadderConfig::default(),
            keys: crate::keys::KeysConfig::default(),
            qoe: QoeConfig::default(),
            directory: crate::directory::DirectoryConfig::default(),
            streams,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP server (playlists and media) listens on. Default `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Seconds in-flight responses get to finish on shutdown. Default 3.
    pub shutdown_grace_seconds: u64,
    /// Worker threads serving HTTP. Default 0: one per CPU.
    pub threads: usize,
    /// Accept HTTP/2 without TLS (h2c, prior knowledge) on `listen`, next to
    /// HTTP/1.1. Default true.
    pub h2c: bool,
    /// HTTPS (HTTP/2 by ALPN, and HTTP/1.1) when set. Default: none.
    pub tls: Option<TlsConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            shutdown_grace_seconds: 3,
            threads: 0,
            h2c: true,
            tls: None,
        }
    }
}

impl HttpConfig {
    /// `threads`, with 0 resolved to the number of CPUs.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address for HTTPS. Required.
    pub listen: SocketAddr,
    /// PEM certificate chain file. Required.
    pub cert: PathBuf,
    /// PEM private key file. Required.
    pub key: PathBuf,
}

/// What happens when an encoder goes away, or a second one arrives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// An encoder that reconnects within this many ms continues the same stream
    /// (same URLs, `EXT-X-DISCONTINUITY`); after it the stream ends (ENDLIST, VOD).
    /// 0 ends the stream as soon as the publisher leaves. Default 10000.
    pub reconnect_grace_ms: u64,
    /// A second publisher with the right key while one is connected: `reject`
    /// it, or let it `takeover` (the first is disconnected). Default `reject`.
    pub on_conflict: OnConflict,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            reconnect_grace_ms: 10_000,
            on_conflict: OnConflict::Reject,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    Reject,
    Takeover,
}

/// Live-to-VOD archive.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Directory every session's segments are written to (`<stream>/<session>/
    /// <rendition>/`), and ended sessions are served from as VOD. Default: none
    /// (no archive; a stream's media is gone once it leaves the live window).
    pub dir: Option<PathBuf>,
    /// Archive into `[storage]` instead (under `live/`), beside the on-demand
    /// assets: an S3-compatible bucket or the disk. Default false.
    pub in_storage: bool,
}

/// The environment variable overriding `qoe.push_token`.
pub const QOE_PUSH_TOKEN_ENV: &str = "BROOK_QOE_PUSH_TOKEN";

/// Viewers' watch and stall time, pushed by the edge (`POST /qoe/push`) and
/// exported as `brook_qoe_*` counters.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QoeConfig {
    /// Bearer token the edge presents at `POST /qoe/push` (its
    /// `QOE_PUSH_TOKEN` secret; at least 16 characters; the environment
    /// variable `BROOK_QOE_PUSH_TOKEN` overrides it). Default: none, and the
    /// endpoint answers 404.
    pub push_token: Option<String>,
}

impl std::fmt::Debug for QoeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QoeConfig")
            .field(
                "push_token",
                &self.push_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl QoeConfig {
    /// With `BROOK_QOE_PUSH_TOKEN` applied.
    pub fn with_env(mut self) -> Self {
        if let Some(t) = std::env::var(QOE_PUSH_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
        {
            self.push_token = Some(t);
        }
        self
    }
}

/// The admin API (`/admin/...`) and Prometheus metrics (`/metrics`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token for `/admin/...` (at least 16 characters). The environment
    /// variable `BROOK_ADMIN_TOKEN` overrides it. Default: none, and the admin API
    /// answers 404.
    pub token: Option<String>,
    /// Serve `/admin/...` and `/metrics` on this address instead of on
    /// `http.listen` (keeps them off the port the CDN pulls from). Default: none.
    pub listen: Option<SocketAddr>,
    /// Require the admin token for `/metrics` too. Default false.
    pub metrics_need_token: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrtConfig {
    /// UDP address the SRT listener binds. Default `0.0.0.0:9000`.
    pub listen: SocketAddr,
    /// SRT receiver latency (retransmission buffer), milliseconds. Default 120.
    pub latency_ms: u32,
    /// A publisher that sends nothing for this long is disconnected, ms. Default 5000.
    pub idle_timeout_ms: u64,
    /// Concurrent SRT connections accepted. Default 64.
    pub max_connections: usize,
}

impl Default for SrtConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
            latency_ms: 120,
            idle_timeout_ms: 5000,
            max_connections: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Accept RTMP publishers. Default true.
    pub enabled: bool,
    /// TCP address the RTMP listener binds. Default `0.0.0.0:1935`.
    pub listen: SocketAddr,
    /// The application publishers name in their URL (`rtmp://host/<app>`).
    /// Default `live`.
    pub app: String,
    /// Concurrent RTMP connections. Default 64.
    pub max_connections: usize,
    /// A publisher that sends nothing for this long is disconnected, ms.
    /// Default 10000.
    pub idle_timeout_ms: u64,
    /// RTMPS (RTMP over TLS) on its own port, with this certificate. Default:
    /// none.
    pub tls: Option<TlsConfig>,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            app: "live".into(),
            max_connections: 64,
            idle_timeout_ms: 10_000,
            tls: None,
        }
    }
}

/// Packaging targets; see `docs/packager.md` for why the defaults are what they are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackagerSettings {
    /// LL-HLS part target duration (`PART-TARGET`), ms. Default 200.
    pub part_target_ms: u32,
    /// Segment target; segments are cut on the first IDR after it, ms. Default 2000.
    pub segment_target_ms: u32,
    /// Longest segment, ms: a segment that reaches it without an IDR is cut
    /// there, and the next one starts without one (players join at the next
    /// IDR). `EXT-X-TARGETDURATION` is this in whole seconds, rounded up.
    /// Default: twice `segment_target_ms`.
    pub max_segment_ms: Option<u32>,
    /// Complete segments kept in the live playlist. Default 10.
    pub window_segments: usize,
    /// How ad breaks are marked in the media playlists: `"daterange"`
    /// (`EXT-X-DATERANGE` with SCTE35-OUT/IN, default) or `"cue-out"`
    /// (`EXT-X-CUE-OUT` / `-CONT` / `EXT-X-CUE-IN`). docs/ads.md.
    pub ad_markers: AdMarkerStyle,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdMarkerStyle {
    #[default]
    Daterange,
    CueOut,
}

impl Default for PackagerSettings {
    fn default() -> Self {
        let d = brook_packager::PackagerConfig::default();
        Self {
            part_target_ms: d.segmenter.part_target_ms,
            segment_target_ms: d.segmenter.segment_target_ms,
            max_segment_ms: None,
            window_segments: d.window_segments,
            ad_markers: AdMarkerStyle::default(),
        }
    }
}

impl PackagerSettings {
    /// The longest segment, ms (`max_segment_ms`, or twice the segment target).
    pub fn max_segment_ms(&self) -> u32 {
        self.max_segment_ms
            .unwrap_or(self.segment_target_ms.saturating_mul(2))
    }

    pub fn to_packager_config(&self) -> brook_packager::PackagerConfig {
        let mut c = brook_packager::PackagerConfig::default();
        c.segmenter.part_target_ms = self.part_target_ms;
        c.segmenter.segment_target_ms = self.segment_target_ms;
        c.segmenter.max_segment_ms = self.max_segment_ms();
        c.window_segments = self.window_segments;
        c.ad_markers = match self.ad_markers {
            AdMarkerStyle::Daterange => brook_packager::breaks::AdMarkers::DateRange,
            AdMarkerStyle::CueOut => brook_packager::breaks::AdMarkers::CueOut,
        };
        c
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Longest a blocking playlist reload or a preload-hinted part request is held
    /// before the origin answers 503, ms. Default 6000 (three 2 s target durations).
    pub blocking_timeout_ms: u64,
    /// Longest a request for a stream that is publishing but has no media yet is
    /// held, ms. Default 5000.
    pub startup_wait_ms: u64,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            blocking_timeout_ms: 6000,
            startup_wait_ms: 5000,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The publish key an encoder must present (SRT stream id, WHIP bearer
    /// token). Required.
    pub key: String,
    /// This stream's own ladder; replaces `[ladder]` whole (keys it leaves out
    /// take the built-in defaults, not `[ladder]`'s). Default: none.
    pub ladder: Option<LadderConfig>,
    /// The passphrase SRT publishers of this stream encrypt with (AES; 10 to
    /// 79 characters; the publisher picks the key length). Default: none, in
    /// the clear (and a publisher that encrypts is refused).
    pub srt_passphrase: Option<String>,
    /// With `srt_passphrase`: `"required"` (a publisher in the clear is
    /// refused) or `"optional"` (it may publish in the clear; one with another
    /// passphrase is still refused). Default `"required"`.
    #[serde(default)]
    pub srt_encryption: SrtEncryption,
    /// Pull this stream from an RTSP camera instead of waiting for a
    /// publisher; see `docs/rtsp.md`. Default: none.
    pub rtsp: Option<RtspPullConfig>,
    /// Common Encryption of everything the stream serves: `"cbcs"` or
    /// `"cenc"`, with keys from the key service (`[keys]`) and ClearKey
    /// licenses from the edge; see `docs/drm.md`. Default: none (clear).
    #[serde(default)]
    pub encryption: Option<crate::keys::EncryptionScheme>,
    /// With `encryption`: a new key every this many segments (a cycle of
    /// `keys.rotation_keys` keys). Default 0: one key per session.
    #[serde(default)]
    pub rotate_every_segments: u64,
}

/// `[streams.<name>.rtsp]`: where and how to pull the stream from.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtspPullConfig {
    /// `rtsp://[user:password@]host[:port]/path`. The user name and password
    /// answer the camera's authentication (Digest or Basic) and are never
    /// logged. Required.
    pub url: String,
    /// `"tcp"` (RTP interleaved in the RTSP connection) or `"udp"`. Default `"tcp"`.
    #[serde(default)]
    pub transport: crate::ingest::rtsp::RtspTransport,
    /// Call the camera when a viewer asks for the stream (a playlist
    /// request; the first one is held up to `hls.startup_wait_ms` until the
    /// stream plays) and hang up after `idle_stop_ms` without viewers.
    /// Default false: pulled for as long as the origin runs.
    #[serde(default)]
    pub on_demand: bool,
    /// With `on_demand`: how long the stream may go without a viewer before
    /// the pull stops, ms. A client counts as a viewer until 10 s after its
    /// last playlist request (the hub's viewer window); WebRTC viewers while
    /// connected. Default 20000.
    #[serde(default = "default_idle_stop_ms")]
    pub idle_stop_ms: u64,
}

fn default_idle_stop_ms() -> u64 {
    20_000
}

/// The URL is shown only redacted.
impl std::fmt::Debug for RtspPullConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = crate::ingest::rtsp::CameraUrl::parse(&self.url)
            .map_or_else(|_| "<invalid, redacted>".to_owned(), |u| u.to_string());
        f.debug_struct("RtspPullConfig")
            .field("url", &url)
            .field("transport", &self.transport)
            .field("on_demand", &self.on_demand)
            .field("idle_stop_ms", &self.idle_stop_ms)
            .finish()
    }
}

/// Whether a stream's SRT publishers must encrypt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtEncryption {
    #[default]
    Required,
    Optional,
}

/// Secrets redacted: a config printed in a log shows neither key.
impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("key", &"<redacted>")
            .field("ladder", &self.ladder)
            .field(
                "srt_passphrase",
                &self.srt_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("srt_encryption", &self.srt_encryption)
            .field("rtsp", &self.rtsp)
            .field("encryption", &self.encryption)
            .field("rotate_every_segments", &self.rotate_every_segments)
            .finish()
    }
}

impl StreamConfig {
    /// The link encryption this stream asks of its SRT publishers.
    pub fn link_encryption(&self) -> Option<crate::ingest::LinkEncryption> {
        self.srt_passphrase
            .as_ref()
            .map(|p| crate::ingest::LinkEncryption {
                passphrase: p.clone(),
                required: self.srt_encryption == SrtEncryption::Required,
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn from_toml(text: &str, path: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_string(),
            source,
        })?;
        // A file that lists no streams gets none (not the development stream).
        if !text_has_streams(text) {
            config.streams.clear();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text, &shown)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.packager;
        if p.part_target_ms < 50 || p.part_target_ms > 5000 {
            return Err(ConfigError::Invalid(
                "packager.part_target_ms must be within 50..=5000".into(),
            ));
        }
        if p.segment_target_ms < p.part_target_ms || p.segment_target_ms > 60_000 {
            return Err(ConfigError::Invalid(
                "packager.segment_target_ms must be >= part_target_ms and <= 60000".into(),
            ));
        }
        let max = p.max_segment_ms();
        if max < p.segment_target_ms || max > 120_000 {
            return Err(ConfigError::Invalid(
                "packager.max_segment_ms must be >= segment_target_ms and <= 120000".into(),
            ));
        }
        if p.window_segments < 3 {
            return Err(ConfigError::Invalid(
                "packager.window_segments must be at least 3".into(),
            ));
        }
        self.vod.validate().map_err(ConfigError::Invalid)?;
        if self.vod.enabled && self.storage.is_none() {
            return Err(ConfigError::Invalid(
                "vod.enabled needs [storage] (kind = \"fs\" with dir, or kind = \"s3\")".into(),
            ));
        }
        if self.archive.in_storage && self.storage.is_none() {
            return Err(ConfigError::Invalid(
                "archive.in_storage needs [storage]".into(),
            ));
        }
        if let Some(token) = &self.admin.token {
            if token.len() < 16 {
                return Err(ConfigError::Invalid(
                    "admin.token is too short (at least 16 characters)".into(),
                ));
            }
        }
        if self.qoe.push_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid(
                "qoe.push_token is too short (at least 16 characters)".into(),
            ));
        }
        if self.admin.metrics_need_token && self.admin.token.is_none() {
            return Err(ConfigError::Invalid(
                "admin.metrics_need_token needs admin.token".into(),
            ));
        }
        self.whip.validate().map_err(ConfigError::Invalid)?;
        self.whep.validate().map_err(ConfigError::Invalid)?;
        self.directory.validate().map_err(ConfigError::Invalid)?;
        let r = &self.rtmp;
        if r.app.is_empty() || r.app.contains('/') {
            return Err(ConfigError::Invalid(
                "rtmp.app must be one non-empty path segment".into(),
            ));
        }
        if r.max_connections == 0 || r.idle_timeout_ms < 1000 {
            return Err(ConfigError::Invalid(
                "rtmp.max_connections must be at least 1 and rtmp.idle_timeout_ms at least 1000"
                    .into(),
            ));
        }
        for (section, tls) in [("http.tls", &self.http.tls), ("rtmp.tls", &self.rtmp.tls)] {
            let Some(tls) = tls else { continue };
            for (what, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !path.is_file() {
                    return Err(ConfigError::Invalid(format!(
                        "{section}.{what}: {} is not a readable file",
                        path.display()
                    )));
                }
            }
        }
        self.ladder
            .validate("ladder")
            .map_err(ConfigError::Invalid)?;
        let encrypted = self.streams.values().any(|s| s.encryption.is_some());
        self.keys
            .validate(encrypted, self.vod.enabled && self.vod.encryption.is_some())
            .map_err(ConfigError::Invalid)?;
        for (name, s) in &self.streams {
            if s.rotate_every_segments > 0 && s.encryption.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "streams.{name}.rotate_every_segments needs streams.{name}.encryption"
                )));
            }
            if let Some(l) = &s.ladder {
                l.validate(&format!("streams.{name}.ladder"))
                    .map_err(ConfigError::Invalid)?;
            }
            if let Some(p) = &s.srt_passphrase {
                if !(10..=79).contains(&p.chars().count()) || !p.is_ascii() {
                    return Err(ConfigError::Invalid(format!(
                        "streams.{name}.srt_passphrase must be 10 to 79 ASCII characters"
                    )));
                }
            }
            if !crate::valid_stream_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "stream name {name:?}: use 1-64 of [A-Za-z0-9_-]"
                )));
            }
            if s.key.len() < 6 {
                return Err(ConfigError::Invalid(format!(
                    "streams.{name}.key is too short (at least 6 characters)"
                )));
            }
            if let Some(r) = &s.rtsp {
                crate::ingest::rtsp::CameraUrl::parse(&r.url)
                    .map_err(|e| ConfigError::Invalid(format!("streams.{name}.rtsp.url: {e}")))?;
                if r.on_demand && r.idle_stop_ms == 0 {
                    return Err(ConfigError::Invalid(format!(
                        "streams.{name}.rtsp.idle_stop_ms must be above 0 with on_demand"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The ladder stream `name` is transcoded into.
    pub fn ladder_for(&self, name: &str) -> &LadderConfig {
        self.streams
            .get(name)
            .and_then(|s| s.ladder.as_ref())
            .unwrap_or(&self.ladder)
    }

    /// The RTSP pulls to start, one per stream with `[streams.<name>.rtsp]`.
    /// Call after [`Config::validate`] (a URL it refused is left out).
    pub fn rtsp_pulls(&self) -> Vec<crate::ingest::rtsp::Pull> {
        self.streams
            .iter()
            .filter_map(|(name, s)| {
                let r = s.rtsp.as_ref()?;
                Some(crate::ingest::rtsp::Pull {
                    stream: name.clone(),
                    key: s.key.clone(),
                    url: crate::ingest::rtsp::CameraUrl::parse(&r.url).ok()?,
                    transport: r.transport,
                    on_demand: r
                        .on_demand
                        .then(|| std::time::Duration::from_millis(r.idle_stop_ms)),
                })
            })
            .collect()
    }

    /// True when the built-in development key is in use (worth a warning).
    pub fn uses_dev_key(&self) -> bool {
        self.streams.values().any(|s| s.key == DEV_KEY)
    }
}

fn text_has_streams(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .map(|t| t.contains_key("streams"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_without_a_file() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.streams[DEV_STREAM].key, DEV_KEY);
        assert!(c.uses_dev_key());
    }

    #[test]
    fn file_overrides_and_replaces_streams() {
        let c = Config::from_toml(
            "[http]\nlisten = \"127.0.0.1:9999\"\n[streams.studio]\nkey = \"s3cret-key\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.http.listen.port(), 9999);
        assert_eq!(
            c.srt.listen.port(),
            9000,
            "untouched sections keep defaults"
        );
        assert!(!c.streams.contains_key(DEV_STREAM));
        assert!(!c.uses_dev_key());
        let none = Config::from_toml("[srt]\nlatency_ms = 200\n", "t.toml").unwrap();
        assert!(none.streams.is_empty());
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(Config::from_toml("[http]\nlisten_addr = \"x\"\n", "t").is_err());
        assert!(Config::from_toml("bogus = 1\n", "t").is_err());
        assert!(Config::from_toml("[packager]\npart_target_ms = 10\n", "t").is_err());
        assert!(Config::from_toml("[packager]\nmax_segment_ms = 1000\n", "t").is_err());
        assert!(Config::from_toml("[streams.\"a/b\"]\nkey = \"0123456\"\n", "t").is_err());
        assert!(Config::from_toml("[streams.a]\nkey = \"x\"\n", "t").is_err());
        assert!(Config::from_toml("[admin]\ntoken = \"short\"\n", "t").is_err());
        assert!(Config::from_toml("[publish]\non_conflict = \"merge\"\n", "t").is_err());
        assert!(Config::from_toml("[http.tls]\nlisten = \"0.0.0.0:1\"\n", "t").is_err());
        let c = Config::from_toml("[publish]\non_conflict = \"takeover\"\n", "t").unwrap();
        assert_eq!(c.publish.on_conflict, OnConflict::Takeover);
    }

    /// SRT passphrases within libsrt's bounds, an encryption policy libsrt
    /// knows, and neither secret in a printed config.
    #[test]
    fn srt_encryption_is_checked_and_never_printed() {
        let stream = |extra: &str| format!("[streams.a]\nkey = \"0123456789\"\n{extra}");
        let short = stream("srt_passphrase = \"123456789\"\n");
        assert!(Config::from_toml(&short, "t").is_err());
        let long = stream(&format!("srt_passphrase = \"{}\"\n", "x".repeat(80)));
        assert!(Config::from_toml(&long, "t").is_err());
        let policy = stream("srt_passphrase = \"0123456789ab\"\nsrt_encryption = \"maybe\"\n");
        assert!(Config::from_toml(&policy, "t").is_err());
        let ok = stream("srt_passphrase = \"0123456789ab\"\nsrt_encryption = \"optional\"\n");
        let c = Config::from_toml(&ok, "t").unwrap();
        let e = c.streams["a"].link_encryption().unwrap();
        assert_eq!((e.passphrase.as_str(), e.required), ("0123456789ab", false));
        let printed = format!("{c:?}");
        assert!(!printed.contains("0123456789"), "{printed}");
        let plain = Config::from_toml(&stream(""), "t").unwrap();
        assert!(plain.streams["a"].link_encryption().is_none());
    }

    /// RTSP pulls: a bad URL is refused at start with the reason (and without
    /// the URL's secrets); the credentials never appear in a printed config.
    #[test]
    fn rtsp_pulls_are_checked_and_never_print_credentials() {
        let stream = |rtsp: &str| {
            format!("[streams.door]\nkey = \"0123456789\"\n[streams.door.rtsp]\n{rtsp}")
        };
        let c = Config::from_toml(
            &stream("url = \"rtsp://camop:hunter22@192.0.2.7:8554/live\"\ntransport = \"udp\"\n"),
            "t",
        )
        .unwrap();
        let pulls = c.rtsp_pulls();
        assert_eq!(pulls.len(), 1);
        assert_eq!(pulls[0].stream, "door");
        assert_eq!(pulls[0].transport, crate::ingest::rtsp::RtspTransport::Udp);
        for printed in [format!("{c:?}"), format!("{pulls:?}")] {
            assert!(!printed.contains("hunter22"), "{printed}");
            assert!(!printed.contains("camop"), "{printed}");
            assert!(!printed.contains("0123456789"), "{printed}");
            assert!(
                printed.contains("rtsp://***@192.0.2.7:8554/live"),
                "{printed}"
            );
        }
        let tcp = Config::from_toml(&stream("url = \"rtsp://cam/x\"\n"), "t").unwrap();
        assert_eq!(
            tcp.rtsp_pulls()[0].transport,
            crate::ingest::rtsp::RtspTransport::Tcp
        );
        let err = |rtsp: &str| {
            Config::from_toml(&stream(rtsp), "t")
                .unwrap_err()
                .to_string()
        };
        let bad = err("url = \"http://admin:hunter22@cam/x\"\n");
        assert!(
            bad.contains("streams.door.rtsp.url") && bad.contains("only rtsp://"),
            "{bad}"
        );
        assert!(!bad.contains("hunter22"), "{bad}");
        assert_eq!(tcp.rtsp_pulls()[0].on_demand, None, "always on by default");
        let on_demand = Config::from_toml(
            &stream("url = \"rtsp://cam/x\"\non_demand = true\nidle_stop_ms = 3000\n"),
            "t",
        )
        .unwrap();
        assert_eq!(
            on_demand.rtsp_pulls()[0].on_demand,
            Some(std::time::Duration::from_secs(3))
        );
        let default_idle =
            Config::from_toml(&stream("url = \"rtsp://cam/x\"\non_demand = true\n"), "t").unwrap();
        assert_eq!(
            default_idle.rtsp_pulls()[0].on_demand,
            Some(std::time::Duration::from_secs(20))
        );
        assert!(
            err("url = \"rtsp://cam/x\"\non_demand = true\nidle_stop_ms = 0\n")
                .contains("idle_stop_ms must be above 0")
        );
        assert!(err("url = \"rtsp://cam/x\"\ntransport = \"sctp\"\n").contains("unknown variant"));
        assert!(err("url = \"rtsp://cam/x\"\nlatency = 1\n").contains("unknown field"));
        assert!(err("transport = \"tcp\"\n").contains("missing field `url`"));
    }

    /// A ladder that cannot work is refused at start, with the reason.
    #[test]
    fn impossible_ladders_are_rejected_at_start() {
        let err = |text: &str| Config::from_toml(text, "t").unwrap_err().to_string();
        assert!(err("[[ladder.rungs]]\nheight = 361\nbitrate_kbps = 600\n").contains("even"));
        assert!(
            err("[[ladder.rungs]]\nheight = 360\nbitrate_kbps = 0\n").contains("bitrate_kbps 0")
        );
        let unknown =
            err("[[ladder.rungs]]\nheight = 360\nbitrate_kbps = 600\nencoder = \"x265\"\n");
        assert!(unknown.contains("unknown variant `x265`"), "{unknown}");
        assert!(err("[streams.a]\nkey = \"0123456\"\n[[streams.a.ladder.rungs]]\nheight = 10\nbitrate_kbps = 1\n")
            .contains("streams.a.ladder.rungs[0]"));
        let c = Config::from_toml(
            "[ladder]\nmode = \"passthrough\"\n[streams.a]\nkey = \"0123456\"\n\
             [streams.a.ladder]\nsource_rung = true\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.ladder_for("a").mode, LadderMode::Transcode);
        assert!(c.ladder_for("a").source_rung);
        assert_eq!(c.ladder_for("b").mode, LadderMode::Passthrough);
    }

    #[test]
    fn the_longest_segment_follows_the_segment_target_unless_set() {
        let c = Config::from_toml("[packager]\nsegment_target_ms = 3000\n", "t").unwrap();
        let p = c.packager.to_packager_config();
        assert_eq!(p.segmenter.max_segment_ms, 6000);
        assert_eq!(p.segmenter.target_duration(), 6);
        let c = Config::from_toml("[packager]\nmax_segment_ms = 2500\n", "t").unwrap();
        assert_eq!(
            c.packager.to_packager_config().segmenter.target_duration(),
            3
        );
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../brook.example.toml");
        Config::from_toml(text, "brook.example.toml").unwrap();
    }
}
