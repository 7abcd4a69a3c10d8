//! The live ladder's cost on this machine, measured through Brook's own
//! transcoder adapter (`pipeline::transcoder`: the fMP4 input, the ffmpeg
//! arguments, the MPEG-TS output), the way a live stream drives it.
//!
//! ```text
//! cargo run --release -p brook-origin --example ladder -- SOURCE.ts [SECONDS] [RUNG ...]
//! ```
//!
//! `SOURCE.ts`: an MPEG-TS file (`cargo xtask bench ladder` makes a 1080p30
//! one). RUNGs are `HEIGHT:KBPS` (default: the default ladder, 1080p 5000,
//! 720p 2500, 480p 1000, 360p 600, all libx264 `veryfast`). For the ladder,
//! and then each rung alone, two runs:
//!
//! - flat out: every frame as fast as ffmpeg takes it, SECONDS of media
//!   (default 30): speed (media seconds per wall second), CPU cores used
//!   (the child's user+system time over wall time), peak RSS (`VmHWM`);
//! - live: frames paced at their timestamps, as a publisher sends them:
//!   the delay each video frame takes through the transcoder (median, p95),
//!   which is what the ladder adds to live latency (the packager downstream
//!   is the same with or without it).
//!
//! One line per configuration, and a JSON report on stdout's last line.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use brook_origin::pipeline::ladder::{self, LadderConfig, Plan, Rung};
use brook_origin::pipeline::transcoder::{Event, Settings, Transcoder};
use brook_packager::frontend::{FrontEndEvent, TsFrontEnd};
use brook_packager::media::{Frame, TrackInfo, TrackKind};

struct Source {
    tracks: Vec<TrackInfo>,
    frames: Vec<Frame>,
    video: usize,
    timescale: f64,
}

fn load(path: &str, seconds: f64) -> Source {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut front = TsFrontEnd::default();
    front.push(&bytes).expect("an MPEG-TS file");
    front.flush().expect("an MPEG-TS file");
    let (mut tracks, mut frames) = (Vec::new(), Vec::new());
    while let Some(ev) = front.poll() {
        match ev {
            FrontEndEvent::Tracks(t) => tracks = t,
            FrontEndEvent::Frame(f) => frames.push(f),
            FrontEndEvent::Discontinuity => break,
            FrontEndEvent::Cue(_) => {}
        }
    }
    let video = tracks
        .iter()
        .position(|t| t.kind() == TrackKind::Video)
        .expect("a video track");
    let timescale = f64::from(tracks[video].timescale);
    let start = frames
        .iter()
        .find(|f| f.track == video)
        .map_or(0, |f| f.dts);
    let secs = |f: &Frame| {
        (f.dts as f64 / f64::from(tracks[f.track].timescale)) - start as f64 / timescale
    };
    frames.retain(|f| secs(f) < seconds);
    Source {
        tracks,
        frames,
        video,
        timescale,
    }
}

/// CPU seconds (user + system) and peak RSS (kB) of a process, from /proc.
fn usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks / hz.max(1.0), hwm))
}

struct Run {
    wall: f64,
    media: f64,
    cpu: f64,
    rss_kb: u64,
    delays_ms: Vec<f64>,
}

