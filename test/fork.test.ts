// fork(2) of the running Node process: return values, the child's identity, every exit
// path, the runtime services a child must still have, and the refusals when forking is unsafe.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import crypto from 'node:crypto';
import dns from 'node:dns/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import v8 from 'node:v8';
import { compactHeap, fork, ForkSafetyError, isForkedChild, onForkChild, Process, setrlimit, sharedMemory, SystemCallError, wait2 } from '../src/index.js';
import { assertNoChildren, fdCount, quietStdout, runScript, scratch, TIMEOUT } from './helpers.js';

// node:test's reports still queued in this process are copied into every child, whose
// loop flushes them on the shared stdout (as extra passes) before the block even runs:
// silence stdout in each child as fork creates it.
onForkChild(quietStdout);

const tmp = scratch();
after(() => tmp.cleanup());
let seq = 0;

/** Forks a child that runs fn and records its result; resolves to the child's status and result. */
async function inChild<T>(fn: () => T | Promise<T>): Promise<{ code: number | null; value: T; pid: number }> {
  const file = `${tmp.dir}/r${seq++}.json`;
  const pid = fork(async () => {
    const value = await fn();
    writeFileSync(file, JSON.stringify(value ?? null));
  });
  const [reaped, status] = (await wait2(pid))!;
  assert.equal(reaped, pid);
  let value: T;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    value = undefined as T;
  }
  return { code: status.exitstatus, value, pid };
}

