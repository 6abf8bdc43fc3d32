// Chapter 12: orphaned processes. When a parent dies, the kernel does not take its
// children with it: they keep running, and are re-parented to init (pid 1) or to the
// nearest ancestor that declared itself a "child subreaper" (PR_SET_CHILD_SUBREAPER,
// as container inits and systemd --user do), which will reap them.
// Shows the book's example: a parent forks a child and then aborts ("Parent process
// died..."); the child notices its ppid change and goes on saying "I'm an orphan!".
// This process plays the terminal: it forks that parent, collects the orphan's lines
// through a pipe, and waits until the orphan is gone from the process table.
import { abort, fork, Process, pipe } from '../src/index.js';
import { finish, pollUntil, sleepMs, statOf } from './_proc.js';

function ancestors(pid: number): number[] {
  const out: number[] = [];
  for (let p = statOf(pid)?.ppid ?? 0; p > 0; p = statOf(p)?.ppid ?? 0) out.push(p);
  return out;
}

const [reader, writer] = pipe();
const middle = fork(() => {
  reader.close();
  // The orphan tells its parent it has looked at its ppid, so that first look is
  // guaranteed to happen while the parent is still alive.
  const [readyReader, readyWriter] = pipe();
  const orphan = fork(() => {
    readyReader.close();
    const original = Process.ppid;
    writer.puts(`pid ${Process.pid} ppid ${original} (my parent is alive)`);
    readyWriter.close();
    const orphaned = pollUntil(() => Process.ppid !== original, 5000);
    for (let i = 0; i < 3; i++) {
      writer.puts(`I'm an orphan! pid ${Process.pid} ppid ${Process.ppid} (orphaned: ${orphaned})`);
      sleepMs(50);
    }
  });
  readyWriter.close();
  readyReader.read(); // EOF once the orphan closed its end
  writer.puts(`forked orphan ${orphan}`);
  abort('Parent process died...');
});
writer.close(); // else our own copy would keep the pipe open and the read below never ends

const [, status] = Process.wait2Sync(middle)!;
console.log(`middle ${middle} died: ${status}`);
let orphan = 0;
let adopter = 0;
for (let line; (line = reader.gets()) !== null; ) {
  const m = /forked orphan (\d+)/.exec(line);
  if (m) orphan = Number(m[1]);
  else console.log(`orphan says: ${line.trimEnd()}`);
  const a = /orphan! pid \d+ ppid (\d+)/.exec(line);
  if (a) adopter = Number(a[1]);
}
reader.close();

// EOF means the orphan closed its end; it is not our child, so we cannot wait for it:
// watch the process table until its new parent has reaped it. That parent reaps on its
// own schedule (some container inits only every second or two), hence the long limit.
const gone = pollUntil(() => statOf(orphan) === null, 10_000);
console.log(`orphan ${orphan} gone from the process table: ${gone}`);
const ours = ancestors(Process.pid);
console.log(`our ancestors: ${ours.join(' ')}`);
console.log(`orphan adopted by ${adopter}: ${adopter === 1 ? 'init' : ours.includes(adopter) ? 'a subreaper among our ancestors' : 'someone unexpected'}`);
finish([middle, orphan]);
