use super::*;
use crate::route::VodKind;

/// The packager's playlist cases (real-world LL-HLS shapes: parts, preload
/// hints, server control, skip, rendition reports, date ranges, byte ranges,
/// gaps, discontinuities, unknown tags), plus the benchmark playlist.
fn media_cases() -> Vec<(&'static str, String)> {
    vec![
        (
            "media_ll_live",
            include_str!("../../../packager/tests/playlists/media_ll_live.m3u8").into(),
        ),
        (
            "media_ll_delta",
            include_str!("../../../packager/tests/playlists/media_ll_delta.m3u8").into(),
        ),
        (
            "media_discontinuity_daterange",
            include_str!("../../../packager/tests/playlists/media_discontinuity_daterange.m3u8")
                .into(),
        ),
        (
            "media_byteranges",
            include_str!("../../../packager/tests/playlists/media_byteranges.m3u8").into(),
        ),
        (
            "media_vod",
            include_str!("../../../packager/tests/playlists/media_vod.m3u8").into(),
        ),
        ("bench", bench_playlist()),
    ]
}

const MV_BROOK: &str = include_str!("../../../packager/tests/playlists/multivariant_brook.m3u8");
const MV_STEERING: &str =
    include_str!("../../../packager/tests/playlists/multivariant_steering_renditions.m3u8");

const TOKEN: &str = "exp=2000~acl=/live/cam1/*~id=v1~hmac=00ff";
const ENCODED: &str = "exp%3D2000~acl%3D%2Flive%2Fcam1%2F%2A~id%3Dv1~hmac%3D00ff";

