//! The VOD transcode: one ffmpeg run that turns an uploaded file into the
//! ladder, written as ONE MPEG-TS file (every rung its own video stream, one
//! AAC stream) that Brook's packager then cuts into CMAF renditions, exactly
//! as `brook package --all-video` does.
//!
//! ```text
//! let probe = probe::run(&upload, &probe_config)?;
//! let plan = VodPlan::new(&probe, &ladder_config, &vod_encode)?;
//! transcode::run(&plan, &upload, &dir.join("ladder.ts"), &cancel, |pct| ...)?;
//! let mut packager = Packager::new(plan.packager_config(PackagerConfig::default()));
//! packager.set_rendition_names(plan.rendition_names());
//! // push_ts the file, finish, poll the objects (cli/src/main.rs `package`)
//! ```
//!
//! The ladder follows the live rules ([`crate::pipeline::ladder`]: never
//! upscale, even sizes, aspect kept, the rung height is the shorter side) on
//! the picture as shown: ffmpeg rotates a phone's portrait video upright
//! before the filters, and the plan is made from the rotated size. What
//! differs from live is the rate control and the GOP: a file is encoded for
//! quality per bit (x264 `medium`, B-frames, lookahead), with a capped CRF
//! (`-crf` with `-maxrate` at the rung's bit rate and a 2x buffer), and
//! closed GOPs whose IDR frames sit exactly on the segment boundaries
//! (`expr:gte(t,n_forced*S)`, no scene-cut keyframes): every rung has its
//! keyframes at the same instants, so the packager cuts all renditions on the
//! same boundaries.
//!
//! `source_copy` (off by default): an H.264 8-bit 4:2:0 source that is shown
//! as stored is copied unchanged as the top rung (`source`). Its keyframes are
//! the source encoder's, which cannot be moved: the encoded rungs then key on
//! them too (`-force_key_frames source`), so segments are as long as the
//! source's GOPs (a camera's 1-2 s, a screen recorder's 10 s or more) instead
//! of the configured duration, and the frame rate is not reduced.
//!
//! HDR sources (PQ or HLG, [`super::probe::VideoStream::hdr`]) are tone
//! mapped to SDR BT.709 once, before the split ([`TONEMAP`]: zscale + the
//! `hable` curve), and the rungs are tagged BT.709: every player shows them,
//! none shows HDR. An HDR ladder (10-bit HEVC rungs) is not made.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use brook_packager::PackagerConfig;
use serde::Deserialize;

use super::probe::Probe;
use crate::pipeline::ladder::{self, LadderConfig, Plan, PlanError};

/// How files are encoded (`[vod.encode]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VodEncode {
    /// The ffmpeg to run (transcode and thumbnails). Default `ffmpeg`.
    pub ffmpeg: PathBuf,
    /// x264 preset for every rung (files are always encoded with libx264; the
    /// rungs' live `encoder` and `preset` are not used). Default `medium`.
    pub preset: String,
    /// x264 constant rate factor, capped per rung: `-maxrate` is the rung's
    /// `bitrate_kbps`, `-bufsize` twice that. Default 23.
    pub crf: u8,
    /// Segment duration, ms: keyframes are forced at its exact multiples, and
    /// the packager's segment target is set to it. Default 4000.
    pub segment_ms: u32,
    /// Copy an H.264 source unchanged as the top rung (see the module docs:
    /// segments then follow the source's keyframes). Default false.
    pub source_copy: bool,
    /// Encoder threads per rung, 0 = x264 decides. Default 0.
    pub threads: u32,
}

impl Default for VodEncode {
    fn default() -> Self {
        VodEncode {
            ffmpeg: PathBuf::from("ffmpeg"),
            preset: "medium".into(),
            crf: 23,
            segment_ms: 4000,
            source_copy: false,
            threads: 0,
        }
    }
}

