// mysql_multi.js - a node mysql2 client with multipleStatements: one
// COM_QUERY carrying several statements (the server answers with
// SERVER_MORE_RESULTS_EXISTS between results), for the sql plugin's live
// test. Prints JSON and exits.
//
// usage: node mysql_multi.js PORT USER PASSWORD DATABASE N
'use strict';
const mysql = require('mysql2/promise');

async function main() {
  const [port, user, password, database, n] = process.argv.slice(2);
  const conn = await mysql.createConnection({
    host: '127.0.0.1', port: Number(port), user, password, database, multipleStatements: true,
  });
  for (let i = 0; i < Number(n); i++)
    await conn.query("SELECT name FROM items WHERE id = 1; SELECT COUNT(*) FROM items; " +
                     "UPDATE items SET name = 'multi-secret' WHERE id = 2");
  await conn.end();
  process.stdout.write(JSON.stringify({ queries: Number(n), statements: 3 * Number(n) }) + '\n');
}

main().catch((e) => { process.stderr.write(String(e) + '\n'); process.exit(1); });
