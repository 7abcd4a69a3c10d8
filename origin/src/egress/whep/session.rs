//! One WHEP viewer: a str0m `Rtc` in ICE-lite mode that sends a live
//! stream's source frames (H.264 as it is, Opus when the source has it) from
//! the viewer's [`Subscription`] to the stream's feed.
//!
//! Lifecycle: `Connecting` (answer sent; ends after `ice_timeout` without a
//! completed ICE + DTLS handshake) → `Live` (frames flow, from a keyframe;
//! ends when ICE consent lapses, the stream ends, or the viewer sends
//! `DELETE`) → `Ended`.
//!
//! Timeline: RTP times and the wall clock str0m puts in its sender reports
//! both come from one session clock that follows the source's media time and
//! continues across source restarts (a reconnecting publisher), so the
//! browser keeps audio and video in sync and its jitter buffer sees no jump.
//!
//! Drive contract (sans-IO, as str0m's): after `new`, and after every
//! [`Viewer::handle_datagram`] / [`Viewer::handle_timeout`] /
//! [`Viewer::handle_wakeup`], take [`Viewer::poll_transmit`] until `None`;
//! call `handle_timeout` again at [`Viewer::deadline`]. Nothing here reads a
//! clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brook_packager::media::{CodecConfig, Frame, TrackInfo};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tracing::{debug, info};

use super::sdp::{pick_profile, Accepted};
use crate::egress::feed::{Item, Subscription};
use crate::ingest::whip::mux::Peer;
use crate::ingest::whip::sdp::{self as whip_sdp, OfferError};
use crate::ingest::whip::session::{Datagram, SessionConfig};

/// Where the session clock starts (seconds), so that audio a little older
/// than the first frame sent still has a positive RTP time.
const CLOCK_START_SECS: f64 = 10.0;
/// The step the session clock takes over a source restart.
const RESTART_STEP_SECS: f64 = 0.04;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Connecting,
    Live,
    Ended(String),
}

/// What a viewer was sent, for its log line and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Video frames not sent while waiting for a keyframe.
    pub skipped: u64,
    /// Times frames were lost to this viewer's full queue.
    pub gaps: u64,
    /// PLI/FIR from the viewer.
    pub keyframe_requests: u64,
    /// Sends str0m refused (unknown payload type and the like).
    pub write_errors: u64,
}

/// The source's tracks as this viewer sends them.
#[derive(Debug, Clone)]
struct Tracks {
    video: Option<VideoTrack>,
    /// Index and timescale of the source's Opus track.
    audio: Option<(usize, u32)>,
}

#[derive(Debug, Clone)]
struct VideoTrack {
    index: usize,
    timescale: u32,
    /// SPS and PPS with start codes, put before an IDR that lacks them
    /// (sources whose parameter sets travel out of band, as RTMP's).
    parameter_sets: Vec<u8>,
    profile_idc: u8,
}

impl Tracks {
    fn of(list: &[TrackInfo]) -> Self {
        let video = list
            .iter()
            .enumerate()
            .find_map(|(index, t)| match &t.codec {
                CodecConfig::Avc(c) => {
                    let mut parameter_sets = Vec::new();
                    for nal in [&c.sps_nal, &c.pps_nal] {
                        parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
                        parameter_sets.extend_from_slice(nal);
                    }
                    Some(VideoTrack {
                        index,
                        timescale: t.timescale.max(1),
                        parameter_sets,
                        profile_idc: c.sps.profile_idc,
                    })
                }
                _ => None,
            });
        let audio = list
            .iter()
            .enumerate()
            .find(|(_, t)| matches!(t.codec, CodecConfig::Opus(_)))
            .map(|(i, t)| (i, t.timescale.max(1)));
        Tracks { video, audio }
    }
}

/// Maps the source's media time onto the session clock (see module docs).
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// (source media seconds, session seconds, wall clock) of the anchor.
    anchor: Option<(f64, f64, Instant)>,
    /// The latest session time sent.
    last: f64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            anchor: None,
            last: CLOCK_START_SECS,
        }
    }

    /// The source restarted: the next frame anchors a new mapping just after
    /// the last time sent.
    fn restart(&mut self) {
        if self.anchor.is_some() {
            self.anchor = None;
            self.last += RESTART_STEP_SECS;
        }
    }

    /// Session seconds and wall clock for a frame at `media` source seconds.
    fn map(&mut self, media: f64, now: Instant) -> (f64, Instant) {
        let (m0, s0, w0) = *self.anchor.get_or_insert((media, self.last, now));
        let offset = media - m0;
        let session = (s0 + offset).max(0.0);
        self.last = self.last.max(session);
        let wall = if offset >= 0.0 {
            w0.checked_add(Duration::from_secs_f64(offset))
        } else {
            w0.checked_sub(Duration::from_secs_f64(-offset))
        }
        .unwrap_or(w0);
        (session, wall)
    }
}

