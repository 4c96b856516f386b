// hyparquet_rows.mjs — a second, independent Parquet reader (hyparquet, pure
// JavaScript; installed by tests/support/sinkpeers-install.sh node) over
// archived objects: for each file, one JSON line {"file", "rows", "uuids"}
// with the row count from the footer, and the event_uuid column read back.
//
//   NODE_PATH=<node_modules> node hyparquet_rows.mjs FILE...
//
// Exit 0; 1 when a file does not read (the error on stderr); 2 on usage.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node hyparquet_rows.mjs FILE...');
  process.exit(2);
}
// NODE_PATH is not used by ESM imports: load hyparquet from it by path.
const dir = (process.env.NODE_PATH || '').split(':')[0];
let hp;
try {
  hp = await import(pathToFileURL(join(dir, 'hyparquet', 'src', 'index.js')).href);
} catch (e) {
  console.error(`hyparquet_rows: cannot load hyparquet from NODE_PATH=${dir}: ${e.message}`);
  process.exit(1);
}
for (const f of files) {
  try {
    const b = readFileSync(f);
    const file = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    const meta = hp.parquetMetadata(file);
    const rows = await hp.parquetReadObjects({ file, columns: ['event_uuid'], compressors: undefined });
    process.stdout.write(JSON.stringify({ file: f, rows: Number(meta.num_rows), uuids: rows.map(r => r.event_uuid) }) + '\n');
  } catch (e) {
    console.error(`hyparquet_rows: ${f}: ${e.message}`);
    process.exit(1);
  }
}
