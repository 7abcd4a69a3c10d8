//! The adaptive bitrate ladder: its configuration, and the plan for one
//! source (which rungs, at which sizes), from which the transcoder's command
//! line is built.
//!
//! Rules (docs/ladder.md):
//! - Never upscale: a rung taller than the source is dropped. A rung's height
//!   applies to the picture's shorter side, so a portrait source gets the same
//!   rungs turned sideways. Sizes keep the source's aspect ratio, rounded to
//!   even numbers (4:2:0 chroma needs them).
//! - A source smaller than every rung still gets one rendition: the smallest
//!   rung at the source's own size.
//! - `source_rung`: an H.264 source is also served unchanged as the top rung
//!   (no generation loss, no encoding cost); encoded rungs as tall as the
//!   source are then dropped, and their keyframes follow the source's.
//! - Once a session has started, its set of renditions stays (players know
//!   them from the multivariant playlist): a later plan for a changed source
//!   keeps the same rungs, each at most as tall as the new source.

use std::collections::BTreeSet;
use std::path::PathBuf;

use brook_packager::media::{CodecConfig, TrackInfo, TrackKind};
use serde::Deserialize;

/// What a stream's video becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Transcoded into the ladder (one ffmpeg child per stream).
    #[default]
    Transcode,
    /// Served as the encoder sent it: one video rendition, no transcoder.
    Passthrough,
}

/// Video encoders a rung may use. Only libx264 is tested here (no GPU); the
/// hardware encoders' arguments are documented in docs/ladder.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoder {
    #[default]
    Libx264,
    H264Nvenc,
    H264Vaapi,
    H264Qsv,
}

impl Encoder {
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Encoder::Libx264 => "libx264",
            Encoder::H264Nvenc => "h264_nvenc",
            Encoder::H264Vaapi => "h264_vaapi",
            Encoder::H264Qsv => "h264_qsv",
        }
    }

    /// The preset used when a rung names none.
    pub fn default_preset(self) -> &'static str {
        match self {
            Encoder::Libx264 => "veryfast",
            // NVENC's low-latency high-performance preset.
            Encoder::H264Nvenc => "p2",
            Encoder::H264Vaapi => "",
            Encoder::H264Qsv => "veryfast",
        }
    }
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Rendition name: the playlist is `<name>.m3u8`, objects `<name>-…`.
    /// 1-32 of `[A-Za-z0-9_]`. Default: the height and `p` (`720p`).
    #[serde(default)]
    pub name: Option<String>,
    /// Picture height (the shorter side), pixels, even. Required.
    pub height: u32,
    /// Target video bit rate, kbit/s; also the VBV maximum. Required.
    pub bitrate_kbps: u32,
    /// Highest frame rate; a faster source is reduced to it. Default 30.
    #[serde(default = "default_max_fps")]
    pub max_fps: u32,
    /// Video encoder. Default `libx264`.
    #[serde(default)]
    pub encoder: Encoder,
    /// Encoder preset. Default: `veryfast` for libx264 (see docs/ladder.md for
    /// what each costs).
    #[serde(default)]
    pub preset: Option<String>,
}

fn default_max_fps() -> u32 {
    30
}

impl Rung {
    pub fn new(height: u32, bitrate_kbps: u32) -> Self {
        Rung {
            name: None,
            height,
            bitrate_kbps,
            max_fps: default_max_fps(),
            encoder: Encoder::default(),
            preset: None,
        }
    }

    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}p", self.height))
    }
}

