// Personalized manifests, caching and coalescing, end to end: the real Worker (wasm
// in workerd via Miniflare) in front of the real brook-origin (ffmpeg publishing over
// SRT), with a recording tap between them so the tests see exactly what the origin
// sent and how often it was asked.
//
// What Miniflare shows: one isolate, so in-isolate coalescing and the Cache API
// (Miniflare's local implementation) are both exercised for real. What it cannot
// show: several isolates or colos (each would make its own origin request per key),
// nor Cloudflare's tiered cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import HLS from 'hls-parser';
import { startOrigin, startPublisher, waitFor } from './lib.mjs';
import {
  startWorker, startTap, signToken, tokenQuery, KEYS, workerMetrics, counter, stripTokens, hlsjsParser,
} from './edge-lib.mjs';

const EDGE = 'http://edge.test';
let origin, publisher, tap, mf, mediaPath, M3U8Parser;

before(async () => {
  origin = await startOrigin();
  publisher = startPublisher(origin.srtPort);
  tap = await startTap(origin.url);
  mf = await startWorker({
    originUrl: tap.url,
    config: { renditions: { save_data_max_bandwidth: 500000, mobile_max_height: 360 } },
  });
  M3U8Parser = await hlsjsParser();
  const mv = await waitFor('multivariant playlist', async () => {
    const r = await fetch(`${origin.url}/live/cam1/index.m3u8`);
    return r.status === 200 ? r.text() : null;
  }, { timeout: 30000, interval: 250 });
  mediaPath = `/live/cam1/${mv.split('\n').find((l) => l && !l.startsWith('#'))}`;
  // Wait for two complete segments, so playlists have every kind of tag.
  await waitFor('two segments', async () => {
    const t = await (await fetch(origin.url + mediaPath)).text();
    return (t.match(/#EXTINF/g) ?? []).length >= 2;
  }, { timeout: 40000, interval: 250 });
});

after(async () => {
  await mf?.dispose();
  await tap?.close();
  await Promise.all([publisher, origin].map((p) => p?.stop()));
});

const viewerToken = (id, extra = {}) => signToken({ key: KEYS.k2026a, kid: 'k2026a', id, ...extra });
const get = (path, init) => mf.dispatchFetch(EDGE + path, init);
/** The last body the origin sent for exactly this URL. */
const originBody = (url) => tap.seen.filter((e) => e.url === url && e.body != null).at(-1)?.body;

function attrs(line) {
  const out = {};
  for (const m of line.slice(line.indexOf(':') + 1).matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) {
    out[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  return out;
}

/** Every URI in a playlist: URI lines and URI="..." attributes. */
const urisOf = (text) => [
  ...text.split('\n').filter((l) => l && !l.startsWith('#')),
  ...[...text.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]),
];

test('media playlist: every URI carries the token, nothing else changes (re-parsed by hls.js and hls-parser)', async () => {
  const token = viewerToken('v-media');
  // A blocking request for the newest published part: the edge and the tap see one
  // response, so the origin's exact bytes can be compared.
  const plain = await (await fetch(origin.url + mediaPath)).text();
  const last = plain.trim().split('\n').filter((l) => l.startsWith('#EXT-X-PART:')).at(-1);
  const [, msn, part] = attrs(last).URI.match(/^video-part(\d+)\.(\d+)\.m4s$/);
  const directive = `_HLS_msn=${msn}&_HLS_part=${part}`;
  const res = await get(`${mediaPath}?${tokenQuery(token)}&${directive}`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('cache-control'), /^private/, 'personalized: no shared cache may keep it');
  assert.equal(res.headers.get('etag'), null, "the origin's validator does not describe rewritten bytes");
  const body = await res.text();
  const sent = originBody(`${mediaPath}?${directive}`);
  assert.ok(sent, 'the origin was asked for the cache key, token-free');

  // Byte for byte the origin's playlist once the token is taken off again.
  assert.equal(stripTokens(body, token), sent);
  const uris = urisOf(body);
  assert.ok(uris.length > 10);
  for (const u of uris) assert.ok(u.endsWith(tokenQuery(token)), u);
  for (const tag of ['#EXT-X-SERVER-CONTROL:', '#EXT-X-PART-INF:', '#EXT-X-MAP:', '#EXT-X-PROGRAM-DATE-TIME:',
    '#EXT-X-PART:', '#EXT-X-PRELOAD-HINT:', '#EXTINF:']) {
    assert.equal(body.split('\n').filter((l) => l.startsWith(tag)).length,
      sent.split('\n').filter((l) => l.startsWith(tag)).length, tag);
  }

  // hls.js's parser (what viewers run) sees the same playlist, with tokens on the URLs.
  const url = `https://edge.example${mediaPath}?${tokenQuery(token)}`;
  const ours = M3U8Parser.parseLevelPlaylist(body, url, 0, 'main', 0, null);
  const theirs = M3U8Parser.parseLevelPlaylist(sent, `https://edge.example${mediaPath}`, 0, 'main', 0, null);
  assert.equal(ours.playlistParsingError, null);
  assert.equal(ours.fragments.length, theirs.fragments.length);
  assert.equal(ours.partList.length, theirs.partList.length);
  assert.equal(ours.canBlockReload, true);
  assert.equal(ours.partTarget, theirs.partTarget);
  assert.ok(ours.preloadHint, 'preload hint kept');
  for (const f of ours.fragments) assert.match(f.url, /\?__token__=/);
  for (const p of ours.partList) assert.match(p.url, /\?__token__=/);
  assert.deepEqual(ours.fragments.map((f) => f.sn), theirs.fragments.map((f) => f.sn));
  assert.deepEqual(ours.fragments.map((f) => f.programDateTime), theirs.fragments.map((f) => f.programDateTime));

  // An independent parser in strict mode accepts it too.
  HLS.setOptions({ strictMode: true, silent: true });
  const parsed = HLS.parse(body);
  assert.ok(parsed.segments.length >= 2);
});

test('delta updates (_HLS_skip=YES) keep EXT-X-SKIP', async () => {
  const token = viewerToken('v-skip');
  const res = await get(`${mediaPath}?_HLS_skip=YES&${tokenQuery(token)}`);
  assert.equal(res.status, 200);
  const body = await res.text();
  const sent = originBody(`${mediaPath}?_HLS_skip=YES`);
  assert.ok(sent);
  assert.equal(stripTokens(body, token), sent);
  if (sent.includes('#EXT-X-SKIP:')) assert.match(body, /#EXT-X-SKIP:SKIPPED-SEGMENTS=\d+/);
});

test('multivariant: variant URI carries the token; hls.js parses the same levels', async () => {
  const token = viewerToken('v-mv');
  const res = await get(`/live/cam1/index.m3u8?${tokenQuery(token)}`);
  assert.equal(res.status, 200);
  const body = await res.text();
  const sent = originBody('/live/cam1/index.m3u8');
  assert.equal(stripTokens(body, token), sent);
  const ours = M3U8Parser.parseMasterPlaylist(body, `https://edge.example/live/cam1/index.m3u8?${tokenQuery(token)}`);
  const theirs = M3U8Parser.parseMasterPlaylist(sent, 'https://edge.example/live/cam1/index.m3u8');
  assert.equal(ours.levels.length, theirs.levels.length);
  assert.equal(ours.levels[0].bitrate, theirs.levels[0].bitrate);
  assert.equal(ours.levels[0].height, theirs.levels[0].height);
  assert.match(ours.levels[0].url, /\/video\.m3u8\?__token__=/);
});

test('rendition caps: a token entitled below every variant is refused; device hints keep the lightest', async () => {
  const before = counter(await workerMetrics(mf), 'brook_edge_not_entitled_total');
  const low = viewerToken('v-low', { data: 'maxh:360' });
  const refused = await get(`/live/cam1/index.m3u8?${tokenQuery(low)}`);
  assert.equal(refused.status, 403);
  assert.equal(await refused.text(), 'forbidden\n');
  assert.equal(counter(await workerMetrics(mf), 'brook_edge_not_entitled_total') - before, 1);

  const hd = viewerToken('v-hd', { data: 'maxh:720' });
  const ok = await get(`/live/cam1/index.m3u8?${tokenQuery(hd)}`, { headers: { 'save-data': 'on', 'sec-ch-ua-mobile': '?1' } });
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /RESOLUTION=1280x720/, 'soft caps never leave a viewer with nothing');
});

test('objects: one origin request for many viewers with different tokens, then Cache API hits', async () => {
  const body = await (await fetch(origin.url + mediaPath)).text();
  const seg = body.split('\n').find((l) => /^video-seg\d+\.m4s$/.test(l));
  const path = `${mediaPath.replace(/video\.m3u8$/, '')}${seg}`;
  const before = tap.count(path);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`${path}?${tokenQuery(viewerToken(`v-obj-${i}`))}`)
    .then(async (r) => ({ status: r.status, cache: r.headers.get('x-brook-cache'), cc: r.headers.get('cache-control'), len: (await r.arrayBuffer()).byteLength }))));
  assert.ok(results.every((r) => r.status === 200 && r.len > 0));
  assert.equal(new Set(results.map((r) => r.len)).size, 1);
  assert.equal(results[0].cc, 'public, max-age=31536000, immutable');
  assert.equal(tap.count(path) - before, 1, 'one origin request for 20 viewers');
  // One fetched it; the others shared that fetch, or (arriving after it was
  // stored, on a slow machine) found it in the Cache API.
  const sources = results.map((r) => r.cache);
  assert.equal(sources.filter((c) => c === 'miss').length, 1, sources.join(','));
  assert.ok(sources.includes('coalesced'), sources.join(','));
  assert.ok(sources.every((c) => ['miss', 'coalesced', 'hit'].includes(c)), sources.join(','));

  await waitFor('the Cache API copy', async () => {
    const r = await get(`${path}?${tokenQuery(viewerToken('v-late'))}`);
    await r.arrayBuffer();
    return r.headers.get('x-brook-cache') === 'hit';
  }, { timeout: 5000 });
  assert.equal(tap.count(path) - before, 1, 'still one origin request');
});

