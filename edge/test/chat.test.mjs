// Chat rooms (docs/chat.md) on the real wasm build (edge/build/, `cargo xtask
// wasm`) in workerd through Miniflare: the Worker checks the viewer token and
// hands the socket to the stream's Durable Object (SQLite storage, hibernating
// WebSockets). Clients are real WebSocket clients (npm `ws`) on Miniflare's port.
//
//   node --test edge/test/chat.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { Miniflare } from 'miniflare';
import { workerOptions } from './worker.mjs';
import WebSocket from 'ws';

const KEY = '5a1e0c47a3b2d5e6f708192a3b4c5d6e';

/** An EdgeAuth-layout token (node's crypto, independent of the Rust signer). */
function token({ acl = '/live/*', id, data, ttl = 600 } = {}) {
  const fields = [`exp=${Math.floor(Date.now() / 1000) + ttl}`, `acl=${acl}`];
  if (id) fields.push(`id=${id}`);
  if (data) fields.push(`data=${data}`);
  fields.push('kid=k1');
  const signed = fields.join('~');
  return `${signed}~hmac=${createHmac('sha256', Buffer.from(KEY, 'hex')).update(signed).digest('hex')}`;
}
// Moderators hold an explicit claim per stream (docs/chat.md), never a wide ACL.
const MOD_TOKEN = token({ acl: '/live/*', id: 'moderator', data: 'name:Mod,mod:mod,mod:sleepy' });

let mf, base;

before(async () => {
  mf = new Miniflare(workerOptions({
    bindings: {
      ORIGIN_URL: 'http://127.0.0.1:9',
      EDGE_CONFIG: JSON.stringify({ geo: { streams: { blocked: { deny: ['NL'] } } } }),
      TOKEN_KEYS: `k1:${KEY}`,
      CHAT_CONFIG: JSON.stringify({ history_on_join: 5, max_strikes: 30 }),
    },
    chat: true,
  }));
  base = (await mf.ready).origin;
});

after(async () => {
  await mf?.dispose();
});

/** A WebSocket client that keeps every frame it receives. */
class Client {
  constructor(ws) {
    this.ws = ws;
    this.msgs = [];
    this.closed = null;
    this.waiters = [];
    ws.on('message', (data) => {
      this.msgs.push(JSON.parse(data.toString()));
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    // When the room closes a socket outside that socket's own event (a ban
    // from the moderation API), local workerd sends the close frame at once
    // but keeps the TCP connection until the object is evicted; `ws` reports
    // `close` only when TCP closes. Browsers stop waiting after the closing
    // handshake (Chromium: 2 s); this client stops at once, keeping the code.
    const poll = setInterval(() => {
      if (ws.readyState === WebSocket.CLOSING) ws.terminate();
      if (ws.readyState === WebSocket.CLOSED) clearInterval(poll);
    }, 20);
    poll.unref();
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves with pred(this) once it is truthy. */
  async until(pred, what, timeout = 5000) {
    const end = Date.now() + timeout;
    for (;;) {
      const r = pred(this);
      if (r) return r;
      if (Date.now() > end) {
        throw new Error(`timed out waiting for ${what}; last frames: ${JSON.stringify(this.msgs.slice(-4))}, closed: ${JSON.stringify(this.closed)}`);
      }
      await new Promise((res) => { this.waiters.push(res); setTimeout(res, 50); });
    }
  }

  of(type) {
    return this.msgs.filter((m) => m.type === type);
  }

  texts() {
    return this.of('chat').map((m) => m.text);
  }

  errors() {
    return this.of('error').map((m) => m.code);
  }

  send(msg) {
    this.ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg));
  }

  close() {
    this.ws.close();
  }
}

/** Opens /chat/<stream>; resolves after `history` (or a close), rejects with the HTTP status if refused. */
function connect(stream, tok, { ip, query = '' } = {}) {
  const q = tok ? `?__token__=${encodeURIComponent(tok)}${query}` : '';
  const ws = new WebSocket(`${base.replace('http', 'ws')}/chat/${stream}${q}`, {
    headers: ip ? { 'cf-connecting-ip': ip } : {},
  });
  const client = new Client(ws);
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.on('error', reject);
    client.until((c) => c.of('history').length || c.closed, 'history').then(() => resolve(client), reject);
  });
}

