//! The WHIP endpoint's HTTP semantics and the resource lifecycle, on simulated
//! time: requests go through [`Endpoint::handle`], the sessions it creates into
//! a [`Mux`] driven by hand.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use brook_packager::media::{Frame, TrackInfo};
use http::header::HeaderValue;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;
use crate::ingest::whip::mux::Mux;
use crate::ingest::{Admission, Claim, Publish, Refusal, Stop};

const OFFER: &str = include_str!("../../../../tests/fixtures/chromium_whip_offer.sdp");
const OFFER_VP8: &str = include_str!("../../../../tests/fixtures/chromium_whip_offer_vp8.sdp");
const KEY: &str = "s3cret-key";

/// Admits `cam1` with [`KEY`]; `busy` is already published.
#[derive(Default)]
struct Sink {
    opened: AtomicUsize,
}

impl Admission for Sink {
    fn admit(&self, claim: &Claim<'_>) -> Result<(), Refusal> {
        match claim.stream {
            "cam1" if claim.key == Some(KEY) => Ok(()),
            "busy" => Err(Refusal::Busy("stream busy already has a publisher".into())),
            _ => Err(Refusal::Denied("not configured, or a wrong key".into())),
        }
    }

    fn open(&self, _: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(NullSink))
    }
}

struct NullSink;

impl Publish for NullSink {
    fn ts(&mut self, _: &[u8], _: UnixMillis) -> Result<(), Stop> {
        Ok(())
    }
    fn tracks(&mut self, _: Vec<TrackInfo>) -> Result<(), Stop> {
        Ok(())
    }
    fn frame(&mut self, _: Frame, _: UnixMillis) -> Result<(), Stop> {
        Ok(())
    }
    fn close(self: Box<Self>, _: &str) {}
}

struct Harness {
    endpoint: Endpoint,
    control: UnboundedReceiver<Command>,
    mux: Mux,
    now: Instant,
}

fn harness(settings: EndpointSettings) -> Harness {
    let candidates = vec!["127.0.0.1:8189".parse().unwrap()];
    let mut session = SessionConfig::new(candidates.clone()).unwrap();
    session.ice_timeout = Duration::from_secs(10);
    let (tx, rx) = unbounded_channel();
    Harness {
        endpoint: Endpoint::new(Arc::new(Sink::default()), session, settings, tx),
        control: rx,
        mux: Mux::new(candidates),
        now: Instant::now(),
    }
}

impl Harness {
    fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> WhipReply {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = WhipRequest {
            method: &method,
            path,
            headers: &map,
            body,
            peer: None,
        };
        let reply = self
            .endpoint
            .handle(&req, self.now, UnixMillis(1_795_000_000_000));
        // The socket loop's part: take what the endpoint handed over.
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
        self.settle();
        reply
    }

    /// Advances simulated time, driving the mux as the socket loop would.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(d) = self.mux.next_deadline().filter(|d| *d <= end) {
            self.now = d.max(self.now);
            self.mux.handle_timeout(self.now);
            self.settle();
        }
        self.now = end;
        self.mux.handle_timeout(self.now);
        self.settle();
    }

    fn settle(&mut self) {
        while self.mux.poll_transmit().is_some() {}
        while let Some((id, _)) = self.mux.poll_ended() {
            self.endpoint.forget(&id);
        }
        self.mux.check_invariants();
    }

    fn post(&mut self, stream: &str, key: Option<&str>, offer: &str) -> WhipReply {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/sdp")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.request(
            Method::POST,
            &format!("/whip/{stream}"),
            &headers,
            Bytes::from(offer.to_string()),
        )
    }
}

