// The live adaptive bitrate ladder end to end: ffmpeg publishes 640x360 over SRT,
// the origin's transcoder (a supervised ffmpeg child) makes 360p/240p/160p + AAC,
// the packager cuts every rung on the same boundaries, and real players switch:
// hls.js (through the edge Worker, with a token) and dash.js, both throttled with
// the Chrome DevTools Protocol well below the top rung and released again. A second
// stream published without the ladder gives the latency to compare with.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ROOT, DEV_KEY, start, startOrigin, startPublisher, launchChromium, text, waitFor, watchPlayback, samplePlayer,
  ffprobeObject, ffmpegDecode, openViewer, throttle, median,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

// Rungs about 1.5x apart and little audio: an LL-HLS player measures at most
// about a part's size per 50 ms (hls.js's shortest sample), less in practice,
// so from 200 ms parts of one rung it sees room for a rung only a few times
// above it, and the test is about switching, not about that limit
// (docs/ladder.md).
const RUNGS = [
  { name: '360p', height: 360, width: 640, kbps: 600 },
  { name: '240p', height: 240, width: 426, kbps: 400 },
  { name: '160p', height: 160, width: 284, kbps: 250 },
];
const LADDER = 'audio_bitrate_kbps = 32\n' + RUNGS.map((r) => `[[ladder.rungs]]\nheight = ${r.height}\nbitrate_kbps = ${r.kbps}\npreset = "ultrafast"\n`).join('');
const ADMIN = '0123456789abcdef-admin';
const TOKEN = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', id: 'ladder', ttl: 3600 });

let origin, ladderPub, plainPub, edge, browser, archive;

before(async () => {
  archive = mkdtempSync(join(tmpdir(), 'brook-ladder-archive-'));
  origin = await startOrigin({
    ladder: 'transcode',
    config: `[publish]\nreconnect_grace_ms = 1000\n[archive]\ndir = "${archive}"\n`
      + `[admin]\ntoken = "${ADMIN}"\n[ladder]\n${LADDER}`
      + `[streams.cam1]\nkey = "${DEV_KEY}"\n`
      + `[streams.plain]\nkey = "${DEV_KEY}"\n[streams.plain.ladder]\nmode = "passthrough"\n`,
  });
  const source = 'testsrc2=size=640x360:rate=30';
  ladderPub = startPublisher(origin.srtPort, { video: source, gop: 60 });
  plainPub = startPublisher(origin.srtPort, { streamid: `publish:live/plain:${DEV_KEY}`, video: source, gop: 60 });
  edge = await startWranglerEdge({
    ORIGIN_URL: origin.url,
    TOKEN_KEYS: keyList('k2026a'),
    EDGE_CONFIG: JSON.stringify({}),
  });
});

after(async () => {
  await browser?.close();
  await Promise.all([ladderPub, plainPub, edge, origin].map((p) => p?.stop()));
});

