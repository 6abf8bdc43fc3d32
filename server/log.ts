// Structured lifecycle logs (one JSON object a line, on stderr) and the log files
// behind stdout and stderr, which USR1 reopens so that logrotate can move them away.
import { IO } from '../src/index.js';

let role = 'master';
let paths: { stdout?: string; stderr?: string } = {};

export function setRole(r: string): void {
  role = r;
}

export function log(event: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ time: new Date().toISOString(), pid: process.pid, role, event, ...fields });
  process.stderr.write(`${line}\n`);
}

/** Points fd 1 and 2 at the log files (appending); called again, reopens them. */
export function redirectLogs(next: { stdout?: string; stderr?: string } = paths): void {
  paths = next;
  if (paths.stdout) IO.for(1, 'w').reopen(paths.stdout);
  if (paths.stderr) IO.for(2, 'w').reopen(paths.stderr);
}
