// RTSP pull with GStreamer's RTSP server as the camera (tests/e2e/rtsp_server.py,
// Debian's gir1.2-gst-rtsp-server-1.0): the origin pulls H.264 + AAC behind
// Basic authentication and packages it (segments decode, a keyframe first,
// the camera's 320x240); the camera is killed and restarted and the stream
// resumes on the same session after an EXT-X-DISCONTINUITY; H.265 is
// packaged and G.711 audio dropped with one warning; a wrong password is
// refused and retried; hls.js plays the pulled stream through the edge; an
// on-demand camera is called only when a viewer asks, hung up after its idle
// time without viewers, and called again by the next viewer; no credential
// ever reaches the origin's log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  ROOT, start, startOrigin, freePort, mediaPlaylistUrl, waitFor, text, ffmpegDecode, ffprobeObject,
  launchChromium, watchPlayback,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

// Debian's python3: the GStreamer bindings are Debian packages (cargo xtask setup).
const PYTHON = process.env.BROOK_GST_PYTHON ?? '/usr/bin/python3';
const SERVER = join(ROOT, 'tests/e2e/rtsp_server.py');
const USER = 'camop';
const PASSWORD = 'Pw-of-the-camera-7';
const WRONG = 'Not-the-password-9';
const KEY = 'pulled-stream-key';
let origin;
let door;
let hevc;
let locked;
let lazy;
const ports = {};
const IDLE_STOP_MS = 3000;

/** The camera: GStreamer's RTSP server on `port`, resolved once it listens. */
async function camera(port, { video = 'h264', audio = 'aac', auth = true } = {}) {
  const args = [SERVER, '--port', String(port), '--video', video, '--audio', audio];
  if (auth) args.push('--user', USER, '--password', PASSWORD);
  const c = start(`rtsp-server-${port}`, PYTHON, args);
  await waitFor(`the RTSP server on ${port}`, () => /^ready /m.test(c.log), { timeout: 15000 })
    .catch((e) => { throw new Error(`${e.message}\n${c.log}`); });
  return c;
}

function kill(c) {
  try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
  return c.exited;
}

before(async () => {
  for (const name of ['door', 'hevc', 'locked', 'lazy']) ports[name] = await freePort();
  [door, hevc, locked, lazy] = await Promise.all([
    camera(ports.door),
    camera(ports.hevc, { video: 'h265', audio: 'pcmu', auth: false }),
    camera(ports.locked),
    camera(ports.lazy),
  ]);
  const pull = (name, url, extra = '') => `[streams.${name}]\nkey = "${KEY}"\n[streams.${name}.rtsp]\nurl = "${url}"\n${extra}`;
  origin = await startOrigin({
    args: ['--reconnect-grace-ms', '20000'],
    config: pull('door', `rtsp://${USER}:${PASSWORD}@127.0.0.1:${ports.door}/cam`, 'transport = "tcp"\n')
      + pull('hevc', `rtsp://127.0.0.1:${ports.hevc}/cam`)
      + pull('locked', `rtsp://${USER}:${WRONG}@127.0.0.1:${ports.locked}/cam`)
      + pull('lazy', `rtsp://${USER}:${PASSWORD}@127.0.0.1:${ports.lazy}/cam`,
        `on_demand = true\nidle_stop_ms = ${IDLE_STOP_MS}\n`)
      // Calling the camera, its first keyframe and the first part: more than the default 5 s on a busy CI host.
      + '[hls]\nstartup_wait_ms = 20000\n',
  });
});

after(async () => {
  await origin?.stop();
  await Promise.all([door, hevc, locked, lazy].filter(Boolean).map((c) => c.stop()));
  for (const secret of [PASSWORD, WRONG, USER, KEY]) {
    assert.ok(!origin.log.includes(secret), `${secret} reached the origin's log`);
  }
});

