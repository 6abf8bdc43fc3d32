// The master of the preforking server, after Unicorn's master loop. It binds the
// listeners and preloads the app once, then forks workers that share both (the app
// copy-on-write), and babysits them: reaps and respawns the dead (backing off from a
// crash loop), kills the silent (a worker whose heartbeat stops has a blocked loop),
// and turns signals into actions one at a time, in arrival order:
//   QUIT graceful stop · TERM/INT quick stop · HUP reload config and app · USR2 re-exec
//   a new master that inherits the listeners · WINCH stop all workers · TTIN/TTOU one
//   worker more/less · USR1 reopen logs.
// A forked worker starts as a copy of the master, with the master's timers, handles and
// pending continuations: becomeWorker() closes what is the master's, and every async
// master path checks that it still runs in the master.
import { existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import type { RequestListener } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compactHeap,
  exec,
  fork,
  type IO,
  kill,
  listen,
  Listener,
  parseAddress,
  Process,
  readPss,
  removeBuilds,
  Signal,
  Socket,
  type Status,
  SystemCallError,
  wait2,
} from '../src/index.js';
import { loadApp } from './app.js';
import { log, redirectLogs } from './log.js';
import { warmHttp } from './warm.js';
import { resolveOptions, START_CWD, type ServeOptions, type WorkerInfo } from './options.js';
import { Scoreboard } from './scoreboard.js';
import { type MasterMessage, runWorker, type WorkerMessage } from './worker.js';

interface WorkerState extends WorkerInfo {
  channel: Socket;
  startedAt: number;
  lastBeat: number;
  requests: number;
  active: number;
  ready: boolean;
  quitting: boolean;
  /** Forked ahead of need and idle until given a slot (index -1 until then). */
  spare: boolean;
  /** A spare that has set itself up and waits for its slot. */
  standby: boolean;
  /** Its cell on the scoreboard (-1: none free). */
  cell: number;
}

/** How long after a spare is put to work the next one is forked: the fork waits for the worker's first requests. */
const SPARE_DELAY_MS = 50;

const SIGNALS = ['QUIT', 'TERM', 'INT', 'HUP', 'USR1', 'USR2', 'WINCH', 'TTIN', 'TTOU'] as const;
const WORKER_SIGNALS = new Set<string>(['QUIT', 'TERM', 'INT', 'USR1']);
/** A worker that dies sooner than this after its start counts toward a crash loop. */
const CRASH_WINDOW_MS = 5_000;
const QUICK_STOP_MS = 5_000;

/** Environment a re-executed master finds its inherited listeners in. */
export const LISTEN_FDS_ENV = 'UNIXPROC_LISTEN_FDS';
export const UPGRADE_ENV = 'UNIXPROC_UPGRADE';

export class Master {
  private opts!: ServeOptions;
  private app!: RequestListener;
  private generation = 0;
  private listeners: Listener[] = [];
  private readonly workers = new Map<number, WorkerState>();
  private readonly board = new Scoreboard();
  private target = 0;
  private readonly queue: string[] = [];
  private draining = false;
  private stopping = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private control?: { server: net.Server; listener: Listener; ino: number };
  private readonly pid = process.pid;
  private upgradePid: number | null = null;
  private crashes: number[] = [];
  private spawnScheduled: NodeJS.Timeout | null = null;
  private spareScheduled: NodeJS.Timeout | null = null;
  private announced = false;
  private finished!: () => void;
  /** Resolves when the master has stopped (in the master only). */
  readonly done = new Promise<void>((res) => (this.finished = res));

  constructor(
    private readonly flags: Partial<ServeOptions>,
    private readonly ready?: IO,
  ) {}

  private get inMaster(): boolean {
    return process.pid === this.pid;
  }

  async start(): Promise<void> {
    this.opts = await resolveOptions(this.flags, this.generation);
    if (this.opts.stdout || this.opts.stderr) redirectLogs({ stdout: this.opts.stdout, stderr: this.opts.stderr });
    if (this.opts.pid) refuseLivePid(this.opts.pid);
    // libuv accepts one connection per loop turn when this is set, so an idle worker gets
    // the next one instead of the busiest: the spread over workers stays even.
    process.env.UV_TCP_SINGLE_ACCEPT ??= '1';
    this.listeners = await this.bindListeners();
    this.app = await loadApp(this.opts.app, this.generation);
    await prepareToFork();
    this.target = this.opts.workers;
    await this.startControl();
    for (const sig of SIGNALS) Signal.trap(sig, () => this.enqueue(sig));
    this.every(1000, () => this.murderLazyWorkers());
    this.setTitle();
    log('master.start', {
      app: this.opts.app,
      listen: this.listeners.map((l) => l.boundAddress),
      workers: this.target,
      control: this.control?.listener.address,
    });
    if (this.target === 0) this.announceReady();
    this.spawnMissingWorkers();
  }

