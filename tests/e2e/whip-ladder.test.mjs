// The ladder fed by WHIP: headless Chromium publishes H.264 + Opus from the
// broadcaster page, the origin transcodes it into 360p/240p/160p with AAC audio
// (Opus becomes AAC, which every player decodes; the Opus is kept beside it),
// and hls.js plays it through
// the edge Worker, switching down when throttled and back up when released. The
// same page published without the ladder first gives the latency to compare with.
// Chromium's fake camera starts at 640x360 and grows to 1280x720: the source
// changes size mid-stream and the ladder keeps its renditions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startOrigin, startViewerSite, launchChromium, WEBRTC_LOOPBACK_FLAGS, waitFor, text, DEV_KEY, watchPlayback,
  openViewer, throttle, median,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

// As in ladder.test.mjs: rungs about 1.5x apart, little audio.
const LADDER = 'audio_bitrate_kbps = 32\n' + [[360, 600], [240, 400], [160, 250]]
  .map(([h, k]) => `[[ladder.rungs]]\nheight = ${h}\nbitrate_kbps = ${k}\npreset = "ultrafast"\n`).join('');
const TOKEN = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', id: 'whip-ladder', ttl: 3600 });

let origin, site, edge, browser, plainLatency;

before(async () => {
  origin = await startOrigin({
    ladder: 'transcode',
    args: ['--reconnect-grace-ms', '0'],
    config: `[ladder]\n${LADDER}[streams.cam1]\nkey = "${DEV_KEY}"\n`
      + `[streams.plain]\nkey = "${DEV_KEY}"\n[streams.plain.ladder]\nmode = "passthrough"\n`,
  });
  site = await startViewerSite(origin.url);
  edge = await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a'), EDGE_CONFIG: '{}' });
  browser = await launchChromium({ args: WEBRTC_LOOPBACK_FLAGS });
});

after(async () => {
  await browser?.close();
  await Promise.all([site, edge, origin].map((p) => p?.stop()));
});

async function goLive(stream) {
  const page = await browser.newPage();
  const whip = `${origin.url}/whip/${stream}`;
  await page.goto(`${site.url}/publish.html?stream=${stream}&whip=${encodeURIComponent(whip)}#key=${DEV_KEY}`);
  await page.waitForFunction(() => document.getElementById('camera').options.length > 0, null, { timeout: 10000 });
  await page.click('#golive');
  await page.waitForFunction(() => window.brookPublish.state === 'live', null, { timeout: 15000 });
  return page;
}

async function stop(publisher) {
  await publisher.click('#stop');
  await publisher.waitForFunction(() => window.brookPublish.state === 'idle', null, { timeout: 5000 });
  await publisher.close();
}

function watch(stream) {
  return openViewer(browser, `${edge.url}/?stream=${stream}&token=${encodeURIComponent(TOKEN)}`);
}

test('WHIP without the ladder: the latency to compare with', async () => {
  const publisher = await goLive('plain');
  const { page } = await watch('plain');
  await sleep(3000);
  const { latencies } = await watchPlayback(page, 10);
  plainLatency = median(latencies);
  console.log(`# WHIP without the ladder: live latency through the edge, median ${plainLatency?.toFixed(2)} s`);
  await page.close();
  await stop(publisher);
});

