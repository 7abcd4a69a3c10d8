// Rendition caps (token claims maxh / maxbw, docs/tokens.md) on every request
// they govern, on the real wasm build (edge/build/, `cargo xtask wasm`) in
// workerd through Miniflare, in front of a fake origin serving the transcoded
// ladder of issue 11: three video rungs, a shared audio rendition and an
// audio-only variant, with their media playlists, objects and the DASH MPD.
//
//   node --test edge/test/caps.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';

const EDGE = 'http://edge.test';
const KEY = '7c1e0c47a3b2d5e6f708192a3b4c5d6e';
const S = '0a1b2c3d4e5f6a7b';

/** An EdgeAuth-layout token (node's crypto, independent of the Rust signer). */
function token({ acl = '/live/*', id, data } = {}) {
  const fields = [`exp=${Math.floor(Date.now() / 1000) + 600}`, `acl=${acl}`];
  if (id) fields.push(`id=${id}`);
  if (data) fields.push(`data=${data}`);
  fields.push('kid=k1');
  const signed = fields.join('~');
  return `${signed}~hmac=${createHmac('sha256', Buffer.from(KEY, 'hex')).update(signed).digest('hex')}`;
}

const RUNGS = [
  { name: '1080p', width: 1920, height: 1080, bandwidth: 5000000 },
  { name: '720p', width: 1280, height: 720, bandwidth: 2500000 },
  { name: '360p', width: 640, height: 360, bandwidth: 600000 },
];

const multivariant = () => '#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n'
  + `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,URI="${S}/audio.m3u8"\n`
  + RUNGS.map((r) => `#EXT-X-STREAM-INF:BANDWIDTH=${r.bandwidth},RESOLUTION=${r.width}x${r.height},`
    + `CODECS="avc1.64001f,mp4a.40.2",AUDIO="aac"\n${S}/${r.name}.m3u8\n`).join('')
  + `#EXT-X-STREAM-INF:BANDWIDTH=140000,CODECS="mp4a.40.2",AUDIO="aac"\n${S}/audio.m3u8\n`;

const media = (name) => '#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-PART-INF:PART-TARGET=0.2\n'
  + `#EXT-X-MAP:URI="${name}-init.mp4"\n#EXT-X-PART:DURATION=0.2,URI="${name}-part1.0.m4s",INDEPENDENT=YES\n`
  + `#EXTINF:1.0,\n${name}-seg1.m4s\n`;

const mpd = () => '<?xml version="1.0" encoding="UTF-8"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic">\n'
  + '  <Period id="0" start="PT0S">\n'
  + '    <AdaptationSet contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">\n'
  + '      <SegmentTemplate initialization="$RepresentationID$-init.mp4" media="$RepresentationID$-seg$Number$.m4s"/>\n'
  + RUNGS.map((r) => `      <Representation id="${r.name}" bandwidth="${r.bandwidth}" width="${r.width}" height="${r.height}"/>\n`).join('')
  + '    </AdaptationSet>\n'
  + '    <AdaptationSet contentType="audio" mimeType="audio/mp4">\n'
  + '      <SegmentTemplate initialization="$RepresentationID$-init.mp4" media="$RepresentationID$-seg$Number$.m4s"/>\n'
  + '      <Representation id="audio" bandwidth="128000"/>\n'
  + '    </AdaptationSet>\n  </Period>\n</MPD>\n';

/** The fake origin: streams `ladder` and `down` (whose multivariant is a 503). */
const seen = [];
const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  seen.push(path);
  const m = path.match(/^\/live\/(ladder|down)\/(?:([0-9a-f]{16})\/)?([^/]+)$/);
  if (!m) return res.writeHead(404).end('no\n');
  const [, stream, session, name] = m;
  if (!session && name === 'index.m3u8') {
    if (stream === 'down') return res.writeHead(503, { 'content-type': 'text/plain' }).end('down\n');
    return res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache' }).end(multivariant());
  }
  if (session !== S) return res.writeHead(404).end('no\n');
  if (name === 'manifest.mpd') return res.writeHead(200, { 'content-type': 'application/dash+xml', 'cache-control': 'no-cache' }).end(mpd());
  const playlist = name.match(/^([A-Za-z0-9_]+)\.m3u8$/);
  if (playlist) return res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache' }).end(media(playlist[1]));
  if (/\.(mp4|m4s)$/.test(name)) {
    return res.writeHead(200, { 'content-type': 'video/mp4', 'cache-control': 'public, max-age=31536000, immutable' }).end(`bytes of ${name}`);
  }
  return res.writeHead(404).end('no\n');
});

let mf;
before(async () => {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  mf = new Miniflare(workerOptions({
    bindings: {
      ORIGIN_URL: `http://127.0.0.1:${server.address().port}`,
      EDGE_CONFIG: '{}',
      TOKEN_KEYS: `k1:${KEY}`,
    },
  }));
  await mf.ready;
});
after(async () => {
  await mf?.dispose();
  server.closeAllConnections();
  server.close();
});

async function get(path, tok) {
  const sep = path.includes('?') ? '&' : '?';
  const res = await mf.dispatchFetch(`${EDGE}${path}${sep}__token__=${encodeURIComponent(tok)}`);
  return { status: res.status, body: await res.text() };
}

const at = (name) => `/live/ladder/${S}/${name}`;
const multivariantFetches = (stream = 'ladder') => seen.filter((p) => p === `/live/${stream}/index.m3u8`).length;

