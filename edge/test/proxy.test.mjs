// The edge Worker's proxy, tested on the real wasm build (edge/build/, made by
// `cargo xtask wasm`) running in workerd through Miniflare, against a fake
// origin: a node http server owned by this file. The real origin is covered by
// the end-to-end suite; here the origin only has to misbehave on demand.
//
//   node --test edge/test/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';

const EDGE = 'http://edge.test';

/** A Miniflare instance running the built Worker with the given ORIGIN_URL. */
function startWorker(originUrl) {
  return new Miniflare(workerOptions({
    // Access control is off here: these tests are about proxying (tokens are
    // covered by tests/e2e/edge-access.test.mjs against the real origin).
    bindings: { ORIGIN_URL: originUrl, EDGE_CONFIG: JSON.stringify({ auth: { required: false } }) },
  }));
}

/** Fake origin: `routes[path](req, res)`; every request is logged in `seen`. */
function startOrigin(routes) {
  const seen = [];
  const server = http.createServer(async (req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    const handler = routes[new URL(req.url, 'http://x').pathname];
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such object\n');
      return;
    }
    await handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  return { server, seen };
}

const PLAYLIST = '#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n';

// The slow segment's second half is sent only once the test has read the
// first half through the Worker (or after a safety timeout, which makes the
// "arrived before the end" assertion fail instead of hanging).
let releaseSlow;
let slowFinished = false;

// A segment the origin is still making (DASH's low-latency clients fetch it
// while it grows): the first chunk now, the rest once the test has seen the
// first chunk arrive through the edge (or after a safety timeout, which makes
// the assertions fail instead of hanging).
const HINTED = '/live/cam1/0a1b2c3d4e5f6a7b/video-seg7.m4s';
let releaseHinted;
let hintedFinished = false;
// A preload-hinted LL-HLS part the origin is still making: the edge delivers
// it whole (a player's bandwidth estimate needs it), still from one request.
const PART = '/live/cam1/0a1b2c3d4e5f6a7b/video-part7.3.m4s';
let releasePart;
let partFinished = false;

const routes = {
  [PART]: async (req, res) => {
    res.writeHead(200, { 'content-type': 'video/iso.segment', 'cache-control': 'public, max-age=31536000, immutable' });
    res.write('moof+mdat of frame 1;');
    await Promise.race([
      new Promise((resolve) => { releasePart = resolve; }),
      new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
    ]);
    partFinished = true;
    res.end('frames 2-6');
  },
  [HINTED]: async (req, res) => {
    res.writeHead(200, { 'content-type': 'video/iso.segment', 'cache-control': 'public, max-age=31536000, immutable' });
    res.write('moof+mdat of frame 1;');
    await Promise.race([
      new Promise((resolve) => { releaseHinted = resolve; }),
      new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
    ]);
    hintedFinished = true;
    res.end('frames 2-6');
  },
  '/live/cam1/index.m3u8': (req, res) => {
    res.writeHead(200, {
      'content-type': 'application/vnd.apple.mpegurl',
      'cache-control': 'max-age=1, public',
      etag: '"pl-42"',
      'content-length': Buffer.byteLength(PLAYLIST),
      'x-brook-test': 'end-to-end header',
    });
    res.end(PLAYLIST);
  },
  '/live/cam1/cached.m3u8': (req, res) => {
    if (req.headers['if-none-match'] === '"pl-42"') {
      res.writeHead(304, { etag: '"pl-42"', 'cache-control': 'max-age=1' }).end();
      return;
    }
    res.writeHead(200, { etag: '"pl-42"' }).end(PLAYLIST);
  },
  '/live/cam1/hop.m3u8': (req, res) => {
    res.writeHead(200, {
      'content-type': 'application/vnd.apple.mpegurl',
      connection: 'x-private-hop',
      'x-private-hop': 'only for this connection',
      'keep-alive': 'timeout=5',
      'proxy-authenticate': 'Basic realm="origin"',
      trailer: 'x-checksum',
      'x-kept': 'yes',
    });
    res.end(PLAYLIST);
  },
  '/live/cam1/slow.m4s': async (req, res) => {
    res.writeHead(200, { 'content-type': 'video/iso.segment', 'cache-control': 'no-cache' });
    res.write('first-half;');
    await Promise.race([
      new Promise((resolve) => { releaseSlow = resolve; }),
      new Promise((resolve) => setTimeout(resolve, 10_000).unref()),
    ]);
    slowFinished = true;
    res.end('second-half');
  },
  '/live/cam1/moved.m3u8': (req, res) => {
    res.writeHead(302, { location: '/live/cam1/index.m3u8' }).end();
  },
};

let origin, mf;
before(async () => {
  origin = startOrigin(routes);
  await once(origin.server, 'listening');
  mf = startWorker(`http://127.0.0.1:${origin.server.address().port}`);
  await mf.ready;
});
after(async () => {
  await mf?.dispose();
  origin?.server.closeAllConnections();
  origin?.server.close();
});

const lastSeen = () => origin.seen.at(-1);

test('GET /live/** reaches the origin with the same path and query', async () => {
  const path = '/live/cam1/index.m3u8?_HLS_msn=12&_HLS_part=3&_HLS_skip=YES';
  const res = await mf.dispatchFetch(EDGE + path);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), PLAYLIST);
  assert.equal(lastSeen().method, 'GET');
  assert.equal(lastSeen().url, path);
});

