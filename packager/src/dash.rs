//! MPEG-DASH manifests over the same CMAF segments HLS serves: a dynamic,
//! low-latency MPD while live (DASH-IF IOP "Low-latency Modes for DASH":
//! `availabilityTimeOffset` + `availabilityTimeComplete="false"` for chunked
//! segments, a `ServiceDescription` latency target, `UTCTiming`), and a static
//! MPD for the VOD a stream becomes.
//!
//! The MPD uses `SegmentTemplate` with `$Number$` addressing and a
//! `SegmentTimeline` whose times are the segments' `tfdt`s, so every segment's
//! position is exact even when segment durations vary (IDR-driven cuts).

use std::fmt::Write;

use crate::thumbnail::ThumbnailTrack;
use crate::time::UnixMillis;

/// One segment of a representation, in its timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineEntry {
    pub number: u64,
    pub start: u64,
    pub duration: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContentKind {
    Video {
        width: u32,
        height: u32,
        frame_rate: Option<f64>,
    },
    Audio {
        sample_rate: u32,
        channels: u16,
    },
}

/// A representation (one CMAF track) and where its objects are.
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    pub id: String,
    pub kind: ContentKind,
    pub codecs: String,
    pub bandwidth: u64,
    pub timescale: u32,
    /// URL of the init segment, relative to the MPD.
    pub initialization: String,
    /// Segment URL template with `$Number$`.
    pub media: String,
    pub timeline: Vec<TimelineEntry>,
    /// Common Encryption of the representation's segments, if any.
    pub protection: Option<Protection>,
}

/// `ContentProtection` of an encrypted representation (DASH-IF IOP §7,
/// ISO/IEC 23009-1 §5.8.5.2): the scheme with `cenc:default_KID`, then one
/// element per key system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// `cbcs` or `cenc`.
    pub scheme: String,
    /// The init segment's default KID as a UUID.
    pub default_kid: String,
    /// W3C ClearKey license URL (`dashif:laurl`), when ClearKey is offered.
    pub clearkey_laurl: Option<String>,
    /// Commercial DRM systems, as their key provider describes them.
    pub drm: Vec<DrmProtection>,
}

/// One DRM system's `ContentProtection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrmProtection {
    /// The system id as a UUID.
    pub system_id: String,
    pub value: Option<String>,
    /// The element's content, well-formed XML (`<cenc:pssh>`, `<mspr:pro>`).
    pub children: String,
}

fn protection_xml(out: &mut String, p: &Protection) {
    let _ = writeln!(
        out,
        "      <ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" \
         value=\"{}\" cenc:default_KID=\"{}\"/>",
        xml_escape(&p.scheme),
        xml_escape(&p.default_kid)
    );
    if let Some(url) = &p.clearkey_laurl {
        let _ = writeln!(
            out,
            "      <ContentProtection schemeIdUri=\"urn:uuid:{}\" value=\"ClearKey1.0\">\n        \
             <dashif:laurl>{}</dashif:laurl>\n      </ContentProtection>",
            crate::cmaf::cenc::CLEARKEY_SYSTEM_ID,
            xml_escape(url)
        );
    }
    for d in &p.drm {
        let value = d
            .value
            .as_ref()
            .map(|v| format!(" value=\"{}\"", xml_escape(v)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "      <ContentProtection schemeIdUri=\"urn:uuid:{}\"{value}>\n        {}\n      </ContentProtection>",
            xml_escape(&d.system_id),
            d.children
        );
    }
}

/// The period's SCTE-35 events (SCTE 214-1 §6.7, `urn:scte:scte35:2014:xml+bin`):
/// each break's `splice_info_section` in base64, at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceEvents {
    pub timescale: u32,
    pub events: Vec<SpliceEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceEvent {
    pub id: u64,
    /// Media time of the break's start, ticks (the period starts at 0).
    pub presentation_time: u64,
    pub duration: Option<u64>,
    pub section: Vec<u8>,
}

fn splice_events_xml(out: &mut String, e: &SpliceEvents) {
    use base64::Engine as _;
    if e.events.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "    <EventStream schemeIdUri=\"urn:scte:scte35:2014:xml+bin\" timescale=\"{}\">",
        e.timescale
    );
    for ev in &e.events {
        let _ = write!(
            out,
            "      <Event presentationTime=\"{}\" id=\"{}\"",
            ev.presentation_time, ev.id
        );
        if let Some(d) = ev.duration {
            let _ = write!(out, " duration=\"{d}\"");
        }
        let _ = writeln!(
            out,
            "><Signal xmlns=\"http://www.scte.org/schemas/35/2016\"><Binary>{}</Binary></Signal></Event>",
            base64::engine::general_purpose::STANDARD.encode(&ev.section)
        );
    }
    out.push_str("    </EventStream>\n");
}

