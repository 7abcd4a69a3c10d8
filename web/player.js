// Brook viewer: plays /live/<stream>/index.m3u8 (stream from ?stream=, default
// cam1) with hls.js in low-latency mode, or natively where there is no MSE
// (older iPhones). No build step; hls.js is vendored by `cargo xtask setup`.
//
// ?token=<viewer token> (docs/tokens.md) is sent as __token__ with the first
// playlist request; the edge writes it into every URI it hands out, so nothing
// else here needs to know about it. Content steering (docs/edge.md) is hls.js's
// own: it loads the steering manifest the playlist names and follows it.
//
// State for tests and debugging lives on window.brook:
//   hls          the current Hls instance (replaced when playback restarts)
//   video        the <video> element
//   errors       every hls.js error seen: { type, details, fatal, status, at }
//   fatalErrors  fatal errors, except "manifest not there yet" (404), which
//                only means the stream has not started: that is retried
//   status       the status line's text; latency: seconds behind live or null
//   steering     { manifests, priority, pathway } once a steering manifest
//                arrived: how many, the last PATHWAY-PRIORITY, and the pathway
//                of the level being loaded
//   playingDate  () => the program date time on screen (a Date) or null
//   switches     every rendition switch hls.js made: { at, level, height,
//                bitrate } (the adaptive bitrate ladder at work)
//   chat         the chat panel's state (web/chat.js)
//   mode         'hls' or 'webrtc' (?mode=webrtc plays over WHEP, below)
//   qoe          web/qoe.js's state: sid (also CMCD's), startupMs, stalls,
//                stallMs, sent (beacons)
//   webrtc       with ?mode=webrtc: { state, resource (the WHEP session URL),
//                error, fellBack (why it gave up and played LL-HLS, or null),
//                delayMs (receive-side delay estimate) }
//
// ?mode=webrtc plays over WebRTC (WHEP, draft-ietf-wish-whep): a recvonly
// RTCPeerConnection posts its offer to /whep/<stream> with the token as
// `Authorization: Bearer`; sub-second, no ABR ladder (the source as sent). If
// WebRTC cannot start (no RTCPeerConnection, refused offer, no connection
// within 10 s) or fails before playing, the page plays LL-HLS instead.
//
// Text from the URL or the network only ever reaches the page through
// textContent, never as HTML.
'use strict';

