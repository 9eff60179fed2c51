// grpc_echo.js - a @grpc/grpc-js server for tests/live/test_node_ctx.py
// (the package of tests/live/grpc_peers/node). Any unary method of service
// sonde.Ctx answers its request bytes back; the method name is the caller's
// request id, so each gRPC span names the request it works for.
//
//   node grpc_echo.js PORT
//
// Logs on stderr: "listening PORT", then "grpc id=<method>" per call.
'use strict';
const path = require('path');
const grpc = require(path.join(__dirname, '..', 'grpc_peers', 'node', 'node_modules', '@grpc', 'grpc-js'));

const port = Number(process.argv[2]);
const log = (s) => process.stderr.write(s + '\n');
const same = (b) => b;
const server = new grpc.Server();
// grpc-js routes by full path; unknown methods go to no handler, so the
// ids the test uses are registered up front.
const ids = [];
for (const p of ['e', 'f'])
  for (const c of 'abcdefghijkl')
    ids.push(p + c);
for (const id of ids) {
  server.register(`/sonde.Ctx/${id}`, (call, cb) => {
    log(`grpc id=${id}`);
    cb(null, call.request);
  }, same, same, 'unary');
}
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    log(`error ${err.message}`);
    process.exit(1);
  }
  log(`listening ${port}`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
