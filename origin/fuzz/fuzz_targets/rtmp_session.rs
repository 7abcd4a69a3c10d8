//! Bytes after the RTMP handshake, as a hostile publisher could send them:
//! chunk headers, chunk sizes, AMF0 commands, media messages, through
//! `rml_rtmp`'s server session with every connect and publish request
//! accepted (as Brook's ingest does for an admitted key), and the media on
//! into Brook's FLV/timeline code. A panic here is one the ingest's
//! `catch_unwind` contains to one connection; the fuzzer reports it so it can
//! be known (docs/rtmp.md).
#![no_main]
use brook_origin::ingest::rtmp::media::RtmpMedia;
use libfuzzer_sys::fuzz_target;
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};

fuzz_target!(|data: &[u8]| {
    let Ok((mut session, _)) = ServerSession::new(ServerSessionConfig::new()) else {
        return;
    };
    let mut media = RtmpMedia::new();
    let mut out = Vec::new();
    // Fed in pieces of varying size, as TCP delivers.
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let take = (usize::from(n) * 7 + 1).min(tail.len());
        let (piece, tail) = tail.split_at(take);
        rest = tail;
        let Ok(results) = session.handle_input(piece) else {
            return;
        };
        let mut queue: Vec<ServerSessionResult> = results;
        while let Some(result) = queue.pop() {
            let ServerSessionResult::RaisedEvent(event) = result else {
                continue;
            };
            match event {
                ServerSessionEvent::ConnectionRequested { request_id, .. }
                | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                    if let Ok(more) = session.accept_request(request_id) {
                        queue.extend(more);
                    }
                }
                ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
                    let _ = media.video(timestamp.value, &data, &mut out);
                }
                ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
                    let _ = media.audio(timestamp.value, &data, &mut out);
                }
                _ => {}
            }
            out.clear();
        }
    }
});
