// mysql_prepared.js - a prepared-statement client (node mysql2) for the
// sql plugin's live test. It prepares statements with COM_STMT_PREPARE and
// runs them with COM_STMT_EXECUTE (mysql2's execute()), then one that
// fails, and prints what it did as JSON on stdout.
//
// usage: node mysql_prepared.js PORT USER PASSWORD DATABASE N [ID_BASE]
'use strict';
const mysql = require('mysql2/promise');

async function main() {
  const [port, user, password, database, n, base] = process.argv.slice(2);
  const idBase = Number(base || 100000 + (process.pid % 100000) * 10);
  const conn = await mysql.createConnection({
    host: '127.0.0.1', port: Number(port), user, password, database,
  });
  const out = { selects: 0, inserts: 0, errors: 0 };
  for (let i = 0; i < Number(n); i++) {
    // the same text each time: mysql2 prepares it once, executes it n times
    await conn.execute('SELECT name FROM items WHERE id = ?', [i % 10]);
    out.selects++;
  }
  for (let i = 0; i < 5; i++) {
    await conn.execute('INSERT INTO items (id, name) VALUES (?, ?)', [idBase + i, 'secret-' + i]);
    out.inserts++;
  }
  try {
    await conn.execute('SELECT nope FROM items WHERE id = ?', [1]);
  } catch (e) {
    out.errors++;
    out.error_code = e.errno;
    out.sqlstate = e.sqlState;
  }
  await conn.end();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
