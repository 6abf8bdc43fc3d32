// Chapter 7: processes have an environment. Ruby's ENV (Node's process.env) looks like a
// hash but is the C environ array of NAME=value strings: values are always strings, and
// the environment is copied into every child by fork(2) and handed to every program by
// exec(2), which is why it is the usual way to pass settings to command-line tools.
// Shows: string-only values, a variable set here seen by a program we exec in a child,
// and a child's change to its own copy never reaching the parent.
import { exec, fork, Process, pipe } from '../src/index.js';
import { finish } from './_proc.js';

// process.env assigns through setenv(3), so a number is stored as its decimal string.
(process.env as Record<string, unknown>).UNIXPROC_COUNT = 42;
console.log(`UNIXPROC_COUNT = ${JSON.stringify(process.env.UNIXPROC_COUNT)} (typeof ${typeof process.env.UNIXPROC_COUNT})`);
delete process.env.UNIXPROC_COUNT;
console.log(`after delete, 'UNIXPROC_COUNT' in env: ${'UNIXPROC_COUNT' in process.env}`);

// Ruby: ENV['MESSAGE'] = 'wing it'; system "echo $MESSAGE"
process.env.MESSAGE = 'wing it';
const shell = fork(() => exec('/bin/sh', ['-c', 'echo "sh sees MESSAGE=$MESSAGE"']));
const [, shellStatus] = Process.wait2Sync(shell)!;
console.log(`sh ${shellStatus}`);

const [reader, writer] = pipe();
const child = fork(() => {
  reader.close();
  process.env.MESSAGE = 'changed by the child';
  writer.puts(`child: MESSAGE=${process.env.MESSAGE}`);
  writer.close();
});
writer.close();
process.stdout.write(reader.read()!.toString());
reader.close();
const [, childStatus] = Process.wait2Sync(child)!;
console.log(`child ${childStatus}`);
console.log(`parent: MESSAGE=${process.env.MESSAGE}`);
finish([shell, child]);
