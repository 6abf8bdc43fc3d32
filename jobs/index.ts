// unixproc/jobs: enqueue jobs from any process (Queue), read the running job (currentJob),
// run a forking worker (work), and reach the store for management (openBackend).
export { Queue, type EnqueueOptions } from './queue.js';
export { currentJob, type JobContext } from './context.js';
export { JobWorker, WORK_DEFAULTS, type WorkHooks, type WorkOptions } from './worker.js';
export { openBackend, defaultUrl } from './open.js';
export type { Backend, FailureRecord, JobRecord, Stats, WorkerInfo } from './backend.js';
