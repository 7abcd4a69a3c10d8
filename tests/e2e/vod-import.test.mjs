// Assets from a URL end to end (POST /api/v1/assets {"input_url"}), with real
// peers: brook-origin (storage on the local disk), ffmpeg (the source, the
// transcoder, the decode check), a small node HTTP server the origin fetches
// from (the file, redirects, a 404, garbage, a file too large, a 503 once, a
// fetch that stalls) and a webhook receiver.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, freePort, waitFor } from './lib.mjs';

const API_TOKEN = 'import-test-api-token-0123456789';
const WEBHOOK_SECRET = 'whsec-import-test-0123456789abcdef';
const MAX_IMPORT = 4 * 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'brook-import-'));
let media, files, hooks = [], hookServer, hookUrl, origin, originPorts, strict;
/** GETs the file server saw, by path (with query). */
const seen = new Map();
/** The first GET of /stall.mp4 sends half the file and then nothing, until this is called. */
let releaseStall = () => {};

function ffmpeg(args) {
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function originConfig({ dataDir, storageDir, allowPrivate }) {
  return `
[storage]
kind = "fs"
dir = "${storageDir}"

[ladder]
rungs = [{ height = 360, bitrate_kbps = 600 }, { height = 240, bitrate_kbps = 300 }]
audio_bitrate_kbps = 64

[vod]
enabled = true
data_dir = "${dataDir}"
api_token = "${API_TOKEN}"
webhook_url = "${hookUrl}"
webhook_secret = "${WEBHOOK_SECRET}"
public_url = "ORIGIN_URL"
import_max_bytes = ${MAX_IMPORT}
import_max_redirects = 3
import_read_timeout_s = 5
import_allow_private = ${allowPrivate}

[vod.encode]
preset = "ultrafast"

[vod.thumbnails]
interval_secs = 1
`;
}

async function startImportOrigin({ allowPrivate = true, httpPort, dataDir, storageDir } = {}) {
  const o = { dataDir: dataDir ?? mkdtempSync(join(tmpdir(), 'brook-import-data-')), storageDir: storageDir ?? mkdtempSync(join(tmpdir(), 'brook-import-store-')) };
  const http = httpPort ?? await freePort();
  const config = originConfig({ ...o, allowPrivate }).replace('ORIGIN_URL', `http://127.0.0.1:${http}`);
  const started = await startOrigin({ config, httpPort: http });
  return Object.assign(started, o);
}

const api = (o, path, init = {}) => fetch(`${o.url}/api/v1/${path}`, {
  ...init, headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
});
const importAsset = (o, body) => api(o, 'assets', { method: 'POST', body: JSON.stringify(body) });

async function waitAsset(id, want, timeout = 120000) {
  return waitFor(`asset ${id} ${want}`, async () => {
    const a = await (await api(origin, `assets/${id}`)).json();
    if (a.status === 'errored' && want !== 'errored') throw new Error(`asset errored: ${a.error}`);
    return a.status === want ? a : null;
  }, { timeout, interval: 300 });
}

/** Every file under `root`, relative. */
function walk(root, rel = '') {
  if (!existsSync(join(root, rel))) return [];
  return readdirSync(join(root, rel), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(root, join(rel, e.name)) : [join(rel, e.name)]));
}

/** An errored asset: its reason, its webhook, and nothing of it in storage or in the work directory. */
async function assertErroredCleanly(id, reason) {
  const a = await waitAsset(id, 'errored');
  assert.match(a.error, reason);
  const hook = await waitFor(`asset.errored webhook for ${id}`, () => hooks.find((h) => h.type === 'asset.errored' && h.data.id === id));
  assert.match(hook.data.error, reason);
  assert.deepEqual(walk(origin.storageDir).filter((f) => f.includes(id)), [], 'nothing stored');
  assert.deepEqual(walk(join(origin.dataDir, 'work')).filter((f) => f.includes(id)), [], 'no work files left (no .part)');
  assert.equal((await fetch(`${origin.url}/vod/${id}/index.m3u8`)).status, 404);
  return a;
}

