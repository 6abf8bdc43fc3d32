// Benchmark: what a real fork(2) of a Node process that holds data costs and saves,
// against starting a fresh process with child_process.fork() that loads the same data
// (what node:cluster and other preforking servers pay per worker). For parent heaps of
// 10, 100 and 500 MiB of records it prints the fork() call latency, the time until the
// child runs its first line of JS, the peer's first line of JS and "ready with data",
// and the PSS of 4 forked children against 4 fresh processes. Results go in bench/RESULTS.md.
//
// Run: node --single-threaded --expose-gc dist/bench/fork.js
// Env: BENCH_FORK_SIZES=10,100 (MiB), BENCH_FORK_REPS=10, BENCH_PEER_REPS=5.
import { fork as cpFork, type ChildProcess } from 'node:child_process';
import { closeSync, readFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { fork, onForkChild, waitSync } from '../src/index.js';
import { check } from '../src/errors.js';
import { native } from '../src/native.js';
import { gcNow, grow, growToHeap, MiB, touch, type Rec } from './lib/heap.js';
import { killAll, live, median, memOf, ms, procKiB, quantile, readLine, type Mem } from './lib/proc.js';

const SIZES = (process.env.BENCH_FORK_SIZES ?? '10,100,500').split(',').map(Number);
const FORK_REPS = Number(process.env.BENCH_FORK_REPS ?? 10);
const PEER_REPS = Number(process.env.BENCH_PEER_REPS ?? 5);
const WORKERS = 4;
const TARGET_SIZE = 100; // MiB: the size the latency target is judged at
const LATENCY_TARGET = 20; // child's first JS at least 20x sooner than the peer's "ready with data"
const PSS_TARGET = 0.25; // 4 forked children add at most 25% of the PSS of 4 fresh processes
const TIMEOUT_MS = 60_000; // per step; a hang fails the run instead of freezing it

const PEER = fileURLToPath(new URL('./lib/peer.js', import.meta.url));
// The peer runs with node's default flags (its best case: concurrent GC and compilation);
// --expose-gc only so that it can be told to collect, as the forked children are.
const PEER_EXEC_ARGV = ['--expose-gc'];

const hr = (): bigint => process.hrtime.bigint();
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const f1 = (x: number): string => x.toFixed(1);
const f0 = (x: number): string => x.toFixed(0);

// ---- clean-up: nothing the benchmark starts may outlive it ---------------------------

// A forked child inherits the list of its siblings and the exit hook below; it must
// never kill them, so its copy of the list is emptied.
onForkChild(() => live.clear());
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

// ---- the parent's data -----------------------------------------------------------------

const data: Rec[] = [];
gcNow();
const baseHeap = process.memoryUsage().heapUsed;

// ---- forked children ---------------------------------------------------------------------

function pipe(): [number, number] {
  return check(native.pipe(true), 'pipe') as [number, number];
}

/** fork() call time and child's first JS line, both from just before fork() in the parent. */
function forkOnce(): { call: number; first: number } {
  const [r, w] = pipe();
  const t0 = hr();
  const pid = fork(() => {
    // The child's first line: CLOCK_MONOTONIC is one clock for every process.
    const t = process.hrtime.bigint();
    writeSync(w, `${t}\n`);
  })!;
  const t1 = hr();
  live.set(pid, 'forked');
  const tc = BigInt(readLine(r, TIMEOUT_MS, `first line of forked child ${pid}`));
  waitSync(pid);
  live.delete(pid);
  closeSync(r);
  closeSync(w);
  return { call: ms(t0, t1), first: ms(t0, tc) };
}

interface Worker {
  pid: number;
  cmd: number; // parent writes commands here
  report: number; // parent reads answers here
}

/**
 * Forks `n` children that keep the parent's data and wait for commands on a pipe:
 * each touches the data and reports, then runs a full GC on 'gc', then exits on 'exit'.
 * Returns the workers and the time until the last one ran its first line.
 */
function forkWorkers(n: number): { workers: Worker[]; allFirst: number } {
  const workers: Worker[] = [];
  const fds: number[] = [];
  const t0 = hr();
  let last = 0n;
  for (let i = 0; i < n; i++) {
    const [cr, cw] = pipe();
    const [rr, rw] = pipe();
    fds.push(cr, cw, rr, rw);
    const pid = fork(() => {
      const t = process.hrtime.bigint();
      // Keep only this child's ends, so that it sees EOF (and leaves) if the parent dies.
      for (const fd of fds) if (fd !== cr && fd !== rw) closeSync(fd);
      writeSync(rw, `${t}\n`);
      writeSync(rw, `touched ${touch(data)}\n`);
      if (readLine(cr, 10 * TIMEOUT_MS, 'gc command') !== 'gc') return;
      gcNow();
      writeSync(rw, 'gc\n');
      readLine(cr, 10 * TIMEOUT_MS, 'exit command');
    })!;
    live.set(pid, 'forked');
    workers.push({ pid, cmd: cw, report: rr });
    const first = BigInt(readLine(rr, TIMEOUT_MS, `first line of worker ${pid}`));
    if (first > last) last = first;
  }
  // Only now: every child closes the fds in its copy of `fds`, which must still be open there.
  // With the parent's copies of the child's ends gone, a dead child reads as EOF.
  for (let i = 0; i < fds.length; i += 4) {
    closeSync(fds[i]!);
    closeSync(fds[i + 3]!);
  }
  return { workers, allFirst: ms(t0, last) };
}

function closeWorkers(workers: Worker[]): void {
  for (const w of workers) writeSync(w.cmd, 'exit\n');
  for (const w of workers) {
    waitSync(w.pid);
    live.delete(w.pid);
    closeSync(w.cmd);
    closeSync(w.report);
  }
}

// ---- fresh processes (the peer) -------------------------------------------------------

interface PeerMsg {
  kind: string;
  firstJs?: string;
  ready?: string;
  heapUsed?: number;
}

/** A child_process.fork() of bench/lib/peer.ts with a queue of its messages. */
class Peer {
  readonly cp: ChildProcess;
  readonly t0 = hr();
  private queue: PeerMsg[] = [];
  private waiting: ((m: PeerMsg | Error) => void) | null = null;
  private exited: Promise<void>;

  constructor(count: number) {
    this.cp = cpFork(PEER, [String(count)], { execArgv: PEER_EXEC_ARGV, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    live.set(this.cp.pid!, 'spawned');
    this.cp.on('message', (m: PeerMsg) => this.deliver(m));
    this.exited = new Promise((resolve) =>
      this.cp.once('exit', (code, sig) => {
        live.delete(this.cp.pid!);
        this.deliver(new Error(`peer ${this.cp.pid} exited (${code ?? sig})`));
        resolve();
      }),
    );
  }

  private deliver(m: PeerMsg | Error): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w(m);
    } else if (!(m instanceof Error)) this.queue.push(m);
  }

  async next(kind: string): Promise<PeerMsg> {
    const m =
      this.queue.shift() ??
      (await new Promise<PeerMsg | Error>((resolve) => {
        const timer = setTimeout(() => resolve(new Error(`timed out waiting for '${kind}' from peer ${this.cp.pid}`)), TIMEOUT_MS);
        this.waiting = (x) => {
          clearTimeout(timer);
          resolve(x);
        };
      }));
    if (m instanceof Error) throw m;
    if (m.kind !== kind) throw new Error(`peer ${this.cp.pid} sent '${m.kind}' where '${kind}' was expected`);
    return m;
  }

  async ask(cmd: string, kind: string): Promise<PeerMsg> {
    this.cp.send({ cmd });
    return this.next(kind);
  }

  async close(): Promise<void> {
    if (this.cp.exitCode === null && this.cp.signalCode === null) this.cp.send({ cmd: 'exit' });
    await this.exited;
  }
}

async function peerOnce(count: number, askHeap: boolean): Promise<{ first: number; ready: number; heapUsed?: number }> {
  const p = new Peer(count);
  const m = await p.next('ready');
  const out: { first: number; ready: number; heapUsed?: number } = {
    first: ms(p.t0, BigInt(m.firstJs!)),
    ready: ms(p.t0, BigInt(m.ready!)),
  };
  if (askHeap) out.heapUsed = (await p.ask('heap', 'heap')).heapUsed;
  await p.close();
  return out;
}

// ---- measurements per heap size ---------------------------------------------------------

interface Row {
  size: number;
  records: number;
  heapUsed: number;
  peerHeapUsed: number;
  rss: number;
  pte: number;
  maps: number;
  walk: number[];
  call: number[];
  first: number[];
  peerFirst: number[];
  peerReady: number[];
  mem: MemRow[];
}

interface MemRow {
  phase: 'after touch' | 'after full GC';
  masterBefore: Mem;
  master: Mem;
  forked: Mem[];
  fresh: Mem[];
}

async function memory(count: number): Promise<{ rows: MemRow[]; forkReady: number; freshReady: number }> {
  gcNow();
  const masterBefore = memOf('self');
  const { workers, allFirst } = forkWorkers(WORKERS);
  for (const w of workers) {
    const line = readLine(w.report, TIMEOUT_MS, `touch by worker ${w.pid}`);
    if (!line.startsWith('touched ')) throw new Error(`worker ${w.pid}: ${line}`);
  }
  const snap = (): { master: Mem; forked: Mem[] } => ({ master: memOf('self'), forked: workers.map((w) => memOf(w.pid)) });
  const touched = snap();
  for (const w of workers) writeSync(w.cmd, 'gc\n');
  for (const w of workers) readLine(w.report, TIMEOUT_MS, `gc by worker ${w.pid}`);
  const collected = snap();
  closeWorkers(workers);

  // The same with 4 fresh processes, started together as a cluster master would.
  const t0 = hr();
  const peers = Array.from({ length: WORKERS }, () => new Peer(count));
  let last = 0n;
  for (const p of peers) {
    const r = BigInt((await p.next('ready')).ready!);
    if (r > last) last = r;
  }
  const freshReady = ms(t0, last);
  for (const p of peers) await p.ask('touch', 'touched');
  const freshTouched = peers.map((p) => memOf(p.cp.pid!));
  for (const p of peers) await p.ask('gc', 'gc');
  const freshCollected = peers.map((p) => memOf(p.cp.pid!));
  for (const p of peers) await p.close();

  return {
    rows: [
      { phase: 'after touch', masterBefore, ...touched, fresh: freshTouched },
      { phase: 'after full GC', masterBefore, ...collected, fresh: freshCollected },
    ],
    forkReady: allFirst,
    freshReady,
  };
}

function timeWalk(): number {
  const t0 = hr();
  native.clearDontfork();
  return ms(t0, hr());
}

async function measure(size: number): Promise<Row & { forkReady: number; freshReady: number }> {
  const tb = hr();
  const records = growToHeap(data, baseHeap, size * MiB);
  const heapUsed = process.memoryUsage().heapUsed;
  log(`[${size} MiB] ${records} records, heapUsed ${f1(heapUsed / MiB)} MiB (built in ${f0(ms(tb, hr()))} ms)`);

  const walk = Array.from({ length: 5 }, timeWalk);
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\n').length - 1;
  const rss = procKiB('self', 'status', 'VmRSS') / 1024;
  const pte = procKiB('self', 'status', 'VmPTE') / 1024;

  const call: number[] = [];
  const first: number[] = [];
  for (let i = 0; i < FORK_REPS; i++) {
    const r = forkOnce();
    call.push(r.call);
    first.push(r.first);
  }
  log(`[${size} MiB] fork(): call median ${f1(median(call))} ms, child first JS median ${f1(median(first))} ms`);

  const peerFirst: number[] = [];
  const peerReady: number[] = [];
  let peerHeapUsed = 0;
  for (let i = 0; i < PEER_REPS; i++) {
    const r = await peerOnce(records, i === 0);
    peerFirst.push(r.first);
    peerReady.push(r.ready);
    if (r.heapUsed !== undefined) peerHeapUsed = r.heapUsed;
  }
  log(`[${size} MiB] child_process.fork(): first JS median ${f1(median(peerFirst))} ms, ready median ${f1(median(peerReady))} ms`);

  const mem = await memory(records);
  log(`[${size} MiB] PSS measured`);
  return {
    size, records, heapUsed, peerHeapUsed, rss, pte, maps, walk, call, first, peerFirst, peerReady,
    mem: mem.rows, forkReady: mem.forkReady, freshReady: mem.freshReady,
  };
}

// ---- report ---------------------------------------------------------------------------------

function machine(): string[] {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? '?';
  return [
    `- CPUs: ${os.availableParallelism()} x ${cpu}`,
    `- memory: ${f1(os.totalmem() / 1024 ** 3)} GiB`,
    `- kernel: ${os.type()} ${os.release()}`,
    `- node: ${process.version} (${process.execArgv.join(' ')}); peer: node ${PEER_EXEC_ARGV.join(' ')} (default V8 flags)`,
    `- date: ${new Date().toISOString()}`,
    // The machine is shared: a loaded one stretches every number, the peer's most (it builds its data).
    `- load average (1, 5, 15 min) at the start: ${loadAtStart}; at the end: ${os.loadavg().map(f1).join(', ')}`,
  ];
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const mp = (xs: number[]): string => `${f1(median(xs))} / ${f1(quantile(xs, 0.9))}`;

function report(rows: Array<Row & { forkReady: number; freshReady: number }>): void {
  const out: string[] = [];
  out.push('### Machine', '', ...machine(), '');
  out.push(
    `### Latency (ms from the moment a worker is asked for; median / p90 nearest rank; fork ${FORK_REPS} runs, peer ${PEER_REPS} runs)`,
    '',
    '| parent heap | records | fork() call | forked child: first JS (= ready with data) | peer: first JS | peer: ready with data | ratio peer ready / fork first JS | ratio peer first JS / fork first JS |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    const fr = median(r.first);
    out.push(
      `| ${r.size} MiB (${f0(r.heapUsed / MiB)} used; peer ${f0(r.peerHeapUsed / MiB)}) | ${r.records} | ${mp(r.call)} | ${mp(r.first)} | ${mp(r.peerFirst)} | ${mp(r.peerReady)} | ${f1(median(r.peerReady) / fr)}x | ${f1(median(r.peerFirst) / fr)}x |`,
    );
  }
  out.push(
    '',
    '### Where the fork() call goes (parent)',
    '',
    '| parent heap | VmRSS MiB | VmPTE (page tables) MiB | /proc/self/maps lines | maps walk + madvise (ClearDontfork alone), median ms | fork() call median ms | rest (parking + fork(2) page-table copy + JS) ms |',
    '|---|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    out.push(
      `| ${r.size} MiB | ${f0(r.rss)} | ${f1(r.pte)} | ${r.maps} | ${f1(median(r.walk))} | ${f1(median(r.call))} | ${f1(median(r.call) - median(r.walk))} |`,
    );
  }
  out.push(
    '',
    `### Memory: ${WORKERS} workers, PSS in MiB (/proc/PID/smaps_rollup), after each worker read every record, then after a forced full GC in each worker`,
    '',
    `"added" = (master + ${WORKERS} forked children) - master before forking: what the forked workers cost (the target uses Pss). ` +
      'Fresh processes share nothing with the launcher. The "anon" columns count Pss_Anon only: without node\'s binary and ' +
      'libraries, whose pages are shared with every other node process on the machine and make Pss drift.',
    '',
    `| parent heap | phase | master before | master now | ${WORKERS} forked children | forked private (mean per child) | added by forking | ${WORKERS} fresh processes | added / fresh | target <= ${PSS_TARGET * 100}% | master + forked vs fresh | anon: added / fresh |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of rows) {
    for (const m of r.mem) {
      const added = m.master.pss + sum(m.forked.map((x) => x.pss)) - m.masterBefore.pss;
      const fresh = sum(m.fresh.map((x) => x.pss));
      const addedAnon = m.master.anon + sum(m.forked.map((x) => x.anon)) - m.masterBefore.anon;
      const freshAnon = sum(m.fresh.map((x) => x.anon));
      out.push(
        `| ${r.size} MiB | ${m.phase} | ${f0(m.masterBefore.pss)} | ${f0(m.master.pss)} | ${f0(sum(m.forked.map((x) => x.pss)))} | ${f1(sum(m.forked.map((x) => x.priv)) / m.forked.length)} | ${f0(added)} | ${f0(fresh)} | ${f1((added / fresh) * 100)}% | ${added / fresh <= PSS_TARGET ? 'PASS' : 'MISS'} | ${f0(m.master.pss + sum(m.forked.map((x) => x.pss)))} vs ${f0(fresh)} | ${f0(addedAnon)} / ${f0(freshAnon)} = ${f1((addedAnon / freshAnon) * 100)}% |`,
      );
    }
  }
  out.push('', `### ${WORKERS} workers ready (ms from the first request to the last worker ready with data)`, '', '| parent heap | forked (sequential fork() calls) | fresh (started together) |', '|---|---|---|');
  for (const r of rows) out.push(`| ${r.size} MiB | ${f1(r.forkReady)} | ${f1(r.freshReady)} |`);

  const t = rows.find((r) => r.size === TARGET_SIZE);
  out.push('', '### Targets', '');
  if (t) {
    const ratio = median(t.peerReady) / median(t.first);
    out.push(
      `- ${ratio >= LATENCY_TARGET ? 'PASS' : 'MISS'}: at ${TARGET_SIZE} MiB the forked child runs its first JS ${f1(ratio)}x sooner than child_process.fork() is ready with the data (target >= ${LATENCY_TARGET}x; ${f1(median(t.first))} ms vs ${f1(median(t.peerReady))} ms; against the peer's bare first JS line, ${f1(median(t.peerFirst))} ms, it is ${f1(median(t.peerFirst) / median(t.first))}x).`,
    );
  } else out.push(`- latency target not judged: ${TARGET_SIZE} MiB was not measured`);
  for (const r of rows) {
    for (const m of r.mem) {
      const frac = (m.master.pss + sum(m.forked.map((x) => x.pss)) - m.masterBefore.pss) / sum(m.fresh.map((x) => x.pss));
      out.push(`- ${frac <= PSS_TARGET ? 'PASS' : 'MISS'}: ${r.size} MiB, ${m.phase}: ${WORKERS} forked children add ${f1(frac * 100)}% of the PSS of ${WORKERS} fresh processes (target <= ${PSS_TARGET * 100}%).`);
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

// ---- main -------------------------------------------------------------------------------------

const loadAtStart = os.loadavg().map(f1).join(', ');

async function main(): Promise<void> {
  const started = hr();
  // Warm-up, not counted: the first fork starts the libuv threadpool it parks, and the
  // first peer pulls node and the peer script into the page cache.
  forkOnce();
  await peerOnce(0, false);
  const rows = [];
  for (const size of SIZES) rows.push(await measure(size));
  report(rows);
  log(`total ${f1(ms(started, hr()) / 1000)} s`);
}

// A watchdog for the whole run (blocking reads have their own deadlines).
const watchdog = setTimeout(() => {
  log('fork bench: over 6 minutes, giving up');
  killAll();
  process.exit(2);
}, 360_000);
watchdog.unref();

main().then(
  () => {
    killAll();
    if (live.size) process.exitCode = 1;
  },
  (err) => {
    log(`fork bench failed: ${err instanceof Error ? err.stack : String(err)}`);
    killAll();
    process.exit(1);
  },
);
