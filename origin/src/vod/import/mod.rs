//! Assets from a URL: the fetch. The API checks an input URL (`check`) and
//! queues the asset; its process job (`worker.rs`) calls [`fetch`] to bring
//! the file into the job's work directory, where the upload path's probe,
//! transcode and packaging take it as they take an uploaded file.
//!
//! ```text
//! fetch(url) ─▶ check_literal ─▶ GET (no proxy, redirects not followed by reqwest)
//!     name ─▶ CheckedResolver: resolve, check every address, connect only to those
//!     301/302/303/307/308 ─▶ check::redirect_target ─▶ the next hop (at most N)
//!     2xx ─▶ <dest>.part (at most max_bytes, within the budget) ─▶ fsync ─▶ rename to <dest>
//! ```
//!
//! The addresses a name resolves to are checked in the resolver reqwest
//! connects through, so the connection goes to an address that was checked:
//! a name that answers differently a second time (DNS rebinding) cannot
//! slip a private address in between a check and the connect.

pub mod check;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::io::AsyncWriteExt;
use url::Url;

pub use check::UrlRefusal;

/// What a fetch may take, from `[vod]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest body, bytes.
    pub max_bytes: u64,
    /// The whole fetch: every hop, every byte.
    pub budget: Duration,
    pub connect_timeout: Duration,
    /// The longest wait for the next bytes.
    pub read_timeout: Duration,
    pub max_redirects: u32,
    /// Connect to non-public addresses too (tests, closed networks).
    pub allow_private: bool,
}

impl Limits {
    pub fn from_config(c: &super::VodConfig) -> Self {
        Limits {
            max_bytes: c.import_max_bytes.unwrap_or(c.max_upload_bytes),
            budget: Duration::from_secs(c.import_timeout_s),
            connect_timeout: Duration::from_secs(c.import_connect_timeout_s),
            read_timeout: Duration::from_secs(c.import_read_timeout_s),
            max_redirects: c.import_max_redirects,
            allow_private: c.import_allow_private,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{0}")]
    Refused(#[from] UrlRefusal),
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the download did not finish within {0} s")]
    Budget(u64),
    /// Connecting, or the connection failed: may work later.
    #[error("fetching {url}: {reason}")]
    Network { url: String, reason: String },
    /// Writing the file (this machine's disk).
    /// (The path stays in the log; the asset's error says only that this
    /// machine's disk failed.)
    #[error("writing the file on the origin failed: {reason}")]
    Disk { path: String, reason: String },
    /// The job was told to stop (the origin stops, or its lease was lost).
    #[error("stopped")]
    Stopped,
}

impl FetchError {
    /// Whether the same fetch may well succeed later (a server or network
    /// failure, this machine's disk, a stop) rather than never (a refusal,
    /// a 404, a file too large).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            FetchError::Network { .. } | FetchError::Disk { .. } | FetchError::Stopped => true,
            // A name that does not resolve now (SERVFAIL, a DNS timeout)
            // may later; an address Brook does not connect to never will.
            FetchError::Refused(UrlRefusal::Unresolved { .. }) => true,
            FetchError::Refused(_)
            | FetchError::TooManyRedirects(_)
            | FetchError::TooLarge { .. }
            | FetchError::Budget(_) => false,
        }
    }
}

/// A fetched file.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL the body came from (after redirects).
    pub url: String,
    pub bytes: u64,
    pub redirects: u32,
}

/// Checks the URL's host before an asset is made of it: a literal address,
/// or every address its name resolves to now (the fetch checks again, on
/// every hop). `Err` is the API's 422.
pub async fn precheck(url: &Url, allow_private: bool, timeout: Duration) -> Result<(), UrlRefusal> {
    if check::check_literal(url, allow_private)?.is_some() {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let addrs = resolve(&host, timeout).await?;
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    check::check_addrs(&host, &ips, allow_private)
}

async fn resolve(host: &str, timeout: Duration) -> Result<Vec<SocketAddr>, UrlRefusal> {
    let unresolved = |reason: String| UrlRefusal::Unresolved {
        host: host.to_owned(),
        reason,
    };
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(e)) => Err(unresolved(e.to_string())),
        Err(_) => Err(unresolved(format!("no answer within {timeout:?}"))),
    }
}

