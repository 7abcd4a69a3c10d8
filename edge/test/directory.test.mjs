// The stream directory (docs/scale.md, "Stream directory") on the real wasm
// build in Miniflare: origins' heartbeats at POST /_brook/directory (token,
// body, allow rules), live requests sent to the origin that registered the
// stream, 404s for streams nobody serves (without asking any origin), a
// deregistration and an expiry, the static fallback. The origins are fake
// node http servers; tests/e2e/directory.test.mjs runs real brook-origins.
//
//   node --test edge/test/directory.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';

const EDGE = 'http://edge.test';
const TOKEN = 'directory-secret-0123456789';
const PLAYLIST = (who) => `#EXTM3U\n#EXT-X-VERSION:9\n## ${who}\n`;
// origins.timeout_ms: well above the time bounds asserted below (a quick
// answer is one under SLACK_MS), so an answer that waited for a timeout
// fails them even on the loaded 2-core CI host.
const TIMEOUT_MS = 8000;
const SLACK_MS = 5000;

/** A fake origin serving `streams`' multivariant playlists and one segment each. */
async function startOrigin(name, streams) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url);
    const m = new URL(req.url, 'http://x').pathname.match(/^\/live\/([^/]+)\/(.+)$/);
    if (!m || !streams.includes(m[1])) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such stream\n');
      return;
    }
    if (m[2] === 'index.m3u8') {
      res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache' })
        .end(PLAYLIST(name));
    } else {
      res.writeHead(200, { 'content-type': 'video/iso.segment', 'cache-control': 'public, max-age=31536000, immutable' })
        .end(Buffer.from(`${name}:${m[1]}:${m[2]}`));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, seen, url: `http://127.0.0.1:${server.address().port}` };
}

function startWorker(staticUrl, directory, rest = {}) {
  return new Miniflare(workerOptions({
    ...rest,
    directory: true,
    bindings: {
      ORIGIN_URL: staticUrl,
      EDGE_CONFIG: JSON.stringify({
        auth: { required: false },
        origins: { timeout_ms: TIMEOUT_MS, directory },
      }),
      DIRECTORY_TOKEN: TOKEN,
      METRICS_TOKEN: 'metrics-secret',
    },
  }));
}

let staticOrigin, c, mf;
before(async () => {
  staticOrigin = await startOrigin('static', ['cam1']);
  c = await startOrigin('c', ['cam3']);
  mf = startWorker(staticOrigin.url, { enabled: true, allow: ['http://127.0.0.1:*', 'https://*.origins.example'] });
  await mf.ready;
});
after(async () => {
  await mf?.dispose();
  for (const o of [staticOrigin, c]) o?.server.close();
});

function heartbeat(body, { token = TOKEN, method = 'POST', worker = mf } = {}) {
  return worker.dispatchFetch(`${EDGE}/_brook/directory`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: method === 'POST' ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined,
  });
}

async function metrics(worker = mf) {
  const res = await worker.dispatchFetch(`${EDGE}/_brook/metrics`, { headers: { authorization: 'Bearer metrics-secret' } });
  return res.text();
}

