// Multi-CDN content steering and multi-origin failover, end to end: the real Worker
// (wasm in workerd via Miniflare) with brook-origin (ffmpeg publishing over SRT)
// behind it, reached through recording taps that can also play dead.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, startPublisher, waitFor, freePort } from './lib.mjs';
import {
  startWorker, startTap, signToken, tokenQuery, KEYS, workerMetrics, counter, hlsjsParser,
} from './edge-lib.mjs';

const EDGE = 'http://edge.test';
let origin, publisher, M3U8Parser, mediaPath, segPath;

const STEERING = {
  ttl_s: 5,
  min_throughput_bps: 1000000,
  pathways: [
    { id: 'eu', continents: ['EU'] },
    { id: 'us', base_url: 'http://us.cdn.test', countries: ['US', 'CA'] },
    { id: 'eu-backup', clone_of: 'eu', host: 'backup.cdn.test', params: { cdn: 'backup' }, weight: 0 },
  ],
};

before(async () => {
  origin = await startOrigin();
  publisher = startPublisher(origin.srtPort);
  M3U8Parser = await hlsjsParser();
  const mv = await waitFor('multivariant playlist', async () => {
    const r = await fetch(`${origin.url}/live/cam1/index.m3u8`);
    return r.status === 200 ? r.text() : null;
  }, { timeout: 30000, interval: 250 });
  mediaPath = `/live/cam1/${mv.split('\n').find((l) => l && !l.startsWith('#'))}`;
  const media = await waitFor('a segment', async () => {
    const t = await (await fetch(origin.url + mediaPath)).text();
    return /^video-seg\d+\.m4s$/m.test(t) ? t : null;
  }, { timeout: 40000, interval: 250 });
  segPath = mediaPath.replace(/video\.m3u8$/, media.match(/^video-seg\d+\.m4s$/m)[0]);
});

after(async () => {
  await Promise.all([publisher, origin].map((p) => p?.stop()));
});

const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', id: 'viewer-steer' });
const q = tokenQuery(token);
const PATHWAY_ID = /^[A-Za-z0-9._-]+$/;

/** Checks a steering manifest against the HLS Content Steering spec, field by field. */
function assertHlsSteeringManifest(m, { playlistPathways }) {
  assert.deepEqual(Object.keys(m).filter((k) => !['VERSION', 'TTL', 'RELOAD-URI', 'PATHWAY-PRIORITY', 'PATHWAY-CLONES'].includes(k)), [],
    'no fields beyond the spec');
  assert.equal(m.VERSION, 1, 'VERSION is the integer 1');
  assert.ok(Number.isInteger(m.TTL) && m.TTL > 0, 'TTL is a positive integer (seconds)');
  assert.equal(typeof m['RELOAD-URI'], 'string', 'RELOAD-URI is a string');
  const prio = m['PATHWAY-PRIORITY'];
  assert.ok(Array.isArray(prio) && prio.length > 0, 'PATHWAY-PRIORITY is a non-empty array');
  assert.equal(new Set(prio).size, prio.length, 'PATHWAY-PRIORITY has no duplicates');
  for (const id of prio) assert.match(id, PATHWAY_ID, `legal Pathway ID ${id}`);
  const clones = m['PATHWAY-CLONES'] ?? [];
  assert.ok(Array.isArray(clones), 'PATHWAY-CLONES is an array');
  const cloneIds = new Set();
  for (const c of clones) {
    assert.deepEqual(Object.keys(c).sort(), ['BASE-ID', 'ID', 'URI-REPLACEMENT']);
    assert.ok(playlistPathways.includes(c['BASE-ID']), `BASE-ID ${c['BASE-ID']} is a pathway of the playlist`);
    assert.match(c.ID, PATHWAY_ID);
    assert.ok(!playlistPathways.includes(c.ID) && !cloneIds.has(c.ID), `clone ID ${c.ID} is new and unique`);
    cloneIds.add(c.ID);
    const r = c['URI-REPLACEMENT'];
    assert.equal(typeof r, 'object');
    for (const k of Object.keys(r)) assert.ok(['HOST', 'PARAMS', 'PER-VARIANT-URIS', 'PER-RENDITION-URIS'].includes(k), k);
    if ('HOST' in r) assert.equal(typeof r.HOST, 'string');
    if ('PARAMS' in r) for (const v of Object.values(r.PARAMS)) assert.equal(typeof v, 'string');
  }
  for (const id of prio) assert.ok(playlistPathways.includes(id) || cloneIds.has(id), `${id} is known`);
}

