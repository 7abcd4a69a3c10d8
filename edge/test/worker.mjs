// The built edge Worker (edge/build/, made by `cargo xtask wasm`) as Miniflare
// options, shared by the Miniflare suites here, edge/bench/ and
// tests/e2e/edge-lib.mjs, so every one of them runs the same Worker the same way.
// Not a test file itself (`node --test edge/test/*.test.mjs` skips it).
import { fileURLToPath } from 'node:url';

export const BUILD = fileURLToPath(new URL('../build/', import.meta.url));

/**
 * Options for `new Miniflare(...)` (or `mf.setOptions`, which replaces them
 * whole): `bindings` are the Worker's vars, `chat` adds the chat rooms' Durable
 * Object (SQLite storage, as in wrangler.toml), `directory` the stream
 * directory's, `cf` overrides the request's location, and anything else is
 * passed through.
 */
export function workerOptions({ bindings = {}, chat = false, directory = false, cf = {}, ...rest } = {}) {
  return {
    name: 'brook-edge',
    compatibilityDate: '2026-04-01',
    modulesRoot: BUILD,
    modules: [
      { type: 'ESModule', path: `${BUILD}index.js` },
      { type: 'CompiledWasm', path: `${BUILD}index_bg.wasm` },
    ],
    bindings,
    ...(chat || directory ? {
      durableObjects: {
        ...(chat ? { CHAT: { className: 'ChatRoom', useSQLite: true } } : {}),
        ...(directory ? { DIRECTORY: { className: 'StreamDirectory', useSQLite: true } } : {}),
      },
    } : {}),
    // Never fetch Cloudflare's cf data; tests may still override it per request.
    cf: { country: 'NL', continent: 'EU', colo: 'AMS', ...cf },
    ...rest,
  };
}
