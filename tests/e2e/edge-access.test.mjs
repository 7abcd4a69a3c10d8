// Edge access control, end to end: the real Worker (wasm in workerd via Miniflare)
// in front of the real brook-origin with ffmpeg publishing over SRT. Tokens are
// minted with node's crypto (EdgeAuth layout), independently of the Rust signer,
// and once with the brook-token CLI. Every refusal looks the same from outside and
// is counted inside (/_brook/metrics).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { startOrigin, startPublisher, waitFor, ORIGIN_BIN, ROOT } from './lib.mjs';
import {
  startWorker, workerOptions, signToken, tokenQuery, KEYS, keyList, workerMetrics, counter,
} from './edge-lib.mjs';

const CONFIG = {
  geo: {
    default: { deny: ['KP'] },
    streams: { cam1: { allow: ['DE', 'NL', 'AT'], unknown: 'deny' } },
  },
};

const EDGE = 'http://edge.test';
let origin, publisher, mf, mediaPath;

before(async () => {
  origin = await startOrigin();
  publisher = startPublisher(origin.srtPort);
  mf = await startWorker({ originUrl: origin.url, keys: keyList('k2026a'), config: CONFIG });
  // The stream is up once the origin lists parts; remember its media playlist path.
  const mv = await waitFor('multivariant playlist', async () => {
    const r = await fetch(`${origin.url}/live/cam1/index.m3u8`);
    return r.status === 200 ? r.text() : null;
  }, { timeout: 30000, interval: 250 });
  mediaPath = `/live/cam1/${mv.split('\n').find((l) => l && !l.startsWith('#'))}`;
  await waitFor('parts', async () => (await (await fetch(origin.url + mediaPath)).text()).includes('#EXT-X-PART:'),
    { timeout: 30000, interval: 250 });
});

after(async () => {
  await mf?.dispose();
  await Promise.all([publisher, origin].map((p) => p?.stop()));
});

const get = (path, init = {}) => mf.dispatchFetch(EDGE + path, { cf: { country: 'DE' }, ...init });
const valid = (extra = {}) => signToken({ key: KEYS.k2026a, kid: 'k2026a', ...extra });

test('a valid token opens every object of the stream, from query, cookie or bearer header', async () => {
  const token = valid({ id: 'viewer-1' });
  const mv = await get(`/live/cam1/index.m3u8?${tokenQuery(token)}`);
  assert.equal(mv.status, 200);
  const body = await mv.text();
  assert.match(body, /^#EXTM3U/);

  const media = await get(`${mediaPath}?${tokenQuery(token)}`);
  assert.equal(media.status, 200);
  const playlist = await media.text();
  const seg = playlist.split('\n').find((l) => /^video-seg\d+\.m4s\?/.test(l)) ?? playlist.match(/URI="(video-part[^"]+)"/)[1];
  const objectPath = `${dirname(mediaPath)}/${seg.split('?')[0]}`;
  for (const init of [
    { path: `${objectPath}?${tokenQuery(token)}` },
    { path: objectPath, headers: { cookie: `other=1; __token__=${encodeURIComponent(token)}` } },
    { path: objectPath, headers: { authorization: `Bearer ${token}` } },
  ]) {
    const r = await get(init.path, { headers: init.headers });
    assert.equal(r.status, 200, JSON.stringify(init.headers ?? 'query'));
    assert.ok((await r.arrayBuffer()).byteLength > 0);
  }
});

test('expired, not-yet-valid, tampered, wrong-path, wrong-IP and unknown-key tokens: 403, identical, counted', async () => {
  const now = Math.floor(Date.now() / 1000);
  const good = valid({ ip: '198.51.100.7' });
  const cases = {
    expired: valid({ exp: now - 1 }),
    not_yet_valid: valid({ st: now + 600 }),
    // Tampered: the ACL widened after signing.
    bad_signature: good.replace('acl=/live/cam1/*', 'acl=/live/*'),
    path_not_allowed: valid({ acl: '/live/cam2/*' }),
    ip_mismatch: good,
    unknown_key: signToken({ key: KEYS.k2026a, kid: 'k2099z' }),
    malformed: 'exp=1~hmac=zz',
  };
  const before = await workerMetrics(mf);
  const bodies = new Set();
  for (const [reason, token] of Object.entries(cases)) {
    const r = await get(`${mediaPath}?${tokenQuery(token)}`, { headers: { 'cf-connecting-ip': '198.51.100.99' } });
    assert.equal(r.status, 403, reason);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    bodies.add(`${r.headers.get('content-type')}|${await r.text()}`);
  }
  assert.equal(bodies.size, 1, `every refusal looks the same: ${[...bodies].join(' / ')}`);

  // The same IP-bound token works from its own address.
  const ok = await get(`${mediaPath}?${tokenQuery(good)}`, { headers: { 'cf-connecting-ip': '198.51.100.7' } });
  assert.equal(ok.status, 200);
  await ok.arrayBuffer();

  const after = await workerMetrics(mf);
  for (const reason of Object.keys(cases)) {
    const delta = counter(after, 'brook_edge_auth_failures_total', { reason })
      - counter(before, 'brook_edge_auth_failures_total', { reason });
    assert.equal(delta, 1, `failure counted as ${reason}`);
  }
});

