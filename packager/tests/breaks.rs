//! Ad breaks through the whole packager: SCTE-35 injected into a real
//! capture (`ts::inject`, as a splicer would) and breaks asked for by API
//! come out as segments cut at the splice points and markers in every
//! rendition's playlist and in the MPD.

use brook_packager::breaks::{AdMarkers, CueAt, SpliceCue};
use brook_packager::scte35;
use brook_packager::ts::inject::{Injection, SpliceInjector};
use brook_packager::{Packager, PackagerConfig, UnixMillis, MPD_NAME};

const T0: u64 = 1_795_000_000_000;

fn injected(at_ms: u64, duration_ms: u64) -> Vec<u8> {
    inject(
        include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts"),
        at_ms,
        duration_ms,
    )
}

fn inject(ts: &[u8], at_ms: u64, duration_ms: u64) -> Vec<u8> {
    let mut inj = SpliceInjector::new(Injection {
        at_ms,
        duration_ms,
        preroll_ms: 900,
        event_id: 77,
        ..Injection::default()
    });
    let mut out = inj.push(ts);
    out.extend(inj.finish());
    assert!(inj.sent >= 1);
    out
}

fn package(ts: &[u8], markers: AdMarkers, mut cue_at: Option<(usize, SpliceCue)>) -> Packager {
    let mut p = Packager::new(PackagerConfig {
        ad_markers: markers,
        ..PackagerConfig::default()
    });
    for (i, chunk) in ts.chunks(1316).enumerate() {
        if cue_at.as_ref().is_some_and(|(at, _)| *at == i) {
            p.push_cue(cue_at.take().unwrap().1);
        }
        p.push_ts(chunk, UnixMillis(T0 + i as u64)).unwrap();
        while p.poll().is_some() {}
    }
    p.finish();
    while p.poll().is_some() {}
    p
}

/// (PDT, duration) of every segment, and the tags before each.
fn segments(text: &str) -> Vec<(String, f64, Vec<String>)> {
    let mut out = Vec::new();
    let mut tags = Vec::new();
    let mut pdt = String::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = d.to_string();
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            let d: f64 = d.trim_end_matches(',').parse().unwrap();
            out.push((pdt.clone(), d, std::mem::take(&mut tags)));
        } else if line.starts_with("#EXT-X-DATERANGE") || line.starts_with("#EXT-X-CUE") {
            tags.push(line.to_string());
        }
    }
    out
}

