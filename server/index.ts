// serve(): the preforking HTTP server as a library call, and its daemonizing with a
// ready pipe, so that `unixproc serve -D` returns only once the master serves (or
// fails, with the reason) instead of as soon as it has forked.
import { daemon, exitNow, fork, pipe, wait2, type IO } from '../src/index.js';
import { log } from './log.js';
import { Master, UPGRADE_ENV } from './master.js';
import type { ServeOptions } from './options.js';

export type { ServeOptions, ServeHooks, WorkerInfo } from './options.js';
export { Master } from './master.js';

/**
 * Runs the master in this process (which must run with --single-threaded, and best with
 * --no-memory-reducer, as the CLI does); resolves once it serves.
 */
export async function serve(options: Partial<ServeOptions>): Promise<Master> {
  // V8's memory reducer compacts the master's heap on a timer, unsharing what the
  // workers share (docs/fork-in-node.md); it can only be turned off on node's command line.
  if (!process.execArgv.some((a) => /^--(no-)?memory[-_]reducer\b/.test(a))) {
    log('master.hint', { hint: 'start node with --no-memory-reducer: V8 memory reducer GCs unshare the memory workers share' });
  }
  let ready: IO | undefined;
  if (options.daemonize && !process.env[UPGRADE_ENV]) ready = await daemonize();
  const master = new Master(options, ready);
  try {
    await master.start();
  } catch (err) {
    if (ready) {
      ready.write(`error: ${(err as Error).message}\n`);
      ready.close();
    }
    throw err;
  }
  return master;
}

/** Forks, daemonizes the child, and lets the parent exit with the master's verdict. */
async function daemonize(): Promise<IO> {
  const [r, w] = pipe();
  const pid = fork();
  if (pid !== null) {
    w.close();
    // The first line is the verdict. Not read to EOF: on success the daemon's workers may
    // still hold the pipe's write end, and 'ok' must not wait for them.
    const first = r.gets() ?? '';
    const verdict = first.startsWith('ok') ? first : first + (r.read() ?? Buffer.alloc(0)).toString();
    r.close();
    await wait2(pid);
    if (verdict.startsWith('ok')) exitNow(0);
    process.stderr.write(`unixproc serve: ${verdict.replace(/^error: /, '').trim() || 'the daemon exited before it was ready'}\n`);
    exitNow(1);
  }
  r.close();
  daemon();
  log('master.daemonized', {});
  return w;
}