/// One transcoder over the source: paced at the frames' timestamps or flat out.
fn run(source: &Source, plan: &Plan, paced: bool) -> Run {
    let settings = Settings {
        ffmpeg: "ffmpeg".into(),
        keyframe_interval_ms: 2000,
        threads: 0,
        queue_frames: source.frames.len() + 8,
        filter_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        vaapi_device: String::new(),
    };
    let (tx, rx) = mpsc::channel();
    let mut t = Transcoder::spawn(
        plan,
        source.tracks.clone(),
        &settings,
        "bench".into(),
        move |e| {
            let at = Instant::now();
            let _ = tx.send((at, e));
        },
    )
    .expect("ffmpeg starts");
    let pid = t.pid();
    let first =
        source.frames[0].dts as f64 / f64::from(source.tracks[source.frames[0].track].timescale);
    let started = Instant::now();
    let mut sent: Vec<(i64, Instant)> = Vec::new();
    // Output is read on its own thread; the packager's demuxer finds the times.
    let reader = std::thread::spawn(move || {
        let mut front = TsFrontEnd::with_max_video(16);
        let mut out: Vec<(i64, Instant)> = Vec::new();
        let mut usage_at_end = None;
        while let Ok((at, e)) = rx.recv_timeout(Duration::from_secs(120)) {
            match e {
                Event::Output(b) => {
                    let _ = front.push(&b);
                    while let Some(ev) = front.poll() {
                        if let FrontEndEvent::Frame(f) = ev {
                            if f.track == 0 {
                                out.push((f.pts, at));
                            }
                        }
                    }
                    usage_at_end = usage(pid).or(usage_at_end);
                }
                Event::Exited { .. } => break,
            }
        }
        (out, usage_at_end)
    });
    for f in &source.frames {
        if paced {
            let at = f.dts as f64 / f64::from(source.tracks[f.track].timescale) - first;
            let due = started + Duration::from_secs_f64(at.max(0.0));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        if f.track == source.video {
            sent.push((f.pts, Instant::now()));
        }
        t.push(f).expect("the queue holds the whole source");
    }
    t.end_input();
    let (out, usage_at_end) = reader.join().expect("reader");
    let wall = started.elapsed().as_secs_f64();
    drop(t);
    let (cpu, rss_kb) = usage_at_end.unwrap_or((0.0, 0));
    let mut delays_ms = Vec::new();
    let mut i = 0;
    for (pts, at) in &out {
        while i + 1 < sent.len() && sent[i + 1].0 <= *pts {
            i += 1;
        }
        if let Some((p, t_in)) = sent.get(i) {
            if p == pts {
                delays_ms.push(at.duration_since(*t_in).as_secs_f64() * 1000.0);
            }
        }
    }
    let media = source
        .frames
        .iter()
        .filter(|f| f.track == source.video)
        .map(|f| f.dts)
        .max()
        .unwrap_or(0) as f64
        / source.timescale
        - first;
    Run {
        wall,
        media,
        cpu,
        rss_kb,
        delays_ms,
    }
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .expect("usage: ladder SOURCE.ts [SECONDS] [HEIGHT:KBPS ...]");
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30.0);
    let rungs: Vec<Rung> = args
        .iter()
        .skip(2)
        .filter_map(|r| {
            let (h, k) = r.split_once(':')?;
            Some(Rung::new(h.parse().ok()?, k.parse().ok()?))
        })
        .collect();
    let config = LadderConfig {
        rungs: if rungs.is_empty() {
            LadderConfig::default().rungs
        } else {
            rungs
        },
        ..LadderConfig::default()
    };
    let source = load(path, seconds);
    let size = source.tracks[source.video].resolution().unwrap_or((0, 0));
    eprintln!(
        "source: {path}, {}x{}, {} frames ({seconds} s); {} CPUs",
        size.0,
        size.1,
        source.frames.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let full = ladder::plan(
        &config,
        &source.tracks,
        Some(30.0),
        None,
        &Default::default(),
    )
    .expect("a plan");
    let mut configs: Vec<(String, Plan)> = vec![(
        full.rungs
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        full.clone(),
    )];
    for r in &full.rungs {
        let mut alone = full.clone();
        alone.rungs = vec![r.clone()];
        configs.push((format!("{} alone", r.name), alone));
    }
    let mut report = Vec::new();
    for (name, plan) in &configs {
        let flat = run(&source, plan, false);
        let mut live = run(&source, plan, true);
        let speed = flat.media / flat.wall;
        let cores = flat.cpu / flat.wall;
        let median = percentile(&mut live.delays_ms, 0.5);
        let p95 = percentile(&mut live.delays_ms, 0.95);
        println!(
            "{name:<28} speed {speed:5.2}x real time, {cores:4.2} cores, RSS {:4} MiB; live: {cores_live:4.2} cores, \
             delay through the transcoder median {median:4.0} ms, p95 {p95:4.0} ms ({} frames)",
            flat.rss_kb / 1024,
            live.delays_ms.len(),
            cores_live = live.cpu / live.wall,
        );
        report.push(format!(
            "{{\"config\":\"{name}\",\"speed\":{speed:.3},\"cores\":{cores:.3},\"rss_mib\":{},\
             \"live_cores\":{:.3},\"delay_median_ms\":{median:.1},\"delay_p95_ms\":{p95:.1}}}",
            flat.rss_kb / 1024,
            live.cpu / live.wall
        ));
    }
    println!("[{}]", report.join(","));
}
