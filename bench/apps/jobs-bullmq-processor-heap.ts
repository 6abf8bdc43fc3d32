// bench/apps/jobs-bullmq-processor.ts on the 100 MB jobs module: each BullMQ child
// process builds the heap when it starts.
import * as jobs from './jobs-heap.js';

type Handler = (...args: unknown[]) => unknown;

export default async function process(job: { name: string; data: { args: unknown[] } }): Promise<unknown> {
  return (jobs as unknown as Record<string, Handler>)[job.name]!(...job.data.args);
}
