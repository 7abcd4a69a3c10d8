//! `cargo xtask dev`: the whole pipeline on one machine.
//!
//! ```text
//! ffmpeg test pattern --SRT :9000--> brook-origin --HTTP :8080--> wrangler dev :8787 --> browser
//! ```
//!
//! Each child runs in its own process group, so stopping one also stops what
//! it spawned (wrangler's workerd, above all). Ctrl-C, SIGTERM or SIGHUP stop
//! them all; the publisher is restarted whenever it exits (typically while
//! the origin is still starting), the other two are not.
//!
//! The edge requires viewer tokens (wrangler.toml): each session makes a
//! random signing key, hands it to `wrangler dev` as `TOKEN_KEYS`, mints a
//! day-long token for `/live/*` with `brook-token`, and prints the viewer URL
//! with it. It also turns on content steering between two pathways on the
//! same edge, `edge` (127.0.0.1) and its clone `local` (localhost), so the
//! player visibly follows a steering manifest (docs/edge.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::test::{origin_bin, wrangler};
use crate::util::{display, run_cmd, stdout_of, test_pattern_args, Error, Result};
use crate::{setup, sys, wasm, Ctx};

const ORIGIN_HTTP: &str = "127.0.0.1:8080";
const ORIGIN_SRT: &str = "0.0.0.0:9000";
const EDGE_HTTP: &str = "127.0.0.1:8787";
const STREAM: &str = "cam1";
/// The origin's embedded default config accepts `cam1` with this key.
const STREAM_KEY: &str = "dev-key";

/// Steering between two pathways on the one local edge (see the module docs).
const DEV_EDGE_CONFIG: &str = r#"{"steering":{"ttl_s":10,"pathways":[{"id":"edge"},{"id":"local","clone_of":"edge","host":"localhost","weight":3}]}}"#;
/// Lets `curl -H 'authorization: Bearer dev-metrics' .../_brook/metrics` in.
const DEV_METRICS_TOKEN: &str = "dev-metrics";

const PUBLISHER_RESTART_DELAY: Duration = Duration::from_secs(2);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(5);

pub fn run(ctx: &Ctx) -> Result {
    ports_free()?;
    setup::run(ctx)?;
    println!("dev: building brook-origin and brook-token");
    run_cmd(
        Command::new("cargo")
            .args(["build", "-p", "brook-origin", "-p", "brook-edge", "--bins"])
            .current_dir(&ctx.root),
    )?;
    wasm::build(ctx)?;
    let access = DevAccess::new(ctx)?;

    sys::trap_stop_signals();
    let mut children = Children::default();
    let result = supervise(ctx, &mut children, &access);
    children.stop_all();
    result
}

/// This session's signing key and a viewer token made with it.
struct DevAccess {
    /// `TOKEN_KEYS` for the edge: `dev:<hex>`.
    keys: String,
    token: String,
}

