// Small helpers for the process benchmarks: memory figures from /proc, line-at-a-time
// reads from a pipe with a deadline, order statistics, and a registry of the benchmark's
// children so that every one of them is killed and reaped however the run ends.
import { readFileSync, readSync } from 'node:fs';
import { native } from '../../src/native.js';

/** A field of /proc/PID/smaps_rollup (or /proc/PID/status) in KiB. */
export function procKiB(pid: number | 'self', file: 'smaps_rollup' | 'status', field: string): number {
  const text = readFileSync(`/proc/${pid}/${file}`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/${file}`);
  return Number(m[1]);
}

export interface Mem {
  pss: number; // MiB: resident pages, each divided by the number of processes mapping it
  anon: number; // MiB: the anonymous part of pss (the JS heap and malloc), without node's binary and libraries
  priv: number; // MiB: pages this process alone maps
}

/** PSS figures of a process from one read of /proc/PID/smaps_rollup (Linux 4.14+; Pss_Anon 5.9+). */
export function memOf(pid: number | 'self'): Mem {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`no ${field} in /proc/${pid}/smaps_rollup`);
    return Number(m[1]);
  };
  return { pss: kib('Pss') / 1024, anon: kib('Pss_Anon') / 1024, priv: (kib('Private_Clean') + kib('Private_Dirty')) / 1024 };
}

/** Reads one '\n'-terminated line from a blocking fd, giving up after timeoutMs. */
export function readLine(fd: number, timeoutMs: number, what: string): string {
  const deadline = Date.now() + timeoutMs;
  const buf = Buffer.alloc(1);
  let line = '';
  for (;;) {
    // poll first: a child that hangs must fail the run, not freeze it.
    const left = deadline - Date.now();
    if (left <= 0 || native.pollIn([fd], left) <= 0) {
      if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      continue;
    }
    const n = readSync(fd, buf, 0, 1, null);
    if (n === 0) throw new Error(`end of file while waiting for ${what} (the child died?)`);
    const c = buf.toString('latin1');
    if (c === '\n') return line;
    line += c;
  }
}

export function quantile(xs: number[], q: number): number {
  // Nearest rank: with 5 samples p90 is the largest, with 10 the 9th.
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

/** Children still alive; `reapAll` SIGKILLs and reaps them (forked ones with waitpid). */
export const live = new Map<number, 'forked' | 'spawned'>();

export function killAll(): void {
  for (const [pid, kind] of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    // A spawned child is reaped by libuv; a forked one is ours to reap.
    if (kind === 'forked') native.waitpid(pid, 0);
    live.delete(pid);
  }
}
