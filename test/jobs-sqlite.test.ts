// SqliteBackend: the backend contract on a temporary file, then what is SQLite's own:
// WAL mode, no enqueue lost when every process is SIGKILLed, the file watch that wakes a
// waiter, no watcher or timer left behind, the URL form, the schema version, pruning of
// done jobs, the addon built for this Node, and errors that name the argument.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { nativeBindingPath, parseSqliteUrl, SqliteBackend } from '../jobs/sqlite.js';
import { fork, waitpid2 } from '../src/index.js';
import { backendContract, spec, workerId } from './jobs-backend-suite.js';
import { assertNoChildren, runNode, sleep } from './helpers.js';

const T = { timeout: 60_000 };
const tmp = mkdtempSync(join(tmpdir(), 'unixproc-sqlite-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
let current = join(tmp, `contract-${n}.db`);
backendContract(
  'sqlite',
  async () => new SqliteBackend(current),
  async () => {
    for (const suffix of ['', '-wal', '-shm']) rmSync(current + suffix, { force: true });
    current = join(tmp, `contract-${++n}.db`);
  },
);

/** A fresh database file in the scratch directory. */
const dbFile = (name: string) => join(tmp, `${name}-${n++}.db`);

/** A plain connection, to look at the file from outside the backend. */
function raw(file: string): Database.Database {
  const nativeBinding = nativeBindingPath();
  return new Database(file, nativeBinding ? { nativeBinding } : {});
}

/** One pragma's value, read through a connection of its own. */
function pragmaOf(file: string, name: string): unknown {
  const db = raw(file);
  try {
    return db.pragma(name, { simple: true });
  } finally {
    db.close();
  }
}

const sqliteUrl = new URL('../jobs/sqlite.js', import.meta.url).href;

/**
 * What waitForWork may leave running: inotify watches, read from the kernel (the watch is
 * not persistent, so Node's own lists leave it out), and ref'd timers.
 */
function watchersAndTimers(): { watchers: number; timers: number } {
  let watchers = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:inotify') continue;
      watchers += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile
    }
  }
  return { watchers, timers: process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length };
}

