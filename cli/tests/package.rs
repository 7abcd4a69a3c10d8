//! `brook package` as a user runs it: a real encoder capture in, a finished
//! presentation out that ffmpeg plays through its multivariant playlist.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packager/tests/fixtures")
        .join(name)
}

fn outdir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("brook-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn brook(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brook"))
        .args(args)
        .output()
        .unwrap()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_ts_file_becomes_a_vod_presentation_ffmpeg_plays() {
    let dir = outdir("vod");
    let input = fixture("lavfi_h264_aac_zerolatency.ts");
    let out = brook(&["package".as_ref(), input.as_os_str(), dir.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let video = read(&dir, "video.m3u8");
    assert!(video.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{video}");
    assert!(video.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!video.contains("#EXT-X-PART"), "no live parts in a VOD");
    for seg in video.lines().filter(|l| l.ends_with(".m4s")) {
        assert!(dir.join(seg).is_file(), "{seg} written");
    }
    assert!(read(&dir, "index.m3u8").contains("video.m3u8"));
    assert!(read(&dir, "manifest.mpd").contains("type=\"static\""));
    let play = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(dir.join("index.m3u8"))
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(play.status.success());
    assert_eq!(String::from_utf8_lossy(&play.stderr), "", "clean decode");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file with a ladder in it: its first video stream by default, every one
/// with `--all-video`, each with its own playlist and a variant.
#[test]
fn a_ladder_file_keeps_every_rung_when_asked() {
    let input = fixture("lavfi_ladder_h264x2_aac.ts");
    let dir = outdir("first");
    let out = brook(&["package".as_ref(), input.as_os_str(), dir.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("video.m3u8").is_file());
    assert!(!dir.join("video2.m3u8").exists());
    let _ = std::fs::remove_dir_all(&dir);

    let dir = outdir("all");
    let out = brook(&[
        "package".as_ref(),
        input.as_os_str(),
        dir.as_os_str(),
        "--all-video".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mv = read(&dir, "index.m3u8");
    assert!(
        mv.contains("RESOLUTION=320x180") && mv.contains("RESOLUTION=160x90"),
        "{mv}"
    );
    for pl in ["video.m3u8", "video2.m3u8", "audio.m3u8"] {
        assert!(read(&dir, pl).ends_with("#EXT-X-ENDLIST\n"), "{pl}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_and_a_used_directory_are_refused_with_the_reason() {
    let dir = outdir("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.ts");
    std::fs::write(&garbage, vec![0x55u8; 100_000]).unwrap();
    let target = dir.join("out");
    let out = brook(&["package".as_ref(), garbage.as_os_str(), target.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("garbage.ts"), "{err}");
    // A directory with something in it is not overwritten.
    let input = fixture("lavfi_h264_aac_zerolatency.ts");
    let out = brook(&["package".as_ref(), input.as_os_str(), dir.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let _ = std::fs::remove_dir_all(&dir);
}
