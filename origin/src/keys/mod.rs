//! The key service: content keys for encrypted live streams (Common
//! Encryption in the packager, ClearKey licenses at the edge).
//!
//! ```text
//! stream starts (pipeline::Pipelines::attach)
//!   └─▶ KeyService::session_keys(stream, n)  the stream's current set, or n new keys
//!         (KID, key, IV from the OS), sealed (AES-256-GCM, BROOK_KEY_MASTER) into keys.json
//!   └─▶ Encryption { scheme, keys, rotate_every_segments, ClearKey license URL } → packager
//! edge license request ─▶ GET /keys/<stream>/<kid> (Bearer BROOK_KEY_FETCH_TOKEN)
//!   └─▶ KeyService::lookup(stream, kid)  none when unknown or revoked
//! admin: POST /admin/streams/<name>/keys/rotate   a new set for the next session
//!        POST /admin/streams/<name>/keys/<kid>/revoke   never served again
//! ```
//!
//! Keys are never logged (every type holding one redacts it in `Debug`) and
//! never written to a playlist (playlists carry KIDs and the license URL).
//! A session keeps the key set it started with for its whole life (the
//! packager's [`Encryption`] is fixed per session): a rotation applies to the
//! stream's next session, and a revoked key stops being served at once
//! (playback of a session still encrypting with it stops at the next license
//! request; end the stream to restart it with fresh keys). See docs/drm.md.

pub mod speke;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use brook_packager::cmaf::cenc::{ContentKey, Encryption, KeySystem, Scheme};
use serde::Deserialize;
use tracing::info;

/// The environment variable holding the master key (64 hex digits).
pub const MASTER_KEY_ENV: &str = "BROOK_KEY_MASTER";
/// The environment variable overriding `keys.fetch_token`.
pub const FETCH_TOKEN_ENV: &str = "BROOK_KEY_FETCH_TOKEN";
/// Most keys in one stream's rotation cycle.
pub const MAX_ROTATION_KEYS: usize = 256;

/// `[keys]`: where content keys live and how the edge gets them.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Directory of the key store (`keys.json`, sealed under the master key
    /// from `BROOK_KEY_MASTER`). Required when a stream is encrypted.
    /// Default: none.
    pub dir: Option<PathBuf>,
    /// Bearer token the edge presents at `GET /keys/<stream>/<kid>` (at least
    /// 16 characters; the environment variable `BROOK_KEY_FETCH_TOKEN`
    /// overrides it). Required when a stream is encrypted. Default: none.
    pub fetch_token: Option<String>,
    /// The ClearKey license URL written into playlists (`EXT-X-KEY` URI) and
    /// the MPD (`dashif:laurl`); `{stream}` is the stream name, `{kid}` the
    /// KID in hex. Default `/live/{stream}/license?kid={kid}` (the edge's
    /// endpoint, on whatever host served the playlist; one URI per key, as
    /// hls.js tells keys apart by their URI, the edge reads the KIDs from the
    /// request body).
    pub license_url: String,
    /// The license URL of on-demand assets' playlists and MPDs; `{asset}` is
    /// the asset id, `{kid}` the KID in hex. Default
    /// `/vod/{asset}/license?kid={kid}` (the edge's endpoint).
    pub asset_license_url: String,
    /// A commercial multi-DRM service's SPEKE v2 endpoint (`[keys.speke]`):
    /// encrypted assets get their key and Widevine/PlayReady/FairPlay
    /// signalling from it. Default: none.
    pub speke: Option<speke::SpekeConfig>,
    /// Keys in the cycle of a stream with `rotate_every_segments` (segment
    /// `msn` uses key `(msn / rotate_every_segments) % rotation_keys`).
    /// Default 16, at most 256.
    pub rotation_keys: usize,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            dir: None,
            fetch_token: None,
            license_url: "/live/{stream}/license?kid={kid}".into(),
            asset_license_url: "/vod/{asset}/license?kid={kid}".into(),
            speke: None,
            rotation_keys: 16,
        }
    }
}

impl std::fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysConfig")
            .field("dir", &self.dir)
            .field(
                "fetch_token",
                &self.fetch_token.as_ref().map(|_| "<redacted>"),
            )
            .field("license_url", &self.license_url)
            .field("asset_license_url", &self.asset_license_url)
            .field("speke", &self.speke)
            .field("rotation_keys", &self.rotation_keys)
            .finish()
    }
}

