//! The transcoder adapter: one ffmpeg child process per live stream, fed
//! through its stdin and read through its stdout.
//!
//! ```text
//! source frames ─▶ InputMuxer (fMP4: init, then a moof+mdat per frame) ─▶ bounded
//!   queue ─▶ writer thread ─▶ ffmpeg stdin
//! ffmpeg: decode once, split, scale per rung, encode every rung (keyframes forced
//!   at the same instants), AAC ─▶ one MPEG-TS on stdout ─▶ reader thread ─▶
//!   callback (the stream's packager demuxes it: a rendition per rung)
//! ffmpeg stderr ─▶ log thread (warnings into the origin's log, the last lines
//!   kept for the crash report)
//! ```
//!
//! Why this plumbing (measured, docs/ladder.md): fragmented MP4 in carries the
//! decoder configuration in its init segment and every frame whole, so ffmpeg
//! needs no probing and delivers each frame as soon as its fragment is read;
//! one MPEG-TS out carries every rung with one clock (`-copyts`), so the
//! packager sees the rungs as tracks of one stream and cuts them on the same
//! boundaries by construction.
//!
//! Crash isolation: ffmpeg is its own process. It dies with the origin even on
//! SIGKILL: it is spawned from one long-lived thread with
//! `PR_SET_PDEATHSIG = SIGKILL` (the signal follows the thread that forked, so
//! a short-lived ingest thread must not be the one). Dropping a [`Transcoder`]
//! kills and reaps its child.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use brook_packager::cmaf;
use brook_packager::media::{Frame, Sample, TrackInfo, TrackKind};
use bytes::Bytes;
use tracing::{debug, warn};

use super::ladder::{Encoder, Plan};

/// What the child's stdout and exit become.
#[derive(Debug)]
pub enum Event {
    /// MPEG-TS bytes, as read.
    Output(Bytes),
    /// The child exited (or was killed); its last stderr lines.
    Exited {
        status: Option<ExitStatus>,
        stderr: Vec<String>,
    },
}

/// The input queue is full: ffmpeg is not reading as fast as media arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the transcoder's input queue is full")]
pub struct Full;

/// Settings that do not come from the plan.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ffmpeg: PathBuf,
    /// Keyframe spacing (the packager's segment target), ms.
    pub keyframe_interval_ms: u32,
    /// Encoder threads per rung, 0 = the encoder decides.
    pub threads: u32,
    /// Frames the input queue holds before [`Transcoder::push`] says [`Full`].
    pub queue_frames: usize,
    /// Threads the filter graph (scaling) may use.
    pub filter_threads: usize,
    /// The DRM render node VAAPI rungs encode on.
    pub vaapi_device: String,
}

