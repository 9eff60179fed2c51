// server.js - the Node.js server of tests/live/test_node_ctx.py and
// bench/node_ctx.sh. GET /req/<id>: await a timer (timers/promises), then
// call the back end over HTTP (GET /backend/<id>, the global keep-alive
// agent) and, when a Redis port is given, send `GET sonde:req:<id>` to Redis
// over a raw socket (RESP by hand, one connection per request); then answer.
// Many requests are in flight at once on the one event-loop thread.
//
//   node server.js PORT BACKEND_PORT [REDIS_PORT|0] [SLEEP_MS] [--own-usr1]
//
// Logs on stderr: "served id=<id>", "backend id=<id>", "redis id=<id>".
// --own-usr1: the application handles SIGUSR1 itself (logs "usr1").
// --tls-backend: the back end speaks HTTPS; calls go through a pool of two
// keep-alive TLS connections (requests queue for them and reuse them).
// --grpc PORT: the handler makes a gRPC-js unary call (/sonde.Ctx/<id>, to
// grpc_echo.js) instead, over one channel shared by every request: ids
// starting with 'e' use a channel GET /warm connected (waitForReady);
// ids starting with 'f' a channel the first such request opens (grpc-js
// queues the calls made while it connects). Logs "grpc id=<id>".
// GET /ok answers at once (the bench's trivial route).
'use strict';
const http = require('http');
const https = require('https');
const net = require('net');
const { setTimeout: sleep } = require('timers/promises');

const port = Number(process.argv[2]);
const bport = Number(process.argv[3]);
const rport = Number(process.argv[4] || 0);
const sleepMs = Number(process.argv[5] || 50);
const log = (s) => process.stderr.write(s + '\n');

if (process.argv.includes('--own-usr1'))
  process.on('SIGUSR1', () => log('usr1'));

const tlsBackend = process.argv.includes('--tls-backend');
const gi = process.argv.indexOf('--grpc');
const grpcPort = gi > 0 ? Number(process.argv[gi + 1]) : 0;
let grpc = null;
let grpcWarm = null;
let grpcCold = null;
if (grpcPort) {
  grpc = require(require('path').join(__dirname, '..', 'grpc_peers', 'node', 'node_modules', '@grpc', 'grpc-js'));
  grpcWarm = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
}

function grpcCall(id) {
  if (id.startsWith('f') && grpcCold === null)
    grpcCold = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  const client = id.startsWith('f') ? grpcCold : grpcWarm;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/sonde.Ctx/${id}`, (b) => b, (b) => b, Buffer.from(id),
      (err, res) => (err ? reject(err) : resolve(res)));
  });
}
const tlsAgent = new https.Agent({ keepAlive: true, maxSockets: 2, rejectUnauthorized: false });

function backend(id) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port: bport, path: `/backend/${id}` };
    const get = tlsBackend ? (o, cb) => https.get({ ...o, agent: tlsAgent }, cb) : http.get;
    const r = get(opts, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    r.on('error', reject);
  });
}

function redis(id) {
  return new Promise((resolve, reject) => {
    const key = `sonde:req:${id}`;
    const s = net.connect(rport, '127.0.0.1');
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d) => {
      got += d;
      if (got.endsWith('\r\n')) { s.end(); resolve(got); }
    });
    s.on('error', reject);
    s.write(`*2\r\n$3\r\nGET\r\n$${key.length}\r\n${key}\r\n`);
  });
}

async function handle(id, res) {
  await sleep(sleepMs);
  if (grpcPort) {
    await grpcCall(id);
    log(`grpc id=${id}`);
    log(`served id=${id}`);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`ok ${id}\n`);
    return;
  }
  await backend(id);
  log(`backend id=${id}`);
  if (rport) {
    await redis(id);
    log(`redis id=${id}`);
  }
  log(`served id=${id}`);
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(`ok ${id}\n`);
}

const body = Buffer.from('ok\n');
const server = http.createServer((req, res) => {
  if (req.url === '/ok') {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
    return;
  }
  if (req.url === '/warm' && grpcWarm !== null) {
    grpcWarm.waitForReady(Date.now() + 10000, (err) => {
      res.writeHead(err ? 503 : 200);
      res.end();
    });
    return;
  }
  const m = /^\/req\/([A-Za-z0-9_-]+)/.exec(req.url);
  if (!m) {
    res.writeHead(404);
    res.end();
    return;
  }
  handle(m[1], res).catch((e) => {
    log(`error id=${m[1]} ${e && e.message}`);
    res.writeHead(500);
    res.end();
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => log(`listening ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
