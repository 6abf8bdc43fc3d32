// Benchmark: how fast the dashboard (`dashboard()` of unixproc/jobs) answers with a big store,
// on SQLite and on Redis (a private redis-server on a free port). It fills each store through
// the Backend API (10,000 jobs enqueued in batches, then claimed and failed one by one, so they
// are kept failures as a worker would leave them; 100 registered workers, each with a running
// job and a fresh heartbeat with memory figures; some pending and delayed jobs), serves the
// dashboard on a node:http server on 127.0.0.1, and times GET of each page, sequentially over
// one kept-alive connection: warm-up requests, then --requests timed ones per page, from the
// request written to the last byte of the body. It prints a markdown table (median, p99 nearest
// rank, max) against the target: every page under 200 ms. The peer is Bull Board
// (@bull-board/api with its express adapter) over a BullMQ queue on the same kind of Redis,
// holding as many failed jobs: its failed list (the JSON its single-page UI fetches, 25 a page)
// is timed the same way, first and last page, against ours on Redis.
//
// Run: npm run build && node dist/bench/jobs-web.js [--requests 100] [--warmup 10]
//      [--failed 10000] [--workers 100] [--backends sqlite,redis] [--no-peer] [--json FILE]
import { cpus, hostname, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openBackend, type Backend, type JobRecord } from '../jobs/index.js';
import { dashboard } from '../jobs/dashboard.js';
import type { EnqueueSpec } from '../jobs/backend.js';
import { startRedis, type RedisServer } from '../test/redis-server.js';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq';
import express from 'express';

const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '10' },
    failed: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '100' },
    backends: { type: 'string', default: 'sqlite,redis' },
    peer: { type: 'boolean', default: true },
    json: { type: 'string' },
  },
});

function positive(flag: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}
const REQUESTS = positive('requests', flags.requests);
const WARMUP = positive('warmup', flags.warmup);
const FAILED = positive('failed', flags.failed);
const WORKERS = positive('workers', flags.workers);
const BACKENDS = flags.backends!.split(',').filter(Boolean);
for (const b of BACKENDS) if (b !== 'sqlite' && b !== 'redis') throw new RangeError(`--backends: unknown backend ${JSON.stringify(b)} (sqlite, redis)`);
const TARGET_MS = 200;
const QUEUES = ['default', 'mail', 'reports', 'critical', 'webhooks'];
const JOB_NAMES = ['SendEmail', 'Archive', 'ResizeImage', 'ChargeCard', 'SyncAccount'];

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);

function spec(name: string, args: unknown[], queue: string, runAt = Date.now()): EnqueueSpec {
  return { name, args, queue, runAt, attempts: 1, backoff: 1000, timeout: null, unique: null };
}

/** Runs fn over items with at most `width` calls in flight (Redis round trips overlap; SQLite is synchronous anyway). */
async function inFlight<T>(items: T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}

interface Fill {
  failed: number;
  workers: number;
  pending: number;
  delayed: number;
  seconds: number;
  /** A failed job's id, for its detail page. */
  sampleJobId: string;
}