impl VodEncode {
    /// Checks the settings; `Err` says which and why (`at`: the config path).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.preset.is_empty() || !self.preset.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "{at}.preset {:?} is not a preset name",
                self.preset
            ));
        }
        if self.crf > 51 {
            return Err(format!("{at}.crf must be within 0..=51"));
        }
        if !(1000..=20_000).contains(&self.segment_ms) {
            return Err(format!("{at}.segment_ms must be within 1000..=20000"));
        }
        if self.threads > 64 {
            return Err(format!("{at}.threads must be at most 64"));
        }
        Ok(())
    }
}

/// One file's transcode: the ladder plan and how it is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct VodPlan {
    /// The rungs, tallest first (in the order of the TS's video streams), and
    /// the audio rendition when the source has audio.
    pub plan: Plan,
    pub encode: VodEncode,
    /// The source's duration (progress is a share of it).
    pub duration_secs: f64,
    /// The source is HDR: tone mapped to SDR BT.709 before the split.
    pub tonemap: bool,
    /// The demuxer the probe accepted (`-f`).
    pub demuxer: Option<&'static str>,
}

/// HDR (PQ, HLG) to SDR BT.709, from the frames' own colour properties: to
/// linear light, BT.709 primaries, the `hable` curve, BT.709 transfer and
/// matrix, 8-bit 4:2:0.
pub const TONEMAP: &str = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,\
tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p";

impl VodPlan {
    /// Plans the ladder for `probe` by `ladder`'s rungs and audio bit rate.
    pub fn new(
        probe: &Probe,
        ladder: &LadderConfig,
        encode: &VodEncode,
    ) -> Result<Self, PlanError> {
        let config = LadderConfig {
            source_rung: encode.source_copy && probe.video_copyable(),
            ..ladder.clone()
        };
        let plan = ladder::plan_for_file(
            &config,
            probe.video.display_size(),
            probe.video.codec == "h264",
            probe.audio.is_some(),
            probe.video.fps,
        )?;
        Ok(VodPlan {
            plan,
            encode: encode.clone(),
            duration_secs: probe.duration_secs,
            tonemap: probe.video.hdr,
            demuxer: probe.demuxer(),
        })
    }

    /// Rendition names in the order of the output's streams (video rungs,
    /// tallest first, then `audio`): what [`brook_packager::Packager::set_rendition_names`]
    /// takes before the file is pushed.
    pub fn rendition_names(&self) -> Vec<String> {
        self.plan.rendition_names()
    }

    /// `base` set up to package this transcode's output: every video stream a
    /// rendition, segments of [`VodEncode::segment_ms`], all of them listed.
    pub fn packager_config(&self, mut base: PackagerConfig) -> PackagerConfig {
        base.segmenter.segment_target_ms = self.encode.segment_ms;
        base.segmenter.part_target_ms = base.segmenter.part_target_ms.min(self.encode.segment_ms);
        base.window_segments = usize::MAX;
        base.max_video_tracks = brook_packager::frontend::ts::MAX_VIDEO_STREAMS;
        base
    }