/// The ffmpeg arguments for `plan`, reading fMP4 on stdin and writing MPEG-TS
/// on stdout.
pub fn ffmpeg_args(plan: &Plan, settings: &Settings) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "warning",
        // Little probing: the init segment says everything (what is read to
        // probe is kept and transcoded, not dropped: no `nobuffer`). Decode
        // with slice threads only (frame threads hold back a frame each).
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
        "-thread_type",
        "slice",
        "-f",
        "mp4",
        "-i",
        "pipe:0",
        // The output keeps the input's timestamps: the origin measures the
        // transcoder's delay by them, and the rungs share one clock.
        "-copyts",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if plan.rungs.iter().any(|r| r.encoder == Encoder::H264Vaapi) {
        // VAAPI encodes frames in the GPU's memory: the device, and an upload
        // at the end of those rungs' filter chains.
        a.extend(["-vaapi_device".to_string(), settings.vaapi_device.clone()]);
    }
    let encoded = plan.encoded_rungs();
    if !encoded.is_empty() {
        // Decode once; reduce the frame rate once when the source is faster
        // than the rungs allow (`Plan::reduced_fps`); split; scale each rung.
        let mut graph = String::from("[0:v:0]");
        if let Some(cap) = plan.reduced_fps() {
            graph.push_str(&format!("fps={cap},"));
        }
        graph.push_str(&format!("split={}", encoded.len()));
        for (i, _) in &encoded {
            graph.push_str(&format!("[s{i}]"));
        }
        for (i, r) in &encoded {
            let format = match r.encoder {
                Encoder::H264Vaapi => "format=nv12,hwupload",
                _ => "format=yuv420p",
            };
            graph.push_str(&format!(
                ";[s{i}]scale={}:{}:flags=bicubic,{format}[v{i}]",
                r.width, r.height
            ));
        }
        a.extend(["-filter_complex".to_string(), graph]);
        // Scale the rungs on slice threads: ffmpeg 5.1 runs the filter graph
        // and every encoder on one thread otherwise (measured, docs/ladder.md:
        // the 1080p30 ladder 0.59x -> 0.83x real time on 2 cores, no added
        // delay, unlike frame-threaded decoding).
        a.extend([
            "-filter_complex_threads".to_string(),
            settings.filter_threads.max(1).to_string(),
        ]);
    }
    // Keyframes at the segment boundaries on every encoded rung: forced at the
    // same instants (the first frame, then every interval), or at the source's
    // keyframes when the source is a rung of its own.
    let interval = f64::from(settings.keyframe_interval_ms.max(100)) / 1000.0;
    let force = if plan.rungs.iter().any(|r| r.copy) {
        "source".to_string()
    } else {
        format!("expr:if(isnan(prev_forced_t),1,gte(t-prev_forced_t,{interval:.3}))")
    };
    // A GOP long enough that the encoder never inserts keyframes of its own.
    let gop = ((interval * 60.0).ceil() as u32 * 2).max(2).to_string();
    for (out, r) in plan.rungs.iter().enumerate() {
        let v = format!(":v:{out}");
        if r.copy {
            a.extend(["-map", "0:v:0"].map(String::from));
            a.extend([format!("-c{v}"), "copy".into()]);
            continue;
        }
        a.extend(["-map".to_string(), format!("[v{out}]")]);
        a.extend([format!("-c{v}"), r.encoder.ffmpeg_name().to_string()]);
        let rate = format!("{}k", r.bitrate_kbps);
        a.extend([format!("-b{v}"), rate.clone()]);
        a.extend([format!("-maxrate{v}"), rate.clone()]);
        // One second of VBV buffer: the bit rate holds over any second.
        a.extend([format!("-bufsize{v}"), rate]);
        a.extend([format!("-g{v}"), gop.clone()]);
        a.extend([format!("-force_key_frames{v}"), force.clone()]);
        a.extend([format!("-bf{v}"), "0".into()]);
        // Timestamps as they came in (not rounded to a 1/fps grid): the rungs
        // and the source stay on one clock, variable frame rates included.
        a.extend([format!("-enc_time_base{v}"), "-1".into()]);
        if !r.preset.is_empty() {
            a.extend([format!("-preset{v}"), r.preset.clone()]);
        }
        match r.encoder {
            Encoder::Libx264 => {
                // zerolatency: no lookahead, no B-frames, no mbtree, sliced
                // threads: a frame out for every frame in.
                a.extend([format!("-tune{v}"), "zerolatency".into()]);
                a.extend([format!("-sc_threshold{v}"), "0".into()]);
                a.extend([format!("-keyint_min{v}"), gop.clone()]);
                a.extend([format!("-profile{v}"), "high".into()]);
            }
            Encoder::H264Nvenc => {
                a.extend([format!("-tune{v}"), "ll".into()]);
                a.extend([format!("-zerolatency{v}"), "1".into()]);
                a.extend([format!("-rc{v}"), "cbr".into()]);
                a.extend([format!("-profile{v}"), "high".into()]);
            }
            Encoder::H264Qsv => {
                a.extend([format!("-low_power{v}"), "1".into()]);
                a.extend([format!("-profile{v}"), "high".into()]);
            }
            Encoder::H264Vaapi => {
                a.extend([format!("-profile{v}"), "high".into()]);
            }
        }
        if settings.threads > 0 {
            a.extend([format!("-threads{v}"), settings.threads.to_string()]);
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
    if let Some(i) = plan.keep_opus {
        // The source's Opus as it is, beside the AAC (MPEG-TS carries it with
        // its `Opus` registration; the packager makes it a second audio group).
        a.extend(["-map".to_string(), format!("0:a:{i}")]);
        a.extend(["-c:a:1", "copy"].map(String::from));
    } else if let Some(kbps) = plan.make_opus {
        // Opus from the source's AAC, beside it, for WebRTC viewers (browsers
        // take no AAC over RTP). 20 ms frames, the low-delay mode (no
        // lookahead beyond the codec's own 2.5 ms), with the same -copyts
        // clock as the video, so the viewer's A/V sync holds.
        a.extend(
            [
                "-map",
                "0:a:0",
                "-c:a:1",
                "libopus",
                "-ac:a:1",
                "2",
                "-ar:a:1",
                "48000",
                "-application:a:1",
                "lowdelay",
                "-frame_duration:a:1",
                "20",
            ]
            .map(String::from),
        );
        a.extend(["-b:a:1".to_string(), format!("{kbps}k")]);
    }
    a.extend(
        [
            // Frames keep their timestamps (no duplicates, no drops).
            "-fps_mode",
            "passthrough",
            "-f",
            "mpegts",
            // No mux delay, each PES as soon as its frame is encoded, with its
            // length (so the demuxer need not wait for the next one), flushed.
            "-muxdelay",
            "0",
            "-muxpreload",
            "0",
            "-pes_payload_size",
            "0",
            "-omit_video_pes_length",
            "0",
            "-flush_packets",
            "1",
            "pipe:1",
        ]
        .map(String::from),
    );
    a
}

/// Source tracks and frames as the fragmented MP4 ffmpeg reads: the init
/// segment once, then one `moof`+`mdat` per frame. Sans-IO.
#[derive(Debug)]
pub struct InputMuxer {
    tracks: Vec<TrackInfo>,
    sequence: u32,
    /// Per track: the last frame's DTS and duration (a video frame's duration
    /// is only known at the next one; the last one's is the estimate).
    last: Vec<Option<(i64, u32)>>,
}

impl InputMuxer {
    pub fn new(tracks: Vec<TrackInfo>) -> Self {
        let last = vec![None; tracks.len()];
        Self {
            tracks,
            sequence: 1,
            last,
        }
    }

    pub fn init(&self) -> Bytes {
        Bytes::from(cmaf::write_init(&self.tracks))
    }

    /// The fragment for one frame; `None` for a frame of an unknown track or
    /// with a negative DTS (MP4 decode times are unsigned).
    pub fn fragment(&mut self, frame: &Frame) -> Option<Bytes> {
        let info = self.tracks.get(frame.track)?;
        if frame.dts < 0 {
            return None;
        }
        let slot = self.last.get_mut(frame.track)?;
        let duration = match frame.duration {
            Some(d) => d,
            None => {
                let step = slot.map_or(0, |(dts, _)| frame.dts - dts);
                let fallback = slot.map_or(info.timescale / 30, |(_, d)| d);
                if step > 0 && step < i64::from(info.timescale) {
                    step as u32
                } else {
                    fallback.max(1)
                }
            }
        };
        *slot = Some((frame.dts, duration));
        let sample = Sample {
            dts: frame.dts,
            duration,
            cts_offset: (frame.pts - frame.dts).clamp(i64::from(i32::MIN), i64::from(i32::MAX))
                as i32,
            keyframe: frame.keyframe,
            data: frame.data.clone(),
        };
        let data = cmaf::write_fragment(self.sequence, std::slice::from_ref(info), &[vec![sample]]);
        self.sequence = self.sequence.wrapping_add(1);
        Some(Bytes::from(data))
    }

    pub fn has_video(&self) -> bool {
        self.tracks.iter().any(|t| t.kind() == TrackKind::Video)
    }
}

/// A running ffmpeg child.
pub struct Transcoder {
    pid: u32,
    input: Option<SyncSender<Bytes>>,
    muxer: InputMuxer,
    child: Arc<Mutex<Option<Child>>>,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("pid", &self.pid)
            .finish()
    }
}