/** Fills an empty store: FAILED kept failures, WORKERS workers each running a job, some pending and delayed jobs. */
async function fill(b: Backend): Promise<{ fill: Fill; heartbeat: () => Promise<void> }> {
  const t0 = performance.now();
  const filler = `${hostname()}:${process.pid}:bench-filler`;
  await b.registerWorker({ id: filler, host: hostname(), pid: process.pid, queues: ['*'] });
  for (let done = 0; done < FAILED; done += 1000) {
    const n = Math.min(1000, FAILED - done);
    await b.enqueue(
      Array.from({ length: n }, (_, k) => {
        const i = done + k;
        return spec(JOB_NAMES[i % JOB_NAMES.length], [i, `user-${i % 997}@example.com`, { attempt: i % 3, tags: ['bench', QUEUES[i % QUEUES.length]] }], QUEUES[i % QUEUES.length]);
      }),
    );
  }
  let sampleJobId = '';
  let claimed = 0;
  // Claims must find jobs: one lane per claim in flight, each fails what it took.
  await inFlight(Array.from({ length: FAILED }), 20, async () => {
    const job = await b.claim(filler, ['*']);
    if (!job) throw new Error(`the store ran out of jobs after ${claimed} claims of ${FAILED}`);
    claimed++;
    sampleJobId ||= job.id;
    const n = Number(job.args[0]);
    await b.fail(
      filler,
      job,
      {
        error: `request to https://api.example.com/v1/items/${n} failed: 503 Service Unavailable`,
        exception: n % 4 === 0 ? 'SIGKILL (signal 9)' : 'Error',
        backtrace: [`Error: request failed: 503`, `    at ${job.name}.perform (jobs.ts:${10 + (n % 50)}:11)`, '    at runJob (unixproc/jobs/worker.js:512:7)', '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)'],
        worker: filler,
      },
      null,
    );
  });
  await b.unregisterWorker(filler);

  // One running job per worker: enqueue them on a queue of their own and let each worker claim one.
  await b.enqueue(Array.from({ length: WORKERS }, (_, i) => spec('ResizeImage', [`img-${i}.jpg`, { width: 640 }], 'images')));
  const workers: Array<{ id: string; running: Array<{ job: JobRecord; since: number; childPid: number | null; rss?: number }>; rss: number }> = [];
  for (let i = 0; i < WORKERS; i++) {
    const host = `app-${String(1 + (i % 10)).padStart(2, '0')}`;
    const pid = 10_000 + i;
    const queues = i % 2 ? ['images', 'default'] : ['images', 'critical', 'mail'];
    const id = `${host}:${pid}:${queues.join(',')}`;
    await b.registerWorker({ id, host, pid, queues });
    const job = await b.claim(id, ['images']);
    if (!job) throw new Error(`worker ${i} found no job to run`);
    workers.push({ id, running: [{ job, since: Date.now() - i * 1000, childPid: 20_000 + i, rss: (40 + (i % 30)) * 1048576 }], rss: (90 + (i % 40)) * 1048576 });
  }
  const heartbeat = async () => {
    await inFlight(workers, 20, async (w) => b.heartbeat(w.id, w.running, w.rss));
  };
  await heartbeat();

  const pending = 500;
  const delayed = 200;
  await b.enqueue(Array.from({ length: pending }, (_, i) => spec(JOB_NAMES[i % JOB_NAMES.length], [i], QUEUES[i % QUEUES.length])));
  await b.enqueue(Array.from({ length: delayed }, (_, i) => spec('SendEmail', [`later-${i}@example.com`], 'mail', Date.now() + 3_600_000 + i * 60_000)));
  return { fill: { failed: FAILED, workers: WORKERS, pending, delayed, seconds: (performance.now() - t0) / 1000, sampleJobId }, heartbeat };
}

interface Timing {
  path: string;
  status: number;
  bytes: number;
  /** tr[data-failure-id] rows in the page (failed pages). */
  rows: number;
  median: number;
  p99: number;
  max: number;
}

function get(agent: Agent, port: number, path: string): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { accept: 'text/html,application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Nearest rank, of sorted values. */
const rank = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];

