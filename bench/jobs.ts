// Benchmark: `unixproc work` (a fork(2) per job on SQLite and on Redis, `--jobs-per-fork
// 100`, `--no-fork`) against BullMQ with a sandboxed processor (child processes it keeps
// and reuses), BullMQ with an in-process processor, node-resque's worker (in-process) and
// a naive worker that starts a new node per job with child_process.fork(), in one run, on
// three jobs: a no-op, 5 ms of CPU (a busy loop), and a no-op in a worker whose jobs module
// builds about 100 MiB of live JS objects when it loads (bench/apps/jobs-heap.ts). It prints:
//   - jobs/s at concurrency 1 and 2: N jobs are enqueued first (in one enqueueMany / bulk
//     add), then the worker is started; the clock runs from the worker's "ready" (its
//     jobs module loaded and its store connected: unixproc's worker.start log line, the
//     others print "ready") until the store counts N jobs done (polled every 10 ms with
//     one cheap read: SQLite's per-minute counts, Resque's stat:processed, BullMQ's
//     completed set). N is sized for --seconds per run; a run that is still going after
//     2 × --seconds + 3 s is cut there and its rate is what got done (marked "cut").
//   - enqueue-to-done latency p50/p99 at a steady --rate jobs/s for --latency-seconds
//     (after --warmup-seconds not counted), concurrency 2: each job gets its enqueue
//     time (CLOCK_MONOTONIC µs, taken just before the enqueue call) as an argument and
//     appends it with its own end time to a file;
//   - the private memory (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) of a
//     unixproc job child holding a Sleep job, forked from the 100 MiB master, against the
//     RSS of a child_process.fork() child (and a BullMQ sandbox child) running the same job;
//   - why: where a fork-per-job master and its children spend their time (bench/apps/
//     jobs-profile.ts runs the same JobWorker with timing wrappers put on from outside:
//     claim, fork, the child's start, the reports, complete, the reap, CPU time and page
//     faults on each side; also --no-fork, --jobs-per-fork 100 and paced runs), the floor
//     of a bare fork loop (jobs-forkloop.ts), a job child's steps timed inside the child
//     (jobs-child-steps.ts), with and without the child's paths warmed in the master
//     (jobs-warm-config.ts, a --config beforeFirstFork hook);
// then ratios unixproc ÷ each peer and PASS/MISS against the targets. The peers run with
// node's default flags (their best case); unixproc's processes with --single-threaded, as
// its CLI re-executes itself. CPU used by other processes during each run is printed
// (the machine is shared), and redis-server's CPU per job. Every process it
// starts (redis-server on a free port in a temp dir, the workers, their children) is
// stopped at the end and the temp dir removed; it checks, and fails if it had to kill.
//
// Run: npm run bench:jobs  (= npm run build && node --single-threaded dist/bench/jobs.js)
//      [--quick] [--seconds 3] [--latency-seconds 5] [--warmup-seconds 1] [--rate 100]
//      [--systems a,b,...] [--scenarios noop,cpu5,heap] [--concurrency 1,2]
//      [--no-profile] [--wait-quiet 60] [--json FILE]
// --quick: --seconds 1 --concurrency 2 --latency-seconds 2 --warmup-seconds 0.5, one small
//          profile and no BullMQ-sandbox memory figure (~2-3 min).
import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue as BullQueue } from 'bullmq';
import { Redis } from 'ioredis';
import { Queue as ResqueQueue } from 'node-resque';
import { Queue } from '../jobs/queue.js';
import { freePort, killLeftovers, machineBusy, median, now, sleep, start, track, trackedCount, tree, waitGone } from './lib-serve.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    'latency-seconds': { type: 'string' },
    'warmup-seconds': { type: 'string' },
    rate: { type: 'string', default: '100' },
    systems: { type: 'string' },
    scenarios: { type: 'string', default: 'noop,cpu5,heap' },
    concurrency: { type: 'string' },
    profile: { type: 'boolean', default: true },
    'no-profile': { type: 'boolean', default: false },
    'wait-quiet': { type: 'string' },
    json: { type: 'string' },
  },
});
const QUICK = flags.quick;
const SECONDS = Number(flags.seconds ?? (QUICK ? 1 : 3));
const LAT_SECONDS = Number(flags['latency-seconds'] ?? (QUICK ? 2 : 5));
const WARM_SECONDS = Number(flags['warmup-seconds'] ?? (QUICK ? 0.5 : 1));
const RATE = Number(flags.rate);
const PROFILE = flags.profile && !flags['no-profile'];
const WAIT_QUIET = Number(flags['wait-quiet'] ?? (QUICK ? 0 : 60));
const CONCURRENCY = (flags.concurrency ?? (QUICK ? '2' : '1,2')).split(',').map(Number);
for (const [k, v] of Object.entries({ SECONDS, LAT_SECONDS, WARM_SECONDS, RATE, WAIT_QUIET })) {
  if (!Number.isFinite(v) || v < 0 || (k !== 'WARM_SECONDS' && k !== 'WAIT_QUIET' && v === 0)) throw new Error(`bad --${k.toLowerCase()}: ${v}`);
}
for (const c of CONCURRENCY) if (!Number.isInteger(c) || c < 1) throw new Error(`bad --concurrency ${flags.concurrency}`);

// ---- what is measured ---------------------------------------------------------------------

type Scenario = 'noop' | 'cpu5' | 'heap';
const SCENARIOS: Record<Scenario, { label: string; module: 'noop' | 'heap'; job: string }> = {
  noop: { label: 'no-op', module: 'noop', job: 'Noop' },
  cpu5: { label: '5 ms CPU', module: 'noop', job: 'Cpu5' },
  heap: { label: 'no-op, 100 MiB heap', module: 'heap', job: 'Noop' },
};
const SCENARIO_LIST = flags.scenarios.split(',') as Scenario[];
for (const s of SCENARIO_LIST) if (!(s in SCENARIOS)) throw new Error(`unknown scenario ${s} (${Object.keys(SCENARIOS).join(', ')})`);