/// reqwest's resolver for one fetch: the system's, then [`check::check_addrs`];
/// a refusal is kept for the error the fetch reports (reqwest's own would
/// only say "error sending request").
struct CheckedResolver {
    allow_private: bool,
    timeout: Duration,
    refused: Arc<Mutex<Option<UrlRefusal>>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let (allow_private, timeout, refused) =
            (self.allow_private, self.timeout, self.refused.clone());
        Box::pin(async move {
            let checked = async {
                let addrs = resolve(&host, timeout).await?;
                let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
                check::check_addrs(&host, &ips, allow_private)?;
                Ok::<_, UrlRefusal>(addrs)
            }
            .await;
            match checked {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(e) => {
                    if let Ok(mut slot) = refused.lock() {
                        *slot = Some(e.clone());
                    }
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// Fetches `url` into `dest` (through `<dest>.part`, renamed when complete:
/// `dest` exists only whole; nothing is left behind on failure). `stop` is
/// looked at between chunks.
pub async fn fetch(
    url: &Url,
    limits: &Limits,
    dest: &Path,
    stop: &AtomicBool,
) -> Result<Fetched, FetchError> {
    let part = part_path(dest);
    let out = match tokio::time::timeout(limits.budget, fetch_to(url, limits, &part, stop)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Budget(limits.budget.as_secs())),
    };
    let mut done = out;
    if done.is_ok() {
        if let Err(e) = tokio::fs::rename(&part, dest).await {
            done = Err(FetchError::Disk {
                path: dest.display().to_string(),
                reason: e.to_string(),
            });
        }
    }
    if done.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    done
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// reqwest's error with its causes (its own text alone is "error sending
/// request"), without the URL (the caller names it once).
fn reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

async fn fetch_to(
    first: &Url,
    limits: &Limits,
    part: &Path,
    stop: &AtomicBool,
) -> Result<Fetched, FetchError> {
    let refused = Arc::new(Mutex::new(None));
    let client = reqwest::Client::builder()
        // Each redirect is looked at here (its scheme, its host) before it
        // is followed; an environment proxy would connect for us, to
        // addresses never checked.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(limits.connect_timeout)
        .read_timeout(limits.read_timeout)
        .user_agent(concat!(
            "brook-origin/",
            env!("CARGO_PKG_VERSION"),
            " (asset import)"
        ))
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: limits.allow_private,
            timeout: limits.connect_timeout,
            refused: refused.clone(),
        }))
        .build()
        .map_err(|e| FetchError::Network {
            url: first.to_string(),
            reason: format!("building the HTTP client: {}", reason(e)),
        })?;
    let mut url = first.clone();
    let mut redirects = 0;
    let resp = loop {
        check::check_literal(&url, limits.allow_private)?;
        // What the resolver refuses for this request (not an earlier one).
        if let Ok(mut slot) = refused.lock() {
            slot.take();
        }
        let sent = client.get(url.clone()).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if let Some(r) = refused.lock().ok().and_then(|mut s| s.take()) {
                    return Err(r.into());
                }
                return Err(FetchError::Network {
                    url: url.to_string(),
                    reason: reason(e),
                });
            }
        };
        let status = resp.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            if redirects >= limits.max_redirects {
                return Err(FetchError::TooManyRedirects(limits.max_redirects));
            }
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            url = check::redirect_target(&url, location)?;
            redirects += 1;
            continue;
        }
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
            });
        }
        break resp;
    };
    let bytes = write_body(resp, &url, limits.max_bytes, part, stop).await?;
    Ok(Fetched {
        url: url.to_string(),
        bytes,
        redirects,
    })
}

