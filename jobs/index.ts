// unixproc/jobs: enqueue jobs from any process (Queue), read the running job (currentJob),
// run a forking worker (work), reach the store for management (openBackend), compute a
// recurring schedule's next run (nextRun), and mount the dashboard (dashboard).
export { Queue, type EnqueueOptions } from './queue.js';
export { currentJob, type JobContext } from './context.js';
export { JobWorker, WORK_DEFAULTS, type WorkHooks, type WorkOptions } from './worker.js';
export { openBackend, defaultUrl } from './open.js';
export { nextRun, parseSchedules, type ScheduleConfig, type ScheduleDef } from './schedule.js';
export { dashboard, type DashboardOptions, type DashboardListener } from './dashboard.js';
export type { Backend, FailureRecord, JobRecord, MinuteCount, ScheduleRecord, Stats, WorkerInfo } from './backend.js';
