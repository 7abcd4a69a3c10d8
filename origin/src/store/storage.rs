//! Where archived and on-demand objects live. Delivery, the archive and VOD
//! talk to one trait, [`Storage`]; [`ObjectStorage`] implements it over the
//! `object_store` crate, on the local disk or an S3-compatible bucket.
//!
//! Keys are `/`-separated relative names made only of `[A-Za-z0-9._-]` segments
//! that do not start with `.` (so no `.`, `..` or hidden names) and no leading
//! `/`, checked by [`Key::new`]: a key can never name anything outside the store,
//! nor a temporary file, whatever a URL contained.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

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
    #[error("{op} {key}: {source}")]
    Store {
        op: &'static str,
        key: String,
        source: Box<object_store::Error>,
    },
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

    /// Stores the content of a local file under `key` (in parts when it is
    /// large), all or nothing like [`Storage::put`]. Returns its length.
    async fn put_file(&self, key: &Key, file: &Path) -> Result<u64, StorageError>;

    /// Writes the value under `key` to a local file, streamed (never whole
    /// in memory), replacing the file only once all of it arrived. Returns
    /// its length, `None` (and no file) if there is no such key.
    async fn get_to_file(&self, key: &Key, file: &Path) -> Result<Option<u64>, StorageError>;

    /// Removes `key`; removing what is not there is not an error.
    async fn delete(&self, key: &Key) -> Result<(), StorageError>;

    /// Removes every key under `prefix` (as [`Storage::list`] names them).
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let keys = self.list(prefix).await?;
        for k in &keys {
            self.delete(k).await?;
        }
        Ok(keys.len())
    }
}

/// Where the store is (`[storage]`): the local disk (the embedded default)
/// or an S3-compatible object store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase", tag = "kind")]
pub enum StorageConfig {
    /// A directory: key `a/b/c` is file `<dir>/a/b/c`.
    Fs { dir: PathBuf },
    /// A bucket of an S3-compatible store. Credentials come from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`), as the AWS tools read them.
    S3(S3Config),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Region. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Endpoint URL of a non-AWS store (`http://127.0.0.1:9000`). Default: AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Bucket in the host name (`bucket.endpoint`) instead of the path. Default
    /// false (path style, what most self-hosted stores expect).
    #[serde(default)]
    pub virtual_hosted: bool,
    /// Key prefix inside the bucket (`brook/`), default none.
    #[serde(default)]
    pub prefix: Option<String>,
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Objects larger than this are written in parts (S3 multipart upload).
const MULTIPART_CHUNK: usize = 8 << 20;

/// [`Storage`] over the `object_store` crate: its `LocalFileSystem` or
/// `AmazonS3`, optionally under a key prefix. A `put` is a single PUT (or a
/// rename of a fully written temporary file on disk), so readers and a
/// restarted origin see whole objects or none; the disk store syncs files and
/// directories before a write returns, like a remote store's acknowledgement.
/// Temporary files of the disk store (`<name>#<n>`) are not [`Key`]s and so are
/// never listed or served.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// Shown in logs and errors.
    what: String,
}

impl ObjectStorage {
    /// A directory on the local disk, created if missing.
    pub fn local(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            op: "creating",
            key: dir.display().to_string(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| StorageError::Store {
                op: "opening",
                key: dir.display().to_string(),
                source: Box::new(e),
            })?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            what: format!("directory {}", dir.display()),
        })
    }

    /// An S3-compatible bucket.
    pub fn s3(c: &S3Config) -> Result<Self, StorageError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&c.bucket)
            .with_region(&c.region)
            .with_virtual_hosted_style_request(c.virtual_hosted);
        if let Some(endpoint) = &c.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let s3 = b.build().map_err(|e| StorageError::Store {
            op: "configuring",
            key: format!("s3 bucket {}", c.bucket),
            source: Box::new(e),
        })?;
        let what = format!(
            "s3 bucket {}{}",
            c.bucket,
            c.endpoint
                .as_deref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        );
        let store: Arc<dyn ObjectStore> = match c.prefix.as_deref().map(|p| p.trim_matches('/')) {
            Some(p) if !p.is_empty() => Arc::new(PrefixStore::new(s3, p)),
            _ => Arc::new(s3),
        };
        Ok(Self { store, what })
    }

    pub fn from_config(c: &StorageConfig) -> Result<Self, StorageError> {
        match c {
            StorageConfig::Fs { dir } => Self::local(dir),
            StorageConfig::S3(s3) => Self::s3(s3),
        }
    }

    /// The same store seen under `prefix/` (keys are relative to it).
    pub fn under(&self, prefix: &Key) -> Self {
        Self {
            store: Arc::new(PrefixStore::new(self.store.clone(), prefix.as_str())),
            what: format!("{} under {prefix}/", self.what),
        }
    }

    pub fn describe(&self) -> &str {
        &self.what
    }
}

