// The chat on the viewer page, end to end: ffmpeg publishes over SRT to
// brook-origin, the edge (wasm in workerd under `wrangler dev`, the real
// wrangler.toml with its ChatRoom Durable Object) serves the page, the video and
// the chat, and two Chromium pages (one desktop, one phone-sized) exchange a
// message and a reaction. Each is shown when that page's own playback reaches
// the program date time it was sent at; the text never becomes markup. After
// a stream ends, its VOD replays the chat in step.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_KEY, startOrigin, startPublisher, launchChromium, waitFor, text } from './lib.mjs';
import { signToken, KEYS, keyList, startWranglerEdge } from './edge-lib.mjs';

let origin, publisher, edge, browser;

before(async () => {
  const archive = mkdtempSync(join(tmpdir(), 'brook-chat-archive-'));
  origin = await startOrigin({
    config: `[publish]\nreconnect_grace_ms = 0\n[archive]\ndir = "${archive}"\n`
      + `[streams.cam1]\nkey = "${DEV_KEY}"\n[streams.vod1]\nkey = "${DEV_KEY}"\n`,
  });
  publisher = startPublisher(origin.srtPort);
  // The real wrangler.toml, with its Durable Object state in a fresh directory.
  edge = await startWranglerEdge({ ORIGIN_URL: origin.url, TOKEN_KEYS: keyList('k2026a') },
    { persistTo: mkdtempSync(join(tmpdir(), 'brook-chat-state-')) });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await Promise.all([publisher, edge, origin].map((p) => p?.stop()));
});