fn body(r: &WhipReply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn post_answers_201_with_location_etag_and_an_ice_lite_answer() {
    let mut h = harness(EndpointSettings::default());
    let r = h.post("cam1", Some(KEY), OFFER);
    assert_eq!(r.status, StatusCode::CREATED, "{}", body(&r));
    assert_eq!(r.get("content-type"), Some("application/sdp"));
    let location = r.get("location").unwrap();
    assert!(location.starts_with("/whip/cam1/") && location.len() == "/whip/cam1/".len() + 32);
    assert!(r.get("etag").unwrap().starts_with('"'));
    assert_eq!(
        r.get("accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    let answer = body(&r);
    assert!(answer.contains("a=ice-lite"));
    assert!(answer.contains("a=candidate:") && answer.contains("127.0.0.1 8189 typ host"));
    assert!(answer.contains("H264/90000") && answer.contains("opus/48000/2"));
    assert_eq!(h.mux.len(), 1);
    assert_eq!(h.endpoint.sessions(), 1);
}

#[test]
fn bad_requests_get_the_status_the_spec_names() {
    let settings = EndpointSettings {
        max_offer_bytes: 4096,
        ..EndpointSettings::default()
    };
    let mut h = harness(settings);
    // Keys missing or wrong, and an unconfigured stream, all → 401 with a
    // Bearer challenge and no hint (nor which stream names exist); a stream
    // already published → 409.
    for (stream, key) in [
        ("cam1", None),
        ("cam1", Some("wrong")),
        ("other", Some(KEY)),
    ] {
        let r = h.post(stream, key, OFFER);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{stream} {key:?}");
        assert_eq!(r.get("www-authenticate"), Some("Bearer realm=\"brook\""));
        assert_eq!(body(&r), "unauthorized\n");
    }
    assert_eq!(
        h.post("busy", Some(KEY), OFFER).status,
        StatusCode::CONFLICT
    );
    // Malformed SDP → 400 with the reason.
    let r = h.post("cam1", Some(KEY), "v=0\r\nthis is not sdp\r\n");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        body(&r).starts_with("malformed SDP offer: line 2"),
        "{}",
        body(&r)
    );
    // No H.264 → 422 saying what was offered.
    let r = h.post("cam1", Some(KEY), OFFER_VP8);
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body(&r).contains("no H.264") && body(&r).contains("VP8"),
        "{}",
        body(&r)
    );
    // Wrong content type → 415 (before the key is even looked at).
    let r = h.request(
        Method::POST,
        "/whip/cam1",
        &[("content-type", "text/plain")],
        Bytes::new(),
    );
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.get("accept-post"), Some("application/sdp"));
    // Bad stream names and unknown paths → 404; other methods → 405 + Allow.
    assert_eq!(
        h.post("a.b", Some(KEY), OFFER).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.request(Method::GET, "/whip/cam1/x/y", &[], Bytes::new())
            .status,
        StatusCode::NOT_FOUND
    );
    let r = h.request(Method::PUT, "/whip/cam1", &[], Bytes::new());
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.get("allow"), Some("POST, OPTIONS"));
    // GET on the endpoint: 2xx without content (RFC 9725 §4.1).
    assert_eq!(
        h.request(Method::GET, "/whip/cam1", &[], Bytes::new())
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.mux.len(), 0, "nothing was created");
}

#[test]
fn delete_ends_the_session_and_unknown_resources_are_404() {
    let mut h = harness(EndpointSettings::default());
    let r = h.post("cam1", Some(KEY), OFFER);
    let location = r.get("location").unwrap().to_string();
    let bearer = [("authorization", "Bearer s3cret-key")];
    // The resource needs the key too.
    let r = h.request(Method::DELETE, &location, &[], Bytes::new());
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h.request(Method::DELETE, &location, &bearer, Bytes::new());
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.mux.len(), 0);
    let r = h.request(Method::DELETE, &location, &bearer, Bytes::new());
    assert_eq!(r.status, StatusCode::NOT_FOUND, "deleted once");
    let unknown = format!("/whip/cam1/{}", "0".repeat(32));
    assert_eq!(
        h.request(Method::DELETE, &unknown, &bearer, Bytes::new())
            .status,
        StatusCode::NOT_FOUND
    );
    let wrong_stream = location.replace("/cam1/", "/cam2/");
    assert_eq!(
        h.request(Method::DELETE, &wrong_stream, &bearer, Bytes::new())
            .status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn a_session_whose_ice_never_completes_is_cleaned_up() {
    let mut h = harness(EndpointSettings::default());
    let location = h
        .post("cam1", Some(KEY), OFFER)
        .get("location")
        .unwrap()
        .to_string();
    h.advance(Duration::from_millis(9_900));
    assert_eq!(h.mux.len(), 1, "still within the ICE timeout");
    h.advance(Duration::from_millis(200));
    assert_eq!(h.mux.len(), 0, "dropped after 10 s without ICE");
    assert_eq!(h.endpoint.sessions(), 0);
    let r = h.request(
        Method::DELETE,
        &location,
        &[("authorization", "Bearer s3cret-key")],
        Bytes::new(),
    );
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[test]
fn session_limit_is_a_503() {
    let settings = EndpointSettings {
        max_sessions: 2,
        ..EndpointSettings::default()
    };
    let mut h = harness(settings);
    assert_eq!(h.post("cam1", Some(KEY), OFFER).status, StatusCode::CREATED);
    assert_eq!(h.post("cam1", Some(KEY), OFFER).status, StatusCode::CREATED);
    let r = h.post("cam1", Some(KEY), OFFER);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.get("retry-after").is_some());
    h.advance(Duration::from_secs(11));
    assert_eq!(
        h.post("cam1", Some(KEY), OFFER).status,
        StatusCode::CREATED,
        "room again"
    );
}

/// Concurrent offers cannot together exceed `max_sessions`: the limit is
/// checked and the slot taken at once.
#[test]
fn concurrent_offers_respect_the_session_limit() {
    let candidates = vec!["127.0.0.1:8189".parse().unwrap()];
    let session = SessionConfig::new(candidates).unwrap();
    let (tx, _rx) = unbounded_channel();
    let settings = EndpointSettings {
        max_sessions: 2,
        ..EndpointSettings::default()
    };
    let endpoint = Arc::new(Endpoint::new(
        Arc::new(Sink::default()),
        session,
        settings,
        tx,
    ));
    let start = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (endpoint, start) = (endpoint.clone(), start.clone());
            std::thread::spawn(move || {
                let mut map = HeaderMap::new();
                map.insert("content-type", HeaderValue::from_static("application/sdp"));
                let auth = format!("Bearer {KEY}");
                map.insert("authorization", HeaderValue::from_str(&auth).unwrap());
                let req = WhipRequest {
                    method: &Method::POST,
                    path: "/whip/cam1",
                    headers: &map,
                    body: Bytes::from_static(OFFER.as_bytes()),
                    peer: None,
                };
                start.wait();
                endpoint
                    .handle(&req, Instant::now(), UnixMillis(1_795_000_000_000))
                    .status
            })
        })
        .collect();
    let created = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|s| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 2);
    assert_eq!(endpoint.sessions(), 2);
}

