// Viewer QoE at the edge (edge/src/qoe/, edge/src/bindings/qoe.rs; docs/qoe.md)
// on the real wasm build in Miniflare against a fake origin: CMCD never splits
// the cache and never reaches the origin; each admitted request's CMCD and each
// beacon land in the isolate's aggregates; /_brook/qoe is authenticated; bad
// input is refused and bounded.
//
//   node --test edge/test/qoe.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';

const EDGE = 'http://edge.test';
const SESSION = '0a1b2c3d4e5f6a7b';
const SEG = (n, r = '720p') => `/live/cam1/${SESSION}/${r}-seg${n}.m4s`;
const KEY = '8f1e0c47a3b2d5e6f708192a3b4c5d6e';
const ADMIN = 'admin-secret';

function sign(acl = '/live/cam1/*') {
  const signed = `exp=${Math.floor(Date.now() / 1000) + 600}~acl=${acl}~kid=k1`;
  return `${signed}~hmac=${createHmac('sha256', Buffer.from(KEY, 'hex')).update(signed).digest('hex')}`;
}

let origin;
let seen;
let mf;

before(async () => {
  seen = [];
  origin = http.createServer((req, res) => {
    seen.push(req.url);
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/admin/streams') {
      // An auth proxy's login page: a 200 that is not the admin API.
      if (req.headers.authorization === 'Bearer login-page') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>sign in</html>');
        return;
      }
      if (req.headers.authorization !== `Bearer ${ADMIN}`) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ streams: [{ name: 'cam1', live: true, ingest_bitrate_bps: 2500000 }] }));
      return;
    }
    if (/-seg\d+\.m4s$/.test(path)) {
      res.writeHead(200, { 'content-type': 'video/iso.segment', 'cache-control': 'public, max-age=31536000, immutable' })
        .end(`bytes of ${path}`);
      return;
    }
    res.writeHead(404).end();
  });
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  mf = new Miniflare(workerOptions({
    bindings: {
      ORIGIN_URL: `http://127.0.0.1:${origin.address().port}`,
      EDGE_CONFIG: JSON.stringify({ auth: { required: true } }),
      TOKEN_KEYS: `k1:${KEY}`,
      METRICS_TOKEN: 'metrics-secret',
    },
    cf: { country: 'NL' },
  }));
  await mf.ready;
});

after(async () => {
  await mf?.dispose();
  origin?.close();
});

