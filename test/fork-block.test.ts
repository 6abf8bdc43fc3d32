// fork(fn) as Ruby's fork block. In the child fn runs (sync or async) and the process
// exits when it settles: 0 when it returns or resolves (process.exitCode if set), 1 with
// the error on stderr when it throws or rejects. No statement after the fork call runs
// in the child, wherever the call is: the top level of a module, a microtask, a timer,
// an interval, an immediate, a nextTick, an fs callback, a listener, a request handler.
// Every fact is a side effect the parent observes: files in a scratch directory, a pipe,
// and the Process.Status it reaps.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { appendFileSync, closeSync, createReadStream, existsSync, openSync, readdirSync, readFile as readFileCb, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { exit, exitNow, fork, onForkChild, pipe, Process, setSubreaper, wait2, wait2Sync, waitpid2, type Status } from '../src/index.js';
import { native } from '../src/native.js';
import { assertNoChildren, childrenOf, indexUrl, quietStdout, runNode, runScript, scratch, sleep, TIMEOUT, waitFor } from './helpers.js';

// node:test's reports still queued in this process are copied into every child, whose
// loop would flush them on the shared stdout as extra results: silence stdout in each
// child as fork creates it, before any of the parent's pending callbacks can run there.
onForkChild(quietStdout);

// Orphans of our descendants become our children: a child that went on forking and left
// a grandchild behind is then caught by assertNoChildren instead of escaping to init.
before(() => setSubreaper(true));
after(() => setSubreaper(false));

// libuv opens one fd of its own (/dev/null, kept for accept(2) at EMFILE) with the
// loop's first stream: open it before any fd count, not during the first test that
// listens (with stdout on a pipe it is open from the start; on a file it is not).
before(async () => {
  const server = http.createServer();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  await new Promise((res) => server.close(res));
});

const tmp = scratch();
after(() => tmp.cleanup());
let seq = 0;
const parent = process.pid;

/** A fresh path in the scratch directory. */
function path(name: string): string {
  return join(tmp.dir, `${seq++}-${name}`);
}

/** Appends "pid what" to file: who did what, for the parent to read. */
function mark(file: string, what: string): void {
  appendFileSync(file, `${process.pid} ${what}\n`);
}

/** The lines of file ([] when nobody wrote it). */
function marks(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** Reaps pid with wait2 and returns its status. */
async function reap(pid: number): Promise<Status> {
  assert.equal(typeof pid, 'number');
  const r = await wait2(pid);
  assert.ok(r, `wait2(${pid}) returned null`);
  assert.equal(r[0], pid);
  return r[1];
}

/** Sends this process's stderr (the child's, when a block calls it) to file. */
function stderrTo(file: string): void {
  const fd = openSync(file, 'a');
  native.dup2(fd, 2);
  closeSync(fd);
}

/**
 * A child that somehow went on with the parent's test code (a continuation of the
 * parent settled in it) would go on to run the following tests there too, unseen with
 * its stdout silenced: it stops instead, with a status no block here exits with.
 */
function tripwire(): void {
  if (process.pid !== parent) exitNow(99);
}

/** This process's open fds and what each refers to. */
function openFds(): Map<string, string> {
  const fds = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      fds.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // the directory's own fd, closed once read
    }
  }
  return fds;
}

/** After a failed test: its children must not fail the following tests too. */
function killLeftovers(): void {
  for (const { pid } of childrenOf()) {
    try {
      process.kill(pid, 'SIGKILL');
      wait2Sync(pid);
    } catch {
      // gone already, or not ours to reap
    }
  }
}

/**
 * A test that must leave no child (live or zombie) and no open fd behind. A failed test
 * sets process.exitCode = 1 in this process (node:test), and a child copies it (see the
 * test of the parent's exitCode): it is cleared while a test runs and put back after, so
 * that one failure does not turn every later block's status into 1.
 */
