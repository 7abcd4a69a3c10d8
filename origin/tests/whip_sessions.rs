//! What a WHIP session costs, and that sessions leave nothing behind: a
//! measurement, not a test (`#[ignore]`); run it in release:
//!
//! ```text
//! cargo test -p brook-origin --release --test whip_sessions -- --ignored --nocapture
//! ```
//!
//! Many simulated publishers (720p-sized H.264 at ~2.2 Mbit/s + Opus) on the
//! one mux, on simulated time; live heap bytes from a counting allocator, and
//! the wall time spent on Brook's side (mux + sessions + frames, not the
//! simulated browsers).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_origin::ingest::whip::sim::{Sim, SimConfig};
use brook_origin::ingest::{Admission, Claim, Publish, Refusal, Stop};
use brook_packager::media::{Frame, TrackInfo};
use brook_packager::UnixMillis;
use http::{Method, StatusCode};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Takes the frames and drops them (the packager's cost is the packager's).
struct Discard;

impl Admission for Discard {
    fn admit(&self, _: &Claim<'_>) -> Result<(), Refusal> {
        Ok(())
    }
    fn open(&self, _: &Claim<'_>) -> Result<Box<dyn Publish>, Refusal> {
        Ok(Box::new(Discard))
    }
}

impl Publish for Discard {
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

fn config() -> SimConfig {
    SimConfig {
        idr_bytes: 40_000,
        frame_bytes: 9_000,
        ..SimConfig::default()
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8 + 1], 40_000))
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture, in release"]
fn cost_per_session_and_no_leak() {
    const N: usize = 50;
    let mut sim = Sim::new(config(), Arc::new(Discard), |_| {});
    let mut locations = Vec::new();
    for i in 0..N {
        let (_, reply) = sim.publish("cam1", None, addr(i));
        assert_eq!(reply.status, StatusCode::CREATED);
        locations.push(reply.get("location").unwrap().to_string());
    }
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.mux.len(), N);
    let before = live();
    let t = sim.server_time;
    sim.run_for(Duration::from_secs(10));
    let cpu = sim.server_time - t;
    let with_sessions = live();
    // End Brook's side only: what it frees is what the sessions held.
    for l in &locations {
        let r = sim.request(Method::DELETE, l, &[], "");
        assert_eq!(r.status, StatusCode::OK);
    }
    let without = live();
    let per_session = (with_sessions - without) / N as isize;
    let media_secs = 10.0 * N as f64;
    println!(
        "{N} sessions, ~2.2 Mbit/s each: {:.1} KiB of heap per live session; \
         Brook's side used {:.2} ms of CPU per second of one session's media \
         ({:.1} % of a core for all {N}); heap growth over 10 s of media: {} KiB",
        per_session as f64 / 1024.0,
        cpu.as_secs_f64() * 1000.0 / media_secs,
        cpu.as_secs_f64() / 10.0 * 100.0,
        (with_sessions - before) / 1024,
    );

    // Sessions come and go: after each round (connect, 2 s of media, DELETE,
    // or a client that vanishes and times out) the heap returns to its level.
    drop(sim);
    let mut levels = Vec::new();
    let mut sim = Sim::new(config(), Arc::new(Discard), |_| {});
    for round in 0..8 {
        let mut locations = Vec::new();
        let first = sim.peers.len();
        for i in 0..20 {
            let (_, reply) = sim.publish("cam1", None, addr(1000 + round * 20 + i));
            locations.push(reply.get("location").unwrap().to_string());
        }
        sim.run_for(Duration::from_secs(2));
        for (i, l) in locations.iter().enumerate() {
            if i % 2 == 0 {
                sim.request(Method::DELETE, l, &[], "");
            } else {
                sim.peers[first + i].paused = true;
                sim.peers[first + i].close();
            }
        }
        sim.run_for(Duration::from_secs(7));
        assert!(sim.mux.is_empty(), "round {round}: all ended");
        assert_eq!(sim.endpoint.sessions(), 0);
        // The simulated browsers are the test's, not Brook's: drop them too.
        sim.peers.clear();
        levels.push(live() / 1024);
    }
    println!("heap after each round of 20 sessions, KiB: {levels:?}");
    let (first, last) = (levels[1], levels[levels.len() - 1]);
    assert!(
        last - first < 256,
        "heap grows by {} KiB over 6 rounds",
        last - first
    );
}
