// The wait family: statuses, WNOHANG, ECHILD, waiting for any child or a process group,
// waitall, detach, the promise forms never blocking the loop, and politeness to
// child_process (whose children unixproc must never reap).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import {
  detach,
  fork,
  kill,
  onForkChild,
  Process,
  setpgid,
  Status,
  SystemCallError,
  wait,
  wait2,
  wait2Sync,
  waitall,
  waitallSync,
  waitpid2,
  waitSync,
  WNOHANG,
  WUNTRACED,
} from '../src/index.js';
import { assertNoChildren, procInfo, quietStdout, runScript, sleep, TIMEOUT, waitFor } from './helpers.js';

// node:test's reports still queued in this process are copied into every child, whose
// loop flushes them on the shared stdout (as extra, sometimes garbled, reports that can
// leave the runner without results) before the fork block runs: silence each child's stdout.
onForkChild(quietStdout);

/** A child that exits with code after ms (a sync block: it never returns from fork in the child). */
function child(code: number, ms = 0): number {
  return fork(() => {
    if (ms) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    Process.exitNow(code);
  })!;
}

const isEchild = (e: unknown) => e instanceof SystemCallError && e.code === 'ECHILD' && e.errno === 10 && e.syscall === 'waitpid';

describe('Status', () => {
  test('decodes exits, signals and stops like Ruby', () => {
    const exited = new Status(12, 7 << 8);
    assert.deepEqual([exited.exited, exited.exitstatus, exited.success, exited.signaled, exited.termsig], [true, 7, false, false, null]);
    assert.equal(String(exited), 'pid 12 exit 7');
    assert.equal(new Status(1, 0).success, true);
    const killed = new Status(13, 15);
    assert.deepEqual([killed.exited, killed.exitstatus, killed.signaled, killed.termsig, killed.success], [false, null, true, 15, null]);
    assert.equal(String(killed), 'pid 13 SIGTERM (signal 15)');
    const core = new Status(14, 6 | 0x80);
    assert.equal(core.coredump, true);
    assert.equal(String(core), 'pid 14 SIGABRT (signal 6) (core dumped)');
    const stopped = new Status(15, (19 << 8) | 0x7f);
    assert.deepEqual([stopped.stopped, stopped.stopsig, stopped.exited, stopped.signaled], [true, 19, false, false]);
    assert.equal(String(stopped), 'pid 15 stopped SIGSTOP (signal 19)');
    assert.equal(exited.inspect(), '#<Process::Status: pid 12 exit 7>');
  });
});

