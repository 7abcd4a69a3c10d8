// Helpers for the edge Worker's end-to-end tests (tests/e2e/edge-*.test.mjs): the
// real wasm build (edge/build/, `cargo xtask wasm`) in workerd via Miniflare or
// `wrangler dev`, in front of the real brook-origin (lib.mjs starts it).
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, start, waitFor } from './lib.mjs';
import { workerOptions as baseWorkerOptions } from '../../edge/test/worker.mjs';


/** Hex secrets for tests (never used anywhere else). */
export const KEYS = {
  k2026a: '8f1e0c47a3b2d5e6f708192a3b4c5d6e',
  k2026b: '0c47a3b2d5e6f7081928f1e03b4c5d6e7f8091a2b3c4d5e6',
};
export const keyList = (...ids) => ids.map((id) => `${id}:${KEYS[id]}`).join(',');

/**
 * Mints a token the way Akamai's EdgeAuth libraries do (ip, st, exp, acl, id, data,
 * then Brook's kid, then hmac over everything before it), written here with node's
 * crypto only, independently of the Rust signer.
 */
export function signToken({ key, kid, acl = '/live/cam1/*', exp, st, ip, id, data, ttl = 600 }) {
  const now = Math.floor(Date.now() / 1000);
  const fields = [];
  if (ip) fields.push(`ip=${ip}`);
  if (st !== undefined) fields.push(`st=${st}`);
  fields.push(`exp=${exp ?? now + ttl}`);
  fields.push(`acl=${Array.isArray(acl) ? acl.join('!') : acl}`);
  if (id) fields.push(`id=${id}`);
  if (data) fields.push(`data=${data}`);
  if (kid) fields.push(`kid=${kid}`);
  const signed = fields.join('~');
  const mac = createHmac('sha256', Buffer.from(key, 'hex')).update(signed).digest('hex');
  return `${signed}~hmac=${mac}`;
}

/** Percent-encoding as the edge writes it: RFC 3986 unreserved characters only. */
export const encodeStrict = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** `__token__=...` as the edge writes it into child URIs. */
export const tokenQuery = (token) => `__token__=${encodeStrict(token)}`;

/** Miniflare options for the Worker (also for `mf.setOptions`, which replaces them whole). */
export function workerOptions({ originUrl, config = {}, keys = keyList('k2026a'), bindings = {}, cf = {}, kv } = {}) {
  return baseWorkerOptions({
    bindings: {
      ...(originUrl ? { ORIGIN_URL: originUrl } : {}),
      EDGE_CONFIG: JSON.stringify(config),
      TOKEN_KEYS: keys,
      METRICS_TOKEN: 'metrics-secret',
      ...bindings,
    },
    ...(kv ? { kvNamespaces: kv } : {}),
    cf,
  });
}

/** The Worker in Miniflare (one isolate: its counters and caches are the ones tests see). */
export async function startWorker(opts = {}) {
  const { Miniflare } = await import('miniflare');
  const mf = new Miniflare(workerOptions(opts));
  await mf.ready;
  return mf;
}

/** The Worker's counters for this isolate, as { 'name{labels}': value }. */
export async function workerMetrics(mf, base = 'http://edge.test') {
  const res = await mf.dispatchFetch(`${base}/_brook/metrics`, { headers: { authorization: 'Bearer metrics-secret' } });
  if (res.status !== 200) throw new Error(`metrics: ${res.status}`);
  const out = {};
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

/** Sum of a counter over the label sets that contain every `labels` pair. */
export function counter(metrics, name, labels = {}) {
  let sum = 0;
  for (const [key, value] of Object.entries(metrics)) {
    const brace = key.indexOf('{');
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n !== name) continue;
    const ls = brace < 0 ? '' : key.slice(brace);
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

/**
 * A transparent HTTP tap in front of an origin: forwards every request and records
 * { method, url, status, body (text for playlists) }. `mode` can be switched to
 * 'down' (close the socket), 'hang' (never answer) or 'fail' (503) at any time.
 */
export async function startTap(target, { name = 'tap' } = {}) {
  const seen = [];
  const upstream = new URL(target);
  const tap = { seen, mode: 'pass', name };
  const server = http.createServer((req, res) => {
    const entry = { method: req.method, url: req.url, status: null, body: null, at: Date.now() };
    seen.push(entry);
    if (tap.mode === 'down') { req.socket.destroy(); return; }
    if (tap.mode === 'hang') return;
    if (tap.mode === 'fail') { entry.status = 503; res.writeHead(503, { 'content-type': 'text/plain' }).end('overloaded\n'); return; }
    const up = http.request({
      host: upstream.hostname, port: upstream.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: upstream.host },
    }, (ur) => {
      entry.status = ur.statusCode;
      const chunks = [];
      ur.on('data', (c) => { chunks.push(c); res.write(c); });
      ur.on('end', () => {
        const buf = Buffer.concat(chunks);
        if (/mpegurl|dash\+xml/.test(ur.headers['content-type'] ?? '')) {
          const coding = ur.headers['content-encoding'];
          const plain = coding === 'gzip' ? gunzipSync(buf) : coding === 'br' ? brotliDecompressSync(buf) : buf;
          entry.body = plain.toString('utf8');
        }
        entry.bytes = buf.length;
        res.end();
      });
      res.writeHead(ur.statusCode, ur.headers);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502).end(); else res.destroy(); });
    req.pipe(up);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  tap.url = `http://127.0.0.1:${server.address().port}`;
  tap.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
  tap.count = (pred) => seen.filter((e) => (typeof pred === 'string' ? e.url === pred : pred(e))).length;
  return tap;
}

/** Removes the `__token__` parameter personalization added to every URI of a manifest. */
export function stripTokens(text, token) {
  const enc = encodeStrict(token);
  return text.replaceAll(`?__token__=${enc}`, '').replaceAll(`&__token__=${enc}`, '');
}

/** hls.js's own playlist parser, in node (no browser needed). */
export async function hlsjsParser() {
  globalThis.self ??= globalThis;
  const { M3U8Parser } = await import('hls.js/dist/hls.mjs');
  return M3U8Parser;
}

/**
 * The edge under `wrangler dev` with the real wrangler.toml and extra `vars`
 * (--var NAME:VALUE), for browser tests. Resolves once the viewer page is served.
 */
export async function startWranglerEdge(vars, { persistTo } = {}) {
  const port = await freePort();
  const inspector = await freePort();
  const home = mkdtempSync(join(tmpdir(), 'brook-wrangler-'));
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector),
    '--log-level', 'warn', '--show-interactive-dev-session=false'];
  if (persistTo) args.push('--persist-to', persistTo);
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const edge = start('wrangler', join(ROOT, 'node_modules/.bin/wrangler'), args, {
    cwd: ROOT,
    env: {
      ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true',
      CLOUDFLARE_CF_FETCH_ENABLED: 'false', XDG_CONFIG_HOME: home,
    },
  });
  edge.port = port;
  edge.url = `http://127.0.0.1:${port}`;
  await waitFor('wrangler dev', async () => (await fetch(`${edge.url}/`)).ok, { timeout: 60000, interval: 250 })
    .catch((e) => { throw new Error(`${e.message}\n${edge.log}`); });
  return edge;
}