/// The ladder a stream is transcoded into (`[ladder]`, and per stream
/// `[streams.<name>.ladder]`, which replaces it whole).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LadderConfig {
    /// `transcode` (the default) or `passthrough` (today's single rendition,
    /// no transcoder: for a small box serving many streams).
    pub mode: Mode,
    /// Serve an H.264 source unchanged as the top rung (`source`), beside the
    /// encoded rungs below it. Default false.
    pub source_rung: bool,
    /// With `source_rung`: while the transcoder cannot run (waiting out its
    /// restart backoff, or ffmpeg failing to start), the source rung and the
    /// source's AAC audio are packaged directly, without ffmpeg; the encoded
    /// rungs pause until it is back. Sources whose audio is not AAC are not
    /// served this way (the shared audio rendition is AAC). Default true.
    pub source_while_down: bool,
    /// The rungs, any order. Default: 1080p 5000, 720p 2500, 480p 1000,
    /// 360p 600 kbit/s, all libx264 `veryfast`, at most 30 fps.
    pub rungs: Vec<Rung>,
    /// The AAC audio rendition every variant shares, kbit/s. Default 128.
    pub audio_bitrate_kbps: u32,
    /// The ffmpeg to run. Default `ffmpeg` (from `PATH`).
    pub ffmpeg: PathBuf,
    /// Encoder threads per rung, 0 = the encoder decides. Default 0.
    pub threads: u32,
    /// How far the transcoder's output may fall behind its input before the
    /// stream is judged too expensive for this machine and its most expensive
    /// rung is dropped, ms. Default 3000.
    pub max_lag_ms: u32,
    /// A transcoder that exits is restarted; after this many restarts within a
    /// minute the next waits 30 s. Default 5.
    pub max_restarts_per_minute: u32,
    /// The DRM render node `h264_vaapi` rungs encode on. Default
    /// `/dev/dri/renderD128`.
    pub vaapi_device: String,
    /// Keyframe spacing of the encoded rungs, ms (100..=the segment target).
    /// Default: the segment target. Ad breaks start and end on the first
    /// keyframe at or after their splice points (ffmpeg cannot be asked for
    /// a keyframe at a time it learns while running), so a shorter spacing
    /// puts them closer to where SCTE-35 or the API asks, at some cost in
    /// compression; segments still follow the segment target (docs/ads.md).
    pub keyframe_interval_ms: Option<u32>,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            mode: Mode::Transcode,
            source_rung: false,
            source_while_down: true,
            rungs: vec![
                Rung::new(1080, 5000),
                Rung::new(720, 2500),
                Rung::new(480, 1000),
                Rung::new(360, 600),
            ],
            audio_bitrate_kbps: 128,
            ffmpeg: PathBuf::from("ffmpeg"),
            threads: 0,
            max_lag_ms: 3000,
            max_restarts_per_minute: 5,
            vaapi_device: "/dev/dri/renderD128".into(),
            keyframe_interval_ms: None,
        }
    }
}

/// The name of the rendition that serves the source unchanged.
pub const SOURCE_RUNG: &str = "source";
/// The name of the shared audio rendition.
pub const AUDIO: &str = "audio";
/// The name of a source's Opus, kept beside the AAC rendition.
pub const OPUS: &str = "opus";

impl LadderConfig {
    /// Checks what can be checked before any source arrives; `Err` says what
    /// is wrong and where (`at` is the config path, e.g. `ladder`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.mode == Mode::Passthrough {
            return Ok(());
        }
        if self.rungs.is_empty() {
            return Err(format!(
                "{at}.rungs: a transcoded ladder needs at least one rung"
            ));
        }
        if !(16..=512).contains(&self.audio_bitrate_kbps) {
            return Err(format!("{at}.audio_bitrate_kbps must be within 16..=512"));
        }
        if self
            .keyframe_interval_ms
            .is_some_and(|k| !(100..=60_000).contains(&k))
        {
            return Err(format!(
                "{at}.keyframe_interval_ms must be within 100..=60000"
            ));
        }
        if self.max_lag_ms < 500 {
            return Err(format!("{at}.max_lag_ms must be at least 500"));
        }
        if self.threads > 64 {
            return Err(format!("{at}.threads must be at most 64"));
        }
        if self.ffmpeg.as_os_str().is_empty() {
            return Err(format!("{at}.ffmpeg is empty"));
        }
        let mut names = BTreeSet::new();
        for (i, r) in self.rungs.iter().enumerate() {
            let here = format!("{at}.rungs[{i}] ({})", r.name());
            if r.height < 16 || r.height > 4320 || r.height % 2 != 0 {
                return Err(format!(
                    "{here}: height {} must be even and within 16..=4320",
                    r.height
                ));
            }
            if r.bitrate_kbps == 0 || r.bitrate_kbps > 100_000 {
                return Err(format!(
                    "{here}: bitrate_kbps {} must be within 1..=100000",
                    r.bitrate_kbps
                ));
            }
            if r.max_fps == 0 || r.max_fps > 240 {
                return Err(format!("{here}: max_fps must be within 1..=240"));
            }
            let name = r.name();
            if !brook_packager::valid_rendition_name(&name)
                || [AUDIO, OPUS, SOURCE_RUNG].contains(&name.as_str())
            {
                return Err(format!(
                    "{here}: name {name:?} must be 1-64 of [A-Za-z0-9_] and not \
                     {AUDIO:?}, {OPUS:?} or {SOURCE_RUNG:?}"
                ));
            }
            if !names.insert(name.clone()) {
                return Err(format!("{here}: two rungs are named {name:?}"));
            }
            if let Some(p) = &r.preset {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(format!("{here}: preset {p:?} is not a preset name"));
                }
            }
        }
        Ok(())
    }
}