/// Lines of ffmpeg's stderr kept for the report when it exits.
const STDERR_KEPT: usize = 20;
/// Most stderr lines logged per child (the rest only kept for the report).
const STDERR_LOGGED: usize = 50;

impl Transcoder {
    /// Starts ffmpeg for `plan`, to be fed frames of `tracks` (its first input
    /// must be a keyframe). `on_event` runs on the reader thread for every
    /// chunk of output, and once when the child has exited.
    pub fn spawn(
        plan: &Plan,
        tracks: Vec<TrackInfo>,
        settings: &Settings,
        label: String,
        on_event: impl FnMut(Event) + Send + 'static,
    ) -> std::io::Result<Self> {
        let mut cmd = Command::new(&settings.ffmpeg);
        cmd.args(ffmpeg_args(plan, settings))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawner().spawn(cmd)?;
        let pid = child.id();
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(i), Some(o), Some(e)) => (i, o, e),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::io::Error::other("ffmpeg's pipes were not set up"));
                }
            };
        let child = Arc::new(Mutex::new(Some(child)));
        let (tx, rx) = mpsc::sync_channel::<Bytes>(settings.queue_frames.max(2));
        let muxer = InputMuxer::new(tracks);
        // The init segment goes first; the queue is empty, so this cannot fail.
        let _ = tx.try_send(muxer.init());
        let kept = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_KEPT)));
        let threads = (|| {
            thread::Builder::new()
                .name(format!("ffmpeg-in-{pid}"))
                .spawn(move || write_input(rx, stdin))?;
            let (kept2, label2) = (kept.clone(), label.clone());
            thread::Builder::new()
                .name(format!("ffmpeg-log-{pid}"))
                .spawn(move || read_stderr(stderr, &kept2, &label2))?;
            let child2 = child.clone();
            thread::Builder::new()
                .name(format!("ffmpeg-out-{pid}"))
                .spawn(move || read_output(stdout, &child2, &kept, on_event))?;
            Ok::<(), std::io::Error>(())
        })();
        let t = Transcoder {
            pid,
            input: Some(tx),
            muxer,
            child,
        };
        threads?;
        debug!(pid, stream = %label, "transcoder started");
        Ok(t)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Queues one frame for ffmpeg; [`Full`] when ffmpeg has not kept up (the
    /// frame is not queued).
    pub fn push(&mut self, frame: &Frame) -> Result<(), Full> {
        let Some(data) = self.muxer.fragment(frame) else {
            return Ok(());
        };
        let Some(tx) = &self.input else {
            return Ok(());
        };
        match tx.try_send(data) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Full),
            // The writer is gone (ffmpeg exited): the reader reports that.
            Err(TrySendError::Disconnected(_)) => Ok(()),
        }
    }

    /// No more input: ffmpeg reads to the end, writes out what it holds and
    /// exits (its reader thread then reports [`Event::Exited`]).
    pub fn end_input(&mut self) {
        self.input = None;
    }

    /// Kills the child (its reader thread then reports [`Event::Exited`]).
    pub fn kill(&mut self) {
        self.input = None;
        if let Ok(mut c) = self.child.lock() {
            if let Some(c) = c.as_mut() {
                let _ = c.kill();
            }
        }
    }
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_input(rx: Receiver<Bytes>, mut stdin: std::process::ChildStdin) {
    while let Ok(data) = rx.recv() {
        if stdin.write_all(&data).is_err() {
            return; // ffmpeg went away: its reader reports the exit
        }
    }
    // The transcoder was dropped: EOF, and ffmpeg flushes and exits.
}

