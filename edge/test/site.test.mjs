// The site as wrangler.toml deploys it: `wrangler dev` (real config: static
// assets from web/, /live/* to the Worker first) in front of a fake origin that
// serves a short HLS stream made by ffmpeg, and the viewer page playing it in
// headless Chromium. Needs `cargo xtask setup` (ffmpeg, chromium, hls.js in
// web/vendor/) and `cargo xtask wasm`.
//
//   node --test edge/test/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.BROOK_CHROMIUM || '/usr/bin/chromium';

// wrangler.toml requires viewer tokens; this test brings its own key.
const KEY = '5ea1ab1e5ea1ab1e5ea1ab1e5ea1ab1e';
/** An EdgeAuth-layout token for `acl` (docs/tokens.md), made with node's crypto. */
function token(acl = '/live/*') {
  const fields = `exp=${Math.floor(Date.now() / 1000) + 600}~acl=${acl}~kid=site`;
  return `${fields}~hmac=${createHmac('sha256', Buffer.from(KEY, 'hex')).update(fields).digest('hex')}`;
}
const TOKEN = token();

async function freePort() {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** ffmpeg-made fMP4 HLS (1 s segments with program date-time, no ENDLIST, so it looks live). */
function makeStream(dir) {
  execFileSync('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '8',
    '-c:v', 'libx264', '-preset', 'veryfast', '-g', '30', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '96k',
    '-f', 'hls', '-hls_time', '1', '-hls_list_size', '0',
    '-hls_segment_type', 'fmp4',
    '-hls_flags', 'program_date_time+independent_segments+omit_endlist',
    path.join(dir, 'index.m3u8'),
  ]);
}

const TYPES = { '.m3u8': 'application/vnd.apple.mpegurl', '.mp4': 'video/mp4', '.m4s': 'video/iso.segment' };

/** Serves `dir` as /live/cam1/*; everything else is 404, like a stream that has not started. */
function startOrigin(dir) {
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const name = pathname.startsWith('/live/cam1/') ? path.basename(pathname) : null;
    const file = name && path.join(dir, name);
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.listen(0, '127.0.0.1');
  return server;
}

