// Queue: enqueueing jobs from any process (an HTTP worker of `unixproc serve`, a job that
// enqueues more jobs, a script). A Queue made before a fork keeps working in the child:
// the backends never reuse the parent's Redis socket or SQLite handle there.
import { assertJsonArgs, describe } from './args.js';
import type { Backend, EnqueueSpec } from './backend.js';
import { defaultUrl, openBackend } from './open.js';

export interface EnqueueOptions {
  /** Default 'default'. */
  queue?: string;
  /** Run no sooner than this many ms from now. */
  delay?: number;
  /** Run no sooner than this time. */
  runAt?: Date | number;
  /** Attempts in all, the first included (default 1: no retry). */
  attempts?: number;
  /** Base of the exponential backoff between attempts, in ms (default 1000). */
  backoff?: number;
  /** While a job with this key is pending or running, enqueueing another returns its id. true: the key is the name and arguments. */
  unique?: string | boolean;
  /** Seconds before the job's child is killed (default: the worker's --timeout). */
  timeout?: number;
}

const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,200}$/;

export function enqueueSpec(name: unknown, args: unknown = [], opts: EnqueueOptions = {}): EnqueueSpec {
  if (typeof name !== 'string' || name === '') throw new TypeError(`enqueue(name): name must be a non-empty string, got ${describe(name)}`);
  assertJsonArgs(name, args);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`enqueue(${JSON.stringify(name)}, args, options): options must be an object`);
  const queue = opts.queue ?? 'default';
  if (typeof queue !== 'string' || !QUEUE_NAME.test(queue)) {
    throw new RangeError(`enqueue options.queue must be 1-200 letters, digits or _.:- , got ${describe(queue)}`);
  }
  if (opts.delay !== undefined && opts.runAt !== undefined) throw new TypeError('enqueue options: give delay or runAt, not both');
  const now = Date.now();
  let runAt = now;
  if (opts.delay !== undefined) runAt = now + nonNegative(opts.delay, 'options.delay');
  if (opts.runAt !== undefined) {
    const t = opts.runAt instanceof Date ? opts.runAt.getTime() : opts.runAt;
    if (typeof t !== 'number' || !Number.isFinite(t)) throw new TypeError(`enqueue options.runAt must be a Date or ms since the epoch, got ${describe(opts.runAt)}`);
    runAt = Math.max(now, t);
  }
  const attempts = opts.attempts ?? 1;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError(`enqueue options.attempts must be an integer >= 1, got ${describe(attempts)}`);
  const backoff = opts.backoff === undefined ? 1000 : nonNegative(opts.backoff, 'options.backoff');
  let timeout: number | null = null;
  if (opts.timeout !== undefined) {
    if (typeof opts.timeout !== 'number' || !(opts.timeout > 0)) throw new RangeError(`enqueue options.timeout must be a number of seconds > 0, got ${describe(opts.timeout)}`);
    timeout = opts.timeout;
  }
  let unique: string | null = null;
  if (opts.unique === true) unique = `${name}:${JSON.stringify(args)}`;
  else if (typeof opts.unique === 'string' && opts.unique !== '') unique = opts.unique;
  else if (opts.unique !== undefined && opts.unique !== false) throw new TypeError(`enqueue options.unique must be a non-empty string or a boolean, got ${describe(opts.unique)}`);
  return { name, args: args as unknown[], queue, runAt, attempts, backoff, timeout, unique };
}

function nonNegative(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`enqueue ${what} must be a number >= 0, got ${describe(v)}`);
  return v;
}

export class Queue {
  readonly url: string;
  private backend?: Promise<Backend>;

  /** url: sqlite:PATH or redis://host:port/db (default $UNIXPROC_JOBS_URL, else sqlite:./unixproc-jobs.db). */
  constructor(url: string = defaultUrl()) {
    if (typeof url !== 'string') throw new TypeError(`new Queue(url): url must be a string, got ${describe(url)}`);
    this.url = url;
  }

  private open(): Promise<Backend> {
    return (this.backend ??= openBackend(this.url));
  }

  /** Stores a job; resolves to its id (for a `unique` job still pending or running: that job's id). */
  async enqueue(name: string, args: unknown[] = [], options: EnqueueOptions = {}): Promise<string> {
    const spec = enqueueSpec(name, args, options);
    const [id] = await (await this.open()).enqueue([spec]);
    return id;
  }

  /** Stores many jobs in one go (one transaction or pipeline); resolves to their ids in order. */
  async enqueueMany(jobs: Array<{ name: string; args?: unknown[]; options?: EnqueueOptions }>): Promise<string[]> {
    if (!Array.isArray(jobs)) throw new TypeError(`enqueueMany(jobs): jobs must be an array, got ${describe(jobs)}`);
    const specs = jobs.map((j, i) => {
      if (!j || typeof j !== 'object') throw new TypeError(`enqueueMany(jobs): jobs[${i}] must be { name, args?, options? }`);
      return enqueueSpec(j.name, j.args ?? [], j.options ?? {});
    });
    if (specs.length === 0) return [];
    return (await this.open()).enqueue(specs);
  }

  /** The backend, for management calls (stats, failed, retry...). */
  store(): Promise<Backend> {
    return this.open();
  }

  async close(): Promise<void> {
    if (this.backend) await (await this.backend).close();
    this.backend = undefined;
  }
}
