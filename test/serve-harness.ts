// Shared helpers for the `unixproc serve` integration suites (test/serve-*.test.ts):
// a real server spawned from bin/unixproc.js whose JSON log lines (stderr) are parsed as
// they arrive, a real HTTP client (with the retry rule of a real client, see request()),
// a bounded load loop, and a census of the server's processes by a unique marker (the
// scratch directory, which is in every title), so each test proves it left nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { procInfo, scratch, sleep, waitFor } from './helpers.js';

export const bin = fileURLToPath(new URL('../../bin/unixproc.js', import.meta.url));

/** A port that was free a moment ago (the server binds it itself, so it cannot be 0). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface LogLine {
  time: string;
  pid: number;
  role: string;
  event: string;
  [key: string]: unknown;
}

export function parseLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* a line cut short */
    }
  }
  return out;
}

/** Live (not zombie) processes whose command line contains marker. */
export function processesWith(marker: string): Array<{ pid: number; args: string }> {
  const out: Array<{ pid: number; args: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let args: string;
    try {
      args = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (!args.includes(marker)) continue;
    const info = procInfo(Number(name));
    if (info && info.state !== 'Z') out.push({ pid: Number(name), args });
  }
  return out;
}

export function alive(pid: number): boolean {
  const info = procInfo(pid);
  return info !== null && info.state !== 'Z';
}

/** Sends a signal by its short name (QUIT, USR2, ...); a process already gone is fine. */
export function sendSignal(pid: number, sig: string): void {
  try {
    process.kill(pid, (sig.startsWith('SIG') ? sig : `SIG${sig}`) as NodeJS.Signals);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** One `unixproc serve` run: the spawned master, its parsed log, and every pid it showed. */
export class Server {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  stdout = '';
  readonly pids = new Set<number>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private partial = '';

  constructor(
    args: string[],
    /** script: run this file with node instead of `unixproc serve` (args then go to the script). */
    readonly opts: { cwd?: string; env?: NodeJS.ProcessEnv; marker?: string; nodeArgs?: string[]; script?: string } = {},
  ) {
    const command = opts.script ? [opts.script, ...args] : [bin, 'serve', ...args];
    this.child = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...command], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pids.add(this.child.pid!);
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      const text = this.partial + d;
      const cut = text.lastIndexOf('\n');
      this.partial = text.slice(cut + 1);
      this.take(parseLines(text.slice(0, cut + 1)));
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Adds log lines read from elsewhere (a --stderr file). */
  take(lines: LogLine[]): void {
    for (const l of lines) {
      this.lines.push(l);
      this.pids.add(l.pid);
      for (const k of ['worker', 'newMaster'] as const) if (typeof l[k] === 'number') this.pids.add(l[k] as number);
    }
  }

  /** Index of the next log line, to wait for lines after it. */
  mark(): number {
    return this.lines.length;
  }

  find(event: string, from = 0, pred: (l: LogLine) => boolean = () => true): LogLine | undefined {
    return this.lines.slice(from).find((l) => l.event === event && pred(l));
  }

  all(event: string, from = 0, pred: (l: LogLine) => boolean = () => true): LogLine[] {
    return this.lines.slice(from).filter((l) => l.event === event && pred(l));
  }

  async waitLog(event: string, opts: { from?: number; ms?: number; pred?: (l: LogLine) => boolean } = {}): Promise<LogLine> {
    let found: LogLine | undefined;
    await waitFor(() => (found = this.find(event, opts.from ?? 0, opts.pred)) !== undefined, opts.ms ?? 15_000, `log event ${event}\n--- stderr ---\n${this.stderr.slice(-3000)}`);
    return found!;
  }

  /** Waits for `master.ready` (or fails early, with the stderr, if the master exits). */
  async ready(ms = 20_000): Promise<this> {
    await waitFor(() => this.exit !== null || this.find('master.ready') !== undefined, ms, `master.ready\n--- stderr ---\n${this.stderr}`);
    if (!this.find('master.ready')) throw new Error(`the server exited (${JSON.stringify(this.exit)}) before it was ready:\n${this.stderr}`);
    // master.ready comes with the first ready worker: wait for all of them.
    await this.workersReady(this.find('master.start', 0, (l) => l.pid === this.pid)!.workers as number, ms);
    return this;
  }

  /**
   * Waits until n workers of this master are ready. Tests send signals only then: a
   * signal that lands while the master is inside fork(2) is a separate hazard (see the
   * report in test/serve-signals.test.ts), not what the other tests are about.
   */
  async workersReady(n: number, ms = 15_000): Promise<number[]> {
    await waitFor(() => this.readyWorkers().length === n && this.liveWorkers().length === n, ms, `${n} ready workers\n--- stderr ---\n${this.stderr.slice(-3000)}`);
    return this.readyWorkers();
  }

  /** Worker pids the log shows as spawned and not yet exited, for this master (or another). */
  liveWorkers(master = this.pid): number[] {
    const out = new Set<number>();
    for (const l of this.lines) {
      if (l.pid !== master) continue;
      if (l.event === 'worker.spawn') out.add(l.worker as number);
      if (l.event === 'worker.exit') out.delete(l.worker as number);
    }
    return [...out];
  }

  readyWorkers(master = this.pid): number[] {
    const live = new Set(this.liveWorkers(master));
    return this.all('worker.ready', 0, (l) => l.pid === master && live.has(l.worker as number)).map((l) => l.worker as number);
  }

  signal(sig: string, pid = this.pid): void {
    sendSignal(pid, sig);
  }

  /**
   * Sends a signal and waits until the master logged handling it. Unix signals do not
   * queue: the same signal sent twice before the master took the first is delivered
   * once, so a test that means N TTINs sends them one at a time.
   */
  async signalAndWait(sig: string, pid = this.pid): Promise<void> {
    const m = this.mark();
    sendSignal(pid, sig);
    await this.waitLog('master.signal', { from: m, pred: (l) => l.pid === pid && l.signal === sig });
  }

  /**
   * Stops everything the run started: QUIT to every master seen, KILL after a deadline,
   * then KILL any process of the server still alive; fails if one survives.
   */
  async stop(ms = 15_000): Promise<void> {
    const masters = new Set([this.pid, ...this.lines.filter((l) => l.role === 'master').map((l) => l.pid)]);
    for (const m of masters) if (alive(m)) sendSignal(m, 'QUIT');
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && [...masters].some(alive)) await sleep(20);
    for (const m of masters) if (alive(m)) sendSignal(m, 'KILL');
    if (this.exit === null) await Promise.race([this.exited, sleep(5_000)]);
    await this.assertGone(5_000, true);
  }

  /** A graceful stop that must end well: QUIT, exit 0, and nothing of the server left. */
  async quit(): Promise<void> {
    this.signal('QUIT');
    const exit = await this.exited;
    if (exit.code !== 0 || exit.signal !== null) throw new Error(`the master exited with ${JSON.stringify(exit)} after QUIT:\n${this.stderr.slice(-3000)}`);
    await this.assertGone();
  }

  /** Waits until no process of this server is left (by pid and by marker), KILLing leftovers if asked. */
  async assertGone(ms = 10_000, killLeftovers = false): Promise<void> {
    const leftovers = () => {
      const byPid = [...this.pids].filter((p) => p !== process.pid && alive(p) && cmdline(p).includes('unixproc'));
      const byMarker = this.opts.marker ? processesWith(this.opts.marker).map((p) => p.pid) : [];
      return [...new Set([...byPid, ...byMarker])];
    };
    const deadline = Date.now() + ms;
    while (leftovers().length && Date.now() < deadline) await sleep(20);
    const left = leftovers();
    if (left.length && killLeftovers) {
      for (const p of left) sendSignal(p, 'KILL');
      await sleep(200);
    }
    if (left.length) throw new Error(`processes of the server left behind: ${left.map((p) => `${p} ${cmdline(p)}`).join('; ')}`);
  }
}

/** What a process's threads are doing, for a failure message. */
export function describeProcess(pid: number): string {
  try {
    const out = [`pid ${pid}: ${cmdline(pid)}`];
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const rd = (f: string) => readFileSync(`/proc/${pid}/task/${t}/${f}`, 'utf8').trim();
      out.push(`  task ${t} ${rd('comm')} wchan=${rd('wchan')} syscall=${rd('syscall')}`);
    }
    return out.join('\n');
  } catch (err) {
    return `pid ${pid}: ${String(err)}`;
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface Target {
  port?: number;
  host?: string;
  socketPath?: string;
}

export class RequestError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly reused: boolean,
    readonly answered: boolean,
  ) {
    super(message);
  }
}

/** One request; rejects with a RequestError telling whether the socket was reused and any byte answered. */
export function requestOnce(target: Target, path = '/', opts: { agent?: http.Agent | false; timeout?: number; method?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      {
        host: target.socketPath ? undefined : (target.host ?? '127.0.0.1'),
        port: target.port,
        socketPath: target.socketPath,
        path,
        method: opts.method ?? 'GET',
        agent: opts.agent ?? false,
      },
      (res) => {
        answered = true;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
        res.on('error', (e: NodeJS.ErrnoException) => reject(new RequestError(e.message, e.code, req.reusedSocket, true)));
      },
    );
    if (opts.timeout) {
      req.setTimeout(opts.timeout, () => req.destroy(Object.assign(new Error(`no answer within ${opts.timeout} ms`), { code: 'ETIMEDOUT' })));
    }
    req.on('error', (e: NodeJS.ErrnoException) => reject(new RequestError(e.message, e.code, req.reusedSocket, answered)));
    req.end();
  });
}

