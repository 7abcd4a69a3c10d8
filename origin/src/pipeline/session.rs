//! One admitted publisher connection, whatever its protocol: media into its
//! stream's [`Live`], link figures into the stream's counters.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use brook_packager::media::{Frame, TrackInfo};
use brook_packager::UnixMillis;
use tracing::{info, warn};

use super::live::Live;
use super::{lock, Pipelines};
use crate::egress::feed::Feed;
use crate::ingest::{Claim, LinkStats, Protocol, Publish, Stop};
use crate::serve::hub::Stream;

/// A publisher connection (the [`Publish`] an ingest adapter feeds).
pub struct PublishSession {
    pipelines: Pipelines,
    live: Arc<Mutex<Live>>,
    generation: u64,
    stream: Arc<Stream>,
    session: String,
    peer: SocketAddr,
    protocol: Protocol,
    started: Instant,
    bytes: u64,
    /// The link's totals at the previous report (they count from connect;
    /// the stream's counters span reconnects).
    last_link: LinkStats,
    /// The stream's real-time feed: its viewers' keyframe requests.
    feed: Option<Arc<Feed>>,
}

impl PublishSession {
    pub(super) fn new(
        pipelines: Pipelines,
        live: Arc<Mutex<Live>>,
        generation: u64,
        claim: &Claim<'_>,
    ) -> Self {
        let (stream, session, feed) = {
            let l = lock(&live);
            (
                l.stream().clone(),
                l.session().to_string(),
                l.feed().cloned(),
            )
        };
        Self {
            pipelines,
            live,
            generation,
            stream,
            session,
            peer: claim.peer,
            protocol: claim.protocol,
            started: Instant::now(),
            bytes: 0,
            last_link: LinkStats::default(),
            feed,
        }
    }

    fn current(&self) -> Result<MutexGuard<'_, Live>, Stop> {
        let l = lock(&self.live);
        l.current(self.generation)?;
        Ok(l)
    }

    fn count(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        if let Ok(mut st) = self.stream.stats.lock() {
            st.bytes += bytes as u64;
        }
    }
}

impl Publish for PublishSession {
    fn ts(&mut self, bytes: &[u8], arrived: UnixMillis) -> Result<(), Stop> {
        self.count(bytes.len());
        self.current()?.push_ts(bytes, arrived)
    }

    fn tracks(&mut self, tracks: Vec<TrackInfo>) -> Result<(), Stop> {
        self.current()?.push_tracks(tracks, crate::unix_now());
        Ok(())
    }

    fn frame(&mut self, frame: Frame, arrived: UnixMillis) -> Result<(), Stop> {
        self.count(frame.data.len());
        self.current()?.push_frame(frame, arrived);
        Ok(())
    }

    fn keyframe_wanted(&mut self, now: Instant) -> bool {
        self.feed
            .as_ref()
            .is_some_and(|f| f.take_keyframe_request(now))
    }

    fn link(&mut self, stats: &LinkStats) {
        let prev = self.last_link;
        let delta = |now: Option<u64>, before: Option<u64>| {
            now.unwrap_or(0).saturating_sub(before.unwrap_or(0))
        };
        if let Ok(mut st) = self.stream.stats.lock() {
            st.bitrate_bps = stats.bitrate_bps;
            if let Some(rtt) = stats.rtt_ms {
                st.rtt_ms = rtt;
            }
            st.packets_received += delta(stats.packets_received, prev.packets_received);
            st.packets_lost += delta(stats.packets_lost, prev.packets_lost);
            st.packets_retransmitted +=
                delta(stats.packets_retransmitted, prev.packets_retransmitted);
            st.packets_dropped += delta(stats.packets_dropped, prev.packets_dropped);
        }
        self.last_link = *stats;
    }

    fn close(self: Box<Self>, reason: &str) {
        let (p, failed) = {
            let l = lock(&self.live);
            (l.packager_stats(), l.failed())
        };
        info!(
            stream = %self.stream.name,
            peer = %self.peer,
            session = %self.session,
            protocol = self.protocol.as_str(),
            seconds = self.started.elapsed().as_secs(),
            bytes = self.bytes,
            segments = p.segments,
            continuity_errors = p.demux.continuity_errors,
            dropped_frames = p.frames.dropped_video + p.frames.dropped_audio,
            lost_packets = self.last_link.packets_lost.unwrap_or(0),
            "publish ended: {reason}"
        );
        if failed {
            warn!(stream = %self.stream.name, "input refused; the session ends without a grace period");
        }
        self.pipelines.detach(&self.live, self.generation);
    }
}