let tmp, origin, wrangler, base, browser;
const wranglerLog = [];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'brook-site-'));
  makeStream(tmp);
  origin = startOrigin(tmp);
  await once(origin, 'listening');

  const port = await freePort();
  const inspectorPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  wrangler = spawn(
    path.join(root, 'node_modules/.bin/wrangler'),
    [
      'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
      '--var', `ORIGIN_URL:http://127.0.0.1:${origin.address().port}`,
      '--var', `TOKEN_KEYS:site:${KEY}`,
      '--show-interactive-dev-session=false',
    ],
    {
      cwd: root,
      detached: true, // own process group: killing it takes workerd along
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: 'false',
        CI: 'true',
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
        XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME ?? path.join(tmp, 'config'),
      },
    },
  );
  const ready = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      wranglerLog.push(chunk.toString());
      if (/Ready on/.test(wranglerLog.join(''))) resolve();
    };
    wrangler.stdout.on('data', onData);
    wrangler.stderr.on('data', onData);
    wrangler.on('exit', (code) => reject(new Error(`wrangler dev exited (${code}):\n${wranglerLog.join('')}`)));
  });
  await ready;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  if (wrangler?.exitCode === null) {
    const exited = once(wrangler, 'exit');
    process.kill(-wrangler.pid, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
    try { process.kill(-wrangler.pid, 'SIGKILL'); } catch { /* group already gone */ }
  }
  origin?.closeAllConnections();
  origin?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('/ serves the viewer page from web/ (static assets)', async () => {
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.match(await res.text(), /<script src="\/player\.js"><\/script>/);
  for (const asset of ['/player.js', '/style.css', '/vendor/hls.min.js']) {
    const r = await fetch(base + asset);
    assert.equal(r.status, 200, asset);
    await r.arrayBuffer();
  }
});

test('/live/* reaches the Worker and the origin behind it', async () => {
  const anon = await fetch(`${base}/live/cam1/index.m3u8`);
  assert.equal(anon.status, 401, 'wrangler.toml requires a token');
  await anon.arrayBuffer();
  const res = await fetch(`${base}/live/cam1/index.m3u8?_HLS_msn=1&_HLS_part=0&__token__=${encodeURIComponent(TOKEN)}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  assert.match(await res.text(), /^#EXTM3U/);
  const post = await fetch(`${base}/live/cam1/index.m3u8`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405, 'POST is answered by the Worker, not the assets layer');
  await post.arrayBuffer();
});

test('the viewer plays the stream through the edge and reports latency', async () => {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  try {
    await page.goto(`${base}/?stream=cam1&token=${encodeURIComponent(TOKEN)}`);
    await page.waitForFunction(() => window.brook?.video.currentTime > 1, null, { timeout: 30_000 });
    const state = await page.evaluate(() => ({
      fatal: window.brook.fatalErrors,
      muted: window.brook.video.muted,
      status: window.brook.status,
      latency: window.brook.latency,
      unmuteHidden: document.getElementById('unmute').hidden,
      stream: document.getElementById('stream').textContent,
    }));
    assert.deepEqual(state.fatal, []);
    assert.equal(state.muted, true, 'autoplay starts muted');
    assert.equal(state.unmuteHidden, false, 'unmute button offered');
    assert.equal(state.stream, 'cam1');
    await page.waitForFunction(() => typeof window.brook.latency === 'number', null, { timeout: 5_000 });
    const latency = await page.evaluate(() => window.brook.latency);
    // The stream was made faster than real time, so only the wiring is checked,
    // not the value (its program date-times run ahead of the wall clock).
    assert.ok(Number.isFinite(latency), `latency ${latency}`);
    assert.match(await page.textContent('#latency'), /s behind live$/);
    assert.deepEqual(consoleErrors, [], 'no console errors (CSP violations included)');
    await page.click('#unmute');
    assert.equal(await page.evaluate(() => window.brook.video.muted), false);
    assert.equal(await page.evaluate(() => document.getElementById('unmute').hidden), true);
  } finally {
    await page.close();
  }
});

test('a stream that has not started is retried, not given up on', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${base}/?stream=later&token=${encodeURIComponent(TOKEN)}`);
    await page.waitForFunction(
      () => window.brook.errors.filter((e) => e.status === 404).length >= 2,
      null,
      { timeout: 15_000 },
    );
    const state = await page.evaluate(() => ({ fatal: window.brook.fatalErrors, status: window.brook.status }));
    assert.deepEqual(state.fatal, []);
    assert.match(state.status, /waiting/);
  } finally {
    await page.close();
  }
});

test('without a valid token the viewer says so and stops asking', async () => {
  const page = await browser.newPage();
  try {
    for (const [query, status, text] of [
      ['', 401, /needs a viewer token/],
      [`&token=${encodeURIComponent(token('/live/other/*'))}`, 403, /access denied/],
    ]) {
      await page.goto(`${base}/?stream=cam1${query}`);
      await page.waitForFunction((s) => window.brook?.fatalErrors.some((e) => e.status === s), status, { timeout: 15_000 });
      const state = await page.evaluate(() => ({ status: window.brook.status, hls: window.brook.hls }));
      assert.match(state.status, text);
      assert.equal(state.hls, null, 'no retry loop');
    }
  } finally {
    await page.close();
  }
});

test('untrusted stream names are never used', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${base}/?stream=${encodeURIComponent('<img src=x onerror=alert(1)>')}`);
    const state = await page.evaluate(() => ({
      status: window.brook.status,
      hls: window.brook.hls,
      imgs: document.querySelectorAll('img').length,
    }));
    assert.match(state.status, /invalid stream name/);
    assert.equal(state.hls, null);
    assert.equal(state.imgs, 0);
  } finally {
    await page.close();
  }
});
