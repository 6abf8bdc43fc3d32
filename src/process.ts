// The Process namespace with the book's (Ruby's) names, gathered from the modules that
// implement them. process.pid is made live in src/fork.ts.
import { abort, atExit, exit, exitNow } from './exit.js';
import { exec } from './exec.js';
import { fork, isForkedChild, isSingleThreaded } from './fork.js';
import { native } from './native.js';
import { getrlimit, RLIM_INFINITY, RLIMIT_CONSTANTS, setrlimit } from './rlimit.js';
import { daemon, getpgid, getpgrp, getsid, isSubreaper, setpgid, setsid, setSubreaper } from './session.js';
import { kill } from './signal.js';
import { Status } from './status.js';
import { getTitle, setTitle } from './title.js';
import * as waits from './wait.js';

const namespace = {
  get pid(): number {
    return native.getpid();
  },
  get ppid(): number {
    return native.getppid();
  },
  get title(): string {
    return getTitle();
  },
  set title(t: string) {
    setTitle(t);
  },
  fork,
  isForkedChild,
  isSingleThreaded,
  wait: waits.wait,
  wait2: waits.wait2,
  waitpid: waits.waitpid,
  waitpid2: waits.waitpid2,
  waitSync: waits.waitSync,
  wait2Sync: waits.wait2Sync,
  waitpidSync: waits.waitpidSync,
  waitpid2Sync: waits.waitpid2Sync,
  waitall: waits.waitall,
  waitallSync: waits.waitallSync,
  detach: waits.detach,
  Status,
  WNOHANG: waits.WNOHANG,
  WUNTRACED: waits.WUNTRACED,
  WCONTINUED: waits.WCONTINUED,
  kill,
  exit,
  exitNow,
  abort,
  atExit,
  exec,
  getrlimit,
  setrlimit,
  RLIM_INFINITY,
  ...RLIMIT_CONSTANTS,
  setsid,
  getpgrp,
  setpgid,
  getpgid,
  getsid,
  daemon,
  setSubreaper,
  isSubreaper,
};

// An explicit type, so that TypeScript treats Process.exit and Process.exitNow as ending the
// code path (control-flow narrowing needs an annotated reference).
interface Exits {
  exit(code?: number | boolean): never;
  exitNow(code?: number | boolean): never;
  abort(msg?: string): never;
}
export type ProcessNamespace = Omit<typeof namespace, keyof Exits> & Exits;
export const Process: ProcessNamespace = namespace;
