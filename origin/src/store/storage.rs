//! Where archived objects live. Delivery and the archive talk to one trait,
//! [`Storage`], so an S3-compatible object store can replace the local disk
//! without touching either.
//!
//! Keys are `/`-separated relative names made only of `[A-Za-z0-9._-]` segments
//! that do not start with `.` (so no `.`, `..` or hidden names) and no leading
//! `/`, checked by [`Key::new`]: a key can never name anything outside the store,
//! nor a temporary file, whatever a URL contained.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

/// A validated storage key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        let ok = !key.is_empty()
            && key.len() <= 512
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && !seg.starts_with('.')
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if ok {
            Ok(Self(key))
        } else {
            Err(StorageError::BadKey(key.escape_debug().to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("bad storage key {0:?}")]
    BadKey(String),
    #[error("{op} {key}: {source}")]
    Io {
        op: &'static str,
        key: String,
        source: std::io::Error,
    },
    #[error("storage task failed: {0}")]
    Task(String),
}

/// An object store.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Stores `data` under `key`, replacing what was there. All or nothing: a
    /// reader, or the origin after a crash, sees the old value, the new one, or
    /// (for a new key) none — never part of one.
    async fn put(&self, key: &Key, data: Bytes) -> Result<(), StorageError>;

    /// The value under `key`, `None` if there is none.
    async fn get(&self, key: &Key) -> Result<Option<Bytes>, StorageError>;

    /// Every key that starts with `prefix` (a key prefix ending in `/`, or empty
    /// for all), in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StorageError>;
}

/// A directory on the local disk: key `a/b/c` is file `<root>/a/b/c`. Writes go
/// to a temporary file in the same directory, are synced, then renamed over the
/// target (rename is atomic on POSIX file systems). Temporary files (left by a
/// crash mid-write) start with `.`, which no [`Key`] can, so they are never
/// listed or served.
#[derive(Debug)]
pub struct DiskStorage {
    root: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DiskStorage {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| StorageError::Io {
            op: "creating",
            key: root.display().to_string(),
            source,
        })?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn put_sync(root: &Path, key: &Key, data: &[u8]) -> Result<(), StorageError> {
        let io = |op, source| StorageError::Io {
            op,
            key: key.to_string(),
            source,
        };
        let path = root.join(key.as_str());
        let dir = path.parent().unwrap_or(root);
        std::fs::create_dir_all(dir).map_err(|e| io("creating directory for", e))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("writing", e));
        }
        Ok(())
    }

    fn list_sync(root: &Path, prefix: &str) -> Result<Vec<Key>, StorageError> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(StorageError::Io {
                        op: "listing",
                        key: dir.display().to_string(),
                        source,
                    })
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(ty) = entry.file_type() else { continue };
                if ty.is_dir() {
                    dirs.push(path);
                } else if ty.is_file() {
                    let rel = path.strip_prefix(root).ok().and_then(|p| p.to_str());
                    if let Some(key) = rel.and_then(|r| Key::new(r).ok()) {
                        if key.as_str().starts_with(prefix) {
                            out.push(key);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
}

#[async_trait]
impl Storage for DiskStorage {
    async fn put(&self, key: &Key, data: Bytes) -> Result<(), StorageError> {
        let (root, key) = (self.root.clone(), key.clone());
        blocking(move || Self::put_sync(&root, &key, &data)).await
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>, StorageError> {
        let path = self.root.join(key.as_str());
        let shown = key.to_string();
        blocking(move || match std::fs::read(&path) {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StorageError::Io {
                op: "reading",
                key: shown,
                source,
            }),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StorageError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        blocking(move || Self::list_sync(&root, &prefix)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for good in ["a", "cam1/0123/main/seg1.m4s", "a-b_c.d/e"] {
            assert!(Key::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/../b",
            "..",
            ".",
            "a/./b",
            "a/",
            "a\\b",
            "a b",
            "a/%2e%2e",
            "a\0b",
            "é",
            ".tmp-1",
            "a/.hidden",
        ] {
            assert!(Key::new(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn disk_put_get_list_and_no_temp_files_listed() {
        let dir = std::env::temp_dir().join(format!(
            "brook-storage-{}",
            crate::serve::hub::new_session_id()
        ));
        let s = DiskStorage::new(&dir).unwrap();
        let k = Key::new("cam1/s1/main/seg0.m4s").unwrap();
        assert!(s.get(&k).await.unwrap().is_none());
        s.put(&k, Bytes::from_static(b"one")).await.unwrap();
        s.put(&k, Bytes::from_static(b"two")).await.unwrap();
        assert_eq!(&s.get(&k).await.unwrap().unwrap()[..], b"two");
        std::fs::write(dir.join("cam1/s1/main/.tmp-1-1"), b"half").unwrap();
        let keys = s.list("cam1/").await.unwrap();
        assert_eq!(keys, vec![k.clone()]);
        assert!(s.list("cam2/").await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