impl KeysConfig {
    /// Checks the section, given whether any stream is encrypted
    /// (`needed`: the store and the edge's token are required) and whether
    /// on-demand assets are encrypted by default (`assets`: the edge's token
    /// is; their keys live in the asset database).
    pub fn validate(&self, needed: bool, assets: bool) -> Result<(), String> {
        if let Some(t) = &self.fetch_token {
            if t.len() < 16 {
                return Err("keys.fetch_token is too short (at least 16 characters)".into());
            }
        }
        if !(1..=MAX_ROTATION_KEYS).contains(&self.rotation_keys) {
            return Err(format!(
                "keys.rotation_keys must be 1..={MAX_ROTATION_KEYS}"
            ));
        }
        if needed && self.dir.is_none() {
            return Err("an encrypted stream needs keys.dir (the key store)".into());
        }
        // The file is checked before the environment is applied (main):
        // a token only in the environment counts.
        let from_env = std::env::var(FETCH_TOKEN_ENV).is_ok_and(|t| !t.is_empty());
        if (needed || assets) && self.fetch_token.is_none() && !from_env {
            return Err(format!(
                "encryption (streams.<name>.encryption or vod.encryption) needs keys.fetch_token \
                 (or {FETCH_TOKEN_ENV}) for the edge"
            ));
        }
        if let Some(s) = &self.speke {
            s.validate()?;
        }
        for (name, url, holes) in [
            ("license_url", &self.license_url, ["{stream}", "{kid}"]),
            (
                "asset_license_url",
                &self.asset_license_url,
                ["{asset}", "{kid}"],
            ),
        ] {
            if !holes.iter().all(|h| url.contains(h)) {
                return Err(format!(
                    "keys.{name} must contain {} and {}",
                    holes[0], holes[1]
                ));
            }
        }
        Ok(())
    }

    /// `fetch_token` from the environment, when set there.
    pub fn with_env(mut self) -> Self {
        if let Some(t) = std::env::var(FETCH_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
        {
            self.fetch_token = Some(t);
        }
        self.speke = self.speke.take().map(speke::SpekeConfig::with_env);
        self
    }
}

/// A stream's `encryption` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionScheme {
    Cbcs,
    Cenc,
}

impl EncryptionScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionScheme::Cbcs => "cbcs",
            EncryptionScheme::Cenc => "cenc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cbcs" => Some(EncryptionScheme::Cbcs),
            "cenc" => Some(EncryptionScheme::Cenc),
            _ => None,
        }
    }
}

impl From<EncryptionScheme> for Scheme {
    fn from(s: EncryptionScheme) -> Self {
        match s {
            EncryptionScheme::Cbcs => Scheme::Cbcs,
            EncryptionScheme::Cenc => Scheme::Cenc,
        }
    }
}

/// Why the key service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("{MASTER_KEY_ENV} must be 64 hex digits (an AES-256 key)")]
    BadMaster,
    #[error("no randomness from the OS")]
    NoRandomness,
    #[error("cipher error")]
    Crypto,
    #[error("key store: {0}")]
    Io(String),
    #[error("key store corrupt: {0}")]
    Corrupt(String),
    #[error("key {kid} of stream {stream} does not open: wrong {MASTER_KEY_ENV}?")]
    WrongMaster { stream: String, kid: String },
}

/// The master key: never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = unhex(text.trim()).ok_or(KeyError::BadMaster)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadMaster)?;
        Ok(Self(key))
    }

    /// From `BROOK_KEY_MASTER`; `None` when unset.
    pub fn from_env() -> Option<Result<Self, KeyError>> {
        let v = std::env::var(MASTER_KEY_ENV).ok()?;
        Some(Self::from_hex(&v))
    }

    fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

struct Entry {
    key: [u8; 16],
    iv: [u8; 16],
    sealed: String,
    created_unix_ms: u64,
    revoked: bool,
}

#[derive(Default)]
struct StreamKeys {
    current: Vec<[u8; 16]>,
    keys: BTreeMap<[u8; 16], Entry>,
}

