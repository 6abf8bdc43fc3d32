// The one interface every job store implements (jobs/sqlite.ts, jobs/redis.ts): what the
// worker master and the Queue need, and no more. A job's life: pending (maybe delayed)
// -> claimed by one worker under a lease -> done, or failed and retried, or kept as
// failed. A claim is atomic: a job is taken by exactly one worker.

/** A job as stored; args are JSON. */
export interface JobRecord {
  id: string;
  name: string;
  args: unknown[];
  queue: string;
  /** Attempts already made (0 before the first run). */
  attempt: number;
  /** The most attempts allowed (1: no retry). */
  attempts: number;
  /** Base delay in ms of the exponential backoff between attempts. */
  backoff: number;
  /** Per-job timeout in seconds, or null for the worker's default. */
  timeout: number | null;
  /** The deduplication key, when enqueued with `unique`. */
  unique: string | null;
  /** ms since the epoch. */
  enqueuedAt: number;
  /** When it may run first (ms since the epoch); equal to enqueuedAt unless delayed. */
  runAt: number;
}

export interface EnqueueSpec {
  name: string;
  args: unknown[];
  queue: string;
  runAt: number;
  attempts: number;
  backoff: number;
  timeout: number | null;
  unique: string | null;
}

/** A failure as kept: the job, why, and where. */
export interface FailureRecord {
  job: JobRecord;
  error: string;
  /** The error's class or the exit status in Process.Status's words, e.g. "SIGKILL (signal 9)". */
  exception: string;
  backtrace: string[];
  worker: string;
  failedAt: number;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  queues: string[];
  startedAt: number;
  heartbeatAt: number;
  /** The jobs its children run now. */
  running: Array<{ job: JobRecord; since: number; childPid: number | null }>;
  /** Its attempts that ended (done or failed) and those that failed, where the store counts them. */
  processed?: number;
  failed?: number;
}

/** Attempts that ended in one minute (minute: its start, ms since the epoch). */
export interface MinuteCount {
  minute: number;
  done: number;
  failed: number;
}

export interface Stats {
  processed: number;
  failed: number;
  pending: number;
  delayed: number;
  running: number;
  failedKept: number;
  queues: Record<string, number>;
  workers: number;
}

export interface Backend {
  /** The URL it was opened with, for messages. */
  readonly url: string;
  /** Stores jobs; returns their ids in order. A `unique` job already pending or running returns the existing id. */
  enqueue(specs: EnqueueSpec[]): Promise<string[]>;
  /** Registers (or refreshes) a worker; `queues` may contain '*'. */
  registerWorker(info: { id: string; host: string; pid: number; queues: string[] }): Promise<void>;
  /** Removes a worker that stops (its claims must already be released or finished). */
  unregisterWorker(id: string): Promise<void>;
  /** Refreshes the worker's heartbeat and the lease of each job it holds. */
  heartbeat(workerId: string, running: WorkerInfo['running']): Promise<void>;
  /**
   * Atomically takes the first runnable job of the first non-empty queue (in the order
   * given; '*' for all, by name), marking it claimed by workerId; null when none.
   */
  claim(workerId: string, queues: string[]): Promise<JobRecord | null>;
  /** The job ran to success. */
  complete(workerId: string, job: JobRecord): Promise<void>;
  /**
   * The attempt failed. With retryAt, the job goes back to its queue to run at that
   * time (attempt counted); without, it is kept as failed.
   */
  fail(workerId: string, job: JobRecord, failure: Omit<FailureRecord, 'job' | 'failedAt'>, retryAt: number | null): Promise<void>;
  /** Puts a claimed job back as not attempted (a worker stopping with TERM). */
  release(workerId: string, job: JobRecord): Promise<void>;
  /**
   * Workers whose heartbeat is older than lapseMs are dead: their claimed jobs are
   * failed as one attempt (reason given) and retried per their policy, and they are
   * pruned. Returns the jobs recovered.
   */
  recoverLapsed(lapseMs: number, reason: string, retryAt: (job: JobRecord) => number | null): Promise<JobRecord[]>;
  /** Resolves when work may be available on these queues, or after timeoutMs (at once after close()). */
  waitForWork(queues: string[], timeoutMs: number): Promise<void>;

  stats(): Promise<Stats>;
  queues(): Promise<Record<string, number>>;
  workers(): Promise<WorkerInfo[]>;
  /** Kept failures, oldest first. */
  failed(offset: number, limit: number): Promise<Array<FailureRecord & { id: string }>>;
  /** Re-enqueues a failed job (attempts reset); false when there is no such failure. */
  retry(failureId: string): Promise<boolean>;
  retryAll(): Promise<number>;
  removeFailure(failureId: string): Promise<boolean>;
  /** Removes every pending job of a queue; returns how many. */
  clear(queue: string): Promise<number>;
  /** Looks one job up by id, wherever it is. */
  job(id: string): Promise<(JobRecord & { state: 'pending' | 'delayed' | 'running' | 'done' | 'failed' }) | null>;
  /** Per-minute counts of ended attempts from the minute holding `since` on, oldest first; minutes with none are left out. */
  minutes?(since: number): Promise<MinuteCount[]>;
  /** Closes this process's connections; pending waitForWork calls resolve. */
  close(): Promise<void>;
}
