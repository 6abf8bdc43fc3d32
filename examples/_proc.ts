// Helpers shared by the chapter examples: reading the process table from /proc (what ps
// reads), running ps itself, and sleeping without the event loop. Not a chapter.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Process } from '../src/index.js';

export interface Stat {
  state: string;
  ppid: number;
  pgrp: number;
  sid: number;
}

/** The kernel's view of pid (/proc/PID/stat), or null once it is gone (reaped). */
export function statOf(pid: number): Stat | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name in parentheses may itself hold spaces and ')': split after the last ')'.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), sid: Number(f[3]) };
}

/** This process's children still in the process table, zombies included. */
export function childrenLeft(): number[] {
  const me = Process.pid;
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => statOf(pid)?.ppid === me);
}

/**
 * Blocks the whole process, timers and signal handlers included, as Ruby's sleep blocks
 * its thread. Atomics.wait is allowed on Node's main thread and needs no helper thread,
 * which matters in a forked child.
 */
export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Polls until cond() holds; false when ms ran out first. */
export function pollUntil(cond: () => boolean, ms: number, step = 10): boolean {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    sleepMs(step);
  }
  return true;
}

/** What `ps <args>` prints (trailing newline removed); '' when ps finds no such process. */
export function ps(...args: string[]): string {
  // spawnSync waits for its own pid only, so it never reaps one of our forked children.
  const r = spawnSync('ps', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return r.stdout.replace(/\n$/, '');
}

/** The last two lines of every example, which test/examples.test.ts checks. */
export function finish(created: number[]): void {
  console.log(`created: ${created.length ? created.join(' ') : '(none)'}`);
  console.log(`children left: ${childrenLeft().length}`);
}