test('WHIP into the ladder: Opus becomes AAC (and stays as Opus), hls.js plays every rung and switches under throttling', async () => {
  const publisher = await goLive('cam1');
  const mv = await waitFor('the multivariant playlist', async () => {
    const r = await text(`${origin.url}/live/cam1/index.m3u8`);
    return r.status === 200 ? r.body : null;
  }, { timeout: 30000, interval: 250 });
  // AAC for every player, the variants listing it first; the source's Opus
  // kept beside it as a group of its own.
  const firstVariant = mv.split('\n').find((l) => l.startsWith('#EXT-X-STREAM-INF:'));
  assert.match(firstVariant, /CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2",RESOLUTION=640x360/, mv);
  assert.match(mv, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio-opus",NAME="opus"/, mv);
  assert.match(mv, /CODECS="avc1\.[0-9a-f]{6},opus",RESOLUTION=640x360,[^\n]*AUDIO="audio-opus"/, mv);
  assert.match(mv, /RESOLUTION=426x240/);
  assert.match(mv, /RESOLUTION=284x160/);

  const { page, cdp } = await watch('cam1');
  await sleep(3000);
  const { latencies, first, last } = await watchPlayback(page, 10);
  assert.ok(last.currentTime - first.currentTime >= 9, 'plays');
  if (last.audioBytes != null) assert.ok(last.audioBytes > first.audioBytes, 'AAC decoded');
  const current = () => page.evaluate(() => {
    const { hls } = window.brook;
    return hls?.levels[hls.currentLevel]?.height ?? null;
  });
  await waitFor('the top rung', async () => (await current()) === 360, { timeout: 40000, interval: 500 });
  const t0 = Date.now();
  await throttle(cdp, 350);
  await waitFor('a switch below 360p', async () => (await current() ?? 360) < 360, { timeout: 60000, interval: 250 });
  const down = Date.now() - t0;
  const t1 = Date.now();
  await throttle(cdp, 0);
  // On a timeout, say what hls.js's ABR saw: the estimate against the rungs,
  // whether something caps it, and the buffer it had.
  const abrState = () => page.evaluate(() => {
    const { hls } = window.brook;
    const v = document.querySelector('video');
    const buffered = v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0;
    return JSON.stringify({
      estimate: Math.round(hls.bandwidthEstimate), ttfb: Math.round(hls.ttfbEstimate ?? -1),
      levels: hls.levels.map((l) => l.bitrate), current: hls.currentLevel, next: hls.nextAutoLevel,
      auto: hls.autoLevelEnabled, capping: hls.autoLevelCapping, buffered: buffered.toFixed(2),
      latency: hls.latency?.toFixed(2), switches: window.brook.switches.slice(-5),
      errors: window.brook.errors?.slice(-5),
    });
  });
  await waitFor('back on 360p', async () => (await current()) === 360, { timeout: 120000, interval: 250 })
    .catch(async (e) => { throw new Error(`${e.message}; hls.js: ${await abrState().catch((x) => x.message)}`); });
  const up = Date.now() - t1;
  const after = await watchPlayback(page, 4);
  assert.ok(after.last.currentTime > after.first.currentTime + 3, 'keeps playing');
  const fatal = await page.evaluate(() => window.brook.fatalErrors.map((e) => `${e.details} ${e.url}`));
  assert.deepEqual(fatal, [], 'no fatal hls.js error');

  // The camera grew from 640x360 mid-stream: the renditions stayed, each at
  // most its rung's size, after a discontinuity with new init segments.
  const restarts = (origin.log.match(/transcoder restarted: the source's configuration changed/g) ?? []).length;
  const mv2 = (await text(`${origin.url}/live/cam1/index.m3u8`)).body;
  // Three rungs and audio-only, once for AAC and once for the kept Opus.
  assert.equal((mv2.match(/#EXT-X-STREAM-INF:[^\n]*AUDIO="audio"/g) ?? []).length, 4, mv2);
  assert.equal((mv2.match(/#EXT-X-STREAM-INF:[^\n]*AUDIO="audio-opus"/g) ?? []).length, 4, mv2);
  const ladderLatency = median(latencies);
  const metrics = (await text(`${origin.url}/metrics`)).body;
  const delay = Number(metrics.match(/brook_transcoder_latency_seconds\{stream="cam1"\} ([\d.]+)/)?.[1]);
  console.log(`# the transcoder's own delay (origin metric): ${delay.toFixed(3)} s`);
  console.log(`# WHIP into the ladder: live latency through the edge, median ${ladderLatency?.toFixed(2)} s `
    + `(without: ${plainLatency?.toFixed(2) ?? '?'} s); hls.js switched down ${(down / 1000).toFixed(1)} s after `
    + `the throttle to 350 kbit/s, back up ${(up / 1000).toFixed(1)} s after release; `
    + `source size changes handled by a restart: ${restarts}`);
  await page.close();
  await stop(publisher);
});
