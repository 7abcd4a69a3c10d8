// The source rung keeps serving while the transcoder is down
// (`source_rung` + `source_while_down`): ffmpeg publishes 640x360 H.264 + AAC
// over SRT, the origin serves it unchanged as the `source` rung beside 240p
// and 160p; the transcoder is killed, and with `max_restarts_per_minute = 0`
// its restart waits out the 30 s backoff. Meanwhile the source rung (and its
// audio) goes on, packaged directly, while the encoded rungs pause; then the
// transcoder comes back and every rung advances again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startOrigin, startPublisher, waitFor, text, ffmpegDecode, ffprobeObject,
} from './lib.mjs';

const ADMIN = '0123456789abcdef-admin';
const LADDER = 'source_rung = true\nmax_restarts_per_minute = 0\naudio_bitrate_kbps = 32\n'
  + [[240, 300], [160, 200]]
    .map(([h, k]) => `[[ladder.rungs]]\nheight = ${h}\nbitrate_kbps = ${k}\npreset = "ultrafast"\n`).join('');
let origin, publisher;

before(async () => {
  origin = await startOrigin({
    ladder: 'transcode',
    config: `[admin]\ntoken = "${ADMIN}"\n[ladder]\n${LADDER}[streams.cam1]\nkey = "dev-key"\n`,
  });
  publisher = startPublisher(origin.srtPort, { video: 'testsrc2=size=640x360:rate=30' });
});

after(async () => {
  await Promise.all([publisher, origin].map((p) => p?.stop()));
});

/** The media playlist URL of the variant with this resolution, and of the audio rendition. */
function urls(mv, base) {
  const lines = mv.split('\n');
  const variant = (res) => {
    const i = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF') && l.includes(`RESOLUTION=${res}`));
    return new URL(lines[i + 1], base).href;
  };
  const audio = new URL(mv.match(/#EXT-X-MEDIA:TYPE=AUDIO[^\n]*URI="([^"]+)"/)[1], base).href;
  return { source: variant('640x360'), low: variant('284x160'), audio };
}

const segments = (body) => (body.match(/^#EXTINF/gm) ?? []).length;
const lastMsn = (body) => {
  const seq = Number(body.match(/#EXT-X-MEDIA-SEQUENCE:(\d+)/)[1]);
  return seq + segments(body) - 1;
};

test('the source rung keeps serving while the transcoder waits out its restart backoff', async () => {
  const base = `${origin.url}/live/cam1/index.m3u8`;
  const mv = await waitFor('the ladder with its source rung', async () => {
    const r = await text(base);
    return r.status === 200 && /RESOLUTION=640x360/.test(r.body) && /RESOLUTION=284x160/.test(r.body) ? r.body : null;
  }, { timeout: 60000, interval: 500 });
  const { source, low, audio } = urls(mv, base);
  await waitFor('two segments on the low rung', async () => segments((await text(low)).body) >= 2, { timeout: 30000 });

  const pid = Number((await text(`${origin.url}/admin/streams`, { headers: { authorization: `Bearer ${ADMIN}` } }))
    .body.match(/"transcoder_pid":(\d+)/)?.[1]);
  assert.ok(pid > 0, 'the admin API names the transcoder process');
  const logStart = origin.log.length;
  process.kill(pid, 'SIGKILL');
  await waitFor('the fallback in the log', () => /serving the source rung directly/.test(origin.log.slice(logStart)),
    { timeout: 10000 });
  // What the rungs had once the transcoder's last output was written out.
  await new Promise((r) => setTimeout(r, 1000));
  const at = { source: lastMsn((await text(source)).body), low: lastMsn((await text(low)).body),
    audio: lastMsn((await text(audio)).body) };

  // The source rung and the audio advance without the transcoder; the low rung does not.
  await waitFor('three new source segments while the transcoder is down', async () => {
    const body = (await text(source)).body;
    return lastMsn(body) >= at.source + 3;
  }, { timeout: 20000, interval: 500 });
  const sourceBody = (await text(source)).body;
  const lowBody = (await text(low)).body;
  assert.equal(lastMsn(lowBody), at.low, `the low rung paused:\n${lowBody}`);
  assert.ok(lastMsn((await text(audio)).body) >= at.audio + 3, 'the audio goes on with the source');
  assert.match(sourceBody, /#EXT-X-DISCONTINUITY/, 'one discontinuity where the transcoder went away');
  assert.doesNotMatch(origin.log.slice(logStart), /transcoder restarted/, 'still in the backoff');

  // A segment made without the transcoder: decodes, starts on a keyframe, the source's size.
  const uri = sourceBody.trim().split('\n').filter((l) => l && !l.startsWith('#')).at(-1);
  const init = sourceBody.match(/#EXT-X-MAP:URI="([^"]+)"/g).at(-1).match(/"([^"]+)"/)[1];
  const bytes = async (u) => new Uint8Array(await (await fetch(new URL(u, source))).arrayBuffer());
  const [i, s] = [await bytes(init), await bytes(uri)];
  assert.equal((await ffmpegDecode(i, s)).output, '');
  const probe = await ffprobeObject(i, s);
  assert.deepEqual([probe.width, probe.height, probe.keyframes[0]], [640, 360, 0]);

  // After the backoff the transcoder is back and every rung advances again.
  await waitFor('the transcoder back after its backoff', () => /the transcoder is back/.test(origin.log.slice(logStart)),
    { timeout: 45000, interval: 500 });
  await waitFor('the low rung advancing again', async () => lastMsn((await text(low)).body) > at.low + 1,
    { timeout: 30000, interval: 500 });
});
