// Server-side ad insertion at the edge, HLS interstitials mode, with real
// peers: ffmpeg publishes a live stream over SRT; the origin prepares the ad
// creatives from their URLs through the VOD pipeline (POST /api/v1/assets,
// deduplicated by URL) and a slate; a VAST server written for the tests
// (tests/e2e/vast-server.mjs: inline and wrapper ads, records every beacon)
// answers the Worker under `wrangler dev`; two Chromium viewers play with
// hls.js through the edge. A break is started through the admin API: each
// viewer's playlist gains an interstitial, its asset list is that viewer's
// pod (different ads for the two), hls.js plays content -> ad -> ad ->
// slate -> content with no fatal error, the ad segments are shared cache
// entries at the edge, and each ad's beacons arrive once each, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEV_KEY, startOrigin, startPublisher, freePort, launchChromium, waitFor, openViewer, watchPlayback, text,
} from './lib.mjs';
import HLS from 'hls-parser';
import { startWranglerEdge, keyList, signToken, KEYS, tokenQuery, hlsjsParser } from './edge-lib.mjs';
import { startVastServer } from './vast-server.mjs';

const ADMIN = '0123456789abcdef-admin-ads';
const API_TOKEN = 'ads-insert-api-token-0123456789';
const BREAK_S = 12;
const AD_S = 4;
const dir = mkdtempSync(join(tmpdir(), 'brook-ads-insert-'));

let origin, publisher, vast, edge, browser;
/** The prepared assets, by ad name. */
const assets = {};

function makeMedia(name, color, seconds, hz) {
  const file = join(dir, `${name}.mp4`);
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `color=c=${color}:size=640x360:rate=30`, '-f', 'lavfi', '-i', `sine=frequency=${hz}:sample_rate=48000`,
    '-t', String(seconds), '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '64k', '-movflags', '+faststart', file]);
  return file;
}

const api = (path, init = {}) => fetch(`${origin.url}/api/v1/${path}`, {
  ...init, headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
});

async function prepare(url) {
  // As the edge asks (the same options, or dedupe answers 409).
  const r = await api('assets', {
    method: 'POST',
    body: JSON.stringify({ input_url: url, dedupe: true, encryption: 'none', max_duration_s: 600, passthrough: 'brook-ad-creative' }),
  });
  assert.ok(r.status === 200 || r.status === 201, `import ${url}: ${r.status} ${await r.clone().text()}`);
  const { id } = await r.json();
  await waitFor(`asset from ${url} ready`, async () => {
    const a = await (await api(`assets/${id}`)).json();
    if (a.status === 'errored') throw new Error(`asset errored: ${a.error}`);
    return a.status === 'ready';
  }, { timeout: 120000, interval: 300 });
  return id;
}

