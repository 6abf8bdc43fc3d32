// kill and trap: names and numbers, probing with 0, process groups, the kernel's refusals,
// chaining handlers, IGNORE/DEFAULT/SYSTEM_DEFAULT/EXIT, and a CHLD handler under load.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fork, kill, onForkChild, Process, setpgid, Signal, SystemCallError, trap, wait2, waitSync, WNOHANG } from '../src/index.js';
import { assertNoChildren, quietStdout, runScript, sleep, TIMEOUT, waitFor } from './helpers.js';

// node:test's reports still queued in this process are copied into every child, whose
// loop flushes them on the shared stdout (as extra, sometimes garbled, reports that can
// leave the runner without results) before the fork block runs: silence each child's stdout.
onForkChild(quietStdout);

function sleeper(ms = 30_000): number {
  return fork(() => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    Process.exitNow(0);
  })!;
}

describe('Signal', () => {
  test('list and signame', () => {
    const list = Signal.list();
    assert.equal(list.TERM, 15);
    assert.equal(list.KILL, 9);
    assert.equal(list.EXIT, 0);
    assert.equal(Signal.signame(2), 'INT');
    assert.equal(Signal.signame(0), 'EXIT');
    assert.equal(Signal.signame(999), undefined);
    assert.equal(Signal.signame(-1), undefined);
    assert.equal(Signal.signame(1.5), undefined);
    for (const bad of ['hello', '15', null, undefined]) {
      assert.throws(() => Signal.signame(bad as unknown as number), (e: Error) => e instanceof TypeError && /num/.test(e.message), String(bad));
    }
  });
});

describe('kill', () => {
  test('by name, SIG name, lowercase and number', TIMEOUT, async () => {
    for (const sig of ['TERM', 'SIGTERM', 'sigterm', 15]) {
      const pid = sleeper();
      assert.equal(kill(sig, pid), 1);
      const [, st] = (await wait2(pid))!;
      assert.equal(st.termsig, 15, `kill(${sig})`);
    }
  });

  test('signal 0 probes; ESRCH for a process that is gone', TIMEOUT, async () => {
    const pid = sleeper();
    assert.equal(kill(0, pid), 1);
    kill('KILL', pid);
    await wait2(pid);
    assert.throws(
      () => kill(0, pid),
      (e: unknown) => e instanceof SystemCallError && e.code === 'ESRCH' && e.errno === 3 && e.syscall === 'kill',
    );
  });

  test('EPERM for a process we may not signal', TIMEOUT, async () => {
    const parent = process.pid;
    const pid = fork(() => {
      if (process.getuid!() === 0) process.setuid!(65534); // drop to nobody: root may signal anyone
      try {
        kill(0, parent);
        Process.exitNow(1);
      } catch (e) {
        Process.exitNow(e instanceof SystemCallError && e.code === 'EPERM' && e.errno === 1 ? 0 : 2);
      }
    })!;
    assert.equal((await wait2(pid))![1].exitstatus, 0);
  });

  test('a negative pid or signal signals the whole process group', TIMEOUT, async () => {
    const leader = sleeper();
    setpgid(leader, leader);
    const member = sleeper();
    setpgid(member, leader);
    kill('TERM', -leader);
    const statuses = [(await wait2(leader))![1], (await wait2(member))![1]];
    assert.deepEqual(statuses.map((s) => s.termsig), [15, 15]);
    const a = sleeper();
    setpgid(a, a);
    kill('-KILL', a);
    assert.equal((await wait2(a))![1].termsig, 9);
  });

  test('bad input names what was wrong', () => {
    assert.throws(() => kill('BOGUS', process.pid), (e: Error) => e instanceof RangeError && /BOGUS/.test(e.message));
    assert.throws(() => kill(12345, process.pid), RangeError);
    assert.throws(() => kill({} as unknown as string, process.pid), TypeError);
    assert.throws(() => kill('TERM'), TypeError);
    assert.throws(() => kill('TERM', 1.5), RangeError);
    assert.throws(() => kill('TERM', '1' as unknown as number), TypeError);
  });
});

