// A VAST ad decision server for the tests: answers a pod of inline and
// wrapper ads, serves the ads' media files, and records every tracking
// beacon it receives (in arrival order). Not a mock of the edge: a real HTTP
// peer the Worker talks to, as it would to a production ad server.
//
//   GET /vast?sid=<session>&dur=<s>[&pod=<name>]   the pod (VAST 4.0)
//   GET /wrapper/<ad>?sid=<session>                 the inline ad a wrapper leads to
//   GET /media/<file>                               the ads' files
//   GET /track?sid=&ad=&ev=                         a beacon (recorded)
// `server.state.behaviour` switches /vast to an empty pod, not XML, no
// answer at all, or 503.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const EVENTS = ['start', 'firstQuartile', 'midpoint', 'thirdQuartile', 'complete'];

/**
 * `ads`: { name: { file, seconds } } (the media files, by the name the pods use);
 * `pods`: { name: [ { ad, wrapped } ] } (the first is the default; a pod can be
 * chosen per request with `pod=`, or by `choose(sid, n)` returning a pod name).
 */
export async function startVastServer({ ads, pods, choose }) {
  const beacons = [];
  const requests = [];
  let base;
  const track = (sid, ad, ev) => `${base}/track?sid=${encodeURIComponent(sid)}&ad=${ad}&ev=${ev}&cb=[CACHEBUSTING]`;
  const inline = (sid, name, seq) => {
    const ad = ads[name];
    const tracking = EVENTS.map((ev) => `<Tracking event="${ev}"><![CDATA[${track(sid, name, ev)}]]></Tracking>`).join('');
    const dur = new Date(ad.seconds * 1000).toISOString().slice(11, 23);
    return `<Ad id="${name}"${seq ? ` sequence="${seq}"` : ''}><InLine><AdSystem>brook-test</AdSystem><AdTitle>${name}</AdTitle>
<Impression><![CDATA[${track(sid, name, 'impression')}]]></Impression>
<Error><![CDATA[${track(sid, name, 'error')}&code=[ERRORCODE]]]></Error>
<Creatives><Creative id="c-${name}"><Linear><Duration>${dur}</Duration>
<TrackingEvents>${tracking}</TrackingEvents>
<MediaFiles><MediaFile delivery="progressive" type="video/mp4" width="640" height="360" bitrate="800"><![CDATA[${base}/media/${basename(ad.file)}]]></MediaFile>
<MediaFile delivery="streaming" type="application/x-mpegURL" width="1920" height="1080"><![CDATA[${base}/media/${name}.m3u8]]></MediaFile></MediaFiles>
</Linear></Creative></Creatives></InLine></Ad>`;
  };
  const wrapper = (sid, name, seq) => `<Ad id="w-${name}" sequence="${seq}"><Wrapper><AdSystem>brook-test-wrapper</AdSystem>
<VASTAdTagURI><![CDATA[${base}/wrapper/${name}?sid=${encodeURIComponent(sid)}]]></VASTAdTagURI>
<Impression><![CDATA[${track(sid, `w-${name}`, 'impression')}]]></Impression>
<Error><![CDATA[${track(sid, `w-${name}`, 'error')}&code=[ERRORCODE]]]></Error>
</Wrapper></Ad>`;
  const vast = (body) => `<?xml version="1.0" encoding="UTF-8"?><VAST version="4.0">${body}</VAST>`;
  const files = Object.fromEntries(Object.values(ads).map((a) => [basename(a.file), readFileSync(a.file)]));
  let decisions = 0;
  /** `behaviour`: 'pods' (default), 'empty', 'broken', 'slow' (no answer) or 'down' (503). */
  const state = { behaviour: 'pods', abandoned: 0 };

  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const sid = url.searchParams.get('sid') ?? '';
    requests.push({ path: url.pathname, query: url.search, headers: req.headers, at: Date.now() });
    const send = (status, type, body) => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (url.pathname === '/vast' && state.behaviour === 'empty') return send(200, 'application/xml', vast(''));
    if (url.pathname === '/vast' && state.behaviour === 'broken') return send(200, 'application/xml', '<html>not vast');
    if (url.pathname === '/vast' && state.behaviour === 'slow') { // never answers; counts who gave up
      res.on('close', () => { state.abandoned += 1; });
      return undefined;
    }
    if (url.pathname === '/vast' && state.behaviour === 'down') return send(503, 'text/plain', 'down\n');
    if (url.pathname === '/vast') {
      const n = decisions++;
      const name = url.searchParams.get('pod') ?? (choose ? choose(sid, n) : Object.keys(pods)[0]);
      const pod = pods[name] ?? [];
      const body = pod.map(({ ad, wrapped }, i) => (wrapped ? wrapper(sid, ad, i + 1) : inline(sid, ad, i + 1))).join('\n');
      return send(200, 'application/xml', vast(body));
    }
    if (url.pathname.startsWith('/wrapper/')) {
      const name = url.pathname.slice('/wrapper/'.length);
      if (!ads[name]) return send(404, 'text/plain', 'no such ad\n');
      return send(200, 'application/xml', vast(inline(sid, name, null)));
    }
    if (url.pathname.startsWith('/media/')) {
      const data = files[url.pathname.slice('/media/'.length)];
      if (!data) return send(404, 'text/plain', 'no such file\n');
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': data.length });
      return res.end(data);
    }
    if (url.pathname === '/track') {
      beacons.push({
        sid, ad: url.searchParams.get('ad'), ev: url.searchParams.get('ev'), cb: url.searchParams.get('cb'),
        code: url.searchParams.get('code'), at: Date.now(),
      });
      return send(204, 'text/plain', '');
    }
    send(404, 'text/plain', 'not found\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  return {
    url: base,
    beacons,
    requests,
    state,
    stop: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}
