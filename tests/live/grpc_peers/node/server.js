// server.js - a @grpc/grpc-js server for the live tests, the same service as
// grpc_server.py (demo.Echo: Unary, ServerStream, ClientStream, Bidi) with a
// hand-written service definition whose messages are raw Buffers, so no
// .proto and no protoc are needed.
//
// It counts the calls it finished per "Method code" and writes them as JSON
// to argv[3] on SIGTERM; the live test compares its server spans with them.
//
// usage: node server.js PORT STATS_FILE
'use strict';
const fs = require('fs');
const grpc = require('@grpc/grpc-js');

const [port, statsFile] = process.argv.slice(2);
const counts = {};
const done = (method, code) => {
  const k = `${method} ${code}`;
  counts[k] = (counts[k] || 0) + 1;
};
const id = (b) => b;
const def = (name, requestStream, responseStream) => ({
  path: `/demo.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
});
const service = {
  Unary: def('Unary', false, false),
  ServerStream: def('ServerStream', false, true),
  ClientStream: def('ClientStream', true, false),
  Bidi: def('Bidi', true, true),
};

const impl = {
  Unary(call, cb) {
    const req = call.request.toString();
    if (req.startsWith('fail:')) {
      const code = parseInt(req.slice(5), 10);
      done('Unary', code);
      cb({ code, details: 'failed on purpose: user data must not be exported' });
      return;
    }
    const ms = req.startsWith('sleep:') ? parseInt(req.slice(6), 10) : 0;
    setTimeout(() => {
      done('Unary', 0);
      cb(null, Buffer.from('echo:' + req));
    }, ms);
  },
  ServerStream(call) {
    const n = parseInt(call.request.toString() || '3', 10);
    for (let i = 0; i < n; i++) call.write(Buffer.from(`item ${i}`));
    done('ServerStream', 0);
    call.end();
  },
  ClientStream(call, cb) {
    let n = 0;
    call.on('data', () => n++);
    call.on('end', () => {
      done('ClientStream', 0);
      cb(null, Buffer.from(String(n)));
    });
  },
  Bidi(call) {
    call.on('data', (m) => call.write(m));
    call.on('end', () => {
      done('Bidi', 0);
      call.end();
    });
  },
};

const server = new grpc.Server();
server.addService(service, impl);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.error('listening');
});
process.on('SIGTERM', () => {
  fs.writeFileSync(statsFile + '.tmp', JSON.stringify(counts));
  fs.renameSync(statsFile + '.tmp', statsFile);
  server.forceShutdown();
  process.exit(0);
});
