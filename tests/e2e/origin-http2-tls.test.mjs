// HTTP/2 and TLS at the origin, end to end: h2c with prior knowledge, HTTPS
// with a certificate made by the openssl CLI at test time (ALPN h2 and
// http/1.1), LL-HLS blocking reload and the preload-hinted part multiplexed on
// one HTTP/2 connection (cleartext and TLS), request bodies over HTTP/2, the
// framing of 204 and 304 answers as strict clients see it (curl --http1.1,
// --http2, --http2-prior-knowledge), and hls.js playing over HTTPS (HTTP/2)
// in Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { mkdtempSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, DEV_KEY, start, freePort, startOrigin, startPublisher, launchChromium, mediaPlaylistUrl,
  watchPlayback, waitFor,
} from './lib.mjs';

const ADMIN = '0123456789abcdef-admin';
let origin, publisher, browser, certPem, certFile, tlsPort, https, mediaPath;

/** Runs a command to its end; its output, or an error with it. */
async function run(cmd, args) {
  const p = start(cmd, cmd, args);
  const { code } = await p.exited;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${p.log}`);
  return p.log;
}

before(async () => {
  // A self-signed certificate for localhost and 127.0.0.1, made now.
  const dir = mkdtempSync(join(tmpdir(), 'brook-tls-'));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  certPem = readFileSync(cert);
  certFile = cert;
  tlsPort = await freePort();
  https = `https://localhost:${tlsPort}`;
  origin = await startOrigin({
    config: `[http]\nh2c = true\n[http.tls]\nlisten = "127.0.0.1:${tlsPort}"\ncert = "${cert}"\nkey = "${key}"\n`
      + `[admin]\ntoken = "${ADMIN}"\n[whip]\nmax_offer_bytes = 2048\n[streams.cam1]\nkey = "${DEV_KEY}"\n`,
  });
  publisher = startPublisher(origin.srtPort, { video: 'testsrc2=size=640x360:rate=30' });
  mediaPath = new URL(await mediaPlaylistUrl(origin.url)).pathname;
});

after(async () => {
  await browser?.close();
  await Promise.all([publisher, origin].map((p) => p?.stop()));
});

/** An HTTP/2 session: h2c with prior knowledge, or TLS (ALPN h2) checked against the test certificate. */
async function session(tls) {
  const s = tls
    ? h2connect(`https://127.0.0.1:${tlsPort}`, { ca: certPem, servername: 'localhost' })
    : h2connect(origin.url);
  await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  return s;
}

