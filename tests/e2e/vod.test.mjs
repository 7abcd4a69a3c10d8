// Video on demand end to end, with real peers: a real S3-compatible server
// (moto, from the project's venv), brook-origin, ffmpeg (the test source, the
// transcoder, the decode checks), the wasm Worker under wrangler, Chromium
// with hls.js, dash.js and the upload page (tus-js-client), and a webhook
// receiver checking signatures with node's crypto (independently of the Rust
// signer).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import { createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, statSync, truncateSync, copyFileSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import {
  startOrigin, start, freePort, waitFor, launchChromium, startPublisher, ROOT,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

const API_TOKEN = 'vod-test-api-token-0123456789';
const WEBHOOK_SECRET = 'whsec-vod-test-0123456789abcdef';
const BUCKET = 'brook-vod-test';
const PYTHON_BIN = join(process.env.BROOK_CACHE ?? join(homedir(), '.cache', 'brook'), 'python', 'bin');
const MAX_UPLOAD = 40 * 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'brook-vod-'));
let s3, s3Url, hooks, hookServer, hookUrl, origin, originPorts, edge, browser, source;

function ffmpeg(args) {
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Lists the bucket's keys with boto3 (moto's own client library), signed like any S3 client. */
function s3Keys(prefix = '') {
  const py = `import boto3,sys,json
c=boto3.client('s3',endpoint_url=sys.argv[1],aws_access_key_id='test',aws_secret_access_key='test',region_name='us-east-1')
keys=[]
for page in c.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[2],Prefix=sys.argv[3]):
    keys+= [o['Key'] for o in page.get('Contents',[])]
print(json.dumps(keys))`;
  return JSON.parse(execFileSync(join(PYTHON_BIN, 'python'), ['-c', py, s3Url, BUCKET, prefix]).toString());
}

function originConfig(dataDir) {
  return `
[storage]
kind = "s3"
bucket = "${BUCKET}"
endpoint = "${s3Url}"

[archive]
in_storage = true

[streams.cam1]
key = "dev-key"

[publish]
reconnect_grace_ms = 300

[ladder]
rungs = [{ height = 360, bitrate_kbps = 600 }, { height = 240, bitrate_kbps = 300 }]
audio_bitrate_kbps = 64

[vod]
enabled = true
data_dir = "${dataDir}"
api_token = "${API_TOKEN}"
webhook_url = "${hookUrl}"
webhook_secret = "${WEBHOOK_SECRET}"
max_upload_bytes = ${MAX_UPLOAD}
public_url = "ORIGIN_URL"

[vod.encode]
preset = "ultrafast"

[vod.thumbnails]
interval_secs = 2
`;
}

async function startVodOrigin(ports = {}) {
  const dataDir = ports.dataDir ?? mkdtempSync(join(tmpdir(), 'brook-vod-data-'));
  const http = ports.httpPort ?? await freePort();
  const config = originConfig(dataDir).replace('ORIGIN_URL', `http://127.0.0.1:${http}`);
  const o = await startOrigin({
    config,
    httpPort: http,
    env: { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' },
  });
  o.dataDir = dataDir;
  return o;
}

const api = (path, init = {}) => fetch(`${origin.url}/api/v1/${path}`, {
  ...init, headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
});

async function newUpload(body = {}) {
  const r = await api('uploads', { method: 'POST', body: JSON.stringify(body) });
  assert.equal(r.status, 201, await r.clone().text());
  return r.json();
}

/** A raw HTTP request (tus needs exact control of bodies and of breaking them off). */
function raw(url, { method = 'GET', headers = {}, body, breakAfter } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: { 'tus-resumable': '1.0.0', ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (e) => (breakAfter !== undefined ? resolve({ status: 0, error: e }) : reject(e)));
    if (breakAfter !== undefined) {
      // Send part of the body, then drop the connection (a client losing its network).
      req.write(body.subarray(0, breakAfter), () => setTimeout(() => req.destroy(), 300));
    } else {
      req.end(body);
    }
  });
}

