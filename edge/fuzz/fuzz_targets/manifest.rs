//! Manifest personalization on arbitrary text: no panic; the line rewriter and
//! the MPD rewriter only ever add the token (taking it off again gives the
//! input back, byte for byte); a media playlist the model accepts comes out as
//! the model's rendering plus the token, and parses again.
#![no_main]
use brook_edge::manifest::{
    personalize_media, personalize_mpd, personalize_multivariant, rewrite_lines, Limits,
    Personalization, SteeringPlan,
};
use brook_edge::steering::BasePathway;
use brook_packager::hls::MediaPlaylist;
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "exp=9~acl=/live/*~hmac=00";
const ADDED: &str = "__token__=exp%3D9~acl%3D%2Flive%2F%2A~hmac%3D00";

fn strip(s: &str) -> String {
    s.replace(&format!("?{ADDED}"), "")
        .replace(&format!("&amp;{ADDED}"), "")
        .replace(&format!("&{ADDED}"), "")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains(ADDED) {
        return; // the stripping below would not be an inverse
    }
    let p = Personalization {
        token_name: "__token__",
        token: Some(TOKEN),
        hard: Limits {
            max_height: Some(720),
            max_bandwidth: None,
        },
        soft: Limits {
            max_height: None,
            max_bandwidth: Some(1_000_000),
        },
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
    };
    assert_eq!(strip(&rewrite_lines(text, &p)), text);
    let no_steering = Personalization {
        steering: None,
        ..p.clone()
    };
    assert_eq!(strip(&personalize_mpd(text, &no_steering, None)), text);
    let _ = personalize_mpd(text, &p, Some("steering-dash.json"));
    let _ = personalize_multivariant(text, &p);
    if let Ok(model) = text.parse::<MediaPlaylist>() {
        // Exactly the model's own rendering, plus the token. (Comparing models
        // after a re-parse is the packager's business: an unknown tag between
        // two parts renders before the segment's first part and then parses
        // back as a header tag; see the packager fuzz target.)
        let out = personalize_media(text, &p).expect("the model accepted it once");
        assert_eq!(strip(&out), model.to_string());
        let _: MediaPlaylist = out.parse().expect("personalized playlist parses");
    }
});
