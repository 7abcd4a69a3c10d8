//! WHIP sessions into the origin's streams: [`Publisher`] is the [`WhipSink`]
//! (admission by stream key, the same rules as SRT), and its
//! [`FrameSession`] the [`FrameSink`] (frames into the stream's packager).

use std::net::SocketAddr;

use brook_packager::media::{Frame, TrackInfo};
use brook_packager::UnixMillis;

use super::session::LinkStats;
use super::{FrameSink, Refusal, WhipSink};
use crate::ingest::srt::Rejection;
use crate::publish::{FrameSession, Publisher};

fn refusal(publisher: &Publisher, stream: &str, r: Rejection) -> Refusal {
    match r {
        Rejection::Unauthorized(m) => Refusal::Unauthorized(m),
        Rejection::Forbidden(m) | Rejection::BadRequest(m) => Refusal::Forbidden(m),
        // "Already has a publisher" (on_conflict = reject) is a conflict with
        // the current state of the stream; anything else is the origin's.
        Rejection::Unavailable(m) if publisher.is_publishing(stream) => Refusal::Conflict(m),
        Rejection::Unavailable(m) => Refusal::Unavailable(m),
    }
}

impl WhipSink for Publisher {
    fn authorize(&self, stream: &str, key: Option<&str>) -> Result<(), Refusal> {
        self.admit(stream, key)
            .map_err(|r| refusal(self, stream, r))
    }

    fn open(
        &self,
        stream: &str,
        key: Option<&str>,
        peer: SocketAddr,
    ) -> Result<Box<dyn FrameSink>, Refusal> {
        match self.open_frames(stream, key, peer) {
            Ok(session) => Ok(Box::new(session)),
            Err(r) => Err(refusal(self, stream, r)),
        }
    }
}

impl FrameSink for FrameSession {
    fn tracks(&mut self, tracks: Vec<TrackInfo>) -> Result<(), String> {
        FrameSession::tracks(self, tracks)
    }

    fn frame(&mut self, frame: Frame, arrived: UnixMillis) -> Result<(), String> {
        FrameSession::frame(self, frame, arrived)
    }

    fn stats(&mut self, stats: &LinkStats) {
        self.link(stats.bitrate_bps, stats.rtt_ms);
    }

    fn close(self: Box<Self>, reason: &str) {
        FrameSession::close(*self, reason);
    }
}
