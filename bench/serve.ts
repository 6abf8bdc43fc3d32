// Benchmark: `unixproc serve` against node:cluster (default scheduling) and PM2 cluster
// mode, in one run, with the same number of workers, on the hello-world demo app and on
// demo/big.ts (about 200 MB of JS heap loaded at start). For each server and app:
//   - req/s and p50/p99 latency under wrk (one thread; --loadgen autocannon runs
//     autocannon in this process instead), on the same machine: the load generator
//     shares the CPUs with the server;
//   - total PSS of the server's processes (master/primary/daemon + workers) when idle
//     and right after the load;
//   - time from asking for one more worker to the first HTTP response from a new pid
//     (unixproc: TTIN to the master; node:cluster: SIGUSR2 to a primary that calls
//     cluster.fork(); PM2: from the start of `pm2 scale <app> N+1`), median of --reps.
// Then ratios against node:cluster and PM2, and PASS/MISS against the targets.
// Every process it starts (and every process in their trees) must be gone at the end:
// it checks, kills what is left, and fails if it had to.
//
// Run: npm run build && node dist/bench/serve.js [--workers 2] [--connections 50]
//      [--duration 10] [--warmup 2] [--reps 5] [--apps hello,big]
//      [--servers unixproc,unixproc-spare,cluster,pm2] [--heap 1024] [--wait-quiet 60]
//      [--loadgen wrk|autocannon] [--json FILE]
// (unixproc-spare is `unixproc serve --spare 1`; wrk comes from Debian's package wrk.)
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon, { type Result } from 'autocannon';
import {
  cpuSeconds,
  firstNewPid,
  freePort,
  connectionsPerPid,
  killLeftovers,
  machineCpu,
  machineBusy,
  median,
  now,
  pssKiB,
  run,
  sleep,
  start,
  sumPssMiB,
  track,
  trackedCount,
  tree,
  unixprocStatus,
  unrefSleep,
  waitGone,
  waitServing,
} from './lib-serve.js';

function hasWrk(): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
}

const { values: flags } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    reps: { type: 'string', default: '5' },
    apps: { type: 'string', default: 'hello,big' },
    servers: { type: 'string', default: 'unixproc,unixproc-spare,cluster,pm2' },
    heap: { type: 'string', default: '1024' },
    json: { type: 'string' },
    'wait-quiet': { type: 'string', default: '60' },
    loadgen: { type: 'string', default: hasWrk() ? 'wrk' : 'autocannon' },
  },
});
const WORKERS = Number(flags.workers);
const CONNECTIONS = Number(flags.connections);
const DURATION = Number(flags.duration);
const WARMUP = Number(flags.warmup);
const REPS = Number(flags.reps);
const HEAP_MIB = Number(flags.heap);
const APPS = flags.apps.split(',') as AppName[];
const LOADGEN = flags.loadgen as 'wrk' | 'autocannon';
if (LOADGEN !== 'wrk' && LOADGEN !== 'autocannon') throw new Error(`unknown --loadgen ${LOADGEN} (wrk, autocannon)`);
const KINDS = flags.servers.split(',') as Kind[];
for (const [k, v] of Object.entries({ WORKERS, CONNECTIONS, DURATION, WARMUP, REPS, HEAP_MIB })) {
  if (!Number.isInteger(v) || v < (k === 'WARMUP' ? 0 : 1)) throw new Error(`bad --${k.toLowerCase()}: ${v}`);
}
for (const a of APPS) if (a !== 'hello' && a !== 'big') throw new Error(`unknown app ${a} (hello, big)`);
for (const k of KINDS) if (!['unixproc', 'unixproc-spare', 'cluster', 'pm2'].includes(k)) throw new Error(`unknown server ${k} (unixproc, unixproc-spare, cluster, pm2)`);

