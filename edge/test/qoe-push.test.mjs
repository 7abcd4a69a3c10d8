// The edge pushes viewers' watch and stall time to the origins
// (edge/src/qoe/push.rs, edge/src/bindings/qoe.rs; docs/qoe.md "Rebuffering
// in Prometheus"), on the real wasm build in Miniflare against two fake
// origins: the beacons' deltas summed per live stream, the bearer token
// presented, a stream the first origin does not have offered to the next,
// an origin that fails skipped, at most one push per 10 s, VOD beacons and
// totals-only beacons not pushed.
//
//   node --test edge/test/qoe-push.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';

const EDGE = 'http://edge.test';
const KEY = '8f1e0c47a3b2d5e6f708192a3b4c5d6e';
const PUSH_TOKEN = 'push-secret-0123456789';

function sign(acl) {
  const signed = `exp=${Math.floor(Date.now() / 1000) + 600}~acl=${acl}~kid=k1`;
  return `${signed}~hmac=${createHmac('sha256', Buffer.from(KEY, 'hex')).update(signed).digest('hex')}`;
}

/** A fake origin that has `streams` and records every push; `fail` makes it answer 500. */
async function fakeOrigin(streams) {
  const o = { pushes: [], fail: false };
  o.server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.url !== '/qoe/push' || req.method !== 'POST') { res.writeHead(404).end(); return; }
      o.pushes.push({ auth: req.headers.authorization, body: JSON.parse(body) });
      if (o.fail) { res.writeHead(500).end('down'); return; }
      const unknown = Object.keys(JSON.parse(body).streams).filter((s) => !streams.includes(s));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ unknown }));
    });
  });
  o.server.listen(0, '127.0.0.1');
  await once(o.server, 'listening');
  o.url = `http://127.0.0.1:${o.server.address().port}`;
  return o;
}

let a;
let b;
let mf;

before(async () => {
  a = await fakeOrigin(['cam1']);
  b = await fakeOrigin(['cam1', 'cam2']);
  mf = new Miniflare(workerOptions({
    bindings: {
      ORIGIN_URL: a.url,
      EDGE_CONFIG: JSON.stringify({
        auth: { required: true },
        origins: { regions: [{ id: 'a', url: a.url }, { id: 'b', url: b.url }] },
      }),
      TOKEN_KEYS: `k1:${KEY}`,
      METRICS_TOKEN: 'metrics-secret',
      QOE_PUSH_TOKEN: PUSH_TOKEN,
    },
  }));
  await mf.ready;
});

after(async () => {
  await mf?.dispose();
  a?.server.close();
  b?.server.close();
});