async fn write_body(
    mut resp: reqwest::Response,
    url: &Url,
    max_bytes: u64,
    part: &Path,
    stop: &AtomicBool,
) -> Result<u64, FetchError> {
    // Refused before a byte is read when the server says how much is coming.
    if resp.content_length().is_some_and(|n| n > max_bytes) {
        return Err(FetchError::TooLarge { limit: max_bytes });
    }
    let disk = |e: std::io::Error| FetchError::Disk {
        path: part.display().to_string(),
        reason: e.to_string(),
    };
    let mut file = tokio::fs::File::create(part).await.map_err(disk)?;
    let mut written: u64 = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(FetchError::Stopped);
        }
        let chunk = resp.chunk().await.map_err(|e| FetchError::Network {
            url: url.to_string(),
            reason: reason(e),
        })?;
        let Some(chunk) = chunk else { break };
        written = written.saturating_add(chunk.len() as u64);
        if written > max_bytes {
            return Err(FetchError::TooLarge { limit: max_bytes });
        }
        file.write_all(&chunk).await.map_err(disk)?;
    }
    // On disk before the job goes on (and before `dest` names it).
    file.sync_all().await.map_err(disk)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_into_retry_and_give_up() {
        let status = |status| FetchError::Status {
            url: "http://h/".into(),
            status,
        };
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(status(s).is_transient(), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 451, 300, 304] {
            assert!(!status(s).is_transient(), "{s}");
        }
        assert!(!FetchError::TooLarge { limit: 1 }.is_transient());
        assert!(!FetchError::Budget(1).is_transient());
        assert!(!FetchError::TooManyRedirects(5).is_transient());
        assert!(!FetchError::Refused(UrlRefusal::Credentials).is_transient());
        assert!(FetchError::Stopped.is_transient());
        assert_eq!(status(404).to_string(), "http://h/ answered HTTP 404");
    }

    fn limits(allow_private: bool) -> Limits {
        Limits {
            max_bytes: 1 << 20,
            budget: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_redirects: 2,
            allow_private,
        }
    }

    /// The refusals come from Brook's own checks, not from a connection
    /// that failed: a literal address before the request, a name in the
    /// resolver reqwest connects through (its refusal reported as such,
    /// not as reqwest's "error sending request"). Nothing is written.
    #[tokio::test]
    async fn private_hosts_are_refused_before_any_connection() {
        // As brook-origin's main does (reqwest is built without a provider).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!(
            "brook-import-{}",
            crate::serve::hub::new_session_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("source");
        let stop = AtomicBool::new(false);
        for (url, why) in [
            ("http://127.0.0.1:9/a.mp4", "loopback"),
            ("http://[::ffff:10.0.0.1]:9/a.mp4", "RFC 1918"),
            ("http://localhost:9/a.mp4", "loopback"),
        ] {
            let url = check::parse_input_url(url).unwrap();
            match fetch(&url, &limits(false), &dest, &stop).await {
                Err(FetchError::Refused(UrlRefusal::Address { why: got, .. })) => {
                    assert!(got.contains(why), "{url}: {got}")
                }
                other => panic!("{url}: {other:?}"),
            }
            assert!(!dest.exists() && !part_path(&dest).exists());
        }
        // The same name with private addresses allowed gets as far as
        // connecting (nothing listens on the discard port).
        let url = check::parse_input_url("http://localhost:9/a.mp4").unwrap();
        let e = fetch(&url, &limits(true), &dest, &stop).await.unwrap_err();
        assert!(matches!(e, FetchError::Network { .. }), "{e:?}");
        assert!(e.is_transient());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_partial_file_sits_next_to_the_destination() {
        assert_eq!(
            part_path(Path::new("/d/work/a1/source")),
            Path::new("/d/work/a1/source.part")
        );
    }
}
