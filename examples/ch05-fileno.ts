// Chapter 5: processes have file descriptors. Every open resource is a number in the
// process's fd table, and open(2) always hands out the LOWEST free number; closing one
// frees its number for the next open. Ruby shows 3, 4, then 3 again, because a fresh
// ruby holds only 0-2. Node itself holds more at start-up (libuv's epoll fd, its wakeup
// eventfd, signal pipes...), so we show the rule twice:
//   1. here, relative to the lowest free fd, whatever Node holds;
//   2. in a forked child that first closes every fd above 2, giving the book's 3, 4, 3.
import { closeSync, openSync, readdirSync, writeSync } from 'node:fs';
import { exitNow, fork, IO, Process } from '../src/index.js';
import { finish } from './_proc.js';

function openFds(): number[] {
  // Listing /proc/self/fd opens a directory fd of its own, which is closed again when
  // readdirSync returns; it shows up in the list, so drop numbers that are no longer open.
  return readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => {
      try {
        new IO(fd);
        return true;
      } catch {
        return false;
      }
    })
    .sort((a, b) => a - b);
}

function lowestFree(): number {
  const open = new Set(openFds());
  let fd = 0;
  while (open.has(fd)) fd++;
  return fd;
}

console.log(`Node holds ${openFds().length} fds at this point: ${openFds().join(' ')}`);
const base = lowestFree();
console.log(`lowest free fd: ${base}`);

const passwd = new IO(openSync('/etc/passwd', 'r'));
console.log(`passwd.fileno = ${passwd.fileno} (lowest free ${passwd.fileno === base ? '' : 'NOT '}taken)`);
const expectHosts = lowestFree();
const hosts = new IO(openSync('/etc/hosts', 'r'));
console.log(`hosts.fileno = ${hosts.fileno} (lowest free ${hosts.fileno === expectHosts ? '' : 'NOT '}taken)`);
passwd.close();
const nul = new IO(openSync('/dev/null', 'r'));
console.log(`after passwd.close, null.fileno = ${nul.fileno} (reuses passwd's number: ${nul.fileno === base})`);
hosts.close();
nul.close();

// The child closes everything above stderr, including the event loop's own fds, so it
// must not return to the loop: it uses only synchronous calls and leaves with exit!.
const child = fork();
if (child === null) {
  for (const fd of openFds()) if (fd > 2) closeSync(fd);
  const out = (s: string): void => void writeSync(1, `${s}\n`);
  out(`child: open fds now ${openFds().join(' ')}`);
  const p = openSync('/etc/passwd', 'r');
  out(`child: passwd.fileno = ${p}`);
  const h = openSync('/etc/hosts', 'r');
  out(`child: hosts.fileno = ${h}`);
  closeSync(p);
  const n = openSync('/dev/null', 'r');
  out(`child: null.fileno = ${n}`);
  exitNow(0);
}
const [, status] = Process.wait2Sync(child)!;
console.log(`child ${status}`);
finish([child]);
