#!/usr/bin/env node
// tests/conformance/sink/read_parquet.mjs — reads Parquet files with an
// independent reader and prints what it saw as JSON (one object per file,
// one line each), for check_parquet.py to compare with what was written.
//
//   node read_parquet.mjs --reader duckdb|hyparquet FILE...
//   node read_parquet.mjs --sql "SELECT ..."     DuckDB: the rows as one
//                                                JSON array of objects
//
// NODE_PATH must name the node_modules directory that
// tests/support/sinkpeers-install.sh node prints (@duckdb/node-api,
// hyparquet, hyparquet-compressors). Output per file:
//   {"file", "row_groups": N, "schema": [{"name", "type", "nullable"}],
//    "rows": [[...], ...]}
// with "type" one of STRING INT64 DOUBLE BOOLEAN TIMESTAMP (TIMESTAMP only
// for a UTC-adjusted millisecond timestamp; anything else is reported as
// "OTHER:<what the reader said>") and values as pq_gen writes them: INT64
// and TIMESTAMP (ms) as decimal strings, doubles as numbers or "NaN",
// "Infinity", "-Infinity", "-0".
// --sql prints DuckDB's own JSON forms (getRowObjectsJson: BIGINT and
// timestamps as strings, NaN/Infinity as strings).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

// ESM ignores NODE_PATH: resolve the packages from it explicitly.
function load(name) {
  const dirs = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
  for (const d of dirs) {
    try {
      return createRequire(path.join(d, 'noop.js')).resolve(name);
    } catch { /* next */ }
  }
  throw new Error(`${name} not found in NODE_PATH (tests/support/sinkpeers-install.sh node)`);
}
const imp = async (name) => import('file://' + load(name));

function dbl(v) {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number') return `OTHER:${typeof v}:${String(v)}`;
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (Object.is(v, -0)) return '-0';
  return v;
}

function sqlString(s) { return "'" + s.replace(/'/g, "''") + "'"; }

async function duckdbFiles(files) {
  const duck = await imp('@duckdb/node-api');
  const inst = await duck.DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  const out = [];
  for (const f of files) {
    const q = sqlString(f);
    const desc = (await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${q})`)).getRowObjectsJson();
    const meta = (await con.runAndReadAll(
      `SELECT name, repetition_type FROM parquet_schema(${q}) WHERE num_children IS NULL`)).getRowObjectsJson();
    const rep = Object.fromEntries(meta.map(m => [m.name, m.repetition_type]));
    const rg = (await con.runAndReadAll(
      `SELECT count(DISTINCT row_group_id)::BIGINT AS n FROM parquet_metadata(${q})`)).getRowObjectsJson();
    const kinds = desc.map(d => ({
      'VARCHAR': 'STRING', 'BIGINT': 'INT64', 'DOUBLE': 'DOUBLE', 'BOOLEAN': 'BOOLEAN',
      'TIMESTAMP WITH TIME ZONE': 'TIMESTAMP',
    })[d.column_type] || `OTHER:${d.column_type}`);
    const schema = desc.map((d, i) => ({ name: d.column_name, type: kinds[i], nullable: rep[d.column_name] === 'OPTIONAL' }));
    const reader = await con.runAndReadAll(`SELECT * FROM read_parquet(${q})`);
    const rows = reader.getRows().map(r => r.map((v, i) => {
      if (v === null || v === undefined) return null;
      switch (kinds[i]) {
        case 'INT64': return typeof v === 'bigint' ? v.toString() : `OTHER:${String(v)}`;
        // DuckDB keeps timestamptz in microseconds
        case 'TIMESTAMP': return typeof v.micros === 'bigint' ? (v.micros / 1000n).toString() : `OTHER:${String(v)}`;
        case 'DOUBLE': return dbl(v);
        default: return v;
      }
    }));
    out.push({ file: f, row_groups: Number(rg[0].n), schema, rows });
  }
  con.closeSync?.();
  return out;
}

function hyType(el) {
  const lt = el.logical_type;
  if (el.type === 'BYTE_ARRAY' && lt && lt.type === 'STRING' && el.converted_type === 'UTF8') return 'STRING';
  if (el.type === 'INT64' && lt && lt.type === 'TIMESTAMP') {
    return lt.unit === 'MILLIS' && lt.isAdjustedToUTC === true ? 'TIMESTAMP' : `OTHER:TIMESTAMP(${lt.unit},${lt.isAdjustedToUTC})`;
  }
  if (lt || el.converted_type) return `OTHER:${el.type}/${JSON.stringify(lt)}/${el.converted_type}`;
  return { INT64: 'INT64', DOUBLE: 'DOUBLE', BOOLEAN: 'BOOLEAN' }[el.type] || `OTHER:${el.type}`;
}

async function hyparquetFiles(files) {
  const hy = await imp('hyparquet');
  const { compressors } = await imp('hyparquet-compressors');
  const out = [];
  for (const f of files) {
    const b = readFileSync(f);
    const file = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    const metadata = hy.parquetMetadata(file);
    const leaves = metadata.schema.slice(1);
    const kinds = leaves.map(hyType);
    const schema = leaves.map((el, i) => ({ name: el.name, type: kinds[i], nullable: el.repetition_type === 'OPTIONAL' }));
    let rows = [];
    if (Number(metadata.num_rows) > 0) {
      await hy.parquetRead({
        file, metadata, compressors, rowFormat: 'array',
        // the raw milliseconds (bigint), not a Date
        parsers: { timestampFromMilliseconds: (ms) => ms },
        onComplete: (data) => { rows = data; },
      });
    }
    rows = rows.map(r => Array.from(r, (v, i) => {
      if (v === null || v === undefined) return null;
      switch (kinds[i]) {
        case 'INT64': case 'TIMESTAMP': return typeof v === 'bigint' ? v.toString() : `OTHER:${typeof v}:${String(v)}`;
        case 'DOUBLE': return dbl(v);
        default: return v;
      }
    }));
    out.push({ file: f, row_groups: metadata.row_groups.length, schema, rows });
  }
  return out;
}

async function sql(query) {
  const duck = await imp('@duckdb/node-api');
  const inst = await duck.DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  const reader = await con.runAndReadAll(query);
  process.stdout.write(JSON.stringify(reader.getRowObjectsJson()) + '\n');
}

async function main() {
  const args = process.argv.slice(2);
  let reader = null, query = null;
  const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--reader') reader = args[++i];
    else if (args[i] === '--sql') query = args[++i];
    else files.push(args[i]);
  }
  if (query !== null) return sql(query);
  if (!['duckdb', 'hyparquet'].includes(reader) || files.length === 0) {
    process.stderr.write('usage: read_parquet.mjs --reader duckdb|hyparquet FILE... | --sql QUERY\n');
    process.exit(2);
  }
  const res = reader === 'duckdb' ? await duckdbFiles(files) : await hyparquetFiles(files);
  for (const r of res) process.stdout.write(JSON.stringify(r) + '\n');
}

main().catch(e => { process.stderr.write(`read_parquet.mjs: ${e && e.stack || e}\n`); process.exit(1); });
