//! One WHIP session: a str0m `Rtc` in ICE-lite mode that receives H.264 and
//! Opus, and hands its frames ([`super::frames`]) to a [`FrameSink`] once ICE
//! and DTLS have completed.
//!
//! Lifecycle: `Connecting` (answer sent; ends after `ice_timeout` without a
//! completed ICE + DTLS handshake) → `Live` (frames flow; ends when the ICE
//! consent lapses, no media comes for `media_timeout`, the sink refuses, or the
//! client sends `DELETE`) → `Ended`.
//!
//! Drive contract (sans-IO, as str0m's): after `new`, and after every
//! [`Session::handle_datagram`] / [`Session::handle_timeout`], take
//! [`Session::poll_transmit`] until `None`, and call `handle_timeout` again at
//! [`Session::deadline`]. Nothing here reads a clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_packager::UnixMillis;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tracing::{debug, info, warn};

use super::frames::{
    FrameIn, Frames, FramesConfig, FramesStats, Output as FrameOut, SenderClock, Track,
};
use super::sdp::{self, Accepted, OfferError};
use crate::ingest::{self, Admission, Claim, Publish};

/// How often link statistics go to the sink.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What every session shares.
#[derive(Clone)]
pub struct SessionConfig {
    pub crypto: Arc<CryptoProvider>,
    /// One DTLS certificate for all sessions (generating one per session costs
    /// an EC key generation; the fingerprint is in each answer anyway).
    pub cert: DtlsCert,
    /// Host candidates put in every answer.
    pub candidates: Vec<SocketAddr>,
    pub ice_timeout: Duration,
    pub media_timeout: Duration,
    /// How long a frame with missing packets waits for retransmissions.
    pub jitter_buffer: Duration,
    pub frames: FramesConfig,
}

impl SessionConfig {
    /// With the build's crypto backend and a fresh certificate.
    pub fn new(candidates: Vec<SocketAddr>) -> Result<Self, String> {
        let crypto = str0m::crypto::from_feature_flags();
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or("generating the DTLS certificate failed")?;
        Ok(Self {
            crypto: Arc::new(crypto),
            cert,
            candidates,
            ice_timeout: Duration::from_secs(10),
            media_timeout: Duration::from_secs(5),
            jitter_buffer: Duration::from_millis(500),
            frames: FramesConfig::default(),
        })
    }
}

/// Link statistics for the sink (and the stream's admin view).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    /// Media bytes per second over the last interval, as bits.
    pub bitrate_bps: f64,
    pub rtt_ms: Option<f64>,
    /// Fraction of packets lost in the last receiver-report interval (0..1).
    pub loss: Option<f32>,
    pub nacks: u64,
    pub keyframe_requests: u64,
    pub frames: FramesStats,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Connecting,
    Live,
    Ended(String),
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub destination: SocketAddr,
    pub data: Vec<u8>,
}

pub struct Session {
    id: String,
    stream: String,
    key: Option<String>,
    rtc: Rtc,
    local_ufrag: String,
    frames: Frames,
    mids: Vec<(Mid, Track)>,
    state: State,
    admission: Arc<dyn Admission>,
    sink: Option<Box<dyn Publish>>,
    out: VecDeque<Datagram>,
    rtc_deadline: Instant,
    created: Instant,
    /// The latest time handed in (this module never reads the clock).
    now: Instant,
    ice_timeout: Duration,
    media_timeout: Duration,
    last_media: Instant,
    peer: Option<SocketAddr>,
    next_stats: Instant,
    stats_bytes: u64,
    link: LinkStats,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("stream", &self.stream)
            .field("state", &self.state)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Session {
    /// Accepts a checked offer ([`sdp::check_offer`]); returns the session and
    /// the SDP answer. `now_unix` is the wall clock at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        stream: String,
        key: Option<String>,
        offer: SdpOffer,
        accepted: Accepted,
        config: &SessionConfig,
        admission: Arc<dyn Admission>,
        now: Instant,
        now_unix: UnixMillis,
    ) -> Result<(Session, String), OfferError> {
        let creds = IceCreds::new();
        let local_ufrag = creds.ufrag.clone();
        let mut rtc_config = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .set_crypto_provider(config.crypto.clone())
            .set_dtls_cert(config.cert.clone())
            .set_stats_interval(Some(STATS_INTERVAL))
            // A frame with a packet missing waits this long for retransmission,
            // then is dropped (and an IDR requested): latency over completeness.
            .set_reordering_timeout_video(Some(config.jitter_buffer))
            .set_reordering_timeout_audio(Some(config.jitter_buffer))
            // Room for a whole 1080p IDR (str0m's default, 30 packets, is not).
            .set_reordering_size_video(400)
            .clear_codecs();
        sdp::configure_codecs(rtc_config.codec_config());
        let mut rtc = rtc_config.build(now);
        for addr in &config.candidates {
            let c = Candidate::host(*addr, "udp")
                .map_err(|e| OfferError::Unacceptable(format!("host candidate {addr}: {e}")))?;
            rtc.add_local_candidate(c);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::Unacceptable(format!("cannot answer the offer: {e}")))?;
        let answer = answer.to_sdp_string();
        // Brook's policy chose H.264; str0m must have too (a rejected video
        // section has port 0).
        if !answer.contains("m=video 9 ") {
            return Err(OfferError::Unacceptable(
                "the video section could not be accepted with H.264".into(),
            ));
        }
        let mut session = Session {
            id,
            stream,
            key,
            rtc,
            local_ufrag,
            frames: Frames::new(config.frames, accepted.audio_pt.is_some(), now, now_unix),
            mids: Vec::new(),
            state: State::Connecting,
            admission,
            sink: None,
            out: VecDeque::new(),
            rtc_deadline: now,
            created: now,
            now,
            ice_timeout: config.ice_timeout,
            media_timeout: config.media_timeout,
            last_media: now,
            peer: None,
            next_stats: now + STATS_INTERVAL,
            stats_bytes: 0,
            link: LinkStats::default(),
        };
        session.drain(now);
        Ok((session, answer))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The ICE username fragment in this session's answer: binding requests
    /// for this session carry it as the first half of `USERNAME`.
    pub fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    pub fn link_stats(&self) -> LinkStats {
        let mut link = self.link;
        link.frames = self.frames.stats();
        link
    }

    /// Whether str0m claims this datagram (by ICE ufrag for STUN, else by the
    /// nominated or a checked remote address).
    pub fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        match receive(source, destination, data) {
            Some(r) => self.rtc.accepts(&Input::Receive(now, r)),
            None => false,
        }
    }

