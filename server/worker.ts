// The worker side of the preforking server (Unicorn's worker_loop): accept on the
// listening sockets inherited from the master, serve with the app the master preloaded,
// heartbeat to the master, and stop gracefully on QUIT (finish in-flight requests) or at
// once on TERM/INT.
import http, { type RequestListener } from 'node:http';
import { Process, Signal, Socket } from '../src/index.js';
import { log, redirectLogs, setRole } from './log.js';
import type { ServeOptions, WorkerInfo } from './options.js';

export interface WorkerContext {
  info: WorkerInfo;
  options: ServeOptions;
  app: RequestListener;
  fds: number[];
  /** SEQPACKET channel to the master: heartbeats and 'ready' go up. */
  channel: Socket;
}

/** Messages a worker sends its master. */
export type WorkerMessage = { t: 'ready' } | { t: 'beat'; requests: number; active: number };

function send(channel: Socket, msg: WorkerMessage): void {
  try {
    channel.send(JSON.stringify(msg), Socket.MSG_DONTWAIT);
  } catch {
    // The master is gone or its queue is full: the next beat tries again.
  }
}

export async function runWorker(ctx: WorkerContext): Promise<void> {
  const { info, options, channel } = ctx;
  setRole(`worker[${info.index}]`);
  let requests = 0;
  let active = 0;
  let stopping = false;
  const title = () => {
    Process.title = `unixproc worker[${info.index}] ${stopping ? 'stopping' : 'serving'} requests=${requests} ${options.app}`;
  };
  title();
  await options.afterFork?.(info);

  const servers = ctx.fds.map(() =>
    http.createServer((req, res) => {
      requests++;
      active++;
      res.once('close', () => {
        active--;
        if (stopping && active === 0) finish();
      });
      if (stopping) res.setHeader('connection', 'close');
      ctx.app(req, res);
    }),
  );
  // Requests on a kept-alive connection are not 'in flight' between requests: a graceful
  // stop closes such idle connections instead of waiting for the client.
  for (const s of servers) s.keepAliveTimeout = 5000;
  await Promise.all(
    servers.map(
      (s, i) =>
        new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen({ fd: ctx.fds[i] }, () => resolve());
        }),
    ),
  );
  send(channel, { t: 'ready' });
  const beatEvery = Math.max(100, Math.min(1000, (options.timeout * 1000) / 4));
  const beat = setInterval(() => {
    send(channel, { t: 'beat', requests, active });
    title();
  }, beatEvery);

  let finished = false;
  function finish(): void {
    if (finished) return;
    finished = true;
    clearInterval(beat);
    Process.exit(0);
  }

  Signal.trap('QUIT', () => {
    if (stopping) return;
    stopping = true;
    title();
    log('worker.stopping', { index: info.index, active });
    for (const s of servers) {
      s.close();
      s.closeIdleConnections();
    }
    if (active === 0) finish();
  });
  Signal.trap('TERM', () => Process.exit(0));
  Signal.trap('INT', () => Process.exit(0));
  Signal.trap('USR1', () => redirectLogs());
  // The master's death closes the channel: a worker never outlives its master.
  channel.recvAsync(1).then(() => {
    if (!stopping) log('worker.orphaned', { index: info.index });
    Process.exit(0);
  });
}