type StoreKind = 'sqlite' | 'redis' | 'bullmq' | 'resque';
interface SystemDef {
  label: string;
  ours: boolean;
  store: StoreKind;
  /** unixproc work flags beyond the common ones. */
  flags?: string[];
  /** Guessed jobs/s at concurrency 1 on the 2-CPU VM of bench/RESULTS.md, per scenario: sizes N of the first run. */
  guess: Record<Scenario, number>;
}
const SYSTEMS = {
  'unixproc-sqlite': { label: 'unixproc work, SQLite, fork per job', ours: true, store: 'sqlite', guess: { noop: 60, cpu5: 40, heap: 25 } },
  'unixproc-redis': { label: 'unixproc work, Redis, fork per job', ours: true, store: 'redis', guess: { noop: 60, cpu5: 40, heap: 25 } },
  'unixproc-sqlite-jpf': { label: 'unixproc work, SQLite, --jobs-per-fork 100', ours: true, store: 'sqlite', flags: ['--jobs-per-fork', '100'], guess: { noop: 1500, cpu5: 170, heap: 1500 } },
  'unixproc-redis-jpf': { label: 'unixproc work, Redis, --jobs-per-fork 100', ours: true, store: 'redis', flags: ['--jobs-per-fork', '100'], guess: { noop: 1500, cpu5: 170, heap: 1500 } },
  'unixproc-sqlite-nofork': { label: 'unixproc work, SQLite, --no-fork', ours: true, store: 'sqlite', flags: ['--no-fork'], guess: { noop: 2000, cpu5: 180, heap: 2000 } },
  'unixproc-redis-nofork': { label: 'unixproc work, Redis, --no-fork', ours: true, store: 'redis', flags: ['--no-fork'], guess: { noop: 2000, cpu5: 180, heap: 2000 } },
  'bullmq-sandbox': { label: 'BullMQ, sandboxed processor', ours: false, store: 'bullmq', guess: { noop: 800, cpu5: 150, heap: 800 } },
  bullmq: { label: 'BullMQ, in-process', ours: false, store: 'bullmq', guess: { noop: 2000, cpu5: 180, heap: 2000 } },
  resque: { label: 'node-resque worker', ours: false, store: 'resque', guess: { noop: 800, cpu5: 150, heap: 800 } },
  naive: { label: 'child_process.fork per job', ours: false, store: 'sqlite', guess: { noop: 6, cpu5: 6, heap: 1.5 } },
} satisfies Record<string, SystemDef>;
type SystemName = keyof typeof SYSTEMS;
const SYSTEM_LIST = (flags.systems ? flags.systems.split(',') : Object.keys(SYSTEMS)) as SystemName[];
for (const s of SYSTEM_LIST) if (!(s in SYSTEMS)) throw new Error(`unknown system ${s} (${Object.keys(SYSTEMS).join(', ')})`);
const sys = (name: SystemName): SystemDef => SYSTEMS[name];
const OURS = SYSTEM_LIST.filter((s) => sys(s).ours);
const PEERS = SYSTEM_LIST.filter((s) => !sys(s).ours);

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UNIXPROC_BIN = join(ROOT, 'bin/unixproc.js');
const APPS = fileURLToPath(new URL('./apps/', import.meta.url));
const JOBS_FILE = { noop: join(APPS, 'jobs-noop.js'), heap: join(APPS, 'jobs-heap.js') };
const TMP = mkdtempSync(join(os.tmpdir(), 'unixproc-bench-jobs-'));
const READY_TIMEOUT_MS = 60_000;
const QUEUE = 'bench';
/** node-resque's poll interval when its queue is empty (its default is 5000 ms). */
const RESQUE_TIMEOUT_MS = 5;

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const t00 = now();
const stamp = (): string => `[${((now() - t00) / 1000).toFixed(0).padStart(3)} s]`;
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);
const f0 = (x: number): string => x.toFixed(0);
const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** CPU ticks of a process and of its children it has reaped (utime stime cutime cstime). */
function ticksOf(pid: number | 'self'): number {
  try {
    const t = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

/** Busy CPU ticks of the whole machine so far (/proc/stat, without idle and iowait). */
function machineTicks(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!;
}

/**
 * What other processes take from the CPUs while a measurement runs: the machine's busy
 * time less this benchmark's (this process, redis-server, the worker's process tree and
 * the children it reaped), as a share of all CPUs over the wall time.
 */
function cpuMeter(head: number): () => number {
  const ours = (): number => ticksOf('self') + (redisProc?.child.pid ? ticksOf(redisProc.child.pid) : 0) + tree(head).reduce((n, p) => n + ticksOf(p), 0);
  const m0 = machineTicks();
  const o0 = ours();
  const t0 = now();
  return () => {
    const wall = (now() - t0) / 1000;
    return wall > 0 ? Math.max(0, machineTicks() - m0 - (ours() - o0)) / 100 / (wall * os.availableParallelism()) : 0;
  };
}
const othersShares: number[] = [];
const redisTicks = (): number => (redisProc?.child.pid ? ticksOf(redisProc.child.pid) : 0);

// ---- redis-server: ours, on a free port, in the temp dir -------------------------------------

let redisProc: { child: ChildProcess; exited: Promise<number | null> } | null = null;
let redisPort = 0;
let redis!: Redis;

async function startRedis(): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    redisPort = await freePort();
    const dir = join(TMP, 'redis');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    // No persistence: --save '' and no AOF (the store's speed, not the disk's).
    const p = start(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no', '--logfile', join(dir, 'redis.log')],
      { stdio: 'ignore' },
      'redis-server',
    );
    const deadline = now() + 15_000;
    let exited = false;
    void p.exited.then(() => (exited = true));
    while (now() < deadline && !exited) {
      const c = new Redis({ host: '127.0.0.1', port: redisPort, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on('error', () => {});
      try {
        await c.connect();
        if ((await c.ping()) === 'PONG') {
          redisProc = p;
          redis = c;
          return;
        }
      } catch {
        c.disconnect();
      }
      await sleep(50);
    }
    p.child.kill('SIGKILL');
    await p.exited;
  }
  throw new Error('redis-server would not start (is it installed? apt-get install redis-server)');
}

async function stopRedis(): Promise<void> {
  if (!redisProc) return;
  redis.disconnect();
  redisProc.child.kill('SIGTERM');
  const ok = await Promise.race([redisProc.exited.then(() => true), sleep(10_000).then(() => false)]);
  if (!ok) redisProc.child.kill('SIGKILL');
  redisProc = null;
}

const redisUrl = (): string => `redis://127.0.0.1:${redisPort}/0`;

// ---- stores: enqueue, count what is done, reset ----------------------------------------------

interface Store {
  url: string;
  enqueueMany(name: string, argsList: unknown[][]): Promise<void>;
  enqueue(name: string, args: unknown[]): Promise<void>;
  /** Jobs done (attempts ended) so far, with one cheap read. */
  processed(): Promise<number>;
  close(): Promise<void>;
}

let runSeq = 0;

async function openStore(kind: StoreKind): Promise<Store> {
  if (kind !== 'sqlite') await redis.flushall();
  switch (kind) {
    case 'sqlite': {
      const path = join(TMP, `run-${++runSeq}.db`);
      const url = `sqlite:${path}`;
      const q = new Queue(url);
      const backend = await q.store();
      return {
        url,
        async enqueueMany(name, argsList) {
          for (let i = 0; i < argsList.length; i += 5000) await q.enqueueMany(argsList.slice(i, i + 5000).map((args) => ({ name, args, options: { queue: QUEUE } })));
        },
        async enqueue(name, args) {
          await q.enqueue(name, args, { queue: QUEUE });
        },
        async processed() {
          // The per-minute counts: one small table, where stats() would count the jobs table.
          return (await backend.minutes!(0)).reduce((n, m) => n + m.done + m.failed, 0);
        },
        async close() {
          await q.close();
          for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
        },
      };
    }
    case 'redis': {
      const url = redisUrl();
      const q = new Queue(url);
      return {
        url,
        async enqueueMany(name, argsList) {
          for (let i = 0; i < argsList.length; i += 2000) await q.enqueueMany(argsList.slice(i, i + 2000).map((args) => ({ name, args, options: { queue: QUEUE } })));
        },
        async enqueue(name, args) {
          await q.enqueue(name, args, { queue: QUEUE });
        },
        processed: async () => Number((await redis.get('resque:stat:processed')) ?? 0),
        close: () => q.close(),
      };
    }
    case 'bullmq': {
      const q = new BullQueue(QUEUE, { connection: { host: '127.0.0.1', port: redisPort, maxRetriesPerRequest: null } });
      await q.waitUntilReady();
      return {
        url: redisUrl(),
        async enqueueMany(name, argsList) {
          for (let i = 0; i < argsList.length; i += 1000) await q.addBulk(argsList.slice(i, i + 1000).map((args) => ({ name, data: { args } })));
        },
        async enqueue(name, args) {
          await q.add(name, { args });
        },
        // BullMQ keeps completed jobs by default (removeOnComplete: false): the set is the count.
        processed: async () => (await redis.zcard(`bull:${QUEUE}:completed`)) + (await redis.zcard(`bull:${QUEUE}:failed`)),
        close: () => q.close(),
      };
    }
    case 'resque': {
      const q = new ResqueQueue({ connection: { pkg: 'ioredis', host: '127.0.0.1', port: redisPort, database: 0, namespace: 'resque' } }, {});
      q.on('error', (err) => log(`node-resque queue error: ${err}`));
      await q.connect();
      return {
        url: redisUrl(),
        async enqueueMany(name, argsList) {
          for (let i = 0; i < argsList.length; i += 2000) await Promise.all(argsList.slice(i, i + 2000).map((args) => q.enqueue(QUEUE, name, args)));
        },
        async enqueue(name, args) {
          await q.enqueue(QUEUE, name, args);
        },
        processed: async () => Number((await redis.get('resque:stat:processed')) ?? 0),
        close: () => q.end(),
      };
    }
  }
}

// ---- workers -------------------------------------------------------------------------------------

interface Running {
  pid: number;
  /** ms from spawn to ready. */
  startMs: number;
  stderr(): string;
  /**
   * unixproc: job children that hit the fork-child handler bug described in bench/RESULTS.md
   * (jobs/worker.ts dropMasterResourcesInChild throws "IOError: closed stream"): counted from
   * the log, as "an onForkChild handler failed in the child" lines (src/atfork.ts since
   * a31e37b) or, before it, as a child's copy of the master logging worker.stop.
   */
  strays(): number;
  stop(fast?: boolean): Promise<void>;
}

/** Spawns a worker and waits for its ready line (on stdout, or `readyOn` on stderr). */
async function spawnWorker(args: string[], what: string, readyOn: 'stdout' | 'stderr', readyText: string, stopSignal: NodeJS.Signals): Promise<Running> {
  const t0 = now();
  const { child, exited } = start(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }, what);
  let out = '';
  let err = '';
  let errLine = '';
  let strays = 0;
  let ready = false;
  let onReady: () => void = () => {};
  const readyP = new Promise<void>((res) => (onReady = res));
  const see = (): void => {
    if (!ready && (readyOn === 'stdout' ? out : err).includes(readyText)) {
      ready = true;
      onReady();
    }
  };
  child.stdout!.on('data', (d) => {
    out += d;
    see();
  });
  child.stderr!.on('data', (d) => {
    err += d;
    if (err.length > 200_000) err = err.slice(-100_000);
    errLine += d;
    const lines = errLine.split('\n');
    errLine = lines.pop()!;
    for (const l of lines) {
      if (l.includes('an onForkChild handler failed in the child') || (l.includes('"event":"worker.stop"') && !l.includes(`"pid":${child.pid},`))) strays++;
    }
    see();
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    readyP,
    exited.then((c) => Promise.reject(new Error(`${what} exited with ${c} before it was ready:\n${err.slice(-3000)}`))),
    new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} not ready after ${READY_TIMEOUT_MS} ms:\n${err.slice(-3000)}`)), READY_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  const startMs = now() - t0;
  const pid = child.pid!;
  return {
    pid,
    startMs,
    stderr: () => err,
    strays: () => strays,
    async stop(fast = false) {
      const pids = tree(pid);
      track(pids, what);
      if (child.exitCode === null && child.signalCode === null) child.kill(fast && stopSignal === 'SIGQUIT' ? 'SIGTERM' : stopSignal);
      const ok = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!ok) {
        log(`${what} did not stop within 15 s: SIGKILL`);
        for (const p of tree(pid)) process.kill(p, 'SIGKILL');
      }
      if (!(await waitGone(pids, 10_000))) throw new Error(`${what}: processes ${pids.join(' ')} still there after the stop`);
    },
  };
}

async function startWorker(name: SystemName, store: Store, concurrency: number, module: 'noop' | 'heap', extra: string[] = []): Promise<Running> {
  const d = sys(name);
  if (d.ours) {
    // --single-threaded as the CLI would re-exec itself with (same pid either way).
    return spawnWorker(
      ['--single-threaded', UNIXPROC_BIN, 'work', JOBS_FILE[module], '-b', store.url, '-q', QUEUE, '-n', String(concurrency), ...(d.flags ?? []), ...extra],
      d.label,
      'stderr',
      '"event":"worker.start"',
      'SIGQUIT',
    );
  }
  switch (name) {
    case 'bullmq-sandbox':
    case 'bullmq':
      return spawnWorker([join(APPS, 'jobs-bullmq-worker.js'), String(redisPort), name === 'bullmq' ? 'inproc' : 'sandbox', String(concurrency), module], d.label, 'stdout', 'ready', 'SIGTERM');
    case 'resque':
      return spawnWorker([join(APPS, 'jobs-resque-worker.js'), String(redisPort), String(concurrency), module, String(RESQUE_TIMEOUT_MS)], d.label, 'stdout', 'ready', 'SIGTERM');
    case 'naive':
      return spawnWorker([join(APPS, 'jobs-naive.js'), store.url, String(concurrency), module], d.label, 'stdout', 'ready', 'SIGTERM');
    default:
      throw new Error(`no starter for ${name}`);
  }
}

// ---- throughput ------------------------------------------------------------------------------------

interface Throughput {
  system: SystemName;
  scenario: Scenario;
  concurrency: number;
  n: number;
  done: number;
  seconds: number;
  jobsPerSec: number;
  /** Rate over the last 90% of the jobs (from the 10% mark), for start-up effects. */
  steadyPerSec: number;
  startMs: number;
  cut: boolean;
  /** Share of all CPUs other processes used during the run. */
  others: number;
  /** unixproc: job children whose fork-child handler failed (see Running.strays). */
  strays: number;
  /** redis-server's CPU ms per job done (Redis-backed systems). */
  redisCpuMsPerJob: number | null;
}
const throughputs: Throughput[] = [];
const tput = (s: SystemName, sc: Scenario, c: number): Throughput | undefined => throughputs.find((t) => t.system === s && t.scenario === sc && t.concurrency === c);

/**
 * N for about --seconds: from the same system's run at a lower concurrency when there is
 * one, else from the guess, scaled by how far the system's last run was from its guess
 * (the machine may be slower or faster than the guesses assume).
 */
function plannedN(name: SystemName, scenario: Scenario, concurrency: number): number {
  const prev = CONCURRENCY.filter((c) => c < concurrency).map((c) => tput(name, scenario, c)).find(Boolean);
  let rate: number;
  if (prev) rate = prev.jobsPerSec * Math.min(2, concurrency / prev.concurrency) * 0.9;
  else {
    const last = throughputs.filter((t) => t.system === name).at(-1);
    const scale = last ? last.jobsPerSec / (sys(name).guess[last.scenario] * Math.min(2, last.concurrency)) : 1;
    rate = sys(name).guess[scenario] * Math.min(2, concurrency) * Math.min(2, Math.max(0.2, scale));
  }
  return Math.max(10, Math.round(rate * SECONDS));
}

async function measureThroughput(name: SystemName, scenario: Scenario, concurrency: number): Promise<Throughput> {
  const sc = SCENARIOS[scenario];
  const n = plannedN(name, scenario, concurrency);
  const store = await openStore(sys(name).store);
  try {
    await store.enqueueMany(sc.job, Array.from({ length: n }, () => []));
    const w = await startWorker(name, store, concurrency, sc.module);
    try {
      const meter = cpuMeter(w.pid);
      const redis0 = redisTicks();
      const t0 = now();
      const cutAt = t0 + (2 * SECONDS + 3) * 1000;
      let done = 0;
      let t10: number | null = null;
      let n10 = 0;
      while (done < n && now() < cutAt) {
        await sleep(10);
        done = await store.processed();
        if (t10 === null && done >= n / 10) {
          t10 = now();
          n10 = done;
        }
      }
      const t1 = now();
      const others = meter();
      othersShares.push(others);
      const seconds = (t1 - t0) / 1000;
      const r: Throughput = {
        system: name,
        scenario,
        concurrency,
        n,
        done,
        seconds,
        jobsPerSec: done / seconds,
        steadyPerSec: t10 !== null && t1 > t10 ? (done - n10) / ((t1 - t10) / 1000) : done / seconds,
        startMs: w.startMs,
        cut: done < n,
        others,
        strays: w.strays(),
        redisCpuMsPerJob: sys(name).store === 'sqlite' || done === 0 ? null : ((redisTicks() - redis0) * 10) / done,
      };
      log(
        `${stamp()} ${sc.label}, c=${concurrency}, ${sys(name).label}: ${done}/${n} jobs in ${f2(seconds)} s = ${f0(r.jobsPerSec)} jobs/s` +
          ` (from the 10% mark ${f0(r.steadyPerSec)}); ready ${f0(w.startMs)} ms after spawn; others used ${f0(100 * others)}% of the CPUs${r.strays ? `; ${r.strays} job children hit the fork-child handler error` : ''}${r.cut ? '; CUT at the deadline' : ''}`,
      );
      return r;
    } finally {
      await w.stop(true);
    }
  } finally {
    await store.close();
  }
}

// ---- latency -------------------------------------------------------------------------------------------

interface Latency {
  system: SystemName;
  enqueued: number;
  done: number;
  p50: number;
  p99: number;
  max: number;
  others: number;
}
const latencies: Latency[] = [];
const LAT_CONCURRENCY = 2;

async function measureLatency(name: SystemName): Promise<Latency> {
  const store = await openStore(sys(name).store);
  const file = join(TMP, `latency-${name}.log`);
  writeFileSync(file, '');
  try {
    const w = await startWorker(name, store, LAT_CONCURRENCY, 'noop');
    try {
      await sleep(200);
      const meter = cpuMeter(w.pid);
      const total = Math.round((WARM_SECONDS + LAT_SECONDS) * RATE);
      const warm = Math.round(WARM_SECONDS * RATE);
      const start0 = now();
      let warmFrom = 0;
      for (let i = 0; i < total; i++) {
        const due = start0 + (i * 1000) / RATE;
        const wait = due - now();
        if (wait > 0) await sleep(wait);
        const t = monoUs();
        if (i === warm) warmFrom = t;
        await store.enqueue('Stamp', [t, file]);
      }
      // Let the backlog drain (a worker that cannot keep up is cut after a grace period).
      const deadline = now() + 5000;
      while ((await store.processed()) < total && now() < deadline) await sleep(20);
      const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').map(Number) as [number, number]);
      const lat = lines.filter(([t0]) => t0 >= warmFrom).map(([t0, t1]) => (t1 - t0) / 1000);
      const others = meter();
      othersShares.push(others);
      const r: Latency = { system: name, enqueued: total - warm, done: lat.length, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: Math.max(...lat), others };
      log(`${stamp()} latency at ${RATE} jobs/s, ${sys(name).label}: p50 ${f2(r.p50)} ms, p99 ${f2(r.p99)} ms, max ${f1(r.max)} ms; ${r.done}/${r.enqueued} done; others used ${f0(100 * others)}% of the CPUs`);
      return r;
    } finally {
      await w.stop(true);
    }
  } finally {
    await store.close();
  }
}

// ---- memory of a job child ----------------------------------------------------------------------------

interface MemRow {
  what: string;
  pid: number;
  privMiB: number;
  rssMiB: number;
  pssMiB: number;
}
const memRows: MemRow[] = [];

function memOf(pid: number): { priv: number; rss: number; pss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (f: string): number => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { priv: (kib('Private_Clean') + kib('Private_Dirty')) / 1024, rss: kib('Rss') / 1024, pss: kib('Pss') / 1024 };
}

/** Starts the worker, gives it a Sleep job, and reads the memory of the process that runs it (and of the worker's head). */
async function measureMemory(name: SystemName, module: 'noop' | 'heap', label: string, extra: string[] = []): Promise<void> {
  const store = await openStore(sys(name).store);
  const file = join(TMP, `memory-${name}-${module}${extra.length ? '-x' : ''}.log`);
  writeFileSync(file, '');
  try {
    const w = await startWorker(name, store, 1, module, extra);
    try {
      await sleep(300);
      await store.enqueue('Sleep', [4000, file]);
      const deadline = now() + 30_000;
      let pid = 0;
      while (!pid && now() < deadline) {
        pid = Number(readFileSync(file, 'utf8').split('\n')[0] || 0);
        if (!pid) await sleep(10);
      }
      if (!pid) throw new Error(`${label}: the Sleep job did not start within 30 s`);
      track([pid], `${label} job process`);
      await sleep(500); // the job is waiting in its timer now
      const child = memOf(pid);
      const head = memOf(w.pid);
      memRows.push({ what: `${label}: the process running the job${pid === w.pid ? ' (the worker itself)' : ''}`, pid, privMiB: child.priv, rssMiB: child.rss, pssMiB: child.pss });
      if (pid !== w.pid) memRows.push({ what: `${label}: the worker's master / main process`, pid: w.pid, privMiB: head.priv, rssMiB: head.rss, pssMiB: head.pss });
      log(`${stamp()} memory, ${label}: job process ${pid} private ${f1(child.priv)} MiB, RSS ${f1(child.rss)} MiB; head ${w.pid} RSS ${f1(head.rss)} MiB`);
    } finally {
      await w.stop(true);
    }
  } finally {
    await store.close();
  }
}

