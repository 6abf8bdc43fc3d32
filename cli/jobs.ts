// The job worker's commands: `unixproc work` (a forking worker master), `unixproc enqueue`
// and `unixproc jobs stats|queues|workers|failed|retry|remove|clear|schedule`, each with
// --backend URL and, for the management ones, --json.
import type { Command } from 'commander';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { daemon, exec, exitNow, fork, isSingleThreaded, loadModule, pipe, wait2, IO } from '../src/index.js';
import { defaultUrl, openBackend } from '../jobs/open.js';
import { enqueueSpec } from '../jobs/queue.js';
import { JobWorker, WORK_DEFAULTS, type WorkHooks, type WorkOptions } from '../jobs/worker.js';
import { nextRun, parseSchedules, type ScheduleConfig } from '../jobs/schedule.js';
import type { Backend, ScheduleRecord } from '../jobs/backend.js';
import { addWebCommand } from './jobs-web.js';

interface WorkFlags {
  queue?: string;
  concurrency?: string;
  backend?: string;
  timeout?: string;
  maxMemory?: string;
  jobsPerFork?: string;
  fork: boolean;
  heartbeat?: string;
  lapse?: string;
  termTimeout?: string;
  config?: string;
  daemonize?: boolean;
  pid?: string;
  stdout?: string;
  stderr?: string;
}

function fail(cmd: string, message: string, code = 2): never {
  process.stderr.write(`unixproc ${cmd}: ${message}\n`);
  process.exit(code);
}

