// Video on demand through the edge (`/vod/<asset>/...`, docs/edge.md): the same
// tokens, geo rules, rendition caps, per-viewer manifests, caching and
// coalescing as live, on the real wasm build (edge/build/, `cargo xtask wasm`)
// in workerd through Miniflare, in front of a fake origin with the origin's VOD
// layout: a 3-rung asset with I-frame playlists, a static MPD, objects that
// answer byte ranges, images, and a status document.
//
//   node --test edge/test/vod.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';

const EDGE = 'http://edge.test';
const KEY = '7c1e0c47a3b2d5e6f708192a3b4c5d6e';
/** The asset, one still processing (404), one under a geo rule. */
const A = '0123456789abcdef0123456789abcdef';
const PENDING = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const GEO = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** A segment the origin answers after 300 ms, so concurrent requests overlap. */
const SLOW = '360p-seg42.m4s';

/** An EdgeAuth-layout token (node's crypto, independent of the Rust signer). */
function token({ acl = `/vod/${A}/*`, id, data, key = KEY } = {}) {
  const fields = [`exp=${Math.floor(Date.now() / 1000) + 600}`, `acl=${acl}`];
  if (id) fields.push(`id=${id}`);
  if (data) fields.push(`data=${data}`);
  fields.push('kid=k1');
  const signed = fields.join('~');
  return `${signed}~hmac=${createHmac('sha256', Buffer.from(key, 'hex')).update(signed).digest('hex')}`;
}

const RUNGS = [
  { name: '1080p', width: 1920, height: 1080, bandwidth: 5000000 },
  { name: '720p', width: 1280, height: 720, bandwidth: 2500000 },
  { name: '360p', width: 640, height: 360, bandwidth: 600000 },
];

const multivariant = () => '#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n'
  + '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,URI="audio.m3u8"\n'
  + RUNGS.map((r) => `#EXT-X-STREAM-INF:BANDWIDTH=${r.bandwidth},RESOLUTION=${r.width}x${r.height},`
    + `CODECS="avc1.64001f,mp4a.40.2",AUDIO="aac"\n${r.name}.m3u8\n`).join('')
  + RUNGS.map((r) => `#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=${r.bandwidth / 10},RESOLUTION=${r.width}x${r.height},`
    + `CODECS="avc1.64001f",URI="${r.name}-iframes.m3u8"\n`).join('');

const media = (r) => '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n'
  + `#EXT-X-MAP:URI="${r}-init0.mp4"\n#EXTINF:4,\n${r}-seg0.m4s\n#EXTINF:4,\n${r}-seg1.m4s\n#EXT-X-ENDLIST\n`;

// In the order the packager writes an I-frame playlist.
const iframes = (r) => '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-I-FRAMES-ONLY\n'
  + `#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI="${r}-init0.mp4"\n`
  + `#EXTINF:4,\n#EXT-X-BYTERANGE:10@4\n${r}-seg0.m4s\n#EXTINF:4,\n#EXT-X-BYTERANGE:10@4\n${r}-seg1.m4s\n#EXT-X-ENDLIST\n`;

const mpd = () => '<?xml version="1.0" encoding="UTF-8"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT8S">\n'
  + '  <Period id="0">\n'
  + '    <AdaptationSet contentType="video" mimeType="video/mp4">\n'
  + '      <SegmentTemplate initialization="$RepresentationID$-init0.mp4" media="$RepresentationID$-seg$Number$.m4s" startNumber="0" duration="4" timescale="1"/>\n'
  + RUNGS.map((r) => `      <Representation id="${r.name}" bandwidth="${r.bandwidth}" width="${r.width}" height="${r.height}"/>\n`).join('')
  + '    </AdaptationSet>\n'
  + '    <AdaptationSet contentType="audio" mimeType="audio/mp4">\n'
  + '      <SegmentTemplate initialization="$RepresentationID$-init0.mp4" media="$RepresentationID$-seg$Number$.m4s" startNumber="0" duration="4" timescale="1"/>\n'
  + '      <Representation id="audio" bandwidth="128000"/>\n'
  + '    </AdaptationSet>\n  </Period>\n</MPD>\n';

