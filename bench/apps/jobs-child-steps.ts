// What a job child's first steps cost, for bench/jobs.ts's findings: a master that has
// loaded the no-op jobs module and compacted its heap forks N children in a row; each
// does, in order, what jobs/worker.ts's child() does before and after a no-op job
// (dieWithParent, 8 traps to SYSTEM_DEFAULT, the uncaught-exception monitor, setTitle,
// the 'start' report on a pipe, the job in runInJob, the 'done' report, closing the pipe)
// and records its own CPU time (getrusage: the child's since the fork) and page faults
// after each step, then at its 'exit' event. With `warm`, the master first runs once what
// bench/apps/jobs-warm-config.ts runs (so those paths are compiled before the forks).
// Prints one JSON line: per step, the median CPU ms and page faults.
// Usage: node --single-threaded jobs-child-steps.js cold|warm N
import { openSync, readFileSync, writeSync } from 'node:fs';
import { runInJob } from '../../jobs/context.js';
import { compactHeap, dieWithParent, fork, pipe, setTitle, trap, wait2 } from '../../src/index.js';
import { warmChildPath } from './jobs-warm-config.js';

const [mode, nArg] = process.argv.slice(2);
const N = Number(nArg ?? 60);
await import('./jobs-noop.js');
if (mode === 'warm') warmChildPath();
compactHeap();

const cpu = (): number => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
const faults = (): number => {
  const s = readFileSync('/proc/self/stat', 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[7]);
};
const file = `${process.env.TMPDIR ?? '/tmp'}/unixproc-jobs-child-steps-${process.pid}.txt`;
const out = openSync(file, 'w');
const masterPid = process.pid;
for (let i = 0; i < N; i++) {
  const [r, w] = pipe();
  const pid = fork(async () => {
    const steps: Array<[string, number, number]> = [['fork → the fork block runs', cpu(), faults()]];
    const mark = (name: string): void => void steps.push([name, cpu(), faults()]);
    dieWithParent(masterPid);
    mark('dieWithParent');
    for (const sig of ['QUIT', 'TERM', 'INT', 'USR1', 'USR2', 'CONT', 'TTIN', 'TTOU']) trap(sig, 'SYSTEM_DEFAULT');
    mark('8 traps to SYSTEM_DEFAULT');
    process.on('uncaughtExceptionMonitor', () => {});
    setTitle(`unixproc work: Processing bench since ${new Date().toISOString()} [Noop]`);
    mark('uncaughtExceptionMonitor + setTitle');
    w.write(`${JSON.stringify({ type: 'start', id: String(i) })}\n`);
    mark("'start' report");
    await runInJob({ id: String(i), name: 'Noop', args: [], queue: 'bench', attempt: 0, attempts: 1, backoff: 0, timeout: null, unique: null, enqueuedAt: Date.now(), runAt: Date.now() }, () => undefined);
    mark('the no-op job in runInJob');
    w.write(`${JSON.stringify({ type: 'done', id: String(i) })}\n`);
    w.close();
    mark("'done' report + close");
    process.on('exit', () => {
      mark('to the exit event');
      writeSync(out, `${JSON.stringify(steps)}\n`);
    });
  });
  w.close();
  await wait2(pid);
  r.close();
}
const rows = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Array<[string, number, number]>);
const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const steps = rows[0]!.map(([name], k) => ({
  step: name,
  cpuMs: med(rows.map((r) => (k ? r[k]![1] - r[k - 1]![1] : r[k]![1]))),
  faults: med(rows.map((r) => (k ? r[k]![2] - r[k - 1]![2] : r[k]![2]))),
}));
const { rmSync } = await import('node:fs');
rmSync(file, { force: true });
process.stdout.write(`${JSON.stringify({ mode, n: N, steps })}\n`);
process.exit(0);
