// Viewer QoE end to end (docs/qoe.md): ffmpeg publishes 640x360 over SRT, the
// origin's transcoder makes a 3-rung ladder, the edge Worker runs under
// `wrangler dev` with the real wrangler.toml (Analytics Engine binding
// included), and two Chromium viewers play through it for 30 s, one of them
// throttled (CDP) and starved for a few seconds. Their pages send CMCD on every
// request and the QoE beacon; the edge's aggregates must show 2 viewers, the
// throttled one with the lower bitrate and more rebuffering; the ops dashboard
// (web/dashboard.html) must render those numbers and its charts (checked in
// the DOM and in a screenshot's pixels); a viewer who leaves before the video
// starts must count as an exit before start; and CMCD requests must hit the
// cache entries of plain ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, DEV_KEY, start, startOrigin, launchChromium, srtUrl, text, waitFor, throttle } from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList } from './edge-lib.mjs';

const RUNGS = [
  { height: 360, kbps: 600 },
  { height: 240, kbps: 400 },
  { height: 160, kbps: 250 },
];
const LADDER = 'audio_bitrate_kbps = 32\n' + RUNGS.map((r) => `[[ladder.rungs]]\nheight = ${r.height}\nbitrate_kbps = ${r.kbps}\npreset = "ultrafast"\n`).join('');
const ADMIN = 'qoe-e2e-admin-token';
const TOKEN = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', id: 'qoe', ttl: 3600 });
const WATCH_S = 30;
const PUSH_TOKEN = 'qoe-e2e-push-token-0123456789';

let origin, publisher, edge, browser;
const shots = mkdtempSync(join(tmpdir(), 'brook-qoe-shots-'));

before(async () => {
  origin = await startOrigin({
    ladder: 'transcode',
    config: `[admin]\ntoken = "${ADMIN}"\n[qoe]\npush_token = "${PUSH_TOKEN}"\n[ladder]\n${LADDER}[streams.cam1]\nkey = "${DEV_KEY}"\n`,
  });
  publisher = start('ffmpeg', 'ffmpeg', ['-hide_banner', '-loglevel', 'warning', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '60', '-keyint_min', '60',
    '-pix_fmt', 'yuv420p', '-b:v', '1000k', '-c:a', 'aac', '-b:a', '64k', '-ar', '48000',
    '-f', 'mpegts', srtUrl(origin.srtPort, `publish:live/cam1:${DEV_KEY}`)]);
  edge = await startWranglerEdge({
    ORIGIN_URL: origin.url,
    TOKEN_KEYS: keyList('k2026a'),
    EDGE_CONFIG: JSON.stringify({}),
    METRICS_TOKEN: 'qoe-e2e-metrics',
    QOE_PUSH_TOKEN: PUSH_TOKEN,
  });
  await waitFor('the ladder', async () => {
    const r = await text(`${origin.url}/live/cam1/index.m3u8`);
    return r.status === 200 && (r.body.match(/#EXT-X-STREAM-INF/g) ?? []).length >= 3;
  }, { timeout: 45000, interval: 500 });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await Promise.all([publisher, edge, origin].map((p) => p?.stop()));
});

const qoe = async (query = '') => {
  const res = await fetch(`${edge.url}/_brook/qoe${query}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
};

/** A viewer page through the edge; `kbps` throttles it from the start. */
async function viewer(kbps) {
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  if (kbps) await throttle(cdp, kbps);
  await page.goto(`${edge.url}/?stream=cam1&token=${encodeURIComponent(TOKEN)}`, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 45000 });
  return { page, cdp, sid: await page.evaluate(() => window.brookQoe.sid) };
}

/** RGBA pixels of a PNG (8-bit RGB or RGBA, not interlaced: Chromium's screenshots). */
function decodePng(buf) {
  assert.equal(buf.readUInt32BE(0), 0x89504e47, 'a PNG');
  let at = 8;
  let width; let height; let type; const idat = [];
  while (at < buf.length) {
    const len = buf.readUInt32BE(at);
    const kind = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    if (kind === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      assert.equal(data[8], 8, '8-bit'); type = data[9]; assert.equal(data[12], 0, 'not interlaced');
    } else if (kind === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const bpp = type === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const out = Buffer.alloc(width * height * 4);
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < height; y += 1) {
    const filter = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i += 1) {
      const a = i >= bpp ? line[i - bpp] : 0; const b = prev[i]; const c = i >= bpp ? prev[i - bpp] : 0;
      const p = a + b - c; const pa = Math.abs(p - a); const pb = Math.abs(p - b); const pc = Math.abs(p - c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter];
      line[i] = (line[i] + pred) & 0xff;
    }
    for (let x = 0; x < width; x += 1) {
      line.copy(out, (y * width + x) * 4, x * bpp, x * bpp + 3);
      out[(y * width + x) * 4 + 3] = 255;
    }
    prev = line;
  }
  return { width, height, pixels: out };
}

/** How many pixels of a PNG are within `tolerance` of the color `#rrggbb`. */
function pixelsNear(png, hex, tolerance = 40) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const { pixels } = decodePng(png);
  let n = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) <= tolerance) n += 1;
  }
  return n;
}

