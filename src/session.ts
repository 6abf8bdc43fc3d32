// Sessions, process groups and daemon(): what a process needs to detach from a
// terminal. daemon() forks twice: the first child becomes a session leader with
// setsid(2), and its child, which is not a session leader, can never acquire a
// controlling terminal by opening one. The caller waits for that setsid before it
// exits (see daemon()).
import { openSync, closeSync } from 'node:fs';
import { check, describe, integer } from './errors.js';
import { exitNow } from './exit.js';
import { fork } from './fork.js';
import { IO } from './io.js';
import { native } from './native.js';

export function setsid(): number {
  return check(native.setsid(), 'setsid');
}

export function getpgrp(): number {
  return native.getpgrp();
}

/** setpgid(pid = 0, pgid = 0): 0 means this process / a group named after pid. */
export function setpgid(pid = 0, pgid = 0): number {
  integer(pid, 'pid', 0);
  integer(pgid, 'pgid', 0);
  check(native.setpgid(pid, pgid), 'setpgid');
  return 0;
}

export function getpgid(pid = 0): number {
  integer(pid, 'pid', 0);
  return check(native.getpgid(pid), 'getpgid');
}

export function getsid(pid = 0): number {
  integer(pid, 'pid', 0);
  return check(native.getsid(pid), 'getsid');
}

/**
 * Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphans among its
 * descendants are re-parented to it rather than to init, so it can wait for them. This
 * is how a supervisor keeps track of grandchildren whose parent died.
 */
export function setSubreaper(on = true): void {
  if (typeof on !== 'boolean') throw new TypeError(`setSubreaper(on): on must be a boolean, got ${typeof on}`);
  check(native.setSubreaper(on), 'prctl');
}

export function isSubreaper(): boolean {
  return check(native.getSubreaper(), 'prctl') === 1;
}

/**
 * Ruby's Process.daemon(nochdir = false, noclose = false): the calling process exits 0
 * (without atExit handlers) once the first child has left its session, and the JS after
 * daemon() goes on in a grandchild that is in a new session, not its leader, with cwd
 * '/' and stdio on /dev/null unless asked otherwise. Returns 0 in the daemon. Both
 * arguments must be booleans (a TypeError before anything forks).
 */
export function daemon(nochdir: boolean = false, noclose: boolean = false): number {
  for (const [name, value] of [['nochdir', nochdir], ['noclose', noclose]] as const) {
    if (typeof value !== 'boolean') throw new TypeError(`daemon(nochdir, noclose): ${name} must be a boolean, got ${describe(value)}`);
  }
  // When the caller leads a terminal session (run under script, or ssh -t host cmd), its
  // exit sends SIGHUP to the terminal's foreground group, which holds the first child
  // until setsid: exiting at once would let that kill the daemon-to-be after the
  // launcher saw success. So the caller waits on a pipe for the setsid.
  const [left, signal] = IO.pipe();
  let pid: number | null;
  try {
    pid = fork();
  } catch (err) {
    left.close();
    signal.close();
    throw err;
  }
  if (pid !== null) {
    signal.close();
    const ok = left.read(1) !== null; // EOF without a byte: the child died before its setsid
    if (!ok) process.stderr.write('daemon(): the first child died before it left the session\n');
    exitNow(ok ? 0 : 1);
  }
  left.close();
  setsid();
  try {
    signal.write('.');
  } catch {
    // The caller was killed while waiting: there is no one to tell.
  }
  signal.close();
  if (fork() !== null) exitNow(0);
  if (!nochdir) process.chdir('/');
  if (!noclose) {
    const fd = openSync('/dev/null', 'r+');
    for (const target of [0, 1, 2]) check(native.dup2(fd, target), 'dup2');
    if (fd > 2) closeSync(fd);
  }
  return 0;
}
