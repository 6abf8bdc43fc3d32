// Chapter 14: processes can wait. Fire-and-forget forking is fine when nobody cares how
// the child ends; otherwise the parent waits: Process.wait returns the pid of a child
// that ended, wait2 also its Process.Status, and waitpid/waitpid2 wait for one chosen
// child. Exits are queued by the kernel (as zombies) until the parent asks, so nothing
// is lost when children end while the parent is busy; waiting with no children left is
// an ECHILD error. The promise forms here never block the event loop.
// Shows each of the book's snippets, with fixed sleeps and numbers instead of rand so
// that the output can be checked.
import { abort, exit, fork, pipe, Process, SystemCallError } from '../src/index.js';
import { finish, sleepMs, statOf } from './_proc.js';

const created: number[] = [];
const spawn = (fn: () => void): number => {
  const pid = fork(fn);
  created.push(pid);
  return pid;
};

// 1. Process.wait holds the parent back until the child is done.
console.log('== wait for the child before dying');
spawn(() => {
  for (let i = 0; i < 3; i++) {
    sleepMs(50);
    console.log('I am an orphan!');
  }
});
await Process.wait();
console.log('Parent process died... (only after its child finished)');

// 2. wait returns whichever child ends first.
console.log('== wait returns pids in the order the children end');
const naps = [450, 150, 300];
const napper = new Map<number, number>();
// The children start their naps together, when the gate opens (EOF on a pipe), so the
// time each fork takes cannot reorder their ends.
const [gate, opener] = pipe();
for (const ms of naps) {
  const pid = spawn(() => {
    opener.close();
    gate.read();
    sleepMs(ms);
  });
  napper.set(pid, ms);
}
gate.close();
opener.close();
for (let i = 0; i < naps.length; i++) {
  const pid = (await Process.wait())!;
  console.log(`wait -> ${pid} (slept ${napper.get(pid)} ms)`);
}

// 3. wait2 and the exit status: 111 for an even number, 112 for an odd one.
console.log('== wait2 and exitstatus');
const drawn = [4, 1, 0, 3, 2]; // what rand(5) drew, fixed
const numberOf = new Map<number, number>();
for (const n of drawn) numberOf.set(spawn(() => exit(n % 2 === 0 ? 111 : 112)), n);
for (let i = 0; i < drawn.length; i++) {
  const [pid, status] = (await Process.wait2())!;
  const kind = status.exitstatus === 111 ? 'an even' : 'an odd';
  console.log(`${pid} encountered ${kind} number! (drew ${numberOf.get(pid)}, exitstatus ${status.exitstatus})`);
}

// 4. waitpid2 waits for the favourite even when another child ends first.
console.log('== waitpid2 on the favourite');
const favourite = spawn(() => {
  sleepMs(200);
  exit(77);
});
const middleChild = spawn(() => abort('I want to be waited on!'));
const [favPid, favStatus] = (await Process.waitpid2(favourite))!;
console.log(`waitpid2(favourite ${favourite}) -> ${favPid}, exitstatus ${favStatus.exitstatus}`);
const [midPid, midStatus] = (await Process.wait2())!;
console.log(`then wait2 -> middle child ${midPid === middleChild ? 'yes' : 'no'}, exitstatus ${midStatus.exitstatus}`);

// 5. Exits are queued: both children end while the parent sleeps; both are collected.
console.log('== queued exits');
const quick = [spawn(() => abort('Finished!')), spawn(() => abort('Finished!'))];
const first = (await Process.wait())!;
console.log(`wait -> ${first}`);
sleepMs(500); // the other child ends meanwhile, unwaited for
const other = quick.find((p) => p !== first)!;
console.log(`while we slept, child ${other} is in state ${statOf(other)?.state} (its exit is queued)`);
const second = (await Process.wait())!;
console.log(`wait -> ${second} (the queued one: ${second === other})`);
try {
  await Process.wait();
  console.log('wait with no children unexpectedly returned');
} catch (err) {
  console.log(`wait with no children left: ${(err as SystemCallError).code}`);
}

finish(created);
