//! WHIP ingest ([RFC 9725](https://www.rfc-editor.org/rfc/rfc9725)): a browser
//! (or OBS, or GStreamer) publishes over WebRTC; its H.264 and Opus frames go
//! into the same packager as SRT's.
//!
//! ```text
//!  POST /whip/<stream> (SDP offer, Bearer key)      UDP, one port for every session
//!        │                                                   │
//!   http::Endpoint ── sdp::check_offer ──▶ session::Session ◀── mux::Mux (demux by ICE
//!   (status codes, CORS,                  (str0m Rtc, ICE-lite;   ufrag, then by address;
//!    resources, PATCH, DELETE)             frames::Frames)         timeouts) ◀── server (socket loop)
//!                                                │
//!                          ingest::Admission::open ─▶ ingest::Publish (the stream's pipeline)
//! ```
//!
//! Every layer but `server` is sans-IO: time comes in as an argument, datagrams
//! come in as bytes and go out through `poll_transmit`, so the whole path runs
//! in tests on simulated time against a str0m peer playing the browser
//! (`origin/tests/whip_session.rs`). The WebRTC stack is str0m; see
//! `docs/whip.md` for why, and for what is and is not supported.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! # use brook_origin::ingest::whip::{self, WhipConfig};
//! # fn sink() -> Arc<dyn brook_origin::ingest::Admission> { unimplemented!() }
//! let segment_target = Duration::from_secs(2); // the packager's: IDRs are requested for it
//! let server = whip::start(&WhipConfig::default(), segment_target, sink())?;
//! let endpoint = server.endpoint(); // for the HTTP layer: /whip/... requests
//! // ... until shutdown:
//! server.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod frames;
pub mod http;
pub mod mux;
pub mod sdp;
mod server;
pub mod session;
pub mod sim;
pub mod stun;

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

pub use http::{Endpoint, EndpointSettings, WhipReply, WhipRequest};
pub use server::{start, Guest, GuestCommand, WhipServer};

/// `[whip]`: WebRTC ingest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhipConfig {
    /// Serve WHIP at `/whip/<stream>`. Default true.
    pub enabled: bool,
    /// UDP address every WebRTC session shares (ICE-lite, demultiplexed by ICE
    /// username, then by the peer's address). Default `0.0.0.0:8189`.
    pub listen: SocketAddr,
    /// Addresses put in the SDP answer as host candidates: `"203.0.113.7"`
    /// (with `listen`'s port) or `"203.0.113.7:8189"`, e.g. the public address
    /// of a server behind 1:1 NAT. Default: `listen`'s address when it is not
    /// unspecified; otherwise the address of the default route's interface and
    /// 127.0.0.1.
    pub candidates: Vec<String>,
    /// STUN/TURN servers offered to clients as `Link: <url>; rel="ice-server"`
    /// headers (RFC 9725 §4.6). ICE-lite does not need them; clients behind
    /// restrictive firewalls may (TURN). Default: none.
    pub ice_servers: Vec<IceServer>,
    /// A session whose ICE and DTLS handshakes have not completed this long
    /// after its answer is dropped, ms. Default 10000.
    pub ice_timeout_ms: u64,
    /// A connected session that delivers no media for this long is ended, ms.
    /// Default 5000.
    pub media_timeout_ms: u64,
    /// How long a video or audio frame with missing packets waits for
    /// retransmissions (NACK) before it is dropped and, for video, an IDR is
    /// requested: loss recovery against latency, ms. Default 500.
    pub jitter_buffer_ms: u64,
    /// Largest SDP offer accepted (larger: 413), bytes. Default 65536.
    pub max_offer_bytes: usize,
    /// Concurrent WHIP sessions (connecting or live); more are answered 503.
    /// Default 64.
    pub max_sessions: usize,
}

impl Default for WhipConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            candidates: Vec::new(),
            ice_servers: Vec::new(),
            ice_timeout_ms: 10_000,
            media_timeout_ms: 5_000,
            jitter_buffer_ms: 500,
            max_offer_bytes: 64 * 1024,
            max_sessions: 64,
        }
    }
}

/// One STUN or TURN server for clients.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URIs (RFC 7064, RFC 7065). Required.
    pub urls: Vec<String>,
    /// TURN username. Default: none.
    #[serde(default)]
    pub username: Option<String>,
    /// TURN password. Default: none.
    #[serde(default)]
    pub credential: Option<String>,
}

