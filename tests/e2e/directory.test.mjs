// The stream directory end to end (issue 18; docs/scale.md, "Stream directory"):
// the edge under `wrangler dev` with the real wrangler.toml (the DIRECTORY
// Durable Object) in front of three brook-origins, ffmpeg publishing a
// different stream to each over SRT:
//
//   a  cam1  the edge's static origin (ORIGIN_URL; origins.directory.fallback_to_static)
//   b  cam2  registers with the directory
//   c  cam3  starts later and registers: the edge plays it (hls.js in Chromium)
//            with no config change; stopped cleanly, it deregisters and the
//            edge answers 404 for cam3 within found_ttl_ms
//   b  killed (no deregistration): 404 for cam2 within 3 heartbeats + found_ttl_ms
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startOrigin, startPublisher, waitFor, freePort, text, launchChromium, DEV_KEY,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

const DIRECTORY_TOKEN = 'e2e-directory-token-0123456789';
const HEARTBEAT_S = 1;
// docs/scale.md: a clean stop is seen within found_ttl_ms (2 s); a killed
// origin within ttl_s (3 heartbeats) + found_ttl_ms.
const FOUND_TTL_MS = 2000;
const UNKNOWN_TTL_MS = 1000;
// The documented bounds are asserted with this much more (the CI host is a
// loaded 2-core machine), and the figures printed; a quick answer is one
// under SLACK_MS, which origins.timeout_ms (TIMEOUT_MS) is well above, so an
// answer that waited for a timeout still fails.
const SLACK_MS = 5000;
const TIMEOUT_MS = 8000;
const SMALL = 'testsrc2=size=320x180:rate=30';

let edge, a, b, c;
const publishers = [];

const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', id: 'directory', ttl: 3600 });
const q = `__token__=${encodeURIComponent(token)}`;

/** An origin that registers `stream` with the edge's directory as `name`. */
async function registeringOrigin(name, stream) {
  const httpPort = await freePort();
  const origin = await startOrigin({
    httpPort,
    env: { BROOK_DIRECTORY_TOKEN: DIRECTORY_TOKEN },
    config: `[directory]
url = "${edge.url}/_brook/directory"
name = "${name}"
public_url = "http://127.0.0.1:${httpPort}"
heartbeat_s = ${HEARTBEAT_S}

[streams.${stream}]
key = "${DEV_KEY}"
`,
  });
  publishers.push(startPublisher(origin.srtPort, { streamid: `publish:live/${stream}:${DEV_KEY}`, video: SMALL }));
  return origin;
}

/** GET through the edge, timed. */
async function viaEdge(path) {
  const t0 = Date.now();
  const r = await text(`${edge.url}${path}${path.includes('?') ? '&' : '?'}${q}`);
  return { ...r, ms: Date.now() - t0 };
}

before(async () => {
  // Origin a's port is chosen first: ORIGIN_URL is fixed when wrangler starts.
  const aPort = await freePort();
  edge = await startWranglerEdge({
    TOKEN_KEYS: keyList('k2026a'),
    METRICS_TOKEN: 'metrics-secret',
    DIRECTORY_TOKEN,
    EDGE_CONFIG: JSON.stringify({
      origins: {
        timeout_ms: TIMEOUT_MS,
        directory: { enabled: true, fallback_to_static: true, allow: ['http://127.0.0.1:*'] },
      },
    }),
    ORIGIN_URL: `http://127.0.0.1:${aPort}`,
  });
  a = await startOrigin({ httpPort: aPort });
  publishers.push(startPublisher(a.srtPort, { video: SMALL }));
  b = await registeringOrigin('b', 'cam2');
});

after(async () => {
  await Promise.all([...publishers, a, b, c, edge].map((p) => p?.stop()));
});