/**
 * A GET as a real HTTP client does it. A server may close a kept-alive connection
 * between requests (a worker that stops gracefully closes its idle connections), and a
 * request written on such a socket just before the close is never answered: the client
 * sees ECONNRESET or 'socket hang up' on a *reused* socket, before any byte of the
 * response. HTTP clients (browsers, curl, Node's own docs on `req.reusedSocket`) retry an
 * idempotent request in exactly that case, so this one does too, once per attempt up to
 * a few times, and counts the retries. Anything else -- an error on a fresh connection,
 * an error after part of the answer, a timeout, a non-2xx status -- is a failure.
 */
export async function get(target: Target, path = '/', opts: { agent?: http.Agent | false; timeout?: number; stats?: { retries: number } } = {}): Promise<Reply> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestOnce(target, path, opts);
    } catch (err) {
      const e = err as RequestError;
      const retriable = e instanceof RequestError && e.reused && !e.answered && (e.code === 'ECONNRESET' || /socket hang up/.test(e.message));
      if (!retriable || attempt >= 3) throw err;
      if (opts.stats) opts.stats.retries++;
    }
  }
}

export interface LoadResult {
  ok: number;
  failures: number;
  retries: number;
  errors: string[];
  /** Response bodies' first word (the app version) and pid, counted. */
  byVersion: Map<string, number>;
  byPid: Map<number, number>;
}

