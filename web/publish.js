// Brook broadcaster: camera and microphone → WHIP (RFC 9725) → Brook's origin,
// which packages the stream as LL-HLS. No build step.
//
// URL parameters (all optional):
//   stream   stream name (default cam1)
//   whip     WHIP endpoint URL (default /whip/<stream> on this page's host,
//            which is the origin when the origin serves this page at /whip/)
//   viewer   base of the viewer link (default this host's /?stream=<stream>)
//   #key=…   the stream key, in the fragment so it never reaches a server log
//
// The offer asks for H.264 (packetization-mode 1, Constrained Baseline first)
// and Opus: Brook packages what it receives and does not transcode. ICE is not
// trickled: the offer goes out with its candidates once gathering completes
// (at most GATHER_MS), since Brook's endpoint is ICE-lite.
//
// State for tests and debugging lives on window.brookPublish:
//   state        'idle' | 'starting' | 'live' | 'stopping' | 'failed'
//   connection   RTCPeerConnection.connectionState
//   resource     the WHIP session URL (Location) while live
//   error        the last error text, or null
//   stats        { kbps, seconds, width, height, fps, codec, framesSent }
//   start()/stop()
'use strict';

(() => {
  const GATHER_MS = 2000;
  const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
  const QUALITY = {
    360: { width: 640, height: 360, kbps: 800 },
    720: { width: 1280, height: 720, kbps: 2500 },
    1080: { width: 1920, height: 1080, kbps: 4500 },
  };

  const $ = (id) => document.getElementById(id);
  const preview = $('preview');
  const form = $('setup');
  const streamInput = $('stream');
  const keyInput = $('key');
  const cameraSelect = $('camera');
  const micSelect = $('mic');
  const qualitySelect = $('quality');
  const goLive = $('golive');
  const stopButton = $('stop');
  const params = new URLSearchParams(location.search);

  const pub = {
    state: 'idle', connection: 'new', resource: null, error: null,
    stats: { kbps: 0, seconds: 0, width: 0, height: 0, fps: 0, codec: null, framesSent: 0 },
    start, stop,
  };
  window.brookPublish = pub;

  streamInput.value = params.get('stream') || 'cam1';
  const fragmentKey = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fragmentKey) keyInput.value = fragmentKey;

  let media = null; // the preview MediaStream
  let pc = null;
  let liveSince = 0;
  let lastBytes = null;
  let statsTimer = null;

  function show(id, text) { $(id).textContent = text; }

  function setState(state, text) {
    pub.state = state;
    show('state', text ?? state);
    const busy = state === 'starting' || state === 'live' || state === 'stopping';
    goLive.disabled = busy;
    stopButton.disabled = !busy;
    streamInput.disabled = busy;
    keyInput.disabled = busy;
    qualitySelect.disabled = busy;
  }

  function fail(message) {
    pub.error = message;
    show('error', message);
    setState('failed', 'not live');
  }

  function endpointUrl() {
    const stream = streamInput.value;
    const explicit = params.get('whip');
    return new URL(explicit || `/whip/${encodeURIComponent(stream)}`, location.href).href;
  }

  function updateViewerLink() {
    const stream = streamInput.value;
    const base = params.get('viewer') || new URL('/', location.href).href;
    const url = new URL(base, location.href);
    url.searchParams.set('stream', stream);
    const link = $('viewer');
    link.href = url.href;
    link.textContent = url.href;
  }

  // --- devices and preview ----------------------------------------------------
  async function openMedia() {
    const q = QUALITY[qualitySelect.value] || QUALITY[720];
    const constraints = {
      video: {
        width: { ideal: q.width }, height: { ideal: q.height }, frameRate: { ideal: 30 },
        ...(cameraSelect.value ? { deviceId: { exact: cameraSelect.value } } : {}),
      },
      audio: micSelect.value ? { deviceId: { exact: micSelect.value } } : true,
    };
    const next = await navigator.mediaDevices.getUserMedia(constraints);
    if (media) for (const t of media.getTracks()) t.stop();
    media = next;
    preview.srcObject = media;
    // Swap tracks into a live session without renegotiating.
    if (pc) {
      for (const sender of pc.getSenders()) {
        const track = media.getTracks().find((t) => t.kind === sender.track?.kind);
        if (track) await sender.replaceTrack(track);
      }
    }
    await listDevices();
  }

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, current) => {
      const keep = select.value || current;
      select.replaceChildren();
      for (const d of devices.filter((x) => x.kind === kind)) {
        const o = document.createElement('option');
        o.value = d.deviceId;
        o.textContent = d.label || `${kind} ${select.length + 1}`;
        select.append(o);
      }
      if ([...select.options].some((o) => o.value === keep)) select.value = keep;
    };
    const current = (kind) => media?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
    fill(cameraSelect, 'videoinput', current('video'));
    fill(micSelect, 'audioinput', current('audio'));
  }

  // --- WHIP -----------------------------------------------------------------
  /** Video codecs for the offer: H.264 packetization-mode 1 first, Constrained Baseline first of those. */
  function preferH264(transceiver) {
    const caps = (RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities('video'))
      || RTCRtpReceiver.getCapabilities('video');
    if (!caps || typeof transceiver.setCodecPreferences !== 'function') return;
    const rank = (c) => {
      if (!/^video\/H264$/i.test(c.mimeType)) return 9;
      const f = c.sdpFmtpLine || '';
      if (!/packetization-mode=1/.test(f)) return 8;
      if (/profile-level-id=42e0/i.test(f)) return 0;
      if (/profile-level-id=4200/i.test(f)) return 1;
      return 2;
    };
    const h264 = caps.codecs.filter((c) => rank(c) < 8).sort((a, b) => rank(a) - rank(b));
    if (h264.length === 0) return; // the endpoint will say it needs H.264
    const rest = caps.codecs.filter((c) => /rtx|red|ulpfec/i.test(c.mimeType));
    transceiver.setCodecPreferences([...h264, ...rest]);
  }

  function gathered(peer) {
    return new Promise((resolve) => {
      if (peer.iceGatheringState === 'complete') return resolve();
      const done = () => { if (peer.iceGatheringState === 'complete') resolve(); };
      peer.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, GATHER_MS);
    });
  }

  function authHeaders() {
    return keyInput.value ? { authorization: `Bearer ${keyInput.value}` } : {};
  }

  async function start() {
    if (pub.state === 'starting' || pub.state === 'live') return;
    if (!STREAM_NAME.test(streamInput.value)) return fail('stream name: letters, digits, - and _ only');
    pub.error = null;
    show('error', '');
    setState('starting', 'connecting…');
    updateViewerLink();
    try {
      if (!media) await openMedia();
      pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
      const peer = pc;
      peer.addEventListener('connectionstatechange', () => {
        if (peer !== pc) return;
        pub.connection = peer.connectionState;
        if (peer.connectionState === 'connected' && pub.state === 'starting') {
          liveSince = Date.now();
          setState('live', 'live');
        }
        if (['failed', 'closed'].includes(peer.connectionState) && pub.state === 'live') {
          fail(`connection ${peer.connectionState}`);
          teardown(false);
        }
      });
      const q = QUALITY[qualitySelect.value] || QUALITY[720];
      for (const track of media.getTracks()) {
        const t = peer.addTransceiver(track, { direction: 'sendonly', streams: [media] });
        if (track.kind === 'video') preferH264(t);
      }
      await peer.setLocalDescription(await peer.createOffer());
      await gathered(peer);
      const endpoint = endpointUrl();
      const r = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp', ...authHeaders() },
        body: peer.localDescription.sdp,
      });
      const body = await r.text();
      if (r.status !== 201) throw new Error(`${r.status} ${r.statusText}: ${body.trim()}`);
      const where = r.headers.get('location');
      if (!where) throw new Error('no Location in the answer (is Location exposed to CORS?)');
      pub.resource = new URL(where, endpoint).href;
      await peer.setRemoteDescription({ type: 'answer', sdp: body });
      // HLS segments cannot follow resolution changes smoothly: keep the size,
      // drop frames instead when bandwidth is short.
      for (const sender of peer.getSenders()) {
        if (sender.track?.kind !== 'video') continue;
        const p = sender.getParameters();
        p.degradationPreference = 'maintain-resolution';
        if (p.encodings?.[0]) p.encodings[0].maxBitrate = q.kbps * 1000;
        await sender.setParameters(p).catch(() => {});
      }
      lastBytes = null;
      statsTimer = setInterval(sampleStats, 1000);
    } catch (e) {
      fail(e.message || String(e));
      teardown(true);
    }
  }

  async function sampleStats() {
    if (!pc) return;
    const report = await pc.getStats();
    let bytes = 0;
    const s = pub.stats;
    report.forEach((r) => {
      if (r.type !== 'outbound-rtp') return;
      bytes += (r.bytesSent || 0) + (r.headerBytesSent || 0);
      if (r.kind === 'video') {
        s.width = r.frameWidth || 0;
        s.height = r.frameHeight || 0;
        s.fps = r.framesPerSecond || 0;
        s.framesSent = r.framesSent || 0;
        const codec = r.codecId && report.get(r.codecId);
        s.codec = codec ? `${codec.mimeType} ${codec.sdpFmtpLine || ''}`.trim() : null;
      }
    });
    const now = performance.now();
    if (lastBytes) s.kbps = Math.round(((bytes - lastBytes.bytes) * 8) / (now - lastBytes.at));
    lastBytes = { bytes, at: now };
    s.seconds = liveSince ? Math.floor((Date.now() - liveSince) / 1000) : 0;
    pub.connection = pc.connectionState;
    const mm = String(Math.floor(s.seconds / 60)).padStart(2, '0');
    const ss = String(s.seconds % 60).padStart(2, '0');
    show('elapsed', liveSince ? `${mm}:${ss}` : '');
    show('bitrate', `${s.kbps} kbit/s`);
    show('video-info', s.width ? `${s.width}x${s.height} @ ${Math.round(s.fps)} fps` : '');
    if (pub.state === 'starting' || pub.state === 'live') show('state', `${pub.state} (${pc.connectionState})`);
  }

  /** Closes the peer connection; `remote`: also DELETE the WHIP session. */
  function teardown(remote, keepalive = false) {
    clearInterval(statsTimer);
    statsTimer = null;
    const resource = pub.resource;
    pub.resource = null;
    if (pc) pc.close();
    pc = null;
    liveSince = 0;
    if (remote && resource) {
      return fetch(resource, { method: 'DELETE', headers: authHeaders(), keepalive }).catch(() => {});
    }
    return Promise.resolve();
  }

  async function stop() {
    if (!pc && !pub.resource) return;
    setState('stopping', 'stopping…');
    await teardown(true);
    setState('idle', 'not live');
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); start(); });
  stopButton.addEventListener('click', () => stop());
  streamInput.addEventListener('input', updateViewerLink);
  for (const select of [cameraSelect, micSelect, qualitySelect]) {
    select.addEventListener('change', () => openMedia().catch((e) => fail(e.message)));
  }
  addEventListener('pagehide', () => { teardown(true, true); });

  updateViewerLink();
  setState('idle', 'not live');
  if (!navigator.mediaDevices?.getUserMedia) {
    fail('this page needs a secure context (https:, or http://localhost) and a camera API');
  } else {
    openMedia().catch((e) => fail(`camera/microphone: ${e.message}`));
  }
})();
