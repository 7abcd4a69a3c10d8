//! WHIP end to end on simulated time: a str0m peer playing the browser
//! (sendonly H.264 + Opus, IDRs only when asked, RTCP sender reports) POSTs to
//! Brook's endpoint, connects over a simulated network with latency, jitter and
//! loss to the mux, and its frames come out of the session into a sink that
//! packages them. Seconds of media run in milliseconds of test time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_origin::ingest::whip::frames::{AUDIO_TIMESCALE, VIDEO_TIMESCALE};
use brook_origin::ingest::whip::sim::{frame_number, Sim, SimConfig};
use brook_origin::ingest::{Admission, Claim, Publish, Refusal, Stop};
use brook_packager::media::{CodecConfig, Frame, TrackInfo};
use brook_packager::{Packager, PackagerConfig, UnixMillis};
use http::{Method, StatusCode};

const KEY: &str = "s3cret-key";

#[derive(Default)]
struct Recorded {
    opened: u32,
    closed: Vec<String>,
    tracks: Vec<Vec<TrackInfo>>,
    frames: Vec<(Frame, UnixMillis)>,
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Recorded>>);

impl Admission for Sink {
    fn admit(&self, claim: &Claim<'_>) -> Result<(), Refusal> {
        match (claim.stream, claim.key) {
            ("cam1", Some(KEY)) => Ok(()),
            _ => Err(Refusal::Denied("stream or key".into())),
        }
    }

    fn open(&self, _: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).opened += 1;
        Ok(Box::new(self.clone()))
    }
}

impl Publish for Sink {
    fn ts(&mut self, _: &[u8], _: UnixMillis) -> Result<(), Stop> {
        Ok(())
    }
    fn tracks(&mut self, tracks: Vec<TrackInfo>) -> Result<(), Stop> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tracks
            .push(tracks);
        Ok(())
    }
    fn frame(&mut self, frame: Frame, arrived: UnixMillis) -> Result<(), Stop> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .frames
            .push((frame, arrived));
        Ok(())
    }
    fn close(self: Box<Self>, reason: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed
            .push(reason.to_string());
    }
}

fn client(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 100 + n], 40_000))
}

fn world(config: SimConfig) -> (Sim, Sink) {
    let sink = Sink::default();
    let sim = Sim::new(config, Arc::new(sink.clone()), |_| {});
    (sim, sink)
}

/// Packages what the sink got, as publish.rs would.
fn package(rec: &Recorded) -> Packager {
    let mut p = Packager::new(PackagerConfig::default());
    let mut tracks = rec.tracks.iter();
    if let Some(t) = tracks.next() {
        p.push_tracks(t.clone());
    }
    for (f, at) in &rec.frames {
        p.push_frame(f.clone(), *at);
        while p.poll().is_some() {}
    }
    p.finish();
    while p.poll().is_some() {}
    p
}

#[test]
fn browser_publishes_h264_and_opus_in_sync_with_segments_on_requested_idrs() {
    let (mut sim, sink) = world(SimConfig {
        jitter: Duration::from_millis(5),
        loss: 0.02,
        ..SimConfig::default()
    });
    let (i, reply) = sim.publish("cam1", Some(KEY), client(1));
    assert_eq!(reply.status, StatusCode::CREATED);
    sim.run_for(Duration::from_secs(12));

    let peer = &sim.peers[i];
    assert!(peer.connected);
    assert!(sim.lost > 10, "the network dropped packets: {}", sim.lost);
    let rec = sink.0.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(rec.opened, 1);
    assert!(rec.closed.is_empty());

    // One configuration: H.264 640x360 Constrained Baseline, and Opus.
    assert_eq!(rec.tracks.len(), 1);
    let CodecConfig::Avc(avc) = &rec.tracks[0][0].codec else {
        panic!("video first")
    };
    assert_eq!((avc.sps.width, avc.sps.height), (640, 360));
    assert!(matches!(rec.tracks[0][1].codec, CodecConfig::Opus(_)));

    // Every frame sits where its capture time says: video frame n at n/30 s and
    // audio frame k at k/50 s after the first video frame (timeline 0). This is
    // the A/V sync from the sender reports, to the tick.
    let video: Vec<&Frame> = rec
        .frames
        .iter()
        .map(|(f, _)| f)
        .filter(|f| f.track == 0)
        .collect();
    let audio: Vec<&Frame> = rec
        .frames
        .iter()
        .map(|(f, _)| f)
        .filter(|f| f.track == 1)
        .collect();
    assert!(video[0].keyframe);
    // Timeline 0 is the first video frame that arrived (n0; it may have been
    // dropped while waiting for an IDR).
    let first = frame_number(&video[0].data, true).unwrap();
    let n0 = first as i64 - video[0].dts / 3000;
    for f in &video {
        let n = frame_number(&f.data, true).unwrap() as i64;
        assert_eq!(
            f.dts,
            (n - n0) * i64::from(VIDEO_TIMESCALE) / 30,
            "video frame {n}"
        );
    }
    // Audio: aligned by arrival at first (within the network jitter), then by
    // the sender reports, to the tick.
    let stats = sim.mux.sessions().next().unwrap().link_stats().frames;
    assert!(stats.synced_by_reports, "{stats:?}");
    for f in &audio {
        let k = frame_number(&f.data, false).unwrap() as i64;
        let expected = k * 960 - n0 * i64::from(AUDIO_TIMESCALE) / 30;
        let err = (f.dts - expected).abs();
        if f.dts > 6 * i64::from(AUDIO_TIMESCALE) {
            assert!(
                err <= 1,
                "audio frame {k}: dts {} vs {expected} ({stats:?})",
                f.dts
            );
        } else {
            assert!(
                err <= 48 * 10,
                "audio frame {k}: {err} ticks off ({stats:?})"
            );
        }
    }
    // Loss was repaired (NACK/RTX): nearly every frame since the first IDR came.
    let sent_video = peer.video_sent - first;
    let first = first as i64;
    assert!(
        video.len() as u64 >= sent_video * 95 / 100,
        "{} of {sent_video} video frames",
        video.len()
    );
    let sent_audio = peer.audio_sent - first as u64 * 5 / 3;
    assert!(
        audio.len() as u64 >= sent_audio * 95 / 100,
        "{} of {sent_audio} audio frames ({stats:?})",
        audio.len()
    );

    // Keyframes came because Brook asked, about every segment target (2 s).
    assert!(
        peer.keyframe_requests >= 4,
        "{} keyframe requests",
        peer.keyframe_requests
    );
    let idrs: Vec<i64> = video.iter().filter(|f| f.keyframe).map(|f| f.dts).collect();
    assert!(idrs.len() >= 5, "{idrs:?}");
    for w in idrs.windows(2) {
        let secs = (w[1] - w[0]) as f64 / f64::from(VIDEO_TIMESCALE);
        assert!(
            (1.95..=2.25).contains(&secs),
            "IDRs {secs:.3} s apart: {idrs:?}"
        );
    }
    // So the packager cuts segments of about the target, each on an IDR.
    let packager = package(&rec);
    let playlist = packager.lead_playlist().unwrap();
    let segments = &playlist.segments;
    assert!(segments.len() >= 4);
    for s in &segments[..segments.len() - 1] {
        assert!(
            (1.95..=2.25).contains(&s.duration),
            "segment of {} s",
            s.duration
        );
        assert!(s.parts.first().is_none_or(|p| p.independent));
    }
    // Frames are dated by their arrival on the simulated wall clock.
    let (_, first_at) = rec.frames[0];
    assert!(
        first_at.0 >= sim.start_unix.0 && first_at.0 < sim.start_unix.0 + 2000,
        "{} vs {}",
        first_at.0,
        sim.start_unix.0
    );
}

