// The job worker's master, after Resque's: it preloads the jobs module once and forks a
// child for every job (or every --jobs-per-fork jobs) with real fork(2), so a crash, a
// leak, a hang or an out-of-memory in one job never hurts the master or another job.
// The master alone claims jobs from the store and settles them from what it saw: the
// child's report over a pipe and its exit status. A job whose child died mid-run is a
// failed attempt with the reason; a master that dies takes its children with it
// (PR_SET_PDEATHSIG) and its claims are recovered by any live worker once its heartbeat
// lapses.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import v8 from 'node:v8';
import {
  compactHeap,
  dieWithParent,
  fork,
  type IO,
  kill,
  loadModule,
  onForkChild,
  pipe,
  removeBuilds,
  setTitle,
  type Status,
  trap,
  wait2,
} from '../src/index.js';
import type { Backend, JobRecord } from './backend.js';
import { runInJob } from './context.js';
import { Handlers } from './handlers.js';
import { defaultUrl, openBackend } from './open.js';
import { parseSchedules, type ScheduleConfig, type ScheduleDef, Scheduler } from './schedule.js';

export interface WorkHooks {
  /** In the master, once, after the jobs module is loaded and before the first fork. */
  beforeFirstFork?: () => unknown;
  /** In the master, before forking the child for a job. */
  beforeFork?: (job: JobRecord) => unknown;
  /** In the child, before the job runs. */
  afterFork?: (job: JobRecord) => unknown;
  /** In the master, when an attempt failed (retried or kept as failed). */
  onFailure?: (job: JobRecord, error: { exception: string; error: string; retryAt: number | null }) => unknown;
}

export interface WorkOptions {
  /** The jobs module (.js or .ts). */
  jobs: string;
  /** Queues in priority order; '*' for all. */
  queues: string[];
  concurrency: number;
  backend: string;
  /** Seconds a job may run before its child is killed; 0 for no limit. A job's own timeout wins. */
  timeout: number;
  /** MiB of memory (RSS) a job child may use before it is killed; null for no limit. */
  maxMemory: number | null;
  /** Jobs one child runs, one after another, before it exits (Resque's default is 1). */
  jobsPerFork: number;
  /** false: run jobs in the master (no isolation; for contrast and for jobs that cannot fork). */
  fork: boolean;
  /** Seconds between heartbeats. */
  heartbeat: number;
  /** Seconds after which a silent worker is dead and its jobs are recovered. */
  lapse: number;
  /** Seconds TERM waits for children before it KILLs them. */
  termTimeout: number;
  hooks: WorkHooks;
  /** Recurring jobs by name: { nightly: { cron: '0 3 * * *', job: 'Report', args, queue, timezone } }. */
  schedule?: Record<string, ScheduleConfig>;
}

export const WORK_DEFAULTS: Omit<WorkOptions, 'jobs'> = {
  queues: ['*'],
  concurrency: 0, // 0: the number of CPUs, resolved in resolveWorkOptions
  backend: '',
  timeout: 600,
  maxMemory: null,
  jobsPerFork: 1,
  fork: true,
  heartbeat: 5,
  lapse: 30,
  termTimeout: 10,
  hooks: {},
};

interface Child {
  pid: number;
  jobs: JobRecord[];
  /** Outcomes the child reported, by job id. */
  reports: Map<string, Report>;
  /** The job the child said it started last. */
  current: JobRecord | null;
  since: number;
  deadline: number;
  killedFor: string | null;
  reader: IO;
  ended: Promise<void>;
}

type Report = { type: 'start'; id: string } | { type: 'done'; id: string } | { type: 'failed'; id: string; exception: string; error: string; backtrace: string[] };

type State = 'running' | 'paused' | 'quitting' | 'terminating';

/** Backoff before attempt n+1 (n >= 1 attempts made): base * 2^(n-1), with ±50% jitter. */
export function backoffDelay(base: number, attemptsMade: number): number {
  return Math.round(base * 2 ** (attemptsMade - 1) * (0.5 + Math.random()));
}

export class JobWorker {
  readonly options: WorkOptions;
  readonly id: string;
  private backend!: Backend;
  private handlers!: Handlers;
  private readonly children = new Map<number, Child>();
  private readonly inMaster = new Map<string, { job: JobRecord; since: number }>();
  private state: State = 'running';
  private concurrency: number;
  private wakeUp: (() => void) | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly masterPid = process.pid;
  private stopped!: Promise<void>;
  private readonly schedules: ScheduleDef[];
  private scheduler: Scheduler | null = null;

