// h2_burst.js - one HTTP/2 (h2c, prior knowledge) connection that makes
// one request, waits, then makes N requests at once: the server answers
// the burst with writes holding many responses (nghttpd: about 10 KB for
// 20 responses of 500 bytes), bigger than the default capture of 4 KiB.
// For the grpc plugin's live test of its capture cap (SDK 1.1). Node's
// built-in http2 module; no npm package.
//
// usage: node h2_burst.js PORT PATH N WAIT_MS   -> prints {"ok": <2xx answers>}
'use strict';
const http2 = require('http2');

function get(session, path) {
  return new Promise((resolve) => {
    const req = session.request({ ':path': path });
    let status = 0;
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', () => {});
    req.on('end', () => resolve(status));
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function main() {
  const [port, path, n, waitMs] = process.argv.slice(2);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const first = await get(session, path);
  await new Promise((r) => setTimeout(r, Number(waitMs)));
  const burst = await Promise.all(Array.from({ length: Number(n) }, () => get(session, path)));
  session.close();
  const ok = [first, ...burst].filter((s) => s >= 200 && s < 300).length;
  process.stdout.write(JSON.stringify({ ok }) + '\n');
}

main().catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