impl DevAccess {
    fn new(ctx: &Ctx) -> Result<Self> {
        let mut secret = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut secret))
            .map_err(|e| Error::msg(format!("cannot read /dev/urandom: {e}")))?;
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let keys = format!("dev:{hex}");
        let mut sign = Command::new(ctx.target_dir.join("debug").join("brook-token"));
        sign.args([
            "sign",
            "--acl",
            "/live/*",
            "--ttl",
            "86400",
            "--session",
            "dev",
        ])
        .env("TOKEN_KEYS", &keys);
        let token = stdout_of(&mut sign)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::msg(format!("`{}` failed", display(&sign))))?;
        Ok(Self { keys, token })
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters (for a query value).
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn supervise(ctx: &Ctx, children: &mut Children, access: &DevAccess) -> Result {
    let mut origin = Command::new(origin_bin(ctx));
    origin
        .args(["--http", ORIGIN_HTTP, "--srt", ORIGIN_SRT])
        .current_dir(&ctx.root);
    children.spawn("origin", origin)?;
    wait_until_listening(children, ORIGIN_HTTP)?;

    let mut edge = wrangler(ctx);
    let (ip, port) = EDGE_HTTP.split_once(':').unwrap_or((EDGE_HTTP, ""));
    edge.args(["dev", "--ip", ip, "--port", port, "--var"])
        .arg(format!("ORIGIN_URL:http://{ORIGIN_HTTP}"))
        .arg("--var")
        .arg(format!("TOKEN_KEYS:{}", access.keys))
        .arg("--var")
        .arg(format!("EDGE_CONFIG:{DEV_EDGE_CONFIG}"))
        .arg("--var")
        .arg(format!("METRICS_TOKEN:{DEV_METRICS_TOKEN}"));
    children.spawn("edge", edge)?;
    wait_until_listening(children, EDGE_HTTP)?;

    children.spawn("publish", publisher())?;

    let srt_port = ORIGIN_SRT.rsplit(':').next().unwrap_or("9000");
    let token = encode_component(&access.token);
    println!(
        "\n\
         dev: everything is up (Ctrl-C stops it all)\n  \
           viewer:      http://{EDGE_HTTP}/?stream={STREAM}&token={token}\n               \
           (token for /live/*, valid 24 h; steering moves the player to http://localhost:{port})\n  \
           publish SRT: srt://127.0.0.1:{srt_port}?streamid=publish:live/{STREAM}:{STREAM_KEY}\n               \
           (OBS: Server = that URL, no stream key; ffmpeg: add &latency=120000&pkt_size=1316 -f mpegts)\n  \
           publish RTMP: rtmp://127.0.0.1:1935/live/{STREAM}?key={STREAM_KEY}\n               \
           (OBS: Server = rtmp://127.0.0.1/live, Stream Key = {STREAM}?key={STREAM_KEY})\n  \
           origin:      http://{ORIGIN_HTTP}/live/{STREAM}/index.m3u8\n  \
           edge stats:  curl -H 'authorization: Bearer {DEV_METRICS_TOKEN}' http://{EDGE_HTTP}/_brook/metrics\n  \
           viewer QoE:  http://{EDGE_HTTP}/dashboard.html#token={DEV_METRICS_TOKEN}\n               \
           (the streams table needs the origin's admin token instead; docs/qoe.md)\n  \
           more tokens: TOKEN_KEYS={keys} {bin} sign --acl '/live/{STREAM}/*'\n",
        keys = access.keys,
        bin = ctx.target_dir.join("debug").join("brook-token").display(),
    );

    let mut restart_at: Option<Instant> = None;
    loop {
        if sys::stop_requested() {
            println!("\ndev: stopping");
            return Ok(());
        }
        for name in ["origin", "edge"] {
            if let Some(status) = children.exited(name) {
                return Err(Error::msg(format!(
                    "{name} exited ({status}); stopping the rest"
                )));
            }
        }
        if let Some(status) = children.exited("publish") {
            println!(
                "dev: publisher exited ({status}); restarting in {}s",
                PUBLISHER_RESTART_DELAY.as_secs()
            );
            children.forget("publish");
            restart_at = Some(Instant::now() + PUBLISHER_RESTART_DELAY);
        }
        if restart_at.is_some_and(|at| Instant::now() >= at) {
            restart_at = None;
            children.spawn("publish", publisher())?;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A 720p30 test pattern with a 440 Hz tone, paced in real time, keyframe
/// every second, published over SRT like OBS would.
fn publisher() -> Command {
    let srt_port = ORIGIN_SRT.rsplit(':').next().unwrap_or("9000");
    let url = format!(
        "srt://127.0.0.1:{srt_port}?mode=caller&latency=120000&pkt_size=1316\
         &streamid=publish:live/{STREAM}:{STREAM_KEY}"
    );
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "warning", "-nostdin", "-re"])
        .args(test_pattern_args("1280x720", "2500k", "128k"))
        .arg(url);
    cmd
}

/// Fails early, with a clear message, when another dev session (or anything
/// else) holds one of the fixed ports; otherwise the readiness checks below
/// would happily talk to the wrong process.
fn ports_free() -> Result {
    for addr in [ORIGIN_HTTP, EDGE_HTTP] {
        TcpListener::bind(addr).map_err(|e| {
            Error::msg(format!(
                "cannot use TCP {addr} ({e}); is another dev session running?"
            ))
        })?;
    }
    UdpSocket::bind(ORIGIN_SRT).map_err(|e| {
        Error::msg(format!(
            "cannot use UDP {ORIGIN_SRT} ({e}); is another dev session running?"
        ))
    })?;
    Ok(())
}

/// Waits until something accepts TCP connections on `addr`, giving up early
/// when a child dies or a stop is requested.
fn wait_until_listening(children: &mut Children, addr: &str) -> Result {
    let sock: SocketAddr = addr
        .parse()
        .map_err(|e| Error::msg(format!("{addr}: {e}")))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if sys::stop_requested() {
            return Err(Error::msg("interrupted while starting"));
        }
        for name in ["origin", "edge"] {
            if let Some(status) = children.exited(name) {
                return Err(Error::msg(format!(
                    "{name} exited while starting ({status})"
                )));
            }
        }
        if Instant::now() > deadline {
            return Err(Error::msg(format!(
                "nothing listening on {addr} after {}s",
                READY_TIMEOUT.as_secs()
            )));
        }
        thread::sleep(Duration::from_millis(200));
    }
}

