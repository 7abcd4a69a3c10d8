// WHEP playback end to end with real peers. Headless Chromium publishes a
// canvas over WHIP to brook-origin; the canvas carries the wall clock as a
// row of black and white blocks (24 bits of Date.now()). A second Chromium
// page plays the stream over WHEP through the edge Worker (wasm in workerd)
// with a viewer token, from the viewer page's ?mode=webrtc, and a third plays
// it over LL-HLS; both read the clock back from each frame they show
// (requestVideoFrameCallback + canvas pixels) and the test prints both
// glass-to-glass latencies (the publisher's and the viewers' clocks are one:
// one machine, one browser). Then ffmpeg publishes over SRT (High profile
// H.264, AAC) into a transcoded ladder and Chromium plays that over WHEP too,
// with sound: Opus made from the AAC by the ladder; and the refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startOrigin, launchChromium, WEBRTC_LOOPBACK_FLAGS, waitFor, ROOT, DEV_KEY, startPublisher, median,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

const OFFER = readFileSync(join(ROOT, 'origin/tests/fixtures/chromium_whep_offer.sdp'), 'utf8');

let origin, edge, browser;

before(async () => {
  origin = await startOrigin({
    args: ['--reconnect-grace-ms', '0'],
    config: '[streams.cam1]\nkey = "dev-key"\n[streams.cam2]\nkey = "dev-key"\n[streams.idle]\nkey = "dev-key"\n'
      // cam2 goes through the transcoder (the source copied as the top rung,
      // one small rung): its AAC becomes Opus there for WebRTC viewers.
      + '[streams.cam2.ladder]\nmode = "transcode"\nsource_rung = true\n[[streams.cam2.ladder.rungs]]\nheight = 180\nbitrate_kbps = 200\n',
  });
  edge = await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a') });
  browser = await launchChromium({ args: WEBRTC_LOOPBACK_FLAGS });
});

after(async () => {
  await browser?.close();
  await edge?.stop();
  await origin?.stop();
});

const token = (stream = 'cam1') => signToken({
  key: KEYS.k2026a, kid: 'k2026a', acl: `/live/${stream}/*`, id: 'whep-viewer', ttl: 3600,
});

/**
 * Publishes a 640x360 canvas showing the wall clock (24 bits of Date.now() as
 * blocks 1..24 of a row, block 0 white and block 25 black as guards) and a
 * tone, over WHIP from the origin's own /whip/ page (same origin: no CORS).
 */
