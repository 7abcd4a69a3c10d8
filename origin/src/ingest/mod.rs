//! Ingest adapters: one module per protocol, each with its socket loop apart
//! from its protocol logic, and one interface they all end in.
//!
//! Every adapter turns what its protocol says into a [`Claim`] (which stream,
//! which key, from where), asks an [`Admission`] whether it may publish, and
//! hands the admitted publisher's media to a [`Publish`]: MPEG-TS bytes (SRT),
//! or tracks and frames (WHIP, RTMP, RTSP). RTSP is the one ingest that calls
//! out (the origin plays a camera): it presents the stream's own configured
//! key, so a pulled stream goes through the same checks (conflicts, shutdown)
//! as a pushed one. What happens to the media after that (the
//! transcoder, the packager, the archive) is the pipeline's business, the same
//! for every ingest.
//!
//! ```text
//! srt/   libsrt listener ── stream id ─┐
//! whip/  HTTP offer + str0m ── path ───┼─▶ Claim ─▶ Admission::open ─▶ Box<dyn Publish>
//! rtmp/  TCP + rml_rtmp ── publish name ┤
//! rtsp/  retina pull ── configured key ┘                                 ts | tracks + frame
//! ```

pub mod rtmp;
pub mod rtsp;
pub mod srt;
pub mod whip;

use std::net::SocketAddr;

use brook_packager::media::{Frame, TrackInfo};
use brook_packager::UnixMillis;

/// The clock frame ingests put video on.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// The track list of a frame ingest (RTMP, RTSP): the video, then AAC audio
/// if there is any, as the packager's tracks 1 and 2.
pub(crate) fn video_and_aac_tracks(
    video: brook_packager::media::CodecConfig,
    aac: Option<brook_packager::codec::aac::AacConfig>,
) -> Vec<TrackInfo> {
    let mut tracks = vec![TrackInfo {
        id: 1,
        timescale: VIDEO_TIMESCALE,
        codec: video,
    }];
    if let Some(aac) = aac {
        tracks.push(TrackInfo {
            id: 2,
            timescale: aac.sample_rate,
            codec: brook_packager::media::CodecConfig::Aac(aac),
        });
    }
    tracks
}

/// The protocol a publisher came in over (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Srt,
    Whip,
    Rtmp,
    Rtsp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Srt => "srt",
            Protocol::Whip => "whip",
            Protocol::Rtmp => "rtmp",
            Protocol::Rtsp => "rtsp",
        }
    }
}

/// What a publisher asks for, whatever the protocol: to publish `stream` with
/// `key`, from `peer`.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub stream: &'a str,
    pub key: Option<&'a str>,
    pub peer: SocketAddr,
    pub protocol: Protocol,
}

/// Why a publisher is refused. Each adapter maps it onto its protocol (an SRT
/// reject code, an HTTP status); the text is for Brook's logs only and never
/// sent to the publisher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An unknown stream, no key, or a wrong key: one answer for all three, so
    /// a publisher cannot learn which stream names exist.
    #[error("denied: {0}")]
    Denied(String),
    /// The stream already has a publisher (`publish.on_conflict = "reject"`).
    #[error("busy: {0}")]
    Busy(String),
    /// The origin cannot take it now (shutting down).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// How a stream's publishers must protect their link, for the ingests whose
/// transport can encrypt (SRT's AES today).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkEncryption {
    /// The shared secret the link keys derive from. Never logged.
    pub passphrase: String,
    /// A publisher sending in the clear is refused; otherwise it may publish
    /// in the clear, and only one with another passphrase is refused.
    pub required: bool,
}

impl std::fmt::Debug for LinkEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEncryption")
            .field("passphrase", &"<redacted>")
            .field("required", &self.required)
            .finish()
    }
}

/// Decides who may publish, and starts their sessions. Implemented by the
/// pipeline; called by every ingest adapter.
pub trait Admission: Send + Sync + 'static {
    /// May this claim publish now? Quick and non-blocking: SRT asks from
    /// inside libsrt's handshake callback.
    fn admit(&self, claim: &Claim<'_>) -> Result<(), Refusal>;

    /// The connection is established: checks again and starts (or resumes,
    /// within the reconnect grace period) the stream.
    fn open(&self, claim: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal>;

    /// The link encryption stream `stream` asks of its publishers; `None`: in
    /// the clear. Asked only for a claim that was admitted.
    fn link_encryption(&self, stream: &str) -> Option<LinkEncryption> {
        let _ = stream;
        None
    }
}

/// Why a [`Publish`] call refused more media: stop feeding and `close`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// Another publisher took the stream over, or the admin API kicked this one.
    #[error("another publisher took over, or the publisher was kicked")]
    Replaced,
    /// The stream was ended (admin API, shutdown).
    #[error("the stream was ended")]
    Ended,
    /// The input cannot be packaged (not MPEG-TS, no supported stream).
    #[error("input refused: {0}")]
    Refused(#[from] brook_packager::Error),
}

/// Link figures an adapter reports now and then, counted since the
/// connection started (`None`: the protocol does not tell).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    /// Receive rate over the last interval, bits per second.
    pub bitrate_bps: f64,
    pub rtt_ms: Option<f64>,
    pub packets_received: Option<u64>,
    pub packets_lost: Option<u64>,
    pub packets_retransmitted: Option<u64>,
    /// Given up on: never delivered.
    pub packets_dropped: Option<u64>,
}

/// One admitted publisher's media, into its stream's pipeline. All calls come
/// from one thread, in order; `close` comes exactly once.
pub trait Publish: Send {
    /// MPEG-TS bytes as received, and when they arrived.
    fn ts(&mut self, bytes: &[u8], arrived: UnixMillis) -> Result<(), Stop>;
    /// The track list, before the first frame and again on a decoder
    /// configuration change (frame ingests).
    fn tracks(&mut self, tracks: Vec<TrackInfo>) -> Result<(), Stop>;
    /// One frame in decoding order within its track, and when it arrived.
    fn frame(&mut self, frame: Frame, arrived: UnixMillis) -> Result<(), Stop>;
    /// Whether a viewer of the stream needs a keyframe the publisher should be
    /// asked for now (WebRTC viewers joining or recovering; the answer is
    /// already coalesced, so an ingest that can ask does so whenever this
    /// says true). Ingests that cannot ask never call it.
    fn keyframe_wanted(&mut self, _now: std::time::Instant) -> bool {
        false
    }
    /// Link statistics, about once a second.
    fn link(&mut self, _stats: &LinkStats) {}
    /// The connection ended; `reason` is for logs.
    fn close(self: Box<Self>, reason: &str);
}