    /// The ffmpeg arguments (without the program) reading `input` and writing
    /// the ladder as MPEG-TS to `output` (overwritten), progress on stdout.
    pub fn ffmpeg_args(&self, input: &Path, output: &Path) -> Vec<String> {
        let plan = &self.plan;
        let enc = &self.encode;
        let mut a: Vec<String> = [
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "error",
            "-progress",
            "pipe:1",
            "-y",
            "-protocol_whitelist",
            "file",
        ]
        .map(String::from)
        .to_vec();
        // The demuxer the probe accepted, not a fresh guess from the bytes.
        if let Some(f) = self.demuxer {
            a.extend(["-f".to_string(), f.to_string()]);
        }
        a.push("-i".into());
        a.push(input.to_string_lossy().into_owned());
        let encoded = plan.encoded_rungs();
        if !encoded.is_empty() {
            // Decode once (rotated upright by ffmpeg), reduce the frame rate
            // once, split, scale each rung to square pixels.
            let mut graph = String::from("[0:v:0]");
            if let Some(cap) = plan.reduced_fps() {
                graph.push_str(&format!("fps={cap},"));
            }
            if self.tonemap {
                graph.push_str(TONEMAP);
                graph.push(',');
            }
            graph.push_str(&format!("split={}", encoded.len()));
            for (i, _) in &encoded {
                graph.push_str(&format!("[s{i}]"));
            }
            for (i, r) in &encoded {
                graph.push_str(&format!(
                    ";[s{i}]scale={}:{}:flags=bicubic,setsar=1,format=yuv420p[v{i}]",
                    r.width, r.height
                ));
            }
            a.extend(["-filter_complex".to_string(), graph]);
        }
        let segment = f64::from(enc.segment_ms.max(100)) / 1000.0;
        let force = if plan.rungs.iter().any(|r| r.copy) {
            "source".to_string()
        } else {
            format!("expr:gte(t,n_forced*{})", trim_float(segment))
        };
        // A GOP longer than a segment at any rate the rungs allow: only the
        // forced keyframes start GOPs.
        let max_fps = plan
            .rungs
            .iter()
            .map(|r| r.max_fps)
            .max()
            .unwrap_or(30)
            .max(1);
        let gop = ((segment * f64::from(max_fps)).ceil() as u32 * 2)
            .max(2)
            .to_string();
        for (out, r) in plan.rungs.iter().enumerate() {
            let v = format!(":v:{out}");
            if r.copy {
                a.extend(["-map", "0:v:0"].map(String::from));
                a.extend([format!("-c{v}"), "copy".into()]);
                continue;
            }
            a.extend(["-map".to_string(), format!("[v{out}]")]);
            let rate = format!("{}k", r.bitrate_kbps);
            let buf = format!("{}k", u64::from(r.bitrate_kbps) * 2);
            let opts: [(&str, String); 12] = [
                ("c", "libx264".into()),
                ("preset", enc.preset.clone()),
                ("crf", enc.crf.to_string()),
                ("maxrate", rate),
                ("bufsize", buf),
                ("profile", "high".into()),
                ("g", gop.clone()),
                ("keyint_min", gop.clone()),
                ("sc_threshold", "0".into()),
                ("force_key_frames", force.clone()),
                // Forced keyframes are IDR frames, and GOPs closed: every
                // segment decodes on its own.
                ("forced-idr", "1".into()),
                ("flags", "+cgop".into()),
            ];
            for (k, val) in opts {
                a.extend([format!("-{k}{v}"), val]);
            }
            if enc.threads > 0 {
                a.extend([format!("-threads{v}"), enc.threads.to_string()]);
            }
            if self.tonemap {
                for k in ["color_primaries", "color_trc", "colorspace"] {
                    a.extend([format!("-{k}{v}"), "bt709".into()]);
                }
            }
        }
        if let Some(kbps) = plan.audio_kbps {
            a.extend(
                [
                    "-map", "0:a:0", "-c:a:0", "aac", "-ac:a:0", "2", "-ar:a:0", "48000",
                ]
                .map(String::from),
            );
            a.extend(["-b:a:0".to_string(), format!("{kbps}k")]);
        }
        a.extend(
            [
                // Frames keep their timestamps (a variable-rate phone video
                // stays as it was; after `fps` the rate is constant anyway).
                "-fps_mode",
                "passthrough",
                // x264's lookahead holds video back while audio is ready.
                "-max_muxing_queue_size",
                "4096",
                "-map_metadata",
                "-1",
                "-f",
                "mpegts",
            ]
            .map(String::from),
        );
        // The duration the probe read is the container's claim: a file that
        // declares 10 s and holds hours is cut at what it declared (+1 s), so
        // the limits checked on the probe hold for the work done too.
        if self.duration_secs.is_finite() && self.duration_secs > 0.0 {
            a.extend(["-t".to_string(), format!("{:.3}", self.duration_secs + 1.0)]);
        }
        a.push(output.to_string_lossy().into_owned());
        a
    }
}

