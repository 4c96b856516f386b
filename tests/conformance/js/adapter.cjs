// The conformance suite's bridge to the stock AWS SDK for JavaScript v3
// (@aws-sdk/client-kinesis, exactly as npm ships it, with its DEFAULT request
// handler: HTTP/2, h2c with prior knowledge on http:// endpoints).
//
// kinesis_scenario.py drives it: one JSON request per line on stdin,
//   {"op": "PutRecord", "params": {...}, "creds": ["AKID", "SECRET"] | null}
// one JSON answer per line on stdout,
//   {"ok": <command output>}  or  {"error": {"code", "message", "status"}}
// Binary values travel as {"$b64": "..."} and dates as {"$date": <epoch ms>}
// in both directions, so the SDK sees real Uint8Array / Date values and does
// its own base64 and timestamp serialisation. {"op": "$handler"} answers the
// request handler's class name (the scenario checks it is the HTTP/2 one).
//
// Usage: node adapter.cjs ENDPOINT REGION   (run from the directory whose
// node_modules holds the SDK: the test runner installs it in the build tree)
'use strict';
const readline = require('node:readline');
const kinesis = require('@aws-sdk/client-kinesis');

const endpoint = process.argv[2];
const region = process.argv[3] || 'us-east-1';
const clients = new Map(); // "akid:secret" -> KinesisClient (one HTTP/2 session each)

function client(creds) {
  const key = creds ? creds.join(':') : '';
  let c = clients.get(key);
  if (!c) {
    const cfg = { endpoint, region, maxAttempts: 1 };
    // Only for checking the suite against an HTTP/1.1-only stand-in
    // (kinesalite): RN_CONF_JS_HTTP1=1 swaps in the HTTP/1.1 handler.
    if (process.env.RN_CONF_JS_HTTP1 === '1') {
      const { NodeHttpHandler } = require('@smithy/node-http-handler');
      cfg.requestHandler = new NodeHttpHandler();
    }
    if (creds) cfg.credentials = { accessKeyId: creds[0], secretAccessKey: creds[1] };
    c = new kinesis.KinesisClient(cfg);
    clients.set(key, c);
  }
  return c;
}

function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    if (typeof v.$b64 === 'string') return new Uint8Array(Buffer.from(v.$b64, 'base64'));
    if (typeof v.$date === 'number') return new Date(v.$date);
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = decode(x);
    return o;
  }
  return v;
}

function encode(v) {
  if (v instanceof Uint8Array) return { $b64: Buffer.from(v).toString('base64') };
  if (v instanceof Date) return { $date: v.getTime() };
  if (Array.isArray(v)) return v.map(encode);
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) if (k !== '$metadata') o[k] = encode(x);
    return o;
  }
  return v;
}

async function handle(req) {
  if (req.op === '$handler') {
    const h = client(req.creds).config.requestHandler;
    return { ok: { handler: h && h.constructor ? h.constructor.name : String(h) } };
  }
  if (req.op === '$wait') {
    const fn = kinesis[`waitUntil${req.waiter}`];
    if (!fn) return { error: { code: 'AdapterUnknownWaiter', message: req.waiter, status: 0 } };
    try {
      const r = await fn({ client: client(req.creds), maxWaitTime: 30, minDelay: 1, maxDelay: 1 }, decode(req.params || {}));
      return { ok: { state: r.state, reason: r.reason ? String(r.reason.name || r.reason) : null } };
    } catch (e) {
      return { error: { code: e.name || 'Error', message: String(e.message), status: 0 } };
    }
  }
  const Cmd = kinesis[`${req.op}Command`];
  if (!Cmd) return { error: { code: 'AdapterUnknownCommand', message: req.op, status: 0 } };
  try {
    const out = await client(req.creds).send(new Cmd(decode(req.params || {})));
    return { ok: encode(out) };
  } catch (e) {
    const status = e.$metadata ? e.$metadata.httpStatusCode : undefined;
    return { error: { code: e.name || e.code || 'Error', message: String(e.message), status: status || 0,
                      fault: e.$fault || null, response: e.$response ? String(e.$response.statusCode) : null } };
  }
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  // One request at a time, answered in order.
  chain = chain.then(async () => {
    let ans;
    try {
      ans = await handle(JSON.parse(line));
    } catch (e) {
      ans = { error: { code: 'AdapterFailure', message: String(e && e.stack || e), status: 0 } };
    }
    process.stdout.write(JSON.stringify(ans) + '\n');
  });
});
rl.on('close', () => {
  chain.then(() => {
    for (const c of clients.values()) c.destroy();
  });
});
