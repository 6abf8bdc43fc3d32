// Chapter 11: processes can fork. fork(2) makes a copy of the running process: the child
// starts with a copy of the parent's memory and of its open file descriptors, and fork()
// returns twice, the child's pid in the parent and nothing (null) in the child.
// Shows: the `if fork` style and its two returns; memory copied at the moment of fork;
// an fd opened before fork shared by both, down to the file offset; and the block form
// fork(fn), Ruby's `fork do ... end`: fn runs only in the child, which exits when fn
// returns (or, for an async fn, when its promise settles). In the child fork(fn) never
// returns: no statement after it runs there, not even a caller's finally, so the parent
// uses the pid it returns without checking for null.
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitNow, fork, IO, Process } from '../src/index.js';
import { finish } from './_proc.js';

const created: number[] = [];
const dir = mkdtempSync(join(tmpdir(), 'unixproc-ch11-'));
try {
  const config = { loadedBy: Process.pid, workers: 2 };
  // One open file description, shared after fork: both processes append at one offset.
  const log = new IO(openSync(join(dir, 'log'), 'w'));
  writeSync(log.fileno, `parent ${Process.pid} opened the log\n`);

  const result = fork();
  if (result === null) {
    writeSync(log.fileno, `child ${Process.pid}: fork returned null; config.loadedBy = ${config.loadedBy} (copied, not reloaded)\n`);
    // exit! rather than exit: it skips the `finally` below too, which would otherwise
    // delete the directory the parent is still writing to.
    exitNow(0);
  }
  created.push(result);
  Process.waitSync(result);
  writeSync(log.fileno, `parent ${Process.pid}: fork returned ${result}\n`);

  // The block form: ruby's `fork do ... end`. The child exits 0 at the end of the block,
  // without coming back here: the `finally` below runs in the parent only.
  const blockChild = fork(() => {
    writeSync(log.fileno, `child ${Process.pid}: in the block, my parent is ${Process.ppid}\n`);
  });
  created.push(blockChild);
  const [, status] = Process.wait2Sync(blockChild)!;
  writeSync(log.fileno, `parent: block child ${status}; only the parent gets here\n`);
  log.close();

  // All lines in order, none overwritten: the child's writes moved the parent's offset too.
  process.stdout.write(readFileSync(join(dir, 'log'), 'utf8'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
finish(created);
