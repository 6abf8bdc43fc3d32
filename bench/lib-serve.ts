// Helpers for bench/serve.ts: process trees, PSS and CPU time from /proc, one-shot HTTP
// requests on fresh connections, and a registry of every process the benchmark saw, so
// that it can prove at the end that none of them survived.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const now = (): number => performance.now();
/** A sleep that does not keep the process alive (for the losing side of a race). */
export const unrefSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

// ---- /proc ---------------------------------------------------------------------------

interface Stat {
  pid: number;
  ppid: number;
  /** utime + stime, in clock ticks. */
  cpuTicks: number;
  /** Start time since boot, in ticks: with the pid it names one process, whatever pid reuse does. */
  start: number;
}

function readStat(pid: number): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); field N is f[N - 3].
  if (f[0] === 'Z') return null; // a zombie holds no memory and is as good as gone
  return { pid, ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]), start: Number(f[19]) };
}

export const CLOCK_TICKS = 100; // USER_HZ on Linux

/** The process and all its descendants (pids), the root first. */
export function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(st.pid);
    children.set(st.ppid, list);
  }
  if (!readStat(root)) return [];
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/** Pss of /proc/PID/smaps_rollup in KiB (0 for a process that is gone). */
export function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export const sumPssMiB = (pids: number[]): number => pids.reduce((s, p) => s + pssKiB(p), 0) / 1024;

/** CPU seconds used so far by these processes (those still alive). */
export function cpuSeconds(pids: number[]): number {
  return pids.reduce((s, p) => s + (readStat(p)?.cpuTicks ?? 0), 0) / CLOCK_TICKS;
}

/** Busy and total CPU time of the whole machine so far, in seconds (from /proc/stat). */
export function machineCpu(): { busy: number; irq: number; total: number } {
  // user nice system idle iowait irq softirq steal (guest time is already in user and nice)
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: (total - f[3]! - f[4]!) / CLOCK_TICKS, irq: (f[5]! + f[6]!) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

/**
 * Established TCP connections on the server side of 127.0.0.1:port, counted per process
 * that holds them (from /proc/net/tcp and the fd tables of `pids`).
 */
export function connectionsPerPid(port: number, pids: number[]): Map<number, number> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // f[1] local address, f[3] state (01 = ESTABLISHED), f[9] inode
    if (f.length > 9 && f[1]!.endsWith(`:${hexPort}`) && f[3] === '01') inodes.add(f[9]!);
  }
  const out = new Map<number, number>();
  for (const pid of pids) {
    let n = 0;
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) n++;
      } catch {
        // closed meanwhile
      }
    }
    out.set(pid, n);
  }
  return out;
}

/** Share of the machine's CPU time that was busy over `ms` (from /proc/stat), 0..1. */
export async function machineBusy(ms: number): Promise<number> {
  const sample = (): [number, number] => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return [idle, f.reduce((a, b) => a + b, 0)];
  };
  const [i0, t0] = sample();
  await sleep(ms);
  const [i1, t1] = sample();
  return t1 === t0 ? 0 : 1 - (i1 - i0) / (t1 - t0);
}

export function alive(pid: number): boolean {
  return readStat(pid) !== null;
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

// ---- every process the benchmark met -----------------------------------------------------

const seen = new Map<number, { start: number; what: string }>();

/** Remembers these processes (by pid and start time) for the final check. */
export function track(pids: number[], what: string): void {
  for (const pid of pids) {
    const st = readStat(pid);
    if (st && !seen.has(pid)) seen.set(pid, { start: st.start, what });
  }
}

/** The tracked processes still alive (same pid, same start time). */
export function survivors(): Array<{ pid: number; what: string; cmd: string }> {
  const out = [];
  for (const [pid, { start, what }] of seen) {
    const st = readStat(pid);
    if (st && st.start === start) out.push({ pid, what, cmd: cmdline(pid) });
  }
  return out;
}

export const trackedCount = (): number => seen.size;

/** SIGKILLs every tracked process still alive; returns how many there were. */
export function killSurvivors(): number {
  const left = survivors();
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return left.length;
}

export async function waitGone(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = now() + timeoutMs;
  while (now() < deadline) {
    if (pids.every((p) => !alive(p))) return true;
    await sleep(10);
  }
  return pids.every((p) => !alive(p));
}

// ---- children -----------------------------------------------------------------------------

/** Spawns a child whose exit can be awaited; it is tracked from the start. */
export function start(cmd: string, args: string[], opts: SpawnOptions, what: string): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(cmd, args, opts);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null)));
    child.once('error', () => resolve(null));
  });
  if (child.pid) track([child.pid], what);
  return { child, exited };
}

