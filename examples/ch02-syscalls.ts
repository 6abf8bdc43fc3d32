// Chapter 2: system calls. Everything a process does outside its own memory (printing,
// asking its pid, signalling another process) is a request to the kernel through a system
// call; userland only prepares the arguments and reads back a result or an errno.
// Shows: write(2) on fd 1 directly, getpid(2) answered by the kernel, and refused
// syscalls surfacing with the kernel's errno (ESRCH from kill(2), ECHILD from waitpid(2)).
import { readlinkSync } from 'node:fs';
import { IO, Process, SystemCallError } from '../src/index.js';
import { finish } from './_proc.js';

// fd 1 is whatever the shell (or the test) connected; IO#write loops over write(2).
const stdout = new IO(1);
const n = stdout.write('hello from userland, via write(2) on fd 1\n');
console.log(`write(2) reported ${n} bytes written`);

// The kernel resolves /proc/self for whoever asks: the same number getpid(2) returns.
console.log(`getpid(2) = ${Process.pid}, /proc/self -> ${readlinkSync('/proc/self')}`);

// pid_max is at most 2^22, so no process can have this pid: kill(2) must answer ESRCH.
try {
  Process.kill(0, 2 ** 22 + 1);
  console.log('kill(2) unexpectedly succeeded');
} catch (err) {
  const e = err as SystemCallError;
  console.log(`kill(2) refused: code=${e.code} errno=${e.errno} syscall=${e.syscall}`);
}

// A process with no children asking for a child's status: waitpid(2) answers ECHILD.
try {
  Process.waitSync();
  console.log('waitpid(2) unexpectedly succeeded');
} catch (err) {
  const e = err as SystemCallError;
  console.log(`waitpid(2) refused: code=${e.code} errno=${e.errno} syscall=${e.syscall}`);
}

finish([]);