before(async () => {
  const files = {
    ad1: makeMedia('ad1', 'red', AD_S, 330),
    ad2: makeMedia('ad2', 'blue', AD_S, 550),
    ad3: makeMedia('ad3', 'green', AD_S, 770),
    slate: makeMedia('slate', 'gray', 20, 220),
  };
  // The ad server knows viewers by [SESSION] (the token's id): viewer-1 gets
  // pod a (ad1, then ad2 through a wrapper), anyone else pod b (ad3, then
  // ad2 through a wrapper).
  const pods = {
    a: [{ ad: 'ad1' }, { ad: 'ad2', wrapped: true }],
    b: [{ ad: 'ad3' }, { ad: 'ad2', wrapped: true }],
    // A wrapper whose ad the server does not have (404), then ad1.
    c: [{ ad: 'gone', wrapped: true }, { ad: 'ad1' }],
  };
  vast = await startVastServer({
    // The slate is served from there too (any URL the origin can fetch will do).
    ads: { ...Object.fromEntries(['ad1', 'ad2', 'ad3'].map((n) => [n, { file: files[n], seconds: AD_S }])), slate: { file: files.slate, seconds: 20 } },
    pods,
    choose: (sid) => ({ 'viewer-1': 'a', errors: 'c' }[sid] ?? 'b'),
  });
  const http = await freePort();
  origin = await startOrigin({
    httpPort: http,
    config: `[admin]\ntoken = "${ADMIN}"\n[streams.cam1]\nkey = "${DEV_KEY}"\n`
      + `[storage]\nkind = "fs"\ndir = "${join(dir, 'store')}"\n`
      + '[ladder]\nrungs = [{ height = 360, bitrate_kbps = 600 }]\naudio_bitrate_kbps = 64\n'
      + `[vod]\nenabled = true\ndata_dir = "${join(dir, 'data')}"\napi_token = "${API_TOKEN}"\n`
      + `public_url = "http://127.0.0.1:${http}"\nimport_allow_private = true\n[vod.encode]\npreset = "ultrafast"\n`,
  });
  publisher = startPublisher(origin.srtPort, { video: 'testsrc2=size=640x360:rate=30', gop: 30 });
  // The creatives, made ahead as the Worker would have them made (the same
  // call, deduplicated by URL), and the slate.
  for (const n of ['ad1', 'ad2', 'ad3']) assets[n] = await prepare(`${vast.url}/media/${n}.mp4`);
  assets.slate = await prepare(`${vast.url}/media/slate.mp4`);
  edge = await startWranglerEdge({
    ORIGIN_URL: origin.url,
    TOKEN_KEYS: keyList('k2026a'),
    VOD_API_TOKEN: API_TOKEN,
    METRICS_TOKEN: 'metrics-secret',
    EDGE_CONFIG: JSON.stringify({
      ads: {
        mode: 'interstitials',
        vast_url: `${vast.url}/vast?sid=[SESSION]&dur=[DURATION]&stream=[STREAM]&cb=[CACHEBUSTER]`,
        slate_asset: assets.slate,
      },
    }),
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await Promise.all([publisher, edge, origin, vast].map((p) => p?.stop()));
});

/** Opens a viewer and records hls.js's interstitial events and the ad segments' cache status. */
async function viewer(id) {
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/cam1/*', id, ttl: 3600 });
  const { page } = await openViewer(browser, `${edge.url}/?stream=cam1&token=${encodeURIComponent(token)}`);
  const adResponses = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/vod/') && u.pathname.endsWith('.m4s')) {
      adResponses.push({ path: u.pathname, cache: r.headers()['x-brook-cache'] ?? null, status: r.status() });
    }
  });
  await page.waitForFunction(() => window.brook?.hls, null, { timeout: 20000 });
  await page.evaluate(() => {
    const { hls } = window.brook;
    const log = [];
    window.adLog = log;
    const Ev = window.Hls.Events;
    hls.on(Ev.INTERSTITIALS_UPDATED, (_e, d) => log.push({ ev: 'updated', events: d.events.map((x) => x.identifier) }));
    hls.on(Ev.ASSET_LIST_LOADING, (_e, d) => log.push({ ev: 'list-loading', uri: String(d.event?.assetListUrl ?? '') }));
    hls.on(Ev.ERROR, (_e, d) => log.push({ ev: 'error', details: d.details, fatal: d.fatal, why: String(d.error?.message ?? ''), code: d.response?.code ?? null, url: d.url ?? d.context?.url ?? null }));
    hls.on(Ev.ASSET_LIST_LOADED, (_e, d) => log.push({ ev: 'list', assets: d.assetListResponse.ASSETS.map((a) => a.URI) }));
    hls.on(Ev.INTERSTITIAL_ASSET_STARTED, (_e, d) => log.push({ ev: 'asset', uri: d.asset.uri, index: d.assetListIndex }));
    hls.on(Ev.INTERSTITIAL_ASSET_ERROR, (_e, d) => log.push({ ev: 'asset-error', error: String(d.error?.message ?? d.error) }));
    hls.on(Ev.INTERSTITIALS_PRIMARY_RESUMED, () => log.push({ ev: 'resumed' }));
  });
  return { page, token, adResponses };
}

test('a break becomes per-viewer interstitials: content, two ads, slate, content; beacons once each, in order; shared ad segments', async () => {
  const v1 = await viewer('viewer-1');
  await watchPlayback(v1.page, 3);
  const v2 = await viewer('viewer-2');
  await watchPlayback(v2.page, 3);

  // The break, 3 s from now (both players see the date range ahead of them).
  const at = Date.now() + 3000;
  const r = await fetch(`${origin.url}/admin/streams/cam1/break?duration_s=${BREAK_S}&at=${at}`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(r.status, 202, await r.text());

  // The viewer's media playlist, through the edge: the origin's break and
  // the interstitial beside it, with the viewer's token on the asset list.
  const q = tokenQuery(v1.token);
  const mv = (await text(`${edge.url}/live/cam1/index.m3u8?${q}`)).body;
  const media = mv.split('\n').find((l) => l && !l.startsWith('#'));
  const pl = await waitFor('the interstitial in the edge playlist', async () => {
    const t = (await text(new URL(media, `${edge.url}/live/cam1/`).href)).body;
    return t.includes('com.apple.hls.interstitial') ? t : null;
  }, { timeout: 20000, interval: 250 });
  const line = pl.split('\n').find((l) => l.includes('com.apple.hls.interstitial'));
  assert.match(line, new RegExp(`X-ASSET-LIST="/live/cam1/ads\\.json\\?break=[^"&]+&start=[^"&]+&dur=${BREAK_S}&sig=[0-9a-f]{32}&__token__=`), line);
  assert.match(line, new RegExp(`X-RESUME-OFFSET=${BREAK_S},X-PLAYOUT-LIMIT=${BREAK_S}`));
  const out = pl.split('\n').find((l) => l.startsWith('#EXT-X-DATERANGE') && l.includes('SCTE35-OUT'));
  const startDate = /START-DATE="([^"]+)"/.exec(out)[1];
  assert.ok(line.includes(`START-DATE="${startDate}"`), 'the interstitial starts with the break');
  // Independent parsers accept the viewer's playlist, and hls.js's sees
  // the interstitial as one.
  HLS.setOptions({ strictMode: true });
  HLS.parse(pl);
  const M3U8Parser = await hlsjsParser();
  const parsed = M3U8Parser.parseLevelPlaylist(pl, new URL(media, `${edge.url}/live/cam1/`).href, 0, 'EVENT', 0, null);
  const ranges = Object.values(parsed.dateRanges);
  assert.ok(ranges.some((d) => d.isInterstitial && d.attr['X-ASSET-LIST']), 'hls.js reads an interstitial');
  assert.ok(ranges.every((d) => d.isValid), 'every date range valid for hls.js');

  // Both viewers play the break and come back to the content.
  for (const v of [v1, v2]) {
    await waitFor('back to the content after the break', async () => {
      const log = await v.page.evaluate(() => window.adLog);
      return log.some((e) => e.ev === 'resumed') ? log : null;
    }, { timeout: 60000, interval: 500 }).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await v.page.evaluate(() => window.adLog))}`);
    });
  }
  const asset = (uri) => Object.entries(assets).find(([, id]) => uri.includes(`/vod/${id}/`))?.[0];
  const played = async (v) => (await v.page.evaluate(() => window.adLog)).filter((e) => e.ev === 'asset').map((e) => asset(e.uri));
  assert.deepEqual(await played(v1), ['ad1', 'ad2', 'slate'], 'viewer 1: its pod, then slate');
  assert.deepEqual(await played(v2), ['ad3', 'ad2', 'slate'], 'viewer 2: another pod, then slate');
  for (const v of [v1, v2]) {
    const errors = (await v.page.evaluate(() => window.adLog)).filter((e) => e.ev === 'asset-error');
    assert.deepEqual(errors, [], 'no asset failed');
    const after = await watchPlayback(v.page, 4);
    assert.ok(after.last.currentTime > after.first.currentTime + 3, 'the content plays on');
    const fatal = await v.page.evaluate(() => window.brook.fatalErrors.map((e) => `${e.details} ${e.url}`));
    assert.deepEqual(fatal, [], 'no fatal hls.js error');
  }

  // ad2 played for both: its segments are one cache entry at the edge
  // (the viewers' tokens differ; the later fetch of each is a hit, or
  // joined the first one's origin fetch).
  const ad2 = (v) => v.adResponses.filter((x) => x.path.startsWith(`/vod/${assets.ad2}/`));
  assert.ok(ad2(v1).length > 0 && ad2(v2).length > 0, 'both fetched ad2');
  const hits = [...ad2(v1), ...ad2(v2)].filter((x) => x.cache === 'hit' || x.cache === 'coalesced');
  assert.ok(hits.length > 0, `ad2's segments shared: ${JSON.stringify([...ad2(v1), ...ad2(v2)])}`);

  // Beacons: per viewer session and ad, each event once, in order; the
  // wrapper's impression beside the inline one.
  const order = ['impression', 'start', 'firstQuartile', 'midpoint', 'thirdQuartile', 'complete'];
  await waitFor('every beacon', () => vast.beacons.filter((b) => b.ev === 'complete').length >= 4, { timeout: 20000 })
    .catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(vast.beacons)}`); });
  // Late duplicates would show by now.
  await new Promise((r) => { setTimeout(r, 3000); });
  const sids = [...new Set(vast.beacons.map((b) => b.sid))].sort();
  assert.deepEqual(sids, ['viewer-1', 'viewer-2'], 'the viewers, as the ad server knows them');
  for (const sid of sids) {
    const mine = vast.beacons.filter((b) => b.sid === sid);
    const ads = [...new Set(mine.filter((b) => !b.ad.startsWith('w-')).map((b) => b.ad))].sort();
    assert.equal(ads.join(), sid === 'viewer-1' ? 'ad1,ad2' : 'ad2,ad3', `${sid}: ${ads}`);
    for (const ad of ads) {
      const evs = mine.filter((b) => b.ad === ad).map((b) => b.ev);
      assert.deepEqual(evs, order, `${sid} ${ad}: ${evs}`);
      assert.ok(mine.filter((b) => b.ad === ad).every((b) => /^\d{8}$/.test(b.cb)), 'CACHEBUSTING replaced');
    }
    assert.deepEqual(mine.filter((b) => b.ad === 'w-ad2').map((b) => b.ev), ['impression'], `${sid}: the wrapper's impression, once`);
  }
  console.log(`# ad insertion: ${vast.beacons.length} beacons from 2 viewers; ad2 segment fetches ${ad2(v1).length + ad2(v2).length}, edge hits ${hits.length}`);
  await v1.page.close();
  await v2.page.close();
});

/** The asset list URI the edge would sign for a break (tests know TOKEN_KEYS). */
function signedList(id, start, dur) {
  const list = '/live/cam1/ads.json';
  const sig = createHmac('sha256', Buffer.from(KEYS.k2026a, 'hex'))
    .update(`brook-ads-v1|${list}|${id}|${start}|${dur}`).digest('hex').slice(0, 32);
  return `${list}?break=${encodeURIComponent(id)}&start=${encodeURIComponent(start)}&dur=${dur}&sig=${sig}`;
}

test('an ad server that is empty, broken, slow or down gives slate, never a broken asset list; lists are signed and kept', async () => {
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/cam1/*', id: 'faults', ttl: 3600 });
  const q = tokenQuery(token);
  const slate = `/vod/${assets.slate}/index.m3u8`;
  const now = new Date().toISOString();
  try {
    for (const behaviour of ['empty', 'broken', 'slow', 'down']) {
      vast.state.behaviour = behaviour;
      const t0 = Date.now();
      const r = await fetch(`${edge.url}${signedList(`f-${behaviour}`, now, 6)}&${q}`);
      const took = Date.now() - t0;
      assert.equal(r.status, 200, behaviour);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      const list = await r.json();
      assert.equal(list.ASSETS.length, 1, `${behaviour}: ${JSON.stringify(list)}`);
      assert.ok(list.ASSETS[0].URI.startsWith(`${slate}?__token__=`), `${behaviour}: the slate`);
      assert.equal(list.ASSETS[0].DURATION, 6);
      // Within the 2 s budget (and some for the request itself).
      assert.ok(took < 3500, `${behaviour}: answered in ${took} ms`);
      // The slate's URI plays for this viewer through the edge.
      assert.equal((await fetch(new URL(list.ASSETS[0].URI, edge.url))).status, 200, `${behaviour}: slate playable`);
      console.log(`# ad server ${behaviour}: slate for the whole break in ${took} ms`);
      // The edge gave up on the request it timed out (aborted it), not only on its answer.
      if (behaviour === 'slow') await waitFor('the timed-out request aborted', () => vast.state.abandoned >= 1, { timeout: 3000 });
    }
  } finally {
    vast.state.behaviour = 'pods';
  }
  // Each failure counted by its kind.
  const metrics = (await text(`${edge.url}/_brook/metrics`, { headers: { authorization: 'Bearer metrics-secret' } })).body;
  for (const reason of ['invalid', 'timeout', 'status']) {
    assert.match(metrics, new RegExp(`brook_edge_ad_server_failures_total\\{reason="${reason}"\\} [1-9]`), metrics);
  }
  assert.match(metrics, /brook_edge_ad_decisions_total\{result="empty"\} [1-9]/);
  assert.match(metrics, /brook_edge_ad_decisions_total\{result="no_decision"\} [1-9]/);

  // One decision per viewer and break: asking again gives the same list
  // (the same ads, the same beacons: no second impression).
  const uri = `${edge.url}${signedList('f-repeat', now, 8)}&${q}`;
  const first = await (await fetch(uri)).text();
  const again = await (await fetch(`${uri}&_HLS_primary_id=another-player`)).text();
  assert.equal(again, first);
  assert.match(first, /"ASSETS":\[\{"URI":"\/vod\//);

  // Refusals: no token; a list this edge did not sign (a changed duration,
  // another break, no signature); a break long over; HEAD; bad durations.
  assert.equal((await fetch(`${edge.url}${signedList('x', now, 6)}`)).status, 401);
  assert.equal((await fetch(`${edge.url}${signedList('x', now, 6).replace('dur=6', 'dur=600')}&${q}`)).status, 403);
  assert.equal((await fetch(`${edge.url}${signedList('x', now, 6).replace('break=x', 'break=y')}&${q}`)).status, 403);
  assert.equal((await fetch(`${edge.url}/live/cam1/ads.json?break=x&start=${encodeURIComponent(now)}&dur=6&${q}`)).status, 403);
  const old = new Date(Date.now() - 2 * 3600 * 1000).toISOString();
  assert.equal((await fetch(`${edge.url}${signedList('x', old, 6)}&${q}`)).status, 410);
  assert.equal((await fetch(`${edge.url}${signedList('x', now, 6)}&${q}`, { method: 'HEAD' })).status, 405);
  assert.equal((await fetch(`${edge.url}${signedList('x', now, 0)}&${q}`)).status, 400);
  assert.equal((await fetch(`${edge.url}${signedList('x', now, 6000)}&${q}`)).status, 400);
  assert.equal((await fetch(`${edge.url}${signedList('x'.repeat(200), now, 6)}&${q}`)).status, 400);
});

test('beacons fire only for ad segments served to a GET, within the ad', async () => {
  // An ad token as the edge minted it for viewer-1 (from the asset list it
  // answered in the first test): HEAD, a segment past the ad's end and a
  // 404 fire nothing.
  const before = vast.beacons.length;
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/cam1/*', id: 'beacons', ttl: 3600 });
  const now = new Date().toISOString();
  const l = await (await fetch(`${edge.url}${signedList('b-1', now, 8)}&${tokenQuery(token)}`)).json();
  const ad = l.ASSETS[0];
  assert.ok(ad.URI.includes(`/vod/${assets.ad3}/`) || ad.URI.includes(`/vod/${assets.ad1}/`), JSON.stringify(l));
  const adToken = new URL(ad.URI, edge.url).searchParams.get('__token__');
  const asset = /\/vod\/([0-9a-f]{32})\//.exec(ad.URI)[1];
  const mv = (await text(new URL(ad.URI, edge.url).href)).body;
  const rendition = mv.split('\n').find((x) => x && !x.startsWith('#')).split('?')[0].replace('.m3u8', '');
  const seg = (n) => `${edge.url}/vod/${asset}/${rendition}-seg${n}.m4s?__token__=${encodeURIComponent(adToken)}`;
  assert.equal((await fetch(seg(0), { method: 'HEAD' })).status, 200);
  assert.equal((await fetch(seg(999))).status, 404);
  await new Promise((r) => { setTimeout(r, 1500); });
  assert.equal(vast.beacons.length, before, `nothing fired: ${JSON.stringify(vast.beacons.slice(before))}`);
  // A GET of the first segment fires what that segment plays: impression
  // and start, and the quartiles its time holds (the creative's segments
  // are the VOD ladder's, 4 s: a 4 s ad is one segment, so all of them),
  // once however often it is fetched.
  const media = (await text(new URL(`/vod/${asset}/${rendition}.m3u8?__token__=${encodeURIComponent(adToken)}`, edge.url).href)).body;
  const durations = [...media.matchAll(/#EXTINF:([\d.]+)/g)].map((m) => Number(m[1]));
  const total = durations.reduce((a, b) => a + b, 0);
  const segAt = (t) => { let s = 0; for (let i = 0; i < durations.length; i++) { s += durations[i]; if (t < s) return i; } return durations.length - 1; };
  const order = ['impression', 'start', 'firstQuartile', 'midpoint', 'thirdQuartile', 'complete'];
  const at = { impression: 0, start: 0, firstQuartile: segAt(total / 4), midpoint: segAt(total / 2), thirdQuartile: segAt(3 * total / 4), complete: durations.length - 1 };
  const expected = order.filter((e) => at[e] === 0);
  assert.equal((await fetch(seg(0))).status, 200);
  assert.equal((await fetch(seg(0))).status, 200);
  await waitFor('the first segment\'s events', () => vast.beacons.length >= before + expected.length, { timeout: 5000 });
  await new Promise((r) => { setTimeout(r, 1000); });
  assert.deepEqual(vast.beacons.slice(before).map((b) => b.ev), expected, `segments ${durations}`);
  // The rest with the segments that hold them, in order.
  for (let n = 1; n < durations.length; n++) assert.equal((await fetch(seg(n))).status, 200);
  await waitFor('every event', () => vast.beacons.length >= before + order.length, { timeout: 5000 });
  await new Promise((r) => { setTimeout(r, 500); });
  assert.deepEqual(vast.beacons.slice(before).map((b) => b.ev), order);
});

test('a wrapper that fails calls its error URL with the VAST error code; the rest of the pod plays', async () => {
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/cam1/*', id: 'errors', ttl: 3600 });
  const l = await (await fetch(`${edge.url}${signedList('e-1', new Date().toISOString(), 8)}&${tokenQuery(token)}`)).json();
  assert.ok(l.ASSETS[0].URI.startsWith(`/vod/${assets.ad1}/`), JSON.stringify(l));
  const err = await waitFor('the error URL', () => vast.beacons.find((b) => b.sid === 'errors' && b.ev === 'error'), { timeout: 5000 });
  // 301: the wrapper's VAST URI gave no document.
  assert.deepEqual({ ad: err.ad, code: err.code }, { ad: 'w-gone', code: '301' });
  assert.equal(vast.beacons.filter((b) => b.sid === 'errors' && b.ev === 'error').length, 1);
});
