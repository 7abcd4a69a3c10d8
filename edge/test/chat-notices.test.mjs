// Stream start/end notices (docs/chat.md, edge/src/chat/notices.rs) on the
// real wasm build (edge/build/, `cargo xtask wasm`) in workerd through
// Miniflare: the Worker proxies playlists from a fake origin owned by this
// file, and the stream's chat room announces a session's start and end on
// its own. Clients are real WebSocket clients (npm `ws`).
//
//   node --test edge/test/chat-notices.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';
import WebSocket from 'ws';

const EDGE = 'http://edge.test';

// brook-origin's session ids: start time in seconds, then 32 random bits.
const hexSecs = (s) => Math.floor(s).toString(16).padStart(8, '0');
const S1 = `${hexSecs(Date.now() / 1000 - 600)}0badf00d`;
const S2 = `${hexSecs(Date.now() / 1000)}c0ffee00`;

const PDT = new Date().toISOString();
const live = () => [
  '#EXTM3U', '#EXT-X-VERSION:9', '#EXT-X-TARGETDURATION:2', '#EXT-X-PART-INF:PART-TARGET=0.5',
  '#EXT-X-MEDIA-SEQUENCE:7', `#EXT-X-PROGRAM-DATE-TIME:${PDT}`,
  '#EXTINF:2.0,', 'video-seg7.m4s',
  '#EXT-X-PART:DURATION=0.5,INDEPENDENT=YES,URI="video-part8.0.m4s"',
  '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video-part8.1.m4s"', '',
].join('\n');
const ended = () => [
  '#EXTM3U', '#EXT-X-VERSION:9', '#EXT-X-TARGETDURATION:2', '#EXT-X-PLAYLIST-TYPE:VOD',
  '#EXT-X-MEDIA-SEQUENCE:0', '#EXTINF:2.0,', 'video-seg0.m4s', '#EXTINF:1.4,', 'video-seg1.m4s',
  '#EXT-X-ENDLIST', '',
].join('\n');

/** The fake origin: one stream, `cam1`; `current` is the live session, `done` the ended ones. */
const origin = { current: null, done: new Set(), seen: 0 };
function handle(req, res) {
  origin.seen++;
  const path = new URL(req.url, 'http://x').pathname;
  const send = (body) => res.writeHead(200, {
    'content-type': 'application/vnd.apple.mpegurl', 'cache-control': 'no-cache',
  }).end(body);
  if (path === '/live/cam1/index.m3u8' && origin.current) {
    return send(`#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS="avc1.64001f"\n${origin.current}/video.m3u8\n`);
  }
  const m = path.match(/^\/live\/cam1\/([0-9a-f]{16})\/video\.m3u8$/);
  if (m && origin.done.has(m[1])) return send(ended());
  if (m && m[1] === origin.current) return send(live());
  res.writeHead(404, { 'content-type': 'text/plain' }).end('no such stream\n');
}

let server, mf, base;
before(async () => {
  server = http.createServer(handle).listen(0, '127.0.0.1');
  await once(server, 'listening');
  mf = new Miniflare(workerOptions({
    // Tokens are chat.test.mjs's business; here no token is needed.
    bindings: {
      ORIGIN_URL: `http://127.0.0.1:${server.address().port}`,
      EDGE_CONFIG: JSON.stringify({ auth: { required: false } }),
    },
    chat: true,
  }));
  base = (await mf.ready).origin;
});

after(async () => {
  await mf?.dispose();
  server?.closeAllConnections();
  server?.close();
});

