//! RTMPS: the RTMP connection inside TLS (rustls, on the connection's own
//! blocking thread), so a contribution link over the internet is encrypted
//! and the stream key in the publish name is not sent in the clear.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

/// A server TLS configuration from PEM files: the certificate chain and its
/// private key. `Err` says which file and why.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(config))
}

/// A connection's byte stream: plain TCP, or TLS over it. Timeouts and
/// shutdown act on the TCP socket underneath.
///
/// TLS is driven by hand rather than with rustls' `StreamOwned`, whose
/// `read` keeps reading the socket until a whole TLS record or handshake
/// message is in: a peer trickling one byte at a time would hold a read
/// for hours and the session's deadlines would never be checked. Here each
/// `read` makes at most one socket read (bounded by its timeout) and
/// returns `WouldBlock` when that produced no plaintext yet.
pub(super) enum Io {
    Plain(TcpStream),
    Tls(Box<ServerConnection>, TcpStream),
}

impl Io {
    pub(super) fn new(tcp: TcpStream, tls: Option<&Arc<ServerConfig>>) -> io::Result<Self> {
        Ok(match tls {
            None => Io::Plain(tcp),
            Some(config) => {
                let conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
                Io::Tls(Box::new(conn), tcp)
            }
        })
    }

    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Io::Plain(s) | Io::Tls(_, s) => s,
        }
    }

    /// Ends the connection: TLS's close_notify first, then the socket.
    pub(super) fn close(&mut self) {
        if let Io::Tls(conn, sock) = self {
            conn.send_close_notify();
            let _ = flush_tls(conn, sock);
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

/// Writes out whatever TLS records are pending (blocking, bounded by the
/// socket's write timeout).
fn flush_tls(conn: &mut ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// One step of a TLS read: plaintext already decrypted, or one socket read.
fn read_tls(
    conn: &mut ServerConnection,
    sock: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    match conn.reader().read(buf) {
        Ok(n) => return Ok(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    // One socket read, bounded by the socket's read timeout.
    if conn.read_tls(sock)? == 0 {
        return Ok(0);
    }
    let state = conn.process_new_packets();
    // Handshake answers, alerts (also the one that says why it failed).
    let flushed = flush_tls(conn, sock);
    state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    flushed?;
    match conn.reader().read(buf) {
        Ok(n) => Ok(n),
        // Nothing decrypted yet: the caller checks its deadlines and comes back.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
        Err(e) => Err(e),
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(conn, sock) => read_tls(conn, sock, buf),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(conn, sock) => {
                let n = conn.writer().write(buf)?;
                flush_tls(conn, sock)?;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(conn, sock) => flush_tls(conn, sock),
        }
    }
}
