// Brook on-demand player: plays /vod/<asset>/index.m3u8 with hls.js, a
// rendition picker, and seek-bar previews from the asset's trick-play
// sprites (sprites.vtt: time ranges → sprite.jpg#xywh=x,y,w,h).
//
// ?asset=<id> (32 hex digits); ?token=<viewer token> as for live (the edge
// writes it into every URI it hands out); ?origin=<base URL> to play from
// another host than the page's (the upload page links the origin directly).
//
// State for tests on window.brookVod: hls, video, errors, levels (height and
// bitrate of each rendition), cues (the parsed sprites.vtt), preview (the
// last preview shown: { time, url, x, y, w, h }).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const state = { hls: null, video, errors: [], levels: [], cues: [], preview: null };
  window.brookVod = state;
  const setStatus = (t) => { $('status').textContent = t; };

  const params = new URLSearchParams(location.search);
  const asset = params.get('asset') || '';
  if (!/^[0-9a-f]{32}$/.test(asset)) {
    setStatus('no such video (?asset=<id>)');
    return;
  }
  let base = '';
  const origin = params.get('origin');
  if (origin) {
    try { base = new URL(origin).origin; } catch { setStatus('bad ?origin='); return; }
  }
  const token = params.get('token');
  const q = token ? `?__token__=${encodeURIComponent(token)}` : '';
  const root = `${base}/vod/${asset}/`;
  $('title').textContent = asset.slice(0, 8);

  // --- seek-bar previews ------------------------------------------------------
  function seconds(ts) {
    const m = /^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$/.exec(ts.trim());
    if (!m) return NaN;
    return (Number(m[1] || 0) * 3600) + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
  }
  function parseVtt(text) {
    const cues = [];
    for (const block of text.split(/\r?\n\r?\n/)) {
      const lines = block.split(/\r?\n/).filter(Boolean);
      const i = lines.findIndex((l) => l.includes('-->'));
      if (i < 0 || !lines[i + 1]) continue;
      const [a, b] = lines[i].split('-->');
      const [file, frag] = lines[i + 1].trim().split('#xywh=');
      const [x, y, w, h] = (frag || '').split(',').map(Number);
      if ([x, y, w, h].some((n) => !Number.isFinite(n))) continue;
      cues.push({ start: seconds(a), end: seconds(b), url: new URL(file, new URL(root, location.href)).href, x, y, w, h });
    }
    return cues;
  }
  fetch(`${root}sprites.vtt${q}`).then((r) => {
    if (!r.ok) throw new Error(`sprites.vtt: HTTP ${r.status}`);
    return r.text();
  }).then((t) => {
    state.cues = parseVtt(t);
  }).catch((e) => { state.vttError = String(e); });
  const seekbar = $('seekbar');
  const preview = $('preview');
  function show(time, clientX) {
    const cue = state.cues.find((c) => time >= c.start && time < c.end);
    if (!cue) { preview.hidden = true; return; }
    preview.style.width = `${cue.w}px`;
    preview.style.height = `${cue.h}px`;
    preview.style.backgroundImage = `url("${cue.url}${q}")`;
    preview.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    const rect = seekbar.getBoundingClientRect();
    preview.style.left = `${Math.max(0, Math.min(rect.width - cue.w, clientX - rect.left - cue.w / 2))}px`;
    preview.hidden = false;
    state.preview = { time, url: cue.url, x: cue.x, y: cue.y, w: cue.w, h: cue.h };
  }
  seekbar.addEventListener('mousemove', (e) => {
    const rect = seekbar.getBoundingClientRect();
    const frac = Math.max(0, Math.min(1, (e.clientX - rect.left) / rect.width));
    show(frac * (video.duration || 0), e.clientX);
  });
  seekbar.addEventListener('mouseleave', () => { preview.hidden = true; });
  seekbar.addEventListener('input', () => { video.currentTime = Number(seekbar.value); });
  video.addEventListener('durationchange', () => { seekbar.max = String(video.duration || 0); });
  video.addEventListener('timeupdate', () => { seekbar.value = String(video.currentTime); });
  state.showPreviewAt = (time) => show(time, seekbar.getBoundingClientRect().left);

  // --- playback -----------------------------------------------------------------
  const src = `${root}index.m3u8${q}`;
  if (!window.Hls || !Hls.isSupported()) {
    video.src = src;
    setStatus('playing (native)');
    return;
  }
  // Viewer QoE (web/qoe.js): CMCD on every request, and the beacon.
  const qoe = window.BrookQoe
    ? window.BrookQoe.start({ video, path: `${base}/vod/${asset}`, token, content: asset })
    : null;
  state.qoe = window.brookQoe || null;
  const hls = new Hls({ lowLatencyMode: false, ...(qoe ? { cmcd: qoe.hlsCmcd } : {}) });
  state.hls = hls;
  hls.on(Hls.Events.ERROR, (_e, d) => {
    state.errors.push({ type: d.type, details: d.details, fatal: d.fatal, status: d.response?.code });
    if (d.fatal) {
      setStatus(`error: ${d.details}`);
      if (qoe) qoe.fatal(`${d.type}:${d.details}`);
    }
  });
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => {
    state.levels = d.levels.map((l) => ({ height: l.height, bitrate: l.bitrate }));
    const select = $('quality');
    d.levels.forEach((l, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = l.height ? `${l.height}p` : `${Math.round(l.bitrate / 1000)} kbit/s`;
      select.append(o);
    });
    setStatus('playing');
  });
  $('quality').addEventListener('change', (e) => { hls.currentLevel = Number(e.target.value); });
  hls.loadSource(src);
  hls.attachMedia(video);
})();
