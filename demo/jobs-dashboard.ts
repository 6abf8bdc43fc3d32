// An app for `unixproc serve` that mounts the job dashboard under /jobs beside routes of its
// own: `unixproc serve demo/jobs-dashboard.ts -w 2`, the store from $UNIXPROC_JOBS_URL
// (default sqlite:./unixproc-jobs.db). Read-only: give `actions: true` to retry and remove.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dashboard, defaultUrl } from 'unixproc/jobs';

// Built in the master before the fork; the store is opened on the first request, in the
// worker, so no worker shares a SQLite handle or a Redis socket with another.
const jobs = dashboard({ backend: process.env.UNIXPROC_JOBS_URL || defaultUrl(), basePath: '/jobs' });

export default function app(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/jobs' || req.url?.startsWith('/jobs/')) return jobs(req, res);
  res.setHeader('content-type', 'text/plain');
  res.end(`the app's own page, from worker ${process.pid}; the job dashboard is at /jobs/\n`);
}