test('a maxh:720 token: 200 up to 720p, 403 for 1080p on every kind of request, MPD filtered', async () => {
  const t = token({ id: 'capped-720', data: 'maxh:720' });
  const mv = await get('/live/ladder/index.m3u8', t);
  assert.equal(mv.status, 200);
  assert.ok(!mv.body.includes('1080p'), 'the multivariant leaves 1080p out');
  for (const name of ['720p', '360p', 'audio']) assert.ok(mv.body.includes(`${S}/${name}.m3u8`), name);

  const before = seen.length;
  const cases = [
    ['1080p.m3u8', 403], ['1080p-init.mp4', 403], ['1080p-init2.mp4', 403], ['1080p-part1.0.m4s', 403], ['1080p-seg1.m4s', 403],
    ['720p.m3u8', 200], ['720p-init.mp4', 200], ['720p-part1.0.m4s', 200], ['720p-seg1.m4s', 200],
    ['360p.m3u8', 200], ['360p-seg1.m4s', 200],
    // Audio is never capped by height.
    ['audio.m3u8', 200], ['audio-init.mp4', 200], ['audio-part1.0.m4s', 200], ['audio-seg1.m4s', 200],
    // Renditions the ladder does not list, and objects without one: refused (fail closed).
    ['2160p.m3u8', 403], ['2160p-seg1.m4s', 403], ['seg1.m4s', 403], ['init.mp4', 403],
  ];
  for (const [name, want] of cases) {
    const r = await get(at(name), t);
    assert.equal(r.status, want, name);
    if (want === 200 && name.endsWith('m4s')) assert.equal(r.body, `bytes of ${name}`);
  }
  const reached = seen.slice(before);
  assert.ok(!reached.some((p) => p.includes('1080p') || p.includes('2160p')), `refused requests never reach the origin: ${reached}`);

  const dash = await get(at('manifest.mpd'), t);
  assert.equal(dash.status, 200);
  const ids = [...dash.body.matchAll(/<Representation id="([^"]+)"/g)].map((x) => x[1]);
  assert.deepEqual(ids, ['720p', '360p', 'audio']);
  assert.match(dash.body, /initialization="\$RepresentationID\$-init\.mp4\?__token__=/, 'the token still goes into the MPD');
});

test('a maxbw token caps by bandwidth; a token under every rung gets 403 everywhere but its audio', async () => {
  const t = token({ id: 'capped-bw', data: 'maxbw:1000000' });
  assert.equal((await get(at('720p.m3u8'), t)).status, 403);
  assert.equal((await get(at('720p-part1.0.m4s'), t)).status, 403);
  assert.equal((await get(at('360p.m3u8'), t)).status, 200);
  const dash = await get(at('manifest.mpd'), t);
  assert.deepEqual([...dash.body.matchAll(/<Representation id="([^"]+)"/g)].map((x) => x[1]), ['360p', 'audio']);

  const tiny = token({ id: 'capped-tiny', data: 'maxh:240' });
  // Only the audio-only variant would remain: not what a video viewer is
  // entitled to, as the MPD below.
  assert.equal((await get('/live/ladder/index.m3u8', tiny)).status, 403, 'no video variant left');
  assert.equal((await get(at('360p.m3u8'), tiny)).status, 403);
  assert.equal((await get(at('audio.m3u8'), tiny)).status, 200);
  assert.equal((await get(at('manifest.mpd'), tiny)).status, 403, 'no video Representation left');
});

test('tokens without caps cost nothing: no multivariant fetch behind their requests', async () => {
  const t = token({ id: 'uncapped' });
  const fetches = multivariantFetches();
  for (const name of ['1080p.m3u8', '1080p-init.mp4', '1080p-seg1.m4s', 'anything.m3u8']) {
    assert.equal((await get(at(name), t)).status, 200, name);
  }
  assert.equal(multivariantFetches(), fetches);
  const dash = await get(at('manifest.mpd'), t);
  assert.equal([...dash.body.matchAll(/<Representation /g)].length, 4);
});

test('many capped viewers share one ladder: one multivariant fetch, not one per request', async () => {
  const fetches = multivariantFetches();
  const tokens = Array.from({ length: 20 }, (_, i) => token({ id: `shared-${i}`, data: 'maxh:720' }));
  const results = await Promise.all(tokens.flatMap((t) => [
    get(at('720p-seg1.m4s'), t), get(at('1080p-seg1.m4s'), t), get(at('audio-part1.0.m4s'), t),
  ]));
  assert.deepEqual([...new Set(results.map((r) => r.status))].sort(), [200, 403]);
  assert.ok(multivariantFetches() - fetches <= 1, `${multivariantFetches() - fetches} multivariant fetches`);
});

test('the origin down for the ladder: a capped viewer gets 503 (try again), never the unchecked object', async () => {
  const capped = token({ id: 'down-capped', data: 'maxh:720' });
  const r = await mf.dispatchFetch(`${EDGE}/live/down/${S}/360p-seg1.m4s?__token__=${encodeURIComponent(capped)}`);
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('retry-after'), '2');
  await r.arrayBuffer();
  assert.ok(!seen.includes(`/live/down/${S}/360p-seg1.m4s`), 'the object was not fetched');
  // Viewers without caps do not depend on the ladder.
  const free = await get(`/live/down/${S}/360p-seg1.m4s`, token({ id: 'down-free' }));
  assert.equal(free.status, 200);
});

test('a token for one stream does not open another through an encoded separator', async () => {
  const t = token({ acl: '/live/ladder/*' });
  const before = seen.length;
  const r = await get(`/live/ladder/..%2fother/${S}/720p.m3u8`, t);
  assert.equal(r.status, 404);
  assert.equal(seen.length, before);
});
