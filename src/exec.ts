// Ruby's exec: replace this process image with another program, keeping the pid and
// every fd that is not close-on-exec. Node leaves SIGPIPE ignored and stdio non-blocking
// (and, on a TTY, close-on-exec), so they are put back the way a fresh program expects.
import { check, describe } from './errors.js';
import { native } from './native.js';
import { parseSignal } from './signals-table.js';

export function exec(file: string, args: readonly string[] = []): never {
  if (typeof file !== 'string' || file === '') throw new TypeError(`exec(file): file must be a non-empty string, got ${describe(file)}`);
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new TypeError('exec(file, args): args must be an array of strings');
  for (const name of ['PIPE', 'XFSZ']) native.setDisposition(parseSignal(name), 0);
  // libuv reopens a TTY on stdio with close-on-exec (uv_tty_init), so the new program
  // would start without stdout: stdio is made inheritable again, and blocking.
  for (const fd of [0, 1, 2]) {
    native.setNonblock(fd, false);
    native.setCloexec(fd, false);
  }
  const r = native.exec(file, [file, ...args]);
  check(r, 'execvp', file);
  throw new Error('unreachable');
}
