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

import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { native } from '../src/native.js';
import { onForkChild } from '../src/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A scratch directory removed by the returned cleanup. */
export function scratch(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'unixproc-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Absolute URL of the compiled package entry, for scripts run in a fresh node. */
export const indexUrl = new URL('../src/index.js', import.meta.url).href;

/**
 * Writes an ESM script that imports the package as `U` and runs it in a fresh
 * `node --single-threaded`, for behaviour that ends or reshapes the whole process.
 */
export function runScript(body: string, opts: { singleThreaded?: boolean; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  const { dir, cleanup } = scratch();
  try {
    const file = join(dir, 'script.mjs');
    writeFileSync(file, `import * as U from ${JSON.stringify(indexUrl)};\n${body}\n`);
    return runNode([...(opts.singleThreaded === false ? [] : ['--single-threaded']), file], opts);
  } finally {
    cleanup();
  }
}

export function readJsonIfExists(file: string): unknown {
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
}

export const here = fileURLToPath(new URL('.', import.meta.url));

/**
 * A child that runs the event loop would also flush reports the test runner had queued
 * in the parent (fork copies them): send the child's stdout to /dev/null.
 */
export function quietStdout(): void {
  const fd = openSync('/dev/null', 'w');
  native.dup2(fd, 1);
  closeSync(fd);
}

// Every test process forks in place: a child's event loop would flush the reports node:test
// had queued in the parent onto the shared stdout before its fork block runs, and the runner
// would then read a garbled stream. Each forked child of a test process writes stdout nowhere.
onForkChild(quietStdout);
