//! A simulated WHIP world on simulated time, for tests, benchmarks and fuzzing:
//! publishers (str0m peers behaving like a browser: sendonly H.264 + Opus,
//! keyframes on request, sender reports), a network with latency, jitter and
//! loss, and Brook's own [`Endpoint`] and [`Mux`] in between. Nothing here
//! touches a socket or reads the clock after `Sim::new`.
//!
//! Frames carry their number: video frame `n` and audio frame `k` (one every
//! 20 ms) are captured at `n / fps` and `k / 50` seconds after media start, and
//! [`frame_number`] reads the number back from a packaged frame, so a test
//! can check where each frame landed on the timeline.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_packager::UnixMillis;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::http::{Command, Endpoint, EndpointSettings, WhipReply, WhipRequest};
use super::mux::Mux;
use super::session::{Datagram, SessionConfig};
use crate::ingest::Admission;

/// The server's one host candidate in the simulation.
pub const SERVER: &str = "10.0.0.1:8189";

/// A Constrained Baseline SPS (x264, 640x360, level 3.1) and its PPS.
pub const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
    0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x18, 0x32, 0x48,
];
pub const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// One-way delay.
    pub latency: Duration,
    /// Extra random delay, 0..jitter (reorders packets).
    pub jitter: Duration,
    /// Share of client→server RTP/RTCP packets lost, once connected.
    pub loss: f64,
    pub seed: u64,
    pub fps: u32,
    /// Sizes of an IDR and of other frames (larger than the MTU: FU-A).
    pub idr_bytes: usize,
    pub frame_bytes: usize,
    /// Publishers send no media of their own; the caller writes raw RTP
    /// packets ([`SimPeer::write_rtp`]), e.g. hostile payloads a fuzzer makes.
    /// They still go through SRTP, so the server's depacketizers see them.
    pub raw_rtp: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(0),
            loss: 0.0,
            seed: 1,
            fps: 30,
            idr_bytes: 6000,
            frame_bytes: 1500,
            raw_rtp: false,
        }
    }
}

/// xorshift64*: deterministic, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Video frame `n` as Annex B: an IDR (with SPS/PPS) or a non-IDR slice, its
/// number in the first payload bytes.
pub fn video_frame(n: u64, keyframe: bool, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    if keyframe {
        for ps in [SPS, PPS] {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(ps);
        }
    }
    out.extend_from_slice(&[0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]);
    // In ASCII digits: binary zeros would make start codes.
    out.extend_from_slice(format!("{n:012}").as_bytes());
    // Never 0x00 0x00 in the body: no accidental start codes.
    out.extend((0..size).map(|i| (i % 250) as u8 + 1));
    out
}

/// Audio frame `k`: a 20 ms CELT Opus packet (TOC 0xF8) carrying `k`.
pub fn audio_frame(k: u64) -> Vec<u8> {
    let mut out = vec![0xF8];
    out.extend_from_slice(format!("{k:012}").as_bytes());
    out.extend_from_slice(&[0x55; 40]);
    out
}

/// The number a packaged frame carries: video samples are length-prefixed
/// NAL units (the last is the slice), audio is the Opus packet.
pub fn frame_number(sample: &[u8], video: bool) -> Option<u64> {
    let payload = if video {
        let mut rest = sample;
        let mut last = None;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let nal = rest.get(4..4 + len)?;
            last = Some(nal);
            rest = &rest[4 + len..];
        }
        last?.get(1..13)?
    } else {
        sample.get(1..13)?
    };
    std::str::from_utf8(payload).ok()?.parse().ok()
}

/// A publisher: a str0m peer that offers sendonly H.264 (42e01f) and Opus.
pub struct SimPeer {
    rtc: Rtc,
    pub addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    mids: Vec<(Mid, MediaKind)>,
    pub connected: bool,
    media_start: Option<Instant>,
    pub video_sent: u64,
    pub audio_sent: u64,
    keyframe_wanted: bool,
    /// Keyframe requests (PLI/FIR) received from the server.
    pub keyframe_requests: u32,
    /// Frame numbers sent as IDRs.
    pub idrs: Vec<u64>,
    out: VecDeque<Datagram>,
    deadline: Instant,
    config: SimConfig,
    video_rtp0: u64,
    audio_rtp0: u64,
    /// Stop sending media (a publisher that stalls).
    pub paused: bool,
}

