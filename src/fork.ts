// fork(2) of the running Node process: the child is a copy-on-write image of the
// parent, running the same JS from the same point. The native layer parks threads,
// re-enables forking of V8's heap and re-initialises the event loop (native/fork.cc);
// this module decides when forking is safe and makes the child a well-behaved process:
// its own pid, its own random numbers, and an exit path that avoids Node's teardown,
// which joins threads that do not exist in a forked child (it crashes or hangs there).
import { randomBytes } from 'node:crypto';
import crypto from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { executionAsyncResource } from 'node:async_hooks';
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { onForkChild, runForkChildHandlers } from './atfork.js';
import { describe, errnoOf, SystemCallError } from './errors.js';
import { native } from './native.js';
import { threadCensus } from './install.js';
import { adoptChild } from './wait.js';

/** Thrown when forking this process now would give a child that can deadlock or crash. */
export class ForkSafetyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForkSafetyError';
  }
}

/** True when V8 runs without background threads, which a forked child needs (docs/fork-in-node.md). */
export function isSingleThreaded(): boolean {
  return process.execArgv.some((a) => a === '--single-threaded' || a === '--single_threaded');
}

const { uvPoolSize, platformTasks, platformParked, expectedInParent } = threadCensus;
const PARK_TIMEOUT_MS = 10_000;

let forkedChild = false;

/** True in a process that unixproc forked (its exit path is the fork-safe one). */
export function isForkedChild(): boolean {
  return forkedChild;
}

function assertForkable(): void {
  if (!isMainThread) {
    throw new ForkSafetyError(
      'fork() was called from a worker thread. A forked child holds only the calling thread, ' +
        "so the main thread's event loop and isolate would be gone. Post a message to the main thread and fork there.",
    );
  }
  if (!isSingleThreaded()) {
    throw new ForkSafetyError(
      'fork() needs V8 without background threads: start node with --single-threaded ' +
        '(`node --single-threaded app.js`) or run the script with `unixproc run app.js`. ' +
        'With V8 background threads a forked child can hang in a full GC and never optimizes hot code.',
    );
  }
}

function assertNoStrayThreads(): void {
  // Run after the threadpool is known to exist (the first fork starts it while parking).
  const tids = readdirSync('/proc/self/task');
  const expectedThreads = forkedChild ? 1 + uvPoolSize : expectedInParent;
  const threads = tids.length;
  if (threads > expectedThreads) {
    throw new ForkSafetyError(
      `fork() refused: ${threads} threads are running where ${expectedThreads} are expected (${threadNames(tids)}). ` +
        'A worker_threads Worker, the inspector or an addon thread is alive; a lock it holds at the moment ' +
        'of fork would stay locked forever in the child. Terminate workers (worker.terminate()) before forking, ' +
        'or fork first and start them afterwards.',
    );
  }
}

function threadName(tid: string): string {
  try {
    return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
  } catch {
    return '?'; // gone meanwhile
  }
}

/** "name ×count" of each thread name, for the refusal message (which thread is the stray one). */
function threadNames(tids: string[]): string {
  const count = new Map<string, number>();
  for (const tid of tids) {
    const name = threadName(tid);
    count.set(name, (count.get(name) ?? 0) + 1);
  }
  return [...count].map(([name, n]) => (n > 1 ? `${name} ×${n}` : name)).join(', ');
}

let threadpoolStarted = false;

function rawFork(): number {
  assertForkable();
  prepareParentOnce();
  if (threadpoolStarted) assertNoStrayThreads();
  // A forked child has no platform threads to park (only the forking thread was copied).
  const result = forkedChild
    ? native.fork(0, 0, uvPoolSize, PARK_TIMEOUT_MS)
    : native.fork(platformTasks, platformParked, uvPoolSize, PARK_TIMEOUT_MS);
  threadpoolStarted = true;
  if (typeof result === 'number') {
    adoptOrBecome(result);
    return result;
  }
  const [err, syscall] = result;
  if (err === -errnoOf('EBUSY') && syscall === 'fork') {
    throw new ForkSafetyError(
      `fork() gave up after ${PARK_TIMEOUT_MS} ms waiting for the libuv threadpool to go idle ` +
        '(a long fs, dns or crypto job is running); retry when it is done.',
    );
  }
  if (err === -errnoOf('ETIMEDOUT') && syscall === 'fork') {
    throw new ForkSafetyError(`fork() gave up after ${PARK_TIMEOUT_MS} ms waiting for V8's platform threads to go idle.`);
  }
  // libuv would abort on a threadpool it cannot start: the same limit fork(2) would hit.
  if (syscall === 'pthread_create') throw new SystemCallError(-err, 'fork', '(no thread could be started for the libuv threadpool)');
  throw new SystemCallError(-err, syscall, `(preparing to fork: ${syscall === 'madvise' ? 'MADV_DOFORK on the heap' : 'reading /proc/self/maps'})`);
}

function adoptOrBecome(pid: number): void {
  if (pid === 0) becomeChild();
  else adoptChild(pid);
}