fn store_err(op: &'static str, key: &Key, e: object_store::Error) -> StorageError {
    StorageError::Store {
        op,
        key: key.to_string(),
        source: Box::new(e),
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    async fn put(&self, key: &Key, data: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&StorePath::from(key.as_str()), data.into())
            .await
            .map(drop)
            .map_err(|e| store_err("writing", key, e))
    }

    async fn put_file(&self, key: &Key, file: &Path) -> Result<u64, StorageError> {
        let io = |op, source| StorageError::Io {
            op,
            key: file.display().to_string(),
            source,
        };
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| io("opening", e))?;
        let len = f.metadata().await.map_err(|e| io("reading", e))?.len();
        if len <= MULTIPART_CHUNK as u64 {
            let mut data = Vec::with_capacity(len as usize);
            f.read_to_end(&mut data)
                .await
                .map_err(|e| io("reading", e))?;
            let n = data.len() as u64;
            self.put(key, Bytes::from(data)).await?;
            return Ok(n);
        }
        let path = StorePath::from(key.as_str());
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| store_err("starting a multipart write of", key, e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let read = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(r) => r,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(io("reading", e));
                }
            };
            if let Err(e) = w.wait_for_capacity(4).await {
                // No half-made multipart upload left behind (S3 bills them).
                let _ = w.abort().await;
                return Err(store_err("writing a part of", key, e));
            }
            w.write(&buf[..read]);
            n += read as u64;
        }
        w.finish()
            .await
            .map_err(|e| store_err("completing the multipart write of", key, e))?;
        Ok(n)
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>, StorageError> {
        let path = StorePath::from(key.as_str());
        match self.store.get(&path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| store_err("reading", key, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err("reading", key, e)),
        }
    }

    async fn get_to_file(&self, key: &Key, file: &Path) -> Result<Option<u64>, StorageError> {
        use tokio::io::AsyncWriteExt;
        let path = StorePath::from(key.as_str());
        let got = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err("reading", key, e)),
        };
        let mut part = file.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let io = |op, source| StorageError::Io {
            op,
            key: part.display().to_string(),
            source,
        };
        let mut out = tokio::fs::File::create(&part)
            .await
            .map_err(|e| io("creating", e))?;
        let mut stream = got.into_stream();
        let mut n = 0u64;
        let copied = async {
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| store_err("reading", key, e))?
            {
                out.write_all(&chunk).await.map_err(|e| io("writing", e))?;
                n += chunk.len() as u64;
            }
            out.sync_all().await.map_err(|e| io("writing", e))?;
            Ok::<_, StorageError>(())
        }
        .await;
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, file)
            .await
            .map_err(|e| io("renaming", e))?;
        Ok(Some(n))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StorageError> {
        // object_store lists by whole path segments: list the directory part of
        // the prefix and filter on the rest.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let dir_path = (!dir.is_empty()).then(|| StorePath::from(dir));
        let metas: Vec<_> = self
            .store
            .list(dir_path.as_ref())
            .try_collect()
            .await
            .map_err(|e| StorageError::Store {
                op: "listing",
                key: prefix.to_string(),
                source: Box::new(e),
            })?;
        Ok(metas
            .into_iter()
            .filter_map(|m| Key::new(m.location.as_ref()).ok())
            .filter(|k| k.as_str().starts_with(prefix))
            .collect())
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match self.store.delete(&StorePath::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err("deleting", key, e)),
        }
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
    async fn disk_put_get_list_delete_and_no_temp_files_listed() {
        let dir = std::env::temp_dir().join(format!(
            "brook-storage-{}",
            crate::serve::hub::new_session_id()
        ));
        let s = ObjectStorage::local(&dir).unwrap();
        let k = Key::new("cam1/s1/main/seg0.m4s").unwrap();
        assert!(s.get(&k).await.unwrap().is_none());
        s.put(&k, Bytes::from_static(b"one")).await.unwrap();
        s.put(&k, Bytes::from_static(b"two")).await.unwrap();
        assert_eq!(&s.get(&k).await.unwrap().unwrap()[..], b"two");
        // What a crash mid-write leaves behind is not a key.
        std::fs::write(dir.join("cam1/s1/main/seg1.m4s#1"), b"half").unwrap();
        let keys = s.list("cam1/").await.unwrap();
        assert_eq!(keys, vec![k.clone()]);
        assert_eq!(s.list("cam1/s1/main/seg").await.unwrap(), vec![k.clone()]);
        assert!(s.list("cam2/").await.unwrap().is_empty());
        // A large file goes in parts and comes back whole.
        let big: Vec<u8> = (0..(MULTIPART_CHUNK * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let src = dir.join("big-source");
        std::fs::write(&src, &big).unwrap();
        let bk = Key::new("videos/a/big.bin").unwrap();
        assert_eq!(s.put_file(&bk, &src).await.unwrap(), big.len() as u64);
        assert_eq!(&s.get(&bk).await.unwrap().unwrap()[..], &big[..]);
        // And streams back into a file, whole; a missing key makes no file.
        let back = dir.join("big-back");
        assert_eq!(
            s.get_to_file(&bk, &back).await.unwrap(),
            Some(big.len() as u64)
        );
        assert_eq!(std::fs::read(&back).unwrap(), big);
        let none = dir.join("none-back");
        let missing = Key::new("videos/a/none.bin").unwrap();
        assert_eq!(s.get_to_file(&missing, &none).await.unwrap(), None);
        assert!(!none.exists());
        // Under a prefix.
        let under = s.under(&Key::new("videos").unwrap());
        assert_eq!(
            under.list("a/").await.unwrap(),
            vec![Key::new("a/big.bin").unwrap()]
        );
        assert_eq!(s.delete_prefix("videos/").await.unwrap(), 1);
        assert!(s.get(&bk).await.unwrap().is_none());
        s.delete(&bk).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
