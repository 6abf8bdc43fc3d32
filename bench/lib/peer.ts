// The peer of a forked child in bench/fork.ts: a fresh node started with
// child_process.fork() that builds the same records the forking parent holds and then
// does what the parent tells it over IPC (touch the data, collect garbage, exit).
// Its first statement takes the clock before any import is loaded, so it marks the
// moment the new process runs its first line of our JS.
const firstJs = process.hrtime.bigint();

const { grow, touch, gcNow } = await import('./heap.js');
type Rec = import('./heap.js').Rec;

const count = Number(process.argv[2]);
if (!Number.isInteger(count) || count < 0) throw new Error(`peer: bad record count ${process.argv[2]}`);
const data: Rec[] = [];
grow(data, count);
const ready = process.hrtime.bigint();

// A benchmark that was killed leaves no one to answer: leave quietly instead of throwing EPIPE.
const send = (msg: object): void => {
  if (!process.connected) process.exit(0);
  process.send!(msg, undefined, undefined, (err: Error | null) => err && process.exit(0));
};
send({ kind: 'ready', firstJs: String(firstJs), ready: String(ready) });

process.on('message', (msg: { cmd: string }) => {
  switch (msg.cmd) {
    case 'heap':
      // Only asked after 'ready' was taken: the collection does not count in the latency.
      gcNow();
      send({ kind: 'heap', heapUsed: process.memoryUsage().heapUsed });
      break;
    case 'touch':
      send({ kind: 'touched', sum: touch(data) });
      break;
    case 'gc':
      gcNow();
      send({ kind: 'gc' });
      break;
    case 'exit':
      process.exit(0);
  }
});
// Dies with the benchmark if it goes away without telling us.
process.on('disconnect', () => process.exit(0));