async function publishClock(stream) {
  const page = await browser.newPage();
  await page.goto(`${origin.url}/whip/`);
  await page.evaluate(async ({ stream, key }) => {
    const c = document.createElement('canvas');
    c.width = 640; c.height = 360;
    document.body.append(c);
    const g = c.getContext('2d');
    let n = 0;
    const draw = () => {
      n += 1;
      g.fillStyle = '#406080';
      g.fillRect(0, 0, 640, 360);
      g.fillStyle = '#e0c040'; // something moving, so every frame differs
      g.fillRect((n * 7) % 600, 200, 40, 40);
      const t = Date.now() % 16777216;
      for (let i = 0; i < 26; i += 1) {
        const bit = i === 0 ? 1 : i === 25 ? 0 : (t >> (24 - i)) & 1;
        g.fillStyle = bit ? '#ffffff' : '#000000';
        g.fillRect(i * 24, 24, 24, 24);
      }
    };
    draw();
    setInterval(draw, 10);
    const video = c.captureStream(30).getVideoTracks()[0];
    const ac = new AudioContext();
    const osc = ac.createOscillator();
    const dest = ac.createMediaStreamDestination();
    osc.connect(dest);
    osc.start();
    const pc = new RTCPeerConnection();
    const vt = pc.addTransceiver(video, { direction: 'sendonly' });
    pc.addTransceiver(dest.stream.getAudioTracks()[0], { direction: 'sendonly' });
    const h264 = RTCRtpSender.getCapabilities('video').codecs.filter((x) => /h264/i.test(x.mimeType));
    vt.setCodecPreferences(h264);
    const params = vt.sender.getParameters();
    params.degradationPreference = 'maintain-resolution';
    await vt.sender.setParameters(params);
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch(`/whip/${stream}`, {
      method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${key}` }, body: pc.localDescription.sdp,
    });
    if (r.status !== 201) throw new Error(`WHIP ${r.status} ${await r.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
    window.pub = pc;
  }, { stream, key: DEV_KEY });
  await page.waitForFunction(() => window.pub.connectionState === 'connected', null, { timeout: 15000 });
  return page;
}

/** Starts reading the clock from every frame the viewer page shows: samples in window.__lat (ms). */
function readClock(page) {
  return page.evaluate(() => {
    window.__lat = [];
    window.__unreadable = 0;
    const v = window.brook.video;
    const c = document.createElement('canvas');
    const g = c.getContext('2d', { willReadFrequently: true });
    const step = () => {
      const w = v.videoWidth;
      const h = v.videoHeight;
      if (w && h) {
        const shown = Date.now();
        c.width = w; c.height = h;
        g.drawImage(v, 0, 0, w, h);
        const row = g.getImageData(0, Math.round((36 * h) / 360), w, 1).data;
        const bit = (i) => {
          const x = Math.round(((i * 24 + 12) * w) / 640);
          return (row[x * 4] + row[x * 4 + 1] + row[x * 4 + 2]) / 3 > 128 ? 1 : 0;
        };
        if (bit(0) === 1 && bit(25) === 0) {
          let t = 0;
          for (let i = 1; i <= 24; i += 1) t = t * 2 + bit(i);
          const lat = (((shown % 16777216) - t) + 16777216) % 16777216;
          if (lat < 60000) window.__lat.push(lat); else window.__unreadable += 1;
        } else {
          window.__unreadable += 1;
        }
      }
      v.requestVideoFrameCallback(step);
    };
    v.requestVideoFrameCallback(step);
  });
}

const framesOf = (page) => page.evaluate(() => window.brook.video.getVideoPlaybackQuality().totalVideoFrames);

async function openWebRtcViewer(stream) {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(m.text()));
  await page.goto(`${edge.url}/?stream=${stream}&mode=webrtc&token=${encodeURIComponent(token(stream))}`);
  await page.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 20000 })
    .catch(async (e) => {
      const state = await page.evaluate(() => JSON.stringify({
        status: window.brook?.status, webrtc: { ...window.brook?.webrtc, pc: undefined },
      }));
      throw new Error(`${e.message}\n${state}\n${log.join('\n')}\n${origin.log.slice(-3000)}`);
    });
  return page;
}

