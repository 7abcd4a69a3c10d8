//! The HTTP layer driven in-process: a real packager session fed with a real
//! encoder capture, and requests answered by `OriginHttp::handle`.

use std::net::SocketAddr;

use super::*;
use crate::config::Config;
use crate::config::LadderMode;
use crate::ingest::{Admission, Claim, Protocol, Publish};
use crate::pipeline::Pipelines;
use crate::store::archive::Archive;
use crate::store::storage::ObjectStorage;

const FIXTURE: &[u8] =
    include_bytes!("../../../../packager/tests/fixtures/lavfi_h264_aac_zerolatency.ts");
const TOKEN: &str = "0123456789abcdef-admin";

struct Setup {
    http: Arc<OriginHttp>,
    hub: Arc<Hub>,
    publisher: Pipelines,
    session: Option<Box<dyn Publish>>,
    archive: Option<Arc<Archive>>,
}

impl Setup {
    fn session(&mut self) -> &mut Box<dyn Publish> {
        self.session.as_mut().unwrap()
    }
}

fn claim() -> Claim<'static> {
    Claim {
        stream: "cam1",
        key: Some("dev-key"),
        peer: "127.0.0.1:5000".parse::<SocketAddr>().unwrap(),
        protocol: Protocol::Srt,
    }
}

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "brook-http-{}",
        crate::serve::hub::new_session_id()
    ))
}

async fn setup_with(mut config: Config, archive_dir: Option<&std::path::Path>) -> Setup {
    // The HTTP layer's behaviour, on the encoder's own rendition (no transcoder).
    config.ladder.mode = LadderMode::Passthrough;
    let config = Arc::new(config);
    let hub = Arc::new(Hub::default());
    let metrics = Arc::new(Metrics::default());
    let archive = match archive_dir {
        Some(dir) => Some(
            Archive::open(
                Arc::new(ObjectStorage::local(dir).unwrap()),
                metrics.clone(),
                &tokio::runtime::Handle::current(),
            )
            .await
            .unwrap(),
        ),
        None => None,
    };
    let publisher = Pipelines::new(
        hub.clone(),
        config.clone(),
        metrics.clone(),
        archive.clone(),
        tokio::runtime::Handle::current(),
    );
    let session = publisher.open(&claim()).unwrap();
    let admin = admin::Admin {
        token: Some(TOKEN.into()),
        metrics_need_token: false,
        hub: hub.clone(),
        metrics: metrics.clone(),
        publisher: Some(Arc::new(publisher.clone())),
        archive: archive.clone(),
        keys: None,
    };
    Setup {
        http: Arc::new(
            OriginHttp::new(hub.clone(), config.hls.clone())
                .with_metrics(metrics)
                .with_archive(archive.clone())
                .with_admin(Some(admin)),
        ),
        hub,
        publisher,
        session: Some(session),
        archive,
    }
}

async fn setup(hls: HlsConfig) -> Setup {
    let mut config = Config {
        hls,
        ..Config::default()
    };
    config.publish.reconnect_grace_ms = 0;
    setup_with(config, None).await
}

fn feed(session: &mut Box<dyn Publish>, ts: &[u8]) {
    for chunk in ts.chunks(1316) {
        session.ts(chunk, crate::unix_now()).unwrap();
    }
}

async fn request(
    http: &OriginHttp,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Reply {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, v.parse().unwrap());
    }
    let req = Request {
        method: &method,
        path,
        query,
        headers: &map,
        peer: Some("127.0.0.1:40000".parse().unwrap()),
    };
    http.handle(&req).await
}

async fn get(http: &OriginHttp, path: &str, query: Option<&str>) -> Reply {
    request(http, Method::GET, path, query, &[]).await
}

fn session_id(hub: &Hub) -> String {
    hub.stream("cam1").unwrap().snapshot().session.clone()
}

fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.bytes()).into_owned()
}

