use super::*;

const LIVE: &str = include_str!("../../../tests/playlists/media_ll_live.m3u8");
const DISCONTINUITY: &str =
    include_str!("../../../tests/playlists/media_discontinuity_daterange.m3u8");

#[test]
fn parses_the_ll_hls_model() {
    let pl: MediaPlaylist = LIVE.parse().unwrap();
    assert_eq!(pl.version, Some(9));
    assert_eq!(pl.part_target, Some(0.2));
    assert!(pl.server_control.can_block_reload);
    assert_eq!(pl.server_control.can_skip_until, Some(12.0));
    assert_eq!(pl.map.as_ref().map(|m| m.uri.as_str()), Some("init.mp4"));
    assert_eq!(pl.segments.len(), 2);
    assert_eq!(pl.segments[1].msn, 42);
    assert_eq!(pl.segments[1].parts.len(), 10);
    assert!(pl.segments[1].parts[5].independent);
    assert_eq!(
        pl.segments[0].tags.program_date_time,
        Some(UnixMillis(1_795_445_850_123))
    );
    assert_eq!(pl.trailing_parts.len(), 2);
    assert_eq!(pl.preload_part(), Some("part43.2.m4s"));
    assert_eq!(pl.rendition_reports[0].last_part, Some(1));
    assert_eq!(pl.next_msn(), 43);
    assert!(pl.contains(43, Some(1)));
    assert!(!pl.contains(43, Some(2)));
    assert_eq!(pl.last_part(), Some((43, 1)));
}

#[test]
fn unknown_tags_stay_where_they_were() {
    let pl: MediaPlaylist = DISCONTINUITY.parse().unwrap();
    assert_eq!(
        pl.header_tags,
        vec!["EXT-X-START:TIME-OFFSET=-6,PRECISE=YES"]
    );
    assert_eq!(
        pl.segments[0].tags.other,
        vec!["EXT-X-KEY:METHOD=NONE", "EXT-X-BROOK-CUSTOM:whatever"]
    );
    assert_eq!(
        pl.segments[0].tags.date_ranges[0].get("X-AD-ID"),
        Some("abc,def")
    );
    assert!(pl.segments[1].tags.discontinuity);
    assert_eq!(pl.segments[1].tags.map.as_ref().unwrap().uri, "init-2.mp4");
    assert!(pl.segments[2].tags.gap);
    assert!(pl.trailing_parts[1].gap);
}

#[test]
fn rewriting_uris_touches_every_reference() {
    let mut pl: MediaPlaylist = DISCONTINUITY.parse().unwrap();
    let mut seen = Vec::new();
    pl.for_each_uri_mut(|kind, uri| {
        seen.push(kind);
        uri.push_str("?token=t");
    });
    let out = pl.to_string();
    for line in out.lines() {
        if line.contains("URI=\"") {
            assert!(line.contains("?token=t\""), "{line}");
        } else if !line.starts_with('#') {
            assert!(line.ends_with("?token=t"), "{line}");
        }
    }
    assert_eq!(seen.iter().filter(|k| **k == UriKind::Map).count(), 2);
    assert_eq!(
        seen.iter()
            .filter(|k| **k == UriKind::RenditionReport)
            .count(),
        2
    );
}

#[test]
fn delta_update_skips_old_segments_and_keeps_dateranges() {
    let mut pl = MediaPlaylist {
        version: Some(9),
        target_duration: 2,
        part_target: Some(0.2),
        server_control: ServerControl {
            can_block_reload: true,
            can_skip_until: Some(6.0),
            part_hold_back: Some(0.6),
            ..Default::default()
        },
        media_sequence: 10,
        map: Some(Map::new("init.mp4")),
        ..Default::default()
    };
    for msn in 10..16 {
        pl.segments
            .push(Segment::new(msn, format!("seg{msn}.m4s"), 2.0));
    }
    pl.segments[1]
        .tags
        .date_ranges
        .push(AttributeList::parse("ID=\"x\",START-DATE=\"2026-11-23T14:00:00Z\"", 1).unwrap());
    pl.trailing_parts.push(Part::new("part16.0.m4s", 0.2, true));
    let delta = pl.delta(false).unwrap();
    // 12.2 s in the playlist; segments ending at least 6 s before the end go.
    assert_eq!(delta.skip.as_ref().unwrap().skipped_segments, 3);
    assert_eq!(delta.segments[0].msn, 13);
    assert_eq!(
        delta.segments[0].tags.date_ranges.len(),
        1,
        "date range kept"
    );
    assert_eq!(delta.next_msn(), pl.next_msn());
    let text = delta.to_string();
    assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n"));
    let reparsed: MediaPlaylist = text.parse().unwrap();
    assert_eq!(reparsed, delta);
    assert_eq!(reparsed.segments[0].msn, 13);
    // Without CAN-SKIP-UNTIL there is no delta form.
    pl.server_control.can_skip_until = None;
    assert!(pl.delta(false).is_none());
}

