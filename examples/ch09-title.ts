// Chapter 9: processes have names. Ruby's $PROGRAM_NAME (here Process.title) is what ps
// and /proc/PID/cmdline show for the process, and a program may rewrite it to say what
// it is doing (Resque shows which job a worker runs). Shows: the book's countdown from
// "Process: 10" to "Process: 1", checked with ps after every change; a title longer than
// the original command line (Node's own process.title would truncate it); and a forked
// worker naming itself, as seen by ps from the parent.
import { readFileSync } from 'node:fs';
import { fork, Process, pipe } from '../src/index.js';
import { finish, ps } from './_proc.js';

const me = String(Process.pid);
// -ww: ps cuts args to 80 columns when its output is not a terminal.
const psArgs = (pid: string): string => ps('-ww', '-o', 'args=', '-p', pid);

console.log(`Process.title at start: ${Process.title}`);
console.log(`ps at start: ${psArgs(me)}`);

for (let num = 10; num >= 1; num--) {
  Process.title = `Process: ${num}`;
  console.log(`title = ${Process.title} | ps shows: ${psArgs(me)}`);
}

// /proc/PID/cmdline is the memory ps reads: the argv area, NUL-separated.
// The rest of the old argv area is zero-filled, so no stale argument shows through.
const cmdline = readFileSync('/proc/self/cmdline', 'latin1');
const text = cmdline.replace(/\0+$/, '');
console.log(`/proc/self/cmdline: ${JSON.stringify(text)} followed by ${cmdline.length - text.length} NUL bytes`);

const long = `unixproc-ch09 ${'long-title-'.repeat(20)}end`;
Process.title = long;
const seen = psArgs(me);
console.log(`long title (${long.length} chars) shown in full by ps: ${seen === long}`);

const [reader, writer] = pipe();
const [goReader, goWriter] = pipe();
const worker = fork(() => {
  reader.close();
  goWriter.close();
  Process.title = 'unixproc-ch09 worker: processing job 42';
  writer.puts('titled');
  writer.close();
  // Stay alive until the parent has looked at us with ps.
  goReader.read();
});
writer.close();
goReader.close();
reader.gets();
reader.close();
console.log(`worker ${worker}: ps shows: ${psArgs(String(worker))}`);
console.log(`parent still: ${psArgs(me).slice(0, 30)}...`);
goWriter.close();
const [, status] = Process.wait2Sync(worker)!;
console.log(`worker ${status}`);
finish([worker]);