impl SimPeer {
    /// A peer at `addr` and its SDP offer.
    pub fn new(addr: SocketAddr, now: Instant, config: SimConfig, rng: &mut Rng) -> (Self, String) {
        let mut builder = Rtc::builder().set_rtp_mode(config.raw_rtp).clear_codecs();
        {
            let c = builder.codec_config();
            c.add_h264(108.into(), Some(109.into()), true, 0x42e01f);
            c.enable_opus(true, false);
        }
        let mut rtc = builder.build(now);
        if let Ok(c) = Candidate::host(addr, "udp") {
            rtc.add_local_candidate(c);
        }
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer with two sections");
        let mut peer = Self {
            rtc,
            addr,
            pending: Some(pending),
            mids: vec![(audio, MediaKind::Audio), (video, MediaKind::Video)],
            connected: false,
            media_start: None,
            video_sent: 0,
            audio_sent: 0,
            keyframe_wanted: true,
            keyframe_requests: 0,
            idrs: Vec::new(),
            out: VecDeque::new(),
            deadline: now,
            config,
            video_rtp0: rng.below(1 << 32),
            audio_rtp0: rng.below(1 << 32),
            paused: false,
        };
        peer.drain(now);
        (peer, offer.to_sdp_string())
    }

    pub fn accept_answer(&mut self, answer: &str, now: Instant) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(answer).map_err(|e| e.to_string())?;
        let pending = self.pending.take().ok_or("no pending offer")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        self.drain(now);
        Ok(())
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.addr,
                contents,
            },
        );
        let _ = self.rtc.handle_input(input);
        self.drain(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline {
            let _ = self.rtc.handle_input(Input::Timeout(now));
            self.drain(now);
        }
        self.send_media(now);
    }

    pub fn deadline(&self) -> Instant {
        match self.next_media() {
            Some(t) if !self.paused && !self.config.raw_rtp => t.min(self.deadline),
            _ => self.deadline,
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// Raw mode: one RTP packet on the video (or audio) stream, SRTP-protected.
    pub fn write_rtp(
        &mut self,
        now: Instant,
        video: bool,
        seq: u64,
        time: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let kind = if video {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let Some(mid) = self.mid(kind) else {
            return;
        };
        // The offer's payload types (the answer keeps them); `Rtc::writer`
        // is not for RTP mode.
        let pt = Pt::from(if video { 108 } else { 111 });
        if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            let write = str0m::rtp::RtpWrite::new(pt, seq.into(), time, now, payload.to_vec())
                .marker(marker);
            tx.write_rtp(write);
        }
        self.drain(now);
    }

    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.connected = false;
    }

    fn next_media(&self) -> Option<Instant> {
        let start = self.media_start?;
        let v = start + self.video_time(self.video_sent);
        let a = start + Duration::from_millis(20 * self.audio_sent);
        Some(v.min(a))
    }

    fn video_time(&self, n: u64) -> Duration {
        Duration::from_micros(n * 1_000_000 / u64::from(self.config.fps.max(1)))
    }

    fn mid(&self, kind: MediaKind) -> Option<Mid> {
        self.mids.iter().find(|(_, k)| *k == kind).map(|(m, _)| *m)
    }

    fn pt(&mut self, mid: Mid) -> Option<Pt> {
        let w = self.rtc.writer(mid)?;
        let pt = w.payload_params().next()?.pt();
        Some(pt)
    }

    fn send_media(&mut self, now: Instant) {
        let Some(start) = self.media_start else {
            return;
        };
        if self.paused || self.config.raw_rtp || !self.rtc.is_alive() {
            return;
        }
        loop {
            let vt = start + self.video_time(self.video_sent);
            let at = start + Duration::from_millis(20 * self.audio_sent);
            let (due, video) = if vt <= at { (vt, true) } else { (at, false) };
            if due > now {
                break;
            }
            if video {
                let n = self.video_sent;
                let key = std::mem::take(&mut self.keyframe_wanted);
                if key {
                    self.idrs.push(n);
                }
                let size = if key {
                    self.config.idr_bytes
                } else {
                    self.config.frame_bytes
                };
                let data = video_frame(n, key, size);
                let rtp = (self.video_rtp0 + n * 90_000 / u64::from(self.config.fps.max(1)))
                    & 0xffff_ffff;
                if let Some(mid) = self.mid(MediaKind::Video) {
                    if let Some(pt) = self.pt(mid) {
                        if let Some(w) = self.rtc.writer(mid) {
                            let _ =
                                w.write(pt, due, MediaTime::new(rtp, Frequency::NINETY_KHZ), data);
                        }
                    }
                }
                self.video_sent += 1;
            } else {
                let k = self.audio_sent;
                let rtp = (self.audio_rtp0 + k * 960) & 0xffff_ffff;
                if let Some(mid) = self.mid(MediaKind::Audio) {
                    if let Some(pt) = self.pt(mid) {
                        if let Some(w) = self.rtc.writer(mid) {
                            let _ = w.write(
                                pt,
                                due,
                                MediaTime::new(rtp, Frequency::FORTY_EIGHT_KHZ),
                                audio_frame(k),
                            );
                        }
                    }
                }
                self.audio_sent += 1;
            }
            self.drain(now);
        }
    }

    fn drain(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.deadline = t;
                    return;
                }
                Ok(Output::Transmit(t)) => self.out.push_back(Datagram {
                    destination: t.destination,
                    data: t.contents.to_vec(),
                }),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.media_start.get_or_insert(now);
                    }
                    Event::KeyframeRequest(_) => {
                        self.keyframe_requests += 1;
                        self.keyframe_wanted = true;
                    }
                    _ => {}
                },
                Err(_) => {
                    self.deadline = now + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }
}

