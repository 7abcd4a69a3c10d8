// Ad-break markers end to end: ffmpeg publishes a live stream over SRT with an
// SCTE-35 splice_insert put in by `brook inject-scte35` (what a broadcaster's
// splicer does; ffmpeg cannot write SCTE-35, and `-f data` passes the spliced
// bytes on unchanged), the origin transcodes it into a two-rung ladder, and a
// second break is started through the admin API. Checked: every rung and the
// audio cut a segment at each splice point and carry the same
// EXT-X-DATERANGE (SCTE35-OUT with the very section the splicer sent, then
// DURATION and SCTE35-IN), playlists re-parse with hls.js's and hls-parser's
// parsers, the MPD carries the
// SCTE-35 EventStream, and hls.js in Chromium plays through the edge across
// both breaks with no fatal error and sees the date ranges.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import HLS from 'hls-parser';
import {
  ORIGIN_BIN, DEV_KEY, start, startOrigin, srtUrl, launchChromium, waitFor, openViewer, watchPlayback,
} from './lib.mjs';
import { startWranglerEdge, keyList, signToken, KEYS, hlsjsParser } from './edge-lib.mjs';

const ADMIN = '0123456789abcdef-admin';
const BROOK = join(dirname(ORIGIN_BIN), 'brook');
// Keyframes every second on the rungs: splice points on whole seconds land on one.
const LADDER = 'audio_bitrate_kbps = 32\nkeyframe_interval_ms = 1000\n'
  + [{ height: 360, kbps: 500 }, { height: 180, kbps: 200 }]
    .map((r) => `[[ladder.rungs]]\nheight = ${r.height}\nbitrate_kbps = ${r.kbps}\npreset = "ultrafast"\n`).join('');
// The splice 7 s after the first frame, 5 s long: with 2 s segments, at
// least one of its ends is not where a segment would end without it.
const SPLICE_MS = 7000;
const BREAK_MS = 5000;
const TOKEN = signToken({ key: KEYS.k2026a, kid: 'k2026a', acl: '/live/*', id: 'ads', ttl: 3600 });

let origin, publisher, edge, browser, M3U8Parser;

before(async () => {
  origin = await startOrigin({
    ladder: 'transcode',
    config: `[admin]\ntoken = "${ADMIN}"\n[ladder]\n${LADDER}[streams.cam1]\nkey = "${DEV_KEY}"\n`,
  });
  const encode = ['ffmpeg', '-hide_banner', '-loglevel', 'warning', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-keyint_min', '30',
    '-pix_fmt', 'yuv420p', '-b:v', '800k', '-c:a', 'aac', '-b:a', '64k', '-f', 'mpegts', 'pipe:1'];
  const splice = [BROOK, 'inject-scte35', '--at-ms', String(SPLICE_MS), '--duration-ms', String(BREAK_MS),
    '--event-id', '4242'];
  const send = ['ffmpeg', '-hide_banner', '-loglevel', 'warning', '-f', 'data', '-i', 'pipe:0',
    '-map', '0', '-c', 'copy', '-f', 'data', `'${srtUrl(origin.srtPort, `publish:live/cam1:${DEV_KEY}`)}'`];
  publisher = start('publisher', 'bash', ['-c', `set -o pipefail; ${encode.join(' ')} | ${splice.join(' ')} | ${send.join(' ')}`]);
  edge = await startWranglerEdge({
    ORIGIN_URL: origin.url,
    TOKEN_KEYS: keyList('k2026a'),
    EDGE_CONFIG: JSON.stringify({}),
  });
  M3U8Parser = await hlsjsParser();
});

after(async () => {
  await browser?.close();
  await Promise.all([publisher, edge, origin].map((p) => p?.stop()));
});

const playlist = async (name, query = '') => {
  const r = await fetch(`${origin.url}/live/cam1/${name}${query}`);
  return r.status === 200 ? r.text() : null;
};

function attrs(line) {
  const out = {};
  for (const m of line.slice(line.indexOf(':') + 1).matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) {
    out[m[1]] = m[2].replace(/^"|"$/g, '');
  }
  return out;
}