const bytesOf = (name) => Buffer.from(`bytes of ${name}, all of them`);

/** The fake origin; every request is logged in `seen`. */
const seen = [];
let statusCalls = 0;
const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  seen.push({ path, range: req.headers.range, url: req.url });
  const m = path.match(/^\/vod\/([0-9a-f]{32})\/([^/]+)$/);
  if (!m || m[1] === PENDING) return res.writeHead(404, { 'content-type': 'text/plain' }).end('no such asset\n');
  const [, , name] = m;
  const short = { 'cache-control': 'public, max-age=60' };
  if (name === 'index.m3u8') return res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', ...short }).end(multivariant());
  if (name === 'manifest.mpd') return res.writeHead(200, { 'content-type': 'application/dash+xml', ...short }).end(mpd());
  if (name === 'status') {
    statusCalls += 1;
    return res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(JSON.stringify({ id: m[1], status: 'ready', progress: 100, error: null, call: statusCalls }));
  }
  let pl = name.match(/^([A-Za-z0-9_]+)-iframes\.m3u8$/);
  if (pl) return res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', ...short }).end(iframes(pl[1]));
  pl = name.match(/^([A-Za-z0-9_]+)\.m3u8$/);
  if (pl) return res.writeHead(200, { 'content-type': 'application/vnd.apple.mpegurl', ...short }).end(media(pl[1]));
  if (/\.(mp4|m4s|jpg|vtt)$/.test(name)) {
    // Slow enough for concurrent requests to overlap (coalescing).
    if (name === SLOW) await new Promise((resolve) => setTimeout(resolve, 300));
    const body = bytesOf(name);
    const range = req.headers.range?.match(/^bytes=(\d+)-(\d+)$/);
    const headers = { 'content-type': name.endsWith('.jpg') ? 'image/jpeg' : 'video/mp4', 'cache-control': IMMUTABLE, 'accept-ranges': 'bytes' };
    if (range) {
      const [a, b] = [Number(range[1]), Math.min(Number(range[2]), body.length - 1)];
      return res.writeHead(206, { ...headers, 'content-range': `bytes ${a}-${b}/${body.length}`, 'content-length': b - a + 1 })
        .end(body.subarray(a, b + 1));
    }
    return res.writeHead(200, { ...headers, 'content-length': body.length }).end(body);
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
      // Tokens required (the default), as for live; one asset only for FR.
      EDGE_CONFIG: JSON.stringify({ geo: { assets: { [GEO]: { allow: ['FR'] } } } }),
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

/** The edge's encoding of a token in child URIs (RFC 3986: `encodeURIComponent` plus `!'()*`). */
const encoded = (t) => encodeURIComponent(t).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const at = (name, asset = A) => `/vod/${asset}/${name}`;
const withToken = (path, tok) => `${EDGE}${path}${path.includes('?') ? '&' : '?'}__token__=${encodeURIComponent(tok)}`;

async function get(path, tok, headers = {}) {
  const res = await mf.dispatchFetch(tok ? withToken(path, tok) : `${EDGE}${path}`, { headers });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

const originHits = (path) => seen.filter((s) => s.path === path).length;

test('a token is required, as for live: none 401, a bad or foreign one 403, never reaching the origin', async () => {
  const before = seen.length;
  const none = await get(at('index.m3u8'));
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate'), /^Bearer/);
  for (const [what, tok] of [
    ['wrong key', token({ key: 'ffeeddccbbaa99887766554433221100' })],
    ['another asset', token({ acl: `/vod/${'c'.repeat(32)}/*` })],
    ['a live token', token({ acl: '/live/*' })],
    ['garbage', 'exp=1~acl=/vod/*~hmac=00'],
  ]) {
    for (const name of ['index.m3u8', '720p-seg0.m4s', 'status', 'poster.jpg']) {
      const r = await get(at(name), tok);
      assert.equal(r.status, 403, `${what}: ${name}`);
      assert.equal(r.body, 'forbidden\n', 'the same bare refusal whatever failed');
    }
  }
  assert.equal(seen.length, before, 'refused requests never reach the origin');
  // A good token, in the query or as a Bearer header.
  assert.equal((await get(at('index.m3u8'), token())).status, 200);
  assert.equal((await get(at('index.m3u8'), null, { authorization: `Bearer ${token({ acl: '/vod/*' })}` })).status, 200);
});

test('paths are checked first: encoded separators, dot segments and bad ids are 404s', async () => {
  const before = seen.length;
  for (const path of [
    `/vod/${A}/..%2f${PENDING}/index.m3u8`, `/vod/${A}/%2e%2e`, `/vod/${A.toUpperCase()}/index.m3u8`,
    '/vod/cam1/index.m3u8', `/vod/${A}/`, `/vod/${A}/.hidden`,
  ]) {
    assert.equal((await get(path, token({ acl: '/vod/*' }))).status, 404, path);
  }
  assert.equal(seen.length, before);
});

test('geo rules per asset: 451 outside the allowed countries', async () => {
  const tok = token({ acl: '/vod/*' });
  assert.equal((await get(at('index.m3u8', GEO), tok)).status, 451);
  const fr = await mf.dispatchFetch(withToken(at('index.m3u8', GEO), tok), { cf: { country: 'FR' } });
  assert.equal(fr.status, 200);
  await fr.text();
});

test('the multivariant is rewritten per viewer: caps drop rungs (and their I-frame playlists), the token goes into every URI', async () => {
  const t = token({ id: 'vod-720', data: 'maxh:720' });
  const mv = await get(at('index.m3u8'), t);
  assert.equal(mv.status, 200);
  assert.ok(!mv.body.includes('1080p'), mv.body);
  const enc = encoded(t);
  for (const uri of ['720p.m3u8', '360p.m3u8', 'audio.m3u8', '720p-iframes.m3u8', '360p-iframes.m3u8']) {
    assert.ok(mv.body.includes(`${uri}?__token__=${enc}`), `${uri} carries the token`);
  }
  assert.equal(mv.headers.get('cache-control'), 'private, max-age=60', 'personalized: no shared cache may keep it');

  // The caps hold on every request they govern.
  const cases = [
    ['1080p.m3u8', 403], ['1080p-iframes.m3u8', 403], ['1080p-init0.mp4', 403], ['1080p-seg0.m4s', 403],
    ['720p.m3u8', 200], ['720p-iframes.m3u8', 200], ['720p-init0.mp4', 200], ['720p-seg0.m4s', 200],
    ['audio.m3u8', 200], ['audio-seg0.m4s', 200], ['4k-seg0.m4s', 403],
    // Images and status have no rendition.
    ['poster.jpg', 200], ['sprite-0.jpg', 200], ['status', 200],
  ];
  for (const [name, want] of cases) assert.equal((await get(at(name), t)).status, want, name);

  const pl = await get(at('720p.m3u8'), t);
  assert.ok(pl.body.includes(`#EXT-X-MAP:URI="720p-init0.mp4?__token__=${enc}"`), pl.body);
  assert.ok(pl.body.includes(`720p-seg1.m4s?__token__=${enc}`), pl.body);
  const ifr = await get(at('720p-iframes.m3u8'), t);
  assert.equal(ifr.status, 200);
  assert.ok(ifr.body.includes(`#EXT-X-BYTERANGE:10@4\n720p-seg0.m4s?__token__=${enc}\n`), ifr.body);
  assert.equal(ifr.body.replaceAll(`?__token__=${enc}`, ''), iframes('720p'), 'only the token was added');

  const dash = await get(at('manifest.mpd'), t);
  assert.equal(dash.status, 200);
  assert.deepEqual([...dash.body.matchAll(/<Representation id="([^"]+)"/g)].map((x) => x[1]), ['720p', '360p', 'audio']);
  assert.ok(dash.body.includes(`media="$RepresentationID$-seg$Number$.m4s?__token__=${enc}"`), dash.body);
  assert.equal(dash.headers.get('cache-control'), 'private, max-age=60');
});

test('manifests are cached for a short time as the origin wrote them, and personalized for each viewer', async () => {
  const name = '360p.m3u8';
  const a = await get(at(name), token({ id: 'v-a' }));
  const b = await get(at(name), token({ id: 'v-b' }));
  assert.equal(a.status, 200);
  assert.equal(b.headers.get('x-brook-cache'), 'hit');
  assert.ok(b.body.includes('id%3Dv-b'), 'the hit is personalized for its own viewer');
  assert.ok(!b.body.includes('v-a'), 'never another viewer\'s token');
  assert.equal(originHits(at(name)), 1);
});

test('immutable objects are cached for good and answer with the origin\'s immutable Cache-Control', async () => {
  const t = token();
  for (const name of ['720p-seg1.m4s', '720p-init0.mp4', 'poster.jpg', 'sprites.vtt', 'sprite-3.jpg']) {
    const first = await get(at(name), t);
    assert.equal(first.status, 200, name);
    assert.equal(first.body, bytesOf(name).toString());
    assert.equal(first.headers.get('cache-control'), IMMUTABLE, name);
    const second = await get(at(name), token({ id: 'someone-else' }));
    assert.equal(second.headers.get('x-brook-cache'), 'hit', name);
    assert.equal(second.headers.get('cache-control'), IMMUTABLE, `${name}: the origin's value, not the edge TTL`);
    assert.equal(second.body, bytesOf(name).toString());
    assert.equal(originHits(at(name)), 1, `${name}: one origin request`);
  }
});

test('a byte-range request is passed to the origin and its 206 passed back, never stored as the object', async () => {
  const t = token();
  const name = '360p-seg0.m4s';
  const whole = bytesOf(name);
  const part = await get(at(name), t, { range: 'bytes=4-13' });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 4-13/${whole.length}`);
  assert.equal(part.body, whole.subarray(4, 14).toString());
  assert.equal(part.headers.get('x-brook-cache'), 'pass');
  assert.equal(seen.at(-1).range, 'bytes=4-13', 'the origin got the Range header');

  // The next plain GET gets the whole object from the origin, and that is what is stored.
  const full = await get(at(name), t);
  assert.equal(full.status, 200);
  assert.equal(full.body, whole.toString());
  assert.equal(full.headers.get('x-brook-cache'), 'miss');
  const hit = await get(at(name), t);
  assert.equal(hit.headers.get('x-brook-cache'), 'hit');
  assert.equal(hit.body, whole.toString());

  // With the object stored, a range request still gets a 206 of just the range.
  const again = await get(at(name), t, { range: 'bytes=0-3' });
  assert.equal(again.status, 206);
  assert.equal(again.body, whole.subarray(0, 4).toString());
  // Caps hold on range requests too.
  assert.equal((await get(at('1080p-seg0.m4s'), token({ data: 'maxh:720' }), { range: 'bytes=0-3' })).status, 403);
});

test('concurrent requests for one object share one origin fetch', async () => {
  const before = originHits(at(SLOW));
  const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => get(at(SLOW), token({ id: `c${i}` }))));
  assert.ok(rs.every((r) => r.status === 200 && r.body === bytesOf(SLOW).toString()));
  const sources = rs.map((r) => r.headers.get('x-brook-cache'));
  assert.equal(originHits(at(SLOW)) - before, 1, sources.join(','));
  assert.ok(sources.includes('coalesced'), sources.join(','));
});

test('status is never cached: every poll reaches the origin, no-store comes back', async () => {
  const t = token();
  const first = await get(at('status'), t);
  const second = await get(at('status'), t);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('cache-control'), 'no-store');
  assert.equal(second.headers.get('x-brook-cache'), 'pass');
  assert.notEqual(JSON.parse(first.body).call, JSON.parse(second.body).call, 'two origin answers');
  assert.equal(JSON.parse(first.body).status, 'ready');
});

test('an asset that is not ready is a 404 from the origin, not cached', async () => {
  const t = token({ acl: '/vod/*' });
  assert.equal((await get(at('index.m3u8', PENDING), t)).status, 404);
  assert.equal((await get(at('index.m3u8', PENDING), t)).status, 404);
  assert.equal(originHits(at('index.m3u8', PENDING)), 2);
});