test('the static origin and a registered one serve their streams through the edge', async (t) => {
  for (const stream of ['cam1', 'cam2']) {
    const r = await waitFor(`${stream} through the edge`, async () => {
      const res = await viaEdge(`/live/${stream}/index.m3u8`);
      return res.status === 200 ? res : null;
    }, { timeout: 30000, interval: 250 });
    assert.match(r.body, /^#EXTM3U/);
  }
  // Nobody serves cam3 yet: origin a's 404 (the static fallback), quickly.
  const none = await viaEdge('/live/cam3/index.m3u8');
  assert.equal(none.status, 404);
  t.diagnostic(`cam3 (nobody's): 404 in ${none.ms} ms`);
  assert.ok(none.ms < SLACK_MS, `404 in ${none.ms} ms`);
});

test('a third origin registers cam3: the edge plays it without a config change, then 404 once it stops', async (t) => {
  c = await registeringOrigin('c', 'cam3');
  // The origin has the stream; the edge finds it within a heartbeat and a
  // negative cache period.
  const mv = await waitFor('cam3 at origin c', async () => {
    const r = await text(`${c.url}/live/cam3/index.m3u8`);
    return r.status === 200 ? r.body : null;
  }, { timeout: 30000, interval: 100 });
  const atOrigin = Date.now();
  await waitFor('cam3 through the edge', async () => (await viaEdge('/live/cam3/index.m3u8')).status === 200,
    { timeout: 30000, interval: 100 });
  const found = Date.now() - atOrigin;
  t.diagnostic(`cam3 found through the edge ${found} ms after origin c served it`);
  // Documented: a heartbeat (sent at once) + unknown_ttl_ms.
  assert.ok(found <= HEARTBEAT_S * 1000 + UNKNOWN_TTL_MS + SLACK_MS, `found after ${found} ms`);

  // A media playlist and a segment, byte for byte origin c's.
  const mediaName = mv.split('\n').find((l) => l && !l.startsWith('#'));
  const mediaPath = `/live/cam3/${mediaName}`;
  const media = await waitFor('a segment of cam3', async () => {
    const r = await viaEdge(mediaPath);
    return r.status === 200 && /^[\w.-]+-seg\d+\.m4s/m.test(r.body) ? r.body : null;
  }, { timeout: 20000, interval: 250 });
  const seg = media.split('\n').find((l) => /^[\w.-]+-seg\d+\.m4s/.test(l)).split('?')[0];
  const segPath = mediaPath.replace(/[^/]+$/, seg);
  const [fromEdge, fromOrigin] = await Promise.all([
    fetch(`${edge.url}${segPath}?${q}`).then(async (r) => [r.status, Buffer.from(await r.arrayBuffer())]),
    fetch(`${c.url}${segPath}`).then(async (r) => [r.status, Buffer.from(await r.arrayBuffer())]),
  ]);
  assert.equal(fromEdge[0], 200);
  assert.equal(fromOrigin[0], 200);
  assert.ok(fromEdge[1].equals(fromOrigin[1]), 'the same segment');

  // hls.js in Chromium plays it from the edge's viewer page.
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`${edge.url}/?stream=cam3&token=${encodeURIComponent(token)}`);
    await page.waitForFunction(() => window.brook?.video?.currentTime > 1, null, { timeout: 20000 });
    const fatal = await page.evaluate(() => window.brook.fatalErrors.length);
    assert.equal(fatal, 0, 'no fatal hls.js error');
  } finally {
    await browser.close();
  }

  const metrics = await (await fetch(`${edge.url}/_brook/metrics`, { headers: { authorization: 'Bearer metrics-secret' } })).text();
  assert.match(metrics, /^brook_edge_origin_requests_total\{origin="c"\} [1-9]/m, metrics);
  assert.match(metrics, /^brook_edge_directory_registrations_total\{result="registered"\} [1-9]/m);
  assert.match(metrics, /^brook_edge_directory_lookups_total\{result="found"\} [1-9]/m);

  // Stopped cleanly (SIGTERM): it deregisters, and the edge answers 404 (origin
  // a's, through the fallback) within found_ttl_ms, every answer quick.
  const stopping = c.stop();
  const stopped = Date.now();
  let last;
  let slowest = 0;
  while (Date.now() - stopped < FOUND_TTL_MS + SLACK_MS + 1000) {
    last = await viaEdge('/live/cam3/index.m3u8');
    slowest = Math.max(slowest, last.ms);
    assert.ok(last.ms < SLACK_MS, `answered ${last.status} in ${last.ms} ms`);
    if (last.status === 404) break;
    await sleep(100);
  }
  const gone = Date.now() - stopped;
  t.diagnostic(`cam3: 404 ${gone} ms after origin c was sent SIGTERM (bound ${FOUND_TTL_MS} ms; last answer in ${last.ms} ms, slowest ${slowest} ms)`);
  assert.equal(last.status, 404, `still ${last.status} ${gone} ms after the stop`);
  assert.ok(gone <= FOUND_TTL_MS + SLACK_MS, `404 after ${gone} ms`);
  await stopping;
  assert.match(c.log, /stream directory: deregistered/);
});

test('a killed origin (no deregistration) is forgotten after its ttl', async (t) => {
  assert.equal((await viaEdge('/live/cam2/index.m3u8')).status, 200);
  process.kill(-b.pid, 'SIGKILL');
  await b.exited;
  const killed = Date.now();
  let last;
  let slowest = 0;
  const bound = 3 * HEARTBEAT_S * 1000 + FOUND_TTL_MS;
  // Not gone before its ttl (less the up to one heartbeat, and a 250 ms
  // poll, between the last heartbeat and the kill); gone within the bound +
  // SLACK_MS.
  const notBefore = 3 * HEARTBEAT_S * 1000 - HEARTBEAT_S * 1000 - 500;
  while (Date.now() - killed < bound + SLACK_MS + 1000) {
    last = await viaEdge('/live/cam2/index.m3u8');
    slowest = Math.max(slowest, last.ms);
    // Until then: the registered origin, unreachable (a quick 502).
    assert.ok(last.ms < SLACK_MS, `answered ${last.status} in ${last.ms} ms`);
    if (last.status === 404) break;
    await sleep(200);
  }
  const gone = Date.now() - killed;
  t.diagnostic(`cam2: 404 ${gone} ms after origin b was killed (bound ${bound} ms; slowest answer ${slowest} ms)`);
  assert.equal(last.status, 404, `still ${last.status} ${gone} ms after the kill`);
  assert.ok(gone >= notBefore, `404 after ${gone} ms, before its ttl`);
  assert.ok(gone <= bound + SLACK_MS, `404 after ${gone} ms (bound ${bound} ms)`);
  // The static origin's stream was never affected.
  assert.equal((await viaEdge('/live/cam1/index.m3u8')).status, 200);
});