/** Segments of a media playlist: PDT, duration and the tags before each. */
function segments(text) {
  const out = [];
  let pdt = null;
  let tags = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = line.slice(25);
    else if (line.startsWith('#EXT-X-DATERANGE:')) tags.push(attrs(line));
    else if (line.startsWith('#EXTINF:')) {
      out.push({ pdt, duration: parseFloat(line.slice(8)), tags });
      tags = [];
    }
  }
  return out;
}

/** The playlist of `name` once it holds a break's start and its end. */
const withEnd = (name, id) => waitFor(`${name}: the end of ${id}`, async () => {
  const t = await playlist(name);
  return t && segments(t).some((s) => s.tags.some((a) => (id ? a.ID.startsWith(id) : true) && a['SCTE35-IN']))
    && t.includes('SCTE35-OUT') ? t : null;
}, { timeout: 60000, interval: 500 });

function checkBreak(name, text, idPrefix, seconds) {
  const segs = segments(text);
  const start = segs.findIndex((s) => s.tags.some((a) => a.ID.startsWith(idPrefix) && a['SCTE35-OUT']));
  assert.ok(start > 0, `${name}: a segment starts the break\n${text}`);
  const out = segs[start].tags.find((a) => a.ID.startsWith(idPrefix));
  assert.equal(out['START-DATE'], segs[start].pdt, `${name}: the break starts with its segment`);
  assert.equal(Number(out['PLANNED-DURATION']), seconds, name);
  const end = segs.findIndex((s) => s.tags.some((a) => a.ID === out.ID && a['SCTE35-IN']));
  assert.ok(end > start, `${name}: the break ends on a later segment\n${text}`);
  const inn = segs[end].tags.find((a) => a.ID === out.ID);
  assert.equal(inn['START-DATE'], out['START-DATE'], `${name}: one date range, same START-DATE`);
  // The break lasts what was asked, to the frame (keyframes forced every
  // second by the transcoder land on the splice points), and its segments
  // add up to it.
  assert.ok(Math.abs(Number(inn.DURATION) - seconds) < 0.05, `${name}: DURATION=${inn.DURATION}`);
  const inside = segs.slice(start, end).reduce((a, s) => a + s.duration, 0);
  assert.ok(Math.abs(inside - Number(inn.DURATION)) < 0.05, `${name}: segments ${inside} s`);
  return { out, inn, segs, start };
}