pub struct Viewer {
    id: String,
    stream: String,
    rtc: Rtc,
    local_ufrag: String,
    accepted: Accepted,
    subscription: Subscription,
    state: State,
    out: VecDeque<Datagram>,
    rtc_deadline: Instant,
    created: Instant,
    now: Instant,
    ice_timeout: Duration,
    peer: Option<SocketAddr>,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    /// Payload types to send with, chosen once the source's tracks are known.
    video_pt: Option<Pt>,
    audio_pt: Option<Pt>,
    tracks: Option<Tracks>,
    need_keyframe: bool,
    clock: Clock,
    stats: ViewerStats,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("id", &self.id)
            .field("stream", &self.stream)
            .field("state", &self.state)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Viewer {
    /// Answers a checked offer ([`super::sdp::check_offer`]); returns the
    /// viewer and the SDP answer.
    pub fn new(
        id: String,
        stream: String,
        offer: SdpOffer,
        accepted: Accepted,
        subscription: Subscription,
        config: &SessionConfig,
        now: Instant,
    ) -> Result<(Viewer, String), OfferError> {
        let creds = IceCreds::new();
        let local_ufrag = creds.ufrag.clone();
        let mut rtc_config = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .set_crypto_provider(config.crypto.clone())
            .set_dtls_cert(config.cert.clone())
            // Room to resend a whole 1080p IDR on NACK.
            .set_send_buffer_video(2000)
            .clear_codecs();
        whip_sdp::configure_codecs(rtc_config.codec_config());
        let mut rtc = rtc_config.build(now);
        for addr in &config.candidates {
            let c = Candidate::host(*addr, "udp")
                .map_err(|e| OfferError::Unacceptable(format!("host candidate {addr}: {e}")))?;
            rtc.add_local_candidate(c);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| OfferError::Unacceptable(format!("cannot answer the offer: {e}")))?
            .to_sdp_string();
        if !answer.contains("m=video 9 ") {
            return Err(OfferError::Unacceptable(
                "the video section could not be accepted with H.264".into(),
            ));
        }
        let mut viewer = Viewer {
            id,
            stream,
            rtc,
            local_ufrag,
            accepted,
            subscription,
            state: State::Connecting,
            out: VecDeque::new(),
            rtc_deadline: now,
            created: now,
            now,
            ice_timeout: config.ice_timeout,
            peer: None,
            video_mid: None,
            audio_mid: None,
            video_pt: None,
            audio_pt: None,
            tracks: None,
            need_keyframe: true,
            clock: Clock::new(),
            stats: ViewerStats::default(),
        };
        viewer.drain(now);
        Ok((viewer, answer))
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn stats(&self) -> ViewerStats {
        self.stats
    }

    fn handle_datagram_inner(
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
            return;
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, r)) {
            debug!(viewer = %self.id, %source, "datagram refused: {e}");
        }
        self.drain(now);
    }