fn read_stderr(stderr: ChildStderr, kept: &Mutex<VecDeque<String>>, label: &str) {
    let mut logged = 0;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else {
            return;
        };
        if logged < STDERR_LOGGED {
            logged += 1;
            warn!(stream = %label, "ffmpeg: {line}");
        }
        if let Ok(mut k) = kept.lock() {
            if k.len() == STDERR_KEPT {
                k.pop_front();
            }
            k.push_back(line);
        }
    }
}

fn read_output(
    mut stdout: ChildStdout,
    child: &Mutex<Option<Child>>,
    kept: &Mutex<VecDeque<String>>,
    mut on_event: impl FnMut(Event),
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => on_event(Event::Output(Bytes::copy_from_slice(&buf[..n]))),
        }
    }
    // Take the child out before waiting, so `kill` never blocks on a lock
    // held across a wait (its caller holds the stream's lock). Its output is
    // closed: it is exiting; one that lingers is killed.
    let taken = child.lock().ok().and_then(|mut c| c.take());
    let status = taken.and_then(|mut c| {
        for _ in 0..100 {
            match c.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => thread::sleep(std::time::Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = c.kill();
        c.wait().ok()
    });
    // The stderr thread ends with the child; give it a moment to catch up.
    thread::sleep(std::time::Duration::from_millis(20));
    let stderr = kept
        .lock()
        .map(|k| k.iter().cloned().collect())
        .unwrap_or_default();
    on_event(Event::Exited { status, stderr });
}

/// Spawns `cmd` from the long-lived spawner thread with
/// `PR_SET_PDEATHSIG = SIGKILL`: the child dies with the origin. For the
/// other ffmpeg children (VOD transcodes, thumbnails).
pub(crate) fn spawn_child(cmd: Command) -> std::io::Result<Child> {
    spawner().spawn(cmd)
}

/// Spawns children from one thread that lives as long as the process, so a
/// parent-death signal set in the child fires only when the origin itself
/// goes away.
struct Spawner {
    tx: Mutex<mpsc::Sender<(Command, mpsc::Sender<std::io::Result<Child>>)>>,
}

fn spawner() -> &'static Spawner {
    static SPAWNER: OnceLock<Spawner> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<std::io::Result<Child>>)>();
        let spawned = thread::Builder::new()
            .name("brook-spawner".into())
            .spawn(move || {
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(spawn_with_parent_death(&mut cmd));
                }
            });
        if let Err(e) = spawned {
            warn!("starting the spawner thread: {e}");
        }
        Spawner { tx: Mutex::new(tx) }
    })
}