test('an SCTE-35 splice_insert cuts every rendition at its splice point and is marked with the same date range', async () => {
  const mv = await waitFor('multivariant', () => playlist('index.m3u8'), { timeout: 30000, interval: 250 });
  const names = mv.split('\n').filter((l) => l && !l.startsWith('#'))
    .concat([...mv.matchAll(/URI="([^"]+\.m3u8)"/g)].map((m) => m[1]));
  assert.ok(names.length >= 3, mv);
  const found = [];
  for (const name of new Set(names)) {
    const text = await withEnd(name, 'splice-4242');
    const { out } = checkBreak(name, text, 'splice-4242', BREAK_MS / 1000);
    assert.equal(out.ID, 'splice-4242');
    found.push(out);
    // Independent parsers accept it.
    HLS.setOptions({ strictMode: true });
    HLS.parse(text);
    const parsed = M3U8Parser.parseLevelPlaylist(text, `${origin.url}/live/cam1/${name}`, 0, 'EVENT', 0, null);
    assert.ok(Object.keys(parsed.dateRanges).includes('splice-4242'), `${name}: hls.js sees the date range`);
  }
  // Every rendition: the same START-DATE and the same section.
  assert.equal(new Set(found.map((o) => `${o['START-DATE']} ${o['SCTE35-OUT']}`)).size, 1);
  // What the splicer sent, back from the hex: splice_insert, event 4242, 5 s, auto-return.
  const section = Buffer.from(found[0]['SCTE35-OUT'].slice(2), 'hex');
  assert.equal(section[0], 0xfc);
  assert.equal(section[13], 0x05, 'splice_insert');
  assert.equal(section.readUInt32BE(14), 4242);

  // The MPD: one SCTE-35 event with the same section.
  const mpd = await playlist([...new Set(names)][0].replace(/[^/]+$/, 'manifest.mpd'));
  assert.ok(mpd, 'the MPD beside the media playlists');
  assert.match(mpd, /<EventStream schemeIdUri="urn:scte:scte35:2014:xml\+bin" timescale="90000">/);
  const bin = mpd.match(/<Binary>([^<]+)<\/Binary>/)[1];
  assert.deepEqual(Buffer.from(bin, 'base64'), section);

});

test('a break started through the admin API is marked the same way, with a splice_insert Brook writes', async () => {
  const unauth = await fetch(`${origin.url}/admin/streams/cam1/break?duration_s=4`, { method: 'POST' });
  assert.equal(unauth.status, 401);
  const bad = await fetch(`${origin.url}/admin/streams/cam1/break?duration_s=0`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /duration_s/);
  const none = await fetch(`${origin.url}/admin/streams/nope/break?duration_s=4`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(none.status, 404);
  const r = await fetch(`${origin.url}/admin/streams/cam1/break?duration_s=4`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(r.status, 202);
  const { id } = await r.json();
  assert.match(id, /^break-\d+$/);
  // One break at a time: another now is refused, and says why.
  const again = await fetch(`${origin.url}/admin/streams/cam1/break?duration_s=4`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(again.status, 409);
  assert.match((await again.json()).error, /already/);
  const far = await fetch(`${origin.url}/admin/streams/cam1/break?duration_s=4&at=${Date.now() + 86400000}`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(far.status, 400);
  const mv = await playlist('index.m3u8');
  const names = new Set(mv.split('\n').filter((l) => l && !l.startsWith('#'))
    .concat([...mv.matchAll(/URI="([^"]+\.m3u8)"/g)].map((m) => m[1])));
  const starts = new Set();
  for (const name of names) {
    const text = await withEnd(name, id);
    const { out, inn } = checkBreak(name, text, id, 4);
    starts.add(out['START-DATE']);
    const section = Buffer.from(out['SCTE35-OUT'].slice(2), 'hex');
    assert.equal(section[13], 0x05, 'a splice_insert');
    assert.equal(section[19] & 0x80, 0x80, 'out of network');
    // Its end: back to the network, the same splice_event_id.
    const end = Buffer.from(inn['SCTE35-IN'].slice(2), 'hex');
    assert.equal(end[19] & 0x80, 0, 'back to the network');
    assert.equal(end.readUInt32BE(14), section.readUInt32BE(14));
  }
  assert.equal(starts.size, 1, 'every rendition starts the break at once');
  // Counted in the origin's metrics: both breaks, and the splicer's repeats ignored.
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  const value = (name) => Number(metrics.match(new RegExp(`^${name}\\{[^}]*stream="cam1"[^}]*\\} (\\S+)`, 'm'))?.[1]);
  assert.equal(value('brook_ad_breaks_total'), 2, metrics);
  assert.ok(value('brook_ad_cues_ignored_total') >= 1, 'the splicer repeats its cue once a second');
});

test('hls.js plays through the edge across the breaks with no fatal error and sees the date ranges', async () => {
  browser = await launchChromium();
  const { page } = await openViewer(browser, `${edge.url}/?stream=cam1&token=${encodeURIComponent(TOKEN)}`);
  const r = await fetch(`${origin.url}/admin/streams/cam1/break?duration_s=3`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN}` },
  });
  assert.equal(r.status, 202);
  const { id } = await r.json();
  const { first, last } = await watchPlayback(page, 8);
  assert.ok(last.currentTime - first.currentTime > 7, JSON.stringify({ first, last }));
  const seen = await page.evaluate(() => {
    const h = window.brook.hls;
    const details = h.levels[h.currentLevel >= 0 ? h.currentLevel : 0]?.details;
    return {
      fatal: window.brook.fatalErrors.map((e) => `${e.details} ${e.url}`),
      ranges: Object.values(details?.dateRanges ?? {}).map((d) => ({ id: d.id, out: !!d.attr['SCTE35-OUT'] })),
    };
  });
  assert.deepEqual(seen.fatal, []);
  assert.ok(seen.ranges.some((d) => d.id === id && d.out), JSON.stringify(seen.ranges));
});