    fn handle_timeout_inner(&mut self, now: Instant) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        self.now = self.now.max(now);
        if now >= self.rtc_deadline {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.end_with(format!("WebRTC error: {e}"));
                return;
            }
        }
        self.drain(now);
        if self.state == State::Connecting && now >= self.created + self.ice_timeout {
            self.end_with(format!(
                "ICE/DTLS did not complete within {} ms",
                self.ice_timeout.as_millis()
            ));
        }
    }

    /// Frames queued for this viewer: send them (before it is connected, only
    /// the track list is kept).
    fn pump(&mut self, now: Instant) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        self.now = self.now.max(now);
        while let Some(item) = self.subscription.pop() {
            match item {
                Item::Tracks(list) => self.set_tracks(&list),
                Item::Frame(frame, _) => {
                    if self.state == State::Live {
                        self.send(&frame, now);
                    }
                }
                Item::Gap => {
                    self.stats.gaps += 1;
                    self.want_keyframe();
                }
                Item::Restart => {
                    self.clock.restart();
                    self.want_keyframe();
                }
                Item::End => {
                    self.end_with("the stream ended".to_string());
                    return;
                }
            }
        }
        self.drain(now);
    }

    fn set_tracks(&mut self, list: &[TrackInfo]) {
        let tracks = Tracks::of(list);
        if tracks.video.is_none() {
            debug!(viewer = %self.id, stream = %self.stream, "the source has no H.264 video: no video for WHEP");
        }
        self.tracks = Some(tracks);
        // A new configuration starts with a keyframe; choose the payload types again.
        self.video_pt = None;
        self.audio_pt = None;
        self.need_keyframe = true;
    }

    fn want_keyframe(&mut self) {
        self.need_keyframe = true;
        self.subscription.feed().request_keyframe();
    }

    fn send(&mut self, frame: &Frame, now: Instant) {
        let Some(tracks) = &self.tracks else {
            return;
        };
        if let Some(v) = tracks.video.as_ref().filter(|v| v.index == frame.track) {
            if self.need_keyframe {
                if !frame.keyframe {
                    self.stats.skipped += 1;
                    return;
                }
                self.need_keyframe = false;
            }
            let media = frame.pts as f64 / f64::from(v.timescale);
            let Some(data) = annexb(&frame.data, frame.keyframe, &v.parameter_sets) else {
                return;
            };
            let profile_idc = v.profile_idc;
            let (session, wall) = self.clock.map(media, now);
            let rtp = MediaTime::new((session * 90_000.0).round() as u64, Frequency::NINETY_KHZ);
            let Some(mid) = self.video_mid else {
                return;
            };
            if self.video_pt.is_none() {
                self.video_pt = self.choose_video_pt(mid, profile_idc);
            }
            let Some(pt) = self.video_pt else {
                return;
            };
            match self.rtc.writer(mid).map(|w| w.write(pt, wall, rtp, data)) {
                Some(Ok(())) => self.stats.video_frames += 1,
                Some(Err(e)) => {
                    self.stats.write_errors += 1;
                    debug!(viewer = %self.id, "video not sent: {e}");
                }
                None => {}
            }
        } else if let Some((_, timescale)) = tracks.audio.filter(|(i, _)| *i == frame.track) {
            let (Some(mid), true) = (self.audio_mid, self.accepted.opus) else {
                return;
            };
            let media = frame.pts as f64 / f64::from(timescale);
            let (session, wall) = self.clock.map(media, now);
            let rtp = MediaTime::new(
                (session * 48_000.0).round() as u64,
                Frequency::FORTY_EIGHT_KHZ,
            );
            if self.audio_pt.is_none() {
                self.audio_pt = self.rtc.writer(mid).and_then(|w| {
                    w.payload_params()
                        .find(|p| p.spec().codec == Codec::Opus)
                        .map(|p| p.pt())
                });
            }
            let Some(pt) = self.audio_pt else {
                return;
            };
            match self
                .rtc
                .writer(mid)
                .map(|w| w.write(pt, wall, rtp, frame.data.to_vec()))
            {
                Some(Ok(())) => self.stats.audio_frames += 1,
                Some(Err(e)) => {
                    self.stats.write_errors += 1;
                    debug!(viewer = %self.id, "audio not sent: {e}");
                }
                None => {}
            }
        }
    }

    /// The negotiated H.264 payload type (mode 1) that fits the source's profile.
    fn choose_video_pt(&mut self, mid: Mid, profile_idc: u8) -> Option<Pt> {
        let writer = self.rtc.writer(mid)?;
        let candidates: Vec<(Pt, u32)> = writer
            .payload_params()
            .filter(|p| {
                let s = p.spec();
                s.codec == Codec::H264 && s.format.packetization_mode == Some(1)
            })
            .filter_map(|p| Some((p.pt(), p.spec().format.profile_level_id?)))
            .collect();
        let profiles: Vec<u32> = candidates.iter().map(|(_, p)| *p).collect();
        let chosen = pick_profile(&profiles, Some(profile_idc))?;
        candidates
            .iter()
            .find(|(_, p)| *p == chosen)
            .map(|(pt, _)| *pt)
    }

    fn end_with(&mut self, reason: String) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        let s = self.stats;
        info!(
            viewer = %self.id, stream = %self.stream, peer = ?self.peer,
            seconds = self.now.saturating_duration_since(self.created).as_secs(),
            video_frames = s.video_frames, audio_frames = s.audio_frames,
            skipped = s.skipped, gaps = s.gaps, keyframe_requests = s.keyframe_requests,
            "WHEP viewer left: {reason}"
        );
        self.rtc.disconnect();
        self.state = State::Ended(reason);
    }

    /// Polls str0m until it only has a timeout left; acts on its events.
    fn drain(&mut self, now: Instant) {
        loop {
            let output = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    self.end_with(format!("WebRTC error: {e}"));
                    return;
                }
            };
            match output {
                Output::Timeout(t) => {
                    self.rtc_deadline = t;
                    break;
                }
                Output::Transmit(t) => {
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
    }

    fn on_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::Connected if self.state == State::Connecting => {
                info!(viewer = %self.id, stream = %self.stream, peer = ?self.peer,
                    ms = now.saturating_duration_since(self.created).as_millis() as u64,
                    "WHEP viewer connected");
                self.state = State::Live;
                // Frames flow from the next keyframe; ask the publisher for one.
                self.want_keyframe();
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected)
                if self.state == State::Live =>
            {
                self.end_with("ICE consent expired (the viewer went away)".to_string());
            }
            Event::MediaAdded(m) => match m.kind {
                MediaKind::Video => self.video_mid = Some(m.mid),
                MediaKind::Audio => self.audio_mid = Some(m.mid),
            },
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests += 1;
                // Keep sending (the decoder may conceal); the next keyframe is
                // asked for upstream, coalesced with every other viewer's.
                self.subscription.feed().request_keyframe();
            }
            _ => {}
        }
    }
}