  /** Throws for a bad `schedule` option, naming the schedule. */
  constructor(options: WorkOptions) {
    this.options = options;
    this.concurrency = options.concurrency;
    this.id = `${hostname()}:${process.pid}:${options.queues.join(',')}`;
    this.schedules = parseSchedules(options.schedule);
  }

  /** Loads the jobs module, registers the worker and runs until QUIT or TERM; resolves when it has stopped. */
  async run(): Promise<void> {
    const mod = (await loadModule(resolve(this.options.jobs), 0)) as Record<string, unknown>;
    this.handlers = new Handlers(mod);
    this.backend = await openBackend(this.options.backend || defaultUrl());
    await this.backend.registerWorker({ id: this.id, host: hostname(), pid: process.pid, queues: this.options.queues });
    this.installSignals();
    // Children must not read from the master's pipes and sockets: their copies are dropped at fork.
    onForkChild(() => this.dropMasterResourcesInChild());
    await this.options.hooks.beforeFirstFork?.();
    if (this.options.fork) {
      compactHeap();
      this.warmChildPath();
    }
    if (this.schedules.length) {
      this.scheduler = new Scheduler(this.backend, this.schedules, { log: (e, f) => this.log(e, f), guard: (p) => this.master(p) });
      // Published (and a tick missed while no master ran enqueued) before the worker counts as started.
      await this.master(this.scheduler.start());
    }
    this.log('worker.start', {
      id: this.id,
      queues: this.options.queues,
      concurrency: this.concurrency,
      fork: this.options.fork,
      ...(this.schedules.length ? { schedules: this.schedules.map((s) => s.name) } : {}),
    });
    this.timers.push(setInterval(() => void this.beat(), this.options.heartbeat * 1000));
    this.timers.push(setInterval(() => this.watchChildren(), 200));
    await this.beat();
    try {
      await this.loop();
    } finally {
      await this.scheduler?.stop();
      for (const t of this.timers) clearInterval(t);
      await this.backend.unregisterWorker(this.id).catch(() => {});
      await this.backend.close().catch(() => {});
      removeBuilds();
      this.log('worker.stop', { id: this.id });
    }
  }

  /**
   * Awaits p in the master only. A forked child is a copy of the master with all its
   * pending work, this loop's awaits included: in the child they must never resume (a
   * copied loop would claim and run jobs), so there they stop for good.
   */
  private async master<T>(p: Promise<T> | T): Promise<T> {
    try {
      return await p;
    } finally {
      // A rejection too: the master's connections are dropped in a child, so its copied
      // calls fail there, and the error must not unwind into the master's cleanup.
      if (process.pid !== this.masterPid) await new Promise<never>(() => {});
    }
  }

  private busy(): number {
    return this.children.size + this.inMaster.size;
  }

  private async loop(): Promise<void> {
    for (;;) {
      this.updateTitle();
      if (this.state === 'quitting' || this.state === 'terminating') {
        if (this.busy() === 0) return;
        await this.master(this.nextEvent(1000));
        continue;
      }
      if (this.state === 'running' && this.busy() < this.concurrency) {
        const batch = await this.master(this.claimBatch());
        if (batch.length) {
          await this.master(this.start(batch));
          continue;
        }
        await this.master(Promise.race([this.backend.waitForWork(this.options.queues, 1000), this.nextEvent(1000)]));
        continue;
      }
      await this.master(this.nextEvent(1000));
    }
  }