#[tokio::test]
async fn playlists_objects_and_errors() {
    let mut s = setup(HlsConfig::default()).await;
    feed(s.session(), &FIXTURE[..FIXTURE.len() * 3 / 4]);
    let sid = session_id(&s.hub);

    let mv = get(&s.http, "/live/cam1/index.m3u8", None).await;
    assert_eq!(mv.status, StatusCode::OK);
    assert!(
        body(&mv).contains(&format!("\n{sid}/video.m3u8\n")),
        "{}",
        body(&mv)
    );

    let media_path = format!("/live/cam1/{sid}/video.m3u8");
    let media = get(&s.http, &media_path, None).await;
    assert_eq!(media.status, StatusCode::OK);
    let text = body(&media);
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"), "{text}");
    assert_eq!(media.get("cache-control"), Some("no-cache"));

    let init = get(&s.http, &format!("/live/cam1/{sid}/video-init.mp4"), None).await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(&init.bytes()[4..8], b"ftyp");
    assert!(init.get("cache-control").unwrap().contains("immutable"));
    assert_eq!(init.get("accept-ranges"), Some("bytes"));

    for (path, query, status) in [
        ("/live/nope/index.m3u8", None, StatusCode::NOT_FOUND),
        ("/live/cam1/0000/video.m3u8", None, StatusCode::NOT_FOUND),
        (
            "/live/cam1/0000000000000000/video.m3u8",
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            &format!("/live/cam1/{sid}/video-seg999.m4s") as &str,
            None,
            StatusCode::NOT_FOUND,
        ),
        ("/elsewhere", None, StatusCode::NOT_FOUND),
        (&media_path, Some("_HLS_msn=abc"), StatusCode::BAD_REQUEST),
        (&media_path, Some("_HLS_part=1"), StatusCode::BAD_REQUEST),
        (&media_path, Some("_HLS_msn=99"), StatusCode::BAD_REQUEST),
        (
            &media_path,
            Some("_HLS_skip=maybe"),
            StatusCode::BAD_REQUEST,
        ),
        (&media_path, Some("_HLS_msn=0&_HLS_part=0"), StatusCode::OK),
        // Traversal and odd names never reach the hub or the disk.
        ("/live/../etc/passwd", None, StatusCode::NOT_FOUND),
        (
            &format!("/live/cam1/{sid}/..%2f..%2fetc%2fpasswd") as &str,
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            &format!("/live/cam1/{sid}/.tmp-1-1") as &str,
            None,
            StatusCode::NOT_FOUND,
        ),
        ("/live/cam1/../cam1/index.m3u8", None, StatusCode::NOT_FOUND),
        ("/live/cam1%2f..%2f/index.m3u8", None, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(
            get(&s.http, path, query).await.status,
            status,
            "{path}?{query:?}"
        );
    }
    let post = request(&s.http, Method::POST, &media_path, None, &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    let options = request(&s.http, Method::OPTIONS, &media_path, None, &[]).await;
    assert_eq!(options.status, StatusCode::NO_CONTENT);
    assert!(options.get("access-control-allow-methods").is_some());
}

#[tokio::test]
async fn etags_compression_and_ranges() {
    let mut s = setup(HlsConfig::default()).await;
    feed(s.session(), &FIXTURE[..FIXTURE.len() * 3 / 4]);
    let sid = session_id(&s.hub);
    let media_path = format!("/live/cam1/{sid}/video.m3u8");

    let plain = get(&s.http, &media_path, None).await;
    let etag = plain.get("etag").unwrap().to_string();
    let again = request(
        &s.http,
        Method::GET,
        &media_path,
        None,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.bytes().is_empty());
    // RFC 9110 §8.6: a 304 carries the length of the representation the client
    // holds, never `content-length: 0`.
    let head = response_header(&again).unwrap();
    assert_eq!(
        head.headers.get("content-length").unwrap(),
        &plain.bytes().len().to_string()
    );

    let gz = request(
        &s.http,
        Method::GET,
        &media_path,
        None,
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(gz.get("content-encoding"), Some("gzip"));
    assert_ne!(
        gz.get("etag").unwrap(),
        etag,
        "each coding has its own ETag"
    );
    assert_eq!(gz.get("vary"), Some("accept-encoding"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gz.bytes()[..]),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, body(&plain));
    let br = request(
        &s.http,
        Method::GET,
        &media_path,
        None,
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert_eq!(br.get("content-encoding"), Some("br"));
    assert!(br.bytes().len() < plain.bytes().len());

    let init_path = format!("/live/cam1/{sid}/video-init.mp4");
    let init = get(&s.http, &init_path, None).await;
    let len = init.bytes().len();
    let part = request(
        &s.http,
        Method::GET,
        &init_path,
        None,
        &[("range", "bytes=4-7")],
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.bytes()[..], b"ftyp");
    assert_eq!(
        part.get("content-range").unwrap(),
        format!("bytes 4-7/{len}")
    );
    let tail = request(
        &s.http,
        Method::GET,
        &init_path,
        None,
        &[("range", "bytes=-4")],
    )
    .await;
    assert_eq!(&tail.bytes()[..], &init.bytes()[len - 4..]);
    let past = request(
        &s.http,
        Method::GET,
        &init_path,
        None,
        &[("range", "bytes=99999-")],
    )
    .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.get("content-range").unwrap(), format!("bytes */{len}"));
    let stale = request(
        &s.http,
        Method::GET,
        &init_path,
        None,
        &[("range", "bytes=4-7"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::OK,
        "If-Range mismatch sends it all"
    );
    let etag = init.get("etag").unwrap();
    let cached = request(
        &s.http,
        Method::GET,
        &init_path,
        None,
        &[("if-none-match", etag)],
    )
    .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    let head = response_header(&cached).unwrap();
    assert_eq!(
        head.headers.get("content-length").unwrap(),
        &init.bytes().len().to_string()
    );
}

/// RFC 9110 §8.6: no `content-length` on a 204 (the preflight answer).
#[tokio::test]
async fn no_content_length_on_204() {
    let s = setup(HlsConfig::default()).await;
    let preflight = request(
        &s.http,
        Method::OPTIONS,
        "/live/cam1/index.m3u8",
        None,
        &[("access-control-request-headers", "range")],
    )
    .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    let head = response_header(&preflight).unwrap();
    assert!(head.headers.get("content-length").is_none());
    assert_eq!(
        head.headers.get("access-control-allow-headers").unwrap(),
        "range"
    );
    assert_eq!(
        head.headers.get("access-control-allow-origin").unwrap(),
        "*"
    );
}

#[tokio::test]
async fn delta_updates_skip_old_segments() {
    let mut s = setup(HlsConfig::default()).await;
    feed(s.session(), FIXTURE);
    let sid = session_id(&s.hub);
    let path = format!("/live/cam1/{sid}/video.m3u8");
    let full = body(&get(&s.http, &path, None).await);
    assert!(full.contains("CAN-SKIP-UNTIL="), "{full}");
    let delta = get(&s.http, &path, Some("_HLS_skip=YES")).await;
    let text = body(&delta);
    let media = s
        .hub
        .stream("cam1")
        .unwrap()
        .snapshot()
        .playlist("video.m3u8")
        .map(parsed)
        .unwrap();
    if media.delta(false).is_some() {
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{text}");
        assert!(text.len() < full.len());
        assert_ne!(
            delta.get("etag"),
            get(&s.http, &path, None).await.get("etag")
        );
    } else {
        assert_eq!(text, full, "nothing to skip yet: the full playlist");
    }
}

#[tokio::test]
async fn blocking_reload_waits_for_the_part() {
    let mut s = setup(HlsConfig::default()).await;
    feed(s.session(), &FIXTURE[..FIXTURE.len() / 3]);
    let sid = session_id(&s.hub);
    let stream = s.hub.stream("cam1").unwrap();
    let media = stream
        .snapshot()
        .playlist("video.m3u8")
        .map(parsed)
        .unwrap();
    let (msn, part) = (media.next_msn(), media.trailing_parts.len() as u64);
    let hint = media.preload_part().unwrap().to_string();

    let http = s.http.clone();
    let path = format!("/live/cam1/{sid}/video.m3u8");
    let query = format!("_HLS_msn={msn}&_HLS_part={part}");
    let blocked = tokio::spawn(async move { get(&http, &path, Some(&query)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!blocked.is_finished(), "must wait for part {msn}.{part}");
    assert_eq!(stream.blocked_requests(), 1);
    assert_eq!(hint, format!("video-part{msn}.{part}.m4s"));

    feed(s.session(), &FIXTURE[FIXTURE.len() / 3..]);
    let reply = blocked.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let text = body(&reply);
    assert!(text.contains(&format!("part{msn}.{part}.m4s")), "{text}");
    assert!(reply.get("cache-control").unwrap().contains("max-age"));
    let part_reply = get(&s.http, &format!("/live/cam1/{sid}/{hint}"), None).await;
    assert_eq!(part_reply.status, StatusCode::OK);
    assert_eq!(&part_reply.bytes()[4..8], b"moof");
    assert!(part_reply.part_published.is_some());
    assert_eq!(stream.blocked_requests(), 0);
    assert_eq!(stream.viewers(), 1);
}

#[tokio::test]
async fn hinted_part_streams_while_it_grows() {
    let mut s = setup(HlsConfig::default()).await;
    feed(s.session(), &FIXTURE[..FIXTURE.len() / 3]);
    let sid = session_id(&s.hub);
    let stream = s.hub.stream("cam1").unwrap();
    let hint = stream
        .snapshot()
        .playlist("video.m3u8")
        .map(parsed)
        .unwrap()
        .preload_part()
        .unwrap()
        .to_string();
    // The packager sends every frame of the hinted part as a CMAF chunk: a request
    // for it is answered at once (or as soon as its first frame exists) and the
    // part streams as it is made.
    let http = s.http.clone();
    let path = format!("/live/cam1/{sid}/{hint}");
    let waiting = tokio::spawn(async move { get(&http, &path, None).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    feed(s.session(), &FIXTURE[FIXTURE.len() / 3..]);
    let reply = waiting.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let complete = stream.object(&hint).expect("the part was completed").data;
    let streamed: Vec<u8> = match &reply.body {
        Body::Growing(g) => {
            assert_eq!(reply.get("transfer-encoding"), None, "set when writing");
            let mut got = Vec::new();
            let mut from = 0;
            loop {
                let (chunks, done) = g.next(from).await.expect("not abandoned");
                from += chunks.len();
                for c in chunks {
                    got.extend_from_slice(&c);
                }
                if done {
                    break;
                }
            }
            got
        }
        _ => reply.bytes().to_vec(),
    };
    assert_eq!(streamed, complete.to_vec(), "streamed bytes are the part");
    assert_eq!(&streamed[4..8], b"moof");
}

#[tokio::test]
async fn blocking_reload_times_out_with_503() {
    let mut s = setup(HlsConfig {
        blocking_timeout_ms: 150,
        startup_wait_ms: 150,
    })
    .await;
    feed(s.session(), &FIXTURE[..FIXTURE.len() * 3 / 4]);
    let sid = session_id(&s.hub);
    let media = s
        .hub
        .stream("cam1")
        .unwrap()
        .snapshot()
        .playlist("video.m3u8")
        .map(parsed)
        .unwrap();
    let query = format!(
        "_HLS_msn={}&_HLS_part={}",
        media.next_msn(),
        media.trailing_parts.len() + 1
    );
    let reply = get(
        &s.http,
        &format!("/live/cam1/{sid}/video.m3u8"),
        Some(&query),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn ended_stream_answers_at_once_with_endlist() {
    let mut s = setup(HlsConfig::default()).await;
    feed(s.session(), FIXTURE);
    let sid = session_id(&s.hub);
    s.session.take().unwrap().close("test over");
    let stream = s.hub.stream("cam1").unwrap();
    assert!(!stream.snapshot().live);
    let reply = get(
        &s.http,
        &format!("/live/cam1/{sid}/video.m3u8"),
        Some("_HLS_msn=50&_HLS_part=0"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(body(&reply).ends_with("#EXT-X-ENDLIST\n"));
}

#[tokio::test]
async fn archive_serves_the_vod_after_the_end_and_after_a_restart() {
    let dir = temp_dir();
    let mut config = Config::default();
    config.publish.reconnect_grace_ms = 0;
    let mut s = setup_with(config.clone(), Some(&dir)).await;
    feed(s.session(), FIXTURE);
    let sid = session_id(&s.hub);
    s.session.take().unwrap().close("done");
    s.archive.as_ref().unwrap().flush().await;
    let last = s
        .hub
        .stream("cam1")
        .unwrap()
        .snapshot()
        .playlist("video.m3u8")
        .map(parsed)
        .unwrap();

    let path = format!("/live/cam1/{sid}/video.m3u8");
    let vod = body(&get(&s.http, &path, None).await);
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{vod}");
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"));
    let segments: Vec<&str> = vod.lines().filter(|l| l.starts_with("video-seg")).collect();
    assert_eq!(segments.len() as u64, last.next_msn(), "every segment");
    assert!(!vod.contains("#EXT-X-PART:"));

    // A restarted origin: empty hub, same archive directory.
    let restarted = setup_with(config, Some(&dir)).await;
    drop(restarted.session); // a new publish session on cam1 in the new hub
    let fresh = Arc::new(
        OriginHttp::new(Arc::new(Hub::default()), HlsConfig::default())
            .with_archive(restarted.archive.clone()),
    );
    assert_eq!(body(&get(&fresh, &path, None).await), vod);
    let mv = body(&get(&fresh, "/live/cam1/index.m3u8", None).await);
    assert!(mv.contains(&format!("\n{sid}/video.m3u8\n")), "{mv}");
    for name in ["video-init.mp4", segments[0], segments[segments.len() - 1]] {
        let r = get(&fresh, &format!("/live/cam1/{sid}/{name}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
        assert!(r.get("cache-control").unwrap().contains("immutable"));
    }
    let missing = get(&fresh, &format!("/live/cam1/{sid}/video-part0.0.m4s"), None).await;
    assert_eq!(
        missing.status,
        StatusCode::NOT_FOUND,
        "parts are not archived"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn admin_api_and_metrics() {
    let mut s = setup(HlsConfig::default()).await;
    feed(s.session(), &FIXTURE[..FIXTURE.len() * 3 / 4]);
    let bearer = format!("Bearer {TOKEN}");
    for auth in [None, Some("Bearer wrong"), Some(TOKEN)] {
        let headers: Vec<(&'static str, &str)> =
            auth.map(|a| ("authorization", a)).into_iter().collect();
        let r = request(&s.http, Method::GET, "/admin/streams", None, &headers).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body(&r), "unauthorized\n", "no hint of which check failed");
    }
    let auth = [("authorization", bearer.as_str())];
    let list = request(&s.http, Method::GET, "/admin/streams", None, &auth).await;
    assert_eq!(list.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&list.bytes()).unwrap();
    assert_eq!(v["streams"][0]["name"], "cam1");
    assert_eq!(v["streams"][0]["live"], true);
    assert!(v["streams"][0]["ingest_bytes"].as_u64().unwrap() > 0);

    let metrics = body(&get(&s.http, "/metrics", None).await);
    assert!(
        metrics.contains("brook_ingest_bytes_total{stream=\"cam1\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("brook_streams_active 1\n"));

    let kick = request(&s.http, Method::GET, "/admin/streams/cam1/end", None, &auth).await;
    assert_eq!(kick.status, StatusCode::METHOD_NOT_ALLOWED);
    let end = request(
        &s.http,
        Method::POST,
        "/admin/streams/cam1/end",
        None,
        &auth,
    )
    .await;
    assert_eq!(end.status, StatusCode::OK);
    assert!(
        s.session().ts(&FIXTURE[..1316], crate::unix_now()).is_err(),
        "the publisher is cut off"
    );
    assert!(s.hub.stream("cam1").unwrap().snapshot().ended);
    let again = request(
        &s.http,
        Method::POST,
        "/admin/streams/cam1/kick",
        None,
        &auth,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let _ = &s.publisher;
}

/// The media playlist a hub entry serves, parsed back (the hub keeps only the text).
fn parsed(entry: &crate::serve::hub::PlaylistEntry) -> brook_packager::hls::MediaPlaylist {
    std::str::from_utf8(&entry.text.identity)
        .unwrap()
        .parse()
        .unwrap()
}

/// A [`Demand`] that starts `cam1` (the fixture, through the real pipeline)
/// a moment after it is asked for, and says `cam2` is on demand but never
/// starts it.
struct StartsCam1 {
    asked: std::sync::Mutex<Vec<String>>,
    start: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Demand for StartsCam1 {
    fn wanted(&self, stream: &str) -> bool {
        self.asked.lock().unwrap().push(stream.to_owned());
        if stream == "cam1" {
            let _ = self.start.send(());
        }
        stream == "cam1" || stream == "cam2"
    }
}

/// A stream started on demand: the multivariant request that asks for it is
/// held until the stream has its playlist, and answered 200; asking again
/// after the session ended waits for the next session, not the ended one; a
/// stream that is not on demand is still a 404 at once, and one that does not
/// start within `startup_wait_ms` a 503.
#[tokio::test]
async fn on_demand_streams_are_held_until_they_start() {
    let mut config = Config {
        hls: HlsConfig {
            startup_wait_ms: 1500,
            ..HlsConfig::default()
        },
        ..Config::default()
    };
    config.publish.reconnect_grace_ms = 0;
    config.ladder.mode = LadderMode::Passthrough;
    let config = Arc::new(config);
    let hub = Arc::new(Hub::default());
    let publisher = Pipelines::new(
        hub.clone(),
        config.clone(),
        Arc::new(Metrics::default()),
        None,
        tokio::runtime::Handle::current(),
    );
    let (start, mut starts) = tokio::sync::mpsc::unbounded_channel();
    let demand = Arc::new(StartsCam1 {
        asked: Default::default(),
        start,
    });
    let http = OriginHttp::new(hub.clone(), config.hls.clone()).with_demand(Some(demand.clone()));
    let (sessions_tx, mut sessions) = tokio::sync::mpsc::unbounded_channel();
    // The "pull": each request starts a session (once per start signal
    // while none runs), 100 ms later, and keeps it until the test ends it.
    let p = publisher.clone();
    tokio::spawn(async move {
        while starts.recv().await.is_some() {
            if p.is_publishing("cam1") {
                continue;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut session = p.open(&claim()).unwrap();
            feed(&mut session, FIXTURE);
            sessions_tx.send(session).unwrap();
        }
    });

    assert!(hub.stream("cam1").is_none());
    let mv = get(&http, "/live/cam1/index.m3u8", None).await;
    assert_eq!(mv.status, StatusCode::OK, "{}", body(&mv));
    let first = session_id(&hub);
    assert!(
        body(&mv).contains(&format!("{first}/video.m3u8")),
        "{}",
        body(&mv)
    );
    let media = get(&http, &format!("/live/cam1/{first}/video.m3u8"), None).await;
    assert_eq!(media.status, StatusCode::OK);
    assert_eq!(
        demand.asked.lock().unwrap().as_slice(),
        ["cam1", "cam1"],
        "the multivariant and the media playlist requests both told"
    );

    sessions.recv().await.unwrap().close("idle");
    assert!(hub.stream("cam1").unwrap().snapshot().ended);
    let again = get(&http, "/live/cam1/index.m3u8", None).await;
    assert_eq!(again.status, StatusCode::OK);
    let second = session_id(&hub);
    assert_ne!(second, first);
    assert!(body(&again).contains(&format!("{second}/video.m3u8")));

    let started = Instant::now();
    let other = get(&http, "/live/other/index.m3u8", None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(started.elapsed() < Duration::from_millis(500), "not held");
    let late = get(&http, "/live/cam2/index.m3u8", None).await;
    assert_eq!(late.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(late.get("retry-after"), Some("1"));
}