test('Chromium plays over WHEP through the edge; glass-to-glass latency beside LL-HLS', async () => {
  const publisher = await publishClock('cam1');
  const t0 = Date.now();
  const rtc = await openWebRtcViewer('cam1');
  console.log(`# WHEP: playing ${Date.now() - t0} ms after the page opened`);
  const state = await rtc.evaluate(() => ({ mode: window.brook.mode, ...window.brook.webrtc, pc: undefined }));
  assert.equal(state.mode, 'webrtc', `no fallback to LL-HLS: ${JSON.stringify(state)}`);
  assert.equal(state.fellBack, null);
  assert.match(state.resource ?? '', /^http:\/\/127\.0\.0\.1:\d+\/whep\/cam1\/[0-9a-f]{32}$/, 'the session is on the edge');

  const hls = await browser.newPage();
  await hls.goto(`${edge.url}/?stream=cam1&token=${encodeURIComponent(token())}`);
  await hls.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 30000 });

  await readClock(rtc);
  await readClock(hls);
  const f0 = await framesOf(rtc);
  await sleep(10000);
  const f1 = await framesOf(rtc);
  const rtcLat = await rtc.evaluate(() => window.__lat);
  const hlsLat = await hls.evaluate(() => window.__lat);
  const unreadable = await rtc.evaluate(() => window.__unreadable);
  const stats = await rtc.evaluate(async () => {
    const out = {};
    (await window.brook.webrtc.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp') {
        out[r.kind] = {
          packets: r.packetsReceived, lost: r.packetsLost, frames: r.framesDecoded ?? null, codec: r.codecId,
          width: r.frameWidth ?? null, fps: r.framesPerSecond ?? null,
          jitterBufferMs: r.jitterBufferEmittedCount ? Math.round((1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount) : null,
        };
      }
    });
    return out;
  });
  assert.ok(f1 - f0 >= 100, `WHEP frames decoded in 10 s: ${f1 - f0}`);
  assert.ok(stats.audio?.packets > 100, `Opus arrived over WHEP: ${JSON.stringify(stats)}`);
  assert.ok(rtcLat.length >= 50, `clock read from ${rtcLat.length} WHEP frames (${unreadable} unreadable)`);
  assert.ok(hlsLat.length >= 50, `clock read from ${hlsLat.length} LL-HLS frames`);
  const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)];
  const rtcMedian = median(rtcLat);
  const hlsMedian = median(hlsLat);
  console.log(`# glass-to-glass (canvas clock in the picture -> frame shown), loopback, median [p10..p90] over n frames:`);
  console.log(`#   WHEP via edge: ${rtcMedian} ms [${pct(rtcLat, 0.1)}..${pct(rtcLat, 0.9)}] n=${rtcLat.length}; `
    + `receiver jitter buffer ${stats.video?.jitterBufferMs} ms, ${stats.video?.width}px @ ${stats.video?.fps} fps`);
  console.log(`#   LL-HLS via edge: ${hlsMedian} ms [${pct(hlsLat, 0.1)}..${pct(hlsLat, 0.9)}] n=${hlsLat.length}`);
  // Sanity bounds only (timing is measured, not asserted): WebRTC is well
  // under LL-HLS, and both are live.
  assert.ok(rtcMedian > 0 && rtcMedian < 3000, `WHEP latency ${rtcMedian} ms`);
  assert.ok(hlsMedian > rtcMedian, `LL-HLS ${hlsMedian} ms vs WHEP ${rtcMedian} ms`);

  // Leaving: the page DELETEs its session (through the edge) when it goes.
  const resource = state.resource;
  await rtc.close({ runBeforeUnload: true });
  await waitFor('the viewer left', () => origin.log.includes('WHEP viewer left'), { timeout: 10000 });
  const left = origin.log.split('\n').find((l) => l.includes('WHEP viewer left'));
  console.log(`# origin: ${left?.replace(/^.*?session: /, '')}`);
  const gone = await fetch(resource, { method: 'DELETE', headers: { authorization: `Bearer ${token()}` } });
  assert.equal(gone.status, 404, 'already deleted');
  await hls.close();
  await publisher.close();
});

/** The viewer page's inbound audio and video as getStats() reports them. */
async function inbound(page) {
  return page.evaluate(async () => {
    const out = {};
    (await window.brook.webrtc.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp') {
        out[r.kind] = {
          packets: r.packetsReceived, samples: r.totalSamplesReceived ?? null,
          concealed: r.concealedSamples ?? null, frames: r.framesDecoded ?? null,
          jitterBufferMs: r.jitterBufferEmittedCount ? Math.round((1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount) : null,
        };
      }
    });
    return out;
  });
}

