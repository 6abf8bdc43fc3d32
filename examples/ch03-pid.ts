// Chapter 3: processes have IDs. Ruby's Process.pid (and $$) is getpid(2); here it is
// Process.pid. Shows: the pid from getpid(2), from /proc/self and from ps agree, and a
// forked child gets a new pid of its own, which Node's process.pid must follow too.
import { readlinkSync } from 'node:fs';
import { fork, Process, pipe } from '../src/index.js';
import { finish, ps } from './_proc.js';

console.log(`Process.pid = ${Process.pid}`);
console.log(`process.pid = ${process.pid}`);
console.log(`/proc/self -> ${readlinkSync('/proc/self')}`);
console.log(`ps -o pid= -p ${Process.pid} -> ${ps('-o', 'pid=', '-p', String(Process.pid)).trim()}`);

// Node caches process.pid at start-up; after fork(2) that cached value would be the
// parent's, so the child reports both to show they follow the new process.
const [reader, writer] = pipe();
const child = fork(() => {
  reader.close();
  writer.puts(`${Process.pid} ${process.pid} ${readlinkSync('/proc/self')}`);
  writer.close();
});
writer.close();
const [childPid, childProcessPid, childSelf] = reader.gets()!.trim().split(' ').map(Number);
reader.close();
const [reaped, status] = Process.wait2Sync(child)!;

console.log(`fork returned child pid ${child}`);
console.log(`child says Process.pid = ${childPid}, process.pid = ${childProcessPid}, /proc/self -> ${childSelf}`);
console.log(`child pid differs from ours: ${childPid !== Process.pid}`);
console.log(`reaped ${reaped}: ${status}`);
finish([child]);
