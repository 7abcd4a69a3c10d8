// Bad input at the origin's doors: a wrong stream key, an unknown stream, and garbage
// bytes on an SRT connection. Each is refused with a clear signal, and the origin
// keeps serving the next (good) publisher.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  startOrigin, startPublisher, start, mediaPlaylistUrl, text, waitFor, DEV_KEY,
} from './lib.mjs';

let origin;

before(async () => { origin = await startOrigin(); });
after(async () => { await origin?.stop(); });

test('a publish with a wrong stream key is rejected and logged', async () => {
  const bad = startPublisher(origin.srtPort, { streamid: 'publish:live/cam1:not-the-key', seconds: 5 });
  const { code } = await Promise.race([bad.exited, sleep(20000).then(() => ({ code: 'timeout' }))]);
  await bad.stop();
  assert.notEqual(code, 0, 'ffmpeg must fail to connect');
  assert.notEqual(code, 'timeout', 'ffmpeg must fail promptly');
  assert.match(origin.log, /SRT connection rejected.*wrong stream key/, origin.log);
  assert.doesNotMatch(origin.log, /not-the-key/, 'the key itself is never logged');
  assert.equal((await text(`${origin.url}/live/cam1/index.m3u8`)).status, 404, 'nothing was published');
});

test('a request for an unknown stream is a 404', async () => {
  assert.equal((await text(`${origin.url}/live/nosuchstream/index.m3u8`)).status, 404);
  assert.equal((await text(`${origin.url}/live/nosuchstream/abc/video.m3u8`)).status, 404);
  assert.equal((await text(`${origin.url}/nothing-here`)).status, 404);
});

test('garbage on an SRT connection ends that session; the next publisher works', async () => {
  // srt-live-transmit sends random bytes in 1316-byte SRT messages as a publisher.
  // It discards input read before its connection is up, hence the pause; its
  // `latency` is in milliseconds (ffmpeg's is in microseconds).
  const url = `srt://127.0.0.1:${origin.srtPort}?mode=caller&latency=120&streamid=publish:live/cam1:${DEV_KEY}`;
  const garbage = start('garbage', 'bash', ['-c',
    `(sleep 1; head -c 3000000 /dev/urandom) | srt-live-transmit -q -chunk:1316 file://con "${url}"`]);
  await waitFor('the garbage session to be ended by the origin', () =>
    /publish ended: .*(MPEG-TS|sync)/i.test(origin.log), { timeout: 20000 })
    .catch((e) => { throw new Error(`${e.message}\n${origin.log}\n${garbage.log}`); });
  await garbage.stop();
  assert.ok((await fetch(`${origin.url}/healthz`)).ok, 'origin still up');

  const good = startPublisher(origin.srtPort, { seconds: 8 });
  const mediaUrl = await mediaPlaylistUrl(origin.url);
  const media = await waitFor('parts from the good publisher', async () => {
    const r = await text(mediaUrl);
    return r.status === 200 && r.body.includes('#EXT-X-PART:') ? r.body : null;
  });
  assert.match(media, /#EXT-X-MAP:URI="video-init.mp4"/);
  await good.stop();
});