#[test]
fn malformed_playlists_are_errors_with_a_line() {
    let cases: &[(&str, usize)] = &[
        ("", 1),
        ("#EXT-X-VERSION:3\n", 1),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg0.ts\n", 3),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:abc,\nseg0.ts\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.2\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:URI=\"a\"\n",
            3,
        ),
        ("#EXTM3U\n#EXTINF:2,\nseg0.ts\n", 0),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n", 0),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:x\n", 2),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", 2),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n",
            3,
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"i.mp4\",BYTERANGE=\"x@1\"\n",
            3,
        ),
    ];
    for (text, line) in cases {
        let err = text.parse::<MediaPlaylist>().unwrap_err();
        assert_eq!(err.line, *line, "{text:?}: {err}");
    }
}

#[test]
fn tags_between_parts_keep_their_place_and_key_and_asset_uris_are_visited() {
    let text = include_str!("../../../tests/playlists/media_cues_keys_interstitials.m3u8");
    let mut pl: MediaPlaylist = text.parse().unwrap();
    assert_eq!(
        pl.segments[0].parts[1].before,
        vec!["EXT-X-CUE-OUT:DURATION=30"]
    );
    assert_eq!(pl.segments[0].tail, vec!["EXT-X-BROOK-NOTE:after-parts"]);
    assert_eq!(pl.trailing_parts[1].before, vec!["EXT-X-CUE-IN"]);
    assert_eq!(pl.trailing_tail, vec!["EXT-X-BROOK-NOTE:trailing"]);
    let mut kinds = Vec::new();
    pl.for_each_uri_mut(|kind, uri| {
        kinds.push(kind);
        uri.push_str("?t=1");
    });
    assert!(kinds.contains(&UriKind::Key) && kinds.contains(&UriKind::Asset));
    let out = pl.to_string();
    assert!(
        out.contains("URI=\"https://keys.example/k1?t=1\",IV=0x"),
        "{out}"
    );
    assert!(
        out.contains("X-ASSET-URI=\"https://ads.example/ad1.m3u8?t=1\""),
        "{out}"
    );
    // Every line stays where it was; only URIs changed.
    let strip = |s: &str| s.replace("?t=1", "");
    assert_eq!(strip(&out), text);
}

#[test]
fn i_frames_cover_segments_that_start_with_one_and_never_span_a_discontinuity() {
    let mut pl = MediaPlaylist {
        version: Some(9),
        target_duration: 2,
        playlist_type: Some(PlaylistType::Vod),
        map: Some(Map::new("init.mp4")),
        end_list: true,
        ..Default::default()
    };
    for msn in 0..7 {
        pl.segments
            .push(Segment::new(msn, format!("seg{msn}.m4s"), 2.0));
    }
    // seg1 cut without a keyframe, seg3 a gap; seg4 starts a new timeline
    // with a new init but no keyframe, seg5 has one.
    pl.segments[3].tags.gap = true;
    pl.segments[4].tags.discontinuity = true;
    pl.segments[4].tags.map = Some(Map::new("init1.mp4"));
    let keyless = [1, 4];
    let ipl = pl.i_frames(|s| {
        (!keyless.contains(&s.msn)).then_some(ByteRange {
            length: 1000 + s.msn,
            offset: Some(0),
        })
    });
    let uris: Vec<&str> = ipl.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(
        uris,
        ["seg0.m4s", "seg2.m4s", "seg5.m4s", "seg6.m4s"],
        "no entry for keyless and gap segments"
    );
    let durations: Vec<f64> = ipl.segments.iter().map(|s| s.duration).collect();
    // seg0 lasts until seg2; seg2 until its timeline ends (the gap is in
    // it); seg4 has no I-frame to show.
    assert_eq!(durations, [4.0, 4.0, 2.0, 2.0]);
    assert!(ipl.segments[2].tags.discontinuity);
    assert_eq!(ipl.segments[2].tags.map, Some(Map::new("init1.mp4")));
    assert_eq!(ipl.target_duration, 4);
    assert_eq!(ipl.segments[3].msn, 3);
    let text = ipl.to_string();
    assert!(text.contains("#EXT-X-I-FRAMES-ONLY\n"));
    assert!(text.contains(
        "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n#EXTINF:2,\n#EXT-X-BYTERANGE:1005@0\nseg5.m4s\n"
    ));
    assert_eq!(text.parse::<MediaPlaylist>().unwrap(), ipl);
    assert_eq!(ipl.peak_byterange_bitrate(), 1006 * 8 / 2);
}