async function tusCreate(uploadUrl, length, extra = {}) {
  return raw(uploadUrl, { method: 'POST', headers: { 'upload-length': String(length), 'upload-metadata': `filename ${Buffer.from('test.mp4').toString('base64')}`, ...extra } });
}

async function waitAsset(id, want, timeout = 180000) {
  return waitFor(`asset ${id} ${want}`, async () => {
    const a = await (await api(`assets/${id}`)).json();
    if (a.status === 'errored' && want !== 'errored') throw new Error(`asset errored: ${a.error}`);
    return a.status === want ? a : null;
  }, { timeout, interval: 500 });
}

/** Uploads `file` in one creation + PATCHes; `breakAt`: a PATCH of the first half dropped mid-way first. */
async function upload(file, { breakAt, request = {} } = {}) {
  const data = readFileSync(file);
  const up = await newUpload({ passthrough: 'e2e', ...request });
  const created = await tusCreate(up.url, data.length);
  assert.equal(created.status, 201, created.body);
  assert.equal(created.headers['brook-asset-id'], up.asset_id);
  const location = new URL(created.headers.location, up.url).href;
  let offset = 0;
  if (breakAt !== undefined) {
    const half = Math.floor(data.length / 2);
    const broken = await raw(location, {
      method: 'PATCH', headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'content-length': String(half) },
      body: data.subarray(0, half), breakAfter: breakAt,
    });
    assert.equal(broken.status, 0, 'the first PATCH was cut off');
    // HEAD says how much arrived; the upload resumes from there.
    const head = await waitFor('offset after the disconnect', async () => {
      const h = await raw(location, { method: 'HEAD' });
      return h.status === 200 && Number(h.headers['upload-offset']) > 0 ? h : null;
    });
    offset = Number(head.headers['upload-offset']);
    assert.ok(offset <= breakAt, `offset ${offset} <= bytes sent ${breakAt}`);
    // A PATCH at the wrong offset is refused and changes nothing.
    const wrong = await raw(location, {
      method: 'PATCH', headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }, body: Buffer.from('xx'),
    });
    assert.equal(wrong.status, 409);
  }
  const rest = await raw(location, {
    method: 'PATCH', headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset) },
    body: data.subarray(offset),
  });
  assert.equal(rest.status, 204, rest.body);
  assert.equal(Number(rest.headers['upload-offset']), data.length);
  return up.asset_id;
}

