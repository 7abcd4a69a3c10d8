//! What an uploader controls before any media is read: the direct upload
//! token (the creation URL's query), tus `Upload-Metadata` and
//! `Upload-Checksum`, and ffprobe's report of the file (its JSON carries the
//! file's own tags). No panic; a token verifies only if it is one the key
//! signed (a fixed key here, so random bytes never verify), and what parses
//! holds what the rest of the origin relies on.
#![no_main]
use brook_origin::vod::{probe, tus, upload_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let signer = upload_url::UploadUrlSigner::new(&[7u8; 32]).unwrap();
    if let Some(token) = upload_url::token_from_query(&text) {
        if let Ok(grant) = signer.verify(token, 1_700_000_000) {
            // Only a signature from this key gets here: re-signing gives the
            // same grant back.
            let again = signer.sign(&grant).unwrap();
            assert_eq!(signer.verify(&again, 1_700_000_000).unwrap(), grant);
        }
    }
    let _ = signer.verify(&text, 0);
    if let Ok(meta) = tus::parse_metadata(&text) {
        assert!(meta.keys().all(|k| !k.is_empty() && !k.contains([' ', ','])), "{meta:?}");
    }
    let _ = tus::parse_checksum(&text);
    if let Ok(p) = probe::parse(data) {
        assert!(p.duration_secs.is_finite() && p.duration_secs > 0.0, "{p:?}");
        assert!(p.video.width > 0 && p.video.height > 0, "{p:?}");
        let _ = p.check(&probe::ProbeConfig::default());
        let _ = p.demuxer();
    }
});
