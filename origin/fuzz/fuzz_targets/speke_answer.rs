//! A DRM key provider's SPEKE v2 (CPIX) answer: whatever it sends, Brook
//! either refuses it with a reason or takes a 16-byte key for the KID it asked
//! about and signalling that is what it checked (one whole pssh box of the
//! right system, HLS tags that parse with the scheme's METHOD), never panics.
#![no_main]
use brook_origin::keys::speke::{parse_answer, DrmSystem};
use brook_packager::cmaf::cenc::Scheme;
use libfuzzer_sys::fuzz_target;

const KID: [u8; 16] = [
    0x6c, 0x5f, 0x56, 0x39, 0x4b, 0x5e, 0x4c, 0x5c, 0x9e, 0x1a, 0x1f, 0x6c, 0x2d, 0x3e, 0x4f, 0x51,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let scheme = if pick & 1 == 0 { Scheme::Cbcs } else { Scheme::Cenc };
    let all = [DrmSystem::Widevine, DrmSystem::Playready, DrmSystem::Fairplay];
    let systems: Vec<DrmSystem> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| pick >> (i + 1) & 1 == 1)
        .map(|(_, s)| *s)
        .collect();
    let Ok(k) = parse_answer(body, &KID, scheme, &systems) else {
        return;
    };
    assert_eq!(k.key.kid, KID);
    assert_eq!(k.systems.len(), systems.len());
    for (s, want) in k.systems.iter().zip(&systems) {
        assert_eq!(s.system, *want);
        if let Some(p) = s.pssh_box() {
            assert_eq!(&p[4..8], b"pssh");
            assert_eq!(p[12..28], want.system_id());
        }
        for a in s.hls_keys.iter().chain(&s.hls_session_keys) {
            let key = brook_packager::hls::Key::from_attrs(a).expect("checked tags parse");
            assert_eq!(key.method, scheme.hls_method());
        }
    }
});