/// `4` rather than `4.000` (ffmpeg's expression parser takes both).
fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Runs the transcode of `input` into `output` (MPEG-TS). Blocking: run it on
/// a thread of its own (or `spawn_blocking`). `on_progress` gets the percent
/// done (0-100, 100 when ffmpeg reports the end); setting `cancel` kills
/// ffmpeg within ~0.1 s and returns [`FfmpegError::Cancelled`] (the caller
/// deletes `output`). ffmpeg also dies with the origin (`PR_SET_PDEATHSIG`).
pub fn run(
    plan: &VodPlan,
    input: &Path,
    output: &Path,
    cancel: &AtomicBool,
    mut on_progress: impl FnMut(f64),
) -> Result<(), FfmpegError> {
    let args = plan.ffmpeg_args(input, output);
    let mut progress = Progress::new(plan.duration_secs);
    let mut line = Vec::new();
    run_ffmpeg(&plan.encode.ffmpeg, &args, cancel, |chunk| {
        for &b in chunk {
            if b == b'\n' {
                if let Some(p) = progress.line(&String::from_utf8_lossy(&line)) {
                    on_progress(p);
                }
                line.clear();
            } else if line.len() < 4096 {
                line.push(b);
            }
        }
    })
}

/// ffmpeg's `-progress` output, as a percent of the source's duration.
/// Sans-IO: feed it lines.
#[derive(Debug, Clone)]
pub struct Progress {
    duration_us: f64,
    out_time_us: Option<f64>,
    last: f64,
}

impl Progress {
    pub fn new(duration_secs: f64) -> Self {
        Progress {
            duration_us: duration_secs * 1e6,
            out_time_us: None,
            last: 0.0,
        }
    }

    /// One line (`key=value`); at the `progress=` line that ends each block,
    /// the percent done (never going backwards; 100 at `progress=end`).
    pub fn line(&mut self, line: &str) -> Option<f64> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key {
            // ffmpeg 5.1's `out_time_ms` is in microseconds too (a known
            // misnomer); `out_time_us` is preferred when both are there.
            "out_time_us" => self.out_time_us = value.parse().ok().or(self.out_time_us),
            "out_time_ms" if self.out_time_us.is_none() => {
                self.out_time_us = value.parse().ok();
            }
            "progress" => {
                let pct = if value == "end" {
                    100.0
                } else {
                    let t = self.out_time_us.unwrap_or(0.0);
                    if self.duration_us > 0.0 && t.is_finite() {
                        (t / self.duration_us * 100.0).clamp(0.0, 99.9)
                    } else {
                        0.0
                    }
                };
                self.last = self.last.max(pct);
                return Some(self.last);
            }
            _ => {}
        }
        None
    }
}

/// Why an ffmpeg run (transcode, thumbnails) did not produce its output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FfmpegError {
    #[error("could not start {binary}: {reason}")]
    Spawn { binary: String, reason: String },
    #[error("cancelled")]
    Cancelled,
    /// ffmpeg was stopped by a signal from outside (the origin's service
    /// stopping with its process group, the OOM killer): not the input's
    /// fault, the job runs again.
    #[error("ffmpeg was interrupted ({0})")]
    Interrupted(String),
    /// ffmpeg exited with an error; `stderr` holds its last lines (the reason).
    #[error("ffmpeg failed ({status}): {}", .stderr.join(" | "))]
    Failed { status: String, stderr: Vec<String> },
    /// ffmpeg succeeded but its output is not what was expected.
    #[error("{0}")]
    Output(String),
}

