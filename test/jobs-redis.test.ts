// RedisBackend against a private redis-server: Resque's layout as Ruby's Resque and
// node-resque read and write it, claims that survive a SIGKILLed holder and a Redis
// restart, payloads that are not jobs, wake-ups, and sockets that never cross fork(2).
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { Queue as ResqueQueue, Worker as ResqueWorker } from 'node-resque';
import type { EnqueueSpec, JobRecord } from '../jobs/backend.js';
import { dropInheritedClient, RedisBackend } from '../jobs/redis.js';
import { fork, kill, onForkChild, waitpid2 } from '../src/index.js';
import { sleep, waitFor } from './helpers.js';
import { backendContract } from './jobs-backend-suite.js';
import { startRedis, type RedisServer } from './redis-server.js';

const T = { timeout: 60_000 };
const host = hostname();

function spec(name: string, args: unknown[] = [], o: Partial<EnqueueSpec> = {}): EnqueueSpec {
  return { name, args, queue: 'default', runAt: Date.now(), attempts: 1, backoff: 1000, timeout: null, unique: null, ...o };
}

const workerId = (queues: string[], pid = process.pid) => `${host}:${pid}:${queues.join(',')}`;

async function register(b: RedisBackend, queues: string[], pid = process.pid): Promise<string> {
  const id = workerId(queues, pid);
  await b.registerWorker({ id, host, pid, queues });
  return id;
}

/** Claims from one queue and checks that the job is `name` with `args`, from that queue. */
async function claimed(b: RedisBackend, w: string, queue: string, name: string, args: unknown[]): Promise<JobRecord> {
  const job = await b.claim(w, [queue]);
  assert.ok(job, `a job in ${queue}`);
  assert.equal(job.name, name);
  assert.deepEqual(job.args, args);
  assert.equal(job.queue, queue);
  return job;
}