test('no token: 401 with a Bearer challenge, and counted', async () => {
  const before = counter(await workerMetrics(mf), 'brook_edge_auth_failures_total', { reason: 'missing' });
  const r = await get(mediaPath);
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="brook"');
  assert.equal(r.headers.get('access-control-allow-origin'), '*', 'players can read the status');
  await r.arrayBuffer();
  const after = counter(await workerMetrics(mf), 'brook_edge_auth_failures_total', { reason: 'missing' });
  assert.equal(after - before, 1);
});

test('key rotation: old and new keys overlap, then the old one stops working', async () => {
  const byOld = signToken({ key: KEYS.k2026a, kid: 'k2026a' });
  const byNew = signToken({ key: KEYS.k2026b, kid: 'k2026b' });
  // EdgeAuth tokens without a key id are tried against every configured key.
  const anonOld = signToken({ key: KEYS.k2026a });
  const status = async (t) => { const r = await get(`${mediaPath}?${tokenQuery(t)}`); await r.arrayBuffer(); return r.status; };
  try {
    assert.deepEqual([await status(byOld), await status(byNew), await status(anonOld)], [200, 403, 200]);
    await mf.setOptions(workerOptionsWith(keyList('k2026a', 'k2026b')));
    assert.deepEqual([await status(byOld), await status(byNew), await status(anonOld)], [200, 200, 200]);
    await mf.setOptions(workerOptionsWith(keyList('k2026b')));
    assert.deepEqual([await status(byOld), await status(byNew), await status(anonOld)], [403, 200, 403]);
  } finally {
    await mf.setOptions(workerOptionsWith(keyList('k2026a')));
  }
});

const workerOptionsWith = (keys) => workerOptions({ originUrl: origin.url, keys, config: CONFIG });

test('geo rules per stream, with per-request countries: allowed, blocked (451), unknown', async () => {
  const token = valid({ acl: '/live/*' });
  const q = tokenQuery(token);
  const before = counter(await workerMetrics(mf), 'brook_edge_geo_blocked_total');
  const cases = [
    ['/live/cam1/index.m3u8', 'DE', 200],
    ['/live/cam1/index.m3u8', 'AT', 200],
    ['/live/cam1/index.m3u8', 'US', 451],
    ['/live/cam1/index.m3u8', 'XX', 451], // unknown: cam1 denies
    ['/live/cam1/index.m3u8', 'T1', 451], // Tor: unknown
    ['/live/cam2/index.m3u8', 'US', 404], // default rule lets US in; no such stream at the origin
    ['/live/cam2/index.m3u8', 'KP', 451],
    ['/live/cam2/index.m3u8', 'XX', 404], // unknown: the default rule allows
  ];
  for (const [path, country, want] of cases) {
    const r = await mf.dispatchFetch(`${EDGE}${path}?${q}`, { cf: { country } });
    assert.equal(r.status, want, `${path} from ${country}`);
    if (want === 451) assert.equal(await r.text(), 'not available in your country\n');
    else await r.arrayBuffer();
  }
  const after = counter(await workerMetrics(mf), 'brook_edge_geo_blocked_total');
  assert.equal(after - before, 4);
  // No token from a blocked country: 401 first, so geo rules are not disclosed.
  const r = await mf.dispatchFetch(`${EDGE}/live/cam1/index.m3u8`, { cf: { country: 'US' } });
  assert.equal(r.status, 401);
  await r.arrayBuffer();
});

test('a token minted by the brook-token CLI is accepted', async () => {
  // Built here (a few seconds when warm): CI's e2e step builds brook-origin only.
  const targetDir = dirname(dirname(ORIGIN_BIN));
  execFileSync('cargo', ['build', '--quiet', '-p', 'brook-edge', '--bin', 'brook-token'], {
    cwd: ROOT, env: { ...process.env, CARGO_TARGET_DIR: targetDir }, stdio: 'inherit',
  });
  const token = execFileSync(join(targetDir, 'debug', 'brook-token'),
    ['sign', '--acl', '/live/cam1/*', '--ttl', '60', '--session', 'cli'],
    { env: { ...process.env, TOKEN_KEYS: keyList('k2026a') } }).toString().trim();
  assert.match(token, /^exp=\d+~acl=\/live\/cam1\/\*~id=cli~kid=k2026a~hmac=[0-9a-f]{64}$/);
  const r = await get(`/live/cam1/index.m3u8?${tokenQuery(token)}`);
  assert.equal(r.status, 200);
  await r.arrayBuffer();
});
