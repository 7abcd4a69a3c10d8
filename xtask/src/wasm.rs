//! `cargo xtask wasm`: build the edge Worker into `edge/build/` with
//! worker-build (cargo build for wasm32, wasm-bindgen, wasm-opt, esbuild).
//!
//! Two toolchains, picked automatically:
//! - rustup with the `wasm32-unknown-unknown` target (any normal machine):
//!   plain `worker-build --release`.
//! - otherwise Debian's `rustc-web`, which builds std for wasm32 from source
//!   (`-Zbuild-std` through `RUSTC_BOOTSTRAP`), with a tiny `rustc` shim that
//!   satisfies worker-build's check for a prebuilt wasm32 std.
//!
//! Either way worker-build must not download anything (GitHub may be out of
//! reach): wasm-bindgen comes from `$BROOK_CACHE/tools`, wasm-opt and esbuild
//! from node_modules.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::util::{run_cmd, secs, stdout_of, Error, Result};
use crate::Ctx;

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Where the Debian toolchain lives (packages rustc-web, cargo-web,
/// rust-web-src, rust-web-llvm + lld-22 for rust-lld).
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library/std";
const DEBIAN_RUST_LLD: &str = "/usr/bin/rust-lld";

pub fn rustup_has_wasm_target() -> bool {
    stdout_of(Command::new("rustup").args(["target", "list", "--installed"]))
        .is_some_and(|out| out.lines().any(|l| l.trim() == WASM_TARGET))
}

pub fn build(ctx: &Ctx) -> Result {
    let started = Instant::now();
    let edge = ctx.root.join("edge");
    let worker_build = ctx.tools.join("bin").join("worker-build");
    let wasm_bindgen = ctx.tools.join("bin").join("wasm-bindgen");
    let wasm_opt = ctx
        .node_modules()
        .join("binaryen")
        .join("bin")
        .join("wasm-opt");
    let esbuild = esbuild_bin(&ctx.node_modules());
    for tool in [&worker_build, &wasm_bindgen, &wasm_opt, &esbuild] {
        if !tool.exists() {
            return Err(Error::msg(format!(
                "{} is missing; run `cargo xtask setup` first",
                tool.display()
            )));
        }
    }

    let mut cmd = Command::new(&worker_build);
    cmd.arg("--release")
        .current_dir(&edge)
        .env("CARGO_TARGET_DIR", &ctx.wasm_target_dir)
        .env("WASM_BINDGEN_BIN", &wasm_bindgen)
        .env("WASM_OPT_BIN", &wasm_opt)
        .env("ESBUILD_BIN", &esbuild)
        // Size over speed for the Worker only; the root manifest's release
        // profile stays the origin's business.
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");

    let toolchain = if rustup_has_wasm_target() {
        "rustup"
    } else {
        debian_toolchain(ctx, &mut cmd)?;
        "Debian rustc-web + build-std"
    };
    println!(
        "wasm: building edge Worker with {toolchain} (target dir {})",
        ctx.wasm_target_dir.display()
    );
    run_cmd(&mut cmd)?;

    let wasm = edge.join("build").join("index_bg.wasm");
    let size = fs::metadata(&wasm)
        .map_err(|e| Error::msg(format!("{}: {e}", wasm.display())))?
        .len();
    println!(
        "wasm: edge/build/index.js + index_bg.wasm ({} KiB) in {}",
        size / 1024,
        secs(started.elapsed())
    );
    Ok(())
}

/// esbuild's native binary for this platform, or its JS launcher.
fn esbuild_bin(node_modules: &Path) -> PathBuf {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let native = node_modules
        .join("@esbuild")
        .join(format!("{os}-{arch}"))
        .join("bin")
        .join("esbuild");
    if native.exists() {
        native
    } else {
        node_modules.join("esbuild").join("bin").join("esbuild")
    }
}

/// Points `cmd` at Debian's rustc-web: std built from source, `/usr/bin`
/// first on PATH for this build only, and the rustc shim in front of that.
fn debian_toolchain(ctx: &Ctx, cmd: &mut Command) -> Result {
    for needed in [DEBIAN_RUSTC, DEBIAN_STD_SRC, DEBIAN_RUST_LLD] {
        if !Path::new(needed).exists() {
            return Err(Error::msg(format!(
                "rustup has no {WASM_TARGET} target and {needed} is missing: \
                 run `cargo xtask setup` (installs Debian's rustc-web toolchain) \
                 or `rustup target add {WASM_TARGET}`"
            )));
        }
    }
    let shim_dir = write_rustc_shim(&ctx.cache.join("rustc-shim"))?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        [shim_dir, PathBuf::from("/usr/bin")]
            .into_iter()
            .chain(std::env::split_paths(&path)),
    )
    .map_err(|e| Error::msg(format!("building PATH: {e}")))?;
    cmd.env("PATH", path)
        .env("RUSTC", DEBIAN_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort")
        // `cargo run` exported rustup's cargo as CARGO; worker-build's
        // cargo_metadata would use it instead of Debian's.
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN");
    Ok(())
}

/// worker-build refuses to start unless `rustc --target wasm32-unknown-unknown
/// --print target-libdir` names an existing directory. Debian's rustc-web has
/// no prebuilt wasm32 std (build-std makes one per build), so this shim
/// answers exactly that query with a placeholder directory and hands every
/// other invocation to the real compiler. Written at build time so nothing
/// executable needs committing; rewritten only when its text changes.
fn write_rustc_shim(dir: &Path) -> Result<PathBuf> {
    let placeholder = dir.join("wasm32-libdir-placeholder");
    fs::create_dir_all(&placeholder)?;
    let script = format!(
        "#!/bin/sh\n\
         # Generated by `cargo xtask wasm` (xtask/src/wasm.rs); see write_rustc_shim.\n\
         case \" $* \" in\n  \
           *\" --print target-libdir \"*)\n    \
             case \" $* \" in *\" {WASM_TARGET} \"*) echo '{}'; exit 0 ;; esac ;;\n\
         esac\n\
         exec {DEBIAN_RUSTC} \"$@\"\n",
        placeholder.display()
    );
    let shim = dir.join("rustc");
    if fs::read_to_string(&shim).ok().as_deref() != Some(script.as_str()) {
        fs::write(&shim, &script)?;
    }
    let mut perms = fs::metadata(&shim)?.permissions();
    if perms.mode() & 0o111 != 0o111 {
        perms.set_mode(0o755);
        fs::set_permissions(&shim, perms)?;
    }
    Ok(dir.to_path_buf())
}
