// Brook chat: the stream's room at /chat/<stream> (docs/chat.md), beside the
// player. Messages and reactions carry the program date time the sender was
// watching (`pdt`), and this page shows each one when its own playback
// reaches that moment, so a viewer further behind live never sees a reaction
// before the moment it is about. After the stream (a VOD: the playlist has
// EXT-X-ENDLIST) the chat is replayed from /chat/<stream>/history by PDT
// range as the video plays.
//
// ?token= (the viewer token) opens the room as it opens the video; ?name=
// picks a display name unless the token carries one.
//
// Everything from the network reaches the page through textContent, never
// as HTML.
//
// State for tests and debugging: window.brook.chat
//   state        'connecting' | 'open' | 'closed' | 'banned' | 'denied'
//   user, name, mod, viewers
//   shown        messages put on screen: { id, user, name, text, pdt, at, playing }
//                (`playing`: this page's program date time when it was shown)
//   floated      reactions shown: { emoji, n, pdt, playing }
//   errors       error frames from the room: { code, message, at }
//   vod          true once the stream is a VOD and the chat is a replay
'use strict';

(() => {
  const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
  const MAX_SHOWN = 200; // messages kept on screen
  const MAX_FLOATS = 8; // floating emoji per reaction count
  const VOD_WINDOW_MS = 60_000; // history fetched per window of the timeline
  const TICK_MS = 200;

  const params = new URLSearchParams(location.search);
  const stream = params.get('stream') || 'cam1';
  const token = params.get('token');
  const panel = document.getElementById('chat');
  if (!panel || !STREAM_NAME.test(stream)) return;

  const log = document.getElementById('chat-log');
  const form = document.getElementById('chat-form');
  const input = document.getElementById('chat-input');
  const nameInput = document.getElementById('chat-name');
  const statusEl = document.getElementById('chat-status');
  const viewersEl = document.getElementById('chat-viewers');
  const buttons = document.getElementById('reaction-buttons');
  const floats = document.getElementById('reaction-floats');

  const brook = window.brook || (window.brook = {});
  const chat = {
    state: 'connecting', user: null, name: null, mod: false, viewers: null,
    shown: [], floated: [], errors: [], vod: false, ws: null,
  };
  brook.chat = chat;
  document.body.classList.add('chat-on');
  panel.hidden = false;

  const tokenQuery = token ? `__token__=${encodeURIComponent(token)}` : '';

  // --- the timeline -------------------------------------------------------
  /** This page's program date time (ms), or null when nothing plays. */
  function playingMs() {
    const d = typeof brook.playingDate === 'function' ? brook.playingDate() : null;
    const ms = d ? d.getTime() : NaN;
    return Number.isFinite(ms) ? ms : null;
  }

  function isVod() {
    const hls = brook.hls;
    if (hls && hls.levels && hls.currentLevel >= 0) {
      const level = hls.levels[hls.currentLevel];
      if (level && level.details) return level.details.live === false;
    }
    return false;
  }

  // Messages and reaction counts waiting for playback to reach their pdt.
  let pending = [];
  const seen = new Set(); // message ids queued or shown
  const ownReactions = new Map(); // `${emoji}@${slot}` -> reactions this page floated already

  const startedAt = Date.now();

  function due(item, now) {
    if (item.pdt === null || item.pdt === undefined) return true;
    if (item.own) return true;
    // Not playing (yet): a live chat is shown anyway after a few seconds, so
    // a viewer whose player is stuck still sees it; a replay waits.
    if (now === null) return !chat.vod && Date.now() - startedAt > 5000;
    return now >= item.pdt;
  }

  function tick() {
    const now = playingMs();
    if (!chat.vod && isVod()) startReplay();
    if (chat.vod) replayWindows(now);
    const ready = [];
    pending = pending.filter((item) => {
      if (due(item, now)) { ready.push(item); return false; }
      return true;
    });
    ready.sort((a, b) => (a.pdt ?? 0) - (b.pdt ?? 0) || (a.id ?? 0) - (b.id ?? 0));
    for (const item of ready) {
      if (item.kind === 'chat') showMessage(item.msg, now);
      else floatReaction(item.emoji, item.n, item.pdt, now);
    }
  }
  setInterval(tick, TICK_MS);

  function queueMessage(msg) {
    if (seen.has(msg.id)) return;
    seen.add(msg.id);
    // In a replay, a message sent while not playing sits where the room got it.
    const pdt = msg.pdt ?? (chat.vod ? msg.ts : null);
    pending.push({ kind: 'chat', id: msg.id, pdt, own: msg.user === chat.user && !chat.vod, msg });
  }

  function queueReactions(counts) {
    for (const c of counts) {
      let n = c.n;
      const key = `${c.emoji}@${c.pdt}`;
      const own = ownReactions.get(key) || 0;
      if (own && !chat.vod) {
        // Already floated when pressed here.
        const mine = Math.min(own, n);
        n -= mine;
        if (own - mine > 0) ownReactions.set(key, own - mine); else ownReactions.delete(key);
      }
      if (n > 0) pending.push({ kind: 'react', emoji: c.emoji, n, pdt: c.pdt });
    }
  }

  // --- rendering (text only) -------------------------------------------------
  function line(className) {
    const li = document.createElement('li');
    li.className = className;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(li);
    while (log.children.length > MAX_SHOWN) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
    return li;
  }

  function showMessage(msg, now) {
    const li = line(msg.mod ? 'msg mod' : 'msg');
    li.dataset.id = String(msg.id);
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = msg.name;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = msg.text;
    li.append(who, text);
    if (msg.user === chat.user) li.classList.add('own');
    chat.shown.push({ id: msg.id, user: msg.user, name: msg.name, text: msg.text, pdt: msg.pdt, at: Date.now(), playing: now });
    if (chat.shown.length > MAX_SHOWN) chat.shown.shift();
  }

  function showSystem(text) {
    line('system').textContent = text;
  }

  function floatReaction(emoji, n, pdt, now) {
    chat.floated.push({ emoji, n, pdt, playing: now });
    if (chat.floated.length > 500) chat.floated.shift();
    const count = Math.min(n, MAX_FLOATS);
    for (let i = 0; i < count; i++) {
      const el = document.createElement('span');
      el.className = 'float';
      el.textContent = emoji;
      el.style.setProperty('--x', `${10 + Math.random() * 80}%`);
      el.style.setProperty('--delay', `${i * 120}ms`);
      el.addEventListener('animationend', () => el.remove());
      floats.append(el);
    }
  }

  function setStatus(text) {
    statusEl.textContent = text;
  }

  // --- the socket --------------------------------------------------------------
  let backoff = 1000;
  let reconnect = null;

  function connect() {
    clearTimeout(reconnect);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/chat/${encodeURIComponent(stream)}${tokenQuery ? `?${tokenQuery}` : ''}`);
    chat.ws = ws;
    chat.state = 'connecting';
    setStatus('connecting…');
    let opened = false;
    ws.addEventListener('open', () => { opened = true; });
    ws.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (!msg || typeof msg !== 'object') return;
      onFrame(msg);
    });
    ws.addEventListener('close', (event) => {
      if (chat.ws !== ws) return;
      if (event.code === 4003) {
        chat.state = 'banned';
        setStatus('you are banned from this chat');
        input.disabled = true;
        return;
      }
      chat.state = 'closed';
      setStatus('reconnecting…');
      const retry = () => {
        reconnect = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 30_000);
      };
      if (opened) { retry(); return; }
      // A refused upgrade tells a page nothing; the history endpoint answers
      // the same token check with a status.
      fetch(`/chat/${encodeURIComponent(stream)}/history?limit=1${tokenQuery ? `&${tokenQuery}` : ''}`)
        .then((r) => {
          if (DENIED[r.status]) {
            chat.state = 'denied';
            setStatus(DENIED[r.status]);
            input.disabled = true;
          } else {
            retry();
          }
        }, retry);
    });
  }

  const DENIED = {
    401: 'the chat needs a viewer token',
    403: 'no access to this chat',
    451: 'not available in your country',
  };

  // The room's clock minus this page's, learnt from `welcome` (an
  // underestimate by the welcome's travel time, never ahead of the room).
  let roomClockOffset = 0;

  // Every frame says when it was sent, on the room's clock: the room charges
  // its rate limits at that time, so frames that queue while it is busy are
  // never counted as a burst (docs/chat.md, Floods).
  function send(msg) {
    if (chat.ws && chat.ws.readyState === WebSocket.OPEN) {
      chat.ws.send(JSON.stringify({ v: 1, ...msg, sent: Date.now() + roomClockOffset }));
      return true;
    }
    return false;
  }

  function onFrame(msg) {
    switch (msg.type) {
      case 'welcome':
        if (typeof msg.ts === 'number') roomClockOffset = msg.ts - Date.now();
        chat.state = 'open';
        backoff = 1000;
        chat.user = msg.user;
        chat.name = msg.name;
        chat.mod = Boolean(msg.mod);
        setViewers(msg.viewers);
        setStatus('');
        if (msg.limits) {
          input.maxLength = msg.limits.max_text_chars;
          nameInput.maxLength = msg.limits.max_name_chars;
          renderButtons(msg.limits.emoji);
        }
        nameInput.value = chat.name;
        if (params.get('name')) send({ type: 'join', name: params.get('name') });
        break;
      case 'joined':
        chat.name = msg.name;
        nameInput.value = msg.name;
        break;
      case 'history':
        for (const m of msg.messages || []) queueMessage(m);
        break;
      case 'chat':
        queueMessage(msg);
        break;
      case 'reactions':
        queueReactions(msg.counts || []);
        break;
      case 'delete':
        for (const id of msg.ids || []) {
          pending = pending.filter((p) => p.id !== id);
          const el = log.querySelector(`li[data-id="${Number(id)}"]`);
          if (el) el.remove();
          chat.shown = chat.shown.filter((s) => s.id !== id);
        }
        break;
      case 'system':
        if (msg.event === 'viewers') setViewers(msg.viewers);
        else if (msg.event === 'notice') showSystem(msg.text);
        else if (msg.event === 'stream_started') showSystem('the stream started');
        else if (msg.event === 'stream_ended') showSystem('the stream ended');
        break;
      case 'error':
        chat.errors.push({ code: msg.code, message: msg.message, at: Date.now() });
        if (chat.errors.length > 100) chat.errors.shift();
        setStatus(msg.code === 'rate_limited' ? 'slow down: that was not sent' : String(msg.message || msg.code));
        setTimeout(() => { if (chat.state === 'open') setStatus(''); }, 3000);
        break;
      default:
        break; // newer message types are ignored
    }
  }

  function setViewers(n) {
    chat.viewers = n;
    viewersEl.textContent = typeof n === 'number' ? `${n} watching` : '';
  }

  // --- sending -----------------------------------------------------------------
  let nonce = 0;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const pdt = playingMs();
    const msg = { type: 'chat', text, nonce: `n${++nonce}` };
    if (pdt !== null) msg.pdt = Math.round(pdt);
    if (send(msg)) input.value = '';
  });

  nameInput.addEventListener('change', () => {
    const name = nameInput.value.trim();
    if (name && name !== chat.name) send({ type: 'join', name });
  });

  function renderButtons(emoji) {
    buttons.replaceChildren();
    for (const e of emoji) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'react';
      b.textContent = e;
      b.setAttribute('aria-label', `react ${e}`);
      b.addEventListener('click', () => react(e));
      buttons.append(b);
    }
  }

  function react(emoji) {
    const pdt = playingMs();
    const msg = { type: 'react', emoji };
    if (pdt !== null) msg.pdt = Math.round(pdt);
    if (!send(msg)) return;
    // Shown here at once; the room's count for this slot will include it.
    const slot = msg.pdt === undefined ? null : Math.floor(msg.pdt / 1000) * 1000;
    const key = `${emoji}@${slot}`;
    ownReactions.set(key, (ownReactions.get(key) || 0) + 1);
    floatReaction(emoji, 1, msg.pdt ?? null, pdt);
  }

  // --- VOD replay ----------------------------------------------------------------
  const fetched = new Set(); // window starts asked for
  let lastPlaying = null;

  function startReplay() {
    chat.vod = true;
    // What the live room sent on join belongs to the live stream; the replay
    // comes from the history by timeline range.
    resetReplay();
    showSystem('replaying the chat in step with the video');
  }

  function resetReplay() {
    pending = [];
    seen.clear();
    fetched.clear();
    log.replaceChildren();
  }

  function replayWindows(now) {
    if (now === null) return;
    if (lastPlaying !== null && (now < lastPlaying - 5000 || now > lastPlaying + VOD_WINDOW_MS)) {
      resetReplay(); // seeked
    }
    lastPlaying = now;
    const start = Math.floor(now / VOD_WINDOW_MS) * VOD_WINDOW_MS;
    for (const from of [start, start + VOD_WINDOW_MS]) {
      if (fetched.has(from)) continue;
      fetched.add(from);
      const url = `/chat/${encodeURIComponent(stream)}/history?from=${from}&to=${from + VOD_WINDOW_MS}${tokenQuery ? `&${tokenQuery}` : ''}`;
      fetch(url).then((r) => (r.ok ? r.json() : null)).then((h) => {
        if (!h || !fetched.has(from)) return;
        for (const m of h.messages || []) if (m.pdt === null || m.pdt >= now - 1000) queueMessage(m);
        queueReactions((h.reactions || []).filter((c) => c.pdt >= now - 1000));
      }).catch(() => fetched.delete(from));
    }
  }

  connect();
})();
