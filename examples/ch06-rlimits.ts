// Chapter 6: processes have resource limits. The kernel enforces a soft limit per
// resource (raisable up to the hard limit); going past RLIMIT_NOFILE makes open(2) fail
// with EMFILE. Shows: getrlimit for NOFILE, NPROC, FSIZE and STACK; and the book's
// setrlimit(NOFILE, 3) followed by an open, done in a forked child because the limit
// belongs to the process that sets it (and to children forked after), never the parent.
import { openSync } from 'node:fs';
import { fork, Process, pipe, RLIM_INFINITY, SystemCallError } from '../src/index.js';
import { finish } from './_proc.js';

const show = (n: number): string => (n === RLIM_INFINITY ? 'unlimited' : String(n));
for (const resource of ['NOFILE', 'NPROC', 'FSIZE', 'STACK']) {
  const [soft, hard] = Process.getrlimit(resource);
  console.log(`getrlimit(${resource}) = soft ${show(soft)}, hard ${show(hard)}`);
}
const [parentSoft, parentHard] = Process.getrlimit('NOFILE');

const child = fork(() => {
  // Limits apply to new fds only: the ones already open (Node holds a dozen) stay usable,
  // which is why console.log still works below.
  Process.setrlimit('NOFILE', 3);
  const [soft, hard] = Process.getrlimit('NOFILE');
  console.log(`child: setrlimit(NOFILE, 3); getrlimit(NOFILE) = soft ${soft}, hard ${hard}`);
  try {
    openSync('/dev/null', 'r');
    console.log('child: open(/dev/null) unexpectedly succeeded');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    console.log(`child: open(/dev/null) failed: ${e.code} (${e.message.split(',')[0]})`);
  }
  try {
    pipe();
    console.log('child: pipe() unexpectedly succeeded');
  } catch (err) {
    const e = err as SystemCallError;
    console.log(`child: pipe() failed: ${e.code} errno ${e.errno} from ${e.syscall}`);
  }
});
const [, status] = Process.wait2Sync(child)!;
console.log(`child ${status}`);

const [soft, hard] = Process.getrlimit('NOFILE');
console.log(`parent NOFILE unchanged: ${soft === parentSoft && hard === parentHard} (soft ${show(soft)}, hard ${show(hard)})`);
finish([child]);
