//! Content keys at rest: one JSON file (`<keys.dir>/keys.json`) in which every
//! key (with its IV) is sealed with AES-256-GCM under the master key. The
//! additional data binds each sealed key to its stream and KID, so a record
//! copied to another stream or KID does not open. Writes go to a temporary
//! file that is renamed over the old one (a crash leaves one or the other).
//!
//! ```json
//! {"version":1,"streams":{"cam1":{"current":["<kid hex>"],
//!   "keys":[{"kid":"<hex>","sealed":"<hex: nonce ‖ ciphertext ‖ tag>",
//!            "created_unix_ms":1764950000000,"revoked":false}]}}}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use serde::{Deserialize, Serialize};

use super::{hex, unhex, KeyError, MasterKey};

/// What the file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub version: u32,
    pub streams: BTreeMap<String, StreamRecord>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamRecord {
    /// KIDs (hex) of the key set the stream's next session encrypts with.
    pub current: Vec<String>,
    pub keys: Vec<KeyRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyRecord {
    pub kid: String,
    pub sealed: String,
    pub created_unix_ms: u64,
    pub revoked: bool,
}

const NONCE_LEN: usize = 12;

fn aad(stream: &str, kid: &[u8; 16]) -> Vec<u8> {
    format!("brook-content-key-v1:{stream}:{}", hex(kid)).into_bytes()
}

/// Seals `key ‖ iv` for `stream`/`kid`: a fresh random nonce, then the
/// ciphertext and tag.
pub(super) fn seal(
    master: &MasterKey,
    stream: &str,
    kid: &[u8; 16],
    key: &[u8; 16],
    iv: &[u8; 16],
) -> Result<String, KeyError> {
    let cipher = Aes256Gcm::new_from_slice(master.bytes()).map_err(|_| KeyError::Crypto)?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| KeyError::NoRandomness)?;
    let mut plain = [0u8; 32];
    plain[..16].copy_from_slice(key);
    plain[16..].copy_from_slice(iv);
    let aad = aad(stream, kid);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| KeyError::Crypto)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(hex(&out))
}

/// Opens what [`seal`] wrote: `(key, iv)`.
pub(super) fn open(
    master: &MasterKey,
    stream: &str,
    kid: &[u8; 16],
    sealed: &str,
) -> Result<([u8; 16], [u8; 16]), KeyError> {
    let bytes = unhex(sealed).ok_or_else(|| KeyError::Corrupt(format!("{stream}: sealed key")))?;
    if bytes.len() != NONCE_LEN + 32 + 16 {
        return Err(KeyError::Corrupt(format!(
            "{stream}: sealed key of {} bytes",
            bytes.len()
        )));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new_from_slice(master.bytes()).map_err(|_| KeyError::Crypto)?;
    let aad = aad(stream, kid);
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| KeyError::WrongMaster {
            stream: stream.to_owned(),
            kid: hex(kid),
        })?;
    let mut key = [0u8; 16];
    let mut iv = [0u8; 16];
    key.copy_from_slice(&plain[..16]);
    iv.copy_from_slice(&plain[16..32]);
    Ok((key, iv))
}

/// Where the file lives in `dir`.
pub(super) fn path_in(dir: &Path) -> PathBuf {
    dir.join("keys.json")
}

/// Reads the file; a missing file is an empty store.
pub(super) fn load(path: &Path) -> Result<File, KeyError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| KeyError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File {
            version: 1,
            ..File::default()
        }),
        Err(e) => Err(KeyError::Io(format!("reading {}: {e}", path.display()))),
    }
}

/// Writes the file whole (temporary file, fsync, rename), readable by the
/// owner only.
pub(super) fn save(path: &Path, file: &File) -> Result<(), KeyError> {
    use std::io::Write;
    let text = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Io(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let io = |what: &str, e: std::io::Error| KeyError::Io(format!("{what} {}: {e}", tmp.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(|e| io("creating", e))?;
    f.write_all(&text).map_err(|e| io("writing", e))?;
    f.sync_all().map_err(|e| io("syncing", e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| KeyError::Io(format!("renaming to {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_opens_only_with_its_master_stream_and_kid() {
        let m = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        let other = MasterKey::from_hex(&"22".repeat(32)).unwrap();
        let (kid, key, iv) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let s = seal(&m, "cam1", &kid, &key, &iv).unwrap();
        assert!(!s.contains(&hex(&key)), "the key is not in the clear");
        assert_eq!(open(&m, "cam1", &kid, &s).unwrap(), (key, iv));
        assert!(matches!(
            open(&other, "cam1", &kid, &s),
            Err(KeyError::WrongMaster { .. })
        ));
        assert!(open(&m, "cam2", &kid, &s).is_err());
        assert!(open(&m, "cam1", &[9u8; 16], &s).is_err());
        assert!(open(&m, "cam1", &kid, "zz").is_err());
        assert!(open(&m, "cam1", &kid, &s[..20]).is_err());
        // Two seals of the same key differ (fresh nonce).
        assert_ne!(s, seal(&m, "cam1", &kid, &key, &iv).unwrap());
    }
}
