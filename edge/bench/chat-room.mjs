// One chat room under load: N WebSocket clients (default 1000) in one room of
// the real wasm build (`cargo xtask wasm`) in workerd through Miniflare, over
// real sockets (npm `ws`). A benchmark, not a test: it prints figures, and
// exits 1 if any message sent within the room's limits went missing (a chat
// message some client never received, a frame refused as `rate_limited`, a
// reaction press not counted): under saturation messages must queue, not drop.
//
//   node edge/bench/chat-room.mjs [CLIENTS] [SECONDS_PER_PHASE]
//
// Chat phases: 20 of the clients send at a total offered rate (msg/s); every
// client receives every message. Reported per phase: messages accepted,
// deliveries per second (messages x receivers), deliveries missing, and the
// delivery latency (sender's send to each receiver's `message` event, one
// clock: both ends are in this process) at p50 / p99 / max.
//
// Reaction phase: every client presses a reaction twice a second; the room
// aggregates per window, so each client receives a few messages per second.
//
// Each client has its own CF-Connecting-IP, so per-address limits apply per
// client; the per-connection chat limit is raised (CHAT_CONFIG) so 20 senders
// can offer up to 400 msg/s; the address limit stays at its default (5/s),
// above every sender's rate here (at most 3.75/s). Clients send `sent` (the
// room's clock, learnt from `welcome.ts`), as web/chat.js does. Everything runs on this machine: the clients'
// own event loop is part of the latency measured, and on a shared host the
// CPU workerd gets bounds the throughput; deliveries per CPU-second of
// workerd is the figure that carries over.
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import { readFileSync, readdirSync } from 'node:fs';
import { Miniflare } from 'miniflare';
import { workerOptions } from '../test/worker.mjs';
import WebSocket from 'ws';

const CLIENTS = Number(process.argv[2] ?? 1000);
const SECONDS = Number(process.argv[3] ?? 10);
const SENDERS = 20;
const RATES = [10, 20, 30, 40, 50, 75];
const KEY = '00112233445566778899aabbccddeeff';

function token(id) {
  const signed = `exp=${Math.floor(Date.now() / 1000) + 3600}~acl=/live/bench/*~id=${id}~kid=b`;
  return `${signed}~hmac=${createHmac('sha256', Buffer.from(KEY, 'hex')).update(signed).digest('hex')}`;
}

const mf = new Miniflare(workerOptions({
  bindings: {
    ORIGIN_URL: 'http://127.0.0.1:9',
    EDGE_CONFIG: '{}',
    TOKEN_KEYS: `b:${KEY}`,
    CHAT_CONFIG: JSON.stringify({ chat_per_conn: { burst: 40, per_second: 20 }, max_strikes: 1000000 }),
  },
  chat: true,
}));
const base = (await mf.ready).origin.replace('http', 'ws');

// Per-client counters; latency samples go to one array per phase.
let samples = [];
let rateLimited = 0;
const failures = [];
let delivered = 0;
let reactionFrames = 0;
let reactionCount = 0;
const clients = [];

