// SystemCallError: the kernel's refusal of a syscall, named the way C and Ruby name it
// (code 'EMFILE', errno 24, syscall 'open'), plus the helpers that turn the addon's
// negative-errno results into it.
import { constants } from 'node:os';
import { native } from './native.js';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) if (!errnoNames.has(value)) errnoNames.set(value, name);

export class SystemCallError extends Error {
  /** The symbolic name, e.g. 'ECHILD'. */
  readonly code: string;
  /** The positive errno number, as C and Ruby report it (Errno::ECHILD::Errno). */
  readonly errno: number;
  /** The syscall that failed, e.g. 'waitpid'. */
  readonly syscall: string;

  constructor(errno: number, syscall: string, detail?: string) {
    const code = errnoNames.get(errno) ?? `E${errno}`;
    super(`${code}: ${native.strerror(errno)}, ${syscall}${detail ? ` ${detail}` : ''}`);
    this.name = 'SystemCallError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** Throws a SystemCallError when a wrapper returned a negative errno; returns the value otherwise. */
export function check<T>(result: T | number, syscall: string, detail?: string): T {
  if (typeof result === 'number' && result < 0) throw new SystemCallError(-result, syscall, detail);
  return result as T;
}

export function errnoOf(code: string): number {
  const n = (constants.errno as Record<string, number>)[code];
  if (n === undefined) throw new RangeError(`unknown errno name ${code}`);
  return n;
}

/** Validates an integer argument, naming it in the error. */
export function integer(value: unknown, name: string, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  if (!Number.isInteger(value)) throw new RangeError(`${name} must be an integer, got ${value}`);
  if (value < min || value > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`;
  return `${typeof value} ${String(value)}`;
}