async function timePages(port: number, paths: string[], heartbeat: () => Promise<void>): Promise<Timing[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: Timing[] = [];
  try {
    for (const path of paths) {
      // Keep the workers alive in the store's eyes, outside the timed requests.
      await heartbeat();
      let last = await get(agent, port, path);
      for (let i = 1; i < WARMUP; i++) last = await get(agent, port, path);
      if (last.status !== 200) throw new Error(`GET ${path} answered ${last.status}: ${last.body.slice(0, 300)}`);
      const ms: number[] = [];
      for (let i = 0; i < REQUESTS; i++) {
        const r = await get(agent, port, path);
        if (r.status !== 200) throw new Error(`GET ${path} answered ${r.status} on request ${i}`);
        ms.push(r.ms);
        last = r;
      }
      ms.sort((a, b) => a - b);
      const rows = (last.body.match(/<tr[^>]*\bdata-failure-id=/g) ?? []).length;
      out.push({ path, status: last.status, bytes: Buffer.byteLength(last.body), rows, median: rank(ms, 0.5), p99: rank(ms, 0.99), max: ms[ms.length - 1] });
      log(`  GET ${path}: median ${rank(ms, 0.5).toFixed(1)} ms, p99 ${rank(ms, 0.99).toFixed(1)} ms`);
    }
  } finally {
    agent.destroy();
  }
  return out;
}

interface Result {
  backend: string;
  fill: Fill;
  stats: unknown;
  timings: Timing[];
}

async function benchOne(kind: string, tmp: string): Promise<Result> {
  let redis: RedisServer | null = null;
  const url = kind === 'sqlite' ? `sqlite:${join(tmp, 'web.db')}` : ((redis = await startRedis()), redis.url);
  const backend = await openBackend(url);
  const app = dashboard({ backend: url, actions: true });
  const server = createServer(app);
  try {
    log(`${kind}: filling ${url} with ${FAILED} failed jobs and ${WORKERS} workers`);
    const { fill: filled, heartbeat } = await fill(backend);
    const stats = await backend.stats();
    log(`${kind}: filled in ${filled.seconds.toFixed(1)} s: ${JSON.stringify(stats)}`);
    if (stats.failedKept !== FAILED || stats.workers !== WORKERS || stats.running !== WORKERS) {
      throw new Error(`${kind}: the store holds ${JSON.stringify(stats)}, not ${FAILED} failed and ${WORKERS} workers running a job each`);
    }
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const paths = ['/', '/failed', `/failed?page=${Math.ceil(FAILED / 25)}`, '/workers', '/running', `/jobs/${encodeURIComponent(filled.sampleJobId)}`, '/api/stats'];
    const timings = await timePages(port, paths, heartbeat);
    return { backend: kind, fill: filled, stats, timings };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await app.close();
    await backend.close();
    await redis?.destroy();
  }
}


