// The dashboard (jobs/dashboard.ts) over HTTP, no browser: its figures against the store's,
// escaping, pagination, read-only mode, CSRF, the actions, auth, basePath, the event stream
// and `unixproc jobs web`. A backend's test file runs it with dashboardSuite(name, open, cleanup, url).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { afterEach, describe, test } from 'node:test';
import type { Backend, EnqueueSpec, Stats } from '../jobs/backend.js';
import { dashboard, PAGE_SIZE, type DashboardListener, type DashboardOptions } from '../jobs/dashboard.js';
import { assertNoChildren, sleep } from './helpers.js';
import { cliPath, until } from './jobs-harness.js';

const T = { timeout: 60_000 };
const host = hostname();
const HOSTILE = '<img src=x onerror=alert(1)>';

export function spec(o: Partial<EnqueueSpec> = {}): EnqueueSpec {
  return { name: 'Echo', args: [], queue: 'default', runAt: Date.now(), attempts: 1, backoff: 0, timeout: null, unique: null, ...o };
}

interface Served {
  /** http://127.0.0.1:PORT (no base path). */
  origin: string;
  listener: DashboardListener;
  close(): Promise<void>;
}

async function serve(opts: DashboardOptions): Promise<Served> {
  const listener = dashboard(opts);
  const server: Server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    listener,
    async close() {
      await listener.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { headers, redirect: 'manual' });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

async function post(url: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    body: new URLSearchParams(form).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    redirect: 'manual',
  });
  return { status: res.status, text: await res.text(), location: res.headers.get('location') };
}

/** Every `data-stat="NAME">N<` on a page, by name. */
function shownStats(page: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const m of page.matchAll(/data-stat="(\w+)">(\d+)</g)) (out[m[1]] ??= []).push(Number(m[2]));
  return out;
}

function shownQueues(page: string): Record<string, number> {
  return Object.fromEntries([...page.matchAll(/data-queue="([^"]*)">(\d+)</g)].map((m) => [m[1], Number(m[2])]));
}

const failureIds = (page: string): string[] => [...page.matchAll(/<tr data-failure-id="([^"]*)"/g)].map((m) => m[1]);
const csrfOf = (page: string): string => {
  const m = /name="csrf" value="([^"]+)"/.exec(page);
  assert.ok(m, 'the page carries a CSRF token in its forms');
  return m[1];
};

/** Worker ids as Resque writes them (host:pid:queues). */
async function register(b: Backend, pid: number, queues = ['default']): Promise<string> {
  const id = `${host}:${pid}:${queues.join(',')}`;
  await b.registerWorker({ id, host, pid, queues });
  return id;
}

/** Enqueues and fails one job per name, in order (the last one is the newest failure). */
async function makeFailures(b: Backend, items: Array<{ name?: string; args?: unknown[]; error?: string; queue?: string }>): Promise<void> {
  const queues = [...new Set(items.map((i) => i.queue ?? 'default'))];
  const w = await register(b, 7001, queues);
  for (const item of items) {
    await b.enqueue([spec({ name: item.name ?? 'Broken', args: item.args ?? [], queue: item.queue ?? 'default' })]);
    const job = await b.claim(w, queues);
    assert.ok(job, 'the job just enqueued is claimed');
    await b.fail(w, job, { error: item.error ?? 'it broke', exception: 'Error', backtrace: ['at perform (jobs.ts:1:1)', 'at run (worker.ts:2:2)'], worker: w }, null);
  }
  await b.unregisterWorker(w);
}

