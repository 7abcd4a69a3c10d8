//! The LL-HLS media playlist (RFC 8216bis §4.4): a typed model and its rendering.

use std::fmt::{self, Write};

use crate::time::UnixMillis;

/// `EXT-X-SERVER-CONTROL` (RFC 8216bis §4.4.3.8).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerControl {
    pub can_block_reload: bool,
    pub part_hold_back: Option<f64>,
    pub hold_back: Option<f64>,
    pub can_skip_until: Option<f64>,
}

/// `EXT-X-PART` (RFC 8216bis §4.4.4.9).
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration: f64,
    pub independent: bool,
}

/// A complete media segment with the parts it was published as.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub msn: u64,
    pub uri: String,
    pub duration: f64,
    pub program_date_time: Option<UnixMillis>,
    pub discontinuity: bool,
    /// Parts still advertised for this segment (dropped once it is old enough).
    pub parts: Vec<Part>,
}

/// A live (or ended) media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub version: u8,
    pub target_duration: u32,
    pub part_target: Option<f64>,
    pub server_control: ServerControl,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub map_uri: Option<String>,
    pub segments: Vec<Segment>,
    /// Parts of the segment being produced (after the last complete segment).
    pub trailing_parts: Vec<Part>,
    /// `EXT-X-PRELOAD-HINT:TYPE=PART` for the next part.
    pub preload_hint: Option<String>,
    pub end_list: bool,
}

impl MediaPlaylist {
    /// MSN of the segment the trailing parts belong to (the next complete segment).
    pub fn next_msn(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }

    /// True once segment `msn` is complete, or (with `part`) once part `part` of
    /// segment `msn` is published: the condition a blocking reload waits for
    /// (RFC 8216bis §6.2.5.2).
    pub fn contains(&self, msn: u64, part: Option<u64>) -> bool {
        let next = self.next_msn();
        if msn < next {
            return true;
        }
        match part {
            Some(p) => msn == next && (self.trailing_parts.len() as u64) > p,
            None => false,
        }
    }

    /// The last published (msn, part index), if any part was published.
    pub fn last_part(&self) -> Option<(u64, u64)> {
        if let Some(n) = self.trailing_parts.len().checked_sub(1) {
            return Some((self.next_msn(), n as u64));
        }
        let last = self.segments.last()?;
        let n = last.parts.len().checked_sub(1)?;
        Some((last.msn, n as u64))
    }
}

/// Durations with millisecond-or-better precision and no float noise.
struct Secs(f64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{:.5}", self.0);
        let s = s.trim_end_matches('0');
        let s = s.strip_suffix('.').unwrap_or(s);
        f.write_str(s)
    }
}

fn write_part(out: &mut String, p: &Part) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        Secs(p.duration),
        p.uri
    );
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
}

impl fmt::Display for MediaPlaylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(256 + 96 * self.segments.len());
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let sc = &self.server_control;
        let mut attrs = Vec::new();
        if sc.can_block_reload {
            attrs.push("CAN-BLOCK-RELOAD=YES".to_string());
        }
        if let Some(v) = sc.can_skip_until {
            attrs.push(format!("CAN-SKIP-UNTIL={}", Secs(v)));
        }
        if let Some(v) = sc.hold_back {
            attrs.push(format!("HOLD-BACK={}", Secs(v)));
        }
        if let Some(v) = sc.part_hold_back {
            attrs.push(format!("PART-HOLD-BACK={}", Secs(v)));
        }
        if !attrs.is_empty() {
            let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:{}", attrs.join(","));
        }
        if let Some(pt) = self.part_target {
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", Secs(pt));
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if let Some(map) = &self.map_uri {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{map}\"");
        }
        for s in &self.segments {
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(pdt) = s.program_date_time {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{pdt}");
            }
            for p in &s.parts {
                write_part(&mut out, p);
            }
            let _ = writeln!(out, "#EXTINF:{},\n{}", Secs(s.duration), s.uri);
        }
        for p in &self.trailing_parts {
            write_part(&mut out, p);
        }
        if let Some(hint) = &self.preload_hint {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
        }
        if self.end_list {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(uri: &str, independent: bool) -> Part {
        Part {
            uri: uri.into(),
            duration: 0.2,
            independent,
        }
    }

    #[test]
    fn renders_ll_hls_tags() {
        let pl = MediaPlaylist {
            version: 9,
            target_duration: 2,
            part_target: Some(0.2),
            server_control: ServerControl {
                can_block_reload: true,
                part_hold_back: Some(0.6),
                ..Default::default()
            },
            media_sequence: 7,
            discontinuity_sequence: 0,
            map_uri: Some("init.mp4".into()),
            segments: vec![Segment {
                msn: 7,
                uri: "seg7.m4s".into(),
                duration: 0.4,
                program_date_time: Some(UnixMillis(1_795_445_850_123)),
                discontinuity: false,
                parts: vec![part("part7.0.m4s", true), part("part7.1.m4s", false)],
            }],
            trailing_parts: vec![part("part8.0.m4s", true)],
            preload_hint: Some("part8.1.m4s".into()),
            end_list: false,
        };
        let want = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6
#EXT-X-PART-INF:PART-TARGET=0.2
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T14:57:30.123Z
#EXT-X-PART:DURATION=0.2,URI=\"part7.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.2,URI=\"part7.1.m4s\"
#EXTINF:0.4,
seg7.m4s
#EXT-X-PART:DURATION=0.2,URI=\"part8.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.1.m4s\"
";
        assert_eq!(pl.to_string(), want);
        assert!(pl.contains(7, None));
        assert!(pl.contains(7, Some(5)));
        assert!(pl.contains(8, Some(0)));
        assert!(!pl.contains(8, Some(1)));
        assert!(!pl.contains(8, None));
        assert_eq!(pl.last_part(), Some((8, 0)));
    }

    #[test]
    fn seconds_formatting() {
        assert_eq!(Secs(2.0).to_string(), "2");
        assert_eq!(Secs(0.2).to_string(), "0.2");
        assert_eq!(Secs(1.0 / 3.0).to_string(), "0.33333");
        assert_eq!(Secs(0.18018).to_string(), "0.18018");
    }
}