/** The playlist once it has `n` complete segments after its last discontinuity (or from the start). */
async function segments(media, { afterDiscontinuity = false, n = 2, timeout = 30000 } = {}) {
  return waitFor(`${n} segments${afterDiscontinuity ? ' after a discontinuity' : ''}`, async () => {
    const r = await text(media);
    if (r.status !== 200) return null;
    const at = afterDiscontinuity ? r.body.lastIndexOf('#EXT-X-DISCONTINUITY\n') : 0;
    if (at < 0) return null;
    return (r.body.slice(at).match(/^#EXTINF/gm) ?? []).length >= n ? r.body : null;
  }, { timeout, interval: 250 });
}

/** Init and the first complete segment at or after character `from` of the playlist. */
async function objects(media, body, from = 0) {
  const maps = [...body.slice(0, body.indexOf('#EXTINF', from)).matchAll(/#EXT-X-MAP:URI="([^"]+)"/g)];
  const segment = body.slice(from).match(/#EXTINF:[^\n]*\n([^#\n]+)/)[1];
  const bytes = async (u) => new Uint8Array(await (await fetch(new URL(u, media))).arrayBuffer());
  return { init: await bytes(maps.at(-1)[1]), segment: await bytes(segment) };
}

async function decodes(media, body, from = 0) {
  const { init, segment } = await objects(media, body, from);
  const decoded = await ffmpegDecode(init, segment);
  assert.equal(decoded.code, 0);
  assert.equal(decoded.output, '', 'ffmpeg -v error prints nothing');
  return ffprobeObject(init, segment);
}

test('an RTSP camera (H.264 + AAC, Basic auth) is pulled and packaged', async () => {
  const media = await mediaPlaylistUrl(origin.url, 'door');
  const mv = (await text(`${origin.url}/live/door/index.m3u8`)).body;
  assert.match(mv, /CODECS="avc1\.[0-9a-fA-F]{6},mp4a\.40\.2"/, mv);
  const probe = await decodes(media, await segments(media));
  assert.deepEqual([probe.width, probe.height], [320, 240]);
  assert.equal(probe.keyframes[0], 0, 'the segment starts with a keyframe');
  assert.match(origin.log, /RTSP pull playing stream=door camera=rtsp:\/\/\*\*\*@127\.0\.0\.1/);
  assert.match(origin.log, /protocol="rtsp"/);
});

test('the camera is killed and restarted: the stream resumes on its session after a discontinuity', async () => {
  const media = await mediaPlaylistUrl(origin.url, 'door');
  await segments(media);
  const session = new URL(media).pathname.split('/')[3];
  const before = origin.log.length;
  await kill(door);
  await waitFor('the pull to notice', () => /RTSP pull session ended stream=door/.test(origin.log.slice(before)),
    { timeout: 15000 });
  await new Promise((r) => setTimeout(r, 1500)); // a camera rebooting: refused at least once
  door = await camera(ports.door);
  const body = await segments(media, { afterDiscontinuity: true, n: 2, timeout: 40000 });
  assert.match(origin.log.slice(before), /publish resumed stream=door/);
  assert.match(origin.log.slice(before), /calling again stream=door/);
  assert.equal(new URL(await mediaPlaylistUrl(origin.url, 'door')).pathname.split('/')[3], session, 'the same session');
  assert.doesNotMatch(body, /#EXT-X-ENDLIST/);
  const probe = await decodes(media, body, body.lastIndexOf('#EXT-X-DISCONTINUITY\n'));
  assert.deepEqual([probe.width, probe.height], [320, 240]);
  assert.equal(probe.keyframes[0], 0, 'the first segment after the discontinuity starts with a keyframe');
});

test('H.265 is packaged; G.711 audio is left out with one warning', async () => {
  const media = await mediaPlaylistUrl(origin.url, 'hevc');
  const mv = (await text(`${origin.url}/live/hevc/index.m3u8`)).body;
  assert.match(mv, /CODECS="(hvc1|hev1)\.[^",]+"/, mv);
  assert.doesNotMatch(mv, /mp4a|TYPE=AUDIO/, mv);
  const probe = await decodes(media, await segments(media));
  assert.deepEqual([probe.width, probe.height], [320, 240]);
  assert.equal(probe.keyframes[0], 0);
  const warnings = origin.log.match(/G\.711 audio \(PCMU\) is not packaged.*stream=hevc/g) ?? [];
  assert.equal(warnings.length, 1, origin.log);
  // x265's keyframes after the first are CRA pictures: segments start on them.
  assert.doesNotMatch(origin.log, /no keyframe for a whole segment.*stream=hevc/);
});

test('a wrong password is refused by the camera and retried; nothing is served', async () => {
  await waitFor('two refused attempts', () => (origin.log.match(/calling again stream=locked/g) ?? []).length >= 2,
    { timeout: 15000 });
  const line = origin.log.split('\n').find((l) => /calling again stream=locked/.test(l));
  assert.match(line, /401|Unauthorized/i, line);
  assert.equal((await text(`${origin.url}/live/locked/index.m3u8`)).status, 404);
});

test('hls.js plays the pulled stream through the edge', async () => {
  const edge = await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a'), EDGE_CONFIG: '{}' });
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/door/*', id: 'rtsp', ttl: 3600 });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`${edge.url}/?stream=door&token=${encodeURIComponent(token)}`);
    await page.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 30000 });
    const { first, last } = await watchPlayback(page, 6);
    assert.equal(last.fatal, 0, 'no fatal hls.js error');
    assert.ok(last.currentTime - first.currentTime >= 5, `played ${last.currentTime - first.currentTime} s`);
    assert.ok(last.frames > first.frames, 'video frames decoded');
    if (last.audioBytes != null) assert.ok(last.audioBytes > first.audioBytes, 'AAC decoded');
  } finally {
    await browser.close();
    await edge.stop();
  }
});

test('on demand: no call before a viewer, held first request, hung up when idle, called again', async () => {
  const calls = () => (lazy.log.match(/^client connected$/gm) ?? []).length;
  const hangups = () => (lazy.log.match(/^client closed$/gm) ?? []).length;
  // The always-on cameras have long been playing: this one has not been called.
  await waitFor('the always-on pull to play', () => /RTSP pull playing stream=door/.test(origin.log), { timeout: 20000 });
  assert.match(origin.log, /RTSP pull ready: on demand stream=lazy/);
  assert.equal(calls(), 0, 'no call before a viewer asked');
  assert.doesNotMatch(origin.log, /RTSP pull playing stream=lazy/);

  // The first request starts the pull and is held until the stream has its playlist.
  const first = await text(`${origin.url}/live/lazy/index.m3u8`);
  assert.equal(first.status, 200, first.body);
  assert.match(first.body, /CODECS="avc1\.[0-9a-fA-F]{6},mp4a\.40\.2"/, first.body);
  assert.equal(calls(), 1, 'one call to the camera');
  const media = new URL(first.body.split('\n').find((l) => l && !l.startsWith('#')), `${origin.url}/live/lazy/index.m3u8`).href;
  const probe = await decodes(media, await segments(media));
  assert.deepEqual([probe.width, probe.height], [320, 240]);

  // The viewer leaves (its last playlist request is the one above): the pull
  // stops once nobody has watched for the idle time, and the camera sees the
  // connection close.
  const left = Date.now();
  await waitFor('the camera to be hung up', () => hangups() >= 1, { timeout: 40000, interval: 250 });
  assert.ok(Date.now() - left >= IDLE_STOP_MS, `hung up ${Date.now() - left} ms after the last request`);
  assert.match(origin.log, /RTSP pull stopping: no viewers \(on demand\) stream=lazy/);
  assert.match(origin.log, /RTSP pull session ended stream=lazy[^\n]*reason=no viewers \(on demand\)/);
  assert.doesNotMatch(origin.log, /calling again stream=lazy/, 'a stop, not a failure to retry');
  // Nobody asks: no new call.
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(calls(), 1, 'not called again while nobody watches');

  // The next viewer calls the camera again, and the stream plays again.
  const before = origin.log.length;
  const again = await text(`${origin.url}/live/lazy/index.m3u8`);
  assert.equal(again.status, 200, again.body);
  await waitFor('a second call', () => calls() === 2, { timeout: 15000 });
  const media2 = new URL(again.body.split('\n').find((l) => l && !l.startsWith('#')), `${origin.url}/live/lazy/index.m3u8`).href;
  // Back within the reconnect grace (20 s here): the same session continues after a discontinuity.
  const body = await segments(media2, { afterDiscontinuity: true, n: 2, timeout: 40000 });
  assert.match(origin.log.slice(before), /RTSP pull playing stream=lazy/);
  const probe2 = await decodes(media2, body, body.lastIndexOf('#EXT-X-DISCONTINUITY\n'));
  assert.equal(probe2.keyframes[0], 0);
});
