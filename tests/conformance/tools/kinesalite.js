// Start kinesalite (npm, a Kinesis stand-in) on 127.0.0.1 only, for checking
// the conformance suite's own tests against a second implementation:
//
//   NODE_PATH=<dir with node_modules/kinesalite> node kinesalite.js [PORT]
//
// Prints "listening http=127.0.0.1:PORT" once bound (PORT 0 = any free port)
// and runs until SIGTERM. Data is in memory. kinesalite's own CLI binds every
// interface and has no host flag, hence this file.
'use strict';
const kinesalite = require('kinesalite');
const port = Number(process.argv[2] || 0);
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
server.listen(port, '127.0.0.1', () => {
  const a = server.address();
  process.stderr.write(`listening http=${a.address}:${a.port}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  if (server.closeAllConnections) server.closeAllConnections(); // keep-alive clients
});
