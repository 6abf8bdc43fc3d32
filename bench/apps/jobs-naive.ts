// The naive forking worker of bench/jobs.ts: claims jobs from unixproc's store (the same
// SQLite backend and claim as `unixproc work`) and runs each in a new node started with
// child_process.fork(), which loads the jobs module again (the module is "preloaded" in
// the child, not shared with this master): what a forking worker costs without fork(2).
// Usage: node jobs-naive.js STORE_URL CONCURRENCY noop|heap
// Prints "ready" on stdout, then works until SIGTERM.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openBackend } from '../../jobs/open.js';
import type { JobRecord } from '../../jobs/backend.js';

const [url, concurrencyArg, module] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (!url || !(concurrency >= 1) || (module !== 'noop' && module !== 'heap')) throw new Error('usage: jobs-naive.js STORE_URL CONCURRENCY noop|heap');
const CHILD = fileURLToPath(new URL('./jobs-naive-child.js', import.meta.url));
const MODULE = fileURLToPath(new URL(module === 'heap' ? './jobs-heap.js' : './jobs-noop.js', import.meta.url));
const QUEUES = ['bench'];
const id = `naive:${process.pid}`;
const backend = await openBackend(url);
await backend.registerWorker({ id, host: 'localhost', pid: process.pid, queues: QUEUES });
process.stdout.write('ready\n');

let running = 0;
let stopping = false;
let wake: (() => void) | null = null;
const children = new Set<import('node:child_process').ChildProcess>();

function run(job: JobRecord): void {
  running++;
  const child = fork(CHILD, [MODULE, job.name, JSON.stringify(job.args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('exit', (code, signal) => {
    children.delete(child);
    const settled =
      code === 0
        ? backend.complete(id, job)
        : backend.fail(id, job, { error: `exit ${code ?? signal}`, exception: 'JobDied', backtrace: [], worker: id }, null);
    void settled.finally(() => {
      running--;
      wake?.();
    });
  });
}

process.on('SIGTERM', () => {
  stopping = true;
  for (const c of children) c.kill('SIGKILL');
  wake?.();
  void backend.close().finally(() => process.exit(0));
});

while (!stopping) {
  while (running < concurrency) {
    const job = await backend.claim(id, QUEUES);
    if (!job) break;
    run(job);
  }
  await new Promise<void>((res) => {
    wake = res;
    if (running < concurrency) void backend.waitForWork(QUEUES, 1000).then(res);
  });
  wake = null;
}
