//! The WHEP endpoint's HTTP semantics, and a viewer end to end on simulated
//! time: a str0m peer playing the browser (recvonly H.264 + Opus) connects
//! through the endpoint and the shared mux, and receives the feed's frames.

use std::net::SocketAddr;
use std::time::Duration;

use brook_packager::codec::h264::{AvcConfig, Sps};
use brook_packager::codec::opus::OpusConfig;
use brook_packager::media::{CodecConfig, Frame, TrackInfo};
use brook_packager::UnixMillis;
use http::header::HeaderValue;
use http::HeaderMap;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;
use crate::egress::feed::Feed;
use crate::ingest::whip::mux::{Mux, Peer};
use crate::ingest::whip::sim::{audio_frame, video_frame, PPS, SPS};

const OFFER: &str = include_str!("../../../../tests/fixtures/chromium_whep_offer.sdp");
const SERVER: &str = "10.0.0.1:8189";
const CLIENT: &str = "10.0.0.2:50000";

struct Harness {
    endpoint: Endpoint,
    control: UnboundedReceiver<GuestCommand>,
    mux: Mux<Box<dyn Peer>>,
    feeds: Arc<Feeds>,
    now: Instant,
}

fn harness(max_sessions: usize, queue_frames: usize) -> Harness {
    let candidates: Vec<SocketAddr> = vec![SERVER.parse().unwrap()];
    let session = SessionConfig::new(candidates.clone()).unwrap();
    let (tx, rx) = unbounded_channel();
    let feeds = Arc::new(Feeds::default());
    let settings = Settings {
        max_offer_bytes: 64 * 1024,
        max_sessions,
        queue_frames,
    };
    Harness {
        endpoint: Endpoint::new(
            feeds.clone(),
            session,
            settings,
            tx,
            Arc::new(Notify::new()),
        ),
        control: rx,
        mux: Mux::new(candidates),
        feeds,
        now: Instant::now(),
    }
}

fn tracks() -> Vec<TrackInfo> {
    let avc = AvcConfig {
        sps: Sps::parse(SPS).unwrap(),
        sps_nal: SPS.to_vec(),
        pps_nal: PPS.to_vec(),
    };
    vec![
        TrackInfo {
            id: 1,
            timescale: 90_000,
            codec: CodecConfig::Avc(avc),
        },
        TrackInfo {
            id: 2,
            timescale: 48_000,
            codec: CodecConfig::Opus(OpusConfig::webrtc()),
        },
    ]
}

/// Video frame `n` (30 fps) as the pipeline hands it on: an MP4 sample.
fn video(n: u64, keyframe: bool) -> Frame {
    let annexb = video_frame(n, keyframe, 3000);
    let sample = brook_packager::codec::h264::annexb_to_sample(&annexb).unwrap();
    Frame {
        track: 0,
        dts: n as i64 * 3000,
        pts: n as i64 * 3000,
        keyframe,
        duration: None,
        data: sample.data.into(),
    }
}

fn audio(k: u64) -> Frame {
    Frame {
        track: 1,
        dts: k as i64 * 960,
        pts: k as i64 * 960,
        keyframe: true,
        duration: Some(960),
        data: audio_frame(k).into(),
    }
}

impl Harness {
    fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = Request {
            method: &method,
            path,
            headers: &map,
            body: Bytes::from(body.to_string()),
            peer: None,
        };
        let r = self.endpoint.handle(&req, self.now);
        self.commands();
        r
    }

    fn offer(&mut self, stream: &str, body: &str) -> Reply {
        self.request(
            Method::POST,
            &format!("/whep/{stream}"),
            &[("content-type", "application/sdp")],
            body,
        )
    }

    fn commands(&mut self) {
        while let Ok(c) = self.control.try_recv() {
            match c {
                GuestCommand::Start(s) => self.mux.insert(s),
                GuestCommand::End { id, reason } => {
                    self.mux.end(&id, &reason);
                }
            }
        }
        while let Some((id, _)) = self.mux.poll_ended() {
            self.endpoint.forget(&id);
        }
        self.mux.check_invariants();
    }

    fn live(&self, stream: &str) -> Arc<Feed> {
        let feed = self.feeds.open(stream, Duration::from_millis(500));
        feed.push_tracks(&tracks());
        feed
    }
}