/** A room socket that keeps every frame. */
function connect(stream) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/chat/${stream}`);
  const client = { ws, msgs: [] };
  ws.on('message', (data) => client.msgs.push(JSON.parse(data.toString())));
  return new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    const wait = setInterval(() => {
      if (client.msgs.some((m) => m.type === 'history')) {
        clearInterval(wait);
        resolve(client);
      }
    }, 10);
  });
}

/** `[event, session]` of the stream notices among system frames or history records. */
const notices = (list) => list
  .filter((m) => (m.type === 'system' || m.type === undefined) && m.event?.startsWith('stream_'))
  .map((m) => [m.event, m.session]);
const received = (client) => notices(client.msgs.filter((m) => m.type === 'system'));

async function until(pred, what, timeout = 5000) {
  const end = Date.now() + timeout;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Viewers asking for a playlist through the Worker, several at once. */
async function play(path, times = 4) {
  const results = await Promise.all(Array.from({ length: times }, async () => {
    const res = await mf.dispatchFetch(EDGE + path);
    return { status: res.status, body: await res.text() };
  }));
  for (const r of results) assert.equal(r.status, 200, path);
  return results[0].body;
}

test('a session\'s start and end reach the room once each, then the next session\'s start', async () => {
  const early = await connect('cam1');

  // Session 1 live: the multivariant and media playlists, many times.
  origin.current = S1;
  await play('/live/cam1/index.m3u8');
  const body = await play(`/live/cam1/${S1}/video.m3u8`, 6);
  assert.equal(body, live(), 'the viewer gets the origin\'s playlist as it was');
  await until(() => received(early).length === 1, 'stream_started');
  assert.deepEqual(received(early), [['stream_started', S1]]);
  await play(`/live/cam1/${S1}/video.m3u8`, 6);

  // A viewer who joins now finds the start in the history sent on join.
  const late = await connect('cam1');
  assert.deepEqual(notices(late.msgs.find((m) => m.type === 'history').events ?? []), [['stream_started', S1]]);

  // Session 1 ends: its playlist gets EXT-X-ENDLIST.
  origin.done.add(S1);
  origin.current = null;
  await play(`/live/cam1/${S1}/video.m3u8`, 6);
  await until(() => received(early).length === 2, 'stream_ended');

  // Other isolates (other colos, other viewers) report the same events to
  // the room: nothing new. An end never comes before its start, and a start
  // never follows its end.
  const rooms = await mf.getDurableObjectNamespace('CHAT');
  const room = rooms.get(rooms.idFromName('cam1'));
  for (const q of [`session=${S1}&state=started`, `session=${S1}&state=ended`, `session=${S2}&state=ended`]) {
    for (let i = 0; i < 5; i++) {
      const res = await room.fetch(`https://room/announce?${q}`, { method: 'POST' });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { v: 1, announced: false }, q);
    }
  }
  const bad = await room.fetch('https://room/announce?session=a/b&state=started', { method: 'POST' });
  assert.equal(bad.status, 400);
  await bad.arrayBuffer();

  // Session 2 goes live; meanwhile someone replays session 1's VOD.
  origin.current = S2;
  await play('/live/cam1/index.m3u8');
  await play(`/live/cam1/${S2}/video.m3u8`, 6);
  assert.equal(await play(`/live/cam1/${S1}/video.m3u8`, 3), ended());
  await until(() => received(early).length === 3, 'the second stream_started');
  await play(`/live/cam1/${S2}/video.m3u8`, 6);

  // Late reports must not slip through after a pause either.
  await new Promise((r) => setTimeout(r, 500));
  const want = [['stream_started', S1], ['stream_ended', S1], ['stream_started', S2]];
  assert.deepEqual(received(early), want);
  assert.deepEqual(received(late), want.slice(1));

  const history = await (await fetch(`${base}/chat/cam1/history`)).json();
  assert.deepEqual(notices(history.events), want);
  assert.ok(history.events.every((e) => typeof e.id === 'number' && typeof e.ts === 'number'));

  // Other streams' rooms heard nothing.
  const other = await connect('cam2');
  assert.deepEqual(notices(other.msgs.find((m) => m.type === 'history').events ?? []), []);

  for (const c of [early, late, other]) c.ws.close();
});
