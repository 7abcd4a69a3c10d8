//! What an uploaded file is: ffprobe's JSON report, parsed into a [`Probe`],
//! and the checks that turn a bad upload into a reason a user can act on.
//!
//! ```text
//! let probe = probe::run(&path, &ProbeConfig::default())?; // ffprobe + parse + check
//! // or, sans-IO: probe::parse(&json)? then probe.check(&limits)?
//! ```
//!
//! What ffprobe 5.1 says about broken uploads (seen here):
//! - a text file renamed `.mp4`, a zero-byte file and an MP4 cut before its
//!   index (ffmpeg writes `moov` last) all fail with `moov atom not found` /
//!   `Invalid data found when processing input`, exit 1. The file's first
//!   bytes tell them apart: an MP4 starts with an `ftyp` box, so one whose
//!   `moov` is missing is truncated, not "not media".
//! - an MP4 with its index first (`+faststart`) cut in half probes fine: the
//!   index still promises every sample. Its streams' bit rates times the
//!   duration then add up to far more bytes than the file has.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

/// The first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoStream {
    /// ffprobe's codec name (`h264`, `hevc`, `vp9`, ...).
    pub codec: String,
    /// Coded (stored) size, before rotation.
    pub width: u32,
    pub height: u32,
    /// Clockwise degrees the picture is turned when shown, one of 0, 90, 180,
    /// 270 (from the display matrix, or the old `rotate` tag).
    pub rotation: u32,
    /// Sample (pixel) aspect ratio, when not square.
    pub sample_aspect: Option<(u32, u32)>,
    /// Frames per second (average; the nominal rate when the average is unknown).
    pub fps: Option<f64>,
    pub pix_fmt: Option<String>,
    pub color_transfer: Option<String>,
    pub color_primaries: Option<String>,
    /// PQ (`smpte2084`, HDR10) or HLG (`arib-std-b67`) transfer.
    pub hdr: bool,
    /// BT.2020 primaries (wide colour gamut), with or without HDR.
    pub bt2020: bool,
}

impl VideoStream {
    /// The picture size as shown: rotation applied, non-square pixels
    /// stretched to square ones (what ffmpeg's decoder outputs after its
    /// automatic rotation, and what the ladder plans from).
    pub fn display_size(&self) -> (u32, u32) {
        let mut w = self.width;
        if let Some((n, d)) = self.sample_aspect {
            if n > 0 && d > 0 {
                let stretched =
                    (u64::from(w) * u64::from(n) / u64::from(d)).min(u64::from(u16::MAX));
                w = stretched as u32;
            }
        }
        if self.rotation % 180 == 90 {
            (self.height, w)
        } else {
            (w, self.height)
        }
    }
}

/// The first audio stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioStream {
    pub codec: String,
    pub channels: Option<u32>,
    pub sample_rate: Option<u32>,
}

/// What ffprobe found in a file that passed [`parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// ffprobe's `format_name` (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, ...).
    pub container: String,
    /// Seconds, > 0.
    pub duration_secs: f64,
    /// File size, bytes, when ffprobe reported it.
    pub size_bytes: Option<u64>,
    pub video: VideoStream,
    pub audio: Option<AudioStream>,
}

/// Limits an upload must stay within (`[vod.probe]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// The ffprobe to run. Default `ffprobe` (from `PATH`).
    pub ffprobe: PathBuf,
    /// Longest accepted duration, seconds. Default 14400 (4 h).
    pub max_duration_secs: f64,
    /// Largest accepted longer side of the picture, pixels. Default 4096.
    pub max_long_side: u32,
    /// Largest accepted shorter side of the picture, pixels. Default 2160.
    pub max_short_side: u32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            ffprobe: PathBuf::from("ffprobe"),
            max_duration_secs: 4.0 * 3600.0,
            max_long_side: 4096,
            max_short_side: 2160,
        }
    }
}

