//! The VOD probe, transcode and thumbnails against the real ffprobe/ffmpeg,
//! on tiny sources made here with lavfi (at most 6 s of 640x360, ultrafast).
//! Test names start with `vod::` so `cargo test vod::` runs them.

mod vod {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use brook_origin::pipeline::ladder::{LadderConfig, Rung};
    use brook_origin::vod::probe::{self, ProbeConfig, ProbeError};
    use brook_origin::vod::thumbnails::{self, SpriteConfig};
    use brook_origin::vod::transcode::{self, FfmpegError, VodEncode, VodPlan};
    use brook_packager::{Event, Packager, PackagerConfig, UnixMillis};

    /// A scratch directory removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "brook-vodff-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ffmpeg(args: &[&str]) {
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// 6 s of 640x360 30 fps test pattern with a sine, H.264 + AAC in MP4.
    fn landscape(dir: &Scratch) -> PathBuf {
        let p = dir.path("landscape.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            p.to_str().unwrap(),
        ]);
        p
    }

    /// A phone held upright: stored 640x360, shown turned (rotate tag), no audio.
    fn portrait(dir: &Scratch) -> PathBuf {
        let stored = dir.path("stored.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            stored.to_str().unwrap(),
        ]);
        let p = dir.path("portrait.mp4");
        ffmpeg(&[
            "-i",
            stored.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            p.to_str().unwrap(),
        ]);
        p
    }

    fn ffprobe_json(path: &Path, extra: &[&str]) -> serde_json::Value {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-print_format", "json"])
            .args(extra)
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn sizes(path: &Path) -> Vec<(String, u64, u64)> {
        let j = ffprobe_json(path, &["-show_streams"]);
        j["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["codec_name"].as_str().unwrap().to_string(),
                    s["width"].as_u64().unwrap_or(0),
                    s["height"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }

    fn keyframe_times(path: &Path, video: usize) -> Vec<f64> {
        let j = ffprobe_json(
            path,
            &[
                "-select_streams",
                &format!("v:{video}"),
                "-skip_frame",
                "nokey",
                "-show_entries",
                "frame=pts_time",
            ],
        );
        j["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["pts_time"].as_str().unwrap().parse().unwrap())
            .collect()
    }

    /// Mean luma of a picture file, 0-255.
    fn mean_luma(path: &Path) -> f64 {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-vf", "format=gray", "-f", "rawvideo", "pipe:1"])
            .output()
            .unwrap();
        assert!(!out.stdout.is_empty());
        out.stdout.iter().map(|&b| f64::from(b)).sum::<f64>() / out.stdout.len() as f64
    }

    fn ladder() -> LadderConfig {
        LadderConfig {
            rungs: vec![
                Rung::new(360, 800),
                Rung::new(240, 400),
                Rung::new(144, 200),
            ],
            ..LadderConfig::default()
        }
    }

    fn fast(segment_ms: u32) -> VodEncode {
        VodEncode {
            preset: "ultrafast".into(),
            segment_ms,
            ..VodEncode::default()
        }
    }

    #[test]
    fn probe_reads_good_files_and_names_what_is_wrong_with_bad_ones() {
        let dir = Scratch::new("probe");
        let config = ProbeConfig::default();
        let src = landscape(&dir);
        let p = probe::run(&src, &config).unwrap();
        assert!(p.container.contains("mp4"), "{}", p.container);
        assert!((p.duration_secs - 6.0).abs() < 0.1, "{}", p.duration_secs);
        assert_eq!(
            (p.video.codec.as_str(), p.video.width, p.video.height),
            ("h264", 640, 360)
        );
        assert_eq!(p.video.fps, Some(30.0));
        assert_eq!(p.video.pix_fmt.as_deref(), Some("yuv420p"));
        assert!(!p.video.hdr);
        let audio = p.audio.as_ref().unwrap();
        assert_eq!(
            (audio.codec.as_str(), audio.sample_rate),
            ("aac", Some(44_100))
        );

        let p = probe::run(&portrait(&dir), &config).unwrap();
        assert_eq!((p.video.width, p.video.height), (640, 360));
        assert_eq!(p.video.rotation % 180, 90);
        assert_eq!(p.video.display_size(), (360, 640));
        assert!(p.audio.is_none());

        let text = dir.path("notes.mp4");
        std::fs::write(&text, "these are my holiday notes, not a video\n").unwrap();
        let e = probe::run(&text, &config).unwrap_err();
        assert!(matches!(e, ProbeError::NotMedia { .. }), "{e:?}");
        assert!(e.to_string().contains("Invalid data found"), "{e}");

        // ffmpeg writes the index (moov) last: the first half has none.
        let bytes = std::fs::read(&src).unwrap();
        let cut = dir.path("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = probe::run(&cut, &config).unwrap_err();
        assert!(matches!(e, ProbeError::Truncated { .. }), "{e:?}");
        // With the index first, the index promises what the file lacks.
        let faststart = dir.path("faststart.mp4");
        ffmpeg(&[
            "-i",
            src.to_str().unwrap(),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            faststart.to_str().unwrap(),
        ]);
        let bytes = std::fs::read(&faststart).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = probe::run(&cut, &config).unwrap_err();
        assert!(matches!(e, ProbeError::Truncated { .. }), "{e:?}");

        let empty = dir.path("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(probe::run(&empty, &config).unwrap_err(), ProbeError::Empty);

        let sound = dir.path("sound.m4a");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "1",
            sound.to_str().unwrap(),
        ]);
        assert_eq!(
            probe::run(&sound, &config).unwrap_err(),
            ProbeError::NoVideo { has_audio: true }
        );

        let short = ProbeConfig {
            max_duration_secs: 5.0,
            ..ProbeConfig::default()
        };
        assert!(matches!(
            probe::run(&src, &short).unwrap_err(),
            ProbeError::TooLong { .. }
        ));
        let missing = ProbeConfig {
            ffprobe: "/nonexistent/ffprobe".into(),
            ..ProbeConfig::default()
        };
        assert!(matches!(
            probe::run(&src, &missing).unwrap_err(),
            ProbeError::Internal(_)
        ));
    }

    #[test]
    fn the_ladder_has_every_rung_keyed_on_segment_boundaries_and_packages() {
        let dir = Scratch::new("ladder");
        let src = landscape(&dir);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        let plan = VodPlan::new(&probe, &ladder(), &fast(2000)).unwrap();
        assert_eq!(plan.rendition_names(), ["360p", "240p", "144p", "audio"]);
        let out = dir.path("ladder.ts");
        let mut progress = Vec::new();
        transcode::run(&plan, &src, &out, &AtomicBool::new(false), |p| {
            progress.push(p)
        })
        .unwrap();
        assert_eq!(progress.last(), Some(&100.0), "{progress:?}");
        assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");

        let s = sizes(&out);
        assert_eq!(
            s,
            [
                ("h264".to_string(), 640, 360),
                ("h264".to_string(), 426, 240),
                ("h264".to_string(), 256, 144),
                ("aac".to_string(), 0, 0),
            ]
        );
        let first = keyframe_times(&out, 0);
        assert_eq!(first.len(), 3, "keyframes at 0, 2, 4 s: {first:?}");
        for v in 0..3 {
            let keys = keyframe_times(&out, v);
            assert_eq!(keys.len(), first.len(), "rung {v}: {keys:?}");
            for (i, t) in keys.iter().enumerate() {
                let at = t - first[0];
                // Within a frame of each 2 s boundary (30 fps lands on it).
                assert!((at - 2.0 * i as f64).abs() < 0.034, "rung {v}: {keys:?}");
            }
        }

        // Brook's packager makes a rendition of each stream, by these names.
        let mut packager = Packager::new(plan.packager_config(PackagerConfig::default()));
        packager.set_rendition_names(plan.rendition_names());
        packager
            .push_ts(&std::fs::read(&out).unwrap(), UnixMillis(0))
            .unwrap();
        packager.finish();
        let mut segments = Vec::new();
        while let Some(ev) = packager.poll() {
            if let Event::Object { name, .. } = ev {
                segments.push(name);
            }
        }
        let mut playlists: Vec<String> = packager.media_playlists().map(|(n, _)| n).collect();
        playlists.sort();
        assert_eq!(
            playlists,
            ["144p.m3u8", "240p.m3u8", "360p.m3u8", "audio.m3u8"],
            "{segments:?}"
        );
    }

    #[test]
    fn a_portrait_phone_video_comes_out_portrait_without_audio() {
        let dir = Scratch::new("portrait");
        let src = portrait(&dir);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        let plan = VodPlan::new(&probe, &ladder(), &fast(4000)).unwrap();
        assert_eq!(plan.rendition_names(), ["360p", "240p", "144p"]);
        let out = dir.path("ladder.ts");
        transcode::run(&plan, &src, &out, &AtomicBool::new(false), |_| {}).unwrap();
        let s = sizes(&out);
        let dims: Vec<(u64, u64)> = s.iter().map(|(_, w, h)| (*w, *h)).collect();
        assert_eq!(dims, [(360, 640), (240, 426), (144, 256)]);
    }

    #[test]
    fn an_hdr_source_is_tone_mapped_to_sdr() {
        let dir = Scratch::new("hdr");
        let src = dir.path("pq.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-t",
            "2",
            "-vf",
            "format=yuv420p10le",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-color_trc",
            "smpte2084",
            "-color_primaries",
            "bt2020",
            "-colorspace",
            "bt2020nc",
            src.to_str().unwrap(),
        ]);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        assert!(probe.video.hdr && probe.video.bt2020, "{probe:?}");
        assert_eq!(probe.video.pix_fmt.as_deref(), Some("yuv420p10le"));
        let plan = VodPlan::new(&probe, &ladder(), &fast(2000)).unwrap();
        let out = dir.path("ladder.ts");
        transcode::run(&plan, &src, &out, &AtomicBool::new(false), |_| {}).unwrap();
        let j = ffprobe_json(&out, &["-show_streams"]);
        for s in j["streams"].as_array().unwrap() {
            assert_eq!(s["pix_fmt"], "yuv420p", "{s}");
            assert_eq!(s["color_transfer"], "bt709", "{s}");
            assert_eq!(s["color_primaries"], "bt709", "{s}");
        }
    }

    /// `source_copy`: the H.264 source is the top rung as it is; the encoded
    /// rungs key where it does.
    #[test]
    fn the_source_may_be_copied_as_the_top_rung() {
        let dir = Scratch::new("copy");
        let src = dir.path("gop2.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            src.to_str().unwrap(),
        ]);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        let encode = VodEncode {
            source_copy: true,
            ..fast(4000)
        };
        let plan = VodPlan::new(&probe, &ladder(), &encode).unwrap();
        assert_eq!(plan.rendition_names(), ["source", "240p", "144p"]);
        let out = dir.path("ladder.ts");
        transcode::run(&plan, &src, &out, &AtomicBool::new(false), |_| {}).unwrap();
        let dims: Vec<(u64, u64)> = sizes(&out).iter().map(|(_, w, h)| (*w, *h)).collect();
        assert_eq!(dims, [(640, 360), (426, 240), (256, 144)]);
        let source_keys = keyframe_times(&out, 0);
        assert_eq!(
            source_keys.len(),
            3,
            "the source's 2 s GOPs: {source_keys:?}"
        );
        for v in 1..3 {
            assert_eq!(keyframe_times(&out, v), source_keys, "rung {v}");
        }
    }

    #[test]
    fn a_failing_transcode_says_why_and_a_cancelled_one_stops() {
        let dir = Scratch::new("fail");
        let src = landscape(&dir);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        let plan = VodPlan::new(&probe, &ladder(), &fast(4000)).unwrap();
        // The upload changed under the job: ffmpeg's own reason comes back.
        let text = dir.path("gone.mp4");
        std::fs::write(&text, "not a video").unwrap();
        let e = transcode::run(
            &plan,
            &text,
            &dir.path("x.ts"),
            &AtomicBool::new(false),
            |_| {},
        )
        .unwrap_err();
        let FfmpegError::Failed { stderr, .. } = &e else {
            panic!("{e:?}");
        };
        assert!(
            stderr.iter().any(|l| l.contains("Invalid data found")),
            "{stderr:?}"
        );
        assert!(e.to_string().contains("Invalid data found"), "{e}");

        // Cancelled from another thread while encoding (a slow preset).
        let slow = VodPlan::new(
            &probe,
            &ladder(),
            &VodEncode {
                preset: "veryslow".into(),
                ..VodEncode::default()
            },
        )
        .unwrap();
        let cancel = Arc::new(AtomicBool::new(false));
        let c2 = cancel.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            c2.store(true, Ordering::Relaxed);
        });
        let e = transcode::run(&slow, &src, &dir.path("slow.ts"), &cancel, |_| {}).unwrap_err();
        stopper.join().unwrap();
        assert_eq!(e, FfmpegError::Cancelled);
    }

    #[test]
    fn sprites_and_vtt_match_the_sheets() {
        let dir = Scratch::new("sprites");
        let src = landscape(&dir);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        let out = Scratch::new("sprites-out");
        let config = SpriteConfig {
            interval_secs: 1,
            tile_width: 160,
            cols: 2,
            rows: 2,
        };
        let s = thumbnails::sprites(
            Path::new("ffmpeg"),
            &src,
            &probe,
            &config,
            &out.0,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!((s.tile_width, s.tile_height, s.count), (160, 90, 6));
        assert_eq!(s.sheets, ["sprite-1.jpg", "sprite-2.jpg"]);
        for sheet in &s.sheets {
            let dims = sizes(&out.path(sheet));
            assert_eq!(dims, [("mjpeg".to_string(), 320, 180)], "{sheet}");
        }
        assert!(!out.path("sprite-3.jpg").exists());
        let vtt = std::fs::read_to_string(out.path(&s.vtt)).unwrap();
        assert!(vtt.starts_with("WEBVTT\n"));
        let cues: Vec<&str> = vtt.lines().filter(|l| l.contains("#xywh=")).collect();
        assert_eq!(cues.len(), 6, "{vtt}");
        for cue in cues {
            let (sheet, xywh) = cue.split_once("#xywh=").unwrap();
            assert!(s.sheets.iter().any(|n| n == sheet), "{cue}");
            let v: Vec<u32> = xywh.split(',').map(|n| n.parse().unwrap()).collect();
            assert!(v[0] + v[2] <= 320 && v[1] + v[3] <= 180, "{cue}");
        }
        assert!(vtt.contains("00:00:05.000 --> 00:00:06."), "{vtt}");

        // Portrait tiles are portrait.
        let src = portrait(&dir);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        let out = Scratch::new("sprites-portrait");
        let s = thumbnails::sprites(
            Path::new("ffmpeg"),
            &src,
            &probe,
            &SpriteConfig::default(),
            &out.0,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!((s.tile_width, s.tile_height, s.count), (160, 284, 1));
        assert_eq!(
            sizes(&out.path(&s.sheets[0])),
            [("mjpeg".to_string(), 800, 1420)]
        );
    }

    #[test]
    fn the_automatic_poster_skips_a_black_opening() {
        let dir = Scratch::new("poster");
        // 3 s of black, then 3 s of picture.
        let src = dir.path("black_open.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "color=black:size=640x360:rate=30:d=3",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30:d=3",
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1:a=0",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            src.to_str().unwrap(),
        ]);
        let probe = probe::run(&src, &ProbeConfig::default()).unwrap();
        let ff = Path::new("ffmpeg");
        let no = AtomicBool::new(false);
        let p = thumbnails::poster(ff, &src, &probe, None, 1280, &dir.0, &no).unwrap();
        assert!(p.time_secs >= 3.0, "{p:?}");
        assert_eq!((p.width, p.height), (640, 360), "never upscaled");
        let jpeg = dir.path(&p.file);
        assert_eq!(sizes(&jpeg), [("mjpeg".to_string(), 640, 360)]);
        assert!(mean_luma(&jpeg) > 40.0, "{}", mean_luma(&jpeg));
        // At a requested time, that frame (black here), scaled down.
        let p = thumbnails::poster(ff, &src, &probe, Some(1.0), 320, &dir.0, &no).unwrap();
        assert_eq!((p.width, p.height, p.time_secs), (320, 180, 1.0));
        assert!(mean_luma(&dir.path(&p.file)) < 24.0);
        // Past the end: the last moment instead.
        let p = thumbnails::poster(ff, &src, &probe, Some(60.0), 1280, &dir.0, &no).unwrap();
        assert!(p.time_secs < 6.0);
        assert!(mean_luma(&dir.path(&p.file)) > 40.0);
    }
}