test('end-to-end response headers are preserved', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  assert.equal(res.headers.get('cache-control'), 'max-age=1, public');
  assert.equal(res.headers.get('etag'), '"pl-42"');
  assert.equal(res.headers.get('content-length'), String(Buffer.byteLength(PLAYLIST)));
  assert.equal(res.headers.get('x-brook-test'), 'end-to-end header');
  await res.arrayBuffer();
});

test('hop-by-hop headers are stripped both ways', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/hop.m3u8`, {
    headers: {
      'proxy-authorization': 'Basic c2VjcmV0',
      'x-client': 'kept',
      'if-none-match': '"nope"',
    },
  });
  assert.equal(res.status, 200);
  for (const h of ['x-private-hop', 'keep-alive', 'proxy-authenticate', 'trailer']) {
    assert.equal(res.headers.get(h), null, `response header ${h} must not be forwarded`);
  }
  assert.equal(res.headers.get('x-kept'), 'yes');
  await res.arrayBuffer();
  const sent = lastSeen().headers;
  assert.equal(sent['proxy-authorization'], undefined);
  assert.equal(sent['x-client'], 'kept');
  assert.equal(sent['if-none-match'], '"nope"');
});

test('conditional requests pass through: 304 keeps its status and etag', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/cached.m3u8`, {
    headers: { 'if-none-match': '"pl-42"' },
  });
  assert.equal(res.status, 304);
  assert.equal(res.headers.get('etag'), '"pl-42"');
  assert.equal(await res.text(), '');
});

test('origin status codes are preserved (404)', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/nope/index.m3u8`);
  assert.equal(res.status, 404);
  assert.equal(await res.text(), 'no such object\n');
});

test('origin redirects are passed on, not followed', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/moved.m3u8`, { redirect: 'manual' });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/live/cam1/index.m3u8');
  await res.arrayBuffer();
});

test('HEAD is proxied as HEAD with the origin headers and no body', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8`, { method: 'HEAD' });
  assert.equal(res.status, 200);
  assert.equal(lastSeen().method, 'HEAD');
  assert.equal(res.headers.get('etag'), '"pl-42"');
  assert.equal(res.headers.get('content-length'), String(Buffer.byteLength(PLAYLIST)));
  assert.equal(await res.text(), '');
});

test('the body is streamed: the first bytes arrive before the origin has finished', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/slow.m4s`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'video/iso.segment');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let received = '';
  while (!received.includes('first-half;')) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'body ended before the first half arrived');
    received += decoder.decode(value, { stream: true });
  }
  assert.equal(slowFinished, false, 'first half only arrived after the origin finished: buffered');
  releaseSlow();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    received += decoder.decode(value, { stream: true });
  }
  assert.equal(received, 'first-half;second-half');
});

test('a shared object streams to every viewer while the origin makes it, from one origin request', async () => {
  const before = origin.seen.filter((r) => r.url === HINTED).length;
  const readFirst = async () => {
    const res = await mf.dispatchFetch(EDGE + HINTED);
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let received = '';
    while (!received.includes('frame 1;')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'body ended before the first chunk arrived');
      received += decoder.decode(value, { stream: true });
    }
    return { res, reader, decoder, received, finishedAtFirstChunk: hintedFinished };
  };
  // Two viewers of the same hinted part: one origin request, and both get
  // the first chunk while the origin has not finished the part.
  const viewers = await Promise.all([readFirst(), readFirst()]);
  for (const v of viewers) assert.equal(v.finishedAtFirstChunk, false, 'first chunk only after the origin finished: buffered');
  assert.deepEqual(viewers.map((v) => v.res.headers.get('x-brook-cache')).sort(), ['coalesced', 'miss']);
  releaseHinted();
  for (const v of viewers) {
    for (;;) {
      const { value, done } = await v.reader.read();
      if (done) break;
      v.received += v.decoder.decode(value, { stream: true });
    }
    assert.equal(v.received, 'moof+mdat of frame 1;frames 2-6');
  }
  assert.equal(origin.seen.filter((r) => r.url === HINTED).length - before, 1, 'one origin request');
});

