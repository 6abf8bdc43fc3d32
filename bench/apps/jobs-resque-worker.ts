// node-resque workers for bench/jobs.ts: CONCURRENCY node-resque Workers in this one
// process (node-resque runs jobs in its own process; it does not fork per job), polling
// the queue every TIMEOUT ms when it is empty (node-resque's default is 5000 ms; the
// bench passes 5, its best case for latency).
// Usage: node jobs-resque-worker.js PORT CONCURRENCY noop|heap TIMEOUT_MS
// Prints "ready" on stdout once connected, then works until SIGTERM.
import { Worker } from 'node-resque';

const [port, concurrencyArg, module, timeoutArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (!port || !(concurrency >= 1) || (module !== 'noop' && module !== 'heap')) throw new Error('usage: jobs-resque-worker.js PORT CONCURRENCY noop|heap TIMEOUT_MS');
type Handler = (...args: unknown[]) => unknown;
const mod = (await import(module === 'heap' ? './jobs-heap.js' : './jobs-noop.js')) as unknown as Record<string, Handler>;
const jobs = Object.fromEntries(['Noop', 'Cpu5', 'Stamp', 'Sleep'].map((name) => [name, { perform: async (...args: unknown[]) => mod[name]!(...args) }]));

const workers: Worker[] = [];
for (let i = 0; i < concurrency; i++) {
  const w = new Worker(
    { connection: { pkg: 'ioredis', host: '127.0.0.1', port: Number(port), database: 0, namespace: 'resque' }, queues: ['bench'], timeout: Number(timeoutArg ?? 5), name: `bench-${process.pid}-${i}` },
    jobs,
  );
  w.on('error', (err) => process.stderr.write(`node-resque worker error: ${(err as Error)?.stack ?? err}\n`));
  w.on('failure', (_q, job, err) => process.stderr.write(`node-resque job ${job?.class} failed: ${(err as Error)?.message}\n`));
  await w.connect();
  workers.push(w);
}
process.stdout.write('ready\n');
for (const w of workers) void w.start();

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void Promise.all(workers.map((w) => w.end())).finally(() => process.exit(0));
});
