// Where a `unixproc work` master's time goes, for bench/jobs.ts's findings: runs the same
// JobWorker the CLI runs (jobs/worker.ts, unchanged) in this process, with timing wrappers
// put around its methods and the backend's at run time (nothing in jobs/ is edited), and
// the beforeFork/afterFork hooks the worker offers. The bench enqueues N jobs first; this
// process works until N jobs were completed in the store, QUITs the worker and writes a JSON
// profile to OUT.
// Usage: node --single-threaded jobs-profile.js STORE_URL CONCURRENCY noop|heap N OUT [JOBS_PER_FORK] [warm]
// warm: the beforeFirstFork hook of bench/apps/jobs-warm-config.ts runs once in the master
// what each job child would otherwise run (and compile) for the first time.
// Writes OUT (the profile), OUT.children (per job child: first job id, afterFork time, exit
// time) and OUT.claims (Stamp jobs: id, claim time, enqueue time).
//
// Per job (all CLOCK_MONOTONIC, one clock for every process):
//   claim     backend.claim() in the master (a write transaction / a Lua script)
//   fork      the worker's start(): pipe() + fork(2) + the master's JS around it
//   childUp   the master's beforeFork hook -> the child's afterFork hook (the child runs)
//   run       afterFork -> the child's 'exit' event (the job, its reports, the exit path)
//   the child's CPU time and page faults up to afterFork and from there to its exit
//   reported  the master reading the child's 'done' line, after the child's afterFork
//   complete  backend.complete() in the master
//   reaped    'done' read -> the worker's reap() over (waitpid, pipe EOF, wake-up)
//   gap       reap() over -> the next claim of that slot
// and for the master loop: claims that found nothing, waitForWork calls and how long they
// waited, the master's CPU time and its event-loop utilisation.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { JobWorker, WORK_DEFAULTS } from '../../jobs/worker.js';
import { warmChildPath } from './jobs-warm-config.js';
import { SqliteBackend } from '../../jobs/sqlite.js';
import { RedisBackend } from '../../jobs/redis.js';
import type { JobRecord } from '../../jobs/backend.js';

