// The contract every job store (jobs/backend.ts) must keep, as node:test blocks that a
// backend's own test file runs with backendContract(name, open, cleanup): the order of
// claims, delays, atomic claims raced by forked processes, retries, unique keys, the
// recovery of lapsed workers by two masters at once, the listings, wake-ups from another
// process and fork safety. Backend-neutral: nothing here knows how a store keeps its data.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Backend, EnqueueSpec, JobRecord } from '../jobs/backend.js';
import { fork, onForkChild, waitpid2 } from '../src/index.js';
import { assertNoChildren, quietStdout, sleep } from './helpers.js';

// node:test's queued reports would be flushed by every child's loop as extra passes.
onForkChild(quietStdout);

const T = { timeout: 60_000 };
const host = hostname();

export function spec(o: Partial<EnqueueSpec> = {}): EnqueueSpec {
  return { name: 'Echo', args: [], queue: 'default', runAt: Date.now(), attempts: 1, backoff: 0, timeout: null, unique: null, ...o };
}

/** Worker ids as Resque writes them (host:pid:queues), which every store accepts. */
export const workerId = (pid: number, queues: string[] = ['default']): string => `${host}:${pid}:${queues.join(',')}`;

async function register(b: Backend, pid: number, queues: string[] = ['default']): Promise<string> {
  const id = workerId(pid, queues);
  await b.registerWorker({ id, host, pid, queues });
  return id;
}

const failure = (worker: string, error = 'boom') => ({ error, exception: 'Error', backtrace: ['at test (suite.ts:1:1)'], worker });

/**
 * Defines the contract's tests. `open` gives a new Backend (a new connection) on the store
 * under test, and may be called several times in one test for several clients of the same
 * store; after each test every backend it gave is closed, then `cleanup` must leave the
 * store empty for the next test.
 */
