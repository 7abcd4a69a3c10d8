// Streams that survive their encoders and their origin (issue 4):
// - ffmpeg is killed mid-stream and a new ffmpeg takes over the stream while hls.js
//   in Chromium (the viewer page, straight from the origin) keeps playing across
//   the discontinuity;
// - the session is archived; the origin is restarted on the same archive and the
//   VOD plays in hls.js from the same URLs;
// - a CDN-style cache in front of the origin (honouring Cache-Control) never serves
//   a previous session's segment for the new session.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startOrigin, startPublisher, startViewerSite, launchChromium, mediaPlaylistUrl, text, waitFor, samplePlayer, DEV_KEY,
} from './lib.mjs';

const running = new Set();
let browser;
after(async () => {
  await browser?.close();
  await Promise.all([...running].map((p) => p.stop()));
});
function track(p) { running.add(p); return p; }

async function playing(page, consoleLines, minTime = 0) {
  await page.waitForFunction((t) => window.brook?.video?.currentTime > t, minTime, { timeout: 30000 })
    .catch((e) => { throw new Error(`${e.message}\n${consoleLines.join('\n')}`); });
}

test('the publisher is killed and replaced mid-stream; hls.js keeps playing', async () => {
  const origin = track(await startOrigin({
    config: `[publish]\non_conflict = "takeover"\nreconnect_grace_ms = 15000\n[streams.cam1]\nkey = "${DEV_KEY}"\n`,
  }));
  const first = track(startPublisher(origin.srtPort));
  const site = track(await startViewerSite(origin.url));
  browser ??= await launchChromium();
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text()));
  await page.goto(`${site.url}/?stream=cam1`);
  await playing(page, consoleLines, 3);
  const mediaUrl = await mediaPlaylistUrl(origin.url);

  // SIGKILL: no SRT shutdown, the origin still thinks the old connection is up
  // (until the peer idle timeout); the new encoder takes the stream over.
  process.kill(-first.pid, 'SIGKILL');
  await first.exited;
  const killedAt = (await samplePlayer(page)).currentTime;
  await sleep(1500);
  const second = track(startPublisher(origin.srtPort));
  await waitFor('the takeover', () => /publish taken over|publish resumed/.test(origin.log), { timeout: 15000 })
    .catch((e) => { throw new Error(`${e.message}\n${origin.log}\n${second.log}`); });
  // The new encoder's first segment follows a discontinuity (checked now: the
  // 20 s window would scroll it out while playback is checked below).
  await waitFor('the discontinuity', async () => /#EXT-X-DISCONTINUITY\n/.test((await text(mediaUrl)).body), { timeout: 20000 });

  const end = Date.now() + 30000;
  let last = await samplePlayer(page);
  while (Date.now() < end && last.currentTime < killedAt + 8) {
    await sleep(1000);
    last = await samplePlayer(page);
  }
  const fatal = await page.evaluate(() => window.brook.fatalErrors.map((e) => JSON.stringify(e)));
  assert.deepEqual(fatal, [], 'no fatal hls.js error');
  assert.ok(last.currentTime >= killedAt + 8,
    `playback went on after the encoder restart: ${killedAt.toFixed(1)} s -> ${last.currentTime.toFixed(1)} s`);
  assert.ok(!last.paused && !last.ended);
  const nonFatal = await page.evaluate(() => window.brook.errors.filter((e) => !e.fatal).map((e) => e.details));
  console.log(`# played ${killedAt.toFixed(1)} s -> ${last.currentTime.toFixed(1)} s across the restart; `
    + `non-fatal hls.js events: ${nonFatal.length ? nonFatal.join(', ') : 'none'}`);

  assert.equal(await mediaPlaylistUrl(origin.url), mediaUrl, 'same session, same URLs');
  await page.close();
  await Promise.all([second.stop(), site.stop()]);
  await origin.stop();
});