#[test]
fn statuses_for_bad_requests_and_the_resource_lifecycle() {
    let mut h = harness(1, 64);
    // Not live: 404 (after the offer's own checks).
    assert_eq!(h.offer("cam1", OFFER).status, StatusCode::NOT_FOUND);
    let _feed = h.live("cam1");
    let wrong_type = h.request(
        Method::POST,
        "/whep/cam1",
        &[("content-type", "text/plain")],
        OFFER,
    );
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(wrong_type.get("accept-post"), Some("application/sdp"));
    let malformed = h.offer("cam1", "v=0\r\ngarbage\r\n");
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&malformed.body).contains("malformed SDP offer"));
    let sendonly = OFFER.replace("a=recvonly", "a=sendonly");
    let r = h.offer("cam1", &sendonly);
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&r.body).contains("recvonly"));
    assert_eq!(
        h.request(Method::PUT, "/whep/cam1", &[], "").status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(h.offer("bad name!", OFFER).status, StatusCode::NOT_FOUND);

    let ok = h.offer("cam1", OFFER);
    assert_eq!(ok.status, StatusCode::CREATED, "{ok:?}");
    assert_eq!(ok.get("content-type"), Some("application/sdp"));
    let location = ok.get("location").unwrap().to_string();
    assert!(location.starts_with("/whep/cam1/"), "{location}");
    let answer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(answer.contains("a=sendonly"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("H264"), "{answer}");
    assert_eq!(h.endpoint.sessions(), 1);
    assert_eq!(h.mux.len(), 1);

    // The limit: 503 with Retry-After.
    let full = h.offer("cam1", OFFER);
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(full.get("retry-after").is_some());

    // Trickle ICE: as WHIP (§4.3 of both drafts).
    let etag = ok.get("etag").unwrap().to_string();
    let frag = "a=ice-ufrag:zzzz\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\n";
    let sdpfrag = [("content-type", "application/trickle-ice-sdpfrag")];
    assert_eq!(
        h.request(Method::PATCH, &location, &sdpfrag, frag).status,
        StatusCode::PRECONDITION_REQUIRED
    );
    let with_etag = [sdpfrag[0], ("if-match", etag.as_str())];
    assert_eq!(
        h.request(Method::PATCH, &location, &with_etag, frag).status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a new ufrag is an ICE restart"
    );
    assert_eq!(
        h.request(
            Method::PATCH,
            &location,
            &with_etag,
            "a=candidate:1 1 udp 1 10.0.0.2 5 typ host\r\n"
        )
        .status,
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        h.request(Method::DELETE, &location, &[], "").status,
        StatusCode::OK
    );
    assert_eq!(h.endpoint.sessions(), 0);
    assert_eq!(h.mux.len(), 0, "the socket loop ended the session");
    assert_eq!(
        h.request(Method::DELETE, &location, &[], "").status,
        StatusCode::NOT_FOUND
    );
    let preflight = h.request(
        Method::OPTIONS,
        "/whep/cam1",
        &[("access-control-request-method", "POST")],
        "",
    );
    assert_eq!(preflight.status, StatusCode::OK);
    assert!(preflight.get("access-control-allow-methods").is_some());
}

/// A recvonly str0m peer: the browser's side.
struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    connected: bool,
    /// (video?, frame number, RTP time) of what arrived, in order.
    received: Vec<(bool, u64, u64)>,
}

impl Client {
    fn new(now: Instant) -> (Client, String) {
        let addr: SocketAddr = CLIENT.parse().unwrap();
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let client = Client {
            rtc,
            addr,
            pending: Some(pending),
            connected: false,
            received: Vec::new(),
        };
        (client, offer.to_sdp_string())
    }

    fn input(&mut self, input: Input<'_>) {
        let _ = self.rtc.handle_input(input);
    }

    /// Drains str0m: datagrams out, events noted; returns the next deadline.
    fn drain(&mut self, out: &mut Vec<Vec<u8>>) -> Instant {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => out.push(t.contents.to_vec()),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(d)) => {
                    let video = d.params.spec().codec == str0m::format::Codec::H264;
                    let number = if video {
                        // Annex B out of str0m's depacketizer: the number
                        // follows the slice's NAL header.
                        let slice = d
                            .data
                            .windows(5)
                            .position(|w| w[..4] == [0, 0, 0, 1] && (w[4] == 0x65 || w[4] == 0x41));
                        slice
                            .and_then(|i| d.data.get(i + 5..i + 17))
                            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                    } else {
                        d.data
                            .get(1..13)
                            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                    };
                    if let Some(n) = number {
                        self.received.push((video, n, d.time.numer()));
                    }
                }
                Output::Event(_) => {}
            }
        }
    }
}

