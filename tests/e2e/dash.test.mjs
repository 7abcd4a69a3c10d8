// DASH from the very segments HLS serves: dash.js (low-latency mode) in headless
// Chromium plays the origin's live MPD, then the static MPD of the VOD the session
// becomes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, DEV_KEY, startOrigin, startPublisher, startViewerSite, launchChromium, mediaPlaylistUrl, text, waitFor,
} from './lib.mjs';

let origin, publisher, site, browser;

before(async () => {
  // An archive, and a short reconnect grace so the stream ends soon after its
  // publisher stops.
  const archive = mkdtempSync(join(tmpdir(), 'brook-dash-archive-'));
  origin = await startOrigin({
    config: `[publish]\nreconnect_grace_ms = 1000\n[archive]\ndir = "${archive}"\n`
      + `[streams.cam1]\nkey = "${DEV_KEY}"\n`,
  });
  publisher = startPublisher(origin.srtPort);
  site = await startViewerSite(origin.url);
});

after(async () => {
  await browser?.close();
  await Promise.all([publisher, origin].map((p) => p?.stop()));
  await site?.stop();
});

async function dashPage(mpdPath) {
  browser ??= await launchChromium();
  // The viewer page's CSP allows no inline script; this page is a test harness.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  // An empty page at the site's origin (same-origin playlists), made by the
  // browser itself: not the viewer page, whose own player and scripts are
  // not this harness's (a navigation to it timed out now and then in CI).
  const harness = `${site.url}/_harness.html`;
  await page.route(harness, (route) => route.fulfill({
    contentType: 'text/html', body: '<!doctype html><html><head><title>harness</title></head><body></body></html>',
  }));
  await page.goto(harness);
  page.on('close', () => { context.close().catch(() => {}); });
  await page.addScriptTag({ path: join(ROOT, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js') });
  await page.evaluate((mpd) => {
    document.body.innerHTML = '<video id="dash" muted autoplay playsinline></video>';
    const video = document.getElementById('dash');
    const player = window.dashjs.MediaPlayer().create();
    const errors = [];
    player.updateSettings({
      streaming: {
        delay: { liveDelay: 1.5 },
        liveCatchup: { enabled: true, maxDrift: 3, playbackRate: { min: -0.2, max: 0.2 } },
      },
    });
    player.on(window.dashjs.MediaPlayer.events.ERROR, (e) => errors.push(JSON.stringify(e.error ?? e)));
    player.initialize(video, mpd, true);
    window.dash = { player, video, errors };
  }, mpdPath);
  return page;
}

test('dash.js plays the live MPD at low latency', async () => {
  const media = new URL(await mediaPlaylistUrl(origin.url));
  const mpdPath = media.pathname.replace(/[^/]+$/, 'manifest.mpd');
  const mpd = await waitFor('the MPD', async () => {
    const r = await text(`${origin.url}${mpdPath}`);
    return r.status === 200 ? r : null;
  });
  assert.equal(mpd.headers.get('content-type'), 'application/dash+xml');
  assert.match(mpd.body, /type="dynamic"/);
  assert.match(mpd.body, /availabilityTimeComplete="false"/);
  assert.match(mpd.body, /contentType="video"[\s\S]*contentType="audio"/);
  const page = await dashPage(mpdPath);
  await page.waitForFunction(() => window.dash.video.currentTime > 0, null, { timeout: 30000 })
    .catch(async (e) => { throw new Error(`${e.message}\n${await page.evaluate(() => window.dash.errors.join('\n'))}`); });
  const t0 = await page.evaluate(() => window.dash.video.currentTime);
  const latencies = [];
  let t1 = t0;
  const end = Date.now() + 20000;
  while (Date.now() < end && t1 - t0 < 8.5) {
    await new Promise((r) => setTimeout(r, 1000));
    const s = await page.evaluate(() => ({ t: window.dash.video.currentTime, l: window.dash.player.getCurrentLiveLatency() }));
    t1 = s.t;
    if (Number.isFinite(s.l) && s.l > 0) latencies.push(s.l);
  }
  const errors = await page.evaluate(() => window.dash.errors);
  assert.deepEqual(errors, [], 'no dash.js error');
  assert.ok(t1 - t0 >= 8, `played ${t1 - t0} s`);
  latencies.sort((a, b) => a - b);
  console.log(`# dash.js live latency (getCurrentLiveLatency): median ${latencies[Math.floor(latencies.length / 2)]?.toFixed(2)} s over ${latencies.length} samples`);
  await page.close();
});

test('when the stream ends, the static MPD of the VOD plays', async () => {
  const media = new URL(await mediaPlaylistUrl(origin.url));
  const mpdPath = media.pathname.replace(/[^/]+$/, 'manifest.mpd');
  await publisher.stop();
  const vod = await waitFor('the static MPD', async () => {
    const r = await text(`${origin.url}${mpdPath}`);
    return r.status === 200 && r.body.includes('type="static"') ? r.body : null;
  }, { timeout: 30000 });
  assert.match(vod, /mediaPresentationDuration="PT/);
  const page = await dashPage(mpdPath);
  await page.waitForFunction(() => window.dash.video.currentTime > 2, null, { timeout: 30000 })
    .catch(async (e) => { throw new Error(`${e.message}\n${await page.evaluate(() => window.dash.errors.join('\n'))}`); });
  assert.deepEqual(await page.evaluate(() => window.dash.errors), []);
});