test('a preload-hinted part reaches every viewer whole, from one origin request', async () => {
  const before = origin.seen.filter((r) => r.url === PART).length;
  const viewers = [mf.dispatchFetch(EDGE + PART), mf.dispatchFetch(EDGE + PART)];
  // Let the origin's first chunk reach the edge, then finish the part.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(partFinished, false);
  releasePart();
  const answers = await Promise.all(viewers);
  for (const res of answers) {
    assert.equal(res.status, 200);
    // Whole: the body is complete and its length is known up front.
    assert.equal(res.headers.get('content-length'), String('moof+mdat of frame 1;frames 2-6'.length));
    assert.equal(await res.text(), 'moof+mdat of frame 1;frames 2-6');
  }
  assert.equal(partFinished, true);
  assert.equal(origin.seen.filter((r) => r.url === PART).length - before, 1, 'one origin request');
});

test('methods other than GET, HEAD and OPTIONS get 405 and never reach the origin', async () => {
  const before = origin.seen.length;
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const res = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8`, {
      method,
      body: method === 'POST' || method === 'PUT' || method === 'PATCH' ? 'x' : undefined,
    });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get('allow'), 'GET, HEAD, OPTIONS');
    await res.arrayBuffer();
  }
  assert.equal(origin.seen.length, before);
});

test('OPTIONS is a CORS preflight answered at the edge', async () => {
  const before = origin.seen.length;
  const res = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8`, {
    method: 'OPTIONS',
    headers: {
      origin: 'https://player.example',
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'authorization, x-bad header',
    },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('access-control-allow-methods'), 'GET, HEAD, OPTIONS');
  assert.equal(res.headers.get('access-control-allow-headers'), 'authorization');
  assert.equal(origin.seen.length, before);
});

test('paths outside /live/ are 404 from the Worker', async () => {
  const before = origin.seen.length;
  for (const path of ['/', '/live', '/live/', '/other/cam1/index.m3u8']) {
    const res = await mf.dispatchFetch(EDGE + path);
    assert.equal(res.status, 404, path);
    await res.arrayBuffer();
  }
  assert.equal(origin.seen.length, before);
});

test('/live/ paths are decoded and checked first: an encoded separator or a bad name never reaches the origin', async () => {
  const before = origin.seen.length;
  for (const path of [
    '/live/cam1/..%2fcam2/index.m3u8',
    '/live/cam1/%2e%2e%2fcam2/index.m3u8',
    '/live/cam1/x%5c..%5ccam2/index.m3u8',
    '/live/cam1/S1/video.m3u8',
    '/live/cam.1/index.m3u8',
    '/live/cam1/a/b/c',
  ]) {
    const res = await mf.dispatchFetch(EDGE + path);
    assert.equal(res.status, 404, path);
    await res.arrayBuffer();
  }
  assert.equal(origin.seen.length, before);
});

test('the origin is asked for the one spelling of a /live/ path', async () => {
  const res = await mf.dispatchFetch(`${EDGE}/live/c%61m1/index%2Em3u8`);
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  assert.equal(lastSeen().url, '/live/cam1/index.m3u8');
});

test('origin unreachable: 502 with a short plain-text body', async () => {
  // A port that was free a moment ago: nothing listens there now.
  const probe = http.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));

  const down = startWorker(`http://127.0.0.1:${port}`);
  try {
    const res = await down.dispatchFetch(`${EDGE}/live/cam1/index.m3u8`);
    assert.equal(res.status, 502);
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    const body = await res.text();
    assert.ok(body.length > 0 && body.length < 100, `short body, got ${JSON.stringify(body)}`);
  } finally {
    await down.dispose();
  }
});

test('a bad ORIGIN_URL is a 500, not a request to somewhere else', async () => {
  const broken = startWorker('127.0.0.1:8080');
  try {
    const res = await broken.dispatchFetch(`${EDGE}/live/cam1/index.m3u8`);
    assert.equal(res.status, 500);
    await res.arrayBuffer();
  } finally {
    await broken.dispose();
  }
});