impl WhipConfig {
    /// Checks values that serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.ice_timeout_ms < 1000 {
            return Err("whip.ice_timeout_ms must be at least 1000".into());
        }
        if self.media_timeout_ms < 1000 {
            return Err("whip.media_timeout_ms must be at least 1000".into());
        }
        if self.jitter_buffer_ms > 5000 {
            return Err("whip.jitter_buffer_ms must be at most 5000".into());
        }
        if !(1024..=1 << 20).contains(&self.max_offer_bytes) {
            return Err("whip.max_offer_bytes must be within 1024..=1048576".into());
        }
        if self.max_sessions == 0 {
            return Err("whip.max_sessions must be at least 1".into());
        }
        for c in &self.candidates {
            parse_candidate(c, self.listen.port())
                .ok_or_else(|| format!("whip.candidates: {c:?} is not an IP or IP:port"))?;
        }
        for s in &self.ice_servers {
            if s.urls.is_empty() {
                return Err("whip.ice_servers: an entry has no urls".into());
            }
            for u in &s.urls {
                let scheme = u.split(':').next().unwrap_or("");
                if !["stun", "stuns", "turn", "turns"].contains(&scheme)
                    || u.chars()
                        .any(|c| c.is_ascii_control() || c == '>' || c == '"')
                {
                    return Err(format!("whip.ice_servers: {u:?} is not a stun:/turn: URI"));
                }
            }
            for v in [&s.username, &s.credential].into_iter().flatten() {
                if v.chars()
                    .any(|c| c.is_ascii_control() || c == '"' || c == '\\')
                {
                    return Err(
                        "whip.ice_servers: username/credential with quotes or control characters"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The host candidates to advertise (see `candidates`), given the port the
    /// socket is bound to.
    pub fn candidate_addrs(&self, bound: SocketAddr) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self
            .candidates
            .iter()
            .filter_map(|c| parse_candidate(c, bound.port()))
            .collect();
        if out.is_empty() {
            if bound.ip().is_unspecified() {
                if let Some(ip) = default_route_ip(bound.is_ipv6()) {
                    out.push(SocketAddr::new(ip, bound.port()));
                }
                out.push(SocketAddr::from(([127, 0, 0, 1], bound.port())));
            } else {
                out.push(bound);
            }
        }
        out.dedup();
        out
    }
}

fn parse_candidate(text: &str, port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            text.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port))
        })
        .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
}

/// The local address the kernel would use for the default route (a connected
/// UDP socket sends nothing).
fn default_route_ip(v6: bool) -> Option<IpAddr> {
    let (bind, probe) = if v6 {
        ("[::]:0", "[2001:db8::1]:9")
    } else {
        ("0.0.0.0:0", "192.0.2.1:9")
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(probe).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn whip_section_parses_validates_and_rejects_unknown_keys() {
        let c = Config::from_toml(
            "[whip]\nlisten = \"0.0.0.0:9189\"\ncandidates = [\"203.0.113.7\", \"198.51.100.2:7000\"]\n\
             [[whip.ice_servers]]\nurls = [\"turn:turn.example.net?transport=udp\"]\n\
             username = \"u\"\ncredential = \"p\"\n",
            "t",
        )
        .unwrap();
        let bound: SocketAddr = "0.0.0.0:9189".parse().unwrap();
        assert_eq!(
            c.whip.candidate_addrs(bound),
            [
                "203.0.113.7:9189".parse::<SocketAddr>().unwrap(),
                "198.51.100.2:7000".parse().unwrap()
            ]
        );
        assert_eq!(c.whip.ice_servers[0].username.as_deref(), Some("u"));
        for bad in [
            "[whip]\nport = 1\n",
            "[whip]\ncandidates = [\"example.com\"]\n",
            "[whip]\ncandidates = [\"0.0.0.0\"]\n",
            "[whip]\nice_timeout_ms = 10\n",
            "[whip]\nmax_offer_bytes = 10\n",
            "[whip]\nmax_sessions = 0\n",
            "[[whip.ice_servers]]\nurls = [\"http://x\"]\n",
            "[[whip.ice_servers]]\nurls = []\n",
            "[[whip.ice_servers]]\nurls = [\"stun:x\"]\nusername = \"a\\\"b\"\n",
        ] {
            assert!(Config::from_toml(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn default_candidates() {
        let c = WhipConfig::default();
        let specific: SocketAddr = "192.0.2.10:8189".parse().unwrap();
        assert_eq!(c.candidate_addrs(specific), [specific]);
        let any: SocketAddr = "0.0.0.0:8189".parse().unwrap();
        let addrs = c.candidate_addrs(any);
        assert!(
            addrs.contains(&"127.0.0.1:8189".parse().unwrap()),
            "{addrs:?}"
        );
        assert!(addrs
            .iter()
            .all(|a| a.port() == 8189 && !a.ip().is_unspecified()));
    }
}