describe('trap', () => {
  test('runs the handler with the signal number and returns the previous handler for chaining', TIMEOUT, async () => {
    const calls: string[] = [];
    const first = (n: number) => calls.push(`first ${n}`);
    // WINCH: USR1 and USR2 may belong to Node itself (inspector, diagnostic reports).
    const before = trap('WINCH', first);
    assert.equal(before, 'DEFAULT');
    const previous = trap('SIGWINCH', (n) => {
      calls.push(`second ${n}`);
      if (typeof previous === 'function') previous(n);
    });
    assert.equal(previous, first);
    kill('WINCH', process.pid);
    await waitFor(() => calls.length >= 2, 5_000, 'handlers');
    assert.deepEqual(calls, ['second 28', 'first 28']);
    assert.equal(typeof trap('WINCH', 'DEFAULT'), 'function');
    assert.equal(process.listenerCount('SIGWINCH'), 0);
  });

  test('a signal caught before a handler is replaced reaches the new handler', TIMEOUT, async () => {
    const got: string[] = [];
    trap('WINCH', () => got.push('old'));
    kill('WINCH', process.pid); // caught now, run on the loop later
    trap('WINCH', () => got.push('new'));
    await waitFor(() => got.length > 0, 5_000, 'the handler');
    await sleep(20);
    trap('WINCH', 'DEFAULT');
    assert.deepEqual(got, ['new']);
  });

  test('IGNORE ignores at the kernel level, SYSTEM_DEFAULT restores it', TIMEOUT, async () => {
    const pid = fork(() => {
      trap('TERM', 'IGNORE');
      kill('TERM', process.pid); // ignored: the child goes on
      trap('HUP', 'SYSTEM_DEFAULT');
      kill('HUP', process.pid); // terminates the child
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5_000);
      Process.exitNow(0);
    })!;
    const [, st] = (await wait2(pid))!;
    assert.equal(st.termsig, 1);
  });

  test("null ignores the signal (Ruby's nil); undefined is a TypeError", TIMEOUT, () => {
    // In a fresh node: the signal is really sent, and this process's TERM stays as it was.
    const r = runScript(`
      console.log(U.trap('TERM', null));
      U.kill('TERM', process.pid); // ignored by the kernel: the script goes on
      setTimeout(() => {
        console.log(U.trap('TERM', null));
        try { U.trap('TERM', undefined); } catch (e) { console.log(e.constructor.name + ' ' + /handler/.test(e.message)); }
      }, 50);`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.signal, null);
    assert.equal(r.stdout, 'DEFAULT\nIGNORE\nTypeError true\n');
  });

  test('EXIT as a command exits 0 on the signal; trap(EXIT, fn) runs at exit', TIMEOUT, () => {
    const r = runScript(`
      U.trap('EXIT', () => console.log('exit trap ran'));
      U.trap('TERM', 'EXIT');
      U.kill('TERM', process.pid);
      setTimeout(() => console.log('not reached'), 5000);`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /exit trap ran/);
    assert.doesNotMatch(r.stdout, /not reached/);
  });

  test('refuses KILL, STOP and the synchronous fault signals, and unknown commands', () => {
    assert.throws(() => trap('KILL', () => {}), (e: Error) => e instanceof RangeError && /SIGKILL/.test(e.message));
    assert.throws(() => trap('STOP', 'IGNORE'), RangeError);
    assert.throws(() => trap('SEGV', () => {}), RangeError);
    assert.throws(() => trap('INT', 'BOGUS' as 'IGNORE'), (e: Error) => e instanceof RangeError && /BOGUS/.test(e.message));
    assert.throws(() => trap('INT', 42 as unknown as 'IGNORE'), TypeError);
    assert.throws(() => trap('NOPE', () => {}), RangeError);
  });

  test('trapping INT and chaining the old handler (the book)', TIMEOUT, () => {
    const r = runScript(`
      const old = U.trap('INT', () => console.log('first handler'));
      const prev = U.trap('INT', (n) => { console.log('second handler ' + n); prev(n); U.exit(0); });
      U.kill('INT', process.pid);
      setTimeout(() => {}, 5000);`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /second handler 2\nfirst handler/);
  });

  test('a CHLD handler with a WNOHANG loop reaps 200 children exiting at once', { timeout: 180_000 }, async () => {
    const N = 200;
    const reaped = new Set<number>();
    let handlerRuns = 0;
    trap('CHLD', () => {
      handlerRuns++;
      // Signals coalesce: one CHLD may stand for many exits, so reap until nothing is left.
      for (;;) {
        let pid: number | null;
        try {
          pid = waitSync(-1, WNOHANG);
        } catch (e) {
          if ((e as SystemCallError).code === 'ECHILD') break;
          throw e;
        }
        if (pid === null) break;
        reaped.add(pid);
      }
    });
    try {
      // Every child blocks on a pipe; closing the write end releases them all at once.
      const { pipe } = await import('../src/io.js');
      const [r, w] = pipe();
      const pids: number[] = [];
      for (let i = 0; i < N; i++) {
        pids.push(
          fork(() => {
            w.close();
            r.read(); // EOF once the parent closes its write end
            Process.exitNow(0);
          })!,
        );
      }
      r.close();
      w.close();
      await waitFor(() => reaped.size === N, 120_000, `${N} reaped (have ${reaped.size})`);
      assert.deepEqual([...reaped].sort(), pids.sort());
      assert.ok(handlerRuns >= 1);
      await assertNoChildren();
    } finally {
      trap('CHLD', 'DEFAULT');
    }
  });
});

await sleep(0);
