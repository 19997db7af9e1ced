/*! p2pcdn.js — browser peer of p2pcdn. No dependencies, no build step.
 *
 * <script src="/p2pcdn.js"></script> defines the globals `p2pcdn` (modern
 * API: p2pcdn.connect(opts) -> node with seed, fetch, includeImage,
 * includeDownload, close; p2pcdn.hashBlob) and `cdn` (the original
 * prototype's API). Usage and options: web/README.md. Wire contract:
 * PROTOCOL.md (Socket.IO 5 mediation, WebRTC data channel, BitTorrent peer
 * wire) and docs/extensions.md (p2pcdn_info, trickle ICE, the mediator's ICE
 * servers, batch events, one connection per pair of peers).
 */
(function (global) {
  'use strict';

  const PIECE_LENGTH = 200000;
  const BLOCK = 16384;
  const PIPELINE = 128; // blocks in flight per peer
  const REFILL = 32; // ask for more once this many have arrived
  const CHUNK = 65536; // largest data-channel message we send
  const HIGH_WATER = 64 << 10; // we send while the channel buffers at most this
  const MAX_WIRE_MSG = 1 << 20; // largest peer-wire message we accept
  const MAX_REQUEST = 262144; // largest block we serve (prototype asks 200000)
  const MAX_UPLOAD_QUEUE = 1024;
  const READ_CACHE = 4 << 20; // bytes of recently served pieces kept in memory
  const READ_UNIT = 1 << 20; // bytes of a shared file read at once
  const SEAL_BYTES = 4 << 20; // verified bytes kept in memory before they go into a Blob
  const INFO_PIECE = 16384;
  const MAX_INFO = 8 << 20;
  const MAX_DIAL = 8;
  const MAX_WIRES = 32; // per file
  const MAX_CONNS = 100; // peer connections of a node
  const MAX_CHANNELS = 256; // files on one connection
  const MAX_FOUND = 1000; // peers of one file remembered for fetch's verdicts
  const WAIT = 20000; // for an answer, for ICE, for a data channel to open
  const IDLE = 30000; // a connection with no channel left closes after this
  const ICE_QUIET = 5000; // no check answered this long after the last candidate: ICE failed
  const BLIND_WAIT = 3000; // after the handshake, for the answer to the blind request of piece 0
  const GRACE = 3000; // after ICE failed with every peer found, before fetch gives up
  const FETCH_TIMEOUT = 30000; // fetch gives up after this long without progress
  const LABEL = 'p2pcdn/'; // + full hash: our data channels' labels
  const EXT_INFO_ID = 1; // the extended id on which we receive p2pcdn_info
  const HEX40 = /^[0-9a-f]{40}$/;
  const te = new TextEncoder();

  // ---------- small helpers ----------
  function toHex(u8) {
    let s = '';
    for (let i = 0; i < u8.length; i++) s += (u8[i] < 16 ? '0' : '') + u8[i].toString(16);
    return s;
  }
  const fromHex = (s) => Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
  const randomHex = (n) => toHex(crypto.getRandomValues(new Uint8Array(n)));
  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  function latin1(u8) {
    let s = '';
    for (let i = 0; i < u8.length; i++) s += String.fromCharCode(u8[i]);
    return s;
  }
  function u32(n) { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const raise = (m) => { throw new Error(m); }; // throws from expressions too
  // fail is fetch's error: err.code says what happened, err.peers how many peers were found.
  const fail = (code, m, peers) => Object.assign(new Error('p2pcdn: ' + m), { code, peers });

  class Emitter {
    constructor() { this._h = new Map(); }
    on(ev, fn) { if (!this._h.has(ev)) this._h.set(ev, new Set()); this._h.get(ev).add(fn); return this; }
    off(ev, fn) { const s = this._h.get(ev); if (s) s.delete(fn); return this; }
    emit(ev, ...args) {
      for (const fn of [...(this._h.get(ev) || [])]) {
        try { fn(...args); } catch (e) { console.error('p2pcdn: listener of', ev, 'failed:', e); }
      }
    }
  }

  // ---------- hashing (the prototype's quirks, PROTOCOL.md section 3) ----------
  function sha1js(m) {
    // Fallback for insecure contexts (plain http on a LAN address), where
    // crypto.subtle does not exist.
    const ml = m.length, nb = ((ml + 8) >>> 6) + 1;
    const buf = new Uint8Array(nb * 64);
    buf.set(m); buf[ml] = 0x80;
    const dv = new DataView(buf.buffer);
    dv.setUint32(buf.length - 4, (ml * 8) >>> 0);
    dv.setUint32(buf.length - 8, Math.floor(ml / 0x20000000));
    const w = new Uint32Array(80);
    let h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476, h4 = 0xc3d2e1f0;
    for (let off = 0; off < buf.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + 4 * i);
      for (let i = 16; i < 80; i++) { const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]; w[i] = (x << 1) | (x >>> 31); }
      let a = h0, b = h1, c = h2, d = h3, e = h4;
      for (let i = 0; i < 80; i++) {
        let f, k;
        if (i < 20) { f = (b & c) | (~b & d); k = 0x5a827999; } else if (i < 40) { f = b ^ c ^ d; k = 0x6ed9eba1; } else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8f1bbcdc; } else { f = b ^ c ^ d; k = 0xca62c1d6; }
        const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]) | 0;
        e = d; d = c; c = (b << 30) | (b >>> 2); b = a; a = t;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0; h4 = (h4 + e) | 0;
    }
    const out = new Uint8Array(20), ov = new DataView(out.buffer);
    [h0, h1, h2, h3, h4].forEach((h, i) => ov.setUint32(4 * i, h >>> 0));
    return out;
  }
  async function sha1(u8) {
    if (global.crypto && crypto.subtle) return new Uint8Array(await crypto.subtle.digest('SHA-1', u8));
    return sha1js(u8);
  }
  // The prototype hashes String.fromCharCode(byte...) as UTF-8: bytes >= 0x80
  // become two bytes. Table-driven and branch-free: ~5x faster on random data.
  // The buffer is reused (digest copies its input at once).
  const WIDEN = new Uint16Array(256);
  for (let b = 0; b < 256; b++) WIDEN[b] = b < 0x80 ? b : ((0x80 | (b & 0x3f)) << 8) | 0xc0 | (b >> 6);
  let widened = new Uint8Array(0);
  function quirkyBytes(u8) {
    if (widened.length < 2 * u8.length) widened = new Uint8Array(2 * u8.length);
    const out = widened;
    let j = 0;
    for (let i = 0, n = u8.length; i < n; i++) {
      const b = u8[i], w = WIDEN[b];
      out[j] = w; out[j + 1] = w >> 8; j += 1 + (b >> 7);
    }
    return out.subarray(0, j);
  }
  async function pieceHash(u8) { return toHex(await sha1(quirkyBytes(u8))); }
  async function merkleRoot(hashes) {
    if (!hashes.length) return undefined;
    let level = hashes;
    while (level.length > 1) {
      const next = [];
      for (let i = 0; i < level.length; i += 2) {
        const right = i + 1 < level.length ? level[i + 1] : 'undefined'; // the prototype's quirk
        next.push(toHex(await sha1(te.encode(level[i] + right))));
      }
      level = next;
    }
    return level[0];
  }
  async function hashBlob(blob, name) {
    const total = blob.size, n = Math.ceil(total / PIECE_LENGTH), hashes = [];
    for (let i = 0; i < n; i++) {
      const part = blob.slice(i * PIECE_LENGTH, Math.min(total, (i + 1) * PIECE_LENGTH));
      hashes.push(await pieceHash(new Uint8Array(await part.arrayBuffer())));
    }
    // Field order matters: it is the prototype's JSON (an undefined full_hash is left out).
    return { full_hash: await merkleRoot(hashes), file_name: name, pieces_length: PIECE_LENGTH, pieces_amount: n, total_length: total, piece_hashes: hashes };
  }
  function safeName(name) {
    // file_name is untrusted: keep the last path element, drop control characters.
    let s = String(name == null ? '' : name).replace(/[\u0000-\u001f\u007f]/g, '');
    s = s.split(/[\\/]/).pop().trim();
    if (s === '.' || s === '..' || !s) s = 'file';
    return s.slice(0, 200);
  }
  // checkInfo returns a clean copy of an info dictionary or throws saying what is wrong.
  async function checkInfo(obj, wantHash) {
    const bad = (why) => raise('invalid info dictionary: ' + why);
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) bad('not a JSON object');
    const { full_hash: fh, pieces_length: pl, pieces_amount: pa, total_length: tl, piece_hashes: ph } = obj;
    if (typeof fh !== 'string' || !HEX40.test(fh)) bad('full_hash is not 40 lowercase hex characters');
    if (wantHash && fh !== wantHash) bad('full_hash ' + fh + ' is not the requested ' + wantHash);
    if (!Number.isSafeInteger(pl) || pl < 1 || pl > MAX_WIRE_MSG) bad('pieces_length ' + pl + ' out of range');
    if (!Array.isArray(ph) || ph.length < 1) bad('piece_hashes is not a non-empty list');
    if (pa !== ph.length) bad('pieces_amount ' + pa + ' differs from ' + ph.length + ' piece hashes');
    if (!Number.isSafeInteger(tl) || tl < 1 || Math.ceil(tl / pl) !== pa) bad('total_length ' + tl + ' does not match ' + pa + ' pieces of ' + pl);
    for (const h of ph) if (typeof h !== 'string' || !HEX40.test(h)) bad('a piece hash is not 40 lowercase hex characters');
    if (await merkleRoot(ph) !== fh) bad('piece hashes do not fold to full_hash ' + fh);
    return { full_hash: fh, file_name: safeName(obj.file_name), pieces_length: pl, pieces_amount: pa, total_length: tl, piece_hashes: ph.slice() };
  }
  const MIME = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', avif: 'image/avif', bmp: 'image/bmp', ico: 'image/x-icon', mp4: 'video/mp4', webm: 'video/webm', mp3: 'audio/mpeg', ogg: 'audio/ogg', wav: 'audio/wav', txt: 'text/plain', pdf: 'application/pdf' };
  function mimeOf(name) { const m = /\.([a-z0-9]+)$/i.exec(name || ''); return (m && MIME[m[1].toLowerCase()]) || 'application/octet-stream'; }

  // ---------- bencode (BEP 3), bounded for network input ----------
  function bencode(v) { const out = []; benc(v, out); return concat(out); }
  function benc(v, out) {
    if (typeof v === 'number') out.push(te.encode('i' + Math.trunc(v) + 'e'));
    else if (typeof v === 'string') { const b = te.encode(v); out.push(te.encode(b.length + ':'), b); }
    else if (v instanceof Uint8Array) out.push(te.encode(v.length + ':'), v);
    else if (Array.isArray(v)) { out.push(te.encode('l')); for (const x of v) benc(x, out); out.push(te.encode('e')); }
    else { out.push(te.encode('d')); for (const k of Object.keys(v).sort()) { benc(k, out); benc(v[k], out); } out.push(te.encode('e')); }
  }
  function bdecode(u8, pos, depth) {
    pos = pos || 0; depth = depth || 0;
    if (depth > 16) raise('bencode nested too deeply');
    if (pos >= u8.length) raise('bencode truncated');
    const c = u8[pos];
    if (c === 0x69) { // i<digits>e
      const end = u8.subarray(pos, pos + 24).indexOf(0x65);
      if (end < 0) raise('bencode integer unterminated');
      const s = latin1(u8.subarray(pos + 1, pos + end));
      if (!/^(0|-?[1-9][0-9]*)$/.test(s)) raise('bencode integer malformed');
      return { value: Number(s), end: pos + end + 1 };
    }
    if (c === 0x6c || c === 0x64) { // l...e, d...e
      const isDict = c === 0x64, val = isDict ? Object.create(null) : [];
      pos++;
      for (;;) {
        if (pos >= u8.length) raise('bencode truncated');
        if (u8[pos] === 0x65) return { value: val, end: pos + 1 };
        if (isDict) {
          const k = bdecode(u8, pos, depth + 1);
          if (!(k.value instanceof Uint8Array)) raise('bencode dictionary key is not a string');
          const v = bdecode(u8, k.end, depth + 1);
          val[latin1(k.value)] = v.value; pos = v.end;
        } else {
          const v = bdecode(u8, pos, depth + 1);
          val.push(v.value); pos = v.end;
        }
      }
    }
    if (c >= 0x30 && c <= 0x39) { // <len>:<bytes>
      const colon = u8.subarray(pos, pos + 12).indexOf(0x3a);
      if (colon < 0) raise('bencode string length malformed');
      const n = Number(latin1(u8.subarray(pos, pos + colon)));
      const start = pos + colon + 1;
      if (!Number.isSafeInteger(n) || start + n > u8.length) raise('bencode string truncated');
      return { value: u8.subarray(start, start + n), end: start + n };
    }
    raise('bencode: unexpected byte 0x' + c.toString(16) + ' at ' + pos);
  }

  // ---------- Engine.IO 4 / Socket.IO 5 client ----------
  // One EngineSession is one Engine.IO connection (WebSocket, or polling
  // maybe upgraded to WebSocket). MediatorLink owns sessions and reconnects
  // with backoff.
  class EngineSession {
    constructor(urls, transports, h) {
      this.urls = urls; this.transports = transports; this.h = h;
      this.sid = null; this.transport = null; this.closed = false;
      this.outbox = []; this.posting = null; this.polling = null; this.upgrading = false;
      this.abort = new AbortController(); this.pingTimer = null; this.ws = null;
    }
    start() {
      if (this.transports[0] === 'websocket' || !global.fetch) this._wsOpen(); else this._pollOpen();
    }
    _url(kind, transport) {
      const base = kind === 'ws' ? this.urls.ws : this.urls.http;
      let u = base + '/socket.io/?EIO=4&transport=' + transport;
      if (this.sid) u += '&sid=' + encodeURIComponent(this.sid);
      if (transport === 'polling') u += '&t=' + randomHex(4);
      return u;
    }
    _onPackets(list) { for (const p of list) { if (this.closed) return; this._onPacket(p); } }
    _onPacket(p) {
      if (typeof p !== 'string' || !p.length) return;
      this._armPing();
      switch (p[0]) {
        case '0': return this._onOpen(p.slice(1));
        case '1': return this.close('server closed the session');
        case '2': return this.send('3');
        case '4': return this.h.onMessage(p.slice(1));
        default: return; // pong, noop, binary: nothing to do
      }
    }
    _onOpen(json) {
      if (this.sid) return;
      let o;
      try { o = JSON.parse(json); } catch (e) { return this.close('bad open packet'); }
      if (!o || typeof o.sid !== 'string') return this.close('open packet without sid');
      this.sid = o.sid;
      this.pingWindow = (Number(o.pingInterval) || 25000) + (Number(o.pingTimeout) || 20000);
      this._armPing();
      this.h.onOpen();
      if (this.transport === 'polling') {
        this._pollLoop();
        if (Array.isArray(o.upgrades) && o.upgrades.includes('websocket') && this.transports.includes('websocket')) this._upgrade();
      }
    }
    _armPing() {
      if (!this.pingWindow) return;
      clearTimeout(this.pingTimer);
      this.pingTimer = setTimeout(() => this.close('mediator stopped pinging'), this.pingWindow);
    }
    _fetch(init) {
      return fetch(this._url('http', 'polling'), { signal: this.abort.signal, credentials: 'omit', cache: 'no-store', ...init })
        .then((r) => r.ok ? r : raise('HTTP ' + r.status));
    }
    async _pollOpen() {
      this.transport = 'polling';
      this.h.onTransport('polling');
      try {
        this._onPackets((await (await this._fetch()).text()).split('\x1e'));
        if (!this.sid && !this.closed) this.close('no open packet');
      } catch (e) { this.close('polling: ' + e.message); }
    }
    async _pollLoop() {
      while (!this.closed && this.transport === 'polling' && !this.upgrading) {
        this.polling = this._fetch().then((r) => r.text());
        let body;
        try { body = await this.polling; } catch (e) { return this.close('polling: ' + e.message); } finally { this.polling = null; }
        this._onPackets(body.split('\x1e'));
      }
    }
    async _flushPost() {
      if (this.posting || !this.outbox.length || this.transport !== 'polling' || this.upgrading) return;
      const body = this.outbox.splice(0).join('\x1e');
      this.posting = this._fetch({ method: 'POST', body, headers: { 'Content-Type': 'text/plain;charset=UTF-8' } })
        .catch((e) => this.close('polling send: ' + e.message))
        .finally(() => { this.posting = null; this._flushPost(); });
    }
    send(p) {
      if (this.closed) return;
      if (this.transport === 'websocket') { try { this.ws.send(p); } catch (e) { this.close('websocket send failed'); } return; }
      this.outbox.push(p);
      this._flushPost();
    }
    _upgrade() {
      let ws;
      try { ws = new WebSocket(this._url('ws', 'websocket')); } catch (e) { return; }
      const fail = () => { if (this.ws !== ws) { try { ws.close(); } catch (e) { /* already closed */ } this.upgrading = false; if (!this.closed && this.transport === 'polling' && !this.polling) this._pollLoop(); this._flushPost(); } };
      ws.onerror = fail; ws.onclose = fail;
      ws.onopen = () => ws.send('2probe');
      ws.onmessage = async (ev) => {
        if (ev.data !== '3probe' || this.closed) return fail();
        // Like socket.io-client: pause polling, let the pending poll and post
        // finish (the server answers the poll with a noop), then switch.
        this.upgrading = true;
        try { await this.polling; } catch (e) { /* the loop reports it */ }
        try { await this.posting; } catch (e) { /* reported */ }
        if (this.closed) return;
        this.ws = ws; this.transport = 'websocket';
        this._own(ws);
        ws.send('5');
        const queued = this.outbox.splice(0);
        for (const p of queued) ws.send(p);
        this.upgrading = false;
        this.h.onTransport('websocket');
      };
    }
    _own(ws) {
      ws.onmessage = (m) => { if (typeof m.data === 'string') this._onPacket(m.data); };
      ws.onclose = () => this.close('websocket closed');
      ws.onerror = () => this.close('websocket error');
    }
    _wsOpen() {
      this.transport = 'websocket';
      let ws;
      try { ws = new WebSocket(this._url('ws', 'websocket')); } catch (e) { return setTimeout(() => this.close('websocket: ' + e.message)); }
      this.ws = ws;
      this.h.onTransport('websocket');
      this._own(ws);
      ws.onopen = () => { for (const p of this.outbox.splice(0)) ws.send(p); };
      // A proxy may hold a WebSocket it will never open: give up on it.
      setTimeout(() => this.sid || this.close('websocket did not open within 5 s'), 5000);
    }
    close(reason) {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.pingTimer);
      this.abort.abort();
      if (this.ws) { try { this.ws.close(); } catch (e) { /* closing anyway */ } }
      this.h.onClose(reason);
    }
  }

  function mediatorURLs(m) {
    let u;
    try { u = new URL(m || global.location.origin, global.location ? global.location.href : undefined); } catch (e) { raise('p2pcdn: invalid mediator address ' + JSON.stringify(m)); }
    const secure = u.protocol === 'wss:' || u.protocol === 'https:';
    if (!/^(wss?|https?):$/.test(u.protocol)) raise('p2pcdn: mediator must be a ws:, wss:, http: or https: URL, not ' + m);
    return { http: (secure ? 'https://' : 'http://') + u.host, ws: (secure ? 'wss://' : 'ws://') + u.host };
  }

  class MediatorLink extends Emitter {
    constructor(url, transports, log) {
      super();
      this.urls = mediatorURLs(url); this.transports = transports; this.log = log;
      this.session = null; this.connected = false; this.closed = false; this.attempt = 0; this.timer = null;
      this.transport = null; this.history = []; this.wsFailed = false;
    }
    start() { this._open(); }
    _open() {
      if (this.closed) return;
      // Once a WebSocket failed to open, start with long-polling (which
      // still tries to upgrade) for good.
      const order = this.wsFailed ? ['polling', 'websocket'].filter((t) => this.transports.includes(t)) : this.transports;
      const s = new EngineSession(this.urls, order, {
        onOpen: () => s.send('40'),
        onTransport: (t) => { if (this.session === s) { this.transport = t; this.history.push(t); this.emit('transport', t); } },
        onMessage: (m) => this._onMessage(s, m),
        onClose: (why) => this._onClose(s, why),
      });
      this.session = s;
      s.start();
    }
    _onMessage(s, m) {
      if (m.startsWith('0')) { this.attempt = 0; this.connected = true; this.emit('connect'); return; }
      if (m.startsWith('1')) { s.close('namespace disconnected'); return; }
      if (m.startsWith('4')) { this.log('mediator refused the connection:', m.slice(1)); s.close('connect error'); return; }
      if (!m.startsWith('2')) return; // acks and binary events are not part of the contract
      let arr;
      try { arr = JSON.parse(m.slice(1)); } catch (e) { this.log('ignoring malformed event from mediator'); return; }
      if (!Array.isArray(arr) || typeof arr[0] !== 'string') return;
      this.emit('event', arr[0], arr.slice(1));
    }
    _onClose(s, why) {
      if (this.session !== s) return;
      this.session = null;
      if (!s.sid && s.transport === 'websocket' && !this.wsFailed && !this.closed && this.transports.includes('polling')) {
        this.wsFailed = true;
        this.log('no WebSocket to the mediator (' + why + '); falling back to long-polling');
        return this._open();
      }
      const was = this.connected;
      this.connected = false;
      if (was) this.emit('disconnect', why);
      if (this.closed) return;
      const delay = Math.min(5000, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      this.log('mediator connection lost (' + why + '), retrying in ' + Math.round(delay) + ' ms');
      this.timer = setTimeout(() => this._open(), delay);
    }
    send(name, ...args) {
      if (!this.connected || !this.session) return false;
      this.session.send('42' + JSON.stringify([name, ...args]));
      return true;
    }
    close() {
      this.closed = true;
      clearTimeout(this.timer);
      if (this.session) this.session.close('closed by the page');
    }
  }

  // ---------- WebRTC ----------
  // iceDone waits for candidate gathering (for complete SDP). With no
  // ICE servers only host candidates can come: the UDP ones arrive together at
  // once (within 1 ms, measured), and Chromium adds TCP ones (active, useless
  // without a passive peer) 100-200 ms later, so a short quiet period after a
  // UDP candidate suffices; it is a fixed cost of every dial.
  function iceDone(pc, ms, hostOnly) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const t = setTimeout(resolve, ms); // send what we have rather than nothing
      let quiet = null;
      const done = () => { clearTimeout(t); clearTimeout(quiet); resolve(); };
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') done(); });
      if (hostOnly) pc.addEventListener('icecandidate', (e) => { if (e.candidate && / udp /i.test(e.candidate.candidate)) { clearTimeout(quiet); quiet = setTimeout(done, 10); } });
    });
  }

  // cleanIce keeps the ICE servers of a list from the network that this
  // browser takes: one it refuses would make every RTCPeerConnection throw.
  // A plainly well-formed URL passes; any other is tried on a throwaway
  // connection, since the rules (ports, transport, credentials' lengths) are
  // the browser's; verdicts are kept (a mediator repeats its URLs).
  const iceVerdicts = new Map();
  const PLAIN_ICE = /^(stuns?:|turns?:)(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:(\d{1,5}))?(\?transport=(udp|tcp))?$/i;
  function cleanIce(list) {
    const out = [], str = (v) => typeof v === 'string' && v.length <= 512;
    const plain = (server) => {
      const m = PLAIN_ICE.exec(server.urls[0]), cred = (v) => typeof v === 'string' && v.length > 0 && v.length <= 256;
      return !!m && (!m[4] || (+m[4] > 0 && +m[4] < 65536)) && (/^stun/i.test(m[1]) ? !m[5] : cred(server.username) && cred(server.credential));
    };
    const takes = (server) => {
      if (plain(server)) return true;
      const key = JSON.stringify([server.urls[0], server.username && server.username.length, server.credential && server.credential.length]);
      const keep = (ok) => { if (iceVerdicts.size >= 64) iceVerdicts.delete(iceVerdicts.keys().next().value); iceVerdicts.set(key, ok); return ok; };
      if (iceVerdicts.has(key)) return iceVerdicts.get(key);
      try { new RTCPeerConnection({ iceServers: [server] }).close(); } catch (e) {
        // Refused, or not verified now (another error: too many connections):
        // not kept either way, but only a refusal is final.
        return ['SyntaxError', 'InvalidAccessError', 'TypeError', 'NotSupportedError'].includes(e.name) && keep(false);
      }
      return keep(true);
    };
    for (const s of Array.isArray(list) ? list.slice(0, 8) : []) {
      if (!s || typeof s !== 'object') continue;
      const auth = str(s.username) && str(s.credential) ? { username: s.username, credential: s.credential } : {};
      const urls = (Array.isArray(s.urls) ? s.urls : [s.urls]).slice(0, 8)
        .filter((u) => str(u) && /^(stuns?|turns?):[^\s]+$/.test(u) && takes({ urls: [u], ...auth }));
      if (urls.length) out.push(urls.some((u) => /^turns?:/.test(u)) ? { urls, ...auth } : { urls });
    }
    return out;
  }
  const candKind = (line) => (/ typ ([a-z]+)/.exec(line) || [])[1];

  // ---------- peer connections ----------
  // A Conn is one RTCPeerConnection with a remote peer. Between two peers of
  // ours (signals marked "p2pcdn":1) it carries a data channel per file,
  // labelled p2pcdn/<full hash>, opened without signalling; toward a
  // prototype peer it carries the one file whose signal set it up
  // (docs/extensions.md, "One connection per pair of peers").
  class Conn {
    constructor(node, remoteId, hash, initiator, ours) {
      this.node = node; this.remoteId = remoteId; this.hash = hash; this.initiator = initiator; this.ours = ours;
      this.pc = null; this.ice = []; this.open = false; this.closed = false; this.answered = !initiator; this.onAnswer = null;
      this.wires = new Set(); this.queue = new Set(); // hashes to open channels for once the connection is up
      this.early = []; this.cand = null; this.local = new Set(); this.remote = new Set(); this.timer = null; this.idle = null; this.heard = 0;
      node.nconns++;
    }
    _start() {
      const ice = this.ice = this.node.ice(), pc = this.pc = new RTCPeerConnection({ iceServers: ice });
      pc.addEventListener('icecandidate', (e) => { if (e.candidate) { this.local.add(candKind(e.candidate.candidate)); this.heard = Date.now(); } });
      pc.onconnectionstatechange = () => {
        const st = pc.connectionState;
        if (st === 'connected') this._opened();
        else if (st === 'failed' || st === 'closed') this.close(this.open ? 'connection ' + st : 'ICE failed', this.open ? null : 'ice');
      };
      pc.ondatachannel = (e) => this._channel(e.channel);
      return pc;
    }
    _arm(why, kind) { clearTimeout(this.timer); this.timer = setTimeout(() => this.open || this.close(why, kind), WAIT); }
    // _watchICE: Chromium declares ICE failed after ~15 s, or never when no
    // candidate pair can be formed; checks that none answered for a while
    // after the last candidate appeared will not work either.
    _watchICE() {
      this.heard = Date.now();
      const iv = setInterval(async () => {
        if (this.open || this.closed) return clearInterval(iv);
        let answered = false, pairs = 0;
        try { (await this.pc.getStats()).forEach((s) => { if (s.type === 'candidate-pair') { pairs++; answered = answered || s.responsesReceived > 0; } }); } catch (e) { return; }
        if (!answered && !this.open && Date.now() - this.heard >= ICE_QUIET) {
          clearInterval(iv);
          this.close('ICE failed: ' + (pairs ? 'no connectivity check was answered' : 'no candidate pair to check'), 'ice');
        }
      }, 1000);
    }
    _remoteSDP(sdp) { for (const l of sdp.split('\n')) if (l.startsWith('a=candidate:')) this.remote.add(candKind(l)); }
    addCandidate(c) {
      this.remote.add(candKind(c.candidate)); this.heard = Date.now();
      if (this.cand) this.cand(c); else if (this.early.length < 64) this.early.push(c);
    }
    // _sender sends a local candidate to the remote as a signal, as simple-peer does.
    _sender(hash) { return (c) => c && !this.closed && this.node._sig(hash, this.remoteId, { type: 'candidate', candidate: c.toJSON() }); }
    _cands() {
      this.cand = (c) => this.pc.addIceCandidate(c).catch((e) => this.node.log('bad candidate:', e.message));
      this.early.splice(0).forEach(this.cand);
    }
    // dial offers a connection for t. A marked offer goes out with the host
    // candidates and the others (server-reflexive, relayed) follow as
    // candidate signals, which simple-peer and our Go peers apply too;
    // unmarked, it waits for gathering to complete, as the prototype does.
    async dial(t) {
      const node = this.node, w = new Wire(t, this.remoteId, true);
      t.addWire(w);
      try {
        const pc = this._start();
        let sent = false;
        const send = this._sender(t.hash);
        if (node.trickle) pc.addEventListener('icecandidate', (e) => sent && send(e.candidate));
        w.attach(this, pc.createDataChannel(LABEL + t.hash, { ordered: true }));
        const answered = new Promise((resolve) => { this.onAnswer = resolve; });
        await pc.setLocalDescription(await pc.createOffer());
        await iceDone(pc, 5000, node.trickle || !this.ice.length);
        if (this.closed) return;
        const sdp = pc.localDescription.sdp;
        sent = true; // candidates from now on are not in sdp
        node._sig(t.hash, this.remoteId, node.trickle ? { type: 'offer', sdp, trickle: true, p2pcdn: 1 } : { type: 'offer', sdp });
        this._arm('no answer within 20 s', 'no answer');
        const a = await answered;
        this.onAnswer = null;
        if (this.closed || !a) return;
        this.answered = true;
        this.ours = node.trickle && a.p2pcdn === 1;
        if (!this.ours) node._unshare(this);
        this._remoteSDP(a.sdp);
        await pc.setRemoteDescription({ type: 'answer', sdp: a.sdp });
        this._cands();
        this._arm('ICE did not connect within 20 s', 'ice');
        this._watchICE();
      } catch (e) { this.close('connecting failed: ' + e.message, 'error'); }
    }
    // A trickle offer comes from our code: answer at once, then send each
    // candidate as simple-peer does; others need complete SDP.
    async answer(t, sdp, trickle) {
      const node = this.node;
      try {
        const pc = this._start();
        let early = [];
        const send = this._sender(t.hash);
        if (trickle) pc.addEventListener('icecandidate', (e) => early ? early.push(e.candidate) : send(e.candidate));
        this._remoteSDP(sdp);
        await pc.setRemoteDescription({ type: 'offer', sdp });
        this._cands();
        await pc.setLocalDescription(await pc.createAnswer());
        if (!trickle) await iceDone(pc, 5000, !this.ice.length);
        if (this.closed) return;
        const a = pc.localDescription.sdp;
        node._sig(t.hash, this.remoteId, this.ours ? { type: 'answer', sdp: a, p2pcdn: 1 } : { type: 'answer', sdp: a });
        early.forEach(send); early = null;
        this._arm('no data channel within 20 s', 'ice');
        this._watchICE();
      } catch (e) { this.close('answering failed: ' + e.message, 'error'); }
    }
    _opened() {
      if (this.open || this.closed) return;
      this.open = true; clearTimeout(this.timer);
      const q = [...this.queue];
      this.queue.clear();
      for (const h of q) { const t = this.node.transfers.get(h); if (t && t.wanted && !t.complete) this.node._connect(t, this.remoteId); }
      if (!this.wires.size) this.release();
    }
    // openChannel starts fetching t from this peer over the open connection.
    openChannel(t) {
      if (this.wires.size >= MAX_CHANNELS) return false;
      const w = new Wire(t, this.remoteId, true);
      t.addWire(w);
      try { w.attach(this, this.pc.createDataChannel(LABEL + t.hash, { ordered: true })); } catch (e) { w.close('opening a data channel failed: ' + e.message); }
      return true;
    }
    // _channel takes a channel the remote opened: its label names the file
    // (or it belongs to the file whose signal set the connection up). A
    // channel for a file we neither share nor fetch is refused by closing it.
    _channel(dc) {
      const node = this.node, id = this.remoteId, l = dc.label;
      const t = node.transfers.get(l.startsWith(LABEL) && HEX40.test(l.slice(LABEL.length)) ? l.slice(LABEL.length) : this.hash);
      let old = t && t.wires.get(id);
      // Both sides opened a channel for one file: the higher id's wins.
      if (old && old.conn === this && old.initiator && !old.gotHandshake && node.peerId < id) { old.close('crossed channels'); old = null; }
      if (this.closed || !t || (old && old.conn === this) || (!this.ours && this.wires.size) || this.wires.size >= MAX_CHANNELS ||
          !(t.canServe() || t.wanted) || t.banned.has(id) || t.wires.size >= MAX_WIRES) {
        try { dc.close(); } catch (e) { /* refused */ }
        return;
      }
      if (old) old.close('replaced by a newer connection');
      const w = new Wire(t, id, false);
      t.addWire(w);
      w.attach(this, dc);
    }
    // hashes this connection was, or was going to be, used for.
    hashes() { return [this.hash, ...this.queue, ...[...this.wires].map((w) => w.t.hash)]; }
    release(w) {
      this.wires.delete(w);
      if (this.wires.size || this.closed) return;
      if (w && this.answered && !this.ours) return this.close('done'); // a prototype peer's connection carries one file
      clearTimeout(this.idle);
      this.idle = setTimeout(() => this.wires.size || this.queue.size || this.close('idle'), IDLE);
    }
    // close ends the connection; fail, when set, is why connecting failed,
    // noted for every file that waited on it.
    close(why, fail) {
      if (this.closed) return;
      this.closed = true; this.node.nconns--;
      clearTimeout(this.timer); clearTimeout(this.idle);
      if (this.node.conns.get(this.remoteId) === this) this.node.conns.delete(this.remoteId);
      if (this.node.single.get(this.remoteId + this.hash) === this) this.node.single.delete(this.remoteId + this.hash);
      if (this.onAnswer) this.onAnswer(null);
      this.node.log('connection with', this.remoteId.slice(0, 8), 'closed:', why);
      if (fail && !this.open) for (const h of new Set(this.hashes())) { const t = this.node.transfers.get(h); if (t) t._failed(this.remoteId, fail, this); }
      for (const w of [...this.wires]) w.close(why);
      try { if (this.pc) this.pc.close(); } catch (e) { /* closing */ }
    }
  }

  // ---------- BitTorrent peer wire over one data channel ----------
  const PSTR = te.encode('\x13BitTorrent protocol');
  class Wire {
    constructor(transfer, remoteId, initiator) {
      this.t = transfer; this.remoteId = remoteId; this.initiator = initiator;
      this.conn = null; this.dc = null; this.closed = false;
      this.rx = []; this.rxLen = 0; this.gotHandshake = false;
      this.tx = []; this.txLen = 0; this.flushSoon = false; this.waiters = [];
      this.amChoking = true; this.amInterested = false; this.peerChoking = true; this.peerInterested = false;
      this.bitfieldSent = false; this.remoteBits = new Uint8Array(0); this.sawBitfield = false;
      this.remoteInfoId = 0; this.remoteInfoSize = 0; this.infoTried = false;
      this.inflight = new Map(); this.uploads = []; this.uploading = false;
      this.downloaded = 0; this.uploaded = 0;
      this.blindPending = false; this.blindData = null; // piece 0 asked with the handshake (_sendBlind)
    }
    // attach runs the wire over data channel dc of connection conn (a Conn).
    attach(conn, dc) {
      this.conn = conn; this.dc = dc;
      if (conn.wires) { conn.wires.add(this); clearTimeout(conn.idle); }
      dc.binaryType = 'arraybuffer';
      dc.bufferedAmountLowThreshold = HIGH_WATER;
      dc.onbufferedamountlow = () => this._flush();
      dc.onmessage = (e) => { if (e.data instanceof ArrayBuffer) this._onData(new Uint8Array(e.data)); };
      // A channel we opened on a live connection and that closes before the
      // remote's handshake was refused: that peer does not have the file.
      dc.onclose = () => this.close('data channel closed', this.initiator && !this.gotHandshake && conn.open && !conn.closed);
      const opened = () => {
        if (this.initiator) this._sendHandshake();
        if (this.initiator && conn.ours && !this.t.info && this.t.wanted) this._sendBlind();
        this._flush();
      };
      if (dc.readyState === 'open') opened(); else dc.onopen = opened;
      if (conn.open) setTimeout(() => dc.readyState === 'connecting' && this.close('data channel did not open within 20 s'), WAIT);
    }
    // _sendBlind asks a peer of ours for all of piece 0 in the flight of our
    // handshake, before the dictionary tells its length (docs/extensions.md):
    // our seeders answer a request past a piece's end with the bytes there
    // are, after their extended handshake, so the piece comes a round trip
    // sooner. Until it comes, piece 0 is not asked of this peer again.
    _sendBlind() {
      this.blindPending = true;
      this._sendReq(6, 0, 0, PIECE_LENGTH);
    }
    // _blindGiveUp stops waiting for the blind request's answer from a peer
    // that passed it over without a word (an older page).
    _blindGiveUp() {
      if (!this.blindPending || this.closed) return;
      this.blindPending = false;
      this.t._fill(this);
    }
    _sendHandshake() {
      const reserved = new Uint8Array(8); reserved[5] = 0x10;
      this._send(concat([PSTR, reserved, fromHex(this.t.hash), fromHex(this.t.node.peerId)]));
    }
    _onData(u8) {
      if (this.closed) return;
      this.rx.push(u8); this.rxLen += u8.length;
      try {
        for (;;) {
          if (!this.gotHandshake) {
            if (this.rxLen < 68) return;
            this._onHandshake(this._take(68));
            continue;
          }
          if (this.rxLen < 4) return;
          const head = this._peek(4), len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
          if (len > MAX_WIRE_MSG) raise('message of ' + len + ' bytes is too large');
          if (this.rxLen < 4 + len) return;
          const msg = this._take(4 + len);
          if (len) this._onMessage(msg[4], msg.subarray(5));
          if (this.closed) return;
        }
      } catch (e) { this.close('protocol error: ' + e.message); }
    }
    _peek(n) { const first = this.rx[0]; if (first.length >= n) return first.subarray(0, n); const all = concat(this.rx); this.rx = [all]; return all.subarray(0, n); }
    _take(n) {
      const out = this.rx[0].length >= n ? null : new Uint8Array(n);
      if (!out) { const first = this.rx[0], r = first.subarray(0, n); if (first.length === n) this.rx.shift(); else this.rx[0] = first.subarray(n); this.rxLen -= n; return r; }
      let o = 0;
      while (o < n) {
        const c = this.rx[0], k = Math.min(c.length, n - o);
        out.set(c.subarray(0, k), o); o += k;
        if (k === c.length) this.rx.shift(); else this.rx[0] = c.subarray(k);
      }
      this.rxLen -= n;
      return out;
    }
    _onHandshake(h) {
      for (let i = 0; i < 20; i++) if (h[i] !== PSTR[i]) raise('not a BitTorrent handshake');
      if (toHex(h.subarray(28, 48)) !== this.t.hash) raise('handshake for another file');
      this.gotHandshake = true;
      if (!this.initiator) this._sendHandshake();
      if (this.blindPending) setTimeout(() => this._blindGiveUp(), BLIND_WAIT);
      const ext = { m: { p2pcdn_info: EXT_INFO_ID } };
      if (this.t.infoBytes) ext.info_size = this.t.infoBytes.length;
      // A small dictionary rides along (docs/extensions.md).
      if (this.t.infoBytes && this.t.infoBytes.length <= INFO_PIECE) ext.info_bytes = this.t.infoBytes;
      this._sendMsg(20, concat([new Uint8Array([0]), bencode(ext)]));
      if (this.t.info) this.sendBitfield();
      this.t._onWireReady(this);
    }
    sendBitfield() {
      if (this.bitfieldSent || !this.t.info || !this.gotHandshake) return; // the handshake goes first
      this.bitfieldSent = true;
      this._sendMsg(5, this.t.bitfield());
      this.t._maybeUnchoke(this);
    }
    hasPiece(i) { return (this.remoteBits[i >> 3] >> (7 - (i & 7))) & 1; }
    _setPiece(i) {
      if (i >= this.remoteBits.length * 8) {
        if (i >= 8 << 20) raise('have for piece ' + i + ' is out of range');
        const nb = new Uint8Array((i >> 3) + 1); nb.set(this.remoteBits); this.remoteBits = nb;
      }
      this.remoteBits[i >> 3] |= 0x80 >> (i & 7);
    }
    _onMessage(id, p) {
      const dv = new DataView(p.buffer, p.byteOffset, p.length);
      const need = (n) => { if (p.length !== n) raise('message ' + id + ' has ' + p.length + ' bytes, want ' + n); };
      switch (id) {
        case 0: this.peerChoking = true; this.t._returnRequests(this); break;
        case 1: this.peerChoking = false; this.t._fill(this); break;
        case 2: this.peerInterested = true; this.t._maybeUnchoke(this); break;
        case 3: this.peerInterested = false; break;
        case 4: need(4); { const i = dv.getUint32(0); if (this.t.info && i >= this.t.info.pieces_amount) raise('have for piece ' + i + ' out of range'); this._setPiece(i); } this.t._onRemoteHave(this); break;
        case 5:
          if (this.sawBitfield) raise('second bitfield');
          if (this.t.info && p.length !== Math.ceil(this.t.info.pieces_amount / 8)) raise('bitfield of ' + p.length + ' bytes for ' + this.t.info.pieces_amount + ' pieces');
          if (p.length > 1 << 20) raise('bitfield too large');
          this.sawBitfield = true;
          { const nb = new Uint8Array(Math.max(p.length, this.remoteBits.length)); nb.set(this.remoteBits); for (let i = 0; i < p.length; i++) nb[i] |= p[i]; this.remoteBits = nb; }
          this.t._maybeUnchoke(this); this.t._onRemoteHave(this); break;
        case 6: need(12); this.t._onRequest(this, dv.getUint32(0), dv.getUint32(4), dv.getUint32(8)); break;
        case 7:
          if (p.length < 8) raise('short piece message');
          if (this.blindPending) {
            // Requests are answered in order: the first block is the blind
            // request's answer, or the peer passed it over.
            this.blindPending = false;
            if (dv.getUint32(0) === 0 && dv.getUint32(4) === 0 && !this.inflight.has('0:0')) { this.t._onBlindPiece(this, p.subarray(8)); break; }
          }
          this.t._onBlock(this, dv.getUint32(0), dv.getUint32(4), p.subarray(8)); break;
        case 8: need(12); { const i = dv.getUint32(0), b = dv.getUint32(4); this.uploads = this.uploads.filter((u) => u.index !== i || u.begin !== b); } break;
        case 20: if (!p.length) raise('empty extended message'); this._onExtended(p[0], p.subarray(1)); break;
        default: break; // unknown messages are ignored (BEP 3)
      }
    }
    _onExtended(ext, p) {
      if (ext === 0) {
        const d = bdecode(p).value;
        if (!d || typeof d !== 'object' || Array.isArray(d) || d instanceof Uint8Array) raise('extended handshake is not a dictionary');
        const m = d.m && typeof d.m === 'object' && !(d.m instanceof Uint8Array) ? d.m : {};
        const id = m.p2pcdn_info;
        this.remoteInfoId = Number.isInteger(id) && id > 0 && id < 256 ? id : 0;
        this.remoteInfoSize = Number.isInteger(d.info_size) && d.info_size > 0 ? d.info_size : 0;
        const ib = d.info_bytes, t = this.t;
        if (ib instanceof Uint8Array && ib.length && ib.length === this.remoteInfoSize && ib.length <= INFO_PIECE &&
            !t.info && !t.infoFetch && t.wanted && !this.infoTried) {
          this.infoTried = true;
          t.infoFetch = { wire: this, size: ib.length, buf: ib.slice(), got: null, count: 0 };
          t._acceptInfo(this, t.infoFetch);
          return;
        }
        t._maybeFetchInfo();
        return;
      }
      if (ext !== EXT_INFO_ID) return;
      const r = bdecode(p), d = r.value;
      if (!d || typeof d !== 'object' || d instanceof Uint8Array) raise('p2pcdn_info message is not a dictionary');
      const type = d.msg_type, piece = d.piece;
      if (!Number.isInteger(type) || !Number.isInteger(piece) || piece < 0) raise('p2pcdn_info message without msg_type or piece');
      if (type === 0) this.t._onInfoRequest(this, piece);
      else if (type === 1) this.t._onInfoData(this, piece, d.total_size, p.subarray(r.end));
      else if (type === 2) this.t._onInfoReject(this);
    }
    sendInfoMsg(dict, data) {
      if (!this.remoteInfoId) return;
      const parts = [new Uint8Array([this.remoteInfoId]), bencode(dict)];
      if (data) parts.push(data);
      this._sendMsg(20, concat(parts));
    }
    request(index, begin, length) {
      this.inflight.set(index + ':' + begin, { index, begin, length });
      this._sendReq(6, index, begin, length);
    }
    cancel(index, begin, length) {
      if (this.inflight.delete(index + ':' + begin)) this._sendReq(8, index, begin, length);
    }
    _sendReq(id, ...v) {
      const b = new Uint8Array(12), dv = new DataView(b.buffer);
      v.forEach((x, i) => dv.setUint32(4 * i, x));
      this._sendMsg(id, b);
    }
    sendHave(i) { this._sendMsg(4, u32(i)); }
    simple(id) { this._sendMsg(id, new Uint8Array(0)); }
    queueUpload(u) {
      if (this.uploads.length >= MAX_UPLOAD_QUEUE) return this.close('too many outstanding requests');
      this.uploads.push(u);
      if (!this.uploading) this._pump();
    }
    async _pump() {
      // Blocks of cached pieces go out synchronously, so several pack into
      // one data-channel message; we wait only for reads and the channel.
      this.uploading = true;
      try {
        while (!this.closed && this.uploads.length) {
          const u = this.uploads[0];
          this._readAhead();
          let piece = this.t.readPiece(u.index);
          if (piece instanceof Promise) piece = await piece;
          if (this.closed) break;
          if (this.uploads[0] !== u) continue; // cancelled while reading
          this.uploads.shift();
          const msg = new Uint8Array(13 + u.length), dv = new DataView(msg.buffer);
          dv.setUint32(0, 9 + u.length); msg[4] = 7; dv.setUint32(5, u.index); dv.setUint32(9, u.begin);
          msg.set(piece.subarray(u.begin, u.begin + u.length), 13);
          this._send(msg);
          this.uploaded += u.length; this.t.uploaded += u.length;
          if (this.txLen >= CHUNK) await new Promise((r) => this.waiters.push(r));
        }
      } catch (e) { this.close('reading the file failed: ' + e.message); }
      this.uploading = false;
    }
    _readAhead() {
      // Reads of the next two pieces asked for overlap sending.
      const seen = new Set();
      for (const u of this.uploads) {
        if (seen.size > 2) break;
        if (!seen.has(u.index)) { seen.add(u.index); this.t.readPiece(u.index); }
      }
    }
    _sendMsg(id, payload) {
      const msg = new Uint8Array(5 + payload.length);
      new DataView(msg.buffer).setUint32(0, payload.length + 1); msg[4] = id; msg.set(payload, 5);
      this._send(msg);
    }
    _send(u8) {
      // Sent at the end of the task, packed into messages of up to CHUNK
      // bytes (boundaries mean nothing: PROTOCOL.md section 7).
      if (this.closed) return;
      this.tx.push(u8); this.txLen += u8.length;
      if (!this.flushSoon) { this.flushSoon = true; queueMicrotask(() => { this.flushSoon = false; this._flush(); }); }
    }
    _nextChunk() {
      let c = this.tx[0];
      if (this.tx.length === 1 && c.length <= CHUNK) { this.tx = []; this.txLen = 0; return c; }
      const out = new Uint8Array(Math.min(CHUNK, this.txLen));
      for (let o = 0, k; o < out.length; o += k) {
        c = this.tx[0]; k = Math.min(c.length, out.length - o);
        out.set(c.subarray(0, k), o);
        if (k === c.length) this.tx.shift(); else this.tx[0] = c.subarray(k);
      }
      this.txLen -= out.length;
      return out;
    }
    _flush() {
      if (this.closed || !this.dc || this.dc.readyState !== 'open') return;
      // Chromium's channels run faster with ~64 KiB queued than 1 MiB (measured).
      try {
        while (this.txLen && this.dc.bufferedAmount <= HIGH_WATER) this.dc.send(this._nextChunk());
      } catch (e) { return this.close('send failed: ' + e.message); }
      if (this.txLen < CHUNK && this.dc.bufferedAmount <= HIGH_WATER) this.waiters.splice(0).forEach((f) => f());
    }
    close(why, refused) {
      if (this.closed) return;
      this.closed = true;
      this.t.node.log('peer', this.remoteId.slice(0, 8), 'closed', this.t.hash.slice(0, 8) + ':', why);
      try { if (this.dc) this.dc.close(); } catch (e) { /* closing */ }
      try { if (this.conn) this.conn.release(this); } catch (e) { /* closing */ }
      this.waiters.splice(0).forEach((f) => f());
      if (refused) this.t._failed(this.remoteId, 'refused');
      this.t._onWireClosed(this);
    }
  }

  // ---------- one file's exchange with many peers ----------
  class Transfer {
    constructor(node, hash) {
      this.node = node; this.hash = hash; this.info = null; this.infoBytes = null;
      this.source = null; this.pieces = null; this.have = null; this.haveCount = 0;
      this.wires = new Map(); this.banned = new Set(); this.partial = new Map(); this.readCache = new Map(); this.unsealed = []; this.unsealedBytes = 0;
      this.infoFetch = null; this.announced = false; this.wanted = false;
      this.received = 0; this.uploaded = 0; this.samples = []; this.listeners = new Set();
      this.lastGetPeers = 0;
      // For fetch: its callers, the peers the mediator named, the ones we
      // could not connect to (id -> {kind, at, local, remote}), the time of
      // the last progress.
      this.waiters = new Set(); this.found = new Set(); this.failed = new Map(); this.activity = 0; this.hopeless = null;
    }
    get complete() { return !!this.info && this.haveCount === this.info.pieces_amount; }
    pieceLen(i) { const { pieces_length: pl, total_length: tl } = this.info; return Math.min(pl, tl - i * pl); }
    setInfo(info, bytes) {
      if (this.info) return;
      this.info = info;
      this.infoBytes = bytes || te.encode(JSON.stringify(info));
      this.have = new Uint8Array(info.pieces_amount); this.pieces = new Array(info.pieces_amount).fill(null);
      this.infoFetch = null; this.activity = Date.now();
      for (const w of this.wires.values()) {
        if (w.blindData) { const d = w.blindData; w.blindData = null; this._onBlindPiece(w, d); }
      }
      for (const w of this.wires.values()) { w.sendBitfield(); this._maybeUnchoke(w); this._onRemoteHave(w); }
      this._progress();
    }
    setSource(blob) {
      this.source = blob; this.readCache.clear();
      this.have.fill(1); this.haveCount = this.info.pieces_amount; this.partial.clear();
      for (const w of this.wires.values()) { for (const r of w.inflight.values()) w.cancel(r.index, r.begin, r.length); }
      this._finish();
    }
    bitfield() {
      const b = new Uint8Array(Math.ceil(this.info.pieces_amount / 8));
      for (let i = 0; i < this.have.length; i++) if (this.have[i]) b[i >> 3] |= 0x80 >> (i & 7);
      return b;
    }
    // readPiece returns piece i's bytes or a promise of them. Blob reads
    // are costly: a shared file is read 1 MiB at a time, the last reads kept.
    readPiece(i) {
      const pl = this.info.pieces_length, len = this.pieceLen(i);
      const k = this.source ? Math.max(1, Math.floor(READ_UNIT / pl)) : 1, key = Math.floor(i / k), off = (i - key * k) * pl;
      if (!this.source && this.pieces[i] instanceof Uint8Array) return this.pieces[i];
      const c = this.readCache.get(key);
      const e = c || { data: null, promise: null };
      if (c) { this.readCache.delete(key); this.readCache.set(key, c); } else {
        const blob = this.source ? this.source.slice(key * k * pl, (key + 1) * k * pl) : this.pieces[i];
        e.promise = blob.arrayBuffer().then((b) => { e.data = new Uint8Array(b); return e.data; });
        this.readCache.set(key, e);
        while (this.readCache.size > Math.max(2, Math.floor(READ_CACHE / Math.max(pl, READ_UNIT)))) this.readCache.delete(this.readCache.keys().next().value);
      }
      return e.data ? e.data.subarray(off, off + len) : e.promise.then((d) => d.subarray(off, off + len));
    }
    // Verified pieces go into Blobs a few MiB at a time: half the cost of a
    // Blob per piece (measured), memory still bounded.
    _store(i, buf) {
      this.pieces[i] = buf; this.unsealed.push(i); this.unsealedBytes += buf.length;
      if (this.unsealedBytes >= SEAL_BYTES || this.haveCount + 1 === this.info.pieces_amount) this._seal();
    }
    _seal() {
      const idx = this.unsealed.splice(0);
      this.unsealedBytes = 0;
      if (!idx.length) return;
      const group = new Blob(idx.map((i) => this.pieces[i]));
      let o = 0;
      for (const i of idx) { const n = this.pieces[i].length; this.pieces[i] = group.slice(o, o + n); o += n; }
    }
    blob() { return this.source || new Blob(this.pieces, { type: mimeOf(this.info.file_name) }); }
    canServe() { return this.haveCount > 0; }

    addWire(w) { this.wires.set(w.remoteId, w); }
    _onWireReady(w) { this._maybeFetchInfo(); }
    _onWireClosed(w) {
      if (this.wires.get(w.remoteId) === w) this.wires.delete(w.remoteId);
      this._returnRequests(w);
      if (this.infoFetch && this.infoFetch.wire === w) { this.infoFetch = null; this._maybeFetchInfo(); }
      this._checkHopeless();
      this._progress();
    }
    // ---- giving up honestly (fetch) ----
    // _failed notes that connecting to peer id failed: kind is 'ice', 'no
    // answer', 'refused' (it does not have the file) or 'error'.
    _failed(id, kind, conn) {
      this.failed.delete(id);
      if (this.failed.size >= MAX_FOUND) this.failed.delete(this.failed.keys().next().value); // the oldest
      this.failed.set(id, { kind, at: Date.now(), local: conn ? [...conn.local] : [], remote: conn ? [...conn.remote] : [] });
      this._checkHopeless();
    }
    skip(id) { const f = this.failed.get(id); return !!f && Date.now() - f.at < (f.kind === 'refused' ? 10000 : 60000); }
    // _unreachable: peers were found, and every one of them failed; no
    // connection is open or on its way. A refusal is not final: the mediator
    // says that peer has the file, and a channel can be refused in a race
    // (it is asked again after 10 s, within the fetch's timeout).
    _unreachable() {
      if (!this.waiters.size || this.complete || this.wires.size || !this.found.size) return false;
      for (const id of this.found) {
        const c = this.node.conns.get(id), f = this.failed.get(id);
        if (!f || f.kind === 'refused' || (c && c.queue.has(this.hash))) return false;
      }
      return true;
    }
    // A few seconds' grace, for the mediator to name a peer we did not try yet.
    _checkHopeless() {
      if (this.hopeless || !this._unreachable()) return;
      this.hopeless = setTimeout(() => { this.hopeless = null; if (this._unreachable()) this._reject(this._connectError('')); }, GRACE);
    }
    _connectError(prefix) {
      const n = this.found.size, f = [...this.failed.values()], ice = f.filter((x) => x.kind === 'ice').length;
      const count = (k) => { const c = f.filter((x) => x.kind === k).length; return c ? c + ' ' + k.replace('refused', 'refused the file').replace('error', 'failed otherwise') : ''; };
      const kinds = (side) => [...new Set(f.flatMap((x) => x[side]))].filter(Boolean).join(', ') || 'none';
      const s = this.node._iceKinds();
      let m = prefix + 'found ' + n + (n === 1 ? ' peer' : ' peers') + ' with ' + this.hash + ' but could not connect to any: ' +
        (f.length && ice === f.length ? 'ICE failed with ' + (n === 1 ? 'it' : n === 2 ? 'both' : 'all of them') : [ice ? ice + ' failed ICE' : '', count('no answer'), count('refused'), count('error')].filter(Boolean).join(', ') || 'still trying') +
        ' (candidates here: ' + kinds('local') + '; theirs: ' + kinds('remote') + '; STUN offered: ' + (s.stun ? 'yes' : 'no') + ', TURN offered: ' + (s.turn ? 'yes' : 'no') + ')';
      if (ice && !s.turn) m += s.stun ? '. STUN does not get through these NATs: a TURN relay is needed (start the mediator with --turn, or pass iceServers)' :
        '. Peers behind NATs need STUN, and often a TURN relay: start the mediator with --turn, or pass iceServers';
      return fail(f.length && ice === f.length ? 'ICE_FAILED' : 'UNREACHABLE', m, n);
    }
    _timeoutError(ms) {
      const n = this.found.size, secs = Math.round(ms / 1000) + ' s';
      if (!n) return fail('NO_PEERS', 'no peer has ' + this.hash + ': none found within ' + secs + (this.node.established ? '' : ' (not connected to the mediator)'), 0);
      const live = [...this.wires.values()].filter((w) => w.gotHandshake);
      if (!live.length) return Object.assign(this._connectError('timed out after ' + secs + ': '), { code: 'TIMEOUT' });
      return fail('TIMEOUT', 'nothing received for ' + this.hash + ' in ' + secs + ' from ' + live.length + ' connected ' + (live.length === 1 ? 'peer' : 'peers') +
        (this.info ? '' : live.every((w) => !w.remoteInfoId) ? ': they do not offer the info dictionary (prototype peers): pass it to fetch() instead of the hash' : ': the info dictionary did not arrive'), n);
    }
    // _drop ends one fetch call; the last one stops the search.
    _drop(x, err) {
      if (!this.waiters.delete(x)) return;
      x.reject(err);
      if (!this.waiters.size && !this.complete) { this.wanted = false; clearTimeout(this.hopeless); this.hopeless = null; }
    }
    _reject(err) { for (const x of [...this.waiters]) this._drop(x, err); }
    // A CDN peer chokes nobody: it unchokes right after its bitfield
    // instead of waiting for the other's (a round trip per file).
    _maybeUnchoke(w) {
      if (this.info && w.amChoking && w.bitfieldSent) { w.amChoking = false; w.simple(1); }
    }
    _onRemoteHave(w) {
      if (!this.info || this.complete || !w.gotHandshake) return;
      if (!w.amInterested) {
        for (let i = 0; i < this.info.pieces_amount; i++) {
          if (!this.have[i] && w.hasPiece(i)) { w.amInterested = true; w.simple(2); break; }
        }
      }
      this._fill(w);
    }
    _returnRequests(w) {
      for (const r of w.inflight.values()) { const p = this.partial.get(r.index); if (p) p.requested[r.begin / BLOCK]--; }
      w.inflight.clear();
      for (const o of this.wires.values()) if (o !== w) this._fill(o);
    }
    _fill(w) {
      if (!this.wanted || !this.info || this.complete || w.peerChoking || w.closed) return;
      // Refill in batches: each channel send costs.
      if (w.inflight.size > PIPELINE - REFILL) return;
      while (w.inflight.size < PIPELINE) {
        const r = this._pick(w);
        if (!r) break;
        const p = this.partial.get(r.index); p.requested[r.begin / BLOCK]++;
        w.request(r.index, r.begin, r.length);
      }
    }
    _pick(w) {
      const block = (p, endgame) => {
        for (let b = 0; b < p.got.length; b++) {
          if (p.got[b] || (endgame ? p.requested[b] > 1 || w.inflight.has(p.index + ':' + b * BLOCK) : p.requested[b])) continue;
          return { index: p.index, begin: b * BLOCK, length: Math.min(BLOCK, p.len - b * BLOCK) };
        }
        return null;
      };
      const has = (i) => w.hasPiece(i) && !(i === 0 && w.blindPending); // piece 0 is on its way
      for (const p of this.partial.values()) { if (!p.verifying && has(p.index)) { const r = block(p, false); if (r) return r; } }
      if (this.partial.size < 4 + 2 * this.wires.size) {
        for (let i = 0; i < this.info.pieces_amount; i++) {
          if (this.have[i] || this.partial.has(i) || !has(i)) continue;
          const len = this.pieceLen(i), n = Math.ceil(len / BLOCK);
          const p = { index: i, len, buf: new Uint8Array(len), got: new Uint8Array(n), requested: new Int16Array(n), gotCount: 0, from: new Set(), verifying: false };
          this.partial.set(i, p);
          return block(p, false);
        }
      }
      // End game: ask a second peer for blocks still outstanding.
      for (const p of this.partial.values()) { if (!p.verifying && has(p.index)) { const r = block(p, true); if (r) return r; } }
      return null;
    }
    // _onBlindPiece takes the answer to w's blind request for piece 0: kept
    // until the dictionary is known, then the whole piece if it is one we
    // lack (verified as any other), dropped otherwise.
    _onBlindPiece(w, data) {
      w.downloaded += data.length;
      if (!this.info) { if (data.length <= PIECE_LENGTH) w.blindData = data; return; }
      if (this.have[0] || this.complete || data.length !== this.pieceLen(0)) { this._fill(w); return; }
      let p = this.partial.get(0);
      if (p && p.verifying) { this._fill(w); return; }
      if (!p) {
        const n = Math.ceil(data.length / BLOCK);
        p = { index: 0, len: data.length, buf: null, got: new Uint8Array(n), requested: new Int16Array(n), gotCount: 0, from: new Set(), verifying: false };
        this.partial.set(0, p);
      }
      // Other peers asked for blocks of it: those answers are no longer needed.
      for (const o of this.wires.values()) {
        for (const r of [...o.inflight.values()]) if (r.index === 0) { o.cancel(0, r.begin, r.length); p.requested[r.begin / BLOCK]--; }
      }
      const missing = p.len - p.got.reduce((a, g, b) => a + (g ? Math.min(BLOCK, p.len - b * BLOCK) : 0), 0);
      p.buf = data.slice(); p.got.fill(1); p.gotCount = p.got.length; p.from.add(w.remoteId);
      this.received += missing; this.activity = Date.now();
      this._verify(p);
      this._fill(w);
    }
    _onBlock(w, index, begin, data) {
      const key = index + ':' + begin, r = w.inflight.get(key);
      if (!r) return; // late answer to a cancelled request
      w.inflight.delete(key);
      const p = this.partial.get(index);
      if (p) p.requested[begin / BLOCK]--;
      if (data.length !== r.length) raise('block ' + key + ' has ' + data.length + ' bytes, asked ' + r.length);
      w.downloaded += data.length;
      if (p && !p.got[begin / BLOCK] && !p.verifying) {
        p.buf.set(data, begin); p.got[begin / BLOCK] = 1; p.gotCount++; p.from.add(w.remoteId);
        this.received += data.length; this.activity = Date.now();
        for (const o of this.wires.values()) if (o !== w && o.inflight.has(key)) { o.cancel(index, begin, r.length); p.requested[begin / BLOCK]--; }
        if (p.gotCount === p.got.length) this._verify(p);
      }
      this._fill(w);
    }
    async _verify(p) {
      p.verifying = true;
      const ok = (await pieceHash(p.buf)) === this.info.piece_hashes[p.index];
      this.partial.delete(p.index);
      if (this.node.closed) return;
      if (!ok) {
        this.received -= p.len;
        for (const id of p.from) {
          this.banned.add(id);
          const w = this.wires.get(id);
          if (w) w.close('sent a piece that fails verification (banned)');
        }
        this.node.log('piece', p.index, 'failed verification; banned', [...p.from].map((s) => s.slice(0, 8)).join(','));
      } else if (!this.have[p.index]) {
        this._store(p.index, p.buf);
        this.have[p.index] = 1; this.haveCount++;
        for (const w of this.wires.values()) if (w.bitfieldSent) w.sendHave(p.index);
        if (!this.announced) this.node._announce(this);
        if (this.complete) this._finish();
      }
      for (const w of this.wires.values()) this._fill(w);
      this._progress();
    }
    _finish() {
      this.partial.clear();
      for (const w of this.wires.values()) { if (w.amInterested) { w.amInterested = false; w.simple(3); } }
      const blob = this.blob();
      for (const x of this.waiters) x.resolve(blob);
      this.waiters.clear();
      this._progress();
    }
    _onRequest(w, index, begin, length) {
      if (w.amChoking || !this.info) return;
      if (index >= this.info.pieces_amount || !this.have[index]) return; // we never advertised it
      const len = this.pieceLen(index);
      if (begin >= len || length === 0 || length > MAX_REQUEST) raise('bad request ' + index + ':' + begin + '+' + length);
      // Whole-piece requests for the short last piece get the bytes that exist.
      w.queueUpload({ index, begin, length: Math.min(length, len - begin) });
    }
    // p2pcdn_info (docs/extensions.md)
    _maybeFetchInfo() {
      if (this.info || this.infoFetch || !this.wanted) return;
      for (const w of this.wires.values()) {
        if (w.infoTried || !w.remoteInfoId || !w.remoteInfoSize || !w.gotHandshake) continue;
        if (w.remoteInfoSize > MAX_INFO) { w.infoTried = true; continue; }
        w.infoTried = true;
        const size = w.remoteInfoSize, n = Math.ceil(size / INFO_PIECE);
        this.infoFetch = { wire: w, size, buf: new Uint8Array(size), got: new Uint8Array(n), count: 0 };
        for (let i = 0; i < n; i++) w.sendInfoMsg({ msg_type: 0, piece: i });
        return;
      }
    }
    _onInfoRequest(w, piece) {
      const b = this.infoBytes;
      if (!b || piece * INFO_PIECE >= b.length) return w.sendInfoMsg({ msg_type: 2, piece });
      w.sendInfoMsg({ msg_type: 1, piece, total_size: b.length }, b.subarray(piece * INFO_PIECE, Math.min(b.length, (piece + 1) * INFO_PIECE)));
    }
    _onInfoData(w, piece, total, data) {
      const f = this.infoFetch;
      if (!f || f.wire !== w) return;
      const n = f.got.length;
      if (total !== f.size || piece >= n || data.length !== Math.min(INFO_PIECE, f.size - piece * INFO_PIECE)) raise('p2pcdn_info data does not match the advertised size');
      if (f.got[piece]) return;
      f.buf.set(data, piece * INFO_PIECE); f.got[piece] = 1;
      if (++f.count === n) this._acceptInfo(w, f);
    }
    async _acceptInfo(w, f) {
      try {
        const obj = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(f.buf));
        const info = await checkInfo(obj, this.hash);
        if (this.info) return;
        this.node.log('got the info dictionary of', this.hash, 'from', w.remoteId.slice(0, 8));
        this.setInfo(info, f.buf);
      } catch (e) {
        this.banned.add(w.remoteId);
        this.infoFetch = null;
        w.close('sent a bad info dictionary: ' + e.message);
      }
    }
    _onInfoReject(w) {
      if (this.infoFetch && this.infoFetch.wire === w) { this.infoFetch = null; this._maybeFetchInfo(); }
    }
    _rate() {
      const now = performance.now();
      this.samples.push([now, this.received]);
      while (this.samples.length > 2 && now - this.samples[0][0] > 3000) this.samples.shift();
      const [t0, r0] = this.samples[0];
      return now - t0 > 0 ? ((this.received - r0) * 1000) / (now - t0) : 0;
    }
    _progress() {
      if (!this.listeners.size) return;
      const ev = { received: this.complete ? this.info.total_length : this.received, total: this.info ? this.info.total_length : 0, peers: this.wires.size, rate: this._rate(), info: this.info };
      for (const f of this.listeners) { try { f(ev); } catch (e) { console.error('p2pcdn: onProgress failed:', e); } }
    }
  }

  // ---------- IndexedDB cache ----------
  const cache = {
    _db: null,
    open() {
      if (!this._db) {
        this._db = new Promise((resolve, reject) => {
          const r = indexedDB.open('p2pcdn', 1);
          r.onupgradeneeded = () => r.result.createObjectStore('files');
          r.onsuccess = () => resolve(r.result);
          r.onerror = () => reject(r.error);
        });
      }
      return this._db;
    },
    async req(mode, f) {
      const db = await this.open();
      return new Promise((resolve, reject) => {
        const r = f(db.transaction('files', mode).objectStore('files'));
        r.onsuccess = () => resolve(r.result);
        r.onerror = () => reject(r.error);
      });
    },
    get(hash) { return this.req('readonly', (s) => s.get(hash)); },
    put(hash, info, blob) { return this.req('readwrite', (s) => s.put({ info, blob }, hash)); },
  };

  // ---------- the node: one page's presence in the network ----------
  class Node extends Emitter {
    constructor(opts) {
      super();
      opts = opts || {};
      this.peerId = randomHex(20);
      this.iceServers = Array.isArray(opts.iceServers) ? opts.iceServers : [];
      this.trickle = opts.trickle !== false; // mark offers so that our answerers trickle (see _answer)
      this.cacheEnabled = !!opts.cache;
      this.debug = !!opts.debug;
      this.transfers = new Map();
      // Connections: shared ones (or dials not answered yet) by remote peer
      // id, single-file ones (prototype peers) by id + hash; a count of all.
      this.conns = new Map(); this.single = new Map(); this.nconns = 0;
      this.mediatorIce = []; this.iceTimer = null; this.iceAsked = false; this.capabilities = null; this.outq = null;
      this.closed = false; this.established = false;
      // WebSocket first (a quarter of long-polling's handshake time, measured),
      // long-polling if it does not open.
      this.link = new MediatorLink(opts.mediator, opts.transports || ['websocket', 'polling'], (...a) => this.log(...a));
      this.link.on('connect', () => this.link.send('handshake', this.peerId, 0));
      this.link.on('disconnect', () => { this.established = false; });
      this.link.on('transport', (t) => this.emit('transport', t));
      this.link.on('event', (name, args) => this._onEvent(name, args));
      this.ticker = setInterval(() => this._tick(), 1000);
      this.link.start();
    }
    get transport() { return this.link.transport; }
    get transports() { return this.link.history.slice(); }
    log(...a) { if (this.debug) console.log('p2pcdn:', ...a); }
    ready(timeout) {
      if (this.established) return Promise.resolve(this);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => { this.off('established', ok); reject(new Error('p2pcdn: no answer from the mediator at ' + this.link.urls.ws + ' within ' + timeout + ' ms')); }, timeout);
        const ok = () => { clearTimeout(t); this.off('established', ok); resolve(this); };
        this.on('established', ok);
      });
    }
    _onEvent(name, args) {
      if (this.closed) return;
      if (name === 'established') {
        // A mediator of ours says what it speaks and which STUN/TURN servers
        // to use; the prototype's says nothing (docs/extensions.md).
        const o = args[0] && typeof args[0] === 'object' && args[0].p2pcdn >= 1 ? args[0] : null;
        this.capabilities = o ? { p2pcdn: o.p2pcdn, batch: Number.isSafeInteger(o.batch) && o.batch > 0 ? Math.min(o.batch, 10000) : 0 } : null;
        this._setIce(o);
        this.established = true;
        this.log('connected to mediator as', this.peerId, 'over', this.transport, o ? 'with ' + JSON.stringify(this.capabilities) : '');
        // After a reconnect the mediator knows nothing of us: say it all again.
        for (const t of this.transfers.values()) {
          if (t.wanted && !t.complete) this._getPeers(t, true);
          if (t.announced) this._emit('announce', t.hash);
        }
        this.emit('established');
        return;
      }
      if (name === 'ice_servers') { if (this.iceAsked) { this.iceAsked = false; this._setIce(args[0]); } return; } // only as our request's answer
      const hash = args[0];
      if (typeof hash !== 'string' || !HEX40.test(hash)) return;
      const t = this.transfers.get(hash);
      if (!t) return;
      if (name === 'peers') {
        if (!Array.isArray(args[1]) || !t.wanted || t.complete) return;
        let dials = 0;
        for (const id of args[1].slice(0, 1000)) {
          if (typeof id !== 'string' || !HEX40.test(id) || id === this.peerId) continue;
          if (t.found.size < MAX_FOUND) t.found.add(id);
          if (t.wires.size < MAX_DIAL && dials < MAX_DIAL && this._connect(t, id)) dials++;
        }
        t._checkHopeless();
      } else if (name === 'signal') {
        const from = args[1], data = args[2];
        if (typeof from !== 'string' || !HEX40.test(from) || typeof data !== 'string' || data.length > 65536 || t.banned.has(from)) return;
        let sig;
        try { sig = JSON.parse(data); } catch (e) { return this.log('ignoring a malformed signal from', from.slice(0, 8)); }
        let c = this.conns.get(from);
        if (!c || c.hash !== hash) c = this.single.get(from + hash);
        const cand = sig && sig.candidate;
        if (cand && typeof cand.candidate === 'string') { if (c) c.addCandidate(cand); return; }
        if (!sig || typeof sig.sdp !== 'string') return;
        if (sig.type === 'offer') this._answer(t, from, sig);
        else if (sig.type === 'answer' && c && c.onAnswer && c.hash === hash) c.onAnswer(sig);
      }
    }
    // ---- ICE servers: the page's own and its mediator's ----
    ice() { return this.iceServers.concat(this.mediatorIce); }
    _iceKinds() {
      const urls = this.ice().flatMap((s) => [].concat(s.urls));
      return { stun: urls.some((u) => /^stuns?:/.test(u)), turn: urls.some((u) => /^turns?:/.test(u)) };
    }
    _setIce(o) {
      clearTimeout(this.iceTimer);
      this.mediatorIce = cleanIce(o && o.ice_servers);
      const left = o && Number.isFinite(o.ice_expires) ? o.ice_expires * 1000 - Date.now() : 0;
      // Fresh TURN credentials before these expire.
      if (left > 0) this.iceTimer = setTimeout(() => { if (this.established) this.iceAsked = this.link.send('get_ice_servers'); }, Math.max(1000, left - Math.min(60000, left / 2)));
    }
    // ---- mediation events, batched toward a mediator that takes batches ----
    _emit(name, hash) {
      if (!this.established) return;
      const b = this.capabilities && this.capabilities.batch;
      if (!b) return this.link.send(name, hash);
      if (!this.outq) { this.outq = {}; setTimeout(() => this._flush(), 0); }
      (this.outq[name] = this.outq[name] || []).push(hash);
    }
    _flush() {
      const q = this.outq, b = this.capabilities && this.capabilities.batch;
      this.outq = null;
      if (!q || !b || !this.established) return;
      for (const name of Object.keys(q)) for (let i = 0; i < q[name].length; i += b) this.link.send(name + '_many', q[name].slice(i, i + b));
    }
    _getPeers(t, force) {
      const now = Date.now();
      if (!force && now - t.lastGetPeers < (t.wires.size ? 5000 : 1000)) return;
      t.lastGetPeers = now;
      this._emit('get_peers', t.hash);
    }
    _tick() {
      const now = Date.now();
      for (const t of this.transfers.values()) {
        for (const x of t.waiters) if (x.timeout && now - Math.max(x.since, t.activity) >= x.timeout) t._drop(x, t._timeoutError(x.timeout));
        if (this.established && t.wanted && !t.complete && t.wires.size < MAX_DIAL) this._getPeers(t, false);
        t._progress();
      }
    }
    _announce(t) {
      t.announced = true;
      this._emit('announce', t.hash);
    }
    _sig(hash, id, o) { this.link.send('signal', hash, id, JSON.stringify(o)); }
    // _connect gets t from peer id: a channel on our open connection with
    // it, a place in the queue of one being set up, or a new connection.
    _connect(t, id) {
      if (t.wires.has(id) || t.banned.has(id) || t.skip(id)) return false;
      const c = this.conns.get(id);
      if (c && !c.open) { c.queue.add(t.hash); return true; }
      if (c && c.ours) return c.openChannel(t);
      if (this.nconns >= MAX_CONNS) return false;
      const n = new Conn(this, id, t.hash, true, false);
      this.conns.set(id, n); // shared until the answer shows a prototype peer
      n.dial(t);
      return true;
    }
    // _unshare: c's answer was unmarked (a prototype peer): it carries one
    // file, and the files queued on it get connections of their own.
    _unshare(c) {
      if (this.conns.get(c.remoteId) === c) this.conns.delete(c.remoteId);
      this.single.set(c.remoteId + c.hash, c);
      const q = [...c.queue];
      c.queue.clear();
      for (const h of q) { const t = this.transfers.get(h); if (t && t.wanted && !t.complete) this._connect(t, c.remoteId); }
    }
    _answer(t, id, sig) {
      if (!t.info && !t.wanted) return;
      const ours = this.trickle && sig.p2pcdn === 1, d = this.conns.get(id);
      // The connection this offer replaces: ours with that peer, or its one for this file.
      const old = ours ? d : this.single.get(id + t.hash) || (d && d.hash === t.hash && !d.answered ? d : null);
      let requeue = [];
      if (old) {
        // Both sides dialled each other: the offer of the higher id wins.
        if (old.initiator && !old.answered && this.peerId > id) return;
        requeue = old.hashes();
        old.queue.clear();
        old.close(old.open ? 'replaced by a new connection' : 'crossed offers');
      }
      if (this.nconns >= MAX_CONNS || t.wires.size >= MAX_WIRES) return;
      const c = new Conn(this, id, t.hash, false, ours);
      if (ours) {
        this.conns.set(id, c);
        for (const h of requeue) if (h !== t.hash) c.queue.add(h);
      } else this.single.set(id + t.hash, c);
      c.answer(t, sig.sdp, sig.trickle === true);
      if (!ours) for (const h of requeue) { const o = this.transfers.get(h); if (h !== t.hash && o && o.wanted && !o.complete) this._connect(o, id); }
    }
    _transfer(hash) {
      let t = this.transfers.get(hash);
      if (!t) { t = new Transfer(this, hash); this.transfers.set(hash, t); }
      return t;
    }
    // seed hashes a file and shares it until close(); it resolves to its info dictionary.
    async seed(blob, opts) {
      if (this.closed) raise('p2pcdn: node is closed');
      if (!(blob instanceof Blob)) throw new TypeError('p2pcdn: seed needs a File or Blob');
      const name = (opts && opts.name) || blob.name || 'file';
      if (!blob.size) raise('p2pcdn: cannot share ' + name + ': it is empty (0-byte files have no hash)');
      const info = await hashBlob(blob, name);
      this._addComplete(info, blob);
      return JSON.parse(JSON.stringify(info));
    }
    _addComplete(info, blob) {
      const t = this._transfer(info.full_hash);
      if (!t.info) t.setInfo(info);
      if (!t.source) t.setSource(blob);
      if (!t.announced) this._announce(t);
      return t;
    }
    // fetch downloads and verifies a file by full hash or info dictionary; it resolves to a Blob.
    async fetch(hashOrInfo, opts) {
      opts = opts || {};
      if (this.closed) raise('p2pcdn: node is closed');
      let hash, info = null;
      if (typeof hashOrInfo === 'string') hash = hashOrInfo.trim().toLowerCase();
      else if (hashOrInfo && typeof hashOrInfo === 'object') { info = await checkInfo(hashOrInfo); hash = info.full_hash; }
      if (!HEX40.test(hash || '')) raise('p2pcdn: ' + JSON.stringify(hash) + ' is not a full hash (40 hex characters)');
      const t = this._transfer(hash);
      if (info && !t.info) t.setInfo(info);
      const onProgress = typeof opts.onProgress === 'function' ? opts.onProgress : null;
      if (onProgress) t.listeners.add(onProgress);
      try {
        if (t.complete) { t._progress(); return t.blob(); }
        if (this.cacheEnabled || opts.cache) {
          const hit = await cache.get(hash).catch(() => null);
          if (hit && hit.blob && hit.info) {
            const ci = await checkInfo(hit.info, hash).catch(() => null);
            if (ci && hit.blob.size === ci.total_length) {
              const c = this._addComplete(ci, hit.blob);
              c._progress();
              return c.blob();
            }
          }
        }
        // A new call tries every peer again.
        if (!t.waiters.size) { t.found.clear(); t.failed.clear(); }
        const timeout = opts.timeout === undefined ? FETCH_TIMEOUT : Number(opts.timeout) || 0;
        let x;
        const done = new Promise((resolve, reject) => { x = { resolve, reject, timeout, since: Date.now() }; });
        t.waiters.add(x);
        t.wanted = true;
        if (opts.signal) {
          const abort = () => t._drop(x, fail('ABORTED', 'fetch aborted', t.found.size));
          if (opts.signal.aborted) abort(); else opts.signal.addEventListener('abort', abort);
        }
        if (this.established) this._getPeers(t, true);
        t._maybeFetchInfo();
        for (const w of t.wires.values()) t._fill(w);
        const blob = await done;
        if (this.cacheEnabled || opts.cache) await cache.put(hash, t.info, blob).catch((e) => this.log('caching failed:', e.message));
        return blob;
      } finally { if (onProgress) t.listeners.delete(onProgress); }
    }
    infoOf(hash) { const t = this.transfers.get(hash); return t && t.info ? JSON.parse(JSON.stringify(t.info)) : null; }
    async includeImage(hashOrInfo, target, opts) {
      const blob = await this.fetch(hashOrInfo, opts);
      const el = typeof target === 'string' ? document.querySelector(target) : target;
      if (!el) raise('p2pcdn: no element matches ' + target);
      el.src = URL.createObjectURL(blob);
      return el;
    }
    async includeDownload(hashOrInfo, target, opts) {
      const blob = await this.fetch(hashOrInfo, opts);
      const el = typeof target === 'string' ? document.querySelector(target) : target;
      if (!el) raise('p2pcdn: no element matches ' + target);
      const t = this.transfers.get(typeof hashOrInfo === 'string' ? hashOrInfo.trim().toLowerCase() : hashOrInfo.full_hash);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = (opts && opts.fileName) || (t && t.info ? t.info.file_name : 'download');
      el.parentNode.insertBefore(a, el);
      a.appendChild(el);
      return a;
    }
    close() {
      if (this.closed) return;
      for (const t of this.transfers.values()) if (t.announced) this._emit('finish', t.hash);
      this._flush();
      this.closed = true;
      clearInterval(this.ticker); clearTimeout(this.iceTimer);
      this.link.close();
      for (const c of [...this.conns.values(), ...this.single.values()]) c.close('node closed');
      for (const t of this.transfers.values()) {
        for (const w of [...t.wires.values()]) w.close('node closed');
        t._reject(fail('CLOSED', 'node closed before the file was complete', t.found.size));
      }
    }
  }

  async function connect(opts) {
    const node = new Node(opts);
    try { return await node.ready((opts && opts.timeout) || 20000); } catch (e) { node.close(); throw e; }
  }

  // ---------- the prototype's global API (PROTOCOL.md section 10) ----------
  function makeCompat() {
    let ice = [];
    let infos = [];
    let caching = false;
    let main = null;
    const nodes = new Map();
    const callbacks = new Map();
    const nodeFor = (address, port) => {
      const url = 'ws://' + address + ':' + port;
      if (!nodes.has(url)) nodes.set(url, new Node({ mediator: url, iceServers: ice, cache: caching }));
      return nodes.get(url);
    };
    const lookup = (name) => {
      const i = infos.find((x) => x && x.file_name === name);
      if (!i) raise('cdn: no info dictionary for a file named ' + JSON.stringify(name) + ' was passed to initialize');
      return i;
    };
    const done = (name) => { for (const cb of callbacks.get(name) || []) { try { cb(); } catch (e) { console.error('cdn: onFileDownloaded callback failed:', e); } } };
    const include = (names, selectors, kind) => {
      if (!Array.isArray(names) || !Array.isArray(selectors) || names.length !== selectors.length) raise('cdn: fileNames and cssSelectors must be lists of equal length');
      if (!main) raise('cdn: call initialize first');
      names.forEach((name, i) => {
        const info = lookup(name);
        // The prototype waits for as long as the page is open: no timeout.
        const job = kind === 'image' ? main.includeImage(info, selectors[i], { timeout: 0 }) : main.includeDownload(info, selectors[i], { fileName: info.file_name, timeout: 0 });
        job.then(() => done(name), (e) => console.error('cdn: fetching ' + name + ' failed:', e));
      });
    };
    return {
      overrideICECandidates(servers) { ice = Array.isArray(servers) ? servers : []; },
      initialize(infoDictionaries, mediatorAddress, mediatorPort, enableCaching) {
        infos = Array.isArray(infoDictionaries) ? infoDictionaries : [];
        caching = !!enableCaching;
        main = nodeFor(mediatorAddress, mediatorPort);
        main.cacheEnabled = caching;
        if (caching) {
          // Re-seed what earlier visits cached, before anything asks for it.
          for (const i of infos) {
            if (!i || typeof i.full_hash !== 'string') continue;
            cache.get(i.full_hash).then(async (hit) => {
              if (!hit || !hit.blob) return;
              const ci = await checkInfo(hit.info, i.full_hash);
              if (hit.blob.size === ci.total_length) main._addComplete(ci, hit.blob);
            }).catch(() => {});
          }
        }
      },
      onFileDownloaded(fileName, callback) {
        if (!callbacks.has(fileName)) callbacks.set(fileName, []);
        callbacks.get(fileName).push(callback);
      },
      includeDownloads(fileNames, cssSelectors) { include(fileNames, cssSelectors, 'download'); },
      includeImages(fileNames, cssSelectors) { include(fileNames, cssSelectors, 'image'); },
      seedFile(file, mediatorAddress, mediatorPort, callback) {
        nodeFor(mediatorAddress, mediatorPort).seed(file).then((info) => { if (typeof callback === 'function') callback(info); }, (e) => console.error('cdn: seeding failed:', e));
      },
    };
  }

  global.p2pcdn = { connect, Node, hashBlob, pieceHash, merkleRoot, checkInfo, PIECE_LENGTH, version: '1', _sha1js: sha1js, _internal: { bdecode, bencode, cleanIce, Wire, Transfer, MediatorLink } };
  global.cdn = makeCompat();
})(typeof window !== 'undefined' ? window : globalThis);
