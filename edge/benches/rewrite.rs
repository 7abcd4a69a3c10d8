//! Manifest rewrite cost, natively: `cargo bench -p brook-edge --bench rewrite`.
//! The same playlist is timed inside workerd by `node edge/bench/rewrite-workerd.mjs`.
//! Prints figures; asserts nothing about speed.

use std::hint::black_box;
use std::time::Instant;

use brook_edge::access::token::KeySet;
use brook_edge::ads::interstitial::AdMarks;
use brook_edge::manifest::{
    bench_playlist, bench_playlist_with_break, personalize_media, personalize_multivariant,
    rewrite_lines, Limits, Personalization, SteeringPlan,
};
use brook_edge::steering::BasePathway;

const TOKEN: &str = "st=1795440000~exp=1795443600~acl=/live/cam1/*~id=viewer-42~data=maxh:720~kid=2026a~hmac=5e0c81c7bc3a63b7ff5b28c2ff66b7a8e0e7b9b1d8f0f4de7bb46b3fa2bbb4e1";
const MULTIVARIANT: &str = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=2747564,AVERAGE-BANDWIDTH=2685156,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000\n\
0a1b2c3d4e5f/media.m3u8\n";

/// Median µs per call over `rounds` rounds of `n` calls.
fn time(label: &str, n: u32, rounds: usize, mut f: impl FnMut()) {
    for _ in 0..n {
        f();
    }
    let mut per_call: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    let median = per_call[rounds / 2];
    println!(
        "{label:<58} {median:>8.2} µs/playlist (median of {rounds} x {n}; min {:.2}, max {:.2})",
        per_call[0],
        per_call[rounds - 1]
    );
}

fn main() {
    let media = bench_playlist();
    let p = Personalization {
        token_name: "__token__",
        token: Some(TOKEN),
        hard: Limits::default(),
        soft: Limits::default(),
        steering: None,
        path: "/live/cam1/S/media.m3u8",
        interstitials: None,
    };
    println!(
        "input: 7-segment LL-HLS media playlist, 5 parts/segment + 2 trailing, {} bytes; token {} bytes",
        media.len(),
        TOKEN.len()
    );
    time(
        "media playlist: parse + token on every URI + render",
        2000,
        15,
        || {
            black_box(personalize_media(black_box(&media), &p).ok());
        },
    );
    time("media playlist: line rewriter (fallback)", 2000, 15, || {
        black_box(rewrite_lines(black_box(&media), &p));
    });
    // The same with an ad break in the window, without and with its
    // interstitial (ads.mode = interstitials).
    let with_break = bench_playlist_with_break();
    time(
        "media playlist with an ad break: token only",
        2000,
        15,
        || {
            black_box(personalize_media(black_box(&with_break), &p).ok());
        },
    );
    let keys = KeySet::parse("bench:00112233445566778899aabbccddeeff").expect("a key");
    let ads = Personalization {
        interstitials: Some(AdMarks {
            list_path: "/live/cam1/ads.json",
            keys: &keys,
        }),
        ..p.clone()
    };
    time(
        "media playlist with an ad break: + interstitial",
        2000,
        15,
        || {
            black_box(personalize_media(black_box(&with_break), &ads).ok());
        },
    );
    let steer = Personalization {
        steering: Some(SteeringPlan {
            pathways: vec![
                BasePathway {
                    id: "a",
                    base_url: None,
                },
                BasePathway {
                    id: "b",
                    base_url: Some("https://b.example"),
                },
            ],
            initial: "a",
            server_uri: "steering.json",
        }),
        path: "/live/cam1/index.m3u8",
        ..p.clone()
    };
    time(
        "multivariant: parse + filter + 2 pathways + token + render",
        5000,
        15,
        || {
            black_box(personalize_multivariant(black_box(MULTIVARIANT), &steer).ok());
        },
    );
}
