//! The multivariant playlist (RFC 8216bis §4.4.6).

use std::fmt::{self, Write};

/// `EXT-X-STREAM-INF` and the URI that follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub uri: String,
    /// Peak segment bit rate, bits/s.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub codecs: Vec<String>,
    pub resolution: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MultivariantPlaylist {
    pub independent_segments: bool,
    pub variants: Vec<Variant>,
}

impl fmt::Display for MultivariantPlaylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("#EXTM3U\n");
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for v in &self.variants {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
            if let Some(avg) = v.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={avg}");
            }
            if !v.codecs.is_empty() {
                let _ = write!(out, ",CODECS=\"{}\"", v.codecs.join(","));
            }
            if let Some((w, h)) = v.resolution {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            if let Some(fr) = v.frame_rate {
                let _ = write!(out, ",FRAME-RATE={fr:.3}");
            }
            let _ = writeln!(out, "\n{}", v.uri);
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_stream_inf() {
        let pl = MultivariantPlaylist {
            independent_segments: true,
            variants: vec![Variant {
                uri: "media.m3u8".into(),
                bandwidth: 2_800_000,
                average_bandwidth: Some(2_500_000),
                codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
                resolution: Some((1280, 720)),
                frame_rate: Some(30.0),
            }],
        };
        assert_eq!(
            pl.to_string(),
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=2800000,\
             AVERAGE-BANDWIDTH=2500000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,\
             FRAME-RATE=30.000\nmedia.m3u8\n"
        );
    }
}