#[test]
fn an_scte35_break_cuts_segments_at_its_splice_points_and_is_marked_in_every_rendition() {
    let ts = injected(1000, 1000);
    let p = package(&ts, AdMarkers::DateRange, None);
    let section_hex = |s: &str| {
        let i = s.find("0xFC").unwrap();
        s[i + 2..].split(',').next().unwrap().to_string()
    };
    let mut starts = Vec::new();
    for name in ["video.m3u8", "audio.m3u8"] {
        let text = p.media_playlist(name).unwrap().to_string();
        let segs = segments(&text);
        // 2 s segments, but the 1 s keyframe at the splice starts one, and
        // the one at its end (auto-return after 1 s) another.
        let durations: Vec<f64> = segs.iter().map(|s| (s.1 * 10.0).round() / 10.0).collect();
        assert_eq!(&durations[..2], &[1.0, 1.0], "{name}: {text}");
        let (pdt, _, tags) = &segs[1];
        assert_eq!(tags.len(), 1, "{name}: {text}");
        let out = &tags[0];
        assert!(
            out.starts_with(&format!(
                "#EXT-X-DATERANGE:ID=\"splice-77\",START-DATE=\"{pdt}\",PLANNED-DURATION=1,SCTE35-OUT=0xFC"
            )),
            "{name}: {out}"
        );
        // The very section the splicer sent.
        let raw: Vec<u8> = (0..section_hex(out).len() / 2)
            .map(|i| u8::from_str_radix(&section_hex(out)[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let info = scte35::parse(&raw).unwrap();
        assert!(matches!(
            info.cue(),
            Some(scte35::Cue::Out {
                event_id: 77,
                duration: Some(90_000),
                ..
            })
        ));
        let (_, _, tags) = &segs[2];
        assert_eq!(tags.len(), 1, "{name}: {text}");
        assert!(
            tags[0].starts_with(&format!(
                "#EXT-X-DATERANGE:ID=\"splice-77\",START-DATE=\"{pdt}\",DURATION=1,SCTE35-IN=0xFC"
            )),
            "{name}: {}",
            tags[0]
        );
        starts.push(pdt.clone());
    }
    assert_eq!(starts[0], starts[1]);
    assert_eq!(p.stats().breaks.breaks, 1);
    // A delta update (_HLS_skip=YES) keeps every date range, those of the
    // skipped segments too (RFC 8216bis §6.2.5.1).
    let mut full = p.media_playlist("video.m3u8").unwrap().clone();
    full.end_list = false;
    full.server_control.can_skip_until = Some(0.5);
    let delta = full.delta(false).expect("a delta update");
    assert!(delta.skip.as_ref().unwrap().skipped_segments >= 2);
    let ids = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("#EXT-X-DATERANGE"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&delta.to_string()), ids(&full.to_string()));
    let mpd = p.dash_manifest(UnixMillis(T0 + 10_000), None).unwrap();
    assert!(
        mpd.contains(
            "<EventStream schemeIdUri=\"urn:scte:scte35:2014:xml+bin\" timescale=\"90000\">"
        ),
        "{MPD_NAME}: {mpd}"
    );
    assert!(
        mpd.contains(
            "duration=\"90000\"><Signal xmlns=\"http://www.scte.org/schemas/35/2016\"><Binary>/DA"
        ),
        "{mpd}"
    );
}

#[test]
fn an_api_break_is_marked_with_a_splice_insert_brook_writes_and_cue_out_style_works() {
    let ts = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");
    // The date of the first frame, then a break 1 s later: the 1 s keyframe.
    let clean = package(ts, AdMarkers::DateRange, None);
    let text = clean.media_playlist("video.m3u8").unwrap().to_string();
    let first = segments(&text)[0].0.clone();
    let one_s_in = UnixMillis(UnixMillis::parse_iso8601(&first).unwrap().0 + 1000);
    let cue = SpliceCue::start("break-1", CueAt::Wall(one_s_in), 1000);
    let p = package(ts, AdMarkers::CueOut, Some((20, cue)));
    let text = p.media_playlist("video.m3u8").unwrap().to_string();
    let segs = segments(&text);
    let tags: Vec<&Vec<String>> = segs.iter().map(|s| &s.2).collect();
    assert_eq!(
        tags[1],
        &vec!["#EXT-X-CUE-OUT:DURATION=1".to_string()],
        "{text}"
    );
    assert_eq!(tags[2], &vec!["#EXT-X-CUE-IN".to_string()], "{text}");

    let cue = SpliceCue::start("break-2", CueAt::Wall(one_s_in), 1000);
    let p = package(ts, AdMarkers::DateRange, Some((20, cue)));
    let text = p.media_playlist("video.m3u8").unwrap().to_string();
    let out = text
        .lines()
        .find(|l| l.contains("SCTE35-OUT"))
        .expect(&text);
    let hex = out.split("SCTE35-OUT=0x").nth(1).unwrap();
    let raw: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let info = scte35::parse(&raw).unwrap();
    assert!(matches!(
        info.cue(),
        Some(scte35::Cue::Out {
            pts: None,
            duration: Some(90_000),
            ..
        })
    ));
}

#[test]
fn a_stray_end_is_counted_not_applied() {
    let ts = include_bytes!("fixtures/lavfi_h264_aac_zerolatency.ts");
    let cue = SpliceCue::end(CueAt::Now);
    let p = package(ts, AdMarkers::DateRange, Some((20, cue)));
    assert_eq!(p.stats().breaks.ignored, 1);
    assert_eq!(p.stats().breaks.breaks, 0);
    let text = p.media_playlist("video.m3u8").unwrap().to_string();
    assert!(!text.contains("DATERANGE"), "{text}");
}

#[test]
fn with_b_frames_the_break_is_marked_on_the_segment_cut_for_it() {
    // A keyframe is decoded before it is presented: the segment starts at
    // its decode time, the splice is a presentation time.
    let ts = inject(
        include_bytes!("fixtures/lavfi_h264_bframes_aac.ts"),
        1000,
        1000,
    );
    let p = package(&ts, AdMarkers::DateRange, None);
    let text = p.media_playlist("video.m3u8").unwrap().to_string();
    let segs = segments(&text);
    let durations: Vec<f64> = segs.iter().map(|s| (s.1 * 10.0).round() / 10.0).collect();
    assert_eq!(&durations[..2], &[1.0, 1.0], "{text}");
    assert!(segs[1].2[0].contains("SCTE35-OUT"), "{text}");
    assert!(segs[2].2[0].contains("SCTE35-IN"), "{text}");
    assert!(segs[2].2[0].contains("DURATION=1,"), "{text}");
}

#[test]
fn a_break_across_an_encoder_restart_ends_after_the_discontinuity() {
    // The second half's timestamps jump back (a restarted encoder): the
    // break (1 s in, 5 s planned) ends where the first half ends (its last
    // segment: 0.967 s).
    let ts = inject(
        include_bytes!("fixtures/lavfi_h264_aac_timestamp_jump.ts"),
        1000,
        5000,
    );
    let p = package(&ts, AdMarkers::DateRange, None);
    let text = p.media_playlist("video.m3u8").unwrap().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let out = lines
        .iter()
        .position(|l| l.contains("SCTE35-OUT"))
        .expect(&text);
    let inn = lines
        .iter()
        .position(|l| l.contains("SCTE35-IN"))
        .expect(&text);
    let disc = lines
        .iter()
        .position(|l| *l == "#EXT-X-DISCONTINUITY")
        .expect(&text);
    assert!(out < disc && disc < inn, "{text}");
    assert!(lines[inn].contains("DURATION=0.967,"), "{text}");
    // The MPD keeps no event of the old clock.
    let mpd = p.dash_manifest(UnixMillis(T0 + 10_000), None).unwrap();
    assert!(!mpd.contains("EventStream"), "{mpd}");
}
