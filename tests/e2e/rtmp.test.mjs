// RTMP ingest with ffmpeg as the publisher (FLV: H.264 with B-frames + AAC),
// the way OBS publishes by default: the stream is packaged (segments decode,
// one keyframe at each segment's start, the source's size), transcoded into
// the ladder like every other ingest, refused with a wrong key (logged, nothing
// served, the key never logged), garbage on the port ends only that
// connection, and a publisher that reconnects continues its stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEV_KEY, start, startOrigin, freePort, mediaPlaylistUrl, waitFor, text, ffmpegDecode, ffprobeObject, launchChromium,
  watchPlayback,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

const LADDER = 'audio_bitrate_kbps = 32\n' + [[240, 300], [160, 200]]
  .map(([h, k]) => `[[ladder.rungs]]\nheight = ${h}\nbitrate_kbps = ${k}\npreset = "ultrafast"\n`).join('');
const WRONG = 'not-the-key-at-all';
const TOKEN = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', id: 'rtmp', ttl: 3600 });
let origin, edge, browser;

let tlsPort;

before(async () => {
  // A self-signed certificate for RTMPS, made now.
  const dir = mkdtempSync(join(tmpdir(), 'brook-rtmps-'));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  const openssl = start('openssl', 'openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  assert.equal((await openssl.exited).code, 0, openssl.log);
  tlsPort = await freePort();
  origin = await startOrigin({
    args: ['--reconnect-grace-ms', '5000'],
    config: `[rtmp.tls]\nlisten = "127.0.0.1:${tlsPort}"\ncert = "${cert}"\nkey = "${key}"\n`
      + `[ladder]\n${LADDER}[streams.cam1]\nkey = "${DEV_KEY}"\n[streams.again]\nkey = "${DEV_KEY}"\n`
      + `[streams.tls]\nkey = "${DEV_KEY}"\n[streams.ladder]\nkey = "${DEV_KEY}"\n[streams.ladder.ladder]\n${LADDER.replaceAll('[[ladder.rungs]]', '[[streams.ladder.ladder.rungs]]')}`,
  });
});

after(async () => {
  await browser?.close();
  await Promise.all([edge, origin].map((p) => p?.stop()));
  assert.ok(!origin.log.includes(WRONG), 'a stream key reached the log');
});

/** ffmpeg publishing a 320x240 test pattern and a tone over RTMP (FLV), or RTMPS. */
function rtmpPublisher(path, { seconds, tls = false } = {}) {
  const args = ['-hide_banner', '-loglevel', 'warning', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100'];
  if (seconds) args.push('-t', String(seconds));
  args.push('-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-bf', '2', '-pix_fmt', 'yuv420p',
    '-b:v', '400k', '-c:a', 'aac', '-b:a', '64k', '-f', 'flv',
    tls ? `rtmps://127.0.0.1:${tlsPort}/live/${path}` : `rtmp://127.0.0.1:${origin.rtmpPort}/live/${path}`);
  return start('ffmpeg-rtmp', 'ffmpeg', args);
}

async function objects(media) {
  const body = await waitFor('two complete segments', async () => {
    const r = await text(media);
    return r.status === 200 && (r.body.match(/^#EXTINF/gm) ?? []).length >= 2 ? r.body : null;
  }, { timeout: 30000, interval: 250 });
  const uri = (re) => new URL(body.match(re)[1], media).href;
  const bytes = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
  const init = await bytes(uri(/#EXT-X-MAP:URI="([^"]+)"/));
  const segment = await bytes(uri(/#EXTINF:[^\n]*\n([^#\n]+)/));
  return { init, segment };
}

test('an RTMP publisher is packaged: segments decode, start on a keyframe, keep the source size', async () => {
  const publisher = rtmpPublisher(`cam1?key=${DEV_KEY}`);
  try {
    const media = await mediaPlaylistUrl(origin.url, 'cam1');
    const mv = (await text(`${origin.url}/live/cam1/index.m3u8`)).body;
    assert.match(mv, /CODECS="avc1\.[0-9a-fA-F]{6},mp4a\.40\.2"/, mv);
    const { init, segment } = await objects(media);
    const decoded = await ffmpegDecode(init, segment);
    assert.equal(decoded.code, 0);
    assert.equal(decoded.output, '', 'ffmpeg -v error prints nothing');
    const probe = await ffprobeObject(init, segment);
    assert.deepEqual([probe.width, probe.height], [320, 240]);
    assert.equal(probe.keyframes[0], 0, 'the segment starts with a keyframe');
    assert.match(origin.log, /RTMP publish started/);
  } finally {
    await publisher.stop();
  }
});

test('hls.js plays an RTMP publisher through the edge in Chromium for 8 s', async () => {
  const publisher = rtmpPublisher(`cam1?key=${DEV_KEY}`);
  try {
    await mediaPlaylistUrl(origin.url, 'cam1');
    edge = await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a'), EDGE_CONFIG: '{}' });
    browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`${edge.url}/?stream=cam1&token=${encodeURIComponent(TOKEN)}`);
    await page.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 40000 })
      .catch(async (e) => {
        const state = await page.evaluate(() => JSON.stringify(window.brook?.errors ?? null)).catch(() => '');
        throw new Error(`${e.message}\n${state}`);
      });
    const { first, last, latencies } = await watchPlayback(page, 8);
    const fatal = await page.evaluate(() => window.brook.fatalErrors.map((e) => JSON.stringify(e)));
    assert.deepEqual(fatal, [], 'no fatal hls.js error');
    assert.ok(last.currentTime - first.currentTime >= 8, `played ${last.currentTime - first.currentTime} s`);
    assert.ok(last.frames > first.frames, 'video frames decoded');
    console.log(`# RTMP live latency through the edge: median ${latencies[Math.floor(latencies.length / 2)]?.toFixed(2)} s`);
    await page.close();
  } finally {
    await publisher.stop();
  }
});

test('RTMPS: ffmpeg publishes over TLS and the stream is packaged', async () => {
  const before = origin.log.length;
  const publisher = rtmpPublisher(`tls?key=${DEV_KEY}`, { tls: true });
  try {
    const media = await mediaPlaylistUrl(origin.url, 'tls');
    const { init, segment } = await objects(media);
    assert.equal((await ffmpegDecode(init, segment)).output, '');
    assert.match(origin.log.slice(before), /RTMP publish started/);
  } finally {
    await publisher.stop();
  }
  // Plain RTMP on the TLS port: no TLS handshake, the connection is closed.
  const closed = await new Promise((resolve) => {
    const socket = connect(tlsPort, '127.0.0.1', () => socket.write(Buffer.concat([Buffer.from([3]), Buffer.alloc(1536, 1)])));
    socket.on('data', () => {});
    socket.on('close', () => resolve(true));
    socket.on('error', () => resolve(true));
    setTimeout(() => { socket.destroy(); resolve(false); }, 15000);
  });
  assert.ok(closed, 'plain RTMP on the RTMPS port is refused');
});

test('an RTMP publisher feeds the ladder like every other ingest', async () => {
  const publisher = rtmpPublisher(`ladder?key=${DEV_KEY}`);
  try {
    const mv = await waitFor('the ladder\'s multivariant playlist', async () => {
      const r = await text(`${origin.url}/live/ladder/index.m3u8`);
      return r.status === 200 && /RESOLUTION=214x160/.test(r.body) ? r.body : null;
    }, { timeout: 45000, interval: 500 });
    assert.match(mv, /RESOLUTION=320x240/, mv);
    assert.match(mv, /TYPE=AUDIO/, mv);
    const lines = mv.split('\n');
    const inf = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF') && l.includes('RESOLUTION=214x160'));
    const rung = new URL(lines[inf + 1], `${origin.url}/live/ladder/index.m3u8`).href;
    const { init, segment } = await objects(rung);
    const probe = await ffprobeObject(init, segment);
    assert.deepEqual([probe.width, probe.height], [214, 160]);
    assert.equal((await ffmpegDecode(init, segment)).output, '');
  } finally {
    await publisher.stop();
  }
});

test('a wrong key (and an unknown stream) is refused, logged, and nothing is served', async () => {
  // A configured stream that is not publishing now, so a wrongly admitted
  // publisher would show.
  for (const [stream, wanted] of [['again', 'wrong stream key'], ['cam2', 'is not configured']]) {
    const before = origin.log.length;
    const publisher = rtmpPublisher(`${stream}?key=${WRONG}`);
    const exited = await Promise.race([publisher.exited, new Promise((r) => setTimeout(r, 20000, null))]);
    await publisher.stop();
    assert.ok(exited && exited.code !== 0, `ffmpeg kept publishing to ${stream}:\n${publisher.log}`);
    await waitFor('the refusal in the log', () => origin.log.slice(before).includes(wanted))
      .catch((e) => { throw new Error(`${e.message}\n${origin.log.slice(before)}`); });
    assert.match(origin.log.slice(before), /RTMP publish refused/);
    assert.equal((await text(`${origin.url}/live/${stream}/index.m3u8`)).status, 404);
  }
});

test('garbage on the RTMP port ends that connection only', async () => {
  const before = origin.log.length;
  const garbage = await new Promise((resolve) => {
    const socket = connect(origin.rtmpPort, '127.0.0.1', () => {
      // C0 with RTMP's version 3, then bytes that are no handshake at all.
      socket.write(Buffer.concat([Buffer.from([3]), Buffer.alloc(4000, 0xA5)]));
    });
    socket.on('data', () => {});
    socket.on('close', () => resolve('closed'));
    socket.on('error', () => resolve('error'));
    setTimeout(() => { socket.destroy(); resolve('open'); }, 15000);
  });
  assert.notEqual(garbage, 'open', 'a garbage handshake is disconnected');
  const bad = await new Promise((resolve) => {
    const socket = connect(origin.rtmpPort, '127.0.0.1', () => socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')));
    socket.on('data', () => {});
    socket.on('close', () => resolve('closed'));
    socket.on('error', () => resolve('error'));
    setTimeout(() => { socket.destroy(); resolve('open'); }, 15000);
  });
  assert.equal(bad, 'closed', 'a non-RTMP client is disconnected');
  assert.match(origin.log.slice(before), /RTMP connection closed/);
  assert.equal((await fetch(`${origin.url}/healthz`)).status, 200);
});

test('a publisher that reconnects within the grace period continues its stream (stream:key form)', async () => {
  let publisher = rtmpPublisher(`again:${DEV_KEY}`);
  const media = await mediaPlaylistUrl(origin.url, 'again');
  const session = new URL(media).pathname.split('/')[3];
  await waitFor('media', async () => /#EXTINF/.test((await text(media)).body), { timeout: 30000 });
  await publisher.stop();
  publisher = rtmpPublisher(`again:${DEV_KEY}`);
  try {
    const seen = (await text(media)).body;
    await waitFor('new parts on the same session', async () => {
      const r = await text(media);
      return r.status === 200 && r.body !== seen && /#EXT-X-PART:/.test(r.body);
    }, { timeout: 30000, interval: 250 });
    const again = await mediaPlaylistUrl(origin.url, 'again');
    assert.equal(new URL(again).pathname.split('/')[3], session, 'the same session');
  } finally {
    await publisher.stop();
  }
});