/** Bull Board over a BullMQ queue holding FAILED failed jobs (failed by a real BullMQ worker). */
async function benchBullBoard(): Promise<Timing[]> {
  const redis = await startRedis();
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const queue = new BullQueue('bench', { connection });
  let worker: BullWorker | null = null;
  const server = createServer();
  try {
    log(`bull-board: failing ${FAILED} BullMQ jobs`);
    const t0 = performance.now();
    for (let done = 0; done < FAILED; done += 1000) {
      const n = Math.min(1000, FAILED - done);
      await queue.addBulk(
        Array.from({ length: n }, (_, k) => {
          const i = done + k;
          return { name: JOB_NAMES[i % JOB_NAMES.length], data: { args: [i, `user-${i % 997}@example.com`, { attempt: i % 3, tags: ['bench'] }] }, opts: { attempts: 1 } };
        }),
      );
    }
    worker = new BullWorker(
      'bench',
      async (job) => {
        throw new Error(`request to https://api.example.com/v1/items/${(job.data as { args: number[] }).args[0]} failed: 503 Service Unavailable`);
      },
      { connection, concurrency: 50 },
    );
    for (;;) {
      const counts = await queue.getJobCounts('failed');
      if (counts.failed >= FAILED) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await worker.close();
    worker = null;
    log(`bull-board: filled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const adapter = new ExpressAdapter();
    adapter.setBasePath('/ui');
    createBullBoard({ queues: [new BullMQAdapter(queue)], serverAdapter: adapter });
    const app = express();
    app.use('/ui', adapter.getRouter());
    server.on('request', app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const last = Math.ceil(FAILED / 25);
    return await timePages(port, ['/ui/', `/ui/api/queues?activeQueue=bench&status=failed&page=1&jobsPerPage=25`, `/ui/api/queues?activeQueue=bench&status=failed&page=${last}&jobsPerPage=25`], async () => {});
  } finally {
    await worker?.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await queue.close();
    await redis.destroy();
  }
}

function bullBoardVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../node_modules/@bull-board/api/package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function machine(): string {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} CPUs (${model}), Node ${process.version}, ${process.platform} ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`;
}

const f1 = (n: number) => n.toFixed(1);

function table(results: Result[]): string {
  const lines = [
    `| store | page | status | bytes | failed rows | median ms | p99 ms | max ms | target < ${TARGET_MS} ms |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of results) {
    for (const t of r.timings) {
      const path = t.path.startsWith('/jobs/') ? '/jobs/:id' : t.path;
      lines.push(`| ${r.backend === 'sqlite' ? 'SQLite' : 'Redis'} | \`${path}\` | ${t.status} | ${t.bytes.toLocaleString('en-US')} | ${t.rows || ''} | ${f1(t.median)} | ${f1(t.p99)} | ${f1(t.max)} | ${t.p99 < TARGET_MS ? 'PASS' : 'MISS'} (p99) |`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'unixproc-bench-web-'));
  const started = new Date();
  const results: Result[] = [];
  let peerTimings: Timing[] | null = null;
  try {
    for (const kind of BACKENDS) results.push(await benchOne(kind, tmp));
    if (flags.peer) peerTimings = await benchBullBoard();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const fills = results.map((r) => `${r.backend}: ${f1(r.fill.seconds)} s`).join(', ');
  console.log(`Machine: ${machine()}.`);
  console.log(`Date: ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC. Command: \`node dist/bench/jobs-web.js${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`.`);
  console.log(`Store: ${FAILED.toLocaleString('en-US')} kept failures, ${WORKERS} workers each running a job, 500 pending and 200 delayed jobs (filled through the Backend API in ${fills}).`);
  console.log(`${WARMUP} warm-up then ${REQUESTS} timed GETs per page, one after another on one kept-alive connection, request to last body byte.\n`);
  console.log(table(results));
  const ours = results.find((r) => r.backend === 'redis');
  if (peerTimings && ours) {
    const last = Math.ceil(FAILED / 25);
    const pairs: Array<[string, string, string]> = [
      ['failed list, first page of 25', '/failed', '/ui/api/queues?activeQueue=bench&status=failed&page=1&jobsPerPage=25'],
      [`failed list, last page (${last})`, `/failed?page=${last}`, `/ui/api/queues?activeQueue=bench&status=failed&page=${last}&jobsPerPage=25`],
      ['the first page (ours: the overview from the store; Bull Board: its static HTML shell)', '/', '/ui/'],
    ];
    console.log(`\nAgainst Bull Board ${bullBoardVersion()} over BullMQ, ${FAILED.toLocaleString('en-US')} failed jobs, both on Redis (ours: the whole HTML page; Bull Board: the JSON its browser app then renders):\n`);
    console.log('| what | unixproc median ms | Bull Board median ms | ratio (unixproc / Bull Board) | unixproc p99 | Bull Board p99 |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const [what, a, b] of pairs) {
      const x = ours.timings.find((t) => t.path === a);
      const y = peerTimings.find((t) => t.path === b);
      if (x && y) console.log(`| ${what} | ${f1(x.median)} | ${f1(y.median)} | ${(x.median / y.median).toFixed(2)} | ${f1(x.p99)} | ${f1(y.p99)} |`);
    }
  }
  const worst = Math.max(...results.flatMap((r) => r.timings.map((t) => t.p99)));
  console.log(`\nWorst p99: ${f1(worst)} ms: ${worst < TARGET_MS ? 'PASS' : 'MISS'} against the ${TARGET_MS} ms target.`);
  if (flags.json) writeFileSync(flags.json, JSON.stringify({ machine: machine(), date: started.toISOString(), results }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
