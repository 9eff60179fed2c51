// pg_named.js - a PostgreSQL client (node pg) that prepares a named
// statement, waits, then executes it: for the sql plugin's live test of a
// connection picked up mid-stream (the agent starts while it waits, so it
// never sees the Parse). Prints "ready" after the first execution, reads
// one line on stdin, executes the statement N more times (Bind/Execute/Sync
// only: pg reuses a named statement), prints JSON and exits.
//
// usage: node pg_named.js PORT DATABASE N
'use strict';
const { Client } = require('pg');
const readline = require('readline');

async function main() {
  const [port, database, n] = process.argv.slice(2);
  const client = new Client({
    host: '127.0.0.1', port: Number(port), user: 'postgres', database,
    application_name: 'sonde-midstream',
  });
  await client.connect();
  const q = { name: 'by_id', text: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1' };
  await client.query({ ...q, values: [1] });
  process.stdout.write('ready\n');
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  for (let i = 0; i < Number(n); i++)
    await client.query({ ...q, values: [i + 2] });
  await client.end();
  process.stdout.write(JSON.stringify({ executed: Number(n) }) + '\n');
}

main().catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