    /// A datagram from `source` (routed here by the mux) to `destination` (the
    /// host candidate it was sent to).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        self.now = self.now.max(now);
        let Some(r) = receive(source, destination, data) else {
            return; // neither STUN, DTLS, RTP nor RTCP
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, r)) {
            debug!(session = %self.id, %source, "datagram refused: {e}");
        }
        self.drain(now);
    }

    /// Time passed: retransmissions, consent, statistics, timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        self.now = self.now.max(now);
        if now >= self.rtc_deadline {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.end(format!("WebRTC error: {e}"));
                return;
            }
        }
        self.frames.tick(now);
        self.drain(now);
        match self.state {
            State::Connecting if now >= self.created + self.ice_timeout => {
                self.end(format!(
                    "ICE/DTLS did not complete within {} ms",
                    self.ice_timeout.as_millis()
                ));
            }
            State::Live if now >= self.last_media + self.media_timeout => {
                self.end(format!(
                    "no media for {} ms",
                    self.media_timeout.as_millis()
                ));
            }
            _ => {}
        }
        if self.state == State::Live && now >= self.next_stats {
            self.next_stats = now + STATS_INTERVAL;
            let bytes = self.frames.stats().bytes;
            self.link.bitrate_bps =
                (bytes - self.stats_bytes) as f64 * 8.0 / STATS_INTERVAL.as_secs_f64();
            self.stats_bytes = bytes;
            let link = self.link_stats();
            if let Some(sink) = &mut self.sink {
                sink.link(&crate::ingest::LinkStats {
                    bitrate_bps: link.bitrate_bps,
                    rtt_ms: link.rtt_ms,
                    ..Default::default()
                });
            }
        }
    }

    /// When to call [`Session::handle_timeout`] next.
    pub fn deadline(&self) -> Instant {
        let mut d = self.rtc_deadline;
        match self.state {
            State::Connecting => d = d.min(self.created + self.ice_timeout),
            State::Live => {
                d = d
                    .min(self.last_media + self.media_timeout)
                    .min(self.next_stats);
            }
            State::Ended(_) => {}
        }
        if let Some(f) = self.frames.next_deadline() {
            d = d.min(f);
        }
        d
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// Ends the session (DELETE, shutdown, or a reason found here): the sink is
    /// closed, str0m stops, later input is ignored.
    pub fn end(&mut self, reason: impl Into<String>) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        let reason = reason.into();
        let stats = self.frames.stats();
        info!(
            session = %self.id, stream = %self.stream, peer = ?self.peer,
            seconds = self.now.saturating_duration_since(self.created).as_secs(),
            video_frames = stats.video_frames, audio_frames = stats.audio_frames,
            dropped = stats.dropped, losses = stats.losses,
            keyframe_requests = stats.keyframe_requests,
            synced_by_reports = stats.synced_by_reports,
            "WHIP session ended: {reason}"
        );
        if let Some(sink) = self.sink.take() {
            sink.close(&reason);
        }
        self.rtc.disconnect();
        self.state = State::Ended(reason);
    }

    /// Polls str0m until it only has a timeout left; acts on its events.
    fn drain(&mut self, now: Instant) {
        loop {
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    self.end(format!("WebRTC error: {e}"));
                    return;
                }
            };
            match output {
                Output::Timeout(t) => {
                    self.rtc_deadline = t;
                    break;
                }
                Output::Transmit(t) => {
                    // str0m only answers checks that passed integrity, and sends
                    // media to the nominated pair: its destination is the peer.
                    self.peer = Some(t.destination);
                    self.out.push_back(Datagram {
                        destination: t.destination,
                        data: t.contents.to_vec(),
                    });
                }
                Output::Event(e) => self.on_event(e, now),
            }
            if matches!(self.state, State::Ended(_)) {
                return;
            }
        }
        self.forward_frames();
        // The segmenter's keyframes, or viewers' (WHEP: joining, or recovering
        // from loss; coalesced by the pipeline).
        let for_viewers =
            self.state == State::Live && self.sink.as_mut().is_some_and(|s| s.keyframe_wanted(now));
        if self.state == State::Live && (self.frames.keyframe_wanted(now) || for_viewers) {
            self.request_keyframe();
            // A keyframe request is a mutation: drain again (str0m's contract).
            self.drain(now);
        }
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Connected => self.connected(now),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.state == State::Live =>
            {
                self.end("ICE consent expired (the client went away)");
            }
            Event::MediaAdded(m) => {
                let track = match m.kind {
                    MediaKind::Video => Track::Video,
                    MediaKind::Audio => Track::Audio,
                };
                self.mids.push((m.mid, track));
            }
            Event::MediaData(d) => {
                let Some(track) = self
                    .mids
                    .iter()
                    .find(|(mid, _)| *mid == d.mid)
                    .map(|(_, t)| *t)
                else {
                    return;
                };
                self.last_media = now;
                let sender_clock = d.last_sender_info.and_then(|s| {
                    let ntp = s.ntp_time.duration_since(std::time::UNIX_EPOCH).ok()?;
                    Some(SenderClock {
                        ntp,
                        rtp: s.rtp_time.numer() as u32,
                    })
                });
                self.frames.push(FrameIn {
                    track,
                    rtp_time: d.time.numer(),
                    arrival: d.network_time,
                    contiguous: d.contiguous,
                    sender_clock,
                    data: &d.data,
                });
            }
            Event::MediaIngressStats(s)
                if self
                    .mids
                    .iter()
                    .any(|(mid, t)| *mid == s.mid && *t == Track::Video) =>
            {
                self.link.rtt_ms = s.rtt.map(|r| r.as_secs_f64() * 1000.0);
                self.link.loss = s.loss;
                self.link.nacks = s.nacks;
                self.link.keyframe_requests = s.plis + s.firs;
            }
            _ => {}
        }
    }

    fn connected(&mut self, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        let Some(peer) = self.peer else {
            self.end("connected without a known peer address");
            return;
        };
        let claim = Claim {
            stream: &self.stream,
            key: self.key.as_deref(),
            peer,
            protocol: ingest::Protocol::Whip,
        };
        match self.admission.open(&claim) {
            Ok(sink) => {
                info!(session = %self.id, stream = %self.stream, %peer,
                    ms = now.saturating_duration_since(self.created).as_millis() as u64,
                    "WHIP session connected");
                self.sink = Some(sink);
                self.state = State::Live;
                self.last_media = now;
                self.frames.start(now);
            }
            Err(refusal) => self.end(format!("publish refused at connect: {refusal}")),
        }
    }

    fn forward_frames(&mut self) {
        while let Some(out) = self.frames.poll() {
            let Some(sink) = &mut self.sink else {
                continue; // media before the sink: not possible (SRTP needs DTLS)
            };
            let result = match out {
                FrameOut::Tracks(tracks) => sink.tracks(tracks),
                FrameOut::Frame(frame, at) => sink.frame(frame, at),
            };
            if let Err(e) = result {
                self.end(format!("the packager refused the stream: {e}"));
                return;
            }
        }
    }

    fn request_keyframe(&mut self) {
        let Some(mid) = self
            .mids
            .iter()
            .find(|(_, t)| *t == Track::Video)
            .map(|(m, _)| *m)
        else {
            return;
        };
        let Some(mut writer) = self.rtc.writer(mid) else {
            return;
        };
        let kind = if writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            KeyframeRequestKind::Pli
        } else {
            KeyframeRequestKind::Fir
        };
        if let Err(e) = writer.request_keyframe(None, kind) {
            // Before the first video packet there is no receive stream yet.
            debug!(session = %self.id, "keyframe request not sent: {e}");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !matches!(self.state, State::Ended(_)) {
            warn!(session = %self.id, "WHIP session dropped without end()");
            self.end("dropped");
        }
    }
}

fn receive(source: SocketAddr, destination: SocketAddr, data: &[u8]) -> Option<Receive<'_>> {
    Some(Receive {
        proto: Protocol::Udp,
        source,
        destination,
        contents: data.try_into().ok()?,
    })
}