impl Spawner {
    fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (reply_tx, reply_rx) = mpsc::channel();
        self.tx
            .lock()
            .map_err(|_| std::io::Error::other("spawner poisoned"))?
            .send((cmd, reply_tx))
            .map_err(|_| std::io::Error::other("spawner thread gone"))?;
        reply_rx
            .recv()
            .map_err(|_| std::io::Error::other("spawner thread gone"))?
    }
}

#[cfg(target_os = "linux")]
fn spawn_with_parent_death(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec the closure calls only async-signal-safe
    // functions (prctl, getppid, _exit) and touches no locks or allocations.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The origin died between fork and prctl: do not outlive it.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

#[cfg(not(target_os = "linux"))]
fn spawn_with_parent_death(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::super::ladder::{self, LadderConfig};
    use super::*;

    fn settings() -> Settings {
        Settings {
            ffmpeg: PathBuf::from("ffmpeg"),
            keyframe_interval_ms: 2000,
            threads: 0,
            queue_frames: 60,
            filter_threads: 2,
            vaapi_device: "/dev/dri/renderD128".into(),
        }
    }

    fn plan(source_rung: bool) -> Plan {
        let config = LadderConfig {
            source_rung,
            rungs: vec![ladder::Rung::new(360, 600), ladder::Rung::new(240, 300)],
            ..LadderConfig::default()
        };
        let tracks = [
            crate::pipeline::tests::avc_track(640, 360),
            crate::pipeline::tests::aac_track(),
        ];
        ladder::plan(&config, &tracks, Some(30.0), None, &Default::default()).unwrap()
    }

    fn joined(args: &[String]) -> String {
        args.join(" ")
    }

    /// VAAPI (untested here: no GPU) gets its device and a hardware upload at
    /// the end of its rungs' chains; the other rungs stay in system memory.
    #[test]
    fn vaapi_rungs_upload_to_the_device() {
        let config = LadderConfig {
            rungs: vec![
                ladder::Rung {
                    encoder: ladder::Encoder::H264Vaapi,
                    ..ladder::Rung::new(360, 600)
                },
                ladder::Rung::new(240, 300),
            ],
            ..LadderConfig::default()
        };
        let tracks = [crate::pipeline::tests::avc_track(640, 360)];
        let p = ladder::plan(&config, &tracks, Some(30.0), None, &Default::default()).unwrap();
        let all = joined(&ffmpeg_args(&p, &settings()));
        assert!(all.contains("-vaapi_device /dev/dri/renderD128"), "{all}");
        assert!(
            all.contains("[s0]scale=640:360:flags=bicubic,format=nv12,hwupload[v0]"),
            "{all}"
        );
        assert!(
            all.contains("[s1]scale=426:240:flags=bicubic,format=yuv420p[v1]"),
            "{all}"
        );
        assert!(all.contains("-c:v:0 h264_vaapi"), "{all}");
    }

    #[test]
    fn a_faster_source_is_reduced_once_before_the_split() {
        let config = LadderConfig {
            rungs: vec![ladder::Rung::new(360, 600)],
            ..LadderConfig::default()
        };
        let tracks = [crate::pipeline::tests::avc_track(640, 360)];
        let p = ladder::plan(&config, &tracks, Some(59.94), None, &Default::default()).unwrap();
        let all = joined(&ffmpeg_args(&p, &settings()));
        assert!(all.contains("[0:v:0]fps=30,split=1[s0]"), "{all}");
    }

    #[test]
    fn one_decode_every_rung_encoded_with_the_same_forced_keyframes() {
        let args = ffmpeg_args(&plan(false), &settings());
        let all = joined(&args);
        assert!(all.contains("[0:v:0]split=2[s0][s1];[s0]scale=640:360:flags=bicubic,format=yuv420p[v0];[s1]scale=426:240:flags=bicubic,format=yuv420p[v1]"), "{all}");
        for v in ["v:0", "v:1"] {
            let at = args
                .iter()
                .position(|a| *a == format!("-force_key_frames:{v}"))
                .unwrap();
            assert_eq!(
                args[at + 1],
                "expr:if(isnan(prev_forced_t),1,gte(t-prev_forced_t,2.000))"
            );
        }
        assert!(all.contains("-b:v:0 600k -maxrate:v:0 600k -bufsize:v:0 600k"));
        assert!(all.contains("-tune:v:1 zerolatency"));
        assert!(all.contains("-map 0:a:0 -c:a:0 aac -ac:a:0 2 -ar:a:0 48000 -b:a:0 128k"));
        assert!(!all.contains("-c:a:1"), "an AAC source is not kept twice");
        assert!(all.ends_with("-f mpegts -muxdelay 0 -muxpreload 0 -pes_payload_size 0 -omit_video_pes_length 0 -flush_packets 1 pipe:1"));
        assert!(
            !all.contains("fps="),
            "30 fps source, 30 fps cap: no filter"
        );
    }

    /// With WebRTC viewers possible, an AAC source also gets an Opus output
    /// (the second audio stream, not a rendition), on the same clock.
    #[test]
    fn opus_is_made_from_aac_for_webrtc() {
        let mut p = plan(false);
        p.make_opus = Some(96);
        let all = joined(&ffmpeg_args(&p, &settings()));
        assert!(all.contains("-map 0:a:0 -c:a:0 aac"), "{all}");
        assert!(
            all.contains("-map 0:a:0 -c:a:1 libopus -ac:a:1 2 -ar:a:1 48000 -application:a:1 lowdelay -frame_duration:a:1 20 -b:a:1 96k"),
            "{all}"
        );
        assert!(all.contains("-copyts"));
        assert!(
            !p.rendition_names().contains(&ladder::OPUS.to_string()),
            "not a rendition"
        );
        assert_eq!(
            p.webrtc_only_outputs(),
            [p.rungs.len() + 1],
            "after the rungs and the AAC"
        );
    }

    #[test]
    fn a_source_rung_is_copied_and_the_others_key_on_its_keyframes() {
        let config = LadderConfig {
            source_rung: true,
            rungs: vec![ladder::Rung::new(360, 600), ladder::Rung::new(240, 300)],
            ..LadderConfig::default()
        };
        let tracks = [crate::pipeline::tests::avc_track(640, 360)];
        let p = ladder::plan(&config, &tracks, Some(60.0), None, &Default::default()).unwrap();
        let all = joined(&ffmpeg_args(&p, &settings()));
        assert!(all.contains("-map 0:v:0 -c:v:0 copy"), "{all}");
        assert!(all.contains("-force_key_frames:v:1 source"), "{all}");
        assert!(
            all.contains("[0:v:0]split=1[s1]"),
            "no rate change beside the source: {all}"
        );
        assert!(!all.contains("-c:a"), "no audio in the source");
    }
}