const status = (p) => p.then(() => 101, (e) => e.status);

async function moderate(stream, body, tok = MOD_TOKEN) {
  const res = await fetch(`${base}/chat/${stream}/moderate`, {
    method: body ? 'POST' : 'GET',
    headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test('joining needs the viewer token the video needs', async () => {
  assert.equal(await status(connect('gate', null)), 401);
  assert.equal(await status(connect('gate', 'exp=1~acl=/live/*~hmac=00')), 403);
  assert.equal(await status(connect('gate', token({ acl: '/live/other/*' }))), 403, 'another stream');
  assert.equal(await status(connect('gate', token({ ttl: -10 }))), 403, 'expired');
  assert.equal(await status(connect('blocked', token())), 451, 'the stream geo rule');
  assert.equal(await status(connect('gate', token({ acl: '/live/gate/*' }))), 101);
  // The token may come as a cookie, too (EdgeAuth's cookie name).
  const viaCookie = new Client(new WebSocket(`${base.replace('http', 'ws')}/chat/gate`, {
    headers: { cookie: `__token__=${encodeURIComponent(token())}` },
  }));
  await viaCookie.until((c) => c.of('welcome').length, 'welcome by cookie');
  viaCookie.close();

  const plain = await fetch(`${base}/chat/gate?__token__=${encodeURIComponent(token())}`);
  assert.equal(plain.status, 426, 'no upgrade');
  const post = await fetch(`${base}/chat/gate`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal((await fetch(`${base}/chat/bad.name`)).status, 404);
});

test('two sockets see each other in order; names and text stay plain text', async () => {
  const alice = await connect('pair', token({ id: 'alice', data: 'name:Alice' }), { ip: '198.51.100.1' });
  const bob = await connect('pair', token({ id: 'bob' }), { ip: '198.51.100.2' });
  const welcome = alice.of('welcome')[0];
  assert.equal(welcome.v, 1);
  assert.equal(welcome.name, 'Alice', 'name from the token');
  assert.equal(welcome.mod, false);
  assert.match(welcome.user, /^u[0-9a-f]{16}$/);
  assert.match(bob.of('welcome')[0].name, /^viewer-/);

  bob.send({ v: 1, type: 'join', name: '<img src=x onerror=alert(1)>' });
  await bob.until((c) => c.of('joined').length, 'joined');
  alice.send({ type: 'join', name: 'Someone Else' });
  await alice.until((c) => c.of('joined').length, 'joined');
  assert.equal(alice.of('joined')[0].name, 'Alice', 'a token name is fixed');

  const pdt = Date.now() - 2500;
  // A conversation: each line sent once the previous one has arrived.
  alice.send({ v: 1, type: 'chat', text: 'hi bob', pdt, nonce: 'a1' });
  await bob.until((c) => c.of('chat').length === 1, 'the first line');
  bob.send({ v: 1, type: 'chat', text: '<b>hi</b> & "alice"', pdt: pdt + 100 });
  await alice.until((c) => c.of('chat').length === 2, 'the reply');
  alice.send({ v: 1, type: 'chat', text: 'third' });
  for (const c of [alice, bob]) {
    await c.until((x) => x.of('chat').length === 3, '3 messages');
    assert.deepEqual(c.texts(), ['hi bob', '<b>hi</b> & "alice"', 'third']);
  }
  const [m1, m2, m3] = bob.of('chat');
  assert.ok(m1.id < m2.id && m2.id < m3.id);
  assert.equal(m1.pdt, pdt, 'the sender\'s program date time travels with the message');
  assert.equal(m1.nonce, 'a1');
  assert.equal(m2.name, '<img src=x onerror=alert(1)>', 'names are data, never markup');
  assert.equal(m3.pdt, null);
  assert.ok(m1.ts >= pdt);
  alice.close();
  bob.close();
});

test('fifty sockets in one room see every message in one order', async () => {
  const clients = await Promise.all(Array.from({ length: 50 }, (_, i) => connect('fifty', token({ id: `v${i}` }), { ip: `10.1.0.${i}` })));
  for (const [i, c] of clients.entries()) c.send({ type: 'chat', text: `first ${i}` });
  for (const [i, c] of clients.entries()) c.send({ type: 'chat', text: `second ${i}` });
  for (const c of clients) await c.until((x) => x.of('chat').length === 100, '100 messages', 15000);
  const order = clients[0].of('chat').map((m) => m.id);
  for (const c of clients) {
    assert.deepEqual(c.of('chat').map((m) => m.id), order);
    assert.deepEqual(c.errors(), []);
  }
  assert.ok(order.every((id, i) => i === 0 || id > order[i - 1]), 'ids increase');
  // Each sender's own messages keep their order.
  const texts = clients[7].texts();
  for (let i = 0; i < 50; i++) assert.ok(texts.indexOf(`first ${i}`) < texts.indexOf(`second ${i}`));
  for (const c of clients) c.close();
});

test('history is replayed on join (the last N) and served by timeline range', async () => {
  const a = await connect('hist', token({ id: 'h' }), { ip: '10.4.0.1' });
  const b = await connect('hist', token({ id: 'h2' }), { ip: '10.4.0.2' });
  const t0 = Math.floor((Date.now() - 60_000) / 1000) * 1000;
  // Five each at most (the connection's burst), one after the other.
  for (let i = 0; i < 5; i++) a.send({ type: 'chat', text: `m${i}`, pdt: t0 + i * 1000 });
  await a.until((c) => c.of('chat').length === 5, 'sent');
  for (let i = 5; i < 8; i++) b.send({ type: 'chat', text: `m${i}`, pdt: t0 + i * 1000 });
  await a.until((c) => c.of('chat').length === 8, 'sent');
  a.send({ type: 'react', emoji: '🔥', pdt: t0 + 2500 });
  a.send({ type: 'react', emoji: '🔥', pdt: t0 + 2600 });
  await a.until((c) => c.of('reactions').length, 'reactions');

  const late = await connect('hist', token({ id: 'late' }));
  const replay = late.of('history')[0].messages.map((m) => m.text);
  assert.deepEqual(replay, ['m3', 'm4', 'm5', 'm6', 'm7'], 'history_on_join = 5, oldest first');

  const tok = encodeURIComponent(token());
  const range = await fetch(`${base}/chat/hist/history?from=${t0 + 1000}&to=${t0 + 4000}&__token__=${tok}`);
  assert.equal(range.status, 200);
  assert.equal(range.headers.get('access-control-allow-origin'), '*');
  const body = await range.json();
  assert.equal(body.type, 'history');
  assert.deepEqual(body.messages.map((m) => m.text), ['m1', 'm2', 'm3']);
  assert.equal(body.more, false);
  assert.deepEqual(body.reactions, [{ emoji: '🔥', pdt: t0 + 2000, n: 2 }], 'aggregated reactions, by PDT slot');
  const paged = await (await fetch(`${base}/chat/hist/history?from=${t0}&limit=2&__token__=${tok}`)).json();
  assert.deepEqual(paged.messages.map((m) => m.text), ['m0', 'm1']);
  assert.equal(paged.more, true);
  assert.equal((await fetch(`${base}/chat/hist/history?from=${t0}`)).status, 401);
  assert.equal((await fetch(`${base}/chat/hist/history?from=soon&__token__=${tok}`)).status, 400);
  for (const c of [a, b, late]) c.close();
});

test('floods are dropped with a notice to the sender, per connection and per address', async () => {
  const flooder = await connect('flood', token({ id: 'f' }), { ip: '192.0.2.10' });
  const watcher = await connect('flood', token({ id: 'w' }), { ip: '192.0.2.11' });
  for (let i = 0; i < 30; i++) flooder.send({ type: 'chat', text: `spam ${i}` });
  flooder.send({ type: 'ping', nonce: 'after' });
  await flooder.until((c) => c.of('pong').length, 'pong');
  await watcher.until((c) => c.of('chat').length >= 5, 'the burst');
  await new Promise((r) => setTimeout(r, 300));
  // Burst 5 per connection (one more if the room took over a second to read
  // the flood); the rest never fanned out.
  const through = watcher.of('chat').length;
  assert.ok(through === 5 || through === 6, `${through} went through`);
  const notices = flooder.of('error');
  assert.ok(notices.length >= 1 && notices.length <= 2, 'a notice a second, not one per dropped frame');
  assert.equal(notices[0].code, 'rate_limited');
  assert.ok(notices[0].retry_ms > 0);
  assert.equal(flooder.closed, null);

  // Twenty-five sockets behind one address: the address's burst (20) passes.
  const nat = await Promise.all(Array.from({ length: 25 }, (_, i) => connect('flood', token({ id: `nat${i}` }), { ip: '192.0.2.99' })));
  for (const c of nat) c.send({ type: 'chat', text: 'from the NAT' });
  await watcher.until((c) => c.texts().filter((t) => t === 'from the NAT').length >= 20, 'the address burst');
  await Promise.all(nat.map((c) => c.until((x) => x.of('chat').length >= 20 || x.errors().length, 'an answer')));
  await new Promise((r) => setTimeout(r, 300));
  // 20 at once, plus what refilled (5/s) while the room took them in.
  const passed = watcher.texts().filter((t) => t === 'from the NAT').length;
  assert.ok(passed >= 20 && passed <= 22, `${passed} passed`);
  assert.equal(nat.filter((c) => c.errors().includes('rate_limited')).length, 25 - passed);
  for (const c of [flooder, watcher, ...nat]) c.close();
});

test('reactions are counted per window before fan-out', async () => {
  const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => connect('react', token({ id: `r${i}` }), { ip: `10.2.0.${i}` })));
  const pdt = Date.now() - 3000;
  for (let round = 0; round < 5; round++) {
    for (const c of clients) c.send({ type: 'react', emoji: '❤️', pdt });
  }
  clients[0].send({ type: 'react', emoji: '💩' });
  await clients[0].until((c) => c.errors().includes('bad_emoji'), 'bad_emoji');
  const total = (c) => c.of('reactions').flatMap((m) => m.counts).reduce((n, x) => n + x.n, 0);
  for (const c of clients) await c.until((x) => total(x) === 100, '100 hearts');
  const msgs = clients[5].of('reactions');
  // One message per 500 ms window (two or three, as the presses straddle windows).
  assert.ok(msgs.length <= 4, `100 reactions in ${msgs.length} messages`);
  for (const m of msgs) for (const c of m.counts) {
    assert.equal(c.emoji, '❤️');
    assert.equal(c.pdt, pdt - (pdt % 1000), 'PDT slot of the moment');
  }
  for (const c of clients) c.close();
});

test('moderator rights come from an explicit claim, never from a wide ACL', async () => {
  // Site-wide ACLs, common in EdgeAuth deployments, used to make moderators.
  for (const acl of ['*', '/*', '/live/*!/chat/*']) {
    const wide = token({ acl, id: 'wide' });
    const c = await connect('claims', wide);
    assert.equal(c.of('welcome')[0].mod, false, acl);
    c.close();
    assert.equal((await moderate('claims', null, wide)).status, 403, acl);
    assert.equal((await moderate('claims', { type: 'notice', text: 'x' }, wide)).status, 403, acl);
  }
  // `/chat/*` opens no stream's chat at all any more.
  const chatOnly = token({ acl: '/chat/*', id: 'wide' });
  assert.equal(await status(connect('claims', chatOnly)), 403);
  assert.equal((await moderate('claims', null, chatOnly)).status, 403);
  // Another stream's claim is not this one's.
  const elsewhere = token({ acl: '/live/*', data: 'mod:other' });
  assert.equal((await moderate('claims', null, elsewhere)).status, 403);
  // The claim: a moderator, over the socket and the API.
  const claimed = token({ acl: '/live/claims/*', id: 'claimed', data: 'mod:claims' });
  const m = await connect('claims', claimed);
  assert.equal(m.of('welcome')[0].mod, true);
  m.close();
  assert.equal((await moderate('claims', null, claimed)).status, 200);
  const anyStream = token({ acl: '/live/*', data: 'mod:*' });
  assert.equal((await moderate('claims', null, anyStream)).status, 200);
});

test('a moderation body is refused once it passes 16 KiB, before it ends', async () => {
  // A body that is still being sent: the edge must answer 413 as soon as it
  // has read more than the limit, not wait for (and hold) all of it.
  const url = new URL(`${base}/chat/mod/moderate`);
  const chunk = Buffer.alloc(4096, 0x20);
  let ended = false;
  const answer = await new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${MOD_TOKEN}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, endedFirst: ended }));
    });
    req.on('error', (e) => (ended ? resolve({ status: 0, endedFirst: true }) : reject(e)));
    req.write('{"type":"notice","text":"');
    for (let i = 0; i < 5; i += 1) req.write(chunk); // 20 KiB and counting
    // Safety valve so a broken edge fails the assertion below instead of hanging.
    setTimeout(() => { ended = true; req.end('"}'); }, 15_000).unref();
  });
  assert.equal(answer.status, 413);
  assert.equal(answer.endedFirst, false, 'answered while the body was still open');
  // A declared length over the limit is refused without reading.
  const declared = await fetch(`${base}/chat/mod/moderate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MOD_TOKEN}`, 'content-type': 'application/json' },
    body: 'x'.repeat(17 * 1024),
  });
  assert.equal(declared.status, 413);
  await declared.arrayBuffer();
});

