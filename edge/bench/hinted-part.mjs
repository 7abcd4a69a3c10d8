// When does a preload-hinted part reach a viewer through the edge, compared
// with the origin that makes it? brook-origin with ffmpeg publishing over
// SRT, the Worker (a wasm build, default edge/build/) in workerd through
// Miniflare in front of it. For each of PARTS consecutive parts, the part the
// media playlist hints is requested at the same moment straight from the
// origin and through the edge, and the first and last byte of each answer
// are timed (one clock: both clients are in this process). A benchmark, not a
// test: it prints figures.
//
//   BROOK_ORIGIN_BIN=... node edge/bench/hinted-part.mjs [PARTS] [--build DIR]
//
// "edge first byte - origin first byte" is what the edge adds before a viewer
// sees anything of a part; an edge that holds a shared answer until it is
// complete shows about the part's whole duration there.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { workerOptions } from '../test/worker.mjs';
import { startOrigin, startPublisher, mediaPlaylistUrl, waitFor } from '../../tests/e2e/lib.mjs';

const args = process.argv.slice(2);
const buildAt = args.indexOf('--build');
const BUILD = buildAt >= 0 ? `${args.splice(buildAt, 2)[1].replace(/\/?$/, '/')}` : fileURLToPath(new URL('../build/', import.meta.url));
const PARTS = Number(args[0] ?? 40);
const EDGE = 'http://edge.test';

const origin = await startOrigin();
const publisher = startPublisher(origin.srtPort);
const mf = new Miniflare(workerOptions({
  bindings: { ORIGIN_URL: origin.url, EDGE_CONFIG: JSON.stringify({ auth: { required: false } }) },
  modulesRoot: BUILD,
  modules: [
    { type: 'ESModule', path: `${BUILD}index.js` },
    { type: 'CompiledWasm', path: `${BUILD}index_bg.wasm` },
  ],
}));

/** Times one answer: ms from `t0` to its first and last body byte. */
async function timed(t0, res) {
  let first = null;
  let bytes = 0;
  for await (const chunk of res.body) {
    if (first === null) first = performance.now() - t0;
    bytes += chunk.byteLength;
  }
  return { status: res.status, first, last: performance.now() - t0, bytes };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)];

try {
  await mf.ready;
  const mediaUrl = await mediaPlaylistUrl(origin.url);
  await waitFor('a segment', async () => (await (await fetch(mediaUrl)).text()).includes('#EXTINF'), { timeout: 40000 });
  const rows = [];
  let lastHint = null;
  while (rows.length < PARTS) {
    const body = await (await fetch(mediaUrl)).text();
    const hint = body.match(/#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/)?.[1];
    if (!hint || hint === lastHint) continue;
    lastHint = hint;
    const url = new URL(hint, mediaUrl);
    const t0 = performance.now();
    const [o, e] = await Promise.all([
      fetch(url).then((r) => timed(t0, r)),
      mf.dispatchFetch(`${EDGE}${url.pathname}`).then((r) => timed(t0, r)),
    ]);
    if (o.status !== 200 || e.status !== 200 || o.bytes !== e.bytes) {
      throw new Error(`${hint}: origin ${o.status} ${o.bytes} B, edge ${e.status} ${e.bytes} B`);
    }
    rows.push({ hint, o, e });
  }
  const fig = (name, xs) => `${name}: median ${median(xs).toFixed(1)} ms, p90 ${p90(xs).toFixed(1)} ms`;
  console.log(`# build ${BUILD}, ${rows.length} hinted parts of a 720p30 stream`);
  console.log(`# ${fig('part made at the origin (origin last byte - origin first byte)', rows.map((r) => r.o.last - r.o.first))}`);
  console.log(`# ${fig('edge first byte - origin first byte', rows.map((r) => r.e.first - r.o.first))}`);
  console.log(`# ${fig('edge last byte - origin last byte', rows.map((r) => r.e.last - r.o.last))}`);
  console.log(`# ${fig('edge first byte - origin last byte', rows.map((r) => r.e.first - r.o.last))}`);
} finally {
  await mf.dispose();
  await Promise.all([publisher, origin].map((p) => p.stop()));
}
