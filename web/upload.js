// Brook upload page: sends a file to a direct upload URL (the application's
// backend made it with POST /api/v1/uploads; docs/vod.md) with the tus
// resumable protocol (tus-js-client, vendored by `cargo xtask setup`), shows
// the progress, pauses and resumes (also after a reload or a dropped
// connection: tus-js-client keeps the upload's URL in localStorage), then
// follows the asset's status until it is ready and links the player.
//
// ?url=<upload URL> fills the link in; ?chunk=<bytes> sets the PATCH size
// (default 8 MiB; smaller chunks commit progress more often on bad networks). State for tests lives on window.brookUpload:
//   upload     the tus.Upload (null before the first start)
//   progress   percent sent; offsets: every Upload-Offset the server acknowledged
//   assetId    the asset (from the creation response's Brook-Asset-Id header)
//   asset      the last status: { status, progress, error }
//   errors     every error message shown
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { upload: null, progress: 0, offsets: [], assetId: null, asset: null, errors: [] };
  window.brookUpload = state;

  const params = new URLSearchParams(location.search);
  if (params.get('url')) $('url').value = params.get('url');
  const chunk = Number(params.get('chunk'));
  const chunkSize = Number.isInteger(chunk) && chunk >= 16 * 1024 ? chunk : 8 * 1024 * 1024;

  function setStatus(text) {
    $('status').textContent = text;
  }

  function fail(message) {
    state.errors.push(message);
    setStatus(message);
    $('start').disabled = false;
    $('pause').disabled = true;
    $('resume').disabled = state.upload === null;
  }

  // The origin of the upload URL serves the asset's status and media.
  function originOf(url) {
    try { return new URL(url).origin; } catch { return location.origin; }
  }

  async function follow(origin, id) {
    $('asset').hidden = false;
    $('asset-id').textContent = id;
    for (;;) {
      let s;
      try {
        const r = await fetch(`${origin}/vod/${encodeURIComponent(id)}/status`, { cache: 'no-store' });
        s = await r.json();
      } catch (e) {
        s = { status: 'unknown', error: String(e) };
      }
      state.asset = s;
      const pct = typeof s.progress === 'number' ? ` ${s.progress.toFixed(0)} %` : '';
      $('asset-status').textContent = s.status === 'errored' ? `failed: ${s.error}` : `${s.status}${s.status === 'processing' ? pct : ''}`;
      if (s.status === 'ready') {
        const watch = $('watch');
        watch.href = `/vod.html?asset=${encodeURIComponent(id)}&origin=${encodeURIComponent(origin)}`;
        watch.hidden = false;
        return;
      }
      if (s.status === 'errored') return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  function start(file, endpoint) {
    const upload = new tus.Upload(file, {
      endpoint,
      chunkSize,
      retryDelays: [0, 1000, 3000, 5000],
      metadata: { filename: file.name, filetype: file.type },
      removeFingerprintOnSuccess: true,
      onAfterResponse(req, res) {
        const id = res.getHeader('Brook-Asset-Id');
        if (id && !state.assetId) {
          state.assetId = id;
          // A reload resumes the upload from tus-js-client's own record; the
          // asset it fills is remembered here, by upload link.
          try { localStorage.setItem(`brook-asset:${endpoint}`, id); } catch { /* private mode */ }
        }
        const off = res.getHeader('Upload-Offset');
        if (off !== undefined && off !== null && off !== '') state.offsets.push(Number(off));
      },
      onProgress(sent, total) {
        state.progress = total ? (100 * sent) / total : 0;
        $('progress').value = state.progress;
        setStatus(`uploading ${state.progress.toFixed(1)} %`);
      },
      onError(e) {
        fail(`upload failed: ${e.message || e}`);
      },
      onSuccess() {
        setStatus('uploaded; processing');
        $('pause').disabled = true;
        $('resume').disabled = true;
        if (state.assetId) follow(originOf(endpoint), state.assetId);
      },
    });
    state.upload = upload;
    try { state.assetId ||= localStorage.getItem(`brook-asset:${endpoint}`); } catch { /* private mode */ }
    // Resume an earlier attempt at the same file and link if there is one.
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    });
  }

  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    const file = $('file').files[0];
    const endpoint = $('url').value.trim();
    if (!file || !endpoint) return;
    $('start').disabled = true;
    $('pause').disabled = false;
    setStatus('starting');
    start(file, endpoint);
  });
  $('pause').addEventListener('click', () => {
    if (!state.upload) return;
    state.upload.abort();
    setStatus(`paused at ${state.progress.toFixed(1)} %`);
    $('pause').disabled = true;
    $('resume').disabled = false;
  });
  $('resume').addEventListener('click', () => {
    if (!state.upload) return;
    state.upload.start();
    $('pause').disabled = false;
    $('resume').disabled = true;
  });
})();
