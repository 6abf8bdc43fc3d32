// The dashboard's pages, rendered on the server so that every figure reads without
// JavaScript; the client script only refreshes the counts marked data-stat / data-queue
// and turns the action forms into fetches. Selectors named here (data-stat, data-queue,
// tr[data-failure-id], button[data-action]) are what the browser tests look for.
import type { FailureRecord, JobRecord, MinuteCount, ScheduleRecord, Stats, WorkerInfo } from '../backend.js';
import { html, Html, mib, shortJson, timeAgo } from './html.js';

export interface PageContext {
  /** The mount path without a trailing slash ('' at the root). */
  base: string;
  actions: boolean;
  csrf: string;
  assets: { css: string; js: string; icon: string };
  /** The figures shown in the navigation on every page. */
  stats: Stats;
  /** The path and query of this request inside the mount, for forms to come back to. */
  here: string;
  now: number;
}

/** The seven counts the client script refreshes, in the order they are shown. */
export const STAT_NAMES = ['processed', 'failed', 'pending', 'delayed', 'running', 'failedKept', 'workers'] as const;
const STAT_LABELS: Record<(typeof STAT_NAMES)[number], string> = {
  processed: 'processed',
  failed: 'failed',
  pending: 'pending',
  delayed: 'delayed',
  running: 'running',
  failedKept: 'failed kept',
  workers: 'workers',
};

const NAV: Array<{ path: string; label: string; stat?: (typeof STAT_NAMES)[number] }> = [
  { path: '/', label: 'Overview' },
  { path: '/workers', label: 'Workers', stat: 'workers' },
  { path: '/running', label: 'Running', stat: 'running' },
  { path: '/delayed', label: 'Delayed', stat: 'delayed' },
  { path: '/failed', label: 'Failed', stat: 'failedKept' },
  { path: '/schedules', label: 'Schedules' },
];

