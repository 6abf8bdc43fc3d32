// The ways out of a process, with Ruby's names: exit runs atExit handlers and 'exit'
// listeners; exitNow (Ruby's exit!) runs neither; abort prints a message and exits 1.
import { describe, integer } from './errors.js';
import { native } from './native.js';

const handlers: Array<() => void> = [];
let installed = false;

function runHandlers(): void {
  // Ruby runs at_exit blocks in reverse order of registration; a handler may register more.
  while (handlers.length > 0) {
    const fn = handlers.pop()!;
    try {
      fn();
    } catch (err) {
      process.stderr.write(`atExit handler failed: ${(err as Error)?.stack ?? String(err)}\n`);
      if (!process.exitCode) process.exitCode = 1;
    }
  }
}

/** Registers fn to run when the process exits through exit, the end of the program, or an error; not through exitNow. */
export function atExit(fn: () => void): () => void {
  if (typeof fn !== 'function') throw new TypeError(`atExit(fn): fn must be a function, got ${describe(fn)}`);
  if (!installed) {
    installed = true;
    process.on('exit', runHandlers);
  }
  handlers.push(fn);
  return fn;
}

function exitCode(code: unknown, fallback: number): number {
  if (code === undefined) return fallback;
  if (code === true) return 0;
  if (code === false) return 1;
  return integer(code, 'exit status', 0, 255);
}

/** Ruby's exit: true or 0 for success, false for 1. */
export function exit(code: number | boolean = 0): never {
  process.exit(exitCode(code, 0));
}

/** Ruby's exit!: leaves at once, skipping atExit handlers and 'exit' listeners. */
export function exitNow(code: number | boolean = 1): never {
  return native.exitNow(exitCode(code, 1));
}

/** Ruby's abort: prints msg to stderr (when given) and exits with status 1. */
export function abort(msg?: string): never {
  if (msg !== undefined) {
    if (typeof msg !== 'string') throw new TypeError(`abort(msg): msg must be a string, got ${describe(msg)}`);
    process.stderr.write(msg.endsWith('\n') ? msg : `${msg}\n`);
  }
  process.exit(1);
}