/// One rendition the transcoder makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The source's video, unchanged (`-c copy`).
    pub copy: bool,
    pub bitrate_kbps: u32,
    pub max_fps: u32,
    pub encoder: Encoder,
    pub preset: String,
}

/// What the transcoder makes of one source: video rungs, tallest first, and
/// the shared audio rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rungs: Vec<PlannedRung>,
    /// AAC bit rate of the audio rendition, when the source has audio.
    pub audio_kbps: Option<u32>,
    /// The source's Opus (WebRTC), kept as it is beside the AAC for the
    /// players that take it: its index among the source's audio streams.
    pub keep_opus: Option<usize>,
    /// Opus at this bit rate made from the source's AAC, for WebRTC viewers
    /// (WHEP) only: set by the live pipeline when the stream has a real-time
    /// feed and its source has no Opus. Not a rendition: HLS and DASH players
    /// have the AAC ([`Plan::webrtc_only_outputs`]).
    pub make_opus: Option<u32>,
    /// Frames per second the source was seen at, if known.
    pub source_fps: Option<f64>,
}

impl Plan {
    /// Rendition names in the order the transcoder's output lists its
    /// streams: the video rungs, then audio.
    pub fn rendition_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rungs.iter().map(|r| r.name.clone()).collect();
        if self.audio_kbps.is_some() {
            names.push(AUDIO.to_string());
        }
        if self.keep_opus.is_some() {
            names.push(OPUS.to_string());
        }
        names
    }

    /// Indexes of the transcoder's output streams that are not renditions
    /// (the made Opus, after the video rungs and the AAC).
    pub fn webrtc_only_outputs(&self) -> Vec<usize> {
        match self.make_opus {
            Some(_) => vec![self.rungs.len() + usize::from(self.audio_kbps.is_some())],
            None => Vec::new(),
        }
    }

    /// The rungs ffmpeg encodes (not the copied source rung), with their
    /// index among the output's video streams.
    pub fn encoded_rungs(&self) -> Vec<(usize, &PlannedRung)> {
        self.rungs
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.copy)
            .collect()
    }

    /// The frame rate the source is reduced to once before the split, when
    /// it is faster than every encoded rung allows. Never beside a copied
    /// source rung: its keyframes are the ones the encoded rungs must have
    /// too, and a reduced rate could drop them.
    pub fn reduced_fps(&self) -> Option<u32> {
        let encoded = self.encoded_rungs();
        let cap = encoded.iter().map(|(_, r)| r.max_fps).max().unwrap_or(30);
        let has_copy = self.rungs.iter().any(|r| r.copy);
        (!has_copy && self.source_fps.is_some_and(|f| f > f64::from(cap) + 0.5)).then_some(cap)
    }

    /// The rung whose encoding costs most (most pixels): the first to go
    /// when the machine cannot keep up. Never the copied source rung.
    pub fn most_expensive(&self) -> Option<&PlannedRung> {
        self.rungs
            .iter()
            .filter(|r| !r.copy)
            .max_by_key(|r| u64::from(r.width) * u64::from(r.height))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the source has neither video nor audio")]
    NoMedia,
    #[error("every rung was dropped")]
    NoRungs,
}

