// The dashboard (`dashboard()` of unixproc/jobs) in a real browser, headless Chromium from
// Debian's package driven by playwright-core, on SQLite and on Redis, against real jobs run by
// a real `unixproc work` worker: its counts equal `unixproc jobs stats --json`, retry works
// from the failed page, counts move live, hostile job text stays text, and it reads without
// JavaScript. With UNIXPROC_SCREENSHOT set it also writes docs/images/dashboard.png.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { Queue, type Stats } from '../jobs/index.js';
import { dashboard } from '../jobs/dashboard.js';
import { launchBrowser, type TestBrowser } from './browser.js';
import { childrenOf, scratch } from './helpers.js';
import { cliPath, runs, storeFailures, storeStats, until, Worker, writeJobsModule } from './jobs-harness.js';
import { redisPerFile } from './redis-server.js';

const T = { timeout: 180_000 };
const root = fileURLToPath(new URL('../..', import.meta.url));
const HOSTILE = '<img src=x onerror=alert(1)>';
const HOSTILE_NAME = '<script>alert(2)</script>';
const STAT_KEYS = ['processed', 'failed', 'pending', 'delayed', 'running', 'failedKept', 'workers'] as const;

// A job that fails until the test creates its marker file, then succeeds and says so.
const EXTRA_JOBS = `
export function FailUntilMarked(marker) {
  record();
  if (!existsSync(marker)) throw new Error('not yet: ' + marker);
  writeFileSync(marker + '.ran', String(currentJob().attempt));
}
`;

let chrome: TestBrowser;
before(async () => {
  chrome = await launchBrowser();
});
after(async () => {
  if (!chrome) return;
  await chrome.close();
  // Nothing of the browser may outlive the file: pgrep exits 1 when no process matches.
  for (const pattern of [`user-data-dir=${chrome.profileDir}`, chrome.dir]) {
    let found = '';
    try {
      found = execFileSync('pgrep', ['-a', '-f', pattern], { encoding: 'utf8' });
    } catch (err) {
      if ((err as { status?: number }).status !== 1) throw err;
    }
    assert.equal(found, '', `chromium processes left behind matching ${pattern}`);
  }
  assert.equal(existsSync(chrome.dir), false, `${chrome.dir} removed`);
  assert.equal(existsSync(chrome.profileDir), false, `${chrome.profileDir} removed`);
});

