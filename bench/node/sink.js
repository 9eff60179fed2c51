// sink.js - a local OTLP/HTTP receiver for the bench: accepts every POST
// with 200 and counts what arrived. OTLP/JSON bodies are parsed and their
// spans counted (SERVER spans separately); protobuf bodies are only counted
// in bytes. GET /stats answers the counters as JSON.
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const stats = { posts: 0, bytes: 0, spans: 0, server_spans: 0, json_errors: 0 };

function countSpans(doc) {
  for (const rs of doc.resourceSpans || []) {
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        stats.spans++;
        if (s.kind === 2 || s.kind === 'SPAN_KIND_SERVER') stats.server_spans++;
      }
    }
  }
}

http.createServer((req, res) => {
  if (req.method === 'GET') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const buf = Buffer.concat(chunks);
    stats.posts++;
    stats.bytes += buf.length;
    if ((req.headers['content-type'] || '').includes('json')) {
      try { countSpans(JSON.parse(buf.toString())); } catch (e) { stats.json_errors++; }
    }
    res.writeHead(200, { 'Content-Type': req.headers['content-type'] || 'application/json' });
    res.end();
  });
}).listen(port, '127.0.0.1', () => console.log(`sink ${port}`));
process.on('SIGTERM', () => process.exit(0));