(() => {
  const RETRY_MS = 2000;
  const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
  const MAX_ERRORS_KEPT = 200;

  const video = document.getElementById('video');
  const unmute = document.getElementById('unmute');
  const statusEl = document.getElementById('status');
  const latencyEl = document.getElementById('latency');
  const streamEl = document.getElementById('stream');

  const brook = {
    hls: null, video, fatalErrors: [], errors: [], status: '', latency: null, steering: null, switches: [],
    mode: 'hls', webrtc: null,
  };
  window.brook = brook;

  function setStatus(text) {
    brook.status = text;
    statusEl.textContent = text;
  }

  function remember(list, entry) {
    list.push(entry);
    if (list.length > MAX_ERRORS_KEPT) list.shift();
  }

  const stream = new URLSearchParams(location.search).get('stream') || 'cam1';
  if (!STREAM_NAME.test(stream)) {
    setStatus('invalid stream name (letters, digits, - and _ only)');
    return;
  }
  streamEl.textContent = stream;
  document.title = `${stream} · Brook live`;
  const token = new URLSearchParams(location.search).get('token');
  const src = `/live/${encodeURIComponent(stream)}/index.m3u8${token ? `?__token__=${encodeURIComponent(token)}` : ''}`;
  // Viewer QoE (web/qoe.js): CMCD on every hls.js request, and the beacon.
  const qoe = window.BrookQoe
    ? window.BrookQoe.start({ video, path: `/live/${encodeURIComponent(stream)}`, token, content: stream })
    : null;
  if (qoe) qoe.latency = () => brook.latency;
  brook.qoe = window.brookQoe || null;
  const DENIED = {
    401: 'this stream needs a viewer token (?token=)',
    403: 'access denied (token invalid, expired or not for this stream)',
    451: 'not available in your country',
  };

  // --- muted autoplay, unmute on request --------------------------------------
  function syncUnmute() {
    unmute.hidden = !video.muted;
  }
  unmute.addEventListener('click', () => {
    video.muted = false;
    video.play().catch(() => {});
  });
  video.addEventListener('volumechange', syncUnmute);
  syncUnmute();

  function play() {
    video.play().catch(() => setStatus('press play to start'));
  }

  video.addEventListener('playing', () => setStatus('live'));
  video.addEventListener('waiting', () => setStatus('buffering'));

  // --- hls.js -------------------------------------------------------------
  let retryTimer = null;
  let lastMediaRecovery = 0;

  function restartHls(reason) {
    setStatus(reason);
    if (brook.hls) brook.hls.destroy();
    brook.hls = null;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(startHls, RETRY_MS);
  }

  function startHls() {
    const Hls = window.Hls;
    const hls = new Hls({
      lowLatencyMode: true,
      backBufferLength: 30,
      // Playback can only start on a keyframe, up to a GOP behind the target
      // latency (PART-HOLD-BACK); a slightly faster rate closes that gap within
      // seconds instead of never.
      maxLiveSyncPlaybackRate: 1.5,
      // Low latency leaves about a second of buffer: the bandwidth estimate must
      // follow the network within seconds, not the ~10 s of hls.js's defaults
      // (3 s / 9 s half-lives, counted in download time), or a viewer whose link
      // drops below the current rendition stalls before it switches down.
      abrEwmaFastLive: 1,
      abrEwmaSlowLive: 3,
      // And it underestimates when parts are small: a download counts as 50 ms
      // at least, and the wait for a part still being made leaks into some
      // samples. Go up at 80 % of the estimate (not 70 %), or a viewer who
      // dropped to a low rendition may never climb back (docs/ladder.md).
      abrBandWidthUpFactor: 0.8,
      ...(qoe ? { cmcd: qoe.hlsCmcd } : {}),
    });
    brook.hls = hls;
    if (retryTimer === null) setStatus('connecting');

    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      setStatus('loading');
      play();
    });

    const pathwayOf = (levelIndex) => {
      const level = hls.levels[levelIndex];
      return level ? level.pathwayId : null;
    };
    hls.on(Hls.Events.STEERING_MANIFEST_LOADED, (_event, data) => {
      const s = brook.steering || { manifests: 0, priority: null, pathway: null };
      s.manifests += 1;
      s.priority = data.steeringManifest['PATHWAY-PRIORITY'] || null;
      brook.steering = s;
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      const level = hls.levels[data.level];
      remember(brook.switches, {
        at: Date.now(), level: data.level, height: level ? level.height : null, bitrate: level ? level.bitrate : null,
      });
    });
    hls.on(Hls.Events.LEVEL_LOADING, (_event, data) => {
      if (brook.steering) brook.steering.pathway = pathwayOf(data.level);
    });

    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (hls !== brook.hls) return; // a late event from an instance we dropped
      const entry = {
        type: data.type,
        details: data.details,
        fatal: Boolean(data.fatal),
        status: data.response && typeof data.response.code === 'number' ? data.response.code : null,
        // Which request, for the console and the tests' failure messages.
        url: data.url || (data.context && data.context.url) || (data.frag && data.frag.url) || null,
        at: Date.now(),
      };
      remember(brook.errors, entry);
      if (!data.fatal) return;

      const manifestMissing =
        data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR && entry.status === 404;
      if (manifestMissing) {
        restartHls('waiting for the stream to start');
        return;
      }
      remember(brook.fatalErrors, entry);
      if (DENIED[entry.status]) {
        // Retrying will not change the answer: stop and say why.
        hls.destroy();
        brook.hls = null;
        setStatus(DENIED[entry.status]);
        if (qoe) qoe.fatal(`${data.type}:${data.details}`);
        return;
      }
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && Date.now() - lastMediaRecovery > 5000) {
        lastMediaRecovery = Date.now();
        setStatus('recovering from a media error');
        hls.recoverMediaError();
        return;
      }
      restartHls(`${data.details}; retrying`);
    });

    hls.loadSource(src);
    hls.attachMedia(video);
  }

  // --- native HLS (Safari without MSE) --------------------------------------
  function startNative() {
    setStatus('connecting');
    video.addEventListener('error', () => {
      const code = video.error ? video.error.code : 0;
      const entry = { type: 'nativeError', details: `MediaError ${code}`, fatal: true, status: null, at: Date.now() };
      remember(brook.errors, entry);
      remember(brook.fatalErrors, entry);
      setStatus('playback error; retrying');
      setTimeout(() => {
        video.src = src;
        play();
      }, RETRY_MS);
    });
    video.src = src;
    play();
  }

  // --- WebRTC (WHEP) ----------------------------------------------------------
  const WEBRTC_CONNECT_MS = 10000;

  async function startWebRtc() {
    brook.mode = 'webrtc';
    const state = { state: 'connecting', resource: null, error: null, fellBack: null, delayMs: null };
    brook.webrtc = state;
    setStatus('connecting (WebRTC)');
    const pc = new RTCPeerConnection();
    state.pc = pc;
    let played = false;
    const media = new MediaStream();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (e) => {
      media.addTrack(e.track);
      // As little playout delay as the network allows (Chromium's hint).
      if ('jitterBufferTarget' in e.receiver) e.receiver.jitterBufferTarget = 0;
      if (video.srcObject !== media) video.srcObject = media;
      play();
    };
    video.addEventListener('playing', () => { played = true; }, { once: true });

    const fallBack = (why) => {
      if (state.fellBack || brook.mode !== 'webrtc') return;
      state.fellBack = why;
      state.state = 'failed';
      leave();
      pc.close();
      video.srcObject = null;
      brook.mode = 'hls';
      setStatus(`WebRTC: ${why}; playing LL-HLS`);
      startHlsOrNative();
    };
    const leave = () => {
      if (!state.resource) return;
      const headers = token ? { authorization: `Bearer ${token}` } : {};
      fetch(state.resource, { method: 'DELETE', headers, keepalive: true }).catch(() => {});
      state.resource = null;
    };
    window.addEventListener('pagehide', leave);

    pc.onconnectionstatechange = () => {
      state.state = pc.connectionState;
      if (pc.connectionState === 'connected') setStatus('live (WebRTC)');
      if (pc.connectionState === 'failed') {
        if (!played) fallBack('the connection failed');
        else setStatus('WebRTC connection lost');
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      // Brook is ICE-lite: the host candidates gathered by now are enough.
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') resolve();
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve();
        });
        setTimeout(resolve, 1000);
      });
      const headers = { 'content-type': 'application/sdp' };
      if (token) headers.authorization = `Bearer ${token}`;
      const res = await fetch(`/whep/${encodeURIComponent(stream)}`, {
        method: 'POST', headers, body: pc.localDescription.sdp,
      });
      const body = await res.text();
      if (res.status !== 201) {
        state.error = `${res.status} ${body.trim()}`;
        const why = DENIED[res.status] || (res.status === 404 ? 'the stream is not live' : `offer refused (${res.status})`);
        fallBack(why);
        return;
      }
      const where = res.headers.get('location');
      state.resource = where ? new URL(where, location.href).href : null;
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
    } catch (e) {
      state.error = String(e && e.message ? e.message : e);
      fallBack('could not start');
      return;
    }
    setTimeout(() => {
      if (!played && pc.connectionState !== 'connected') fallBack('no connection within 10 s');
    }, WEBRTC_CONNECT_MS);
    // Receive-side delay: jitter buffer plus half the round trip.
    setInterval(async () => {
      if (brook.mode !== 'webrtc') return;
      let buffer = null;
      let rtt = null;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video' && r.jitterBufferEmittedCount > 0) {
          buffer = r.jitterBufferDelay / r.jitterBufferEmittedCount;
        }
        if (r.type === 'candidate-pair' && r.nominated && r.currentRoundTripTime != null) rtt = r.currentRoundTripTime;
      });
      state.delayMs = buffer === null ? null : Math.round((buffer + (rtt || 0) / 2) * 1000);
    }, 1000);
  }

  function startHlsOrNative() {
    if (window.Hls && window.Hls.isSupported()) {
      startHls();
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      startNative();
    } else if (!window.Hls) {
      setStatus('hls.js is missing (run `cargo xtask setup`)');
    } else {
      setStatus('this browser cannot play HLS');
    }
  }

  // --- latency: wall clock minus the program date-time being shown ----------
  function playingDate() {
    if (brook.mode === 'webrtc') {
      const d = brook.webrtc && brook.webrtc.delayMs;
      return d == null ? null : new Date(Date.now() - d);
    }
    if (brook.hls) return brook.hls.playingDate;
    if (typeof video.getStartDate === 'function') {
      const start = video.getStartDate().getTime();
      if (!Number.isNaN(start)) return new Date(start + video.currentTime * 1000);
    }
    return null;
  }

  // For the chat (web/chat.js): messages wait for this program date time.
  brook.playingDate = playingDate;

  setInterval(() => {
    const date = playingDate();
    brook.latency = date ? (Date.now() - date.getTime()) / 1000 : null;
    latencyEl.textContent = brook.latency === null ? '' : `${brook.latency.toFixed(1)} s behind live`;
  }, 500);

  const mode = new URLSearchParams(location.search).get('mode');
  if (mode === 'webrtc' && typeof RTCPeerConnection === 'function') {
    startWebRtc();
  } else {
    if (mode === 'webrtc') setStatus('no WebRTC in this browser; playing LL-HLS');
    startHlsOrNative();
  }
})();