// ---- where a fork-per-job master's time goes ---------------------------------------------------------

interface Profile {
  label: string;
  mode: 'throughput' | 'latency';
  jobs: number;
  wallMs: number;
  masterCpuS: number;
  masterUserS: number;
  masterSysS: number;
  childCpuS: number;
  childUserS: number;
  childSysS: number;
  masterMinflt: number;
  childMinflt: number;
  elu: number;
  /** redis-server's CPU seconds during the run (Redis runs). */
  redisCpuS?: number;
  claim: number[];
  emptyClaim: number[];
  fork: number[];
  forkCpu: number[];
  childCpuUp: number[];
  childCpuRun: number[];
  childFltUp: number[];
  childFltRun: number[];
  complete: number[];
  waitForWork: number[];
  nextEvent: number[];
  childUp: number[];
  run: number[];
  reported: number[];
  reaped: number[];
  gap: number[];
  /** Latency mode: enqueue -> claim returned, claim -> child's afterFork, afterFork -> job end. */
  latency?: { enqToClaim: number[]; claimToChild: number[]; childToEnd: number[] };
}
const profiles: Profile[] = [];

interface ForkLoop {
  module: 'noop' | 'heap';
  n: number;
  perSec: number;
  forkCallMs: number;
  masterCpuMs: number;
  masterSysMs: number;
  childCpuMs: number;
  childSysMs: number;
  masterFaults: number;
  childFaults: number;
  rssMiB: number;
}
const forkLoops: ForkLoop[] = [];