/// Even, and at least 2.
fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32).max(1) * 2
}

/// The picture size for a rung `short` pixels on its shorter side, with the
/// source's aspect ratio.
fn size_for(short: u32, (w, h): (u32, u32)) -> (u32, u32) {
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    if w >= h {
        (even(f64::from(short) * w / h), even(f64::from(short)))
    } else {
        (even(f64::from(short)), even(f64::from(short) * h / w))
    }
}

/// Plans the ladder for a source with `tracks`. `previous`: the plan of the
/// same session before the source changed (its rungs are kept), `dropped`:
/// rungs taken out because the machine could not keep up.
pub fn plan(
    config: &LadderConfig,
    tracks: &[TrackInfo],
    source_fps: Option<f64>,
    previous: Option<&Plan>,
    dropped: &BTreeSet<String>,
) -> Result<Plan, PlanError> {
    let video = tracks.iter().find(|t| t.kind() == TrackKind::Video);
    let has_audio = tracks.iter().any(|t| t.kind() == TrackKind::Audio);
    if video.is_none() && !has_audio {
        return Err(PlanError::NoMedia);
    }
    let audio_kbps = has_audio.then_some(config.audio_bitrate_kbps);
    let keep_opus = tracks
        .iter()
        .filter(|t| t.kind() == TrackKind::Audio)
        .position(|t| matches!(t.codec, CodecConfig::Opus(_)));
    let Some(video) = video else {
        return Ok(Plan {
            rungs: Vec::new(),
            audio_kbps,
            keep_opus,
            make_opus: None,
            source_fps,
        });
    };
    let size = video.resolution().unwrap_or((0, 0));
    let avc = matches!(video.codec, CodecConfig::Avc(_));
    let mut rungs = video_rungs(config, size, avc, previous);
    rungs.retain(|r| !dropped.contains(&r.name));
    if rungs.is_empty() {
        return Err(PlanError::NoRungs);
    }
    Ok(Plan {
        rungs,
        audio_kbps,
        keep_opus,
        make_opus: None,
        source_fps,
    })
}

/// Plans the ladder for a file (VOD) whose video is `display` pixels as
/// shown (after any rotation: a portrait phone video is taller than wide),
/// by the same rules as [`plan`]. `h264`: the source may be copied as the
/// top rung when `config.source_rung` is set. The audio rendition is planned
/// when `has_audio`; a file's audio is always transcoded to AAC (no Opus kept).
pub fn plan_for_file(
    config: &LadderConfig,
    display: (u32, u32),
    h264: bool,
    has_audio: bool,
    source_fps: Option<f64>,
) -> Result<Plan, PlanError> {
    if display.0 == 0 || display.1 == 0 {
        return Err(PlanError::NoMedia);
    }
    let rungs = video_rungs(config, display, h264, None);
    if rungs.is_empty() {
        return Err(PlanError::NoRungs);
    }
    Ok(Plan {
        rungs,
        audio_kbps: has_audio.then_some(config.audio_bitrate_kbps),
        keep_opus: None,
        make_opus: None,
        source_fps,
    })
}

