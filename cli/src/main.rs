//! `brook`: Brook's packager as a command, for files.
//!
//! ```text
//! brook package INPUT.ts OUTDIR [--segment-ms 2000] [--all-video]
//! brook inject-scte35 [--at-ms 6000] [--duration-ms 10000] [--preroll-ms 2000] < in.ts > out.ts
//! ```
//!
//! Reads an MPEG-TS file (H.264/H.265 + AAC, as an encoder or ffmpeg writes
//! it) and writes a finished presentation into OUTDIR: CMAF init segments and
//! segments per rendition, a VOD media playlist per rendition, an I-frame
//! playlist per video rendition (`video-iframes.m3u8`, for trick play), the
//! multivariant playlist `index.m3u8` naming them all, and the static DASH manifest
//! `manifest.mpd` over the same segments. The same packager the origin runs
//! live; this is its file adapter (read, push, write what comes out).

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use brook_packager::ts::inject::{Injection, SpliceInjector};
use brook_packager::{Event, ObjectKind, Packager, PackagerConfig, UnixMillis, MPD_NAME};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "brook", version, about = "Brook's packager for files")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Package an MPEG-TS file into CMAF segments with HLS and DASH playlists.
    Package {
        /// The MPEG-TS file.
        input: PathBuf,
        /// The directory to write into (created; must be empty if it exists).
        outdir: PathBuf,
        /// Segment target, ms; segments are cut on the first keyframe after it.
        #[arg(long, default_value_t = 2000)]
        segment_ms: u32,
        /// Every video stream of the file is a rendition (a ladder an encoder
        /// made in one file: `video`, `video2`, ...); by default the first only.
        #[arg(long)]
        all_video: bool,
    },
    /// Copy MPEG-TS from stdin to stdout with an SCTE-35 ad break in it, as a
    /// broadcaster's splicer would put one (ffmpeg cannot): a `splice_insert`
    /// on a new PID of stream type 0x86, for tests and demos. Streams: use it
    /// in a pipe between a live encoder and its transport.
    InjectScte35 {
        /// Splice time after the first video frame, ms.
        #[arg(long, default_value_t = 6000)]
        at_ms: u64,
        /// Break duration, ms (the break returns by itself).
        #[arg(long, default_value_t = 10_000)]
        duration_ms: u64,
        /// The cue is sent once a second from this long before the splice, ms.
        #[arg(long, default_value_t = 2000)]
        preroll_ms: u64,
        #[arg(long, default_value_t = 1)]
        event_id: u32,
        /// PID of the SCTE-35 stream.
        #[arg(long, default_value_t = 0x1F0)]
        pid: u16,
    },
}

fn main() -> Result<()> {
    match Args::parse().command {
        Cmd::Package {
            input,
            outdir,
            segment_ms,
            all_video,
        } => package(&input, &outdir, segment_ms, all_video),
        Cmd::InjectScte35 {
            at_ms,
            duration_ms,
            preroll_ms,
            event_id,
            pid,
        } => inject_scte35(Injection {
            pid,
            event_id,
            at_ms,
            duration_ms,
            preroll_ms,
        }),
    }
}

fn inject_scte35(cfg: Injection) -> Result<()> {
    if !(0x20..0x1FFF).contains(&cfg.pid) {
        bail!("--pid must be within 0x20..0x1FFF");
    }
    let mut inj = SpliceInjector::new(cfg);
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading stdin"),
        };
        output
            .write_all(&inj.push(&buf[..n]))
            .context("writing stdout")?;
        // Live input: pass each read on at once.
        output.flush().context("writing stdout")?;
    }
    output.write_all(&inj.finish()).context("writing stdout")?;
    output.flush().context("writing stdout")?;
    eprintln!("brook inject-scte35: {} cue(s) sent", inj.sent);
    Ok(())
}

/// How much of the file is read at a time.
const READ_BYTES: usize = 1 << 20;

fn package(input: &Path, outdir: &Path, segment_ms: u32, all_video: bool) -> Result<()> {
    if !(100..=60_000).contains(&segment_ms) {
        bail!("--segment-ms must be within 100..=60000");
    }
    let mut file = File::open(input).with_context(|| format!("opening {}", input.display()))?;
    prepare(outdir)?;
    let mut config = PackagerConfig::default();
    config.segmenter.segment_target_ms = segment_ms;
    config.segmenter.part_target_ms = config.segmenter.part_target_ms.min(segment_ms);
    // Every segment stays listed: the whole file is one presentation.
    config.window_segments = usize::MAX;
    if all_video {
        config.max_video_tracks = brook_packager::frontend::ts::MAX_VIDEO_STREAMS;
    }
    let mut packager = Packager::new(config);
    // The dates in the playlists: when packaging started.
    let now = UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    );
    let mut out = Writer {
        dir: outdir.to_path_buf(),
        objects: 0,
        bytes: 0,
    };
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", input.display()))?;
        if n == 0 {
            break;
        }
        let pushed = packager.push_ts(&buf[..n], now);
        out.drain(&mut packager)?;
        pushed.with_context(|| format!("{} is not usable MPEG-TS", input.display()))?;
    }
    packager.finish();
    out.drain(&mut packager)?;
    let playlists: Vec<(String, String)> = packager
        .media_playlists()
        .map(|(name, pl)| (name, pl.as_vod().to_string()))
        .collect();
    if playlists.is_empty() {
        bail!("{}: no H.264, H.265 or AAC media found", input.display());
    }
    for (name, text) in &playlists {
        out.write(name, text.as_bytes())?;
    }
    for (name, pl) in packager.i_frame_playlists() {
        out.write(&name, pl.to_string().as_bytes())?;
    }
    if let Some(mv) = packager.vod_multivariant() {
        out.write("index.m3u8", mv.to_string().as_bytes())?;
    }
    if let Some(mpd) = packager.dash_manifest(now, None) {
        out.write(MPD_NAME, mpd.as_bytes())?;
    }
    let stats = packager.stats();
    eprintln!(
        "brook: {} segments, {} objects ({} bytes) in {}",
        stats.segments,
        out.objects,
        out.bytes,
        outdir.display()
    );
    Ok(())
}

/// Creates `dir`, or accepts it when it exists and is empty (nothing is
/// overwritten).
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut entries =
            fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!("{} exists and is not empty", dir.display());
        }
        return Ok(());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

struct Writer {
    dir: PathBuf,
    objects: u64,
    bytes: u64,
}

impl Writer {
    /// Writes the init segments and segments the packager made (parts are the
    /// live stream's; a file's presentation lists whole segments).
    fn drain(&mut self, p: &mut Packager) -> Result<()> {
        while let Some(event) = p.poll() {
            if let Event::Object { name, kind, data } = event {
                if matches!(kind, ObjectKind::Init | ObjectKind::Segment) {
                    self.write(&name, &data)?;
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        let mut f = BufWriter::new(
            File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        f.write_all(data)
            .and_then(|()| f.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        self.objects += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }
}