let n = 0;
const beacon = async (path, fields) => {
  n += 1;
  const body = {
    v: 1, sid: `s${n}`, ev: 'hb', started: true, startup_ms: 500, stalls: 0, stall_ms: 0, ...fields,
  };
  const res = await mf.dispatchFetch(`${EDGE}${path}/qoe?__token__=${encodeURIComponent(sign(`${path}/*`))}`, {
    method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'text/plain' },
  });
  assert.equal(res.status, 204, await res.text());
};

const waitFor = async (what, fn, ms = 15000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
};

test('deltas summed per live stream go to the origin that has the stream, at most once per 10 s', async () => {
  // Totals-only beacons (older pages) and VOD beacons are not pushed.
  await beacon('/live/cam1', { watch_ms: 9000 });
  await beacon('/vod/0123456789abcdef0123456789abcdef', { watch_ms: 9000, d_watch_ms: 9000, d_stall_ms: 0, d_stalls: 0 });
  await beacon('/live/cam1', { watch_ms: 10000, stall_ms: 800, stalls: 1, d_watch_ms: 10000, d_stall_ms: 800, d_stalls: 1 });
  const first = await waitFor('the first push', () => a.pushes[0]);
  const t0 = Date.now();
  assert.equal(first.auth, `Bearer ${PUSH_TOKEN}`);
  assert.deepEqual(first.body, { v: 1, streams: { cam1: { watch_ms: 10000, stall_ms: 800, stalls: 1 } } });
  assert.equal(b.pushes.length, 0, 'origin a had everything');

  // Two streams within the next 10 s: one push, when it is due; cam2 is
  // not origin a's, so it goes on to b.
  await beacon('/live/cam1', { watch_ms: 5000, d_watch_ms: 5000, d_stall_ms: 0, d_stalls: 0 });
  await beacon('/live/cam1', { watch_ms: 6000, stall_ms: 100, stalls: 1, d_watch_ms: 6000, d_stall_ms: 100, d_stalls: 1 });
  await beacon('/live/cam2', { watch_ms: 7000, stall_ms: 2000, stalls: 2, d_watch_ms: 7000, d_stall_ms: 2000, d_stalls: 2 });
  await sleep(2000);
  assert.equal(a.pushes.length, 1, 'no second push within 10 s');
  const second = await waitFor('the second push', () => a.pushes[1]);
  assert.ok(Date.now() - t0 >= 9000, `pushed ${Date.now() - t0} ms after the first`);
  assert.deepEqual(second.body.streams, {
    cam1: { watch_ms: 11000, stall_ms: 100, stalls: 1 },
    cam2: { watch_ms: 7000, stall_ms: 2000, stalls: 2 },
  });
  const onB = await waitFor('cam2 offered to origin b', () => b.pushes[0]);
  assert.deepEqual(onB.body, { v: 1, streams: { cam2: { watch_ms: 7000, stall_ms: 2000, stalls: 2 } } });

  // Origin a fails: b gets it all.
  a.fail = true;
  await beacon('/live/cam1', { watch_ms: 3000, d_watch_ms: 3000, d_stall_ms: 0, d_stalls: 0 });
  const third = await waitFor('a push to origin b', () => b.pushes[1]);
  assert.deepEqual(third.body.streams, { cam1: { watch_ms: 3000, stall_ms: 0, stalls: 0 } });
  assert.equal(a.pushes.length, 3, 'origin a was asked first');

  const metrics = await (await mf.dispatchFetch(`${EDGE}/_brook/metrics`, { headers: { authorization: 'Bearer metrics-secret' } })).text();
  assert.match(metrics, /^brook_edge_qoe_pushes_total\{result="pushed"\} 4$/m);
  assert.match(metrics, /^brook_edge_qoe_pushes_total\{result="failed"\} 1$/m);
});

test('a beacon whose deltas are out of range is refused', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/qoe?__token__=${encodeURIComponent(sign('/live/cam1/*'))}`, {
    method: 'POST',
    body: JSON.stringify({ v: 1, sid: 'x', ev: 'hb', started: false, watch_ms: 10, stalls: 0, stall_ms: 0, d_watch_ms: 20, d_stall_ms: 0, d_stalls: 0 }),
  });
  assert.equal(res.status, 400);
});

test('with the stream directory, each stream\'s sums go to the origin registered for it', async () => {
  // Origin c registers cam3; the static origin (a) does not have it. cam9
  // is nobody's: dropped, never sent.
  const c = await fakeOrigin(['cam3']);
  const dir = new Miniflare(workerOptions({
    directory: true,
    bindings: {
      ORIGIN_URL: a.url,
      EDGE_CONFIG: JSON.stringify({
        auth: { required: true },
        origins: { directory: { enabled: true, allow: ['http://127.0.0.1:*'] } },
      }),
      TOKEN_KEYS: `k1:${KEY}`,
      METRICS_TOKEN: 'metrics-secret',
      QOE_PUSH_TOKEN: PUSH_TOKEN,
      DIRECTORY_TOKEN: 'directory-secret-0123456789',
    },
  }));
  try {
    await dir.ready;
    a.fail = false;
    const before = a.pushes.length;
    const reg = await dir.dispatchFetch(`${EDGE}/_brook/directory`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer directory-secret-0123456789' },
      body: JSON.stringify({ origin: 'c', url: c.url, streams: ['cam3'], ttl_s: 60 }),
    });
    assert.equal(reg.status, 200, await reg.text());
    const post = async (stream, ms) => {
      const res = await dir.dispatchFetch(`${EDGE}/live/${stream}/qoe?__token__=${encodeURIComponent(sign(`/live/${stream}/*`))}`, {
        method: 'POST',
        body: JSON.stringify({ v: 1, sid: `d-${stream}`, ev: 'hb', started: true, startup_ms: 1, watch_ms: ms, stalls: 1, stall_ms: 100, d_watch_ms: ms, d_stall_ms: 100, d_stalls: 1 }),
      });
      assert.equal(res.status, 204, await res.text());
    };
    await post('cam9', 4000);
    await post('cam3', 5000);
    const got = await waitFor('the push to origin c', () => c.pushes[0]);
    assert.deepEqual(got.body, { v: 1, streams: { cam3: { watch_ms: 5000, stall_ms: 100, stalls: 1 } } });
    assert.equal(got.auth, `Bearer ${PUSH_TOKEN}`);
    await sleep(500);
    assert.equal(a.pushes.length, before, 'the static origin got nothing');
    const metrics = await (await dir.dispatchFetch(`${EDGE}/_brook/metrics`, { headers: { authorization: 'Bearer metrics-secret' } })).text();
    assert.match(metrics, /^brook_edge_qoe_pushes_total\{result="unknown_stream"\} 1$/m);
  } finally {
    await dir.dispose();
    c.server.close();
  }
});
