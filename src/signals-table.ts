// The signal table (names without the SIG prefix, as Ruby's Signal.list has them) and
// the parsing of a signal given by name or number, shared by kill, trap and Status.
import { constants } from 'node:os';
import { describe } from './errors.js';

const byName = new Map<string, number>();
const byNumber = new Map<number, string>();
for (const [name, num] of Object.entries(constants.signals)) {
  const short = name.replace(/^SIG/, '');
  byName.set(short, num);
  // Aliases (SIGIOT = SIGABRT, SIGPOLL = SIGIO) share numbers; the first name wins for signame.
  if (!byNumber.has(num)) byNumber.set(num, short);
}
byName.set('EXIT', 0);

/** Ruby's Signal.list: { EXIT: 0, HUP: 1, INT: 2, ... }. */
export function list(): Record<string, number> {
  return Object.fromEntries([...byName.entries()].sort((a, b) => a[1] - b[1]));
}

/** Ruby's Signal.signame(15) => 'TERM'; undefined for an unknown number; a TypeError for anything but a number. */
export function signame(num: number): string | undefined {
  if (typeof num !== 'number') throw new TypeError(`signame(num): num must be a signal number, got ${describe(num)}`);
  if (num === 0) return 'EXIT';
  return byNumber.get(num);
}

/**
 * Parses 'TERM', 'SIGTERM', 'sigterm' (Ruby accepts symbols and strings of either form)
 * or a number. Negative numbers are returned as given: kill uses them to mean process groups.
 */
export function parseSignal(sig: unknown, what = 'signal'): number {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig)) throw new RangeError(`${what} must be an integer, got ${sig}`);
    const n = Math.abs(sig);
    if (n !== 0 && !byNumber.has(n)) throw new RangeError(`invalid ${what} number ${sig}`);
    return sig;
  }
  if (typeof sig !== 'string') throw new TypeError(`${what} must be a signal name or number, got ${describe(sig)}`);
  let name = sig.toUpperCase();
  const negative = name.startsWith('-');
  if (negative) name = name.slice(1);
  if (name.startsWith('SIG')) name = name.slice(3);
  const num = byName.get(name);
  if (num === undefined) throw new RangeError(`unsupported ${what} 'SIG${name}' (from ${JSON.stringify(sig)})`);
  return negative ? -num : num;
}
