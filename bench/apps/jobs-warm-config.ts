// A `unixproc work --config` file for bench/jobs.ts: its beforeFirstFork hook runs, once in
// the master, what every job child would otherwise run (and so compile, and write into its
// own copy of the heap) for the first time: an AsyncLocalStorage.run (which loads node's
// internal/promise_hooks and compiles it), a JSON report written to a pipe, and a trap to
// SYSTEM_DEFAULT (of SIGURG, which the worker does not use). The children then start from
// code the master compiled before it forked. See bench/RESULTS.md, "jobs".
import { AsyncLocalStorage } from 'node:async_hooks';
import { pipe, trap } from '../../src/index.js';

export function warmChildPath(): void {
  const als = new AsyncLocalStorage();
  als.run({}, () => JSON.stringify({ type: 'start', id: '0' }));
  als.disable();
  const [r, w] = pipe();
  w.write(`${JSON.stringify({ type: 'done', id: '0' })}\n`);
  w.close();
  r.close();
  trap('URG', 'SYSTEM_DEFAULT');
}

export default { beforeFirstFork: warmChildPath };