function count(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** A GET through the edge, timed. */
async function get(path, worker = mf) {
  const t0 = Date.now();
  const res = await worker.dispatchFetch(`${EDGE}${path}`);
  const body = await res.text();
  return { status: res.status, body, ms: Date.now() - t0 };
}

test('heartbeats need the token, a good body and an allowed URL', async () => {
  const hb = { origin: 'c', url: c.url, streams: ['cam3'], ttl_s: 30 };
  for (const [opts, status] of [
    [{ token: null }, 401],
    [{ token: 'wrong-token-0123456789' }, 401],
    [{ token: `${TOKEN}x` }, 401],
  ]) {
    const res = await heartbeat(hb, opts);
    assert.equal(res.status, status, JSON.stringify(opts));
    await res.arrayBuffer();
  }
  const get405 = await heartbeat(null, { method: 'GET' });
  assert.equal(get405.status, 405);
  assert.equal(get405.headers.get('allow'), 'POST');
  await get405.arrayBuffer();
  for (const [body, status] of [
    ['{', 400],
    [{ ...hb, streams: ['../x'] }, 400],
    [{ ...hb, ttl_s: 0 }, 400],
    [{ ...hb, origin: 'a b' }, 400],
    [{ ...hb, extra: 1 }, 400],
    [{ ...hb, url: 'https://evil.example' }, 403],
    [{ ...hb, url: `${c.url.replace('http:', 'https:')}` }, 403],
    [{ ...hb, url: 'https://a.origins.example.evil.example' }, 403],
    // fetch would connect to evil.example: refused as a URL (400) before
    // the allow rules are asked.
    [{ ...hb, url: 'https://evil.example\\.origins.example' }, 400],
    [{ ...hb, url: 'http://127.0.0.1@evil.example' }, 400],
    [{ ...hb, url: 'https://evil.example%2f.origins.example' }, 400],
    [{ ...hb, url: `http://127.0.0.1/${'a'.repeat(600)}` }, 400],
  ]) {
    const res = await heartbeat(body);
    assert.equal(res.status, status, JSON.stringify(body));
    await res.arrayBuffer();
  }
  // Over 80 KiB: refused as too large (a little over, so that the runtime's
  // answer before the rest of the body is read does not race the upload).
  const big = await heartbeat({ ...hb, streams: Array.from({ length: 1600 }, (_, i) => `stream-with-a-rather-long-name-to-fill-the-body-${i}`) });
  assert.equal(big.status, 413);
  await big.arrayBuffer();
  // More streams than one origin may list: 400.
  const many = await heartbeat({ ...hb, streams: Array.from({ length: 1025 }, (_, i) => `s${i}`) });
  assert.equal(many.status, 400);
  await many.arrayBuffer();
  // None of them registered anything.
  assert.equal((await get('/live/cam3/index.m3u8')).status, 404);
  const m = await metrics();
  assert.equal(count(m, 'brook_edge_directory_registrations_total{result="unauthorized"}'), 3);
  assert.equal(count(m, 'brook_edge_directory_registrations_total{result="invalid"}'), 11);
  assert.equal(count(m, 'brook_edge_directory_registrations_total{result="refused"}'), 3);
});

test('a stream nobody registered is a quick 404, and no origin is asked', async (t) => {
  const before = staticOrigin.seen.length + c.seen.length;
  for (const path of ['/live/nobody/index.m3u8', '/live/cam1/index.m3u8', '/live/nobody/0a1b2c3d4e5f6a7b/video-seg1.m4s']) {
    const r = await get(path);
    assert.equal(r.status, 404, path);
    t.diagnostic(`${path}: 404 in ${r.ms} ms`);
    assert.ok(r.ms < SLACK_MS, `${path} answered in ${r.ms} ms`);
  }
  assert.equal(staticOrigin.seen.length + c.seen.length, before, 'no origin request');
});

test('a registered stream plays from its origin; deregistered, it is a 404 at once', async () => {
  const res = await heartbeat({ origin: 'c', url: c.url, streams: ['cam3'], ttl_s: 30 });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { result: 'registered', origins: 1 });
  const playlist = await get('/live/cam3/index.m3u8');
  assert.equal(playlist.status, 200);
  assert.match(playlist.body, /## c$/m, 'origin c answered');
  const seg = await get('/live/cam3/0a1b2c3d4e5f6a7b/video-seg1.m4s');
  assert.equal(seg.status, 200);
  assert.equal(seg.body, 'c:cam3:0a1b2c3d4e5f6a7b/video-seg1.m4s');
  assert.ok(c.seen.includes('/live/cam3/index.m3u8'));
  assert.ok(!staticOrigin.seen.some((u) => u.startsWith('/live/cam3/')), 'the static origin is not asked');
  // Within found_ttl_ms (2 s) the isolate asks the directory once.
  for (let i = 0; i < 5; i++) assert.equal((await get('/live/cam3/index.m3u8')).status, 200);
  let m = await metrics();
  assert.ok(count(m, 'brook_edge_directory_cache_hits_total') >= 5, m);
  assert.ok(count(m, 'brook_edge_directory_lookups_total{result="found"}') >= 1);
  assert.equal(count(m, 'brook_edge_origin_requests_total{origin="c"}') >= 2, true);

  const gone = await heartbeat({ origin: 'c', url: c.url, streams: [], ttl_s: 30 });
  assert.equal(gone.status, 200);
  assert.deepEqual(await gone.json(), { result: 'removed', origins: 0 });
  const r = await get('/live/cam3/index.m3u8');
  assert.equal(r.status, 404, 'this isolate forgot its answer');
  m = await metrics();
  assert.equal(count(m, 'brook_edge_directory_registrations_total{result="registered"}'), 1);
  assert.equal(count(m, 'brook_edge_directory_registrations_total{result="removed"}'), 1);
});

test('an origin that stops sending heartbeats is gone ttl_s (+ found_ttl_ms) later', async (t) => {
  const res = await heartbeat({ origin: 'c', url: c.url, streams: ['cam3'], ttl_s: 1 });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  const registeredAt = Date.now();
  assert.equal((await get('/live/cam3/index.m3u8')).status, 200);
  // Documented bound: ttl_s (1 s) + found_ttl_ms (2 s); asserted with
  // SLACK_MS more (a loaded host); polled every 200 ms.
  const bound = 1000 + 2000;
  let last;
  while (Date.now() - registeredAt < bound + SLACK_MS) {
    last = await get('/live/cam3/index.m3u8');
    if (last.status === 404) break;
    assert.equal(last.status, 200);
    await sleep(200);
  }
  const took = Date.now() - registeredAt;
  t.diagnostic(`gone ${took} ms after the heartbeat (documented bound ${bound} ms); the 404 took ${last.ms} ms`);
  assert.equal(last.status, 404, `still ${last.status} after ${took} ms`);
  assert.ok(took >= 1000, `gone after ${took} ms, before its ttl`);
  assert.ok(took <= bound + SLACK_MS, `gone after ${took} ms`);
  assert.ok(last.ms < SLACK_MS, `the 404 took ${last.ms} ms`);
});

test('a stream two origins registered stays on the first, whatever the heartbeats', async () => {
  const d = await startOrigin('d', ['cam5']);
  const e = await startOrigin('e', ['cam5']);
  try {
    const beat = async (o, streams = ['cam5']) => {
      const res = await heartbeat({ origin: o === d ? 'd' : 'e', url: o.url, streams, ttl_s: 30 });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    };
    await beat(d);
    await beat(e);
    for (let i = 0; i < 3; i++) {
      for (const o of [e, d]) {
        // The heartbeat made this isolate forget its answer: asked again.
        await beat(o);
        const r = await get('/live/cam5/index.m3u8');
        assert.equal(r.status, 200);
        assert.match(r.body, /## d$/m, `after ${o === d ? 'd' : 'e'}'s heartbeat ${i}`);
      }
    }
    // d leaves: e serves; d back: after e.
    await beat(d, []);
    assert.match((await get('/live/cam5/index.m3u8')).body, /## e$/m);
    await beat(d);
    assert.match((await get('/live/cam5/index.m3u8')).body, /## e$/m);
    await beat(d, []);
    await beat(e, []);
  } finally {
    d.server.close();
    e.server.close();
  }
});

test('fallback_to_static: unregistered streams go to the static origin', async () => {
  const fb = startWorker(staticOrigin.url, { enabled: true, fallback_to_static: true, allow: ['http://127.0.0.1:*'] });
  try {
    await fb.ready;
    const cam1 = await get('/live/cam1/index.m3u8', fb);
    assert.equal(cam1.status, 200);
    assert.match(cam1.body, /## static$/m);
    const res = await heartbeat({ origin: 'c', url: c.url, streams: ['cam3'], ttl_s: 30 }, { worker: fb });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const cam3 = await get('/live/cam3/index.m3u8', fb);
    assert.equal(cam3.status, 200);
    assert.match(cam3.body, /## c$/m);
    // Unknown everywhere: the static origin's own 404.
    const before = staticOrigin.seen.length;
    assert.equal((await get('/live/nobody/index.m3u8', fb)).status, 404);
    assert.equal(staticOrigin.seen.length, before + 1);
  } finally {
    await fb.dispose();
  }
});

test('without origins.directory.enabled: no registration, static origins only', async () => {
  const off = startWorker(staticOrigin.url, { allow: ['http://127.0.0.1:*'] });
  try {
    await off.ready;
    const res = await heartbeat({ origin: 'c', url: c.url, streams: ['cam3'], ttl_s: 30 }, { worker: off });
    assert.equal(res.status, 404);
    await res.arrayBuffer();
    assert.equal((await get('/live/cam1/index.m3u8', off)).status, 200);
    assert.equal((await get('/live/cam3/index.m3u8', off)).status, 404, "the static origin's 404");
    assert.ok(staticOrigin.seen.includes('/live/cam3/index.m3u8'));
  } finally {
    await off.dispose();
  }
});

test('the directory survives a restart of its Durable Object (kept in its storage)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brook-directory-'));
  const config = { enabled: true, allow: ['http://127.0.0.1:*'] };
  try {
    const first = startWorker(staticOrigin.url, config, { durableObjectsPersist: dir });
    await first.ready;
    const res = await heartbeat({ origin: 'c', url: c.url, streams: ['cam3'], ttl_s: 60 }, { worker: first });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    await first.dispose();
    const second = startWorker(staticOrigin.url, config, { durableObjectsPersist: dir });
    try {
      await second.ready;
      const r = await get('/live/cam3/index.m3u8', second);
      assert.equal(r.status, 200);
      assert.match(r.body, /## c$/m);
      assert.equal((await get('/live/cam1/index.m3u8', second)).status, 404);
    } finally {
      await second.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
