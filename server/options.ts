// What `unixproc serve` can be told, from flags and from a config file (-c, TS or JS),
// and the hooks a config file may define. Flags win over the config file; HUP re-reads
// the file, so a reload picks up its changes.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Status } from '../src/index.js';
import { loadModule } from '../src/index.js';

export interface WorkerInfo {
  /** 0-based slot of the worker (Unicorn's worker number). */
  index: number;
  pid: number;
  /** Which app load (HUP) the worker runs. */
  generation: number;
}

export interface ServeHooks {
  /** In the master, before it forks a worker (a spare's fork included, with index -1). */
  beforeFork?: (worker: { index: number; generation: number }) => void | Promise<void>;
  /** In the worker, right after fork, before it accepts (in a spare: when it is given its slot). */
  afterFork?: (worker: WorkerInfo) => void | Promise<void>;
  /** In the master, when a worker has started accepting. */
  afterWorkerReady?: (worker: WorkerInfo) => void;
  /** In the master, before it re-executes itself for USR2. */
  beforeExec?: () => void;
  /** In the master, when a worker has been reaped (not called for a spare that never served). */
  onWorkerExit?: (worker: WorkerInfo, status: Status) => void;
}

export interface ServeOptions extends ServeHooks {
  /** The app module: its default export is a request listener, a { fetch } object, or a function returning either. */
  app: string;
  /** Addresses to listen on: "host:port", "[::1]:port", ":port", "unix:/path" or a path. */
  listen: string[];
  workers: number;
  /**
   * Spare workers kept forked and idle, not accepting: a worker that dies, or one more
   * asked for with TTIN, is replaced by a spare in about a millisecond, and a new spare
   * is forked behind it. Each costs an idle process (a few MiB of private memory).
   */
  spare: number;
  backlog: number;
  /** Seconds a worker may go without a heartbeat before it is killed (a blocked event loop). */
  timeout: number;
  /** Seconds a graceful stop (QUIT) waits for in-flight requests. */
  shutdownTimeout: number;
  /** Mode of UNIX socket files, e.g. 0o666. */
  socketMode?: number;
  pid?: string;
  daemonize: boolean;
  stdout?: string;
  stderr?: string;
  /** The control socket `unixproc status` talks to (default: <pid>.sock, else a path in the temp dir). */
  control?: string;
  /** The config file the options came from, re-read on HUP. */
  config?: string;
}

/**
 * The directory relative paths (app, config, pid, log files, control and UNIX socket
 * paths) are resolved against: where the command started, also after -D has chdir'ed the
 * daemon to /, and in a master re-executed for USR2 (which is started from here again).
 */
export const START_CWD = process.cwd();

export const DEFAULTS = {
  listen: ['127.0.0.1:8080'],
  workers: availableParallelism(),
  spare: 0,
  backlog: 1024,
  timeout: 60,
  shutdownTimeout: 30,
  daemonize: false,
};

/** Reads a config file (TS or JS) whose default export holds options and hooks. */
export async function loadConfig(file: string, generation: number): Promise<Partial<ServeOptions>> {
  let mod: unknown;
  try {
    mod = await loadModule(resolve(START_CWD, file), generation);
  } catch (err) {
    throw new Error(`config ${file}: ${(err as Error)?.message ?? err}`, { cause: err });
  }
  const conf = (mod as { default?: unknown }).default ?? mod;
  if (!conf || typeof conf !== 'object') throw new TypeError(`config ${file}: the default export must be an object of options`);
  return conf as Partial<ServeOptions>;
}

/** Merges defaults, the config file and flags, and checks the result. */
export async function resolveOptions(flags: Partial<ServeOptions>, generation = 0): Promise<ServeOptions> {
  const fromFile = flags.config ? await loadConfig(flags.config, generation) : {};
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const merged = { ...DEFAULTS, ...fromFile, ...defined } as ServeOptions;
  if (!merged.app) throw new TypeError('no app given: `unixproc serve app.js`, or `app` in the config file');
  if (typeof merged.listen === 'string') merged.listen = [merged.listen];
  if (!Array.isArray(merged.listen) || merged.listen.length === 0) throw new TypeError('listen must name at least one address');
  // At least one worker: with none the master listens and every request waits forever.
  for (const [key, min] of [['workers', 1], ['spare', 0], ['backlog', 1], ['timeout', 1], ['shutdownTimeout', 0]] as const) {
    const v = merged[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      const where = key in defined ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : key in fromFile ? `${flags.config}: ${key}` : key;
      throw new RangeError(`${where} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
  }
  const base = flags.config ? resolve(START_CWD, flags.config, '..') : START_CWD;
  merged.app = resolve(base, merged.app);
  for (const key of ['config', 'pid', 'stdout', 'stderr', 'control'] as const) {
    if (merged[key]) merged[key] = resolve(START_CWD, merged[key]);
  }
  merged.listen = merged.listen.map((a) => {
    if (typeof a !== 'string') return a;
    if (a.startsWith('unix:')) return `unix:${resolve(START_CWD, a.slice(5))}`;
    return a.startsWith('.') ? resolve(START_CWD, a) : a;
  });
  return merged;
}

export { pathToFileURL };
