//! Pictures of a video: the poster (one JPEG), and trick-play sprites (small
//! tiles every few seconds packed into JPEG sheets, with a WebVTT file that
//! maps each time range to its tile, `sheet.jpg#xywh=x,y,w,h`).
//!
//! ```text
//! let poster = thumbnails::poster(&ffmpeg, &upload, &probe, None, 1280, &dir, &cancel)?;
//! let sprites = thumbnails::sprites(&ffmpeg, &upload, &probe, &SpriteConfig::default(), &dir, &cancel)?;
//! // dir: poster.jpg, sprite-1.jpg ..., sprites.vtt
//! ```
//!
//! The automatic poster: nine candidate frames (10 % to 90 % of the video)
//! are decoded small and grey in one ffmpeg run; near-black and flat frames
//! (fades, title cards) are passed over, and of the rest the sharpest (most
//! edge energy: not a motion-blurred one) wins. It is then taken from the
//! source at full size, scaled down to at most the requested width.
//!
//! The sprites are one ffmpeg run (`fps=1/N,scale,tile=CxR`): tile `k` is the
//! frame nearest `k*N` s and stands for `[k*N, (k+1)*N)`; the last range ends
//! at the duration. The unused tiles of the last sheet are black.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use serde::Deserialize;

use super::probe::Probe;
use super::transcode::{run_ffmpeg, FfmpegError};

/// The poster's file name in the output directory.
pub const POSTER: &str = "poster.jpg";
/// The WebVTT file of the sprites.
pub const SPRITES_VTT: &str = "sprites.vtt";

/// The name of sprite sheet `n` (from 1, as ffmpeg numbers its images).
pub fn sheet_name(n: usize) -> String {
    format!("sprite-{n}.jpg")
}

/// The sheets' names as a DASH `SegmentTemplate@media` (`startNumber` 1).
pub const SHEET_TEMPLATE: &str = "sprite-$Number$.jpg";

/// Trick-play sprites (`[vod.sprites]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpriteConfig {
    /// Seconds between tiles. Default 5.
    pub interval_secs: u32,
    /// Tile width, pixels (the height follows the aspect ratio, even).
    /// Default 160.
    pub tile_width: u32,
    /// Tiles per sheet across. Default 5.
    pub cols: u32,
    /// Tiles per sheet down. Default 5.
    pub rows: u32,
}

impl Default for SpriteConfig {
    fn default() -> Self {
        SpriteConfig {
            interval_secs: 5,
            tile_width: 160,
            cols: 5,
            rows: 5,
        }
    }
}

impl SpriteConfig {
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if !(1..=600).contains(&self.interval_secs) {
            return Err(format!("{at}.interval_secs must be within 1..=600"));
        }
        if !(16..=640).contains(&self.tile_width) || !self.tile_width.is_multiple_of(2) {
            return Err(format!("{at}.tile_width must be even and within 16..=640"));
        }
        if !(1..=20).contains(&self.cols) || !(1..=20).contains(&self.rows) {
            return Err(format!("{at}.cols and rows must be within 1..=20"));
        }
        Ok(())
    }
}

/// The sprites written, for the manifests (a DASH image AdaptationSet:
/// `SegmentTemplate media=`[`SHEET_TEMPLATE`] with one sheet per
/// `sheet_duration_secs`, `EssentialProperty
/// http://dashif.org/thumbnail_tile` value `"{cols}x{rows}"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sprites {
    /// Sheet file names, in order ([`sheet_name`] 1, 2, ...).
    pub sheets: Vec<String>,
    /// The WebVTT file's name ([`SPRITES_VTT`]).
    pub vtt: String,
    pub tile_width: u32,
    pub tile_height: u32,
    pub cols: u32,
    pub rows: u32,
    /// Seconds each tile stands for.
    pub interval_secs: u32,
    /// Tiles that show the video (the last sheet may hold fewer than cols*rows).
    pub count: u32,
}

impl Sprites {
    /// A sheet's picture size.
    pub fn sheet_size(&self) -> (u32, u32) {
        (self.tile_width * self.cols, self.tile_height * self.rows)
    }

    /// Seconds of video one full sheet covers.
    pub fn sheet_duration_secs(&self) -> u32 {
        self.interval_secs * self.cols * self.rows
    }
}

