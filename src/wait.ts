// The wait family: wait/wait2/waitpid/waitpid2 (promises that never block the event
// loop), their blocking *Sync forms, waitall and detach.
//
// Politeness to child_process, as libuv is polite to us: libuv reaps only the pids it
// spawned, by pid, and a ChildProcess's 'exit' event depends on it. So waiting for "any
// child" here means any child forked through unixproc (which this module tracks); a
// child_process pid asked for by number is only peeked at with waitid(WNOWAIT), never
// reaped. The async forms sleep on SIGCHLD (delivered by libuv through process.on) with
// a slow poll as a backstop, and re-check every waiter on each wake-up, so coalesced
// signals lose nothing.
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { onForkChild } from './atfork.js';
import { check, errnoOf, integer, SystemCallError } from './errors.js';
import { native } from './native.js';
import { Status } from './status.js';

export const WNOHANG = native.WNOHANG;
export const WUNTRACED = native.WUNTRACED;
export const WCONTINUED = native.WCONTINUED;

const ECHILD = errnoOf('ECHILD');

/** Children forked through unixproc and not yet reaped. */
const ours = new Set<number>();
/** Children started by node:child_process, which libuv will reap. */
const foreign = new Set<number>();
/** Raw statuses of child_process children that libuv has reaped. */
const foreignExits = new Map<number, number>();

/**
 * Called for every child node:child_process starts (src/install.ts hooks ChildProcess#spawn):
 * libuv reaps it, so waits here only observe it, and keep the status libuv saw.
 */
export function trackForeignChild(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  foreign.add(pid);
  child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
    foreign.delete(pid);
    // libuv reaped it: keep what it saw, for a wait on this pid that comes after.
    foreignExits.set(pid, code !== null ? (code & 0xff) << 8 : (constants.signals[signal!] ?? 0));
    if (foreignExits.size > 1024) foreignExits.delete(foreignExits.keys().next().value!);
    if (waiters.length) scan();
  });
}

/** Called by fork and daemon for every child they create. */
export function adoptChild(pid: number): void {
  ours.add(pid);
}

function validate(pid: unknown, flags: unknown): [number, number] {
  const p = integer(pid ?? -1, 'pid', -(2 ** 31) + 1, 2 ** 31 - 1);
  const f = integer(flags ?? 0, 'flags', 0);
  if (f & ~(WNOHANG | WUNTRACED | WCONTINUED)) throw new RangeError(`flags has unknown bits: ${f} (use WNOHANG, WUNTRACED, WCONTINUED)`);
  return [p, f];
}

function candidates(pid: number): number[] {
  if (pid > 0) return [pid];
  if (pid === -1) return [...ours];
  const pgid = pid === 0 ? native.getpgrp() : -pid;
  return [...ours].filter((c) => native.getpgid(c) === pgid);
}

/** One non-blocking pass over the candidates: a reaped [pid, raw] or null. Throws ECHILD when none is left. */
function tryReap(pid: number, flags: number): [number, number] | null {
  const list = candidates(pid);
  if (list.length === 0) throw new SystemCallError(ECHILD, 'waitpid');
  for (const c of list) {
    const done = foreignExits.get(c);
    if (done !== undefined) {
      foreignExits.delete(c);
      return [c, done];
    }
    let r = foreign.has(c) ? native.peekExited(c) : native.waitpid(c, flags | WNOHANG);
    // Between libuv's reap and the 'exit' event the pid answers ECHILD: not known yet.
    if (r === -ECHILD && foreign.has(c)) r = 0;
    if (typeof r !== 'number') {
      const status = new Status(r[0], r[1]);
      if (status.exited || status.signaled) ours.delete(c);
      return r;
    }
    if (r === 0) continue;
    if (-r === ECHILD) {
      // Reaped by someone else (a blocking wait elsewhere, SIGCHLD set to IGNORE): not ours any more.
      ours.delete(c);
      if (pid > 0) throw new SystemCallError(ECHILD, 'waitpid');
      continue;
    }
    check(r, 'waitpid');
  }
  // Every candidate turned out to be reaped elsewhere: nothing is left to wait for.
  if (pid <= 0 && list.every((c) => !ours.has(c))) throw new SystemCallError(ECHILD, 'waitpid');
  return null;
}

// ---- blocking forms -------------------------------------------------------------

/** Blocks until a child changes state. Returns [pid, Status], or null under WNOHANG. */
// Without flags there is always a child to report (or ECHILD): the overloads let strict callers destructure.
export function wait2Sync(pid?: number, flags?: 0): [number, Status];
export function wait2Sync(pid: number, flags: number): [number, Status] | null;
export function wait2Sync(pid: number = -1, flags: number = 0): [number, Status] | null {
  const [p, f] = validate(pid, flags);
  for (;;) {
    const r = tryReap(p, f);
    if (r) return [r[0], new Status(r[0], r[1])];
    if (f & WNOHANG) return null;
    if (p > 0 && !foreign.has(p)) {
      const b = check(native.waitpid(p, f), 'waitpid') as [number, number];
      ours.delete(p);
      return [b[0], new Status(b[0], b[1])];
    }
    sleepOnChildren(candidates(p));
  }
}