async function viewer(id, name, contextOptions, stream = 'cam1') {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  const lines = [];
  page.on('console', (m) => lines.push(`${id}: ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`${id}: pageerror ${e.message}`));
  const token = signToken({ key: KEYS.k2026a, kid: 'k2026a', id, ttl: 3600, acl: `/live/${stream}/*` });
  await page.goto(`${edge.url}/?stream=${stream}&token=${encodeURIComponent(token)}&name=${encodeURIComponent(name)}`);
  page.lines = lines;
  return page;
}

/** Waits until the page plays (a program date time on screen) and its chat is open under `name`. */
async function ready(page, name) {
  await page.waitForFunction((n) => window.brook?.chat?.state === 'open' && window.brook.chat.name === n
    && window.brook.latency !== null, name, { timeout: 45000 })
    .catch((e) => { throw new Error(`${e.message}\n${page.lines.join('\n')}`); });
}

test('two viewers exchange a message and a reaction, each in step with its own playback', async () => {
  const desktop = await viewer('alice', 'Alice', { viewport: { width: 1280, height: 720 } });
  const phone = await viewer('bob', 'Bob', {
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  await Promise.all([ready(desktop, 'Alice'), ready(phone, 'Bob')]);

  // Alice types a message that looks like markup.
  const text = 'hello <img src=x onerror="window.pwned=1"> & bye';
  await desktop.fill('#chat-input', text);
  await desktop.press('#chat-input', 'Enter');

  const got = await phone.waitForFunction((t) => window.brook.chat.shown.find((m) => m.text === t), text, { timeout: 20000 })
    .then((h) => h.jsonValue());
  assert.equal(got.name, 'Alice');
  assert.equal(typeof got.pdt, 'number', 'sent with the program date time Alice was watching');
  assert.ok(got.playing >= got.pdt, `shown when Bob's playback reached it (${got.playing} >= ${got.pdt})`);
  // The room's echo to Alice is its own frame: it may land after Bob showed his.
  const sent = await desktop.waitForFunction((t) => window.brook.chat.shown.find((m) => m.text === t), text, { timeout: 10000 })
    .then((h) => h.jsonValue(), () => null);
  assert.ok(sent, 'the sender sees its own message');
  assert.equal(sent.id, got.id);

  // Text, never markup.
  const dom = await phone.evaluate(() => ({
    texts: [...document.querySelectorAll('#chat-log .text')].map((e) => e.textContent),
    names: [...document.querySelectorAll('#chat-log .who')].map((e) => e.textContent),
    images: document.querySelectorAll('#chat-log img').length,
    pwned: window.pwned ?? null,
  }));
  assert.ok(dom.texts.includes(text));
  assert.ok(dom.names.includes('Alice'));
  assert.equal(dom.images, 0);
  assert.equal(dom.pwned, null);

  // Bob taps ❤️ on the phone; Alice's page floats it over her video.
  await phone.tap('#reaction-buttons .react >> nth=0');
  const floated = await desktop.waitForFunction(() => window.brook.chat.floated.find((f) => f.emoji === '❤️'), null, { timeout: 20000 })
    .then((h) => h.jsonValue());
  assert.ok(floated.n >= 1);
  assert.equal(typeof floated.pdt, 'number');
  assert.ok(floated.playing >= floated.pdt, 'shown when Alice\'s playback reached the moment');
  // Bob saw his own at once, and only once (the room's count includes it).
  const own = await phone.evaluate(() => window.brook.chat.floated.filter((f) => f.emoji === '❤️'));
  await new Promise((r) => setTimeout(r, 1500));
  const ownAfter = await phone.evaluate(() => window.brook.chat.floated.filter((f) => f.emoji === '❤️').reduce((n, f) => n + f.n, 0));
  assert.equal(own.length, 1);
  assert.equal(ownAfter, 1);

  // Phone-sized: video and chat both on screen, nothing wider than the screen.
  const layout = await phone.evaluate(() => {
    const box = (sel) => document.querySelector(sel).getBoundingClientRect().toJSON();
    return {
      video: box('video'), chat: box('#chat'), input: box('#chat-input'), buttons: box('#reaction-buttons'),
      scrollWidth: document.documentElement.scrollWidth, innerWidth, innerHeight,
    };
  });
  assert.ok(layout.scrollWidth <= layout.innerWidth, 'no horizontal scrolling');
  assert.ok(layout.video.height > 150 && layout.video.bottom <= layout.chat.top + 1, 'video above the chat');
  assert.ok(layout.input.bottom <= layout.innerHeight + 1, 'the input is on screen');
  assert.ok(layout.buttons.right <= layout.innerWidth && layout.buttons.top >= layout.video.top, 'reactions over the video');
  const wide = await desktop.evaluate(() => {
    const v = document.querySelector('video').getBoundingClientRect();
    const c = document.querySelector('#chat').getBoundingClientRect();
    return { videoRight: v.right, chatLeft: c.left, chatHeight: c.height, innerHeight };
  });
  assert.ok(wide.videoRight <= wide.chatLeft + 1, 'desktop: chat beside the video');
  assert.ok(wide.chatHeight >= wide.innerHeight - 1);

  // Without a token the chat says so and stops asking, as the video does.
  const anon = await browser.newPage();
  await anon.goto(`${edge.url}/?stream=cam1`);
  await anon.waitForFunction(() => window.brook?.chat?.state === 'denied', null, { timeout: 15000 });
  assert.equal(await anon.textContent('#chat-status'), 'the chat needs a viewer token');
  await anon.close();
});

test('after the stream, the VOD replays the chat in step with the video', async () => {
  const vodPublisher = startPublisher(origin.srtPort, { streamid: `publish:live/vod1:${DEV_KEY}`, seconds: 16 });
  try {
    const live = await viewer('carol', 'Carol', { viewport: { width: 1280, height: 720 } }, 'vod1');
    await ready(live, 'Carol');
    const say = async (t) => {
      await live.fill('#chat-input', t);
      await live.press('#chat-input', 'Enter');
      return live.waitForFunction((x) => window.brook.chat.shown.find((m) => m.text === x), t).then((h) => h.jsonValue());
    };
    const early = await say('early in the stream');
    // Five seconds of the stream later (by Carol's playback, not the wall clock).
    await live.waitForFunction((t) => window.brook.playingDate()?.getTime() >= t, early.pdt + 5000, { timeout: 30000 });
    const late = await say('five seconds later');
    assert.ok(late.pdt - early.pdt >= 5000, `sent at different moments: ${JSON.stringify([early, late])}`);
    await live.context().close();

    // The publisher stops; with no reconnect grace the stream ends and its
    // playlist becomes the archived VOD (EXT-X-ENDLIST).
    await vodPublisher.exited;
    const tok = encodeURIComponent(signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/vod1/*' }));
    await waitFor('the VOD', async () => {
      const mv = await text(`${edge.url}/live/vod1/index.m3u8?__token__=${tok}`);
      const uri = mv.body.split('\n').find((l) => l && !l.startsWith('#'));
      if (mv.status !== 200 || !uri) return false;
      return (await text(new URL(uri, `${edge.url}/live/vod1/`).href)).body.includes('#EXT-X-ENDLIST');
    }, { timeout: 30000, interval: 500 });

    const replay = await viewer('dave', 'Dave', { viewport: { width: 1280, height: 720 } }, 'vod1');
    await replay.waitForFunction(() => window.brook?.chat?.vod === true, null, { timeout: 30000 })
      .catch((e) => { throw new Error(`${e.message}\n${replay.lines.join('\n')}`); });
    const shown = async (t) => replay.waitForFunction((x) => window.brook.chat.shown.find((m) => m.text === x), t, { timeout: 30000 })
      .then((h) => h.jsonValue());
    const first = await shown('early in the stream');
    const held = await replay.evaluate(() => window.brook.chat.shown.map((m) => m.text));
    assert.deepEqual(held, ['early in the stream'], 'the later message waits for its moment');
    const second = await shown('five seconds later');
    for (const m of [first, second]) {
      assert.ok(m.playing >= m.pdt, `shown once playback reached it (${m.playing} >= ${m.pdt})`);
      assert.ok(m.playing - m.pdt < 2000, `and not long after (${m.playing - m.pdt} ms)`);
    }
    // Each is shown on the page's next check after playback reaches it, so the
    // spacing holds up to that jitter (the live side made them >= 5 s apart).
    const sentApart = second.pdt - first.pdt;
    const shownApart = second.playing - first.playing;
    assert.ok(Math.abs(shownApart - sentApart) < 500,
      `as far apart on the timeline as they were sent (${shownApart} vs ${sentApart} ms): ${JSON.stringify({ first, second })}`);
  } finally {
    await vodPublisher.stop();
  }
});
