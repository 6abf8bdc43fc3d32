// Everything importing unixproc changes in the running Node process, in one place, each
// with why. src/index.ts runs install() once, before anything else can fork.
import { ChildProcess } from 'node:child_process';
import { native } from './native.js';

// libuv starts this many threadpool threads on first use (UV_THREADPOOL_SIZE, 1..1024).
const uvPoolSize = Math.min(1024, Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4));
// Node's platform counts its delayed-task scheduler among its worker threads, but that
// thread runs no worker tasks (measured on Node 20, 22 and 24): one fewer parks.
const platformTasks = native.platformThreads();

/**
 * The thread census fork() checks before every fork: a thread it does not know of (a
 * Worker, an addon's) may hold a lock that would stay locked forever in the child.
 * Taken at import, when only Node's own threads exist.
 */
export const threadCensus = {
  uvPoolSize,
  platformTasks,
  platformParked: Math.max(0, platformTasks - 1),
  // Threads a plain Node process has once its threadpool is running: main, the platform's
  // (scheduler included), the SIGUSR1 inspector watchdog, and the threadpool.
  expectedInParent: 1 + platformTasks + 1 + uvPoolSize,
};

let installed = false;

/**
 * The patches, once per process:
 * - process.pid becomes live (getpid): Node caches it at start-up, so a forked child
 *   would report its parent's pid, and process.kill(process.pid) there would signal the parent;
 * - ChildProcess#spawn (what spawn, exec, execFile and child_process.fork all go through)
 *   reports each child to the wait family, which must never reap what libuv will reap;
 * - the fork block's reset path is compiled in this process, once (warmForkBlock).
 */
export function install(hooks: { trackForeignChild(child: ChildProcess): void; warmForkBlock(): void }): void {
  if (installed) return;
  installed = true;
  Object.defineProperty(process, 'pid', { get: () => native.getpid(), configurable: true, enumerable: true });
  type Spawn = (this: ChildProcess, ...args: unknown[]) => unknown;
  const proto = ChildProcess.prototype as unknown as { spawn: Spawn };
  const originalSpawn = proto.spawn;
  proto.spawn = function spawn(this: ChildProcess, ...args: unknown[]) {
    const result = originalSpawn.apply(this, args);
    hooks.trackForeignChild(this);
    return result;
  };
  hooks.warmForkBlock();
}
