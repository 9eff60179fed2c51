// mysql_midstream.js - a node mysql2 client that prepares a statement,
// waits, then executes it: for the sql plugin's live test of a connection
// picked up mid-stream (the agent starts while it waits, so it never sees
// COM_STMT_PREPARE nor the greeting). Prints "ready" after the first
// execution, reads one line on stdin, executes N more times, prints JSON.
//
// usage: node mysql_midstream.js PORT USER PASSWORD DATABASE N
'use strict';
const mysql = require('mysql2/promise');
const readline = require('readline');

async function main() {
  const [port, user, password, database, n] = process.argv.slice(2);
  const conn = await mysql.createConnection({
    host: '127.0.0.1', port: Number(port), user, password, database,
  });
  const sql = 'SELECT name FROM items WHERE id = ?';
  await conn.execute(sql, [1]);
  process.stdout.write('ready\n');
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  for (let i = 0; i < Number(n); i++)
    await conn.execute(sql, [i % 10]);
  await conn.end();
  process.stdout.write(JSON.stringify({ executed: Number(n) }) + '\n');
}

main().catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
