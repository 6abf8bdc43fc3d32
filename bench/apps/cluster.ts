// The node:cluster peer of `unixproc serve` in bench/serve.ts: a primary that forks N
// workers with default scheduling (round-robin on Linux: the primary accepts and passes
// each connection to a worker), each worker running bench/apps/plain.js, which loads the
// app on its own.
//
//   node dist/bench/apps/cluster.js <hello|big> <port> <workers>
// SIGUSR2: fork one more worker (what bench/serve.ts times). TERM/INT: stop the workers
// and exit. The primary writes one JSON line on stdout once all N workers listen.
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';

const [app = 'hello', port = '8080', n = '2'] = process.argv.slice(2);
const workers = Number(n);

cluster.setupPrimary({ exec: fileURLToPath(new URL('./plain.js', import.meta.url)), args: [app, port] });

let listening = 0;
let announced = false;
cluster.on('listening', (w) => {
  listening++;
  process.stderr.write(`${JSON.stringify({ event: 'cluster.listening', worker: w.process.pid })}\n`);
  if (!announced && listening >= workers) {
    announced = true;
    process.stdout.write(`${JSON.stringify({ event: 'cluster.ready', pid: process.pid, workers: Object.values(cluster.workers ?? {}).map((x) => x!.process.pid) })}\n`);
  }
});
// A worker that dies is not replaced: the benchmark kills the extra workers it asked for.
cluster.on('exit', (w, code, signal) => {
  process.stderr.write(`${JSON.stringify({ event: 'cluster.exit', worker: w.process.pid, code, signal })}\n`);
});

process.on('SIGUSR2', () => {
  const w = cluster.fork();
  process.stderr.write(`${JSON.stringify({ event: 'cluster.fork', worker: w.process.pid })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    const wait = setInterval(() => {
      const left = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());
      if (left.length === 0 || Date.now() > deadline) {
        for (const w of left) w?.process.kill('SIGKILL');
        clearInterval(wait);
        process.exit(0);
      }
    }, 20);
  });
}

for (let i = 0; i < workers; i++) cluster.fork();