before(async () => {
  // The source: 2 s of 640x360 with sound, the moov first.
  media = join(dir, 'ad.mp4');
  ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart', media]);
  const bytes = readFileSync(media);
  files = createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    seen.set(req.url, (seen.get(req.url) ?? 0) + 1);
    const n = seen.get(req.url);
    switch (u.pathname) {
      case '/ad.mp4':
        return res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': bytes.length }).end(bytes);
      case '/redirect': // relative Location, then an absolute one
        return res.writeHead(302, { location: u.searchParams.get('to') ?? '/ad.mp4' }).end();
      case '/loop':
        return res.writeHead(307, { location: `/loop?n=${Number(u.searchParams.get('n') ?? 0) + 1}` }).end();
      case '/missing.mp4':
        return res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
      case '/garbage.mp4': {
        const junk = Buffer.alloc(200 * 1024);
        for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
        return res.writeHead(200, { 'content-type': 'video/mp4' }).end(junk);
      }
      case '/huge.mp4': { // chunked, no Content-Length: only counting stops it
        res.writeHead(200, { 'content-type': 'video/mp4' });
        const chunk = Buffer.alloc(256 * 1024, 1);
        let sent = 0;
        const more = () => {
          while (sent < MAX_IMPORT * 2) {
            sent += chunk.length;
            if (!res.write(chunk)) return res.once('drain', more);
          }
          return res.end();
        };
        res.on('close', () => { sent = Infinity; });
        return more();
      }
      case '/flaky.mp4': // a server failing once
        if (n === 1) return res.writeHead(503, { 'retry-after': '1' }).end('busy');
        return res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': bytes.length }).end(bytes);
      case '/stall.mp4':
        if (n === 1) {
          res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': bytes.length });
          res.write(bytes.subarray(0, bytes.length >> 1));
          releaseStall = () => res.destroy();
          return undefined;
        }
        return res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': bytes.length }).end(bytes);
      default:
        return res.writeHead(404).end();
    }
  });
  await new Promise((r) => files.listen(0, '127.0.0.1', r));
  hookServer = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { hooks.push(JSON.parse(body)); res.writeHead(200).end('ok'); });
  });
  await new Promise((r) => hookServer.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${hookServer.address().port}/hook`;
  origin = await startImportOrigin();
  originPorts = { httpPort: origin.httpPort, dataDir: origin.dataDir, storageDir: origin.storageDir };
});

after(async () => {
  releaseStall();
  await Promise.all([origin, strict].map((p) => p?.stop()));
  await new Promise((r) => files.close(r));
  await new Promise((r) => hookServer.close(r));
});

const fileUrl = (path) => `http://127.0.0.1:${files.address().port}${path}`;

test('an asset from a URL: fetched, transcoded, stored, served; the HLS decodes', async () => {
  const r = await importAsset(origin, { input_url: fileUrl('/ad.mp4'), passthrough: 'ad-42' });
  assert.equal(r.status, 201, await r.clone().text());
  const created = await r.json();
  assert.equal(created.input_url, fileUrl('/ad.mp4'));
  assert.ok(['queued', 'processing'].includes(created.status), created.status);
  const a = await waitAsset(created.id, 'ready');
  assert.equal(a.passthrough, 'ad-42');
  assert.equal(a.input_url, fileUrl('/ad.mp4'));
  assert.deepEqual(a.renditions.map((x) => x.name), ['360p', '240p', 'audio']);
  assert.equal(a.source.width, 640);
  assert.ok(a.timings_ms.download >= 0, JSON.stringify(a.timings_ms));
  // ffmpeg decodes every rendition through the multivariant playlist, without an error.
  const hls = `${origin.url}/vod/${a.id}/index.m3u8`;
  const decoded = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-i', hls, '-map', '0', '-f', 'null', '-']);
  assert.equal(decoded.status, 0, decoded.stderr.toString());
  assert.equal(decoded.stderr.toString(), '');
  const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'json', `${origin.url}/vod/${a.id}/360p.m3u8`]).toString());
  assert.ok(Math.abs(Number(probe.format.duration) - 2) < 0.5, probe.format.duration);
  const hook = await waitFor('asset.ready webhook', () => hooks.find((h) => h.type === 'asset.ready' && h.data.id === a.id));
  assert.equal(hook.data.input_url, fileUrl('/ad.mp4'));
  // The fetched file is not kept.
  assert.deepEqual(walk(join(origin.dataDir, 'work')).filter((f) => f.includes(a.id)), []);
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  assert.match(metrics, /brook_vod_import_fetches_total\{result="fetched"\} [1-9]/);
});