interface ChildSteps {
  mode: 'cold' | 'warm';
  n: number;
  steps: Array<{ step: string; cpuMs: number; faults: number }>;
}
const childSteps: ChildSteps[] = [];

/** A job child's steps, timed inside the child (bench/apps/jobs-child-steps.ts). */
async function childStepsRun(mode: 'cold' | 'warm', n: number): Promise<void> {
  const { child, exited } = start(process.execPath, ['--single-threaded', join(APPS, 'jobs-child-steps.js'), mode, String(n)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TMPDIR: TMP } }, 'child steps');
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code = await exited;
  if (code !== 0) throw new Error(`child steps (${mode}) exited with ${code}`);
  childSteps.push(JSON.parse(out) as ChildSteps);
  log(`${stamp()} child steps, ${mode}: ${childSteps.at(-1)!.steps.map((s) => `${s.step} ${f2(s.cpuMs)} ms`).join(', ')}`);
}

/** fork(() => {}) + wait2, serially, from a master with the module loaded: the floor on this machine. */
async function forkLoop(module: 'noop' | 'heap', n: number): Promise<void> {
  const { child, exited } = start(process.execPath, ['--single-threaded', join(APPS, 'jobs-forkloop.js'), module, String(n)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] }, 'fork loop');
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code = await exited;
  if (code !== 0) throw new Error(`fork loop (${module}) exited with ${code}`);
  const r = JSON.parse(out) as ForkLoop;
  forkLoops.push(r);
  log(`${stamp()} bare fork loop, ${module}: ${f0(r.perSec)} forks/s, fork() ${f2(r.forkCallMs)} ms, master CPU ${f2(r.masterCpuMs)} ms/fork, child CPU ${f2(r.childCpuMs)} ms`);
}

