// The manifest rewrite inside workerd: the real wasm build (`cargo xtask wasm`) in
// Miniflare, with BROOK_BENCH=1 so /_brook/bench/rewrite runs the rewrite N times in
// one request. Workers freeze the clock while code runs, so the time is taken here,
// around the request: (t(N) - t(0)) / N, median of several rounds. Prints figures;
// asserts nothing. The same playlist is timed natively by
// `cargo bench -p brook-edge --bench rewrite`.
//
//   node edge/bench/rewrite-workerd.mjs [N]
import { Miniflare } from 'miniflare';
import { workerOptions } from '../test/worker.mjs';

const N = Number(process.argv[2] ?? 2000);
const ROUNDS = 9;

const mf = new Miniflare(workerOptions({
  bindings: { BROOK_BENCH: '1', ORIGIN_URL: 'http://127.0.0.1:9' },
}));
await mf.ready;

async function timed(n, kind) {
  const t0 = process.hrtime.bigint();
  const r = await mf.dispatchFetch(`http://bench.test/_brook/bench/rewrite?n=${n}&kind=${kind}`);
  const body = await r.text();
  if (r.status !== 200) throw new Error(`${r.status} ${body}`);
  return Number(process.hrtime.bigint() - t0) / 1000; // µs
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  for (const [kind, label] of [
    ['model', 'media playlist: parse + token on every URI + render'],
    ['lines', 'media playlist: line rewriter (fallback)'],
    ['break', 'media playlist with an ad break: + interstitial'],
  ]) {
    await timed(N, kind); // warm up (JIT tiers for the glue, wasm compiled)
    const per = [];
    for (let i = 0; i < ROUNDS; i++) {
      const base = await timed(0, kind);
      const full = await timed(N, kind);
      per.push((full - base) / N);
    }
    console.log(`workerd: ${label.padEnd(52)} ${median(per).toFixed(2).padStart(8)} µs/playlist `
      + `(median of ${ROUNDS} x ${N}; min ${Math.min(...per).toFixed(2)}, max ${Math.max(...per).toFixed(2)})`);
  }
} finally {
  await mf.dispose();
}
