// Chapter 15: zombie processes. A child that has ended but was not waited for stays in
// the process table as a zombie (state Z in ps), holding its exit status for a wait that
// may never come. A parent that does not mean to wait must detach the child:
// Process.detach reaps it in the background (Ruby starts a thread; here the event loop
// does it) and returns a handle that resolves to the Status if anyone does care.
// Shows: `ps -o pid,state` on an unwaited child (Z), then detach and ps again (gone);
// and the fire-and-forget pattern: fork, detach at once, carry on.
import { fork, Process } from '../src/index.js';
import { finish, pollUntil, ps, sleepMs, statOf } from './_proc.js';

const created: number[] = [];

const pid = fork(() => {
  // Ruby: fork { sleep 1 } -- shortened
  sleepMs(100);
});
created.push(pid);
console.log(`forked ${pid}; parent ${Process.pid} does not wait`);
const zombie = pollUntil(() => statOf(pid)?.state === 'Z', 5000);
console.log(`child became a zombie: ${zombie}`);
console.log(`ps -o pid=,state= -p ${pid}: ${ps('-o', 'pid=,state=', '-p', String(pid)).trim()}`);

const handle = Process.detach(pid);
const status = await handle;
console.log(`detach(${pid}) reaped it: ${status}`);
const shown = ps('-o', 'pid=,state=', '-p', String(pid)).trim();
console.log(`ps -o pid=,state= -p ${pid} after detach: ${shown === '' ? '(nothing: the zombie is gone)' : shown}`);

// Fire and forget: the child's work must not hold the parent up, and the parent never
// waits, yet no zombie is left because the child is detached right away.
const message = 'Good Morning';
const recipient = 'tree@mybackyard.com';
const stats = fork(() => {
  sleepMs(150); // StatsCollector.record(message, recipient)
  void message;
  void recipient;
});
created.push(stats);
Process.detach(stats);
console.log(`sent "${message}" to ${recipient} while stats child ${stats} runs`);
// The handle is not awaited, and a bare detach does not keep a process alive (as Ruby's
// detach thread does not); the event loop must run for it to reap, so we idle on timers,
// looking at the process table, until the child has been reaped (3 s at most).
for (let t = 0; t < 150 && statOf(stats) !== null; t++) await new Promise((resolve) => setTimeout(resolve, 20));
console.log(`stats child ${stats} in the process table: ${statOf(stats) === null ? 'no (reaped)' : statOf(stats)!.state}`);
finish(created);
