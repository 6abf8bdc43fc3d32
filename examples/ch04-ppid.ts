// Chapter 4: processes have parents. Ruby's Process.ppid is getppid(2). Shows: our parent
// (the shell, or the test runner) by Process.ppid and by ps; and a forked child whose
// ppid is us.
import { fork, Process, pipe } from '../src/index.js';
import { finish, ps } from './_proc.js';

console.log(`Process.pid = ${Process.pid}, Process.ppid = ${Process.ppid}`);
console.log(`ps -o ppid= -p ${Process.pid} -> ${ps('-o', 'ppid=', '-p', String(Process.pid)).trim()}`);
console.log(`our parent is: ${ps('-o', 'comm=', '-p', String(Process.ppid)).trim()}`);

const [reader, writer] = pipe();
const child = fork(() => {
  reader.close();
  writer.puts(`${Process.pid} ${Process.ppid}`);
  writer.close();
});
writer.close();
const [childPid, childPpid] = reader.gets()!.trim().split(' ').map(Number);
reader.close();
const [, status] = Process.wait2Sync(child)!;

console.log(`child ${childPid}: Process.ppid = ${childPpid}`);
console.log(`child's parent is us: ${childPpid === Process.pid}`);
console.log(`child ${status}`);
finish([child]);