test('two viewers for 30 s, one throttled: the aggregates and the dashboard show it', async () => {
  const [fast, slow] = await Promise.all([viewer(0), viewer(450)]);
  assert.notEqual(fast.sid, slow.sid);
  const t0 = Date.now();
  // Starve the throttled viewer below the lowest rung (250 + 32 kbit/s) for a
  // while: it must stall, whatever its player chose before.
  await sleep(8000);
  await throttle(slow.cdp, 60);
  await sleep(7000);
  await throttle(slow.cdp, 450);
  await sleep(Math.max(0, WATCH_S * 1000 - (Date.now() - t0)));
  // Both pages send their totals now rather than at the next heartbeat; the
  // report must reach them (the edge keeps the largest totals it was sent).
  const sent = await Promise.all([fast, slow].map((v) => v.page.evaluate(() => ({
    ...window.brookQoe.beat(), t: window.brook.video.currentTime,
  }))));
  const played = sent.map((b) => ({ t: b.t, stalls: b.stalls, startup: b.startup_ms }));
  const r = await waitFor('both beacons', async () => {
    const got = await qoe('?stream=cam1');
    const rows = Object.fromEntries(got.sessions.map((s) => [s.sid, s]));
    return [fast, slow].every((v, i) => rows[v.sid]?.watch_s >= sent[i].watch_ms / 1000
      && rows[v.sid].stalls >= sent[i].stalls) ? got : null;
  }, { timeout: 10000, interval: 250 });
  const rows = Object.fromEntries(r.sessions.map((s) => [s.sid, s]));
  const [a, b] = [rows[fast.sid], rows[slow.sid]];
  const detail = JSON.stringify({ played, a, b, totals: r.totals, renditions: r.renditions });
  assert.equal(r.totals.viewers, 2, detail);
  assert.equal(r.totals.sessions, 2, detail);
  assert.equal(r.sessions.length, 2, detail);
  assert.ok(b.avg_bitrate_kbps < a.avg_bitrate_kbps, `throttled viewer has the lower bitrate: ${detail}`);
  assert.ok(b.stalls >= 1 && b.rebuffer_ratio > a.rebuffer_ratio, `throttled viewer rebuffered more: ${detail}`);
  assert.ok(a.watch_s >= WATCH_S && b.watch_s >= WATCH_S, detail);
  assert.ok(a.startup_ms > 0 && b.startup_ms > 0 && r.totals.startup_p50_ms > 0, detail);
  assert.ok(a.latency_ms > 0 && r.totals.latency_p50_ms > 0, detail);
  assert.equal(r.totals.errors, 0, detail);
  assert.ok(r.totals.watch_time_s >= 2 * WATCH_S, detail);
  assert.ok(r.renditions.length >= 2, `more than one rendition played: ${detail}`);
  assert.ok(r.renditions.every((m) => ['360p', '240p', '160p'].includes(m.rendition)), detail);
  assert.equal(r.countries.length, 1, detail);
  assert.equal(r.countries[0].viewers, 2, detail);
  const country = r.countries[0].key;

  // Paused time is not watch time (nor a stall).
  const paused = await fast.page.evaluate(async () => {
    const before = window.brookQoe.beat();
    window.brook.video.pause();
    await new Promise((r) => { setTimeout(r, 3000); });
    const during = window.brookQoe.beat();
    await window.brook.video.play();
    await new Promise((r) => { setTimeout(r, 1000); });
    return { before, during, after: window.brookQoe.beat() };
  });
  assert.ok(paused.during.watch_ms - paused.before.watch_ms < 500, `paused: ${JSON.stringify(paused)}`);
  assert.ok(paused.after.watch_ms - paused.during.watch_ms > 500, `playing again counts: ${JSON.stringify(paused)}`);
  assert.equal(paused.during.stalls, paused.before.stalls, 'a pause is not a stall');

  // The dashboard, behind the admin token, renders the same numbers and both charts.
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  await page.goto(`${edge.url}/dashboard.html#token=${encodeURIComponent(ADMIN)}`);
  await page.waitForFunction(() => {
    const d = window.brookDashboard;
    return d.updates >= 1 && d.qoe.totals.viewers === 2 && d.qoe.history.length >= 3 && d.streams?.streams?.length >= 1;
  }, null, { timeout: 15000 });
  const dom = await page.evaluate(() => {
    const cells = (id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) => [...tr.children].map((td) => td.textContent));
    return {
      viewers: document.getElementById('stat-viewers').textContent,
      rebuffer: document.getElementById('stat-rebuffer').textContent,
      sessions: cells('sessions'),
      streams: cells('streams'),
      countries: cells('countries'),
      canvases: ['chart-viewers', 'chart-qoe'].map((id) => document.querySelectorAll(`#${id} .uplot canvas`).length),
      error: window.brookDashboard.error,
      shown: window.brookDashboard.qoe,
    };
  });
  assert.equal(dom.error, null);
  assert.equal(dom.viewers, '2');
  assert.deepEqual(dom.canvases, [1, 1], 'both charts drawn by uPlot');
  const kbps = (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} Mbps` : `${Math.round(v)} kbps`);
  const shownRows = Object.fromEntries(dom.shown.sessions.map((s) => [s.sid.slice(0, 8), s]));
  assert.equal(dom.sessions.length, 2);
  for (const row of dom.sessions) {
    const s = shownRows[row[0]];
    assert.ok(s, `row ${row[0]} is a session`);
    assert.equal(row[5], kbps(s.avg_bitrate_kbps), 'bitrate cell');
    assert.equal(row[7], String(s.stalls), 'stalls cell');
  }
  const slowRow = dom.sessions.find((row) => row[0] === slow.sid.slice(0, 8));
  assert.ok(Number(slowRow[7]) >= 1, 'the throttled viewer\'s stalls are on the page');
  assert.equal(dom.streams[0][0], 'cam1');
  assert.equal(dom.streams[0][1], 'publishing');
  assert.equal(dom.streams[0][9], '2', 'edge viewers of cam1');
  assert.deepEqual(dom.countries.map((c) => c.slice(0, 2)), [[country, '2']]);

  const full = await page.screenshot({ fullPage: true });
  writeFileSync(join(shots, 'dashboard.png'), full);
  // The canvases only: uPlot's legend (HTML) shows the series' colors even
  // without data.
  const viewersChart = await page.locator('#chart-viewers canvas').screenshot();
  const qoeChart = await page.locator('#chart-qoe canvas').screenshot();
  writeFileSync(join(shots, 'chart-viewers.png'), viewersChart);
  writeFileSync(join(shots, 'chart-qoe.png'), qoeChart);
  // Lines drawn with data: cam1's viewers (#4fc3f7, over the "all" line) in
  // one chart, the bitrate (#4fc3f7) and rebuffering (#e57373) lines in the
  // other (a chart without data draws axes only).
  const counts = {
    cam1: pixelsNear(viewersChart, '#4fc3f7'),
    bitrate: pixelsNear(qoeChart, '#4fc3f7'), rebuffer: pixelsNear(qoeChart, '#e57373'),
  };
  for (const [line, n] of Object.entries(counts)) {
    assert.ok(n > 50, `the ${line} line is drawn (${n} pixels; screenshots in ${shots}): ${JSON.stringify(counts)}`);
  }
  console.log(`qoe: dashboard screenshots in ${shots}; ${detail}`);
  await page.close();

  // The same watch and stall time reach the origin's Prometheus counters
  // (the edge pushes the beacons' deltas), for the rebuffering alert: at
  // least what both pages reported now, within a push (10 s) and a
  // heartbeat, and never more than they report afterwards (nothing counted
  // twice).
  const viewers = [fast, slow];
  const reported = await Promise.all(viewers.map((v) => v.page.evaluate(() => window.brookQoe.beat())));
  const sum = (list, key) => list.reduce((n, b) => n + b[key], 0);
  const sample = (page, name) => {
    const m = page.match(new RegExp(`^${name}\\{stream="cam1"\\} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : null;
  };
  const counters = async () => {
    const page = (await text(`${origin.url}/metrics`)).body;
    return {
      watch: sample(page, 'brook_qoe_watch_seconds_total'),
      stall: sample(page, 'brook_qoe_stall_seconds_total'),
      stalls: sample(page, 'brook_qoe_stalls_total'),
      accepted: Number(page.match(/^brook_qoe_pushes_total\{result="accepted"\} (\d+)$/m)?.[1]),
      refused: ['unauthorized', 'invalid'].map((r) => Number(page.match(new RegExp(`^brook_qoe_pushes_total\\{result="${r}"\\} (\\d+)$`, 'm'))?.[1])),
    };
  };
  const pushed = await waitFor('the pushed QoE counters', async () => {
    const c = await counters();
    return c.watch >= sum(reported, 'watch_ms') / 1000 && c.stall >= sum(reported, 'stall_ms') / 1000
      && c.stalls >= sum(reported, 'stalls') ? c : null;
  }, { timeout: 25000, interval: 500 }).catch(async (e) => {
    throw new Error(`${e.message}: ${JSON.stringify({ reported, now: await counters() })}`);
  });
  const later = await Promise.all(viewers.map((v) => v.page.evaluate(() => window.brookQoe.beat())));
  const pushDetail = JSON.stringify({ pushed, reported, later });
  assert.ok(pushed.watch <= sum(later, 'watch_ms') / 1000, `no watch time counted twice: ${pushDetail}`);
  assert.ok(pushed.stall <= sum(later, 'stall_ms') / 1000, pushDetail);
  assert.ok(pushed.stalls <= sum(later, 'stalls'), pushDetail);
  assert.ok(pushed.stall > 0 && pushed.stalls >= 1, `the throttled viewer's stalls are counted: ${pushDetail}`);
  assert.ok(pushed.accepted >= 2, pushDetail);
  assert.deepEqual(pushed.refused, [0, 0], pushDetail);
  const edgeMetrics = await fetch(`${edge.url}/_brook/metrics`, { headers: { authorization: 'Bearer qoe-e2e-metrics' } }).then((r) => r.text());
  assert.match(edgeMetrics, /^brook_edge_qoe_pushes_total\{result="pushed"\} \d+$/m);
  assert.doesNotMatch(edgeMetrics, /brook_edge_qoe_pushes_total\{result="(failed|unknown_stream|dropped)"\}/);
  // Without the token the origin refuses a push (401, nothing counted), on
  // a connection it keeps when the body was small.
  const forged = JSON.stringify({ v: 1, streams: { cam1: { watch_ms: 100000, stall_ms: 100000, stalls: 1 } } });
  for (const authorization of [undefined, 'Bearer qoe-e2e-push-token-WRONG-456789']) {
    const res = await fetch(`${origin.url}/qoe/push`, {
      method: 'POST', body: forged, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    });
    assert.equal(res.status, 401, String(authorization));
    await res.arrayBuffer();
  }
  const after = await counters();
  assert.deepEqual(after.refused, [2, 0], JSON.stringify(after));
  assert.ok(after.stall < after.watch && after.stall - pushed.stall < 100, `the forged push added nothing: ${JSON.stringify(after)}`);
  console.log(`qoe: pushed to the origin: rebuffering ratio ${(pushed.stall / pushed.watch * 100).toFixed(2)} % (${pushDetail})`);
});

