// Brook's ops dashboard: streams and their ingest health (the origin's
// /admin/streams through the edge's /_brook/streams) and viewer QoE (the
// edge's /_brook/qoe: docs/qoe.md), refreshed every 2 s, with charts drawn by
// uPlot (vendored by `cargo xtask setup`).
//
// The admin token is asked for once and kept in sessionStorage; `#token=...`
// in the address (never sent to a server) fills it in too. Both endpoints
// take it as `Authorization: Bearer`.
//
// State for tests: window.brookDashboard = { qoe, streams, updates, error,
// charts: { viewers, qoe } }.
// Text from the network only reaches the page through textContent.
'use strict';

(() => {
  const REFRESH_MS = 2000;
  const KEY = 'brook-admin-token';
  const $ = (id) => document.getElementById(id);
  const state = { qoe: null, streams: null, updates: 0, error: null, charts: { viewers: null, qoe: null } };
  window.brookDashboard = state;

  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get('token')) {
    sessionStorage.setItem(KEY, fragment.get('token'));
    history.replaceState(null, '', location.pathname + location.search);
  }
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $('token').value);
    $('token').value = '';
    refresh();
  });

  // --- formatting ----------------------------------------------------------
  const dash = '–';
  const num = (v, digits = 0) => (v == null || !Number.isFinite(v) ? dash : v.toFixed(digits));
  const pct = (v) => (v == null ? dash : `${(v * 100).toFixed(1)} %`);
  const ms = (v) => (v == null ? dash : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
  const kbps = (v) => (v == null ? dash : v >= 1000 ? `${(v / 1000).toFixed(2)} Mbps` : `${Math.round(v)} kbps`);
  const duration = (s) => {
    if (s == null) return dash;
    if (s < 120) return `${Math.round(s)} s`;
    if (s < 7200) return `${(s / 60).toFixed(1)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  };

  function fillTable(id, rows) {
    const body = $(id).querySelector('tbody');
    body.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement('tr');
      for (const cell of cells) {
        const td = document.createElement('td');
        const [text, bad] = Array.isArray(cell) ? cell : [cell, false];
        td.textContent = text;
        if (bad) td.className = 'bad';
        tr.append(td);
      }
      return tr;
    }));
  }

  // --- charts ----------------------------------------------------------------
  const COLORS = ['#4fc3f7', '#ffb74d', '#81c784', '#e57373', '#ba68c8', '#fff176', '#4db6ac', '#f06292'];
  const axes = () => [
    { stroke: '#89a', grid: { stroke: '#222a33' }, ticks: { stroke: '#222a33' } },
    { stroke: '#89a', grid: { stroke: '#222a33' }, ticks: { stroke: '#222a33' } },
  ];
  const width = (el) => Math.max(320, el.clientWidth || 520);

  function viewersChart(history) {
    const el = $('chart-viewers');
    const names = [...new Set(history.flatMap((p) => Object.keys(p.streams)))].sort();
    const data = [
      history.map((p) => p.t / 1000),
      history.map((p) => p.viewers),
      ...names.map((n) => history.map((p) => p.streams[n] ?? 0)),
    ];
    const key = names.join(',');
    if (!state.charts.viewers || state.charts.viewers.key !== key) {
      if (state.charts.viewers) state.charts.viewers.plot.destroy();
      const series = [{}, { label: 'all', stroke: '#dde', width: 2 }, ...names.map((n, i) => ({
        label: n, stroke: COLORS[i % COLORS.length], width: 1.5,
      }))];
      const plot = new uPlot({
        width: width(el), height: 240, series, axes: axes(), scales: { y: { range: (_u, _min, max) => [0, Math.max(2, max + 1)] } },
      }, data, el);
      state.charts.viewers = { plot, key };
    } else {
      state.charts.viewers.plot.setData(data);
    }
  }

  function qoeChart(history) {
    const el = $('chart-qoe');
    const data = [
      history.map((p) => p.t / 1000),
      history.map((p) => p.avg_bitrate_kbps),
      history.map((p) => (p.rebuffer_ratio == null ? null : p.rebuffer_ratio * 100)),
    ];
    if (!state.charts.qoe) {
      const plot = new uPlot({
        width: width(el),
        height: 240,
        series: [{}, { label: 'bitrate kbps', stroke: COLORS[0], width: 2, scale: 'kbps' },
          { label: 'rebuffering %', stroke: COLORS[3], width: 2, scale: '%' }],
        scales: { kbps: { range: (_u, _min, max) => [0, Math.max(100, max * 1.1)] }, '%': { range: (_u, _min, max) => [0, Math.max(5, max * 1.2)] } },
        axes: [
          { stroke: '#89a', grid: { stroke: '#222a33' }, ticks: { stroke: '#222a33' } },
          { scale: 'kbps', stroke: COLORS[0], grid: { stroke: '#222a33' }, ticks: { stroke: '#222a33' } },
          { scale: '%', side: 1, stroke: COLORS[3], grid: { show: false } },
        ],
      }, data, el);
      state.charts.qoe = { plot };
    } else {
      state.charts.qoe.plot.setData(data);
    }
  }

  // --- data ------------------------------------------------------------------
  async function get(path, token) {
    const res = await fetch(path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (res.status === 401) throw Object.assign(new Error('the admin token was refused'), { refused: true });
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    return res.json();
  }

  function render() {
    const q = state.qoe;
    const t = q.totals;
    $('stat-viewers').textContent = String(t.viewers);
    $('stat-watch').textContent = duration(t.watch_time_s);
    $('stat-startup').textContent = `${ms(t.startup_p50_ms)} / ${ms(t.startup_p95_ms)}`;
    $('stat-rebuffer').textContent = pct(t.rebuffer_ratio);
    $('stat-bitrate').textContent = kbps(t.avg_bitrate_kbps);
    $('stat-latency').textContent = ms(t.latency_p50_ms);
    $('stat-errors').textContent = pct(t.error_rate);
    $('stat-exits').textContent = `${t.exits_before_start} (${pct(t.exit_before_start_rate)})`;

    const edgeViewers = Object.fromEntries(q.streams.map((s) => [s.key, s.viewers]));
    const streams = state.streams ? state.streams.streams : [];
    fillTable('streams', streams.map((s) => [
      s.name,
      [s.live ? (s.publisher ? 'publishing' : 'live, no publisher') : (s.ended ? 'ended' : 'idle'), !s.live],
      kbps(s.ingest_bitrate_bps == null ? null : s.ingest_bitrate_bps / 1000),
      ms(s.srt_rtt_ms),
      [`${s.srt_packets_lost ?? 0} / ${s.srt_packets_dropped ?? 0}`, (s.srt_packets_dropped ?? 0) > 0],
      [String(s.continuity_errors ?? 0), (s.continuity_errors ?? 0) > 0],
      s.transcoder_renditions == null ? dash : String(s.transcoder_renditions),
      s.transcoder_speed == null ? dash : `${num(s.transcoder_speed, 2)}x`,
      String(s.viewers ?? dash),
      String(edgeViewers[s.name] ?? 0),
    ]));
    fillTable('countries', q.countries.map((c) => [
      c.key, String(c.viewers), String(c.sessions), duration(c.watch_time_s), ms(c.startup_p50_ms),
      [pct(c.rebuffer_ratio), (c.rebuffer_ratio ?? 0) > 0.02], kbps(c.avg_bitrate_kbps), [String(c.errors), c.errors > 0],
    ]));
    fillTable('renditions', q.renditions.map((r) => [r.rendition, pct(r.share), kbps(r.avg_bitrate_kbps)]));
    fillTable('sessions', q.sessions.map((s) => [
      s.sid.slice(0, 8), s.stream, s.country, s.rendition ?? dash, [s.state, s.state === 'failed'],
      kbps(s.avg_bitrate_kbps), [pct(s.rebuffer_ratio), (s.rebuffer_ratio ?? 0) > 0.02], String(s.stalls),
      ms(s.startup_ms), ms(s.latency_ms), duration(s.watch_s),
    ]));
    if (typeof uPlot === 'function') {
      viewersChart(q.history);
      qoeChart(q.history);
    }
  }

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    const token = sessionStorage.getItem(KEY);
    if (!token) {
      $('state').textContent = 'enter the admin token';
      return;
    }
    try {
      const [qoe, streams] = await Promise.all([
        get('/_brook/qoe', token),
        get('/_brook/streams', token).catch((e) => ({ error: e.message, streams: [] })),
      ]);
      state.qoe = qoe;
      state.streams = streams;
      state.error = streams.error || null;
      state.updates += 1;
      render();
      const el = $('state');
      el.className = state.error ? 'state error' : 'state';
      el.textContent = state.error
        ? `streams unavailable (${state.error}); QoE updated ${new Date().toLocaleTimeString()}`
        : `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      state.error = e.message;
      $('state').className = 'state error';
      $('state').textContent = e.message;
      // A refused token stays refused: wait for another one.
      if (e.refused) return;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }
  if (typeof uPlot !== 'function') {
    $('state').textContent = 'uPlot is missing (run `cargo xtask setup`)';
  }
  refresh();
})();