/// The poster written.
#[derive(Debug, Clone, PartialEq)]
pub struct Poster {
    /// [`POSTER`].
    pub file: String,
    pub width: u32,
    pub height: u32,
    /// Where in the video it was taken, seconds.
    pub time_secs: f64,
}

/// Even, at least 2.
fn even(x: f64) -> u32 {
    ((x / 2.0).round().clamp(1.0, 32_768.0) as u32) * 2
}

/// `width` wide, the height by the picture's aspect ratio as shown.
fn scaled(width: u32, (dw, dh): (u32, u32)) -> (u32, u32) {
    let w = even(f64::from(width));
    (
        w,
        even(f64::from(w) * f64::from(dh.max(1)) / f64::from(dw.max(1))),
    )
}

/// Writes [`POSTER`] into `dir`: the frame at `at` seconds, or (`None`) a
/// representative one (see the module docs), at most `max_width` wide.
/// Blocking; `cancel` kills ffmpeg.
pub fn poster(
    ffmpeg: &Path,
    input: &Path,
    probe: &Probe,
    at: Option<f64>,
    max_width: u32,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<Poster, FfmpegError> {
    let display = probe.video.display_size();
    let duration = probe.duration_secs;
    let time_secs = match at {
        // Not past the last frame (a seek there finds nothing).
        Some(t) if t.is_finite() => t.clamp(0.0, (duration - 0.1).max(0.0)),
        _ => pick_time(ffmpeg, input, probe, cancel)?,
    };
    let (width, height) = scaled(max_width.min(display.0).max(2), display);
    let out = dir.join(POSTER);
    let mut args: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-ss",
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("{time_secs:.3}"));
    args.extend(input_format(probe));
    args.push("-i".into());
    args.push(input.to_string_lossy().into_owned());
    args.extend([
        "-map".to_string(),
        "0:v:0".into(),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        format!("scale={width}:{height}:flags=bicubic,setsar=1"),
        "-q:v".into(),
        "3".into(),
        "-update".into(),
        "1".into(),
        out.to_string_lossy().into_owned(),
    ]);
    run_ffmpeg(ffmpeg, &args, cancel, |_| {})?;
    let written = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    if written == 0 {
        return Err(FfmpegError::Output(format!(
            "no frame at {time_secs:.3} s for the poster"
        )));
    }
    Ok(Poster {
        file: POSTER.into(),
        width,
        height,
        time_secs,
    })
}

/// Candidate frames looked at for the automatic poster.
const CANDIDATES: usize = 9;
/// Width the candidates are judged at.
const JUDGE_WIDTH: u32 = 160;

/// The time of the best of [`CANDIDATES`] frames.
fn pick_time(
    ffmpeg: &Path,
    input: &Path,
    probe: &Probe,
    cancel: &AtomicBool,
) -> Result<f64, FfmpegError> {
    let duration = probe.duration_secs;
    let times: Vec<f64> = (1..=CANDIDATES)
        .map(|i| duration * i as f64 / (CANDIDATES + 1) as f64)
        .collect();
    let (w, h) = scaled(JUDGE_WIDTH, probe.video.display_size());
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .map(String::from)
        .to_vec();
    // One input per candidate, each seeked and read for at most a second.
    for t in &times {
        args.extend([
            "-ss".to_string(),
            format!("{t:.3}"),
            "-t".into(),
            "1".into(),
        ]);
        args.extend(input_format(probe));
        args.extend(["-i".into(), input.to_string_lossy().into_owned()]);
    }
    let mut graph = String::new();
    for i in 0..times.len() {
        graph.push_str(&format!(
            "[{i}:v:0]trim=end_frame=1,scale={w}:{h},setsar=1,format=gray[c{i}];"
        ));
    }
    for i in 0..times.len() {
        graph.push_str(&format!("[c{i}]"));
    }
    graph.push_str(&format!("concat=n={}:v=1:a=0[out]", times.len()));
    args.extend(
        [
            "-filter_complex",
            &graph,
            "-map",
            "[out]",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "pipe:1",
        ]
        .map(String::from),
    );
    let mut raw = Vec::new();
    run_ffmpeg(ffmpeg, &args, cancel, |chunk| raw.extend_from_slice(chunk))?;
    let frame = (w * h) as usize;
    let scores: Vec<Score> = raw
        .chunks_exact(frame.max(1))
        .map(|f| score(f, w as usize))
        .collect();
    // A candidate that yielded no frame shortens the list at its end.
    let best = pick(&scores).unwrap_or(0);
    Ok(times.get(best).copied().unwrap_or(0.0))
}

