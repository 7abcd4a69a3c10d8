// Content protection end to end: brook-origin encrypts live streams (cbcs, keys
// from its key service, sealed at rest under BROOK_KEY_MASTER), the edge Worker
// (wrangler dev, the real wasm build) answers W3C ClearKey license requests after
// the video's token checks, fetching keys from the origin with the shared
// KEY_FETCH_TOKEN; hls.js, dash.js and Shaka Player play in
// headless Chromium with a token and fail with a key error without one; hls.js
// plays across key rotations; the admin API revokes a key. The same for an
// on-demand asset uploaded with `"encryption": "cbcs"` (tus, the VOD worker's
// transcode and packaging, its key sealed in the asset database).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes, createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, DEV_KEY, startOrigin, startPublisher, launchChromium, mediaPlaylistUrl, text, waitFor, ffmpegDecode,
} from './lib.mjs';
import { startWranglerEdge, signToken, KEYS, keyList, tokenQuery, counter } from './edge-lib.mjs';

const ADMIN = '0123456789abcdef-admin';
const FETCH_TOKEN = 'fetch-0123456789abcdef';
const MASTER = randomBytes(32).toString('hex');
const METRICS = 'drm-metrics-secret';
const TOKEN = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', id: 'drm', ttl: 3600 });
const CAM1_ONLY = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/cam1/*', id: 'drm1', ttl: 3600 });
const EXPIRED = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', exp: Math.floor(Date.now() / 1000) - 10 });
const WRONG_KEY = signToken({ key: KEYS.k2026b, kid: 'k2026a', acl: '/live/*', ttl: 3600 });
const SOURCE = 'testsrc2=size=640x360:rate=30';
// Shaka Player from node_modules (a dev dependency); SHAKA_PLAYER_JS may name another build.
const SHAKA_JS = process.env.SHAKA_PLAYER_JS ?? join(ROOT, 'node_modules/shaka-player/dist/shaka-player.compiled.js');

const VOD_API = 'drm-vod-api-token-0123456789';

let origin, cam1Pub, rotPub, edge, browser, keyDir, assetId, speke;

// ---- A SPEKE v2.0 key provider (test double) ------------------------------
// Follows the published SPEKE v2.0 / CPIX 2.3 request and response schema
// (docs.aws.amazon.com/speke): it checks what Brook asks (headers, CPIX
// version, contentId, the ContentKey's KID and scheme, a DRMSystem per
// system, the usage rule) and answers with a content key derived from its
// secret, an explicit IV, and per system a pssh box, the DASH
// ContentProtection content and the HLS tags, as Widevine, PlayReady and
// FairPlay services do. Never a real DRM service: no CDM can play its
// Widevine/PlayReady/FairPlay signalling here (docs/drm.md).
const SPEKE_TOKEN = 'speke-bearer-0123456789';
const SPEKE_SECRET = randomBytes(16);
const SYSTEMS = {
  widevine: 'edef8ba9-79d6-4ace-a3c8-27dcd51d21ed',
  playready: '9a04f079-9840-4286-ab92-e65be0885f95',
  fairplay: '94ce86fb-07ff-4f43-adb8-93d2fa968ca2',
};
const spekeKey = (contentId, kid) => createHmac('sha256', SPEKE_SECRET).update(`${contentId}/${kid}`).digest().subarray(0, 16);
function psshBox(systemUuid, payload) {
  const head = Buffer.alloc(12);
  head.writeUInt32BE(32 + payload.length, 0);
  head.write('pssh', 4);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(payload.length);
  return Buffer.concat([head, Buffer.from(systemUuid.replace(/-/g, ''), 'hex'), size, payload]);
}
const b64 = (x) => Buffer.from(x).toString('base64');

async function startSpeke() {
  const state = { requests: [], fail: null };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const refuse = (status, why) => { res.writeHead(status, { 'content-type': 'text/plain' }); res.end(why); };
      state.requests.push({ headers: req.headers, body });
      if (req.headers.authorization !== `Bearer ${SPEKE_TOKEN}`) return refuse(401, 'unauthorized');
      if (req.method !== 'POST' || req.headers['content-type'] !== 'application/xml') return refuse(400, 'POST application/xml');
      if (req.headers['x-speke-version'] !== '2.0') return refuse(422, 'Unsupported SPEKE version');
      if (state.fail === '422') return refuse(422, 'Non compliant ContentKey@commonEncryptionScheme combination');
      const root = body.match(/<cpix:CPIX [^>]*xmlns:cpix="urn:dashif:org:cpix"[^>]*>/)?.[0] ?? '';
      const contentId = root.match(/contentId="([^"]+)"/)?.[1];
      if (!contentId) return refuse(422, 'Missing CPIX@contentId');
      if (!/version="2\.3"/.test(root)) return refuse(422, 'Unsupported CPIX@version');
      const ck = body.match(/<cpix:ContentKey kid="([0-9a-f-]{36})" commonEncryptionScheme="(cbcs|cenc)"\/>/);
      if (!ck) return refuse(422, 'Missing ContentKey@commonEncryptionScheme');
      const [, kid, scheme] = ck;
      if (!body.includes(`<cpix:ContentKeyUsageRule kid="${kid}" intendedTrackType="ALL"/>`)) return refuse(422, 'no usage rule');
      const asked = Object.entries(SYSTEMS).filter(([, id]) => body.includes(`<cpix:DRMSystem kid="${kid}" systemId="${id}">`));
      // FairPlay is cbcs only: asked for with cbcs, never with cenc.
      const want = scheme === 'cbcs' ? ['widevine', 'playready', 'fairplay'] : ['widevine', 'playready'];
      if (asked.map(([n]) => n).join() !== want.join()) return refuse(422, 'a DRMSystem per system the scheme allows');
      const kidHex = kid.replace(/-/g, '');
      const method = scheme === 'cbcs' ? 'SAMPLE-AES' : 'SAMPLE-AES-CTR';
      const wv = psshBox(SYSTEMS.widevine, Buffer.concat([Buffer.from([0x12, 0x10]), Buffer.from(kidHex, 'hex')]));
      const pro = Buffer.from(`<WRMHEADER version="4.0.0.0"><DATA><KID>${b64(Buffer.from(kidHex, 'hex'))}</KID></DATA></WRMHEADER>`, 'utf16le');
      const pr = psshBox(SYSTEMS.playready, pro);
      const corrupt = state.fail === 'pssh';
      const drm = {
        widevine: {
          pssh: corrupt ? psshBox(SYSTEMS.playready, Buffer.from('x')) : wv,
          cpd: `<cenc:pssh>${b64(wv)}</cenc:pssh>`,
          media: `#EXT-X-KEY:METHOD=${method},URI="data:text/plain;base64,${b64(wv)}",KEYID=0x${kidHex},KEYFORMAT="urn:uuid:${SYSTEMS.widevine}",KEYFORMATVERSIONS="1"`,
          master: `#EXT-X-SESSION-KEY:METHOD=${method},URI="data:text/plain;base64,${b64(wv)}",KEYID=0x${kidHex},KEYFORMAT="urn:uuid:${SYSTEMS.widevine}",KEYFORMATVERSIONS="1"`,
        },
        playready: {
          pssh: pr,
          cpd: `<cenc:pssh>${b64(pr)}</cenc:pssh><mspr:pro>${b64(pro)}</mspr:pro>`,
          media: `#EXT-X-KEY:METHOD=${method},URI="data:text/plain;charset=UTF-16;base64,${b64(pro)}",KEYFORMAT="com.microsoft.playready",KEYFORMATVERSIONS="1"`,
        },
        fairplay: {
          media: `#EXT-X-KEY:METHOD=${method},URI="skd://${kidHex}",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"`,
        },
      };
      const systems = asked.map(([name, id]) => {
        const d = drm[name];
        return `<cpix:DRMSystem kid="${kid}" systemId="${id}">`
          + (d.pssh ? `<cpix:PSSH>${b64(d.pssh)}</cpix:PSSH>` : '')
          + (d.cpd ? `<cpix:ContentProtectionData>${b64(d.cpd)}</cpix:ContentProtectionData>` : '')
          + `<cpix:HLSSignalingData playlist="media">${b64(d.media)}</cpix:HLSSignalingData>`
          + (d.master ? `<cpix:HLSSignalingData playlist="master">${b64(d.master)}</cpix:HLSSignalingData>` : '')
          + '</cpix:DRMSystem>';
      }).join('');
      const answer = `<?xml version="1.0" encoding="UTF-8"?><cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" contentId="${contentId}" version="2.3">`
        + `<cpix:ContentKeyList><cpix:ContentKey kid="${kid}" commonEncryptionScheme="${scheme}" explicitIV="${b64(randomBytes(16))}">`
        + `<cpix:Data><pskc:Secret><pskc:PlainValue>${b64(spekeKey(contentId, kidHex))}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList>`
        + `<cpix:DRMSystemList>${systems}</cpix:DRMSystemList>`
        + `<cpix:ContentKeyUsageRuleList><cpix:ContentKeyUsageRule kid="${kid}" intendedTrackType="ALL"/></cpix:ContentKeyUsageRuleList></cpix:CPIX>`;
      res.writeHead(200, { 'content-type': 'application/xml', 'x-speke-version': '2.0', 'x-speke-user-agent': 'brook-test-double' });
      res.end(answer);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${server.address().port}/speke/v2`;
  state.stop = () => new Promise((r) => server.close(r));
  return state;
}

before(async () => {
  keyDir = mkdtempSync(join(tmpdir(), 'brook-drm-keys-'));
  speke = await startSpeke();
  origin = await startOrigin({
    env: { BROOK_KEY_MASTER: MASTER, BROOK_KEY_FETCH_TOKEN: FETCH_TOKEN },
    config: `[admin]\ntoken = "${ADMIN}"\n[keys]\ndir = "${keyDir}"\nrotation_keys = 8\n`
      // Assets' keys from the DRM key provider, ClearKey offered too (for the players here).
      + `[keys.speke]\nurl = "${speke.url}"\ntoken = "${SPEKE_TOKEN}"\nclearkey = true\n`
      + `[streams.cam1]\nkey = "${DEV_KEY}"\nencryption = "cbcs"\n`
      + `[streams.rot]\nkey = "${DEV_KEY}"\nencryption = "cbcs"\nrotate_every_segments = 2\n`
      // Transcoded into two rungs (published only during its test).
      + `[streams.lad]\nkey = "${DEV_KEY}"\nencryption = "cbcs"\n[streams.lad.ladder]\nmode = "transcode"\naudio_bitrate_kbps = 32\n`
      + '[[streams.lad.ladder.rungs]]\nheight = 360\nbitrate_kbps = 600\npreset = "ultrafast"\n'
      + '[[streams.lad.ladder.rungs]]\nheight = 240\nbitrate_kbps = 400\npreset = "ultrafast"\n'
      // On-demand assets: the same key service, keys in the asset database.
      + `[storage]\nkind = "fs"\ndir = "${mkdtempSync(join(tmpdir(), 'brook-drm-bucket-'))}"\n`
      + '[ladder]\nrungs = [{ height = 360, bitrate_kbps = 600 }, { height = 240, bitrate_kbps = 300 }]\naudio_bitrate_kbps = 64\n'
      + `[vod]\nenabled = true\ndata_dir = "${mkdtempSync(join(tmpdir(), 'brook-drm-vod-'))}"\napi_token = "${VOD_API}"\n`
      + '[vod.encode]\npreset = "ultrafast"\n',
  });
  cam1Pub = startPublisher(origin.srtPort, { video: SOURCE });
  rotPub = startPublisher(origin.srtPort, { streamid: `publish:live/rot:${DEV_KEY}`, video: SOURCE });
  edge = await startWranglerEdge({
    ORIGIN_URL: origin.url,
    TOKEN_KEYS: keyList('k2026a'),
    EDGE_CONFIG: JSON.stringify({}),
    KEY_FETCH_TOKEN: FETCH_TOKEN,
    METRICS_TOKEN: METRICS,
  });
  // The encrypted asset transcodes while the live tests run.
  assetId = await uploadAsset({ encryption: 'cbcs' });
});

after(async () => {
  await browser?.close();
  await Promise.all([cam1Pub, rotPub, edge, origin, speke].map((p) => p?.stop()));
});

const vodApi = (path, init = {}) => fetch(`${origin.url}/api/v1/${path}`, {
  ...init, headers: { authorization: `Bearer ${VOD_API}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
});

/** An 8 s 640x360 file with sound, uploaded with tus (creation, one PATCH); the asset's id. */
async function uploadAsset(request) {
  const file = join(mkdtempSync(join(tmpdir(), 'brook-drm-src-')), 'src.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30:duration=8',
    '-f', 'lavfi', '-i', 'sine=frequency=440:duration=8', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-shortest', file]);
  const data = readFileSync(file);
  const created = await vodApi('uploads', { method: 'POST', body: JSON.stringify(request) });
  assert.equal(created.status, 201, await created.clone().text());
  const up = await created.json();
  assert.equal(up.encryption, request.encryption);
  const tus = { 'tus-resumable': '1.0.0' };
  const made = await fetch(up.url, { method: 'POST', headers: { ...tus, 'upload-length': String(data.length) } });
  assert.equal(made.status, 201, await made.text());
  const patched = await fetch(new URL(made.headers.get('location'), up.url), {
    method: 'PATCH', headers: { ...tus, 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' }, body: data,
  });
  assert.equal(patched.status, 204, await patched.text());
  return up.asset_id;
}

async function readyAsset(id) {
  return waitFor(`asset ${id} ready`, async () => {
    const a = await (await vodApi(`assets/${id}`)).json();
    if (a.status === 'errored') throw new Error(`asset errored: ${a.error}`);
    return a.status === 'ready' ? a : null;
  }, { timeout: 180000, interval: 500 });
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const licenseUrl = (stream, token) => `${edge.url}/live/${stream}/license${token ? `?${tokenQuery(token)}` : ''}`;

/** The KIDs (hex) in a media playlist's EXT-X-KEY tags, in order. */
const keyIds = (playlist) => [...playlist.matchAll(/#EXT-X-KEY:[^\n]*KEYID=0x([0-9a-fA-F]{32})/g)].map((m) => m[1].toLowerCase());

async function mediaPlaylist(stream) {
  const url = await mediaPlaylistUrl(origin.url, stream);
  return waitFor(`${stream} media playlist with a segment`, async () => {
    const r = await text(url);
    return r.status === 200 && r.body.includes('#EXTINF') ? { url, body: r.body } : null;
  }, { timeout: 30000, interval: 250 });
}

async function originKey(stream, kid, token = FETCH_TOKEN) {
  return fetch(`${origin.url}/keys/${stream}/${kid}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function license(stream, body, token = TOKEN) {
  return fetch(licenseUrl(stream, token), { method: 'POST', headers: { 'content-type': 'application/json' }, body });
}

async function edgeMetrics() {
  const res = await fetch(`${edge.url}/_brook/metrics`, { headers: { authorization: `Bearer ${METRICS}` } });
  assert.equal(res.status, 200);
  const out = {};
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

test('playlists and MPD signal ClearKey, never the key; a segment does not decode without it', async () => {
  const { url, body } = await mediaPlaylist('cam1');
  const kids = keyIds(body);
  assert.ok(kids.length >= 1, `EXT-X-KEY with KEYID in\n${body}`);
  assert.match(body, new RegExp(`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="/live/cam1/license\\?kid=${kids[0]}",KEYFORMAT="org.w3.clearkey"`));
  const key = await (await originKey('cam1', kids[0])).json();
  assert.equal(key.kid, kids[0]);
  const mpdUrl = url.replace(/[^/]+$/, 'manifest.mpd');
  const mpd = (await text(mpdUrl)).body;
  assert.match(mpd, /urn:mpeg:dash:mp4protection:2011/);
  assert.match(mpd, /urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e/);
  assert.ok(mpd.toLowerCase().includes(kids[0].replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-')), 'cenc:default_KID');
  for (const [what, textBody] of [['playlist', body], ['MPD', mpd]]) {
    for (const spelling of [key.key, key.key.toUpperCase(), b64url(Buffer.from(key.key, 'hex'))]) {
      assert.ok(!textBody.includes(spelling), `the key is not in the ${what}`);
    }
  }
  // The key store holds no key in the clear.
  const store = readFileSync(join(keyDir, 'keys.json'), 'utf8');
  assert.ok(store.includes(kids[0]) && !store.includes(key.key), 'keys.json: KID yes, key no');

  const map = body.match(/#EXT-X-MAP:URI="([^"]+)"/)[1];
  const seg = body.split('\n').find((l) => l && !l.startsWith('#'));
  const init = Buffer.from(await (await fetch(new URL(map, url))).arrayBuffer());
  const media = Buffer.from(await (await fetch(new URL(seg, url))).arrayBuffer());
  assert.ok(init.includes(Buffer.from('encv')) && init.includes(Buffer.from('tenc')), 'encv/tenc in the init');
  const decoded = await ffmpegDecode(init, media);
  assert.ok(decoded.code !== 0 || decoded.output.trim() !== '',
    'ffmpeg complains decoding the encrypted segment without its key');
  console.log(`# ffmpeg without the key: ${decoded.output.trim().split('\n').slice(0, 2).join(' | ')}`);
});

test('the origin serves keys only to the edge: bearer token, per stream, 404 unknown', async () => {
  const kid = keyIds((await mediaPlaylist('cam1')).body)[0];
  assert.equal((await originKey('cam1', kid, null)).status, 401);
  assert.equal((await originKey('cam1', kid, 'not-the-fetch-token')).status, 401);
  const ok = await originKey('cam1', kid);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('cache-control'), 'no-store');
  assert.equal((await originKey('rot', kid)).status, 404, "another stream's KID");
  assert.equal((await originKey('cam1', '00'.repeat(16))).status, 404);
  assert.equal((await originKey('cam1', 'zz')).status, 404);
});

test('license endpoint: token checks as for the video, ClearKey JWK set, bad input 4xx, refusals counted', async () => {
  const kid = keyIds((await mediaPlaylist('cam1')).body)[0];
  const key = (await (await originKey('cam1', kid)).json()).key;
  const request = JSON.stringify({ kids: [b64url(Buffer.from(kid, 'hex'))], type: 'temporary' });
  const before = await edgeMetrics();

  const res = await license('cam1', request);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.deepEqual(await res.json(), {
    keys: [{ kty: 'oct', kid: b64url(Buffer.from(kid, 'hex')), k: b64url(Buffer.from(key, 'hex')) }],
    type: 'temporary',
  });
  // The same viewer token in a cookie or as a bearer token works as for the video.
  const bearer = await fetch(licenseUrl('cam1'), { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: request });
  assert.equal(bearer.status, 200);
  const preflight = await fetch(licenseUrl('cam1'), {
    method: 'OPTIONS', headers: { origin: 'http://player.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });
  assert.equal(preflight.status, 204);
  assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);

  for (const [what, token, status] of [
    ['no token', null, 401], ['expired', EXPIRED, 403], ['bad signature', WRONG_KEY, 403], ['garbage', 'exp=1~hmac=00', 403],
  ]) {
    assert.equal((await license('cam1', request, token)).status, status, what);
  }
  // A token for cam1 only gets no license for rot (the ACL is the stream's path).
  const rotKid = keyIds((await mediaPlaylist('rot')).body)[0];
  const rotRequest = JSON.stringify({ kids: [b64url(Buffer.from(rotKid, 'hex'))], type: 'temporary' });
  assert.equal((await license('rot', rotRequest, CAM1_ONLY)).status, 403, 'ACL of another stream');
  assert.equal((await license('rot', rotRequest)).status, 200);
  // cam1's KID asked of rot's endpoint: not rot's key.
  assert.equal((await license('rot', request)).status, 404, "another stream's KID");

  const many = JSON.stringify({ kids: Array.from({ length: 17 }, () => b64url(randomBytes(16))) });
  for (const [what, body, status] of [
    ['malformed JSON', '{"kids":[', 400],
    ['not an object', '[]', 400],
    ['short KID', JSON.stringify({ kids: ['AAAA'] }), 400],
    ['persistent', JSON.stringify({ kids: [b64url(Buffer.from(kid, 'hex'))], type: 'persistent-license' }), 400],
    ['17 KIDs', many, 400],
    ['body over 8 KiB', JSON.stringify({ kids: [], pad: 'x'.repeat(9000) }), 413],
    ['unknown KID', JSON.stringify({ kids: [b64url(randomBytes(16))] }), 404],
  ]) {
    assert.equal((await license('cam1', body)).status, status, what);
  }
  assert.equal((await fetch(licenseUrl('cam1', TOKEN))).status, 405, 'GET');

  const after = await edgeMetrics();
  const denied = (labels) => counter(after, 'brook_edge_license_denied_total', labels)
    - counter(before, 'brook_edge_license_denied_total', labels);
  assert.equal(denied({ reason: 'no_token' }), 1);
  assert.equal(denied({ reason: 'token' }), 4);
  assert.equal(denied({ reason: 'malformed' }), 4);
  assert.equal(denied({ reason: 'too_many_kids' }), 1);
  assert.equal(denied({ reason: 'too_large' }), 1);
  assert.equal(denied({ reason: 'unknown_kid' }), 2);
  assert.ok(counter(after, 'brook_edge_licenses_total') - counter(before, 'brook_edge_licenses_total') >= 3);
});

async function playerPage() {
  browser ??= await launchChromium();
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  // An empty page at the edge's origin (same-origin playlists and licenses), made by the
  // browser itself: not the viewer page, whose own player and scripts are
  // not this harness's (a navigation to it timed out now and then in CI).
  const harness = `${edge.url}/_harness.html`;
  await page.route(harness, (route) => route.fulfill({
    contentType: 'text/html', body: '<!doctype html><html><head><title>harness</title></head><body></body></html>',
  }));
  await page.goto(harness);
  page.on('close', () => { context.close().catch(() => {}); });
  return page;
}

async function hlsPage(stream, token, licenseToken = token) {
  return hlsPlayer(
    `${edge.url}/live/${stream}/index.m3u8${token ? `?${tokenQuery(token)}` : ''}`,
    licenseUrl(stream, licenseToken),
  );
}

/** hls.js playing `src` with ClearKey licenses from `lic`. */
async function hlsPlayer(src, lic) {
  const page = await playerPage();
  if (process.env.DRM_DEBUG) {
    page.on('console', (m) => { if (/EME|key|Key|license/.test(m.text())) console.log(`# page: ${m.text().slice(0, 300)}`); });
  }
  await page.addScriptTag({ content: readFileSync(join(ROOT, 'node_modules/hls.js/dist/hls.min.js'), 'utf8') });
  await page.evaluate(({ src, licenseUrl: lic, debug }) => {
    document.body.innerHTML = '<video id="v" muted autoplay playsinline></video>';
    const video = document.getElementById('v');
    const hls = new window.Hls({
      debug: debug ? { log: console.log, warn: console.log, error: console.log, info: () => {}, debug: () => {} } : false,
      lowLatencyMode: true,
      emeEnabled: true,
      drmSystems: {
        'org.w3.clearkey': {
          licenseUrl: lic,
          // hls.js maps an "encrypted" event to a playlist key only for
          // Widevine, PlayReady and FairPlay; for ClearKey it gives the event's
          // init data to whichever key it is loading, which after a rotation
          // can be another key's. Asking for each EXT-X-KEY's own KEYID
          // (W3C "keyids" init data) makes every session request its key.
          generateRequest(initDataType, initData, context) {
            const kid = context?.decryptdata?.keyId;
            if (!kid || kid.length !== 16) return { initDataType, initData };
            const b64 = btoa(String.fromCharCode(...kid)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
            return { initDataType: 'keyids', initData: new TextEncoder().encode(JSON.stringify({ kids: [b64] })).buffer };
          },
        },
      },
    });
    const state = { video, hls, errors: [], fatal: [], keyIds: new Set() };
    hls.on(window.Hls.Events.ERROR, (_, d) => {
      const e = `${d.type}/${d.details}${d.response?.code ? ` ${d.response.code}` : ''}`;
      state.errors.push(e);
      if (d.fatal) state.fatal.push(e);
    });
    hls.on(window.Hls.Events.KEY_LOADED, (_, d) => {
      const id = d.keyInfo?.decryptdata?.keyId;
      if (id) state.keyIds.add(Array.from(id, (b) => b.toString(16).padStart(2, '0')).join(''));
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    window.player = state;
  }, { src, licenseUrl: lic, debug: !!process.env.DRM_DEBUG });
  return page;
}

async function dashPage(mpdUrl, lic, { shaka = false } = {}) {
  const page = await playerPage();
  if (shaka) {
    await page.addScriptTag({ content: readFileSync(SHAKA_JS, 'utf8') });
    await page.evaluate(async ({ src, licenseUrl: l }) => {
      document.body.innerHTML = '<video id="v" muted autoplay playsinline></video>';
      const video = document.getElementById('v');
      window.shaka.polyfill.installAll();
      const player = new window.shaka.Player();
      const state = { video, errors: [], fatal: [] };
      player.addEventListener('error', (e) => { state.errors.push(`${e.detail?.code}`); state.fatal.push(`${e.detail?.code}`); });
      player.configure({ drm: { servers: { 'org.w3.clearkey': l }, retryParameters: { maxAttempts: 1 } } });
      window.player = state;
      await player.attach(video);
      player.load(src).catch((e) => { state.errors.push(`load ${e.code}`); state.fatal.push(`load ${e.code}`); });
    }, { src: mpdUrl, licenseUrl: lic });
    return page;
  }
  await page.addScriptTag({ content: readFileSync(join(ROOT, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'), 'utf8') });
  await page.evaluate(({ src, licenseUrl: l }) => {
    document.body.innerHTML = '<video id="v" muted autoplay playsinline></video>';
    const video = document.getElementById('v');
    const player = window.dashjs.MediaPlayer().create();
    const state = { video, errors: [], fatal: [] };
    player.on(window.dashjs.MediaPlayer.events.ERROR, (e) => {
      const s = JSON.stringify(e.error ?? e).slice(0, 200);
      state.errors.push(s);
      state.fatal.push(s);
    });
    player.setProtectionData({ 'org.w3.clearkey': { serverURL: l } });
    player.initialize(video, src, true);
    window.player = state;
  }, { src: mpdUrl, licenseUrl: lic });
  return page;
}

/** What the page's player is doing, for failure messages. */
const playerState = (page) => page.evaluate(() => {
  const { video, errors } = window.player;
  const b = video.buffered;
  const ranges = Array.from({ length: b.length }, (_, i) => `${b.start(i).toFixed(1)}-${b.end(i).toFixed(1)}`);
  return `t=${video.currentTime.toFixed(1)} readyState=${video.readyState} buffered=[${ranges.join(' ')}] `
    + `keys=${window.player.keyIds ? [...window.player.keyIds].join(',') : '-'} errors=${errors.join(' | ')}`;
});

/** Waits until the page's player has played `seconds`; returns how far it got. */
async function plays(page, seconds, what) {
  const fail = async (e) => { throw new Error(`${what}: ${e.message}\n${await playerState(page)}`); };
  await page.waitForFunction(() => window.player.video.currentTime > 0, null, { timeout: 40000 }).catch(fail);
  const t0 = await page.evaluate(() => window.player.video.currentTime);
  await page.waitForFunction((t) => window.player.video.currentTime > t, t0 + seconds, { timeout: (seconds + 20) * 1000 })
    .catch(fail);
  const s = await page.evaluate(() => ({ t: window.player.video.currentTime, fatal: window.player.fatal, errors: window.player.errors }));
  assert.deepEqual(s.fatal, [], `${what}: no fatal error`);
  return s;
}

/**
 * Waits for the player's first error, then 4 s more: how many video frames it
 * decoded by then (currentTime says little: a live player seeks to the live
 * edge before it has anything to play) and what it reported.
 */
async function refused(page, ms = 20000) {
  await page.waitForFunction(() => window.player.errors.length > 0, null, { timeout: ms }).catch(() => {});
  await page.waitForTimeout(4000);
  return page.evaluate(() => ({
    frames: window.player.video.getVideoPlaybackQuality().totalVideoFrames,
    errors: window.player.errors,
  }));
}

async function cam1Mpd(token) {
  return streamMpd('cam1', token);
}

async function streamMpd(stream, token) {
  const media = new URL(await mediaPlaylistUrl(origin.url, stream));
  const path = media.pathname.replace(/[^/]+$/, 'manifest.mpd');
  return `${edge.url}${path}${token ? `?${tokenQuery(token)}` : ''}`;
}

test('hls.js plays the encrypted stream through the edge with a token (ClearKey license from the edge)', async () => {
  const page = await hlsPage('cam1', TOKEN);
  const s = await plays(page, 6, 'hls.js');
  console.log(`# hls.js played to ${s.t.toFixed(1)} s; non-fatal: ${s.errors.join(', ') || 'none'}`);
  await page.close();
});

test('hls.js with a valid video token but an expired one for the license: key error, no playback', async () => {
  const page = await hlsPage('cam1', TOKEN, EXPIRED);
  const r = await refused(page);
  assert.equal(r.frames, 0, 'no frame decoded');
  assert.ok(r.errors.some((e) => /^keySystemError\//.test(e)), `a key system error, got ${r.errors.join(', ')}`);
  console.log(`# hls.js without a valid license token: ${[...new Set(r.errors)].join(', ')}`);
  await page.close();
});

test('dash.js plays the encrypted MPD through the edge; without a token the license is refused', async () => {
  const page = await dashPage(await cam1Mpd(TOKEN), licenseUrl('cam1', TOKEN));
  const s = await plays(page, 6, 'dash.js');
  console.log(`# dash.js played to ${s.t.toFixed(1)} s`);
  await page.close();
  const denied = await dashPage(await cam1Mpd(TOKEN), licenseUrl('cam1', null));
  const r = await refused(denied);
  assert.equal(r.frames, 0, 'no frame decoded');
  assert.ok(r.errors.some((e) => /license|key|protection|drm/i.test(e)), `a protection error, got ${r.errors.join('\n')}`);
  console.log(`# dash.js without a token: ${r.errors[0]}`);
  await denied.close();
});

test('Shaka Player plays the encrypted MPD through the edge; without a token the license is refused', async () => {
  assert.ok(existsSync(SHAKA_JS), `Shaka Player at ${SHAKA_JS} (cargo xtask setup installs it)`);
  const page = await dashPage(await cam1Mpd(TOKEN), licenseUrl('cam1', TOKEN), { shaka: true });
  const s = await plays(page, 6, 'Shaka');
  console.log(`# Shaka played to ${s.t.toFixed(1)} s`);
  await page.close();
  const denied = await dashPage(await cam1Mpd(TOKEN), licenseUrl('cam1', null), { shaka: true });
  const r = await refused(denied);
  assert.equal(r.frames, 0, 'no frame decoded');
  // 6007 LICENSE_REQUEST_FAILED, 6014 EXPIRED..., any 6xxx is a DRM error.
  assert.ok(r.errors.some((e) => /\b6\d{3}\b/.test(e)), `a DRM error (6xxx), got ${r.errors.join(', ')}`);
  console.log(`# Shaka without a token: ${r.errors.join(', ')}`);
  await denied.close();
});

test('hls.js keeps playing across key rotations (a new key every 2 segments)', async () => {
  // A cycle of 8 keys, 2 segments each: the live window (10 segments) lists 5
  // or 6 of them when the player joins; the others are new to it while it plays.
  const atJoin = new Set(keyIds((await mediaPlaylist('rot')).body));
  const before = counter(await edgeMetrics(), 'brook_edge_licenses_total');
  const page = await hlsPage('rot', TOKEN);
  const s = await plays(page, 14, 'hls.js across rotations');
  const seen = await page.evaluate(() => [...window.player.keyIds]);
  const licenses = counter(await edgeMetrics(), 'brook_edge_licenses_total') - before;
  const fresh = seen.filter((k) => !atJoin.has(k));
  console.log(`# hls.js across rotations: played to ${s.t.toFixed(1)} s, ${seen.length} keys loaded `
    + `(${fresh.length} not listed when it joined), ${licenses} licenses; non-fatal: ${s.errors.join(', ') || 'none'}`);
  assert.ok(seen.length >= 2, 'more than one key used');
  assert.ok(fresh.length >= 1, 'a key that came with a rotation after the player joined');
  assert.ok(licenses >= seen.length, 'a license per key');
  await page.close();
});

test('the transcoded ladder: every rung and the audio encrypted under the stream key, hls.js, dash.js and Shaka Player play it through the edge', async () => {
  const pub = startPublisher(origin.srtPort, { streamid: `publish:live/lad:${DEV_KEY}`, video: SOURCE, gop: 60 });
  try {
    const mv = await waitFor('the ladder in the multivariant playlist', async () => {
      const r = await text(`${origin.url}/live/lad/index.m3u8`);
      return r.status === 200 && (r.body.match(/RESOLUTION=/g) ?? []).length >= 2 ? r.body : null;
    }, { timeout: 60000, interval: 500 });
    const base = `${origin.url}/live/lad/index.m3u8`;
    const uris = mv.split('\n').filter((l) => l && !l.startsWith('#'))
      .concat([...mv.matchAll(/#EXT-X-MEDIA:[^\n]*URI="([^"]+)"/g)].map((m) => m[1]));
    const kids = new Set();
    for (const uri of new Set(uris)) {
      const url = new URL(uri, base).href;
      const body = await waitFor(`${uri} with a segment`, async () => {
        const r = await text(url);
        return r.status === 200 && r.body.includes('#EXTINF') ? r.body : null;
      }, { timeout: 30000, interval: 250 });
      keyIds(body).forEach((k) => kids.add(k));
      const map = body.match(/#EXT-X-MAP:URI="([^"]+)"/)[1];
      const init = Buffer.from(await (await fetch(new URL(map, url))).arrayBuffer());
      assert.ok(init.includes(Buffer.from('encv')) || init.includes(Buffer.from('enca')), `${uri}: encrypted sample entry`);
    }
    assert.ok(uris.length >= 3, `two rungs and the audio: ${uris.join(' ')}`);
    assert.equal(kids.size, 1, 'one key for every rendition of the session');
    const page = await hlsPage('lad', TOKEN);
    const s = await plays(page, 6, 'hls.js on the transcoded ladder');
    console.log(`# transcoded ladder (${uris.length} renditions, one KID): hls.js played to ${s.t.toFixed(1)} s`);
    await page.close();
    // DASH players on the same encrypted ladder.
    for (const shaka of [false, true]) {
      const name = shaka ? 'Shaka Player' : 'dash.js';
      const dash = await dashPage(await streamMpd('lad', TOKEN), licenseUrl('lad', TOKEN), { shaka });
      const d = await plays(dash, 4, `${name} on the transcoded ladder`);
      console.log(`# transcoded ladder: ${name} played to ${d.t.toFixed(1)} s`);
      await dash.close();
    }
  } finally {
    await pub.stop();
  }
});

test('a revoked key is no longer served (origin at once, edge within its 30 s cache); rotate applies to the next session', async () => {
  const auth = { authorization: `Bearer ${ADMIN}` };
  const list = async () => (await (await fetch(`${origin.url}/admin/streams/rot/keys`, { headers: auth })).json()).keys;
  const keys = await list();
  assert.equal(keys.filter((k) => k.current).length, 8, 'rotation_keys = 8 in the cycle');
  assert.ok(keys.every((k) => !('key' in k)), 'the admin API never shows a key');
  const victim = keyIds((await mediaPlaylist('rot')).body).at(-1);
  const asked = JSON.stringify({ kids: [b64url(Buffer.from(victim, 'hex'))] });
  assert.equal((await license('rot', asked)).status, 200, 'served (and now cached by the edge)');
  const unauth = await fetch(`${origin.url}/admin/streams/rot/keys/${victim}/revoke`, { method: 'POST' });
  assert.equal(unauth.status, 401);
  const revokedAt = Date.now();
  const r = await fetch(`${origin.url}/admin/streams/rot/keys/${victim}/revoke`, { method: 'POST', headers: auth });
  assert.equal(r.status, 200);
  assert.equal((await originKey('rot', victim)).status, 404, 'the origin no longer serves it');
  assert.ok((await list()).find((k) => k.kid === victim).revoked);
  await waitFor('the edge refusing the revoked key', async () => (await license('rot', asked)).status === 404,
    { timeout: 40000, interval: 1000 });
  const after = (Date.now() - revokedAt) / 1000;
  console.log(`# revoked key refused by the edge ${after.toFixed(1)} s after the revocation`);
  assert.ok(after <= 35, 'within the 30 s key cache (plus the 1 s poll and the requests)');

  const rotated = await (await fetch(`${origin.url}/admin/streams/cam1/keys/rotate`, { method: 'POST', headers: auth })).json();
  assert.equal(rotated.applies_from, 'next_session');
  assert.equal(rotated.kids.length, 1);
  const current = keyIds((await mediaPlaylist('cam1')).body);
  assert.ok(!current.includes(rotated.kids[0]), 'the running session keeps its key');
});

/** A VOD asset's URL at the edge, with a token for the asset. */
const vodUrl = (id, name, token) => `${edge.url}/vod/${id}/${name}${token ? `?${tokenQuery(token)}` : ''}`;
const assetToken = (id) => signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: `/vod/${id}/*`, id: 'drm-vod', ttl: 3600 });

test('an encrypted VOD asset: every rendition encrypted under its one key, ClearKey signalled, the key never in a manifest, not decodable without it', async () => {
  const asset = await readyAsset(assetId);
  assert.equal(asset.encryption.scheme, 'cbcs');
  assert.match(asset.encryption.kid, /^[0-9a-f]{32}$/);
  assert.equal(asset.encryption.revoked, false);
  assert.ok(!('key' in asset.encryption), 'the API never shows the key');
  const kid = asset.encryption.kid;
  const base = `${origin.url}/vod/${assetId}/`;
  const mv = (await text(`${base}index.m3u8`)).body;
  const uris = mv.split('\n').filter((l) => l && !l.startsWith('#'))
    .concat([...mv.matchAll(/#EXT-X-MEDIA:[^\n]*URI="([^"]+)"/g)].map((m) => m[1]));
  assert.ok(uris.length >= 3, `two rungs and the audio: ${uris.join(' ')}`);
  // EXT-X-SESSION-KEY: the same key, for players that preload it; kept by the edge.
  const sessionKey = new RegExp(`#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="/vod/${assetId}/license\\?kid=${kid}[^"]*",KEYFORMAT="org.w3.clearkey",KEYID=0x${kid}`);
  assert.match(mv, sessionKey);
  assert.match((await text(vodUrl(assetId, 'index.m3u8', assetToken(assetId)))).body, sessionKey);
  const key = await (await fetch(`${origin.url}/keys/asset/${assetId}/${kid}`, { headers: { authorization: `Bearer ${FETCH_TOKEN}` } })).json();
  const spellings = [key.key, key.key.toUpperCase(), b64url(Buffer.from(key.key, 'hex'))];
  for (const uri of new Set(uris)) {
    const body = (await text(new URL(uri, base).href)).body;
    assert.match(body, new RegExp(`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="/vod/${assetId}/license\\?kid=${kid}",KEYFORMAT="org.w3.clearkey"`), uri);
    assert.deepEqual([...new Set(keyIds(body))], [kid], `${uri}: the asset's one KID`);
    assert.ok(spellings.every((k) => !body.includes(k)), `${uri}: the key is not in the playlist`);
    const map = body.match(/#EXT-X-MAP:URI="([^"]+)"/)[1];
    const init = Buffer.from(await (await fetch(new URL(map, base))).arrayBuffer());
    assert.ok(init.includes(Buffer.from('encv')) || init.includes(Buffer.from('enca')), `${uri}: encrypted sample entry`);
    if (init.includes(Buffer.from('encv'))) {
      const seg = body.split('\n').find((l) => l && !l.startsWith('#'));
      const media = Buffer.from(await (await fetch(new URL(seg, base))).arrayBuffer());
      const decoded = await ffmpegDecode(init, media);
      assert.ok(decoded.code !== 0 || decoded.output.trim() !== '', `${uri}: ffmpeg complains without the key`);
    }
  }
  const mpd = (await text(`${base}manifest.mpd`)).body;
  assert.match(mpd, /urn:mpeg:dash:mp4protection:2011/);
  assert.match(mpd, /urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e/);
  assert.ok(mpd.toLowerCase().includes(kid.replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-')), 'cenc:default_KID');
  assert.ok(spellings.every((k) => !mpd.includes(k)), 'the key is not in the MPD');
  // The poster stays in the clear (an image), as everywhere.
  assert.equal((await fetch(`${base}poster.jpg`)).status, 200);
});

test('SPEKE v2: the asset key and the Widevine, PlayReady and FairPlay signalling come from the DRM key provider, as it wrote them', async () => {
  const asset = await readyAsset(assetId);
  const { kid } = asset.encryption;
  assert.deepEqual(asset.encryption.key_systems, ['clearkey', 'widevine', 'playready', 'fairplay']);
  // What Brook asked: one CPIX 2.3 request for this asset and KID.
  const asked = speke.requests.filter((r) => r.body.includes(`contentId="${assetId}"`));
  assert.equal(asked.length, 1);
  assert.equal(asked[0].headers['x-speke-version'], '2.0');
  const uuidKid = kid.replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
  assert.ok(asked[0].body.includes(`<cpix:ContentKey kid="${uuidKid}" commonEncryptionScheme="cbcs"/>`), asked[0].body);
  // The media is encrypted with the provider's key: the origin holds exactly
  // that key (and the players in the next tests decrypt with it).
  const key = await (await fetch(`${origin.url}/keys/asset/${assetId}/${kid}`, { headers: { authorization: `Bearer ${FETCH_TOKEN}` } })).json();
  assert.equal(key.key, spekeKey(assetId, kid).toString('hex'));
  const base = `${origin.url}/vod/${assetId}/`;
  const mv = (await text(`${base}index.m3u8`)).body;
  assert.match(mv, new RegExp(`#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="data:text/plain;base64,[^"]+",KEYFORMAT="urn:uuid:${SYSTEMS.widevine}",KEYID=0x${kid},KEYFORMATVERSIONS="1"`));
  const video = mv.split('\n').find((l) => l && !l.startsWith('#'));
  const media = (await text(new URL(video, base).href)).body;
  assert.match(media, new RegExp(`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://${kid}",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"`));
  assert.match(media, new RegExp(`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="data:text/plain;base64,[^"]+",KEYFORMAT="urn:uuid:${SYSTEMS.widevine}",KEYID=0x${kid},KEYFORMATVERSIONS="1"`));
  assert.match(media, /#EXT-X-KEY:METHOD=SAMPLE-AES,URI="data:text\/plain;charset=UTF-16;base64,[^"]+",KEYFORMAT="com.microsoft.playready",KEYFORMATVERSIONS="1"/);
  // The pssh boxes the provider gave, byte for byte, in the init segment.
  const map = media.match(/#EXT-X-MAP:URI="([^"]+)"/)[1];
  const init = Buffer.from(await (await fetch(new URL(map, base))).arrayBuffer());
  const wv = psshBox(SYSTEMS.widevine, Buffer.concat([Buffer.from([0x12, 0x10]), Buffer.from(kid, 'hex')]));
  assert.ok(init.includes(wv), 'the Widevine pssh in the init');
  assert.ok(init.includes(Buffer.from(SYSTEMS.playready.replace(/-/g, ''), 'hex')), 'the PlayReady pssh in the init');
  const mpd = (await text(`${base}manifest.mpd`)).body;
  assert.ok(mpd.includes(`<ContentProtection schemeIdUri="urn:uuid:${SYSTEMS.widevine}" value="Widevine">\n        <cenc:pssh>${b64(wv)}</cenc:pssh>`), mpd);
  assert.match(mpd, new RegExp(`<ContentProtection schemeIdUri="urn:uuid:${SYSTEMS.playready}" value="MSPR 2.0">\\s*<cenc:pssh>[^<]+</cenc:pssh><mspr:pro>[^<]+</mspr:pro>`));
  assert.ok(!mpd.includes(SYSTEMS.fairplay), 'FairPlay is HLS only');
  console.log(`# SPEKE: key and 3 DRM systems' signalling from the provider; ${speke.requests.length} request(s) so far`);
});

test('SPEKE v2: a provider that refuses or answers badly gets the upload creation a clear 502, and no asset is left', async () => {
  const count = async () => (await (await vodApi('assets')).json()).assets.length;
  const before = await count();
  for (const [fail, want] of [['422', /DRM key provider: key provider answered 422: Non compliant/], ['pssh', /DRM key provider: .*another system's/]]) {
    speke.fail = fail;
    try {
      const r = await vodApi('uploads', { method: 'POST', body: JSON.stringify({ encryption: 'cbcs' }) });
      assert.equal(r.status, 502);
      assert.match((await r.json()).error, want);
    } finally {
      speke.fail = null;
    }
  }
  assert.equal(await count(), before, 'no asset made');
  // A clear upload needs no provider.
  const clear = await vodApi('uploads', { method: 'POST', body: JSON.stringify({ encryption: 'none' }) });
  assert.equal(clear.status, 201);
});

test('the origin serves an asset key only to the edge: bearer token, that asset, its KID', async () => {
  const { kid } = (await readyAsset(assetId)).encryption;
  const get = (path, token = FETCH_TOKEN) => fetch(`${origin.url}/keys/${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal((await get(`asset/${assetId}/${kid}`, null)).status, 401);
  assert.equal((await get(`asset/${assetId}/${kid}`, 'not-the-fetch-token')).status, 401);
  assert.equal((await get(`asset/${assetId}/${kid}`)).status, 200);
  assert.equal((await get(`asset/${assetId}/${'00'.repeat(16)}`)).status, 404, 'not its KID');
  assert.equal((await get(`asset/${'0'.repeat(32)}/${kid}`)).status, 404, 'another asset');
  assert.equal((await get(`asset/${assetId.toUpperCase()}/${kid}`)).status, 404, 'not an asset id');
  assert.equal((await get(`asset/${kid}`)).status, 404, 'no asset');
});

test('hls.js, dash.js and Shaka Player play the encrypted asset through the edge with a token; without one the license is refused', async () => {
  await readyAsset(assetId);
  const token = assetToken(assetId);
  const lic = vodUrl(assetId, 'license', token);
  const hls = await hlsPlayer(vodUrl(assetId, 'index.m3u8', token), lic);
  const a = await plays(hls, 4, 'hls.js on the encrypted asset');
  console.log(`# encrypted asset: hls.js played to ${a.t.toFixed(1)} s`);
  await hls.close();
  const dash = await dashPage(vodUrl(assetId, 'manifest.mpd', token), lic);
  const b = await plays(dash, 4, 'dash.js on the encrypted asset');
  console.log(`# encrypted asset: dash.js played to ${b.t.toFixed(1)} s`);
  await dash.close();
  const shaka = await dashPage(vodUrl(assetId, 'manifest.mpd', token), lic, { shaka: true });
  const c = await plays(shaka, 4, 'Shaka Player on the encrypted asset');
  console.log(`# encrypted asset: Shaka Player played to ${c.t.toFixed(1)} s`);
  await shaka.close();
  // A token for another asset, or none: the license is refused, nothing decoded.
  const other = assetToken('0'.repeat(32));
  const denied = await hlsPlayer(vodUrl(assetId, 'index.m3u8', token), vodUrl(assetId, 'license', other));
  const r = await refused(denied);
  assert.equal(r.frames, 0, 'no frame decoded');
  assert.ok(r.errors.some((e) => /^keySystemError\//.test(e)), `a key system error, got ${r.errors.join(', ')}`);
  await denied.close();
  const kid = (await readyAsset(assetId)).encryption.kid;
  const asked = JSON.stringify({ kids: [b64url(Buffer.from(kid, 'hex'))], type: 'temporary' });
  const post = (url) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: asked });
  assert.equal((await post(vodUrl(assetId, 'license'))).status, 401, 'no token');
  assert.equal((await post(vodUrl(assetId, 'license', TOKEN))).status, 403, 'a live token is not an asset token');
  assert.equal((await post(vodUrl('0'.repeat(32), 'license', other))).status, 404, "another asset has not this KID");
});

test('asset encryption requests are checked; a revoked asset key is refused at once by the origin; a deleted asset has no key', async () => {
  for (const [body, want] of [
    [{ encryption: 'aes-128' }, /encryption must be "cbcs", "cenc" or "none"/],
    [{ encryption: 7 }, /not an upload request/],
  ]) {
    const r = await vodApi('uploads', { method: 'POST', body: JSON.stringify(body) });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error, want);
  }
  const clear = await (await vodApi('uploads', { method: 'POST', body: JSON.stringify({ encryption: 'none' }) })).json();
  assert.equal(clear.encryption, null);
  assert.equal((await vodApi(`assets/${clear.asset_id}/key/revoke`, { method: 'POST' })).status, 404, 'not encrypted');
  const cenc = await (await vodApi('uploads', { method: 'POST', body: JSON.stringify({ encryption: 'cenc' }) })).json();
  assert.equal(cenc.encryption, 'cenc', JSON.stringify(cenc));
  assert.deepEqual((await (await vodApi(`assets/${cenc.asset_id}`)).json()).encryption.key_systems,
    ['clearkey', 'widevine', 'playready'], 'no FairPlay with cenc');

  const { kid } = (await readyAsset(assetId)).encryption;
  const key = () => fetch(`${origin.url}/keys/asset/${assetId}/${kid}`, { headers: { authorization: `Bearer ${FETCH_TOKEN}` } });
  assert.equal((await key()).status, 200);
  assert.equal((await fetch(`${origin.url}/api/v1/assets/${assetId}/key/revoke`, { method: 'POST' })).status, 401);
  assert.equal((await vodApi(`assets/${assetId}/key/revoke`, { method: 'GET' })).status, 405);
  const revoked = await vodApi(`assets/${assetId}/key/revoke`, { method: 'POST' });
  assert.equal(revoked.status, 200);
  assert.equal((await revoked.json()).encryption.revoked, true);
  assert.equal((await key()).status, 404, 'the origin no longer serves it');
  // The cenc asset (still waiting for its upload) has its key from creation; deleting it removes it.
  const cencKid = (await (await vodApi(`assets/${cenc.asset_id}`)).json()).encryption.kid;
  const cencKey = () => fetch(`${origin.url}/keys/asset/${cenc.asset_id}/${cencKid}`, { headers: { authorization: `Bearer ${FETCH_TOKEN}` } });
  assert.equal((await cencKey()).status, 200);
  assert.equal((await vodApi(`assets/${cenc.asset_id}`, { method: 'DELETE' })).status, 202);
  assert.equal((await cencKey()).status, 404, 'deleting: no key');
});
