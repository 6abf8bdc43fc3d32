// Drives a real `unixproc work` master (spawned from bin/unixproc.js) against a real
// store, with a jobs module written per test whose handlers record every run in a log
// file (O_APPEND lines: job id, attempt, pid), so a test can count what ran where.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBackend, type FailureRecord, type Stats } from '../jobs/index.js';
import { sleep } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const cliPath = join(root, 'bin', 'unixproc.js');
export const jobsUrl = new URL('../jobs/index.js', import.meta.url).href;

/** A jobs module: the standard recording handlers plus `extra` source. */
export function writeJobsModule(dir: string, extra = ''): string {
  const file = join(dir, 'jobs.mjs');
  writeFileSync(
    file,
    `import { appendFileSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { currentJob, Queue } from ${JSON.stringify(jobsUrl)};
const LOG = ${JSON.stringify(join(dir, 'runs.log'))};
export function record(tag = '') {
  const j = currentJob();
  appendFileSync(LOG, JSON.stringify({ id: j.id, name: j.name, attempt: j.attempt, queue: j.queue, pid: process.pid, tag, at: Date.now() }) + '\\n');
}
export function Noop() { record(); }
export async function Sleep(ms) { record(); await new Promise((r) => setTimeout(r, ms)); }
export function Add(a, b) { record(String(a + b)); }
export function Exit(code) { record(); process.exit(code); }
export function Throw(msg) { record(); throw new TypeError(msg); }
export async function Reject(msg) { record(); await null; throw new Error(msg); }
export function UncaughtLater(msg) { record(); setTimeout(() => { throw new Error(msg); }, 5); return new Promise(() => {}); }
export function UnhandledRejection(msg) { record(); Promise.reject(new Error(msg)); return new Promise((r) => setTimeout(r, 2000)); }
export function KillSelf(sig) { record(); process.kill(process.pid, sig); return new Promise(() => {}); }
export function Hang() { record(); setInterval(() => {}, 1000); return new Promise(() => {}); }
export function Hog(mib) { record(); const keep = []; for (let i = 0; i < mib; i++) keep.push(Buffer.alloc(1 << 20, 1)); globalThis.keep = keep; setInterval(() => {}, 1000); return new Promise(() => {}); }
export function FailTimes(key, times) {
  record();
  const f = ${JSON.stringify(dir)} + '/count-' + key;
  const n = existsSync(f) ? Number(readFileSync(f, 'utf8')) : 0;
  writeFileSync(f, String(n + 1));
  if (n < times) throw new Error('failing attempt ' + (n + 1));
}
export async function Chain(url, n) { record(); if (n > 0) { const q = new Queue(url); await q.enqueue('Chain', [url, n - 1], { queue: currentJob().queue }); await q.close(); } }
export class Archive { static perform(id, what) { record(id + ':' + what); } }
${extra}
`,
  );
  return file;
}

export interface Run {
  id: string;
  name: string;
  attempt: number;
  queue: string;
  pid: number;
  tag: string;
  /** ms since the epoch when the handler ran. */
  at: number;
}

export function runs(dir: string): Run[] {
  const file = join(dir, 'runs.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

export class Worker {
  readonly proc: ChildProcess;
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(jobsFile: string, backend: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
    this.proc = spawn(process.execPath, ['--single-threaded', cliPath, 'work', jobsFile, '-b', backend, '--heartbeat', '0.5', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.proc.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((res) => this.proc.on('exit', (code, signal) => res({ code, signal })));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Lines of the JSON log with this event. */
  events(event: string): Array<Record<string, unknown>> {
    return this.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return {};
        }
      })
      .filter((e) => e.event === event);
  }

  async ready(ms = 30_000): Promise<void> {
    await until(() => this.events('worker.start').length > 0, ms, () => `worker start (stderr: ${this.stderr})`);
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  /** QUIT and wait; KILL if it does not stop in time (and fail). */
  async stop(ms = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.signal('SIGQUIT');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(25);
  }
}

/** True while a process with this pid exists (zombies count as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The store's stats, read through a backend opened for the call (as `unixproc jobs stats` does). */
export async function storeStats(url: string): Promise<Stats> {
  const b = await openBackend(url);
  try {
    return await b.stats();
  } finally {
    await b.close();
  }
}

/** The store's failure records (up to 1000), newest first, through a backend opened for the call. */
export async function storeFailures(url: string): Promise<Array<FailureRecord & { id: string }>> {
  const b = await openBackend(url);
  try {
    return await b.failed(0, 1000);
  } finally {
    await b.close();
  }
}
