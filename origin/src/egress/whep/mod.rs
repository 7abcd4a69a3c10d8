//! WHEP playback ([draft-ietf-wish-whep](https://datatracker.ietf.org/doc/draft-ietf-wish-whep/)):
//! a viewer posts an SDP offer and receives the live stream over WebRTC,
//! sub-second, from the stream's source frames (H.264 as the publisher sent
//! it, Opus when the source has it).
//!
//! ```text
//!  POST /whep/<stream> (recvonly offer)          the WHIP UDP port, shared
//!        │                                              │
//!   http::Endpoint ── sdp::check_offer ──▶ session::Viewer ◀── ingest::whip mux + socket loop
//!   (status codes, CORS, resources)        (str0m Rtc, ICE-lite,   (a `Guest` of the WHIP server)
//!                                            sendonly)
//!                                                │ frames from
//!                                  egress::feed::Subscription (bounded; a slow viewer drops)
//! ```
//!
//! Viewers share the WHIP ingest's UDP socket, demultiplexer and DTLS
//! certificate (`ingest::whip::{mux, server}`): one port to open, one
//! ICE-lite implementation. Every layer but the socket loop is sans-IO.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use brook_origin::egress::{feed::Feeds, whep::{self, WhepConfig}};
//! # fn whip() -> brook_origin::ingest::whip::WhipServer { unimplemented!() }
//! let feeds = Arc::new(Feeds::default()); // also given to the pipeline (Pipelines::set_feeds)
//! let whip = whip(); // the running WHIP ingest: its socket carries WHEP too
//! let endpoint = whep::start(&WhepConfig::default(), &whip, feeds); // for the HTTP layer
//! ```

pub mod http;
pub mod sdp;
pub mod session;

use std::sync::{Arc, Weak};

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::sync::Notify;

use crate::egress::feed::Feeds;
use crate::ingest::whip::{Guest, WhipServer};
pub use http::Endpoint;

/// `[whep]`: WebRTC playback.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhepConfig {
    /// Serve WHEP at `/whep/<stream>` (needs `[whip]`, whose UDP port it
    /// shares). Default true.
    pub enabled: bool,
    /// Concurrent WHEP viewers (connecting or watching); more are answered
    /// 503. Default 500.
    pub max_sessions: usize,
    /// Largest SDP offer accepted (larger: 413), bytes. Default 65536.
    pub max_offer_bytes: usize,
    /// Frames (audio and video) a viewer's queue holds; a viewer that falls
    /// further behind loses them and restarts at the next keyframe. Default
    /// 256 (about 3 s of 30 fps video with Opus).
    pub queue_frames: usize,
    /// A viewer whose ICE and DTLS handshakes have not completed this long
    /// after its answer is dropped, ms. Default 10000.
    pub ice_timeout_ms: u64,
}

impl Default for WhepConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_sessions: 500,
            max_offer_bytes: 64 * 1024,
            queue_frames: 256,
            ice_timeout_ms: 10_000,
        }
    }
}

impl WhepConfig {
    /// Checks values that serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_sessions == 0 {
            return Err("whep.max_sessions must be at least 1".into());
        }
        if !(1024..=1 << 20).contains(&self.max_offer_bytes) {
            return Err("whep.max_offer_bytes must be within 1024..=1048576".into());
        }
        if !(8..=100_000).contains(&self.queue_frames) {
            return Err("whep.queue_frames must be within 8..=100000".into());
        }
        if self.ice_timeout_ms < 1000 {
            return Err("whep.ice_timeout_ms must be at least 1000".into());
        }
        Ok(())
    }
}

/// Starts WHEP on `whip`'s socket: returns the endpoint for the HTTP layer.
pub fn start(config: &WhepConfig, whip: &WhipServer, feeds: Arc<Feeds>) -> Arc<Endpoint> {
    let (tx, rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    let mut session = whip.session_config();
    session.ice_timeout = std::time::Duration::from_millis(config.ice_timeout_ms);
    let settings = http::Settings {
        max_offer_bytes: config.max_offer_bytes,
        max_sessions: config.max_sessions,
        queue_frames: config.queue_frames,
    };
    let endpoint = Arc::new(Endpoint::new(feeds, session, settings, tx, wake.clone()));
    let weak: Weak<Endpoint> = Arc::downgrade(&endpoint);
    whip.host(Guest {
        commands: rx,
        wake,
        forget: Box::new(move |id| {
            if let Some(e) = weak.upgrade() {
                e.forget(id);
            }
        }),
    });
    tracing::info!(udp = %whip.local_addr(), "WHEP playback on the WHIP socket");
    endpoint
}
