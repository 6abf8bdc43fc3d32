// The job a handler is running, for the handler to read (id, queue, attempt, when it was
// enqueued). A fork-per-job child runs one job at a time; --no-fork runs several in the
// master at once, hence AsyncLocalStorage rather than a variable.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { JobRecord } from './backend.js';

export interface JobContext {
  id: string;
  name: string;
  queue: string;
  /** 1 on the first run. */
  attempt: number;
  attempts: number;
  enqueuedAt: Date;
}

const store = new AsyncLocalStorage<JobContext>();

/** The job being run by the calling handler; throws outside a job. */
export function currentJob(): JobContext {
  const job = store.getStore();
  if (!job) throw new Error('currentJob() was called outside a job handler');
  return job;
}

export function runInJob<T>(job: JobRecord, fn: () => T): T {
  return store.run(
    { id: job.id, name: job.name, queue: job.queue, attempt: job.attempt + 1, attempts: job.attempts, enqueuedAt: new Date(job.enqueuedAt) },
    fn,
  );
}