  /** Inherited listeners (a re-executed master) or freshly bound ones. */
  private async bindListeners(): Promise<Listener[]> {
    const inherited = process.env[LISTEN_FDS_ENV];
    if (inherited) {
      delete process.env[LISTEN_FDS_ENV];
      const list = JSON.parse(inherited) as Array<{ fd: number; address: string }>;
      return list.map(({ fd, address }) => {
        const l = new Listener(fd, address);
        l.setInheritable(false);
        return l;
      });
    }
    const out: Listener[] = [];
    try {
      for (const address of this.opts.listen) out.push(await listen(address, { backlog: this.opts.backlog, mode: this.opts.socketMode }));
    } catch (err) {
      for (const l of out) l.close();
      throw err;
    }
    return out;
  }

  private async startControl(): Promise<void> {
    const path = this.opts.control ?? join(tmpdir(), `unixproc-${process.pid}.sock`);
    // An explicit path is taken over from an old master during an upgrade.
    if (this.opts.control && process.env[UPGRADE_ENV] && existsSync(path)) unlinkSync(path);
    // Bound by unixproc, not by net.Server: libuv unlinks a path it bound itself when the
    // handle closes, which a forked worker closing its copy would do to the master's.
    const listener = await listen(`unix:${path}`, { mode: 0o600 });
    const server = net.createServer((conn) => {
      conn.once('data', () => {
        conn.end(`${JSON.stringify(this.status())}\n`);
      });
      conn.on('error', () => {});
    });
    server.listen({ fd: listener.fd });
    server.unref();
    this.control = { server, listener, ino: statSync(path).ino };
  }

  status(): Record<string, unknown> {
    const now = Date.now();
    return {
      master: { pid: this.pid, generation: this.generation, workersWanted: this.target, app: this.opts.app, upgradePid: this.upgradePid },
      listeners: this.listeners.map((l) => l.boundAddress),
      spares: [...this.workers.values()]
        .filter((w) => w.spare)
        .map((w) => ({
          pid: w.pid,
          generation: w.generation,
          ageSeconds: Math.round((now - w.startedAt) / 100) / 10,
          lastHeartbeatSecondsAgo: Math.round((now - w.lastBeat) / 100) / 10,
          state: w.quitting ? 'stopping' : w.standby ? 'spare' : 'booting',
          pssKiB: readPss(w.pid),
        })),
      workers: [...this.workers.values()]
        .filter((w) => !w.spare)
        .sort((a, b) => a.index - b.index)
        .map((w) => ({
          index: w.index,
          pid: w.pid,
          generation: w.generation,
          ageSeconds: Math.round((now - w.startedAt) / 100) / 10,
          requests: w.requests,
          active: w.active,
          connections: this.board.connections(w.cell),
          lastHeartbeatSecondsAgo: Math.round((now - w.lastBeat) / 100) / 10,
          state: w.quitting ? 'stopping' : w.ready ? 'serving' : 'booting',
          pssKiB: readPss(w.pid),
        })),
    };
  }

  private every(ms: number, fn: () => void): void {
    this.timers.add(setInterval(fn, ms));
  }

  private setTitle(): void {
    const role = this.upgradePid ? 'master (old)' : 'master';
    Process.title = `unixproc ${role} -w ${this.target} -l ${this.listeners.map((l) => l.address).join(',')} ${this.opts.app}`;
  }

  // ---- signals, one at a time ------------------------------------------------------