/// Lines of stderr kept for [`FfmpegError::Failed`].
const STDERR_KEPT: usize = 12;
/// How often the cancel flag is looked at.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Runs `ffmpeg args`, handing what it writes on stdout to `on_stdout`, until
/// it exits or `cancel` is set (then it is killed). Spawned with
/// `PR_SET_PDEATHSIG`, stdin closed, stderr's last lines kept for the error.
pub(crate) fn run_ffmpeg(
    ffmpeg: &Path,
    args: &[String],
    cancel: &AtomicBool,
    mut on_stdout: impl FnMut(&[u8]),
) -> Result<(), FfmpegError> {
    if cancel.load(Ordering::Relaxed) {
        return Err(FfmpegError::Cancelled);
    }
    let mut cmd = Command::new(ffmpeg);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_err = |e: std::io::Error| FfmpegError::Spawn {
        binary: ffmpeg.display().to_string(),
        reason: e.to_string(),
    };
    // Killed and reaped on every way out, a panicking callback included.
    let mut child = KillOnDrop(crate::pipeline::transcoder::spawn_child(cmd).map_err(spawn_err)?);
    let child = &mut child.0;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill(child);
        return Err(spawn_err(std::io::Error::other("no pipes")));
    };
    let kept = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_KEPT)));
    let kept2 = kept.clone();
    let log = thread::Builder::new()
        .name("vod-ffmpeg-err".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                if let Ok(mut k) = kept2.lock() {
                    if k.len() == STDERR_KEPT {
                        k.pop_front();
                    }
                    k.push_back(line);
                }
            }
        });
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
    let reader = thread::Builder::new()
        .name("vod-ffmpeg-out".into())
        .spawn(move || {
            let mut stdout = stdout;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf.get(..n).unwrap_or(&[]).to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    if let Err(e) = log.as_ref().and(reader.as_ref()) {
        let reason = e.to_string();
        kill(child);
        return Err(spawn_err(std::io::Error::other(reason)));
    }
    let status = loop {
        if cancel.load(Ordering::Relaxed) {
            kill(child);
            return Err(FfmpegError::Cancelled);
        }
        match rx.recv_timeout(CANCEL_POLL) {
            Ok(chunk) => on_stdout(&chunk),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // stdout closed: ffmpeg is exiting.
            Err(mpsc::RecvTimeoutError::Disconnected) => match wait_exit(child, cancel) {
                Some(s) => break s,
                None => return Err(FfmpegError::Cancelled),
            },
        }
    };
    if let Ok(t) = log {
        let _ = t.join();
    }
    if status.success() {
        return Ok(());
    }
    // ffmpeg exits 255 when it received SIGINT/SIGTERM; an uncaught signal
    // shows as no code at all.
    if status.code().is_none_or(|c| c == 255) {
        return Err(FfmpegError::Interrupted(status.to_string()));
    }
    let stderr: Vec<String> = kept
        .lock()
        .map(|k| k.iter().cloned().collect())
        .unwrap_or_default();
    Err(FfmpegError::Failed {
        status: status.to_string(),
        stderr,
    })
}

/// Waits for a child whose stdout has closed; `None` when cancelled meanwhile.
fn wait_exit(child: &mut Child, cancel: &AtomicBool) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if cancel.load(Ordering::Relaxed) {
            kill(child);
            return None;
        }
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if start.elapsed() < Duration::from_secs(30) => {
                thread::sleep(Duration::from_millis(10))
            }
            // Lingering long after closing its output: not coming back.
            _ => {
                let _ = child.kill();
                return child.wait().ok();
            }
        }
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Already reaped: both fail harmlessly.
        if let Ok(None) = self.0.try_wait() {
            kill(&mut self.0);
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ladder::Rung;

    fn probe(width: u32, height: u32, rotation: u32, audio: bool) -> Probe {
        let rotate = if rotation == 0 {
            String::new()
        } else {
            format!(r#","tags":{{"rotate":"{rotation}"}}"#)
        };
        let a = if audio {
            r#",{"codec_name":"aac","codec_type":"audio","channels":2,"sample_rate":"48000"}"#
        } else {
            ""
        };
        let json = format!(
            r#"{{"streams":[{{"codec_name":"h264","codec_type":"video","width":{width},"height":{height},
            "pix_fmt":"yuv420p","avg_frame_rate":"30/1"{rotate}}}{a}],
            "format":{{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"6.0"}}}}"#
        );
        super::super::probe::parse(json.as_bytes()).unwrap()
    }

    fn ladder() -> LadderConfig {
        LadderConfig {
            rungs: vec![Rung::new(360, 800), Rung::new(240, 400)],
            ..LadderConfig::default()
        }
    }

    fn arg_after<'a>(args: &'a [String], key: &str) -> Option<&'a str> {
        let i = args.iter().position(|a| a == key)?;
        args.get(i + 1).map(String::as_str)
    }

    #[test]
    fn capped_crf_and_keyframes_on_segment_boundaries_in_every_rung() {
        let p = VodPlan::new(&probe(640, 360, 0, true), &ladder(), &VodEncode::default()).unwrap();
        assert_eq!(p.rendition_names(), ["360p", "240p", "audio"]);
        let args = p.ffmpeg_args(Path::new("in.mp4"), Path::new("out.ts"));
        let all = args.join(" ");
        assert!(
            all.contains("-filter_complex [0:v:0]split=2[s0][s1];[s0]scale=640:360:flags=bicubic,setsar=1,format=yuv420p[v0];[s1]scale=426:240:flags=bicubic,setsar=1,format=yuv420p[v1]"),
            "{all}"
        );
        for (v, max, buf) in [("v:0", "800k", "1600k"), ("v:1", "400k", "800k")] {
            assert_eq!(arg_after(&args, &format!("-c:{v}")), Some("libx264"));
            assert_eq!(arg_after(&args, &format!("-preset:{v}")), Some("medium"));
            assert_eq!(arg_after(&args, &format!("-crf:{v}")), Some("23"));
            assert_eq!(arg_after(&args, &format!("-maxrate:{v}")), Some(max));
            assert_eq!(arg_after(&args, &format!("-bufsize:{v}")), Some(buf));
            assert_eq!(
                arg_after(&args, &format!("-force_key_frames:{v}")),
                Some("expr:gte(t,n_forced*4)")
            );
            assert_eq!(arg_after(&args, &format!("-sc_threshold:{v}")), Some("0"));
            assert_eq!(arg_after(&args, &format!("-flags:{v}")), Some("+cgop"));
        }
        assert!(all.contains("-map 0:a:0 -c:a:0 aac -ac:a:0 2 -ar:a:0 48000 -b:a:0 128k"));
        assert!(
            all.starts_with(
                "-hide_banner -nostdin -nostats -loglevel error -progress pipe:1 -y \
                 -protocol_whitelist file -f mov -i in.mp4"
            ),
            "{all}"
        );
        // Cut at the probed duration (+1 s): the container's claim bounds the work.
        assert!(all.ends_with("-f mpegts -t 7.000 out.ts"), "{all}");
        let c = p.packager_config(PackagerConfig::default());
        assert_eq!(c.segmenter.segment_target_ms, 4000);
        assert_eq!(
            c.max_video_tracks,
            brook_packager::frontend::ts::MAX_VIDEO_STREAMS
        );
    }

    #[test]
    fn a_portrait_phone_video_stays_portrait_and_silence_gets_no_audio() {
        let p = VodPlan::new(
            &probe(640, 360, 90, false),
            &ladder(),
            &VodEncode::default(),
        )
        .unwrap();
        let sizes: Vec<(u32, u32)> = p.plan.rungs.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(sizes, [(360, 640), (240, 426)]);
        assert_eq!(p.rendition_names(), ["360p", "240p"]);
        let all = p.ffmpeg_args(Path::new("a"), Path::new("b")).join(" ");
        assert!(!all.contains("0:a"), "{all}");
    }

    #[test]
    fn source_copy_only_for_a_copyable_source() {
        let enc = VodEncode {
            source_copy: true,
            segment_ms: 2000,
            ..VodEncode::default()
        };
        let p = VodPlan::new(&probe(640, 360, 0, true), &ladder(), &enc).unwrap();
        assert_eq!(p.rendition_names(), ["source", "240p", "audio"]);
        let args = p.ffmpeg_args(Path::new("a"), Path::new("b"));
        let all = args.join(" ");
        assert!(all.contains("-map 0:v:0 -c:v:0 copy"), "{all}");
        assert_eq!(arg_after(&args, "-force_key_frames:v:1"), Some("source"));
        // Rotated: a copy would lose the rotation in MPEG-TS.
        let p = VodPlan::new(&probe(640, 360, 90, true), &ladder(), &enc).unwrap();
        assert_eq!(p.rendition_names(), ["360p", "240p", "audio"]);
        let args = p.ffmpeg_args(Path::new("a"), Path::new("b"));
        assert_eq!(
            arg_after(&args, "-force_key_frames:v:0"),
            Some("expr:gte(t,n_forced*2)")
        );
    }

    #[test]
    fn hdr_is_tone_mapped_once_before_the_split() {
        let mut pr = probe(640, 360, 0, false);
        pr.video.hdr = true;
        let p = VodPlan::new(&pr, &ladder(), &VodEncode::default()).unwrap();
        let args = p.ffmpeg_args(Path::new("a"), Path::new("b"));
        let all = args.join(" ");
        assert!(
            all.contains(&format!("[0:v:0]{TONEMAP},split=2[s0][s1]")),
            "{all}"
        );
        assert_eq!(arg_after(&args, "-color_trc:v:1"), Some("bt709"));
        let sdr = VodPlan::new(&probe(640, 360, 0, false), &ladder(), &VodEncode::default())
            .unwrap()
            .ffmpeg_args(Path::new("a"), Path::new("b"))
            .join(" ");
        assert!(
            !sdr.contains("zscale") && !sdr.contains("color_trc"),
            "{sdr}"
        );
    }

    #[test]
    fn a_faster_source_is_reduced_once() {
        let mut pr = probe(640, 360, 0, false);
        pr.video.fps = Some(60.0);
        let p = VodPlan::new(&pr, &ladder(), &VodEncode::default()).unwrap();
        let all = p.ffmpeg_args(Path::new("a"), Path::new("b")).join(" ");
        assert!(all.contains("[0:v:0]fps=30,split=2"), "{all}");
    }

    #[test]
    fn progress_from_ffmpeg_blocks() {
        let mut p = Progress::new(8.0);
        let out: Vec<f64> = [
            "frame=0",
            "out_time_us=N/A",
            "out_time_ms=N/A",
            "progress=continue",
            "out_time_us=2000000",
            "out_time_ms=2000000",
            "out_time=00:00:02.000000",
            "progress=continue",
            "out_time_us=1000000",
            "progress=continue",
            "out_time_us=9000000",
            "progress=continue",
            "progress=end",
        ]
        .iter()
        .filter_map(|l| p.line(l))
        .collect();
        assert_eq!(out, [0.0, 25.0, 25.0, 99.9, 100.0]);
        // Only `out_time_ms` (microseconds despite its name).
        let mut p = Progress::new(4.0);
        p.line("out_time_ms=1000000");
        assert_eq!(p.line("progress=continue"), Some(25.0));
        assert_eq!(Progress::new(0.0).line("progress=continue"), Some(0.0));
        assert_eq!(Progress::new(1.0).line("garbage"), None);
    }

    #[test]
    fn settings_are_validated() {
        VodEncode::default().validate("vod.encode").unwrap();
        let bad = VodEncode {
            crf: 60,
            ..VodEncode::default()
        };
        assert!(bad.validate("vod.encode").unwrap_err().contains("crf"));
        let enc: VodEncode = toml::from_str("preset = \"ultrafast\"\nsegment_ms = 2000").unwrap();
        assert_eq!(
            (enc.preset.as_str(), enc.segment_ms, enc.crf),
            ("ultrafast", 2000, 23)
        );
        assert!(toml::from_str::<VodEncode>("nope = 1").is_err());
        assert_eq!(trim_float(4.0), "4");
        assert_eq!(trim_float(2.5), "2.5");
    }
}
