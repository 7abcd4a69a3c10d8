//! Packages the transcoder's MPEG-TS (every rung a video stream, one AAC
//! stream) with Brook's packager into a finished presentation in a local
//! directory: CMAF init segments and segments per rendition, VOD media
//! playlists, the multivariant playlist `index.m3u8` and the static DASH MPD
//! `manifest.mpd`, all over the same segments. The same packager and object
//! names as live; this is its file adapter, like `brook package`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use brook_packager::cmaf::cenc::Encryption;
use brook_packager::thumbnail::ThumbnailTrack;
use brook_packager::{Event, ObjectKind, Packager, PackagerConfig, UnixMillis, MPD_NAME};

/// The presentation written: every file name, in the order they should be
/// stored (media first, manifests last).
#[derive(Debug, Clone, Default)]
pub struct Packaged {
    pub media: Vec<String>,
    pub manifests: Vec<String>,
    /// Rendition names (video rungs, then audio).
    pub renditions: Vec<String>,
    pub segments: u64,
    pub bytes: u64,
}

/// What the packager gets: the ladder's rendition names in the order of the
/// TS's video streams, then the audio's.
#[derive(Debug, Clone)]
pub struct PackageInput<'a> {
    pub ts: &'a Path,
    pub outdir: &'a Path,
    pub rendition_names: Vec<String>,
    pub segment_ms: u32,
    /// The trick-play sprites already made, described in the MPD (image
    /// adaptation set) and the multivariant playlist (image playlist).
    pub thumbnails: Option<ThumbnailTrack>,
    /// Common Encryption of every rendition (the asset's key).
    pub encryption: Option<Encryption>,
}

const READ_BYTES: usize = 1 << 20;

pub fn package(input: &PackageInput<'_>) -> Result<Packaged> {
    let mut file =
        File::open(input.ts).with_context(|| format!("opening {}", input.ts.display()))?;
    std::fs::create_dir_all(input.outdir)
        .with_context(|| format!("creating {}", input.outdir.display()))?;
    let mut config = PackagerConfig::default();
    config.segmenter.segment_target_ms = input.segment_ms;
    config.segmenter.part_target_ms = config.segmenter.part_target_ms.min(input.segment_ms);
    config.window_segments = usize::MAX;
    config.max_video_tracks = brook_packager::frontend::ts::MAX_VIDEO_STREAMS;
    config.encryption = input.encryption.clone();
    let mut p = Packager::new(config);
    if !input.rendition_names.is_empty() {
        p.set_rendition_names(input.rendition_names.clone());
    }
    p.set_thumbnails(input.thumbnails.clone());
    // The playlists' dates: a file has no wall clock; a fixed epoch keeps the
    // output deterministic.
    let now = UnixMillis(0);
    let mut out = Writer {
        dir: input.outdir.to_path_buf(),
        done: Packaged::default(),
    };
    let mut buf = vec![0u8; READ_BYTES];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", input.ts.display()))?;
        if n == 0 {
            break;
        }
        let pushed = p.push_ts(&buf[..n], now);
        out.drain(&mut p)?;
        pushed.context("the transcoder's output is not usable MPEG-TS")?;
    }
    p.finish();
    out.drain(&mut p)?;
    let playlists: Vec<(String, String)> = p
        .media_playlists()
        .map(|(name, pl)| (name, pl.as_vod().to_string()))
        .collect();
    if playlists.is_empty() {
        bail!("the transcoder's output has no media");
    }
    for (name, text) in &playlists {
        out.write_manifest(name, text.as_bytes())?;
    }
    for (name, pl) in p.i_frame_playlists() {
        out.write_manifest(&name, pl.to_string().as_bytes())?;
    }
    if let Some((name, pl)) = p.thumbnail_playlist() {
        out.write_manifest(&name, pl.to_string().as_bytes())?;
    }
    out.done.renditions = input.rendition_names.clone();
    let Some(mv) = p.vod_multivariant() else {
        bail!("the transcoder's output has no video");
    };
    // The MPD before the multivariant playlist: the multivariant playlist
    // is the last object stored, the one players start from.
    if let Some(mpd) = p.dash_manifest(now, None) {
        out.write_manifest(MPD_NAME, mpd.as_bytes())?;
    }
    out.write_manifest("index.m3u8", mv.to_string().as_bytes())?;
    out.done.segments = p.stats().segments;
    Ok(out.done)
}

struct Writer {
    dir: PathBuf,
    done: Packaged,
}

impl Writer {
    fn drain(&mut self, p: &mut Packager) -> Result<()> {
        while let Some(event) = p.poll() {
            if let Event::Object { name, kind, data } = event {
                if matches!(kind, ObjectKind::Init | ObjectKind::Segment) {
                    self.write(&name, &data)?;
                    self.done.media.push(name);
                }
            }
        }
        Ok(())
    }

    fn write_manifest(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.write(name, data)?;
        self.done.manifests.push(name.to_owned());
        Ok(())
    }

    fn write(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        self.done.bytes += data.len() as u64;
        Ok(())
    }
}
