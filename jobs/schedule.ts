// Recurring jobs: the worker config's `schedule` option, checked at start with croner (the
// cron expressions and time zones are croner's to parse), and the scheduler a worker master
// runs, which enqueues each due tick through the store's enqueueTick, so every master sharing
// the store may run it and each tick is still enqueued once.
import { Cron } from 'croner';
import type { Backend, ScheduleRecord } from './backend.js';
import { enqueueSpec } from './queue.js';

/** One entry of the config's `schedule` object, as people write it. */
export interface ScheduleConfig {
  /** 5 fields (minute first), 6 (seconds first) or 7 (a year last), or a nickname such as @daily. */
  cron: string;
  /** The job name to enqueue (a handler of the jobs module). */
  job: string;
  /** Default []. */
  args?: unknown[];
  /** Default 'default'. */
  queue?: string;
  /** IANA time zone the expression is read in, e.g. 'Europe/Berlin'; default the worker's local time. */
  timezone?: string;
}

/** A checked schedule, as published to the store. */
export type ScheduleDef = Omit<ScheduleRecord, 'lastTick' | 'lastJobId' | 'updatedAt' | 'firstPublishedAt'>;

const KNOWN_KEYS = ['cron', 'job', 'args', 'queue', 'timezone'];

const shown = (v: unknown): string => {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object' && v !== null) return 'an object';
  return String(v);
};

/** croner's reason, on one line (the CLI prints a config error as one line). */
const reasonOf = (err: unknown): string => String((err as Error)?.message ?? err).replace(/\s+/g, ' ').trim();

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** croner's cron object for a definition; it only computes times (paused: it never fires by itself). */
function cronOf(pattern: string, timezone: string | null): Cron {
  return new Cron(pattern, { paused: true, ...(timezone ? { timezone } : {}) });
}

/**
 * Checks the config's `schedule` object ({ name: { cron, job, args, queue, timezone } }) and
 * returns the definitions, by name. Throws a TypeError or RangeError naming the schedule and
 * what is wrong with it, e.g. `schedule "nightly": cron "61 * * * *" is not valid: ...`.
 */
export function parseSchedules(config: unknown): ScheduleDef[] {
  if (config === undefined || config === null) return [];
  if (typeof config !== 'object' || Array.isArray(config)) {
    throw new TypeError(`schedule must be an object of named schedules ({ nightly: { cron, job, ... } }), got ${shown(config)}`);
  }
  const defs: ScheduleDef[] = [];
  for (const [name, entry] of Object.entries(config as Record<string, unknown>)) {
    const at = `schedule ${JSON.stringify(name)}`;
    if (name === '' || name.length > 200 || /[\x00-\x1f\x7f]/.test(name)) throw new RangeError(`${at}: a schedule name must be 1-200 printable characters`);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new TypeError(`${at} must be an object { cron, job, args?, queue?, timezone? }, got ${shown(entry)}`);
    }
    const e = entry as Record<string, unknown>;
    const unknown = Object.keys(e).filter((k) => !KNOWN_KEYS.includes(k));
    if (unknown.length) throw new TypeError(`${at}: unknown option ${shown(unknown[0])} (the options are ${KNOWN_KEYS.join(', ')})`);
    if (typeof e.cron !== 'string' || e.cron.trim() === '') throw new TypeError(`${at}: cron must be a cron expression such as "0 3 * * *", got ${shown(e.cron)}`);
    if (typeof e.job !== 'string' || e.job === '') throw new TypeError(`${at}: job must be the name of the job to enqueue, got ${shown(e.job)}`);
    const args = e.args ?? [];
    if (!Array.isArray(args)) throw new TypeError(`${at}: args must be a JSON array, got ${shown(args)}`);
    const queue = e.queue ?? 'default';
    if (typeof queue !== 'string') throw new TypeError(`${at}: queue must be a string, got ${shown(queue)}`);
    let timezone: string | null = null;
    if (e.timezone !== undefined && e.timezone !== null) {
      if (typeof e.timezone !== 'string' || e.timezone === '') throw new TypeError(`${at}: timezone must be an IANA time zone name such as "Europe/Berlin", got ${shown(e.timezone)}`);
      if (!isTimeZone(e.timezone)) throw new RangeError(`${at}: timezone ${shown(e.timezone)} is not a time zone this Node knows (an IANA name such as "Europe/Berlin")`);
      timezone = e.timezone;
    }
    // The job must be storable as any enqueue would store it: JSON arguments, a valid queue name.
    try {
      enqueueSpec(e.job, args, { queue });
    } catch (err) {
      throw new TypeError(`${at}: ${reasonOf(err).replace(/^enqueue(\([^)]*\))?:? ?/, '').replace(/^options\./, '')}`);
    }
    let cron: Cron;
    try {
      cron = cronOf(e.cron, timezone);
    } catch (err) {
      throw new RangeError(`${at}: cron ${shown(e.cron)} is not valid: ${reasonOf(err)}`);
    }
    let next: Date | null;
    try {
      next = cron.nextRun();
    } catch (err) {
      throw new RangeError(`${at}: cron ${shown(e.cron)} cannot be computed${timezone ? ` in ${timezone}` : ''}: ${reasonOf(err)}`);
    }
    if (next === null) throw new RangeError(`${at}: cron ${shown(e.cron)} never runs from now on`);
    defs.push({ name, cron: e.cron, job: e.job, args: args as unknown[], queue, timezone });
  }
  return defs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The schedule's next run strictly after `from` (default now), as croner computes it in the
 * schedule's time zone; null when the expression has no later run. Throws for an expression
 * croner cannot read.
 */
