// bench/jobs.ts's jobs module with a 100 MB heap: the handlers of jobs-noop plus about
// 100 MiB of live JS records (bench/lib/heap.ts: objects, strings, arrays, numbers) built
// when the module loads, like an app that loads a catalogue or a model at start. A forking
// worker preloads it once in its master; a fresh process (BullMQ's sandbox child,
// child_process.fork per job) builds it again.
import { grow, type Rec } from '../lib/heap.js';

export { Noop, Cpu5, Stamp, Sleep } from './jobs-noop.js';

/** Records for about 100 MiB of heapUsed (565 bytes each on Node 20, see bench/RESULTS.md "fork"). */
export const RECORDS = 186_000;
const data: Rec[] = [];
grow(data, RECORDS);
(globalThis as { benchJobsHeap?: Rec[] }).benchJobsHeap = data;
