// SRT encryption per stream, with ffmpeg as the publisher: the right
// passphrase publishes; a wrong one, a missing one where encryption is
// required, and an encrypting publisher on a stream without a passphrase are
// refused with a logged reason; `optional` lets a publisher in the clear in.
// The passphrases never appear in the origin's log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEV_KEY, startOrigin, startPublisher, mediaPlaylistUrl, waitFor, text,
} from './lib.mjs';

const SECRET = 'correct-horse-battery';
const WRONG = 'incorrect-horse-battery';
let origin;

before(async () => {
  origin = await startOrigin({
    config: [
      `[streams.locked]\nkey = "${DEV_KEY}"\nsrt_passphrase = "${SECRET}"\n`,
      `[streams.either]\nkey = "${DEV_KEY}"\nsrt_passphrase = "${SECRET}"\nsrt_encryption = "optional"\n`,
      `[streams.clear]\nkey = "${DEV_KEY}"\n`,
    ].join(''),
  });
});

after(async () => {
  await origin?.stop();
  // Whatever happened above, no passphrase reached the log.
  for (const secret of [SECRET, WRONG]) {
    assert.ok(!origin.log.includes(secret), `the origin logged a passphrase:\n${origin.log}`);
  }
});

/** Publishes to `stream` with these SRT parameters until `check` is done. */
async function publishing(stream, srtParams, check) {
  const publisher = startPublisher(origin.srtPort, {
    streamid: `publish:live/${stream}:${DEV_KEY}`, video: 'testsrc2=size=320x240:rate=30', srtParams,
  });
  try {
    return await check(publisher);
  } finally {
    await publisher.stop();
  }
}

/** The publisher is refused: the origin logs `reason`, the publisher gives up, nothing is served. */
async function refused(stream, srtParams, reason) {
  const before = origin.log.length;
  await publishing(stream, srtParams, async (publisher) => {
    await waitFor(`the origin to log "${reason}"`, () => origin.log.slice(before).includes(reason),
      { timeout: 20000 }).catch((e) => { throw new Error(`${e.message}\n${origin.log.slice(before)}`); });
    const exited = await Promise.race([publisher.exited, new Promise((r) => setTimeout(r, 15000, null))]);
    assert.ok(exited && exited.code !== 0, `ffmpeg kept publishing:\n${publisher.log}`);
  });
  const r = await text(`${origin.url}/live/${stream}/index.m3u8`);
  assert.equal(r.status, 404, `${stream} is served after a refused publisher`);
}

test('a wrong passphrase is refused with the reason logged', async () => {
  await refused('locked', { passphrase: WRONG }, 'wrong SRT passphrase');
});

test('no passphrase where encryption is required is refused', async () => {
  await refused('locked', {}, 'the stream requires an SRT passphrase');
});

test('an encrypting publisher on a stream without a passphrase is refused', async () => {
  await refused('clear', { passphrase: SECRET }, 'the publisher encrypts but the stream has no SRT passphrase');
});

test('the right passphrase publishes, with either key length', async () => {
  let stalled = null;
  for (const pbkeylen of [16, 32]) {
    await publishing('locked', { passphrase: SECRET, pbkeylen }, async () => {
      const media = await mediaPlaylistUrl(origin.url, 'locked');
      // New parts arrive (the second publisher continues the stream the first left).
      await waitFor(`parts from the publisher with pbkeylen ${pbkeylen}`, async () => {
        const r = await text(media);
        return r.status === 200 && /#EXT-X-PART:/.test(r.body) && r.body !== stalled;
      }, { timeout: 30000, interval: 250 });
    });
    await new Promise((r) => setTimeout(r, 1000));
    stalled = (await text(await mediaPlaylistUrl(origin.url, 'locked'))).body;
  }
});

test('optional encryption lets a publisher in the clear in, but not a wrong passphrase', async () => {
  await refused('either', { passphrase: WRONG }, 'wrong SRT passphrase');
  const before = origin.log.length;
  // A libsrt caller refuses a listener that has a passphrase unless it does
  // not enforce encryption itself (ffmpeg's default is to enforce).
  await publishing('either', { enforced_encryption: 0 }, async () => {
    const r = await text(await mediaPlaylistUrl(origin.url, 'either'));
    assert.equal(r.status, 200);
  });
  assert.match(origin.log.slice(before), /SRT publisher sends in the clear/);
});
