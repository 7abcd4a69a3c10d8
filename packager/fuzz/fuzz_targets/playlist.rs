//! Playlist parsing on arbitrary text: no panic, and whatever parses renders to
//! text that parses back to the same model (the round trip the edge relies on).
#![no_main]
use brook_packager::hls::{MediaPlaylist, MultivariantPlaylist};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pl) = text.parse::<MediaPlaylist>() {
        let rendered = pl.to_string();
        let again: MediaPlaylist = rendered.parse().expect("rendered media playlist parses");
        assert_eq!(again.to_string(), rendered);
        let mut pl = pl;
        pl.for_each_uri_mut(|_, uri| uri.push_str("?t=1"));
        let _ = pl.delta(true);
        let _ = pl.i_frames(|s| s.byterange).to_string();
    }
    if let Ok(pl) = text.parse::<MultivariantPlaylist>() {
        let rendered = pl.to_string();
        let again: MultivariantPlaylist = rendered.parse().expect("rendered multivariant parses");
        assert_eq!(again.to_string(), rendered);
    }
});
