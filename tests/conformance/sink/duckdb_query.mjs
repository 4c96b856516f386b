// duckdb_query.mjs — an analyst's view of archived sink objects: run SQL in
// an in-memory DuckDB (@duckdb/node-api, installed by
// tests/support/sinkpeers-install.sh node; run with NODE_PATH set to the
// node_modules directory it prints) and print each result row as one JSON
// object per line on stdout.
//
//   node duckdb_query.mjs SQL [SQL...]
//
// Every statement runs in order on one connection; only the last one's rows
// are printed (earlier ones are for SET and the like). Values are printed
// with DuckDB's JSON conversion (bigints as strings, timestamps as ISO text).
// Exit 0; 1 with the error on stderr when a statement fails; 2 on usage.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let duckdb;
try {
  // NODE_PATH is honoured by require(), not by ESM import.
  duckdb = require('@duckdb/node-api');
} catch (e) {
  console.error(`duckdb_query: cannot load @duckdb/node-api (NODE_PATH=${process.env.NODE_PATH || ''}): ${e.message}`);
  process.exit(1);
}

const sqls = process.argv.slice(2);
if (sqls.length === 0) {
  console.error('usage: node duckdb_query.mjs SQL [SQL...]');
  process.exit(2);
}
try {
  const inst = await duckdb.DuckDBInstance.create(':memory:');
  const conn = await inst.connect();
  let reader = null;
  for (const sql of sqls) reader = await conn.runAndReadAll(sql);
  const out = [];
  for (const row of reader.getRowObjectsJson()) out.push(JSON.stringify(row));
  if (out.length) process.stdout.write(out.join('\n') + '\n');
} catch (e) {
  console.error(`duckdb_query: ${e.message}`);
  process.exit(1);
}
