// The SQLite job store: one database file shared by every process on a machine (worker
// masters claiming, HTTP workers enqueueing), through better-sqlite3. Writes are short
// BEGIN IMMEDIATE transactions, so a claim or a recovery is atomic across processes;
// waitForWork wakes on other processes' commits by watching the file's directory.
import Database from 'better-sqlite3';
import { existsSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onForkChild } from '../src/index.js';
import type { Backend, EnqueueSpec, FailureRecord, JobRecord, MinuteCount, ScheduleRecord, Stats, WorkerInfo } from './backend.js';

type DB = Database.Database;
type JobState = 'pending' | 'delayed' | 'running' | 'done' | 'failed';

export interface SqliteOptions {
  /**
   * 'normal' (the default) or 'full'. In WAL mode a commit reaches the -wal file through
   * write(2) before COMMIT returns under either, so kill -9 of any or every process loses
   * no transaction that returned: the data is in the kernel's page cache. NORMAL skips the
   * fsync of each commit, so a power loss or kernel crash may lose the last transactions
   * (never corrupting the file); 'full' fsyncs every commit (a few ms each on most disks).
   */
  synchronous?: 'normal' | 'full';
  /** How long a write waits for another process's transaction (ms, default 10 000). */
  busyTimeoutMs?: number;
  /** waitForWork's fallback poll, for a wake-up the file watch missed (ms, default 250). */
  pollMs?: number;
  /** Done jobs are kept this long for job(id) (ms, default a day). */
  keepDoneMs?: number;
  /** Per-minute counters are kept this long (ms, default 7 days). */
  keepMinutesMs?: number;
}

const SCHEMA_VERSION = 2;

// state is 'queued' (pending, or delayed while run_at is ahead), 'running', 'done' or
// 'failed'. A job keeps its row from enqueue to the end, retries included; AUTOINCREMENT
// so that an id is never reused after done jobs are pruned. The unique index holds only
// live jobs: a key is free again once its job is done or failed.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  args TEXT NOT NULL,
  queue TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  backoff INTEGER NOT NULL,
  timeout REAL,
  uniq TEXT,
  enqueued_at INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  worker TEXT,
  claimed_at INTEGER,
  renewed_at INTEGER,
  child_pid INTEGER,
  finished_at INTEGER,
  last_error TEXT,
  child_rss INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs (state, queue, run_at);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, run_at);