/**
 * Shrinks the heap before forking many children, as Ruby's GC.compact (and the
 * nakayoshi_fork gem) do for Unicorn: V8's low-memory GCs compact the old generation,
 * shrink the young one to its minimum and return free pages to the kernel. The young
 * generation grown while loading an app is 32 MiB of pages that every child would
 * otherwise map shared and then copy on its first scavenges. Memory-reducing GCs also
 * drop the bytecode of functions not running now (it is compiled again when called),
 * so code to keep warm for the children is best run after this.
 */
export function compactHeap(): void {
  native.lowMemoryNotification();
}

/**
 * fork(): returns the child's pid in the parent and null in the child.
 * fork(fn): Ruby's fork block. The parent gets the pid; the child runs fn (sync or
 * async) and exits when it settles: 0 when it returns or resolves, 1 with the error
 * printed when it throws or rejects. In the child the call never returns: the JS that
 * called fork is abandoned (see abandonCaller), so no statement after it runs there.
 */
export function fork(): number | null;
export function fork(fn: () => unknown): number;
export function fork(fn?: () => unknown): number | null {
  if (fn !== undefined && typeof fn !== 'function') throw new TypeError(`fork(fn): fn must be a function, got ${describe(fn)}`);
  const pid = rawFork();
  if (pid !== 0) return pid;
  if (!fn) return null;
  abandonCaller(() => runBlock(fn));
}

function runBlock(fn: () => unknown): void {
  // The block's status is its own: 0, unless the block itself sets process.exitCode.
  process.exitCode = undefined;
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    dieOf(err);
  }
  // The ESM loader sets exitCode 13 on exit while the main module is unsettled, and in
  // a child whose caller was abandoned it never settles: always pass the code.
  const done = () => process.exit(exitCodeNow());
  if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
    // A grandchild forked with fork() while fn was pending inherits this continuation
    // too: only the process that ran fn may be ended by its outcome.
    const owner = native.getpid();
    (result as PromiseLike<unknown>).then(
      () => native.getpid() === owner && done(),
      (err) => native.getpid() === owner && dieOf(err),
    );
    return;
  }
  done();
}

function dieOf(err: unknown): never {
  process.stderr.write(`${inspect(err)}\n`);
  process.exit(1);
}

/**
 * Ends the JS stack that called fork in this child without running another statement
 * of it (no catch, no finally), then calls run from the top of the event loop, where
 * Node drains the nextTick and microtask queues as usual. V8's TerminateExecution does
 * the unwinding; the addon cancels it once no JS frame is left (docs/fork-in-node.md).
 * Node's own code that was on the stack loses its finally blocks too: what they would
 * have done for the callback that forked is done here instead.
 */
function abandonCaller(run: () => void): never {
  interrupted = executionAsyncResource();
  native.abandonStack(run, beforeAsyncStackReset, afterAsyncStackReset);
  // TerminateExecution takes effect at the next interrupt check: this loop's back edge.
  for (;;);
}

let interrupted: object | undefined;
let monitors: Array<(...args: unknown[]) => void> = [];

// Node resets its async-context stack (which the unwound frames left pushed) only on
// the way out of a handled uncaught exception: the addon raises one between these two,
// and the capture swallows it without any monitor seeing it.
function beforeAsyncStackReset(): Error {
  monitors = process.listeners('uncaughtExceptionMonitor') as typeof monitors;
  process.removeAllListeners('uncaughtExceptionMonitor');
  process.setUncaughtExceptionCaptureCallback(() => {});
  return new Error('unixproc: the caller of fork(fn) was abandoned in the child');
}

function afterAsyncStackReset(): void {
  process.setUncaughtExceptionCaptureCallback(null);
  for (const m of monitors) process.on('uncaughtExceptionMonitor', m);
  monitors = [];
  if (interrupted) repairInterruptedCallback(interrupted);
  interrupted = undefined;
}

/** What Node's timer and immediate runners would have done after the callback that forked. */
function repairInterruptedCallback(resource: object | undefined): void {
  const kind = resource?.constructor?.name;
  if (kind === 'Timeout') {
    const t = resource as NodeJS.Timeout & { _repeat: number | null; _destroyed: boolean };
    if (t._repeat) t.refresh(); // an interval is re-armed after each run
    else if (!t._destroyed) {
      t.unref(); // gives back its count in the refs that keep the loop alive
      t._destroyed = true;
    }
  } else if (kind === 'Immediate') {
    repairInterruptedImmediate(resource as Immediate);
  }
}

interface Immediate {
  _destroyed: boolean;
  _onImmediate: () => void;
  _idleNext: Immediate | null;
  _idlePrev: Immediate | null;
  unref(): void;
}

/**
 * An immediate that forked was taken off Node's count of pending immediates but, with
 * its runner's finally skipped, may still head the queue of the batch it ran in. The
 * runner's next pass then takes it for a live one once more (so it must do nothing and
 * look live once: a destroyed head crashes the runner) and counts it off again. One
 * extra immediate that the runner skips without counting off makes up for that count.
 */