const cmcd = (s) => `CMCD=${encodeURIComponent(s)}`;
const report = async (query = '', token = 'metrics-secret') => {
  const res = await mf.dispatchFetch(`${EDGE}/_brook/qoe${query}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
};

test('CMCD requests share the cache entries of plain ones, and never reach the origin', async () => {
  const token = sign();
  const q = `__token__=${encodeURIComponent(token)}`;
  const first = await mf.dispatchFetch(`${EDGE}${SEG(1)}?${q}&${cmcd('br=2500,d=2000,ot=v,sf=h,sid="viewer-a",st=l,su')}`);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-brook-cache'), 'miss');
  await first.text();
  for (const extra of ['', `&${cmcd('br=2500,bl=2000,d=2000,mtp=9000,ot=v,sid="viewer-b"')}`, `&${cmcd('br=-1')}`]) {
    const again = await mf.dispatchFetch(`${EDGE}${SEG(1)}?${q}${extra}`);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('x-brook-cache'), 'hit', `with ${extra || 'no CMCD'}`);
    assert.equal(await again.text(), `bytes of ${SEG(1)}`);
  }
  const asked = seen.filter((u) => u.includes('-seg1.m4s'));
  assert.deepEqual(asked, [SEG(1)], 'one origin request, without CMCD or the token');
});

test('each admitted request with CMCD and each beacon are aggregated; refused ones are not', async () => {
  const token = sign();
  const q = `__token__=${encodeURIComponent(token)}`;
  // Viewer c: 3 × 2 s of 720p at 2500 kbps; viewer d: 3 × 2 s of 360p at 600 kbps, starved twice.
  for (let n = 10; n < 13; n += 1) {
    await (await mf.dispatchFetch(`${EDGE}${SEG(n)}?${q}&${cmcd('br=2500,d=2000,ot=v,sid="viewer-c"')}`)).text();
    const bs = n < 12 ? ',bs' : '';
    await (await mf.dispatchFetch(`${EDGE}${SEG(n, '360p')}?${q}&${cmcd(`br=600${bs},d=2000,ot=v,sid="viewer-d"`)}`)).text();
  }
  // Without a token the request is refused, and its CMCD never counted.
  const refused = await mf.dispatchFetch(`${EDGE}${SEG(10)}?${cmcd('br=99999,d=2000,ot=v,sid="intruder"')}`);
  assert.equal(refused.status, 401);

  const post = (body, tok = token, type = 'text/plain') => mf.dispatchFetch(`${EDGE}/live/cam1/qoe?__token__=${encodeURIComponent(tok)}`, {
    method: 'POST', body, headers: { 'content-type': type },
  });
  const beacon = (sid, extra) => JSON.stringify({ v: 1, sid, ev: 'hb', started: true, watch_ms: 6000, stalls: 0, stall_ms: 0, ...extra });
  assert.equal((await post(beacon('viewer-c', { startup_ms: 700, latency_ms: 1500 }))).status, 204);
  assert.equal((await post(beacon('viewer-d', { startup_ms: 2100, stalls: 2, stall_ms: 1500, latency_ms: 3500 }))).status, 204);
  const exit = JSON.stringify({ v: 1, sid: 'viewer-e', ev: 'end', started: false, watch_ms: 4000, stalls: 0, stall_ms: 0 });
  assert.equal((await post(exit)).status, 204);
  // Refused: bad shape, out of range, too large, no token, another stream's token.
  assert.equal((await post('{"v":1}')).status, 400);
  assert.equal((await post(beacon('viewer-c', { stall_ms: 99999 }))).status, 400);
  assert.equal((await post(`${beacon('viewer-c', { startup_ms: 1 })}${' '.repeat(2048)}`)).status, 400);
  assert.equal((await mf.dispatchFetch(`${EDGE}/live/cam1/qoe`, { method: 'POST', body: beacon('x', { startup_ms: 1 }) })).status, 401);
  assert.equal((await post(beacon('viewer-c', { startup_ms: 1 }), sign('/live/cam2/*'))).status, 403);
  assert.equal((await mf.dispatchFetch(`${EDGE}/live/cam1/qoe?${q}`)).status, 405);

  const r = await report('?stream=cam1');
  const byId = Object.fromEntries(r.sessions.map((s) => [s.sid, s]));
  assert.ok(!byId.intruder, 'refused requests are not recorded');
  assert.equal(byId['viewer-c'].avg_bitrate_kbps, 2500);
  assert.equal(byId['viewer-d'].avg_bitrate_kbps, 600);
  assert.equal(byId['viewer-d'].rebuffer_ratio, 1500 / 6000);
  assert.equal(byId['viewer-c'].rebuffer_ratio, 0);
  assert.equal(byId['viewer-e'].state, 'exited before start');
  assert.equal(byId['viewer-c'].country, 'NL');
  const t = r.totals;
  assert.ok(t.viewers >= 2, JSON.stringify(t));
  assert.equal(t.startup_p50_ms, 700);
  assert.equal(t.startup_p95_ms, 2100);
  assert.equal(t.exits_before_start, 1);
  assert.equal(t.latency_p95_ms, 3500);
  const mix = Object.fromEntries(r.renditions.map((m) => [m.rendition, m]));
  assert.equal(mix['360p'].avg_bitrate_kbps, 600);
  assert.equal(r.countries[0].key, 'NL');
  // Filtered by rendition: only the sessions that played it, its bitrate only.
  const low = await report('?rendition=360p');
  assert.deepEqual(low.sessions.map((s) => s.sid), ['viewer-d']);
  assert.equal(low.totals.avg_bitrate_kbps, 600);
  assert.ok(r.history.length >= 1);

  const metrics = await (await mf.dispatchFetch(`${EDGE}/_brook/metrics`, { headers: { authorization: 'Bearer metrics-secret' } })).text();
  assert.match(metrics, /brook_edge_cmcd_total\{result="invalid"\} 1/);
  assert.match(metrics, /brook_edge_qoe_beacons_total\{result="recorded"\} 3/);
});

test('/_brook/qoe needs METRICS_TOKEN or an admin token the origin accepts; /_brook/streams passes the origin on', async () => {
  assert.equal((await mf.dispatchFetch(`${EDGE}/_brook/qoe`)).status, 401);
  const wrong = await mf.dispatchFetch(`${EDGE}/_brook/qoe`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  assert.equal((await report('', ADMIN)).filter.stream, null);
  // Trusting one token trusts no other; a 200 that is not the admin API's
  // JSON trusts nothing.
  const other = await mf.dispatchFetch(`${EDGE}/_brook/qoe`, { headers: { authorization: 'Bearer other' } });
  assert.equal(other.status, 401);
  const login = await mf.dispatchFetch(`${EDGE}/_brook/qoe`, { headers: { authorization: 'Bearer login-page' } });
  assert.equal(login.status, 502);
  assert.equal((await mf.dispatchFetch(`${EDGE}/_brook/qoe?stream=%3Cb%3E`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 400);
  const streams = await mf.dispatchFetch(`${EDGE}/_brook/streams`, { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(streams.status, 200);
  assert.equal((await streams.json()).streams[0].name, 'cam1');
  assert.equal((await mf.dispatchFetch(`${EDGE}/_brook/streams`, { headers: { authorization: 'Bearer nope' } })).status, 401);
  assert.equal((await mf.dispatchFetch(`${EDGE}/_brook/streams`)).status, 401);
});

test('the edge asks the origin about at most 5 unknown tokens per 10 s, for the report and the streams alike', async () => {
  // A fresh window (the tests before used some of it).
  await new Promise((r) => setTimeout(r, 10_200));
  const asked = () => seen.filter((u) => u === '/admin/streams').length;
  const before = asked();
  const statuses = [];
  for (let i = 0; i < 8; i += 1) {
    const path = i % 2 ? '/_brook/streams' : '/_brook/qoe';
    const res = await mf.dispatchFetch(`${EDGE}${path}`, { headers: { authorization: `Bearer guess-${i}` } });
    statuses.push(res.status);
  }
  assert.equal(asked() - before, 5, `origin asked ${asked() - before} times for 8 guesses`);
  // Over the limit: "try again", not "refused" (the dashboard keeps polling).
  assert.deepEqual(statuses, [401, 401, 401, 401, 401, 503, 503, 503]);
  // A token already trusted is not held up by the limit.
  assert.equal((await mf.dispatchFetch(`${EDGE}/_brook/qoe`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 200);
});
