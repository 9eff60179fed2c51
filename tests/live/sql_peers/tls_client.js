// tls_client.js - a TLS client for the sql plugin's live tests, started
// before the agent and connecting only after a line on stdin, so the
// agent's TLS uprobes are in place for its whole life (a process that
// connects the moment it starts can race them). Asks for TLS, runs the
// query N times, prints JSON (with the cipher the server reports) and exits.
//
// usage: node tls_client.js pg PORT DATABASE N
//        node tls_client.js mysql PORT USER PASSWORD DATABASE N
'use strict';
const readline = require('readline');

async function waitLine() {
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
}

async function pg(port, database, n) {
  const { Client } = require('pg');
  const c = new Client({ host: '127.0.0.1', port: Number(port), user: 'postgres', database,
                         ssl: { rejectUnauthorized: false } });
  await c.connect();
  let ssl = false;
  for (let i = 0; i < n; i++)
    ssl = (await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0].ssl;
  await c.end();
  return { queries: n, ssl };
}

async function mysql(port, user, password, database, n) {
  const m = require('mysql2/promise');
  const c = await m.createConnection({ host: '127.0.0.1', port: Number(port), user, password, database,
                                       ssl: { rejectUnauthorized: false } });
  let cipher = '';
  for (let i = 0; i < n; i++)
    cipher = (await c.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'"))[0][0].Value;
  await c.end();
  return { queries: n, cipher };
}

async function main() {
  const [kind, ...args] = process.argv.slice(2);
  process.stdout.write('ready\n');
  await waitLine();
  const out = kind === 'pg' ? await pg(args[0], args[1], Number(args[2]))
                            : await mysql(args[0], args[1], args[2], args[3], Number(args[4]));
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