/**
 * A bounded load loop: `clients` concurrent clients, each with its own keep-alive agent,
 * making GETs back to back until stop() is called (or maxMs passes). The app answers
 * "<version> <pid> ...".
 */
export function load(target: Target, opts: { clients?: number; maxMs?: number; path?: string; keepAlive?: boolean } = {}): {
  result: LoadResult;
  stop: () => Promise<LoadResult>;
} {
  const result: LoadResult = { ok: 0, failures: 0, retries: 0, errors: [], byVersion: new Map(), byPid: new Map() };
  let running = true;
  const until = Date.now() + (opts.maxMs ?? 30_000);
  const loops = Array.from({ length: opts.clients ?? 2 }, async () => {
    const agent = new http.Agent({ keepAlive: opts.keepAlive ?? true, maxSockets: 1 });
    try {
      while (running && Date.now() < until) {
        try {
          const r = await get(target, opts.path ?? '/', { agent, timeout: 10_000, stats: result });
          if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body}`);
          result.ok++;
          const [version, pid] = r.body.split(' ');
          result.byVersion.set(version, (result.byVersion.get(version) ?? 0) + 1);
          result.byPid.set(Number(pid), (result.byPid.get(Number(pid)) ?? 0) + 1);
        } catch (err) {
          result.failures++;
          const e = err as RequestError;
          if (result.errors.length < 20) result.errors.push(`${e.code ?? ''} ${e.message} reused=${e.reused} answered=${e.answered}`);
          await sleep(5);
        }
      }
    } finally {
      agent.destroy();
    }
  });
  return {
    result,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

/** The test app: "<version> <pid> <url>", /slow after 1 s, /spin blocks its loop forever. */
export function appSource(version: string): string {
  return `// test app
const version = ${JSON.stringify(version)};
export default function app(req, res) {
  if (req.url === '/slow') {
    setTimeout(() => res.end(version + ' ' + process.pid + ' slow'), 1000);
    return;
  }
  if (req.url === '/spin') {
    for (;;) {}
  }
  res.setHeader('content-type', 'text/plain');
  res.end(version + ' ' + process.pid + ' ' + req.url);
}
`;
}

/** A scratch dir with app.mjs (version v1) in it. */
export function appDir(version = 'v1'): { dir: string; app: string; cleanup: () => void } {
  const s = scratch();
  const app = join(s.dir, 'app.mjs');
  writeFileSync(app, appSource(version));
  return { ...s, app };
}

/** What a test run by withServer gets: the server, its scratch dir, app file and port. */
export interface ServerCase {
  srv: Server;
  dir: string;
  app: string;
  port: number;
}

/**
 * Runs fn against `unixproc serve <app> ...args -l 127.0.0.1:<port>` on the test app (of
 * the given version) in a fresh scratch dir, once every worker is ready; the server is
 * always stopped (and checked gone) and the dir removed afterwards.
 */
export async function withServer(args: string[], fn: (c: ServerCase) => Promise<void>, version = 'v1'): Promise<void> {
  const { dir, app, cleanup } = appDir(version);
  const port = await freePort();
  const srv = new Server([app, ...args, '-l', `127.0.0.1:${port}`], { marker: dir });
  try {
    await srv.ready();
    await fn({ srv, dir, app, port });
  } finally {
    await srv.stop();
    cleanup();
  }
}

/** Runs `unixproc status` and returns its stdout. */
export async function status(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, 'status', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** Runs `unixproc serve ...` to its exit (for runs that must fail, or -D that returns). */
export async function runServe(args: string[], opts: { cwd?: string; ms?: number } = {}): Promise<{ code: number | null; signal: string | null; stderr: string; stdout: string }> {
  const child = spawn(process.execPath, [bin, 'serve', ...args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.ms ?? 30_000);
  // 'exit', not 'close': a daemon that kept the pipes would hold 'close' back.
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  await sleep(50);
  child.stdout.destroy();
  child.stderr.destroy();
  return { code, signal, stderr, stdout };
}