/// One datagram in flight.
#[derive(Debug, Clone)]
struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// Brook's WHIP side and any number of publishers, on simulated time.
pub struct Sim {
    pub now: Instant,
    t0: Instant,
    pub start_unix: UnixMillis,
    pub config: SimConfig,
    pub endpoint: Endpoint,
    control: UnboundedReceiver<Command>,
    pub mux: Mux,
    pub peers: Vec<SimPeer>,
    /// In flight, by arrival time (and a sequence number for ties).
    net: BTreeMap<(Instant, u64), Packet>,
    seq: u64,
    pub rng: Rng,
    server: SocketAddr,
    /// Datagrams the network dropped.
    pub lost: u64,
    /// Wall-clock time spent in Brook's side (mux and sessions), for cost
    /// measurements.
    pub server_time: Duration,
}

impl Sim {
    pub fn new(
        config: SimConfig,
        sink: Arc<dyn Admission>,
        session: impl FnOnce(&mut SessionConfig),
    ) -> Self {
        let mut sc = Self::session_config();
        session(&mut sc);
        Self::with_session_config(config, sink, sc)
    }

    /// A session configuration for [`SERVER`]. It generates a DTLS
    /// certificate: reuse it where many worlds are made.
    pub fn session_config() -> SessionConfig {
        let server: SocketAddr = SERVER.parse().expect("a socket address");
        SessionConfig::new(vec![server]).expect("a DTLS certificate")
    }

    pub fn with_session_config(
        config: SimConfig,
        sink: Arc<dyn Admission>,
        sc: SessionConfig,
    ) -> Self {
        let server: SocketAddr = SERVER.parse().expect("a socket address");
        let (tx, rx) = unbounded_channel();
        let now = Instant::now();
        Self {
            now,
            t0: now,
            start_unix: UnixMillis(1_795_000_000_000),
            config,
            endpoint: Endpoint::new(sink, sc, EndpointSettings::default(), tx),
            control: rx,
            mux: Mux::new(vec![server]),
            peers: Vec::new(),
            net: BTreeMap::new(),
            seq: 0,
            rng: Rng::new(config.seed),
            server,
            lost: 0,
            server_time: Duration::ZERO,
        }
    }

    /// The simulated wall clock at `at`.
    pub fn unix(&self, at: Instant) -> UnixMillis {
        UnixMillis(self.start_unix.0 + at.saturating_duration_since(self.t0).as_millis() as u64)
    }