test('a thousand viewers blocked on the same part: one origin request', async () => {
  const N = 1000;
  const body = await (await fetch(origin.url + mediaPath)).text();
  const hint = attrs(body.trim().split('\n').find((l) => l.startsWith('#EXT-X-PRELOAD-HINT:'))).URI;
  const [, msn, part] = hint.match(/^video-part(\d+)\.(\d+)\.m4s$/);
  const directive = `_HLS_msn=${msn}&_HLS_part=${part}`;
  const tokens = Array.from({ length: 50 }, (_, i) => viewerToken(`v-blk-${i}`));
  const partPath = `${mediaPath.replace(/video\.m3u8$/, '')}${hint}`;
  const m0 = await workerMetrics(mf);
  const t0 = Date.now();
  // Every viewer asks for the playlist that contains the hinted part, and for the
  // part itself, before either exists.
  const [playlists, parts] = await Promise.all([
    Promise.all(Array.from({ length: N }, (_, i) => get(`${mediaPath}?${tokenQuery(tokens[i % tokens.length])}&${directive}`)
      .then(async (r) => ({ status: r.status, text: await r.text() })))),
    Promise.all(Array.from({ length: 200 }, (_, i) => get(`${partPath}?${tokenQuery(tokens[i % tokens.length])}`)
      .then(async (r) => ({ status: r.status, len: (await r.arrayBuffer()).byteLength })))),
  ]);
  const took = Date.now() - t0;
  assert.ok(playlists.every((r) => r.status === 200), `statuses: ${[...new Set(playlists.map((r) => r.status))]}`);
  assert.ok(playlists.every((r) => r.text.includes(`URI="${hint}?__token__=`)), 'each answer contains the part it waited for');
  assert.ok(parts.every((r) => r.status === 200 && r.len === parts[0].len && r.len > 0));
  assert.equal(tap.count(`${mediaPath}?${directive}`), 1, `origin requests for ${directive}`);
  assert.equal(tap.count(partPath), 1, `origin requests for ${hint}`);
  const m1 = await workerMetrics(mf);
  const coalesced = counter(m1, 'brook_edge_coalesced_total') - counter(m0, 'brook_edge_coalesced_total');
  console.log(`# ${N} blocked playlist requests + 200 part requests answered in ${took} ms; `
    + `${coalesced} shared another request's origin fetch`);

  // Later arrivals for the same state come from the Cache API.
  await waitFor('the Cache API copy', async () => {
    const r = await get(`${mediaPath}?${tokenQuery(tokens[0])}&${directive}`);
    await r.text();
    return r.headers.get('x-brook-cache') === 'hit';
  }, { timeout: 5000 });
  assert.equal(tap.count(`${mediaPath}?${directive}`), 1);
});