before(async () => {
  // The S3-compatible server and its bucket.
  const s3Port = await freePort();
  s3 = start('moto', join(PYTHON_BIN, 'moto_server'), ['-H', '127.0.0.1', '-p', String(s3Port)]);
  s3Url = `http://127.0.0.1:${s3Port}`;
  await waitFor('moto', async () => (await fetch(`${s3Url}/${BUCKET}`, { method: 'PUT' })).ok, { timeout: 30000, interval: 250 });
  // The application's webhook receiver.
  hooks = [];
  hookServer = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      hooks.push({ signature: req.headers['brook-signature'], body: Buffer.concat(chunks).toString(), at: Date.now() });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise((r) => hookServer.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${hookServer.address().port}/hook`;
  // A 30 s 720p source with sound.
  source = join(dir, 'source.mp4');
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '30', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k', '-movflags', '+faststart', source]);
  origin = await startVodOrigin();
  originPorts = { httpPort: origin.httpPort, dataDir: origin.dataDir };
});

after(async () => {
  await browser?.close();
  await Promise.all([edge, origin, s3].map((p) => p?.stop()));
  await new Promise((r) => (hookServer ? hookServer.close(r) : r()));
});

/** Checks a webhook as docs/vod.md tells receivers to: HMAC-SHA256 over "<t>.<body>", constant time, fresh. */
function verifyHook(hook) {
  const parts = Object.fromEntries(hook.signature.split(',').map((p) => p.split('=')));
  const want = createHmac('sha256', WEBHOOK_SECRET).update(`${parts.t}.${hook.body}`).digest('hex');
  assert.equal(parts.v1, want, 'signature verifies');
  assert.ok(Math.abs(Date.now() / 1000 - Number(parts.t)) < 300, 'timestamp is fresh');
  return JSON.parse(hook.body);
}

let readyAsset;

test('upload with a disconnect, resume, transcode, webhook, storage, delivery through the edge', async () => {
  const id = await upload(source, { breakAt: 2 * 1024 * 1024, request: { poster_time_s: 12 } });
  const asset = await waitAsset(id, 'ready');
  assert.ok(Math.abs(asset.thumbnails.poster.time_s - 12) < 0.5, `poster at ${asset.thumbnails.poster.time_s} s`);
  readyAsset = asset;
  assert.equal(asset.passthrough, 'e2e');
  assert.ok(Math.abs(asset.duration_s - 30) < 0.5, `duration ${asset.duration_s}`);
  assert.deepEqual(asset.renditions.map((r) => r.name), ['360p', '240p', 'audio']);

  // The webhook came, signed.
  const hook = await waitFor('asset.ready webhook', async () => hooks.find((h) => h.body.includes(id)));
  const event = verifyHook(hook);
  assert.equal(event.type, 'asset.ready');
  assert.equal(event.data.id, id);
  const tampered = { ...hook, body: hook.body.replace('ready', 'errored') };
  assert.throws(() => verifyHook(tampered));

  // Everything it names is in the bucket.
  const keys = s3Keys(`videos/${id}/`).map((k) => k.slice(`videos/${id}/`.length));
  for (const name of ['index.m3u8', 'manifest.mpd', '360p.m3u8', '240p.m3u8', 'audio.m3u8', '360p-iframes.m3u8', 'poster.jpg', 'sprites.vtt']) {
    assert.ok(keys.includes(name), `${name} stored (${keys.join(' ')})`);
  }

  // The HLS presentation: VOD playlists, I-frame playlists, every segment decodes.
  const get = (name) => fetch(`${origin.url}/vod/${id}/${name}`);
  const mv = await (await get('index.m3u8')).text();
  assert.match(mv, /#EXT-X-I-FRAME-STREAM-INF:.*URI="360p-iframes\.m3u8"/);
  for (const r of ['360p', '240p', 'audio']) {
    const pl = await (await get(`${r}.m3u8`)).text();
    assert.match(pl, /#EXT-X-PLAYLIST-TYPE:VOD/);
    assert.match(pl, /#EXT-X-ENDLIST/);
    const init = Buffer.from(await (await get(pl.match(/#EXT-X-MAP:URI="([^"]+)"/)[1])).arrayBuffer());
    const segs = pl.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.ok(segs.length >= 7, `${r}: ${segs.length} segments`);
    for (const s of segs) {
      const seg = Buffer.from(await (await get(s)).arrayBuffer());
      const f = join(dir, `check-${r}.mp4`);
      writeFileSync(f, Buffer.concat([init, seg]));
      ffmpeg(['-v', 'error', '-i', f, '-f', 'null', '-']);
    }
  }
  // An I-frame entry's byte range is one decodable keyframe.
  const ifr = await (await get('360p-iframes.m3u8')).text();
  const [, len, off] = ifr.match(/#EXT-X-BYTERANGE:(\d+)@(\d+)/);
  const seg0 = ifr.split('\n').find((l) => l && !l.startsWith('#'));
  const range = await fetch(`${origin.url}/vod/${id}/${seg0}`, { headers: { range: `bytes=${off}-${Number(off) + Number(len) - 1}` } });
  assert.equal(range.status, 206);
  assert.equal(Number(range.headers.get('content-length')), Number(len));

  // The trick-play sprites: every VTT entry points inside an existing image of the stated size.
  const vtt = await (await get('sprites.vtt')).text();
  const cues = [...vtt.matchAll(/^(sprite-\d+\.jpg)#xywh=(\d+),(\d+),(\d+),(\d+)$/gm)];
  assert.ok(cues.length >= 10, `${cues.length} thumbnails for 30 s`);
  const sizes = {};
  for (const [, file] of cues) {
    if (sizes[file]) continue;
    const r = await get(file);
    assert.equal(r.status, 200, file);
    const f = join(dir, file);
    writeFileSync(f, Buffer.from(await r.arrayBuffer()));
    const [w, h] = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', f]).toString().trim().split(',').map(Number);
    sizes[file] = { w, h };
  }
  for (const [, file, x, y, w, h] of cues) {
    assert.ok(Number(x) + Number(w) <= sizes[file].w && Number(y) + Number(h) <= sizes[file].h, `${file} ${x},${y},${w},${h} inside ${JSON.stringify(sizes[file])}`);
  }
  const mpd = await (await get('manifest.mpd')).text();
  assert.match(mpd, /type="static"/);
  assert.match(mpd, /http:\/\/dashif\.org\/thumbnail_tile/);

  // Through the edge, with a token: hls.js (the VOD page, seek previews) and dash.js.
  edge = await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a'), EDGE_CONFIG: '{}' });
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: `/vod/${id}/*`, id: 'vod', ttl: 3600 });
  assert.equal((await fetch(`${edge.url}/vod/${id}/index.m3u8`)).status, 401, 'a token is required');
  browser = await launchChromium();
  const page = await browser.newPage();
  await page.goto(`${edge.url}/vod.html?asset=${id}&token=${encodeURIComponent(token)}`);
  await page.waitForFunction(() => window.brookVod?.video.currentTime > 2, null, { timeout: 60000 })
    .catch(async (e) => { throw new Error(`${e.message}\n${JSON.stringify(await page.evaluate(() => window.brookVod?.errors))}`); });
  const levels = await page.evaluate(() => window.brookVod.levels);
  assert.deepEqual(levels.map((l) => l.height).sort((a, b) => a - b), [240, 360]);
  await page.evaluate(() => { window.brookVod.video.currentTime = 20; });
  await page.waitForFunction(() => window.brookVod.video.currentTime > 21, null, { timeout: 30000 });
  const vttThroughEdge = await fetch(`${edge.url}/vod/${id}/sprites.vtt?__token__=${encodeURIComponent(token)}`);
  assert.equal(vttThroughEdge.status, 200, 'the sprites VTT through the edge');
  await page.waitForFunction(() => window.brookVod.cues.length > 0, null, { timeout: 10000 })
    .catch(async (e) => { throw new Error(`${e.message}\n${await page.evaluate(() => JSON.stringify(window.brookVod.vttError ?? null))}`); });
  const preview = await page.evaluate(() => { window.brookVod.showPreviewAt(11); return window.brookVod.preview; });
  assert.match(preview.url, /sprite-\d+\.jpg/);
  const fatal = await page.evaluate(() => window.brookVod.errors.filter((e) => e.fatal));
  assert.deepEqual(fatal, []);

  // A test harness page: the site's CSP allows no inline script.
  const dash = await (await browser.newContext({ bypassCSP: true })).newPage();
  await dash.goto(`${edge.url}/vod.html`);
  await dash.addScriptTag({ path: join(ROOT, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js') });
  await dash.evaluate((url) => {
    document.body.innerHTML = '<video id="d" muted autoplay playsinline></video>';
    const player = window.dashjs.MediaPlayer().create();
    const errors = [];
    player.on(window.dashjs.MediaPlayer.events.ERROR, (e) => errors.push(JSON.stringify(e.error ?? e)));
    player.initialize(document.getElementById('d'), url, true);
    window.dash = { player, errors, video: document.getElementById('d') };
  }, `${edge.url}/vod/${id}/manifest.mpd?__token__=${encodeURIComponent(token)}`);
  await dash.waitForFunction(() => window.dash.video.currentTime > 2, null, { timeout: 60000 })
    .catch(async (e) => { throw new Error(`${e.message}\n${await dash.evaluate(() => window.dash.errors.join('\n'))}`); });
  assert.deepEqual(await dash.evaluate(() => window.dash.errors), []);

  // Deleted: gone from the API, from delivery, and from the bucket.
  const del = await api(`assets/${id}`, { method: 'DELETE' });
  assert.equal(del.status, 202);
  assert.equal((await get('index.m3u8')).status, 404, 'not served once deletion started');
  await waitFor('asset gone', async () => (await api(`assets/${id}`)).status === 404, { timeout: 30000 });
  assert.deepEqual(s3Keys(`videos/${id}/`), []);
});

test('the upload page uploads with tus-js-client, pauses, resumes and links the player', async () => {
  // ~1.5 MB sent in 64 KiB PATCHes: enough of them to pause between.
  const small = join(dir, 'small.mp4');
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine', '-t', '6',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '2M', '-pix_fmt', 'yuv420p', '-c:a', 'aac', small]);
  const size = statSync(small).size;
  const up = await newUpload();
  edge ??= await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a'), EDGE_CONFIG: '{}' });
  browser ??= await launchChromium();
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  const state = () => page.evaluate(() => ({ ...window.brookUpload, upload: null }));
  const explain = async (e) => { throw new Error(`${e.message}\n${JSON.stringify(await state())}\n${consoleLines.join('\n')}`); };
  // Slow the upload down so that the pause lands mid-way.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 400 * 1024 });
  await page.goto(`${edge.url}/upload.html?url=${encodeURIComponent(up.url)}&chunk=${64 * 1024}`);
  await page.setInputFiles('#file', small);
  await page.click('#start');
  await page.waitForFunction(() => window.brookUpload.progress > 20, null, { timeout: 30000 }).catch(explain);
  await page.click('#pause');
  const paused = (await state()).offsets.at(-1);
  await new Promise((r) => setTimeout(r, 1000));
  const still = await state();
  assert.ok(still.offsets.at(-1) === paused || still.offsets.at(-1) - paused <= 64 * 1024, 'nothing more is sent while paused');
  assert.match(await page.textContent('#status'), /paused/);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.click('#resume');
  await page.waitForFunction(() => window.brookUpload.assetId, null, { timeout: 30000 }).catch(explain);
  assert.equal(await page.evaluate(() => window.brookUpload.assetId), up.asset_id);
  await page.waitForFunction(() => window.brookUpload.asset?.status === 'ready', null, { timeout: 120000 }).catch(explain);
  const final = await state();
  assert.equal(final.offsets.at(-1), size, 'the whole file arrived');
  // Offsets only grow: the resume went on from the server's offset (its HEAD
  // answered at least what was acknowledged before the pause), not from 0.
  assert.deepEqual([...final.offsets].sort((a, b) => a - b), final.offsets);
  const afterPause = final.offsets.slice(still.offsets.length);
  assert.ok(afterPause.length > 0 && afterPause[0] >= paused && paused > 0, `resumed from ${afterPause[0]} (paused at ${paused})`);
  const href = await page.getAttribute('#watch', 'href');
  assert.match(href, new RegExp(`asset=${up.asset_id}`));
  assert.deepEqual(final.errors, []);
});

test('bad uploads get their reason and nothing partial becomes visible', async () => {
  // A text file named .mp4, a truncated MP4, and an empty file: each errors with its reason.
  const text = join(dir, 'notes.mp4');
  writeFileSync(text, 'these are my notes, not a video\n'.repeat(100));
  const truncated = join(dir, 'truncated.mp4');
  copyFileSync(source, truncated);
  truncateSync(truncated, Math.floor(statSync(source).size / 3));
  const results = {};
  const ids = [];
  for (const [name, file] of [['text', text], ['truncated', truncated]]) {
    const id = await upload(file);
    ids.push(id);
    results[name] = await waitAsset(id, 'errored', 60000);
    assert.equal((await fetch(`${origin.url}/vod/${id}/index.m3u8`)).status, 404);
    assert.deepEqual(s3Keys(`videos/${id}/`), [], `${name}: nothing stored`);
  }
  // A playlist naming another file on the machine is never opened.
  const playlist = join(dir, 'trick.mp4');
  writeFileSync(playlist, `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n${source}\n#EXT-X-ENDLIST\n`);
  const pid = await upload(playlist);
  ids.push(pid);
  results.playlist = await waitAsset(pid, 'errored', 60000);
  assert.match(results.playlist.error, /not accepted|not a video/i, results.playlist.error);
  assert.match(results.text.error, /not a (video|media)|invalid data/i);
  assert.match(results.truncated.error, /truncated|moov|incomplete/i);
  const empty = await newUpload();
  const created = await tusCreate(empty.url, 0);
  assert.equal(created.status, 201);
  const e = await waitAsset(empty.asset_id, 'errored', 60000);
  assert.match(e.error, /empty|zero|no data/i);
  // The errored webhooks came too.
  await waitFor('asset.errored webhooks', async () => hooks.filter((h) => h.body.includes('asset.errored')).length >= 4);

  // Protocol refusals: no upload, no job.
  const big = await newUpload({ max_size_bytes: 1000 });
  assert.equal((await tusCreate(big.url, 1001)).status, 413);
  assert.equal((await tusCreate((await newUpload()).url, MAX_UPLOAD + 1)).status, 413);
  const expired = await newUpload({ expires_in_s: 1 });
  await new Promise((r) => setTimeout(r, 2100));
  assert.equal((await tusCreate(expired.url, 100)).status, 410);
  const ok = await newUpload();
  const tampered = ok.url.replace(/direct=(.)/, (_m, c) => `direct=${c === 'A' ? 'B' : 'A'}`);
  assert.equal((await tusCreate(tampered, 100)).status, 403);
  assert.equal((await raw(ok.url, { method: 'POST', headers: { 'tus-resumable': '0.2.2', 'upload-length': '10' } })).status, 412);
  const once = await tusCreate(ok.url, 10);
  assert.equal(once.status, 201);
  assert.equal((await tusCreate(ok.url, 10)).status, 409, 'a direct upload URL works once');
  const loc = new URL(once.headers.location, ok.url).href;
  assert.equal((await raw(loc, { method: 'PATCH', headers: { 'content-type': 'text/plain', 'upload-offset': '0' }, body: Buffer.from('x') })).status, 415);
  // API access needs the token.
  assert.equal((await fetch(`${origin.url}/api/v1/assets`)).status, 401);
  assert.equal((await fetch(`${origin.url}/api/v1/assets`, { headers: { authorization: 'Bearer nope' } })).status, 401);
  ids.push(empty.asset_id, big.asset_id, expired.asset_id, ok.asset_id);
  const listed = await (await api('assets')).json();
  for (const a of listed.assets.filter((x) => ids.includes(x.id))) {
    assert.notEqual(a.status, 'ready', `${a.id} did not become ready`);
  }
});

async function underWay(id) {
  return waitFor('transcoding under way', async () => {
    const a = await (await api(`assets/${id}`)).json();
    return a.status === 'processing' && a.progress > 5 ? a : null;
  }, { timeout: 120000, interval: 200 });
}

for (const [how, signal] of [['stopped', 'SIGTERM'], ['killed', 'SIGKILL']]) {
  test(`an origin ${how} mid-transcode (${signal}): the job finishes after the restart, nothing partial is served`, async () => {
    const id = await upload(source);
    await underWay(id);
    if (signal === 'SIGTERM') {
      await origin.stop();
    } else {
      // A crash: the origin and its ffmpeg die at once, nothing is cleaned up.
      process.kill(-origin.pid, 'SIGKILL');
      await origin.exited;
    }
    origin = await startVodOrigin(originPorts);
    const during = await (await api(`assets/${id}`)).json();
    assert.ok(['queued', 'processing'].includes(during.status), `after the restart: ${during.status}`);
    assert.equal((await fetch(`${origin.url}/vod/${id}/index.m3u8`)).status, 404, 'nothing served before it is ready');
    const asset = await waitAsset(id, 'ready');
    const mv = await (await fetch(`${origin.url}/vod/${id}/index.m3u8`)).text();
    assert.match(mv, /360p\.m3u8/);
    assert.equal(asset.renditions.length, 3);
    // Every object the manifests name is there.
    for (const r of ['360p', '240p', 'audio']) {
      const pl = await (await fetch(`${origin.url}/vod/${id}/${r}.m3u8`)).text();
      for (const seg of pl.split('\n').filter((l) => l && !l.startsWith('#'))) {
        assert.equal((await fetch(`${origin.url}/vod/${id}/${seg}`, { method: 'HEAD' })).status, 200, seg);
      }
    }
  });
}

test('an asset deleted while it is being made leaves nothing behind', async () => {
  const id = await upload(source);
  await underWay(id);
  const del = await api(`assets/${id}`, { method: 'DELETE' });
  assert.equal(del.status, 202);
  const st = await fetch(`${origin.url}/vod/${id}/status`);
  if (st.status === 200) assert.equal((await st.json()).status, 'deleting');
  else assert.equal(st.status, 404);
  assert.equal((await fetch(`${origin.url}/vod/${id}/index.m3u8`)).status, 404);
  await waitFor('asset gone', async () => (await api(`assets/${id}`)).status === 404, { timeout: 120000, interval: 250 });
  // Past the point where the job would have stored its objects.
  await new Promise((r) => setTimeout(r, 3000));
  assert.deepEqual(s3Keys(`videos/${id}/`), []);
  assert.deepEqual(s3Keys(`sources/${id}`), []);
  assert.ok(!hooks.some((h) => h.body.includes(id) && h.body.includes('asset.ready')), 'no asset.ready for it');
});

test('live-to-VOD recordings are assets too: listed, played, deleted from the same storage', async () => {
  const publisher = startPublisher(origin.srtPort, { seconds: 5 });
  await publisher.exited;
  const rec = await waitFor('the recording', async () => {
    const list = (await (await api('recordings')).json()).recordings;
    return list.find((r) => r.stream === 'cam1' && r.status === 'ready');
  }, { timeout: 30000, interval: 250 }).catch(async (e) => {
    throw new Error(`${e.message}: ${await (await api('recordings')).text()}\n${publisher.log}\n${origin.log.slice(-3000)}`);
  });
  assert.ok(rec.duration_s > 3, `duration ${rec.duration_s}`);
  const mv = await fetch(rec.playback.hls);
  assert.equal(mv.status, 200);
  const variant = (await mv.text()).split('\n').find((l) => l && !l.startsWith('#'));
  const base = rec.playback.hls.replace(/index\.m3u8$/, '');
  const pl = await (await fetch(base + variant)).text();
  assert.match(pl, /#EXT-X-ENDLIST/);
  const init = Buffer.from(await (await fetch(base + pl.match(/#EXT-X-MAP:URI="([^"]+)"/)[1])).arrayBuffer());
  const seg = Buffer.from(await (await fetch(base + pl.split('\n').find((l) => l && !l.startsWith('#')))).arrayBuffer());
  const f = join(dir, 'recording.mp4');
  writeFileSync(f, Buffer.concat([init, seg]));
  ffmpeg(['-v', 'error', '-i', f, '-f', 'null', '-']);
  assert.ok(s3Keys(`live/cam1/${rec.session}/`).length > 3, 'the recording is in the bucket');
  const del = await api(`recordings/cam1/${rec.session}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.deepEqual(s3Keys(`live/cam1/${rec.session}/`), []);
  assert.equal((await fetch(rec.playback.hls)).status, 404);
  assert.equal((await api(`recordings/cam1/${rec.session}`)).status, 404);
});