fn viewer(token: Option<&'static str>) -> Personalization<'static> {
    Personalization {
        token_name: "__token__",
        token,
        hard: Limits::default(),
        soft: Limits::default(),
        steering: None,
        path: "/live/cam1/index.m3u8",
        interstitials: None,
    }
}

/// Removes what personalization adds to a URI.
fn strip_token(uri: &mut String) {
    for sep in ["?", "&"] {
        let added = format!("{sep}__token__={ENCODED}");
        if let Some(at) = uri.find(&added) {
            uri.replace_range(at..at + added.len(), "");
            if sep == "?" && uri.contains('&') && !uri.contains('?') {
                *uri = uri.replacen('&', "?", 1);
            }
            return;
        }
    }
}

#[test]
fn media_playlists_keep_every_tag() {
    let p = viewer(Some(TOKEN));
    for (name, text) in media_cases() {
        let original: MediaPlaylist = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = personalize_media(&text, &p).unwrap();
        // Re-parsed with the shared model: the same playlist once the token
        // is taken off every URI (nothing dropped, nothing reordered)...
        let mut reparsed: MediaPlaylist = out.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut uris = 0;
        reparsed.for_each_uri_mut(|_, uri| {
            if is_relative(uri) {
                assert!(
                    uri.contains(&format!("__token__={ENCODED}")),
                    "{name}: {uri}"
                );
                uris += 1;
            }
            strip_token(uri);
        });
        assert!(uris > 0, "{name}");
        assert_eq!(reparsed, original, "{name}");
        // ...and the same bytes as the model renders it, apart from the token.
        let plain = out
            .replace(&format!("?__token__={ENCODED}"), "")
            .replace(&format!("&__token__={ENCODED}"), "");
        assert_eq!(plain, original.to_string(), "{name}");
        // The fallback rewriter agrees with the model on every URI.
        let fallback = rewrite_lines(&text, &p);
        let fb: MediaPlaylist = fallback.parse().unwrap();
        assert_eq!(
            fb,
            out.parse::<MediaPlaylist>().unwrap(),
            "{name}: fallback"
        );
    }
}

#[test]
fn every_ll_hls_tag_survives_in_the_text() {
    let text = include_str!("../../../packager/tests/playlists/media_discontinuity_daterange.m3u8");
    let out = personalize_media(text, &viewer(Some(TOKEN))).unwrap();
    for tag in [
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=24,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=3.2",
        "#EXT-X-PART-INF:PART-TARGET=1.004",
        "#EXT-X-DISCONTINUITY-SEQUENCE:2",
        "#EXT-X-START:TIME-OFFSET=-6,PRECISE=YES",
        "#EXT-X-DATERANGE:ID=\"ad-1\",CLASS=\"com.brook.ad\"",
        "#EXT-X-KEY:METHOD=NONE",
        "#EXT-X-BROOK-CUSTOM:whatever",
        "#EXT-X-DISCONTINUITY\n",
        "#EXT-X-BITRATE:2500",
        "#EXT-X-GAP",
        "GAP=YES",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part10.2.m4s?__token__=",
        "#EXT-X-RENDITION-REPORT:URI=\"../720p/media.m3u8?__token__=",
        "LAST-MSN=10,LAST-PART=1",
    ] {
        assert!(out.contains(tag), "missing {tag:?} in\n{out}");
    }
    let delta = include_str!("../../../packager/tests/playlists/media_ll_delta.m3u8");
    let out = personalize_media(delta, &viewer(Some(TOKEN))).unwrap();
    assert!(out.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
}

#[test]
fn no_token_no_change() {
    let p = viewer(None);
    assert!(p.is_noop());
    for (name, text) in media_cases() {
        assert_eq!(rewrite_lines(&text, &p), text, "{name}");
        let model: MediaPlaylist = text.parse().unwrap();
        assert_eq!(personalize_media(&text, &p).unwrap(), model.to_string());
    }
}

#[test]
fn fallback_is_byte_exact_apart_from_uris() {
    let odd = "#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-WEIRD:URI=\"a.bin\",X=1\r\n\r\n#EXTINF:2,\r\nseg1.m4s\r\nhttps://other.example/seg2.m4s\r\n#EXT-X-UNTERMINATED:URI=\"x";
    let out = rewrite_lines(odd, &viewer(Some(TOKEN)));
    let want = odd
        .replace("a.bin", &format!("a.bin?__token__={ENCODED}"))
        .replace("seg1.m4s", &format!("seg1.m4s?__token__={ENCODED}"));
    assert_eq!(out, want);
}

#[test]
fn multivariant_token_and_no_loss() {
    let p = viewer(Some(TOKEN));
    let out = personalize_multivariant(MV_STEERING, &p).unwrap();
    let mut reparsed: MultivariantPlaylist = out.parse().unwrap();
    reparsed.for_each_uri_mut(|kind, uri| {
        assert!(PERSONALIZED_URIS.contains(&kind));
        strip_token(uri);
    });
    assert_eq!(
        reparsed,
        MV_STEERING.parse::<MultivariantPlaylist>().unwrap()
    );
    // Absolute URIs (another host's) are left alone; relative ones carry the token.
    assert!(out.contains("\nhttps://a.cdn.example/live/cam1/s/1080p/media.m3u8\n"));
    assert!(out.contains(&format!("URI=\"audio/media.m3u8?__token__={ENCODED}\"")));
    assert!(out.contains(&format!("URI=\"1080p/iframes.m3u8?__token__={ENCODED}\"")));
    assert!(out.contains("#EXT-X-SESSION-DATA:DATA-ID=\"com.brook.title\""));
}

fn mv(variants: &[(u64, Option<(u32, u32)>)]) -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (i, (bw, res)) in variants.iter().enumerate() {
        s.push_str(&format!("#EXT-X-STREAM-INF:BANDWIDTH={bw}"));
        if let Some((w, h)) = res {
            s.push_str(&format!(",RESOLUTION={w}x{h}"));
        }
        s.push_str(&format!("\nv{i}/media.m3u8\n"));
    }
    s
}

fn kept(out: &str) -> Vec<String> {
    let pl: MultivariantPlaylist = out.parse().unwrap();
    pl.variants
        .into_iter()
        .map(|v| v.uri.split('/').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn rendition_filtering() {
    let ladder = mv(&[
        (6_000_000, Some((1920, 1080))),
        (3_000_000, Some((1280, 720))),
        (1_000_000, Some((640, 360))),
        (64_000, None),
    ]);
    let with = |hard: Limits, soft: Limits| {
        let p = Personalization {
            hard,
            soft,
            ..viewer(None)
        };
        personalize_multivariant(&ladder, &p).map(|o| kept(&o))
    };
    let h = |max_height| Limits {
        max_height: Some(max_height),
        max_bandwidth: None,
    };
    let bw = |max_bandwidth| Limits {
        max_height: None,
        max_bandwidth: Some(max_bandwidth),
    };
    let none = Limits::default();
    assert_eq!(with(none, none).unwrap(), ["v0", "v1", "v2", "v3"]);
    assert_eq!(with(h(720), none).unwrap(), ["v1", "v2", "v3"]);
    assert_eq!(with(bw(1_000_000), none).unwrap(), ["v2", "v3"]);
    assert_eq!(with(h(720), bw(2_000_000)).unwrap(), ["v2", "v3"]);
    // Entitlement is hard: nothing left is a refusal.
    assert_eq!(with(bw(10), none), Err(ManifestError::NothingEntitled));
    // Hints are soft: the lightest variant stays.
    assert_eq!(with(none, bw(10)).unwrap(), ["v3"]);
    // A ladder with an audio-only variant (background listening): a cap that
    // leaves no video is a refusal, a hint keeps the lightest video.
    let with_audio_only = "#EXTM3U\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",URI=\"s/audio.m3u8\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=841569,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,AUDIO=\"audio\"\n\
        s/360p.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=322277,CODECS=\"avc1.42c00c,mp4a.40.2\",RESOLUTION=284x160,AUDIO=\"audio\"\n\
        s/160p.m3u8\n\
        #EXT-X-STREAM-INF:BANDWIDTH=141733,CODECS=\"mp4a.40.2\",AUDIO=\"audio\"\n\
        s/audio.m3u8\n";
    let audio = |hard: Limits, soft: Limits| {
        let p = Personalization {
            hard,
            soft,
            ..viewer(None)
        };
        personalize_multivariant(with_audio_only, &p).map(|o| {
            let pl: MultivariantPlaylist = o.parse().unwrap();
            pl.variants
                .into_iter()
                .map(|v| v.uri.split('?').next().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(audio(h(120), none), Err(ManifestError::NothingEntitled));
    assert_eq!(
        audio(h(160), none).unwrap(),
        ["s/160p.m3u8", "s/audio.m3u8"]
    );
    assert_eq!(
        audio(none, h(100)).unwrap(),
        ["s/160p.m3u8", "s/audio.m3u8"]
    );
    assert_eq!(with(h(1080), h(100)).unwrap(), ["v3"]);
    let video_only = mv(&[
        (6_000_000, Some((1920, 1080))),
        (3_000_000, Some((1280, 720))),
    ]);
    let p = Personalization {
        soft: h(240),
        ..viewer(None)
    };
    assert_eq!(
        kept(&personalize_multivariant(&video_only, &p).unwrap()),
        ["v1"]
    );
    // I-frame variants follow the same limits.
    let p = Personalization {
        hard: h(720),
        ..viewer(None)
    };
    let out = personalize_multivariant(MV_STEERING, &p).unwrap();
    assert!(!out.contains("EXT-X-I-FRAME-STREAM-INF"), "{out}");
    assert!(!out.contains("RESOLUTION=1920x1080"), "{out}");
}

/// A VOD presentation's multivariant: I-frame variants go with the
/// variant of their rendition, even when their own bit rate fits; the
/// thumbnails' image playlist stays and gets the token.
#[test]
fn i_frame_variants_go_with_their_rendition() {
    const MV_VOD: &str =
        include_str!("../../../packager/tests/playlists/multivariant_iframes_images.m3u8");
    let iframes = |out: &str| -> Vec<String> {
        let pl: MultivariantPlaylist = out.parse().unwrap();
        pl.i_frame_variants
            .iter()
            .map(|v| v.uri.split('?').next().unwrap().to_string())
            .collect()
    };
    let p = Personalization {
        hard: Limits {
            max_bandwidth: Some(1_000_000),
            ..Limits::default()
        },
        ..viewer(Some(TOKEN))
    };
    let out = personalize_multivariant(MV_VOD, &p).unwrap();
    assert_eq!(iframes(&out), ["video2-iframes.m3u8"], "{out}");
    assert!(
        out.contains(&format!("URI=\"thumbnails.m3u8?__token__={ENCODED}\"")),
        "{out}"
    );
    let p = Personalization {
        soft: Limits {
            max_height: Some(360),
            ..Limits::default()
        },
        ..viewer(None)
    };
    let out = personalize_multivariant(MV_VOD, &p).unwrap();
    assert_eq!(iframes(&out), ["video2-iframes.m3u8"], "{out}");
    let out = personalize_multivariant(MV_VOD, &viewer(Some(TOKEN))).unwrap();
    assert_eq!(
        iframes(&out),
        ["video-iframes.m3u8", "video2-iframes.m3u8"],
        "{out}"
    );
}

#[test]
fn device_hints() {
    let cfg = RenditionConfig {
        mobile_max_height: Some(720),
        save_data_max_bandwidth: Some(800_000),
    };
    let hints = |pairs: &[(&'static str, &'static str)]| {
        let pairs = pairs.to_vec();
        DeviceHints::from_headers(move |name| {
            pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        })
    };
    let cases = [
        (vec![], DeviceHints::default()),
        (
            vec![("sec-ch-ua-mobile", "?1")],
            DeviceHints {
                mobile: true,
                save_data: false,
            },
        ),
        (
            vec![("sec-ch-ua-mobile", "?0"), ("user-agent", "x Mobile y")],
            DeviceHints::default(),
        ),
        (
            vec![("user-agent", "Mozilla/5.0 (iPhone) Mobile/15E148")],
            DeviceHints {
                mobile: true,
                save_data: false,
            },
        ),
        (
            vec![("save-data", "On")],
            DeviceHints {
                mobile: false,
                save_data: true,
            },
        ),
    ];
    for (headers, want) in cases {
        assert_eq!(hints(&headers), want, "{headers:?}");
    }
    let both = DeviceHints {
        mobile: true,
        save_data: true,
    };
    assert_eq!(
        both.limits(&cfg),
        Limits {
            max_height: Some(720),
            max_bandwidth: Some(800_000)
        }
    );
    assert_eq!(both.limits(&RenditionConfig::default()), Limits::default());
}

#[test]
fn steering_repeats_variants_per_pathway() {
    let plan = SteeringPlan {
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
        initial: "b",
        server_uri: "steering.json",
    };
    let p = Personalization {
        steering: Some(plan),
        ..viewer(Some(TOKEN))
    };
    let out = personalize_multivariant(MV_BROOK, &p).unwrap();
    let pl: MultivariantPlaylist = out.parse().unwrap();
    let cs = pl.content_steering.as_ref().unwrap();
    assert_eq!(cs.server_uri, format!("steering.json?__token__={ENCODED}"));
    assert_eq!(cs.pathway_id.as_deref(), Some("b"));
    let got: Vec<(Option<&str>, &str)> = pl
        .variants
        .iter()
        .map(|v| (v.pathway_id.as_deref(), v.uri.as_str()))
        .collect();
    let a = format!("0a1b2c3d4e5f/media.m3u8?__token__={ENCODED}");
    let b = format!("https://b.example/live/cam1/0a1b2c3d4e5f/media.m3u8?__token__={ENCODED}");
    assert_eq!(got, [(Some("a"), a.as_str()), (Some("b"), b.as_str())]);
    let original: MultivariantPlaylist = MV_BROOK.parse().unwrap();
    for v in &pl.variants {
        assert_eq!(v.bandwidth, original.variants[0].bandwidth);
        assert_eq!(v.codecs, original.variants[0].codecs);
        assert_eq!(v.resolution, original.variants[0].resolution);
    }

    // With renditions: one group per pathway, variants point at their own.
    let p = Personalization {
        steering: Some(SteeringPlan {
            pathways: vec![
                BasePathway {
                    id: "x",
                    base_url: Some("https://x.example/"),
                },
                BasePathway {
                    id: "y",
                    base_url: None,
                },
            ],
            initial: "x",
            server_uri: "steering.json",
        }),
        path: "/live/cam1/index.m3u8",
        ..viewer(None)
    };
    let out = personalize_multivariant(MV_STEERING, &p).unwrap();
    let pl: MultivariantPlaylist = out.parse().unwrap();
    let audio: Vec<(&str, Option<&str>)> = pl
        .renditions
        .iter()
        .filter(|r| r.kind == "AUDIO")
        .map(|r| (r.group_id.as_str(), r.uri.as_deref()))
        .collect();
    assert_eq!(
        audio,
        [
            (
                "aac-x",
                Some("https://x.example/live/cam1/audio/media.m3u8")
            ),
            ("aac-y", Some("audio/media.m3u8"))
        ]
    );
    assert!(pl
        .renditions
        .iter()
        .any(|r| r.kind == "CLOSED-CAPTIONS" && r.group_id == "cc"));
    for v in &pl.variants {
        let pw = v.pathway_id.as_deref().unwrap();
        assert_eq!(v.audio.as_deref(), Some(format!("aac-{pw}").as_str()));
        assert_eq!(v.extra.get("CLOSED-CAPTIONS"), Some("cc"));
    }
    assert_eq!(pl.variants.len(), 6);
    assert_eq!(pl.i_frame_variants.len(), 2);
    assert_eq!(
        pl.i_frame_variants[0].attrs.get("PATHWAY-ID"),
        Some("x"),
        "{out}"
    );
}

#[test]
fn resolves_paths() {
    for (dir, rel, want) in [
        ("/live/cam1", "S/media.m3u8", "/live/cam1/S/media.m3u8"),
        ("/live/cam1", "../cam2/x.m3u8?a=1", "/live/cam2/x.m3u8?a=1"),
        ("/live/cam1", "/other/x", "/other/x"),
        ("/live/cam1", "./a/./b/../c", "/live/cam1/a/c"),
        ("/live/cam1", "../../../../x", "/x"),
        ("", "x", "/x"),
    ] {
        assert_eq!(resolve(dir, rel), want, "{dir} + {rel}");
    }
}

const MPD: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- made by hand; <Period> in a comment is not a Period -->
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011">
  <Period id="p0" start="PT0S">
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true">
      <SegmentTemplate timescale="90000" initialization="S/init.mp4" media='S/seg$Number$.m4s?x=1&amp;y=2' startNumber="1"/>
      <Representation id="720p" bandwidth="2500000" width="1280" height="720" codecs="avc1.64001f"/>
      <Representation id="abs" bandwidth="1" media="https://other.example/a.m4s"/>
    </AdaptationSet>
  </Period>
</MPD>
"#;

#[test]
fn mpd_urls_and_steering() {
    // No token, no steering: byte for byte.
    assert_eq!(personalize_mpd(MPD, &viewer(None), None), MPD);

    let out = personalize_mpd(MPD, &viewer(Some(TOKEN)), None);
    let tok = format!("__token__={ENCODED}");
    assert!(
        out.contains(&format!("initialization=\"S/init.mp4?{tok}\"")),
        "{out}"
    );
    assert!(
        out.contains(&format!("media='S/seg$Number$.m4s?x=1&amp;y=2&amp;{tok}'")),
        "{out}"
    );
    assert!(out.contains("media=\"https://other.example/a.m4s\""));
    assert!(out.contains("<!-- made by hand; <Period> in a comment is not a Period -->"));
    let stripped = out
        .replace(&format!("?{tok}"), "")
        .replace(&format!("&amp;{tok}"), "");
    assert_eq!(stripped, MPD);

    let p = Personalization {
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
        path: "/live/cam1/index.mpd",
        ..viewer(Some(TOKEN))
    };
    let out = personalize_mpd(MPD, &p, Some("steering-dash.json"));
    let steering_at = out.find("<ContentSteering").unwrap();
    assert!(steering_at < out.find("<Period id").unwrap());
    assert!(out.contains(&format!(
        "<ContentSteering defaultServiceLocation=\"a\" queryBeforeStart=\"false\">steering-dash.json?{}</ContentSteering>",
        tok
    )));
    assert!(out.contains("<BaseURL serviceLocation=\"a\">/live/cam1/</BaseURL>"));
    assert!(out.contains("<BaseURL serviceLocation=\"b\">https://b.example/live/cam1/</BaseURL>"));
    assert_eq!(out.matches("<ContentSteering").count(), 1);
}

#[test]
fn bench_playlist_shape() {
    let text = bench_playlist();
    let pl: MediaPlaylist = text.parse().unwrap();
    assert_eq!(pl.segments.len(), 7);
    assert!(pl.segments.iter().all(|s| s.parts.len() == 5));
    assert_eq!(pl.trailing_parts.len(), 2);
    assert_eq!(pl.preload_part(), Some("part1007.2.m4s"));
    assert_eq!(pl.rendition_reports.len(), 1);
}

#[test]
fn personalize_by_kind() {
    let none = Personalization {
        token: None,
        ..viewer(None)
    };
    let same = personalize(Kind::MediaPlaylist, "not a playlist", &none).unwrap();
    assert_eq!(same.body, "not a playlist");
    assert!(!same.rewritten && same.fallback.is_none());

    let p = viewer(Some(TOKEN));
    let media = personalize(Kind::MediaPlaylist, &bench_playlist(), &p).unwrap();
    assert!(media.rewritten && media.fallback.is_none());
    assert_eq!(
        media.body,
        personalize_media(&bench_playlist(), &p).unwrap()
    );
    // A playlist the model refuses: the line rewriter, and why.
    let odd = "#EXTM3U\n#EXT-X-TARGETDURATION:x\nseg1.m4s\n";
    let fell_back = personalize(Kind::MediaPlaylist, odd, &p).unwrap();
    assert!(fell_back.fallback.is_some());
    assert_eq!(fell_back.body, rewrite_lines(odd, &p));
    let mpd = personalize(Kind::Mpd, "<MPD><Period/></MPD>", &p).unwrap();
    assert_eq!(
        mpd.body,
        personalize_mpd("<MPD><Period/></MPD>", &p, Some(DASH_STEERING_SERVER))
    );
    let capped = Personalization {
        hard: Limits {
            max_height: Some(1),
            max_bandwidth: None,
        },
        ..viewer(Some(TOKEN))
    };
    assert_eq!(
        personalize(Kind::Multivariant, MV_BROOK, &capped),
        Err(Refused::NothingEntitled)
    );
}

mod mpd_caps {
    use super::*;
    use brook_packager::dash::{render_mpd, ContentKind, Manifest, Representation, TimelineEntry};

    const S: &str = "0a1b2c3d4e5f6a7b";

    fn rep(id: &str, height: Option<u32>, bandwidth: u64) -> Representation {
        Representation {
            id: id.into(),
            kind: match height {
                Some(h) => ContentKind::Video {
                    width: h * 16 / 9,
                    height: h,
                    frame_rate: Some(30.0),
                },
                None => ContentKind::Audio {
                    sample_rate: 48_000,
                    channels: 2,
                },
            },
            codecs: if height.is_some() {
                "avc1.64001f"
            } else {
                "mp4a.40.2"
            }
            .into(),
            bandwidth,
            timescale: 90_000,
            initialization: format!("{id}-init.mp4"),
            protection: None,
            media: format!("{id}-seg$Number$.m4s"),
            timeline: vec![TimelineEntry {
                number: 1,
                start: 0,
                duration: 90_000,
            }],
        }
    }

    /// The packager's own live MPD over a 3-rung ladder and audio (today's
    /// shape: one AdaptationSet per Representation).
    fn packager_mpd() -> String {
        render_mpd(&Manifest {
            live: true,
            availability_start: brook_packager::UnixMillis(1_795_440_000_000),
            publish_time: brook_packager::UnixMillis(1_795_440_010_000),
            max_segment_duration: 1.0,
            time_shift_buffer: 30.0,
            chunk_duration: 0.2,
            target_latency_ms: 1500,
            utc_timing: Some("time".into()),
            start_with_sap: true,
            splice_events: None,
            representations: vec![
                rep("1080p", Some(1080), 5_000_000),
                rep("720p", Some(720), 2_500_000),
                rep("360p", Some(360), 600_000),
                rep("audio", None, 128_000),
            ],
            thumbnails: None,
        })
    }

    /// Issue 11's shape: one video AdaptationSet, a Representation per rung.
    fn ladder_mpd() -> String {
        String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"dynamic\">\n\
             \x20 <Period id=\"0\" start=\"PT0S\">\n\
             \x20   <AdaptationSet contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\">\n\
             \x20     <SegmentTemplate initialization=\"$RepresentationID$-init.mp4\" media=\"$RepresentationID$-seg$Number$.m4s\"/>\n\
             \x20     <Representation id=\"1080p\" bandwidth=\"5000000\" width=\"1920\" height=\"1080\"/>\n\
             \x20     <Representation id=\"720p\" bandwidth=\"2500000\" width=\"1280\" height=\"720\"/>\n\
             \x20     <Representation id=\"360p\" bandwidth=\"600000\" width=\"640\" height=\"360\"><!-- lowest --></Representation>\n\
             \x20   </AdaptationSet>\n\
             \x20   <AdaptationSet contentType=\"audio\" mimeType=\"audio/mp4\">\n\
             \x20     <Representation id=\"audio\" bandwidth=\"128000\"/>\n\
             \x20   </AdaptationSet>\n\
             \x20 </Period>\n\
             </MPD>\n",
        )
    }

    fn ids(mpd: &str) -> Vec<String> {
        mpd.match_indices("<Representation id=\"")
            .map(|(at, m)| {
                let rest = &mpd[at + m.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect()
    }

    fn limits(h: Option<u32>, bw: Option<u64>) -> Limits {
        Limits {
            max_height: h,
            max_bandwidth: bw,
        }
    }

    #[test]
    fn representations_above_the_caps_are_dropped() {
        let none = Limits::default();
        for (name, mpd) in [("packager", packager_mpd()), ("ladder", ladder_mpd())] {
            type Case = (Limits, Limits, Result<Vec<&'static str>, MpdError>);
            let cases: [Case; 8] = [
                (none, none, Ok(vec!["1080p", "720p", "360p", "audio"])),
                (
                    limits(Some(720), None),
                    none,
                    Ok(vec!["720p", "360p", "audio"]),
                ),
                (limits(Some(360), None), none, Ok(vec!["360p", "audio"])),
                (
                    limits(None, Some(3_000_000)),
                    none,
                    Ok(vec!["720p", "360p", "audio"]),
                ),
                (
                    limits(Some(1080), Some(700_000)),
                    none,
                    Ok(vec!["360p", "audio"]),
                ),
                (
                    limits(Some(240), None),
                    none,
                    Err(MpdError::NothingEntitled),
                ),
                // Hints narrow further, never to nothing.
                (
                    none,
                    limits(Some(720), None),
                    Ok(vec!["720p", "360p", "audio"]),
                ),
                (
                    limits(Some(720), None),
                    limits(Some(100), None),
                    Ok(vec!["360p", "audio"]),
                ),
            ];
            for (hard, soft, want) in cases {
                let got = filter_representations(&mpd, hard, soft).map(|t| ids(&t));
                let want = want.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
                assert_eq!(got, want, "{name}: hard {hard:?} soft {soft:?}");
            }
        }
    }

    /// Thumbnail sheets (an image AdaptationSet with a sheet's width and
    /// height, the lightest Representation of all) are never taken for a
    /// video rung: they neither count as an entitled rendition nor stand in
    /// for the lightest video under device hints, and they stay.
    #[test]
    fn a_thumbnail_adaptation_set_is_not_video() {
        let mpd = packager_mpd().replace(
            "  </Period>",
            "    <AdaptationSet id=\"9\" contentType=\"image\" mimeType=\"image/jpeg\">\n      \
             <SegmentTemplate media=\"thumbs/sheet-$Number$.jpg\" timescale=\"1000\" duration=\"40000\" startNumber=\"1\"/>\n      \
             <Representation id=\"thumbnails\" bandwidth=\"8000\" width=\"800\" height=\"360\">\n        \
             <EssentialProperty schemeIdUri=\"http://dashif.org/thumbnail_tile\" value=\"5x4\"/>\n      \
             </Representation>\n    </AdaptationSet>\n  </Period>",
        );
        assert_eq!(
            filter_representations(&mpd, limits(Some(240), None), Limits::default()),
            Err(MpdError::NothingEntitled)
        );
        let out =
            filter_representations(&mpd, limits(Some(720), None), limits(Some(100), None)).unwrap();
        assert_eq!(ids(&out), ["360p", "audio", "thumbnails"]);
    }

    #[test]
    fn the_rest_of_the_mpd_is_the_origins_byte_for_byte() {
        let mpd = ladder_mpd();
        let out = filter_representations(&mpd, limits(Some(720), None), Limits::default()).unwrap();
        let line = "      <Representation id=\"1080p\" bandwidth=\"5000000\" width=\"1920\" height=\"1080\"/>\n";
        assert_eq!(out, mpd.replace(line, ""));
        // The packager's own MPD: the rungs share one video AdaptationSet, so
        // only the dropped Representation goes.
        let mpd = packager_mpd();
        let out = filter_representations(&mpd, limits(Some(720), None), Limits::default()).unwrap();
        assert_eq!(out.matches("<AdaptationSet").count(), 2);
        assert_eq!(out.matches("</AdaptationSet>").count(), 2);
        assert!(!out.contains("1080p"));
        assert!(out.contains("<UTCTiming"));
        // Nothing to drop: the very same text.
        assert!(matches!(
            filter_representations(&mpd, limits(Some(2160), None), Limits::default()),
            Ok(std::borrow::Cow::Borrowed(_))
        ));
    }

    #[test]
    fn unreadable_mpds_are_refused_to_capped_viewers() {
        for bad in [
            "<MPD><Period><AdaptationSet><Representation height=\"1080\" bandwidth=\"1\">",
            "<MPD><AdaptationSet></Representation></MPD>",
            "<MPD><Representation height=\"1080\" bandwidth=\"1\"></AdaptationSet></MPD>",
        ] {
            assert!(
                matches!(
                    filter_representations(bad, limits(Some(720), None), Limits::default()),
                    Err(MpdError::Unreadable(_))
                ),
                "{bad}"
            );
        }
        let capped = Personalization {
            hard: limits(Some(720), None),
            ..viewer(Some(TOKEN))
        };
        assert!(matches!(
            personalize(
                Kind::Mpd,
                "<MPD><Period><AdaptationSet><Representation height=\"1080\">",
                &capped
            ),
            Err(Refused::Unreadable(_))
        ));
        // Device hints alone: the MPD as it is, with the token.
        let hinted = Personalization {
            soft: limits(Some(720), None),
            ..viewer(Some(TOKEN))
        };
        let out = personalize(Kind::Mpd, "<MPD><Period><AdaptationSet>", &hinted).unwrap();
        assert!(out.fallback.is_some());
    }

    #[test]
    fn personalize_filters_then_adds_the_token() {
        let capped = Personalization {
            hard: limits(Some(720), None),
            ..viewer(Some(TOKEN))
        };
        let out = personalize(Kind::Mpd, &packager_mpd(), &capped).unwrap();
        assert_eq!(ids(&out.body), ["720p", "360p", "audio"]);
        assert!(out
            .body
            .contains(&format!("720p-init.mp4?__token__={ENCODED}")));
        let _ = S;
    }

    #[test]
    fn renditions_of_removed_variants_leave_the_multivariant() {
        let text = format!(
            "#EXTM3U\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"hi\",NAME=\"a\",URI=\"{S}/audio_hi.m3u8\"\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"lo\",NAME=\"a\",URI=\"{S}/audio_lo.m3u8\"\n\
             #EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"en\",URI=\"{S}/subs.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,AUDIO=\"hi\"\n{S}/1080p.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=600000,RESOLUTION=640x360,AUDIO=\"lo\"\n{S}/360p.m3u8\n"
        );
        let capped = Personalization {
            hard: limits(Some(720), None),
            ..viewer(None)
        };
        let out = personalize_multivariant(&text, &capped).unwrap();
        assert!(!out.contains("audio_hi"), "{out}");
        assert!(out.contains("audio_lo"));
        assert!(
            out.contains("subs.m3u8"),
            "a group no variant used is left alone"
        );
        assert!(!out.contains("1080p"));
    }
}

/// A VOD asset's playlists, as the origin's layout writes them: URIs
/// without a session, an I-frame playlist per video rendition.
const MV_VOD: &str = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
    #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"audio\",DEFAULT=YES,URI=\"audio.m3u8\"\n\
    #EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,CODECS=\"avc1.640028,mp4a.40.2\",AUDIO=\"aac\"\n1080p.m3u8\n\
    #EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"aac\"\n720p.m3u8\n\
    #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=300000,RESOLUTION=1920x1080,CODECS=\"avc1.640028\",URI=\"1080p-iframes.m3u8\"\n\
    #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=150000,RESOLUTION=1280x720,CODECS=\"avc1.64001f\",URI=\"720p-iframes.m3u8\"\n";

/// (In the packager model's rendering, as the origin writes it.)
// In the order the packager renders an I-frame playlist (the model keeps
// the tags, not their order among the header tags).
const IFRAMES_VOD: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n\
    #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-I-FRAMES-ONLY\n#EXT-X-MEDIA-SEQUENCE:0\n\
    #EXT-X-MAP:URI=\"720p-init0.mp4\"\n\
    #EXTINF:4,\n#EXT-X-BYTERANGE:20000@812\n720p-seg0.m4s\n\
    #EXTINF:4,\n#EXT-X-BYTERANGE:18000@900\n720p-seg1.m4s\n#EXT-X-ENDLIST\n";

fn vod_viewer(hard: Limits) -> Personalization<'static> {
    Personalization {
        hard,
        path: "/vod/0123456789abcdef0123456789abcdef/index.m3u8",
        interstitials: None,
        ..viewer(Some(TOKEN))
    }
}

#[test]
fn vod_multivariant_caps_and_token() {
    let capped = Limits {
        max_height: Some(720),
        max_bandwidth: None,
    };
    let out = personalize(
        Kind::Vod(VodKind::Multivariant),
        MV_VOD,
        &vod_viewer(capped),
    )
    .unwrap();
    assert!(out.rewritten && out.fallback.is_none());
    assert!(!out.body.contains("1080p"), "{}", out.body);
    for uri in ["720p.m3u8", "audio.m3u8", "720p-iframes.m3u8"] {
        assert!(
            out.body.contains(&format!("{uri}?__token__={ENCODED}")),
            "{uri}: {}",
            out.body
        );
    }
    // By bandwidth the 1080p I-frame variant (300 kb/s) would fit; it goes
    // with its rendition, whose segments the viewer may not fetch.
    let by_bw = Limits {
        max_height: None,
        max_bandwidth: Some(3_000_000),
    };
    let out = personalize(Kind::Vod(VodKind::Multivariant), MV_VOD, &vod_viewer(by_bw)).unwrap();
    assert!(!out.body.contains("1080p"), "{}", out.body);
    assert!(out.body.contains("720p-iframes.m3u8"), "{}", out.body);
    // Uncapped: everything, with the token.
    let out = personalize(
        Kind::Vod(VodKind::Multivariant),
        MV_VOD,
        &vod_viewer(Limits::default()),
    )
    .unwrap();
    assert!(out
        .body
        .contains(&format!("1080p-iframes.m3u8?__token__={ENCODED}")));
}

#[test]
fn vod_iframe_playlist_keeps_byte_ranges_and_gets_the_token() {
    let out = personalize(
        Kind::Vod(VodKind::IFramePlaylist),
        IFRAMES_VOD,
        &vod_viewer(Limits::default()),
    )
    .unwrap();
    assert!(out.rewritten);
    let mut back: String = String::new();
    for line in out.body.lines() {
        let mut line = line.to_string();
        strip_token(&mut line);
        back.push_str(&line);
        back.push('\n');
    }
    assert_eq!(back, IFRAMES_VOD, "only the token was added");
    assert!(out.body.contains("#EXT-X-BYTERANGE:20000@812\n"));
    assert!(out
        .body
        .contains(&format!("720p-seg0.m4s?__token__={ENCODED}")));
    assert!(out
        .body
        .contains(&format!("URI=\"720p-init0.mp4?__token__={ENCODED}\"")));
}
