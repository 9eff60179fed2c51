// ctx_check.js - the plugin's script (node_ctx.js) alone, in one process,
// without a kernel: does every back-end call carry the key of the request
// it works for? Run by tests/unit/node_inject_test.c:
//
//   node ctx_check.js /path/to/node_ctx.js
//
// A server and its back end run here; each request awaits a timer, then
// calls the back end over HTTP (the keep-alive agent) and over a raw TCP
// socket. The key current when a stream handle writes (that is when libuv
// makes the write syscall the BPF program reads the key at) is compared
// with the key the server socket had when its request started. Also: two
// requests on one keep-alive connection get different keys; a call the
// first request makes after its response was sent keeps the first key; an
// exception thrown in a callback does not leave a stale key; the table
// entry goes when the connection closes; an HTTP/2 connection (many
// requests at once) gets no key, so its calls carry none. HTTP/2 client
// streams: requests whose handlers share one http2 session report each
// stream's own request key (the script's stream records), none of another
// request's, also for the streams Node queued while the session connected
// (those get none). Prints the failures, exits 1.
'use strict';
const fs = require('fs');
const http = require('http');
const http2 = require('http2');
const net = require('net');
const { setTimeout: sleep } = require('timers/promises');

const script = fs.readFileSync(process.argv[2], 'utf8');
const fn = (0, eval)(script.replace(/;?\s*$/, ''));
const res = JSON.parse(fn('0102030405060708', process.pid, 4096));
if (!res.ok) {
  console.error('script refused:', res.why);
  process.exit(2);
}
const api = globalThis[Symbol.for('sonde.node.ctx')];
const failures = [];
const fail = (s) => failures.push(s);

// Writes as libuv makes them: the stream handle's write methods.
const { TCP } = process.binding('tcp_wrap');
const proto = Object.getPrototypeOf(TCP.prototype);
const writes = []; // {key, text}
for (const m of ['writeBuffer', 'writev', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString']) {
  const orig = proto[m];
  if (typeof orig !== 'function')
    continue;
  proto[m] = function (req, data, ...rest) {
    let text;
    if (typeof data === 'string')
      text = data;
    else if (Array.isArray(data))
      text = data.filter((x) => typeof x !== 'boolean').map((x) => (typeof x === 'string' ? x : Buffer.from(x).toString('latin1'))).join('');
    else
      text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
    writes.push({ key: api.current(), text });
    return orig.call(this, req, data, ...rest);
  };
}

const reqKey = {}; // id -> the server socket's key when the request started
require('diagnostics_channel').subscribe('http.server.request.start', ({ request, socket }) => {
  const m = /\/req\/(\w+)/.exec(request.url);
  if (m)
    reqKey[m[1]] = api.keyOf(socket._handle.fd);
});

const backend = http.createServer((req, res) => res.end('b'));
const raw = net.createServer((s) => s.on('data', () => s.end('+OK\r\n')));
let bport, rport;

function callBackend(id) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: bport, path: `/backend/${id}` }, (r) => {
      r.resume();
      r.on('end', resolve);
    }).on('error', reject);
  });
}
function callRaw(id) {
  return new Promise((resolve, reject) => {
    const s = net.connect(rport, '127.0.0.1');
    s.on('data', () => { s.end(); resolve(); });
    s.on('error', reject);
    s.write(`RAW ${id}\r\n`);
  });
}

const late = {}; // id -> promise of the call made after the response
const server = http.createServer(async (req, res) => {
  const id = /\/req\/(\w+)/.exec(req.url)[1];
  if (id.startsWith('boom')) {
    setTimeout(() => { throw new Error('boom'); }, 1);
    await sleep(5);
  }
  await sleep(20 + (id.charCodeAt(id.length - 1) % 7) * 3);
  await callBackend(id);
  await callRaw(id);
  res.end('ok');
  if (id.startsWith('late'))
    late[id] = sleep(30).then(() => callBackend(id + 'after'));
});
const h2 = http2.createServer();
h2.on('stream', async (stream, headers) => {
  const id = /\/req\/(\w+)/.exec(headers[':path'])[1];
  reqKey[id] = api.keyOf(stream.session.socket._handle.fd);
  await sleep(10);
  await callBackend(id);
  stream.respond({ ':status': 200 });
  stream.end('ok');
});
function getH2(port, paths) {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  return Promise.all(paths.map((p) => new Promise((resolve, reject) => {
    const r = c.request({ ':path': p });
    r.on('data', () => {});
    r.on('end', resolve);
    r.on('error', reject);
  }))).finally(() => c.close());
}

// HTTP/2 client streams: /h2c/<id> handlers call an echo server over one
// shared session (opened lazily by the first caller), after a timer.
const h2e = http2.createServer();
const h2eSid = {}; // stream id -> request id, as the echo server saw it
h2e.on('stream', (stream, headers) => {
  h2eSid[stream.id] = headers['x-id'];
  stream.respond({ ':status': 200 });
  stream.end('ok');
});
let h2cSess = null;
const h2c = http.createServer(async (req, res) => {
  const id = req.url.slice(5);
  reqKey[id] = api.keyOf(req.socket._handle.fd);
  await sleep(10);
  if (h2cSess === null)
    h2cSess = http2.connect(`http://127.0.0.1:${h2e.address().port}`);
  const r = h2cSess.request({ ':path': '/echo', 'x-id': id });
  r.resume();
  r.on('end', () => res.end('ok'));
  r.on('error', () => res.end('err'));
});

