// backend.js - the back end the test server calls: answers GET /backend/<id>
// after a short delay and logs "backend id=<id>" on stderr (the live test
// counts these lines).
//
//   node backend.js PORT [--tls CERT KEY]     (HTTPS with --tls)
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');

const port = Number(process.argv[2]);
const tls = process.argv.indexOf('--tls');
const handler = (req, res) => {
  const m = /^\/backend\/([A-Za-z0-9_-]+)/.exec(req.url);
  const id = m ? m[1] : '?';
  setTimeout(() => {
    process.stderr.write(`backend id=${id}\n`);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`backend ${id}\n`);
  }, 10);
};
const server = tls > 0
  ? https.createServer({ cert: fs.readFileSync(process.argv[tls + 1]),
                         key: fs.readFileSync(process.argv[tls + 2]) }, handler)
  : http.createServer(handler);
server.listen(port, '127.0.0.1', () => process.stderr.write(`listening ${port}\n`));
process.on('SIGTERM', () => process.exit(0));