/// Everything an MPD says; see [`render_mpd`].
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `dynamic` while live; `static` once the stream ended (VOD).
    pub live: bool,
    /// Wall-clock time of media time 0 (`availabilityStartTime`).
    pub availability_start: UnixMillis,
    pub publish_time: UnixMillis,
    /// Longest segment, seconds (`maxSegmentDuration`, `minimumUpdatePeriod`).
    pub max_segment_duration: f64,
    /// Live window kept, seconds (`timeShiftBufferDepth`).
    pub time_shift_buffer: f64,
    /// Part duration, seconds: segments become requestable this long after they
    /// start, and are then delivered chunk by chunk.
    pub chunk_duration: f64,
    /// Target live latency, milliseconds (`ServiceDescription`).
    pub target_latency_ms: u32,
    /// `UTCTiming` source (`urn:mpeg:dash:utc:http-iso:2014`), if any.
    pub utc_timing: Option<String>,
    /// Every segment starts with a keyframe (`startWithSAP="1"`): false once
    /// one was cut at the longest segment without one.
    pub start_with_sap: bool,
    pub representations: Vec<Representation>,
    /// Ad breaks: one SCTE-35 `EventStream` in the period.
    pub splice_events: Option<SpliceEvents>,
    /// Trick-play thumbnail sheets: an image adaptation set after the media
    /// (DASH-IF IOP 4.3 §6.2.6), when given and valid.
    pub thumbnails: Option<ThumbnailTrack>,
}

