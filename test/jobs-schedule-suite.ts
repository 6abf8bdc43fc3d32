// Recurring jobs through real `unixproc work` masters, the same on every store: a schedule's
// jobs run with its args and queue (forked or --no-fork), two masters on one store enqueue
// each tick once, a master back after downtime enqueues one job for the latest tick, a bad
// schedule stops the start with a one-line reason, and `unixproc jobs schedule` lists it.
// `open` gives a fresh, empty store URL for each test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openBackend, Queue } from '../jobs/index.js';
import type { Backend } from '../jobs/backend.js';
import { enqueueSpec } from '../jobs/queue.js';
import { childrenOf, scratch, sleep } from './helpers.js';
import { cliPath, runs, until, Worker, writeJobsModule } from './jobs-harness.js';

const T = { timeout: 120_000 };

// Records its arguments, so a test sees what the schedule passed; { sleepMs } keeps its child busy that long.
const SCHEDULED = `export async function Scheduled(...args) {
  record(JSON.stringify(args));
  const ms = args.find((a) => a && typeof a === 'object' && a.sleepMs)?.sleepMs;
  if (ms) await new Promise((r) => setTimeout(r, ms));
}`;

interface Enqueued {
  schedule: string;
  tick: string;
  id: string;
}

export function scheduleSuite(name: string, open: () => Promise<string>, services: () => number[] = () => []): void {
  async function setup() {
    const tmp = scratch();
    const url = await open();
    const jobs = writeJobsModule(tmp.dir, SCHEDULED);
    const workers: Worker[] = [];
    const backends: Backend[] = [];
    let configs = 0;
    const config = (schedule: unknown): string => {
      const file = join(tmp.dir, `config-${configs++}.mjs`);
      writeFileSync(file, `export default ${JSON.stringify({ schedule })};\n`);
      return file;
    };
    const start = async (args: string[]) => {
      const w = new Worker(jobs, url, args);
      workers.push(w);
      await w.ready();
      return w;
    };
    const backend = async () => {
      const b = await openBackend(url);
      backends.push(b);
      return b;
    };
    const cli = (args: string[]) =>
      spawnSync(process.execPath, ['--single-threaded', cliPath, ...args], { encoding: 'utf8', timeout: 60_000 });
    const done = async () => {
      for (const w of workers) {
        if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
        await w.exited;
      }
      for (const b of backends) await b.close();
      tmp.cleanup();
      await until(() => childrenOf().every((c) => services().includes(c.pid)), 10_000, () => `no children left behind: ${JSON.stringify(childrenOf())}`);
    };
    return { dir: tmp.dir, url, jobs, config, start, backend, cli, done };
  }

  const scheduledRuns = (dir: string) => runs(dir).filter((r) => r.name === 'Scheduled');
  const enqueued = (w: Worker) => w.events('schedule.enqueued') as unknown as Enqueued[];

  describe(`recurring jobs (${name})`, () => {
    test('an every-second schedule enqueues jobs that run in forked children with its args and queue', T, async () => {
      const s = await setup();
      try {
        // Each child outlives a tick or two: its copy of the master's scheduler must stay silent.
        const args = [1, 'two', { sleepMs: 1500 }];
        const w = await s.start(['-n', '3', '-c', s.config({ everySecond: { cron: '* * * * * *', job: 'Scheduled', args, queue: 'timed' } })]);
        await until(() => scheduledRuns(s.dir).length >= 4, 30_000, () => `4 scheduled runs, have ${scheduledRuns(s.dir).length} (stderr: ${w.stderr})`);
        const got = scheduledRuns(s.dir);
        for (const r of got) {
          assert.equal(r.tag, JSON.stringify(args));
          assert.equal(r.queue, 'timed');
          assert.notEqual(r.pid, w.pid, 'run in a child');
        }
        assert.equal(new Set(got.map((r) => r.id)).size, got.length, 'a job per tick');
        const mine = new Set(enqueued(w).map((e) => e.id));
        for (const r of got) assert.ok(mine.has(r.id), `job ${r.id} was enqueued by the master, not by a child (master's: ${[...mine]})`);
        const b = await s.backend();
        const [rec] = await b.schedules();
        assert.equal(rec.name, 'everySecond');
        assert.equal(rec.cron, '* * * * * *');
        assert.deepEqual(rec.args, args);
        assert.equal(rec.queue, 'timed');
        assert.equal(rec.timezone, null);
        assert.ok(rec.lastTick !== null && rec.lastTick % 1000 === 0, `lastTick on a whole second: ${rec.lastTick}`);
        assert.deepEqual(await w.stop(), { code: 0, signal: null });
        const st = await b.stats();
        assert.equal(st.processed + st.pending + st.delayed + st.running, enqueued(w).length, 'every job in the store was enqueued by the master');
      } finally {
        await s.done();
      }
    });

    test('with --no-fork the master schedules and runs them itself', T, async () => {
      const s = await setup();
      try {
        const w = await s.start(['--no-fork', '-c', s.config({ tick: { cron: '* * * * * *', job: 'Scheduled', args: ['in-master'], timezone: 'UTC' } })]);
        await until(() => scheduledRuns(s.dir).length >= 2, 30_000, () => `2 scheduled runs (stderr: ${w.stderr})`);
        for (const r of scheduledRuns(s.dir)) {
          assert.equal(r.pid, w.pid);
          assert.equal(r.queue, 'default');
          assert.equal(r.tag, '["in-master"]');
        }
        assert.deepEqual(await w.stop(), { code: 0, signal: null });
      } finally {
        await s.done();
      }
    });

    test('two masters sharing the store: every tick is enqueued exactly once', T, async () => {
      const s = await setup();
      try {
        const cfg = s.config({ shared: { cron: '* * * * * *', job: 'Scheduled', args: ['shared'], queue: 'shared' } });
        const [a, b] = await Promise.all([s.start(['-n', '2', '-c', cfg]), s.start(['-n', '2', '-c', cfg])]);
        const from = Date.now();
        await sleep(5000);
        const to = Date.now();
        assert.deepEqual(await Promise.all([a.stop(), b.stop()]), [
          { code: 0, signal: null },
          { code: 0, signal: null },
        ]);
        const all = [...enqueued(a), ...enqueued(b)];
        const ticks = all.map((e) => Date.parse(e.tick));
        assert.equal(new Set(ticks).size, ticks.length, `no tick enqueued twice: ${JSON.stringify(all)}`);
        assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'a job of its own per tick');
        for (const t of ticks) assert.equal(t % 1000, 0, `a tick is on a whole second: ${t}`);
        // Every whole second the two masters were both up for is a tick; a loaded machine may stall a tick past the next.
        const seconds = Math.floor(to / 1000) - Math.ceil(from / 1000) + 1;
        const inWindow = ticks.filter((t) => t >= from && t <= to).length;
        assert.ok(inWindow >= seconds - 1 && inWindow <= seconds + 1, `${inWindow} ticks enqueued in ${seconds} whole seconds`);
        // Each enqueued job ran at most once, and none ran that no tick enqueued.
        const ran = scheduledRuns(s.dir).map((r) => r.id);
        assert.equal(new Set(ran).size, ran.length, 'no job ran twice');
        const ids = new Set(all.map((e) => e.id));
        for (const id of ran) assert.ok(ids.has(id), `job ${id} ran and was enqueued by a tick`);
        const store = await s.backend();
        const [rec] = await store.schedules();
        assert.equal(rec.lastTick, Math.max(...ticks), 'the store holds the latest tick');
        assert.equal(rec.lastJobId, all.find((e) => Date.parse(e.tick) === rec.lastTick)!.id);
      } finally {
        await s.done();
      }
    });

    test('after downtime one job is enqueued for the latest due tick; a new schedule skips ticks before it; jobs schedule lists them', T, async () => {
      const s = await setup();
      try {
        // Away from a minute's end, so no regular tick follows the catch-up during the test.
        const into = Date.now() % 60_000;
        if (into > 40_000) await sleep(60_000 - into + 200);
        const b = await s.backend();
        const minutely = { name: 'minutely', cron: '* * * * *', job: 'Scheduled', args: ['caught up'], queue: 'minutely', timezone: null };
        await b.publishSchedules([minutely]);
        const hoursAgo = Math.floor((Date.now() - 5 * 3600_000) / 60_000) * 60_000;
        const old = await b.enqueueTick('minutely', hoursAgo, enqueueSpec('Scheduled', ['old'], { queue: 'elsewhere' }));
        assert.ok(old);
        const w = await s.start([
          '-q',
          'minutely',
          '-c',
          s.config({
            minutely: { cron: minutely.cron, job: minutely.job, args: minutely.args, queue: minutely.queue },
            fresh: { cron: '* * * * *', job: 'Scheduled', args: ['fresh'], queue: 'minutely' },
          }),
        ]);
        const latest = Math.floor(Date.now() / 60_000) * 60_000;
        await until(() => scheduledRuns(s.dir).length >= 1, 30_000, () => `the catch-up run (stderr: ${w.stderr})`);
        await sleep(2000); // four heartbeats, each a re-check
        const got = scheduledRuns(s.dir);
        assert.equal(got.length, 1, `one run for all the ticks missed: ${JSON.stringify(got)}`);
        assert.equal(got[0].tag, '["caught up"]');
        const events = enqueued(w);
        assert.equal(events.length, 1, JSON.stringify(events));
        assert.equal(events[0].schedule, 'minutely');
        assert.equal(Date.parse(events[0].tick), latest);
        assert.equal(events[0].id, got[0].id);

        const byName = new Map((await b.schedules()).map((r) => [r.name, r]));
        assert.equal(byName.get('minutely')?.lastTick, latest);
        assert.equal(byName.get('minutely')?.lastJobId, got[0].id);
        assert.equal(byName.get('fresh')?.lastTick, null, 'a tick before a schedule was first published does not run');
        assert.equal((await b.job(old))?.state, 'pending', 'the job of the old tick is left alone');

        const listed = s.cli(['jobs', 'schedule', '-b', s.url, '--json']);
        assert.equal(listed.status, 0, listed.stderr);
        const list = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
        assert.deepEqual(list.map((x) => x.name), ['fresh', 'minutely']);
        const m = list[1];
        assert.deepEqual(Object.keys(m).sort(), ['args', 'cron', 'job', 'lastJobId', 'lastTick', 'name', 'nextRun', 'queue', 'timezone', 'updatedAt']);
        assert.equal(m.cron, '* * * * *');
        assert.equal(m.job, 'Scheduled');
        assert.deepEqual(m.args, ['caught up']);
        assert.equal(m.queue, 'minutely');
        assert.equal(m.timezone, null);
        assert.equal(m.lastTick, new Date(latest).toISOString());
        assert.equal(m.lastJobId, got[0].id);
        assert.equal(m.nextRun, new Date(latest + 60_000).toISOString());
        assert.ok(!Number.isNaN(Date.parse(String(m.updatedAt))));
        assert.equal(list[0].lastTick, null);
        assert.equal(list[0].lastJobId, null);

        const table = s.cli(['jobs', 'schedule', '-b', s.url]);
        assert.equal(table.status, 0, table.stderr);
        const lines = table.stdout.trim().split('\n');
        assert.match(lines[0], /^name\s+cron\s+timezone\s+job\s+queue\s+last run\s+last job\s+next run$/);
        assert.match(lines[2], new RegExp(`^minutely\\s+\\* \\* \\* \\* \\*\\s+local\\s+Scheduled\\s+minutely\\s+${new Date(latest).toISOString().replace('.000Z', 'Z')}\\s+${got[0].id}\\s+`));
        assert.deepEqual(await w.stop(), { code: 0, signal: null });
      } finally {
        await s.done();
      }
    });

    test('a bad schedule stops `unixproc work` at start: exit 2, one line naming the schedule', T, async () => {
      const s = await setup();
      try {
        const cases: Array<[unknown, RegExp]> = [
          [{ nightly: { cron: '61 * * * *', job: 'Scheduled' } }, /^unixproc work: .*config-\d+\.mjs: schedule "nightly": cron "61 \* \* \* \*" is not valid: .*minute.*61/],
          [{ nightly: { cron: '0 3 * * *', job: 'Scheduled', timezone: 'Mars/Phobos' } }, /schedule "nightly": timezone "Mars\/Phobos" is not a time zone/],
          [{ nightly: { cron: 'every day', job: 'Scheduled' } }, /schedule "nightly": cron "every day" is not valid: /],
          [{ report: { cron: '0 3 * * *' } }, /schedule "report": job must be the name of the job to enqueue, got undefined/],
          [{ report: { cron: '0 3 * * *', job: 'Scheduled', args: 'x' } }, /schedule "report": args must be a JSON array, got "x"/],
          [{ report: { cron: '0 3 * * *', job: 'Scheduled', queue: 7 } }, /schedule "report": queue must be a string, got 7/],
          [{ report: { cron: '0 3 * * *', job: 'Scheduled', tz: 'UTC' } }, /schedule "report": unknown option "tz"/],
        ];
        for (const [schedule, reason] of cases) {
          const r = s.cli(['work', s.jobs, '-b', s.url, '-c', s.config(schedule)]);
          assert.equal(r.status, 2, `${JSON.stringify(schedule)}: exit ${r.status}, stderr ${r.stderr}`);
          const lines = r.stderr.trim().split('\n');
          assert.equal(lines.length, 1, `one line: ${r.stderr}`);
          assert.match(lines[0], reason);
        }
        const b = await s.backend();
        assert.deepEqual(await b.schedules(), [], 'nothing published by a refused start');
        const q = new Queue(s.url);
        assert.deepEqual((await (await q.store()).workers()).length, 0);
        await q.close();
      } finally {
        await s.done();
      }
    });
  });
}
