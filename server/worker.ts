// The worker side of the preforking server (Unicorn's worker_loop): accept on the
// listening sockets inherited from the master, serve with the app the master preloaded,
// heartbeat to the master, and stop gracefully on QUIT (finish in-flight requests) or at
// once on TERM/INT.
import http, { type RequestListener, type ServerResponse } from 'node:http';
import net, { type Socket as Socket_ } from 'node:net';
import { IO, Process, Signal, Socket } from '../src/index.js';
import { log, redirectLogs, setRole } from './log.js';
import type { Scoreboard } from './scoreboard.js';
import type { ServeOptions, WorkerInfo } from './options.js';

export interface WorkerContext {
  info: WorkerInfo;
  options: ServeOptions;
  app: RequestListener;
  fds: number[];
  /** SEQPACKET channel to the master: heartbeats and 'ready' go up, a spare's slot comes down. */
  channel: Socket;
  /** Forked ahead of need: set up, but accepting only once the master gives it a slot. */
  spare?: boolean;
  /** Shared with the master and the other workers; this worker writes its own cell (-1: none). */
  board: Scoreboard;
  cell: number;
}

const STATE = Symbol('unixproc.connection');
const SOCKET = Symbol('unixproc.socket');
const FRESH = 0;
const BUSY = 1;
const IDLE = 2;
const CLOSED = 3;
type TrackedSocket = Socket_ & { [STATE]: number };
type TrackedResponse = ServerResponse & { [SOCKET]: TrackedSocket };

/** How long a worker holding more than its share of connections leaves new ones to the others. */
const MAX_PAUSE_MS = 5;

/** More than its share: over twice the connections of the least loaded other worker, and 3 or more. */
function crowded(mine: number, least: number): boolean {
  return mine > 2 * least + 2;
}

/** How long a stopping worker waits for the first request of a connection it accepted. */
const FRESH_GRACE_MS = 3000;

/** Messages a worker sends its master. */
export type WorkerMessage = { t: 'standby' } | { t: 'ready' } | { t: 'beat'; requests: number; active: number };
/** Messages a master sends a worker. */
export type MasterMessage = { t: 'go'; index: number };

function send(channel: Socket, msg: WorkerMessage): void {
  try {
    channel.send(JSON.stringify(msg), Socket.MSG_DONTWAIT);
  } catch {
    // The master is gone or its queue is full: the next beat tries again.
  }
}

