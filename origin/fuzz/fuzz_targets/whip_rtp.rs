//! Hostile media from an authenticated publisher: a simulated browser whose ICE
//! and DTLS completed sends arbitrary RTP packets (payloads, sequence numbers,
//! timestamps, markers) through SRTP, so they reach str0m's H.264 and Opus
//! depacketizers and jitter buffers, then Brook's frame logic and the
//! packager; in between, garbage datagrams from its address. No panic, and
//! the mux's invariants hold after every step (Sim checks them).
#![no_main]
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use brook_origin::ingest::whip::session::SessionConfig;
use brook_origin::ingest::whip::sim::{Sim, SimConfig};
use brook_origin::ingest::{Admission, Claim, Publish, Refusal, Stop};
use brook_packager::media::{Frame, TrackInfo};
use brook_packager::{Packager, PackagerConfig, UnixMillis};
use libfuzzer_sys::fuzz_target;

/// Admits everyone; packages what comes.
struct Packaging(Arc<Mutex<Packager>>);

impl Admission for Packaging {
    fn admit(&self, _: &Claim<'_>) -> Result<(), Refusal> {
        Ok(())
    }
    fn open(&self, _: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
        Ok(Box::new(Packaging(self.0.clone())))
    }
}

impl Publish for Packaging {
    fn ts(&mut self, _: &[u8], _: UnixMillis) -> Result<(), Stop> {
        Ok(())
    }
    fn tracks(&mut self, tracks: Vec<TrackInfo>) -> Result<(), Stop> {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.push_tracks(tracks);
        while p.poll().is_some() {}
        Ok(())
    }
    fn frame(&mut self, frame: Frame, arrived: UnixMillis) -> Result<(), Stop> {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.push_frame(frame, arrived);
        while p.poll().is_some() {}
        Ok(())
    }
    fn close(self: Box<Self>, _: &str) {}
}

static CONFIG: OnceLock<SessionConfig> = OnceLock::new();

// Steps of 7 header bytes and a payload:
//   0: op (0 video RTP, 1 audio RTP, 2 raw datagram from the publisher,
//      3 time passes), bit 7 the RTP marker
//   1: sequence step (signed), 2-3: timestamp step, 4: ms to run after
//   5-6: payload length
fuzz_target!(|data: &[u8]| {
    let config = SimConfig {
        raw_rtp: true,
        ..SimConfig::default()
    };
    let packager = Arc::new(Mutex::new(Packager::new(PackagerConfig::default())));
    let session = CONFIG.get_or_init(Sim::session_config).clone();
    let mut sim = Sim::with_session_config(config, Arc::new(Packaging(packager.clone())), session);
    let client = SocketAddr::from(([10, 0, 0, 2], 40_000));
    let (i, reply) = sim.publish("cam1", Some("key"), client);
    assert_eq!(reply.status, http::StatusCode::CREATED);
    for _ in 0..20 {
        sim.run_for(Duration::from_millis(50));
        if sim.peers[i].connected {
            break;
        }
    }
    assert!(sim.peers[i].connected, "the simulated publisher connects");
    let mut seq = [5000u64, 9000u64];
    let mut ts = [90_000u32, 48_000u32];
    let mut rest = data;
    while rest.len() >= 7 {
        let (head, tail) = rest.split_at(7);
        let len = usize::from(u16::from_be_bytes([head[5], head[6]]))
            .min(tail.len())
            .min(1200);
        let (payload, tail) = tail.split_at(len);
        match head[0] & 3 {
            op @ (0 | 1) => {
                let k = usize::from(op);
                seq[k] = seq[k].wrapping_add_signed(i64::from(head[1] as i8)).max(1);
                ts[k] = ts[k].wrapping_add(u32::from(u16::from_be_bytes([head[2], head[3]])));
                let now = sim.now;
                sim.peers[i].write_rtp(now, op == 0, seq[k], ts[k], head[0] & 0x80 != 0, payload);
            }
            2 => sim.inject(client, payload.to_vec()),
            _ => {}
        }
        sim.run_for(Duration::from_millis(u64::from(head[4] % 100)));
        rest = tail;
    }
    sim.run_for(Duration::from_millis(800));
    let mut p = packager.lock().unwrap_or_else(|e| e.into_inner());
    p.finish();
    while p.poll().is_some() {}
});