function attrs(line) {
  const out = {};
  for (const m of line.slice(line.indexOf(':') + 1).matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) {
    out[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  return out;
}

async function multivariant(stream = 'cam1') {
  return waitFor('the multivariant playlist', async () => {
    const r = await text(`${origin.url}/live/${stream}/index.m3u8`);
    return r.status === 200 ? r.body : null;
  }, { timeout: 30000, interval: 250 });
}

/** Variants as { uri, attrs } in playlist order. */
function variants(mv) {
  const lines = mv.split('\n');
  const out = [];
  lines.forEach((l, i) => {
    if (l.startsWith('#EXT-X-STREAM-INF:')) out.push({ uri: lines[i + 1], ...attrs(l) });
  });
  return out;
}

const get = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());

/** The baseMediaDecodeTime of the first `traf` of a fragment. */
function firstTfdt(bytes) {
  const b = Buffer.from(bytes);
  const at = b.indexOf('tfdt');
  assert.ok(at > 0, 'a tfdt box');
  return b[at + 4] === 1 ? Number(b.readBigUInt64BE(at + 8)) : b.readUInt32BE(at + 8);
}

/** Two complete segments of a rung's media playlist, and the playlist. */
async function rungSegments(base, rung) {
  const url = `${base}/${rung}.m3u8`;
  const body = await waitFor(`${rung}: two segments`, async () => {
    const r = await text(url);
    return (r.body.match(/^#EXTINF/gm) ?? []).length >= 2 ? r.body : null;
  }, { timeout: 30000 });
  const segs = body.split('\n').filter((l) => new RegExp(`^${rung}-seg\\d+\\.m4s$`).test(l));
  return { url, body, segs };
}

test('the multivariant lists every rung, highest first, with measured bandwidth, and an audio-only variant', async () => {
  const mv = await multivariant();
  const vs = variants(mv);
  assert.deepEqual(vs.map((v) => v.uri.split('/')[1]), ['360p.m3u8', '240p.m3u8', '160p.m3u8', 'audio.m3u8'], mv);
  for (const [i, r] of RUNGS.entries()) {
    const v = vs[i];
    assert.equal(v.RESOLUTION, `${r.width}x${r.height}`, mv);
    assert.match(v.CODECS, /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
    assert.equal(v.AUDIO, 'audio');
    assert.ok(Math.abs(Number(v['FRAME-RATE']) - 30) < 0.5, v['FRAME-RATE']);
    const bw = Number(v.BANDWIDTH);
    const avg = Number(v['AVERAGE-BANDWIDTH']);
    assert.ok(avg <= bw, mv);
    // Measured from what was produced: the rung's rate plus audio, within reason.
    assert.ok(avg > r.kbps * 1000 * 0.4 && bw < (r.kbps + 32) * 1000 * 2.5, `${r.name}: ${avg}/${bw}`);
  }
  assert.ok(Number(vs[0].BANDWIDTH) > Number(vs[1].BANDWIDTH) && Number(vs[1].BANDWIDTH) > Number(vs[2].BANDWIDTH));
  assert.equal(vs[3].CODECS, 'mp4a.40.2', 'audio only');
  assert.match(mv, /#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"/);
});

test('every rung: conformant playlists, clean decodes, the planned sizes, keyframes at segment boundaries', async () => {
  const mv = await multivariant();
  const base = `${origin.url}/live/cam1/${variants(mv)[0].uri.split('/')[0]}`;
  for (const r of RUNGS) {
    const { body, segs } = await rungSegments(base, r.name);
    // Every other rendition is reported.
    const reports = body.split('\n').filter((l) => l.startsWith('#EXT-X-RENDITION-REPORT:')).map((l) => attrs(l).URI);
    assert.deepEqual(reports.sort(), ['160p.m3u8', '240p.m3u8', '360p.m3u8', 'audio.m3u8'].filter((u) => u !== `${r.name}.m3u8`));
    const init = await get(`${base}/${r.name}-init.mp4`);
    for (const seg of segs.slice(-2)) {
      const media = await get(`${base}/${seg}`);
      const { code, output } = await ffmpegDecode(init, media);
      assert.equal(code, 0, output);
      assert.equal(output, '', `${seg} decodes cleanly`);
      const probe = await ffprobeObject(init, media);
      assert.equal(`${probe.width}x${probe.height}`, `${r.width}x${r.height}`, seg);
      assert.equal(probe.keyframes[0], 0, `${seg} starts with a keyframe`);
      assert.ok(probe.keyframes.length === 1, `${seg}: keyframes only at its start (${probe.keyframes})`);
    }
  }
});

test('segment N and part N.P of every rung start at the same time', async () => {
  const mv = await multivariant();
  const base = `${origin.url}/live/cam1/${variants(mv)[0].uri.split('/')[0]}`;
  const lead = (await rungSegments(base, '360p')).body;
  // A complete segment and its parts, still listed in the playlist.
  const msn = Number(lead.split('\n').filter((l) => /^360p-seg\d+\.m4s$/.test(l)).at(-1).match(/\d+/g)[1]);
  const parts = lead.split('\n').filter((l) => l.startsWith('#EXT-X-PART:') && attrs(l).URI.startsWith(`360p-part${msn}.`));
  assert.ok(parts.length >= 5, `parts of segment ${msn}: ${parts.length}`);
  const frame = 90000 / 30;
  let compared = 0;
  for (const obj of [`seg${msn}.m4s`, ...parts.map((l) => attrs(l).URI.replace('360p-', ''))]) {
    const starts = [];
    for (const r of RUNGS) starts.push(firstTfdt(await get(`${base}/${r.name}-${obj}`)));
    const spread = Math.max(...starts) - Math.min(...starts);
    assert.ok(spread <= frame, `${obj}: starts ${starts} differ by more than a frame`);
    compared += 1;
  }
  console.log(`# alignment: segment ${msn} and its ${parts.length} parts start within one frame on all ${RUNGS.length} rungs`);
  assert.ok(compared >= 6);
});

/** A viewer page through the edge, with its CDP session for throttling. */
async function viewer(stream) {
  browser ??= await launchChromium();
  return openViewer(browser, `${edge.url}/?stream=${stream}&token=${encodeURIComponent(TOKEN)}`);
}

test('hls.js through the edge switches down when throttled below the top rung, and back up when released', async () => {
  const { page, cdp } = await viewer('cam1');
  const heights = () => page.evaluate(() => window.brook.hls.levels.map((l) => l.height));
  assert.deepEqual((await heights()).sort((a, b) => b - a), [360, 240, 160], 'hls.js sees the three video rungs');
  const current = () => page.evaluate(() => {
    const { hls } = window.brook;
    return hls.levels[hls.currentLevel]?.height ?? null;
  });
  await waitFor('playing the top rung', async () => (await current()) === 360, { timeout: 30000, interval: 500 });
  const { latencies } = await watchPlayback(page, 5);

  const t0 = Date.now();
  // Well below the top rung (600 + 32 kbit/s): both players' estimates lag a
  // sudden drop by many seconds, and a margin keeps the test about switching.
  await throttle(cdp, 350);
  await waitFor('a switch below 360p', async () => (await current() ?? 360) < 360, { timeout: 60000, interval: 250 });
  const down = Date.now() - t0;
  const during = await watchPlayback(page, 5);
  assert.ok(during.last.currentTime > during.first.currentTime + 4, 'keeps playing while throttled');

  const t1 = Date.now();
  await throttle(cdp, 0);
  // What the player saw, for the failure message.
  const trace = [];
  const sample = () => page.evaluate(() => {
    const { hls, video } = window.brook;
    const b = video.buffered;
    return `${hls.levels[hls.currentLevel]?.height}p bw ${Math.round(hls.bandwidthEstimate / 1000)}k `
      + `ttfb ${Math.round(hls.ttfbEstimate)} lat ${window.brook.latency?.toFixed(1)} `
      + `buf ${(b.length ? b.end(b.length - 1) - video.currentTime : 0).toFixed(1)}`;
  });
  await waitFor('back on 360p', async () => {
    if (trace.length === 0 || Date.now() - trace.at(-1).at > 2000) trace.push({ at: Date.now(), s: await sample() });
    return (await current()) === 360;
  }, { timeout: 120000, interval: 250 }).catch(async (e) => {
    const top = start('ps', 'ps', ['-eo', 'pcpu=,args=', '--sort=-pcpu']);
    await top.exited;
    throw new Error(`${e.message}\n${trace.map((t) => `+${((t.at - t1) / 1000).toFixed(0)} s ${t.s}`).join('\n')}`
      + `\nload ${loadavg().map((l) => l.toFixed(1)).join(' ')}; busiest:\n${top.log.split('\n').slice(0, 6).join('\n')}`);
  });
  const up = Date.now() - t1;
  const after = await watchPlayback(page, 5);
  assert.ok(after.last.currentTime > after.first.currentTime + 4);

  const state = await page.evaluate(() => ({
    fatal: window.brook.fatalErrors.map((e) => `${e.details} ${e.url}`),
    switches: window.brook.switches.map((s) => s.height),
  }));
  assert.deepEqual(state.fatal, [], 'no fatal hls.js error');
  console.log(`# hls.js (through the edge): switched down ${(down / 1000).toFixed(1)} s after the throttle to 350 kbit/s, `
    + `back up ${(up / 1000).toFixed(1)} s after it was lifted; rungs played: ${state.switches.join(' > ')}; `
    + `live latency before throttling: median ${median(latencies)?.toFixed(2)} s`);
  await page.close();
});

test('live latency with the ladder and without it (same source, same run)', async () => {
  const samples = {};
  for (const stream of ['plain', 'cam1']) {
    const { page } = await viewer(stream);
    await sleep(3000); // let the live catch-up settle
    const { latencies, first, last } = await watchPlayback(page, 10);
    assert.ok(last.currentTime - first.currentTime >= 9, `${stream} plays`);
    samples[stream] = latencies;
    await page.close();
  }
  const m = (s) => median(samples[s]);
  console.log(`# live latency through the edge (wall clock - hls.playingDate): without the ladder median ${m('plain').toFixed(2)} s, `
    + `with the ladder ${m('cam1').toFixed(2)} s: the ladder adds ${(m('cam1') - m('plain')).toFixed(2)} s`);
  const metrics = (await text(`${origin.url}/metrics`)).body;
  const delay = metrics.match(/brook_transcoder_latency_seconds\{stream="cam1"\} ([\d.]+)/)?.[1];
  console.log(`# the transcoder's own delay (origin metric): ${Number(delay).toFixed(3)} s`);
});

test('dash.js plays the multi-Representation MPD and switches under the same throttling', async () => {
  const mv = await multivariant();
  const session = variants(mv)[0].uri.split('/')[0];
  const mpdUrl = `${origin.url}/live/cam1/${session}/manifest.mpd`;
  const mpd = (await text(mpdUrl)).body;
  const video = mpd.slice(mpd.indexOf('contentType="video"'), mpd.indexOf('</AdaptationSet>'));
  assert.equal((video.match(/<Representation /g) ?? []).length, 3, mpd);
  assert.match(mpd, /contentType="video"[^>]*segmentAlignment="true" startWithSAP="1"/);

  browser ??= await launchChromium();
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await page.goto(`${origin.url}/healthz`); // same origin as the MPD
  await page.addScriptTag({ content: readFileSync(join(ROOT, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'), 'utf8') });
  await page.evaluate((url) => {
    document.body.innerHTML = '<video id="dash" muted autoplay playsinline></video>';
    const player = window.dashjs.MediaPlayer().create();
    const errors = [];
    const heights = [];
    player.updateSettings({ streaming: { delay: { liveDelay: 2 }, liveCatchup: { enabled: true } } });
    player.on(window.dashjs.MediaPlayer.events.ERROR, (e) => errors.push(JSON.stringify(e.error ?? e)));
    player.on(window.dashjs.MediaPlayer.events.QUALITY_CHANGE_RENDERED, (e) => {
      if (e.mediaType === 'video') heights.push(e.newRepresentation?.height ?? null);
    });
    player.initialize(document.getElementById('dash'), url, true);
    window.dash = { player, errors, heights, video: document.getElementById('dash') };
  }, mpdUrl);
  // What is on screen: the last rendered video representation.
  const height = () => page.evaluate(() => window.dash.heights.at(-1) ?? null);
  await page.waitForFunction(() => window.dash.video.currentTime > 0, null, { timeout: 30000 });
  await waitFor('dash.js on the top rung', async () => (await height() ?? 360) === 360, { timeout: 40000, interval: 500 });
  const t0 = Date.now();
  await throttle(cdp, 350);
  await waitFor('dash.js below 360p', async () => (await height() ?? 360) < 360, { timeout: 60000, interval: 250 });
  const down = Date.now() - t0;
  const t1 = Date.now();
  await throttle(cdp, 0);
  await waitFor('dash.js back on 360p', async () => (await height()) === 360, { timeout: 120000, interval: 250 });
  const up = Date.now() - t1;
  const played = await page.evaluate(() => window.dash.video.currentTime);
  assert.deepEqual(await page.evaluate(() => window.dash.errors), [], 'no dash.js error');
  assert.ok(played > 10, `played ${played} s`);
  console.log(`# dash.js: switched down ${(down / 1000).toFixed(1)} s after the throttle, back up ${(up / 1000).toFixed(1)} s after release; `
    + `rungs rendered: ${(await page.evaluate(() => window.dash.heights)).join(' > ')}`);
  await context.close();
});

test('the ffmpeg child killed mid-stream: players keep playing after a discontinuity; log and metrics say so', async () => {
  const { page } = await viewer('cam1');
  const before = await samplePlayer(page);
  const pid = Number((await text(`${origin.url}/admin/streams`, { headers: { authorization: `Bearer ${ADMIN}` } }))
    .body.match(/"transcoder_pid":(\d+)/)?.[1]);
  assert.ok(pid > 0, 'the admin API names the transcoder process');
  process.kill(pid, 'SIGKILL');
  await waitFor('a new transcoder', async () => {
    const m = (await text(`${origin.url}/metrics`)).body;
    return /brook_transcoder_restarts_total\{reason="exited"\} 1/.test(m) && /brook_transcoder_running\{stream="cam1"\} 1/.test(m);
  }, { timeout: 15000 });
  assert.match(origin.log, /the transcoder exited; restarting it.*signal: 9/);
  const mv = await multivariant();
  const base = `${origin.url}/live/cam1/${variants(mv)[0].uri.split('/')[0]}`;
  await waitFor('EXT-X-DISCONTINUITY in every rung', async () => {
    for (const r of RUNGS) if (!(await text(`${base}/${r.name}.m3u8`)).body.includes('#EXT-X-DISCONTINUITY')) return false;
    return true;
  }, { timeout: 15000 });
  const { first, last } = await watchPlayback(page, 8);
  assert.ok(last.currentTime - first.currentTime >= 7, `played ${last.currentTime - first.currentTime} s after the kill`);
  assert.ok(last.currentTime > before.currentTime + 7);
  const fatal = await page.evaluate(() => window.brook.fatalErrors.map((e) => `${e.details} ${e.url}`));
  assert.deepEqual(fatal, [], 'no fatal hls.js error');
  await page.close();
});

test('live-to-VOD keeps every rung', async () => {
  const mv = await multivariant();
  const session = variants(mv)[0].uri.split('/')[0];
  await ladderPub.stop();
  await waitFor('ENDLIST', async () => (await text(`${origin.url}/live/cam1/${session}/360p.m3u8`)).body.includes('#EXT-X-ENDLIST'),
    { timeout: 20000 });
  const vod = readFileSync(join(archive, 'cam1', session, 'index.m3u8'), 'utf8');
  for (const r of RUNGS) {
    assert.match(vod, new RegExp(`${r.name}\\.m3u8`), `archived multivariant lists ${r.name}`);
    const pl = (await text(`${origin.url}/live/cam1/${session}/${r.name}.m3u8`)).body;
    assert.match(pl, /#EXT-X-PLAYLIST-TYPE:VOD/);
    assert.ok((pl.match(/^#EXTINF/gm) ?? []).length >= 5, `${r.name} VOD`);
  }
  // The origin's own children (other suites may run transcoders of their own).
  const ps = start('ps', 'ps', ['-eo', 'ppid=,args=']);
  await ps.exited;
  const children = ps.log.split('\n').filter((l) => Number(l.trim().split(/\s+/)[0]) === origin.pid);
  assert.ok(!children.some((l) => /ffmpeg -hide_banner -nostdin/.test(l)), `no transcoder left once the stream ended: ${children}`);
});