/// Runs client and server for `d` of simulated time in 1 ms steps (the
/// network delivers within the step); `each_ms` runs at every step.
fn run(h: &mut Harness, c: &mut Client, d: Duration, mut each_ms: impl FnMut(&mut Harness, u64)) {
    let server: SocketAddr = SERVER.parse().unwrap();
    let steps = d.as_millis() as u64;
    for step in 0..steps {
        h.now += Duration::from_millis(1);
        let now = h.now;
        each_ms(h, step);
        h.mux.handle_wakeup(now);
        c.input(Input::Timeout(now));
        h.mux.handle_timeout(now);
        for _ in 0..50 {
            let mut out = Vec::new();
            c.drain(&mut out);
            let mut moved = !out.is_empty();
            for data in out {
                h.mux.handle_datagram(now, c.addr, &data);
            }
            while let Some(dg) = h.mux.poll_transmit() {
                moved = true;
                if let Ok(contents) = dg.data.as_slice().try_into() {
                    c.input(Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: server,
                            destination: c.addr,
                            contents,
                        },
                    ));
                }
            }
            if !moved {
                break;
            }
        }
        h.commands();
    }
}

#[test]
fn a_viewer_connects_and_receives_the_stream_from_a_keyframe() {
    let mut h = harness(8, 256);
    let feed = h.live("cam1");
    let (mut client, offer) = Client::new(h.now);
    let r = h.offer("cam1", &offer);
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let answer = SdpAnswer::from_sdp_string(std::str::from_utf8(&r.body).unwrap()).unwrap();
    let pending = client.pending.take().unwrap();
    client.rtc.sdp_api().accept_answer(pending, answer).unwrap();

    // 3 s of a stream with an IDR every 30 frames (1 s), and audio every 20 ms,
    // starting 100 ms in; the handshake completes within that.
    let start = 100;
    run(&mut h, &mut client, Duration::from_millis(3200), |h, ms| {
        if ms < start {
            return;
        }
        let t = ms - start;
        let arrived = UnixMillis(t);
        if t % 20 == 0 {
            feed.push_frame(&audio(t / 20), arrived);
        }
        // 30 fps: frame n at floor(n * 100 / 3) ms.
        let n = (t * 3).div_ceil(100);
        if n * 100 / 3 == t {
            feed.push_frame(&video(n, n % 30 == 0), arrived);
        }
        let _ = h;
    });
    assert!(client.connected, "the viewer connected");
    let videos: Vec<(u64, u64)> = client
        .received
        .iter()
        .filter(|(v, _, _)| *v)
        .map(|(_, n, t)| (*n, *t))
        .collect();
    let audios = client.received.iter().filter(|(v, _, _)| !*v).count();
    assert!(!videos.is_empty(), "no video arrived");
    // It starts at a keyframe (frame 30 or 60: the first IDR after connecting),
    // and every frame after it arrives, in order, 3000 ticks apart.
    let first = videos[0].0;
    assert_eq!(first % 30, 0, "the first frame is an IDR: {videos:?}");
    let numbers: Vec<u64> = videos.iter().map(|(n, _)| *n).collect();
    let expected: Vec<u64> = (first..first + numbers.len() as u64).collect();
    assert_eq!(numbers, expected);
    for w in videos.windows(2) {
        assert_eq!(w[1].1 - w[0].1, 3000, "RTP times follow the source's");
    }
    assert!(audios > 100, "audio arrived: {audios}");
    // The viewer asked the feed for a keyframe on connecting.
    assert!(feed.keyframe_counts().0 >= 1);
    assert!(feed.take_keyframe_request(h.now));

    // The stream ends: the viewer's session ends, its resource goes.
    h.feeds.close(&feed);
    run(&mut h, &mut client, Duration::from_millis(5), |_, _| {});
    assert_eq!(h.mux.len(), 0);
    assert_eq!(h.endpoint.sessions(), 0);
}
