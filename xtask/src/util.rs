//! Small helpers: errors, running commands, reading Cargo.lock.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// A human-readable failure; xtask prints it and exits non-zero.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn msg(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

pub type Result<T = ()> = std::result::Result<T, Error>;

/// `program arg arg` for messages (not for a shell).
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with inherited stdio; a non-zero exit is an error naming it.
pub fn run_cmd(cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|e| Error::msg(format!("cannot run `{}`: {e}", display(cmd))))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::msg(format!("`{}` failed ({status})", display(cmd))))
    }
}

/// Runs `cmd` and returns its stdout if it ran and exited 0.
pub fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd`, printing its output, and returns its stdout (for `wrangler
/// deploy --dry-run`, whose size line we want to repeat in the summary).
pub fn run_tee(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::msg(format!("cannot run `{}`: {e}", display(cmd))))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(Error::msg(format!(
            "`{}` failed ({})",
            display(cmd),
            out.status
        )))
    }
}

/// Whether `program` can be started (looked up on PATH).
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn mtime(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The version of the single package `name` in a Cargo.lock.
pub fn lock_version(lockfile: &str, name: &str) -> Result<String> {
    let mut found = Vec::new();
    for block in lockfile.split("[[package]]") {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        if field("name").as_deref() == Some(name) {
            if let Some(v) = field("version") {
                found.push(v);
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::msg(format!("Cargo.lock has no package {name:?}"))),
        many => Err(Error::msg(format!(
            "Cargo.lock has several versions of {name}: {}; pin one",
            many.join(", ")
        ))),
    }
}

/// The last word of a `--version` line without a leading `v`
/// (`wasm-bindgen 0.2.130` -> `0.2.130`, `v20.1.0` -> `20.1.0`).
pub fn version_word(output: &str) -> Option<&str> {
    let word = output.lines().next()?.split_whitespace().last()?;
    Some(word.strip_prefix('v').unwrap_or(word))
}

/// Seconds with one decimal, for timing lines.
pub fn secs(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// ffmpeg arguments for the test stream Brook is exercised with: a lavfi
/// `testsrc2` pattern at `size` (30 fps) and a 440 Hz tone, H.264 (x264
/// `zerolatency`, 1 s GOP) at `video_bitrate` and AAC at `audio_bitrate`, as
/// MPEG-TS. The caller adds input options before and the output after.
pub fn test_pattern_args(size: &str, video_bitrate: &str, audio_bitrate: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={size}:rate=30"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        "sine=frequency=440:sample_rate=48000".into(),
    ];
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            video_bitrate,
            "-c:a",
            "aac",
            "-b:a",
            audio_bitrate,
            "-ar",
            "48000",
            "-f",
            "mpegts",
        ]
        .map(String::from),
    );
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "wasm-bindgen-macro"
version = "0.2.130"

[[package]]
name = "worker"
version = "0.8.7"

[[package]]
name = "dup"
version = "1.0.0"

[[package]]
name = "dup"
version = "2.0.0"
"#;

    #[test]
    fn reads_lock_versions() {
        assert_eq!(lock_version(LOCK, "wasm-bindgen").unwrap(), "0.2.130");
        assert_eq!(lock_version(LOCK, "worker").unwrap(), "0.8.7");
        assert!(lock_version(LOCK, "missing").is_err());
        assert!(lock_version(LOCK, "dup").is_err());
    }

    #[test]
    fn version_words() {
        assert_eq!(version_word("wasm-bindgen 0.2.130\n"), Some("0.2.130"));
        assert_eq!(version_word("worker-build 0.8.7"), Some("0.8.7"));
        assert_eq!(version_word("v20.20.2\n"), Some("20.20.2"));
        assert_eq!(version_word(""), None);
    }
}
