// WHIP end to end with real peers: headless Chromium with the fake camera opens
// the broadcaster page (web/publish.html, from another origin than the WHIP
// endpoint, so CORS is exercised for real), goes live over WHIP to brook-origin,
// and a second Chromium page plays the stream with hls.js for 10 s from the
// viewer page, through the edge Worker (wasm in workerd, with a viewer token).
// Prints the live latency. Then the bad inputs, over real HTTP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  startOrigin, startViewerSite, launchChromium, WEBRTC_LOOPBACK_FLAGS, waitFor, text, ROOT, DEV_KEY, watchPlayback,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

const OFFER = readFileSync(join(ROOT, 'origin/tests/fixtures/chromium_whip_offer.sdp'), 'utf8');
const OFFER_VP8 = readFileSync(join(ROOT, 'origin/tests/fixtures/chromium_whip_offer_vp8.sdp'), 'utf8');

let origin, site, edge, browser;

before(async () => {
  // Grace 0: the stream ends as soon as the broadcaster stops. A short ICE
  // timeout for the abandoned-session case below.
  origin = await startOrigin({
    args: ['--reconnect-grace-ms', '0'],
    config: '[whip]\nice_timeout_ms = 1500\n[streams.cam1]\nkey = "dev-key"\n[streams.cam2]\nkey = "dev-key"\n',
  });
  site = await startViewerSite(origin.url);
  // Viewers watch through the edge Worker (workerd), with a viewer token.
  edge = await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a') });
  browser = await launchChromium({ args: WEBRTC_LOOPBACK_FLAGS });
});

after(async () => {
  await browser?.close();
  await site?.stop();
  await edge?.stop();
  await origin?.stop();
});

function attrs(line) {
  const out = {};
  for (const m of line.slice(line.indexOf(':') + 1).matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) {
    out[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  return out;
}

test('Chromium publishes over WHIP from the broadcaster page; hls.js plays it for 10 s', async () => {
  const publisher = await browser.newPage();
  const log = [];
  publisher.on('console', (m) => log.push(`publisher: ${m.text()}`));
  const whipUrl = `${origin.url}/whip/cam1`;
  await publisher.goto(`${site.url}/publish.html?stream=cam1&whip=${encodeURIComponent(whipUrl)}#key=${DEV_KEY}`);
  await publisher.waitForFunction(() => document.getElementById('camera').options.length > 0, null, { timeout: 10000 });
  const t0 = Date.now();
  await publisher.click('#golive');
  await publisher.waitForFunction(() => window.brookPublish.state === 'live', null, { timeout: 15000 })
    .catch(async (e) => {
      const pub = await publisher.evaluate(() => JSON.stringify(window.brookPublish));
      throw new Error(`${e.message}\n${pub}\n${log.join('\n')}\n${origin.log.slice(-3000)}`);
    });
  console.log(`# WHIP: live ${Date.now() - t0} ms after Go Live`);
  const resource = await publisher.evaluate(() => window.brookPublish.resource);
  assert.match(resource, /^http:\/\/127\.0\.0\.1:\d+\/whip\/cam1\/[0-9a-f]{32}$/, 'Location read across origins');

  // The origin packages it: H.264 (Constrained Baseline) and Opus renditions.
  const mv = await waitFor('multivariant playlist', async () => {
    const r = await text(`${origin.url}/live/cam1/index.m3u8`);
    return r.status === 200 ? r.body : null;
  }, { timeout: 20000, interval: 250 });
  assert.match(mv, /avc1\.42[ce]0[0-9a-f]{2}/, mv);
  assert.match(mv, /opus/, mv);

  // The viewer page plays it with hls.js.
  const viewer = await browser.newPage();
  const viewerLog = [];
  viewer.on('console', (m) => viewerLog.push(m.text()));
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', id: 'whip-viewer', ttl: 3600 });
  await viewer.goto(`${edge.url}/?stream=cam1&token=${encodeURIComponent(token)}`);
  await viewer.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 30000 })
    .catch((e) => { throw new Error(`${e.message}\n${viewerLog.join('\n')}`); });
  const { first, last, latencies } = await watchPlayback(viewer, 10);
  const errors = await viewer.evaluate(() => window.brook.fatalErrors.map((e) => JSON.stringify(e)));
  assert.deepEqual(errors, [], 'no fatal hls.js error');
  assert.ok(last.currentTime - first.currentTime >= 10, `played ${last.currentTime - first.currentTime} s`);
  assert.ok(last.frames > first.frames, 'video frames decoded');
  if (last.audioBytes != null) assert.ok(last.audioBytes > first.audioBytes, 'Opus decoded');
  const pub = await publisher.evaluate(() => window.brookPublish.stats);
  assert.ok(pub.kbps > 0 && pub.framesSent > 0, JSON.stringify(pub));
  assert.match(pub.codec ?? '', /H264/i, 'the page sent H.264');

  // Segments start on an IDR near the 2 s target although Chromium sends IDRs
  // only when asked: every segment's first part is independent, and no segment
  // is longer than TARGETDURATION allows.
  const videoPlaylist = new URL(mv.split('\n').find((l) => l && !l.startsWith('#') && l.includes('video')),
    `${origin.url}/live/cam1/index.m3u8`).href;
  const { body } = await text(videoPlaylist);
  const lines = body.trim().split('\n');
  const target = Number(lines.find((l) => l.startsWith('#EXT-X-TARGETDURATION:')).split(':')[1]);
  const durations = lines.filter((l) => l.startsWith('#EXTINF:')).map((l) => parseFloat(l.slice(8)));
  assert.ok(durations.length >= 3, body);
  for (const d of durations) assert.ok(Math.round(d) <= target, `segment of ${d} s > TARGETDURATION ${target}`);
  let newSegment = true;
  for (const l of lines) {
    if (l.startsWith('#EXT-X-PART:')) {
      if (newSegment) assert.equal(attrs(l).INDEPENDENT, 'YES', `segment does not start on an IDR: ${l}`);
      newSegment = false;
    } else if (l.startsWith('#EXTINF')) newSegment = true;
  }

  const median = latencies[Math.floor(latencies.length / 2)];
  console.log(`# WHIP -> LL-HLS live latency (wall clock - hls.playingDate, viewer through the edge): `
    + `median ${median?.toFixed(2)} s, min ${latencies[0]?.toFixed(2)} s, max ${latencies.at(-1)?.toFixed(2)} s `
    + `over ${latencies.length} samples; publisher ${pub.width}x${pub.height} @ ${Math.round(pub.fps)} fps, ${pub.kbps} kbit/s; `
    + `segments ${durations.map((d) => d.toFixed(2)).join(' ')}`);

  // Stop: the page DELETEs its session; with no grace period the stream ends.
  await publisher.click('#stop');
  await publisher.waitForFunction(() => window.brookPublish.state === 'idle', null, { timeout: 5000 });
  await waitFor('ENDLIST after Stop', async () => (await text(videoPlaylist)).body.includes('#EXT-X-ENDLIST'),
    { timeout: 10000 });
  const ended = origin.log.split('\n').find((l) => l.includes('WHIP session ended'));
  console.log(`# origin: ${ended?.replace(/^.*?brook_origin::ingest::whip::session: /, '')}`);
  assert.match(ended ?? '', /synced_by_reports=true/, 'A/V aligned by the RTCP sender reports');
  const gone = await fetch(resource, { method: 'DELETE', headers: { authorization: `Bearer ${DEV_KEY}` } });
  assert.equal(gone.status, 404, 'the page deleted its session');
  await viewer.close();
  await publisher.close();
});