/** Settles-or-not after ms, without waiting for it. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

let server: RedisServer;
let admin: Redis;
const opened: RedisBackend[] = [];

function backend(url = server.url): RedisBackend {
  const b = new RedisBackend(url);
  opened.push(b);
  return b;
}

before(async () => {
  server = await startRedis();
  admin = new Redis(server.url);
  // A forked test child would otherwise read replies meant for this process off admin's socket.
  onForkChild(() => dropInheritedClient(admin));
});

afterEach(async () => {
  for (const b of opened.splice(0)) await b.close();
  await admin.flushall();
});

after(async () => {
  admin.disconnect();
  await server.destroy();
});

backendContract(
  'redis',
  async () => new RedisBackend(server.url),
  async () => {
    await admin.flushall();
  },
);

describe('Resque layout', () => {
  test('a job pushed with plain Redis commands as Resque pushes it runs: claim gives its class and args', T, async () => {
    await admin.sadd('resque:queues', 'archive');
    await admin.rpush('resque:queue:archive', JSON.stringify({ class: 'Archive', args: [1, 'x'] }));
    const b = backend();
    const w = await register(b, ['archive']);
    const job = await claimed(b, w, 'archive', 'Archive', [1, 'x']);
    assert.equal(job.attempt, 0);
    assert.equal(await admin.llen('resque:queue:archive'), 0);
    // Resque's working_on, while it runs
    const working = JSON.parse((await admin.get(`resque:worker:${w}`))!);
    assert.equal(working.queue, 'archive');
    assert.match(working.run_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(working.payload, { class: 'Archive', args: [1, 'x'] });
    assert.equal((await b.job(job.id))?.state, 'running');
    await b.complete(w, job);
    assert.equal(await admin.get(`resque:worker:${w}`), null);
    assert.equal(await admin.get('resque:stat:processed'), '1');
    assert.equal(await admin.get(`resque:stat:processed:${w}`), '1');
    assert.equal((await b.job(job.id))?.state, 'done');
    assert.equal(await b.claim(w, ['archive']), null);
  });

  test('jobs unixproc enqueues are Resque payloads (class, args, our fields under "unixproc"), in resque:queues', T, async () => {
    const b = backend();
    const [id] = await b.enqueue([spec('Archive', [1, 'x'], { queue: 'files', attempts: 3, unique: 'k' })]);
    assert.deepEqual(await admin.smembers('resque:queues'), ['files']);
    const [raw] = await admin.lrange('resque:queue:files', 0, -1);
    const p = JSON.parse(raw);
    assert.equal(p.class, 'Archive');
    assert.deepEqual(p.args, [1, 'x']);
    assert.deepEqual(Object.keys(p), ['class', 'args', 'unixproc']);
    assert.equal(p.unixproc.id, id);
    assert.equal(p.unixproc.attempts, 3);
    assert.equal(p.unixproc.unique, 'k');
  });

  test('worker registration, heartbeat and stats are where Resque reads them', T, async () => {
    const b = backend();
    const w = await register(b, ['a', 'b']);
    assert.deepEqual(await admin.smembers('resque:workers'), [w]);
    assert.match((await admin.get(`resque:worker:${w}:started`))!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$/);
    await b.heartbeat(w, []);
    assert.match((await admin.hget('resque:workers:heartbeat', w))!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const [info] = await b.workers();
    assert.equal(info.id, w);
    assert.equal(info.host, host);
    assert.equal(info.pid, process.pid);
    assert.deepEqual(info.queues, ['a', 'b']);
    assert.ok(Date.now() - info.heartbeatAt < 5000);
    await b.unregisterWorker(w);
    assert.deepEqual(await admin.smembers('resque:workers'), []);
    assert.equal(await admin.exists(`resque:worker:${w}:started`), 0);
    assert.equal(await admin.hget('resque:workers:heartbeat', w), null);
  });

  test('queues are taken in the order given; "*" and globs take every matching queue by name', T, async () => {
    const b = backend();
    await b.enqueue([spec('L', [], { queue: 'low' }), spec('H', [], { queue: 'high' }), spec('M', [], { queue: 'mail' })]);
    const w = await register(b, ['*']);
    assert.equal((await b.claim(w, ['low', 'high']))?.name, 'L');
    assert.equal((await b.claim(w, ['m*']))?.name, 'M');
    assert.equal((await b.claim(w, ['*']))?.name, 'H');
    assert.equal(await b.claim(w, ['*']), null);
  });
});

describe('node-resque interoperation', () => {
  test("a job node-resque enqueues is claimed with its class and args; node-resque's Queue sees the worker, its job and its failure", T, async () => {
    const queue = new ResqueQueue({ connection: { host: '127.0.0.1', port: server.port, namespace: 'resque' } });
    await queue.connect();
    try {
      await queue.enqueue('q', 'Archive', [1, 'x']);
      const b = backend();
      const w = await register(b, ['q']);
      const job = await claimed(b, w, 'q', 'Archive', [1, 'x']);

      assert.deepEqual(await queue.workers(), { [`${host}:${process.pid}`]: 'q' });
      const on = await queue.allWorkingOn();
      const mine = on[`${host}:${process.pid}`];
      assert.equal(typeof mine, 'object');
      assert.equal(mine.queue, 'q');
      assert.equal(mine.payload.class, 'Archive');
      assert.deepEqual(mine.payload.args, [1, 'x']);
      assert.ok(Math.abs(Date.parse(mine.run_at) - Date.now()) < 5000);

      await b.fail(w, job, { error: 'disk full', exception: 'Error', backtrace: ['at archive (jobs.js:1:1)'], worker: w }, null);
      assert.equal(await queue.failedCount(), 1);
      const [f] = await queue.failed(0, -1);
      assert.equal(f.queue, 'q');
      assert.equal(f.worker, w);
      assert.equal(f.exception, 'Error');
      assert.equal(f.error, 'disk full');
      assert.deepEqual(f.backtrace, ['at archive (jobs.js:1:1)']);
      assert.equal(f.payload.class, 'Archive');
      assert.deepEqual(f.payload.args, [1, 'x']);
      assert.match(f.failed_at, /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d UTC$/);
      const stats = await queue.stats();
      assert.equal(stats.processed, '1');
      assert.equal(stats.failed, '1');
      assert.equal((await queue.allWorkingOn())[`${host}:${process.pid}`], 'started'); // idle

      // node-resque's retry of our failure (an LREM of the entry as it re-encodes it, so ours
      // must be byte for byte what JSON.stringify writes) enqueues a plain Resque job, which we claim.
      await queue.retryAndRemoveFailed(f);
      assert.equal((await b.failed(0, 10)).length, 0);
      await claimed(b, w, 'q', 'Archive', [1, 'x']);
      // Strings JSON.stringify and Lua's cjson write differently ('/', control characters) or not at all (unicode).
      const odd = 'a "quoted" \\ back/slash\nnew line\t\u0001\u001f\u007f é ✓ 😀';
      await b.enqueue([spec('Odd', [odd], { queue: 'q/x' })]);
      const ow = await register(b, ['q/x']);
      const oj = (await b.claim(ow, ['q/x']))!;
      await b.fail(ow, oj, { error: odd, exception: odd, backtrace: [odd], worker: ow }, null);
      const [of] = await queue.failed(0, -1);
      assert.equal(of.error, odd);
      assert.equal(await queue.removeFailed(of), 1);
      assert.equal(await queue.failedCount(), 0);
    } finally {
      await queue.end();
    }
  });

  test("failures node-resque writes are listed by failed() and can be retried or removed by id", T, async () => {
    const queue = new ResqueQueue({ connection: { host: '127.0.0.1', port: server.port, namespace: 'resque' } });
    await queue.connect();
    try {
      const entry = { worker: 'other:1', queue: 'q', payload: { class: 'Resize', queue: 'q', args: [7] }, exception: 'TypeError', error: 'bad', backtrace: ['x'], failed_at: new Date().toString() };
      await admin.rpush('resque:failed', JSON.stringify(entry), JSON.stringify({ ...entry, error: 'worse' }));
      const b = backend();
      const fs = await b.failed(0, 10);
      assert.equal(fs.length, 2);
      assert.equal(fs[0].job.name, 'Resize');
      assert.deepEqual(fs[0].job.args, [7]);
      assert.equal(fs[0].error, 'bad');
      assert.equal(fs[0].worker, 'other:1');
      assert.ok(fs[0].failedAt > 0);
      assert.equal(await b.retry(fs[0].id), true);
      assert.equal(await b.retry(fs[0].id), false);
      assert.equal(await b.removeFailure(fs[1].id), true);
      assert.equal(await queue.failedCount(), 0);
      const w = await register(b, ['q']);
      await claimed(b, w, 'q', 'Resize', [7]);
    } finally {
      await queue.end();
    }
  });

  test("node-resque's worker (standing in for Ruby's) runs a job unixproc enqueued", T, async () => {
    const b = backend();
    await b.enqueue([spec('Archive', [1, 'x'], { queue: 'q' })]);
    let ran: unknown[] | null = null;
    const worker = new ResqueWorker(
      { connection: { host: '127.0.0.1', port: server.port, namespace: 'resque' }, queues: ['q'], timeout: 20 },
      { Archive: { perform: async (...args: unknown[]) => void (ran = args) } },
    );
    await worker.connect();
    worker.start();
    try {
      await waitFor(() => ran !== null, 10_000, 'node-resque to run the job');
      assert.deepEqual(ran, [1, 'x']);
    } finally {
      await worker.end();
    }
  });
});

describe('claims', () => {
  test('a payload that is not a job becomes a failure record with its raw text, and claim moves on to the next job', T, async () => {
    const b = backend();
    await admin.sadd('resque:queues', 'q');
    await admin.rpush('resque:queue:q', 'not json {', '{"args":[1]}', '42');
    await b.enqueue([spec('Good', [], { queue: 'q' })]);
    const w = await register(b, ['q']);
    const job = await b.claim(w, ['q']);
    assert.equal(job?.name, 'Good');
    const fs = await b.failed(0, 10);
    assert.equal(fs.length, 3);
    assert.deepEqual(
      fs.map((f) => f.exception),
      ['Resque::Helpers::DecodeException', 'Resque::NoClassError', 'Resque::NoClassError'],
    );
    for (const f of fs) {
      assert.equal(f.job.name, '');
      assert.deepEqual(f.job.args, []);
      assert.equal(f.job.queue, 'q');
      assert.equal(f.worker, w);
    }
    assert.match(fs[0].error, /not json \{/);
    const entries = (await admin.lrange('resque:failed', 0, -1)).map((e) => JSON.parse(e));
    assert.deepEqual(
      entries.map((e) => e.unixproc.raw),
      ['not json {', '{"args":[1]}', '42'],
    );
    assert.deepEqual(entries[0].payload, { class: '', args: [] });
    assert.equal((await b.stats()).failed, 3);
    // Retrying one puts the text back exactly as it was; removing one drops it.
    assert.equal(await b.retry(fs[0].id), true);
    assert.deepEqual(await admin.lrange('resque:queue:q', 0, -1), ['not json {']);
    assert.equal(await b.removeFailure(fs[1].id), true);
    assert.equal((await b.failed(0, 10)).length, 1);
  });

  test('a claim is a move into the processing hash, never a pop: release puts the job back at the front', T, async () => {
    const b = backend();
    const [a] = await b.enqueue([spec('A', [], { queue: 'q' }), spec('B', [], { queue: 'q' })]);
    const w = await register(b, ['q']);
    const job = (await b.claim(w, ['q']))!;
    assert.equal(job.id, a);
    assert.deepEqual(await admin.hkeys(`resque:unixproc:processing:${w}`), [a]);
    await b.release(w, job);
    assert.equal(await admin.hlen(`resque:unixproc:processing:${w}`), 0);
    const again = (await b.claim(w, ['q']))!;
    assert.equal(again.id, a);
    assert.equal(again.attempt, 0);
  });

  test('concurrent claims from many connections take each job exactly once', T, async () => {
    const b = backend();
    const ids = await b.enqueue(Array.from({ length: 200 }, (_, i) => spec('N', [i], { queue: 'q' })));
    const claimers = Array.from({ length: 8 }, () => backend());
    const got: string[] = [];
    await Promise.all(
      claimers.map(async (c, i) => {
        const w = await register(c, ['q'], 100000 + i);
        for (;;) {
          const j = await c.claim(w, ['q']);
          if (!j) return;
          got.push(j.id);
        }
      }),
    );
    assert.deepEqual([...got].sort(), [...ids].sort());
  });

  test('delayed jobs are moved into their queue when due; a retry with retryAt goes there too, attempt counted', T, async () => {
    const b = backend();
    const [id] = await b.enqueue([spec('Later', [], { queue: 'q', runAt: Date.now() + 300, attempts: 2 })]);
    const w = await register(b, ['q']);
    assert.equal(await b.claim(w, ['q']), null);
    assert.equal((await b.job(id))?.state, 'delayed');
    assert.equal((await b.stats()).delayed, 1);
    const t0 = Date.now();
    await b.waitForWork(['q'], 5000);
    assert.ok(Date.now() - t0 < 2000, 'the wait is bounded by the delayed job');
    const job = (await b.claim(w, ['q']))!;
    assert.equal(job.id, id);
    await b.fail(w, job, { error: 'e', exception: 'Error', backtrace: [], worker: w }, Date.now() + 200);
    const j = await b.job(id);
    assert.equal(j?.state, 'delayed');
    assert.equal(j?.attempt, 1);
    assert.equal(await b.claim(w, ['q']), null);
    await sleep(250);
    const retried = (await b.claim(w, ['q']))!;
    assert.equal(retried.id, id);
    assert.equal(retried.attempt, 1);
    assert.equal(await admin.get('resque:stat:failed'), '1');
    assert.equal(await admin.llen('resque:failed'), 0);
  });

  test('unique: a second enqueue while the first is pending or running returns its id; after it is done, a new job', T, async () => {
    const b = backend();
    const [a] = await b.enqueue([spec('U', [], { queue: 'q', unique: 'k' })]);
    const [a2, other] = await b.enqueue([spec('U', [], { queue: 'q', unique: 'k' }), spec('U', [], { queue: 'q', unique: 'other' })]);
    assert.equal(a2, a);
    assert.notEqual(other, a);
    const w = await register(b, ['q']);
    const job = (await b.claim(w, ['q']))!;
    assert.equal((await b.enqueue([spec('U', [], { queue: 'q', unique: 'k' })]))[0], a);
    await b.complete(w, job);
    const [c] = await b.enqueue([spec('U', [], { queue: 'q', unique: 'k' })]);
    assert.notEqual(c, a);
  });

  test('clear, queues, stats, retryAll', T, async () => {
    const b = backend();
    await b.enqueue([spec('A', [], { queue: 'q' }), spec('B', [], { queue: 'q' }), spec('C', [], { queue: 'r' }), spec('D', [], { queue: 'q', runAt: Date.now() + 60_000 })]);
    assert.deepEqual(await b.queues(), { q: 2, r: 1 });
    const w = await register(b, ['r']);
    const job = (await b.claim(w, ['r']))!;
    let s = await b.stats();
    assert.deepEqual({ ...s, queues: undefined }, { processed: 0, failed: 0, pending: 2, delayed: 1, running: 1, failedKept: 0, workers: 1, queues: undefined });
    assert.equal(await b.clear('q'), 3);
    assert.deepEqual(await b.queues(), { q: 0, r: 0 });
    await b.fail(w, job, { error: 'e', exception: 'Error', backtrace: [], worker: w }, null);
    assert.equal((await b.job(job.id))?.state, 'failed');
    s = await b.stats();
    assert.equal(s.failedKept, 1);
    assert.equal(s.running, 0);
    assert.equal(await b.retryAll(), 1);
    assert.equal((await b.job(job.id))?.state, 'pending');
    const again = (await b.claim(w, ['r']))!;
    assert.equal(again.id, job.id);
    assert.equal(again.attempt, 0);
  });
});

describe('recoverLapsed', () => {
  test('a SIGKILLed holder loses nothing: its job goes back (one attempt counted) and it is pruned, once for two concurrent callers', T, async () => {
    const b = backend();
    const [id] = await b.enqueue([spec('Long', [], { queue: 'q', attempts: 3 })]);
    const url = server.url;
    const pid = fork(async () => {
      const c = new RedisBackend(url);
      const me = workerId(['q']);
      await c.registerWorker({ id: me, host, pid: process.pid, queues: ['q'] });
      const job = await c.claim(me, ['q']);
      await c.heartbeat(me, job ? [{ job, since: Date.now(), childPid: null }] : []);
      await new Promise(() => {}); // holds the job until killed
    });
    const holder = workerId(['q'], pid);
    for (let i = 0; i < 500 && !(await admin.hexists(`resque:unixproc:processing:${holder}`, id)); i++) await sleep(10);
    assert.equal(await admin.hexists(`resque:unixproc:processing:${holder}`, id), 1);
    kill('SIGKILL', pid);
    const [, status] = (await waitpid2(pid))!;
    assert.equal(status.termsig, 9);
    assert.deepEqual(await b.recoverLapsed(60_000, 'lapsed', () => Date.now()), []);
    await sleep(250);
    const other = backend();
    const [r1, r2] = await Promise.all([
      b.recoverLapsed(200, 'lapsed', () => Date.now()),
      other.recoverLapsed(200, 'lapsed', () => Date.now()),
    ]);
    assert.equal(r1.length + r2.length, 1);
    assert.equal([...r1, ...r2][0].id, id);
    assert.deepEqual(await admin.smembers('resque:workers'), []);
    assert.equal(await admin.hget('resque:workers:heartbeat', holder), null);
    assert.equal(await admin.exists(`resque:unixproc:processing:${holder}`), 0);
    const w = await register(b, ['q']);
    const job = (await b.claim(w, ['q']))!;
    assert.equal(job.id, id);
    assert.equal(job.attempt, 1);
    assert.equal(await admin.get('resque:stat:failed'), '1');
  });

  test('without a retry the lapsed job is kept as failed with the reason', T, async () => {
    const b = backend();
    const [id] = await b.enqueue([spec('Long', [], { queue: 'q' })]);
    const dead = workerId(['q'], 999999);
    await b.registerWorker({ id: dead, host, pid: 999999, queues: ['q'] });
    const job = (await b.claim(dead, ['q']))!;
    await sleep(150);
    const rec = await b.recoverLapsed(100, 'the worker stopped heartbeating', () => null);
    assert.deepEqual(
      rec.map((j) => j.id),
      [id],
    );
    const [f] = await b.failed(0, 10);
    assert.equal(f.job.id, job.id);
    assert.equal(f.error, 'the worker stopped heartbeating');
    assert.equal(f.worker, dead);
    assert.equal((await b.job(id))?.state, 'failed');
    assert.deepEqual(await b.workers(), []);
  });
});

describe('waitForWork', () => {
  test('an enqueue from another backend wakes a waiter within milliseconds; with nothing, the timeout holds', T, async () => {
    const b = backend();
    const other = backend();
    let t0 = Date.now();
    await b.waitForWork(['q'], 200);
    assert.ok(Date.now() - t0 >= 190, 'waited for the timeout');
    const waiting = b.waitForWork(['q'], 10_000);
    await sleep(50);
    t0 = Date.now();
    await other.enqueue([spec('X', [], { queue: 'q' })]);
    await waiting;
    assert.ok(Date.now() - t0 < 500, `woken after ${Date.now() - t0} ms`);
    assert.ok((await b.claim(await register(b, ['q']), ['q'])) !== null);
    // A job pushed the way Ruby's Resque pushes it (no message) is found when a wait starts.
    await admin.rpush('resque:queue:q', JSON.stringify({ class: 'FromRuby', args: [] }));
    t0 = Date.now();
    await b.waitForWork(['q'], 10_000);
    assert.ok(Date.now() - t0 < 500);
    assert.equal((await b.claim(workerId(['q']), ['q']))?.name, 'FromRuby');
    // A delayed job enqueued elsewhere during a wait brings its end forward.
    const w3 = b.waitForWork(['q'], 10_000);
    await sleep(50);
    t0 = Date.now();
    await other.enqueue([spec('Soon', [], { queue: 'q', runAt: Date.now() + 200 })]);
    await w3;
    assert.ok(Date.now() - t0 >= 150 && Date.now() - t0 < 1500, `woken after ${Date.now() - t0} ms for a job due in 200`);
    assert.equal((await b.claim(workerId(['q']), ['q']))?.name, 'Soon');
    // A wake for another queue does not end the wait.
    const w2 = b.waitForWork(['q'], 10_000);
    await other.enqueue([spec('X', [], { queue: 'elsewhere' })]);
    assert.equal(await settledWithin(w2, 150), false);
    await other.enqueue([spec('X', [], { queue: 'q' })]);
    await w2;
  });

  test('close() leaves no socket or timer behind, and ends a pending wait', T, async () => {
    const count = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'Timeout').length;
    const baseline = count();
    const b = new RedisBackend(server.url);
    await b.enqueue([spec('X', [], { queue: 'q' })]);
    await b.waitForWork(['q'], 1000);
    const pending = b.waitForWork(['zzz'], 60_000);
    assert.ok(count() > baseline);
    await b.close();
    await pending;
    await waitFor(() => count() <= baseline, 2000, 'sockets and timers to be gone');
  });
});

describe('Redis restarting', () => {
  test('a backend mid-use waits through a restart of Redis and continues: nothing lost, nothing thrown', T, async () => {
    const srv = await startRedis({ fsyncAlways: true });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const b = new RedisBackend(srv.url);
    const other = new RedisBackend(srv.url);
    try {
      const ids = await b.enqueue([spec('A', [], { queue: 'q' }), spec('B', [], { queue: 'q' }), spec('C', [], { queue: 'q' })]);
      const w = await register(b, ['q']);
      const held = (await b.claim(w, ['q']))!;
      assert.equal(held.id, ids[0]);
      await b.waitForWork(['q'], 100); // subscribed
      await srv.stop();
      const claim = b.claim(w, ['q']);
      const enq = b.enqueue([spec('D', [], { queue: 'q' })]);
      const stats = b.stats();
      assert.equal(await settledWithin(Promise.all([claim, enq, stats]), 300), false, 'calls wait for Redis');
      // A wait keeps its timeout while Redis is away.
      let t0 = Date.now();
      await b.waitForWork(['q'], 200);
      assert.ok(Date.now() - t0 < 1500);
      await srv.start();
      const got = await claim;
      assert.equal(got?.id, ids[1]);
      const [d] = await enq;
      assert.equal((await stats).pending, 2);
      await b.complete(w, held);
      const rest = [(await b.claim(w, ['q']))?.id, (await b.claim(w, ['q']))?.id];
      assert.deepEqual(rest, [ids[2], d]);
      assert.equal(await b.claim(w, ['q']), null);
      assert.equal((await b.stats()).processed, 1);
      // The subscription is back: another backend's enqueue wakes a wait again.
      let woke = false;
      for (let i = 0; i < 20 && !woke; i++) {
        const waiting = b.waitForWork(['q'], 5000);
        await sleep(20);
        t0 = Date.now();
        await other.enqueue([spec('E', [], { queue: 'q' })]);
        await waiting;
        woke = Date.now() - t0 < 1000;
      }
      assert.ok(woke, 'woken after the restart');
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await b.close();
      await other.close();
      await srv.destroy();
    }
  });
});

describe('fork safety', () => {
  test("a forked child opens its own connections and never touches the parent's (no QUIT, no stolen replies)", T, async () => {
    const b = backend();
    await b.enqueue([spec('Warm', [], { queue: 'warm' })]);
    await b.waitForWork(['fq'], 100); // main and subscriber connections open
    const clients = async () =>
      String(await admin.call('CLIENT', 'LIST'))
        .split('\n')
        .filter((l) => l.includes(` name=unixproc:${process.pid} `))
        .map((l) => /\bid=(\d+)/.exec(l)![1]);
    const before = await clients();
    assert.equal(before.length, 2);
    const parent = process.pid;
    const marker = join(tmpdir(), `unixproc-redis-fork-${process.pid}`);
    rmSync(marker, { force: true });
    // A wait pending at fork time: in the child it must never settle (that would run this
    // test's code there), and in the parent it must be woken by the child's enqueue.
    const pending = b.waitForWork(['fq'], 20_000).then(async () => {
      if (process.pid !== parent) (await import('node:fs')).writeFileSync(marker, 'parent code ran in the child');
    });
    const pid = fork(async () => {
      const me = workerId(['fq']);
      await b.enqueue([spec('FromChild', [process.pid], { queue: 'fq' })]);
      await b.registerWorker({ id: me, host, pid: process.pid, queues: ['fq'] });
      const warm = await b.claim(me, ['warm']);
      if (!warm) throw new Error('the child could not claim');
      await b.complete(me, warm);
      await b.unregisterWorker(me);
      await sleep(100);
      await b.close();
    });
    const [, status] = (await waitpid2(pid))!;
    assert.equal(status.exitstatus, 0, `child exit: ${status}`);
    await pending;
    assert.equal(existsSync(marker), false);
    assert.deepEqual(await clients(), before, "the parent's connections are the same ones, still open");
    assert.equal((await b.stats()).processed, 1);
    const w = await register(b, ['fq']);
    assert.deepEqual((await b.claim(w, ['fq']))?.args, [pid]);
  });
});