test('dedupe: concurrent and later requests for one URL get one asset, fetched once', async () => {
  const url = fileUrl('/ad.mp4?v=dedupe');
  const answers = await Promise.all([1, 2, 3, 4].map(() => importAsset(origin, { input_url: url, dedupe: true })));
  const statuses = answers.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 200, 201]);
  const ids = new Set(await Promise.all(answers.map(async (r) => (await r.json()).id)));
  assert.equal(ids.size, 1);
  const [id] = ids;
  await waitAsset(id, 'ready');
  // The same URL in another spelling (scheme and host case, default path
  // resolution, a fragment) is the same URL.
  const same = fileUrl('/x/../ad.mp4?v=dedupe#t=1').replace('http://', 'HTTP://');
  const again = await importAsset(origin, { input_url: same, dedupe: true });
  assert.equal(again.status, 200);
  const body = await again.json();
  assert.equal(body.id, id);
  assert.equal(body.status, 'ready');
  assert.equal(seen.get('/ad.mp4?v=dedupe'), 1, 'fetched once');
  // Without dedupe: a new asset of the same URL.
  const fresh = await importAsset(origin, { input_url: url });
  assert.equal(fresh.status, 201);
  const freshId = (await fresh.json()).id;
  assert.notEqual(freshId, id);
  // Dedupe with other options: 409, pointing at the asset (not someone
  // else's asset for this caller's needs).
  const other = await importAsset(origin, { input_url: url, dedupe: true, passthrough: 'someone-else' });
  assert.equal(other.status, 409);
  assert.ok(other.headers.get('location').endsWith(`/api/v1/assets/${id}`));
  // An asset made without dedupe is never a dedupe request's answer (the
  // edge dedupes ad creatives that ad servers name): a new one is made.
  const only = fileUrl('/ad.mp4?v=private');
  const priv = await (await importAsset(origin, { input_url: only })).json();
  const ad = await importAsset(origin, { input_url: only, dedupe: true });
  assert.equal(ad.status, 201);
  assert.notEqual((await ad.json()).id, priv.id);
  assert.equal((await api(origin, `assets/${freshId}`, { method: 'DELETE' })).status, 202);
});

test('redirects are followed (relative and absolute), a loop is cut off', async () => {
  const r = await importAsset(origin, { input_url: fileUrl(`/redirect?to=${encodeURIComponent(fileUrl('/redirect?to=/ad.mp4'))}`) });
  assert.equal(r.status, 201);
  const a = await waitAsset((await r.json()).id, 'ready');
  assert.equal(a.renditions.length, 3);
  const loop = await importAsset(origin, { input_url: fileUrl('/loop') });
  assert.equal(loop.status, 201);
  await assertErroredCleanly((await loop.json()).id, /more than 3 redirects/);
});

test('a URL that 404s, garbage, a file over the limit: errored with the reason, nothing left', async () => {
  const missing = await (await importAsset(origin, { input_url: fileUrl('/missing.mp4') })).json();
  await assertErroredCleanly(missing.id, /answered HTTP 404/);
  const garbage = await (await importAsset(origin, { input_url: fileUrl('/garbage.mp4') })).json();
  await assertErroredCleanly(garbage.id, /not a video file we can read: Invalid data/);
  const huge = await (await importAsset(origin, { input_url: fileUrl('/huge.mp4') })).json();
  await assertErroredCleanly(huge.id, new RegExp(`larger than the limit of ${MAX_IMPORT} bytes`));
  // A request's own smaller limit, with the Content-Length known up front.
  const small = await (await importAsset(origin, { input_url: fileUrl('/ad.mp4?v=small'), max_size_bytes: 1000 })).json();
  await assertErroredCleanly(small.id, /larger than the limit of 1000 bytes/);
  // An errored asset does not answer a dedupe request: a new one is made.
  const retry = await importAsset(origin, { input_url: fileUrl('/missing.mp4'), dedupe: true });
  assert.equal(retry.status, 201);
  assert.notEqual((await retry.json()).id, missing.id);
});