/// Why an upload cannot be used; `Display` is the reason to show the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// ffprobe cannot read it; `reason` is ffprobe's own message.
    #[error("not a video file we can read: {reason}")]
    NotMedia { reason: String },
    #[error("the file is incomplete (truncated): {reason}; upload the whole file again")]
    Truncated { reason: String },
    #[error("the file has no video stream{}", if *.has_audio { " (audio-only files are not accepted)" } else { "" })]
    NoVideo { has_audio: bool },
    #[error("the video has no length (0 seconds)")]
    ZeroDuration,
    #[error("the video is {duration_secs:.0} s long; the limit is {max_secs:.0} s")]
    TooLong { duration_secs: f64, max_secs: f64 },
    #[error("the video is {width}x{height}; the limit is {max_long}x{max_short}")]
    TooLarge {
        width: u32,
        height: u32,
        max_long: u32,
        max_short: u32,
    },
    /// A container Brook does not take uploads in: playlists and other
    /// formats that name further files (HLS, concat, image sequences) are
    /// never opened.
    #[error(
        "{0} files are not accepted (MP4/MOV, Matroska/WebM, MPEG-TS/PS, AVI, FLV, ASF or Ogg are)"
    )]
    Container(String),
    /// Not the upload's fault: ffprobe could not be run, or said something
    /// that is not its JSON.
    #[error("probing failed: {0}")]
    Internal(String),
}

/// Parses `ffprobe -print_format json -show_format -show_streams` output.
/// Checks what needs no limits: a video stream, a duration, a plausible size.
/// Never panics.
pub fn parse(json: &[u8]) -> Result<Probe, ProbeError> {
    let root: Value = serde_json::from_slice(json)
        .map_err(|e| ProbeError::Internal(format!("ffprobe's output is not JSON: {e}")))?;
    let format = root.get("format");
    let streams: &[Value] = root
        .get("streams")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    if format.is_none() && streams.is_empty() {
        return Err(ProbeError::NotMedia {
            reason: "no streams found".into(),
        });
    }
    let container = format
        .and_then(|f| text(f, "format_name"))
        .unwrap_or_default();
    let of_type = |kind: &str| {
        streams.iter().find(|s| {
            s.get("codec_type").and_then(Value::as_str) == Some(kind)
                // Cover art in an audio file is a "video" stream of one picture.
                && s.get("disposition")
                    .and_then(|d| number(d, "attached_pic"))
                    .unwrap_or(0.0)
                    == 0.0
        })
    };
    let audio = of_type("audio").map(|a| AudioStream {
        codec: text(a, "codec_name").unwrap_or_default(),
        channels: number(a, "channels").and_then(to_u32),
        sample_rate: number(a, "sample_rate").and_then(to_u32),
    });
    let Some(v) = of_type("video") else {
        return Err(ProbeError::NoVideo {
            has_audio: audio.is_some(),
        });
    };
    let width = number(v, "width").and_then(to_u32).unwrap_or(0);
    let height = number(v, "height").and_then(to_u32).unwrap_or(0);
    if width == 0 || height == 0 {
        return Err(ProbeError::NotMedia {
            reason: "the video stream has no picture size".into(),
        });
    }
    let color_transfer = text(v, "color_transfer");
    let color_primaries = text(v, "color_primaries");
    let video = VideoStream {
        codec: text(v, "codec_name").unwrap_or_default(),
        width,
        height,
        rotation: rotation(v),
        sample_aspect: text(v, "sample_aspect_ratio")
            .and_then(|r| ratio(&r))
            .filter(|&(n, d)| n != d && n > 0 && d > 0),
        fps: text(v, "avg_frame_rate")
            .and_then(|r| rate(&r))
            .or_else(|| text(v, "r_frame_rate").and_then(|r| rate(&r))),
        pix_fmt: text(v, "pix_fmt"),
        hdr: matches!(
            color_transfer.as_deref(),
            Some("smpte2084" | "arib-std-b67")
        ),
        bt2020: color_primaries.as_deref() == Some("bt2020"),
        color_transfer,
        color_primaries,
    };
    let stream_duration = |s: &Value| number(s, "duration").filter(|d| d.is_finite());
    let duration_secs = format
        .and_then(|f| number(f, "duration"))
        .filter(|d| d.is_finite())
        .or_else(|| stream_duration(v))
        .unwrap_or(0.0);
    if duration_secs <= 0.0 || number(v, "nb_frames") == Some(0.0) {
        return Err(ProbeError::ZeroDuration);
    }
    let size_bytes = format
        .and_then(|f| number(f, "size"))
        .filter(|s| *s >= 0.0)
        .map(|s| s as u64);
    if let Some(size) = size_bytes {
        // What the streams' own bit rates promise (an MP4's from its sample
        // tables): far more than the file holds means the media is missing.
        let promised: f64 = streams
            .iter()
            .filter_map(|s| {
                let rate = number(s, "bit_rate")?;
                let secs = stream_duration(s).unwrap_or(duration_secs);
                Some(rate * secs / 8.0)
            })
            .sum();
        if promised.is_finite() && promised > 1.25 * size as f64 + 65_536.0 {
            return Err(ProbeError::Truncated {
                reason: format!(
                    "its streams should take about {} bytes, the file has {size}",
                    promised as u64
                ),
            });
        }
    }
    Ok(Probe {
        container,
        duration_secs,
        size_bytes,
        video,
        audio,
    })
}