// On cam2: whatever the first test left on cam1 cannot turn these into 409s.
async function post(body, { key = DEV_KEY, stream = 'cam2', type = 'application/sdp' } = {}) {
  const headers = { 'content-type': type };
  if (key) headers.authorization = `Bearer ${key}`;
  const r = await fetch(`${origin.url}/whip/${stream}`, { method: 'POST', headers, body });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

test('bad WHIP requests get the status RFC 9725 and HTTP name, with a reason', async () => {
  const malformed = await post('v=0\r\nnot sdp at all\r\n');
  assert.equal(malformed.status, 400);
  assert.match(malformed.body, /malformed SDP offer/);
  assert.equal((await post('x'.repeat(70 * 1024))).status, 413);
  const nokey = await post(OFFER, { key: null });
  assert.equal(nokey.status, 401);
  assert.match(nokey.headers.get('www-authenticate'), /^Bearer/);
  // A wrong key and an unconfigured stream get the same answer: a publisher
  // cannot probe which stream names exist.
  const wrong = await post(OFFER, { key: 'wrong-key' });
  const unknownStream = await post(OFFER, { stream: 'nosuchstream' });
  for (const r of [wrong, unknownStream]) {
    assert.equal(r.status, 401);
    assert.equal(r.body, nokey.body);
  }
  const vp8 = await post(OFFER_VP8);
  assert.equal(vp8.status, 422);
  assert.match(vp8.body, /no H\.264.*VP8/);
  console.log(`# VP8-only offer: ${vp8.status} ${vp8.body.trim()}`);
  assert.equal((await post(OFFER, { type: 'text/plain' })).status, 415);
  const unknown = await fetch(`${origin.url}/whip/cam2/${'0'.repeat(32)}`, {
    method: 'DELETE', headers: { authorization: `Bearer ${DEV_KEY}` },
  });
  assert.equal(unknown.status, 404);
  const put = await fetch(`${origin.url}/whip/cam2`, { method: 'PUT' });
  assert.equal(put.status, 405);

  // An offer whose ICE never starts (nobody sends STUN): cleaned up after the
  // ICE timeout (1.5 s here); its resource is gone.
  const abandoned = await post(OFFER);
  assert.equal(abandoned.status, 201);
  const location = new URL(abandoned.headers.get('location'), origin.url).href;
  const exists = async () => (await fetch(location, { headers: { authorization: `Bearer ${DEV_KEY}` } })).status;
  assert.equal(await exists(), 204, 'the session resource exists (GET: 2xx, no content)');
  await waitFor('the abandoned session to be dropped', async () => (await exists()) === 404,
    { timeout: 6000, interval: 250 });
  assert.match(origin.log, /ICE\/DTLS did not complete within 1500 ms/);
  // The origin is fine afterwards.
  assert.equal((await fetch(`${origin.url}/healthz`)).status, 200);
});