test('rendition filtering on a ladder (fake origin: brook-origin publishes one rendition)', async () => {
  const ladder = '#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n'
    + '#EXT-X-STREAM-INF:BANDWIDTH=6000000,RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2"\n1080p/media.m3u8\n'
    + '#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"\n720p/media.m3u8\n'
    + '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"\n360p/media.m3u8\n';
  const fake = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache' }).end(ladder);
  }).listen(0, '127.0.0.1');
  await once(fake, 'listening');
  const w = await startWorker({
    originUrl: `http://127.0.0.1:${fake.address().port}`,
    config: { renditions: { mobile_max_height: 720, save_data_max_bandwidth: 1000000 } },
  });
  try {
    const heights = async (data, headers = {}) => {
      const r = await w.dispatchFetch(`${EDGE}/live/show/index.m3u8?${tokenQuery(signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/show/*', data }))}`, { headers });
      if (r.status !== 200) return r.status;
      const p = M3U8Parser.parseMasterPlaylist(await r.text(), 'https://e.example/live/show/index.m3u8');
      return p.levels.map((l) => l.height);
    };
    assert.deepEqual(await heights(undefined), [1080, 720, 360]);
    assert.deepEqual(await heights('maxh:720'), [720, 360]);
    assert.deepEqual(await heights('maxbw:1000000'), [360]);
    assert.deepEqual(await heights('maxh:240'), 403);
    assert.deepEqual(await heights(undefined, { 'sec-ch-ua-mobile': '?1' }), [720, 360]);
    assert.deepEqual(await heights(undefined, { 'user-agent': 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0) Mobile/15E148' }), [720, 360]);
    assert.deepEqual(await heights(undefined, { 'save-data': 'on' }), [360]);
    assert.deepEqual(await heights('maxh:1080', { 'save-data': 'on', 'sec-ch-ua-mobile': '?1' }), [360]);
  } finally {
    await w.dispose();
    fake.close();
  }
});