export function backendContract(name: string, open: () => Promise<Backend>, cleanup: () => Promise<void>): void {
  describe(`backend contract: ${name}`, () => {
    const opened: Backend[] = [];
    let dir = '';
    let seq = 0;

    const backend = async (): Promise<Backend> => {
      const b = await open();
      opened.push(b);
      return b;
    };

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'unixproc-backend-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    afterEach(async () => {
      for (const b of opened.splice(0)) await b.close();
      await cleanup();
      await assertNoChildren();
    });

    /**
     * Forks n children that each run fn(i) and write its result; reaps them all and fails
     * with the child's status when one did not exit 0 (its error is on stderr).
     */
    async function inChildren<R>(n: number, fn: (i: number) => Promise<R>): Promise<R[]> {
      const files = Array.from({ length: n }, () => join(dir, `child-${seq++}.json`));
      const pids = files.map((file, i) =>
        fork(async () => {
          writeFileSync(file, JSON.stringify((await fn(i)) ?? null));
        }),
      );
      const statuses = [];
      for (const pid of pids) statuses.push((await waitpid2(pid))![1]);
      statuses.forEach((s, i) => assert.equal(s.exitstatus, 0, `child ${i} (pid ${pids[i]}): exit status ${s.exitstatus}, signal ${s.termsig}`));
      return files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as R);
    }

    /** Waits until Date.now() reaches t, without yielding: children released together. */
    const spinUntil = (t: number) => {
      while (Date.now() < t);
    };

    test('enqueue returns the ids in order; job() gives the record back as stored', T, async () => {
      const b = await backend();
      const at = Date.now();
      const ids = await b.enqueue([
        spec({ name: 'A', args: [1, 'two', { three: [3] }, null], queue: 'q1', attempts: 3, backoff: 1500, timeout: 2.5 }),
        spec({ name: 'B', queue: 'q2' }),
      ]);
      assert.equal(ids.length, 2);
      assert.equal(new Set(ids).size, 2);
      for (const id of ids) assert.equal(typeof id, 'string');
      const a = await b.job(ids[0]);
      assert.ok(a);
      assert.equal(a.id, ids[0]);
      assert.equal(a.name, 'A');
      assert.deepEqual(a.args, [1, 'two', { three: [3] }, null]);
      assert.equal(a.queue, 'q1');
      assert.equal(a.attempt, 0);
      assert.equal(a.attempts, 3);
      assert.equal(a.backoff, 1500);
      assert.equal(a.timeout, 2.5);
      assert.equal(a.unique, null);
      assert.equal(a.state, 'pending');
      assert.ok(a.enqueuedAt >= at - 1000 && a.enqueuedAt <= Date.now() + 1000, `enqueuedAt ${a.enqueuedAt}`);
      assert.equal((await b.job(ids[1]))?.queue, 'q2');
      assert.deepEqual(await b.enqueue([]), []);
      assert.equal(await b.job('no-such-job'), null);
      assert.equal(await b.job('987654321'), null);
    });

    test('claim takes the first queue in the order given, FIFO within a queue; "*" is every queue by name', T, async () => {
      const b = await backend();
      const w = await register(b, 1001, ['high', 'low']);
      const [l1] = await b.enqueue([spec({ queue: 'low', args: ['l1'] })]);
      const [h1, h2] = await b.enqueue([spec({ queue: 'high', args: ['h1'] }), spec({ queue: 'high', args: ['h2'] })]);
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await b.claim(w, ['high', 'low']))?.id);
      assert.deepEqual(got, [h1, h2, l1]);
      assert.equal(await b.claim(w, ['high', 'low']), null);

      const [bJob] = await b.enqueue([spec({ queue: 'bq' })]);
      const [aJob] = await b.enqueue([spec({ queue: 'aq' })]);
      const [cJob] = await b.enqueue([spec({ queue: 'cq' })]);
      assert.equal((await b.claim(w, ['*']))?.id, aJob);
      assert.equal((await b.claim(w, ['cq', '*']))?.id, cJob, 'a queue named before "*" comes first');
      assert.equal((await b.claim(w, ['*']))?.id, bJob);
      assert.equal(await b.claim(w, ['*']), null);

      const [other] = await b.enqueue([spec({ queue: 'elsewhere' })]);
      assert.equal(await b.claim(w, ['high', 'low']), null, 'a queue not asked for is not taken from');
      const claimed = await b.claim(w, ['nothing-here', 'elsewhere']);
      assert.equal(claimed?.id, other);
      assert.equal(claimed?.attempt, 0);
      assert.equal((await b.job(other))?.state, 'running');
    });

    test('a delayed job waits for its runAt, then is claimed like any other', T, async () => {
      const b = await backend();
      const w = await register(b, 1002);
      const [later] = await b.enqueue([spec({ runAt: Date.now() + 400, args: ['later'] })]);
      const [far] = await b.enqueue([spec({ runAt: Date.now() + 3600_000, args: ['far'] })]);
      assert.equal((await b.job(later))?.state, 'delayed');
      const s = await b.stats();
      assert.equal(s.delayed, 2);
      assert.equal(s.pending, 0);
      assert.equal(await b.claim(w, ['default']), null);
      const [now] = await b.enqueue([spec({ args: ['now'] })]);
      assert.equal((await b.claim(w, ['default']))?.id, now, 'a job due now overtakes the delayed ones');
      await sleep(500);
      const got = await b.claim(w, ['default']);
      assert.equal(got?.id, later);
      assert.deepEqual(got?.args, ['later']);
      assert.equal(await b.claim(w, ['default']), null);
      assert.equal((await b.job(far))?.state, 'delayed');
    });

    test('atomic claim: two clients in this process never take the same job', T, async () => {
      const [b1, b2] = [await backend(), await backend()];
      const [w1, w2] = [await register(b1, 1003), await register(b2, 1004)];
      const ids = await b1.enqueue(Array.from({ length: 60 }, (_, i) => spec({ args: [i] })));
      const taken: string[] = [];
      const drain = async (b: Backend, w: string) => {
        for (let j = await b.claim(w, ['default']); j; j = await b.claim(w, ['default'])) taken.push(j.id);
      };
      await Promise.all([drain(b1, w1), drain(b2, w2)]);
      assert.deepEqual([...taken].sort(), [...ids].sort());
    });

    test('atomic claim: four forked processes racing take every job exactly once', T, async () => {
      const b = await backend();
      const ids = await b.enqueue(Array.from({ length: 400 }, (_, i) => spec({ args: [i] })));
      const start = Date.now() + 300;
      const claimed = await inChildren(4, async (i) => {
        const w = await register(b, 2000 + i);
        const mine: string[] = [];
        await b.claim(w, ['nothing-here']); // connected before the start
        spinUntil(start);
        for (let j = await b.claim(w, ['default']); j; j = await b.claim(w, ['default'])) mine.push(j.id);
        await b.close();
        return mine;
      });
      const all = claimed.flat();
      assert.equal(all.length, ids.length, `claimed ${all.length} of ${ids.length} (per child: ${claimed.map((c) => c.length)})`);
      assert.deepEqual([...all].sort(), [...ids].sort());
      assert.equal((await b.stats()).running, ids.length);
    });

    test('complete: done, counted, not claimed again', T, async () => {
      const b = await backend();
      const w = await register(b, 1005);
      const [id] = await b.enqueue([spec()]);
      const job = (await b.claim(w, ['default']))!;
      assert.equal((await b.stats()).running, 1);
      await b.complete(w, job);
      assert.equal((await b.job(id))?.state, 'done');
      assert.equal(await b.claim(w, ['default']), null);
      const s = await b.stats();
      assert.equal(s.processed, 1);
      assert.equal(s.failed, 0);
      assert.equal(s.running, 0);
      assert.equal(s.pending, 0);
    });

    test('fail without retryAt keeps the failure with its fields; the job is failed', T, async () => {
      const b = await backend();
      const w = await register(b, 1006);
      const [id] = await b.enqueue([spec({ name: 'Breaks', args: ['x'] })]);
      const job = (await b.claim(w, ['default']))!;
      const before = Date.now();
      await b.fail(w, job, failure(w, 'it broke'), null);
      assert.equal((await b.job(id))?.state, 'failed');
      const list = await b.failed(0, 10);
      assert.equal(list.length, 1);
      const f = list[0];
      assert.equal((await b.job(id))?.attempt, 1);
      assert.equal(typeof f.id, 'string');
      assert.equal(f.error, 'it broke');
      assert.equal(f.exception, 'Error');
      assert.deepEqual(f.backtrace, ['at test (suite.ts:1:1)']);
      assert.equal(f.worker, w);
      assert.ok(f.failedAt >= before - 1000 && f.failedAt <= Date.now() + 1000, `failedAt ${f.failedAt}`);
      assert.equal(f.job.id, id);
      assert.equal(f.job.name, 'Breaks');
      assert.deepEqual(f.job.args, ['x']);
      assert.equal(f.job.queue, 'default');
      assert.equal(f.job.attempt, 1, 'the failed attempt is counted');
      const s = await b.stats();
      assert.equal(s.processed, 1);
      assert.equal(s.failed, 1);
      assert.equal(s.failedKept, 1);
      assert.equal(s.running, 0);
      assert.equal(await b.claim(w, ['default']), null);
    });

    test('fail with retryAt puts the job back, attempt counted, runnable at retryAt', T, async () => {
      const b = await backend();
      const w = await register(b, 1007);
      const [id] = await b.enqueue([spec({ attempts: 3, backoff: 100 })]);
      const first = (await b.claim(w, ['default']))!;
      assert.equal(first.attempt, 0);
      await b.fail(w, first, failure(w), Date.now() + 400);
      const back = await b.job(id);
      assert.equal(back?.state, 'delayed');
      assert.equal(back?.attempt, 1);
      assert.equal(await b.claim(w, ['default']), null, 'not before retryAt');
      await sleep(500);
      const second = (await b.claim(w, ['default']))!;
      assert.equal(second.id, id);
      assert.equal(second.attempt, 1);
      await b.fail(w, second, failure(w), Date.now() - 1);
      assert.equal((await b.job(id))?.state, 'pending', 'a retryAt already past is runnable at once');
      const third = (await b.claim(w, ['default']))!;
      assert.equal(third.attempt, 2);
      await b.complete(w, third);
      const s = await b.stats();
      assert.equal(s.processed, 3);
      assert.equal(s.failed, 2);
      assert.equal(s.failedKept, 0, 'retried attempts are not kept as failures');
    });

    test('release puts a claimed job back as not attempted', T, async () => {
      const b = await backend();
      const w = await register(b, 1008);
      const [id] = await b.enqueue([spec()]);
      const job = (await b.claim(w, ['default']))!;
      await b.release(w, job);
      const j = await b.job(id);
      assert.equal(j?.state, 'pending');
      assert.equal(j?.attempt, 0);
      const again = (await b.claim(w, ['default']))!;
      assert.equal(again.id, id);
      assert.equal(again.attempt, 0);
      assert.equal((await b.stats()).processed, 0);
    });

    test('retry, retryAll and removeFailure', T, async () => {
      const b = await backend();
      const w = await register(b, 1009);
      const ids = await b.enqueue([spec({ args: [0], attempts: 2 }), spec({ args: [1] }), spec({ args: [2] }), spec({ args: [3] })]);
      for (let i = 0; i < 4; i++) await b.fail(w, (await b.claim(w, ['default']))!, failure(w, `e${i}`), null);
      const list = await b.failed(0, 10);
      assert.deepEqual(
        list.map((f) => f.error),
        ['e0', 'e1', 'e2', 'e3'],
        'oldest first',
      );
      assert.deepEqual(
        (await b.failed(1, 2)).map((f) => f.error),
        ['e1', 'e2'],
      );
      assert.deepEqual(await b.failed(10, 10), []);

      assert.equal(await b.retry(list[0].id), true);
      const j = await b.job(ids[0]);
      assert.equal(j?.state, 'pending');
      assert.equal(j?.attempt, 0, 'attempts reset');
      assert.equal(j?.attempts, 2);
      assert.equal(await b.retry(list[0].id), false, 'a failure is retried once');
      assert.equal(await b.retry('no-such-failure'), false);
      const again = (await b.claim(w, ['default']))!;
      assert.equal(again.id, ids[0]);
      assert.equal(again.attempt, 0);
      await b.complete(w, again);

      assert.equal(await b.removeFailure(list[1].id), true);
      assert.equal(await b.removeFailure(list[1].id), false);
      assert.equal(await b.removeFailure('no-such-failure'), false);
      assert.deepEqual(
        (await b.failed(0, 10)).map((f) => f.error),
        ['e2', 'e3'],
      );

      assert.equal(await b.retryAll(), 2);
      assert.deepEqual(await b.failed(0, 10), []);
      assert.equal((await b.stats()).failedKept, 0);
      const back = [(await b.claim(w, ['default']))?.id, (await b.claim(w, ['default']))?.id];
      assert.deepEqual(back.sort(), [ids[2], ids[3]].sort());
      assert.equal(await b.claim(w, ['default']), null);
      assert.equal(await b.retryAll(), 0);
    });

    test('unique: one live job per key (pending, delayed or running); a new one once it is done or failed', T, async () => {
      const b = await backend();
      const w = await register(b, 1010);
      const [a] = await b.enqueue([spec({ unique: 'k' })]);
      const [a2, other] = await b.enqueue([spec({ unique: 'k' }), spec({ unique: 'other', queue: 'side' })]);
      assert.equal(a2, a, 'pending: the existing id');
      assert.notEqual(other, a);
      const [x, y] = await b.enqueue([spec({ unique: 'same-batch', queue: 'side' }), spec({ unique: 'same-batch', queue: 'side' })]);
      assert.equal(y, x, 'within one enqueue too');
      assert.equal((await b.stats()).pending, 3);

      const job = (await b.claim(w, ['default']))!;
      assert.equal(job.id, a);
      assert.equal(job.unique, 'k');
      assert.deepEqual(await b.enqueue([spec({ unique: 'k' })]), [a], 'running: the existing id');
      await b.complete(w, job);
      const [c] = await b.enqueue([spec({ unique: 'k' })]);
      assert.notEqual(c, a, 'done: a new job');

      const jc = (await b.claim(w, ['default']))!;
      assert.equal(jc.id, c);
      await b.fail(w, jc, failure(w), null);
      const [d] = await b.enqueue([spec({ unique: 'k' })]);
      assert.notEqual(d, c, 'failed: a new job');

      const [e] = await b.enqueue([spec({ unique: 'delayed-key', runAt: Date.now() + 3600_000 })]);
      assert.deepEqual(await b.enqueue([spec({ unique: 'delayed-key' })]), [e], 'delayed: the existing id');

      // The retried failure's key is held by d now: retrying it adds no second live job.
      await b.retryAll();
      const live = [];
      for (let j = await b.claim(w, ['default']); j; j = await b.claim(w, ['default'])) live.push(j);
      assert.equal(live.filter((j) => j.unique === 'k').length, 1);
    });

    test('recoverLapsed fails the claims of silent workers once, retries per retryAt, prunes them', T, async () => {
      const b = await backend();
      const dead = await register(b, 3001);
      const live = await register(b, 3002);
      const [retried, kept, livesOn] = await b.enqueue([spec({ args: ['retried'], attempts: 3 }), spec({ args: ['kept'] }), spec({ args: ['lives-on'] })]);
      const jr = (await b.claim(dead, ['default']))!;
      const jk = (await b.claim(dead, ['default']))!;
      const jl = (await b.claim(live, ['default']))!;
      assert.deepEqual([jr.id, jk.id, jl.id], [retried, kept, livesOn]);
      await sleep(600);
      await b.heartbeat(live, [{ job: jl, since: Date.now(), childPid: 4242 }]);
      const seen: JobRecord[] = [];
      const recovered = await b.recoverLapsed(500, 'the worker stopped heartbeating', (job) => {
        seen.push(job);
        return job.attempt + 1 < job.attempts ? Date.now() + 3600_000 : null;
      });
      assert.deepEqual(recovered.map((j) => j.id).sort(), [retried, kept].sort());
      assert.deepEqual(seen.map((j) => j.id).sort(), [retried, kept].sort());
      assert.equal(seen.find((j) => j.id === retried)?.attempt, 0, 'retryAt sees the job as claimed');

      const r = await b.job(retried);
      assert.equal(r?.state, 'delayed');
      assert.equal(r?.attempt, 1);
      assert.equal((await b.job(kept))?.state, 'failed');
      assert.equal((await b.job(livesOn))?.state, 'running', "a live worker's claim is left alone");
      const [f] = await b.failed(0, 10);
      assert.equal(f.error, 'the worker stopped heartbeating');
      assert.equal(f.job.id, kept);
      assert.equal(f.job.attempt, 1);
      assert.equal(f.worker, dead);
      const workers = (await b.workers()).map((x) => x.id);
      assert.ok(!workers.includes(dead), 'the lapsed worker is pruned');
      assert.ok(workers.includes(live));
      const s = await b.stats();
      assert.equal(s.failed, 2);
      assert.equal(s.failedKept, 1);
      assert.equal(s.running, 1);
      assert.deepEqual(await b.recoverLapsed(500, 'again', () => null), [], 'nothing twice');
      // The live worker's completion still lands.
      await b.complete(live, jl);
      assert.equal((await b.job(livesOn))?.state, 'done');
    });

    test('recoverLapsed run by two processes at the same moment recovers each claim once', T, async () => {
      const b = await backend();
      const deadA = await register(b, 3101);
      const deadB = await register(b, 3102);
      const ids = await b.enqueue(Array.from({ length: 20 }, (_, i) => spec({ args: [i], attempts: i % 2 ? 1 : 5 })));
      for (let i = 0; i < ids.length; i++) await b.claim(i % 2 ? deadA : deadB, ['default']);
      await sleep(300);
      const start = Date.now() + 300;
      const results = await inChildren(2, async () => {
        await b.stats(); // connected before the start
        spinUntil(start);
        const got = await b.recoverLapsed(200, 'lapsed', (job) => (job.attempt + 1 < job.attempts ? Date.now() + 3600_000 : null));
        await b.close();
        return got.map((j) => j.id);
      });
      const all = results.flat();
      assert.equal(all.length, ids.length, `recovered ${results.map((r) => r.length)}: every claim once between them`);
      assert.deepEqual([...all].sort(), [...ids].sort());
      for (const [i, id] of ids.entries()) {
        const j = await b.job(id);
        assert.equal(j?.attempt, 1, `job ${id}: one attempt counted`);
        assert.equal(j?.state, i % 2 ? 'failed' : 'delayed');
      }
      const s = await b.stats();
      assert.equal(s.failed, ids.length);
      assert.equal(s.failedKept, ids.length / 2);
      assert.equal(s.workers, 0);
    });

    test('workers, heartbeat, stats, queues, per-minute counts', T, async () => {
      const b = await backend();
      const started = Date.now();
      const w = await register(b, 4001, ['alpha', 'beta']);
      const idle = await register(b, 4002, ['*']);
      await b.enqueue([spec({ queue: 'alpha' }), spec({ queue: 'alpha' }), spec({ queue: 'beta' }), spec({ queue: 'beta', runAt: Date.now() + 3600_000 })]);
      const j1 = (await b.claim(w, ['alpha', 'beta']))!;
      const j2 = (await b.claim(w, ['alpha', 'beta']))!;
      await b.heartbeat(w, [
        { job: j1, since: Date.now(), childPid: 5001 },
        { job: j2, since: Date.now(), childPid: 5002 },
      ]);
      const list = await b.workers();
      assert.deepEqual(list.map((x) => x.id).sort(), [idle, w].sort());
      const info = list.find((x) => x.id === w)!;
      assert.equal(info.host, host);
      assert.equal(info.pid, 4001);
      assert.deepEqual(info.queues, ['alpha', 'beta']);
      assert.ok(info.startedAt >= started - 1000 && info.startedAt <= Date.now() + 1000, `startedAt ${info.startedAt}`);
      assert.ok(info.heartbeatAt >= info.startedAt - 1000 && info.heartbeatAt <= Date.now() + 1000, `heartbeatAt ${info.heartbeatAt}`);
      assert.deepEqual(info.running.map((r) => [r.job.id, r.childPid]).sort(), [[j1.id, 5001], [j2.id, 5002]].sort());
      for (const r of info.running) assert.equal(typeof r.since, 'number');
      assert.deepEqual(list.find((x) => x.id === idle)!.running, []);

      let s = await b.stats();
      assert.equal(s.pending, 1);
      assert.equal(s.delayed, 1);
      assert.equal(s.running, 2);
      assert.equal(s.workers, 2);
      assert.equal(s.queues.alpha ?? 0, 0);
      assert.equal(s.queues.beta, 1);
      assert.deepEqual(await b.queues(), s.queues);

      await b.complete(w, j1);
      await b.fail(w, j2, failure(w), null);
      s = await b.stats();
      assert.equal(s.processed, 2);
      assert.equal(s.failed, 1);
      assert.equal(s.running, 0);
      const after = (await b.workers()).find((x) => x.id === w)!;
      assert.deepEqual(after.running, []);
      if (after.processed !== undefined) {
        assert.equal(after.processed, 2);
        assert.equal(after.failed, 1);
      }
      if (b.minutes) {
        const minutes = await b.minutes(started);
        assert.equal(minutes.reduce((n, m) => n + m.done, 0), 1);
        assert.equal(minutes.reduce((n, m) => n + m.failed, 0), 1);
        for (const m of minutes) assert.equal(m.minute % 60_000, 0, 'a minute starts on the minute');
        assert.deepEqual(await b.minutes(Date.now() + 120_000), []);
      }
      await b.unregisterWorker(idle);
      assert.deepEqual((await b.workers()).map((x) => x.id), [w]);
      assert.equal((await b.stats()).workers, 1);
    });

    test('heartbeat records the memory reported: the master\'s rss and each job child\'s', T, async () => {
      const b = await backend();
      const w = await register(b, 4101, ['mem']);
      const silent = await register(b, 4102, ['mem']);
      await b.enqueue([spec({ queue: 'mem' }), spec({ queue: 'mem' })]);
      const j1 = (await b.claim(w, ['mem']))!;
      const j2 = (await b.claim(w, ['mem']))!;
      await b.heartbeat(w, [
        { job: j1, since: Date.now(), childPid: 5101, rss: 48 * 1024 * 1024 },
        { job: j2, since: Date.now(), childPid: null },
      ], 123 * 1024 * 1024);
      await b.heartbeat(silent, []);
      let info = (await b.workers()).find((x) => x.id === w)!;
      assert.equal(info.rss, 123 * 1024 * 1024);
      const byId = new Map(info.running.map((r) => [r.job.id, r]));
      assert.equal(byId.get(j1.id)?.rss, 48 * 1024 * 1024);
      assert.equal(byId.get(j2.id)?.rss, undefined, 'no figure reported: none given back');
      assert.equal((await b.workers()).find((x) => x.id === silent)!.rss, undefined);
      // The next heartbeat's figures replace the last ones.
      await b.heartbeat(w, [{ job: j1, since: Date.now(), childPid: 5101, rss: 64 * 1024 * 1024 }], 130 * 1024 * 1024);
      info = (await b.workers()).find((x) => x.id === w)!;
      assert.equal(info.rss, 130 * 1024 * 1024);
      assert.equal(info.running.find((r) => r.job.id === j1.id)?.rss, 64 * 1024 * 1024);
      await assert.rejects(b.heartbeat(w, [], -1), /rss must be a whole number of bytes/);
      await assert.rejects(b.heartbeat(w, [{ job: j1, since: Date.now(), childPid: 1, rss: 1.5 }]), /running\[0\]\.rss must be a whole number of bytes/);
    });

    test('delayed lists the jobs whose runAt is still ahead, soonest first, a page at a time', T, async () => {
      const b = await backend();
      const now = Date.now();
      const [due] = await b.enqueue([spec({ args: ['due'] })]);
      const [in3h, in1h, in2h] = await b.enqueue([
        spec({ name: 'Later', args: ['3h'], queue: 'qa', runAt: now + 3 * 3600_000 }),
        spec({ name: 'Later', args: ['1h'], queue: 'qb', runAt: now + 3600_000, attempts: 4 }),
        spec({ name: 'Later', args: ['2h'], queue: 'qa', runAt: now + 2 * 3600_000 }),
      ]);
      const [soon] = await b.enqueue([spec({ args: ['soon'], runAt: Date.now() + 300 })]);
      const all = await b.delayed(0, 100);
      assert.deepEqual(all.map((j) => j.id), [soon, in1h, in2h, in3h]);
      assert.ok(!all.some((j) => j.id === due), 'a job due now is not delayed');
      const first = all[1];
      assert.equal(first.name, 'Later');
      assert.deepEqual(first.args, ['1h']);
      assert.equal(first.queue, 'qb');
      assert.equal(first.attempts, 4);
      assert.ok(Math.abs(first.runAt - (now + 3600_000)) <= 1, `runAt ${first.runAt}`);
      assert.deepEqual((await b.delayed(1, 2)).map((j) => j.id), [in1h, in2h]);
      assert.deepEqual((await b.delayed(3, 10)).map((j) => j.id), [in3h]);
      assert.deepEqual(await b.delayed(4, 10), []);
      assert.deepEqual(await b.delayed(0, 0), []);
      await sleep(500);
      assert.deepEqual((await b.delayed(0, 100)).map((j) => j.id), [in1h, in2h, in3h], 'a job that fell due is no longer listed');
      await assert.rejects(b.delayed(-1, 10), /offset must be an integer >= 0/);
      await assert.rejects(b.delayed(0, 2.5), /limit must be an integer >= 0/);
    });

    const def = (name: string, o: Record<string, unknown> = {}) => ({ name, cron: '0 3 * * *', job: 'Report', args: [1, 'x'], queue: 'reports', timezone: 'Europe/Berlin', ...o });

    test('publishSchedules upserts by name and keeps lastTick; schedules() lists them by name', T, async () => {
      const b = await backend();
      assert.deepEqual(await b.schedules(), []);
      const before = Date.now();
      await b.publishSchedules([def('nightly'), def('hourly', { cron: '0 * * * *', timezone: null, args: [] })]);
      let list = await b.schedules();
      assert.deepEqual(list.map((x) => x.name), ['hourly', 'nightly']);
      const nightly = list[1];
      assert.equal(nightly.cron, '0 3 * * *');
      assert.equal(nightly.job, 'Report');
      assert.deepEqual(nightly.args, [1, 'x']);
      assert.equal(nightly.queue, 'reports');
      assert.equal(nightly.timezone, 'Europe/Berlin');
      assert.equal(list[0].timezone, null);
      assert.equal(nightly.lastTick, null);
      assert.equal(nightly.lastJobId, null);
      assert.ok(nightly.updatedAt >= before - 1000 && nightly.updatedAt <= Date.now() + 1000, `updatedAt ${nightly.updatedAt}`);
      assert.equal(nightly.firstPublishedAt, nightly.updatedAt);

      const tick = Date.UTC(2024, 0, 2, 2, 0, 0);
      const id = await b.enqueueTick('nightly', tick, spec({ name: 'Report', args: [1, 'x'], queue: 'reports' }));
      assert.equal(typeof id, 'string');
      await sleep(20);
      await b.publishSchedules([def('nightly', { cron: '30 4 * * *', args: ['changed'], queue: 'other', timezone: null })]);
      list = await b.schedules();
      assert.deepEqual(list.map((x) => x.name), ['hourly', 'nightly'], 'a schedule left out of a publish stays listed');
      const again = list[1];
      assert.equal(again.cron, '30 4 * * *');
      assert.deepEqual(again.args, ['changed']);
      assert.equal(again.queue, 'other');
      assert.equal(again.timezone, null);
      assert.equal(again.lastTick, tick, 'lastTick kept across a publish');
      assert.equal(again.lastJobId, id);
      assert.equal(again.firstPublishedAt, nightly.firstPublishedAt, 'first published: set once');
      assert.ok(again.updatedAt > nightly.updatedAt, 'updatedAt moves with each publish');
      await b.publishSchedules([]);
      await assert.rejects(b.publishSchedules([{ ...def('x'), cron: '' }]), /defs\[0\]\.cron must be a non-empty string/);
    });

    test('enqueueTick: one job per tick, only for a tick later than lastTick', T, async () => {
      const b = await backend();
      await b.publishSchedules([def('every')]);
      const t0 = Date.UTC(2024, 5, 1, 12, 0, 0);
      const id1 = await b.enqueueTick('every', t0, spec({ name: 'Report', args: ['a', 1], queue: 'ticks' }));
      assert.ok(id1);
      const job = await b.job(id1);
      assert.equal(job?.name, 'Report');
      assert.deepEqual(job?.args, ['a', 1]);
      assert.equal(job?.queue, 'ticks');
      assert.equal(job?.state, 'pending');
      assert.equal(await b.enqueueTick('every', t0, spec({ queue: 'ticks' })), null, 'the same tick again');
      assert.equal(await b.enqueueTick('every', t0 - 60_000, spec({ queue: 'ticks' })), null, 'an earlier tick');
      let rec = (await b.schedules())[0];
      assert.equal(rec.lastTick, t0);
      assert.equal(rec.lastJobId, id1);
      const id2 = await b.enqueueTick('every', t0 + 60_000, spec({ queue: 'ticks' }));
      assert.ok(id2 && id2 !== id1);
      rec = (await b.schedules())[0];
      assert.equal(rec.lastTick, t0 + 60_000);
      assert.equal(rec.lastJobId, id2);
      assert.equal(await b.enqueueTick('every', t0, spec({ queue: 'ticks' })), null, 'lastTick never goes back');
      assert.equal((await b.schedules())[0].lastTick, t0 + 60_000);
      assert.equal((await b.queues()).ticks, 2, 'two ticks, two jobs');
      await assert.rejects(b.enqueueTick('never-published', t0, spec()), /no schedule "never-published" is published/);
    });

    test('enqueueTick raced by two backends and by four forked processes: each tick enqueued exactly once', T, async () => {
      const [b1, b2] = [await backend(), await backend()];
      await b1.publishSchedules([def('race')]);
      const base = Date.UTC(2024, 5, 1, 0, 0, 0);
      const ticks = Array.from({ length: 20 }, (_, i) => base + i * 1000);
      const winners: string[] = [];
      for (const t of ticks) {
        const got = await Promise.all([b1.enqueueTick('race', t, spec({ queue: 'race', args: [t] })), b2.enqueueTick('race', t, spec({ queue: 'race', args: [t] }))]);
        const ids = got.filter((x): x is string => x !== null);
        assert.equal(ids.length, 1, `tick ${t}: one winner, got ${JSON.stringify(got)}`);
        winners.push(ids[0]);
      }
      assert.equal(new Set(winners).size, ticks.length);

      const later = Array.from({ length: 40 }, (_, i) => base + 3600_000 + i * 1000);
      const start = Date.now() + 300;
      const results = await inChildren(4, async () => {
        await b1.schedules(); // connected before the start
        spinUntil(start);
        const mine: Array<[number, string]> = [];
        for (const t of later) {
          const id = await b1.enqueueTick('race', t, spec({ queue: 'race', args: [t] }));
          if (id !== null) mine.push([t, id]);
        }
        await b1.close();
        return mine;
      });
      const taken = results.flat();
      assert.deepEqual(taken.map(([t]) => t).sort((x, y) => x - y), later, `every tick once between them (per child: ${results.map((r) => r.length)})`);
      assert.equal(new Set(taken.map(([, id]) => id)).size, later.length);
      for (const [t, id] of taken) assert.deepEqual((await b2.job(id))?.args, [t], `tick ${t}: its job holds its own args`);
      const rec = (await b2.schedules())[0];
      assert.equal(rec.lastTick, later[later.length - 1]);
      assert.equal(rec.lastJobId, taken.find(([t]) => t === rec.lastTick)![1]);
      assert.equal((await b2.queues()).race, ticks.length + later.length, 'no job without its tick');
    });

    test('clear removes the waiting jobs of one queue, delayed ones too, and nothing else', T, async () => {
      const b = await backend();
      const w = await register(b, 4101, ['a']);
      const [running] = await b.enqueue([spec({ queue: 'a' })]);
      await b.claim(w, ['a']);
      await b.enqueue([spec({ queue: 'a' }), spec({ queue: 'a' }), spec({ queue: 'a', runAt: Date.now() + 3600_000 }), spec({ queue: 'b' })]);
      assert.equal(await b.clear('a'), 3);
      assert.equal((await b.queues()).a ?? 0, 0);
      assert.equal((await b.queues()).b, 1);
      assert.equal((await b.job(running))?.state, 'running');
      const s = await b.stats();
      assert.equal(s.pending, 1);
      assert.equal(s.delayed, 0);
      assert.equal(await b.clear('a'), 0);
      assert.equal(await b.clear('never-used'), 0);
      assert.equal(await b.claim(w, ['a']), null);
    });

    test('waitForWork: resolves after its timeout when nothing comes', T, async () => {
      const b = await backend();
      const t0 = Date.now();
      await b.waitForWork(['default'], 300);
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 5000, `took ${took} ms`);
    });

    test('waitForWork wakes on an enqueue from another process, well before its timeout', T, async () => {
      const b = await backend();
      await b.stats();
      const t0 = Date.now();
      const waiting = b.waitForWork(['default'], 10_000);
      await sleep(50);
      const pid = fork(async () => {
        await sleep(150);
        await b.enqueue([spec({ args: ['from the child'] })]);
      });
      await waiting;
      const took = Date.now() - t0;
      assert.equal((await waitpid2(pid))![1].exitstatus, 0);
      assert.ok(took < 2000, `woke after ${took} ms (timeout 10 000)`);
      const w = await register(b, 4201);
      assert.deepEqual((await b.claim(w, ['default']))?.args, ['from the child']);
    });

    test('waitForWork wakes on an enqueue by another client in this process, and on "*"', T, async () => {
      const [b, other] = [await backend(), await backend()];
      const t0 = Date.now();
      const waiting = b.waitForWork(['*'], 10_000);
      await sleep(100);
      await other.enqueue([spec({ queue: 'any-queue' })]);
      await waiting;
      const took = Date.now() - t0;
      assert.ok(took < 2000, `woke after ${took} ms (timeout 10 000)`);
    });

    test('waitForWork wakes when a delayed job falls due', T, async () => {
      const b = await backend();
      await b.enqueue([spec({ runAt: Date.now() + 400 })]);
      const t0 = Date.now();
      await b.waitForWork(['default'], 10_000);
      const took = Date.now() - t0;
      assert.ok(took >= 300 && took < 2500, `woke after ${took} ms for a job due in 400`);
      const w = await register(b, 4301);
      assert.ok(await b.claim(w, ['default']));
    });

    test('close() resolves a pending waitForWork', T, async () => {
      const b = await backend();
      const t0 = Date.now();
      const waiting = b.waitForWork(['default'], 10_000);
      await sleep(50);
      await b.close();
      await waiting;
      assert.ok(Date.now() - t0 < 2000);
      await b.waitForWork(['default'], 10_000); // at once after close
      assert.ok(Date.now() - t0 < 2000);
    });

    test('fork safety: a forked child uses the same backend object; the parent carries on', T, async () => {
      const b = await backend();
      const w = await register(b, 4401);
      const [first] = await b.enqueue([spec({ args: ['parent'] })]);
      const [fromChild] = await inChildren(1, async () => {
        const cw = await register(b, 4402);
        const [id] = await b.enqueue([spec({ args: ['child'] })]);
        const job = (await b.claim(cw, ['default']))!;
        await b.complete(cw, job);
        await b.unregisterWorker(cw);
        await b.close(); // the child's connections only
        return { id, claimed: job.id };
      });
      assert.equal(fromChild.claimed, first, 'the child claimed the job the parent enqueued');
      // The parent's connection still works after the child closed its copy.
      const job = (await b.claim(w, ['default']))!;
      assert.equal(job.id, fromChild.id);
      await b.complete(w, job);
      assert.equal((await b.job(first))?.state, 'done');
      const s = await b.stats();
      assert.equal(s.processed, 2);
      assert.equal(s.workers, 1);
      // A grandchild, forked by a child that never used the backend, gets its own connection too.
      const [depth] = await inChildren(1, async () => {
        const pid = fork(async () => {
          await b.enqueue([spec({ args: ['grandchild'] })]);
        });
        const status = (await waitpid2(pid))![1];
        return status.exitstatus;
      });
      assert.equal(depth, 0);
      assert.deepEqual((await b.claim(w, ['default']))?.args, ['grandchild']);
    });

    test("fork safety: a wait pending in the parent never resolves in the child (the parent's code would run there)", T, async () => {
      const b = await backend();
      await b.stats();
      let resolvedHere = false;
      const waiting = b.waitForWork(['default'], 300).then(() => (resolvedHere = true));
      const [inChild] = await inChildren(1, async () => {
        let resolved = false;
        void waiting.then(() => (resolved = true));
        await b.enqueue([spec({ args: ['wakes only the parent'] })]); // and a wake-up, for good measure
        await sleep(700);
        return resolved;
      });
      await waiting;
      assert.equal(resolvedHere, true);
      assert.equal(inChild, false);
    });
  });
}
