// server.js - the Node.js HTTP server measured three ways by bench/run.sh:
// bare, under sonde, and with the OpenTelemetry SDK (otel.js, --require).
// One route, a small fixed body with Content-Length, keep-alive: the
// cheapest request Node can serve, so instrumentation cost is most visible.
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const body = Buffer.from('hello from node\n');
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