/// How a candidate looks, from its grey pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Mean luma, 0-255.
    pub mean: f64,
    /// Standard deviation of luma: low for flat frames.
    pub spread: f64,
    /// Mean absolute difference between neighbouring pixels: low for blur.
    pub sharpness: f64,
}

/// Scores a grey frame `width` pixels wide (row-major, one byte a pixel).
pub fn score(gray: &[u8], width: usize) -> Score {
    let n = gray.len().max(1) as f64;
    let mean = gray.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    let var = gray
        .iter()
        .map(|&p| (f64::from(p) - mean).powi(2))
        .sum::<f64>()
        / n;
    let mut edges = 0u64;
    let mut pairs = 0u64;
    if width > 0 {
        for (i, &p) in gray.iter().enumerate() {
            if (i + 1) % width != 0 {
                if let Some(&r) = gray.get(i + 1) {
                    edges += u64::from(p.abs_diff(r));
                    pairs += 1;
                }
            }
            if let Some(&d) = gray.get(i + width) {
                edges += u64::from(p.abs_diff(d));
                pairs += 1;
            }
        }
    }
    Score {
        mean,
        spread: var.sqrt(),
        sharpness: edges as f64 / pairs.max(1) as f64,
    }
}

/// Below this mean luma a frame is black (a fade, a black intro).
const BLACK_MEAN: f64 = 24.0;
/// Below this spread a frame is one flat colour.
const FLAT_SPREAD: f64 = 8.0;

/// The index of the best candidate: the sharpest of those neither black nor
/// flat (the earliest among equals); if all are, the brightest.
pub fn pick(scores: &[Score]) -> Option<usize> {
    let usable = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.mean >= BLACK_MEAN && s.mean <= 250.0 && s.spread >= FLAT_SPREAD)
        .fold(None::<(usize, f64)>, |best, (i, s)| match best {
            Some((_, b)) if b >= s.sharpness => best,
            _ => Some((i, s.sharpness)),
        });
    usable.map(|(i, _)| i).or_else(|| {
        scores
            .iter()
            .enumerate()
            .fold(None::<(usize, f64)>, |best, (i, s)| match best {
                Some((_, b)) if b >= s.mean => best,
                _ => Some((i, s.mean)),
            })
            .map(|(i, _)| i)
    })
}