test('a viewer who leaves before the video starts is an exit before start; the report needs a token', async () => {
  // A stream nobody publishes: the page keeps waiting for its playlist.
  const page = await browser.newPage();
  await page.goto(`${edge.url}/?stream=nostream&token=${encodeURIComponent(TOKEN)}`, { waitUntil: 'domcontentloaded' });
  const sid = await page.evaluate(() => window.brookQoe.sid);
  await sleep(3000);
  assert.equal(await page.evaluate(() => window.brookQoe.startupMs), null, 'never started');
  await page.goto('about:blank'); // pagehide: the page's last beacon
  const r = await waitFor('the exit beacon', async () => {
    const got = await qoe('?stream=nostream');
    return got.totals.exits_before_start === 1 ? got : null;
  }, { timeout: 10000, interval: 250 });
  assert.deepEqual(r.sessions.map((s) => [s.sid, s.state]), [[sid, 'exited before start']]);
  assert.equal(r.totals.viewers, 0);
  assert.equal(r.totals.exit_before_start_rate, 1);
  await page.close();

  assert.equal((await fetch(`${edge.url}/_brook/qoe`)).status, 401);
  assert.equal((await fetch(`${edge.url}/_brook/qoe`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  assert.equal((await fetch(`${edge.url}/_brook/streams`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  // The dashboard with a wrong token shows nothing but the refusal.
  const dash = await browser.newPage();
  await dash.goto(`${edge.url}/dashboard.html#token=wrong`);
  await dash.waitForFunction(() => window.brookDashboard.error !== null, null, { timeout: 10000 });
  const shown = await dash.evaluate(() => ({
    error: window.brookDashboard.error, updates: window.brookDashboard.updates,
    viewers: document.getElementById('stat-viewers').textContent, rows: document.querySelectorAll('#sessions tbody tr').length,
  }));
  assert.deepEqual(shown, { error: 'the admin token was refused', updates: 0, viewers: '–', rows: 0 });
  await dash.close();
});

test('dash.js streaming.cmcd (query mode) through the edge is recorded too; no player\'s CMCD was refused', async () => {
  const q = `__token__=${encodeURIComponent(TOKEN)}`;
  const mv = await text(`${edge.url}/live/cam1/index.m3u8?${q}`);
  const session = mv.body.split('\n').find((l) => l && !l.startsWith('#')).split('/')[0];
  const mpd = `/live/cam1/${session}/manifest.mpd?${q}`;
  // A test harness page (dash.js injected), same origin as the edge.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  await page.goto(`${edge.url}/vod.html`);
  await page.addScriptTag({ path: join(ROOT, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js') });
  await page.evaluate((url) => {
    document.body.innerHTML = '<video id="dash" muted autoplay playsinline></video>';
    const player = window.dashjs.MediaPlayer().create();
    player.updateSettings({ streaming: { cmcd: { enabled: true, sid: 'dashjs-viewer', cid: 'cam1', mode: 'query' } } });
    player.initialize(document.getElementById('dash'), url, true);
    window.dash = { player, video: document.getElementById('dash') };
  }, mpd);
  // A live MPD's timeline starts at its availability start: wait for 4 s
  // played, not for currentTime 4.
  await page.waitForFunction(() => window.dash.video.currentTime > 0, null, { timeout: 40000 });
  const first = await page.evaluate(() => window.dash.video.currentTime);
  await page.waitForFunction((t) => window.dash.video.currentTime > t + 4, first, { timeout: 40000 });
  const metrics = await text(`${edge.url}/_brook/metrics`, { headers: { authorization: 'Bearer qoe-e2e-metrics' } });
  const r = await qoe('?stream=cam1');
  const row = r.sessions.find((x) => x.sid === 'dashjs-viewer');
  assert.ok(row, `dash.js's session is recorded: ${JSON.stringify(r.sessions.map((x) => x.sid))}`);
  const counters = metrics.body.split('\n').filter((l) => l.startsWith('brook_edge_cmcd'));
  assert.ok(row.avg_bitrate_kbps > 0 && ['360p', '240p', '160p'].includes(row.rendition), `${JSON.stringify(row)} ${counters}`);
  await context.close();

  assert.match(metrics.body, /brook_edge_cmcd_total\{result="recorded"\} \d+/);
  assert.doesNotMatch(metrics.body, /brook_edge_cmcd_total\{result="invalid"\}/, 'hls.js and dash.js CMCD all parsed');
});

test('CMCD requests hit the cache entries of plain ones', async () => {
  const q = `__token__=${encodeURIComponent(TOKEN)}`;
  const mv = await text(`${edge.url}/live/cam1/index.m3u8?${q}`);
  const uri = mv.body.split('\n').find((l) => l && !l.startsWith('#'));
  const media = new URL(uri, `${edge.url}/live/cam1/index.m3u8`);
  const playlist = await text(media.href);
  const seg = playlist.body.split('\n').filter((l) => /-seg\d+\.m4s/.test(l)).at(-2);
  const url = new URL(seg, media);
  const cmcd = (sid) => `CMCD=${encodeURIComponent(`br=600,d=2000,ot=v,sf=h,sid="${sid}",st=l`)}`;
  const statuses = [];
  for (const extra of [cmcd('one'), cmcd('two'), '', cmcd('three')]) {
    const res = await fetch(`${url.href}${extra ? `&${extra}` : ''}`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    statuses.push(res.headers.get('x-brook-cache'));
  }
  assert.deepEqual(statuses.slice(1), ['hit', 'hit', 'hit'], `cache status per request: ${statuses}`);
});