export async function runWorker(ctx: WorkerContext): Promise<void> {
  const { info, options, channel } = ctx;
  let spare = ctx.spare === true;
  const name = () => `worker[${spare ? 'spare' : info.index}]`;
  setRole(name());
  let requests = 0;
  let active = 0;
  let stopping = false;
  const title = () => {
    Process.title = `unixproc ${name()} ${stopping ? 'stopping' : spare ? 'waiting' : 'serving'} requests=${requests} ${options.app}`;
  };
  title();
  // Trapped before anything else: the master forwards USR1 (and TTOU/HUP send QUIT) to a
  // worker that may still be booting, and USR1's default action would kill it. A QUIT
  // before the worker serves has nothing to finish.
  Signal.trap('USR1', () => redirectLogs());
  Signal.trap('TERM', () => Process.exit(0));
  Signal.trap('INT', () => Process.exit(0));
  Signal.trap('QUIT', () => Process.exit(0));
  // The master's messages; its death closes the channel, and a worker never outlives its master.
  let giveSlot: (index: number) => void = () => {};
  const slot = new Promise<number>((resolve) => (giveSlot = resolve));
  void (async () => {
    try {
      for await (const raw of channel.messages()) {
        let msg: MasterMessage | undefined;
        try {
          msg = JSON.parse(raw.toString()) as MasterMessage;
        } catch {
          continue; // not a message of ours
        }
        if (msg?.t === 'go' && Number.isInteger(msg.index)) giveSlot(msg.index);
      }
    } catch {
      // A failed read means the same as the end: the master is gone.
    }
    if (!stopping) log('worker.orphaned', { index: info.index });
    Process.exit(0);
  })();
  if (!spare) await options.afterFork?.(info);

  // Connections this worker accepted, and what each is doing: FRESH ones have not
  // delivered a request yet (the client has most likely sent one already), BUSY ones are
  // serving a request, IDLE ones wait between requests. Kept on the socket itself, with
  // one shared listener per response: this runs on every request (per-request closures
  // and sets cost about a tenth of a hello-world's throughput).
  const all = new Set<TrackedSocket>();
  let fresh = 0;
  function onResponseClose(this: TrackedResponse): void {
    active--;
    const sock = this[SOCKET];
    if (sock[STATE] === BUSY) sock[STATE] = IDLE;
    if (stopping) maybeFinish();
  }
  function onSocketClose(this: TrackedSocket): void {
    ctx.board.closed(ctx.cell);
    all.delete(this);
    if (this[STATE] === FRESH) fresh--;
    this[STATE] = CLOSED;
    if (stopping) maybeFinish();
  }
  const servers = ctx.fds.map(() =>
    http.createServer((req, res) => {
      requests++;
      active++;
      const sock = req.socket as TrackedSocket;
      if (sock[STATE] === FRESH) fresh--;
      sock[STATE] = BUSY;
      (res as TrackedResponse)[SOCKET] = sock;
      res.on('close', onResponseClose);
      if (stopping) res.setHeader('connection', 'close');
      ctx.app(req, res);
    }),
  );
  for (const s of servers) {
    s.on('connection', (sock: TrackedSocket) => {
      all.add(sock);
      sock[STATE] = FRESH;
      fresh++;
      ctx.board.opened(ctx.cell);
      sock.once('close', onSocketClose);
    });
  }
  // Requests on a kept-alive connection are not 'in flight' between requests: a graceful
  // stop closes such idle connections instead of waiting for the client.
  for (const s of servers) s.keepAliveTimeout = 5000;
  // Each server listens on a dup of the inherited socket, so that it can stop accepting
  // (closing the dup) and start again (a new dup) while the socket itself, and the
  // connections queued on it, stay open in the master and the other workers.
  const bases = ctx.fds.map((fd) => IO.for(fd));
  const listenAll = () =>
    Promise.all(
      servers.map(
        (s, i) =>
          new Promise<void>((resolve, reject) => {
            s.once('error', reject);
            s.listen({ fd: bases[i].dup().fileno }, () => {
              s.removeListener('error', reject);
              resolve();
            });
          }),
      ),
    );
  const beatEvery = Math.max(100, Math.min(1000, (options.timeout * 1000) / 4));
  const beat = setInterval(() => {
    send(channel, { t: 'beat', requests, active });
    title();
  }, beatEvery);
  if (spare) {
    // Everything a worker can do before it knows its slot is done: wait for one.
    send(channel, { t: 'standby' });
    info.index = await slot;
    spare = false;
    setRole(name());
    title();
    await options.afterFork?.(info);
  }
  await listenAll();
  ctx.board.setAccepting(ctx.cell, true);
  // Fair spread. Every worker's epoll wakes for a queued connection, and the first one
  // running would otherwise accept a whole burst (libuv accepts until the queue is
  // empty). So a worker that holds more connections than another worker plus one gives
  // the others the chance after each connection it takes: the dups are closed, and
  // listened on again on the next loop turn (a worker at or below that keeps accepting:
  // the yield costs a handful of syscalls per connection). A turn is
  // not enough when the others are not on a CPU at that moment (more runnable processes
  // than CPUs): a worker that holds more than its share (the scoreboard has every
  // worker's count) leaves the queue to them for up to MAX_PAUSE_MS, so a blocked
  // worker cannot stall new connections for long. The share is loose (twice the least
  // loaded worker's, plus 2): with clients that open a connection per request the
  // counts swing all the time, and a tighter one paused on every swing (measured: 14k
  // new connections a second fell to 8k, below node:cluster's 10k).
  let yielding = false;
  const relisten = () =>
    listenAll().then(
      () => (yielding = false),
      (err) => {
        log('worker.listen_failed', { error: String(err) });
        Process.exit(1);
      },
    );
  for (const s of servers) {
    s.on('connection', () => {
      if (yielding || stopping) return;
      const fewest = ctx.board.fewestOthers(ctx.cell);
      // Alone, or not ahead of the others: nobody to leave connections to.
      if (fewest === null || ctx.board.connections(ctx.cell) <= fewest + 1) return;
      yielding = true;
      for (const srv of servers) net.Server.prototype.close.call(srv);
      const pausedAt = Date.now();
      const resume = (): void => {
        if (stopping) return;
        const least = ctx.board.fewestOthers(ctx.cell);
        if (least !== null && crowded(ctx.board.connections(ctx.cell), least) && Date.now() - pausedAt < MAX_PAUSE_MS) {
          setTimeout(resume, 1);
          return;
        }
        void relisten();
      };
      setImmediate(resume);
    });
  }
  send(channel, { t: 'ready' });

  let finished = false;
  function maybeFinish(): void {
    if (stopping && active === 0 && fresh === 0) finish();
  }
  function finish(): void {
    if (finished) return;
    finished = true;
    clearInterval(beat);
    Process.exit(0);
  }

  Signal.trap('QUIT', () => {
    if (stopping) return;
    stopping = true;
    ctx.board.setAccepting(ctx.cell, false);
    title();
    log('worker.stopping', { index: info.index, active, fresh });
    // Stop accepting (net's close: http's would also drop the idle connections, fresh ones
    // included). A connection this worker accepted but has not read a request from yet
    // is served (with connection: close): closing it would lose a request that the client
    // sent on a new connection and cannot tell was not processed. Connections idle
    // between requests are closed; a client retries a request it wrote on a reused
    // connection that was closed before any answer.
    for (const s of servers) net.Server.prototype.close.call(s);
    for (const sock of all) if (sock[STATE] === IDLE) sock.destroy();
    // A fresh connection that sends nothing is not waited for long.
    setTimeout(() => {
      for (const sock of all) if (sock[STATE] === FRESH) sock.destroy();
    }, FRESH_GRACE_MS).unref();
    maybeFinish();
  });
}