/** Sleeps until one of the children may have exited; pidfds make this exact, the timeout covers stops. */
function sleepOnChildren(pids: number[]): void {
  const fds: number[] = [];
  try {
    for (const pid of pids) {
      const fd = native.pidfdOpen(pid);
      if (fd >= 0) fds.push(fd);
    }
    native.pollIn(fds, fds.length === pids.length ? 250 : 20);
  } finally {
    for (const fd of fds) native.close(fd);
  }
}

export function waitSync(pid?: number, flags?: 0): number;
export function waitSync(pid: number, flags: number): number | null;
export function waitSync(pid: number = -1, flags: number = 0): number | null {
  const r = wait2Sync(pid, flags);
  return r ? r[0] : null;
}

export function waitallSync(): Array<[number, Status]> {
  const out: Array<[number, Status]> = [];
  while (ours.size > 0) {
    const r = wait2Sync(-1, 0);
    if (r) out.push(r);
  }
  return out;
}

// ---- promise forms --------------------------------------------------------------

interface Waiter {
  pid: number;
  flags: number;
  ref: boolean;
  resolve: (r: [number, Status] | null) => void;
  reject: (e: unknown) => void;
}

let waiters: Waiter[] = [];
let backstop: NodeJS.Timeout | null = null;
const BACKSTOP_MS = 500;

function scan(): void {
  const pending = waiters;
  waiters = [];
  for (const w of pending) {
    let r: [number, number] | null;
    try {
      r = tryReap(w.pid, w.flags);
    } catch (err) {
      w.reject(err);
      continue;
    }
    if (r) w.resolve([r[0], new Status(r[0], r[1])]);
    else waiters.push(w);
  }
  updateWatch();
}

function updateWatch(): void {
  if (waiters.length === 0) {
    if (backstop) {
      clearInterval(backstop);
      backstop = null;
      process.removeListener('SIGCHLD', scan);
    }
    return;
  }
  if (!backstop) {
    process.on('SIGCHLD', scan);
    backstop = setInterval(scan, BACKSTOP_MS);
  }
  // A pending wait keeps the process alive, as a blocked wait does in Ruby; detach does not.
  if (waiters.some((w) => w.ref)) backstop.ref();
  else backstop.unref();
}

function wait2Async(pid: number, flags: number, ref: boolean, onWaiter?: (w: Waiter) => void): Promise<[number, Status] | null> {
  return new Promise((resolve, reject) => {
    const [p, f] = validate(pid, flags);
    const r = tryReap(p, f);
    if (r) return resolve([r[0], new Status(r[0], r[1])]);
    if (f & WNOHANG) return resolve(null);
    const w: Waiter = { pid: p, flags: f, ref, resolve, reject };
    waiters.push(w);
    onWaiter?.(w);
    updateWatch();
  });
}

/** Waits for a child (-1: any of ours; 0: any in our process group; -pgid: any in that group). */
export function wait2(pid?: number, flags?: 0): Promise<[number, Status]>;
export function wait2(pid: number, flags: number): Promise<[number, Status] | null>;
export function wait2(pid: number = -1, flags: number = 0): Promise<[number, Status] | null> {
  return wait2Async(pid, flags, true);
}

export function wait(pid?: number, flags?: 0): Promise<number>;
export function wait(pid: number, flags: number): Promise<number | null>;
export async function wait(pid: number = -1, flags: number = 0): Promise<number | null> {
  const r = await wait2Async(pid, flags, true);
  return r ? r[0] : null;
}

export const waitpid = wait;
export const waitpid2 = wait2;
export const waitpidSync = waitSync;
export const waitpid2Sync = wait2Sync;

/** Waits for every child forked through unixproc; resolves to [[pid, Status], ...]. */
export async function waitall(): Promise<Array<[number, Status]>> {
  const out: Array<[number, Status]> = [];
  while (ours.size > 0) {
    try {
      const r = await wait2(-1);
      if (r) out.push(r);
    } catch (err) {
      if ((err as SystemCallError).code === 'ECHILD') break;
      throw err;
    }
  }
  return out;
}

/** What detach returns: a promise of the child's Status (null if it was not ours to reap) that also names the pid. */
export type Detached = Promise<Status | null> & { readonly pid: number };

/**
 * Reaps the child in the background so it never lingers as a zombie (Ruby's
 * Process.detach). Like Ruby's detach thread it does not keep the process alive,
 * until someone awaits the handle: then it does, as wait would. It resolves to null,
 * never rejects, when pid is not (or no longer) a child of this process: detach is
 * fire-and-forget, and a rejection nobody handles would end the caller.
 */
export function detach(pid: number): Detached {
  integer(pid, 'pid', 1);
  let waiter: Waiter | undefined;
  const inner = wait2Async(pid, 0, false, (w) => (waiter = w)).then(
    (r) => r?.[1] ?? null,
    () => null,
  );
  const handle = Object.create(inner) as Detached;
  Object.defineProperty(handle, 'pid', { value: pid, enumerable: true });
  Object.defineProperty(handle, 'then', {
    value(onFulfilled?: (s: Status | null) => unknown, onRejected?: (e: unknown) => unknown) {
      if (waiter && !waiter.ref) {
        waiter.ref = true;
        updateWatch();
      }
      return inner.then(onFulfilled, onRejected);
    },
  });
  return handle;
}

onForkChild(() => {
  // The parent's children are not the child's, and the parent's waiters are the parent's.
  ours.clear();
  foreign.clear();
  foreignExits.clear();
  waiters = [];
  updateWatch();
});