/// The sprites of a transcoded ladder (`ladder.ts`), from its video stream
/// `index` (the smallest rung: decoding 360p costs a fraction of decoding
/// the source again), `width` x `height` as encoded (upright already).
#[allow(clippy::too_many_arguments)]
pub fn sprites_from_ladder(
    ffmpeg: &Path,
    ladder_ts: &Path,
    index: usize,
    (width, height): (u32, u32),
    duration_secs: f64,
    config: &SpriteConfig,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<Sprites, FfmpegError> {
    let probe = Probe {
        container: "mpegts".into(),
        duration_secs,
        size_bytes: None,
        video: crate::vod::probe::VideoStream {
            codec: "h264".into(),
            width,
            height,
            rotation: 0,
            sample_aspect: None,
            fps: None,
            pix_fmt: None,
            color_transfer: None,
            color_primaries: None,
            hdr: false,
            bt2020: false,
        },
        audio: None,
    };
    sprites_of(ffmpeg, ladder_ts, &probe, index, config, dir, cancel)
}

/// Writes the sprite sheets ([`sheet_name`]) and [`SPRITES_VTT`] into `dir`.
/// One ffmpeg run decoding the whole file; blocking, `cancel` kills it.
pub fn sprites(
    ffmpeg: &Path,
    input: &Path,
    probe: &Probe,
    config: &SpriteConfig,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<Sprites, FfmpegError> {
    sprites_of(ffmpeg, input, probe, 0, config, dir, cancel)
}

fn sprites_of(
    ffmpeg: &Path,
    input: &Path,
    probe: &Probe,
    video_index: usize,
    config: &SpriteConfig,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<Sprites, FfmpegError> {
    let interval = config.interval_secs.max(1);
    let (cols, rows) = (config.cols.max(1), config.rows.max(1));
    let (tile_width, tile_height) = scaled(config.tile_width, probe.video.display_size());
    let duration_ms = duration_ms(probe.duration_secs);
    let count = tile_count(duration_ms, interval);
    let per_sheet = cols * rows;
    let sheets = count.div_ceil(per_sheet);
    let pattern = dir.join("sprite-%d.jpg");
    let mut args: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        .map(String::from)
        .to_vec();
    args.extend(input_format(probe));
    args.push("-i".into());
    args.push(input.to_string_lossy().into_owned());
    args.extend([
        "-map".to_string(),
        format!("0:v:{video_index}"),
        "-vf".into(),
        format!(
            // Time from the first frame (an MPEG-TS starts at ~1.4 s): tile
            // k is what plays at k * interval.
            "setpts=PTS-STARTPTS,fps=1/{interval},scale={tile_width}:{tile_height}:flags=bicubic,setsar=1,tile={cols}x{rows}"
        ),
        // The fps filter may round one more tile in at the end: not a sheet
        // more than the duration needs.
        "-frames:v".into(),
        sheets.to_string(),
        "-fps_mode".into(),
        "passthrough".into(),
        "-q:v".into(),
        "5".into(),
        "-f".into(),
        "image2".into(),
        pattern.to_string_lossy().into_owned(),
    ]);
    run_ffmpeg(ffmpeg, &args, cancel, |_| {})?;
    let names: Vec<String> = (1..=sheets as usize).map(sheet_name).collect();
    if let Some(missing) = names.iter().find(|n| !dir.join(n).is_file()) {
        return Err(FfmpegError::Output(format!(
            "sprite sheet {missing} was not written"
        )));
    }
    let sprites = Sprites {
        sheets: names,
        vtt: SPRITES_VTT.into(),
        tile_width,
        tile_height,
        cols,
        rows,
        interval_secs: interval,
        count,
    };
    let vtt = sprite_vtt(&sprites, duration_ms);
    std::fs::write(dir.join(SPRITES_VTT), vtt).map_err(|e| {
        FfmpegError::Output(format!("writing {}: {e}", dir.join(SPRITES_VTT).display()))
    })?;
    Ok(sprites)
}

/// Input options of every ffmpeg run on an upload: only the file itself is
/// opened, with the demuxer the probe accepted (see `Probe::demuxer`).
fn input_format(probe: &Probe) -> Vec<String> {
    let mut a = vec!["-protocol_whitelist".to_string(), "file".to_string()];
    if let Some(f) = probe.demuxer() {
        a.extend(["-f".to_string(), f.to_string()]);
    }
    a
}

fn duration_ms(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    }
}

/// Tiles needed for `duration_ms` at one per `interval_secs`: at least one.
fn tile_count(duration_ms: u64, interval_secs: u32) -> u32 {
    let step = u64::from(interval_secs.max(1)) * 1000;
    duration_ms.div_ceil(step).clamp(1, u64::from(u32::MAX)) as u32
}

/// The WebVTT for `sprites` over a video of `duration_ms`: one cue per tile,
/// `[k*N, (k+1)*N)`, the last one ending at the duration, none past it.
pub fn sprite_vtt(sprites: &Sprites, duration_ms: u64) -> String {
    let step = u64::from(sprites.interval_secs.max(1)) * 1000;
    let per_sheet = u64::from(sprites.cols.max(1) * sprites.rows.max(1));
    let cols = u64::from(sprites.cols.max(1));
    let (w, h) = (sprites.tile_width, sprites.tile_height);
    let mut out = String::from("WEBVTT\n");
    for k in 0..u64::from(sprites.count) {
        let start = k * step;
        if start >= duration_ms {
            break;
        }
        let end = (start + step).min(duration_ms);
        let Some(sheet) = sprites.sheets.get((k / per_sheet) as usize) else {
            break;
        };
        let at = k % per_sheet;
        let (x, y) = ((at % cols) * u64::from(w), (at / cols) * u64::from(h));
        out.push_str(&format!(
            "\n{} --> {}\n{sheet}#xywh={x},{y},{w},{h}\n",
            timestamp(start),
            timestamp(end)
        ));
    }
    out
}

/// `HH:MM:SS.mmm`.
fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sprites(count: u32, cols: u32, rows: u32) -> Sprites {
        let per = cols * rows;
        Sprites {
            sheets: (1..=count.div_ceil(per) as usize).map(sheet_name).collect(),
            vtt: SPRITES_VTT.into(),
            tile_width: 160,
            tile_height: 90,
            cols,
            rows,
            interval_secs: 5,
            count,
        }
    }

    #[test]
    fn vtt_cues_cover_the_duration_and_point_into_the_sheets() {
        // 12.345 s at 5 s a tile: 3 tiles, 2x2 sheets.
        let s = sprites(tile_count(12_345, 5), 2, 2);
        assert_eq!(s.count, 3);
        assert_eq!(
            sprite_vtt(&s, 12_345),
            "WEBVTT\n\
             \n00:00:00.000 --> 00:00:05.000\nsprite-1.jpg#xywh=0,0,160,90\n\
             \n00:00:05.000 --> 00:00:10.000\nsprite-1.jpg#xywh=160,0,160,90\n\
             \n00:00:10.000 --> 00:00:12.345\nsprite-1.jpg#xywh=0,90,160,90\n"
        );
        // 5 tiles in 2x2 sheets: the fifth starts the second sheet.
        let s = sprites(tile_count(25_000, 5), 2, 2);
        assert_eq!(s.count, 5);
        let vtt = sprite_vtt(&s, 25_000);
        assert!(vtt.ends_with("00:00:20.000 --> 00:00:25.000\nsprite-2.jpg#xywh=0,0,160,90\n"));
        assert_eq!(vtt.matches("-->").count(), 5, "none past the end");
    }

    #[test]
    fn no_cue_for_tiles_beyond_the_end() {
        let s = sprites(10, 5, 5);
        let vtt = sprite_vtt(&s, 7_000);
        assert_eq!(vtt.matches("-->").count(), 2);
        assert!(vtt.contains("00:00:05.000 --> 00:00:07.000"));
        assert_eq!(sprite_vtt(&sprites(1, 5, 5), 0), "WEBVTT\n");
    }

    #[test]
    fn timestamps_and_counts() {
        assert_eq!(timestamp(0), "00:00:00.000");
        assert_eq!(timestamp(3_723_004), "01:02:03.004");
        assert_eq!(timestamp(100 * 3_600_000), "100:00:00.000");
        assert_eq!(tile_count(0, 5), 1);
        assert_eq!(tile_count(5_000, 5), 1);
        assert_eq!(tile_count(5_001, 5), 2);
        assert_eq!(duration_ms(6.0205), 6021);
        assert_eq!(duration_ms(f64::NAN), 0);
        let s = sprites(30, 5, 5);
        assert_eq!(s.sheet_size(), (800, 450));
        assert_eq!(s.sheet_duration_secs(), 125);
        assert_eq!(s.sheets, ["sprite-1.jpg", "sprite-2.jpg"]);
    }

    #[test]
    fn tile_sizes_follow_the_displayed_aspect() {
        assert_eq!(scaled(160, (640, 360)), (160, 90));
        assert_eq!(scaled(160, (360, 640)), (160, 284));
        assert_eq!(scaled(160, (1918, 1078)), (160, 90));
        assert_eq!(scaled(160, (0, 0)), (160, 160));
    }

    #[test]
    fn the_poster_is_neither_black_nor_flat_nor_blurred() {
        let (w, h) = (16usize, 8usize);
        let black = vec![3u8; w * h];
        let grey = vec![128u8; w * h];
        let stripes: Vec<u8> = (0..w * h)
            .map(|i| if i % 2 == 0 { 40 } else { 220 })
            .collect();
        // Blurred: a gentle ramp.
        let ramp: Vec<u8> = (0..w * h).map(|i| (60 + (i % w) * 8) as u8).collect();
        let s: Vec<Score> = [&black, &grey, &ramp, &stripes]
            .iter()
            .map(|f| score(f, w))
            .collect();
        assert!(s[0].mean < BLACK_MEAN);
        assert!(s[1].spread < FLAT_SPREAD);
        assert!(s[3].sharpness > s[2].sharpness);
        assert_eq!(pick(&s), Some(3));
        assert_eq!(pick(&s[..3]), Some(2));
        // All black or flat: the brightest.
        assert_eq!(pick(&s[..2]), Some(1));
        assert_eq!(pick(&[]), None);
        let _ = score(&[], 0);
        let _ = score(&[1, 2, 3], 0);
    }
}
