// Viewer QoE for Brook's player pages (web/player.js, web/vod.js): the
// Common Media Client Data settings for hls.js (CTA-5004, query mode: one
// CMCD= parameter, no custom headers, so no CORS preflight), and a
// small beacon of our own for what CMCD lacks: startup time, stalls and
// their duration, fatal errors, live latency, exits before the video started.
//
// The beacon is text/plain JSON posted with navigator.sendBeacon (a simple
// request: no preflight) to /live/<stream>/qoe or /vod/<asset>/qoe, with
// the viewer token, every 10 s and once more when the page goes away. Its
// counters are totals since the page started, so a lost beacon loses
// nothing for the edge's per-session view; beside them, what changed since
// the previous beacon (d_watch_ms, d_stall_ms, d_stalls), which the edge
// adds up per stream for the origin's Prometheus counters. The edge checks
// and bounds every field (edge/src/qoe/beacon.rs); docs/qoe.md has the
// definitions.
//
//   const qoe = BrookQoe.start({ video, path: '/live/cam1', token, content: 'cam1' });
//   new Hls({ ...options, cmcd: qoe.hlsCmcd });
//   qoe.fatal('networkError:manifestLoadError');  // when the player gives up
//   qoe.latency = () => seconds behind live, or null
//
// State for tests: window.brookQoe (sid, startupMs, stalls, stallMs, sent;
// beat() sends a heartbeat now and returns it).
'use strict';

(() => {
  const HEARTBEAT_MS = 10000;

  function newSid() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function start({ video, path, token, content }) {
    const t0 = performance.now();
    const state = {
      sid: newSid(),
      startupMs: null,
      stalls: 0,
      stallMs: 0,
      stallSince: null,
      error: null,
      ended: false,
      sent: 0,
      lastStatus: null,
      latency: () => null,
    };
    window.brookQoe = state;

    // Watch time (Mux Data's: from the view's start, startup and stalls
    // included, paused time not): the page starts playing on its own, so it
    // counts from t0 until the viewer pauses (or the video ends, which
    // pauses it), and again from each play.
    let activeMs = 0;
    let activeSince = t0;
    video.addEventListener('pause', () => {
      const now = performance.now();
      if (activeSince !== null) {
        activeMs += now - activeSince;
        activeSince = null;
      }
      // A stall the viewer paused out of is over.
      if (state.stallSince !== null) {
        state.stallMs += now - state.stallSince;
        state.stallSince = null;
      }
    });
    video.addEventListener('play', () => {
      if (activeSince === null) activeSince = performance.now();
    });

    // A stall is the video waiting for data after it started, not a seek.
    video.addEventListener('playing', () => {
      const now = performance.now();
      if (state.startupMs === null) state.startupMs = Math.round(now - t0);
      if (state.stallSince !== null) {
        state.stallMs += now - state.stallSince;
        state.stallSince = null;
      }
    });
    video.addEventListener('waiting', () => {
      if (state.startupMs === null || video.seeking || video.paused || state.stallSince !== null) return;
      state.stalls += 1;
      state.stallSince = performance.now();
    });

    const url = `${path}/qoe${token ? `?__token__=${encodeURIComponent(token)}` : ''}`;
    // The totals the previous beacon carried (its deltas start from them).
    const prev = { watchMs: 0, stallMs: 0, stalls: 0 };

    function snapshot(ev) {
      const now = performance.now();
      const watchMs = Math.round(activeMs + (activeSince !== null ? now - activeSince : 0));
      const stallMs = Math.round(state.stallMs + (state.stallSince !== null ? now - state.stallSince : 0));
      let latency = null;
      try {
        latency = state.latency();
      } catch {
        latency = null;
      }
      const watch = watchMs;
      const stall = Math.min(stallMs, watchMs);
      const delta = {
        d_watch_ms: Math.min(Math.max(0, watch - prev.watchMs), 120000),
        d_stall_ms: Math.max(0, stall - prev.stallMs),
        d_stalls: Math.max(0, state.stalls - prev.stalls),
      };
      delta.d_stall_ms = Math.min(delta.d_stall_ms, delta.d_watch_ms);
      prev.watchMs = watch;
      prev.stallMs = stall;
      prev.stalls = state.stalls;
      return {
        v: 1,
        sid: state.sid,
        ev,
        started: state.startupMs !== null,
        ...(state.startupMs !== null ? { startup_ms: Math.min(state.startupMs, watchMs) } : {}),
        watch_ms: watchMs,
        stalls: state.stalls,
        stall_ms: Math.min(stallMs, watchMs),
        ...(latency !== null && Number.isFinite(latency) && latency >= 0 ? { latency_ms: Math.round(latency * 1000) } : {}),
        ...(state.error ? { error: state.error } : {}),
        ...delta,
      };
    }

    // Sends a beacon; returns what it sent (null once the page has ended).
    function send(ev) {
      if (state.ended) return null;
      if (ev === 'end') state.ended = true;
      const beacon = snapshot(ev);
      const body = JSON.stringify(beacon);
      const blob = new Blob([body], { type: 'text/plain' });
      if (navigator.sendBeacon && navigator.sendBeacon(url, blob)) {
        state.sent += 1;
        return beacon;
      }
      fetch(url, { method: 'POST', body, keepalive: true, headers: { 'content-type': 'text/plain' } })
        .then((r) => { state.lastStatus = r.status; state.sent += 1; })
        .catch(() => {});
      return beacon;
    }

    const timer = setInterval(() => send('hb'), HEARTBEAT_MS);
    state.beat = () => send('hb');
    window.addEventListener('pagehide', () => {
      clearInterval(timer);
      send('end');
    });

    // Query mode only (useHeaders false): custom request headers would make
    // every segment request cross-origin-preflighted on a steered CDN.
    const hlsCmcd = { sessionId: state.sid, contentId: content, useHeaders: false };
    return {
      sid: state.sid,
      hlsCmcd,
      set latency(fn) { state.latency = fn; },
      fatal(code) {
        const clean = String(code).replace(/[^A-Za-z0-9_:.-]/g, '').slice(0, 64);
        if (!state.error && clean) state.error = clean;
        send('end');
      },
      beat: () => send('hb'),
    };
  }

  window.BrookQoe = { start };
})();