function blockTest(name: string, fn: () => Promise<void>): void {
  test(name, TIMEOUT, async () => {
    tripwire();
    const fds = openFds();
    const exitCode = process.exitCode;
    process.exitCode = undefined;
    try {
      await fn();
      tripwire();
      await assertNoChildren();
    } catch (err) {
      killLeftovers();
      throw err;
    } finally {
      process.exitCode = exitCode;
    }
    // Handles closed by the test (servers, sockets) release their fds on a later turn.
    await waitFor(() => openFds().size <= fds.size, 5_000, `fd count back to ${fds.size}`).catch(() => {});
    const now = openFds();
    const leaked = [...now].filter(([fd, target]) => fds.get(fd) !== target);
    assert.equal(now.size, fds.size, `file descriptors leaked: ${JSON.stringify(leaked)}`);
  });
}

/**
 * The block of the "called from" tests: it needs the child's event loop (a timer, an
 * immediate, a nextTick, an interval, the threadpool through fs in both styles) and
 * writes what it saw to out as its last act.
 */
function workBlock(out: string): () => Promise<void> {
  return async () => {
    const steps: string[] = [];
    await sleep(20);
    steps.push('timeout');
    await new Promise<void>((res) => setImmediate(res));
    steps.push('immediate');
    await new Promise<void>((res) => process.nextTick(res));
    steps.push('nextTick');
    let ticks = 0;
    await new Promise<void>((res) => {
      const iv = setInterval(() => {
        if (++ticks === 3) {
          clearInterval(iv);
          res();
        }
      }, 5);
    });
    steps.push(`interval ${ticks}`);
    await writeFile(`${out}.scratch`, String(process.pid));
    steps.push(`fs.promises ${await readFile(`${out}.scratch`, 'utf8')}`);
    const stat = await new Promise<string>((res, rej) => readFileCb('/proc/self/stat', 'utf8', (e, s) => (e ? rej(e) : res(s))));
    steps.push(`fs.readFile ${stat.split(' ')[0]}`);
    writeFileSync(out, JSON.stringify({ pid: process.pid, ppid: Process.ppid, steps }));
  };
}

/** Asserts that the child pid ran workBlock(out) to its end and exited 0. */
function checkWork(out: string, pid: number, status: Status): void {
  assert.equal(status.exitstatus, 0, `${status}`);
  assert.ok(existsSync(out), `the block in child ${pid} did not finish`);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), {
    pid,
    ppid: parent,
    steps: ['timeout', 'immediate', 'nextTick', 'interval 3', `fs.promises ${pid}`, `fs.readFile ${pid}`],
  });
}

/** The parent's own loop still runs every kind of callback. */
async function parentLoopWorks(): Promise<void> {
  assert.equal(process.pid, parent);
  await sleep(5);
  await new Promise<void>((res) => setImmediate(res));
  await new Promise<void>((res) => process.nextTick(res));
  assert.match(await readFile('/proc/self/stat', 'utf8'), new RegExp(`^${parent} `));
  await new Promise<void>((res, rej) => readFileCb('/proc/self/stat', (e) => (e ? rej(e) : res())));
}

/**
 * The end of a "called from" test: the child ran its block to the end and exited 0, the
 * lines after the call (marked in after) were written by the parent only, and the
 * parent's loop still works.
 */
async function checkCalledFrom(out: string, after: string, pid: number, afterLines: string[]): Promise<void> {
  checkWork(out, pid, await reap(pid));
  assert.deepEqual(marks(after), afterLines.map((l) => `${parent} ${l}`));
  await parentLoopWorks();
}