struct Running {
    name: &'static str,
    child: Child,
    exit: Option<ExitStatus>,
}

/// The supervised processes, each the leader of its own process group.
#[derive(Default)]
struct Children(Vec<Running>);

impl Children {
    fn spawn(&mut self, name: &'static str, mut cmd: Command) -> Result {
        println!("dev: [{name}] $ {}", display(&cmd));
        // Own process group: the terminal's Ctrl-C reaches only xtask, which
        // then stops each group as a whole, grandchildren included.
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {name} (`{}`): {e}", display(&cmd))))?;
        if let Some(out) = child.stdout.take() {
            prefix_lines(name, out);
        }
        if let Some(err) = child.stderr.take() {
            prefix_lines(name, err);
        }
        self.0.push(Running {
            name,
            child,
            exit: None,
        });
        Ok(())
    }

    /// The exit status of `name` if it has exited (reaping it).
    fn exited(&mut self, name: &str) -> Option<ExitStatus> {
        let running = self.0.iter_mut().find(|r| r.name == name)?;
        if running.exit.is_none() {
            running.exit = running.child.try_wait().ok().flatten();
        }
        running.exit
    }

    /// Drops an exited child after killing whatever its group left behind.
    fn forget(&mut self, name: &str) {
        self.0.retain(|r| {
            if r.name == name && r.exit.is_some() {
                sys::kill_group(r.child.id(), sys::SIGKILL);
                false
            } else {
                true
            }
        });
    }

    /// SIGTERM to every group, newest first; SIGKILL to whatever is left
    /// after a grace period (and to group members whose leader already left).
    fn stop_all(&mut self) {
        for r in self.0.iter().rev() {
            sys::kill_group(r.child.id(), sys::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline
            && self
                .0
                .iter_mut()
                .any(|r| matches!(r.child.try_wait(), Ok(None)))
        {
            thread::sleep(Duration::from_millis(100));
        }
        for r in self.0.iter_mut() {
            sys::kill_group(r.child.id(), sys::SIGKILL);
            let _ = r.child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            self.stop_all();
        }
    }
}

/// Copies a child's output to ours line by line as `[name] line`, so the
/// three logs stay readable when interleaved.
fn prefix_lines(name: &'static str, pipe: impl Read + Send + 'static) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "[{name}] {}", text.trim_end());
            line.clear();
        }
    });
}
