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
      r[kRoot] = cur;
      if (DYN_TYPES.has(type))
        r[kDyn] = true;
    } catch (e) { errors++; }
  }
  function before(asyncId) {
    try {
      stack.push(cur);
      const r = ah.executionAsyncResource();
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
    stats: () => ({ errors, nextKey, depth: stack.length, outOfTable, multiplexed, conns: conns.size }),
  };

  // Tell the kernel where the buffer is, then start.
  let fd = -1;
  try {
    fd = fs.openSync('/dev/null', 'w');
    fs.writeSync(fd, u8, 0, 32);
  } catch (e) {
    return out({ ok: false, why: 'registration write failed: ' + (e && e.code) });
  } finally {
    if (fd >= 0)
      fs.closeSync(fd);
  }
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