describe('fork', () => {
  test('returns the pid in the parent and null in the child, which has its own pid', TIMEOUT, async () => {
    const file = `${tmp.dir}/ids.json`;
    const parent = process.pid;
    const pid = fork();
    if (pid === null) {
      writeFileSync(file, JSON.stringify({ pid: process.pid, Ppid: Process.ppid, Pid: Process.pid, ppid: process.ppid, child: isForkedChild() }));
      Process.exitNow(0);
    }
    const [, status] = (await wait2(pid!))!;
    assert.equal(status.exitstatus, 0);
    const ids = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(ids.pid, pid);
    assert.equal(ids.Pid, pid);
    assert.equal(ids.ppid, parent);
    assert.equal(ids.Ppid, parent);
    assert.equal(ids.child, true);
    assert.equal(process.pid, parent);
    assert.equal(isForkedChild(), false);
  });

  test('fork(fn) runs fn only in the child and exits 0; a throw exits 1', TIMEOUT, async () => {
    let ranHere = false;
    const ok = fork(() => {
      ranHere = true;
    });
    assert.equal(ranHere, false);
    assert.equal((await wait2(ok))![1].exitstatus, 0);
    const bad = fork(() => {
      throw new Error('expected failure in a forked child (test)');
    });
    assert.equal((await wait2(bad))![1].exitstatus, 1);
  });

  test('an async fn exits 0 when it resolves and 1 when it rejects', TIMEOUT, async () => {
    const r = await inChild(async () => {
      await new Promise((res) => setTimeout(res, 30));
      return 'resolved';
    });
    assert.deepEqual([r.code, r.value], [0, 'resolved']);
    const pid = fork(async () => {
      await new Promise((res) => setTimeout(res, 10));
      throw new Error('expected rejection in a forked child (test)');
    });
    assert.equal((await wait2(pid))![1].exitstatus, 1);
  });

  test('rejects a non-function', () => {
    assert.throws(() => fork(42 as unknown as () => void), TypeError);
  });

  test('copy-on-write: the child changes its copy, the parent keeps its own', TIMEOUT, async () => {
    const data = Array.from({ length: 10_000 }, (_, i) => ({ i }));
    const r = await inChild(() => {
      for (const d of data) d.i = -1;
      return data.reduce((s, d) => s + d.i, 0);
    });
    assert.equal(r.value, -10_000);
    assert.equal(data.reduce((s, d) => s + d.i, 0), (10_000 * 9_999) / 2);
  });

  test('Math.random and randomUUID (node:crypto and Web Crypto) differ between siblings and from the parent', TIMEOUT, async () => {
    globalThis.crypto.randomUUID(); // fills the cache that fork would copy
    const draw = () => ({ r: Math.random(), u: randomUUID(), c: crypto.randomUUID(), w: globalThis.crypto.randomUUID() });
    const a = await inChild(draw);
    const b = await inChild(draw);
    const mine = draw();
    assert.notEqual(a.value.r, b.value.r);
    assert.notEqual(a.value.r, mine.r);
    assert.notEqual(a.value.u, b.value.u);
    assert.notEqual(a.value.c, b.value.c);
    assert.notEqual(a.value.w, b.value.w);
    assert.ok(a.value.r >= 0 && a.value.r < 1);
  });

  test('compactHeap() shrinks the young generation and frees the garbage before a fork', TIMEOUT, () => {
    const space = (name: string) => v8.getHeapSpaceStatistics().find((s) => s.space_name === name)!;
    // Short-lived allocations grow the young generation; a big array becomes garbage.
    let keep: unknown[] = [];
    for (let i = 0; i < 2_000_000; i++) keep.push({ i, s: `item ${i}` });
    keep = [];
    const before = { young: space('new_space').space_size, used: v8.getHeapStatistics().used_heap_size };
    compactHeap();
    const after = { young: space('new_space').space_size, used: v8.getHeapStatistics().used_heap_size };
    assert.ok(before.young > after.young, `young generation ${before.young} -> ${after.young} bytes`);
    assert.ok(after.used < before.used, `heap used ${before.used} -> ${after.used} bytes`);
    assert.equal(keep.length, 0);
  });

  test('sharedMemory(): children forked after it and the parent see each other\'s writes; Atomics add up across processes', TIMEOUT, async () => {
    const words = new Int32Array(sharedMemory(4096));
    assert.equal(words.length, 1024);
    assert.deepEqual([...words.subarray(0, 4)], [0, 0, 0, 0]);
    const pids = [1, 2].map((n) =>
      fork(() => {
        words[n] = Process.pid;
        for (let i = 0; i < 100_000; i++) Atomics.add(words, 0, 1);
      }),
    );
    for (const pid of pids) assert.equal((await wait2(pid))![1].exitstatus, 0);
    assert.equal(Atomics.load(words, 0), 200_000);
    assert.deepEqual([words[1], words[2]], pids);
    assert.throws(() => sharedMemory(0), RangeError);
    assert.throws(() => sharedMemory('4096' as unknown as number), TypeError);
  });

  test("sharedMemory(): the kernel's refusal is a SystemCallError naming mmap (ENOMEM under an address-space limit)", TIMEOUT, async () => {
    const r = await inChild(() => {
      // In the child only: room for 64 MiB more address space, then ask for 1 GiB.
      const vmKiB = Number(/VmSize:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
      setrlimit('AS', vmKiB * 1024 + 64 * 2 ** 20);
      try {
        sharedMemory(2 ** 30);
        return 'mapped';
      } catch (err) {
        const e = err as SystemCallError;
        return `${e.name} ${e.code} ${e.errno} ${e.syscall}`;
      }
    });
    assert.equal(r.code, 0);
    assert.equal(r.value, 'SystemCallError ENOMEM 12 mmap');
  });

  test('the child has timers, fs, the threadpool, dns, crypto, http and child_process', TIMEOUT, async () => {
    const r = await inChild(async () => {
      const out: Record<string, unknown> = {};
      await new Promise((res) => setTimeout(res, 20));
      out.timer = true;
      out.fs = (await readFile('/proc/self/stat', 'utf8')).split(' ')[0];
      out.dns = (await dns.lookup('localhost')).address.length > 0;
      out.pbkdf2 = await new Promise((res, rej) =>
        crypto.pbkdf2('pw', 'salt', 1000, 16, 'sha256', (e, k) => (e ? rej(e) : res(k.toString('hex')))),
      );
      const server = http.createServer((_req, res) => res.end(`hi from ${process.pid}`));
      await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
      const port = (server.address() as { port: number }).port;
      out.http = await new Promise((res, rej) =>
        http.get(`http://127.0.0.1:${port}/`, (resp) => {
          let body = '';
          resp.on('data', (c) => (body += c));
          resp.on('end', () => res(body));
        }).on('error', rej),
      );
      await new Promise((res) => server.close(res));
      out.execFile = await new Promise((res) => execFile('/bin/sh', ['-c', 'echo $$'], (e, so) => res(e ? String(e) : so.trim().length > 0)));
      out.pid = process.pid;
      return out;
    });
    assert.equal(r.code, 0);
    const v = r.value as Record<string, unknown>;
    assert.equal(v.timer, true);
    assert.equal(v.fs, String(r.pid));
    assert.equal(v.dns, true);
    assert.equal(v.pbkdf2, crypto.pbkdf2Sync('pw', 'salt', 1000, 16, 'sha256').toString('hex'));
    assert.equal(v.http, `hi from ${r.pid}`);
    assert.equal(v.execFile, true);
  });

  test('a child can fork a grandchild and reap it', TIMEOUT, async () => {
    const r = await inChild(async () => {
      const g = fork(() => Process.exit(5));
      const [, st] = (await wait2(g))!;
      return st.exitstatus;
    });
    assert.deepEqual([r.code, r.value], [0, 5]);
  });

  test('leaves no child and no fd behind', TIMEOUT, async () => {
    const before = fdCount();
    for (let i = 0; i < 5; i++) await inChild(() => i);
    await assertNoChildren();
    assert.equal(fdCount(), before);
  });
});

describe('exit paths of a forked child', () => {
  // Each case runs in a fresh node so its output can be checked whole.
  const cases: Array<[string, string, number | string, RegExp?]> = [
    ['Process.exit(3)', `U.Process.exit(3)`, 3],
    ['process.exit(4)', `process.exit(4)`, 4],
    ['natural end with a pending timer', `setTimeout(() => console.log('timer ran'), 50)`, 0, /timer ran/],
    ['natural end with process.exitCode', `process.exitCode = 6; setTimeout(() => {}, 10)`, 6],
    ['uncaught exception in a timer', `setTimeout(() => { throw new Error('kaboom-timer') }, 10)`, 1, /kaboom-timer/],
    ['unhandled rejection', `Promise.reject(new Error('kaboom-reject'))`, 1, /kaboom-reject/],
    ['SIGTERM', `process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 5000)`, 'SIGTERM'],
  ];
  for (const [name, code, expected, output] of cases) {
    test(name, TIMEOUT, () => {
      const r = runScript(`
        let exits = 0, before = 0;
        process.on('exit', () => { exits++; console.log('exit listener ' + exits); });
        process.on('beforeExit', () => { before++; });
        U.atExit(() => console.log('atExit 1'));
        U.atExit(() => console.log('atExit 2'));
        const pid = U.fork();
        if (pid === null) {
          ${code}
        } else {
          const [, st] = await U.wait2(pid);
          console.log('STATUS ' + (st.exited ? st.exitstatus : 'SIG' + U.Signal.signame(st.termsig)));
          U.exitNow(0);
        }`);
      assert.equal(r.status, 0, r.stderr);
      const status = /STATUS (\S+)/.exec(r.stdout)?.[1];
      assert.equal(status, String(expected), r.stdout + r.stderr);
      const all = r.stdout + r.stderr;
      if (output) assert.match(all, output);
      if (typeof expected === 'number') {
        // 'exit' listeners and atExit handlers ran exactly once, atExit in reverse order.
        assert.equal(r.stdout.match(/exit listener/g)?.length, 1, r.stdout);
        assert.match(r.stdout, /atExit 2\natExit 1/);
        assert.equal(r.stdout.match(/atExit 1/g)?.length, 1);
      }
    });
  }

  test('exitNow skips atExit handlers and exit listeners', TIMEOUT, () => {
    const r = runScript(`
      U.atExit(() => console.log('atExit ran'));
      process.on('exit', () => console.log('exit listener ran'));
      const pid = U.fork(() => U.exitNow(9));
      const [, st] = await U.wait2(pid);
      console.log('STATUS ' + st.exitstatus);
      U.exitNow(0);`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /STATUS 9/);
    assert.doesNotMatch(r.stdout, /ran/);
  });

  test('beforeExit is emitted once at the natural end, and work it schedules runs', TIMEOUT, () => {
    const r = runScript(`
      const pid = U.fork();
      if (pid === null) {
        let n = 0;
        process.on('beforeExit', () => { if (n++ === 0) setTimeout(() => console.log('scheduled by beforeExit'), 10); });
        process.on('exit', () => console.log('beforeExit count ' + n));
      } else {
        const [, st] = await U.wait2(pid);
        console.log('STATUS ' + st.exitstatus);
      }`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /scheduled by beforeExit/);
    assert.match(r.stdout, /beforeExit count 2/);
    assert.match(r.stdout, /STATUS 0/);
  });
});

describe('fork refuses when it cannot be safe', () => {
  test('without --single-threaded, with a message that says what to do', TIMEOUT, () => {
    const r = runScript(
      `try { U.fork(); console.log('forked!') } catch (e) { console.log(e.name + ': ' + e.message) }`,
      { singleThreaded: false },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /ForkSafetyError: .*--single-threaded/);
    assert.match(r.stdout, /unixproc run/);
  });

  test('from a worker thread', TIMEOUT, async () => {
    const url = new URL('../src/index.js', import.meta.url).href;
    const worker = new Worker(
      `import(${JSON.stringify(url)}).then((U) => { try { U.fork(); require('worker_threads').parentPort.postMessage('forked') } catch (e) { require('worker_threads').parentPort.postMessage(e.name + ': ' + e.message) } })`,
      { eval: true },
    );
    const msg = await new Promise<string>((res) => worker.once('message', res));
    await worker.terminate();
    assert.match(msg, /ForkSafetyError: .*worker thread/);
  });

  test('while a worker thread is alive, and again once it is gone', TIMEOUT, async () => {
    // Make sure the threadpool exists, so the thread census is exact.
    await readFile('/proc/self/stat');
    (await inChild(() => 1)).code;
    const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
    await new Promise((res) => worker.once('online', res));
    assert.throws(() => fork(), (e: Error) => e instanceof ForkSafetyError && /threads are running/.test(e.message));
    await worker.terminate();
    // Thread exit is asynchronous with respect to 'exit' of the Worker object.
    let r: { code: number | null } | null = null;
    for (let i = 0; i < 100 && !r; i++) {
      try {
        r = await inChild(() => 1);
      } catch (e) {
        if (!(e instanceof ForkSafetyError)) throw e;
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    assert.equal(r?.code, 0);
  });
});
