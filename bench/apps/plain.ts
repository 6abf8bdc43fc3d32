// A plain node:http server around one of the demo apps, for the peers of `unixproc
// serve` in bench/serve.ts: every node:cluster worker and every PM2 cluster worker runs
// this file and loads the app itself (nothing is shared between them).
//
//   node dist/bench/apps/plain.js <hello|big> <port>
// Under node:cluster or PM2 the listen() goes through the cluster primary, which hands
// out the connections (round-robin by default on Linux).
import http, { type RequestListener } from 'node:http';

const which = process.argv[2] ?? process.env.BENCH_APP ?? 'hello';
const port = Number(process.argv[3] ?? process.env.PORT ?? 8080);

// Literal imports, so that tsc compiles both demo apps into dist/demo/.
const app: RequestListener =
  which === 'big' ? (await import('../../demo/big.js')).default : which === 'hello' ? (await import('../../demo/hello.js')).default : unknownApp();

function unknownApp(): never {
  throw new Error(`plain.js: unknown app ${JSON.stringify(which)} (hello or big)`);
}

const server = http.createServer(app);
server.listen(port, '127.0.0.1');
// PM2 stops a worker with SIGINT, node:cluster's primary with disconnect; either way, go.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
