// The demo app for `unixproc serve`: a node:http request listener in TypeScript. The
// master loads it once; every worker serves it from memory shared copy-on-write.
import type { IncomingMessage, ServerResponse } from 'node:http';

const startedBy = process.pid;

export default function hello(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('content-type', 'text/plain');
  res.end(`hello from worker ${process.pid} (app loaded by ${startedBy}) ${req.method} ${req.url}\n`);
}