describe('sqlite', () => {
  test('the file is in WAL mode', T, async () => {
    const file = dbFile('wal');
    const b = new SqliteBackend(file);
    await b.enqueue([spec()]);
    assert.ok(existsSync(`${file}-wal`), 'a -wal file beside the database');
    assert.equal(pragmaOf(file, 'journal_mode'), 'wal');
    await b.close();
    const full = new SqliteBackend(file, { synchronous: 'full' });
    assert.equal((await full.stats()).pending, 1);
    await full.close();
  });

  test('kill -9 of every process loses no enqueue that returned', T, async (t) => {
    const file = dbFile('durable');
    const per = 150;
    // Fresh node processes that enqueue one job per call and SIGKILL themselves the moment
    // the last call returned: no close, no checkpoint, no exit handler.
    const script = join(tmp, 'enqueue-and-die.mjs');
    writeFileSync(
      script,
      `import { SqliteBackend } from ${JSON.stringify(sqliteUrl)};
const b = new SqliteBackend(process.argv[2]);
for (let i = 0; i < ${per}; i++) {
  await b.enqueue([{ name: 'Durable', args: [process.argv[3], i], queue: 'default', runAt: Date.now(), attempts: 1, backoff: 0, timeout: null, unique: null }]);
}
process.kill(process.pid, 'SIGKILL');
`,
    );
    const t0 = Date.now();
    const ends = await Promise.all(
      ['a', 'b'].map(
        (tag) =>
          new Promise<{ code: number | null; signal: string | null; stderr: string }>((done) => {
            const child = spawn(process.execPath, [script, file, tag], { stdio: ['ignore', 'ignore', 'pipe'] });
            let stderr = '';
            child.stderr.on('data', (d) => (stderr += d));
            child.on('close', (code, signal) => done({ code, signal, stderr }));
          }),
      ),
    );
    for (const e of ends) assert.equal(e.signal, 'SIGKILL', `exit ${e.code}: ${e.stderr}`);
    t.diagnostic(`2 × ${per} single-job enqueues in ${Date.now() - t0} ms (both processes, start-up included)`);
    assert.ok(existsSync(`${file}-wal`), 'the -wal file was left behind, not checkpointed');
    const b = new SqliteBackend(file);
    try {
      assert.equal((await b.stats()).pending, 2 * per);
      const w = workerId(1);
      const seen = new Set<string>();
      for (let j = await b.claim(w, ['default']); j; j = await b.claim(w, ['default'])) seen.add(JSON.stringify(j.args));
      assert.equal(seen.size, 2 * per);
    } finally {
      await b.close();
    }
  });

  test('a forked child SIGKILLed right after its enqueue returned loses nothing', T, async () => {
    const file = dbFile('durable-fork');
    const b = new SqliteBackend(file);
    await b.stats();
    const pid = fork(async () => {
      for (let i = 0; i < 50; i++) await b.enqueue([spec({ args: [i] })]);
      process.kill(process.pid, 'SIGKILL');
    });
    const status = (await waitpid2(pid))![1];
    assert.equal(status.termsig, 9);
    assert.equal((await b.stats()).pending, 50);
    await b.close();
    await assertNoChildren();
  });

  test('waitForWork wakes through the file watch, long before the fallback poll', T, async (t) => {
    const file = dbFile('watch');
    const b = new SqliteBackend(file, { pollMs: 60_000 });
    await b.stats();
    const stamp = join(tmp, `enqueued-${n++}`);
    const waiting = b.waitForWork(['default'], 20_000);
    const pid = fork(async () => {
      await sleep(100);
      await b.enqueue([spec()]);
      writeFileSync(stamp, String(Date.now()));
    });
    await waiting;
    const woke = Date.now();
    assert.equal((await waitpid2(pid))![1].exitstatus, 0);
    const latency = woke - Number(readFileSync(stamp, 'utf8'));
    t.diagnostic(`woke ${latency} ms after the other process's enqueue returned`);
    assert.ok(latency < 1000, `woke ${latency} ms after the enqueue (the poll is 60 s)`);
    await b.close();
    await assertNoChildren();
  });

  test('the fallback poll wakes a waiter when no file event comes', T, async () => {
    const file = dbFile('poll');
    const b = new SqliteBackend(file, { pollMs: 50 });
    const other = new SqliteBackend(file);
    // Another connection commits in the same process: its data_version moves, and with a
    // short poll that alone is enough (even if the watch were not there).
    const t0 = Date.now();
    const waiting = b.waitForWork(['default'], 10_000);
    await sleep(50);
    await other.enqueue([spec()]);
    await waiting;
    assert.ok(Date.now() - t0 < 2000);
    await Promise.all([b.close(), other.close()]);
  });

  test('no watcher or timer is left behind: after a timeout, a wake-up, a due job, close()', T, async () => {
    const file = dbFile('leaks');
    const b = new SqliteBackend(file);
    const other = new SqliteBackend(file);
    const base = watchersAndTimers();
    await b.waitForWork(['default'], 100);
    assert.deepEqual(watchersAndTimers(), base, 'after a timeout');

    const woken = b.waitForWork(['default'], 10_000);
    const during = watchersAndTimers();
    assert.equal(during.watchers, base.watchers + 1, 'one watch while waiting');
    await sleep(20);
    await other.enqueue([spec()]);
    await woken;
    assert.deepEqual(watchersAndTimers(), base, 'after a wake-up');

    await b.claim(workerId(2), ['default']);
    await b.enqueue([spec({ runAt: Date.now() + 200 })]);
    await b.waitForWork(['default'], 10_000);
    assert.deepEqual(watchersAndTimers(), base, 'after a due job');

    const pending = [b.waitForWork(['a'], 10_000), b.waitForWork(['b'], 10_000)];
    assert.equal(watchersAndTimers().watchers, base.watchers + 1, 'one watch shared by two waiters');
    await b.close();
    await Promise.all(pending);
    await other.close();
    assert.deepEqual(watchersAndTimers(), base, 'after close()');
  });

  test('a forked child gets its own connection and leaves the parent’s alone', T, async () => {
    const file = dbFile('fork');
    const b = new SqliteBackend(file);
    await b.enqueue([spec({ args: ['before fork'] })]);
    const pids = [0, 1, 2].map((i) =>
      fork(async () => {
        // Each child writes in a transaction of its own; the parent's connection, copied
        // into the child, would share the parent's lock state and page cache.
        await b.enqueue([spec({ args: [`child ${i}`] })]);
        await b.close();
      }),
    );
    for (const pid of pids) assert.equal((await waitpid2(pid))![1].exitstatus, 0);
    assert.equal((await b.stats()).pending, 4);
    assert.equal(pragmaOf(file, 'integrity_check'), 'ok');
    await b.close();
    await assertNoChildren();
  });

  test('sqlite:PATH is relative to the current directory when opened; sqlite::memory: works', T, async () => {
    const dir = mkdtempSync(join(tmp, 'cwd-'));
    const cwd = process.cwd();
    let b: SqliteBackend;
    process.chdir(dir);
    try {
      b = SqliteBackend.fromUrl('sqlite:rel/../jobs.db');
    } finally {
      process.chdir(cwd);
    }
    assert.equal(b.path, join(dir, 'jobs.db'));
    assert.equal(b.url, 'sqlite:rel/../jobs.db');
    await b.enqueue([spec()]); // after the chdir back: still the same file
    assert.ok(existsSync(join(dir, 'jobs.db')));
    await b.close();
    assert.equal(parseSqliteUrl('sqlite:/abs/x.db'), '/abs/x.db');
    assert.throws(() => parseSqliteUrl('redis://x'), TypeError);
    assert.throws(() => SqliteBackend.fromUrl('sqlite:'), TypeError);

    const m = SqliteBackend.fromUrl('sqlite::memory:');
    assert.equal(m.path, ':memory:');
    const [id] = await m.enqueue([spec()]);
    assert.equal((await m.claim(workerId(3), ['default']))?.id, id);
    await m.waitForWork(['default'], 50);
    await m.close();
  });

  test('a database with a newer schema is refused with a message saying so', T, async () => {
    const file = dbFile('newer');
    const db = raw(file);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => new SqliteBackend(file), /schema version 99, newer than this unixproc's \(2\)/);
  });

  test('done jobs are kept for keepDoneMs, then pruned', T, async () => {
    const file = dbFile('prune');
    const b = new SqliteBackend(file, { keepDoneMs: 20 });
    const w = workerId(4);
    const [first] = await b.enqueue([spec()]);
    await b.complete(w, (await b.claim(w, ['default']))!);
    assert.equal((await b.job(first))?.state, 'done');
    await sleep(60);
    const [second] = await b.enqueue([spec()]);
    await b.complete(w, (await b.claim(w, ['default']))!);
    assert.equal(await b.job(first), null, 'pruned');
    assert.equal((await b.job(second))?.state, 'done');
    const [third] = await b.enqueue([spec()]);
    assert.ok(Number(third) > Number(second), 'ids are never reused');
    assert.equal((await b.stats()).processed, 2, 'the counts stay');
    await b.close();
  });

  test('the better-sqlite3 addon built for this Node ABI is the one used, when there is one', T, () => {
    const file = join(resolve(new URL('../..', import.meta.url).pathname), 'build-abi', process.versions.modules, 'better_sqlite3.node');
    const chosen = nativeBindingPath();
    if (existsSync(file) && existsSync(`${file}.version`)) assert.equal(chosen, file);
    else assert.equal(chosen, undefined, 'npm’s own build otherwise');
  });

  test('the addon survives the GC of thousands of closed connections and statements', T, () => {
    // Built against Node 24.19+ headers as is, better-sqlite3 12 aborts here (see scripts/build-sqlite.mjs).
    const script = join(tmp, 'gc.mjs');
    writeFileSync(
      script,
      `import Database from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('better-sqlite3')).href)};
const nativeBinding = process.argv[2] || undefined;
for (let i = 0; i < 4000; i++) {
  const db = new Database(':memory:', nativeBinding ? { nativeBinding } : {});
  db.prepare('SELECT ?').get(i);
  db.close();
}
console.log('survived');
`,
    );
    const r = runNode([script, nativeBindingPath() ?? '']);
    assert.equal(r.status, 0, `status ${r.status}, signal ${r.signal}: ${r.stderr.split('\n').slice(0, 3).join(' | ')}`);
    assert.match(r.stdout, /survived/);
  });

  test('errors name the argument', T, async () => {
    const b = new SqliteBackend(dbFile('errors'));
    await assert.rejects(b.enqueue('x' as never), { name: 'TypeError', message: /specs must be an array/ });
    await assert.rejects(b.enqueue([spec({ queue: 42 as never })]), { name: 'TypeError', message: /specs\[0\]\.queue/ });
    await assert.rejects(b.enqueue([spec(), spec({ attempts: 0 })]), { name: 'RangeError', message: /specs\[1\]\.attempts/ });
    await assert.rejects(b.enqueue([spec({ runAt: NaN })]), { name: 'TypeError', message: /runAt/ });
    await assert.rejects(b.enqueue([spec({ queue: '*' })]), { name: 'RangeError', message: /queue/ });
    await assert.rejects(b.enqueue([spec({ args: [10n] as never })]), { name: 'TypeError', message: /args must be JSON-serializable/ });
    await assert.rejects(b.claim('w', []), { name: 'TypeError', message: /claim: queues/ });
    await assert.rejects(b.claim('', ['q']), { name: 'TypeError', message: /claim: workerId/ });
    await assert.rejects(b.complete('w', { id: 7 } as never), { name: 'TypeError', message: /complete: job/ });
    await assert.rejects(b.waitForWork(['q'], -1), { name: 'RangeError', message: /timeoutMs/ });
    await assert.rejects(b.recoverLapsed(1000, 'x', null as never), { name: 'TypeError', message: /retryAt/ });
    await assert.rejects(b.failed(-1, 10), { name: 'RangeError', message: /offset/ });
    await assert.rejects(b.retry(5 as never), { name: 'TypeError', message: /failureId/ });
    assert.throws(() => new SqliteBackend(''), { name: 'TypeError', message: /path/ });
    assert.throws(() => new SqliteBackend(dbFile('x'), { synchronous: 'off' as never }), { name: 'RangeError', message: /synchronous/ });
    assert.throws(() => new SqliteBackend(join(tmp, 'no-such-dir', 'x.db')), /cannot open the database/);
    await b.close();
    await assert.rejects(b.stats(), /closed/);
  });
});