fn duration(secs: f64) -> String {
    format!("PT{:.3}S", secs.max(0.0))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Run-length encodes a timeline: consecutive equal durations with contiguous
/// starts become one `S` with `r`.
fn timeline_xml(out: &mut String, entries: &[TimelineEntry]) {
    out.push_str("        <SegmentTimeline>\n");
    let mut i = 0;
    while i < entries.len() {
        let e = entries[i];
        let mut repeat = 0;
        while let Some(next) = entries.get(i + 1 + repeat) {
            let prev = entries[i + repeat];
            if next.duration == e.duration && next.start == prev.start + prev.duration {
                repeat += 1;
            } else {
                break;
            }
        }
        let _ = write!(out, "          <S t=\"{}\" d=\"{}\"", e.start, e.duration);
        if repeat > 0 {
            let _ = write!(out, " r=\"{repeat}\"");
        }
        out.push_str("/>\n");
        i += 1 + repeat;
    }
    out.push_str("        </SegmentTimeline>\n");
}

/// The codec family of an RFC 6381 string (`mp4a`, `opus`, `avc1`, ...).
fn codec_family(codecs: &str) -> &str {
    codecs.split('.').next().unwrap_or(codecs)
}

fn representation(out: &mut String, m: &Manifest, r: &Representation) {
    let _ = write!(
        out,
        "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{}\"",
        xml_escape(&r.id),
        xml_escape(&r.codecs),
        r.bandwidth
    );
    match r.kind {
        ContentKind::Video {
            width,
            height,
            frame_rate,
        } => {
            let _ = write!(out, " width=\"{width}\" height=\"{height}\"");
            if let Some(fr) = frame_rate {
                let _ = write!(out, " frameRate=\"{}\"", (fr * 1000.0).round() / 1000.0);
            }
            out.push_str(">\n");
        }
        ContentKind::Audio {
            sample_rate,
            channels,
        } => {
            let _ = writeln!(out, " audioSamplingRate=\"{sample_rate}\">");
            let _ = writeln!(
                out,
                "        <AudioChannelConfiguration \
                 schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" \
                 value=\"{channels}\"/>"
            );
        }
    }
    let start_number = r.timeline.first().map_or(0, |e| e.number);
    let _ = write!(
        out,
        "        <SegmentTemplate timescale=\"{}\" initialization=\"{}\" media=\"{}\" \
         startNumber=\"{start_number}\"",
        r.timescale,
        xml_escape(&r.initialization),
        xml_escape(&r.media)
    );
    if m.live {
        // A segment may be requested as soon as its first chunk exists; it then
        // arrives chunk by chunk (chunked transfer), hence "not complete".
        let longest = r.timeline.iter().map(|e| e.duration).max().unwrap_or(0) as f64
            / f64::from(r.timescale);
        let offset = (longest.max(m.max_segment_duration) - m.chunk_duration).max(0.0);
        let _ = write!(
            out,
            " availabilityTimeOffset=\"{offset:.3}\" availabilityTimeComplete=\"false\""
        );
    }
    out.push_str(">\n");
    timeline_xml(out, &r.timeline);
    out.push_str("        </SegmentTemplate>\n      </Representation>\n");
}

/// The image adaptation set of thumbnail sheets: `SegmentTemplate` with
/// `$Number$` from 1, one sheet per `duration` (ms); the representation is a
/// whole sheet, its tile grid in the `thumbnail_tile` property (dash.js reads
/// `width`/`height` as the sheet's and divides by the grid).
fn thumbnails_xml(out: &mut String, id: usize, t: &ThumbnailTrack) {
    let (width, height) = t.sheet_size();
    let _ = write!(
        out,
        "    <AdaptationSet id=\"{id}\" contentType=\"image\" mimeType=\"image/jpeg\">\n      \
         <SegmentTemplate media=\"{}\" timescale=\"1000\" duration=\"{}\" startNumber=\"1\"/>\n      \
         <Representation id=\"thumbnails\" bandwidth=\"{}\" width=\"{width}\" height=\"{height}\">\n        \
         <EssentialProperty schemeIdUri=\"http://dashif.org/thumbnail_tile\" value=\"{}x{}\"/>\n      \
         </Representation>\n    </AdaptationSet>\n",
        xml_escape(&t.template),
        (t.sheet_duration() * 1000.0).round().max(1.0) as u64,
        t.bandwidth(),
        t.columns,
        t.rows
    );
}

/// Renders the MPD.
pub fn render_mpd(m: &Manifest) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
         type=\"{}\" minBufferTime=\"{}\" maxSegmentDuration=\"{}\"",
        if m.live { "dynamic" } else { "static" },
        duration(m.chunk_duration.max(0.5)),
        duration(m.max_segment_duration)
    );
    if m.representations.iter().any(|r| r.protection.is_some()) {
        out.push_str(" xmlns:cenc=\"urn:mpeg:cenc:2013\" xmlns:dashif=\"https://dashif.org/CPS\" xmlns:mspr=\"urn:microsoft:playready\"");
    }
    if m.live {
        let _ = write!(
            out,
            " availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"{}\" \
             timeShiftBufferDepth=\"{}\"",
            m.availability_start,
            m.publish_time,
            duration(m.max_segment_duration),
            duration(m.time_shift_buffer)
        );
    } else {
        let total: f64 = m
            .representations
            .first()
            .map(|r| {
                r.timeline.iter().map(|e| e.duration).sum::<u64>() as f64 / f64::from(r.timescale)
            })
            .unwrap_or(0.0);
        let _ = write!(out, " mediaPresentationDuration=\"{}\"", duration(total));
    }
    out.push_str(">\n");
    if m.live {
        let _ = writeln!(
            out,
            "  <ServiceDescription id=\"0\">\n    <Latency referenceId=\"0\" target=\"{}\" \
             min=\"{}\" max=\"{}\"/>\n    <PlaybackRate min=\"0.96\" max=\"1.04\"/>\n  \
             </ServiceDescription>",
            m.target_latency_ms,
            m.target_latency_ms / 2,
            m.target_latency_ms * 3
        );
    }
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    if let Some(e) = &m.splice_events {
        splice_events_xml(&mut out, e);
    }
    // One adaptation set for the video (a ladder's rungs are switchable: same
    // codec family, aligned segments), one per audio codec.
    let mut sets: Vec<(&str, String, Vec<&Representation>)> = Vec::new();
    for r in &m.representations {
        let key = match r.kind {
            ContentKind::Video { .. } => ("video", String::new()),
            ContentKind::Audio { .. } => ("audio", codec_family(&r.codecs).to_string()),
        };
        match sets
            .iter_mut()
            .find(|(k, f, _)| (*k, f.as_str()) == (key.0, key.1.as_str()))
        {
            Some((_, _, reps)) => reps.push(r),
            None => sets.push((key.0, key.1, vec![r])),
        }
    }
    for (i, (content, _, reps)) in sets.iter().enumerate() {
        let mime = if *content == "video" {
            "video/mp4"
        } else {
            "audio/mp4"
        };
        // Segments are aligned across representations (cut on the lead's
        // boundaries); they start with a SAP until one is cut at the longest
        // segment without a keyframe.
        let _ = write!(
            out,
            "    <AdaptationSet id=\"{i}\" contentType=\"{content}\" mimeType=\"{mime}\" \
             segmentAlignment=\"true\""
        );
        if m.start_with_sap {
            out.push_str(" startWithSAP=\"1\"");
        }
        let sizes = reps.iter().filter_map(|r| match r.kind {
            ContentKind::Video { width, height, .. } => Some((width, height)),
            ContentKind::Audio { .. } => None,
        });
        if let Some((w, h)) = sizes
            .clone()
            .map(|(w, _)| w)
            .max()
            .zip(sizes.map(|(_, h)| h).max())
        {
            let _ = write!(out, " maxWidth=\"{w}\" maxHeight=\"{h}\"");
        }
        out.push_str(">\n");
        if let Some(p) = reps.first().and_then(|r| r.protection.as_ref()) {
            protection_xml(&mut out, p);
        }
        for r in reps {
            representation(&mut out, m, r);
        }
        out.push_str("    </AdaptationSet>\n");
    }
    if let Some(t) = m.thumbnails.as_ref().filter(|t| t.is_valid()) {
        thumbnails_xml(&mut out, sets.len(), t);
    }
    out.push_str("  </Period>\n");
    if let Some(utc) = &m.utc_timing {
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{}\"/>",
            xml_escape(utc)
        );
    }
    out.push_str("</MPD>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(live: bool) -> Manifest {
        let timeline = |scale: u64, n: u64| {
            (0..n)
                .map(|i| TimelineEntry {
                    number: 10 + i,
                    start: 1000 + i * 2 * scale,
                    duration: 2 * scale,
                })
                .collect::<Vec<_>>()
        };
        Manifest {
            live,
            availability_start: UnixMillis(1_795_445_850_000),
            publish_time: UnixMillis(1_795_445_870_000),
            max_segment_duration: 2.0,
            time_shift_buffer: 20.0,
            chunk_duration: 0.2,
            target_latency_ms: 1500,
            utc_timing: Some("/time".into()),
            start_with_sap: true,
            splice_events: None,
            representations: vec![
                Representation {
                    id: "video".into(),
                    kind: ContentKind::Video {
                        width: 1280,
                        height: 720,
                        frame_rate: Some(30.0),
                    },
                    codecs: "avc1.64001f".into(),
                    bandwidth: 2_500_000,
                    timescale: 90_000,
                    initialization: "video-init.mp4".into(),
                    media: "video-seg$Number$.m4s".into(),
                    timeline: timeline(90_000, 3),
                    protection: None,
                },
                Representation {
                    id: "audio".into(),
                    kind: ContentKind::Audio {
                        sample_rate: 48_000,
                        channels: 2,
                    },
                    codecs: "mp4a.40.2".into(),
                    bandwidth: 128_000,
                    timescale: 48_000,
                    initialization: "audio-init.mp4".into(),
                    media: "audio-seg$Number$.m4s".into(),
                    timeline: timeline(48_000, 3),
                    protection: None,
                },
            ],
            thumbnails: None,
        }
    }

    #[test]
    fn thumbnails_are_an_image_adaptation_set() {
        let mut m = manifest(false);
        m.thumbnails = Some(ThumbnailTrack {
            template: "thumbs/sheet-$Number$.jpg".into(),
            tile_width: 160,
            tile_height: 90,
            columns: 5,
            rows: 4,
            tile_duration: 2.0,
            duration: 6.0,
            max_sheet_bytes: 50_000,
        });
        let xml = render_mpd(&m);
        let want = "    <AdaptationSet id=\"2\" contentType=\"image\" mimeType=\"image/jpeg\">\n      \
            <SegmentTemplate media=\"thumbs/sheet-$Number$.jpg\" timescale=\"1000\" duration=\"40000\" startNumber=\"1\"/>\n      \
            <Representation id=\"thumbnails\" bandwidth=\"10000\" width=\"800\" height=\"360\">\n        \
            <EssentialProperty schemeIdUri=\"http://dashif.org/thumbnail_tile\" value=\"5x4\"/>\n      \
            </Representation>\n    </AdaptationSet>\n  </Period>\n";
        assert!(xml.contains(want), "{xml}");
        // An invalid description is left out.
        m.thumbnails.as_mut().unwrap().rows = 0;
        assert!(!render_mpd(&m).contains("image/jpeg"));
    }

    #[test]
    fn live_mpd_is_low_latency() {
        let xml = render_mpd(&manifest(true));
        for want in [
            "type=\"dynamic\"",
            "availabilityStartTime=\"2026-11-23T14:57:30.000Z\"",
            "<Latency referenceId=\"0\" target=\"1500\"",
            "startNumber=\"10\"",
            "availabilityTimeOffset=\"1.800\" availabilityTimeComplete=\"false\"",
            "<S t=\"1000\" d=\"180000\" r=\"2\"/>",
            "<S t=\"1000\" d=\"96000\" r=\"2\"/>",
            "<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"/time\"/>",
            "media=\"video-seg$Number$.m4s\"",
        ] {
            assert!(xml.contains(want), "missing {want} in\n{xml}");
        }
        assert_eq!(xml.matches("<AdaptationSet").count(), 2);
        assert_eq!(xml.matches("</AdaptationSet>").count(), 2);
    }

    #[test]
    fn vod_mpd_is_static_with_a_duration() {
        let xml = render_mpd(&manifest(false));
        assert!(xml.contains("type=\"static\""));
        assert!(xml.contains("mediaPresentationDuration=\"PT6.000S\""));
        assert!(!xml.contains("availabilityTimeOffset"));
    }

    #[test]
    fn timeline_breaks_runs_on_gaps_and_duration_changes() {
        let mut out = String::new();
        let e = |n, s, d| TimelineEntry {
            number: n,
            start: s,
            duration: d,
        };
        timeline_xml(
            &mut out,
            &[e(0, 0, 10), e(1, 10, 10), e(2, 25, 10), e(3, 35, 7)],
        );
        assert_eq!(
            out,
            "        <SegmentTimeline>\n          <S t=\"0\" d=\"10\" r=\"1\"/>\n          \
             <S t=\"25\" d=\"10\"/>\n          <S t=\"35\" d=\"7\"/>\n        </SegmentTimeline>\n"
        );
    }
}