type AppName = 'hello' | 'big';
type Kind = 'unixproc' | 'unixproc-spare' | 'cluster' | 'pm2';
const LABEL: Record<Kind, string> = { unixproc: 'unixproc serve', 'unixproc-spare': 'unixproc serve --spare 1', cluster: 'node:cluster', pm2: 'PM2 cluster' };
const OURS = ['unixproc', 'unixproc-spare'] as const;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UNIXPROC_BIN = join(ROOT, 'bin/unixproc.js');
const APPS_DIR = fileURLToPath(new URL('./apps/', import.meta.url));
const PM2_BIN = join(dirname(createRequire(import.meta.url).resolve('pm2/package.json')), 'bin/pm2');
const TMP = mkdtempSync(join(os.tmpdir(), 'unixproc-bench-serve-'));
const START_TIMEOUT_MS = 120_000;
const SPAWN_TIMEOUT_MS = 60_000;
const NODE_HEAP = `--max-old-space-size=${HEAP_MIB}`;

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const t00 = now();
const stamp = (): string => `[${((now() - t00) / 1000).toFixed(0).padStart(3)} s]`;

// ---- the three servers -----------------------------------------------------------------

interface Server {
  kind: Kind;
  port: number;
  /** The master / primary / PM2 daemon. */
  head: number;
  workers(): number[];
  /** Every process whose PSS counts: head and workers (and their helpers). */
  all(): number[];
  /** Asks for one more worker (the clock is started just before). */
  addWorker(): void;
  /** Takes the extra worker away again and waits for it to be gone. */
  dropWorker(pid: number): Promise<void>;
  stop(): Promise<void>;
  notes(): Promise<string>;
  /** unixproc only: from the master's log, ms from the signal to fork done and to the worker's 'ready'. */
  breakdown?(pid: number, wallMs: number): { forked: number; ready: number } | null;
}

function logFile(name: string): number {
  return openSync(join(TMP, name), 'a');
}

/** A forked spare waits with this title until it is given a slot: not a worker yet. */
function isSpare(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('unixproc worker[spare]');
  } catch {
    return false;
  }
}

async function startUnixproc(app: AppName, port: number, kind: Kind = 'unixproc'): Promise<Server> {
  const control = join(TMP, `unixproc-${app}.sock`);
  const logPath = join(TMP, `unixproc-${app}.log`);
  const fd = logFile(`unixproc-${app}.log`);
  // The CLI re-executes itself with --single-threaded (same pid), keeping the heap flag.
  const { child, exited } = start(
    process.execPath,
    [NODE_HEAP, UNIXPROC_BIN, 'serve', join(ROOT, `demo/${app}.ts`), '-w', String(WORKERS), '-l', `127.0.0.1:${port}`, '--control', control, ...(kind === 'unixproc-spare' ? ['--spare', '1'] : [])],
    { cwd: ROOT, stdio: ['ignore', fd, fd] },
    'unixproc master',
  );
  closeSync(fd);
  const head = child.pid!;
  await Promise.race([waitServing(port, WORKERS, START_TIMEOUT_MS), exited.then((c) => Promise.reject(new Error(`unixproc exited with ${c}`)))]);
  track(tree(head), 'unixproc');
  return {
    kind,
    port,
    head,
    workers: () => tree(head).slice(1).filter((p) => !isSpare(p)),
    all: () => tree(head),
    addWorker: () => process.kill(head, 'SIGTTIN'),
    async dropWorker(pid) {
      process.kill(head, 'SIGTTOU'); // the master quits the worker of the highest slot: the new one
      if (!(await waitGone([pid], 30_000))) throw new Error(`unixproc: worker ${pid} still there 30 s after TTOU`);
    },
    async stop() {
      const pids = tree(head);
      track(pids, 'unixproc');
      process.kill(head, 'SIGTERM');
      if (!(await Promise.race([exited.then(() => true), unrefSleep(15_000).then(() => false)]))) process.kill(head, 'SIGKILL');
      await waitGone(pids, 10_000);
    },
    async notes() {
      const st = await unixprocStatus(control);
      return `requests per worker ${st.workers.map((w) => w.requests).join('/')}`;
    },
    breakdown(pid, wallMs) {
      // Log times have millisecond resolution (ISO strings).
      const at = (event: string): number | null => {
        for (const line of readFileSync(logPath, 'utf8').split('\n')) {
          if (!line.includes(`"event":"${event}"`) || !line.includes(`"worker":${pid},`)) continue;
          return Date.parse((JSON.parse(line) as { time: string }).time) - wallMs;
        }
        return null;
      };
      const forked = at('worker.spawn');
      const ready = at('worker.ready');
      return forked === null || ready === null ? null : { forked, ready };
    },
  };
}