test('moderation: delete everywhere, ban, unban', async () => {
  const mod = await connect('mod', MOD_TOKEN);
  const troll = await connect('mod', token({ id: 'troll' }), { ip: '203.0.113.66' });
  const viewer = await connect('mod', token({ id: 'viewer' }), { ip: '203.0.113.67' });
  assert.equal(mod.of('welcome')[0].mod, true);
  troll.send({ type: 'chat', text: 'spam 1' });
  troll.send({ type: 'chat', text: 'spam 2' });
  viewer.send({ type: 'chat', text: 'nice stream' });
  await viewer.until((c) => c.of('chat').length === 3, '3 messages');
  const spam1 = viewer.of('chat').find((m) => m.text === 'spam 1');

  viewer.send({ type: 'delete', id: spam1.id });
  await viewer.until((c) => c.errors().includes('not_allowed'), 'not_allowed');
  mod.send({ type: 'delete', id: spam1.id });
  for (const c of [mod, troll, viewer]) {
    await c.until((x) => x.of('delete').length, 'delete');
    assert.deepEqual(c.of('delete')[0].ids, [spam1.id]);
  }

  // The HTTP API: a viewer token is refused, a moderator's bans (and purges).
  const tokenStats = await moderate('mod', null, token());
  assert.equal(tokenStats.status, 403);
  const stats = await moderate('mod');
  assert.equal(stats.status, 200);
  assert.equal(stats.body.viewers, 3);
  const troller = troll.of('welcome')[0].user;
  const ban = await moderate('mod', { type: 'ban', user: troller, purge: true, reason: 'spam' });
  assert.deepEqual(ban, { status: 200, body: { v: 1, ok: true } });
  await troll.until((c) => c.closed, 'troll closed');
  assert.equal(troll.closed.code, 4003);
  await viewer.until((c) => c.of('delete').length === 2, 'purge');
  const purged = viewer.of('delete')[1].ids;
  assert.equal(purged.length, 1, 'the remaining spam');
  await viewer.until((c) => c.of('system').some((m) => m.event === 'banned' && m.user === troller), 'banned event');
  assert.equal(viewer.closed, null);

  const again = await connect('mod', token({ id: 'troll' }), { ip: '198.51.100.200' });
  await again.until((c) => c.closed, 'refused');
  assert.deepEqual(again.errors(), ['banned']);
  assert.equal(again.closed.code, 4003);

  const check = await connect('mod', token({ id: 'check' }));
  assert.deepEqual(check.of('history')[0].messages.map((m) => m.text), ['nice stream'], 'removed from history');

  assert.equal((await moderate('mod', { type: 'delete', id: 999999 })).status, 404);
  assert.equal((await moderate('mod', { type: 'dance' })).status, 400);
  assert.equal((await moderate('mod', { type: 'unban', user: troller })).status, 200);
  const back = await connect('mod', token({ id: 'troll' }));
  assert.equal(back.closed, null);
  assert.equal((await moderate('mod', { type: 'stream', state: 'ended' })).status, 200);
  await viewer.until((c) => c.of('system').some((m) => m.event === 'stream_ended'), 'stream_ended');
  for (const c of [mod, viewer, check, back]) c.close();
});

