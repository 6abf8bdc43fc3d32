// The ways out of a process, with Ruby's names, and the one place that owns the exit
// sequence: the EXIT trap, then the atExit handlers in reverse order of registration,
// run once from a single 'exit' listener, so the order never depends on which was
// registered first. exit inside that sequence ends only the handler that called it (as
// Ruby's SystemExit does): the rest still run and its code becomes the exit status.
// TERM and INT left at their default also run the sequence, then the process dies of
// the signal itself, so its parent sees what a bare kill would have shown.
import { constants } from 'node:os';
import { describe } from './errors.js';
import { native } from './native.js';

const handlers: Array<() => void> = [];
let exitTrap: ((signo: number) => void) | null = null;
let listening = false;
let running = false;

/** Thrown by exit() inside the exit sequence to end that handler only; caught by runOne. */
class HandlerExit extends Error {
  constructor(readonly code: number) {
    super(`exit(${code}) inside an exit handler`);
  }
}

function runOne(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof HandlerExit) return;
    process.stderr.write(`atExit handler failed: ${(err as Error)?.stack ?? String(err)}\n`);
    if (!process.exitCode) process.exitCode = 1;
  }
}

function runSequence(): void {
  if (running) return;
  running = true;
  try {
    const trapFn = exitTrap;
    exitTrap = null;
    if (trapFn) runOne(() => trapFn(0));
    // A handler may register more; Ruby runs those too.
    while (handlers.length > 0) runOne(handlers.pop()!);
  } finally {
    running = false;
  }
}

function listen(): void {
  if (listening) return;
  listening = true;
  process.on('exit', runSequence);
}

/** Registers fn to run when the process exits through exit, the end of the program, an error, or TERM/INT left at their default; not through exitNow. */
export function atExit(fn: () => void): () => void {
  if (typeof fn !== 'function') throw new TypeError(`atExit(fn): fn must be a function, got ${describe(fn)}`);
  listen();
  handlers.push(fn);
  syncDeathListeners();
  return fn;
}

/** The EXIT trap (signal.ts's trap('EXIT', fn)): runs before the atExit handlers. */
export function getExitTrap(): ((signo: number) => void) | null {
  return exitTrap;
}

export function setExitTrap(fn: ((signo: number) => void) | null): void {
  if (fn) listen();
  exitTrap = fn;
  syncDeathListeners();
}

// ---- dying of TERM and INT ---------------------------------------------------------

// Ruby's default for these runs at_exit blocks and then dies of the signal; the kernel's
// default would skip them, leaving pid files and sockets behind on a plain kill or Ctrl-C.
const DEATH_SIGNALS = [constants.signals.SIGINT, constants.signals.SIGTERM];
/** Death signals whose disposition is trap's 'DEFAULT' (nobody trapped them otherwise). */
const atDefault = new Set<number>(DEATH_SIGNALS);
const deathListeners = new Map<number, () => void>();
let dyingOf = 0;

function eventOf(sig: number): NodeJS.Signals {
  return sig === constants.signals.SIGINT ? 'SIGINT' : 'SIGTERM';
}

/**
 * Called by trap when TERM or INT changes hands: 'DEFAULT' is this Ruby-like default;
 * anything else (a function, IGNORE, SYSTEM_DEFAULT) takes the signal away from it.
 */
export function setRubyDefault(sig: number, on: boolean): void {
  if (!DEATH_SIGNALS.includes(sig)) return;
  if (on) atDefault.add(sig);
  else atDefault.delete(sig);
  syncDeathListeners();
}

// A listener only while there is a sequence to run: without one the kernel's default
// ends the process the same way, at once, where a listener would wait for the event
// loop (a busy loop would not die of TERM until it yields).
function syncDeathListeners(): void {
  const inUse = handlers.length > 0 || exitTrap !== null;
  for (const sig of DEATH_SIGNALS) {
    const want = inUse && atDefault.has(sig);
    const listener = deathListeners.get(sig);
    if (want && !listener) {
      const fn = () => dieOf(sig);
      deathListeners.set(sig, fn);
      process.on(eventOf(sig), fn);
    } else if (!want && listener) {
      deathListeners.delete(sig);
      process.removeListener(eventOf(sig), listener);
    }
  }
}

function dieOf(sig: number): void {
  // Someone else listens for it (process.on('SIGTERM', ...)): as in plain Node, the
  // process does not die of it then, and it is theirs to handle.
  if (process.listenerCount(eventOf(sig)) > 1) return;
  dyingOf = sig;
  // Last of the 'exit' listeners, so every other one has run; in a forked child it must
  // come before fork.ts's _exit, which follows the 'exit' listeners.
  process.on('exit', reraise);
  process.exit(128 + sig);
}

function reraise(): void {
  const sig = dyingOf;
  if (!sig) return; // exit(n) in a handler chose a status instead
  // libuv's handler is still installed: put the kernel's default back, then die by it.
  // Should the signal not kill us (blocked), the exit status 128 + sig still says why.
  native.setDisposition(sig, 0);
  native.kill(native.getpid(), sig);
}

// ---- exit, exitNow, abort ----------------------------------------------------------

function exitStatus(code: unknown, fallback: number, fn: string): number {
  if (code === undefined) return fallback;
  if (code === true) return 0;
  if (code === false) return 1;
  if (typeof code !== 'number') throw new TypeError(`${fn}(code): code must be an integer or a boolean, got ${describe(code)}`);
  if (!Number.isInteger(code)) throw new RangeError(`${fn}(code): code must be an integer, got ${code}`);
  // The kernel keeps the low 8 bits, as C's exit, Ruby and Node do: 256 is 0, -1 is 255.
  return code & 0xff;
}

/**
 * Ruby's exit: true or 0 for success, false for 1; an integer outside 0..255 exits with
 * its low 8 bits. Inside an atExit handler or the EXIT trap it ends that handler, the
 * remaining ones still run, and the process exits with code.
 */
export function exit(code: number | boolean = 0): never {
  const n = exitStatus(code, 0, 'exit');
  if (running) {
    process.exitCode = n;
    dyingOf = 0;
    throw new HandlerExit(n);
  }
  process.exit(n);
}

/** Ruby's exit!: leaves at once, skipping atExit handlers and 'exit' listeners. */
export function exitNow(code: number | boolean = 1): never {
  return native.exitNow(exitStatus(code, 1, 'exitNow'));
}

/** Ruby's abort: prints msg to stderr (when given) and exits with status 1, as exit(1) does. */
export function abort(msg?: string): never {
  if (msg !== undefined) {
    if (typeof msg !== 'string') throw new TypeError(`abort(msg): msg must be a string, got ${describe(msg)}`);
    process.stderr.write(msg.endsWith('\n') ? msg : `${msg}\n`);
  }
  exit(1);
}
