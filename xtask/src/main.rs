//! Brook's project automation, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`). Plain std, no dependencies: it has to build on a
//! bare machine before `setup` has installed anything.
//!
//! ```text
//! cargo xtask setup   # system packages, npm deps, cargo tools, vendored hls.js
//! cargo xtask wasm    # edge Worker -> edge/build/{index.js,index_bg.wasm}
//! cargo xtask test    # everything CI checks, in order, stopping at the first failure
//! cargo xtask terraform  # just the offline terraform checks
//! cargo xtask ops        # just the dashboard and alert rule checks
//! cargo xtask dev     # origin + wrangler dev + an ffmpeg test publisher
//! cargo xtask bench origin  # 5,000 LL-HLS viewers; parts/s against nginx
//! cargo xtask bench whep    # WebRTC viewers per core for one 720p stream
//! ```
//!
//! See `docs/development.md` for what each step does and where caches live.

mod bench;
mod bench_vod;
mod bench_whep;
mod dev;
mod setup;
mod sys;
mod test;
mod util;
mod wasm;

use std::path::PathBuf;
use std::process::ExitCode;

use util::{Error, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup   install what Brook's build needs (idempotent; fast when all present)
  wasm    build the edge Worker into edge/build/
  test    run every check CI runs: fmt, terraform, ops, clippy, cargo test, wasm build,
          wrangler bundle, edge Miniflare tests, end-to-end tests
  terraform
          the offline terraform checks (also a step of `test`): fmt -check and
          tests/terraform (wrangler.toml bindings, documented variables); docs/deploy.md
  ops     the dashboard and alert rule checks (also a step of `test`): promtool check
          and test rules, tests/ops (metrics exported, documented); docs/ops.md
  dev     run origin, edge (wrangler dev) and a test-pattern publisher; Ctrl-C stops all
  bench vod [RUNS]
          on-demand pipeline: a 60 s 1080p source uploaded with tus and made into
          the default ladder, against one plain ffmpeg command making the same
          ladder; tus upload throughput over loopback
  bench package [RUNS]
          brook package against ffmpeg -c copy -f hls on a 60 s 1080p30 file, whole
          process each (min and median); docs/packager.md
  bench ladder [SECONDS]
          the live ladder's cost: a 1080p30 source through the default ladder and
          each rung alone (speed, cores, RSS, added delay); docs/ladder.md
  bench origin [VIEWERS] [SECONDS]
          load benchmark: simulated LL-HLS viewers (default 5000) on one stream,
          and Brook's parts/s against nginx on the same files (docs/origin.md)
  bench whep [RUNS]
          WebRTC fan-out cost: one 720p30 stream, 0/10/50/100 WHEP viewers (str0m
          peers), the origin's CPU time per second, RUNS times (default 3),
          medians and viewers per core (docs/whep.md)

environment:
  BROOK_CACHE        cache root outside the clone (default: $HOME/.cache/brook)
  CARGO_TARGET_DIR   native target dir (default: $BROOK_CACHE/target)
";

/// Paths shared by every command.
pub struct Ctx {
    /// The workspace root (the directory holding the root `Cargo.toml`).
    pub root: PathBuf,
    /// `$BROOK_CACHE`: everything that outlives a clone.
    pub cache: PathBuf,
    /// Native cargo target dir (`CARGO_TARGET_DIR`, exported to children).
    pub target_dir: PathBuf,
    /// Target dir for the wasm32 build, kept apart so native and wasm
    /// builds (possibly by different compilers) never invalidate each other.
    pub wasm_target_dir: PathBuf,
    /// `cargo install --root` for worker-build and wasm-bindgen-cli.
    pub tools: PathBuf,
}

impl Ctx {
    fn from_env() -> Result<Self> {
        let root = workspace_root()?;
        let cache = match std::env::var_os("BROOK_CACHE").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let home = std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Error::msg("neither BROOK_CACHE nor HOME is set"))?;
                PathBuf::from(home).join(".cache").join("brook")
            }
        };
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => cache.join("target"),
        };
        // Every child cargo (and whatever the e2e suite spawns) builds into the
        // shared cache, so a fresh clone starts warm. Still single-threaded here.
        std::env::set_var("CARGO_TARGET_DIR", &target_dir);
        Ok(Self {
            wasm_target_dir: cache.join("target-wasm"),
            tools: cache.join("tools"),
            root,
            cache,
            target_dir,
        })
    }

    /// The directory of `node_modules/.bin`-style helpers and packages.
    pub fn node_modules(&self) -> PathBuf {
        self.root.join("node_modules")
    }
}

/// `cargo run` sets CARGO_MANIFEST_DIR for the running binary too; the
/// compile-time value is the fallback for running target/debug/xtask directly.
fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest_dir
        .parent()
        .ok_or_else(|| Error::msg("xtask manifest dir has no parent"))?
        .to_path_buf();
    if !root.join("Cargo.toml").is_file() {
        return Err(Error::msg(format!(
            "{} does not look like the Brook workspace root",
            root.display()
        )));
    }
    Ok(root)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return if args.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
        Some(c) => c.to_owned(),
    };
    if let Some(extra) = args.get(1).filter(|_| command != "bench") {
        if extra == "-h" || extra == "--help" {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        eprintln!("xtask {command}: unexpected argument {extra:?}\n\n{USAGE}");
        return ExitCode::FAILURE;
    }
    let result = Ctx::from_env().and_then(|ctx| match command.as_str() {
        "setup" => setup::run(&ctx),
        "wasm" => wasm::build(&ctx),
        "test" => test::run(&ctx),
        "terraform" => test::terraform(&ctx),
        "ops" => test::ops(&ctx),
        "dev" => dev::run(&ctx),
        "bench" => bench::run(&ctx, &args[1..]),
        other => Err(Error::msg(format!("unknown command {other:?}\n\n{USAGE}"))),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {command}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