/// Per-stream content keys, sealed in a file store.
pub struct KeyService {
    master: MasterKey,
    /// The store file; `None` keeps keys in memory only (tests).
    path: Option<PathBuf>,
    streams: Mutex<BTreeMap<String, StreamKeys>>,
    /// The `{stream}`/`{kid}` template of the license URL.
    license_url: String,
    /// The `{asset}`/`{kid}` template of assets' license URL.
    asset_license_url: String,
    /// The DRM key provider, when `[keys.speke]` is set.
    speke: Option<speke::SpekeClient>,
    /// `keys.fetch_token` is set: the edge can fetch keys for ClearKey.
    edge_can_fetch: bool,
    rotation_keys: usize,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What the admin API shows of a key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub created_unix_ms: u64,
    pub revoked: bool,
    pub current: bool,
}

impl KeyService {
    /// Opens the store in `config.dir` (created if missing) and opens every
    /// key in it: a wrong master key fails here, at start, not at the first
    /// license.
    pub fn open(config: &KeysConfig, master: MasterKey) -> Result<Self, KeyError> {
        let path = match &config.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| KeyError::Io(format!("creating {}: {e}", dir.display())))?;
                Some(store::path_in(dir))
            }
            None => None,
        };
        let file = match &path {
            Some(p) => store::load(p)?,
            None => store::File::default(),
        };
        let mut streams = BTreeMap::new();
        for (name, rec) in file.streams {
            let mut s = StreamKeys::default();
            for k in rec.keys {
                let kid = kid_from_hex(&k.kid)
                    .ok_or_else(|| KeyError::Corrupt(format!("{name}: KID {:?}", k.kid)))?;
                let (key, iv) = store::open(&master, &name, &kid, &k.sealed)?;
                s.keys.insert(
                    kid,
                    Entry {
                        key,
                        iv,
                        sealed: k.sealed,
                        created_unix_ms: k.created_unix_ms,
                        revoked: k.revoked,
                    },
                );
            }
            s.current = rec.current.iter().filter_map(|k| kid_from_hex(k)).collect();
            streams.insert(name, s);
        }
        Ok(Self {
            master,
            path,
            streams: Mutex::new(streams),
            license_url: config.license_url.clone(),
            asset_license_url: config.asset_license_url.clone(),
            speke: match &config.speke {
                Some(c) => Some(
                    speke::SpekeClient::new(c.clone())
                        .map_err(|e| KeyError::Io(format!("the SPEKE client: {e}")))?,
                ),
                None => None,
            },
            edge_can_fetch: config.fetch_token.is_some(),
            rotation_keys: config.rotation_keys,
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, StreamKeys>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The encryption of a new session of `stream`: its current key set
    /// (made now when it has none, or not the size `rotate_every_segments`
    /// asks for, or a key in it was revoked) and the ClearKey license URL.
    pub fn session_encryption(
        &self,
        stream: &str,
        scheme: EncryptionScheme,
        rotate_every_segments: u64,
    ) -> Result<Encryption, KeyError> {
        let n = if rotate_every_segments > 0 {
            self.rotation_keys
        } else {
            1
        };
        let keys = self.session_keys(stream, n)?;
        let license_url = self.license_url.replace("{stream}", stream);
        Ok(Encryption {
            scheme: scheme.into(),
            keys,
            rotate_every_segments,
            key_systems: vec![KeySystem::ClearKey { license_url }],
            ..Encryption::default()
        })
    }

    /// `n` keys for a new session of `stream`: the current set when it is
    /// usable, else a new one (stored before it is returned).
    pub fn session_keys(&self, stream: &str, n: usize) -> Result<Vec<ContentKey>, KeyError> {
        let mut streams = self.lock();
        let s = streams.entry(stream.to_owned()).or_default();
        let usable = s.current.len() == n
            && s.current
                .iter()
                .all(|kid| s.keys.get(kid).is_some_and(|e| !e.revoked));
        if !usable {
            self.new_set(stream, s, n)?;
            self.persist(&streams)?;
        }
        let s = &streams[stream];
        Ok(s.current
            .iter()
            .filter_map(|kid| {
                s.keys.get(kid).map(|e| ContentKey {
                    kid: *kid,
                    key: e.key,
                    iv: e.iv,
                })
            })
            .collect())
    }

    fn new_set(&self, stream: &str, s: &mut StreamKeys, n: usize) -> Result<(), KeyError> {
        let now = crate::serve::hub::unix_ms();
        let mut current = Vec::with_capacity(n);
        for _ in 0..n {
            let ContentKey { kid, key, iv } = random_key()?;
            let sealed = store::seal(&self.master, stream, &kid, &key, &iv)?;
            s.keys.insert(
                kid,
                Entry {
                    key,
                    iv,
                    sealed,
                    created_unix_ms: now,
                    revoked: false,
                },
            );
            current.push(kid);
        }
        info!(stream, keys = n, first_kid = %hex(&current[0]), "new content key set");
        s.current = current;
        Ok(())
    }

    /// A new key set for `stream`'s next session (as many keys as the
    /// current one, at least 1); the old keys stay servable (sessions and
    /// recordings made with them) until revoked. Returns the new KIDs.
    pub fn rotate(&self, stream: &str) -> Result<Vec<String>, KeyError> {
        let mut streams = self.lock();
        let s = streams.entry(stream.to_owned()).or_default();
        let n = s.current.len().max(1);
        self.new_set(stream, s, n)?;
        let kids = s.current.iter().map(|k| hex(k)).collect();
        self.persist(&streams)?;
        Ok(kids)
    }

    /// Revokes one key: it is never served again, and a set holding it is
    /// replaced at the stream's next session. `false` when unknown.
    pub fn revoke(&self, stream: &str, kid: &[u8; 16]) -> Result<bool, KeyError> {
        let mut streams = self.lock();
        let Some(e) = streams.get_mut(stream).and_then(|s| s.keys.get_mut(kid)) else {
            return Ok(false);
        };
        e.revoked = true;
        info!(stream, kid = %hex(kid), "content key revoked");
        self.persist(&streams)?;
        Ok(true)
    }

    /// The key of `kid`, when `stream` has it and it is not revoked.
    pub fn lookup(&self, stream: &str, kid: &[u8; 16]) -> Option<[u8; 16]> {
        let streams = self.lock();
        let e = streams.get(stream)?.keys.get(kid)?;
        (!e.revoked).then_some(e.key)
    }

    /// A new content key for on-demand asset `asset`, and the key sealed
    /// under the master key for the asset database (bound to the asset and
    /// the KID like a stream's keys; the owner `asset/<id>` cannot be a
    /// stream name, which has no `/`).
    pub fn new_asset_key(&self, asset: &str) -> Result<(ContentKey, String), KeyError> {
        let k = random_key()?;
        let sealed = store::seal(&self.master, &asset_owner(asset), &k.kid, &k.key, &k.iv)?;
        info!(asset, kid = %hex(&k.kid), "new content key for an asset");
        Ok((k, sealed))
    }

    /// Whether the edge can fetch keys (`keys.fetch_token` is set).
    pub fn edge_can_fetch(&self) -> bool {
        self.edge_can_fetch
    }

    /// The DRM key provider, if one is configured.
    pub fn speke(&self) -> Option<&speke::SpekeClient> {
        self.speke.as_ref()
    }

    /// Seals a key that came from elsewhere (a DRM key provider) for the
    /// asset database, bound to `asset` as [`KeyService::new_asset_key`]'s.
    pub fn seal_asset_key(&self, asset: &str, k: &ContentKey) -> Result<String, KeyError> {
        store::seal(&self.master, &asset_owner(asset), &k.kid, &k.key, &k.iv)
    }

    /// Opens an asset's key sealed by [`KeyService::new_asset_key`].
    pub fn open_asset_key(
        &self,
        asset: &str,
        kid: &[u8; 16],
        sealed: &str,
    ) -> Result<ContentKey, KeyError> {
        let (key, iv) = store::open(&self.master, &asset_owner(asset), kid, sealed)?;
        Ok(ContentKey { kid: *kid, key, iv })
    }

    /// The encryption of an asset's packaging: its one key, the ClearKey
    /// license URL of `keys.asset_license_url`.
    /// With `drm` (a key provider's signalling): its systems, its `pssh`
    /// boxes, and ClearKey only when `clearkey`.
    pub fn asset_encryption(
        &self,
        asset: &str,
        scheme: EncryptionScheme,
        key: ContentKey,
        drm: &[speke::SystemSignalling],
        clearkey: bool,
    ) -> Encryption {
        let license_url = self.asset_license_url.replace("{asset}", asset);
        let mut key_systems = Vec::new();
        if clearkey {
            key_systems.push(KeySystem::ClearKey { license_url });
        }
        key_systems.extend(drm.iter().map(|s| KeySystem::Drm(s.to_packager())));
        Encryption {
            scheme: scheme.into(),
            keys: vec![key],
            key_systems,
            extra_pssh: drm
                .iter()
                .filter_map(speke::SystemSignalling::pssh_box)
                .collect(),
            ..Encryption::default()
        }
    }

    /// The keys of `stream` (KIDs and state, never key bytes).
    pub fn list(&self, stream: &str) -> Vec<KeyInfo> {
        let streams = self.lock();
        let Some(s) = streams.get(stream) else {
            return Vec::new();
        };
        s.keys
            .iter()
            .map(|(kid, e)| KeyInfo {
                kid: hex(kid),
                created_unix_ms: e.created_unix_ms,
                revoked: e.revoked,
                current: s.current.contains(kid),
            })
            .collect()
    }

    fn persist(&self, streams: &BTreeMap<String, StreamKeys>) -> Result<(), KeyError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = store::File {
            version: 1,
            streams: streams
                .iter()
                .map(|(name, s)| {
                    let rec = store::StreamRecord {
                        current: s.current.iter().map(|k| hex(k)).collect(),
                        keys: s
                            .keys
                            .iter()
                            .map(|(kid, e)| store::KeyRecord {
                                kid: hex(kid),
                                sealed: e.sealed.clone(),
                                created_unix_ms: e.created_unix_ms,
                                revoked: e.revoked,
                            })
                            .collect(),
                    };
                    (name.clone(), rec)
                })
                .collect(),
        };
        store::save(path, &file)
    }
}

