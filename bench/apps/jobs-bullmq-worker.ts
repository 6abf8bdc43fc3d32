// A BullMQ worker process for bench/jobs.ts, one of:
//   sandbox  new Worker(queue, processorFile, { concurrency, useWorkerThreads: false }):
//            jobs run in child processes BullMQ keeps (one per concurrency slot, reused)
//   inproc   new Worker(queue, async (job) => handler(...), { concurrency }): in this process
// Usage: node jobs-bullmq-worker.js PORT sandbox|inproc CONCURRENCY noop|heap
// Prints "ready" on stdout once connected, then works until SIGTERM.
import { fileURLToPath } from 'node:url';
import { Worker } from 'bullmq';

const [port, mode, concurrencyArg, module] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (!port || (mode !== 'sandbox' && mode !== 'inproc') || !(concurrency >= 1) || (module !== 'noop' && module !== 'heap')) {
  throw new Error('usage: jobs-bullmq-worker.js PORT sandbox|inproc CONCURRENCY noop|heap');
}
const connection = { host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: null };
type Handler = (...args: unknown[]) => unknown;

let worker: Worker;
if (mode === 'sandbox') {
  const file = fileURLToPath(new URL(module === 'heap' ? './jobs-bullmq-processor-heap.js' : './jobs-bullmq-processor.js', import.meta.url));
  worker = new Worker('bench', file, { connection, concurrency, useWorkerThreads: false, autorun: false });
} else {
  const jobs = (await import(module === 'heap' ? './jobs-heap.js' : './jobs-noop.js')) as unknown as Record<string, Handler>;
  worker = new Worker('bench', async (job) => jobs[job.name]!(...(job.data as { args: unknown[] }).args), { connection, concurrency, autorun: false });
}
worker.on('error', (err) => process.stderr.write(`bullmq worker error: ${err?.stack ?? err}\n`));
worker.on('failed', (job, err) => process.stderr.write(`bullmq job ${job?.id} failed: ${err?.message}\n`));
await worker.waitUntilReady();
process.stdout.write('ready\n');
void worker.run();

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  // close() waits for running jobs and ends the sandbox children.
  void worker.close().finally(() => process.exit(0));
});