/** Runs a command to its end; rejects on a non-zero status or after timeoutMs. */
export async function run(cmd: string, args: string[], opts: SpawnOptions, timeoutMs: number, what: string): Promise<string> {
  const { child, exited } = start(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] }, what);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${what} exited with ${code}:\n${out.slice(-2000)}`);
  return out;
}

// ---- HTTP -----------------------------------------------------------------------------

/** Which process answered: hello says "worker <pid>", big says "pid":<pid>. */
export function pidOf(body: string): number | null {
  const m = /(?:worker |"pid":)(\d+)/.exec(body);
  return m ? Number(m[1]) : null;
}

/** One GET on a fresh connection (agent: false: Connection: close); resolves the answering pid or null. */
export function getPid(port: number, path = '/', timeoutMs = 5000): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? pidOf(body) : null));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/**
 * Polls with fresh connections until a response comes from a pid that is not in `known`.
 * Tight (one loop back to back; BENCH_SERVE_POLLERS sets how many) for the first 200 ms, where a forked worker shows up, then
 * paced (2 loops, one request each 10 ms) so that the polling does not steal the CPU a
 * starting node process needs: the figure is good to about 5 ms after the first 200 ms.
 */
export async function firstNewPid(port: number, known: Set<number>, t0: number, timeoutMs: number): Promise<{ pid: number; ms: number }> {
  let found: { pid: number; ms: number } | null = null;
  const probe = async (): Promise<void> => {
    const pid = await getPid(port);
    if (pid !== null && !known.has(pid) && !found) found = { pid, ms: now() - t0 };
  };
  const TIGHT_MS = 200;
  const tight = async (): Promise<void> => {
    while (!found && now() - t0 < TIGHT_MS) await probe();
  };
  const paced = async (): Promise<void> => {
    while (!found && now() - t0 < TIGHT_MS) await sleep(5);
    while (!found && now() - t0 < timeoutMs) {
      await probe();
      if (!found) await sleep(10);
    }
  };
  const loops = Number(process.env.BENCH_SERVE_POLLERS ?? 1);
  await Promise.all([...Array.from({ length: loops }, tight), paced(), paced()]);
  if (!found) throw new Error(`no new worker answered on port ${port} within ${timeoutMs} ms`);
  return found;
}

/** Polls until answers have come from `n` distinct pids; returns them. */
export async function waitServing(port: number, n: number, timeoutMs: number, path = '/'): Promise<number[]> {
  const pids = new Set<number>();
  const deadline = now() + timeoutMs;
  while (now() < deadline) {
    const got = await Promise.all(Array.from({ length: 4 }, () => getPid(port, path, 2000)));
    for (const p of got) if (p !== null) pids.add(p);
    if (pids.size >= n) return [...pids];
    await sleep(got.some((p) => p !== null) ? 5 : 100);
  }
  throw new Error(`port ${port}: answers from ${pids.size} of ${n} workers after ${timeoutMs} ms`);
}

/** A port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Asks a unixproc master's control socket for its status. */
export function unixprocStatus(path: string): Promise<{ workers: Array<{ pid: number; requests: number; pssKiB: number | null }> }> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(path);
    let buf = '';
    conn.on('connect', () => conn.write('status\n'));
    conn.on('data', (d) => (buf += d));
    conn.on('end', () => {
      try {
        resolve(JSON.parse(buf));
      } catch (err) {
        reject(err);
      }
    });
    conn.on('error', reject);
  });
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** After a short grace, kills whatever this bench started that still runs, and notes it in problems. */
export async function killLeftovers(problems: string[]): Promise<void> {
  await sleep(200);
  const left = survivors();
  if (left.length) {
    problems.push(`processes left running (killed now): ${left.map((p) => `${p.pid} ${p.what} [${p.cmd}]`).join('; ')}`);
    killSurvivors();
  }
}
