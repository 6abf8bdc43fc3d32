// BullMQ's sandboxed processor for bench/jobs.ts: a file BullMQ runs in its child
// processes (`new Worker(queue, thisFile, { useWorkerThreads: false })`), each of which
// loads the jobs module itself. The job's name is the handler, job.data.args its arguments.
import * as jobs from './jobs-noop.js';

type Handler = (...args: unknown[]) => unknown;

export default async function process(job: { name: string; data: { args: unknown[] } }): Promise<unknown> {
  return (jobs as unknown as Record<string, Handler>)[job.name]!(...job.data.args);
}
