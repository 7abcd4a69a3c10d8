//! The whole packager on arbitrary bytes: no panic; after each push the playlist
//! renders and re-parses to the same model, stays within its window, keeps the
//! target duration it started with, has no segment longer than it and no part
//! longer than its part target, and every emitted object is a well-formed box
//! sequence. The first byte's bits 2-4 also turn on Common Encryption (cbcs or
//! cenc, with or without a key rotation every segment).
#![no_main]
use std::collections::BTreeMap;

use brook_packager::cmaf::cenc::{ContentKey, Encryption, KeySystem, Scheme};
use brook_packager::hls::MediaPlaylist;
use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};
use libfuzzer_sys::fuzz_target;

fn check(p: &mut Packager, window: usize, targets: &mut BTreeMap<String, u32>) {
    while let Some(ev) = p.poll() {
        if let Event::Object { name, data, .. } = ev {
            let mut rest = &data[..];
            while !rest.is_empty() {
                assert!(rest.len() >= 8, "{name}: truncated box");
                let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                assert!(size >= 8 && size <= rest.len(), "{name}: bad box size");
                rest = &rest[size..];
            }
        }
    }
    for (name, pl) in p.media_playlists() {
        assert!(pl.segments.len() <= window);
        let target = *targets.entry(name).or_insert(pl.target_duration);
        assert_eq!(pl.target_duration, target, "TARGETDURATION changed");
        for seg in &pl.segments {
            assert!(seg.duration.round() <= f64::from(target), "{}", seg.uri);
        }
        let part_target = pl.part_target.unwrap_or(f64::MAX);
        let parts = pl.segments.iter().flat_map(|s| &s.parts);
        for part in parts.chain(&pl.trailing_parts) {
            assert!(part.duration <= part_target, "{}", part.uri);
        }
        let text = pl.to_string();
        let reparsed: MediaPlaylist = text.parse().expect("rendered playlist parses");
        assert_eq!(reparsed.to_string(), text);
    }
    let _ = p.dash_manifest(UnixMillis(0), None);
    if let Some(mv) = p.multivariant() {
        let _ = mv.to_string();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    // Bit 2 of the chunk byte: the same pipeline encrypted (cbcs or cenc by
    // bit 3, a key rotation every segment by bit 4).
    let encryption = (chunk & 4 != 0).then(|| Encryption {
        scheme: if chunk & 8 != 0 {
            Scheme::Cenc
        } else {
            Scheme::Cbcs
        },
        keys: vec![
            ContentKey {
                kid: [1; 16],
                key: [2; 16],
                iv: [3; 16],
            },
            ContentKey {
                kid: [4; 16],
                key: [5; 16],
                iv: [6; 16],
            },
        ],
        rotate_every_segments: u64::from(chunk & 16 != 0),
        key_systems: vec![KeySystem::ClearKey {
            license_url: "https://l/{kid}".into(),
        }],
        ..Encryption::default()
    });
    let config = PackagerConfig {
        encryption,
        window_segments: 4,
        // Odd chunk bytes take every video stream of the program as a rung
        // (a transcoder's ladder), even ones the first only.
        max_video_tracks: if chunk % 2 == 1 { 16 } else { 1 },
        ..PackagerConfig::default()
    };
    let mut p = Packager::new(config);
    let mut targets = BTreeMap::new();
    let chunk = usize::from(chunk).max(1) * 11;
    for (i, c) in input.chunks(chunk).enumerate() {
        let result = p.push_ts(c, UnixMillis(i as u64 * 20));
        check(&mut p, 4, &mut targets);
        if result.is_err() {
            return;
        }
        if i == 3 {
            p.restart_input();
            check(&mut p, 4, &mut targets);
        }
    }
    p.finish();
    check(&mut p, 4, &mut targets);
});
