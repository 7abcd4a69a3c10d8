// Shared plumbing for the end-to-end suite: real peers only (brook-origin, ffmpeg
// over SRT, the Worker in workerd via `wrangler dev`, Chromium via playwright-core).
// Every process is started in its own process group and killed with it.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = resolve(process.env.BROOK_EDGE_DIR ?? new URL('../..', import.meta.url).pathname);
export const ORIGIN_BIN = process.env.BROOK_ORIGIN_BIN
  ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, '.cache/brook/target'), 'debug/brook-origin');
export const DEV_KEY = 'dev-key';

const children = new Set();
function killAll() {
  for (const c of children) {
    try { process.kill(-c.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });

/** A TCP (and, by convention here, UDP) port that is free right now. */
export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

/** Starts a process in its own group; collects its output in `.log`. */
export function start(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  child.name = name;
  child.log = '';
  const collect = (d) => { child.log += d.toString(); };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  child.exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.stop = async () => {
    try { process.kill(-child.pid, 'SIGTERM'); } catch { return; }
    const done = await Promise.race([child.exited, sleep(5000).then(() => null)]);
    if (!done) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }
  };
  return child;
}

export async function waitFor(what, fn, { timeout = 20000, interval = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/**
 * brook-origin on free loopback ports. Options (all optional): `config` (TOML text,
 * written to a temp file and passed as --config), `args` (extra CLI flags), `env`,
 * and `httpPort` / `srtPort` / `whipPort` to reuse the ports of an origin that was
 * stopped. WHIP (WebRTC) gets its own UDP port too (`origin.whipPort`).
 */
/**
 * brook-origin on free ports; `wrap` runs it under another command (e.g. `['prlimit', '--nofile=256:']`).
 * `ladder`: the ladder mode (`--ladder-mode`); suites about delivery use the encoder's own rendition
 * (`passthrough`, the default here), the ladder suites `transcode`.
 */
export async function startOrigin({
  config, args = [], env = {}, httpPort, srtPort, whipPort, rtmpPort, wrap = [], ladder = 'passthrough',
} = {}) {
  const http = httpPort ?? await freePort();
  const srt = srtPort ?? await freePort();
  const whip = whipPort ?? await freePort();
  const rtmp = rtmpPort ?? await freePort();
  const extra = ['--ladder-mode', ladder, '--rtmp', `127.0.0.1:${rtmp}`, ...args];
  if (config !== undefined) {
    const file = join(mkdtempSync(join(tmpdir(), 'brook-config-')), 'brook.toml');
    writeFileSync(file, config);
    extra.push('--config', file);
  }
  const argv = [ORIGIN_BIN,
    '--http', `127.0.0.1:${http}`, '--srt', `127.0.0.1:${srt}`, '--whip', `127.0.0.1:${whip}`, ...extra];
  const origin = start('origin', [...wrap, ...argv][0], [...wrap, ...argv].slice(1),
    { env: { ...process.env, RUST_LOG: 'info', ...env } });
  origin.url = `http://127.0.0.1:${http}`;
  origin.httpPort = http;
  origin.srtPort = srt;
  origin.whipPort = whip;
  origin.rtmpPort = rtmp;
  await waitFor('origin /healthz', async () => (await fetch(`${origin.url}/healthz`)).ok)
    .catch((e) => { throw new Error(`${e.message}\n${origin.log}`); });
  return origin;
}

/**
 * An SRT caller URL; `params`: more query parameters (e.g. `{ passphrase }`),
 * or other values for the defaults (`latency` in µs: 120 ms).
 */
export function srtUrl(port, streamid, params = {}) {
  const all = { mode: 'caller', latency: 120000, pkt_size: 1316, ...params };
  const query = Object.entries(all).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  return `srt://127.0.0.1:${port}?${query}&streamid=${streamid}`;
}

/**
 * ffmpeg publishing a 720p30 test pattern (`video`: another lavfi source) (H.264, `gop` frames
 * between keyframes, 30 by default) with a tone (AAC) over SRT.
 */
export function startPublisher(port, {
  streamid = `publish:live/cam1:${DEV_KEY}`, seconds, video = 'testsrc2=size=1280x720:rate=30', gop = 30,
  srtParams = {},
} = {}) {
  const args = ['-hide_banner', '-loglevel', 'warning', '-re',
    '-f', 'lavfi', '-i', video,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
  if (seconds) args.push('-t', String(seconds));
  args.push('-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', String(gop), '-keyint_min', String(gop),
    '-pix_fmt', 'yuv420p', '-b:v', '2500k', '-c:a', 'aac', '-b:a', '128k', '-ar', '48000',
    '-f', 'mpegts', srtUrl(port, streamid, srtParams));
  return start('ffmpeg', 'ffmpeg', args);
}

/**
 * Samples the player once a second until it has played `seconds` more (or 25 s
 * passed): the first and last samples and the live latencies seen, sorted.
 */
export async function watchPlayback(page, seconds = 10) {
  const first = await samplePlayer(page);
  const latencies = [];
  let last = first;
  const end = Date.now() + 25000;
  while (Date.now() < end && last.currentTime - first.currentTime < seconds + 0.5) {
    await sleep(1000);
    last = await samplePlayer(page);
    if (last.latency != null) latencies.push(last.latency);
  }
  latencies.sort((a, b) => a - b);
  return { first, last, latencies };
}

/** What WebRTC over loopback needs on top (docs: shared/notes/media-peers.md). */
export const WEBRTC_LOOPBACK_FLAGS = ['--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns'];

/** Headless Chromium with the flags verified on these machines (`args`: more). */
export async function launchChromium({ args = [] } = {}) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', ...args],
  });
}

/** Decodes init + media with ffmpeg; resolves to what ffmpeg printed at -v error. */
export async function ffmpegDecode(init, media) {
  const dir = mkdtempSync(join(tmpdir(), 'brook-decode-'));
  const file = join(dir, 'check.mp4');
  writeFileSync(file, Buffer.concat([Buffer.from(init), Buffer.from(media)]));
  const p = start('ffmpeg-decode', 'ffmpeg', ['-hide_banner', '-v', 'error', '-i', file, '-f', 'null', '-']);
  const { code } = await p.exited;
  return { code, output: p.log };
}

/**
 * What ffprobe sees in init + media: the first video stream's size, and the
 * indexes of its keyframe packets.
 */
export async function ffprobeObject(init, media) {
  const dir = mkdtempSync(join(tmpdir(), 'brook-probe-'));
  const file = join(dir, 'probe.mp4');
  writeFileSync(file, Buffer.concat([Buffer.from(init), Buffer.from(media)]));
  const p = start('ffprobe', 'ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries',
    'stream=width,height:packet=flags', '-of', 'json', file]);
  await p.exited;
  const out = JSON.parse(p.log);
  const s = out.streams?.[0] ?? {};
  const keyframes = (out.packets ?? []).flatMap((pkt, i) => (pkt.flags?.startsWith('K') ? [i] : []));
  return { width: s.width, height: s.height, keyframes, packets: out.packets?.length ?? 0 };
}