test('a server error is retried: the next attempt fetches the file', async () => {
  const r = await importAsset(origin, { input_url: fileUrl('/flaky.mp4') });
  assert.equal(r.status, 201);
  const a = await waitAsset((await r.json()).id, 'ready');
  assert.equal(a.error, null);
  assert.equal(seen.get('/flaky.mp4'), 2);
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  assert.match(metrics, /brook_vod_import_fetches_total\{result="retried"\} [1-9]/);
});

test('bad requests are refused before an asset is made', async () => {
  const before = (await (await api(origin, 'assets')).json()).assets.length;
  for (const [body, status, reason] of [
    [{}, 400, /input_url is required/],
    [{ input_url: 'ftp://example.com/a.mp4' }, 400, /http or https/],
    [{ input_url: 'file:///etc/passwd' }, 400, /http or https/],
    [{ input_url: 'not a url' }, 400, /not a URL/],
    [{ input_url: 'http://user:pw@example.com/a.mp4' }, 400, /credentials/],
    [{ input_url: fileUrl('/ad.mp4'), max_size_bytes: MAX_IMPORT + 1 }, 400, /max_size_bytes/],
    [{ input_url: fileUrl('/ad.mp4'), bogus: 1 }, 400, /unknown field/],
    [{ input_url: 'http://no-such-host.invalid/a.mp4' }, 422, /does not resolve/],
  ]) {
    const r = await importAsset(origin, body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match((await r.json()).error, reason, JSON.stringify(body));
  }
  const anonymous = await fetch(`${origin.url}/api/v1/assets`, { method: 'POST', body: JSON.stringify({ input_url: fileUrl('/ad.mp4') }) });
  assert.equal(anonymous.status, 401);
  assert.equal((await (await api(origin, 'assets')).json()).assets.length, before, 'no asset made');
});

test('by default, loopback, private and link-local hosts are refused (422) and no asset is made', async () => {
  strict = await startImportOrigin({ allowPrivate: false });
  const port = files.address().port;
  const fetchedBefore = seen.get('/ad.mp4');
  for (const url of [
    fileUrl('/ad.mp4'),
    `http://localhost:${port}/ad.mp4`,
    `http://[::1]:${port}/ad.mp4`,
    `http://[::ffff:127.0.0.1]:${port}/ad.mp4`,
    `http://2130706433:${port}/ad.mp4`,
    'http://10.1.2.3/ad.mp4',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.64.0.1/ad.mp4',
  ]) {
    const r = await importAsset(strict, { input_url: url, dedupe: true });
    assert.equal(r.status, 422, url);
    assert.match((await r.json()).error, /loopback|private|link-local|CGNAT/, url);
  }
  assert.deepEqual((await (await api(strict, 'assets')).json()).assets, []);
  assert.equal(seen.get('/ad.mp4'), fetchedBefore, 'the strict origin never fetched');
  const metrics = await (await fetch(`${strict.url}/metrics`)).text();
  assert.match(metrics, /brook_vod_import_requests_total\{result="refused"\} 8/);
  await strict.stop();
  strict = undefined;
});

test('an origin killed mid-fetch fetches again from the start after the restart', async () => {
  const r = await importAsset(origin, { input_url: fileUrl('/stall.mp4') });
  assert.equal(r.status, 201);
  const { id } = await r.json();
  await waitFor('the first fetch under way', () => seen.get('/stall.mp4') === 1);
  await waitFor('part of it on disk', () => walk(join(origin.dataDir, 'work')).some((f) => f.includes(id) && f.endsWith('.part')));
  // A crash: nothing is cleaned up.
  process.kill(-origin.pid, 'SIGKILL');
  await origin.exited;
  releaseStall();
  origin = await startImportOrigin(originPorts);
  const a = await waitAsset(id, 'ready');
  assert.equal(seen.get('/stall.mp4'), 2, 'fetched again, whole');
  assert.equal(a.renditions.length, 3);
  assert.deepEqual(walk(join(origin.dataDir, 'work')).filter((f) => f.includes(id)), []);
});