impl Probe {
    /// The configured limits.
    pub fn check(&self, config: &ProbeConfig) -> Result<(), ProbeError> {
        if self.demuxer().is_none() {
            return Err(ProbeError::Container(self.container.clone()));
        }
        if self.duration_secs > config.max_duration_secs {
            return Err(ProbeError::TooLong {
                duration_secs: self.duration_secs,
                max_secs: config.max_duration_secs,
            });
        }
        let (w, h) = self.video.display_size();
        if w.max(h) > config.max_long_side || w.min(h) > config.max_short_side {
            return Err(ProbeError::TooLarge {
                width: w,
                height: h,
                max_long: config.max_long_side,
                max_short: config.max_short_side,
            });
        }
        Ok(())
    }

    /// The ffmpeg demuxer the file is read with (`-f`), if its container is
    /// one uploads may be in. Forcing it keeps ffmpeg from guessing again from
    /// the bytes (a file that probes as MP4 is read as MP4, nothing else).
    pub fn demuxer(&self) -> Option<&'static str> {
        let first = self.container.split(',').next()?;
        DEMUXERS.iter().copied().find(|d| *d == first)
    }

    /// The video is SDR H.264 in 8-bit 4:2:0, shown as stored (no rotation, square
    /// pixels): what may be copied into the ladder as it is.
    pub fn video_copyable(&self) -> bool {
        let v = &self.video;
        v.codec == "h264"
            && !v.hdr
            && v.rotation == 0
            && v.sample_aspect.is_none()
            && matches!(v.pix_fmt.as_deref(), Some("yuv420p" | "yuvj420p"))
    }
}

/// The ffmpeg demuxers an upload may be read with: containers of one
/// presentation. Playlists and formats that name further files (HLS, DASH,
/// concat, image sequences) are not among them, so neither ffprobe (its
/// `-format_whitelist`) nor ffmpeg (`-f`) ever follows an upload elsewhere.
pub const DEMUXERS: &[&str] = &[
    "mov", "matroska", "mpegts", "mpeg", "avi", "flv", "asf", "ogg",
];

/// Runs ffprobe on `path`, parses its report and checks it against `config`.
/// Blocking (a second or so at most: ffprobe reads headers, not the media).
pub fn run(path: &Path, config: &ProbeConfig) -> Result<Probe, ProbeError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ProbeError::Internal(format!("{}: {e}", path.display())))?;
    if meta.len() == 0 {
        return Err(ProbeError::Empty);
    }
    let out = Command::new(&config.ffprobe)
        .args([
            "-v",
            "error",
            // Only the file itself: a playlist inside an upload cannot make
            // ffprobe (or, later, ffmpeg) open anything else.
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            &DEMUXERS.join(","),
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ProbeError::Internal(format!("running {}: {e}", config.ffprobe.display())))?;
    if !out.status.success() {
        let mut head = [0u8; 16];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        return Err(failure(
            &String::from_utf8_lossy(&out.stderr),
            head.get(..n).unwrap_or(&[]),
        ));
    }
    let probe = parse(&out.stdout)?;
    probe.check(config)?;
    Ok(probe)
}

/// What a failed ffprobe run means, from its stderr and the file's first bytes.
pub fn failure(stderr: &str, head: &[u8]) -> ProbeError {
    let reason = ffprobe_reason(stderr);
    let iso_bmff = head.get(4..8).is_some_and(|t| {
        [b"ftyp", b"mdat", b"free", b"wide", b"skip"]
            .iter()
            .any(|b| t == b.as_slice())
    });
    if iso_bmff && stderr.contains("moov atom not found") {
        return ProbeError::Truncated {
            reason: "the MP4 ends before its index (moov)".into(),
        };
    }
    ProbeError::NotMedia { reason }
}

