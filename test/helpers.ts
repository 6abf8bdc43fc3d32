// Shared test helpers: process and fd census (to prove a test left no zombie, stray
// child or fd behind) and running a script in a fresh node for paths that end a process.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const TIMEOUT = { timeout: 60_000 };

export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  pgrp: number;
  session: number;
}

export function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]), session: Number(rest[3]) };
  } catch {
    return null;
  }
}

/** Children of pid (default: this process), from /proc. */
export function childrenOf(pid = process.pid): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info && info.ppid === pid) out.push(info);
  }
  return out;
}

/** Resolves once this process has no children left (live or zombie), or fails after ms. */
export async function assertNoChildren(ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const kids = childrenOf();
    if (kids.length === 0) return;
    if (Date.now() > deadline) throw new Error(`children left behind: ${JSON.stringify(kids)}`);
    await sleep(20);
  }
}

export async function waitFor(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Runs node with args (script text via -e, or a file) and returns its output. */
export function runNode(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, args, {
    encoding: 'utf8',
    env: { ...process.env, ...opts.env },
    input: opts.input,
    timeout: opts.timeout ?? 60_000,
  });
}

export { sleep };
