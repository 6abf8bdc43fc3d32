// The floor under a fork-per-job worker on this machine, for bench/jobs.ts: a master that
// has loaded a jobs module (no-op or the 100 MiB heap) and compacted its heap, as `unixproc
// work` does, forks a child that does nothing (fork(() => {})) and waits for it, N times
// in a row: fork(2) of this address space, the child's start and exit, the reaping. It
// prints one JSON line: forks/s, the fork() call (median ms), and CPU ms per fork in the
// master and in the child (user + sys, and sys alone), and page faults per fork.
// Usage: node --single-threaded jobs-forkloop.js noop|heap N
import { readFileSync } from 'node:fs';
import { compactHeap, fork, wait2 } from '../../src/index.js';

const [module, nArg] = process.argv.slice(2);
const N = Number(nArg ?? 200);
await import(module === 'heap' ? './jobs-heap.js' : './jobs-noop.js');
compactHeap();

function selfStat(): { minflt: number; cminflt: number; cutime: number; cstime: number } {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
  return { minflt: f[7]!, cminflt: f[8]!, cutime: f[13]!, cstime: f[14]! };
}

// A few forks first, so that the timed ones do not include first-time work.
for (let i = 0; i < 5; i++) await wait2(fork(() => {}));
const calls: number[] = [];
const s0 = selfStat();
const c0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const a = performance.now();
  const pid = fork(() => {});
  calls.push(performance.now() - a);
  await wait2(pid);
}
const wall = performance.now() - t0;
const c = process.cpuUsage(c0);
const s1 = selfStat();
calls.sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({
    module,
    n: N,
    perSec: (N * 1000) / wall,
    forkCallMs: calls[N >> 1],
    masterCpuMs: (c.user + c.system) / 1000 / N,
    masterSysMs: c.system / 1000 / N,
    childCpuMs: ((s1.cutime + s1.cstime - s0.cutime - s0.cstime) * 10) / N,
    childSysMs: ((s1.cstime - s0.cstime) * 10) / N,
    masterFaults: (s1.minflt - s0.minflt) / N,
    childFaults: (s1.cminflt - s0.cminflt) / N,
    rssMiB: process.memoryUsage().rss / 2 ** 20,
  })}\n`,
);
process.exit(0);