async function startCluster(app: AppName, port: number): Promise<Server> {
  const fd = logFile(`cluster-${app}.log`);
  const { child, exited } = start(
    process.execPath,
    [NODE_HEAP, join(APPS_DIR, 'cluster.js'), app, String(port), String(WORKERS)],
    { cwd: ROOT, stdio: ['ignore', fd, fd] },
    'node:cluster primary',
  );
  closeSync(fd);
  const head = child.pid!;
  await Promise.race([waitServing(port, WORKERS, START_TIMEOUT_MS), exited.then((c) => Promise.reject(new Error(`cluster primary exited with ${c}`)))]);
  track(tree(head), 'node:cluster');
  return {
    kind: 'cluster',
    port,
    head,
    workers: () => tree(head).slice(1),
    all: () => tree(head),
    addWorker: () => process.kill(head, 'SIGUSR2'), // the primary calls cluster.fork()
    async dropWorker(pid) {
      process.kill(pid, 'SIGTERM'); // the primary does not replace it
      if (!(await waitGone([pid], 30_000))) throw new Error(`cluster: worker ${pid} still there 30 s after TERM`);
    },
    async stop() {
      const pids = tree(head);
      track(pids, 'node:cluster');
      process.kill(head, 'SIGTERM');
      if (!(await Promise.race([exited.then(() => true), unrefSleep(15_000).then(() => false)]))) process.kill(head, 'SIGKILL');
      await waitGone(pids, 10_000);
    },
    notes: async () => '',
  };
}

const PM2_HOME = join(TMP, 'pm2');
const pm2Env = { ...process.env, PM2_HOME };
const pm2 = (args: string[], timeoutMs = 60_000): Promise<string> =>
  run(process.execPath, [PM2_BIN, ...args], { cwd: ROOT, env: pm2Env }, timeoutMs, `pm2 ${args[0]}`);
let pm2Started = false;
let pendingScale: Promise<number | null> | null = null;

async function startPm2(app: AppName, port: number): Promise<Server> {
  const name = `bench-${app}`;
  pm2Started = true;
  await pm2(['start', join(APPS_DIR, 'plain.js'), '-i', String(WORKERS), '--name', name, '--node-args', NODE_HEAP, '--', app, String(port)], START_TIMEOUT_MS);
  const head = Number(readFileSync(join(PM2_HOME, 'pm2.pid'), 'utf8'));
  track([head], 'PM2 daemon');
  await waitServing(port, WORKERS, START_TIMEOUT_MS);
  track(tree(head), 'PM2');
  return {
    kind: 'pm2',
    port,
    head,
    workers: () => tree(head).slice(1),
    all: () => tree(head),
    addWorker() {
      // The clock runs from the start of the command, as an operator would see it.
      const { exited } = start(process.execPath, [PM2_BIN, 'scale', name, String(WORKERS + 1)], { cwd: ROOT, env: pm2Env, stdio: 'ignore' }, 'pm2 scale');
      pendingScale = exited;
    },
    async dropWorker(pid) {
      await pendingScale;
      await pm2(['scale', name, String(WORKERS)]);
      // PM2 stops the oldest instance, not the one it just added: wait for the count.
      void pid;
      const deadline = now() + 30_000;
      while (tree(head).length - 1 > WORKERS) {
        if (now() > deadline) throw new Error(`pm2: still ${tree(head).length - 1} workers 30 s after scaling down to ${WORKERS}`);
        await sleep(10);
      }
    },
    async stop() {
      await pendingScale;
      const pids = tree(head);
      track(pids, 'PM2');
      await pm2(['kill']);
      pm2Started = false;
      if (!(await waitGone(pids, 15_000))) throw new Error('PM2: processes left after pm2 kill');
    },
    notes: async () => '',
  };
}