describe('wait', () => {
  test('wait2 reports exit statuses 111 and 112 (the book)', TIMEOUT, async () => {
    const a = child(111);
    const b = child(112);
    const seen = new Map<number, number | null>();
    for (let i = 0; i < 2; i++) {
      const [pid, st] = (await wait2())!;
      seen.set(pid, st.exitstatus);
    }
    assert.equal(seen.get(a), 111);
    assert.equal(seen.get(b), 112);
    await assertNoChildren();
  });

  test('waitpid2 waits for the favourite child only', TIMEOUT, async () => {
    const others = [child(1), child(2)];
    const favourite = child(3, 100);
    const [pid, st] = (await waitpid2(favourite))!;
    assert.deepEqual([pid, st.exitstatus], [favourite, 3]);
    const rest = await waitall();
    assert.deepEqual(rest.map(([p]) => p).sort(), others.sort());
  });

  test('queued exits are all collected after the fact', TIMEOUT, async () => {
    const pids = [child(0), child(0), child(0)];
    await waitFor(() => pids.every((p) => procInfo(p)?.state === 'Z'), 10_000, 'zombies');
    const got: number[] = [];
    for (let i = 0; i < 3; i++) got.push((await wait())!);
    assert.deepEqual(got.sort(), pids.sort());
  });

  test('WNOHANG returns null while the child runs', TIMEOUT, async () => {
    const pid = child(4, 300);
    assert.equal(await wait(pid, WNOHANG), null);
    assert.equal(waitSync(pid, WNOHANG), null);
    const [, st] = wait2Sync(pid)!;
    assert.equal(st.exitstatus, 4);
  });

  test('ECHILD when there is nothing to wait for, in every form', TIMEOUT, async () => {
    await assertNoChildren();
    await assert.rejects(wait(), isEchild);
    await assert.rejects(wait2(-1, WNOHANG), isEchild);
    assert.throws(() => waitSync(), isEchild);
    assert.throws(() => waitSync(1), isEchild);
    assert.deepEqual(await waitall(), []);
    assert.deepEqual(waitallSync(), []);
  });

  test('bad arguments are TypeError or RangeError naming what was wrong', async () => {
    await assert.rejects(wait('1' as unknown as number), (e: Error) => e instanceof TypeError && /pid/.test(e.message));
    await assert.rejects(wait(1.5), (e: Error) => e instanceof RangeError && /pid/.test(e.message));
    assert.throws(() => waitSync(-1, 1 << 20), (e: Error) => e instanceof RangeError && /flags/.test(e.message));
    assert.throws(() => detach(0), RangeError);
  });

  test('the promise forms do not block the event loop', TIMEOUT, async () => {
    const pid = child(0, 400);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    await wait(pid);
    clearInterval(timer);
    assert.ok(ticks >= 5, `only ${ticks} timer ticks ran while waiting`);
  });

  test('waitSync blocks until the child exits', TIMEOUT, () => {
    const pid = child(9, 200);
    const [got, st] = wait2Sync()!;
    assert.deepEqual([got, st.exitstatus], [pid, 9]);
  });

  test('signalled and stopped children', TIMEOUT, async () => {
    const pid = fork(() => {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30_000);
      Process.exitNow(0);
    })!;
    kill('STOP', pid);
    const [, stopped] = (await wait2(pid, WUNTRACED))!;
    assert.equal(stopped.stopped, true);
    assert.equal(stopped.stopsig, 19);
    kill('KILL', pid);
    const [, killed] = (await wait2(pid))!;
    assert.deepEqual([killed.signaled, killed.termsig, killed.exitstatus], [true, 9, null]);
  });

  test('a process group: wait(-pgid) and wait(0)', TIMEOUT, async () => {
    const inGroup = fork(() => {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      Process.exitNow(21);
    })!;
    setpgid(inGroup, inGroup);
    const sameGroup = child(22, 50);
    const [p1, s1] = (await wait2(-inGroup))!;
    assert.deepEqual([p1, s1.exitstatus], [inGroup, 21]);
    const [p2, s2] = (await wait2(0))!;
    assert.deepEqual([p2, s2.exitstatus], [sameGroup, 22]);
  });

  test('detach reaps in the background: no zombie remains', TIMEOUT, async () => {
    const pid = child(5, 100);
    const handle = detach(pid);
    assert.equal(handle.pid, pid);
    const st = await handle;
    assert.equal(st?.exitstatus, 5);
    assert.equal(procInfo(pid), null);
  });

  test('detach of a pid that is not (or no longer) a child resolves to null, never rejects', TIMEOUT, async () => {
    // Not ours: pid 1, and a pid this process never forked.
    assert.equal(await detach(1), null);
    // Reaped by someone else after detach began waiting.
    const pid = child(0, 200);
    const handle = detach(pid);
    const [reaped] = wait2Sync(pid)!;
    assert.equal(reaped, pid);
    assert.equal(await handle, null);
    // Not awaited at all: an unhandled rejection would end the script with status 1.
    const r = runScript(`
      U.Process.detach(1);
      const pid = U.fork(() => U.exitNow(0));
      U.waitSync(pid);
      U.Process.detach(pid);
      setTimeout(() => console.log('still running'), 100);`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'still running\n');
    await assertNoChildren();
  });

  test('never reaps a child_process child: its exit event still fires', TIMEOUT, async () => {
    const cp = spawn('/bin/sh', ['-c', 'exit 7']);
    const exited = new Promise<number | null>((res) => cp.on('exit', (code) => res(code)));
    const mine = child(1, 100);
    // Waiting for "any" child concerns only ours, even though the shell exits first.
    const [pid] = (await wait2())!;
    assert.equal(pid, mine);
    assert.equal(await exited, 7);
    // Asked for by pid, a child_process child is observed but left for libuv to reap.
    const cp2 = spawn('/bin/sh', ['-c', 'exit 3']);
    const exited2 = new Promise<number | null>((res) => cp2.on('exit', (code) => res(code)));
    const [, st] = (await wait2(cp2.pid!))!;
    assert.equal(st.exitstatus, 3);
    assert.equal(await exited2, 3);
    await assertNoChildren();
  });

  test('waitall collects every child', TIMEOUT, async () => {
    const pids = [child(0), child(1, 50), child(2, 100)];
    const all = await waitall();
    assert.deepEqual(all.map(([p, s]) => [p, s.exitstatus]).sort(), pids.map((p, i) => [p, i]).sort());
    await sleep(10);
    await assertNoChildren();
  });
});