process.on('uncaughtException', (e) => { if (e.message !== 'boom') throw e; });

function get(port, path, agent) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent }, (r) => { r.resume(); r.on('end', resolve); })
      .on('error', reject);
  });
}

function keyOfWrite(prefix) {
  const w = writes.filter((x) => x.text.includes(prefix));
  return w.length === 1 ? w[0].key : `${w.length} writes`;
}

async function main() {
  await new Promise((r) => backend.listen(0, '127.0.0.1', r));
  await new Promise((r) => raw.listen(0, '127.0.0.1', r));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  await new Promise((r) => h2.listen(0, '127.0.0.1', r));
  await new Promise((r) => h2e.listen(0, '127.0.0.1', r));
  await new Promise((r) => h2c.listen(0, '127.0.0.1', r));
  bport = backend.address().port;
  rport = raw.address().port;
  const port = server.address().port;

  // 12 requests, 6 at a time, each on its own connection.
  const ids = 'abcdefghijkl'.split('');
  for (let w = 0; w < 2; w++)
    await Promise.all(ids.slice(6 * w, 6 * w + 6).map((id) => get(port, `/req/${id}`, false)));
  // Two requests on one keep-alive connection; the first calls again later.
  const ka = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await get(port, '/req/lateone', ka);
  await get(port, '/req/second', ka);
  await late.lateone;
  ka.destroy();
  // An exception in a callback, then requests again.
  await get(port, '/req/boomx', false);
  await Promise.all(['m', 'n'].map((id) => get(port, `/req/${id}`, false)));

  // Two HTTP/2 streams at once on one connection: no key for either.
  await getH2(h2.address().port, ['/req/hone', '/req/htwo']);
  for (const id of ['hone', 'htwo']) {
    if (reqKey[id] !== 0)
      fail(`${id}: an HTTP/2 connection got key ${reqKey[id]}`);
    const k = keyOfWrite(`GET /backend/${id} `);
    if (k !== 0)
      fail(`${id}: a call of an HTTP/2 stream was written with key ${k}`);
  }
  if (api.stats().multiplexed !== 1)
    fail(`${api.stats().multiplexed} multiplexed connections counted, want 1`);

  // HTTP/2 client streams over one session: 6 at once while it connects
  // (Node queues them: no key, never a wrong one), then 6 at once on it.
  const hc = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10', 'c11', 'c12'];
  for (let w = 0; w < 2; w++)
    await Promise.all(hc.slice(6 * w, 6 * w + 6).map((id) => get(h2c.address().port, `/h2c/${id}`, false)));
  const sent = api.h2Sent();
  let h2right = 0;
  for (const id of hc) {
    const sid = Object.keys(h2eSid).filter((k) => h2eSid[k] === id);
    if (sid.length !== 1) {
      fail(`${id}: ${sid.length} HTTP/2 streams seen by the echo server`);
      continue;
    }
    const e = sent.filter((x) => String(x.stream) === sid[0]);
    if (e.length > 1)
      fail(`${id}: ${e.length} records for stream ${sid[0]}`);
    else if (e.length === 1 && e[0].key !== reqKey[id])
      fail(`${id}: its HTTP/2 stream ${sid[0]} was given key ${e[0].key}, its request has ${reqKey[id]}`);
    else if (e.length === 1)
      h2right++;
    else if (hc.indexOf(id) >= 6)
      fail(`${id}: a stream on the connected session got no key`);
  }
  if (sent.some((x) => x.fd !== h2cSess.socket._handle.fd))
    fail('a stream record names another fd than the client session\'s');
  if (h2right < 6)
    fail(`${h2right} HTTP/2 client streams keyed, want at least 6`);
  h2cSess.close();

  const all = ids.concat(['lateone', 'second', 'boomx', 'm', 'n']);
  const seen = new Set();
  for (const id of all) {
    const k = reqKey[id];
    if (!k) {
      fail(`${id}: its server socket had no key`);
      continue;
    }
    if (seen.has(k))
      fail(`${id}: key ${k} was given to another request too`);
    seen.add(k);
    const kb = keyOfWrite(`GET /backend/${id} `);
    const kr = keyOfWrite(`RAW ${id}\r\n`);
    if (kb !== k)
      fail(`${id}: back-end call written with key ${kb}, its request has ${k}`);
    if (kr !== k)
      fail(`${id}: raw call written with key ${kr}, its request has ${k}`);
  }
  const kl = keyOfWrite('GET /backend/lateoneafter ');
  if (kl !== reqKey.lateone)
    fail(`the call made after lateone's response has key ${kl}, not lateone's ${reqKey.lateone}`);
  if (reqKey.second === reqKey.lateone)
    fail('two requests on one keep-alive connection share a key');
  http.globalAgent.destroy(); // the keep-alive back-end connections
  await sleep(100);
  const st = api.stats();
  if (st.errors)
    fail(`the hooks caught ${st.errors} errors`);
  if (st.conns !== 0)
    fail(`${st.conns} connections still in the table after they all closed`);
  if (api.current() !== 0)
    fail(`current key ${api.current()} outside any callback`);
  server.close();
  h2.close();
  h2e.close();
  h2c.close();
  backend.close();
  raw.close();
  api.stop('done');
  if (failures.length) {
    console.error(failures.join('\n'));
    process.exit(1);
  }
  console.log(`ok: ${all.length} requests, ${writes.length} writes, keys distinct; ` +
    `HTTP/2 client streams keyed ${h2right}/${hc.length}, ${JSON.stringify(st.h2)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