const [url, concurrencyArg, module, nArg, out, jpfArg, warmArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const N = Number(nArg);
if (!url || !(concurrency >= 1) || (module !== 'noop' && module !== 'heap') || !(N >= 1) || !out) {
  throw new Error('usage: jobs-profile.js STORE_URL CONCURRENCY noop|heap N OUT [JOBS_PER_FORK]');
}
// JOBS_PER_FORK 0: --no-fork (jobs run in the master).
const jobsPerFork = Number(jpfArg ?? 1);
const JOBS = fileURLToPath(new URL(module === 'heap' ? './jobs-heap.js' : './jobs-noop.js', import.meta.url));
const CHILD_LOG = `${out}.children`;
const masterPid = process.pid;
const us = (): number => Number(process.hrtime.bigint() / 1000n);
const inMaster = (): boolean => process.pid === masterPid;

// ---- samples, master side ----------------------------------------------------------------
const claimUs: number[] = [];
const emptyClaimUs: number[] = [];
const forkUs: number[] = [];
const completeUs: number[] = [];
const waitForWork: number[] = [];
const nextEvents: number[] = [];
const beforeFork = new Map<string, number>();
/** Master CPU µs at the beforeFork hook, by job id; forkCpu: that to start() resolving (pipe + fork(2) + bookkeeping). */
const cpuAtBeforeFork = new Map<string, number>();
const forkCpuUs: number[] = [];
const cpuNow = (): number => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
const doneAt = new Map<string, number>();
const reapedAt = new Map<string, number>();
const claimedAt: Array<{ id: string; t: number; t0: number | null }> = [];
let done = 0;
let worker: JobWorker;

type Fn = (...args: any[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any
function wrapAsync(proto: object, name: string, record: (ms: number, result: unknown, args: unknown[], t0: number) => void): void {
  const p = proto as Record<string, Fn>;
  const orig = p[name];
  if (typeof orig !== 'function') throw new Error(`no method ${name} to wrap`);
  p[name] = function (this: unknown, ...args: unknown[]) {
    if (!inMaster()) return orig.apply(this, args);
    const t0 = us();
    const r = orig.apply(this, args);
    return Promise.resolve(r).then((v) => {
      if (inMaster()) record((us() - t0) / 1000, v, args, t0);
      return v;
    });
  };
}

for (const B of [SqliteBackend, RedisBackend]) {
  wrapAsync(B.prototype, 'claim', (ms, job) => {
    if (job) {
      claimUs.push(ms);
      const j = job as JobRecord;
      claimedAt.push({ id: j.id, t: us(), t0: j.name === 'Stamp' ? Number(j.args[0]) : null });
    } else emptyClaimUs.push(ms);
  });
  wrapAsync(B.prototype, 'complete', (ms) => {
    completeUs.push(ms);
    if (++done === N) setImmediate(() => worker.quit());
  });
  wrapAsync(B.prototype, 'waitForWork', (ms) => waitForWork.push(ms));
}
const W = JobWorker.prototype as unknown as Record<string, Fn>;
wrapAsync(W, 'start', (ms, _v, args) => {
  forkUs.push(ms);
  const c0 = cpuAtBeforeFork.get((args[0] as JobRecord[])[0]!.id);
  if (c0 !== undefined) forkCpuUs.push((cpuNow() - c0) / 1000);
});
wrapAsync(W, 'nextEvent', (ms) => nextEvents.push(ms));
wrapAsync(W, 'reap', (_ms, _v, args) => {
  const t = us();
  for (const j of (args[0] as { jobs: JobRecord[] }).jobs) reapedAt.set(j.id, t);
});
const onReport = W.onReport!;
W.onReport = function (this: unknown, child: unknown, line: string) {
  if (inMaster() && line.includes('"type":"done"')) {
    const id = (JSON.parse(line) as { id: string }).id;
    doneAt.set(id, us());
  }
  return onReport.call(this, child, line);
};

// ---- run -------------------------------------------------------------------------------------
writeFileSync(CHILD_LOG, '');
worker = new JobWorker({
  ...WORK_DEFAULTS,
  jobs: JOBS,
  queues: ['bench'],
  concurrency,
  backend: url,
  jobsPerFork: Math.max(1, jobsPerFork),
  fork: jobsPerFork > 0,
  heartbeat: 5,
  hooks: {
    ...(warmArg === 'warm' ? { beforeFirstFork: warmChildPath } : {}),
    beforeFork: (job) => {
      cpuAtBeforeFork.set(job.id, cpuNow());
      beforeFork.set(job.id, us());
    },
    afterFork: (job) => {
      const t = us();
      // One line per job child: its first job's id, when its first JS ran and when it exits,
      // its CPU µs (since the fork) and page faults at both points.
      if (!(globalThis as { benchExitHooked?: boolean }).benchExitHooked) {
        (globalThis as { benchExitHooked?: boolean }).benchExitHooked = true;
        const cpu = cpuNow();
        const flt = selfStat().minflt;
        process.on('exit', () => appendFileSync(CHILD_LOG, `${job.id} ${t} ${us()} ${cpu} ${cpuNow()} ${flt} ${selfStat().minflt}\n`));
      }
    },
  },
});
const cpu0 = process.cpuUsage();
const elu0 = performance.eventLoopUtilization();
const stat0 = selfStat();
const t0 = us();
const ran = worker.run();
await ran;
const wallMs = (us() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const elu = performance.eventLoopUtilization(elu0);
const stat1 = selfStat();
const childCpuS = (stat1.cutime + stat1.cstime - stat0.cutime - stat0.cstime) / 100;

// ---- per-job timeline --------------------------------------------------------------------
const childUp: number[] = [];
const run: number[] = [];
const reported: number[] = [];
const reaped: number[] = [];
const childCpuUp: number[] = [];
const childCpuRun: number[] = [];
const childFltUp: number[] = [];
const childFltRun: number[] = [];
for (const line of readFileSync(CHILD_LOG, 'utf8').split('\n')) {
  if (!line) continue;
  const [id, tAf, tExit, cpuAf, cpuExit, fltAf, fltExit] = line.split(' ') as [string, string, string, string, string, string, string];
  childCpuUp.push(Number(cpuAf) / 1000);
  childCpuRun.push((Number(cpuExit) - Number(cpuAf)) / 1000);
  childFltUp.push(Number(fltAf));
  childFltRun.push(Number(fltExit) - Number(fltAf));
  const bf = beforeFork.get(id);
  if (bf !== undefined) childUp.push((Number(tAf) - bf) / 1000);
  run.push((Number(tExit) - Number(tAf)) / 1000);
  const d = doneAt.get(id);
  if (d !== undefined) reported.push((d - Number(tAf)) / 1000);
  const r = reapedAt.get(id);
  if (d !== undefined && r !== undefined) reaped.push((r - d) / 1000);
}
// The gap: from a reap to the next claim (the one that refills the slot).
const claimTimes = claimedAt.map((c) => c.t).sort((a, b) => a - b);
const gap: number[] = [];
let ci = 0;
for (const r of [...reapedAt.values()].sort((a, b) => a - b)) {
  while (ci < claimTimes.length && claimTimes[ci]! < r) ci++;
  if (ci < claimTimes.length) gap.push((claimTimes[ci]! - r) / 1000);
}

writeFileSync(`${out}.claims`, claimedAt.filter((c) => c.t0 !== null).map((c) => `${c.id} ${c.t} ${c.t0}\n`).join(''));
writeFileSync(
  out,
  JSON.stringify({
    jobs: done,
    wallMs,
    masterCpuS: (cpu.user + cpu.system) / 1e6,
    masterUserS: cpu.user / 1e6,
    masterSysS: cpu.system / 1e6,
    childCpuS,
    childUserS: (stat1.cutime - stat0.cutime) / 100,
    childSysS: (stat1.cstime - stat0.cstime) / 100,
    masterMinflt: stat1.minflt - stat0.minflt,
    childMinflt: stat1.cminflt - stat0.cminflt,
    elu: elu.utilization,
    claim: claimUs,
    emptyClaim: emptyClaimUs,
    fork: forkUs,
    forkCpu: forkCpuUs,
    childCpuUp,
    childCpuRun,
    childFltUp,
    childFltRun,
    complete: completeUs,
    waitForWork,
    nextEvent: nextEvents,
    childUp,
    run,
    reported,
    reaped,
    gap,
  }),
);
process.exit(0);

/** Page faults and CPU ticks of this process and of its reaped children (/proc/self/stat). */
function selfStat(): { minflt: number; cminflt: number; cutime: number; cstime: number } {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
  return { minflt: f[7]!, cminflt: f[8]!, cutime: f[13]!, cstime: f[14]! };
}