function repairInterruptedImmediate(imm: Immediate): void {
  imm._onImmediate = () => {};
  oneShot(imm, '_destroyed', () => false);
  const before = setImmediate(() => {}) as unknown as Immediate;
  const extra = setImmediate(() => {}) as unknown as Immediate;
  extra.unref();
  oneShot(extra, '_destroyed', () => {
    // Skipped as destroyed, the runner goes on from its predecessor's link: unlink it.
    before._idleNext = extra._idleNext;
    if (extra._idleNext) extra._idleNext._idlePrev = before;
    return true;
  });
}

/** Makes obj[key] answer get() once, then become a plain property again. */
function oneShot(obj: object, key: string, get: () => boolean): void {
  Object.defineProperty(obj, key, {
    configurable: true,
    get() {
      const v = get();
      Object.defineProperty(obj, key, { value: v, writable: true, configurable: true, enumerable: true });
      return v;
    },
    set(v) {
      Object.defineProperty(obj, key, { value: v, writable: true, configurable: true, enumerable: true });
    },
  });
}

// ---- the child's side ------------------------------------------------------------

function becomeChild(): void {
  if (!forkedChild) installForkSafeExit(); // a grandchild inherits it already installed
  forkedChild = true;
  reseedRandom();
  runForkChildHandlers();
}

let fatalError: { err: unknown } | null = null;

/**
 * Every way out of Node (process.exit, the loop running dry, an uncaught exception or
 * unhandled rejection) emits 'exit' first and then tears the runtime down, joining
 * threads that the child does not have. So the child leaves with _exit(2) right after
 * the last 'exit' listener, and from process.reallyExit for exits from inside a listener.
 */
function exitCodeNow(): number {
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

function installForkSafeExit(): void {
  const proc = process as unknown as { reallyExit(code?: number): never; emit(ev: string | symbol, ...args: unknown[]): boolean };
  proc.reallyExit = (code?: number) => native.exitNow(code ?? 0);
  const emit = proc.emit;
  proc.emit = function (this: NodeJS.Process, ev: string | symbol, ...args: unknown[]): boolean {
    const handled = emit.call(this, ev, ...args);
    if (ev === 'exit') {
      if (fatalError) process.stderr.write(`Uncaught ${inspect(fatalError.err)}\n`);
      const code = typeof process.exitCode === 'number' ? process.exitCode : typeof args[0] === 'number' ? args[0] : 0;
      native.exitNow(code);
    }
    return handled;
  } as typeof proc.emit;
  native.armExitWatch(
    () => process.emit('beforeExit', exitCodeNow()),
    () => process.exit(exitCodeNow()),
  );
  // Node prints a fatal error only after 'exit', in the teardown the child skips: keep it to print first.
  process.on('uncaughtExceptionMonitor', (err) => {
    if (process.listenerCount('uncaughtException') === 0) fatalError = { err };
  });
}

/**
 * Math.random's state is copied by fork, so every child would draw the same numbers.
 * V8 offers no way to reseed it, so a child gets its own generator (xoshiro128**,
 * seeded from the kernel).
 */
function reseedRandom(): void {
  const seed = new Uint32Array(randomBytes(16).buffer.slice(0, 16));
  let [a, b, c, d] = seed;
  if ((a | b | c | d) === 0) a = 1;
  const next = (): number => {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return r;
  };
  Math.random = () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
}

let parentPrepared = false;

/**
 * crypto.randomUUID keeps a cache of random bytes that fork copies, so siblings would
 * hand out the same UUIDs; in a forked child it asks for fresh entropy each time. The
 * switch is installed in the parent, once, before its first fork: re-syncing the ESM
 * named exports and loading the Web Crypto global cost a forked child about 3 ms (most
 * of its start-up), paid here by the parent once instead of by every child.
 */
function prepareParentOnce(): void {
  if (parentPrepared) return;
  parentPrepared = true;
  const uuid = crypto.randomUUID;
  const randomUUID = ((options?: crypto.RandomUUIDOptions) =>
    forkedChild ? uuid({ disableEntropyCache: true }) : uuid(options)) as typeof crypto.randomUUID;
  crypto.randomUUID = randomUUID;
  syncBuiltinESMExports();
  // The Web Crypto global draws from the same cache.
  const web = (globalThis as { crypto?: { randomUUID?: unknown } }).crypto;
  if (web && typeof web.randomUUID === 'function') {
    Object.defineProperty(web, 'randomUUID', { value: () => randomUUID(), configurable: true, writable: true });
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * The async-stack reset of a fork block runs through Node's uncaught-exception handler,
 * which a process compiles lazily on first use: 2-3 ms that every child would pay again.
 * Run once from the top of the loop (where no async context is pushed and resetting
 * changes nothing), the parent compiles it and its children inherit it compiled.
 */
export function warmForkBlock(): void {
  if (isMainThread && isSingleThreaded()) native.warmAsyncStackReset(beforeAsyncStackReset, afterAsyncStackReset);
}

// A grandchild's parent is the child: the flag is per process.
onForkChild(() => {
  fatalError = null;
});