test('ffmpeg over SRT (High profile H.264, AAC) into the ladder: Chromium plays its video and Opus audio over WHEP', async () => {
  const ffmpeg = startPublisher(origin.srtPort, { streamid: `publish:live/cam2:${DEV_KEY}`, video: 'testsrc2=size=640x360:rate=30' });
  try {
    await waitFor('cam2 live', async () => (await fetch(`${origin.url}/live/cam2/index.m3u8`)).ok, { timeout: 20000 });
    const page = await openWebRtcViewer('cam2');
    // Audio joins when the transcoder's Opus reaches the feed.
    await waitFor('Opus packets', async () => (await inbound(page)).audio?.packets > 0, { timeout: 15000 });
    const s0 = await inbound(page);
    const f0 = await framesOf(page);
    await sleep(4000);
    const f1 = await framesOf(page);
    const s1 = await inbound(page);
    const mode = await page.evaluate(() => window.brook.mode);
    assert.equal(mode, 'webrtc');
    assert.ok(f1 - f0 >= 60, `frames decoded in 4 s: ${f1 - f0}`);
    // 20 ms Opus frames: ~200 packets in 4 s; decoded samples at 48 kHz, few of them concealment.
    const packets = s1.audio.packets - s0.audio.packets;
    const samples = s1.audio.samples - s0.audio.samples;
    const concealed = s1.audio.concealed - s0.audio.concealed;
    assert.ok(packets >= 150, `Opus packets in 4 s: ${packets} ${JSON.stringify(s1)}`);
    assert.ok(samples >= 3 * 48000, `audio samples played in 4 s: ${samples}`);
    assert.ok(concealed < samples / 10, `concealed ${concealed} of ${samples} samples`);
    console.log(`# WHEP from an SRT source: ${f1 - f0} frames, ${packets} Opus packets, ${samples} samples (${concealed} concealed) in 4 s; `
      + `receiver jitter buffers: video ${s1.video?.jitterBufferMs} ms, audio ${s1.audio.jitterBufferMs} ms`);
    const mv = (await (await fetch(`${origin.url}/live/cam2/index.m3u8`)).text());
    assert.doesNotMatch(mv, /opus/, 'the made Opus is for WebRTC only: HLS keeps its AAC');
    assert.match(mv, /mp4a\.40\.2/, mv);
    await page.close();
  } finally {
    await ffmpeg.stop();
  }
});

test('WHEP refusals through the edge: no token, a wrong token, bad SDP, a stream that is not live', async () => {
  const post = async (stream, body, { auth = `Bearer ${token(stream)}`, type = 'application/sdp' } = {}) => {
    const headers = { 'content-type': type };
    if (auth) headers.authorization = auth;
    const r = await fetch(`${edge.url}/whep/${stream}`, { method: 'POST', headers, body });
    return { status: r.status, body: await r.text(), headers: r.headers };
  };
  const none = await post('idle', OFFER, { auth: null });
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
  assert.equal((await post('idle', OFFER, { auth: `Bearer ${token('other')}` })).status, 403, 'a token for another stream');
  const malformed = await post('idle', 'v=0\r\nnonsense\r\n');
  assert.equal(malformed.status, 400);
  assert.match(malformed.body, /malformed SDP offer/);
  const sendonly = await post('idle', OFFER.replaceAll('a=recvonly', 'a=sendonly'));
  assert.equal(sendonly.status, 422);
  assert.match(sendonly.body, /recvonly/);
  assert.equal((await post('idle', OFFER, { type: 'text/plain' })).status, 415);
  assert.equal((await post('idle', OFFER)).status, 404, 'not live');
  const get = await fetch(`${edge.url}/whep/idle`, { headers: { authorization: `Bearer ${token('idle')}` } });
  assert.equal(get.status, 405);

  // The player falls back to LL-HLS when WHEP cannot start.
  const page = await browser.newPage();
  await page.goto(`${edge.url}/?stream=idle&mode=webrtc&token=${encodeURIComponent(token('idle'))}`);
  await page.waitForFunction(() => window.brook?.webrtc?.fellBack, null, { timeout: 10000 });
  const s = await page.evaluate(() => ({ mode: window.brook.mode, fellBack: window.brook.webrtc.fellBack, status: window.brook.status }));
  assert.equal(s.mode, 'hls');
  assert.match(s.fellBack, /not live/);
  await page.close();
});
