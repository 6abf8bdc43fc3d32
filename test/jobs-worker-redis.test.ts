// `unixproc work` on Redis: one private redis-server for the file, a database per test
// (FLUSHDB first), the same behaviour suite as on SQLite.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { Queue } from '../jobs/index.js';
import { scratch, sleep } from './helpers.js';
import { alive, runs, until, Worker, writeJobsModule } from './jobs-harness.js';
import { workerSuite } from './jobs-worker-suite.js';
import { startRedis, type RedisServer } from './redis-server.js';

let server: RedisServer;
before(async () => {
  server = await startRedis();
});
after(async () => {
  await server?.destroy();
});
let db = 0;
workerSuite('redis', async () => {
  const n = db++ % 16;
  const url = `redis://127.0.0.1:${server.port}/${n}`;
  const r = new Redis(url);
  await r.flushdb();
  r.disconnect();
  return url;
}, () => [server.pid]);

describe('unixproc work on Redis: Resque interop and a Redis restart', () => {
  test('a job Ruby\'s Resque would push (plain Redis commands) runs in a worker', { timeout: 120_000 }, async () => {
    const tmp = scratch();
    const url = `redis://127.0.0.1:${server.port}/15`;
    const r = new Redis(url);
    const w = new Worker(writeJobsModule(tmp.dir), url, ['-n', '1']);
    try {
      await r.flushdb();
      await w.ready();
      // What Resque.enqueue(Archive, 1, "x") writes.
      await r.sadd('resque:queues', 'default');
      await r.rpush('resque:queue:default', JSON.stringify({ class: 'Archive', args: [1, 'x'] }));
      await until(() => runs(tmp.dir).length === 1, 30_000, () => 'the Resque job to run');
      assert.equal(runs(tmp.dir)[0].tag, '1:x');
      await until(async () => Number(await r.get('resque:stat:processed')) === 1, 10_000, () => 'resque:stat:processed 1');
      assert.deepEqual(await w.stop(), { code: 0, signal: null });
    } finally {
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
      await w.exited;
      r.disconnect();
      tmp.cleanup();
    }
  });

  test('Redis restarted under a running worker: it waits, reconnects, and every job runs once', { timeout: 180_000 }, async () => {
    const tmp = scratch();
    const url = `redis://127.0.0.1:${server.port}/14`;
    const r = new Redis(url, { maxRetriesPerRequest: null });
    r.on('error', () => {}); // refused while the server is down: expected
    const queue = new Queue(url);
    const w = new Worker(writeJobsModule(tmp.dir), url, ['-n', '2']);
    try {
      await r.flushdb();
      await queue.enqueueMany(Array.from({ length: 20 }, () => ({ name: 'Sleep', args: [100] })));
      await w.ready();
      await until(() => runs(tmp.dir).length >= 3, 30_000, () => 'some jobs run');
      await server.stop();
      await sleep(1500);
      await server.start();
      await queue.enqueueMany(Array.from({ length: 5 }, () => ({ name: 'Noop' })));
      await until(() => runs(tmp.dir).length >= 25, 120_000, () => `25 runs, have ${runs(tmp.dir).length}`);
      await sleep(500);
      const all = runs(tmp.dir);
      assert.equal(new Set(all.map((x) => x.id)).size, 25, 'every job ran');
      assert.equal(alive(w.pid), true, 'the worker survived the restart');
      assert.deepEqual(await w.stop(), { code: 0, signal: null });
    } finally {
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
      await w.exited;
      await queue.close();
      r.disconnect();
      tmp.cleanup();
    }
  });
});
