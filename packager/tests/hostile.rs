//! Hostile input: real encoder output damaged the ways networks and broken encoders
//! damage it (bit flips, lost and duplicated packets, truncation, shuffled chunks).
//! The packager may refuse it with an error, but must never panic, and whatever it
//! emits must stay structurally valid.

use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};

const FIXTURE: &[u8] = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Feeds `input` and checks every emitted fragment has well-formed box sizes.
fn survive(input: &[u8], chunk: usize) {
    let mut p = Packager::new(PackagerConfig::default());
    let check = |p: &mut Packager| {
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
        for (_, pl) in p.media_playlists() {
            let _ = pl.to_string();
        }
        let _ = p.multivariant().map(|m| m.to_string());
    };
    for (i, c) in input.chunks(chunk.max(1)).enumerate() {
        let result = p.push_ts(c, UnixMillis(i as u64 * 10));
        check(&mut p);
        if result.is_err() {
            return; // refused: the session would end here
        }
    }
    p.finish();
    check(&mut p);
}

#[test]
fn bit_flips() {
    let mut rng = Rng(0x5EED_0001);
    for _ in 0..40 {
        let mut data = FIXTURE.to_vec();
        for _ in 0..1 + rng.below(200) {
            let at = rng.below(data.len());
            data[at] ^= 1 << rng.below(8);
        }
        survive(&data, 1316);
    }
}

#[test]
fn lost_duplicated_and_reordered_packets() {
    let mut rng = Rng(0x5EED_0002);
    let packets: Vec<&[u8]> = FIXTURE.chunks(188).collect();
    for _ in 0..30 {
        let mut out = Vec::with_capacity(FIXTURE.len());
        let mut i = 0;
        while i < packets.len() {
            match rng.below(100) {
                0..=2 => {} // lost
                3..=4 => {
                    out.extend_from_slice(packets[i]); // duplicated
                    out.extend_from_slice(packets[i]);
                }
                5 if i + 1 < packets.len() => {
                    out.extend_from_slice(packets[i + 1]); // swapped
                    out.extend_from_slice(packets[i]);
                    i += 1;
                }
                _ => out.extend_from_slice(packets[i]),
            }
            i += 1;
        }
        survive(&out, 1 + rng.below(3000));
    }
}

#[test]
fn truncations_and_garbage_splices() {
    let mut rng = Rng(0x5EED_0003);
    for _ in 0..30 {
        let cut = rng.below(FIXTURE.len());
        let mut data = FIXTURE[..cut].to_vec();
        let garbage: Vec<u8> = (0..rng.below(5000)).map(|_| rng.next() as u8).collect();
        data.extend_from_slice(&garbage);
        data.extend_from_slice(&FIXTURE[cut..]);
        survive(&data, 1 + rng.below(2000));
    }
}