impl Peer for Viewer {
    fn id(&self) -> &str {
        &self.id
    }
    fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }
    fn accepts(
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
    fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.handle_datagram_inner(now, source, destination, data);
        // Frames that came while the handshake ran.
        self.pump(now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.handle_timeout_inner(now);
    }
    fn handle_wakeup(&mut self, now: Instant) {
        self.pump(now);
    }
    fn deadline(&self) -> Instant {
        match self.state {
            State::Connecting => self.rtc_deadline.min(self.created + self.ice_timeout),
            _ => self.rtc_deadline,
        }
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }
    fn ended(&self) -> Option<&str> {
        match &self.state {
            State::Ended(r) => Some(r),
            _ => None,
        }
    }
    fn end(&mut self, reason: &str) {
        self.end_with(reason.to_string());
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if !matches!(self.state, State::Ended(_)) {
            self.end_with("dropped".to_string());
        }
    }
}

/// An MP4 sample (4-byte NAL lengths) as the Annex B access unit str0m's
/// packetizer takes, with the parameter sets put before an IDR that has none.
/// `None` when the lengths do not add up (nothing is sent for that frame).
pub fn annexb(sample: &[u8], keyframe: bool, parameter_sets: &[u8]) -> Option<Vec<u8>> {
    const SPS: u8 = 7;
    let mut nals: Vec<&[u8]> = Vec::new();
    let mut rest = sample;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if len == 0 || len > tail.len() {
            return None;
        }
        let (nal, tail) = tail.split_at(len);
        nals.push(nal);
        rest = tail;
    }
    if nals.is_empty() {
        return None;
    }
    let has_sps = nals
        .iter()
        .any(|n| n.first().is_some_and(|b| b & 0x1f == SPS));
    let mut out = Vec::with_capacity(sample.len() + parameter_sets.len());
    if keyframe && !has_sps {
        out.extend_from_slice(parameter_sets);
    }
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    (!out.is_empty()).then_some(out)
}

fn receive(source: SocketAddr, destination: SocketAddr, data: &[u8]) -> Option<Receive<'_>> {
    Some(Receive {
        proto: Protocol::Udp,
        source,
        destination,
        contents: data.try_into().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_annexb_with_parameter_sets_before_a_bare_idr() {
        let ps = [0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2];
        let idr = [0, 0, 0, 2, 0x65, 9, 0, 0, 0, 1, 0x06];
        assert_eq!(
            annexb(&idr, true, &ps).unwrap(),
            [&ps[..], &[0, 0, 0, 1, 0x65, 9, 0, 0, 0, 1, 0x06]].concat()
        );
        // Not before a non-IDR, and not twice when the IDR carries its own.
        assert_eq!(
            annexb(&[0, 0, 0, 1, 0x41], false, &ps).unwrap(),
            [0, 0, 0, 1, 0x41]
        );
        let inband = [0, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x65];
        assert_eq!(
            annexb(&inband, true, &ps).unwrap(),
            [0, 0, 0, 1, 0x67, 0, 0, 0, 1, 0x65]
        );
        // Lengths that do not add up: nothing, no panic.
        for bad in [&[0, 0, 0, 9, 0x65][..], &[0, 0, 1], &[0, 0, 0, 0], &[]] {
            assert_eq!(annexb(bad, true, &ps), None, "{bad:?}");
        }
    }

    #[test]
    fn the_session_clock_follows_media_time_and_continues_over_restarts() {
        let t0 = Instant::now();
        let mut c = Clock::new();
        let (s, w) = c.map(100.0, t0);
        assert_eq!((s, w), (CLOCK_START_SECS, t0));
        let (s, w) = c.map(100.5, t0 + Duration::from_millis(700));
        assert!((s - (CLOCK_START_SECS + 0.5)).abs() < 1e-9);
        assert_eq!(
            w,
            t0 + Duration::from_millis(500),
            "the wall clock follows media time"
        );
        // Audio slightly older than the anchor maps before it.
        let (s, _) = c.map(99.98, t0);
        assert!(s < CLOCK_START_SECS + 0.5);
        // A new source timeline (a reconnect at media time 3.0) continues the clock.
        c.restart();
        let t1 = t0 + Duration::from_secs(5);
        let (s, w) = c.map(3.0, t1);
        assert!((s - (CLOCK_START_SECS + 0.5 + RESTART_STEP_SECS)).abs() < 1e-9);
        assert_eq!(w, t1);
    }
}
