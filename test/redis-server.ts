// A private redis-server for a test: redis-server from PATH on a free 127.0.0.1 port in
// a temp dir, with an append-only file, so that a SIGTERM and a start on the same port
// (stop(), start()) keep the data, as a real deployment would. Never the system's
// service. It daemonizes (a pid file in its dir), so it is no child of the test process,
// whose suites assert that they leave no children behind. Servers still up when the
// process exits are killed, and those of a test process that died without exiting
// (SIGKILL, a timeout) by the next startRedis.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  /** redis://127.0.0.1:PORT/0 */
  readonly url: string;
  /** The server process's pid (changes on restart; 0 while stopped). */
  readonly pid: number;
  /** SIGTERM (Redis writes and fsyncs the AOF on the way out) and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and dir, after stop(). */
  start(): Promise<void>;
  /** stop() and remove the dir. */
  destroy(): Promise<void>;
}

const owner = process.pid;
const running = new Set<number>();
process.on('exit', () => {
  // A forked child (unixproc's fork) runs exit handlers too: the servers are the parent's.
  if (process.pid !== owner) return;
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still takes signal 0; redis-server's parent is init, which reaps it soon.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A port nothing listens on now (bind port 0, read it, close). Racy by nature: start retries. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The pid the server on this port reports once it answers (not LOADING), or 0. */
function serverPid(port: number): Promise<number> {
  return new Promise((resolve) => {
    const sock = createConnection({ port, host: '127.0.0.1' });
    let buf = '';
    const done = (pid: number) => {
      sock.destroy();
      resolve(pid);
    };
    sock.setTimeout(1000, () => done(0));
    sock.on('error', () => done(0));
    sock.on('connect', () => sock.write('INFO server\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.startsWith('-')) return done(0);
      const m = /process_id:(\d+)/.exec(buf);
      if (m) done(Number(m[1]));
    });
  });
}

function readPid(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

const PREFIX = 'unixproc-redis-';

/** Servers whose test process is gone: killed (a pid whose cwd is their dir), dirs removed. */
function sweepStale(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(tmpdir(), name);
    const owner = readPid(join(dir, 'owner'));
    if (!owner || alive(owner)) continue;
    const pid = readPid(join(dir, 'redis.pid'));
    try {
      if (pid && readlinkSync(`/proc/${pid}/cwd`) === dir) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface RedisServerOptions {
  /**
   * fsync the AOF on every write (--appendfsync always), for a test that restarts Redis
   * under load; the default (everysec) keeps a write from waiting on a busy disk, and a
   * SIGTERM loses nothing either way.
   */
  fsyncAlways?: boolean;
}

export async function startRedis(opts: RedisServerOptions = {}): Promise<RedisServer> {
  sweepStale();
  const dir = mkdtempSync(join(tmpdir(), PREFIX));
  writeFileSync(join(dir, 'owner'), String(process.pid));
  const pidFile = join(dir, 'redis.pid');
  let pid = 0;
  let port = 0;
  const log = () => {
    try {
      return readFileSync(join(dir, 'redis.log'), 'utf8').split('\n').slice(-10).join('\n');
    } catch {
      return '(no log)';
    }
  };

  /** true when it runs; false when it died at start (most likely the port was taken meanwhile). */
  const launch = async (): Promise<boolean> => {
    rmSync(pidFile, { force: true });
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
      '--appendfsync', opts.fsyncAlways ? 'always' : 'everysec', '--daemonize', 'yes', '--pidfile', pidFile, '--logfile', join(dir, 'redis.log'),
      '--protected-mode', 'no',
    ];
    const r = spawnSync('redis-server', args, { stdio: 'ignore' });
    if (r.error) throw new Error(`redis-server could not be started (is it installed? apt-get install redis-server): ${r.error.message}`);
    if (r.status !== 0) return false;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const p = readPid(pidFile);
      if (p) running.add(p);
      if (p && (await serverPid(port)) === p) {
        pid = p;
        return true;
      }
      if (p && !alive(p)) {
        running.delete(p);
        return false;
      }
      await sleep(20);
    }
    const p = readPid(pidFile);
    if (p) process.kill(p, 'SIGKILL');
    throw new Error(`redis-server on port ${port} did not answer within 15 s; log: ${log()}`);
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    if (await launch()) break;
    if (attempt >= 10) throw new Error(`redis-server would not start; log: ${log()}`);
  }

  const server: RedisServer = {
    port,
    dir,
    url: `redis://127.0.0.1:${port}/0`,
    get pid() {
      return pid;
    },
    async stop() {
      const p = pid;
      pid = 0;
      if (!p) return;
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        /* already gone */
      }
      while (alive(p)) await sleep(10);
      running.delete(p);
    },
    async start() {
      if (pid) return;
      // The port was ours a moment ago; another process taking it now would be a fluke.
      for (let attempt = 0; attempt < 50; attempt++) {
        if (await launch()) return;
        await sleep(100);
      }
      throw new Error(`redis-server would not start again on port ${port}; log: ${log()}`);
    },
    async destroy() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * One private redis-server for a test file (started in before, destroyed in after) and
 * `freshUrl()`, a URL of one of its 16 databases, flushed, for each test that wants an empty
 * store. `pids()` is the server's pid, for suites that tell a service from a left-behind child.
 */
export function redisPerFile(): { freshUrl: () => Promise<string>; pids: () => number[] } {
  let server: RedisServer | undefined;
  let db = 0;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server?.destroy();
  });
  return {
    async freshUrl() {
      if (!server) throw new Error('redisPerFile: no server yet (call freshUrl inside a test)');
      const url = `redis://127.0.0.1:${server.port}/${db++ % 16}`;
      const r = new Redis(url);
      try {
        await r.flushdb();
      } finally {
        r.disconnect();
      }
      return url;
    },
    pids: () => (server?.pid ? [server.pid] : []),
  };
}