/** Reads server-sent events from a fetch body. */
class EventReader {
  private buf = '';
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private pending: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
  readonly comments: string[] = [];
  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }
  /** The next event (comments are kept aside), or fails after ms. */
  async next(ms = 10_000): Promise<{ event: string; data: string }> {
    const deadline = Date.now() + ms;
    for (;;) {
      const end = this.buf.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buf.slice(0, end);
        this.buf = this.buf.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) this.comments.push(line);
          else if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length) return { event, data: data.join('\n') };
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${ms} ms (have ${JSON.stringify(this.buf)})`);
      let timer: NodeJS.Timeout | undefined;
      // A read that outlives a timeout is kept for the next call: its chunk must not be lost.
      if (!this.pending) {
        this.pending = this.reader.read();
        this.pending.catch(() => {}); // an abort at the end of a test is no failure
      }
      const chunk = await Promise.race([
        this.pending,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), left))),
      ]).finally(() => clearTimeout(timer));
      this.pending = null;
      if (chunk.done) throw new Error('the event stream ended');
      this.buf += this.decoder.decode(chunk.value, { stream: true });
    }
  }
}

/**
 * Defines the dashboard's HTTP tests on one store. `open` gives a new Backend on it; after
 * each test every backend given is closed, then `cleanup` empties the store. `url` is the
 * store's URL, for the CLI.
 */
export function dashboardSuite(name: string, open: () => Promise<Backend>, cleanup: () => Promise<void>, url: () => string): void {
  describe(`dashboard over HTTP: ${name}`, () => {
    const opened: Backend[] = [];
    const servers: Served[] = [];

    const backend = async (): Promise<Backend> => {
      const b = await open();
      opened.push(b);
      return b;
    };
    const start = async (opts: DashboardOptions): Promise<Served> => {
      const s = await serve(opts);
      servers.push(s);
      return s;
    };

    afterEach(async () => {
      for (const s of servers.splice(0)) await s.close();
      for (const b of opened.splice(0)) await b.close();
      await cleanup();
      await assertNoChildren();
    });

    test('the overview and /api/stats show what the store holds, as `unixproc jobs stats --json` does', T, async () => {
      const b = await backend();
      await b.enqueue([spec(), spec(), spec({ queue: 'critical' })]);
      await b.enqueue([spec({ runAt: Date.now() + 3_600_000 })]);
      await makeFailures(b, [{ queue: 'mail' }, { queue: 'mail' }]);
      const w = await register(b, 7002, ['critical']);
      await b.enqueue([spec({ queue: 'critical', name: 'Long' })]);
      const running = await b.claim(w, ['critical']);
      assert.ok(running);
      const s = await start({ backend: b });

      const api = await get(`${s.origin}/api/stats`);
      assert.equal(api.status, 200);
      assert.match(api.headers.get('content-type') ?? '', /^application\/json/);
      const stats = (await b.stats()) as Stats;
      assert.deepEqual(JSON.parse(api.text), stats);
      const cli = spawnSync(process.execPath, [cliPath, 'jobs', 'stats', '--json', '-b', url()], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(cli.status, 0, cli.stderr);
      assert.equal(api.text, cli.stdout, '/api/stats is byte for byte the CLI output');
      assert.deepEqual(
        { pending: stats.pending, delayed: stats.delayed, running: stats.running, failedKept: stats.failedKept, workers: stats.workers },
        { pending: 3, delayed: 1, running: 1, failedKept: 2, workers: 1 },
      );

      const overview = await get(`${s.origin}/`);
      assert.equal(overview.status, 200);
      const shown = shownStats(overview.text);
      for (const key of ['processed', 'failed', 'pending', 'delayed', 'running', 'failedKept', 'workers'] as const) {
        assert.ok(shown[key]?.length, `the overview shows ${key}`);
        for (const n of shown[key]) assert.equal(n, stats[key], `[data-stat=${key}]`);
      }
      assert.deepEqual(shownQueues(overview.text), stats.queues);
      // The chart: inline SVG whose per-minute titles add up to the store's counts.
      assert.match(overview.text, /<svg [^>]*role="img"/);
      const minutes = await b.minutes!(Date.now() - 3 * 3_600_000 + 60_000);
      const titles = [...overview.text.matchAll(/<title>\d\d:\d\d: (\d+) done, (\d+) failed<\/title>/g)];
      assert.equal(titles.reduce((a, m) => a + Number(m[2]), 0), minutes.reduce((a, m) => a + m.failed, 0));
      assert.equal(titles.reduce((a, m) => a + Number(m[2]), 0), 2, 'the two failures are in the chart');
    });

    test('every string from the store is escaped: a hostile name, argument, error, queue and worker show as text', T, async () => {
      const b = await backend();
      await makeFailures(b, [{ name: `<script>alert("name")</script>`, args: [HOSTILE, { k: `"'><b>` }], error: `"><svg onload=alert(2)>`, queue: '<i>q</i>' }]);
      await b.enqueue([spec({ name: HOSTILE, args: [HOSTILE], runAt: Date.now() + 3_600_000 })]);
      const w = await register(b, 7003, ['<u>run</u>']);
      await b.enqueue([spec({ name: HOSTILE, args: [HOSTILE], queue: '<u>run</u>' })]);
      const job = await b.claim(w, ['<u>run</u>']);
      assert.ok(job);
      const s = await start({ backend: b, actions: true });
      const [failure] = await b.failed(0, 1);
      for (const path of ['/', '/failed', '/delayed', '/running', '/workers', `/jobs/${job.id}`, `/jobs/${failure.job.id}`]) {
        const page = await get(s.origin + path);
        assert.equal(page.status, 200, path);
        assert.ok(!page.text.includes('<img'), `${path} has no <img> tag`);
        assert.ok(!page.text.includes('<script>'), `${path} has no inline <script>`);
        assert.ok(!/<svg onload|<i>q|<u>run|<b>/.test(page.text), `${path} has no markup from the store`);
      }
      const failed = (await get(`${s.origin}/failed`)).text;
      assert.ok(failed.includes('&lt;img src=x onerror=alert(1)&gt;'), 'the argument is shown as text');
      assert.ok(failed.includes('&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;'), 'the name is shown as text');
      assert.ok(failed.includes('&quot;&gt;&lt;svg onload=alert(2)&gt;'), 'the error is shown as text');
      assert.ok(failed.includes('&lt;i&gt;q&lt;/i&gt;'), 'the queue is shown as text');
      const overview = (await get(`${s.origin}/`)).text;
      assert.ok(overview.includes('data-queue="&lt;u&gt;run&lt;/u&gt;"'), 'a queue name in an attribute is escaped');
    });

    test(`/failed shows ${PAGE_SIZE} failures a page, newest first, with links between pages`, T, async () => {
      const b = await backend();
      const total = 2 * PAGE_SIZE + 10;
      await makeFailures(b, Array.from({ length: total }, (_, i) => ({ name: `Fail${i}` })));
      const s = await start({ backend: b });
      const names = (page: string) => [...page.matchAll(/<tr data-failure-id="[^"]*">\s*<td><a [^>]*>(Fail\d+)</g)].map((m) => m[1]);
      const page1 = await get(`${s.origin}/failed`);
      assert.equal(page1.status, 200);
      assert.deepEqual(names(page1.text), Array.from({ length: PAGE_SIZE }, (_, i) => `Fail${total - 1 - i}`));
      assert.match(page1.text, /page 1 of 3/);
      assert.match(page1.text, /href="\/failed\?page=2" rel="next"/);
      const page3 = await get(`${s.origin}/failed?page=3`);
      assert.deepEqual(names(page3.text), Array.from({ length: 10 }, (_, i) => `Fail${9 - i}`));
      assert.match(page3.text, /href="\/failed\?page=2" rel="prev"/);
      assert.doesNotMatch(page3.text, /rel="next"/);
      const page2 = await get(`${s.origin}/failed?page=2`);
      assert.equal(names(page2.text)[0], `Fail${total - 1 - PAGE_SIZE}`);
      const ids = new Set([page1, page2, page3].flatMap((p) => failureIds(p.text)));
      assert.equal(ids.size, total, 'every failure on exactly one page');
      assert.deepEqual(names((await get(`${s.origin}/failed?page=99`)).text), names(page3.text), 'a page past the end shows the last');
      const bad = await get(`${s.origin}/failed?page=abc`);
      assert.equal(bad.status, 400);
      assert.match(bad.text, /page must be an integer &gt;= 1, got &quot;abc&quot;/);
      // Each row: arguments, error with its stack folded, attempts, worker, time.
      assert.match(page1.text, /<details><summary>stack<\/summary><pre>at perform \(jobs.ts:1:1\)\nat run \(worker.ts:2:2\)<\/pre><\/details>/);
      assert.match(page1.text, /1 of 1/);
      assert.match(page1.text, /<time datetime="\d{4}-/);
    });

    test('read-only (the default) renders no buttons and refuses every POST with 403', T, async () => {
      const b = await backend();
      await makeFailures(b, [{}]);
      const [f] = await b.failed(0, 1);
      const s = await start({ backend: b });
      const page = await get(`${s.origin}/failed`);
      assert.deepEqual(failureIds(page.text), [f.id]);
      assert.ok(!page.text.includes('data-action'), 'no action buttons');
      assert.ok(!page.text.includes('<form'), 'no forms');
      for (const path of [`/failed/${encodeURIComponent(f.id)}/retry`, `/failed/${encodeURIComponent(f.id)}/remove`, '/failed/retry-all']) {
        const r = await post(s.origin + path, { csrf: 'anything' });
        assert.equal(r.status, 403, path);
        assert.match(r.text, /read-only/);
      }
      assert.equal((await b.stats()).failedKept, 1, 'nothing was retried or removed');
    });

    test('an action without the CSRF token, or with a wrong one, is refused with 403', T, async () => {
      const b = await backend();
      await makeFailures(b, [{}]);
      const [f] = await b.failed(0, 1);
      const s = await start({ backend: b, actions: true });
      const page = (await get(`${s.origin}/failed`)).text;
      const token = csrfOf(page);
      const action = `${s.origin}/failed/${encodeURIComponent(f.id)}/retry`;
      const missing = await post(action, {});
      assert.equal(missing.status, 403);
      assert.match(missing.text, /no CSRF token/);
      const wrong = await post(action, { csrf: `${token}x` });
      assert.equal(wrong.status, 403);
      assert.match(wrong.text, /CSRF token does not match/);
      const other = await start({ backend: b, actions: true });
      const foreign = await post(`${other.origin}/failed/${encodeURIComponent(f.id)}/retry`, { csrf: token });
      assert.equal(foreign.status, 403, "one dashboard's token is not another's");
      assert.equal((await b.stats()).failedKept, 1);
    });

    test('retry (a form POST) answers 303 to the page it came from and puts the job back as pending', T, async () => {
      const b = await backend();
      await makeFailures(b, [{ name: 'First' }, { name: 'Second' }]);
      const s = await start({ backend: b, actions: true });
      const page = (await get(`${s.origin}/failed?page=1`)).text;
      assert.match(page, /<button type="submit" data-action="retry">/);
      assert.match(page, /<button type="submit" data-action="remove"/);
      assert.match(page, /<button type="submit" data-action="retry-all">/);
      const [newest, oldest] = failureIds(page);
      const jobId = (await b.failed(0, 10)).find((f) => f.id === newest)!.job.id;
      const r = await post(`${s.origin}/failed/${encodeURIComponent(newest)}/retry`, { csrf: csrfOf(page), return: '/failed?page=1' });
      assert.equal(r.status, 303);
      assert.equal(r.location, '/failed?page=1');
      assert.equal((await b.job(jobId))?.state, 'pending');
      assert.deepEqual((await b.failed(0, 10)).map((f) => f.id), [oldest]);
      const stats = await b.stats();
      assert.equal(stats.pending, 1);
      assert.equal(stats.failedKept, 1);
      // The client script's way: JSON back instead of a redirect.
      const js = await post(`${s.origin}/failed/${encodeURIComponent(oldest)}/retry`, { csrf: csrfOf(page) }, { Accept: 'application/json' });
      assert.equal(js.status, 200);
      assert.deepEqual(JSON.parse(js.text), { ok: true, retried: 1 });
      assert.equal((await b.stats()).pending, 2);
      // Gone now: 404; a return address off the dashboard is not followed.
      const again = await post(`${s.origin}/failed/${encodeURIComponent(oldest)}/retry`, { csrf: csrfOf(page) });
      assert.equal(again.status, 404);
      assert.match(again.text, /no failed job/);
    });

    test('remove deletes one failure; retry-all retries every one; an unknown id is 404', T, async () => {
      const b = await backend();
      await makeFailures(b, [{}, {}, {}, {}]);
      const s = await start({ backend: b, actions: true });
      const page = (await get(`${s.origin}/failed`)).text;
      const token = csrfOf(page);
      const [first] = failureIds(page);
      const removed = await post(`${s.origin}/failed/${encodeURIComponent(first)}/remove`, { csrf: token, return: 'https://evil.example/' });
      assert.equal(removed.status, 303);
      assert.equal(removed.location, '/failed', 'a return address outside the dashboard falls back to /failed');
      assert.equal((await b.stats()).failedKept, 3);
      assert.ok(!(await b.failed(0, 10)).some((f) => f.id === first));
      assert.equal((await b.stats()).pending, 0, 'a removed failure is not run');
      const unknown = await post(`${s.origin}/failed/999999999/remove`, { csrf: token });
      assert.equal(unknown.status, 404);
      const all = await post(`${s.origin}/failed/retry-all`, { csrf: token, return: '/failed' });
      assert.equal(all.status, 303);
      const stats = await b.stats();
      assert.equal(stats.failedKept, 0);
      assert.equal(stats.pending, 3);
      assert.match((await get(`${s.origin}/failed`)).text, /No failed job is kept/);
    });

    test('basic auth and bearer token: 401 without them (with WWW-Authenticate), 200 with them', T, async () => {
      const b = await backend();
      const basic = await start({ backend: b, auth: { user: 'ann', password: 's3cret:x' } });
      const none = await get(`${basic.origin}/`);
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm="unixproc jobs"/);
      const as = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
      assert.equal((await get(`${basic.origin}/`, as('ann', 'wrong'))).status, 401);
      assert.equal((await get(`${basic.origin}/`, as('bob', 's3cret:x'))).status, 401);
      assert.equal((await get(`${basic.origin}/api/stats`)).status, 401, 'the API too');
      assert.equal((await get(`${basic.origin}/events`)).status, 401, 'the event stream too');
      assert.equal((await get(`${basic.origin}/`, as('ann', 's3cret:x'))).status, 200);
      assert.equal((await get(`${basic.origin}/api/stats`, as('ann', 's3cret:x'))).status, 200);

      const token = await start({ backend: b, auth: { token: 'tok-123' } });
      const missing = await get(`${token.origin}/api/stats`);
      assert.equal(missing.status, 401);
      assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((await get(`${token.origin}/api/stats`, { Authorization: 'Bearer tok-124' })).status, 401);
      assert.equal((await get(`${token.origin}/api/stats`, { Authorization: 'Basic dG9rLTEyMw==' })).status, 401);
      assert.equal((await get(`${token.origin}/api/stats`, { Authorization: 'Bearer tok-123' })).status, 200);
      assert.throws(() => dashboard({ backend: b, auth: { user: 'a:b', password: 'x' } }), /auth.user must be a non-empty string without ':'/);
      assert.throws(() => dashboard({ backend: b, auth: { token: '' } }), /auth.token must be a non-empty string/);
    });

    test('under basePath every link, form and asset URL starts with it, and other paths are 404', T, async () => {
      const b = await backend();
      await makeFailures(b, [{}]);
      const s = await start({ backend: b, basePath: '/jobs/', actions: true });
      assert.equal(s.listener.basePath, '/jobs');
      for (const path of ['/jobs', '/jobs/', '/jobs/failed', '/jobs/workers', '/jobs/schedules', '/jobs/delayed', '/jobs/running']) {
        const page = await get(s.origin + path);
        assert.equal(page.status, 200, path);
        const urls = [...page.text.matchAll(/\s(?:href|src|action)="([^"]*)"/g)].map((m) => m[1]);
        assert.ok(urls.length > 5, `${path} has links`);
        for (const u of urls) assert.ok(u.startsWith('/jobs/'), `${path}: ${u} starts with /jobs/`);
        assert.match(page.text, /<body data-base="\/jobs">/);
      }
      const failed = (await get(`${s.origin}/jobs/failed`)).text;
      assert.match(failed, /name="return" value="\/jobs\/failed"/);
      const [id] = failureIds(failed);
      const r = await post(`${s.origin}/jobs/failed/${encodeURIComponent(id)}/remove`, { csrf: csrfOf(failed), return: '/jobs/failed' });
      assert.equal(r.status, 303);
      assert.equal(r.location, '/jobs/failed');
      assert.equal((await get(`${s.origin}/jobs/api/stats`)).status, 200);
      assert.equal((await get(`${s.origin}/jobs/assets/dashboard.css`)).status, 200);
      for (const outside of ['/', '/api/stats', '/failed', '/jobsx', '/job']) assert.equal((await get(s.origin + outside)).status, 404, outside);
      assert.throws(() => dashboard({ backend: b, basePath: 'jobs' }), /basePath must be a path such as '\/jobs'/);
      assert.throws(() => dashboard({ backend: b, basePath: '/a b' }), /basePath must be a path/);
    });

    test("/jobs/:id shows one job with its state; an unknown id is a 404 page", T, async () => {
      const b = await backend();
      const [pending] = await b.enqueue([spec({ name: 'Report', args: [1, 'two'], queue: 'reports', attempts: 3 })]);
      const [later] = await b.enqueue([spec({ name: 'Later', runAt: Date.now() + 3_600_000 })]);
      const s = await start({ backend: b });
      const page = await get(`${s.origin}/jobs/${pending}`);
      assert.equal(page.status, 200);
      assert.match(page.text, /data-job-state>pending</);
      assert.match(page.text, /<dd>Report<\/dd>/);
      assert.match(page.text, /<dd>reports<\/dd>/);
      assert.match(page.text, /<dd>0 of 3<\/dd>/);
      assert.match(page.text, /\[\n {2}1,\n {2}&quot;two&quot;\n\]/);
      assert.match((await get(`${s.origin}/jobs/${later}`)).text, /data-job-state>delayed</);
      for (const id of ['987654321', 'no-such-job', '%3Cb%3E']) {
        const missing = await get(`${s.origin}/jobs/${id}`);
        assert.equal(missing.status, 404, id);
        assert.match(missing.text, /No such job/);
        assert.ok(!missing.text.includes('<b>'), 'the id is escaped on the 404 page');
      }
      assert.equal((await get(`${s.origin}/jobs/%E0%A4%A`)).status, 400, 'bad percent-encoding');
      assert.equal((await get(`${s.origin}/nothing-here`)).status, 404);
    });

    test('the workers, running, delayed and schedules pages show what the store holds', T, async () => {
      const b = await backend();
      const w = await register(b, 7004, ['default', 'mail']);
      await register(b, 7005, ['*']);
      await b.enqueue([spec({ name: 'Resize', args: [42] })]);
      const job = await b.claim(w, ['default', 'mail']);
      assert.ok(job);
      const since = Date.now() - 5000;
      await b.heartbeat(w, [{ job, since, childPid: 31337, rss: 50 * 1024 * 1024 }], 120 * 1024 * 1024);
      await b.enqueue([spec({ name: 'Later', runAt: Date.now() + 3_600_000 }), spec({ name: 'Sooner', runAt: Date.now() + 60_000 })]);
      await b.publishSchedules([{ name: 'nightly', cron: '0 3 * * *', job: 'Report', args: [], queue: 'reports', timezone: 'Europe/Berlin' }]);
      const s = await start({ backend: b });

      const workers = (await get(`${s.origin}/workers`)).text;
      assert.match(workers, new RegExp(`<tr data-worker-id="${host}:7004:default,mail">`));
      assert.match(workers, /<td class="num">7004<\/td><td>default, mail<\/td>/);
      assert.match(workers, /busy 1/);
      assert.match(workers, /idle/);
      assert.match(workers, /120\.0 MiB/, "the master's memory");
      assert.match(workers, /child 31337/);
      assert.match(workers, /50\.0 MiB/, "the child's memory");
      assert.match(workers, /heartbeat <time/);

      const running = (await get(`${s.origin}/running`)).text;
      assert.match(running, new RegExp(`<tr data-job-id="${job.id}"><td><a href="/jobs/${job.id}">Resize</a>`));
      assert.match(running, /<td class="num">31337<\/td>/);
      assert.match(running, /<code class="args">\[42\]<\/code>/);
      assert.match(running, /\d+ s ago/);
      assert.match((await get(`${s.origin}/jobs/${job.id}`)).text, /running on <\/dt><dd>|running on<\/dt><dd><code>/);

      const delayed = (await get(`${s.origin}/delayed`)).text;
      const order = [...delayed.matchAll(/>(Sooner|Later)<\/a>/g)].map((m) => m[1]);
      assert.deepEqual(order, ['Sooner', 'Later'], 'soonest first');
      assert.match(delayed, /2 delayed/);

      const schedules = (await get(`${s.origin}/schedules`)).text;
      assert.match(schedules, /<tr data-schedule="nightly"><td>nightly<\/td><td><code>0 3 \* \* \*<\/code><\/td><td>Europe\/Berlin<\/td><td>Report<\/td>/);
      assert.match(schedules, /never/, 'no tick yet');
      const next = /<td><time datetime="([^"]+)" title="[^"]+">in [^<]+<\/time><\/td>/.exec(schedules);
      assert.ok(next, 'a next run in the future');
      const at = new Date(next[1]);
      // 03:00 in Berlin is 01:00 or 02:00 UTC, within the next day.
      assert.ok([1, 2].includes(at.getUTCHours()) && at.getUTCMinutes() === 0, next[1]);
      assert.ok(at.getTime() > Date.now() && at.getTime() <= Date.now() + 86_400_000, next[1]);
    });

    test('security headers on every answer; assets with their type, a content hash, ETag and 304', T, async () => {
      const b = await backend();
      const s = await start({ backend: b });
      const page = await get(`${s.origin}/`);
      for (const r of [page, await get(`${s.origin}/api/stats`), await get(`${s.origin}/nope`)]) {
        assert.match(r.headers.get('content-security-policy') ?? '', /^default-src 'self'/);
        assert.doesNotMatch(r.headers.get('content-security-policy') ?? '', /unsafe-inline/);
        assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
        assert.equal(r.headers.get('referrer-policy'), 'same-origin');
        assert.equal(r.headers.get('x-frame-options'), 'DENY');
      }
      assert.ok(!/<script>|<script [^>]*>[^<]|\sstyle="|\son\w+="/.test(page.text), 'no inline script, style or handler');
      for (const [name, type] of [['dashboard.js', /^text\/javascript/], ['dashboard.css', /^text\/css/], ['favicon.svg', /^image\/svg\+xml/]] as const) {
        const ref = new RegExp(`"(/assets/${name.replace('.', '\\.')}\\?v=([\\w-]+))"`).exec(page.text);
        assert.ok(ref, `the page links ${name} with a content hash`);
        const asset = await get(s.origin + ref[1]);
        assert.equal(asset.status, 200);
        assert.match(asset.headers.get('content-type') ?? '', type);
        assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
        const etag = asset.headers.get('etag');
        assert.equal(etag, `"${ref[2]}"`);
        assert.ok(asset.text.length > 100, `${name} has content`);
        const again = await fetch(`${s.origin}/assets/${name}`, { headers: { 'If-None-Match': etag! } });
        assert.equal(again.status, 304);
        await again.arrayBuffer();
      }
      assert.equal((await get(`${s.origin}/assets/other.js`)).status, 404);
      const del = await fetch(`${s.origin}/`, { method: 'DELETE' });
      assert.equal(del.status, 405);
      await del.arrayBuffer();
    });

    test('/events sends the stats at once, again when the store changes, keep-alives meanwhile, and stops polling with no client', T, async () => {
      const b = await backend();
      let statsCalls = 0;
      // The same store, counting how often the dashboard reads its stats.
      const counting = new Proxy(b, {
        get(target, prop, receiver) {
          if (prop === 'stats') return () => (statsCalls++, target.stats());
          const v = Reflect.get(target, prop, receiver);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const s = await start({ backend: counting, refreshMs: 100, keepAliveMs: 300 });
      const abort = new AbortController();
      const res = await fetch(`${s.origin}/events`, { signal: abort.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      const events = new EventReader(res.body!);
      const first = await events.next();
      assert.equal(first.event, 'stats');
      assert.deepEqual(JSON.parse(first.data), await b.stats());
      // Nothing changes: no event, but keep-alive comments.
      const quiet = events.next(900).then(
        (e) => e,
        () => null,
      );
      assert.equal(await quiet, null, 'no stats event while nothing changes');
      assert.ok(events.comments.some((c) => c.startsWith(': keep-alive')), `a keep-alive comment (${JSON.stringify(events.comments)})`);
      await b.enqueue([spec({ queue: 'live' })]);
      const second = await events.next();
      assert.equal(second.event, 'stats');
      const data = JSON.parse(second.data) as Stats;
      assert.equal(data.pending, 1);
      assert.equal(data.queues.live, 1);
      abort.abort();
      // Past a poll that may have been under way at the disconnect.
      await sleep(400);
      const after = statsCalls;
      await sleep(1000);
      assert.equal(statsCalls, after, 'no stats read with no client connected');
      // A client still connected at close() sees its stream end.
      const res2 = await fetch(`${s.origin}/events`);
      const reader = new EventReader(res2.body!);
      await reader.next();
      await s.listener.close();
      await assert.rejects(reader.next(5000), /the event stream ended/);
      assert.equal((await get(`${s.origin}/`)).status, 503, 'a closed dashboard answers 503');
    });

    test('a dashboard given a URL opens the store itself and closes it in close()', T, async () => {
      const b = await backend();
      await b.enqueue([spec({ queue: 'own' })]);
      const s = await start({ backend: url() });
      assert.equal(JSON.parse((await get(`${s.origin}/api/stats`)).text).queues.own, 1);
      await s.listener.close();
      assert.throws(() => dashboard({ backend: '' }), /backend must be a Backend or a non-empty URL/);
      assert.throws(() => dashboard({ backend: {} as Backend }), /backend must be a Backend/);
      assert.throws(() => dashboard({ backend: b, refreshMs: 0 }), /refreshMs must be a number of ms >= 50/);
      assert.throws(() => dashboard({ backend: b, actions: 'yes' as unknown as boolean }), /actions must be a boolean/);
    });

    test('`unixproc jobs web` serves the dashboard, prints its URL, and exits 0 on TERM; bad flags exit 2 naming the flag', T, async () => {
      const b = await backend();
      await b.enqueue([spec({ queue: 'cli' })]);
      const child = spawn(process.execPath, [cliPath, 'jobs', 'web', '-b', url(), '-l', '127.0.0.1:0', '--actions', '--base-path', '/q'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      try {
        await until(() => out.includes('\n') || child.exitCode !== null, 30_000, () => `the URL line (stdout ${out}, stderr ${err})`);
        const m = /^unixproc jobs web: (http:\/\/127\.0\.0\.1:\d+\/q\/) \(.*actions enabled\)\n$/.exec(out);
        assert.ok(m, `one line with the URL: ${JSON.stringify(out)} ${err}`);
        const stats = await get(`${m[1]}api/stats`);
        assert.equal(stats.status, 200);
        assert.equal(JSON.parse(stats.text).queues.cli, 1);
        const page = await get(`${m[1]}failed`);
        assert.match(page.text, /actions enabled/);
        // An open event stream must not hold the exit up.
        const abort = new AbortController();
        const ev = await fetch(`${m[1]}events`, { signal: abort.signal });
        await new EventReader(ev.body!).next();
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const end = await Promise.race([exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 15_000)))]).finally(() => clearTimeout(timer));
        abort.abort();
        assert.deepEqual(end, { code: 0, signal: null }, `exit on TERM (stderr ${err})`);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      }
      const bad = (args: string[]) => spawnSync(process.execPath, [cliPath, 'jobs', 'web', '-b', url(), ...args], { encoding: 'utf8', timeout: 30_000 });
      for (const [args, flag] of [
        [['-l', 'nope'], /--listen must be host:port/],
        [['-l', '127.0.0.1:70000'], /--listen has a bad port/],
        [['--auth', 'nopassword'], /--auth must be user:password/],
        [['--auth', 'a:b', '--token', 't'], /--auth and --token exclude each other/],
        [['--base-path', 'jobs'], /--base-path must start with \//],
        [['--refresh', 'soon'], /--refresh must be a number/],
        [['--no-such-flag'], /unknown option '--no-such-flag'/],
      ] as const) {
        const r = bad([...args]);
        assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, flag);
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      }
    });

    test('`unixproc jobs web` takes its credentials from UNIXPROC_WEB_AUTH or UNIXPROC_WEB_TOKEN, out of ps', T, async () => {
      for (const [env, good] of [
        [{ UNIXPROC_WEB_TOKEN: 'tok-env' }, { Authorization: 'Bearer tok-env' }],
        [{ UNIXPROC_WEB_AUTH: 'ann:pw-env' }, { Authorization: `Basic ${Buffer.from('ann:pw-env').toString('base64')}` }],
      ] as const) {
        const child = spawn(process.execPath, [cliPath, 'jobs', 'web', '-b', url(), '-l', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
        try {
          await until(() => out.includes('\n') || child.exitCode !== null, 30_000, () => `the URL line (stdout ${out})`);
          const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          assert.ok(m, out);
          assert.equal((await get(`${m[1]}api/stats`)).status, 401, `${Object.keys(env)[0]}: refused without`);
          assert.equal((await get(`${m[1]}api/stats`, good)).status, 200, `${Object.keys(env)[0]}: let in with`);
          const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
          assert.ok(!cmdline.includes('-env'), 'the secret is not in the command line');
        } finally {
          child.kill('SIGTERM');
          await exited;
        }
      }
    });
  });
}