test('an archived session plays as VOD after the origin restarts', async () => {
  const archive = mkdtempSync(join(tmpdir(), 'brook-archive-'));
  const args = ['--archive-dir', archive, '--reconnect-grace-ms', '0'];
  // A short shutdown grace so the graceful stop fits in lib.mjs's 5 s.
  const config = `[http]\nshutdown_grace_seconds = 1\n[streams.cam1]\nkey = "${DEV_KEY}"\n`;
  let origin = track(await startOrigin({ args, config }));
  const pub = track(startPublisher(origin.srtPort, { seconds: 7 }));
  const mediaUrl = await mediaPlaylistUrl(origin.url);
  await pub.exited;
  const vod = await waitFor('the VOD playlist', async () => {
    const r = await text(mediaUrl);
    return r.body.includes('#EXT-X-PLAYLIST-TYPE:VOD') ? r.body : null;
  }, { timeout: 20000 });
  assert.match(vod, /#EXT-X-ENDLIST\n$/);
  const segments = vod.split('\n').filter((l) => /^video-seg\d+\.m4s$/.test(l));
  assert.ok(segments.length >= 3, `${segments.length} segments archived`);
  assert.equal(segments[0], 'video-seg0.m4s', 'the whole session, from its first segment');

  // Graceful stop, then a new origin process on the same port and archive.
  await origin.stop();
  assert.match(origin.log, /brook origin stopped/);
  origin = track(await startOrigin({ args, config, httpPort: origin.httpPort }));
  assert.match(origin.log, /archive opened.*sessions=1/);
  assert.equal((await text(mediaUrl)).body, vod, 'the same VOD from the same URL');
  for (const name of ['video-init.mp4', ...segments]) {
    const r = await fetch(new URL(name, mediaUrl));
    assert.equal(r.status, 200, name);
    await r.arrayBuffer();
  }

  const site = track(await startViewerSite(origin.url));
  browser ??= await launchChromium();
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text()));
  await page.goto(`${site.url}/?stream=cam1`);
  await playing(page, consoleLines, 3);
  const fatal = await page.evaluate(() => window.brook.fatalErrors.map((e) => JSON.stringify(e)));
  assert.deepEqual(fatal, [], 'no fatal hls.js error');
  await page.close();
  await site.stop();
  await origin.stop();
});

/** A shared cache that honours Cache-Control max-age (like a CDN), keyed on the URL. */
async function cachingProxy(upstream) {
  const cache = new Map();
  const server = createServer(async (req, res) => {
    const key = req.url;
    const hit = cache.get(key);
    if (hit && hit.expires > Date.now()) {
      res.writeHead(hit.status, { ...hit.headers, 'x-cache': 'HIT' });
      res.end(hit.body);
      return;
    }
    const r = await fetch(upstream + req.url);
    const body = Buffer.from(await r.arrayBuffer());
    const headers = { 'content-type': r.headers.get('content-type') ?? 'application/octet-stream' };
    const cc = r.headers.get('cache-control') ?? '';
    const maxAge = /max-age=(\d+)/.exec(cc);
    if (r.status === 200 && maxAge && !/no-cache|no-store|private/.test(cc)) {
      cache.set(key, { status: r.status, headers, body, expires: Date.now() + Number(maxAge[1]) * 1000 });
    }
    res.writeHead(r.status, { ...headers, 'x-cache': 'MISS' });
    res.end(body);
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

test('a cache in front never serves a previous session\'s segments', async () => {
  const origin = track(await startOrigin({ args: ['--reconnect-grace-ms', '0'] }));
  const cdn = await cachingProxy(origin.url);
  try {
    const session = async (seconds, video) => {
      const pub = track(startPublisher(origin.srtPort, { seconds, video }));
      const mediaUrl = await waitFor('a new session', async () => {
        const u = await mediaPlaylistUrl(cdn.url);
        const r = await text(u);
        return r.status === 200 && r.body.includes('video-seg0.m4s') && !r.body.includes('#EXT-X-ENDLIST') ? u : null;
      }, { timeout: 30000 });
      const seg0 = Buffer.from(await (await fetch(new URL('video-seg0.m4s', mediaUrl))).arrayBuffer());
      const again = await fetch(new URL('video-seg0.m4s', mediaUrl));
      assert.equal(again.headers.get('x-cache'), 'HIT', 'segments are cached');
      await again.arrayBuffer();
      await pub.exited;
      return { mediaUrl, seg0 };
    };
    // Different patterns: lavfi and x264 are deterministic, so the same source
    // would make byte-identical segments in both sessions.
    const one = await session(5, 'testsrc2=size=640x360:rate=30');
    await waitFor('session 1 to end', async () => (await text(one.mediaUrl)).body.includes('#EXT-X-ENDLIST'));
    const two = await session(5, 'testsrc=size=640x360:rate=30');
    assert.notEqual(two.mediaUrl, one.mediaUrl, 'a new session has new URLs');
    const direct = Buffer.from(await (await fetch(two.mediaUrl.replace(cdn.url, origin.url).replace('video.m3u8', 'video-seg0.m4s'))).arrayBuffer());
    assert.ok(two.seg0.equals(direct), 'the cache serves this session\'s seg0');
    assert.ok(!two.seg0.equals(one.seg0), 'not the previous session\'s');
  } finally {
    cdn.close();
    await origin.stop();
  }
});