export function nextRun(record: Pick<ScheduleRecord, 'cron' | 'timezone'>, from: Date = new Date()): Date | null {
  return cronOf(record.cron, record.timezone).nextRun(from);
}

/** The latest tick at or before `at` (ms), or null when there was none. */
function latestTick(cron: Cron, at: number): number | null {
  // previousRuns leaves out a run exactly at the reference: one ms later includes it.
  const [prev] = cron.previousRuns(1, new Date(at + 1));
  return prev ? prev.getTime() : null;
}

interface Entry {
  def: ScheduleDef;
  cron: Cron;
  /** The last tick this master knows to be taken (by it or by another master). */
  lastTick: number | null;
  /** With no lastTick: ticks before this (the first publish) are not run. */
  floor: number;
}

export interface SchedulerOptions {
  /** The worker's JSON log. */
  log: (event: string, fields: Record<string, unknown>) => void;
  /** Wraps every await, so that a continuation copied into a forked child never runs there. */
  guard: <T>(p: Promise<T>) => Promise<T>;
}

// A timer never waits longer than this: setTimeout's limit is 24.8 days, and the heartbeat
// re-checks anyway.
const MAX_WAIT_MS = 3600_000;

/**
 * Runs in a worker master: publishes the definitions, then at each due tick enqueues it
 * through backend.enqueueTick (which takes a tick once across every process). Only the
 * latest due tick is enqueued, so after downtime a schedule runs once, not once per tick
 * missed. check() is also called after every heartbeat: a timer that fires late (a
 * suspend, a clock step) loses no tick.
 */
export class Scheduler {
  readonly #backend: Backend;
  readonly #entries: Entry[];
  readonly #options: SchedulerOptions;
  #timer: NodeJS.Timeout | null = null;
  #checking: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #republish = false;

  constructor(backend: Backend, defs: ScheduleDef[], options: SchedulerOptions) {
    this.#backend = backend;
    this.#options = options;
    this.#entries = defs.map((def) => ({ def, cron: cronOf(def.cron, def.timezone), lastTick: null, floor: Infinity }));
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Publishes the definitions, enqueues what is due now (a tick missed while down), arms the timer. */
  async start(): Promise<void> {
    if (this.#entries.length === 0) return;
    await this.#publish();
    await this.check();
  }

  async #publish(): Promise<void> {
    const { guard } = this.#options;
    await guard(this.#backend.publishSchedules(this.#entries.map((e) => e.def)));
    const stored = new Map((await guard(this.#backend.schedules())).map((r) => [r.name, r]));
    for (const e of this.#entries) {
      const r = stored.get(e.def.name);
      e.lastTick = r?.lastTick ?? null;
      e.floor = r?.firstPublishedAt ?? Date.now();
    }
    this.#republish = false;
  }

  /** Enqueues every schedule's latest due tick not yet taken; concurrent calls share one pass. */
  check(): Promise<void> {
    if (this.#stopped || this.#entries.length === 0) return Promise.resolve();
    if (this.#checking) {
      this.#again = true;
      return this.#checking;
    }
    this.#checking = (async () => {
      do {
        this.#again = false;
        await this.#checkOnce();
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#checking = null;
      this.#arm();
    });
    return this.#checking;
  }

  async #checkOnce(): Promise<void> {
    const { guard, log } = this.#options;
    if (this.#republish) {
      try {
        await this.#publish();
      } catch (err) {
        log('backend.error', { op: 'publishSchedules', error: reasonOf(err) });
        return;
      }
    }
    const now = Date.now();
    for (const e of this.#entries) {
      if (this.#stopped) return;
      const tick = latestTick(e.cron, now);
      if (tick === null) continue;
      if (e.lastTick !== null ? tick <= e.lastTick : tick < e.floor) continue;
      const { def } = e;
      try {
        const id = await guard(this.#backend.enqueueTick(def.name, tick, enqueueSpec(def.job, def.args, { queue: def.queue })));
        // Taken here or by another master: either way this tick is done.
        e.lastTick = tick;
        if (id !== null) log('schedule.enqueued', { schedule: def.name, tick: new Date(tick).toISOString(), id, job: def.job, queue: def.queue });
      } catch (err) {
        const error = reasonOf(err);
        // The store lost the definitions (a flushed Redis): publish them again first.
        if (/no schedule .* is published/.test(error)) this.#republish = true;
        log('backend.error', { op: 'enqueueTick', schedule: def.name, error });
      }
    }
  }

  /** A timer for the soonest next run of any schedule. */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#stopped) return;
    const now = Date.now();
    let soonest = Infinity;
    for (const e of this.#entries) {
      const next = e.cron.nextRun(new Date(now))?.getTime();
      if (next !== undefined && next < soonest) soonest = next;
    }
    if (soonest === Infinity) return;
    // The +1: a timer is on the monotonic clock and may fire a hair before the wall-clock tick.
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.check();
    }, Math.min(Math.max(0, soonest - now) + 1, MAX_WAIT_MS));
    this.#timer.unref();
  }

  /** In a forked child: drops the timer at once and never schedules there. */
  forget(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Stops scheduling; resolves once a pass under way has ended. */
  async stop(): Promise<void> {
    this.forget();
    await this.#checking?.catch(() => {});
  }
}