/** GET http://127.0.0.1:port/path on a connection of its own; resolves to the body. */
function get(port: number, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

describe('fork(fn): how the child ends', () => {
  blockTest('a sync block that returns: exit 0, after running once', async () => {
    const out = path('ran');
    const pid = fork(() => mark(out, 'block'));
    const status = await waitpid2(pid);
    assert.ok(status);
    assert.equal(status[0], pid);
    assert.equal(status[1].exitstatus, 0);
    assert.equal(status[1].success, true);
    assert.deepEqual(marks(out), [`${pid} block`]);
  });

  blockTest('an async block that resolves after timers, immediates and fs: exit 0', async () => {
    const out = path('work');
    const pid = fork(workBlock(out));
    checkWork(out, pid, await reap(pid));
  });

  blockTest('a block that throws: exit 1, the error printed once on its stderr', async () => {
    const err = path('stderr');
    const pid = fork(() => {
      stderrTo(err);
      throw new Error('thrown by a sync block');
    });
    assert.equal((await reap(pid)).exitstatus, 1);
    const text = readFileSync(err, 'utf8');
    assert.equal(text.split('thrown by a sync block').length - 1, 1, text);
    assert.match(text, /Error: thrown by a sync block\n\s+at /);
  });

  blockTest('an async block that rejects after an await: exit 1, the error printed once on its stderr', async () => {
    const err = path('stderr');
    const pid = fork(async () => {
      stderrTo(err);
      await sleep(20);
      await new Promise<void>((res) => setImmediate(res));
      throw new Error('rejected by an async block');
    });
    assert.equal((await reap(pid)).exitstatus, 1);
    const text = readFileSync(err, 'utf8');
    assert.equal(text.split('rejected by an async block').length - 1, 1, text);
  });

  blockTest('exit(n), process.exit(n), Process.exit(n) and exitNow(n), sync and after an await: exit n', async () => {
    const out = path('after-exit');
    // [code, body, async]: a sync body is the whole of a sync block.
    const cases: Array<[number, () => unknown, boolean]> = [
      [3, () => exit(3), false],
      [4, async () => {
        await sleep(10);
        exit(4);
      }, true],
      [5, () => process.exit(5), false],
      [6, async () => {
        await new Promise<void>((res) => setImmediate(res));
        process.exit(6);
      }, true],
      [7, () => Process.exit(7), false],
      [8, async () => {
        await readFile('/proc/self/stat');
        Process.exit(8);
      }, true],
      [9, () => exitNow(9), false],
      [10, async () => {
        await sleep(10);
        exitNow(10);
      }, true],
    ];
    for (const [code, body, isAsync] of cases) {
      const pid = isAsync
        ? fork(async () => {
            await body();
            mark(out, `went on after exit(${code})`);
          })
        : fork(() => {
            body();
            mark(out, `went on after exit(${code})`);
          });
      const status = await reap(pid);
      assert.equal(status.exitstatus, code, `${status}`);
    }
    assert.deepEqual(marks(out), []);
  });

  blockTest('process.exitCode set by the block is the exit status when it returns or resolves', async () => {
    const sync = fork(() => {
      process.exitCode = 9;
    });
    assert.equal((await reap(sync)).exitstatus, 9);
    const async_ = fork(async () => {
      await sleep(10);
      process.exitCode = 10;
      await new Promise<void>((res) => setImmediate(res));
    });
    assert.equal((await reap(async_)).exitstatus, 10);
  });

  blockTest("the parent's process.exitCode is not the status of a block that returns or resolves", async () => {
    process.exitCode = 3; // as a parent that recorded a failure before forking
    let sync = 0;
    let async_ = 0;
    try {
      sync = fork(() => {});
      async_ = fork(async () => {
        await sleep(10);
      });
    } finally {
      process.exitCode = undefined;
    }
    assert.equal((await reap(sync)).exitstatus, 0, 'sync block');
    assert.equal((await reap(async_)).exitstatus, 0, 'async block');
  });

  blockTest("the child exits when the block settles: the block's pending timers and immediates never run", async () => {
    const out = path('late');
    const sync = fork(() => {
      setTimeout(() => mark(out, 'timer of a sync block'), 100);
      setInterval(() => mark(out, 'interval of a sync block'), 10);
      setImmediate(() => mark(out, 'immediate of a sync block'));
    });
    const async_ = fork(async () => {
      await sleep(10);
      setTimeout(() => mark(out, 'timer of an async block'), 100);
      setImmediate(() => mark(out, 'immediate of an async block'));
    });
    assert.equal((await reap(sync)).exitstatus, 0);
    assert.equal((await reap(async_)).exitstatus, 0);
    await sleep(300);
    assert.deepEqual(marks(out), []);
  });

  blockTest('in a fresh node: a throw and a rejection print the error on stderr once and exit 1; exit(n) and exitCode', async () => {
    const r = runScript(`
      const statuses = [];
      const run = async (body) => { const [, st] = await U.wait2(U.fork(body)); statuses.push(st.exitstatus); };
      await run(() => { throw new Error('sync-throw-xyzzy'); });
      await run(async () => { await new Promise((r) => setTimeout(r, 10)); throw new TypeError('async-reject-xyzzy'); });
      await run(() => Promise.reject('a plain string rejection'));
      await run(async () => { await new Promise((r) => setImmediate(r)); U.exit(12); });
      await run(() => process.exit(13));
      await run(async () => { process.exitCode = 14; });
      await run(async () => { console.log('child says hi'); });
      console.log('STATUSES ' + JSON.stringify(statuses));`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^STATUSES \[1,1,1,12,13,14,0\]$/m, r.stdout + r.stderr);
    assert.match(r.stdout, /^child says hi$/m);
    assert.equal(r.stdout.split('STATUSES').length - 1, 1, r.stdout);
    for (const text of ['Error: sync-throw-xyzzy', 'TypeError: async-reject-xyzzy', 'a plain string rejection']) {
      assert.equal(r.stderr.split(text).length - 1, 1, `${JSON.stringify(text)} on stderr:\n${r.stderr}`);
    }
    assert.match(r.stderr, /Error: sync-throw-xyzzy\n\s+at /);
    assert.doesNotMatch(r.stderr, /Warning|unsettled/, r.stderr);
  });
});

describe('fork(fn): nothing after the call runs in the child', () => {
  blockTest('the statement right after the fork call runs only in the parent (sync and async blocks)', async () => {
    const after = path('after');
    const ran = path('ran');
    const a = fork(() => mark(ran, 'sync block'));
    mark(after, 'after sync fork');
    const b = fork(async () => {
      await sleep(100); // the child lives long enough for a statement after the call to run
      mark(ran, 'async block');
    });
    mark(after, 'after async fork');
    assert.equal((await reap(a)).exitstatus, 0);
    assert.equal((await reap(b)).exitstatus, 0);
    assert.deepEqual(marks(after), [`${parent} after sync fork`, `${parent} after async fork`]);
    assert.deepEqual(marks(ran).sort(), [`${a} sync block`, `${b} async block`].sort());
  });

  blockTest("the caller's catch and finally blocks, over several frames, run only in the parent", async () => {
    const after = path('after');
    const block = async () => {
      await sleep(100);
    };
    function inner(): number {
      try {
        return fork(block);
      } finally {
        mark(after, 'inner finally');
      }
    }
    function outer(): number {
      let pid = 0;
      try {
        try {
          pid = inner();
          throw new Error('after the fork');
        } catch {
          mark(after, 'outer catch');
        } finally {
          mark(after, 'outer finally');
        }
      } finally {
        mark(after, 'outermost finally');
      }
      return pid;
    }
    const pid = outer();
    assert.equal((await reap(pid)).exitstatus, 0);
    assert.deepEqual(marks(after), [
      `${parent} inner finally`,
      `${parent} outer catch`,
      `${parent} outer finally`,
      `${parent} outermost finally`,
    ]);
  });

  blockTest("a caller that awaits after the fork, and the callers awaiting it, never continue in the child", async () => {
    const after = path('after');
    const ran = path('ran');
    const pending = sleep(30); // settles in the child too, while its block still runs
    async function caller(): Promise<number> {
      await sleep(1);
      try {
        const pid = fork(async () => {
          await sleep(300); // long enough for every continuation below to have run
          mark(ran, 'block');
        });
        await pending;
        mark(after, 'caller after await');
        await new Promise<void>((res) => setImmediate(res));
        mark(after, 'caller after second await');
        return pid;
      } finally {
        mark(after, 'caller finally');
      }
    }
    const callerDone = caller();
    callerDone.finally(() => mark(after, '.finally of the caller'));
    const pid = await callerDone;
    mark(after, 'awaiter continued');
    assert.equal((await reap(pid)).exitstatus, 0);
    assert.deepEqual(marks(ran), [`${pid} block`]);
    assert.deepEqual(marks(after), [
      `${parent} caller after await`,
      `${parent} caller after second await`,
      `${parent} caller finally`,
      `${parent} .finally of the caller`,
      `${parent} awaiter continued`,
    ]);
  });
});

describe('fork(fn) called from anywhere: the block has a working loop, the caller goes on in the parent only', () => {
  blockTest('the top level of an ES module, before and after a top-level await, and of a module it imports', async () => {
    const { dir, cleanup } = scratch();
    try {
      const log = join(dir, 'log');
      // Every block needs the loop: a timer, an immediate, an await, fs.
      const block = (name: string) => `async () => {
        await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setImmediate(r));
        await fsp.writeFile(${JSON.stringify(join(dir, name))}, String(process.pid));
        mark('${name} ' + await fsp.readFile(${JSON.stringify(join(dir, name))}, 'utf8'));
      }`;
      const prelude = `
        import * as U from ${JSON.stringify(indexUrl)};
        import { appendFileSync } from 'node:fs';
        import fsp from 'node:fs/promises';
        const mark = (s) => appendFileSync(${JSON.stringify(log)}, process.pid + ' ' + s + '\\n');`;
      writeFileSync(join(dir, 'dep.mjs'), `${prelude}
        export const depChild = U.fork(${block('dep-block')});
        mark('rest of dep');`);
      writeFileSync(join(dir, 'main.mjs'), `${prelude}
        import { depChild } from './dep.mjs';
        mark('main after import');
        const first = U.fork(${block('first-block')});
        mark('after first fork');
        const [, s0] = await U.waitpid2(depChild);
        const [, s1] = await U.wait2(first);
        await new Promise((r) => setTimeout(r, 10));
        const second = U.fork(${block('second-block')});
        mark('after second fork');
        const [, s2] = await U.wait2(second);
        mark('statuses ' + [s0, s1, s2].map((s) => s.exitstatus).join(' '));
        console.log(JSON.stringify({ pid: process.pid, kids: [depChild, first, second] }));`);
      const r = runNode(['--single-threaded', join(dir, 'main.mjs')]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      const { pid, kids } = JSON.parse(r.stdout);
      const [dep, first, second] = kids as number[];
      const lines = marks(log);
      // The rest of the imported module and of the main module ran in the parent only.
      assert.deepEqual(
        lines.filter((l) => !l.includes('-block ')),
        [`${pid} rest of dep`, `${pid} main after import`, `${pid} after first fork`, `${pid} after second fork`, `${pid} statuses 0 0 0`],
      );
      assert.deepEqual(lines.filter((l) => l.includes('-block ')).sort(), [
        `${dep} dep-block ${dep}`,
        `${first} first-block ${first}`,
        `${second} second-block ${second}`,
      ].sort());
    } finally {
      cleanup();
    }
  });

  blockTest('after an await (a microtask continuation)', async () => {
    const out = path('work');
    const after = path('after');
    await sleep(1);
    await Promise.resolve();
    const pid = fork(workBlock(out));
    mark(after, 'test went on');
    await checkCalledFrom(out, after, pid, ['test went on']);
  });

  blockTest('inside setTimeout; the timers due with it and after it still run in the parent', async () => {
    const out = path('work');
    const after = path('after');
    let sameDeadline = false;
    let later = false;
    const pid = await new Promise<number>((resolve) => {
      setTimeout(() => {
        resolve(fork(workBlock(out)));
        mark(after, 'timer callback went on');
      }, 10);
      setTimeout(() => (sameDeadline = true), 10);
      setTimeout(() => (later = true), 50);
    });
    await checkCalledFrom(out, after, pid, ['timer callback went on']);
    await waitFor(() => sameDeadline && later, 5_000, 'the other timers');
  });

  blockTest('inside setInterval; the interval goes on ticking in the parent', async () => {
    const out = path('work');
    const after = path('after');
    let ticks = 0;
    let interval: NodeJS.Timeout | undefined;
    const pid = await new Promise<number>((resolve) => {
      interval = setInterval(() => {
        if (++ticks === 2) {
          resolve(fork(workBlock(out)));
          mark(after, `interval callback went on at tick ${ticks}`);
        }
      }, 20);
    });
    try {
      await checkCalledFrom(out, after, pid, ['interval callback went on at tick 2']);
      const seen = ticks;
      await waitFor(() => ticks >= seen + 3, 5_000, 'three more ticks');
    } finally {
      clearInterval(interval);
    }
  });

  const batches: Array<[string, number, number]> = [
    ['the only immediate', 1, 0],
    ['the first of three immediates', 3, 0],
    ['the middle of three immediates', 3, 1],
    ['the last of three immediates', 3, 2],
  ];
  for (const [label, n, at] of batches) {
    blockTest(`inside setImmediate: ${label}; the rest of the batch runs in the parent`, async () => {
      const out = path('work');
      const after = path('after');
      const ran: number[] = [];
      const pid = await new Promise<number>((resolve) => {
        for (let i = 0; i < n; i++) {
          setImmediate(() => {
            ran.push(i);
            if (i === at) {
              resolve(fork(workBlock(out)));
              mark(after, `immediate ${i} went on`);
            }
          });
        }
      });
      await checkCalledFrom(out, after, pid, [`immediate ${at} went on`]);
      assert.deepEqual(ran, Array.from({ length: n }, (_, i) => i));
      // A new batch runs whole and in order.
      const order: number[] = [];
      await new Promise<void>((res) => {
        for (let i = 0; i < 3; i++) setImmediate(() => order.push(i) === 3 && res());
      });
      assert.deepEqual(order, [0, 1, 2]);
    });
  }

  blockTest('inside process.nextTick; the ticks queued around it run in the parent', async () => {
    const out = path('work');
    const after = path('after');
    const order: string[] = [];
    const pid = await new Promise<number>((resolve) => {
      process.nextTick(() => order.push('tick before'));
      process.nextTick(() => {
        resolve(fork(workBlock(out)));
        mark(after, 'tick went on');
      });
      process.nextTick(() => order.push('tick after'));
    });
    await checkCalledFrom(out, after, pid, ['tick went on']);
    assert.deepEqual(order, ['tick before', 'tick after']);
  });

  blockTest('inside a .then after fs.promises.readFile', async () => {
    const out = path('work');
    const after = path('after');
    const pid = await readFile('/proc/self/stat').then(() => {
      const p = fork(workBlock(out));
      mark(after, '.then callback went on');
      return p;
    });
    mark(after, 'awaiter went on');
    await checkCalledFrom(out, after, pid, ['.then callback went on', 'awaiter went on']);
  });

  blockTest('inside an fs.readFile callback', async () => {
    const out = path('work');
    const after = path('after');
    const pid = await new Promise<number>((resolve, reject) =>
      readFileCb('/proc/self/stat', (err) => {
        if (err) return reject(err);
        resolve(fork(workBlock(out)));
        mark(after, 'fs callback went on');
      }),
    );
    await checkCalledFrom(out, after, pid, ['fs callback went on']);
  });

  blockTest('inside an EventEmitter listener; the next listeners and the emitter go on in the parent', async () => {
    const out = path('work');
    const after = path('after');
    const emitter = new EventEmitter();
    let pid = 0;
    emitter.on('go', () => {
      pid = fork(workBlock(out));
      mark(after, 'listener went on');
    });
    emitter.on('go', () => mark(after, 'next listener'));
    await sleep(1);
    emitter.emit('go');
    mark(after, 'emit returned');
    await checkCalledFrom(out, after, pid, ['listener went on', 'next listener', 'emit returned']);
  });

  blockTest("inside a signal handler (process.on('SIGUSR2'))", async () => {
    const out = path('work');
    const after = path('after');
    // A signal listener does not keep the loop alive: a timer does, until the signal came.
    let guard: NodeJS.Timeout | undefined;
    const pid = await new Promise<number>((resolve, reject) => {
      guard = setTimeout(() => reject(new Error('SIGUSR2 never came')), 10_000);
      process.once('SIGUSR2', () => {
        resolve(fork(workBlock(out)));
        mark(after, 'signal handler went on');
      });
      process.kill(process.pid, 'SIGUSR2');
    }).finally(() => clearTimeout(guard));
    await checkCalledFrom(out, after, pid, ['signal handler went on']);
  });

  blockTest("inside a stream's 'data' listener; the stream goes on to its end in the parent", async () => {
    const out = path('work');
    const after = path('after');
    const source = path('source');
    writeFileSync(source, 'x'.repeat(200_000));
    let bytes = 0;
    let closed!: Promise<void>;
    const pid = await new Promise<number>((resolve) => {
      // Reads at explicit offsets: the child's copy of the stream shares the parent's file
      // offset otherwise, and would move it if it went on reading there.
      const stream = createReadStream(source, { highWaterMark: 16_384, start: 0 });
      closed = new Promise((res) => stream.on('close', res));
      let first = true;
      stream.on('data', (chunk) => {
        bytes += chunk.length;
        if (!first) return;
        first = false;
        resolve(fork(workBlock(out)));
        mark(after, 'data listener went on');
      });
    });
    await checkCalledFrom(out, after, pid, ['data listener went on']);
    await closed;
    assert.equal(bytes, 200_000);
  });

  blockTest('inside an http request handler: the parent answers the request, the child runs its block', async () => {
    const out = path('work');
    const after = path('after');
    const answer = path('answer');
    let child = 0;
    const server = http.createServer((req, res) => {
      if (req.url === '/fork') {
        child = fork(workBlock(out));
        mark(after, 'handler went on');
        res.end(`forked ${child}`);
      } else {
        res.end(`answered by ${process.pid}`);
      }
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    try {
      const { port } = server.address() as { port: number };
      // The client is another process: a client in this one would be copied into the
      // child with its socket, and the child could read the answer meant for us.
      const client = spawn(
        process.execPath,
        ['-e', `require('http').get({ host: '127.0.0.1', port: ${port}, path: '/fork', agent: false }, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => require('fs').writeFileSync(${JSON.stringify(answer)}, b)); })`],
        { stdio: 'ignore' },
      );
      const code = await new Promise<number | null>((res, rej) => client.on('error', rej).on('exit', res));
      assert.equal(code, 0);
      assert.ok(child > 0);
      assert.equal(readFileSync(answer, 'utf8'), `forked ${child}`);
      await checkCalledFrom(out, after, child, ['handler went on']);
      // Asked once the child is gone (it holds a copy of the listening socket): the
      // parent's server still serves.
      assert.equal(await get(port, '/again'), `answered by ${parent}`);
    } finally {
      await new Promise((res) => server.close(res));
    }
  });
});

describe('fork(fn) blocks that fork, serve and spawn', () => {
  blockTest('a block forks sync and async grandchildren with fork(fn) and reaps them', async () => {
    const out = path('nested');
    const after = path('after');
    const err = path('stderr');
    const pid = fork(async () => {
      const kids = [
        fork(() => {
          mark(after, `grandchild block 0 of ${Process.ppid}`);
          exit(21);
        }),
        fork(async () => {
          await sleep(20);
          mark(after, `grandchild block 1 of ${Process.ppid}`);
          process.exitCode = 22;
        }),
        fork(async () => {
          stderrTo(err);
          await new Promise<void>((res) => setImmediate(res));
          mark(after, `grandchild block 2 of ${Process.ppid}`);
          throw new Error('a grandchild rejects');
        }),
      ];
      mark(after, 'child went on after forking');
      const statuses: Array<number | null> = [];
      for (const k of kids) statuses.push((await reap(k)).exitstatus);
      writeFileSync(out, JSON.stringify({ kids, statuses, left: childrenOf(process.pid).length }));
    });
    mark(after, 'parent went on');
    assert.equal((await reap(pid)).exitstatus, 0);
    const r = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(r.statuses, [21, 22, 1]);
    assert.equal(r.left, 0);
    assert.equal(new Set([pid, ...r.kids]).size, 4);
    const lines = marks(after);
    assert.equal(lines.length, 5, lines.join('\n'));
    assert.ok(lines.includes(`${parent} parent went on`), lines.join('\n'));
    assert.ok(lines.includes(`${pid} child went on after forking`), lines.join('\n'));
    assert.deepEqual(
      lines.filter((l) => l.includes('grandchild')).sort(),
      r.kids.map((k: number, i: number) => `${k} grandchild block ${i} of ${pid}`).sort(),
    );
    assert.match(readFileSync(err, 'utf8'), /a grandchild rejects/);
  });

  blockTest("three generations: each block forks the next and exits with its child's status plus one", async () => {
    const out = path('generations');
    const generation = (depth: number) => async (): Promise<void> => {
      mark(out, `generation ${depth} of ${Process.ppid}`);
      await sleep(10);
      if (depth === 3) exit(30);
      const kid = fork(generation(depth + 1));
      mark(out, `generation ${depth} forked ${kid}`);
      exit((await reap(kid)).exitstatus! + 1);
    };
    const pid = fork(generation(1));
    assert.equal((await reap(pid)).exitstatus, 32);
    const lines = marks(out);
    assert.equal(lines.length, 5, lines.join('\n'));
    const [g1, g2] = [1, 2].map((d) => lines.find((l) => l.includes(`generation ${d} forked`))!.split(' '));
    assert.equal(Number(g1![0]), pid);
    assert.ok(lines.includes(`${pid} generation 1 of ${parent}`));
    assert.ok(lines.includes(`${g1![4]} generation 2 of ${pid}`));
    assert.equal(g2![0], g1![4]);
    assert.ok(lines.includes(`${g2![4]} generation 3 of ${g1![4]}`));
  });

  blockTest('a block runs an http server and a client against it', async () => {
    const out = path('http');
    const pid = fork(async () => {
      const server = http.createServer((req, res) => res.end(`${req.url} from ${process.pid}`));
      await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
      const { port } = server.address() as { port: number };
      const bodies = await Promise.all([get(port, '/a'), get(port, '/b')]);
      bodies.push(await get(port, '/c'));
      await new Promise((res) => server.close(res));
      writeFileSync(out, JSON.stringify(bodies));
    });
    assert.equal((await reap(pid)).exitstatus, 0);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), [`/a from ${pid}`, `/b from ${pid}`, `/c from ${pid}`]);
  });

  blockTest('a block awaits child_process.execFile and spawn', async () => {
    const out = path('spawn');
    const pid = fork(async () => {
      const { stdout } = await promisify(execFile)('/bin/sh', ['-c', 'echo "sh $PPID"']);
      const sh = spawn('/bin/sh', ['-c', 'read line; echo "got $line"; exit 7'], { stdio: ['pipe', 'pipe', 'inherit'] });
      let echoed = '';
      sh.stdout.setEncoding('utf8').on('data', (c) => (echoed += c));
      sh.stdin.end('hello\n');
      const code = await new Promise<number | null>((res, rej) => sh.on('error', rej).on('close', res));
      writeFileSync(out, JSON.stringify({ execFile: stdout.trim(), spawn: echoed.trim(), code }));
    });
    assert.equal((await reap(pid)).exitstatus, 0);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), { execFile: `sh ${pid}`, spawn: 'got hello', code: 7 });
  });
});