export function layout(ctx: PageContext, title: string, section: string, body: Html): Html {
  const nav = NAV.map(
    (n) =>
      html`<a href="${ctx.base}${n.path}"${n.path === section ? html` aria-current="page"` : ''}>${n.label}${
        n.stat ? html` <span class="badge" data-stat="${n.stat}">${ctx.stats[n.stat]}</span>` : ''
      }</a>`,
  );
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · unixproc jobs</title>
<link rel="icon" href="${ctx.assets.icon}" type="image/svg+xml">
<link rel="stylesheet" href="${ctx.assets.css}">
<script src="${ctx.assets.js}" defer></script>
</head>
<body data-base="${ctx.base}">
<header>
<a class="brand" href="${ctx.base}/">unixproc jobs</a>
<nav>${nav}</nav>
<span class="live" data-live="off" title="live updates">●</span>
</header>
<main>
<h1>${title}</h1>
<p class="flash" data-flash hidden></p>
${body}
</main>
<footer>${ctx.actions ? 'actions enabled' : 'read-only'} · rendered <time datetime="${new Date(ctx.now).toISOString()}">${new Date(ctx.now).toISOString()}</time></footer>
</body>
</html>
`;
}

export function errorPage(ctx: PageContext, status: number, title: string, message: string): Html {
  return layout(ctx, title, '', html`<p class="error" data-status="${status}">${message}</p><p><a href="${ctx.base}/">Back to the overview</a></p>`);
}

const jobLink = (ctx: PageContext, job: { id: string; name: string }): Html =>
  job.id ? html`<a href="${ctx.base}/jobs/${encodeURIComponent(job.id)}">${job.name}</a>` : html`${job.name}`;

const args = (value: unknown): Html => html`<code class="args">${shortJson(value)}</code>`;

// ---- overview ---------------------------------------------------------------------------

export const CHART_MINUTES = 180;

export function overviewPage(ctx: PageContext, minutes: MinuteCount[] | null): Html {
  const s = ctx.stats;
  const cards = STAT_NAMES.map((name) => html`<div class="card"><span class="value" data-stat="${name}">${s[name]}</span><span class="label">${STAT_LABELS[name]}</span></div>`);
  const queues = Object.entries(s.queues);
  const queueTable = queues.length
    ? html`<table class="queues"><thead><tr><th>queue</th><th class="num">pending</th></tr></thead><tbody>${queues.map(
        ([name, n]) => html`<tr><td>${name}</td><td class="num" data-queue="${name}">${n}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="muted">No queue yet.</p>`;
  return layout(
    ctx,
    'Overview',
    '/',
    html`<section class="cards">${cards}</section>
<h2>Queues</h2>
${queueTable}
<h2>Jobs per minute, last ${CHART_MINUTES / 60} hours (UTC)</h2>
${minutes === null ? html`<p class="muted">This store keeps no per-minute counts.</p>` : chart(minutes, ctx.now)}`,
  );
}

/** Stacked bars (done below, failed above) per minute, as SVG geometry: no script, no inline style. */
export function chart(minutes: MinuteCount[], now: number): Html {
  const last = now - (now % 60_000);
  const first = last - (CHART_MINUTES - 1) * 60_000;
  const byMinute = new Map<number, MinuteCount>();
  for (const m of minutes) if (m.minute >= first && m.minute <= last) byMinute.set(m.minute, m);
  const bar = 4;
  const left = 44;
  const top = 10;
  const height = 140;
  const width = left + CHART_MINUTES * bar;
  const peak = Math.max(1, ...[...byMinute.values()].map((m) => m.done + m.failed));
  const y = (n: number) => (n / peak) * height;
  const clock = (t: number) => new Date(t).toISOString().slice(11, 16);
  const bars: Html[] = [];
  for (let i = 0; i < CHART_MINUTES; i++) {
    const m = byMinute.get(first + i * 60_000);
    if (!m || m.done + m.failed === 0) continue;
    const x = left + i * bar;
    const hDone = y(m.done);
    const hFailed = y(m.failed);
    bars.push(
      html`<g data-minute="${m.minute}"><title>${clock(m.minute)}: ${m.done} done, ${m.failed} failed</title>${
        m.done ? html`<rect class="bar-done" x="${x}" y="${(top + height - hDone).toFixed(2)}" width="${bar - 1}" height="${hDone.toFixed(2)}"/>` : ''
      }${m.failed ? html`<rect class="bar-failed" x="${x}" y="${(top + height - hDone - hFailed).toFixed(2)}" width="${bar - 1}" height="${hFailed.toFixed(2)}"/>` : ''}</g>`,
    );
  }
  const ticks: Html[] = [];
  for (let i = 0; i <= CHART_MINUTES; i += 30) {
    const minute = Math.min(i, CHART_MINUTES - 1);
    // The first and last labels are anchored inward so that the plot's edges do not cut them.
    const anchor = i === 0 ? 'start' : i === CHART_MINUTES ? 'end' : 'middle';
    const x = i === CHART_MINUTES ? width : left + minute * bar;
    ticks.push(html`<text class="tick" x="${x}" y="${top + height + 14}" text-anchor="${anchor}">${clock(first + minute * 60_000)}</text>`);
  }
  const rows = [...byMinute.values()]
    .filter((m) => m.done + m.failed > 0)
    .sort((a, b) => b.minute - a.minute)
    .map((m) => html`<tr><td><time datetime="${new Date(m.minute).toISOString()}">${clock(m.minute)}</time></td><td class="num">${m.done}</td><td class="num">${m.failed}</td></tr>`);
  const totalDone = [...byMinute.values()].reduce((a, m) => a + m.done, 0);
  const totalFailed = [...byMinute.values()].reduce((a, m) => a + m.failed, 0);
  return html`<figure class="chart">
<svg viewBox="0 0 ${width} ${top + height + 20}" role="img" aria-label="${totalDone} done and ${totalFailed} failed in the last ${CHART_MINUTES} minutes">
<line class="axis" x1="${left}" y1="${top + height}" x2="${width}" y2="${top + height}"/>
<line class="grid" x1="${left}" y1="${top}" x2="${width}" y2="${top}"/>
<text class="tick" x="${left - 6}" y="${top + 4}" text-anchor="end">${peak}</text>
<text class="tick" x="${left - 6}" y="${top + height}" text-anchor="end">0</text>
${bars}${ticks}
</svg>
<figcaption><span class="key key-done"></span> done <span class="key key-failed"></span> failed · ${totalDone} done, ${totalFailed} failed</figcaption>
</figure>
<details class="minutes"><summary>The numbers, per minute</summary>
${rows.length ? html`<table><thead><tr><th>minute (UTC)</th><th class="num">done</th><th class="num">failed</th></tr></thead><tbody>${rows}</tbody></table>` : html`<p class="muted">Nothing ended in these hours.</p>`}
</details>`;
}

// ---- workers and running jobs -----------------------------------------------------------

/** A worker as listed; `concurrency`, where a store gives it, makes the state read "busy n of m". */
type Worker = WorkerInfo & { concurrency?: number | null };

export function workersPage(ctx: PageContext, workers: Worker[]): Html {
  const rows = workers.map((w) => {
    const busy = w.running.length;
    const of = typeof w.concurrency === 'number' ? ` of ${w.concurrency}` : '';
    const state = busy ? `busy ${busy}${of}` : 'idle';
    const jobs = w.running.map(
      (r) =>
        html`<li>${jobLink(ctx, r.job)} <span class="muted">(${r.job.queue})</span> · child ${r.childPid ?? '–'} · since ${timeAgo(r.since, ctx.now)}${
          typeof r.rss === 'number' ? html` · ${mib(r.rss)}` : ''
        }</li>`,
    );
    return html`<tr data-worker-id="${w.id}">
<td><code>${w.id}</code></td><td>${w.host}</td><td class="num">${w.pid}</td><td>${w.queues.join(', ')}</td>
<td><span class="${busy ? 'state-busy' : 'state-idle'}">${state}</span><br><span class="muted">heartbeat ${timeAgo(w.heartbeatAt, ctx.now)}</span></td>
<td class="num">${mib(w.rss)}</td><td class="num">${w.processed ?? '–'} / ${w.failed ?? '–'}</td><td>${timeAgo(w.startedAt, ctx.now)}</td>
<td>${jobs.length ? html`<ul class="running">${jobs}</ul>` : html`<span class="muted">–</span>`}</td></tr>`;
  });
  return layout(
    ctx,
    'Workers',
    '/workers',
    workers.length
      ? html`<table><thead><tr><th>worker</th><th>host</th><th class="num">pid</th><th>queues</th><th>state</th><th class="num">memory</th><th class="num">processed / failed</th><th>started</th><th>running</th></tr></thead><tbody>${rows}</tbody></table>`
      : html`<p class="muted">No worker is registered.</p>`,
  );
}

export function runningPage(ctx: PageContext, workers: Worker[]): Html {
  const all = workers.flatMap((w) => w.running.map((r) => ({ w, r }))).sort((a, b) => a.r.since - b.r.since);
  const rows = all.map(
    ({ w, r }) =>
      html`<tr data-job-id="${r.job.id}"><td>${jobLink(ctx, r.job)}</td><td>${r.job.queue}</td><td>${args(r.job.args)}</td><td><code>${w.id}</code></td><td class="num">${r.childPid ?? '–'}</td><td>${timeAgo(r.since, ctx.now)}</td><td class="num">${mib(r.rss)}</td><td class="num">${r.job.attempt + 1} of ${r.job.attempts}</td></tr>`,
  );
  return layout(
    ctx,
    'Running jobs',
    '/running',
    all.length
      ? html`<table><thead><tr><th>job</th><th>queue</th><th>arguments</th><th>worker</th><th class="num">child pid</th><th>since</th><th class="num">memory</th><th class="num">attempt</th></tr></thead><tbody>${rows}</tbody></table>`
      : html`<p class="muted">No job is running.</p>`,
  );
}

// ---- paginated lists ----------------------------------------------------------------------

export interface Paging {
  page: number;
  pages: number;
  total: number;
}

function pager(ctx: PageContext, path: string, p: Paging): Html {
  if (p.pages <= 1) return html``;
  const link = (n: number, text: string, rel: string) => html`<a href="${ctx.base}${path}?page=${n}" rel="${rel}">${text}</a>`;
  return html`<nav class="pager" aria-label="pages">${p.page > 1 ? link(1, '« first', 'first') : ''} ${p.page > 1 ? link(p.page - 1, '‹ newer', 'prev') : ''} <span>page ${p.page} of ${p.pages}</span> ${
    p.page < p.pages ? link(p.page + 1, 'older ›', 'next') : ''
  } ${p.page < p.pages ? link(p.pages, 'last »', 'last') : ''}</nav>`;
}

const hidden = (ctx: PageContext): Html => html`<input type="hidden" name="csrf" value="${ctx.csrf}"><input type="hidden" name="return" value="${ctx.base}${ctx.here}">`;

export function failedPage(ctx: PageContext, failures: Array<FailureRecord & { id: string }>, paging: Paging): Html {
  const rows = failures.map((f) => {
    const id = encodeURIComponent(f.id);
    const buttons = ctx.actions
      ? html`<td class="actions"><form method="post" action="${ctx.base}/failed/${id}/retry">${hidden(ctx)}<button type="submit" data-action="retry">retry</button></form><form method="post" action="${ctx.base}/failed/${id}/remove">${hidden(ctx)}<button type="submit" data-action="remove" class="danger">remove</button></form></td>`
      : '';
    return html`<tr data-failure-id="${f.id}">
<td>${jobLink(ctx, f.job)}<br><span class="muted">${f.job.queue}</span></td>
<td>${args(f.job.args)}</td>
<td><strong class="exception">${f.exception}</strong> <span class="message">${f.error}</span>${
      f.backtrace.length ? html`<details><summary>stack</summary><pre>${f.backtrace.join('\n')}</pre></details>` : ''
    }</td>
<td class="num">${f.job.attempt} of ${f.job.attempts}</td>
<td><code>${f.worker}</code></td>
<td>${timeAgo(f.failedAt, ctx.now)}</td>${buttons}</tr>`;
  });
  const retryAll =
    ctx.actions && paging.total > 0
      ? html`<form method="post" action="${ctx.base}/failed/retry-all" class="retry-all">${hidden(ctx)}<button type="submit" data-action="retry-all">retry all ${paging.total}</button></form>`
      : '';
  return layout(
    ctx,
    'Failed jobs',
    '/failed',
    paging.total
      ? html`<p>${paging.total} failed, newest first.</p>${retryAll}
<table class="failed"><thead><tr><th>job</th><th>arguments</th><th>error</th><th class="num">attempts</th><th>worker</th><th>failed</th>${ctx.actions ? html`<th></th>` : ''}</tr></thead><tbody>${rows}</tbody></table>
${pager(ctx, '/failed', paging)}`
      : html`<p class="muted">No failed job is kept.</p>`,
  );
}

export function delayedPage(ctx: PageContext, jobs: JobRecord[], paging: Paging): Html {
  const rows = jobs.map(
    (j) =>
      html`<tr data-job-id="${j.id}"><td>${jobLink(ctx, j)}</td><td>${j.queue}</td><td>${args(j.args)}</td><td>${timeAgo(j.runAt, ctx.now)}</td><td class="num">${j.attempt} of ${j.attempts}</td><td>${timeAgo(j.enqueuedAt, ctx.now)}</td></tr>`,
  );
  return layout(
    ctx,
    'Delayed jobs',
    '/delayed',
    paging.total || jobs.length
      ? html`<p>${paging.total} delayed, soonest first.</p>
<table><thead><tr><th>job</th><th>queue</th><th>arguments</th><th>runs</th><th class="num">attempts made</th><th>enqueued</th></tr></thead><tbody>${rows}</tbody></table>
${pager(ctx, '/delayed', paging)}`
      : html`<p class="muted">No delayed job.</p>`,
  );
}

// ---- schedules and one job ------------------------------------------------------------------

export function schedulesPage(ctx: PageContext, schedules: Array<ScheduleRecord & { next: number | null; nextError: string | null }>): Html {
  const rows = schedules.map(
    (s) =>
      html`<tr data-schedule="${s.name}"><td>${s.name}</td><td><code>${s.cron}</code></td><td>${s.timezone ?? 'local time'}</td><td>${s.job}</td><td>${args(s.args)}</td><td>${s.queue}</td>
<td>${s.lastTick === null ? html`<span class="muted">never</span>` : timeAgo(s.lastTick, ctx.now)}${
        s.lastJobId ? html` · <a href="${ctx.base}/jobs/${encodeURIComponent(s.lastJobId)}">job ${s.lastJobId}</a>` : ''
      }</td>
<td>${s.next === null ? html`<span class="muted">${s.nextError ?? 'none'}</span>` : timeAgo(s.next, ctx.now)}</td><td>${timeAgo(s.updatedAt, ctx.now)}</td></tr>`,
  );
  return layout(
    ctx,
    'Schedules',
    '/schedules',
    schedules.length
      ? html`<table><thead><tr><th>name</th><th>cron</th><th>time zone</th><th>job</th><th>arguments</th><th>queue</th><th>last run</th><th>next run</th><th>published</th></tr></thead><tbody>${rows}</tbody></table>`
      : html`<p class="muted">No worker has published a schedule.</p>`,
  );
}

export function jobPage(
  ctx: PageContext,
  job: JobRecord & { state: string },
  where: { worker: string; childPid: number | null; since: number; rss?: number | null } | null,
): Html {
  let argsText: string;
  try {
    argsText = JSON.stringify(job.args, null, 2);
  } catch {
    argsText = String(job.args);
  }
  const field = (name: string, value: Html | string | number) => html`<dt>${name}</dt><dd>${value}</dd>`;
  return layout(
    ctx,
    `Job ${job.id}`,
    '',
    html`<dl class="job" data-job-id="${job.id}">
${field('name', job.name)}
${field('state', html`<span class="state state-${job.state}" data-job-state>${job.state}</span>`)}
${field('queue', job.queue)}
${field('attempts made', `${job.attempt} of ${job.attempts}`)}
${field('backoff', `${job.backoff} ms`)}
${field('timeout', job.timeout === null ? "the worker's" : `${job.timeout} s`)}
${field('unique key', job.unique ?? '–')}
${field('enqueued', timeAgo(job.enqueuedAt, ctx.now))}
${field(job.runAt > ctx.now ? 'runs' : 'runnable since', timeAgo(job.runAt, ctx.now))}
${where ? field('running on', html`<code>${where.worker}</code>, child ${where.childPid ?? '–'}, since ${timeAgo(where.since, ctx.now)}${typeof where.rss === 'number' ? `, ${mib(where.rss)}` : ''}`) : ''}
</dl>
<h2>Arguments</h2>
<pre class="args">${argsText}</pre>`,
  );
}