#[test]
fn patch_trickle_is_accepted_restart_is_422() {
    let mut h = harness(EndpointSettings::default());
    let r = h.post("cam1", Some(KEY), OFFER);
    let location = r.get("location").unwrap().to_string();
    let etag = r.get("etag").unwrap().to_string();
    let frag = "a=ice-ufrag:y3NF\r\na=ice-pwd:5vkNFXe9S4UNcQeMeVvMPEqt\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 198.51.100.7 50000 typ host\r\n";
    let patch = |h: &mut Harness, extra: &[(&str, &str)], body: &str| {
        let mut headers = vec![
            ("authorization", "Bearer s3cret-key"),
            ("content-type", "application/trickle-ice-sdpfrag"),
        ];
        headers.extend_from_slice(extra);
        h.request(
            Method::PATCH,
            &location,
            &headers,
            Bytes::from(body.to_string()),
        )
    };
    let r = patch(&mut h, &[("if-match", &etag)], frag);
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.get("etag").is_none(),
        "§4.3.2: no ETag on a trickle answer"
    );
    assert_eq!(
        patch(&mut h, &[], frag).status,
        StatusCode::PRECONDITION_REQUIRED
    );
    assert_eq!(
        patch(&mut h, &[("if-match", "\"stale\"")], frag).status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        patch(&mut h, &[("if-match", "*")], frag).status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let restart = frag.replace("y3NF", "n3wU");
    assert_eq!(
        patch(&mut h, &[("if-match", &etag)], &restart).status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        patch(&mut h, &[("if-match", &etag)], "garbage").status,
        StatusCode::BAD_REQUEST
    );
    let r = h.request(
        Method::PATCH,
        &location,
        &[
            ("authorization", "Bearer s3cret-key"),
            ("content-type", "application/sdp"),
            ("if-match", &etag),
        ],
        Bytes::new(),
    );
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h.mux.len(), 1, "PATCH never ends a session");
}

#[test]
fn options_answer_cors_and_ice_servers_only_to_a_publisher_with_the_key() {
    let settings = EndpointSettings {
        ice_servers: vec![
            IceServer {
                urls: vec!["stun:stun.example.net".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec!["turn:turn.example.net?transport=udp".into()],
                username: Some("user".into()),
                credential: Some("pass".into()),
            },
        ],
        ..EndpointSettings::default()
    };
    let mut h = harness(settings);
    // A CORS preflight: methods and the headers WHIP sends, no ICE servers.
    let r = h.request(
        Method::OPTIONS,
        "/whip/cam1",
        &[
            ("access-control-request-method", "POST"),
            ("origin", "https://studio.example"),
        ],
        Bytes::new(),
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.get("accept-post"), Some("application/sdp"));
    assert!(r
        .get("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    assert!(r
        .get("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(r.get_all("link").count(), 0);
    // A plain OPTIONS without the stream's key: no ICE servers (their TURN
    // credentials are the operator's); with it, and the 201: one Link per
    // server URL.
    for auth in [None, Some("Bearer wrong-key")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = h.request(Method::OPTIONS, "/whip/cam1", &headers, Bytes::new());
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.get_all("link").count(), 0, "{auth:?}");
    }
    let bearer = format!("bearer {KEY}");
    let r = h.request(
        Method::OPTIONS,
        "/whip/cam1",
        &[("authorization", bearer.as_str())],
        Bytes::new(),
    );
    let links: Vec<&str> = r.get_all("link").collect();
    assert_eq!(
        links,
        [
            "<stun:stun.example.net>; rel=\"ice-server\"",
            "<turn:turn.example.net?transport=udp>; rel=\"ice-server\"; username=\"user\"; credential=\"pass\"; credential-type=\"password\"",
        ]
    );
    let r = h.post("cam1", Some(KEY), OFFER);
    assert_eq!(r.get_all("link").count(), 2);
}

#[test]
fn serves_the_broadcaster_page() {
    let mut h = harness(EndpointSettings::default());
    for (path, kind) in [
        ("/whip/", "text/html"),
        ("/whip/publish.js", "text/javascript"),
        ("/whip/style.css", "text/css"),
    ] {
        let r = h.request(Method::GET, path, &[], Bytes::new());
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.get("content-type").unwrap().starts_with(kind));
        assert!(!r.body.is_empty());
    }
}