test('bad input: an error back and the socket stays usable, or a proper close code', async () => {
  const a = await connect('bad', token({ id: 'bad' }));
  const b = await connect('bad', token({ id: 'good' }));
  const cases = [
    ['{"type":"chat","text":', 'invalid_json'],
    ['[1,2,3]', 'bad_request'],
    [JSON.stringify({ type: 'shout', text: 'x' }), 'unknown_type'],
    [JSON.stringify({ v: 7, type: 'chat', text: 'x' }), 'unsupported_version'],
    [JSON.stringify({ type: 'chat', text: 42 }), 'bad_request'],
    [JSON.stringify({ type: 'chat', text: 'x'.repeat(501) }), 'too_long'],
    [JSON.stringify({ type: 'chat', text: ' \u0000 ' }), 'empty'],
    [Buffer.from([0xde, 0xad, 0xbe, 0xef]), 'binary'],
    [JSON.stringify({ type: 'chat', text: 'y'.repeat(4500) }), 'too_large'],
  ];
  for (const [frame, code] of cases) {
    const n = a.errors().length;
    a.send(frame);
    await a.until((c) => c.errors().length > n, code);
    assert.equal(a.errors().at(-1), code);
  }
  assert.equal(a.closed, null);
  a.send({ type: 'chat', text: 'still usable' });
  await b.until((c) => c.texts().includes('still usable'), 'the message after the errors');
  assert.deepEqual(b.errors(), []);
  assert.deepEqual(b.texts(), ['still usable'], 'nothing invalid reached the others');

  // 100 KiB: closed with 1009 (message too big).
  a.send('z'.repeat(100 * 1024));
  await a.until((c) => c.closed, 'close');
  assert.equal(a.closed.code, 1009);

  // A socket that keeps sending junk is closed with 1008 (max_strikes = 30 here).
  const c = await connect('bad', token({ id: 'junk' }));
  for (let i = 0; i < 40; i++) c.send('junk');
  await c.until((x) => x.closed, 'policy close');
  assert.equal(c.closed.code, 1008);
  b.close();
});