/// The video rungs for a picture of `size` (as displayed); `avc`: the source
/// is H.264 (it may be copied as the source rung).
fn video_rungs(
    config: &LadderConfig,
    size: (u32, u32),
    avc: bool,
    previous: Option<&Plan>,
) -> Vec<PlannedRung> {
    let short = size.0.min(size.1);
    let encoded = |r: &Rung, short_side: u32| {
        let (width, height) = size_for(short_side, size);
        PlannedRung {
            name: r.name(),
            width,
            height,
            copy: false,
            bitrate_kbps: r.bitrate_kbps,
            max_fps: r.max_fps,
            encoder: r.encoder,
            preset: r
                .preset
                .clone()
                .unwrap_or_else(|| r.encoder.default_preset().to_string()),
        }
    };
    let source_copy = |size: (u32, u32)| PlannedRung {
        name: SOURCE_RUNG.to_string(),
        width: size.0,
        height: size.1,
        copy: true,
        bitrate_kbps: 0,
        max_fps: 0,
        encoder: Encoder::Libx264,
        preset: String::new(),
    };
    let mut rungs: Vec<PlannedRung> = Vec::new();
    if let Some(prev) = previous {
        // Same renditions as before, each at most as tall as the source now.
        for p in &prev.rungs {
            if p.copy {
                if avc {
                    rungs.push(source_copy(size));
                }
                continue;
            }
            if let Some(r) = config.rungs.iter().find(|r| r.name() == p.name) {
                rungs.push(encoded(r, r.height.min(short)));
            }
        }
    } else {
        let copy = config.source_rung && avc;
        if copy {
            rungs.push(source_copy(size));
        }
        let mut sorted: Vec<&Rung> = config.rungs.iter().collect();
        sorted.sort_by_key(|r| std::cmp::Reverse(r.height));
        for r in &sorted {
            let fits = if copy {
                r.height < short
            } else {
                r.height <= short
            };
            if fits {
                rungs.push(encoded(r, r.height));
            }
        }
        if rungs.is_empty() {
            // Smaller than every rung: the smallest one, at the source's size.
            if let Some(r) = sorted.last() {
                rungs.push(encoded(r, short));
            }
        }
    }
    rungs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avc(width: u32, height: u32) -> TrackInfo {
        crate::pipeline::tests::avc_track(width, height)
    }

    fn aac() -> TrackInfo {
        crate::pipeline::tests::aac_track()
    }

    fn sizes(p: &Plan) -> Vec<(String, u32, u32)> {
        p.rungs
            .iter()
            .map(|r| (r.name.clone(), r.width, r.height))
            .collect()
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    fn s(name: &str, w: u32, h: u32) -> (String, u32, u32) {
        (name.to_string(), w, h)
    }

    #[test]
    fn never_upscales_and_keeps_the_aspect_ratio_in_even_sizes() {
        let c = LadderConfig::default();
        let p = plan(&c, &[avc(1280, 720), aac()], None, None, &none()).unwrap();
        assert_eq!(
            sizes(&p),
            [
                s("720p", 1280, 720),
                s("480p", 854, 480),
                s("360p", 640, 360)
            ]
        );
        assert_eq!(p.audio_kbps, Some(128));
        assert_eq!(p.rendition_names(), ["720p", "480p", "360p", "audio"]);
        // 4:3, and portrait: the rung is the shorter side.
        let p = plan(&c, &[avc(640, 480)], None, None, &none()).unwrap();
        assert_eq!(sizes(&p), [s("480p", 640, 480), s("360p", 480, 360)]);
        assert_eq!(p.audio_kbps, None);
        let p = plan(&c, &[avc(720, 1280)], None, None, &none()).unwrap();
        assert_eq!(sizes(&p)[0], s("720p", 720, 1280));
        // An odd-sized source still gets even sizes.
        let p = plan(&c, &[avc(1918, 1078)], None, None, &none()).unwrap();
        assert!(p
            .rungs
            .iter()
            .all(|r| r.width % 2 == 0 && r.height % 2 == 0));
        assert_eq!(sizes(&p)[0], s("720p", 1282, 720));
    }

    /// A WebRTC source's Opus becomes the shared AAC rendition and is also kept
    /// as it is (`opus`), for the players that take it.
    #[test]
    fn an_opus_source_gets_aac_and_keeps_its_opus() {
        let opus = TrackInfo {
            id: 2,
            timescale: 48_000,
            codec: CodecConfig::Opus(brook_packager::codec::opus::OpusConfig::webrtc()),
        };
        let p = plan(
            &LadderConfig::default(),
            &[avc(640, 360), opus],
            None,
            None,
            &none(),
        )
        .unwrap();
        assert_eq!(p.rendition_names(), ["360p", "audio", "opus"]);
        let p = plan(
            &LadderConfig::default(),
            &[avc(640, 360), aac()],
            None,
            None,
            &none(),
        )
        .unwrap();
        assert_eq!(p.rendition_names(), ["360p", "audio"]);
    }

    /// A file's plan follows the live rules, from the displayed size.
    #[test]
    fn a_file_plan_uses_the_displayed_size() {
        let c = LadderConfig::default();
        let p = plan_for_file(&c, (1280, 720), true, true, Some(30.0)).unwrap();
        assert_eq!(p.rendition_names(), ["720p", "480p", "360p", "audio"]);
        let live = plan(&c, &[avc(1280, 720), aac()], Some(30.0), None, &none()).unwrap();
        assert_eq!(p, live);
        let p = plan_for_file(&c, (360, 640), true, false, None).unwrap();
        assert_eq!(sizes(&p), [s("360p", 360, 640)]);
        assert_eq!(p.audio_kbps, None);
        let copy = LadderConfig {
            source_rung: true,
            ..LadderConfig::default()
        };
        let p = plan_for_file(&copy, (640, 360), false, false, None).unwrap();
        assert_eq!(sizes(&p), [s("360p", 640, 360)], "only H.264 is copied");
        assert_eq!(
            plan_for_file(&c, (0, 360), true, false, None),
            Err(PlanError::NoMedia)
        );
    }

    #[test]
    fn a_source_below_every_rung_keeps_the_smallest_at_its_own_size() {
        let p = plan(
            &LadderConfig::default(),
            &[avc(320, 180), aac()],
            None,
            None,
            &none(),
        )
        .unwrap();
        assert_eq!(sizes(&p), [s("360p", 320, 180)]);
    }

    #[test]
    fn the_source_rung_replaces_the_rungs_it_covers() {
        let c = LadderConfig {
            source_rung: true,
            ..LadderConfig::default()
        };
        let p = plan(&c, &[avc(1280, 720), aac()], None, None, &none()).unwrap();
        assert_eq!(
            sizes(&p),
            [
                s("source", 1280, 720),
                s("480p", 854, 480),
                s("360p", 640, 360)
            ]
        );
        assert!(p.rungs[0].copy);
        assert_eq!(p.most_expensive().unwrap().name, "480p");
    }

    #[test]
    fn a_changed_source_keeps_the_renditions_without_upscaling() {
        let c = LadderConfig::default();
        let first = plan(&c, &[avc(1280, 720), aac()], None, None, &none()).unwrap();
        let p = plan(&c, &[avc(640, 360), aac()], None, Some(&first), &none()).unwrap();
        assert_eq!(
            sizes(&p),
            [
                s("720p", 640, 360),
                s("480p", 640, 360),
                s("360p", 640, 360)
            ]
        );
        let mut dropped = none();
        dropped.insert("720p".to_string());
        let p = plan(&c, &[avc(1280, 720), aac()], None, Some(&first), &dropped).unwrap();
        assert_eq!(p.rendition_names(), ["480p", "360p", "audio"]);
    }

    #[test]
    fn impossible_rungs_are_rejected_with_the_reason() {
        let bad = |r: Rung| {
            let c = LadderConfig {
                rungs: vec![r],
                ..LadderConfig::default()
            };
            c.validate("ladder").unwrap_err()
        };
        assert!(
            bad(Rung::new(361, 600)).contains("height 361 must be even"),
            "odd"
        );
        assert!(
            bad(Rung::new(360, 0)).contains("bitrate_kbps 0"),
            "zero bit rate"
        );
        assert!(bad(Rung {
            name: Some("a/b".into()),
            ..Rung::new(360, 600)
        })
        .contains("name"));
        let twice = LadderConfig {
            rungs: vec![Rung::new(360, 600), Rung::new(360, 500)],
            ..LadderConfig::default()
        };
        assert!(twice.validate("ladder").unwrap_err().contains("two rungs"));
        let empty = LadderConfig {
            rungs: vec![],
            ..LadderConfig::default()
        };
        assert!(empty.validate("ladder").is_err());
        let passthrough = LadderConfig {
            mode: Mode::Passthrough,
            rungs: vec![],
            ..LadderConfig::default()
        };
        assert!(passthrough.validate("ladder").is_ok());
        LadderConfig::default().validate("ladder").unwrap();
    }
}