/** jobsPerFork 0: --no-fork. */
async function profileRun(storeKind: 'sqlite' | 'redis', module: 'noop' | 'heap', mode: 'throughput' | 'latency', n: number, warm = false, jobsPerFork = 1): Promise<void> {
  const how = jobsPerFork === 0 ? ', --no-fork' : jobsPerFork > 1 ? `, --jobs-per-fork ${jobsPerFork}` : '';
  const label = `${storeKind === 'sqlite' ? 'SQLite' : 'Redis'}${how}, ${module === 'heap' ? '100 MiB heap' : 'no-op'}, c=2, ${mode === 'throughput' ? `${n} jobs queued first` : `${RATE} jobs/s paced`}${warm ? ', child path warmed in the master' : ''}`;
  const store = await openStore(storeKind);
  const out = join(TMP, `profile-${storeKind}-${module}-${mode}-${jobsPerFork}${warm ? '-warm' : ''}.json`);
  const stampFile = join(TMP, `profile-${storeKind}-${mode}.stamps`);
  writeFileSync(stampFile, '');
  try {
    if (mode === 'throughput') await store.enqueueMany('Noop', Array.from({ length: n }, () => []));
    const w = await spawnWorker(['--single-threaded', join(APPS, 'jobs-profile.js'), store.url, '2', module, String(n), out, String(jobsPerFork), ...(warm ? ['warm'] : [])], `profiled worker (${label})`, 'stderr', '"event":"worker.start"', 'SIGTERM');
    if (mode === 'latency') {
      await sleep(200);
      const t0 = now();
      for (let i = 0; i < n; i++) {
        const wait = t0 + (i * 1000) / RATE - now();
        if (wait > 0) await sleep(wait);
        await store.enqueue('Stamp', [monoUs(), stampFile]);
      }
    }
    const redis0 = redisTicks();
    const deadline = now() + 120_000;
    while (!existsSync(out) && now() < deadline) await sleep(50);
    const redisCpuS = (redisTicks() - redis0) / 100;
    await w.stop();
    if (!existsSync(out)) throw new Error(`profile ${label}: no result within 120 s:\n${w.stderr().slice(-2000)}`);
    const p = JSON.parse(readFileSync(out, 'utf8')) as Profile;
    p.label = label;
    p.mode = mode;
    if (storeKind === 'redis') p.redisCpuS = redisCpuS;
    if (mode === 'latency') p.latency = latencyParts(out, stampFile);
    profiles.push(p);
    log(`${stamp()} profile ${label}: ${p.jobs} jobs in ${f0(p.wallMs)} ms, master CPU ${f2(p.masterCpuS)} s, children CPU ${f2(p.childCpuS)} s`);
  } finally {
    await store.close();
  }
}

/** Splits each Stamp job's latency with the profile's claim times and child start times (no child with --no-fork). */
function latencyParts(out: string, stampFile: string): { enqToClaim: number[]; claimToChild: number[]; childToEnd: number[] } {
  const afterFork = new Map<string, number>();
  for (const l of readFileSync(`${out}.children`, 'utf8').split('\n')) {
    const [id, tAf] = l.split(' ');
    if (id && tAf) afterFork.set(id, Number(tAf));
  }
  const ends = new Map<number, number>();
  for (const l of readFileSync(stampFile, 'utf8').split('\n')) {
    if (!l) continue;
    const [t0, t1] = l.split(' ').map(Number) as [number, number];
    ends.set(t0, t1);
  }
  const enqToClaim: number[] = [];
  const claimToChild: number[] = [];
  const childToEnd: number[] = [];
  for (const l of readFileSync(`${out}.claims`, 'utf8').split('\n')) {
    if (!l) continue;
    const [id, tc, t0] = l.split(' ') as [string, string, string];
    enqToClaim.push((Number(tc) - Number(t0)) / 1000);
    const af = afterFork.get(id);
    const end = ends.get(Number(t0));
    if (af !== undefined) claimToChild.push((af - Number(tc)) / 1000);
    if (end !== undefined) childToEnd.push((end - (af ?? Number(tc))) / 1000);
  }
  return { enqToClaim, claimToChild, childToEnd };
}

