// Checks every .m3u8 in a directory with two parsers Brook does not share code with:
// hls.js's M3U8Parser (what viewers run) and hls-parser in strict mode. Exits non-zero
// listing every playlist either of them rejects.
//   node packager/tests/validate-playlists.mjs <dir>
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import HLS from 'hls-parser';

globalThis.self = globalThis; // hls.js expects a browser-like global
const { M3U8Parser } = await import('hls.js/dist/hls.mjs');

const dir = process.argv[2];
const failures = [];
let count = 0;
HLS.setOptions({ strictMode: true, silent: true });
for (const name of readdirSync(dir).filter((f) => f.endsWith('.m3u8')).sort()) {
  const text = readFileSync(join(dir, name), 'utf8');
  const url = `https://origin.example/live/cam1/${name}`;
  count += 1;
  try {
    const parsed = HLS.parse(text);
    if (name.startsWith('multivariant') !== parsed.isMasterPlaylist) throw new Error('wrong playlist kind');
  } catch (e) {
    failures.push(`${name}: hls-parser (strict): ${e.message}`);
  }
  try {
    if (name.startsWith('multivariant')) {
      const r = M3U8Parser.parseMasterPlaylist(text, url);
      if (r.playlistParsingError) throw r.playlistParsingError;
      if (!r.levels.length) throw new Error('no levels');
    } else {
      const d = M3U8Parser.parseLevelPlaylist(text, url, 0, 'main', 0, null);
      if (d.playlistParsingError) throw d.playlistParsingError;
      if (!d.fragments.length && !d.partList?.length) throw new Error('no fragments or parts');
    }
  } catch (e) {
    failures.push(`${name}: hls.js: ${e.message}`);
  }
}
if (failures.length) {
  console.log(failures.join('\n'));
  process.exit(1);
}
console.log(`${count} playlists accepted by hls.js and hls-parser (strict)`);
