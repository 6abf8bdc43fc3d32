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
  /** The jobs its children run now; rss: that job child's resident memory in bytes, where known (not for --no-fork jobs). */
  running: Array<{ job: JobRecord; since: number; childPid: number | null; rss?: number }>;
  /** Its attempts that ended (done or failed) and those that failed, where the store counts them. */
  processed?: number;
  failed?: number;
  /** The worker master's resident memory in bytes at its last heartbeat, where it reported it. */
  rss?: number;
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

/** A recurring schedule as published by a worker master (jobs/schedule.ts), with its last tick. */
export interface ScheduleRecord {
  /** The key of the worker config's `schedule` object, e.g. "nightly". */
  name: string;
  cron: string;
  /** The job name it enqueues. */
  job: string;
  args: unknown[];
  queue: string;
  /** IANA time zone, or null for the worker's local time. */
  timezone: string | null;
  /** The last tick enqueued (its scheduled time, ms since the epoch), or null. */
  lastTick: number | null;
  /** The id of the job that tick enqueued, or null. */
  lastJobId: string | null;
  /** When a worker last published this definition (ms since the epoch). */
  updatedAt: number;
  /**
   * When it was first published (ms since the epoch): with no lastTick yet, ticks before
   * this are not run, so a new schedule does not fire at once for a tick that predates it.
   */
  firstPublishedAt: number;
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
  /**
   * Refreshes the worker's heartbeat and the lease of each job it holds, and records the
   * memory reported (rss: the master's, bytes; running[i].rss: each job child's).
   */
  heartbeat(workerId: string, running: WorkerInfo['running'], rss?: number): Promise<void>;
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
  minutes(since: number): Promise<MinuteCount[]>;
  /** Pending jobs whose runAt is still ahead, soonest first (the dashboard's delayed page). */
  delayed(offset: number, limit: number): Promise<JobRecord[]>;
  /**
   * Publishes the schedules a worker master runs (upsert by name; lastTick kept), so the
   * CLI and dashboard can list them without the worker's config.
   */
  publishSchedules(defs: Array<Omit<ScheduleRecord, 'lastTick' | 'lastJobId' | 'updatedAt' | 'firstPublishedAt'>>): Promise<void>;
  /**
   * Enqueues the job of one tick of a schedule, exactly once across every process sharing
   * the store: the first caller for (name, tick) gets the new job's id, later callers null.
   * Claim and enqueue are one atomic step, so a tick is never claimed without its job.
   * Only a tick later than the stored lastTick is taken, so lastTick only moves forward.
   * The schedule must have been published (an error otherwise).
   */
  enqueueTick(name: string, tick: number, spec: EnqueueSpec): Promise<string | null>;
  /** Published schedules, by name. */
  schedules(): Promise<ScheduleRecord[]>;
  /** Closes this process's connections; pending waitForWork calls resolve. */
  close(): Promise<void>;
}
