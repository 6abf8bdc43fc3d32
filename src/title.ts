// Process.title: the name ps and /proc/PID/cmdline show (Ruby's $PROGRAM_NAME). Node's
// own process.title is capped at the length of the original command line; native/title.cc
// makes the whole argv+environment block available, as setproctitle(3) does.
import { readFileSync } from 'node:fs';
import { check, describe } from './errors.js';
import { native } from './native.js';

let current: string | null = null;

/** The title as ps shows it: what was set, else the command line the process started with. */
export function getTitle(): string {
  if (current !== null) return current;
  try {
    return readFileSync('/proc/self/cmdline', 'utf8').replace(/\0+$/, '').split('\0').join(' ');
  } catch {
    return process.title;
  }
}

export function setTitle(title: string): void {
  if (typeof title !== 'string') throw new TypeError(`title must be a string, got ${describe(title)}`);
  if (title.includes('\0')) throw new RangeError('title must not contain NUL bytes');
  check(native.setTitle(title), 'setproctitle');
  current = title;
}
