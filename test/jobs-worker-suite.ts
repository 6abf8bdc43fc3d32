// The behaviour of `unixproc work`, the same on every store: jobs run once each in
// children of their own, every way a child dies is a failed attempt with its reason,
// retries follow the policy, a SIGKILLed master loses nothing, and the signals do what
// Resque's do. `open` gives a fresh, empty store URL for each test.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { Queue } from '../jobs/index.js';
import { childrenOf, scratch, sleep } from './helpers.js';
import { alive, cliPath, runs, storeFailures, storeStats, until, Worker, writeJobsModule } from './jobs-harness.js';

const T = { timeout: 120_000 };

/** `services`: pids of this process's children that the store needs (a redis-server), not left-behinds. */
export function workerSuite(name: string, open: () => Promise<string>, services: () => number[] = () => []): void {
  async function setup(extra = '') {
    const tmp = scratch();
    const url = await open();
    const jobs = writeJobsModule(tmp.dir, extra);
    const queue = new Queue(url);
    const workers: Worker[] = [];
    const start = async (args: string[] = []) => {
      const w = new Worker(jobs, url, args);
      workers.push(w);
      await w.ready();
      return w;
    };
    const done = async () => {
      for (const w of workers) {
        if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
        await w.exited;
      }
      await queue.close();
      tmp.cleanup();
      await until(() => childrenOf().every((c) => services().includes(c.pid)), 10_000, () => `no children left behind: ${JSON.stringify(childrenOf())}`);
    };
    const stats = () => storeStats(url);
    const failures = () => storeFailures(url);
    /** Nothing pending, delayed or running. */
    const settled = async () => {
      const st = await stats();
      return st.pending + st.delayed + st.running === 0;
    };
    return { dir: tmp.dir, url, queue, start, done, stats, failures, settled };
  }

  describe(`unixproc work (${name})`, () => {
    test('runs every job exactly once, each in a forked child of the master, and QUIT stops it', T, async () => {
      const s = await setup();
      try {
        const ids = await s.queue.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ name: i % 2 ? 'Noop' : 'Add', args: i % 2 ? [] : [i, 1] })));
        const w = await s.start(['-n', '2']);
        await until(() => runs(s.dir).length >= 30, 60_000, () => `30 runs, have ${runs(s.dir).length}`);
        await until(async () => (await s.stats()).processed === 30, 30_000, () => 'processed 30');
        const r = runs(s.dir);
        assert.deepEqual(r.map((x) => x.id).sort(), [...ids].sort());
        assert.ok(r.every((x) => x.pid !== w.pid && x.attempt === 1));
        assert.equal(new Set(r.map((x) => x.pid)).size, 30, 'a child per job');
        assert.deepEqual(
          r.filter((x) => x.name === 'Add').map((x) => x.tag).sort(),
          Array.from({ length: 15 }, (_, i) => String(2 * i + 1)).sort(),
        );
        const st = await w.stop();
        assert.deepEqual(st, { code: 0, signal: null });
        assert.equal((await s.stats()).workers, 0, 'the worker unregistered');
      } finally {
        await s.done();
      }
    });

    test('every way a child dies fails that attempt with the reason, and the worker goes on', T, async () => {
      const s = await setup();
      try {
        const cases: Array<[string, unknown[], RegExp, object?]> = [
          ['Exit', [3], /exit 3/],
          ['Throw', ['bad argument'], /bad argument/],
          ['Reject', ['async failure'], /async failure/],
          ['UncaughtLater', ['uncaught later'], /uncaught later/],
          ['UnhandledRejection', ['nobody handled'], /nobody handled/],
          ['KillSelf', ['SIGKILL'], /SIGKILL/],
          ['KillSelf', ['SIGSEGV'], /SIGSEGV/],
          ['Hang', [], /timeout/, { timeout: 1 }],
          ['Hog', [300], /memory limit/],
          ['NoSuchJob', [], /no handler for job "NoSuchJob"/],
        ];
        for (const [job, args, , opts] of cases) await s.queue.enqueue(job, args, opts);
        await s.queue.enqueue('Noop', []);
        const w = await s.start(['-n', '2', '--max-memory', '150']);
        await until(async () => (await s.failures()).length >= cases.length, 90_000, () => `${cases.length} failures`);
        await until(async () => (await s.stats()).processed >= 1, 30_000, () => 'the Noop job done');
        const failed = await s.failures();
        for (const [job, args, reason] of cases) {
          const f = failed.find((x) => x.job.name === job && JSON.stringify(x.job.args) === JSON.stringify(args));
          assert.ok(f, `a failure for ${job}(${JSON.stringify(args)})`);
          assert.match(`${f.exception}: ${f.error}`, reason, `${job}: ${f.exception}: ${f.error}`);
          assert.equal(f.worker, failed[0].worker);
        }
        assert.equal(alive(w.pid), true);
        assert.deepEqual(await w.stop(), { code: 0, signal: null });
      } finally {
        await s.done();
      }
    });

    test('a failing job is retried with backoff up to its attempts, then kept as failed; retry runs it again', T, async () => {
      const s = await setup();
      try {
        await s.queue.enqueue('FailTimes', ['a', 2], { attempts: 3, backoff: 50 });
        await s.queue.enqueue('FailTimes', ['b', 5], { attempts: 2, backoff: 50 });
        const w = await s.start(['-n', '1']);
        await until(() => runs(s.dir).filter((r) => r.tag === '').length >= 5, 60_000, () => '5 runs');
        await until(async () => (await s.failures()).length === 1 && (await s.settled()), 30_000, () => 'a done, b failed');
        const r = runs(s.dir);
        assert.deepEqual(r.filter((x) => x.id === r[0].id).map((x) => x.attempt), [1, 2, 3]);
        const [f] = await s.failures();
        assert.deepEqual(f.job.args, ['b', 5]);
        assert.match(f.error, /failing attempt 2/);
        // Retried by hand: it runs again (and fails again, it needs 6 attempts).
        execFileSync(process.execPath, [cliPath, 'jobs', 'retry', f.id, '-b', s.url]);
        await until(() => runs(s.dir).length >= 6, 30_000, () => 'the retried run');
        await until(async () => (await s.failures()).length === 1 && (await s.settled()), 30_000, () => 'failed again');
        assert.equal(runs(s.dir).length, 7, 'retried with its attempts reset: two more runs');
        await w.stop();
      } finally {
        await s.done();
      }
    });

    test('a master SIGKILLed mid-job: its children die with it, and a new worker recovers the jobs', T, async () => {
      const s = await setup();
      try {
        await s.queue.enqueueMany(Array.from({ length: 2 }, () => ({ name: 'Sleep', args: [3000], options: { attempts: 2 } })));
        await s.queue.enqueueMany(Array.from({ length: 6 }, () => ({ name: 'Noop' })));
        const w1 = await s.start(['-n', '2', '--lapse', '1']);
        await until(() => runs(s.dir).filter((r) => r.name === 'Sleep').length === 2, 30_000, () => 'both Sleep jobs started');
        const children = runs(s.dir).map((r) => r.pid);
        w1.proc.kill('SIGKILL');
        await w1.exited;
        await until(() => children.every((p) => !alive(p)), 10_000, () => 'the children to die with their master');
        const w2 = await s.start(['-n', '2', '--lapse', '1']);
        await until(() => runs(s.dir).length === 10, 60_000, () => `10 runs, have ${runs(s.dir).length}`);
        await until(() => s.settled(), 30_000, () => 'all settled');
        const r = runs(s.dir);
        const sleeps = r.filter((x) => x.name === 'Sleep');
        // Each Sleep job: the interrupted attempt 1, then attempt 2 (the recovery counted one).
        const byJob = new Map<string, number[]>();
        for (const x of sleeps) byJob.set(x.id, [...(byJob.get(x.id) ?? []), x.attempt]);
        assert.deepEqual([...byJob.values()], [
          [1, 2],
          [1, 2],
        ]);
        assert.equal(r.filter((x) => x.name === 'Noop').length, 6);
        assert.equal((await s.failures()).length, 0);
        await w2.stop();
      } finally {
        await s.done();
      }
    });

    test('QUIT lets running jobs finish; TERM puts them back as not attempted; USR1 kills them as failed attempts', T, async () => {
      const s = await setup();
      try {
        await s.queue.enqueue('Sleep', [1500]);
        let w = await s.start(['-n', '1']);
        await until(() => runs(s.dir).length === 1, 30_000, () => 'started');
        assert.deepEqual(await w.stop(), { code: 0, signal: null });
        assert.equal((await s.stats()).processed, 1, 'QUIT waited for the job');

        await s.queue.enqueue('Sleep', [20_000]);
        w = await s.start(['-n', '1', '--term-timeout', '2']);
        await until(() => runs(s.dir).length === 2, 30_000, () => 'started');
        w.signal('SIGTERM');
        assert.deepEqual(await w.exited, { code: 0, signal: null });
        const st = await s.stats();
        assert.equal(st.pending, 1, 'back in its queue');
        assert.equal(st.failed, 0, 'not a failed attempt');

        w = await s.start(['-n', '1']);
        await until(() => runs(s.dir).length === 3, 30_000, () => 'restarted');
        assert.equal(runs(s.dir)[2].attempt, 1, 'TERM did not count an attempt');
        w.signal('SIGUSR1');
        await until(async () => (await s.failures()).length === 1, 30_000, () => 'USR1 failure');
        assert.match((await s.failures())[0].error, /USR1/);
        assert.equal(alive(w.pid), true);
        await w.stop();
      } finally {
        await s.done();
      }
    });

    test('USR2 pauses taking jobs and CONT resumes; ps shows the titles', T, async () => {
      const s = await setup();
      try {
        const w = await s.start(['-n', '1', '-q', 'critical,default']);
        const title = () => execFileSync('ps', ['-o', 'args=', '-p', String(w.pid)], { encoding: 'utf8' }).trim();
        await until(() => title() === 'unixproc work: Waiting for critical,default', 10_000, () => `title, got ${title()}`);
        w.signal('SIGUSR2');
        await until(() => title() === 'unixproc work: Paused', 10_000, () => `Paused, got ${title()}`);
        await s.queue.enqueue('Sleep', [3000], { queue: 'critical' });
        await sleep(1500);
        assert.equal(runs(s.dir).length, 0, 'paused: nothing taken');
        w.signal('SIGCONT');
        await until(() => runs(s.dir).length === 1, 30_000, () => 'resumed');
        const child = runs(s.dir)[0].pid;
        const childTitle = execFileSync('ps', ['-o', 'args=', '-p', String(child)], { encoding: 'utf8' }).trim();
        assert.match(childTitle, /^unixproc work: Processing critical since \d{4}-\d\d-\d\dT[\d:.]+Z \[Sleep\]$/);
        assert.equal(title(), 'unixproc work: 1 of 1 busy');
        await w.stop();
      } finally {
        await s.done();
      }
    });

    test('queues are taken in priority order, delayed jobs wait, and a job can enqueue jobs', T, async () => {
      const s = await setup();
      try {
        await s.queue.enqueue('Noop', [], { queue: 'low' });
        await s.queue.enqueue('Noop', [], { queue: 'high' });
        const delayedAt = Date.now();
        await s.queue.enqueue('Noop', [], { queue: 'high', delay: 1500 });
        await s.queue.enqueue('Chain', [s.url, 2], { queue: 'low' });
        const w = await s.start(['-n', '1', '-q', 'high,low']);
        await until(() => runs(s.dir).length === 6, 30_000, () => '6 runs');
        const r = runs(s.dir);
        assert.equal(r[0].queue, 'high', 'the high queue first');
        assert.equal(r.filter((x) => x.name === 'Chain').length, 3);
        const highs = r.filter((x) => x.queue === 'high');
        assert.equal(highs.length, 2);
        // No sooner than its delay (timing-independent: how fast the rest ran does not matter).
        assert.ok(highs[1].at >= delayedAt + 1500, `the delayed job ran ${highs[1].at - delayedAt} ms after enqueue`);
        await w.stop();
      } finally {
        await s.done();
      }
    });

    test('1,000 jobs over two masters sharing the store each run exactly once', { timeout: 300_000 }, async () => {
      const s = await setup();
      try {
        await s.queue.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ name: 'Noop', args: [], options: { queue: i % 2 ? 'a' : 'b' } })));
        const w1 = await s.start(['-n', '2', '--jobs-per-fork', '10']);
        const w2 = await s.start(['-n', '2']);
        await until(async () => (await s.stats()).processed === 1000, 240_000, () => `1000 done (${runs(s.dir).length} runs)`);
        const r = runs(s.dir);
        assert.equal(r.length, 1000);
        assert.equal(new Set(r.map((x) => x.id)).size, 1000);
        await w1.stop();
        await w2.stop();
      } finally {
        await s.done();
      }
    });

    test('--no-fork runs jobs in the master; Resque-shaped classes and unique enqueues', T, async () => {
      const s = await setup();
      try {
        const a = await s.queue.enqueue('Archive', [7, 'x'], { unique: 'archive-7' });
        const b = await s.queue.enqueue('Archive', [7, 'x'], { unique: 'archive-7' });
        assert.equal(a, b, 'deduplicated while pending');
        const w = await s.start(['--no-fork', '-n', '2']);
        await until(() => runs(s.dir).length === 1, 30_000, () => 'ran');
        assert.equal(runs(s.dir)[0].pid, w.pid);
        assert.equal(runs(s.dir)[0].tag, '7:x');
        await w.stop();
      } finally {
        await s.done();
      }
    });
  });
}