/** One request on an HTTP/2 session; the whole answer. */
function h2request(s, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = s.request({ ':method': method, ':path': path, ...headers }, { endStream: body === undefined });
    const chunks = [];
    let head = {};
    req.on('response', (h) => { head = h; });
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve({ status: head[':status'], headers: head, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/**
 * RFC 8216bis §6.2.5.2 on one HTTP/2 connection: the blocking reload for the
 * hinted part, the hinted part itself (streamed while it is made) and another
 * request go out together; the reload comes back with the part listed, the
 * part whole (the same bytes as the complete object), the other answered.
 */
async function blockingReloadOverH2(s) {
  const dir = mediaPath.replace(/[^/]+$/, '');
  let body = (await h2request(s, mediaPath)).body.toString();
  for (let attempt = 0; attempt < 5; attempt++) {
    const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="video-part(\d+)\.(\d+)\.m4s"/.exec(body);
    assert.ok(hint, body);
    const name = `video-part${hint[1]}.${hint[2]}.m4s`;
    const listed = new RegExp(`#EXT-X-PART:[^\\n]*URI="${name}"`);
    assert.doesNotMatch(body, listed, 'the hinted part is not listed yet');
    const [held, part, other] = await Promise.all([
      h2request(s, `${mediaPath}?_HLS_msn=${hint[1]}&_HLS_part=${hint[2]}`),
      h2request(s, dir + name),
      h2request(s, '/healthz'),
    ]);
    assert.equal(held.status, 200);
    assert.equal(other.status, 200);
    body = held.body.toString();
    if (!listed.test(body)) {
      // The hint named a part that never came (an IDR closed the segment): 404, next hint.
      assert.equal(part.status, 404, `${name}: ${part.status}`);
      continue;
    }
    assert.equal(part.status, 200, name);
    assert.equal(part.body.subarray(4, 8).toString('latin1'), 'moof', 'a CMAF chunk');
    const complete = await h2request(s, dir + name);
    assert.equal(complete.status, 200);
    assert.equal(Number(complete.headers['content-length']), complete.body.length);
    assert.ok(part.body.equals(complete.body), 'streamed part = complete part');
    return name;
  }
  throw new Error('no hinted part was published in five tries');
}

test('h2c with prior knowledge: blocking reload, hinted part and another request on one connection', async () => {
  const s = await session(false);
  assert.equal(s.alpnProtocol, 'h2c');
  await blockingReloadOverH2(s);
  s.close();
});

test('TLS: the test certificate verifies, ALPN offers h2 and http/1.1', async () => {
  for (const [offered, chosen] of [[['h2', 'http/1.1'], 'h2'], [['http/1.1'], 'http/1.1']]) {
    const socket = tlsConnect({ host: '127.0.0.1', port: tlsPort, servername: 'localhost', ca: certPem, ALPNProtocols: offered });
    await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
    assert.ok(socket.authorized, `certificate: ${socket.authorizationError}`);
    assert.equal(socket.alpnProtocol, chosen, `ALPN ${offered}`);
    if (chosen === 'http/1.1') {
      const answer = await new Promise((resolve, reject) => {
        let got = '';
        socket.on('data', (d) => { got += d; if (got.includes('\r\n\r\nok')) resolve(got); });
        socket.once('error', reject);
        socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      });
      assert.match(answer, /^HTTP\/1\.1 200 /);
    }
    socket.destroy();
  }
});

test('TLS with ALPN h2: blocking reload, hinted part and another request on one connection', async () => {
  const s = await session(true);
  assert.equal(s.alpnProtocol, 'h2');
  await blockingReloadOverH2(s);
  s.close();
});

test('request bodies over HTTP/2 are held to the same limits', async () => {
  for (const tls of [false, true]) {
    const s = await session(tls);
    const kick = await h2request(s, '/admin/streams/cam1/kick', {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: Buffer.alloc(5000, 120),
    });
    assert.equal(kick.status, 413, 'admin POST with 5,000 bytes');
    const offer = await h2request(s, '/whip/cam1', {
      method: 'POST', headers: { authorization: `Bearer ${DEV_KEY}`, 'content-type': 'application/sdp' },
      body: Buffer.alloc(3000, 120),
    });
    assert.equal(offer.status, 413, 'WHIP offer past whip.max_offer_bytes');
    const small = await h2request(s, '/admin/streams/cam1/end', {
      method: 'POST', headers: { authorization: 'Bearer wrong-token-0123456' }, body: Buffer.from('{}'),
    });
    assert.equal(small.status, 401, 'a small body is read and the request answered');
    s.close();
  }
});

test('strict clients: no content-length on 204, the representation\'s length on 304 (curl, HTTP/1.1 and HTTP/2)', async () => {
  const tlsArgs = ['--cacert', certFile, '--resolve', `localhost:${tlsPort}:127.0.0.1`];
  const clients = [
    ['--http1.1', origin.url, []],
    ['--http2-prior-knowledge', origin.url, []],
    ['--http1.1', https, tlsArgs],
    ['--http2', https, tlsArgs],
  ];
  const dir = mediaPath.replace(/[^/]+$/, '');
  const segment = await waitFor('a segment in the playlist', async () => {
    const r = await fetch(`${origin.url}${mediaPath}`);
    return /video-seg\d+\.m4s/.exec(await r.text())?.[0];
  });
  const run1 = (flag, base, extra, path, more = []) => curlRaw([flag, ...extra, ...more, `${base}${path}`]);
  for (const [flag, base, extra] of clients) {
    const version = flag === '--http1.1' ? /^HTTP\/1\.1 / : /^HTTP\/2 /;
    // 204: a CORS preflight, and WHIP's GET (RFC 9725 §4.1).
    for (const [path, more] of [
      ['/live/cam1/index.m3u8', ['-X', 'OPTIONS', '-H', 'Origin: https://viewer.example', '-H', 'Access-Control-Request-Method: GET']],
      ['/whip/cam1', []],
    ]) {
      const r = await run1(flag, base, extra, path, more);
      assert.match(r.line, version, `${flag} ${path}`);
      assert.equal(r.status, 204, `${flag} ${path}`);
      assert.equal(r.headers['content-length'], undefined, `${flag} ${path}: 204 carries no content-length`);
    }
    // 304: a media object and a gzip playlist, each against its own 200.
    for (const [path, more] of [[dir + segment, []], [mediaPath, ['-H', 'Accept-Encoding: gzip']]]) {
      let full, cond;
      // The live playlist changes with every part: a 200 with a new ETag
      // between the two requests is right, and then the pair is asked again.
      for (let attempt = 0; attempt < 20; attempt++) {
        full = await run1(flag, base, extra, path, more);
        assert.equal(full.status, 200, `${flag} ${path}`);
        const etag = full.headers.etag?.[0];
        assert.ok(etag, `${flag} ${path}: an ETag`);
        cond = await run1(flag, base, extra, path, [...more, '-H', `If-None-Match: ${etag}`]);
        if (!(cond.status === 200 && cond.headers.etag?.[0] !== etag)) break;
      }
      if (more.length) assert.deepEqual(full.headers['content-encoding'], ['gzip'], `${flag} ${path}`);
      assert.match(cond.line, version);
      assert.equal(cond.status, 304, `${flag} ${path}`);
      assert.deepEqual(cond.headers['content-length'], full.headers['content-length'],
        `${flag} ${path}: 304 carries the length of the representation`);
      assert.notDeepEqual(cond.headers['content-length'], ['0']);
    }
  }
});

/** curl's answer head (`-D -`): status, status line, headers by lowercased name. */
async function curlRaw(args) {
  const out = await run('curl', ['-sS', '-o', '/dev/null', '-D', '-', ...args]);
  const [line, ...lines] = out.trim().split(/\r?\n/);
  const headers = {};
  for (const l of lines) {
    const at = l.indexOf(':');
    if (at > 0) (headers[l.slice(0, at).toLowerCase()] ??= []).push(l.slice(at + 1).trim());
  }
  return { status: Number(line.split(' ')[1]), line, headers };
}

test('hls.js plays over HTTPS (HTTP/2) in Chromium', async () => {
  browser = await launchChromium({ args: ['--ignore-certificate-errors'] });
  const context = await browser.newContext();
  // The viewer page (web/) at the origin's HTTPS address: Playwright answers
  // for the page's own files, everything under /live/ goes to brook-origin.
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
  await context.route((url) => url.origin === https && !url.pathname.startsWith('/live/'), async (route) => {
    const path = new URL(route.request().url()).pathname;
    const file = path === '/' ? 'index.html' : path.slice(1);
    try {
      const body = await readFile(join(ROOT, 'web', file));
      await route.fulfill({ status: 200, body, contentType: types[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream' });
    } catch {
      await route.fulfill({ status: 404, body: '' });
    }
  });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const live = [];
  cdp.on('Network.responseReceived', ({ response }) => {
    const url = new URL(response.url);
    if (url.pathname.startsWith('/live/')) live.push({ path: url.pathname, protocol: response.protocol, tls: response.securityDetails?.protocol });
  });
  await page.goto(`${https}/?stream=cam1`);
  await page.waitForFunction(() => window.brook?.video?.currentTime > 0, null, { timeout: 30000 })
    .catch(async (e) => { throw new Error(`${e.message}\n${await page.evaluate(() => JSON.stringify(window.brook?.errors))}`); });
  const { first, last } = await watchPlayback(page, 6);
  const fatal = await page.evaluate(() => window.brook.fatalErrors.map((e) => JSON.stringify(e)));
  assert.deepEqual(fatal, [], 'no fatal hls.js error');
  assert.ok(last.currentTime - first.currentTime >= 6, `played ${first.currentTime} -> ${last.currentTime}`);
  assert.ok(last.frames > first.frames, 'frames decoded');
  const parts = live.filter((r) => /-part\d+\.\d+\.m4s$/.test(r.path));
  assert.ok(parts.length > 0, `LL-HLS parts fetched: ${live.map((r) => r.path).join(' ')}`);
  assert.deepEqual([...new Set(live.map((r) => r.protocol))], ['h2'], 'every /live/ answer came over HTTP/2');
  assert.ok(live.every((r) => /^TLS/.test(r.tls ?? '')), `over TLS: ${[...new Set(live.map((r) => r.tls))]}`);
  console.log(`# hls.js over HTTPS: ${live.length} answers over h2 (${parts.length} parts), played ${(last.currentTime - first.currentTime).toFixed(1)} s`);
  await context.close();
});