const STARTERS: Record<Kind, (app: AppName, port: number) => Promise<Server>> = {
  unixproc: (app, port) => startUnixproc(app, port),
  'unixproc-spare': (app, port) => startUnixproc(app, port, 'unixproc-spare'),
  cluster: startCluster,
  pm2: startPm2,
};

// ---- one measurement ---------------------------------------------------------------------

interface Row {
  app: AppName;
  kind: Kind;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  pssIdleMiB: number;
  pssLoadMiB: number;
  headPssMiB: number;
  spawnMs: number[];
  serverCpuS: number;
  loadGenCpuS: number;
  /** CPU seconds that processes outside the benchmark used during the load. */
  otherCpuS: number;
  /** CPU seconds in hard and soft interrupts during the load (mostly loopback TCP). */
  irqCpuS: number;
  /** Connections of the load generator held by each worker, half-way through the load. */
  conns: number[];
  /** wrk only: the same load with a new connection for every request (Connection: close). */
  close: Load | null;
  notes: string;
}

/** One load run, whichever tool made it. cpuS: the load generator's own CPU seconds. */
interface Load {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  cpuS: number;
}

async function load(port: number, duration: number): Promise<Load> {
  return LOADGEN === 'wrk' ? loadWrk(port, duration) : loadAutocannon(port, duration);
}

async function loadAutocannon(port: number, duration: number): Promise<Load> {
  const self0 = process.cpuUsage();
  const r: Result = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: CONNECTIONS, duration, timeout: 10 });
  const self1 = process.cpuUsage(self0);
  return {
    reqPerSec: r.requests.total / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
    cpuS: (self1.user + self1.system) / 1e6,
  };
}