/// ffprobe's messages without the `[demuxer @ 0x…] ` and `path: ` prefixes,
/// most specific first (the last line is the general one).
fn ffprobe_reason(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(|l| {
            let l = l.trim();
            let l = match (l.starts_with('['), l.find("] ")) {
                (true, Some(i)) => l.get(i + 2..).unwrap_or(l),
                _ => l,
            };
            // "path/to/file.mp4: Invalid data ..." -> the message.
            match l.rfind(": ") {
                Some(i)
                    if l.get(..i)
                        .is_some_and(|p| p.contains('/') || p.contains('.')) =>
                {
                    l.get(i + 2..).unwrap_or(l).to_string()
                }
                _ => l.to_string(),
            }
        })
        .filter(|l| !l.is_empty())
        .collect();
    let mut unique: Vec<String> = Vec::new();
    for l in lines.into_iter().rev() {
        if !unique.contains(&l) {
            unique.push(l);
        }
    }
    if unique.is_empty() {
        "ffprobe could not read it".into()
    } else {
        unique.truncate(3);
        unique.join("; ")
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() && s != "N/A" && s != "unknown" => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number ffprobe wrote as a number or as a string.
fn number(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

fn to_u32(n: f64) -> Option<u32> {
    (n >= 0.0 && n <= f64::from(u32::MAX)).then_some(n as u32)
}

/// `num/den` or `num:den`.
fn ratio(s: &str) -> Option<(u32, u32)> {
    let (n, d) = s.split_once(['/', ':'])?;
    Some((n.trim().parse().ok()?, d.trim().parse().ok()?))
}

fn rate(s: &str) -> Option<f64> {
    let (n, d) = ratio(s)?;
    (n > 0 && d > 0).then(|| f64::from(n) / f64::from(d))
}

/// Clockwise degrees, normalised to 0/90/180/270. ffprobe's display-matrix
/// `rotation` is counter-clockwise (`-90` for a phone held upright); the old
/// `rotate` tag is clockwise.
fn rotation(v: &Value) -> u32 {
    let from_matrix = v
        .get("side_data_list")
        .and_then(Value::as_array)
        .and_then(|list| list.iter().find_map(|sd| number(sd, "rotation")))
        .map(|ccw| -ccw);
    let from_tag = || v.get("tags").and_then(|t| number(t, "rotate"));
    let degrees = from_matrix.or_else(from_tag).unwrap_or(0.0);
    let quarter = (degrees / 90.0).round().rem_euclid(4.0);
    (quarter as u32 % 4) * 90
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_containers_uploads_may_be_in_are_opened() {
        let with = |container: &str| {
            let json = format!(
                r#"{{"format":{{"format_name":"{container}","duration":"6.0","size":"1511591"}},
                   "streams":[{{"codec_type":"video","codec_name":"h264","width":640,"height":360}}]}}"#
            );
            parse(json.as_bytes()).unwrap()
        };
        assert_eq!(with("mov,mp4,m4a,3gp,3g2,mj2").demuxer(), Some("mov"));
        assert_eq!(with("matroska,webm").demuxer(), Some("matroska"));
        assert_eq!(with("mpegts").demuxer(), Some("mpegts"));
        for refused in ["hls", "concat", "image2", "lavfi", "tty", "dash", ""] {
            let p = with(refused);
            assert_eq!(p.demuxer(), None, "{refused}");
            assert!(
                matches!(
                    p.check(&ProbeConfig::default()),
                    Err(ProbeError::Container(_))
                ),
                "{refused}"
            );
        }
    }

    fn video(extra: &str) -> String {
        format!(
            r#"{{"index":0,"codec_name":"h264","codec_type":"video","width":640,"height":360,
            "sample_aspect_ratio":"1:1","pix_fmt":"yuv420p","r_frame_rate":"30/1",
            "avg_frame_rate":"30/1","duration":"6.000000","bit_rate":"1937197","nb_frames":"180"{extra}}}"#
        )
    }

    const AUDIO: &str = r#"{"index":1,"codec_name":"aac","codec_type":"audio","sample_rate":"44100",
        "channels":1,"duration":"6.000000","bit_rate":"69000"}"#;

    fn file(streams: &[&str], format: &str) -> Vec<u8> {
        format!(r#"{{"streams":[{}],"format":{format}}}"#, streams.join(",")).into_bytes()
    }

    const FORMAT: &str = r#"{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"6.016000","size":"1511591","bit_rate":"2010000"}"#;

    #[test]
    fn a_plain_mp4() {
        let v = video("");
        let p = parse(&file(&[&v, AUDIO], FORMAT)).unwrap();
        assert_eq!(p.container, "mov,mp4,m4a,3gp,3g2,mj2");
        assert!((p.duration_secs - 6.016).abs() < 1e-9);
        assert_eq!(p.size_bytes, Some(1_511_591));
        assert_eq!(p.video.codec, "h264");
        assert_eq!(
            (p.video.width, p.video.height, p.video.rotation),
            (640, 360, 0)
        );
        assert_eq!(p.video.fps, Some(30.0));
        assert_eq!(p.video.sample_aspect, None);
        assert!(!p.video.hdr && !p.video.bt2020);
        assert_eq!(
            p.audio,
            Some(AudioStream {
                codec: "aac".into(),
                channels: Some(1),
                sample_rate: Some(44_100)
            })
        );
        assert!(p.video_copyable());
        p.check(&ProbeConfig::default()).unwrap();
    }

    /// A phone held upright: a landscape picture and a display matrix.
    #[test]
    fn rotation_from_the_display_matrix_or_the_tag() {
        let cases = [
            (
                r#","side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]"#,
                90,
            ),
            (
                r#","side_data_list":[{"side_data_type":"Display Matrix","rotation":90}]"#,
                270,
            ),
            (
                r#","side_data_list":[{"side_data_type":"Display Matrix","rotation":180}]"#,
                180,
            ),
            (
                r#","side_data_list":[{"side_data_type":"Display Matrix","rotation":-180.0}]"#,
                180,
            ),
            (r#","tags":{"rotate":"90"}"#, 90),
            (r#","tags":{"rotate":"270"}"#, 270),
            (r#","tags":{"rotate":"nonsense"}"#, 0),
            ("", 0),
        ];
        for (extra, want) in cases {
            let v = video(extra);
            let p = parse(&file(&[&v], FORMAT)).unwrap();
            assert_eq!(p.video.rotation, want, "{extra}");
            let portrait = want % 180 == 90;
            assert_eq!(
                p.video.display_size(),
                if portrait { (360, 640) } else { (640, 360) }
            );
            assert_eq!(p.video_copyable(), want == 0);
        }
    }

    #[test]
    fn hdr_and_wide_gamut_flags() {
        let cases = [
            ("smpte2084", "bt2020", true, true),
            ("arib-std-b67", "bt2020", true, true),
            ("bt709", "bt2020", false, true),
            ("bt709", "bt709", false, false),
        ];
        for (trc, prim, hdr, wide) in cases {
            let v = video(&format!(
                r#","color_transfer":"{trc}","color_primaries":"{prim}","pix_fmt":"yuv420p10le""#
            ));
            let p = parse(&file(&[&v], FORMAT)).unwrap();
            assert_eq!((p.video.hdr, p.video.bt2020), (hdr, wide), "{trc} {prim}");
            assert_eq!(p.video.color_transfer.as_deref(), Some(trc));
            assert!(!p.video_copyable(), "10-bit is not copied");
        }
    }

    #[test]
    fn anamorphic_pixels_are_stretched_to_the_display_size() {
        let v = r#"{"codec_name":"mpeg2video","codec_type":"video","width":720,"height":576,
            "sample_aspect_ratio":"64:45","avg_frame_rate":"0/0","r_frame_rate":"25/1"}"#;
        let p = parse(&file(&[v], FORMAT)).unwrap();
        assert_eq!(p.video.sample_aspect, Some((64, 45)));
        assert_eq!(p.video.display_size(), (1024, 576));
        assert_eq!(p.video.fps, Some(25.0), "nominal rate when no average");
    }

    #[test]
    fn rejections_have_reasons() {
        let audio_only = parse(&file(&[AUDIO], FORMAT)).unwrap_err();
        assert_eq!(audio_only, ProbeError::NoVideo { has_audio: true });
        assert!(audio_only.to_string().contains("audio-only"));
        // Cover art is not video.
        let art = r#"{"codec_name":"mjpeg","codec_type":"video","width":500,"height":500,
            "disposition":{"default":0,"attached_pic":1}}"#;
        assert_eq!(
            parse(&file(&[AUDIO, art], FORMAT)).unwrap_err(),
            ProbeError::NoVideo { has_audio: true }
        );
        let zero =
            r#"{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"0.000000","size":"900"}"#;
        let v = video("");
        assert_eq!(
            parse(&file(&[&v], zero)).unwrap_err(),
            ProbeError::ZeroDuration
        );
        let none = r#"{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","size":"900"}"#;
        let v0 = r#"{"codec_name":"h264","codec_type":"video","width":640,"height":360}"#;
        assert_eq!(
            parse(&file(&[v0], none)).unwrap_err(),
            ProbeError::ZeroDuration
        );
        // A faststart MP4 cut in half: its index promises twice the bytes.
        let half =
            r#"{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"6.016000","size":"700000"}"#;
        let e = parse(&file(&[&v, AUDIO], half)).unwrap_err();
        assert!(matches!(e, ProbeError::Truncated { .. }), "{e}");
        assert!(e.to_string().contains("incomplete"), "{e}");
        assert!(matches!(
            parse(b"{}").unwrap_err(),
            ProbeError::NotMedia { .. }
        ));
        assert!(matches!(
            parse(b"not json").unwrap_err(),
            ProbeError::Internal(_)
        ));
    }

    #[test]
    fn limits() {
        let v = video("");
        let p = parse(&file(&[&v], FORMAT)).unwrap();
        let short = ProbeConfig {
            max_duration_secs: 5.0,
            ..ProbeConfig::default()
        };
        let e = p.check(&short).unwrap_err();
        assert_eq!(e.to_string(), "the video is 6 s long; the limit is 5 s");
        let small = ProbeConfig {
            max_long_side: 1280,
            max_short_side: 320,
            ..ProbeConfig::default()
        };
        let e = p.check(&small).unwrap_err();
        assert_eq!(e.to_string(), "the video is 640x360; the limit is 1280x320");
        // Portrait 360x640 against landscape limits: sides, not width/height.
        let v = video(r#","tags":{"rotate":"90"}"#);
        let p = parse(&file(&[&v], FORMAT)).unwrap();
        let hd = ProbeConfig {
            max_long_side: 640,
            max_short_side: 360,
            ..ProbeConfig::default()
        };
        p.check(&hd).unwrap();
    }

    /// What ffprobe 5.1 printed here for a text file renamed `.mp4`, and for an
    /// MP4 cut before its `moov`.
    #[test]
    fn ffprobe_failures_are_told_apart_by_the_first_bytes() {
        let stderr = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x564efb1d01c0] moov atom not found\n\
                      /tmp/up/abc.mp4: Invalid data found when processing input\n";
        let text = failure(stderr, b"hello world\n");
        assert_eq!(
            text,
            ProbeError::NotMedia {
                reason: "Invalid data found when processing input; moov atom not found".into()
            }
        );
        let cut = failure(stderr, b"\0\0\0\x20ftypisom\0\0\x02\0");
        assert!(matches!(cut, ProbeError::Truncated { .. }), "{cut}");
        assert!(matches!(failure("", b""), ProbeError::NotMedia { .. }));
    }

    /// Whatever bytes come in, `parse` answers without panicking.
    #[test]
    fn parse_never_panics() {
        let v = video("");
        let good = file(&[&v, AUDIO], FORMAT);
        let mut inputs: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            br#"{"streams":{},"format":[]}"#.to_vec(),
            br#"{"streams":[null,1,"x",{"codec_type":"video","width":-5,"height":1e300}]}"#.to_vec(),
            br#"{"streams":[{"codec_type":"video","width":"640","height":"360","avg_frame_rate":"1/0","sample_aspect_ratio":"4294967295:1","side_data_list":[{"rotation":1e308}]}],"format":{"duration":"inf","size":"-1"}}"#.to_vec(),
            br#"{"streams":[{"codec_type":"video","width":4294967295,"height":4294967295,"duration":"1e999"}],"format":{"duration":"NaN","size":1e20}}"#.to_vec(),
        ];
        for cut in (0..good.len()).step_by(7) {
            inputs.push(good[..cut].to_vec());
        }
        for input in inputs {
            if let Ok(p) = parse(&input) {
                let _ = p.video.display_size();
                let _ = p.check(&ProbeConfig::default());
            }
        }
    }
}
