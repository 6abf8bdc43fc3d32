// Recurring jobs on the embedded store (a SQLite file per test), and the schema step that
// brings a database of the unixproc before them (schema 1) to schema 2 with its data kept.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { nativeBindingPath, SqliteBackend } from '../jobs/sqlite.js';
import { scratch } from './helpers.js';
import { spec, workerId } from './jobs-backend-suite.js';
import { scheduleSuite } from './jobs-schedule-suite.js';

const tmp = scratch();
after(() => tmp.cleanup());
let n = 0;
scheduleSuite('sqlite', async () => `sqlite:${join(tmp.dir, `jobs-${n++}.db`)}`);

describe('SQLite schema 1 to 2', () => {
  test('a schema 1 database gets the schedules table and the memory columns, its jobs and workers kept', { timeout: 60_000 }, async () => {
    const file = join(tmp.dir, 'schema-1.db');
    // A schema 1 database: today's, less what schema 2 added.
    let b = new SqliteBackend(file);
    const w = workerId(7001);
    await b.registerWorker({ id: w, host: 'h', pid: 7001, queues: ['default'] });
    const [id] = await b.enqueue([spec({ name: 'Kept', args: ['from v1'] })]);
    await b.close();
    const nativeBinding = nativeBindingPath();
    const db = new Database(file, nativeBinding ? { nativeBinding } : {});
    db.exec('DROP TABLE schedules; ALTER TABLE jobs DROP COLUMN child_rss; ALTER TABLE workers DROP COLUMN rss;');
    db.pragma('user_version = 1');
    db.close();

    b = new SqliteBackend(file);
    try {
      assert.deepEqual((await b.job(id))?.args, ['from v1']);
      assert.equal((await b.workers())[0].id, w);
      const job = (await b.claim(w, ['default']))!;
      await b.heartbeat(w, [{ job, since: Date.now(), childPid: 7002, rss: 4096 }], 8192);
      const [info] = await b.workers();
      assert.equal(info.rss, 8192);
      assert.equal(info.running[0].rss, 4096);
      await b.publishSchedules([{ name: 'nightly', cron: '0 3 * * *', job: 'Kept', args: [], queue: 'default', timezone: null }]);
      assert.equal((await b.schedules())[0].name, 'nightly');
    } finally {
      await b.close();
    }
    const check = new Database(file, nativeBinding ? { nativeBinding } : {});
    assert.equal(check.pragma('user_version', { simple: true }), 2);
    check.close();
  });
});
