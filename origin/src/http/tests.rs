//! The HTTP layer driven in-process: a real packager session fed with a real
//! encoder capture, and requests answered by `OriginHttp::handle`.

use std::net::SocketAddr;

use super::*;
use crate::config::Config;
use crate::publish::Publisher;
use crate::srt::{IngestSink, PublishRequest, PublishSession};

const FIXTURE: &[u8] =
    include_bytes!("../../../packager/tests/fixtures/lavfi_h264_aac_zerolatency.ts");

struct Setup {
    http: Arc<OriginHttp>,
    hub: Arc<Hub>,
    session: Box<dyn PublishSession>,
}

fn setup(hls: HlsConfig) -> Setup {
    let config = Arc::new(Config::default());
    let hub = Arc::new(Hub::default());
    let publisher = Publisher::new(hub.clone(), config);
    let req = PublishRequest::parse(b"publish:live/cam1:dev-key").unwrap();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let session = publisher.open(&req, peer).unwrap();
    Setup {
        http: Arc::new(OriginHttp::new(hub.clone(), hls)),
        hub,
        session,
    }
}

fn feed(session: &mut Box<dyn PublishSession>, ts: &[u8]) {
    for chunk in ts.chunks(1316) {
        session.data(chunk).unwrap();
    }
}

async fn get(http: &OriginHttp, path: &str, query: Option<&str>) -> Reply {
    http.handle(&Method::GET, path, query).await
}

fn session_id(hub: &Hub) -> String {
    hub.stream("cam1").unwrap().snapshot().session.clone()
}

fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test]
async fn playlists_objects_and_errors() {
    let mut s = setup(HlsConfig::default());
    feed(&mut s.session, &FIXTURE[..FIXTURE.len() / 2]);
    let sid = session_id(&s.hub);

    let mv = get(&s.http, "/live/cam1/index.m3u8", None).await;
    assert_eq!(mv.status, StatusCode::OK);
    assert!(
        body(&mv).contains(&format!("\n{sid}/media.m3u8\n")),
        "{}",
        body(&mv)
    );

    let media_path = format!("/live/cam1/{sid}/media.m3u8");
    let media = get(&s.http, &media_path, None).await;
    assert_eq!(media.status, StatusCode::OK);
    let text = body(&media);
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"), "{text}");

    let init = get(&s.http, &format!("/live/cam1/{sid}/init.mp4"), None).await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(&init.body[4..8], b"ftyp");
    assert!(init
        .headers
        .iter()
        .any(|(k, v)| *k == "cache-control" && v.contains("immutable")));

    for (path, query, status) in [
        ("/live/nope/index.m3u8", None, StatusCode::NOT_FOUND),
        ("/live/cam1/0000/media.m3u8", None, StatusCode::NOT_FOUND),
        (
            &format!("/live/cam1/{sid}/seg999.m4s") as &str,
            None,
            StatusCode::NOT_FOUND,
        ),
        ("/elsewhere", None, StatusCode::NOT_FOUND),
        (&media_path, Some("_HLS_msn=abc"), StatusCode::BAD_REQUEST),
        (&media_path, Some("_HLS_part=1"), StatusCode::BAD_REQUEST),
        (&media_path, Some("_HLS_msn=99"), StatusCode::BAD_REQUEST),
        (&media_path, Some("_HLS_msn=0&_HLS_part=0"), StatusCode::OK),
    ] {
        assert_eq!(
            get(&s.http, path, query).await.status,
            status,
            "{path}?{query:?}"
        );
    }
    let post = s.http.handle(&Method::POST, &media_path, None).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn blocking_reload_waits_for_the_part() {
    let mut s = setup(HlsConfig::default());
    feed(&mut s.session, &FIXTURE[..FIXTURE.len() / 3]);
    let sid = session_id(&s.hub);
    let stream = s.hub.stream("cam1").unwrap();
    let media = stream.snapshot().media.clone().unwrap();
    let (msn, part) = (media.next_msn(), media.trailing_parts.len() as u64);
    let hint = media.preload_hint.clone().unwrap();

    let http = s.http.clone();
    let path = format!("/live/cam1/{sid}/media.m3u8");
    let query = format!("_HLS_msn={msn}&_HLS_part={part}");
    let blocked = tokio::spawn(async move { get(&http, &path, Some(&query)).await });
    let http = s.http.clone();
    let hint_path = format!("/live/cam1/{sid}/{hint}");
    let hinted = tokio::spawn(async move { get(&http, &hint_path, None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!blocked.is_finished(), "must wait for part {msn}.{part}");
    assert!(
        !hinted.is_finished(),
        "the preload-hinted part waits to exist"
    );

    feed(&mut s.session, &FIXTURE[FIXTURE.len() / 3..]);
    let reply = blocked.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let text = body(&reply);
    assert!(text.contains(&format!("part{msn}.{part}.m4s")), "{text}");
    assert!(reply
        .headers
        .iter()
        .any(|(k, v)| *k == "cache-control" && v.contains("max-age")));
    let part_reply = hinted.await.unwrap();
    assert_eq!(part_reply.status, StatusCode::OK);
    assert_eq!(&part_reply.body[4..8], b"moof");
}

#[tokio::test]
async fn blocking_reload_times_out_with_503() {
    let mut s = setup(HlsConfig {
        blocking_timeout_ms: 150,
        startup_wait_ms: 150,
    });
    feed(&mut s.session, &FIXTURE[..FIXTURE.len() / 2]);
    let sid = session_id(&s.hub);
    let media = s
        .hub
        .stream("cam1")
        .unwrap()
        .snapshot()
        .media
        .clone()
        .unwrap();
    let query = format!(
        "_HLS_msn={}&_HLS_part={}",
        media.next_msn(),
        media.trailing_parts.len() + 1
    );
    let reply = get(
        &s.http,
        &format!("/live/cam1/{sid}/media.m3u8"),
        Some(&query),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn ended_stream_answers_at_once_with_endlist() {
    let mut s = setup(HlsConfig::default());
    feed(&mut s.session, FIXTURE);
    let sid = session_id(&s.hub);
    s.session.close("test over");
    let stream = s.hub.stream("cam1").unwrap();
    assert!(!stream.snapshot().live);
    let reply = get(
        &s.http,
        &format!("/live/cam1/{sid}/media.m3u8"),
        Some("_HLS_msn=50&_HLS_part=0"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(body(&reply).ends_with("#EXT-X-ENDLIST\n"));
}

#[test]
fn blocking_query_parsing() {
    assert_eq!(
        BlockingRequest::parse("").unwrap(),
        BlockingRequest::default()
    );
    let r = BlockingRequest::parse("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES&token=x").unwrap();
    assert_eq!((r.msn, r.part), (Some(5), Some(2)));
    assert!(BlockingRequest::parse("_HLS_msn=-1").is_err());
    assert!(BlockingRequest::parse("_HLS_part=2").is_err());
}