/// A random KID (a version 4 UUID: KIDs are written as UUIDs in the MPD),
/// key and IV, from the OS.
fn random_key() -> Result<ContentKey, KeyError> {
    let mut random = [0u8; 48];
    getrandom::fill(&mut random).map_err(|_| KeyError::NoRandomness)?;
    let mut k = ContentKey {
        kid: [0u8; 16],
        key: [0u8; 16],
        iv: [0u8; 16],
    };
    k.kid.copy_from_slice(&random[..16]);
    k.key.copy_from_slice(&random[16..32]);
    k.iv.copy_from_slice(&random[32..]);
    k.kid[6] = (k.kid[6] & 0x0f) | 0x40;
    k.kid[8] = (k.kid[8] & 0x3f) | 0x80;
    random.fill(0);
    Ok(k)
}

/// Whose key a sealed asset key is, in its additional data.
fn asset_owner(asset: &str) -> String {
    format!("asset/{asset}")
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    brook_packager::cmaf::cenc::hex(bytes)
}

/// Hex (either case) to bytes; `None` on anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(pair[0])? * 16 + d(pair[1])?) as u8)
        })
        .collect()
}

/// A KID: 32 hex digits.
pub fn kid_from_hex(text: &str) -> Option<[u8; 16]> {
    unhex(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_hex(&"ab".repeat(32)).unwrap()
    }

    fn config(dir: &std::path::Path) -> KeysConfig {
        KeysConfig {
            dir: Some(dir.to_path_buf()),
            fetch_token: Some("f".repeat(16)),
            rotation_keys: 4,
            ..KeysConfig::default()
        }
    }

    #[test]
    fn keys_persist_sealed_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(&config(dir.path()), master()).unwrap();
        let enc = svc
            .session_encryption("cam1", EncryptionScheme::Cbcs, 0)
            .unwrap();
        assert_eq!(enc.keys.len(), 1);
        let k = enc.keys[0].clone();
        assert_eq!(k.kid[6] >> 4, 4, "version 4 UUID");
        assert_eq!(
            enc.key_systems,
            vec![KeySystem::ClearKey {
                license_url: "/live/cam1/license?kid={kid}".into()
            }]
        );
        // The same set for the next session; the file never holds a key in the clear.
        assert_eq!(svc.session_keys("cam1", 1).unwrap(), vec![k.clone()]);
        let text = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
        assert!(text.contains(&hex(&k.kid)));
        assert!(!text.contains(&hex(&k.key)) && !text.contains(&hex(&k.iv)));
        assert!(!format!("{svc:?} {k:?} {:?}", master()).contains(&hex(&k.key)));

        let again = KeyService::open(&config(dir.path()), master()).unwrap();
        assert_eq!(again.lookup("cam1", &k.kid), Some(k.key));
        assert_eq!(again.lookup("cam2", &k.kid), None, "keys are per stream");
        let wrong = MasterKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(matches!(
            KeyService::open(&config(dir.path()), wrong),
            Err(KeyError::WrongMaster { .. })
        ));
    }

    #[test]
    fn rotation_sets_rotate_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let svc = KeyService::open(&config(dir.path()), master()).unwrap();
        let enc = svc
            .session_encryption("cam1", EncryptionScheme::Cenc, 3)
            .unwrap();
        assert_eq!(enc.keys.len(), 4, "rotation_keys keys in the cycle");
        assert_eq!(enc.scheme, Scheme::Cenc);
        assert_eq!(enc.rotate_every_segments, 3);
        let old: Vec<_> = enc.keys.iter().map(|k| k.kid).collect();

        let new = svc.rotate("cam1").unwrap();
        assert_eq!(new.len(), 4);
        let next = svc.session_keys("cam1", 4).unwrap();
        assert!(next.iter().all(|k| !old.contains(&k.kid)), "a new set");
        assert!(
            svc.lookup("cam1", &old[0]).is_some(),
            "old keys still served"
        );

        assert!(svc.revoke("cam1", &next[1].kid).unwrap());
        assert_eq!(svc.lookup("cam1", &next[1].kid), None);
        assert!(!svc.revoke("cam1", &[0u8; 16]).unwrap());
        let after = svc.session_keys("cam1", 4).unwrap();
        assert!(
            after.iter().all(|k| k.kid != next[1].kid),
            "a set with a revoked key is replaced"
        );
        let again = KeyService::open(&config(dir.path()), master()).unwrap();
        assert_eq!(
            again.lookup("cam1", &next[1].kid),
            None,
            "revocation persists"
        );
        let listed = again.list("cam1");
        assert_eq!(listed.len(), 12);
        assert_eq!(listed.iter().filter(|k| k.current).count(), 4);
        assert_eq!(listed.iter().filter(|k| k.revoked).count(), 1);
    }

    #[test]
    fn asset_keys_are_sealed_to_their_asset_and_master() {
        let svc = KeyService::open(&KeysConfig::default(), master()).unwrap();
        let (k, sealed) = svc.new_asset_key("a1").unwrap();
        assert_eq!(k.kid[6] >> 4, 4, "version 4 UUID");
        assert!(!sealed.contains(&hex(&k.key)) && !sealed.contains(&hex(&k.iv)));
        assert_eq!(svc.open_asset_key("a1", &k.kid, &sealed).unwrap(), k);
        assert!(svc.open_asset_key("a2", &k.kid, &sealed).is_err());
        assert!(svc.open_asset_key("a1", &[1u8; 16], &sealed).is_err());
        let other = KeyService::open(
            &KeysConfig::default(),
            MasterKey::from_hex(&"cd".repeat(32)).unwrap(),
        )
        .unwrap();
        assert!(other.open_asset_key("a1", &k.kid, &sealed).is_err());
        let enc = svc.asset_encryption("a1", EncryptionScheme::Cenc, k.clone(), &[], true);
        assert_eq!(enc.scheme, Scheme::Cenc);
        assert_eq!(enc.keys, vec![k]);
        assert_eq!(
            enc.key_systems,
            vec![KeySystem::ClearKey {
                license_url: "/vod/a1/license?kid={kid}".into()
            }]
        );
    }

    #[test]
    fn master_key_and_config_checks() {
        assert!(MasterKey::from_hex("00").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        let c = KeysConfig::default();
        assert!(c.validate(false, false).is_ok());
        assert!(c.validate(true, false).is_err());
        assert!(c.validate(false, true).is_err());
        let short = KeysConfig {
            fetch_token: Some("short".into()),
            ..KeysConfig::default()
        };
        assert!(short.validate(false, false).is_err());
        assert_eq!(kid_from_hex(&"0A".repeat(16)), Some([10u8; 16]));
        assert_eq!(kid_from_hex("0a"), None);
    }
}