test('steering: the multivariant names the steering server and repeats variants per pathway', async () => {
  const mf = await startWorker({ originUrl: origin.url, config: { steering: STEERING } });
  try {
    const res = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8?${q}`, { cf: { country: 'DE', continent: 'EU', colo: 'FRA' } });
    assert.equal(res.status, 200);
    const body = await res.text();
    const url = `${EDGE}/live/cam1/index.m3u8?${q}`;
    const parsed = M3U8Parser.parseMasterPlaylist(body, url);
    assert.equal(parsed.playlistParsingError, null);
    assert.equal(parsed.contentSteering.pathwayId, 'eu', 'initial pathway: the viewer\'s first choice');
    assert.equal(parsed.contentSteering.uri, `${EDGE}/live/cam1/steering.json?${q}`);
    // The video variant of each pathway (the audio-only variant is repeated too).
    const byPathway = Object.fromEntries(parsed.levels.filter((l) => l.height).map((l) => [l.attrs['PATHWAY-ID'], l]));
    assert.deepEqual(Object.keys(byPathway).sort(), ['eu', 'us'], 'clones are not in the playlist');
    const session = mediaPath.split('/')[3];
    assert.equal(byPathway.eu.url, `${EDGE}/live/cam1/${session}/video.m3u8?${q}`);
    assert.equal(byPathway.us.url, `http://us.cdn.test/live/cam1/${session}/video.m3u8?${q}`);
    assert.equal(byPathway.eu.bitrate, byPathway.us.bitrate);

    // A US viewer starts on the US pathway.
    const us = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8?${q}`, { cf: { country: 'US', continent: 'NA', colo: 'IAD' } });
    assert.match(await us.text(), /#EXT-X-CONTENT-STEERING:SERVER-URI="steering\.json\?__token__=[^"]+",PATHWAY-ID="us"/);
  } finally {
    await mf.dispose();
  }
});

test('steering manifest: valid field by field, ordered per viewer, reacting to client reports', async () => {
  const mf = await startWorker({ originUrl: origin.url, config: { steering: STEERING } });
  try {
    const fetchManifest = async (cf, extra = '') => {
      const r = await mf.dispatchFetch(`${EDGE}/live/cam1/steering.json?${q}${extra}`, { cf });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      assert.equal(r.headers.get('cache-control'), 'private, no-store');
      return r.json();
    };
    const de = { country: 'DE', continent: 'EU', colo: 'FRA' };
    const m = await fetchManifest(de, '&_HLS_pathway=eu&_HLS_throughput=8000000');
    assertHlsSteeringManifest(m, { playlistPathways: ['eu', 'us'] });
    assert.equal(m.TTL, 5);
    assert.deepEqual(m['PATHWAY-PRIORITY'], ['eu', 'us', 'eu-backup']);
    assert.deepEqual(m['PATHWAY-CLONES'], [
      { 'BASE-ID': 'eu', ID: 'eu-backup', 'URI-REPLACEMENT': { HOST: 'backup.cdn.test', PARAMS: { cdn: 'backup' } } },
    ]);
    // RELOAD-URI comes back here, with the token (the client adds its reports).
    const reload = new URL(m['RELOAD-URI'], `${EDGE}/live/cam1/steering.json?${q}`);
    assert.equal(reload.pathname, '/live/cam1/steering.json');
    assert.equal(reload.searchParams.get('__token__'), token);
    const again = await mf.dispatchFetch(reload.href, { cf: de });
    assert.equal(again.status, 200);
    await again.arrayBuffer();

    const us = await fetchManifest({ country: 'US', continent: 'NA', colo: 'IAD' });
    assert.equal(us['PATHWAY-PRIORITY'][0], 'us');
    // Too little throughput on the current pathway: it goes last for this viewer.
    const slow = await fetchManifest(de, '&_HLS_pathway=eu&_HLS_throughput=200000');
    assert.equal(slow['PATHWAY-PRIORITY'].at(-1), 'eu');
    assertHlsSteeringManifest(slow, { playlistPathways: ['eu', 'us'] });

    // DASH flavour: SERVICE-LOCATION-PRIORITY over the MPD's BaseURL serviceLocations.
    const dash = await (await mf.dispatchFetch(`${EDGE}/live/cam1/steering-dash.json?${q}`, { cf: de })).json();
    assert.deepEqual(Object.keys(dash).sort(), ['RELOAD-URI', 'SERVICE-LOCATION-PRIORITY', 'TTL', 'VERSION']);
    assert.deepEqual(dash['SERVICE-LOCATION-PRIORITY'], ['eu', 'us']);

    // One viewer's reports count once: however often it reports low, the
    // pathway stays first for everyone else.
    const otherViewer = async (id, extra = '') => {
      const t = signToken({ key: KEYS.k2026a, kid: 'k2026a', id });
      const r = await mf.dispatchFetch(`${EDGE}/live/cam1/steering.json?${tokenQuery(t)}${extra}`, { cf: de });
      assert.equal(r.status, 200);
      return r.json();
    };
    for (let i = 0; i < 10; i += 1) await fetchManifest(de, '&_HLS_pathway=eu&_HLS_throughput=200000');
    assert.equal((await otherViewer('bystander'))['PATHWAY-PRIORITY'][0], 'eu', 'one viewer cannot demote a pathway');
    // A quorum (3) of distinct viewers reporting low demotes it for everyone.
    for (const id of ['low-2', 'low-3']) await otherViewer(id, '&_HLS_pathway=eu&_HLS_throughput=200000');
    assert.equal((await otherViewer('bystander'))['PATHWAY-PRIORITY'].at(-1), 'eu', 'three viewers can');

    // The steering server is as protected as the stream.
    const anon = await mf.dispatchFetch(`${EDGE}/live/cam1/steering.json`, { cf: de });
    assert.equal(anon.status, 401);
    await anon.arrayBuffer();
    const m2 = await workerMetrics(mf);
    assert.ok(counter(m2, 'brook_edge_steering_manifests_total', { flavor: 'hls' }) >= 4);
  } finally {
    await mf.dispose();
  }
});

test('steering rules from KV override the var, without a redeploy', async () => {
  const mf = await startWorker({ originUrl: origin.url, config: { steering: STEERING }, kv: ['EDGE_KV'] });
  try {
    const kv = await mf.getKVNamespace('EDGE_KV');
    await kv.put('config', JSON.stringify({ steering: { ...STEERING, ttl_s: 42 } }));
    const m = await (await mf.dispatchFetch(`${EDGE}/live/cam1/steering.json?${q}`)).json();
    assert.equal(m.TTL, 42);
  } finally {
    await mf.dispose();
  }
});

const DE = { country: 'DE', continent: 'EU', colo: 'FRA' };

test('failover: the nearest origin is down, the next one answers within the same request', async () => {
  const deadPort = await freePort(); // nothing listens there
  const tap = await startTap(origin.url);
  const mf = await startWorker({
    config: {
      origins: {
        regions: [
          { id: 'frankfurt', url: `http://127.0.0.1:${deadPort}`, countries: ['DE'] },
          { id: 'amsterdam', url: tap.url, continents: ['EU'] },
        ],
        unhealthy_ms: 60000,
      },
    },
  });
  try {
    const r = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8?${q}`, { cf: DE });
    assert.equal(r.status, 200);
    assert.match(await r.text(), /^#EXTM3U/);
    let m = await workerMetrics(mf);
    assert.equal(counter(m, 'brook_edge_origin_failures_total', { origin: 'frankfurt', reason: 'network' }), 1);
    assert.equal(counter(m, 'brook_edge_failovers_total'), 1);
    assert.equal(tap.count('/live/cam1/index.m3u8'), 1);

    // Marked unhealthy: the next requests go straight to the healthy origin.
    const seg = await mf.dispatchFetch(`${EDGE}${segPath}?${q}`, { cf: DE });
    assert.equal(seg.status, 200);
    assert.ok((await seg.arrayBuffer()).byteLength > 0);
    m = await workerMetrics(mf);
    assert.equal(counter(m, 'brook_edge_origin_requests_total', { origin: 'frankfurt' }), 1, 'not tried again');
    assert.equal(counter(m, 'brook_edge_failovers_total'), 1);
  } finally {
    await mf.dispose();
    await tap.close();
  }
});

test('failover on timeout and on 5xx; a 503 to a blocking reload is the origin saying "not yet"', async () => {
  const hanging = await startTap(origin.url, { name: 'hang' });
  const failing = await startTap(origin.url, { name: 'fail' });
  const good = await startTap(origin.url);
  hanging.mode = 'hang';
  failing.mode = 'fail';
  const worker = (first) => startWorker({
    config: {
      origins: {
        regions: [{ id: 'first', url: first.url }, { id: 'second', url: good.url }],
        timeout_ms: 1000,
        hold_timeout_ms: 1500,
      },
    },
  });
  let mf = await worker(hanging);
  try {
    const goodBefore = good.seen.length;
    const r = await mf.dispatchFetch(`${EDGE}${segPath}?${q}`);
    assert.equal(r.status, 200);
    assert.ok((await r.arrayBuffer()).byteLength > 0);
    // What happened, not how long it took (benchmarks measure time): the
    // hanging origin got the request and never answered, the edge counted a
    // timeout (not a network error) and failed over once, and the segment
    // came from the second origin.
    assert.equal(hanging.seen.filter((e) => e.url.startsWith(segPath)).length, 1, 'asked the hanging origin once');
    assert.equal(hanging.seen.at(-1).status, null, 'which never answered');
    assert.equal(good.seen.length - goodBefore, 1, 'then the second origin');
    assert.equal(good.seen.at(-1).status, 200);
    const m = await workerMetrics(mf);
    assert.equal(counter(m, 'brook_edge_origin_failures_total', { origin: 'first', reason: 'timeout' }), 1);
    assert.equal(counter(m, 'brook_edge_origin_failures_total', { origin: 'first', reason: 'network' }), 0);
    assert.equal(counter(m, 'brook_edge_failovers_total'), 1);
  } finally {
    await mf.dispose();
  }

  mf = await worker(failing);
  try {
    const r = await mf.dispatchFetch(`${EDGE}${segPath}?${q}&x=2`);
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const m = await workerMetrics(mf);
    assert.equal(counter(m, 'brook_edge_origin_failures_total', { origin: 'first', reason: 'status' }), 1);

    // A fresh isolate state would try `first` again; this one marked it
    // unhealthy, so turn it back into a 503 source for a holdable request on a
    // new worker below.
  } finally {
    await mf.dispose();
  }

  mf = await worker(failing);
  try {
    const body = await (await fetch(origin.url + mediaPath)).text();
    const hint = body.match(/#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video-part(\d+)\.(\d+)\.m4s"/);
    const r = await mf.dispatchFetch(`${EDGE}${mediaPath}?_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}&${q}`);
    assert.equal(r.status, 503, 'passed through, not failed over');
    await r.arrayBuffer();
    assert.equal(good.count((e) => e.url.startsWith(`${mediaPath}?_HLS_msn=`)), 0);
  } finally {
    await mf.dispose();
    await Promise.all([hanging, failing, good].map((t) => t.close()));
  }
});

test('origins are picked by viewer location', async () => {
  const eu = await startTap(origin.url);
  const us = await startTap(origin.url);
  const mf = await startWorker({
    config: {
      origins: {
        regions: [
          { id: 'eu', url: eu.url, continents: ['EU'] },
          { id: 'us', url: us.url, countries: ['US'], continents: ['NA'] },
        ],
      },
    },
  });
  try {
    for (const [cf, tap] of [[{ country: 'US', continent: 'NA' }, us], [{ country: 'FR', continent: 'EU' }, eu], [{ country: 'CA', continent: 'NA' }, us]]) {
      const before = tap.seen.length;
      const r = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8?${q}`, { cf });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      assert.equal(tap.seen.length - before, 1, `${cf.country} went to the ${tap === us ? 'US' : 'EU'} origin`);
    }
  } finally {
    await mf.dispose();
    await Promise.all([eu.close(), us.close()]);
  }
});