function connect(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}/chat/bench?__token__=${encodeURIComponent(token(`c${i}`))}`, {
      headers: { 'cf-connecting-ip': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
      perMessageDeflate: false,
    });
    ws.clockOffset = 0; // room clock - this clock, from `welcome`
    ws.sendFrame = (msg) => ws.send(JSON.stringify({ v: 1, ...msg, sent: Date.now() + ws.clockOffset }));
    ws.on('message', (data) => {
      const now = performance.now();
      const s = data.toString();
      if (s.includes('"type":"welcome"')) ws.clockOffset = JSON.parse(s).ts - Date.now();
      if (s.includes('"code":"rate_limited"')) rateLimited += 1;
      // Chat texts are `b <t>`: t is the sender's performance.now().
      const at = s.indexOf('"text":"b ');
      if (at >= 0) {
        const t = Number(s.slice(at + 10, s.indexOf('"', at + 10)));
        samples.push(now - t);
        delivered += 1;
        lastDelivery = now;
      } else if (s.includes('"type":"reactions"')) {
        reactionFrames += 1;
        for (const m of s.matchAll(/"n":(\d+)/g)) reactionCount += Number(m[1]);
      }
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

// CPU seconds used so far by workerd (Miniflare's child processes) and by this process.
const TICK = 100; // USER_HZ
function workerdCpu() {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === process.pid) total += (Number(f[11]) + Number(f[12])) / TICK;
    } catch { /* gone */ }
  }
  return total;
}
const nodeCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

/** Waits until `done()` or no progress in `delivered` for 2 s (at most 60 s); the time of the last delivery. */
let lastDelivery = 0;
async function drain(done) {
  const end = performance.now() + 60_000;
  let seen = -1;
  let still = performance.now();
  while (!done() && performance.now() < end) {
    await sleep(100);
    if (delivered !== seen) { seen = delivered; still = performance.now(); }
    if (performance.now() - still > 2000) break;
  }
}

try {
  const t0 = performance.now();
  for (let i = 0; i < CLIENTS; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(CLIENTS, i + 50); j++) batch.push(connect(j));
    clients.push(...await Promise.all(batch));
  }
  console.log(`# ${CLIENTS} clients joined in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`# host: ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  await sleep(3000); // join storm and viewer counts settle

  // Reactions: everyone, twice a second, for SECONDS.
  reactionFrames = 0;
  reactionCount = 0;
  let pressed = 0;
  const timers = clients.map((ws, i) => setTimeout(() => {
    const press = () => { ws.sendFrame({ type: 'react', emoji: '❤️' }); pressed += 1; };
    press();
    timers.push(setInterval(press, 500));
  }, (500 * i) / CLIENTS));
  const rStart = performance.now();
  await sleep(SECONDS * 1000);
  for (const t of timers) { clearTimeout(t); clearInterval(t); }
  const rSecs = (performance.now() - rStart) / 1000;
  await sleep(2000);
  console.log(`# reactions: ${pressed} pressed (${Math.round(pressed / rSecs)}/s offered), `
    + `${(reactionFrames / CLIENTS / rSecs).toFixed(1)} reaction messages/s per client, `
    + `${Math.round(reactionCount / CLIENTS)} of ${pressed} counted per client`);
  if (reactionCount < pressed * CLIENTS) failures.push(`reactions: ${pressed * CLIENTS - reactionCount} deliveries of counts missing`);

  console.log('\n| offered msg/s | accepted | deliveries/s | missing | p50 ms | p99 ms | max ms | workerd CPU | client CPU | deliveries per workerd CPU-s |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const rate of RATES) {
    samples = [];
    delivered = 0;
    let sent = 0;
    const interval = (1000 * SENDERS) / rate;
    const timers = [];
    const start = performance.now();
    const cpu0 = [workerdCpu(), nodeCpu()];
    for (let s = 0; s < SENDERS; s++) {
      const ws = clients[s];
      // Spread the senders over the interval.
      timers.push(setTimeout(() => {
        const send = () => {
          ws.sendFrame({ type: 'chat', text: `b ${performance.now()}` });
          sent += 1;
        };
        send();
        timers.push(setInterval(send, interval));
      }, (interval * s) / SENDERS));
    }
    await sleep(SECONDS * 1000);
    for (const t of timers) { clearTimeout(t); clearInterval(t); }
    const expected = sent * CLIENTS;
    await drain(() => delivered >= expected);
    const busy = (lastDelivery - start) / 1000;
    const used = [workerdCpu() - cpu0[0], nodeCpu() - cpu0[1]];
    const cpu = used.map((c) => `${Math.round((100 * c) / busy)} %`);
    const xs = samples.sort((a, b) => a - b);
    console.log(`| ${rate} | ${sent} | ${Math.round(delivered / busy)} | ${expected - delivered} | ${pct(xs, 50)?.toFixed(1)} | ${pct(xs, 99)?.toFixed(1)} | ${xs.at(-1)?.toFixed(1)} | ${cpu[0]} | ${cpu[1]} | ${Math.round(delivered / used[0])} |`);
    if (delivered < expected) failures.push(`${rate} msg/s: ${expected - delivered} of ${expected} deliveries missing`);
    await sleep(1000);
  }

  if (rateLimited > 0) failures.push(`${rateLimited} rate_limited errors to senders within the limits`);
} finally {
  for (const ws of clients) ws.terminate();
  await mf.dispose();
}
if (failures.length) {
  console.log(`\nFAIL: messages within the limits went missing:\n  ${failures.join('\n  ')}`);
  process.exitCode = 1;
} else {
  console.log('\n# nothing within the limits went missing');
}