test('hibernation: the idle object is evicted, sockets stay attached, messages still flow', async () => {
  const a = await connect('sleepy', token({ id: 'a' }), { ip: '10.3.0.1' });
  const b = await connect('sleepy', token({ id: 'b' }), { ip: '10.3.0.2' });
  a.send({ type: 'chat', text: 'before' });
  await b.until((c) => c.texts().includes('before'), 'before');
  const before = await moderate('sleepy');
  await b.until((c) => c.of('system').some((m) => m.viewers === 2), 'viewer count');
  // Nothing for the room to do: workerd evicts an idle object with only
  // hibernatable sockets after about ten seconds.
  await new Promise((r) => setTimeout(r, 15_000));
  assert.equal(a.closed, null);
  assert.equal(b.closed, null);
  a.send({ type: 'chat', text: 'after' });
  await b.until((c) => c.texts().includes('after'), 'after the nap');
  const after = await moderate('sleepy');
  assert.notEqual(after.body.since, before.body.since, 'a new instance of the object answered');
  assert.equal(after.body.viewers, 2, 'both sockets still attached');
  // Their attachments survived: the names and ids are the same as before.
  const [m1, m2] = b.of('chat');
  assert.equal(m2.user, m1.user);
  assert.equal(m2.name, m1.name);
  assert.ok(m2.id > m1.id, 'ids continue from storage');
  b.send({ type: 'chat', text: 'reply' });
  await a.until((c) => c.texts().includes('reply'), 'reply');
  a.close();
  b.close();
});