  private nextEvent(ms: number): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(() => {
        this.wakeUp = null;
        res();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(t);
        this.wakeUp = null;
        res();
      };
    });
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private async claimBatch(): Promise<JobRecord[]> {
    const n = this.options.fork ? this.options.jobsPerFork : 1;
    const batch: JobRecord[] = [];
    while (batch.length < n) {
      const job = await this.master(this.backend.claim(this.id, this.options.queues));
      if (!job) break;
      batch.push(job);
    }
    return batch;
  }

  private async start(batch: JobRecord[]): Promise<void> {
    if (!this.options.fork) {
      for (const job of batch) void this.runInMaster(job);
      return;
    }
    try {
      await this.master(this.options.hooks.beforeFork?.(batch[0]));
    } catch (err) {
      this.log('hook.error', { hook: 'beforeFork', error: String((err as Error)?.stack ?? err) });
    }
    const [reader, writer] = pipe();
    const pid = fork(() => this.child(batch, writer));
    writer.close();
    const child: Child = {
      pid,
      jobs: batch,
      reports: new Map(),
      current: null,
      since: Date.now(),
      deadline: deadlineOf(batch[0], this.options.timeout),
      killedFor: null,
      reader,
      ended: Promise.resolve(),
    };
    child.ended = this.readReports(child);
    this.children.set(pid, child);
    void this.reap(child);
  }

  /**
   * Runs once in the master what every job child runs for the first time (a job context,
   * a report on a pipe, a trap reset, an error's description), so the children start
   * from code the master compiled and share it copy-on-write instead of each compiling
   * it again (about 3 ms of CPU per child: bench/RESULTS.md, "jobs"). V8 drops the
   * bytecode of functions that do not run for a while, and the master never runs these
   * again: --no-flush-bytecode keeps them.
   */
  private warmChildPath(): void {
    v8.setFlagsFromString('--no-flush-bytecode');
    const now = Date.now();
    const job: JobRecord = { id: '0', name: '', args: [], queue: '', attempt: 0, attempts: 1, backoff: 0, timeout: null, unique: null, enqueuedAt: now, runAt: now };
    const [reader, writer] = pipe();
    runInJob(job, () => writer.write(`${JSON.stringify({ type: 'start', id: job.id } satisfies Report)}\n`));
    writer.write(`${JSON.stringify({ type: 'failed', id: job.id, ...describeError(new Error('warm-up')) } satisfies Report)}\n`);
    writer.close();
    reader.close();
    // SIGURG's default is to be ignored and the worker has no use for it: safe to reset here.
    trap('URG', 'SYSTEM_DEFAULT');
  }

  /** The child's side: run the batch, telling the master what starts and how it ends. */
  private async child(batch: JobRecord[], writer: IO): Promise<void> {
    dieWithParent(this.masterPid);
    for (const sig of ['QUIT', 'TERM', 'INT', 'USR1', 'USR2', 'CONT', 'TTIN', 'TTOU']) trap(sig, 'SYSTEM_DEFAULT');
    const report = (r: Report) => writer.write(`${JSON.stringify(r)}\n`);
    let current: JobRecord | null = null;
    // An uncaught error kills the child (exit 1); the master gets its text first.
    process.on('uncaughtExceptionMonitor', (err) => {
      if (current) report({ type: 'failed', id: current.id, ...describeError(err) });
    });
    for (const job of batch) {
      current = job;
      setTitle(`unixproc work: Processing ${job.queue} since ${new Date().toISOString()} [${job.name}]`);
      report({ type: 'start', id: job.id });
      try {
        await this.options.hooks.afterFork?.(job);
        const handler = this.handlers.get(job.name);
        await runInJob(job, () => handler(...job.args));
        report({ type: 'done', id: job.id });
      } catch (err) {
        report({ type: 'failed', id: job.id, ...describeError(err) });
      }
    }
    current = null;
    writer.close();
  }

  private async readReports(child: Child): Promise<void> {
    let buf = '';
    const stream = child.reader.stream;
    await new Promise<void>((res) => {
      stream.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.onReport(child, line);
        }
      });
      stream.on('end', res);
      stream.on('error', () => res());
      stream.on('close', () => res());
    });
    stream.destroy();
  }

  private onReport(child: Child, line: string): void {
    let r: Report;
    try {
      r = JSON.parse(line);
    } catch {
      return;
    }
    const job = child.jobs.find((j) => j.id === r.id);
    if (!job) return;
    if (r.type === 'start') {
      child.current = job;
      child.since = Date.now();
      child.deadline = deadlineOf(job, this.options.timeout);
      return;
    }
    if (!child.reports.has(r.id)) child.reports.set(r.id, r);
    if (child.current?.id === r.id) child.current = null;
    // Settle each job as soon as it is reported, so a batch child's progress is visible.
    if (r.type === 'done') void this.settle(job, { ok: true });
    else if (r.type === 'failed') void this.settle(job, { ok: false, exception: r.exception, error: r.error, backtrace: r.backtrace });
  }

  private async reap(child: Child): Promise<void> {
    const reaped = await this.master(wait2(child.pid).catch(() => null));
    await this.master(child.ended);
    const status = reaped![1];
    this.children.delete(child.pid);
    for (const job of child.jobs) {
      if (child.reports.has(job.id)) continue;
      if (child.current?.id === job.id) {
        // Started and never settled: the child died under it (or was killed for it).
        const reason =
          child.killedFor ??
          (status.success
            ? "the job's child exited 0 before the job settled (nothing kept its event loop alive: a promise that never settles?)"
            : `the job's child died: ${describeStatus(status)}`);
        await this.master(this.settle(job, { ok: false, exception: child.killedFor ? 'JobKilled' : 'JobDied', error: reason, backtrace: [] }));
      } else {
        // Never started, or a TERM stop took it back: to its queue as not attempted.
        await this.master(this.backend.release(this.id, job).catch((err) => this.log('backend.error', { op: 'release', error: String(err) })));
      }
    }
    this.wake();
  }

  private async runInMaster(job: JobRecord): Promise<void> {
    this.inMaster.set(job.id, { job, since: Date.now() });
    try {
      const handler = this.handlers.get(job.name);
      await runInJob(job, () => handler(...job.args));
      await this.settle(job, { ok: true });
    } catch (err) {
      await this.settle(job, { ok: false, ...describeError(err) });
    } finally {
      this.inMaster.delete(job.id);
      this.wake();
    }
  }

  private async settle(job: JobRecord, outcome: { ok: true } | { ok: false; exception: string; error: string; backtrace: string[] }): Promise<void> {
    try {
      if (outcome.ok) {
        await this.master(this.backend.complete(this.id, job));
        return;
      }
      const made = job.attempt + 1;
      const retryAt = made < job.attempts ? Date.now() + backoffDelay(job.backoff, made) : null;
      await this.master(this.backend.fail(this.id, job, { error: outcome.error, exception: outcome.exception, backtrace: outcome.backtrace, worker: this.id }, retryAt));
      this.log('job.failed', { id: job.id, name: job.name, attempt: made, exception: outcome.exception, error: outcome.error, retryAt });
      try {
        await this.master(this.options.hooks.onFailure?.(job, { exception: outcome.exception, error: outcome.error, retryAt }));
      } catch (err) {
        this.log('hook.error', { hook: 'onFailure', error: String((err as Error)?.stack ?? err) });
      }
    } catch (err) {
      // The store is unreachable (a Redis restart): the claim stays with this worker and
      // is recovered as a lapsed attempt if this worker never gets through.
      this.log('backend.error', { op: outcome.ok ? 'complete' : 'fail', id: job.id, error: String((err as Error)?.message ?? err) });
    }
  }

  /** Timeouts and the memory limit, checked five times a second. */
  private watchChildren(): void {
    const now = Date.now();
    for (const child of this.children.values()) {
      if (child.killedFor) continue;
      if (child.current && now > child.deadline) {
        const timeout = child.current.timeout ?? this.options.timeout;
        this.killChild(child, `timeout: the job ran longer than ${timeout} s`);
        continue;
      }
      if (this.options.maxMemory !== null) {
        const rss = rssKiB(child.pid);
        if (rss !== null && rss > this.options.maxMemory * 1024) {
          this.killChild(child, `memory limit: the job's child used ${(rss / 1024).toFixed(1)} MiB, over --max-memory ${this.options.maxMemory} MiB`);
        }
      }
    }
  }

  private killChild(child: Child, reason: string): void {
    child.killedFor = reason;
    try {
      kill('KILL', child.pid);
    } catch {
      /* already gone */
    }
  }

  private async beat(): Promise<void> {
    const running = [
      ...[...this.children.values()].flatMap((c) => {
        if (!c.current) return [];
        const kib = rssKiB(c.pid);
        return [{ job: c.current, since: c.since, childPid: c.pid, ...(kib !== null ? { rss: kib * 1024 } : {}) }];
      }),
      // A --no-fork job's memory is the master's own: not told apart.
      ...[...this.inMaster.values()].map((r) => ({ job: r.job, since: r.since, childPid: null })),
    ];
    // After each heartbeat too, so a tick a late timer (a suspend, a clock step) missed is enqueued.
    void this.scheduler?.check();
    try {
      await this.master(this.backend.heartbeat(this.id, running, process.memoryUsage.rss()));
      const lapseMs = this.options.lapse * 1000;
      const recovered = await this.master(this.backend.recoverLapsed(lapseMs, `the worker holding it stopped heartbeating for ${this.options.lapse} s (killed?)`, (job) =>
        job.attempt + 1 < job.attempts ? Date.now() + backoffDelay(job.backoff, job.attempt + 1) : null,
      ));
      if (recovered.length) this.log('jobs.recovered', { count: recovered.length, ids: recovered.map((j) => j.id) });
    } catch (err) {
      this.log('backend.error', { op: 'heartbeat', error: String((err as Error)?.message ?? err) });
    }
  }

  private installSignals(): void {
    trap('QUIT', () => this.quit());
    trap('TERM', () => this.terminate());
    trap('INT', () => this.terminate());
    trap('USR1', () => {
      for (const child of this.children.values()) this.killChild(child, 'killed by USR1 to the worker');
    });
    trap('USR2', () => {
      if (this.state === 'running') this.state = 'paused';
      this.log('worker.paused', {});
      this.wake();
    });
    trap('CONT', () => {
      if (this.state === 'paused') this.state = 'running';
      this.log('worker.resumed', {});
      this.wake();
    });
    trap('TTIN', () => {
      this.concurrency++;
      this.wake();
    });
    trap('TTOU', () => {
      if (this.concurrency > 1) this.concurrency--;
      this.wake();
    });
  }

  /** QUIT: take no more jobs, let the running ones finish, then exit. */
  quit(): void {
    if (this.state === 'terminating') return;
    this.state = 'quitting';
    this.log('worker.quit', { running: this.busy() });
    this.wake();
  }

  /** TERM/INT: TERM the children, KILL them after --term-timeout; their jobs go back as not attempted. */
  terminate(): void {
    if (this.state === 'terminating') return;
    this.state = 'terminating';
    this.log('worker.terminate', { running: this.busy() });
    for (const child of this.children.values()) {
      child.current = null; // not an attempt: released when reaped
      try {
        kill('TERM', child.pid);
      } catch {
        /* gone */
      }
    }
    const t = setTimeout(() => {
      for (const child of this.children.values()) {
        try {
          kill('KILL', child.pid);
        } catch {
          /* gone */
        }
      }
    }, this.options.termTimeout * 1000);
    t.unref();
    this.wake();
  }

  private dropMasterResourcesInChild(): void {
    if (process.pid === this.masterPid) return;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    // Only the master schedules: a child's copy of the timer must never enqueue a tick.
    this.scheduler?.forget();
    // The master's ends of other children's pipes: a copy left reading would steal their reports.
    // close(), not stream.destroy(): a reader whose stream already ended counts as closed,
    // and asking it for its stream would throw.
    for (const c of this.children.values()) c.reader.close();
    this.children.clear();
    this.wakeUp = null;
  }

  private updateTitle(): void {
    const q = this.options.queues.join(',');
    let title: string;
    if (this.state === 'paused') title = 'Paused';
    else if (this.state === 'quitting' || this.state === 'terminating') title = `Shutting down, ${this.busy()} running`;
    else if (this.busy() === 0) title = `Waiting for ${q}`;
    else title = `${this.busy()} of ${this.concurrency} busy`;
    setTitle(`unixproc work: ${title}`);
  }

  private log(event: string, fields: Record<string, unknown>): void {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, pid: process.pid, ...fields })}\n`);
  }
}

function describeError(err: unknown): { exception: string; error: string; backtrace: string[] } {
  if (err instanceof Error) {
    return { exception: err.name || err.constructor?.name || 'Error', error: err.message, backtrace: (err.stack ?? '').split('\n').slice(1).map((l) => l.trim()) };
  }
  return { exception: typeof err, error: String(err), backtrace: [] };
}

function deadlineOf(job: JobRecord, defaultTimeout: number): number {
  const timeout = job.timeout ?? defaultTimeout;
  return timeout > 0 ? Date.now() + timeout * 1000 : Infinity;
}

function describeStatus(status: Status): string {
  return String(status).replace(/^pid \d+ /, '');
}

function rssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