export async function text(url, init) {
  const r = await fetch(url, init);
  return { status: r.status, headers: r.headers, body: await r.text() };
}

/** The media playlist URL of a stream, from its multivariant playlist. */
export async function mediaPlaylistUrl(base, stream = 'cam1') {
  const mv = await waitFor('multivariant playlist', async () => {
    const r = await text(`${base}/live/${stream}/index.m3u8`);
    return r.status === 200 ? r.body : null;
  }, { timeout: 30000, interval: 250 });
  const uri = mv.split('\n').find((l) => l && !l.startsWith('#'));
  return new URL(uri, `${base}/live/${stream}/index.m3u8`).href;
}

/** Samples the viewer page's player (web/player.js exposes `window.brook`). */
export function samplePlayer(page) {
  return page.evaluate(() => {
    const { hls, video, fatalErrors } = window.brook;
    return {
      currentTime: video.currentTime,
      // Live latency: wall clock minus the program date-time being shown.
      latency: hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : null,
      frames: video.getVideoPlaybackQuality().totalVideoFrames,
      audioBytes: video.webkitAudioDecodedByteCount ?? null,
      fatal: fatalErrors.length,
      paused: video.paused,
      ended: video.ended,
      url: hls.url ?? null,
      levelUrl: hls.levels?.[0]?.url?.[0] ?? hls.levels?.[0]?.uri ?? null,
    };
  });
}

/**
 * The viewer page (web/) served by a plain Node server that passes /live/* through
 * to `originUrl` unchanged (streamed): hls.js against the origin itself, without
 * the edge Worker.
 */
export async function startViewerSite(originUrl) {
  const { createServer } = await import('node:http');
  const { readFile } = await import('node:fs/promises');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url, 'http://x').pathname;
      if (path.startsWith('/live/')) {
        const r = await fetch(originUrl + req.url, { headers: { 'accept-encoding': 'identity' } });
        const headers = {};
        for (const [k, v] of r.headers) if (!['content-length', 'transfer-encoding', 'connection'].includes(k)) headers[k] = v;
        res.writeHead(r.status, headers);
        if (r.body) for await (const chunk of r.body) res.write(chunk);
        res.end();
        return;
      }
      const file = path === '/' ? 'index.html' : path.slice(1);
      if (file.split('/').some((s) => s === '..')) throw new Error('bad path');
      const body = await readFile(join(ROOT, 'web', file));
      res.writeHead(200, { 'content-type': types[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      if (!res.headersSent) res.writeHead(404);
      res.end();
    }
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return { url: `http://127.0.0.1:${server.address().port}`, stop: async () => server.close() };
}

/**
 * A viewer page on `url` (the viewer page of the edge or a site, with its
 * query), with a CDP session for throttling its network; resolves once the
 * video plays. Playback is what is awaited, not the page's load event (which a
 * media element holds until its first frame).
 */
export async function openViewer(browser, url) {
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 40000 })
    .catch(async (e) => {
      const state = await page.evaluate(() => JSON.stringify({
        status: window.brook?.status, errors: window.brook?.errors?.map((x) => `${x.details} ${x.status} ${x.url}`),
      })).catch(() => 'no page state');
      throw new Error(`${e.message}\n${state}`);
    });
  return { page, cdp };
}

/** Throttles a page's downloads to `kbps` (Chrome DevTools Protocol); 0 lifts it. */
export function throttle(cdp, kbps) {
  return cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, uploadThroughput: -1, downloadThroughput: kbps ? kbps * 125 : -1,
  });
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