/** `unixproc jobs stats --json` run as a CLI process. */
async function cliStats(url: string): Promise<Stats> {
  const { stdout } = await promisify(execFile)(process.execPath, [cliPath, 'jobs', 'stats', '--json', '--backend', url], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(stdout);
}

/** A count as shown ("1,234" or "1 234" read as 1234); anything else fails, naming the element. */
function count(text: string | null, what: string): number {
  const t = (text ?? '').trim().replace(/[,.\s\u00a0\u202f']/g, '');
  assert.match(t, /^\d+$/, `${what} shows a count, got ${JSON.stringify(text)}`);
  return Number(t);
}

/** Every [data-stat] and [data-queue] element of the page, by name: the counts each shows. */
async function shownCounts(page: Page): Promise<{ stats: Record<string, number[]>; queues: Record<string, number[]> }> {
  const raw = await page.$$eval('[data-stat], [data-queue]', (els) =>
    els.map((e) => ({ stat: e.getAttribute('data-stat'), queue: e.getAttribute('data-queue'), text: e.textContent })),
  );
  const stats: Record<string, number[]> = {};
  const queues: Record<string, number[]> = {};
  for (const r of raw) {
    if (r.stat) (stats[r.stat] ??= []).push(count(r.text, `[data-stat=${r.stat}]`));
    else if (r.queue) (queues[r.queue] ??= []).push(count(r.text, `[data-queue=${r.queue}]`));
  }
  return { stats, queues };
}

/** The first [data-stat=NAME] element's count. */
async function shownStat(page: Page, name: string): Promise<number> {
  return count(await page.locator(`[data-stat=${name}]`).first().textContent(), `[data-stat=${name}]`);
}

/** Waits, inside the page, until [data-stat=NAME] shows `want`; fails with what it shows. */
async function waitForStat(page: Page, name: string, want: number, ms = 60_000): Promise<void> {
  try {
    await page.waitForFunction(
      ([n, w]) => Number((document.querySelector(`[data-stat=${n}]`)?.textContent ?? '').replace(/[^\d]/g, '')) === w,
      [name, want] as const,
      { timeout: ms, polling: 100 },
    );
  } catch {
    assert.fail(`[data-stat=${name}] did not reach ${want} live; it shows ${JSON.stringify(await page.locator(`[data-stat=${name}]`).first().textContent())}`);
  }
}

/** Marks the page's window; the mark survives only as long as the page is not reloaded. */
async function markWindow(page: Page): Promise<void> {
  await page.evaluate(() => ((window as unknown as { __unixprocMark: number }).__unixprocMark = 1));
}
async function stillMarked(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as unknown as { __unixprocMark?: number }).__unixprocMark === 1);
}

function browserSuite(name: string, open: () => Promise<string>, services: () => number[]): void {
  async function setup(opts: { actions?: boolean; workerArgs?: string[]; startWorker?: boolean } = {}) {
    const tmp = scratch();
    const url = await open();
    const jobsFile = writeJobsModule(tmp.dir, EXTRA_JOBS);
    const queue = new Queue(url);
    const app = dashboard({ backend: url, actions: opts.actions ?? false, refreshMs: 500 });
    const server: Server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const contexts: BrowserContext[] = [];
    let worker: Worker | null = null;
    const startWorker = async (args = opts.workerArgs ?? ['-n', '2']) => {
      worker = new Worker(jobsFile, url, args);
      await worker.ready();
      return worker;
    };
    if (opts.startWorker !== false) await startWorker();
    /** A page that records every dialog (an alert from injected markup would be one) and script error. */
    const newPage = async (contextOpts: Parameters<TestBrowser['browser']['newContext']>[0] = {}) => {
      const ctx = await chrome.browser.newContext(contextOpts);
      contexts.push(ctx);
      const page = await ctx.newPage();
      const dialogs: string[] = [];
      const errors: string[] = [];
      page.on('dialog', (d) => {
        dialogs.push(`${d.type()}: ${d.message()}`);
        void d.dismiss().catch(() => {});
      });
      page.on('pageerror', (e) => errors.push(e.message));
      return { page, dialogs, errors };
    };
    const backendStats = () => storeStats(url);
    const failures = () => storeFailures(url);
    const done = async () => {
      for (const ctx of contexts) await ctx.close().catch(() => {});
      const w = worker as Worker | null;
      if (w) {
        if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
        await w.exited;
      }
      // Live-update streams hold their connections open: close() must end them.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await app.close();
      await queue.close();
      tmp.cleanup();
      const allowed = [...services(), chrome.pid];
      await until(() => childrenOf().every((c) => allowed.includes(c.pid)), 10_000, () => `no children left behind: ${JSON.stringify(childrenOf())}`);
    };
    return { dir: tmp.dir, url, queue, base, newPage, startWorker, backendStats, failures, done, worker: () => worker };
  }

  describe(`unixproc jobs web in Chromium (${name})`, { concurrency: 1 }, () => {
    test('the overview shows the same counts as `unixproc jobs stats --json`, and /api/stats is that object', T, async () => {
      const s = await setup({ workerArgs: ['-n', '2', '-q', 'default,mail,critical'] });
      try {
        await s.queue.enqueueMany([
          ...Array.from({ length: 6 }, () => ({ name: 'Noop' })),
          ...Array.from({ length: 3 }, (_, i) => ({ name: 'Add', args: [i, 1], options: { queue: 'mail' } })),
          ...Array.from({ length: 2 }, (_, i) => ({ name: 'Throw', args: [`broken ${i}`], options: { queue: 'critical' } })),
          // Never run here: a queue the worker does not take, and jobs an hour ahead.
          ...Array.from({ length: 4 }, () => ({ name: 'Noop', options: { queue: 'idle' } })),
          ...Array.from({ length: 2 }, () => ({ name: 'Noop', options: { delay: 3_600_000 } })),
        ]);
        await until(async () => {
          const st = await s.backendStats();
          return st.processed === 11 && st.failedKept === 2 && st.running === 0;
        }, 90_000, () => 'the 11 runnable jobs done');
        const cli = await cliStats(s.url);
        assert.equal(cli.processed, 11);
        assert.equal(cli.failed, 2);
        assert.equal(cli.pending, 4);
        assert.equal(cli.delayed, 2);
        assert.equal(cli.workers, 1);

        const { page, dialogs, errors } = await s.newPage();
        const res = await page.goto(`${s.base}/`);
        assert.equal(res?.status(), 200);
        const shown = await shownCounts(page);
        for (const key of STAT_KEYS) {
          assert.ok(shown.stats[key]?.length, `the overview has a [data-stat=${key}]`);
          for (const n of shown.stats[key]) assert.equal(n, cli[key], `[data-stat=${key}] against the CLI's ${key}`);
        }
        for (const [queueName, size] of Object.entries(cli.queues)) {
          assert.ok(shown.queues[queueName]?.length, `the overview has a [data-queue=${queueName}] (CLI queues: ${JSON.stringify(cli.queues)})`);
          for (const n of shown.queues[queueName]) assert.equal(n, size, `[data-queue=${queueName}]`);
        }
        assert.equal(shown.queues.idle?.[0], 4);

        const api = await page.request.get(`${s.base}/api/stats`);
        assert.equal(api.status(), 200);
        assert.match(api.headers()['content-type'] ?? '', /application\/json/);
        assert.deepEqual(await api.json(), cli);
        assert.deepEqual(dialogs, []);
        assert.deepEqual(errors, [], 'no script errors on the page');
      } finally {
        await s.done();
      }
    });

    test('retry on the failed page: the row goes, the job runs, and the counts move live without a reload', T, async () => {
      const s = await setup({ actions: true });
      try {
        const marker = join(s.dir, 'may-succeed');
        const jobId = await s.queue.enqueue('FailUntilMarked', [marker]);
        await until(async () => (await s.failures()).length === 1 && (await s.backendStats()).running === 0, 60_000, () => 'the first attempt to fail');
        const [failure] = await s.failures();
        assert.equal(failure.job.id, jobId);

        const overview = await s.newPage();
        await overview.page.goto(`${s.base}/`);
        await markWindow(overview.page);
        const processedBefore = await shownStat(overview.page, 'processed');
        assert.equal(processedBefore, (await cliStats(s.url)).processed);

        const failed = await s.newPage();
        await failed.page.goto(`${s.base}/failed`);
        const row = failed.page.locator(`tr[data-failure-id=${JSON.stringify(failure.id)}]`);
        await row.waitFor({ state: 'visible', timeout: 10_000 });
        assert.match((await row.textContent()) ?? '', /FailUntilMarked/);
        assert.match((await row.textContent()) ?? '', /not yet/);

        writeFileSync(marker, '');
        await row.locator('button[data-action=retry]').click();
        await row.waitFor({ state: 'detached', timeout: 30_000 });
        await until(() => existsSync(`${marker}.ran`), 60_000, () => 'the retried job to run and succeed');
        assert.equal(runs(s.dir).filter((r) => r.id === jobId).length, 2, 'it ran once more');

        await waitForStat(overview.page, 'processed', processedBefore + 1);
        assert.equal(await stillMarked(overview.page), true, 'the overview was updated in place, not reloaded');
        await waitForStat(failed.page, 'failedKept', 0);
        const cli = await cliStats(s.url);
        assert.equal(cli.failedKept, 0);
        assert.equal(cli.processed, processedBefore + 1);
        assert.equal(await shownStat(overview.page, 'processed'), cli.processed);
        assert.deepEqual([...overview.dialogs, ...failed.dialogs], []);
        assert.deepEqual([...overview.errors, ...failed.errors], []);
      } finally {
        await s.done();
      }
    });

    test('remove and retry-all from the failed page', T, async () => {
      const s = await setup({ actions: true });
      try {
        await s.queue.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ name: 'Throw', args: [`bad ${i}`] })));
        await until(async () => (await s.failures()).length === 3 && (await s.backendStats()).running === 0, 60_000, () => '3 failures');
        const list = await s.failures();
        const { page } = await s.newPage();
        await page.goto(`${s.base}/failed`);
        assert.equal(await page.locator('tr[data-failure-id]').count(), 3);
        const first = page.locator(`tr[data-failure-id=${JSON.stringify(list[0].id)}]`);
        await first.locator('button[data-action=remove]').click();
        await first.waitFor({ state: 'detached', timeout: 30_000 });
        await until(async () => (await s.failures()).length === 2, 10_000, () => 'the removed failure gone from the store');
        await page.locator('button[data-action=retry-all]').first().click();
        // Retried Throw jobs fail again: the rows come back as new failures, but the store saw both retried.
        await until(async () => runs(s.dir).length === 5, 60_000, () => `the 2 retried jobs ran (runs: ${runs(s.dir).length})`);
        await until(async () => (await s.failures()).length === 2 && (await s.backendStats()).running === 0, 60_000, () => 'they failed again');
        const cli = await cliStats(s.url);
        assert.equal(cli.processed, 5);
        assert.equal(cli.failedKept, 2);
      } finally {
        await s.done();
      }
    });

    test('with the overview open, newly run jobs move [data-stat=processed] without a reload', T, async () => {
      const s = await setup();
      try {
        await s.queue.enqueueMany(Array.from({ length: 2 }, () => ({ name: 'Noop' })));
        await until(async () => (await s.backendStats()).processed === 2, 60_000, () => '2 jobs done');
        const { page, errors } = await s.newPage();
        await page.goto(`${s.base}/`);
        assert.equal(await shownStat(page, 'processed'), 2);
        await markWindow(page);
        await s.queue.enqueueMany(Array.from({ length: 5 }, () => ({ name: 'Noop' })));
        await waitForStat(page, 'processed', 7);
        assert.equal(await stillMarked(page), true, 'updated in place, not reloaded');
        assert.equal((await cliStats(s.url)).processed, 7);
        // A job that throws moves the failed count the same way.
        await s.queue.enqueue('Throw', ['live failure']);
        await waitForStat(page, 'failed', 1);
        await waitForStat(page, 'failedKept', 1);
        assert.equal(await stillMarked(page), true);
        assert.deepEqual(errors, []);
      } finally {
        await s.done();
      }
    });

    test('job names, arguments and errors are shown as text: markup in them never becomes elements or runs', T, async () => {
      const s = await setup();
      try {
        const hostileId = await s.queue.enqueue('Throw', [HOSTILE]);
        const namedId = await s.queue.enqueue(HOSTILE_NAME, [HOSTILE_NAME]);
        await until(async () => (await s.failures()).length === 2 && (await s.backendStats()).running === 0, 60_000, () => 'both jobs failed');
        const list = await s.failures();
        const hostile = list.find((f) => f.job.id === hostileId)!;
        const named = list.find((f) => f.job.id === namedId)!;
        assert.ok(hostile && named, 'both failures kept');
        assert.ok(hostile.error.includes(HOSTILE), `the error holds the markup: ${hostile.error}`);

        const { page, dialogs, errors } = await s.newPage();
        await page.goto(`${s.base}/failed`, { waitUntil: 'load' });
        const hostileRow = page.locator(`tr[data-failure-id=${JSON.stringify(hostile.id)}]`);
        const namedRow = page.locator(`tr[data-failure-id=${JSON.stringify(named.id)}]`);
        const hostileText = (await hostileRow.textContent()) ?? '';
        assert.ok(hostileText.includes(HOSTILE), `the row shows the argument and error as text: ${hostileText}`);
        const namedText = (await namedRow.textContent()) ?? '';
        assert.ok(namedText.includes(HOSTILE_NAME), `the row shows the name as text: ${namedText}`);
        for (const row of [hostileRow, namedRow]) {
          assert.equal(await row.locator('img').count(), 0, 'no img element in the row');
          assert.equal(await row.locator('script').count(), 0, 'no script element in the row');
        }
        assert.equal(await page.locator('img[src=x]').count(), 0, 'no img with src x on the page');
        assert.equal(await page.locator('script:not([src])').filter({ hasText: 'alert' }).count(), 0, 'no injected inline script');

        // The job's own page shows the whole of it, still as text.
        await page.goto(`${s.base}/jobs/${encodeURIComponent(hostileId)}`, { waitUntil: 'load' });
        const body = (await page.locator('main').textContent()) ?? '';
        assert.ok(body.includes(HOSTILE), `the job page shows the markup as text: ${body.slice(0, 500)}`);
        assert.equal(await page.locator('img').count(), 0, 'no img on the job page');

        // Both pages were loaded to their load event, which waits until every image has loaded or
        // failed: an onerror handler that got into the page would have opened its alert by now.
        assert.deepEqual(dialogs, [], 'no dialog opened');
        assert.deepEqual(errors, []);
      } finally {
        await s.done();
      }
    });

    test('without JavaScript the pages show the counts and the failed rows, and a retry form still posts', T, async () => {
      const s = await setup({ actions: true });
      try {
        await s.queue.enqueueMany([
          ...Array.from({ length: 4 }, () => ({ name: 'Noop', options: { queue: 'mail' } })),
          ...Array.from({ length: 2 }, (_, i) => ({ name: 'Throw', args: [`no js ${i}`] })),
        ]);
        await until(async () => {
          const st = await s.backendStats();
          return st.processed === 6 && st.failedKept === 2 && st.running === 0;
        }, 60_000, () => '6 jobs done');
        const cli = await cliStats(s.url);
        const { page, errors } = await s.newPage({ javaScriptEnabled: false });
        await page.goto(`${s.base}/`);
        const shown = await shownCounts(page);
        for (const key of STAT_KEYS) {
          assert.ok(shown.stats[key]?.length, `[data-stat=${key}] without JS`);
          for (const n of shown.stats[key]) assert.equal(n, cli[key], `[data-stat=${key}] without JS`);
        }
        await page.goto(`${s.base}/failed`);
        const list = await s.failures();
        assert.equal(await page.locator('tr[data-failure-id]').count(), 2);
        for (const f of list) {
          const row = page.locator(`tr[data-failure-id=${JSON.stringify(f.id)}]`);
          assert.match((await row.textContent()) ?? '', new RegExp(f.error.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
        }
        // A plain form POST (no fetch without JS) with its CSRF token, then back to a page without the row.
        const row = page.locator(`tr[data-failure-id=${JSON.stringify(list[0].id)}]`);
        await row.locator('button[data-action=remove]').click();
        await until(async () => (await s.failures()).length === 1, 30_000, () => 'the failure removed by the form');
        await row.waitFor({ state: 'detached', timeout: 30_000 });
        assert.ok(new URL(page.url()).pathname.endsWith('/failed'), `back on the failed page: ${page.url()}`);
        assert.deepEqual(errors, []);
      } finally {
        await s.done();
      }
    });

    // UNIXPROC_SCREENSHOT writes the README's picture (from the SQLite run); a few minutes of
    // work give its chart some minutes to show, so that run has the time it needs.
    const forReadme = Boolean(process.env.UNIXPROC_SCREENSHOT) && name === 'sqlite';
    const minutes = forReadme ? Number(process.env.UNIXPROC_SCREENSHOT_MINUTES ?? 4) : 0;
    test('a screenshot of the overview with real data', { timeout: T.timeout + minutes * 2 * 60_000 }, async () => {
      const s = await setup({ workerArgs: ['-n', '2', '-q', 'critical,default,mail,reports'] });
      try {
        const batch = (i: number) => [
          ...Array.from({ length: 6 + ((i * 7) % 9) }, (_, k) => ({ name: 'Add', args: [k, i], options: { queue: 'default' } })),
          ...Array.from({ length: 3 + (i % 4) }, () => ({ name: 'Noop', options: { queue: 'mail' } })),
          ...Array.from({ length: 2 + (i % 3) }, () => ({ name: 'Noop', options: { queue: 'reports' } })),
          ...Array.from({ length: i % 3 === 1 ? 2 : 1 }, () => ({ name: 'Throw', args: [`card declined (order ${1000 + i})`], options: { queue: 'critical' } })),
        ];
        let enqueued = 0;
        const started = Date.now();
        for (let i = 0; ; i++) {
          const jobs = batch(i);
          await s.queue.enqueueMany(jobs);
          enqueued += jobs.length;
          await until(async () => (await s.backendStats()).processed === enqueued, 90_000, () => `${enqueued} jobs done`);
          if (Date.now() - started >= minutes * 60_000) break;
          await until(() => Date.now() - started >= (i + 1) * 20_000, 30_000, () => 'the next batch');
        }
        // Left for the picture: pending jobs in queues no worker takes now, delayed ones, and one running.
        await s.queue.enqueueMany([
          ...Array.from({ length: 12 }, () => ({ name: 'Noop', options: { queue: 'bulk' } })),
          ...Array.from({ length: 3 }, () => ({ name: 'Noop', options: { queue: 'reports', delay: 3_600_000 } })),
          { name: 'Sleep', args: [120_000], options: { queue: 'critical' } },
        ]);
        await until(async () => (await s.backendStats()).running === 1, 30_000, () => 'the Sleep job running');
        const { page } = await s.newPage({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
        await page.goto(`${s.base}/`, { waitUntil: 'load' });
        const cli = await cliStats(s.url);
        await waitForStat(page, 'running', 1);
        const shown = await shownCounts(page);
        assert.equal(shown.stats.processed[0], cli.processed);
        assert.equal(shown.stats.failed[0], cli.failed);
        assert.ok(Object.keys(cli.queues).length >= 4, `several queues: ${JSON.stringify(cli.queues)}`);
        assert.ok(cli.failed > 0 && cli.processed > cli.failed);
        const file = forReadme ? join(root, 'docs', 'images', 'dashboard.png') : join(s.dir, 'dashboard.png');
        mkdirSync(join(file, '..'), { recursive: true });
        await page.screenshot({ path: file, fullPage: true });
        const png = statSync(file);
        assert.ok(png.size > 10_000, `a real picture (${png.size} bytes)`);
      } finally {
        await s.done();
      }
    });
  });
}

describe('SQLite', { concurrency: 1 }, () => {
  const tmp = scratch();
  after(() => tmp.cleanup());
  let n = 0;
  browserSuite('sqlite', async () => `sqlite:${join(tmp.dir, `jobs-${n++}.db`)}`, () => []);
});

describe('Redis', { concurrency: 1 }, () => {
  const redis = redisPerFile();
  browserSuite('redis', redis.freshUrl, redis.pids);
});
