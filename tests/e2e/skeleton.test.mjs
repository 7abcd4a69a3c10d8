// The walking skeleton, end to end: ffmpeg publishes over SRT to brook-origin, the
// origin packages LL-HLS, the edge Worker (wasm in workerd, the real wrangler.toml)
// checks the viewer's token, personalizes the playlists and steers the player
// between two pathways, and hls.js in headless Chromium plays it from the viewer page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import HLS from 'hls-parser';
import {
  startOrigin, startPublisher, launchChromium, mediaPlaylistUrl, text, ffmpegDecode, waitFor, watchPlayback,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

let origin, publisher, edge, browser;

// Two pathways on the one local edge: `edge` (relative URIs, 127.0.0.1) as the
// playlist's own, and `local`, a clone of it on host localhost that only the
// steering manifest introduces. `local` comes first for every viewer, so a player
// that follows steering ends up fetching from localhost.
const EDGE_CONFIG = {
  steering: {
    ttl_s: 2,
    pathways: [
      { id: 'edge', weight: 0 },
      { id: 'local', clone_of: 'edge', host: 'localhost' },
    ],
  },
};
const TOKEN = signToken({ key: KEYS.k2026a, kid: 'k2026a', id: 'skeleton', ttl: 3600 });

before(async () => {
  origin = await startOrigin();
  publisher = startPublisher(origin.srtPort);
  edge = await startWranglerEdge({
    ORIGIN_URL: origin.url,
    TOKEN_KEYS: keyList('k2026a'),
    EDGE_CONFIG: JSON.stringify(EDGE_CONFIG),
  });
});

after(async () => {
  await browser?.close();
  await Promise.all([publisher, edge, origin].map((p) => p?.stop()));
});

function attrs(line) {
  const out = {};
  for (const m of line.slice(line.indexOf(':') + 1).matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) {
    out[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  return out;
}

test('origin serves a conformant LL-HLS media playlist', async () => {
  const mediaUrl = await mediaPlaylistUrl(origin.url);
  // Wait until at least one full segment is in the playlist.
  const body = await waitFor('a complete segment', async () => {
    const r = await text(mediaUrl);
    return r.status === 200 && r.body.includes('#EXTINF') ? r.body : null;
  }, { timeout: 30000 });
  const lines = body.trim().split('\n');
  const tag = (name) => lines.find((l) => l.startsWith(`${name}:`) || l === name);

  assert.ok(Number(tag('#EXT-X-VERSION').split(':')[1]) >= 9, 'EXT-X-VERSION >= 9');
  assert.ok(tag('#EXT-X-TARGETDURATION'));
  assert.ok(tag('#EXT-X-MAP'));
  assert.ok(tag('#EXT-X-PROGRAM-DATE-TIME'));
  const partTarget = Number(attrs(tag('#EXT-X-PART-INF'))['PART-TARGET']);
  assert.ok(partTarget > 0);
  const sc = attrs(tag('#EXT-X-SERVER-CONTROL'));
  assert.equal(sc['CAN-BLOCK-RELOAD'], 'YES');
  // Both are decimal renderings; compare with a tolerance for binary floating point.
  assert.ok(Number(sc['PART-HOLD-BACK']) >= 3 * partTarget - 1e-9, 'PART-HOLD-BACK >= 3 x PART-TARGET');
  // The next part is hinted after the last published one; the other rendition
  // (audio) is reported.
  const hintAt = lines.findIndex((l) => /^#EXT-X-PRELOAD-HINT:TYPE=PART,URI="/.test(l));
  assert.ok(hintAt > lines.findLastIndex((l) => l.startsWith('#EXT-X-PART:')), 'preload hint after the parts');
  assert.match(lines.at(-1), /^#EXT-X-RENDITION-REPORT:URI="audio\.m3u8",LAST-MSN=\d+,LAST-PART=\d+$/);

  // Parts: never longer than PART-TARGET; the first part after each segment
  // boundary starts with an IDR and says INDEPENDENT=YES.
  let newSegment = true;
  for (const l of lines) {
    if (l.startsWith('#EXT-X-PART:')) {
      const a = attrs(l);
      assert.ok(Number(a.DURATION) <= partTarget, `part longer than PART-TARGET: ${l}`);
      if (newSegment) assert.equal(a.INDEPENDENT, 'YES', `segment does not start independent: ${l}`);
      newSegment = false;
    } else if (l.startsWith('#EXTINF')) {
      newSegment = true;
    }
  }
  // An independent parser in strict mode accepts it.
  HLS.setOptions({ strictMode: true, silent: true });
  const parsed = HLS.parse(body);
  assert.ok(parsed.segments.length >= 1);
  assert.ok(parsed.lowLatencyCompatibility?.canBlockReload ?? true);
});

test('blocking playlist reload holds a future part, refuses one too far ahead', async () => {
  const mediaUrl = await mediaPlaylistUrl(origin.url);
  const { body } = await text(mediaUrl);
  const hint = attrs(body.split('\n').find((l) => l.startsWith('#EXT-X-PRELOAD-HINT:'))).URI;
  const [, msn, part] = hint.match(/^video-part(\d+)\.(\d+)\.m4s$/);
  const published = body.split('\n').filter((l) => l.startsWith('#EXT-X-PART:'));
  assert.ok(!published.some((l) => l.includes(`"${hint}"`)), 'the hinted part is not published yet');
  const t0 = Date.now();
  const held = await text(`${mediaUrl}?_HLS_msn=${msn}&_HLS_part=${part}`);
  const waited = Date.now() - t0;
  assert.equal(held.status, 200);
  assert.match(held.body, new RegExp(`#EXT-X-PART:[^\\n]*URI="${hint}"`), 'response contains the part it waited for');
  console.log(`# blocking reload for ${hint} answered after ${waited} ms`);

  const far = await text(`${mediaUrl}?_HLS_msn=${Number(msn) + 10}&_HLS_part=0`);
  assert.equal(far.status, 400);
  const malformed = await text(`${mediaUrl}?_HLS_msn=soon`);
  assert.equal(malformed.status, 400);
});

test('segments and parts decode cleanly with ffmpeg', async () => {
  const mediaUrl = await mediaPlaylistUrl(origin.url);
  const { body } = await text(mediaUrl);
  const seg = body.split('\n').find((l) => /^video-seg\d+\.m4s$/.test(l));
  const part = body.split('\n').find((l) => l.startsWith('#EXT-X-PART:')).match(/URI="([^"]+)"/)[1];
  const get = async (name) => new Uint8Array(await (await fetch(new URL(name, mediaUrl))).arrayBuffer());
  const init = await get('video-init.mp4');
  for (const name of [seg, part]) {
    const { code, output } = await ffmpegDecode(init, await get(name));
    assert.equal(code, 0, output);
    assert.equal(output, '', `ffmpeg complained about ${name}`);
  }
});

test('hls.js plays the stream through the edge, with a token and content steering, in Chromium for 10 s', async () => {
  browser = await launchChromium();
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text()));
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${edge.url}/?stream=cam1&token=${encodeURIComponent(TOKEN)}`);
  await page.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 30000 })
    .catch((e) => { throw new Error(`${e.message}\n${consoleLines.join('\n')}`); });

  const { first, last, latencies } = await watchPlayback(page, 10);
  const errors = await page.evaluate(() => window.brook.fatalErrors.map((e) => JSON.stringify(e)));
  assert.deepEqual(errors, [], 'no fatal hls.js error');
  const nonFatal = await page.evaluate(() => window.brook.errors.filter((e) => !e.fatal).map((e) => e.details));
  console.log(`# non-fatal hls.js events: ${nonFatal.length ? nonFatal.join(', ') : 'none'}`);
  assert.ok(last.currentTime - first.currentTime >= 10, `played ${last.currentTime - first.currentTime} s`);
  assert.ok(last.frames > first.frames, 'video frames decoded');
  if (last.audioBytes != null) assert.ok(last.audioBytes > 0, 'audio decoded');

  // Steering: hls.js loaded the steering manifest and moved to the clone pathway.
  const steering = await page.evaluate(() => window.brook.steering);
  assert.ok(steering?.manifests >= 1, `steering manifests loaded: ${JSON.stringify(steering)}`);
  assert.deepEqual(steering.priority, ['local', 'edge']);
  const host = `localhost:${edge.port}`;
  assert.ok(requests.some((u) => u.includes('/live/cam1/steering.json?') && u.includes('_HLS_pathway=')),
    'steering manifest requested with the client report');
  const viaClone = requests.filter((u) => new URL(u).host === host && /\/live\/cam1\/[^/]+\/(video|audio)[-.]/.test(u));
  assert.ok(viaClone.length > 5, `media fetched from the steered pathway (${host}): ${viaClone.length} requests`);
  // Tokens: every media request carries it; none was refused.
  const media = requests.filter((u) => u.includes('/live/cam1/'));
  assert.ok(media.every((u) => new URL(u).searchParams.get('__token__') === TOKEN), 'token on every request');
  console.log(`# steering: ${steering.manifests} manifests, priority ${steering.priority.join(' > ')}, `
    + `${viaClone.length} of ${media.length} media requests via ${host}`);

  const median = latencies[Math.floor(latencies.length / 2)];
  console.log(`# live latency through the edge (wall clock - hls.playingDate): median ${median?.toFixed(2)} s, `
    + `min ${latencies[0]?.toFixed(2)} s, max ${latencies.at(-1)?.toFixed(2)} s over ${latencies.length} samples`);
});
