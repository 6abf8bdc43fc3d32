// Chapter 8: processes have arguments. ARGV (Node: process.argv, after the node binary and
// the script) is the list of strings exec(2) was given; simple flags can be handled by
// working on that array directly. Shows: this script, run with no arguments, execs a
// fresh node on itself in a forked child with a command line of flags and file names,
// and that program finds exactly those strings in its argv and parses them by hand.
import { fileURLToPath } from 'node:url';
import { exec, fork, Process } from '../src/index.js';
import { finish } from './_proc.js';

const args = process.argv.slice(2);

if (args.length === 0) {
  const self = fileURLToPath(import.meta.url);
  const argv = ['--single-threaded', self, '--verbose', 'notes.txt', '--', '--not-a-flag.txt'];
  console.log(`parent ${Process.pid}: exec'ing node with argv ${JSON.stringify(argv)}`);
  const child = fork(() => exec(process.execPath, argv));
  const [, status] = Process.wait2Sync(child)!;
  console.log(`child ${status}`);
  finish([child]);
} else {
  // What exec(2) handed this program, as the program sees it.
  console.log(`program ${Process.pid}: ARGV = ${JSON.stringify(args)}`);
  const dashdash = args.indexOf('--');
  const options = dashdash === -1 ? args : args.slice(0, dashdash);
  const rest = dashdash === -1 ? [] : args.slice(dashdash + 1);
  const verbose = options.includes('--verbose');
  const files = [...options.filter((a) => !a.startsWith('--')), ...rest];
  console.log(`program: verbose = ${verbose}`);
  console.log(`program: files = ${JSON.stringify(files)}`);
}