  private enqueue(sig: string): void {
    this.queue.push(sig);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length && this.inMaster) {
        const sig = this.queue.shift()!;
        log('master.signal', { signal: sig });
        await this.handle(sig);
      }
    } catch (err) {
      log('master.error', { error: String((err as Error)?.stack ?? err) });
    } finally {
      this.draining = false;
    }
  }

  private async handle(sig: string): Promise<void> {
    switch (sig) {
      case 'QUIT':
        return this.stop(true);
      case 'TERM':
      case 'INT':
        return this.stop(false);
      case 'HUP':
        return this.reload();
      case 'USR2':
        return this.upgrade();
      case 'WINCH':
        this.target = 0;
        for (const w of this.workers.values()) this.quitWorker(w);
        this.setTitle();
        return;
      case 'TTIN':
        this.target++;
        this.setTitle();
        this.spawnMissingWorkers();
        return;
      case 'TTOU': {
        if (this.target === 0) return;
        this.target--;
        this.setTitle();
        for (const w of this.workers.values()) if (w.index >= this.target) this.quitWorker(w);
        this.keepSpares();
        return;
      }
      case 'USR1':
        redirectLogs();
        for (const w of this.workers.values()) this.signalWorker(w, 'USR1');
        log('master.logs_reopened');
        return;
    }
  }

  // ---- workers ---------------------------------------------------------------------

  private spawnMissingWorkers(backedOff = false): void {
    if (this.stopping || !this.inMaster || this.spawnScheduled) return;
    // After the wait, spawn: the crashes stay counted for a minute, and asking again
    // would only wait again without ever spawning (logging a backoff every delay).
    const delay = backedOff ? 0 : this.backoffMs();
    if (delay > 0) {
      log('master.backoff', { delayMs: delay, recentCrashes: this.crashes.length });
      this.spawnScheduled = setTimeout(() => {
        this.spawnScheduled = null;
        this.crashes = this.crashes.filter((t) => Date.now() - t < 60_000);
        this.spawnMissingWorkers(true);
      }, delay);
      this.timers.add(this.spawnScheduled);
      return;
    }
    for (let index = 0; index < this.target; index++) {
      const taken = [...this.workers.values()].some((w) => w.index === index && w.generation === this.generation && !w.quitting);
      if (taken) continue;
      const spare = [...this.workers.values()].find((w) => w.spare && w.standby && !w.quitting && w.generation === this.generation);
      if (spare && this.activate(spare, index)) continue;
      this.spawnWorker(index);
      if (!this.inMaster) return; // this is a freshly forked worker now
    }
    this.keepSpares();
  }

  /** Puts a spare to work in a slot; false if it cannot be told (it has just died). */
  private activate(w: WorkerState, index: number): boolean {
    try {
      w.channel.send(JSON.stringify({ t: 'go', index } satisfies MasterMessage), Socket.MSG_DONTWAIT);
    } catch {
      return false;
    }
    w.spare = false;
    w.index = index;
    w.startedAt = Date.now();
    log('worker.spawn', { index, worker: w.pid, generation: w.generation, spare: true });
    return true;
  }

  /** Retires spares of an older app or while no worker is wanted, and forks missing ones (a moment later). */
  private keepSpares(): void {
    if (!this.inMaster || this.stopping) return;
    const spares = [...this.workers.values()].filter((w) => w.spare && !w.quitting);
    for (const w of spares) if (w.generation !== this.generation || this.target === 0) this.quitWorker(w);
    if (this.spareScheduled || this.target === 0 || this.backoffMs() > 0) return;
    const missing = this.opts.spare - spares.filter((w) => w.generation === this.generation).length;
    if (missing <= 0) return;
    this.spareScheduled = setTimeout(() => {
      this.timers.delete(this.spareScheduled!);
      this.spareScheduled = null;
      if (this.stopping || this.target === 0) return;
      const have = [...this.workers.values()].filter((w) => w.spare && !w.quitting && w.generation === this.generation).length;
      for (let i = have; i < this.opts.spare; i++) {
        this.spawnWorker(-1);
        if (!this.inMaster) return;
      }
    }, SPARE_DELAY_MS);
    this.timers.add(this.spareScheduled);
  }

  /**
   * Runs a master hook: the master never dies of one. A throw or a rejection is logged as
   * hook.error and nothing else changes (the fork, the reap or the exec goes ahead). A
   * promise is not waited for: the master's turn does not stop for user code. A forked
   * child must not report its parent's rejection, hence the check that this is still the master.
   */
  private callHook(hook: string, run: () => unknown): void {
    const fail = (err: unknown) => log('hook.error', { hook, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    try {
      const r = run();
      if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, (err) => this.inMaster && fail(err));
    } catch (err) {
      fail(err);
    }
  }

  /** Exponential backoff once three workers have died young within a minute. */
  private backoffMs(): number {
    const now = Date.now();
    this.crashes = this.crashes.filter((t) => now - t < 60_000);
    const n = this.crashes.length;
    return n < 3 ? 0 : Math.min(10_000, 100 * 2 ** (n - 3));
  }

  /** Forks the worker for a slot, or a spare (index -1). */
  private spawnWorker(index: number): void {
    const spare = index < 0;
    const generation = this.generation;
    this.callHook('beforeFork', () => this.opts.beforeFork?.({ index, generation }));
    const [mine, theirs] = Socket.pair('SEQPACKET');
    const cell = this.board.claim();
    let pid: number | null;
    try {
      pid = fork();
    } catch (err) {
      this.board.release(cell);
      mine.close();
      theirs.close();
      throw err;
    }
    if (pid === null) {
      this.becomeWorker({ index, pid: process.pid, generation }, theirs, mine, spare, cell);
      return;
    }
    theirs.close();
    const now = Date.now();
    const w: WorkerState = { index, pid, generation, channel: mine, startedAt: now, lastBeat: now, requests: 0, active: 0, ready: false, quitting: false, spare, standby: false, cell };
    this.workers.set(pid, w);
    log(spare ? 'spare.spawn' : 'worker.spawn', spare ? { worker: pid, generation } : { index, worker: pid, generation });
    void this.readChannel(w);
    wait2(pid).then(
      (r) => this.inMaster && this.reaped(w, r![1]),
      (err) => this.inMaster && log('master.error', { error: String(err) }),
    );
  }

  private async readChannel(w: WorkerState): Promise<void> {
    for await (const raw of w.channel.messages()) {
      if (!this.inMaster) return;
      let msg: WorkerMessage;
      try {
        msg = JSON.parse(raw.toString());
      } catch {
        continue;
      }
      w.lastBeat = Date.now();
      if (msg.t === 'beat') {
        w.requests = msg.requests;
        w.active = msg.active;
      } else if (msg.t === 'standby' && !w.standby) {
        w.standby = true;
        log('spare.ready', { worker: w.pid, generation: w.generation, bootMs: w.lastBeat - w.startedAt });
        // A slot may have emptied while this spare was booting.
        this.spawnMissingWorkers();
      } else if (msg.t === 'ready' && !w.ready) {
        w.ready = true;
        log('worker.ready', { index: w.index, worker: w.pid, generation: w.generation, bootMs: w.lastBeat - w.startedAt });
        this.callHook('afterWorkerReady', () => this.opts.afterWorkerReady?.({ index: w.index, pid: w.pid, generation: w.generation }));
        this.retireReplaced(w);
        this.announceReady();
      }
    }
  }

  /** After a reload, each ready new worker retires the old worker of its slot. */
  private retireReplaced(fresh: WorkerState): void {
    for (const old of this.workers.values()) {
      if (old.generation < fresh.generation && (old.index === fresh.index || old.index >= this.target)) this.quitWorker(old);
    }
  }

  private announceReady(): void {
    if (this.announced) return;
    this.announced = true;
    // The pid file is written once the master can serve, so a new master's pid file
    // tells an upgrade script that the old one can be sent QUIT.
    if (this.opts.pid) writeFileAtomic(this.opts.pid, `${this.pid}\n`);
    if (this.ready) {
      this.ready.write('ok\n');
      this.ready.close();
    }
    log('master.ready', { pid: this.pid });
    // A person at a terminal gets one line to read among the JSON ones; a log file or pipe does not.
    if (process.stderr.isTTY) {
      const urls = this.listeners.map((l) => (l.boundAddress.startsWith('unix:') || l.boundAddress.startsWith('/') ? l.boundAddress : `http://${l.boundAddress}/`));
      process.stderr.write(`unixproc serve: serving ${this.opts.app} on ${urls.join(' and ')} with ${this.target} worker${this.target === 1 ? '' : 's'} (master ${this.pid}; Ctrl-C stops, QUIT stops gracefully)\n`);
    }
  }

  private reaped(w: WorkerState, status: Status): void {
    this.workers.delete(w.pid);
    this.board.release(w.cell);
    w.channel.close();
    const lived = Date.now() - w.startedAt;
    if (w.spare) {
      log('spare.exit', { worker: w.pid, status: String(status), livedMs: lived, expected: w.quitting || this.stopping });
      if (!w.quitting && !this.stopping && lived < CRASH_WINDOW_MS) this.crashes.push(Date.now());
      this.spawnMissingWorkers();
      return;
    }
    log('worker.exit', { index: w.index, worker: w.pid, status: String(status), livedMs: lived, expected: w.quitting || this.stopping });
    this.callHook('onWorkerExit', () => this.opts.onWorkerExit?.({ index: w.index, pid: w.pid, generation: w.generation }, status));
    if (!w.quitting && !this.stopping && lived < CRASH_WINDOW_MS) this.crashes.push(Date.now());
    this.spawnMissingWorkers();
  }

  private murderLazyWorkers(): void {
    const now = Date.now();
    for (const w of this.workers.values()) {
      if (now - w.lastBeat <= this.opts.timeout * 1000) continue;
      log('worker.timeout', { index: w.index, worker: w.pid, silentMs: now - w.lastBeat });
      w.lastBeat = now; // one SIGKILL per timeout period
      this.signalWorker(w, 'KILL');
    }
  }

  private quitWorker(w: WorkerState): void {
    if (w.quitting) return;
    w.quitting = true;
    this.signalWorker(w, 'QUIT');
  }

  private signalWorker(w: WorkerState, sig: string): void {
    try {
      kill(sig, w.pid);
    } catch (err) {
      // ESRCH: already gone, the reaper will see it.
      if ((err as SystemCallError).code !== 'ESRCH') throw err;
    }
  }

  /** In a freshly forked worker: drop everything that is the master's, then serve. */
  private becomeWorker(info: WorkerInfo, channel: Socket, masterEnd: Socket, spare: boolean, cell: number): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // Signals the worker traps itself (QUIT, TERM, INT, USR1) are replaced by runWorker
    // without a gap, so one that the master sent during the fork still reaches it.
    for (const sig of SIGNALS) if (!WORKER_SIGNALS.has(sig)) Signal.trap(sig, 'DEFAULT');
    masterEnd.close();
    for (const other of this.workers.values()) other.channel.close();
    this.workers.clear();
    this.control?.server.close();
    // The -D ready pipe is the master's to write: a worker holding it open would keep the
    // waiting command from seeing EOF.
    if (this.ready && !this.ready.closed) this.ready.close();
    this.queue.length = 0;
    runWorker({ info, options: this.opts, app: this.app, fds: this.listeners.map((l) => l.fd), channel, spare, board: this.board, cell }).catch((err) => {
      log('worker.error', { error: String((err as Error)?.stack ?? err) });
      Process.exit(1);
    });
  }

  // ---- reload, upgrade, stop ---------------------------------------------------------

  private async reload(): Promise<void> {
    const generation = this.generation + 1;
    let opts: ServeOptions;
    let app: RequestListener;
    try {
      opts = await resolveOptions(this.flags, generation);
      app = await loadApp(opts.app, generation);
    } catch (err) {
      log('master.reload_failed', { error: String((err as Error)?.message ?? err) });
      return;
    }
    if (!this.inMaster) return;
    if (opts.listen.join() !== this.opts.listen.join()) log('master.reload_listen_ignored', { hint: 'changing listeners needs USR2' });
    this.opts = { ...opts, listen: this.opts.listen };
    this.app = app;
    await prepareToFork();
    if (!this.inMaster) return;
    this.generation = generation;
    this.target = opts.workers;
    this.crashes = [];
    this.setTitle();
    log('master.reload', { generation, workers: this.target });
    this.spawnMissingWorkers();
    if (this.target === 0) for (const w of this.workers.values()) this.quitWorker(w);
  }

  private upgrade(): void {
    if (this.upgradePid) {
      log('master.upgrade_ignored', { reason: 'an upgrade is under way', newMaster: this.upgradePid });
      return;
    }
    const pidFile = this.opts.pid;
    if (pidFile && existsSync(pidFile)) renameSync(pidFile, `${pidFile}.oldbin`);
    this.callHook('beforeExec', () => this.opts.beforeExec?.());
    const pid = fork();
    if (pid === null) {
      // The new master: same program, same arguments, listeners inherited by number.
      for (const l of this.listeners) l.setInheritable(true);
      process.env[LISTEN_FDS_ENV] = JSON.stringify(this.listeners.map((l) => ({ fd: l.fd, address: l.address })));
      process.env[UPGRADE_ENV] = '1';
      try {
        // Relative paths in the arguments mean what they meant when the command started
        // (a daemon runs in /).
        process.chdir(START_CWD);
        exec(process.execPath, [...process.execArgv, ...process.argv.slice(1)]);
      } catch (err) {
        log('master.exec_failed', { error: String(err) });
        Process.exitNow(1);
      }
      return;
    }
    this.upgradePid = pid;
    this.setTitle();
    log('master.upgrade', { newMaster: pid });
    wait2(pid).then((r) => {
      if (!this.inMaster) return;
      this.upgradePid = null;
      this.setTitle();
      log('master.upgrade_exited', { newMaster: pid, status: String(r![1]) });
      // A new master that died leaves this one serving, under its old pid file name.
      if (pidFile && existsSync(`${pidFile}.oldbin`)) {
        const current = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
        if (!current || current === pid || !alive(current)) renameSync(`${pidFile}.oldbin`, pidFile);
      }
    });
  }

  private async stop(graceful: boolean): Promise<void> {
    if (this.stopping) {
      if (graceful) return;
      for (const w of this.workers.values()) this.signalWorker(w, 'TERM');
      return;
    }
    this.stopping = true;
    if (this.spawnScheduled) clearTimeout(this.spawnScheduled);
    log('master.stopping', { graceful, workers: this.workers.size });
    for (const w of this.workers.values()) {
      w.quitting = true;
      this.signalWorker(w, graceful ? 'QUIT' : 'TERM');
    }
    const deadline = Date.now() + (graceful ? this.opts.shutdownTimeout * 1000 : QUICK_STOP_MS);
    while (this.workers.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const w of this.workers.values()) {
      log('worker.kill', { index: w.index, worker: w.pid, reason: 'shutdown timeout' });
      this.signalWorker(w, 'KILL');
    }
    while (this.workers.size > 0) await new Promise((r) => setTimeout(r, 20));
    if (!this.inMaster) return;
    this.cleanup();
    log('master.exit', {});
    this.finished();
    Process.exit(0);
  }

  private cleanup(): void {
    removeBuilds();
    for (const t of this.timers) clearTimeout(t);
    if (this.control) {
      this.control.server.close();
      // After an upgrade the path may be the new master's socket (bound anew at the same
      // path): remove only the file this master bound.
      try {
        if (statSync(this.control.listener.address).ino === this.control.ino) unlinkSync(this.control.listener.address);
      } catch {
        /* already gone */
      }
    }
    // A new master (USR2) serves on the same socket files: leave them to it.
    const handedOver = this.upgradePid !== null && alive(this.upgradePid);
    for (const l of this.listeners) {
      l.close();
      const parsed = parseAddress(l.address);
      if (parsed.kind === 'unix' && !handedOver && existsSync(parsed.path!)) unlinkSync(parsed.path!);
    }
    const pidFile = this.opts.pid;
    for (const file of pidFile ? [pidFile, `${pidFile}.oldbin`] : []) {
      if (existsSync(file) && Number(readFileSync(file, 'utf8')) === this.pid) unlinkSync(file);
    }
  }
}

/**
 * Before forking workers from a freshly loaded app. Loading leaves garbage, a young
 * generation grown to 32 MiB and often a major GC under way, which every worker would
 * otherwise finish or scavenge on its own copy, unsharing the pages it touches: the heap
 * is compacted first (measured with a 200 MB app: 328 → 260 MiB resident in the master).
 * Then node:http's server code is compiled once for all workers (after the compaction,
 * which drops idle bytecode), so a new worker's first request does not wait for it.
 */
async function prepareToFork(): Promise<void> {
  compactHeap();
  await warmHttp();
}

function alive(pid: number): boolean {
  try {
    kill(0, pid);
    return true;
  } catch (err) {
    return (err as SystemCallError).code === 'EPERM';
  }
}

/** Refuses to start over a live master; a pid file left by a dead one is replaced. */
function refuseLivePid(file: string): void {
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
    throw new Error(`already running as pid ${pid} (pid file ${file})`);
  }
}

function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}
