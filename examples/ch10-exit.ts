// Chapter 10: processes have an exit code, and there are several ways out. Each one runs
// in its own forked child here, so this process can wait2 it and print the status:
//   exit(code)   runs the atExit handlers (in reverse order of registration, as Ruby's
//                at_exit), then exits with code (default 0);
//   exitNow      (Ruby's exit!) skips the handlers; its default code is 1;
//   abort(msg)   prints msg on stderr, runs the handlers, exits 1;
//   an error     (Ruby's raise) can be rescued; only an uncaught one ends the process,
//                with code 1, after the handlers (the error is printed on stderr).
import { abort, atExit, exit, exitNow, fork, Process } from '../src/index.js';
import { finish } from './_proc.js';

const created: number[] = [];

function run(label: string, body: () => void): void {
  // The handlers are registered in the child only: a handler registered before fork(2)
  // is copied into every child and would run there too.
  const pid = fork(body);
  created.push(pid);
  const [, status] = Process.wait2Sync(pid)!;
  console.log(`[${label}] parent: ${status} (exitstatus ${status.exitstatus})`);
}

run('exit', () => {
  atExit(() => console.log('[exit] atExit handler registered first'));
  atExit(() => console.log('[exit] atExit handler registered second'));
  console.log('[exit] calling exit(0)');
  exit(0);
});

run('exit 42', () => {
  atExit(() => console.log('[exit 42] atExit handler ran'));
  exit(42);
});

run('end of program', () => {
  atExit(() => console.log('[end of program] atExit handler ran'));
  console.log('[end of program] returning');
});

run('exitNow', () => {
  atExit(() => console.log('[exitNow] atExit handler ran (it should not)'));
  console.log('[exitNow] calling exitNow()');
  exitNow();
});

run('abort', () => {
  atExit(() => console.log('[abort] atExit handler ran'));
  abort('[abort] Something went wrong, aborting');
});

run('raise', () => {
  atExit(() => console.log('[raise] atExit handler ran'));
  try {
    throw new Error('rescued');
  } catch (err) {
    console.log(`[raise] a caught error does not end the process: ${(err as Error).message}`);
  }
  // Out of the fork block, as out of Ruby's: the child prints it and exits 1.
  throw new Error('[raise] uncaught: ends the process');
});

finish(created);