// ---- clean-up ------------------------------------------------------------------------------------------

let cleaned = false;
async function cleanup(): Promise<string[]> {
  if (cleaned) return [];
  cleaned = true;
  const problems: string[] = [];
  try {
    await stopRedis();
  } catch (err) {
    problems.push(`redis-server stop: ${(err as Error).message}`);
  }
  await killLeftovers(problems);
  return problems;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping everything`);
    void cleanup().finally(() => {
      rmSync(TMP, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

// ---- report ---------------------------------------------------------------------------------------------

interface Verdict {
  ok: boolean;
  text: string;
}

function report(): { text: string; verdicts: Verdict[] } {
  const out: string[] = [];
  const cols = SCENARIO_LIST.flatMap((sc) => CONCURRENCY.map((c) => ({ sc, c })));
  const cell = (t: Throughput | undefined): string => (t ? `${f0(t.jobsPerSec)}${t.cut ? ' (cut)' : ''}` : '-');

  if (throughputs.length) {
    out.push(`#### Jobs/s (N enqueued first; from the worker's ready to N done)`, '');
    out.push(`| system | ${cols.map(({ sc, c }) => `${SCENARIOS[sc].label}, c=${c}`).join(' | ')} | ready after spawn, ms (${SCENARIO_LIST.join(' / ')}, c=${CONCURRENCY[0]}) |`);
    out.push(`| --- | ${cols.map(() => '---:').join(' | ')} | ---: |`);
    for (const s of SYSTEM_LIST) {
      out.push(`| ${sys(s).label} | ${cols.map(({ sc, c }) => cell(tput(s, sc, c))).join(' | ')} | ${SCENARIO_LIST.map((sc) => (tput(s, sc, CONCURRENCY[0]!) ? f0(tput(s, sc, CONCURRENCY[0]!)!.startMs) : '-')).join(' / ')} |`);
    }
    out.push('', `CPUs used by other processes during the throughput runs: median ${f0(100 * median(throughputs.map((t) => t.others)))}%, max ${f0(100 * Math.max(...throughputs.map((t) => t.others)))}% (machine busy less this benchmark's processes).`);
    const rc = throughputs.filter((t) => t.redisCpuMsPerJob !== null && t.scenario === 'noop');
    if (rc.length) out.push('', `redis-server CPU ms per no-op job: ${rc.map((t) => `${sys(t.system).label} c=${t.concurrency} ${f2(t.redisCpuMsPerJob!)}`).join('; ')}.`);
    out.push('', `N per run and rate from the 10% mark (start-up effects left out): ${SYSTEM_LIST.map((s) => `${sys(s).label}: ${cols.map(({ sc, c }) => { const t = tput(s, sc, c); return t ? `${t.n}→${f0(t.steadyPerSec)}` : '-'; }).join(', ')}`).join('; ')}`);
    out.push('', `#### Jobs/s ratios, unixproc ÷ peer (above 1: unixproc is faster)`, '');
    out.push(`| unixproc ÷ peer | ${cols.map(({ sc, c }) => `${SCENARIOS[sc].label}, c=${c}`).join(' | ')} |`);
    out.push(`| --- | ${cols.map(() => '---:').join(' | ')} |`);
    for (const u of OURS) for (const p of PEERS) {
      out.push(`| ${sys(u).label} ÷ ${sys(p).label} | ${cols.map(({ sc, c }) => { const a = tput(u, sc, c); const b = tput(p, sc, c); return a && b ? `${f2(a.jobsPerSec / b.jobsPerSec)}×` : '-'; }).join(' | ')} |`);
    }
  }

  if (latencies.length) {
    out.push('', `#### Enqueue-to-done latency at ${RATE} jobs/s for ${LAT_SECONDS} s (after ${WARM_SECONDS} s not counted), no-op job, concurrency ${LAT_CONCURRENCY}`, '');
    out.push('| system | p50 ms | p99 ms | max ms | done / enqueued | CPUs used by other processes |', '| --- | ---: | ---: | ---: | ---: | ---: |');
    const ms = (x: number, f: (x: number) => string): string => (Number.isFinite(x) ? f(x) : '-');
    for (const l of latencies) out.push(`| ${sys(l.system).label} | ${ms(l.p50, f2)} | ${ms(l.p99, f2)} | ${ms(l.max, f1)} | ${l.done} / ${l.enqueued}${l.done < l.enqueued ? ' (cannot keep up)' : ''} | ${f0(100 * l.others)}% |`);
    out.push('', '| unixproc ÷ peer (below 1: unixproc is quicker) | p50 | p99 |', '| --- | ---: | ---: |');
    for (const u of OURS) for (const p of PEERS) {
      const a = latencies.find((l) => l.system === u);
      const b = latencies.find((l) => l.system === p);
      if (a && b && b.done > 0) out.push(`| ${sys(u).label} ÷ ${sys(p).label} | ${f2(a.p50 / b.p50)}× | ${f2(a.p99 / b.p99)}× |`);
    }
  }

  if (memRows.length) {
    out.push('', '#### Memory of the process running a Sleep job (MiB, /proc/PID/smaps_rollup)', '');
    out.push('| process | private (Private_Clean + Private_Dirty) | RSS | PSS |', '| --- | ---: | ---: | ---: |');
    for (const m of memRows) out.push(`| ${m.what} | ${f1(m.privMiB)} | ${f1(m.rssMiB)} | ${f1(m.pssMiB)} |`);
  }

  if (profiles.length) {
    const pm = (xs: number[]): string => (xs.length ? `${f2(median(xs))} / ${f2(quantile(xs, 0.9))}` : '-');
    out.push('', '#### Where a fork-per-job master and its children spend their time (bench/apps/jobs-profile.ts: the same JobWorker, timed from outside)', '');
    out.push('Wall time per job, ms, median / p90:', '');
    out.push(
      '| run | jobs/s | claim() | start(): pipe + fork() | beforeFork → child\'s afterFork | child: afterFork → exit event | child\'s afterFork → master reads "done" | complete() | "done" read → reaped | reaped → next claim | empty claims: n, median ms | waitForWork: n, median ms |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const p of profiles) {
      out.push(
        `| ${p.label} | ${f0((p.jobs * 1000) / p.wallMs)} | ${pm(p.claim)} | ${pm(p.fork)} | ${pm(p.childUp)} | ${pm(p.run)} | ${pm(p.reported)} | ${pm(p.complete)} | ${pm(p.reaped)} | ${pm(p.gap)} | ` +
          `${p.emptyClaim.length}, ${p.emptyClaim.length ? f2(median(p.emptyClaim)) : '-'} | ${p.waitForWork.length}, ${p.waitForWork.length ? f2(median(p.waitForWork)) : '-'} |`,
      );
    }
    out.push('', 'CPU time, ms (user + sys), and page faults (the master per job, a child per child):', '');
    out.push(
      '| run | master per job | master: in start() (pipe + fork(2)), median | master: the rest (claim, complete, reports, reap) | child, all (user / sys) | child: fork → afterFork, median | child: afterFork → exit event, median | child: after the exit event (exit(2), address space torn down) | page faults: master per job / child up to afterFork / child after | master event loop busy | redis-server CPU ms/job |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const p of profiles) {
      const m = (p.masterCpuS * 1000) / p.jobs;
      const forkCpu = p.forkCpu.length ? p.forkCpu.reduce((a, b) => a + b, 0) / p.jobs : 0;
      const children = p.childCpuUp.length;
      const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
      const c = children ? (p.childCpuS * 1000) / children : NaN;
      const childCols = children
        ? `${f2(c)} (${f2((p.childUserS * 1000) / children)} / ${f2((p.childSysS * 1000) / children)}) | ${f2(median(p.childCpuUp))} | ${f2(median(p.childCpuRun))} | ${f2(c - mean(p.childCpuUp) - mean(p.childCpuRun))}`
        : '- | - | - | -';
      out.push(
        `| ${p.label} | ${f2(m)} | ${p.forkCpu.length ? f2(median(p.forkCpu)) : '-'} | ${f2(m - forkCpu)} | ${childCols} | ` +
          `${f0(p.masterMinflt / p.jobs)} / ${children ? f0(median(p.childFltUp)) : '-'} / ${children ? f0(median(p.childFltRun)) : '-'} | ${f0(100 * p.elu)}% | ${p.redisCpuS !== undefined ? f2((p.redisCpuS * 1000) / p.jobs) : '-'} |`,
      );
    }
    const lp = profiles.filter((p) => p.latency);
    if (lp.length) {
      out.push('', '| paced run: latency split (ms, median / p90) | enqueue → claim returns | claim → child runs (afterFork) | child runs (--no-fork: claim) → job ends |', '| --- | ---: | ---: | ---: |');
      for (const p of lp) out.push(`| ${p.label} | ${pm(p.latency!.enqToClaim)} | ${pm(p.latency!.claimToChild)} | ${pm(p.latency!.childToEnd)} |`);
    }
  }
  if (forkLoops.length) {
    out.push('', '#### The floor: fork(() => {}) + wait2 in a loop, from a master with the jobs module loaded (bench/apps/jobs-forkloop.ts)', '');
    out.push('| master | RSS MiB | forks/s | fork() call, median ms | master CPU ms/fork (sys) | child CPU ms/fork (sys) | page faults per fork: master / child |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const l of forkLoops) out.push(`| ${l.module === 'heap' ? '100 MiB heap' : 'no-op module'} | ${f0(l.rssMiB)} | ${f0(l.perSec)} | ${f2(l.forkCallMs)} | ${f2(l.masterCpuMs)} (${f2(l.masterSysMs)}) | ${f2(l.childCpuMs)} (${f2(l.childSysMs)}) | ${f0(l.masterFaults)} / ${f0(l.childFaults)} |`);
  }
  if (childSteps.length) {
    out.push('', "#### A job child's steps, timed inside the child (bench/apps/jobs-child-steps.ts; CPU ms since the fork and page faults, median of each step)", '');
    out.push(`| step | ${childSteps.map((c) => `${c.mode === 'warm' ? 'paths warmed in the master' : 'as the worker forks today'}: CPU ms, faults`).join(' | ')} |`, `| --- | ${childSteps.map(() => '---:').join(' | ')} |`);
    for (let k = 0; k < childSteps[0]!.steps.length; k++) {
      out.push(`| ${childSteps[0]!.steps[k]!.step} | ${childSteps.map((c) => `${f2(c.steps[k]!.cpuMs)}, ${c.steps[k]!.faults}`).join(' | ')} |`);
    }
    out.push(`| total to the exit event | ${childSteps.map((c) => f2(c.steps.reduce((n, s) => n + s.cpuMs, 0))).join(' | ')} |`);
  }
  const strayRuns = throughputs.filter((t) => t.strays > 0);
  if (strayRuns.length) {
    const forked = throughputs.filter((t) => sys(t.system).ours && !sys(t.system).flags?.includes('--no-fork'));
    out.push('', `Job children whose fork-child handler failed ("IOError: closed stream" in jobs/worker.ts dropMasterResourcesInChild): ${strayRuns.reduce((n, t) => n + t.strays, 0)}, in ${strayRuns.length} of ${forked.length} forking runs (${strayRuns.map((t) => `${t.system} ${t.scenario} c=${t.concurrency}: ${t.strays} of ${t.done} jobs`).join(', ')}).`);
  }

  // ---- targets
  const verdicts: Verdict[] = [];
  const verdict = (ok: boolean, text: string): void => void verdicts.push({ ok, text });
  const rate = (s: SystemName, sc: Scenario, c: number): number | null => tput(s, sc, c)?.jobsPerSec ?? null;
  for (const s of ['unixproc-sqlite', 'unixproc-redis'] as const) {
    const L = sys(s).label;
    const a = rate(s, 'noop', 2);
    if (a !== null) verdict(a >= 500, `${L}: ≥ 500 no-op jobs/s at concurrency 2: ${f0(a)}`);
    const h = rate(s, 'heap', 2);
    if (h !== null) verdict(h >= 200, `${L}: ≥ 200 no-op jobs/s at concurrency 2 with the 100 MiB heap: ${f0(h)}`);
    for (const sc of ['noop', 'heap'] as const) {
      const b = rate('naive', sc, 2);
      const u = rate(s, sc, 2);
      if (u !== null && b !== null) verdict(u >= 40 * b, `${L}: ≥ 40× child_process.fork per job (${SCENARIOS[sc].label}, c=2): ${f0(u)} vs ${f1(b)} jobs/s = ${f0(u / b)}×`);
    }
    for (const c of CONCURRENCY) {
      const u = rate(s, 'cpu5', c);
      const b = rate('bullmq-sandbox', 'cpu5', c);
      if (u !== null && b !== null) verdict(u >= b, `${L}: 5 ms job at least as fast as BullMQ sandboxed (c=${c}): ${f0(u)} vs ${f0(b)} jobs/s = ${f2(u / b)}×`);
    }
    const l = latencies.find((x) => x.system === s);
    if (l) {
      verdict(l.p50 <= 5, `${L}: enqueue-to-done p50 ≤ 5 ms at ${RATE} jobs/s: ${f2(l.p50)} ms`);
      verdict(l.p99 <= 15, `${L}: enqueue-to-done p99 ≤ 15 ms at ${RATE} jobs/s: ${f2(l.p99)} ms`);
    }
  }
  for (const s of ['unixproc-sqlite-jpf', 'unixproc-redis-jpf', 'unixproc-sqlite-nofork', 'unixproc-redis-nofork'] as const) {
    for (const c of CONCURRENCY) {
      const u = rate(s, 'noop', c);
      const b = rate('bullmq', 'noop', c);
      if (u !== null && b !== null) verdict(u >= b, `${sys(s).label}: no-op jobs/s at least BullMQ in-process (c=${c}): ${f0(u)} vs ${f0(b)} = ${f2(u / b)}×`);
    }
  }
  const child = memRows.find((m) => m.what.startsWith('unixproc, 100 MiB heap master: the process running the job'));
  if (child) verdict(child.privMiB <= 2, `a unixproc job child (100 MiB heap master) adds ≤ 2 MiB of private memory: ${f2(child.privMiB)} MiB`);
  const naiveChild = memRows.find((m) => m.what.startsWith('child_process.fork per job, 100 MiB heap: the process running the job'));
  if (child && naiveChild) out.push('', `Job child: unixproc ${f1(child.privMiB)} MiB private against child_process.fork's ${f1(naiveChild.rssMiB)} MiB RSS (${f0(naiveChild.rssMiB / child.privMiB)}× less).`);
  out.push('', 'Targets:', ...verdicts.map((v) => `- ${v.ok ? 'PASS' : 'MISS'}: ${v.text}`));
  return { text: out.join('\n'), verdicts };
}