/** wrk (C, one thread): a lighter load generator, so more of the 2 CPUs go to the server. */
async function loadWrk(port: number, duration: number, close = false): Promise<Load> {
  const { child, exited } = start(
    'wrk',
    ['-t1', `-c${CONNECTIONS}`, `-d${duration}s`, '--timeout', '10s', '--latency', ...(close ? ['-H', 'Connection: close'] : []), `http://127.0.0.1:${port}/`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
    'wrk',
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  // Its CPU time, sampled while it runs (a reaped process's /proc entry is gone).
  let cpuS = 0;
  const sampler = setInterval(() => (cpuS = cpuSeconds([child.pid!]) || cpuS), 100);
  const code = await exited;
  clearInterval(sampler);
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${out}`);
  const ms = (re: RegExp): number => {
    const m = out.match(re);
    if (!m) throw new Error(`wrk output without ${re}:\n${out}`);
    const unit = { us: 0.001, ms: 1, s: 1000 }[m[2] as 'us' | 'ms' | 's'];
    return Number(m[1]) * unit;
  };
  const errs = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  return {
    reqPerSec: Number(out.match(/Requests\/sec:\s+([\d.]+)/)![1]),
    p50: ms(/\n\s+50%\s+([\d.]+)(us|ms|s)/),
    p99: ms(/\n\s+99%\s+([\d.]+)(us|ms|s)/),
    errors: non2xx + (errs ? errs.slice(1).reduce((n, x) => n + Number(x), 0) : 0),
    cpuS,
  };
}

async function measure(app: AppName, kind: Kind): Promise<Row> {
  const port = await freePort();
  log(`${stamp()} ${app}: starting ${LABEL[kind]} on 127.0.0.1:${port} with ${WORKERS} workers`);
  const t = now();
  const s = await STARTERS[kind](app, port);
  try {
    log(`${stamp()} ${app}: ${LABEL[kind]} serving after ${((now() - t) / 1000).toFixed(1)} s (processes ${s.all().join(' ')})`);
    await sleep(500);
    const pssIdleMiB = sumPssMiB(s.all());
    if (WARMUP > 0) await load(port, WARMUP);
    const pids = s.all();
    const workers = s.workers();
    const cpu0 = cpuSeconds(pids);
    const machine0 = machineCpu();
    const running = load(port, DURATION);
    // Half-way through: how the load generator's connections are spread over the workers.
    await sleep((DURATION * 1000) / 2);
    const conns = connectionsPerPid(port, workers);
    const r = await running;
    const serverCpuS = cpuSeconds(pids) - cpu0;
    const machine1 = machineCpu();
    const loadGenCpuS = r.cpuS;
    // Interrupt time (loopback TCP runs in softirqs) is charged to no process: kept apart.
    const irqCpuS = machine1.irq - machine0.irq;
    const otherCpuS = Math.max(0, machine1.busy - machine0.busy - irqCpuS - serverCpuS - loadGenCpuS);
    const all = s.all();
    const pssLoadMiB = sumPssMiB(all);
    const headPssMiB = pssKiB(s.head) / 1024;
    const notes = await s.notes();
    const { errors, reqPerSec } = r;
    log(
      `${stamp()} ${app}: ${LABEL[kind]} ${reqPerSec.toFixed(0)} req/s p50 ${f2(r.p50)} ms p99 ${f2(r.p99)} ms, errors ${errors}; ` +
        `PSS ${pssIdleMiB.toFixed(0)} → ${pssLoadMiB.toFixed(0)} MiB; connections per worker ${workers.map((w) => conns.get(w) ?? 0).join('/')}; ` +
        `CPU s server ${serverCpuS.toFixed(1)}, load generator ${loadGenCpuS.toFixed(1)}, interrupts ${irqCpuS.toFixed(1)}, other processes ${otherCpuS.toFixed(1)}; ${notes}`,
    );
    // Clients that do not keep connections alive: every request is a new connection,
    // which node:cluster's primary accepts and hands to a worker.
    let close: Load | null = null;
    if (LOADGEN === 'wrk') {
      close = await loadWrk(port, DURATION, true);
      log(`${stamp()} ${app}: ${LABEL[kind]} new connection per request: ${close.reqPerSec.toFixed(0)} req/s p50 ${f2(close.p50)} ms p99 ${f2(close.p99)} ms, errors ${close.errors}`);
    }
    const spawnMs: number[] = [];
    const phases: Array<{ forked: number; ready: number }> = [];
    for (let i = 0; i < REPS; i++) {
      const known = new Set(s.workers());
      const wall = Date.now();
      const t0 = now();
      s.addWorker();
      const got = await firstNewPid(port, known, t0, SPAWN_TIMEOUT_MS);
      track([got.pid], `${kind} extra worker`);
      spawnMs.push(got.ms);
      const ph = s.breakdown?.(got.pid, wall);
      if (ph) phases.push(ph);
      await s.dropWorker(got.pid);
      await sleep(200);
    }
    log(`${stamp()} ${app}: ${LABEL[kind]} new worker → first response: ${spawnMs.map((x) => x.toFixed(1)).join(', ')} ms`);
    const phaseNote = phases.length
      ? `; new worker (master's log, ms after the signal, median): forked ${median(phases.map((p) => p.forked))}, ready ${median(phases.map((p) => p.ready))}`
      : '';
    if (phaseNote) log(`${stamp()} ${app}: ${LABEL[kind]}${phaseNote.slice(1)}`);
    return {
      app,
      kind,
      reqPerSec,
      p50: r.p50,
      p99: r.p99,
      errors,
      pssIdleMiB,
      pssLoadMiB,
      headPssMiB,
      spawnMs,
      serverCpuS,
      loadGenCpuS,
      otherCpuS,
      irqCpuS,
      conns: workers.map((w) => conns.get(w) ?? 0),
      close,
      notes: notes + phaseNote,
    };
  } finally {
    await s.stop();
    log(`${stamp()} ${app}: ${LABEL[kind]} stopped`);
  }
}

// ---- clean-up --------------------------------------------------------------------------------

let cleaned = false;
async function cleanup(): Promise<string[]> {
  if (cleaned) return [];
  cleaned = true;
  const problems: string[] = [];
  if (pm2Started) {
    try {
      await pm2(['kill'], 30_000);
    } catch (err) {
      problems.push(`pm2 kill failed: ${(err as Error).message}`);
    }
  }
  await killLeftovers(problems);
  return problems;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping every server`);
    void cleanup().finally(() => {
      rmSync(TMP, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

// ---- report ----------------------------------------------------------------------------------

const f0 = (x: number): string => x.toFixed(0);
const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);

function report(rows: Row[]): { text: string; misses: number } {
  const out: string[] = [];
  const get = (app: AppName, kind: Kind) => rows.find((r) => r.app === app && r.kind === kind);
  out.push(
    `| app | server | req/s | p50 ms | p99 ms | errors | req/s, new conn. per request | p99 ms, new conn. | conns per worker | PSS idle MiB | PSS after load MiB | of it master/daemon MiB | new worker → 1st response ms, median (min–max) | CPU s: server / load gen / irq / others |`,
    `| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
  );
  for (const r of rows) {
    out.push(
      `| ${r.app} | ${LABEL[r.kind]} | ${f0(r.reqPerSec)} | ${f2(r.p50)} | ${f2(r.p99)} | ${r.errors} | ${r.close ? `${f0(r.close.reqPerSec)}${r.close.errors ? ` (${r.close.errors} errors)` : ''}` : '-'} | ${r.close ? f2(r.close.p99) : '-'} | ${r.conns.join('/')} | ${f0(r.pssIdleMiB)} | ${f0(r.pssLoadMiB)} | ${f0(r.headPssMiB)} | ` +
        `${f1(median(r.spawnMs))} (${f1(Math.min(...r.spawnMs))}–${f1(Math.max(...r.spawnMs))}) | ${f1(r.serverCpuS)} / ${f1(r.loadGenCpuS)} / ${f1(r.irqCpuS)} / ${f1(r.otherCpuS)} |`,
    );
  }
  for (const r of rows) if (r.notes) out.push(`${out.at(-1)?.startsWith('|') ? '\n' : ''}- ${r.app}, ${LABEL[r.kind]}: ${r.notes}`);
  out.push('', '| app | unixproc ÷ peer | req/s | p99 | req/s, new conn. per request | p99, new conn. | PSS after load | new-worker speed-up (peer ms ÷ unixproc ms) |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const app of APPS) for (const ours of OURS) {
    const u = get(app, ours);
    if (!u) continue;
    for (const kind of ['cluster', 'pm2'] as const) {
      const p = get(app, kind);
      if (!p) continue;
      out.push(
        `| ${app} | ${LABEL[ours]} ÷ ${LABEL[kind]} | ${f2(u.reqPerSec / p.reqPerSec)}× | ${f2(u.p99 / p.p99)}× | ${u.close && p.close ? `${f2(u.close.reqPerSec / p.close.reqPerSec)}×` : '-'} | ${u.close && p.close ? `${f2(u.close.p99 / p.close.p99)}×` : '-'} | ${f2(u.pssLoadMiB / p.pssLoadMiB)}× | ${f1(median(p.spawnMs) / median(u.spawnMs))}× |`,
      );
    }
  }
  let misses = 0;
  const verdict = (ok: boolean, what: string): void => {
    if (!ok) misses++;
    out.push(`- ${ok ? 'PASS' : 'MISS'} ${what}`);
  };
  out.push('', 'Targets (against node:cluster, same run):');
  for (const app of APPS) for (const ours of OURS) {
    const u = get(app, ours);
    const c = get(app, 'cluster');
    if (!u || !c) continue;
    const ratio = u.reqPerSec / c.reqPerSec;
    verdict(ratio >= 1.1 && u.p99 <= c.p99, `${app}, ${LABEL[ours]}, keep-alive: req/s ≥ 1.1× node:cluster with p99 no worse: ${f2(ratio)}×, p99 ${f2(u.p99)} vs ${f2(c.p99)} ms`);
    if (u.close && c.close) {
      const r2 = u.close.reqPerSec / c.close.reqPerSec;
      verdict(r2 >= 1.1 && u.close.p99 <= c.close.p99, `${app}, ${LABEL[ours]}, new connection per request: req/s ≥ 1.1× node:cluster with p99 no worse: ${f2(r2)}×, p99 ${f2(u.close.p99)} vs ${f2(c.close.p99)} ms`);
    }
  }
  for (const ours of OURS) {
    const u = get('big', ours);
    const c = get('big', 'cluster');
    if (u && c) verdict(u.pssLoadMiB <= 0.4 * c.pssLoadMiB, `big, ${LABEL[ours]}: total PSS ≤ 40% of node:cluster's: ${f0(u.pssLoadMiB)} vs ${f0(c.pssLoadMiB)} MiB = ${f0((100 * u.pssLoadMiB) / c.pssLoadMiB)}%`);
  }
  for (const app of APPS) for (const ours of OURS) {
    const u = get(app, ours);
    const c = get(app, 'cluster');
    if (!u || !c) continue;
    const x = median(c.spawnMs) / median(u.spawnMs);
    verdict(x >= 20, `${app}, ${LABEL[ours]}: new worker serving ≥ 20× sooner than cluster.fork(): ${f1(median(u.spawnMs))} vs ${f1(median(c.spawnMs))} ms = ${f1(x)}×`);
  }
  return { text: out.join('\n'), misses };
}

// ---- main ------------------------------------------------------------------------------------

const cpuModel = os.cpus()[0]?.model ?? '?';
log(
  `bench/serve: ${os.availableParallelism()} CPUs (${cpuModel}), ${f1(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}; ` +
    `${WORKERS} workers, ${LOADGEN} ${CONNECTIONS} connections × ${DURATION} s after ${WARMUP} s warm-up, ${REPS} new-worker reps; temp ${TMP}`,
);
// The machine may be shared: wait (up to --wait-quiet seconds) for other processes to
// leave the CPUs alone, and say how busy they were.
let busyBefore = await machineBusy(2000);
for (const until = now() + Number(flags['wait-quiet']) * 1000; busyBefore > 0.1 && now() < until; ) {
  log(`machine ${(100 * busyBefore).toFixed(0)}% busy with other processes: waiting for it to quieten`);
  await sleep(3000);
  busyBefore = await machineBusy(2000);
}
log(`machine busy before the run (other processes): ${(100 * busyBefore).toFixed(0)}% of all CPUs over 2 s`);
if (busyBefore > 0.1) log('WARNING: the machine is not quiet; the figures below are skewed by the other load');
const rows: Row[] = [];
let failure: unknown = null;
try {
  for (const app of APPS) for (const kind of KINDS) rows.push(await measure(app, kind));
} catch (err) {
  failure = err;
}
const problems = await cleanup();
const total = (now() - t00) / 1000;
if (rows.length) {
  const { text, misses } = report(rows);
  process.stdout.write(`${text}\n\n`);
  process.stdout.write(
    `CPU busy before the run (other processes): ${f0(100 * busyBefore)}%. Whole run ${f0(total)} s; ${trackedCount()} processes seen, ${problems.length ? 'NOT all gone' : 'all gone at the end'}; ${misses} target(s) missed.\n`,
  );
  if (flags.json) writeFileSync(flags.json, `${JSON.stringify({ date: new Date().toISOString(), cpus: os.availableParallelism(), cpuModel, node: process.version, flags, rows }, null, 2)}\n`);
}
for (const p of problems) log(`PROBLEM: ${p}`);
if (failure) log(`FAILED: ${(failure as Error)?.stack ?? failure}\nlogs kept in ${TMP}`);
else if (!problems.length) rmSync(TMP, { recursive: true, force: true });
if (failure || problems.length) process.exitCode = 1;