function number(cmd: string, flag: string, v: unknown, min: number, integer = true): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    fail(cmd, `${flag} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Options from the config file's default export, then the flags (which win). */
async function workOptions(jobs: string, flags: WorkFlags): Promise<WorkOptions> {
  let config: Record<string, unknown> = {};
  if (flags.config) {
    const mod = (await loadModule(resolve(flags.config), 0)) as { default?: Record<string, unknown> };
    config = (mod.default ?? mod) as Record<string, unknown>;
    if (!config || typeof config !== 'object') fail('work', `${flags.config}: the default export must be an object of options and hooks`);
  }
  const pick = (flag: string | undefined, key: string): unknown => flag ?? config[key];
  const queues = pick(flags.queue, 'queues');
  const queueList = (Array.isArray(queues) ? queues : String(queues ?? '*').split(',')).map((q) => String(q).trim()).filter(Boolean);
  if (queueList.length === 0) fail('work', '--queue names no queue');
  const hooks: WorkHooks = {};
  for (const name of ['beforeFirstFork', 'beforeFork', 'afterFork', 'onFailure'] as const) {
    const h = config[name];
    if (h !== undefined && typeof h !== 'function') fail('work', `config ${name} must be a function`);
    if (h) (hooks as Record<string, unknown>)[name] = h;
  }
  const concurrency = pick(flags.concurrency, 'concurrency');
  const maxMemory = pick(flags.maxMemory, 'maxMemory');
  // Checked here so a bad schedule stops the start with its one-line reason (exit 2).
  try {
    parseSchedules(config.schedule);
  } catch (err) {
    fail('work', `${flags.config}: ${(err as Error).message}`);
  }
  return {
    ...WORK_DEFAULTS,
    jobs,
    queues: queueList,
    concurrency: concurrency === undefined ? cpus().length : number('work', '--concurrency', concurrency, 1),
    backend: String(pick(flags.backend, 'backend') ?? defaultUrl()),
    timeout: number('work', '--timeout', pick(flags.timeout, 'timeout') ?? WORK_DEFAULTS.timeout, 0, false),
    maxMemory: maxMemory === undefined || maxMemory === null ? null : number('work', '--max-memory', maxMemory, 1, false),
    jobsPerFork: number('work', '--jobs-per-fork', pick(flags.jobsPerFork, 'jobsPerFork') ?? 1, 1),
    fork: flags.fork !== false && config.fork !== false,
    heartbeat: number('work', '--heartbeat', pick(flags.heartbeat, 'heartbeat') ?? WORK_DEFAULTS.heartbeat, 0.05, false),
    lapse: number('work', '--lapse', pick(flags.lapse, 'lapse') ?? WORK_DEFAULTS.lapse, 0.1, false),
    termTimeout: number('work', '--term-timeout', pick(flags.termTimeout, 'termTimeout') ?? WORK_DEFAULTS.termTimeout, 0, false),
    hooks,
    schedule: (config.schedule ?? {}) as Record<string, ScheduleConfig>,
  };
}

async function workCommand(jobs: string | undefined, flags: WorkFlags): Promise<void> {
  if (!jobs) fail('work', 'give the jobs module: unixproc work jobs.ts');
  // The worker forks: without V8's background threads (docs/fork-in-node.md).
  if (!isSingleThreaded()) exec(process.execPath, ['--single-threaded', ...process.execArgv, ...process.argv.slice(1)]);
  const options = await workOptions(jobs, flags);
  if (flags.stdout) IO.for(1).reopen(IO.open(flags.stdout, 'a'));
  if (flags.stderr) IO.for(2).reopen(IO.open(flags.stderr, 'a'));
  if (flags.daemonize) {
    const [r, w] = pipe();
    const pid = fork();
    if (pid !== null) {
      w.close();
      const verdict = r.gets() ?? '';
      r.close();
      await wait2(pid);
      if (verdict.startsWith('ok')) exitNow(0);
      fail('work', verdict.replace(/^error: /, '').trim() || 'the daemon exited before it was ready', 1);
    }
    r.close();
    daemon(true, Boolean(flags.stdout || flags.stderr));
    w.write('ok\n');
    w.close();
  }
  if (flags.pid) {
    const { writeFileSync, unlinkSync } = await import('node:fs');
    writeFileSync(flags.pid, `${process.pid}\n`);
    process.on('exit', () => {
      try {
        unlinkSync(flags.pid!);
      } catch {
        /* gone */
      }
    });
  }
  try {
    await new JobWorker(options).run();
  } catch (err) {
    fail('work', (err as Error)?.message ?? String(err), 1);
  }
  process.exit(0);
}

async function withBackend<T>(url: string | undefined, fn: (b: Backend) => Promise<T>): Promise<T> {
  const backend = await openBackend(url || defaultUrl());
  try {
    return await fn(backend);
  } finally {
    await backend.close();
  }
}

function print(json: boolean | undefined, value: unknown, table: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : table());
}

function rows(header: string[], data: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...data.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return `${[line(header), ...data.map(line)].join('\n')}\n`;
}

/** A schedule as `jobs schedule --json` prints it: times as ISO strings or null. */
function scheduleView(s: ScheduleRecord, now: Date) {
  let next: string | null = null;
  try {
    next = nextRun(s, now)?.toISOString() ?? null;
  } catch {
    // An expression this croner cannot read (published by another version): no next run to show.
  }
  return {
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    job: s.job,
    args: s.args,
    queue: s.queue,
    lastTick: s.lastTick === null ? null : new Date(s.lastTick).toISOString(),
    lastJobId: s.lastJobId,
    nextRun: next,
    updatedAt: new Date(s.updatedAt).toISOString(),
  };
}

export function addJobCommands(program: Command): void {
  program
    .command('work')
    .description('forking job worker: preload the jobs module once, fork a child per job (copy-on-write)')
    .argument('[jobs]', 'the jobs module (.js or .ts) exporting a handler per job name')
    .option('-q, --queue <names>', 'queues in priority order, comma-separated; * for all (default *)')
    .option('-n, --concurrency <n>', 'job children at once (default: the number of CPUs)')
    .option('-b, --backend <url>', 'sqlite:PATH (default sqlite:./unixproc-jobs.db or $UNIXPROC_JOBS_URL) or redis://host:port/db')
    .option('-t, --timeout <seconds>', `kill a job's child after this long (default ${WORK_DEFAULTS.timeout}; 0: no limit)`)
    .option('--max-memory <MiB>', "kill a job's child whose memory (RSS) goes over this")
    .option('--jobs-per-fork <n>', 'jobs one child runs before it exits (default 1)')
    .option('--no-fork', 'run jobs in the master (no isolation)')
    .option('--heartbeat <seconds>', `heartbeat interval (default ${WORK_DEFAULTS.heartbeat})`)
    .option('--lapse <seconds>', `a worker silent this long is dead and its jobs are recovered (default ${WORK_DEFAULTS.lapse})`)
    .option('--term-timeout <seconds>', `how long TERM waits for children before KILL (default ${WORK_DEFAULTS.termTimeout})`)
    .option('-c, --config <file>', 'config file (.js or .ts): options, hooks (beforeFirstFork, beforeFork, afterFork, onFailure) and schedule (recurring jobs)')
    .option('-D, --daemonize', 'detach from the terminal')
    .option('--pid <file>', 'write the master pid here')
    .option('--stdout <file>', 'append stdout to this file')
    .option('--stderr <file>', 'append stderr (and the JSON log) to this file')
    .action((jobs: string | undefined, flags: WorkFlags) => workCommand(jobs, flags));

  program
    .command('enqueue')
    .description('enqueue a job')
    .argument('<name>', 'the job name (a handler of the jobs module)')
    .argument('[args]', 'the arguments as a JSON array (default [])')
    .option('-q, --queue <name>', 'the queue (default "default")')
    .option('-b, --backend <url>', 'the store (default sqlite:./unixproc-jobs.db or $UNIXPROC_JOBS_URL)')
    .option('--delay <ms>', 'run no sooner than this many ms from now')
    .option('--attempts <n>', 'attempts in all (default 1)')
    .option('--unique <key>', 'deduplicate while a job with this key is pending or running')
    .action(async (name: string, argsJson: string | undefined, flags: { queue?: string; backend?: string; delay?: string; attempts?: string; unique?: string }) => {
      let args: unknown;
      try {
        args = argsJson === undefined ? [] : JSON.parse(argsJson);
      } catch (err) {
        fail('enqueue', `ARGS must be a JSON array: ${(err as Error).message}`);
      }
      if (!Array.isArray(args)) fail('enqueue', `ARGS must be a JSON array, got ${argsJson}`);
      let spec;
      try {
        spec = enqueueSpec(name, args, {
          queue: flags.queue,
          delay: flags.delay === undefined ? undefined : number('enqueue', '--delay', flags.delay, 0, false),
          attempts: flags.attempts === undefined ? undefined : number('enqueue', '--attempts', flags.attempts, 1),
          unique: flags.unique,
        });
      } catch (err) {
        fail('enqueue', (err as Error).message);
      }
      const [id] = await withBackend(flags.backend, (b) => b.enqueue([spec]));
      process.stdout.write(`${id}\n`);
    });

  const jobs = program.command('jobs').description('look at and steer the job store: stats, queues, workers, failed, retry, remove, clear, schedule');
  addWebCommand(jobs);
  const common = (c: Command) => c.option('-b, --backend <url>', 'the store (default sqlite:./unixproc-jobs.db or $UNIXPROC_JOBS_URL)').option('--json', 'print JSON');
  type Flags = { backend?: string; json?: boolean };
  common(jobs.command('stats').description('processed, failed, pending, delayed, running, workers')).action((f: Flags) =>
    withBackend(f.backend, async (b) => {
      const s = await b.stats();
      print(f.json, s, () => rows(['processed', 'failed', 'pending', 'delayed', 'running', 'failed kept', 'workers'], [[s.processed, s.failed, s.pending, s.delayed, s.running, s.failedKept, s.workers].map(String)]));
    }),
  );
  common(jobs.command('queues').description('queues and their sizes')).action((f: Flags) =>
    withBackend(f.backend, async (b) => {
      const q = await b.queues();
      print(f.json, q, () => rows(['queue', 'pending'], Object.entries(q).map(([k, v]) => [k, String(v)])));
    }),
  );
  common(jobs.command('workers').description('live workers and what they run')).action((f: Flags) =>
    withBackend(f.backend, async (b) => {
      const w = await b.workers();
      print(f.json, w, () =>
        rows(
          ['worker', 'queues', 'heartbeat', 'running'],
          w.map((x) => [x.id, x.queues.join(','), new Date(x.heartbeatAt).toISOString(), x.running.map((r) => `${r.job.name}#${r.job.id}`).join(' ') || '-']),
        ),
      );
    }),
  );
  common(jobs.command('failed').description('failed jobs, newest first'))
    .option('--offset <n>', 'skip this many', '0')
    .option('--limit <n>', 'show at most this many', '50')
    .action((f: Flags & { offset: string; limit: string }) =>
      withBackend(f.backend, async (b) => {
        const list = await b.failed(number('jobs failed', '--offset', f.offset, 0), number('jobs failed', '--limit', f.limit, 1));
        print(f.json, list, () =>
          rows(
            ['id', 'job', 'queue', 'attempts', 'failed at', 'error'],
            list.map((x) => [x.id, x.job.name, x.job.queue, String(x.job.attempt + 1), new Date(x.failedAt).toISOString(), `${x.exception}: ${x.error}`.slice(0, 100)]),
          ),
        );
      }),
    );
  common(jobs.command('retry').description('re-enqueue a failed job (or --all)'))
    .argument('[id]', 'the failure id (from `unixproc jobs failed`)')
    .option('--all', 'retry every failed job')
    .action((id: string | undefined, f: Flags & { all?: boolean }) =>
      withBackend(f.backend, async (b) => {
        if (!id && !f.all) fail('jobs retry', 'give a failure id or --all');
        const n = f.all ? await b.retryAll() : (await b.retry(id!)) ? 1 : 0;
        if (!f.all && n === 0) fail('jobs retry', `no failed job ${id}`, 1);
        print(f.json, { retried: n }, () => `retried ${n}\n`);
      }),
    );
  common(jobs.command('remove').description('remove a failed job'))
    .argument('<id>', 'the failure id')
    .action((id: string, f: Flags) =>
      withBackend(f.backend, async (b) => {
        if (!(await b.removeFailure(id))) fail('jobs remove', `no failed job ${id}`, 1);
        print(f.json, { removed: 1 }, () => 'removed 1\n');
      }),
    );
  common(jobs.command('schedule').description('recurring schedules the workers published, with their last and next run')).action((f: Flags) =>
    withBackend(f.backend, async (b) => {
      const now = new Date();
      const list = (await b.schedules()).map((s) => scheduleView(s, now));
      const when = (iso: string | null) => (iso === null ? '-' : iso.replace(/\.\d{3}Z$/, 'Z'));
      print(f.json, list, () =>
        rows(
          ['name', 'cron', 'timezone', 'job', 'queue', 'last run', 'last job', 'next run'],
          list.map((s) => [s.name, s.cron, s.timezone ?? 'local', s.job, s.queue, when(s.lastTick), s.lastJobId ?? '-', s.nextRun === null ? '-' : when(s.nextRun)]),
        ),
      );
    }),
  );
  common(jobs.command('clear').description('remove every pending job of a queue'))
    .argument('<queue>', 'the queue')
    .action((queue: string, f: Flags) =>
      withBackend(f.backend, async (b) => {
        const n = await b.clear(queue);
        print(f.json, { cleared: n }, () => `cleared ${n}\n`);
      }),
    );
}
