// The jobs module of bench/jobs.ts, for every system it measures (unixproc work, BullMQ,
// node-resque, child_process.fork per job): the same handlers, loaded the same way
// (compiled by tsc to dist/bench/apps/jobs-noop.js).
//   Noop()            nothing: what a worker costs per job
//   Cpu5()            5 ms of CPU (a busy loop on the clock)
//   Stamp(t0, log)    appends "t0 end" (CLOCK_MONOTONIC µs) to the file `log`: t0 is the
//                     enqueue time the bench passed, end is this job's end; the bench
//                     reads the latency from it
//   Sleep(ms, log?)   waits ms (a job child that holds a job, for the memory figure);
//                     with `log`, appends "pid" first so the bench knows which process runs it
import { appendFileSync } from 'node:fs';

/** CLOCK_MONOTONIC in µs: one clock for every process on the machine. */
export const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

export function Noop(): void {}

export function Cpu5(): number {
  const end = process.hrtime.bigint() + 5_000_000n;
  let x = 0;
  while (process.hrtime.bigint() < end) x++;
  return x;
}

export function Stamp(t0: number, log: string): void {
  appendFileSync(log, `${t0} ${monoUs()}\n`);
}

export async function Sleep(ms: number, log?: string): Promise<void> {
  if (log) appendFileSync(log, `${process.pid}\n`);
  await new Promise((r) => setTimeout(r, ms));
}