#[test]
fn delete_ends_the_publish_and_a_silent_publisher_times_out() {
    let (mut sim, sink) = world(SimConfig::default());
    let (_, reply) = sim.publish("cam1", Some(KEY), client(1));
    let location = reply.get("location").unwrap().to_string();
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sink.0.lock().unwrap_or_else(|p| p.into_inner()).opened, 1);
    let r = sim.request(
        Method::DELETE,
        &location,
        &[("authorization", "Bearer s3cret-key")],
        "",
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        sink.0.lock().unwrap_or_else(|p| p.into_inner()).closed,
        ["the client sent DELETE"]
    );
    assert!(sim.mux.is_empty());

    // A publisher that stops sending (and stops answering) ends after the media
    // timeout, and its resource is gone.
    let (i, reply) = sim.publish("cam1", Some(KEY), client(2));
    let location = reply.get("location").unwrap().to_string();
    sim.run_for(Duration::from_secs(2));
    sim.peers[i].paused = true;
    sim.peers[i].close();
    sim.run_for(Duration::from_secs(6));
    let rec = sink.0.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(rec.closed.len(), 2, "{:?}", rec.closed);
    assert!(
        rec.closed[1].contains("no media") || rec.closed[1].contains("consent"),
        "{:?}",
        rec.closed
    );
    drop(rec);
    let r = sim.request(
        Method::DELETE,
        &location,
        &[("authorization", "Bearer s3cret-key")],
        "",
    );
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[test]
fn sessions_share_one_port_and_hostile_datagrams_change_nothing() {
    let (mut sim, sink) = world(SimConfig::default());
    let (a, _) = sim.publish("cam1", Some(KEY), client(1));
    let (b, _) = sim.publish("cam1", Some(KEY), client(2));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        sink.0.lock().unwrap_or_else(|p| p.into_inner()).opened,
        2,
        "both connected through one socket"
    );
    let frames_before = sink
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .frames
        .len();

    // Garbage from strangers and from a publisher's own address: random bytes,
    // STUN-looking, DTLS-looking, RTP/RTCP-looking, truncated, oversized.
    let mut rng = sim.rng.clone();
    for i in 0..5000u64 {
        let len = rng.below(1400) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if let Some(b0) = data.first_mut() {
            *b0 = [0x00, 0x01, 0x16, 0x17, 0x80, 0x81, 0x90, 0xC8, 0xff][(i % 9) as usize];
        }
        if data.len() > 8 && i % 3 == 0 {
            data[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]); // STUN cookie
        }
        let from = match i % 3 {
            0 => client(1),
            1 => client(2),
            _ => SocketAddr::from(([198, 51, 100, (i % 200) as u8], 1000 + (i % 50) as u16)),
        };
        sim.inject(from, data);
        if i % 100 == 0 {
            sim.run_for(Duration::from_millis(10));
        }
    }
    sim.run_for(Duration::from_secs(2));
    let rec = sink.0.lock().unwrap_or_else(|p| p.into_inner());
    assert!(rec.closed.is_empty(), "{:?}", rec.closed);
    assert!(rec.frames.len() > frames_before + 200, "media kept flowing");
    assert!(sim.peers[a].connected && sim.peers[b].connected);
    assert!(sim.mux.stats().unrouted > 1000);
}
