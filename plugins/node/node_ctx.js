// node_ctx.js - the script the sonde node plugin runs once in a Node.js
// process (through the inspector protocol, Runtime.evaluate). It is a
// function expression; the plugin calls it with (nonce, agentPid, nfd).
//
// The one idea: every async resource (promise, timer, socket, tick ...)
// remembers the request key that was current when it was created, and each
// time Node enters one (async_hooks before/after, promises included) the
// key becomes current again and is written to one word of an ArrayBuffer
// whose address the plugin's BPF programs know. A socket read or write then
// carries the key of the request it works for. A server connection gets a
// new key when it is accepted (diagnostics_channel net.server.socket) and
// again after each HTTP response (http.server.response.finish), and the
// key is also kept in a table indexed by the socket's fd, for the reads and
// writes libuv makes outside any JavaScript (the request's first bytes).
//
// Buffer layout (little-endian, read by node.bpf.c):
//   [0..15]   magic "SONDE-NODE-CTX1\0"
//   [16..23]  nonce (8 bytes, from the plugin)
//   [24..27]  u32 current key (0: none)
//   [28..31]  u32 nfd, the table's length
//   [32..]    u32 key per fd (0: none)
// The buffer's address reaches the kernel once: the first 32 bytes are
// written to /dev/null, a write the BPF program recognises by magic+nonce.
//
// HTTP/2 client streams (http2.connect, gRPC-js): one connection carries
// the streams of many requests, and Node writes their frames later from a
// native immediate of the session, outside the requests' JavaScript. So an
// HTTP/2 session (and its settings and pings) has no key of its own; each
// client stream remembers the key current when JavaScript asked for it (the
// HTTP2STREAM resource is created inside session.request()), and once the
// stream has its id (set right after, by Node's own JavaScript) the script
// tells the kernel (session socket's fd, stream id, key) with a 40-byte
// write to a /dev/null fd it keeps open:
//   [0..15] magic "SONDE-NODE-H2S1\0"  [16..23] nonce
//   [24..27] u32 fd  [28..31] u32 stream id  [32..35] u32 key  [36..39] 0
// That happens when Node enters the session to flush its frames (the
// async_hooks 'before' of the session, right before SendPendingData), so
// the record reaches the agent before the stream's HEADERS frame. Streams
// that could have been asked for by another request than their key says
// get none (see h2Flush, h2Creator): no parent, never a wrong one.
//
// Nothing here may throw into Node: a hook that throws kills the process,
// so every hook body is guarded. Returns a JSON string for the plugin's log.
(function sondeNodeCtx(nonceHex, agentPid, nfd) {
  'use strict';
  const G = Symbol.for('sonde.node.ctx');
  const ver = String(process.versions && process.versions.node);
  const major = Number(ver.split('.')[0]);
  const out = (o) => JSON.stringify(Object.assign({ node: ver, pid: process.pid }, o));
  if (!(major >= 18 && major <= 24))
    return out({ ok: false, why: 'Node.js ' + ver + ' is not a version this plugin knows (18..24)' });
  let load = null;
  if (typeof process.getBuiltinModule === 'function')
    load = (n) => process.getBuiltinModule(n);
  else if (typeof require === 'function')
    load = require; // the inspector's command-line API
  if (!load)
    return out({ ok: false, why: 'no way to load built-in modules (getBuiltinModule, require)' });
  const ah = load('async_hooks');
  const dc = load('diagnostics_channel');
  const fs = load('fs');
  if (typeof ah.createHook !== 'function' || typeof ah.executionAsyncResource !== 'function' ||
      typeof dc.subscribe !== 'function' || typeof dc.unsubscribe !== 'function')
    return out({ ok: false, why: 'async_hooks or diagnostics_channel lacks what is needed' });
  if (!/^[0-9a-f]{16}$/.test(nonceHex) || !(nfd > 0 && nfd <= 1048576))
    return out({ ok: false, why: 'bad arguments' });
  const prev = globalThis[G];
  if (prev && typeof prev.stop === 'function')
    prev.stop('replaced'); // a previous agent's copy

  const ab = new ArrayBuffer(32 + 4 * nfd);
  const u8 = new Uint8Array(ab);
  const u32 = new Uint32Array(ab);
  const magic = 'SONDE-NODE-CTX1';
  for (let i = 0; i < magic.length; i++)
    u8[i] = magic.charCodeAt(i);
  for (let i = 0; i < 8; i++)
    u8[16 + i] = parseInt(nonceHex.substr(2 * i, 2), 16);
  u32[7] = nfd;

  const kRoot = Symbol('sonde.key'); // a resource's key, fixed at its creation
  const kDyn = Symbol('sonde.dyn');  // a handle or parser that may serve a connection
  // Types whose resource may be (part of) an accepted connection: entering
  // one takes the connection's current key, found by its fd in the table.
  const DYN_TYPES = new Set(['TCPWRAP', 'TLSWRAP', 'HTTPINCOMINGMESSAGE']);
  // HTTP/2 connection-level resources: no key (they serve every stream).
  const H2_UNKEYED = new Set(['HTTP2SESSION', 'HTTP2SETTINGS', 'HTTP2PING']);
  const h2Pending = []; // {h: stream handle, key, tries}: client streams waiting for their id
  const H2_PENDING_MAX = 1024;
  const H2_TRIES_MAX = 64;
  const h2Rec = new Uint8Array(40);
  const h2Rec32 = new Uint32Array(h2Rec.buffer);
  let h2Fd = -1;     // the /dev/null fd the stream records are written to
  let ownerSym = null; // Node's owner_symbol: a stream handle -> its Http2Stream
  const h2Log = [];  // the last records sent, for the tests
  const h2Stat = { sent: 0, unkeyed: 0, server: 0, lost: 0, failed: 0, creator: 0, batch: 0 };
  const kH2S = Symbol('sonde.h2s'); // an HTTP/2 session's handle
  // Sessions opened under a key: {h: handle, key} until their JavaScript
  // session is known, then session -> {key, mixed} (see h2Send).
  const h2NewSess = [];
  const h2Sess = new WeakMap();
  let nextKey = 1;
  let cur = 0; // the key current now
  const stack = [];
  let errors = 0;
  const newKey = () => {
    const k = nextKey;
    nextKey = nextKey >= 0xfffffff0 ? 1 : nextKey + 1;
    return k;
  };
  const setCur = (k) => { cur = k; u32[6] = k; };

  // The fd under a TCP handle, a TLS wrap (its _parent is the TCP handle)
  // or an HTTP server parser's resource (its socket's handle); -1 if none.
  function fdOf(r, depth) {
    const fd = r.fd;
    if (typeof fd === 'number')
      return fd;
    if (depth > 2)
      return -1;
    const p = r._parent;
    if (p !== null && typeof p === 'object')
      return fdOf(p, depth + 1);
    const s = r.socket;
    if (s !== null && typeof s === 'object' && s._handle !== null && typeof s._handle === 'object')
      return fdOf(s._handle, depth + 1);
    return -1;
  }

  function init(asyncId, type, triggerAsyncId, r) {
    try {
      if (r === null || typeof r !== 'object')
        return;
      if (H2_UNKEYED.has(type)) {
        r[kRoot] = 0;
        if (type === 'HTTP2SESSION')
          r[kH2S] = true;
        if (type === 'HTTP2SESSION' && cur !== 0) {
          if (h2NewSess.length === 64)
            h2NewSess.shift();
          h2NewSess.push({ h: r, key: cur });
        }
        return;
      }
      r[kRoot] = cur;
      if (DYN_TYPES.has(type))
        r[kDyn] = true;
      else if (type === 'HTTP2STREAM') {
        if (cur === 0)
          h2Stat.unkeyed++;
        else if (h2Pending.length < H2_PENDING_MAX || (h2Flush(), h2Pending.length < H2_PENDING_MAX))
          h2Pending.push({ h: r, key: cur, tries: 0 });
        else
          h2Stat.lost++;
      }
    } catch (e) { errors++; }
  }
  function before(asyncId) {
    try {
      stack.push(cur);
      const r = ah.executionAsyncResource();
      if (h2Pending.length !== 0 && r !== null && typeof r === 'object' && r[kH2S] === true)
        h2Flush();
      if (r === null || typeof r !== 'object') {
        setCur(0);
        return;
      }
      if (r[kDyn] === true) {
        const fd = fdOf(r, 0);
        const k = fd >= 0 && fd < nfd ? u32[8 + fd] : 0;
        if (k !== 0) {
          setCur(k);
          return;
        }
      }
      setCur(r[kRoot] | 0);
    } catch (e) { errors++; }
  }
  function after(asyncId) {
    try {
      setCur(stack.length !== 0 ? stack.pop() : 0);
    } catch (e) { errors++; }
  }
  // The Http2Stream a native stream handle belongs to (Node sets it right
  // after session.request() made the handle), or null.
  function h2Owner(h) {
    if (ownerSym === null) {
      for (const s of Object.getOwnPropertySymbols(h))
        if (s.description === 'owner_symbol')
          ownerSym = s;
      if (ownerSym === null)
        return null;
    }
    const o = h[ownerSym];
    return o !== null && typeof o === 'object' ? o : null;
  }
  // Tell the kernel the keys of the client streams asked for since the
  // last flush, when Node enters an HTTP/2 session to write its frames
  // (before SendPendingData, in a native immediate of its own). Several
  // streams of one key in one flush are what a library does when it starts
  // the calls it queued (gRPC-js's pick queue, released when a channel
  // becomes ready, in the context of whichever call woke it): they get no
  // key, since that key is one caller's, not each stream's. (Two calls one
  // request makes at once get none either: no parent, never a wrong one.)
  function h2Flush() {
    let keep = 0;
    for (let i = 0; i < h2Pending.length; i++) {
      const e = h2Pending[i];
      if (e.batch === undefined) {
        e.batch = false;
        for (let j = i + 1; j < h2Pending.length; j++) {
          const o = h2Pending[j];
          if (o.key === e.key) {
            o.batch = true;
            e.batch = true;
          }
        }
      }
      if (e.batch === true) {
        h2Stat.batch++;
        e.h[kRoot] = 0;
        continue;
      }
      let st = null;
      try { st = h2Owner(e.h); } catch (x) { errors++; }
      if (st === null || typeof st.id !== 'number') {
        if (++e.tries <= H2_TRIES_MAX)
          h2Pending[keep++] = e;
        else
          h2Stat.lost++;
        continue;
      }
      if (!h2Send(st, e.key))
        e.h[kRoot] = 0; // its callbacks run without a key too
    }
    h2Pending.length = keep;
  }
  // The session's creator: the key current when it was opened, which is
  // also the context of whatever the opening completes. Streams a library
  // queued while the connection was being made (gRPC-js's pick queue, Node's
  // own pending requests) are started from that completion, so they all
  // carry the creator's key whichever request asked for them. Until the
  // session has carried a stream of another key (then nothing is queued any
  // more), a stream of the creator's key gets none: no parent rather than a
  // wrong one.
  function h2Creator(sess) {
    let info = h2Sess.get(sess);
    if (info !== undefined)
      return info;
    for (let i = 0; i < h2NewSess.length; i++) {
      if (h2Owner(h2NewSess[i].h) === sess) {
        info = { key: h2NewSess[i].key, mixed: false };
        h2NewSess.splice(i, 1);
        h2Sess.set(sess, info);
        return info;
      }
    }
    info = { key: 0, mixed: true }; // opened outside any request
    h2Sess.set(sess, info);
    return info;
  }
  // 1 when the stream keeps its key (a record was written or failed), 0
  // when it has none (a server's stream, a creator's stream).
  function h2Send(st, key) {
    try {
      const sess = st.session;
      if (!sess || sess.type !== 1) { // NGHTTP2_SESSION_CLIENT: a server's streams stay unkeyed
        h2Stat.server++;
        return 0;
      }
      const cr = h2Creator(sess);
      if (!cr.mixed) {
        if (key === cr.key) {
          h2Stat.creator++;
          return 0;
        }
        cr.mixed = true;
      }
      const sock = sess.socket;
      const h = sock && sock._handle;
      const fd = h !== null && typeof h === 'object' ? fdOf(h, 0) : -1;
      if (fd < 0 || h2Fd < 0 || !(st.id > 0)) {
        h2Stat.failed++;
        return 1;
      }
      h2Rec32[6] = fd;
      h2Rec32[7] = st.id;
      h2Rec32[8] = key;
      if (fs.writeSync(h2Fd, h2Rec, 0, 40) !== 40) {
        h2Stat.failed++;
        return 1;
      }
      h2Stat.sent++;
      if (h2Log.length === 64)
        h2Log.shift();
      h2Log.push({ fd, stream: st.id, key });
    } catch (e) { h2Stat.failed++; }
    return 1;
  }
  const hook = ah.createHook({ init, before, after });

  // Accepted connections by fd: {key} (the table holds the same key).
  const conns = new Map();
  let outOfTable = 0;

  // A connection accepted by a server in this process: its first key. An
  // HTTP/2 server's connection carries many requests at once, which one key
  // cannot tell apart: it gets none (its calls get no parent rather than
  // another stream's).
  let multiplexed = 0;
  function onServerSocket(msg) {
    try {
      const sock = msg && msg.socket;
      const srv = sock && sock.server;
      const sname = srv && srv.constructor ? srv.constructor.name : '';
      if (sname === 'Http2Server' || sname === 'Http2SecureServer') {
        multiplexed++;
        return;
      }
      const h = sock && sock._handle;
      const fd = h !== null && typeof h === 'object' ? fdOf(h, 0) : -1;
      if (fd < 0 || fd >= nfd) {
        outOfTable++;
        return;
      }
      const st = { key: newKey() };
      conns.set(fd, st);
      u32[8 + fd] = st.key;
      sock.once('close', () => {
        if (conns.get(fd) !== st)
          return;
        conns.delete(fd);
        if (u32[8 + fd] === st.key)
          u32[8 + fd] = 0;
      });
    } catch (e) { errors++; }
  }
  // An HTTP response is done: the connection's next request gets a new key,
  // so what the finished request still does later is not taken for it.
  function onResponseFinish(msg) {
    try {
      const sock = msg && msg.socket;
      const h = sock && sock._handle;
      const fd = h !== null && typeof h === 'object' ? fdOf(h, 0) : -1;
      const st = fd >= 0 ? conns.get(fd) : undefined;
      if (st === undefined)
        return;
      st.key = newKey();
      u32[8 + fd] = st.key;
    } catch (e) { errors++; }
  }

  let timer = null;
  function stop(why) {
    try { hook.disable(); } catch (e) { errors++; }
    try { dc.unsubscribe('net.server.socket', onServerSocket); } catch (e) { errors++; }
    try { dc.unsubscribe('http.server.response.finish', onResponseFinish); } catch (e) { errors++; }
    if (timer !== null)
      clearInterval(timer);
    h2Pending.length = 0;
    h2NewSess.length = 0;
    if (h2Fd >= 0) {
      try { fs.closeSync(h2Fd); } catch (e) { errors++; }
      h2Fd = -1;
    }
    u32.fill(0, 6);
    conns.clear();
    if (globalThis[G] === api)
      delete globalThis[G];
    api.stopped = why;
  }
  // The agent that asked for this may go away: then so do the hooks.
  function alive() {
    try {
      process.kill(agentPid, 0);
    } catch (e) {
      if (e && e.code === 'ESRCH')
        stop('agent gone');
    }
  }
  // What the tests read: the current key, a fd's key, counters.
  const api = {
    stop,
    version: 1,
    current: () => u32[6],
    keyOf: (fd) => (fd >= 0 && fd < nfd ? u32[8 + fd] : 0),
    stats: () => ({ errors, nextKey, depth: stack.length, outOfTable, multiplexed, conns: conns.size,
      h2: Object.assign({ pending: h2Pending.length }, h2Stat) }),
    h2Sent: () => h2Log.slice(),
  };

  // Tell the kernel where the buffer is, then start. The fd stays open for
  // the HTTP/2 stream records.
  let fd = -1;
  try {
    fd = fs.openSync('/dev/null', 'w');
    fs.writeSync(fd, u8, 0, 32);
  } catch (e) {
    if (fd >= 0)
      fs.closeSync(fd);
    return out({ ok: false, why: 'registration write failed: ' + (e && e.code) });
  }
  h2Fd = fd;
  const h2Magic = 'SONDE-NODE-H2S1';
  for (let i = 0; i < h2Magic.length; i++)
    h2Rec[i] = h2Magic.charCodeAt(i);
  h2Rec.set(u8.subarray(16, 24), 16);
  dc.subscribe('net.server.socket', onServerSocket);
  dc.subscribe('http.server.response.finish', onResponseFinish);
  hook.enable();
  // Only an agent this process can see (the same pid namespace) is
  // watched; in a container the hooks stay until the process ends.
  let watch = true;
  try { process.kill(agentPid, 0); } catch (e) { watch = !!e && e.code === 'EPERM'; }
  if (watch) {
    timer = setInterval(alive, 2000);
    timer.unref();
  }
  globalThis[G] = api;
  return out({ ok: true, nfd, replaced: !!prev, watch });
})