    /// An HTTP request to the endpoint, as the Pingora glue would make it.
    pub fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> WhipReply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (
                http::header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                map.append(k, v);
            }
        }
        let req = WhipRequest {
            method: &method,
            path,
            headers: &map,
            body: Bytes::from(body.to_string()),
            peer: None,
        };
        let unix = self.unix(self.now);
        let reply = self.endpoint.handle(&req, self.now, unix);
        self.take_commands();
        reply
    }

    /// A new publisher at `addr` POSTs to `/whip/<stream>`; on 201 it takes the
    /// answer. Returns the peer's index and the reply.
    pub fn publish(
        &mut self,
        stream: &str,
        key: Option<&str>,
        addr: SocketAddr,
    ) -> (usize, WhipReply) {
        let (mut peer, offer) = SimPeer::new(addr, self.now, self.config, &mut self.rng);
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/sdp")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let reply = self.request(Method::POST, &format!("/whip/{stream}"), &headers, &offer);
        if reply.status == StatusCode::CREATED {
            let answer = String::from_utf8_lossy(&reply.body).into_owned();
            let _ = peer.accept_answer(&answer, self.now);
        }
        self.peers.push(peer);
        let i = self.peers.len() - 1;
        self.flush();
        (i, reply)
    }

    /// Puts a datagram on the wire to the server (hostile input).
    pub fn inject(&mut self, from: SocketAddr, data: Vec<u8>) {
        let to = self.server;
        self.send(from, to, data, false);
    }

    fn take_commands(&mut self) {
        while let Ok(cmd) = self.control.try_recv() {
            match cmd {
                Command::Start(s) => self.mux.insert(*s),
                Command::End { id, reason } => {
                    self.mux.end(&id, &reason);
                }
                Command::Shutdown => self.mux.end_all("shutdown"),
                Command::Host(_) => {}
            }
        }
        self.flush();
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>, lossy: bool) {
        let media = matches!(data.first(), Some(128..=191));
        if lossy && media && self.rng.chance(self.config.loss) {
            self.lost += 1;
            return;
        }
        let jitter = self.config.jitter.as_micros() as u64;
        let at = self.now + self.config.latency + Duration::from_micros(self.rng.below(jitter + 1));
        self.seq += 1;
        self.net.insert((at, self.seq), Packet { from, to, data });
    }

    /// Moves everything the endpoints want to send onto the network.
    fn flush(&mut self) {
        while let Some(d) = self.mux.poll_transmit() {
            let from = self.server;
            self.send(from, d.destination, d.data, false);
        }
        while let Some((id, _)) = self.mux.poll_ended() {
            self.endpoint.forget(&id);
        }
        for i in 0..self.peers.len() {
            while let Some(d) = self.peers[i].poll_transmit() {
                let (from, lossy) = (self.peers[i].addr, self.peers[i].connected);
                self.send(from, d.destination, d.data, lossy);
            }
        }
        self.mux.check_invariants();
    }

    /// Runs the world for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut spins = 0;
        loop {
            let mut next = end;
            if let Some(((t, _), _)) = self.net.first_key_value() {
                next = next.min(*t);
            }
            if let Some(t) = self.mux.next_deadline() {
                next = next.min(t);
            }
            for p in &self.peers {
                next = next.min(p.deadline());
            }
            // A deadline that does not move would spin: step 1 ms then.
            spins = if next <= self.now { spins + 1 } else { 0 };
            if spins > 100 {
                next = self.now + Duration::from_millis(1);
            }
            self.now = next.max(self.now);
            while let Some(entry) = self.net.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let p = entry.remove();
                if p.to == self.server {
                    let t = Instant::now();
                    self.mux.handle_datagram(self.now, p.from, &p.data);
                    self.server_time += t.elapsed();
                } else if let Some(peer) = self.peers.iter_mut().find(|x| x.addr == p.to) {
                    peer.handle_datagram(self.now, p.from, &p.data);
                }
                self.flush();
            }
            let t = Instant::now();
            self.mux.handle_timeout(self.now);
            self.server_time += t.elapsed();
            for p in &mut self.peers {
                p.handle_timeout(self.now);
            }
            self.flush();
            if self.now >= end {
                break;
            }
        }
    }
}