describe('fork(fn) in a loop', () => {
  for (const kind of ['async', 'sync'] as const) {
    blockTest(`a loop forks five ${kind} blocks: five children, each runs its block once, none goes on forking`, async () => {
      const N = 5;
      const after = path('after');
      const [reader, writer] = pipe();
      const report = (i: number) => writer.puts(`${i} ${process.pid} ${Process.ppid} ${childrenOf(process.pid).length}`);
      const pids: number[] = [];
      for (let i = 0; i < N; i++) {
        pids.push(
          kind === 'sync'
            ? fork(() => {
                reader.close();
                report(i);
              })
            : fork(async () => {
                reader.close();
                await sleep(50);
                await new Promise<void>((res) => setImmediate(res));
                await readFile('/proc/self/stat');
                report(i);
              }),
        );
      }
      mark(after, `loop forked ${pids.length}`);
      writer.close();
      // EOF comes once every copy of the writer is closed: when the last child has exited.
      const lines = reader.read()!.toString('utf8').split('\n').filter(Boolean);
      reader.close();
      const reaped: number[] = [];
      for (let i = 0; i < N; i++) {
        const [pid, status] = (await wait2())!;
        assert.equal(status.exitstatus, 0, `${status}`);
        reaped.push(pid);
      }
      assert.deepEqual(reaped.sort(), [...pids].sort());
      assert.equal(new Set(pids).size, N);
      assert.deepEqual(lines.sort(), pids.map((p, i) => `${i} ${p} ${parent} 0`).sort());
      assert.deepEqual(marks(after), [`${parent} loop forked ${N}`]);
    });
  }
});