// ---- main ---------------------------------------------------------------------------------------------------

const cpuModel = os.cpus()[0]?.model ?? '?';
log(
  `bench/jobs: ${os.availableParallelism()} CPUs (${cpuModel}), ${f1(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}; ` +
    `${SECONDS} s per throughput run, latency ${WARM_SECONDS} + ${LAT_SECONDS} s at ${RATE} jobs/s; temp ${TMP}`,
);
let busyBefore = await machineBusy(2000);
for (const until = now() + WAIT_QUIET * 1000; busyBefore > 0.1 && now() < until; ) {
  log(`machine ${f0(100 * busyBefore)}% busy with other processes: waiting for it to quieten`);
  await sleep(3000);
  busyBefore = await machineBusy(2000);
}
const loadBefore = os.loadavg();
log(`machine busy before the run (other processes): ${f0(100 * busyBefore)}% of all CPUs over 2 s; load average ${loadBefore.map(f2).join(' ')}`);
if (busyBefore > 0.1) log('WARNING: the machine is not quiet; the figures below are skewed by the other load');

let failure: unknown = null;
const startedAt = new Date();
try {
  await startRedis();
  log(`${stamp()} redis-server ${redisPort} up`);
  for (const sc of SCENARIO_LIST) for (const s of SYSTEM_LIST) for (const c of CONCURRENCY) throughputs.push(await measureThroughput(s, sc, c));
  for (const s of SYSTEM_LIST) latencies.push(await measureLatency(s));
  if (SYSTEM_LIST.includes('unixproc-sqlite')) {
    await measureMemory('unixproc-sqlite', 'heap', 'unixproc, 100 MiB heap master');
    await measureMemory('unixproc-sqlite', 'heap', 'unixproc, 100 MiB heap master, child path warmed (--config jobs-warm-config)', ['-c', join(APPS, 'jobs-warm-config.js')]);
    await measureMemory('unixproc-sqlite', 'noop', 'unixproc, no-op module master');
  }
  if (SYSTEM_LIST.includes('naive')) await measureMemory('naive', 'heap', 'child_process.fork per job, 100 MiB heap');
  if (SYSTEM_LIST.includes('bullmq-sandbox') && !QUICK) await measureMemory('bullmq-sandbox', 'heap', 'BullMQ sandbox, 100 MiB heap');
  if (PROFILE) {
    // Sized from the measured fork-per-job rates: about 4 s each.
    const r = (s: SystemName, sc: Scenario, fallback: number): number => Math.max(100, Math.round(4 * (tput(s, sc, 2)?.jobsPerSec ?? fallback)));
    await forkLoop('noop', QUICK ? 100 : 300);
    await forkLoop('heap', QUICK ? 50 : 150);
    await childStepsRun('cold', QUICK ? 30 : 100);
    await childStepsRun('warm', QUICK ? 30 : 100);
    await profileRun('sqlite', 'noop', 'throughput', QUICK ? 300 : r('unixproc-sqlite', 'noop', 150));
    if (!QUICK) {
      await profileRun('sqlite', 'noop', 'throughput', r('unixproc-sqlite', 'noop', 150), true);
      await profileRun('redis', 'noop', 'throughput', r('unixproc-redis', 'noop', 150));
      await profileRun('sqlite', 'heap', 'throughput', r('unixproc-sqlite', 'heap', 60));
      await profileRun('sqlite', 'noop', 'latency', RATE * 4);
      await profileRun('redis', 'noop', 'latency', RATE * 4);
      await profileRun('sqlite', 'noop', 'latency', RATE * 4, false, 0);
      await profileRun('redis', 'noop', 'latency', RATE * 4, false, 0);
      const r2 = (s: SystemName, fallback: number): number => Math.max(500, Math.round(3 * (tput(s, 'noop', 2)?.jobsPerSec ?? fallback)));
      await profileRun('sqlite', 'noop', 'throughput', r2('unixproc-sqlite-nofork', 1000), false, 0);
      await profileRun('redis', 'noop', 'throughput', r2('unixproc-redis-nofork', 1000), false, 0);
      await profileRun('redis', 'noop', 'throughput', r2('unixproc-redis-jpf', 500), false, 100);
    }
  }
} catch (err) {
  failure = err;
}
const problems = await cleanup();
const total = (now() - t00) / 1000;
const { text, verdicts } = report();
process.stdout.write(
  `bench/jobs: ${os.availableParallelism()} CPUs (${cpuModel}), Node ${process.version}, ${startedAt.toISOString()}; ` +
    `CPU busy before the run (other processes) ${f0(100 * busyBefore)}%, load average ${loadBefore.map(f2).join(' ')}\n\n${text}\n\n` +
    `Whole run ${f0(total)} s; ${trackedCount()} processes seen, ${problems.length ? 'NOT all gone' : 'all gone at the end'}; ${verdicts.filter((v) => !v.ok).length} of ${verdicts.length} target(s) missed.\n`,
);
if (flags.json) writeFileSync(flags.json, `${JSON.stringify({ date: startedAt.toISOString(), cpus: os.availableParallelism(), cpuModel, node: process.version, flags, busyBefore, loadBefore, throughputs, latencies, memRows, profiles, forkLoops, childSteps }, null, 2)}\n`);
for (const p of problems) log(`PROBLEM: ${p}`);
if (failure) log(`FAILED: ${(failure as Error)?.stack ?? failure}\nlogs kept in ${TMP}`);
else if (!problems.length) rmSync(TMP, { recursive: true, force: true });
if (failure || problems.length) process.exitCode = 1;
