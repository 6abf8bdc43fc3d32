// Memory as the kernel accounts it per process: PSS (proportional set size) charges each
// shared page to its sharers in equal parts, so it is the honest measure of what forked
// copy-on-write processes cost together.
import { readFileSync } from 'node:fs';

/** PSS of a process in KiB from /proc/PID/smaps_rollup, or null when it cannot be read. */
export function readPss(pid: number = process.pid): number | null {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