CREATE INDEX IF NOT EXISTS jobs_claimed ON jobs (worker) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_done ON jobs (finished_at) WHERE state = 'done';
CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique ON jobs (uniq) WHERE uniq IS NOT NULL AND state IN ('queued', 'running');
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY) WITHOUT ROWID; -- every queue ever enqueued to
CREATE TABLE IF NOT EXISTS failures (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_seq INTEGER NOT NULL,
  job TEXT NOT NULL,
  error TEXT NOT NULL,
  exception TEXT NOT NULL,
  backtrace TEXT NOT NULL,
  worker TEXT NOT NULL,
  failed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_job ON failures (job_seq);
CREATE TABLE IF NOT EXISTS workers (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  queues TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  processed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  rss INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS minutes (minute INTEGER PRIMARY KEY, done INTEGER NOT NULL, failed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (
  name TEXT PRIMARY KEY,
  cron TEXT NOT NULL,
  timezone TEXT,
  job TEXT NOT NULL,
  args TEXT NOT NULL,
  queue TEXT NOT NULL,
  last_tick INTEGER,
  last_job INTEGER,
  first_published_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`;

// From schema 1 (unixproc before recurring jobs): the memory columns; SCHEMA then adds the
// schedules table and leaves the rest as it is.
const MIGRATE_FROM_1 = `
ALTER TABLE jobs ADD COLUMN child_rss INTEGER;
ALTER TABLE workers ADD COLUMN rss INTEGER;
`;

interface JobRow {
  seq: number;
  name: string;
  args: string;
  queue: string;
  attempt: number;
  attempts: number;
  backoff: number;
  timeout: number | null;
  uniq: string | null;
  enqueued_at: number;
  run_at: number;
  state: string;
  worker: string | null;
  claimed_at: number | null;
  child_pid: number | null;
  child_rss: number | null;
}

interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string | null;
  job: string;
  args: string;
  queue: string;
  last_tick: number | null;
  last_job: number | null;
  first_published_at: number;
  updated_at: number;
}

interface FailureRow {
  id: number;
  job_seq: number;
  job: string;
  error: string;
  exception: string;
  backtrace: string;
  worker: string;
  failed_at: number;
}

interface Waiter {
  queues: string[];
  resolve: () => void;
  deadline: NodeJS.Timeout;
  due: NodeJS.Timeout | null;
  dueAt: number;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The better-sqlite3 addon built for this Node's ABI by scripts/build-sqlite.mjs, when
 * there is one for the installed better-sqlite3 version; undefined means npm's own build
 * (for the Node that ran `npm install`).
 */
export function nativeBindingPath(): string | undefined {
  const file = join(root, 'build-abi', process.versions.modules, 'better_sqlite3.node');
  if (!existsSync(file)) return undefined;
  try {
    const installed = (createRequire(import.meta.url)('better-sqlite3/package.json') as { version: string }).version;
    // The stamp's first line is the better-sqlite3 version the addon was built from.
    return readFileSync(`${file}.version`, 'utf8').split('\n')[0].trim() === installed ? file : undefined;
  } catch {
    return undefined;
  }
}

/** `sqlite:PATH` (relative to the current directory) or `sqlite::memory:` → the path. */
export function parseSqliteUrl(url: string): string {
  if (typeof url !== 'string' || !url.startsWith('sqlite:') || url.length === 'sqlite:'.length) {
    throw new TypeError(`url must be sqlite:PATH or sqlite::memory:, got ${JSON.stringify(url)}`);
  }
  return url.slice('sqlite:'.length);
}

// Connections a forked child inherited, with their prepared statements. SQLite forbids
// using them there, and closing one (or letting the GC finalize it or a statement) would
// run SQLite's close on the parent's file state; a child leaves through _exit, so holding
// them here until then costs nothing.
const inherited: Array<{ db: DB; statements: Map<string, Database.Statement> }> = [];

// Backends with an open connection, for the fork handler (in the class).
const live = new Set<SqliteBackend>();

const describe = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? (Array.isArray(v) ? 'an array' : 'an object') : String(v));

function nonEmptyString(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new TypeError(`${what} must be a non-empty string, got ${describe(v)}`);
  return v;
}

function finiteNumber(v: unknown, what: string, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${what} must be a finite number, got ${describe(v)}`);
  if (v < min) throw new RangeError(`${what} must be >= ${min}, got ${v}`);
  return v;
}

function queueList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw new TypeError(`${what} must be a non-empty array of queue names, got ${describe(v)}`);
  v.forEach((q, i) => nonEmptyString(q, `${what}[${i}]`));
  return v as string[];
}

function jobIdOf(job: unknown, what: string): number {
  const id = (job as JobRecord | null)?.id;
  if (typeof job !== 'object' || job === null || typeof id !== 'string' || !/^[1-9]\d*$/.test(id)) {
    throw new TypeError(`${what} must be a job as claimed (with a string id), got ${describe(job)}`);
  }
  return Number(id);
}

function checkSpec(s: EnqueueSpec, i: number): EnqueueSpec {
  const at = `enqueue: specs[${i}]`;
  if (typeof s !== 'object' || s === null) throw new TypeError(`${at} must be an object, got ${describe(s)}`);
  nonEmptyString(s.name, `${at}.name`);
  if (!Array.isArray(s.args)) throw new TypeError(`${at}.args must be an array, got ${describe(s.args)}`);
  nonEmptyString(s.queue, `${at}.queue`);
  if (s.queue === '*') throw new RangeError(`${at}.queue must name one queue; '*' means all queues when claiming`);
  finiteNumber(s.runAt, `${at}.runAt`);
  if (!Number.isInteger(s.attempts)) throw new TypeError(`${at}.attempts must be an integer, got ${describe(s.attempts)}`);
  if (s.attempts < 1) throw new RangeError(`${at}.attempts must be >= 1, got ${s.attempts}`);
  finiteNumber(s.backoff, `${at}.backoff`, 0);
  if (s.timeout != null) finiteNumber(s.timeout, `${at}.timeout`, Number.MIN_VALUE);
  if (s.unique != null) nonEmptyString(s.unique, `${at}.unique`);
  return s;
}

/** A memory figure as reported (bytes), or null when not reported. */
function byteCount(v: unknown, what: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new TypeError(`${what} must be a whole number of bytes >= 0, got ${describe(v)}`);
  return v;
}

function pageArgs(offset: unknown, limit: unknown, what: string): void {
  if (!Number.isInteger(offset) || (offset as number) < 0) throw new RangeError(`${what}: offset must be an integer >= 0, got ${describe(offset)}`);
  if (!Number.isInteger(limit) || (limit as number) < 0) throw new RangeError(`${what}: limit must be an integer >= 0, got ${describe(limit)}`);
}

function toSchedule(r: ScheduleRow): ScheduleRecord {
  return {
    name: r.name,
    cron: r.cron,
    job: r.job,
    args: JSON.parse(r.args) as unknown[],
    queue: r.queue,
    timezone: r.timezone,
    lastTick: r.last_tick,
    lastJobId: r.last_job === null ? null : String(r.last_job),
    updatedAt: r.updated_at,
    firstPublishedAt: r.first_published_at,
  };
}

function toJob(r: JobRow): JobRecord {
  return {
    id: String(r.seq),
    name: r.name,
    args: JSON.parse(r.args) as unknown[],
    queue: r.queue,
    attempt: r.attempt,
    attempts: r.attempts,
    backoff: r.backoff,
    timeout: r.timeout,
    unique: r.uniq,
    enqueuedAt: r.enqueued_at,
    runAt: r.run_at,
  };
}

/** A schedule definition as publishSchedules stores it (args as JSON). */
function checkScheduleDef(d: Omit<ScheduleRecord, 'lastTick' | 'lastJobId' | 'updatedAt' | 'firstPublishedAt'>, at: string) {
  if (typeof d !== 'object' || d === null) throw new TypeError(`${at} must be an object, got ${describe(d)}`);
  nonEmptyString(d.name, `${at}.name`);
  nonEmptyString(d.cron, `${at}.cron`);
  nonEmptyString(d.job, `${at}.job`);
  nonEmptyString(d.queue, `${at}.queue`);
  if (!Array.isArray(d.args)) throw new TypeError(`${at}.args must be an array, got ${describe(d.args)}`);
  if (d.timezone !== null && typeof d.timezone !== 'string') throw new TypeError(`${at}.timezone must be a string or null, got ${describe(d.timezone)}`);
  return { name: d.name, cron: d.cron, timezone: d.timezone || null, job: d.job, args: JSON.stringify(d.args), queue: d.queue };
}

function toFailure(r: FailureRow): FailureRecord & { id: string } {
  return {
    id: String(r.id),
    job: JSON.parse(r.job) as JobRecord,
    error: r.error,
    exception: r.exception,
    backtrace: JSON.parse(r.backtrace) as string[],
    worker: r.worker,
    failedAt: r.failed_at,
  };
}

const minuteOf = (ms: number): number => ms - (ms % 60_000);

export class SqliteBackend implements Backend {
  readonly url: string;
  /** The database file (absolute), or ':memory:'. */
  readonly path: string;
  readonly #options: Required<SqliteOptions>;
  #db: DB | null = null;
  #pid = 0;
  #statements = new Map<string, Database.Statement>();
  #closed = false;
  #lastPrune = 0;
  readonly #waiters = new Set<Waiter>();
  #watcher: FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #settle: NodeJS.Timeout | null = null;
  #dataVersion = -1;

  // In a forked child, every backend drops what it holds of the parent's before any of the
  // child's code runs: the connection (kept in `inherited`) and the pending waitForWork
  // calls, which must never resolve here, or the parent's code awaiting them would go on
  // running in the child. The child's first call opens a connection of its own.
  static {
    onForkChild(() => {
      for (const b of live) b.#forgetParent();
      live.clear();
    });
  }

  /** Opens (creating when missing) the database at `sqlite:PATH` or `sqlite::memory:`. */
  static fromUrl(url: string, options: SqliteOptions = {}): SqliteBackend {
    return new SqliteBackend(parseSqliteUrl(url), options);
  }

  /**
   * `path` is resolved against the current directory now, so a later chdir (daemon()
   * goes to /) keeps the same file. ':memory:' is a private database, for tests: each
   * process (a forked child too) gets its own empty one.
   */
  constructor(path: string, options: SqliteOptions = {}) {
    nonEmptyString(path, 'path');
    if (typeof options !== 'object' || options === null) throw new TypeError(`options must be an object, got ${describe(options)}`);
    const synchronous = options.synchronous ?? 'normal';
    if (synchronous !== 'normal' && synchronous !== 'full') throw new RangeError(`options.synchronous must be 'normal' or 'full', got ${describe(synchronous)}`);
    this.#options = {
      synchronous,
      busyTimeoutMs: Math.trunc(finiteNumber(options.busyTimeoutMs ?? 10_000, 'options.busyTimeoutMs', 0)),
      pollMs: finiteNumber(options.pollMs ?? 250, 'options.pollMs', 1),
      keepDoneMs: finiteNumber(options.keepDoneMs ?? 24 * 3600_000, 'options.keepDoneMs', 0),
      keepMinutesMs: finiteNumber(options.keepMinutesMs ?? 7 * 24 * 3600_000, 'options.keepMinutesMs', 0),
    };
    this.path = path === ':memory:' ? path : resolve(path);
    this.url = `sqlite:${path}`;
    this.#conn(); // a bad path or an unloadable addon fails here, not at the first enqueue
  }

  // ---- the connection, per process ---------------------------------------------------

  /**
   * This process's connection. A forked child (process.pid differs from the opener's)
   * gets a new one: SQLite's connection state, locks included, must not cross fork(2).
   * SQLite's per-process table of open files is copied too, and the child's connection
   * joins the entry of the parent's, which counts the parent's POSIX locks as held (fork
   * does not pass them on): the child's connection is safe while the parent's stays open,
   * as a worker master's does while its job children run.
   */
  #conn(): DB {
    if (this.#closed) throw new Error(`${this.url}: the backend is closed`);
    const pid = process.pid;
    // The fork handler has normally done this; the pid is the backstop.
    if (this.#db !== null && this.#pid !== pid) this.#forgetParent();
    if (this.#db === null) {
      this.#db = this.#open();
      this.#pid = pid;
      live.add(this);
    }
    return this.#db;
  }

  /** In a forked child: lets go of the parent's connection and waits without touching them. */
  #forgetParent(): void {
    if (this.#db !== null) inherited.push({ db: this.#db, statements: this.#statements });
    this.#db = null;
    this.#statements = new Map();
    this.#dataVersion = -1;
    this.#lastPrune = 0;
    for (const w of this.#waiters) {
      clearTimeout(w.deadline);
      if (w.due) clearTimeout(w.due);
    }
    this.#waiters.clear();
    this.#stopWatching();
  }

  #open(): DB {
    const nativeBinding = nativeBindingPath();
    let db: DB;
    try {
      db = new Database(this.path, { timeout: this.#options.busyTimeoutMs, ...(nativeBinding ? { nativeBinding } : {}) });
    } catch (err) {
      const msg = (err as Error).message;
      if (/NODE_MODULE_VERSION|invalid ELF|cannot open shared object|Could not locate the bindings/.test(msg)) {
        throw new Error(
          `${this.url}: better-sqlite3's addon does not load in Node ${process.version} (ABI ${process.versions.modules}); ` +
            'build it for this Node with `node scripts/build-sqlite.mjs` (for the versions in tools/node-versions) ' +
            `or \`npm rebuild better-sqlite3\`: ${msg}`,
        );
      }
      throw new Error(`${this.url}: cannot open the database: ${msg}`, { cause: err });
    }
    try {
      if (this.path !== ':memory:') this.#enableWal(db);
      db.pragma(`synchronous = ${this.#options.synchronous.toUpperCase()}`);
      db.exec('BEGIN IMMEDIATE');
      try {
        const version = db.pragma('user_version', { simple: true }) as number;
        if (version > SCHEMA_VERSION) {
          throw new Error(`${this.url}: the database has schema version ${version}, newer than this unixproc's (${SCHEMA_VERSION}); upgrade unixproc`);
        }
        if (version < SCHEMA_VERSION) {
          if (version === 1) db.exec(MIGRATE_FROM_1);
          db.exec(SCHEMA);
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }
        db.exec('COMMIT');
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    } catch (err) {
      db.close();
      throw err;
    }
    return db;
  }

  // Switching to WAL takes a lock that busy_timeout does not always wait for: two processes
  // creating the file at once see SQLITE_BUSY, so retry until the busy timeout is spent.
  #enableWal(db: DB): void {
    const until = Date.now() + this.#options.busyTimeoutMs;
    for (;;) {
      try {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (mode !== 'wal') throw new Error(`${this.url}: SQLite refused WAL mode (journal_mode is ${String(mode)}); the file must be on a local filesystem`);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > until) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  }

  #stmt(sql: string): Database.Statement {
    const db = this.#conn();
    let s = this.#statements.get(sql);
    if (!s) {
      s = db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /** Runs fn in a BEGIN IMMEDIATE transaction: it holds the write lock from the start, so nothing it read goes stale. */
  #write<T>(fn: (now: number) => T): T {
    const db = this.#conn();
    this.#stmt('BEGIN IMMEDIATE').run();
    try {
      const result = fn(Date.now());
      this.#stmt('COMMIT').run();
      return result;
    } catch (err) {
      if (db.inTransaction) this.#stmt('ROLLBACK').run();
      throw err;
    }
  }

  /** Runs fn in one read transaction, for answers that add up (stats). */
  #read<T>(fn: (now: number) => T): T {
    const db = this.#conn();
    this.#stmt('BEGIN DEFERRED').run();
    try {
      return fn(Date.now());
    } finally {
      if (db.inTransaction) this.#stmt('COMMIT').run();
    }
  }

  #count(name: string, by: number): void {
    this.#stmt('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value').run(name, by);
  }

  /** One finished attempt in the totals, the minute's counts and the worker's. */
  #tally(now: number, workerId: string, failed: boolean): void {
    this.#count('processed', 1);
    if (failed) this.#count('failed', 1);
    this.#stmt('INSERT INTO minutes (minute, done, failed) VALUES (?, ?, ?) ON CONFLICT (minute) DO UPDATE SET done = done + excluded.done, failed = failed + excluded.failed').run(
      minuteOf(now),
      failed ? 0 : 1,
      failed ? 1 : 0,
    );
    this.#stmt('UPDATE workers SET processed = processed + 1, failed = failed + ? WHERE id = ?').run(failed ? 1 : 0, workerId);
  }

  // Done jobs and old minutes go at most once a minute per process (sooner for a shorter
  // keepDoneMs), inside a write that holds the lock anyway.
  #pruneNow(now: number): void {
    if (now - this.#lastPrune < Math.min(60_000, this.#options.keepDoneMs)) return;
    this.#lastPrune = now;
    this.#stmt("DELETE FROM jobs WHERE state = 'done' AND finished_at < ?").run(now - this.#options.keepDoneMs);
    this.#stmt('DELETE FROM minutes WHERE minute < ?').run(minuteOf(now - this.#options.keepMinutesMs));
  }

  #row(seq: number): JobRow | undefined {
    return this.#stmt('SELECT * FROM jobs WHERE seq = ?').get(seq) as JobRow | undefined;
  }

  /** The job's row when workerId still holds its claim (a lapsed worker's was recovered). */
  #held(seq: number, workerId: string): JobRow | undefined {
    return this.#stmt("SELECT * FROM jobs WHERE seq = ? AND state = 'running' AND worker = ?").get(seq, workerId) as JobRow | undefined;
  }

  #liveWithKey(unique: string): number | undefined {
    return (this.#stmt("SELECT seq FROM jobs WHERE uniq = ? AND state IN ('queued', 'running')").get(unique) as { seq: number } | undefined)?.seq;
  }

  /** Stores a failure kept for retry(): the job as it is now, its attempt counted. */
  #keepFailure(row: JobRow, failure: Omit<FailureRecord, 'job' | 'failedAt'>, now: number): void {
    this.#stmt("UPDATE jobs SET state = 'failed', attempt = ?, worker = NULL, child_pid = NULL, finished_at = ?, last_error = ? WHERE seq = ?").run(row.attempt, now, failure.error, row.seq);
    this.#stmt('INSERT INTO failures (job_seq, job, error, exception, backtrace, worker, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
      row.seq,
      JSON.stringify(toJob(row)),
      failure.error,
      failure.exception,
      JSON.stringify(failure.backtrace),
      failure.worker,
      now,
    );
  }

  /** The failed attempt of a claimed job: back in its queue at retryAt, or kept as failed. */
  #failAttempt(held: JobRow, workerId: string, failure: Omit<FailureRecord, 'job' | 'failedAt'>, retryAt: number | null, now: number): void {
    const row = { ...held, attempt: held.attempt + 1 };
    if (retryAt === null) this.#keepFailure(row, failure, now);
    else {
      this.#stmt("UPDATE jobs SET state = 'queued', attempt = ?, run_at = ?, worker = NULL, child_pid = NULL, last_error = ? WHERE seq = ?").run(
        row.attempt,
        Math.round(retryAt),
        failure.error,
        row.seq,
      );
    }
    this.#tally(now, workerId, true);
  }

  // ---- the Backend -------------------------------------------------------------------

  async enqueue(specs: EnqueueSpec[]): Promise<string[]> {
    if (!Array.isArray(specs)) throw new TypeError(`enqueue: specs must be an array, got ${describe(specs)}`);
    const rows = specs.map((s, i) => {
      checkSpec(s, i);
      let args: string;
      try {
        args = JSON.stringify(s.args);
      } catch (err) {
        throw new TypeError(`enqueue: specs[${i}].args must be JSON-serializable: ${(err as Error).message}`);
      }
      return { ...s, args };
    });
    if (rows.length === 0) return [];
    const ids = this.#write((now) => rows.map((s) => this.#insertJob(s, now)));
    this.#wakeLocal();
    return ids;
  }

  /** Inside a write: stores one job (args already JSON); a live job with its unique key gives that job's id instead. */
  #insertJob(s: Omit<EnqueueSpec, 'args'> & { args: string }, now: number): string {
    const existing = s.unique != null ? this.#liveWithKey(s.unique) : undefined;
    if (existing !== undefined) return String(existing);
    this.#stmt('INSERT OR IGNORE INTO queues (name) VALUES (?)').run(s.queue);
    const r = this.#stmt(
      "INSERT INTO jobs (name, args, queue, attempt, attempts, backoff, timeout, uniq, enqueued_at, run_at, state) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, 'queued')",
    ).run(s.name, s.args, s.queue, s.attempts, s.backoff, s.timeout ?? null, s.unique ?? null, now, Math.round(s.runAt));
    return String(r.lastInsertRowid);
  }

  async registerWorker(info: { id: string; host: string; pid: number; queues: string[] }): Promise<void> {
    if (typeof info !== 'object' || info === null) throw new TypeError(`registerWorker: info must be an object, got ${describe(info)}`);
    nonEmptyString(info.id, 'registerWorker: info.id');
    if (typeof info.host !== 'string') throw new TypeError(`registerWorker: info.host must be a string, got ${describe(info.host)}`);
    if (!Number.isInteger(info.pid) || info.pid <= 0) throw new TypeError(`registerWorker: info.pid must be a positive integer, got ${describe(info.pid)}`);
    queueList(info.queues, 'registerWorker: info.queues');
    this.#write((now) =>
      this.#stmt(
        'INSERT INTO workers (id, host, pid, queues, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues, heartbeat_at = excluded.heartbeat_at',
      ).run(info.id, info.host, info.pid, JSON.stringify(info.queues), now, now),
    );
  }

  async unregisterWorker(id: string): Promise<void> {
    nonEmptyString(id, 'unregisterWorker: id');
    this.#write(() => this.#stmt('DELETE FROM workers WHERE id = ?').run(id));
  }

  async heartbeat(workerId: string, running: WorkerInfo['running'], rss?: number): Promise<void> {
    nonEmptyString(workerId, 'heartbeat: workerId');
    if (!Array.isArray(running)) throw new TypeError(`heartbeat: running must be an array, got ${describe(running)}`);
    const jobs = running.map((r, i) => {
      const childPid = r?.childPid ?? null;
      if (childPid !== null && !Number.isInteger(childPid)) throw new TypeError(`heartbeat: running[${i}].childPid must be an integer or null, got ${describe(childPid)}`);
      return { seq: jobIdOf(r?.job, `heartbeat: running[${i}].job`), childPid, rss: byteCount(r?.rss, `heartbeat: running[${i}].rss`) };
    });
    const masterRss = byteCount(rss, 'heartbeat: rss');
    this.#write((now) => {
      this.#stmt('UPDATE workers SET heartbeat_at = ?, rss = ? WHERE id = ?').run(now, masterRss, workerId);
      const renew = this.#stmt("UPDATE jobs SET renewed_at = ?, child_pid = ?, child_rss = ? WHERE seq = ? AND state = 'running' AND worker = ?");
      for (const j of jobs) renew.run(now, j.childPid, j.rss, j.seq, workerId);
    });
  }

  async claim(workerId: string, queues: string[]): Promise<JobRecord | null> {
    nonEmptyString(workerId, 'claim: workerId');
    queueList(queues, 'claim: queues');
    return this.#write((now) => {
      const row = this.#firstRunnable(queues, now);
      if (!row) return null;
      this.#stmt("UPDATE jobs SET state = 'running', worker = ?, claimed_at = ?, renewed_at = ?, child_pid = NULL, child_rss = NULL WHERE seq = ?").run(workerId, now, now, row.seq);
      return toJob(row);
    });
  }

  /** The queues to look in, in order: '*' stands for every known queue by name, those named before it excepted. */
  #expand(queues: string[]): string[] {
    if (!queues.includes('*')) return queues;
    const all = (this.#stmt('SELECT name FROM queues ORDER BY name').all() as Array<{ name: string }>).map((r) => r.name);
    const out: string[] = [];
    for (const q of queues) for (const name of q === '*' ? all : [q]) if (!out.includes(name)) out.push(name);
    return out;
  }

  #firstRunnable(queues: string[], now: number): JobRow | undefined {
    const first = this.#stmt("SELECT * FROM jobs WHERE state = 'queued' AND queue = ? AND run_at <= ? ORDER BY run_at, seq LIMIT 1");
    for (const q of this.#expand(queues)) {
      const row = first.get(q, now) as JobRow | undefined;
      if (row) return row;
    }
    return undefined;
  }

  /** The earliest run_at among the jobs waiting on these queues, or null when none waits. */
  #nextRunAt(queues: string[]): number | null {
    if (queues.includes('*')) return (this.#stmt("SELECT run_at FROM jobs WHERE state = 'queued' ORDER BY run_at LIMIT 1").pluck().get() as number | undefined) ?? null;
    const first = this.#stmt("SELECT run_at FROM jobs WHERE state = 'queued' AND queue = ? ORDER BY run_at LIMIT 1").pluck();
    let next: number | null = null;
    for (const q of queues) {
      const t = first.get(q) as number | undefined;
      if (t !== undefined && (next === null || t < next)) next = t;
    }
    return next;
  }

  async complete(workerId: string, job: JobRecord): Promise<void> {
    nonEmptyString(workerId, 'complete: workerId');
    const seq = jobIdOf(job, 'complete: job');
    this.#write((now) => {
      // A claim lost meanwhile (recovered as lapsed) leaves the job as it is now; the attempt still counts.
      if (this.#held(seq, workerId)) {
        this.#stmt("UPDATE jobs SET state = 'done', child_pid = NULL, finished_at = ? WHERE seq = ?").run(now, seq);
      }
      this.#tally(now, workerId, false);
      this.#pruneNow(now);
    });
  }

  async fail(workerId: string, job: JobRecord, failure: Omit<FailureRecord, 'job' | 'failedAt'>, retryAt: number | null): Promise<void> {
    nonEmptyString(workerId, 'fail: workerId');
    const seq = jobIdOf(job, 'fail: job');
    if (typeof failure !== 'object' || failure === null) throw new TypeError(`fail: failure must be an object, got ${describe(failure)}`);
    if (typeof failure.error !== 'string') throw new TypeError(`fail: failure.error must be a string, got ${describe(failure.error)}`);
    if (typeof failure.exception !== 'string') throw new TypeError(`fail: failure.exception must be a string, got ${describe(failure.exception)}`);
    if (!Array.isArray(failure.backtrace) || failure.backtrace.some((l) => typeof l !== 'string')) {
      throw new TypeError(`fail: failure.backtrace must be an array of strings, got ${describe(failure.backtrace)}`);
    }
    if (typeof failure.worker !== 'string') throw new TypeError(`fail: failure.worker must be a string, got ${describe(failure.worker)}`);
    if (retryAt !== null) finiteNumber(retryAt, 'fail: retryAt');
    const f = { error: failure.error, exception: failure.exception, backtrace: failure.backtrace, worker: failure.worker };
    this.#write((now) => {
      const held = this.#held(seq, workerId);
      if (held) this.#failAttempt(held, workerId, f, retryAt, now);
      else this.#tally(now, workerId, true);
    });
    if (retryAt !== null) this.#wakeLocal();
  }

  async release(workerId: string, job: JobRecord): Promise<void> {
    nonEmptyString(workerId, 'release: workerId');
    const seq = jobIdOf(job, 'release: job');
    this.#write(() => this.#stmt("UPDATE jobs SET state = 'queued', worker = NULL, claimed_at = NULL, child_pid = NULL WHERE seq = ? AND state = 'running' AND worker = ?").run(seq, workerId));
    this.#wakeLocal();
  }

  async recoverLapsed(lapseMs: number, reason: string, retryAt: (job: JobRecord) => number | null): Promise<JobRecord[]> {
    finiteNumber(lapseMs, 'recoverLapsed: lapseMs', 0);
    if (typeof reason !== 'string') throw new TypeError(`recoverLapsed: reason must be a string, got ${describe(reason)}`);
    if (typeof retryAt !== 'function') throw new TypeError(`recoverLapsed: retryAt must be a function, got ${describe(retryAt)}`);
    // One write transaction: a second master running this at the same time waits for the
    // lock and then finds those workers gone, so each lost attempt is counted once.
    const recovered = this.#write((now) => {
      const before = now - lapseMs;
      const lapsed = (this.#stmt('SELECT id FROM workers WHERE heartbeat_at < ?').all(before) as Array<{ id: string }>).map((w) => w.id);
      // Claims of lapsed workers, and of workers no longer registered (unregistered with a
      // claim left, or never registered) once their lease has run out.
      const rows = this.#stmt(
        "SELECT * FROM jobs WHERE state = 'running' AND (worker IN (SELECT id FROM workers WHERE heartbeat_at < ?) " +
          'OR (worker NOT IN (SELECT id FROM workers) AND renewed_at < ?)) ORDER BY seq',
      ).all(before, before) as JobRow[];
      const jobs: JobRecord[] = [];
      for (const row of rows) {
        const job = toJob(row);
        const at = retryAt(job);
        if (at !== null && (typeof at !== 'number' || !Number.isFinite(at))) throw new TypeError(`recoverLapsed: retryAt(job) must return a finite number or null, got ${describe(at)}`);
        this.#failAttempt(row, row.worker!, { error: reason, exception: 'WorkerLapsed', backtrace: [], worker: row.worker! }, at, now);
        jobs.push(job);
      }
      const prune = this.#stmt('DELETE FROM workers WHERE id = ?');
      for (const id of lapsed) prune.run(id);
      return jobs;
    });
    if (recovered.length) this.#wakeLocal();
    return recovered;
  }

  async stats(): Promise<Stats> {
    return this.#read((now) => {
      const count = (sql: string, ...params: unknown[]) => this.#stmt(sql).pluck().get(...params) as number;
      const totals = Object.fromEntries((this.#stmt('SELECT name, value FROM counters').all() as Array<{ name: string; value: number }>).map((r) => [r.name, r.value]));
      return {
        processed: totals.processed ?? 0,
        failed: totals.failed ?? 0,
        pending: count("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_at <= ?", now),
        delayed: count("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_at > ?", now),
        running: count("SELECT COUNT(*) FROM jobs WHERE state = 'running'"),
        failedKept: count('SELECT COUNT(*) FROM failures'),
        queues: this.#queueCounts(now),
        workers: count('SELECT COUNT(*) FROM workers'),
      };
    });
  }

  #queueCounts(now: number): Record<string, number> {
    const rows = this.#stmt(
      "SELECT q.name AS name, (SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND queue = q.name AND run_at <= ?) AS n FROM queues q ORDER BY q.name",
    ).all(now) as Array<{ name: string; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.name, r.n]));
  }

  async queues(): Promise<Record<string, number>> {
    return this.#read((now) => this.#queueCounts(now));
  }

  async workers(): Promise<WorkerInfo[]> {
    return this.#read(() => {
      const workers = this.#stmt('SELECT * FROM workers ORDER BY id').all() as Array<{
        id: string;
        host: string;
        pid: number;
        queues: string;
        started_at: number;
        heartbeat_at: number;
        processed: number;
        failed: number;
        rss: number | null;
      }>;
      const claimed = this.#stmt("SELECT * FROM jobs WHERE state = 'running' AND worker = ? ORDER BY seq");
      return workers.map((w) => ({
        id: w.id,
        host: w.host,
        pid: w.pid,
        queues: JSON.parse(w.queues) as string[],
        startedAt: w.started_at,
        heartbeatAt: w.heartbeat_at,
        running: (claimed.all(w.id) as JobRow[]).map((r) => ({
          job: toJob(r),
          since: r.claimed_at!,
          childPid: r.child_pid,
          ...(r.child_rss !== null ? { rss: r.child_rss } : {}),
        })),
        processed: w.processed,
        failed: w.failed,
        ...(w.rss !== null ? { rss: w.rss } : {}),
      }));
    });
  }

  async failed(offset: number, limit: number): Promise<Array<FailureRecord & { id: string }>> {
    pageArgs(offset, limit, 'failed');
    return (this.#stmt('SELECT * FROM failures ORDER BY id LIMIT ? OFFSET ?').all(limit, offset) as FailureRow[]).map(toFailure);
  }

  /** Re-enqueues one failure's job: now, attempts reset, in its own row (its id kept). */
  #retryOne(f: FailureRow, now: number): void {
    this.#stmt('DELETE FROM failures WHERE id = ?').run(f.id);
    const row = this.#row(f.job_seq);
    if (!row || row.state !== 'failed') return;
    // A live job holding the unique key already does this job's work.
    if (row.uniq !== null && this.#liveWithKey(row.uniq) !== undefined) {
      this.#stmt('DELETE FROM jobs WHERE seq = ?').run(row.seq);
      return;
    }
    this.#stmt('INSERT OR IGNORE INTO queues (name) VALUES (?)').run(row.queue);
    this.#stmt("UPDATE jobs SET state = 'queued', attempt = 0, run_at = ?, finished_at = NULL WHERE seq = ?").run(now, row.seq);
  }

  async retry(failureId: string): Promise<boolean> {
    const id = this.#failureId(failureId, 'retry');
    if (id === null) return false;
    const found = this.#write((now) => {
      const f = this.#stmt('SELECT * FROM failures WHERE id = ?').get(id) as FailureRow | undefined;
      if (f) this.#retryOne(f, now);
      return f !== undefined;
    });
    if (found) this.#wakeLocal();
    return found;
  }

  async retryAll(): Promise<number> {
    const n = this.#write((now) => {
      const all = this.#stmt('SELECT * FROM failures ORDER BY id').all() as FailureRow[];
      for (const f of all) this.#retryOne(f, now);
      return all.length;
    });
    if (n) this.#wakeLocal();
    return n;
  }

  async removeFailure(failureId: string): Promise<boolean> {
    const id = this.#failureId(failureId, 'removeFailure');
    if (id === null) return false;
    return this.#write(() => {
      const f = this.#stmt('SELECT * FROM failures WHERE id = ?').get(id) as FailureRow | undefined;
      if (!f) return false;
      this.#stmt('DELETE FROM failures WHERE id = ?').run(id);
      // The job goes with its last failure: nothing would ever look at its row again.
      if ((this.#stmt('SELECT COUNT(*) FROM failures WHERE job_seq = ?').pluck().get(f.job_seq) as number) === 0) {
        this.#stmt("DELETE FROM jobs WHERE seq = ? AND state = 'failed'").run(f.job_seq);
      }
      return true;
    });
  }

  /** A failure id as stored, or null for one that cannot exist. */
  #failureId(failureId: string, what: string): number | null {
    if (typeof failureId !== 'string') throw new TypeError(`${what}: failureId must be a string, got ${describe(failureId)}`);
    return /^[1-9]\d*$/.test(failureId) ? Number(failureId) : null;
  }

  async clear(queue: string): Promise<number> {
    nonEmptyString(queue, 'clear: queue');
    return this.#write(() => {
      // The queue stays known (queues() lists it with 0), as Resque keeps it.
      return this.#stmt("DELETE FROM jobs WHERE state = 'queued' AND queue = ?").run(queue).changes;
    });
  }

  async job(id: string): Promise<(JobRecord & { state: JobState }) | null> {
    if (typeof id !== 'string') throw new TypeError(`job: id must be a string, got ${describe(id)}`);
    if (!/^[1-9]\d*$/.test(id)) return null;
    const row = this.#row(Number(id));
    if (!row) return null;
    const state: JobState = row.state === 'queued' ? (row.run_at <= Date.now() ? 'pending' : 'delayed') : (row.state as JobState);
    return { ...toJob(row), state };
  }

  async minutes(since: number): Promise<MinuteCount[]> {
    finiteNumber(since, 'minutes: since');
    return this.#stmt('SELECT minute, done, failed FROM minutes WHERE minute >= ? ORDER BY minute').all(minuteOf(since)) as MinuteCount[];
  }

  async delayed(offset: number, limit: number): Promise<JobRecord[]> {
    pageArgs(offset, limit, 'delayed');
    const rows = this.#stmt("SELECT * FROM jobs WHERE state = 'queued' AND run_at > ? ORDER BY run_at, seq LIMIT ? OFFSET ?").all(Date.now(), limit, offset) as JobRow[];
    return rows.map(toJob);
  }

  async publishSchedules(defs: Array<Omit<ScheduleRecord, 'lastTick' | 'lastJobId' | 'updatedAt' | 'firstPublishedAt'>>): Promise<void> {
    if (!Array.isArray(defs)) throw new TypeError(`publishSchedules: defs must be an array, got ${describe(defs)}`);
    const rows = defs.map((d, i) => checkScheduleDef(d, `publishSchedules: defs[${i}]`));
    if (rows.length === 0) return;
    this.#write((now) => {
      const upsert = this.#stmt(
        'INSERT INTO schedules (name, cron, timezone, job, args, queue, first_published_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, job = excluded.job, args = excluded.args, ' +
          'queue = excluded.queue, updated_at = excluded.updated_at',
      );
      for (const d of rows) upsert.run(d.name, d.cron, d.timezone, d.job, d.args, d.queue, now, now);
    });
  }

  async enqueueTick(name: string, tick: number, spec: EnqueueSpec): Promise<string | null> {
    nonEmptyString(name, 'enqueueTick: name');
    finiteNumber(tick, 'enqueueTick: tick');
    checkSpec(spec, 0);
    let args: string;
    try {
      args = JSON.stringify(spec.args);
    } catch (err) {
      throw new TypeError(`enqueueTick: spec.args must be JSON-serializable: ${(err as Error).message}`);
    }
    // The write lock makes the look at last_tick and the enqueue one step: a second master
    // waits for it and then sees the tick taken.
    const id = this.#write((now) => {
      const row = this.#stmt('SELECT last_tick FROM schedules WHERE name = ?').get(name) as { last_tick: number | null } | undefined;
      if (!row) throw new Error(`enqueueTick: no schedule ${JSON.stringify(name)} is published in ${this.url}`);
      if (row.last_tick !== null && row.last_tick >= tick) return null;
      const jobId = this.#insertJob({ ...spec, args }, now);
      this.#stmt('UPDATE schedules SET last_tick = ?, last_job = ? WHERE name = ?').run(Math.round(tick), Number(jobId), name);
      return jobId;
    });
    if (id !== null) this.#wakeLocal();
    return id;
  }

  async schedules(): Promise<ScheduleRecord[]> {
    return (this.#stmt('SELECT * FROM schedules ORDER BY name').all() as ScheduleRow[]).map(toSchedule);
  }

  // ---- waiting for work ----------------------------------------------------------------

  async waitForWork(queues: string[], timeoutMs: number): Promise<void> {
    queueList(queues, 'waitForWork: queues');
    finiteNumber(timeoutMs, 'waitForWork: timeoutMs', 0);
    if (this.#closed) return;
    this.#conn();
    if (this.#dataVersion < 0) this.#dataVersion = this.#readDataVersion();
    await new Promise<void>((resolve) => {
      const waiter: Waiter = {
        queues,
        resolve: () => {
          clearTimeout(waiter.deadline);
          if (waiter.due) clearTimeout(waiter.due);
          this.#waiters.delete(waiter);
          if (this.#waiters.size === 0) this.#stopWatching();
          resolve();
        },
        // Ref'd, like a sleep: a process awaiting work stays up until it comes or time is up.
        deadline: setTimeout(() => waiter.resolve(), timeoutMs),
        due: null,
        dueAt: Infinity,
      };
      this.#waiters.add(waiter);
      this.#check(waiter);
      if (this.#waiters.has(waiter)) this.#startWatching();
    });
  }

  /** Resolves the waiter if a job of its queues is runnable now, else arms a timer for the next one due. */
  #check(w: Waiter): void {
    let next: number | null;
    try {
      next = this.#nextRunAt(w.queues);
    } catch {
      return w.resolve(); // the caller's claim() meets the error and reports it
    }
    const now = Date.now();
    if (next !== null && next <= now) return w.resolve();
    if (next !== null && next < w.dueAt) {
      if (w.due) clearTimeout(w.due);
      w.dueAt = next;
      w.due = setTimeout(() => {
        w.due = null;
        w.dueAt = Infinity;
        if (this.#waiters.has(w)) this.#check(w);
      }, next - now);
    }
  }

  #checkAll(): void {
    if (this.#closed) return;
    for (const w of [...this.#waiters]) this.#check(w);
  }

  /** This object's own writes: its connection's data_version does not move for them. */
  #wakeLocal(): void {
    if (this.#waiters.size) queueMicrotask(() => this.#checkAll());
  }

  #readDataVersion(): number {
    return this.#stmt('PRAGMA data_version').pluck().get() as number;
  }

  /** Another connection committed since the last look: the only case worth a query per waiter. */
  #changed(): boolean {
    if (this.#closed || this.#db === null || this.#pid !== process.pid) return false;
    let v: number;
    try {
      v = this.#readDataVersion();
    } catch {
      return true; // let each waiter look (and resolve on the error)
    }
    if (v === this.#dataVersion) return false;
    this.#dataVersion = v;
    return true;
  }

  /**
   * Other processes' commits are seen two ways: the directory's inotify events for the
   * database and its -wal file, and a poll of PRAGMA data_version (a counter in shared
   * memory, no disk read) for what the watch misses. An event is acted on a few ms late:
   * it comes from the WAL write, just before the writer publishes the commit.
   */
  #startWatching(): void {
    if (this.path === ':memory:') return;
    if (!this.#poll) {
      this.#poll = setInterval(() => this.#changed() && this.#checkAll(), this.#options.pollMs);
      this.#poll.unref();
    }
    if (!this.#watcher) {
      const names = new Set([basename(this.path), `${basename(this.path)}-wal`]);
      try {
        this.#watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
          if (file !== null && !names.has(String(file))) return;
          if (this.#settle) return;
          this.#settle = setTimeout(() => {
            this.#settle = null;
            if (this.#changed()) this.#checkAll();
          }, 3);
          this.#settle.unref();
        });
        // A watch that fails later (the directory removed) leaves the poll to do the job.
        this.#watcher.on('error', () => this.#closeWatcher());
      } catch {
        this.#watcher = null; // inotify limits: the poll alone wakes within pollMs
      }
    }
  }

  #closeWatcher(): void {
    this.#watcher?.close();
    this.#watcher = null;
  }

  #stopWatching(): void {
    this.#closeWatcher();
    if (this.#poll) clearInterval(this.#poll);
    if (this.#settle) clearTimeout(this.#settle);
    this.#poll = this.#settle = null;
  }

  /** Ends pending waitForWork calls (they resolve) and closes this process's connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const w of [...this.#waiters]) w.resolve();
    this.#stopWatching();
    this.#closed = true;
    const db = this.#db;
    const statements = this.#statements;
    this.#db = null;
    this.#statements = new Map();
    live.delete(this);
    if (db === null) return;
    if (this.#pid === process.pid) db.close();
    else inherited.push({ db, statements });
  }
}
