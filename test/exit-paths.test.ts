// Exit paths: the exit status of out-of-range codes, exit inside an atExit handler, the
// order of the EXIT trap and atExit handlers, and TERM/INT at their default running the
// exit sequence before the process dies of the signal, in a plain node and in a forked
// child. Every path ends a process, so each runs in a fresh node (runScript).
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Process } from '../src/index.js';
import { assertNoChildren, runScript, scratch, TIMEOUT } from './helpers.js';

describe('exit codes', () => {
  test('an integer outside 0..255 exits with its low 8 bits; booleans are 0 and 1', TIMEOUT, () => {
    const cases: Array<[string, number]> = [
      ['U.exit(256)', 0],
      ['U.exit(257)', 1],
      ['U.exit(-1)', 255],
      ['U.exit(2 ** 40 + 7)', 7],
      ['U.exit(true)', 0],
      ['U.exit(false)', 1],
      ['U.exit()', 0],
      ['U.exitNow(256)', 0],
      ['U.exitNow(-1)', 255],
      ['U.exitNow(true)', 0],
      ['U.exitNow()', 1],
    ];
    for (const [call, status] of cases) {
      const r = runScript(`U.atExit(() => {}); ${call};`);
      assert.equal(r.status, status, `${call}: ${r.stderr}`);
      assert.equal(r.signal, null, call);
    }
  });

  test('only a non-integer is an argument error, naming the argument', () => {
    for (const bad of [1.5, NaN, Infinity]) {
      assert.throws(() => Process.exit(bad), (e: Error) => e instanceof RangeError && /exit\(code\)/.test(e.message), String(bad));
      assert.throws(() => Process.exitNow(bad), (e: Error) => e instanceof RangeError && /exitNow\(code\)/.test(e.message), String(bad));
    }
    for (const bad of ['x', '0', null, {}]) {
      assert.throws(() => Process.exit(bad as unknown as number), (e: Error) => e instanceof TypeError && /code/.test(e.message));
      assert.throws(() => Process.exitNow(bad as unknown as number), TypeError);
    }
  });
});

describe('the exit sequence', () => {
  test('exit(n) inside an atExit handler: the remaining handlers and exit listeners run, then the status is n', TIMEOUT, () => {
    const r = runScript(`
      U.atExit(() => console.log('registered first'));
      U.atExit(() => { console.log('calls exit(3)'); U.exit(3); console.log('not reached'); });
      U.atExit(() => console.log('registered last'));
      process.on('exit', (code) => console.log('exit listener ' + process.exitCode));
      U.exit(0);`);
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, 'registered last\ncalls exit(3)\nregistered first\nexit listener 3\n');
    assert.equal(r.stderr, '');
  });

  test('exit(n) in the EXIT trap, abort() in a handler, the last one wins; also in a forked child', TIMEOUT, () => {
    const body = `
      U.atExit(() => console.log('handler ' + process.pid));
      U.atExit(() => U.abort('aborting in a handler'));
      U.trap('EXIT', () => { console.log('trap ' + process.pid); U.exit(5); });`;
    const plain = runScript(`${body}\nU.exit(0);`);
    assert.equal(plain.status, 1, plain.stderr);
    assert.match(plain.stdout, /^trap \d+\nhandler \d+\n$/);
    assert.equal(plain.stderr, 'aborting in a handler\n');

    const forked = runScript(`
      const pid = U.fork(() => {${body}\nU.exit(0); });
      const [, st] = await U.wait2(pid);
      console.log('child ' + st);
      U.exitNow(0);`);
    assert.equal(forked.status, 0, forked.stderr);
    const lines = forked.stdout.trim().split('\n');
    assert.deepEqual(lines.map((l) => l.replace(/\d+/, 'N')), ['trap N', 'handler N', 'child pid N exit 1']);
    assert.equal(forked.stderr, 'aborting in a handler\n');
  });

  test('the EXIT trap runs first, then atExit handlers in reverse order, whichever was registered first', TIMEOUT, () => {
    const atExits = `U.atExit(() => console.log('atExit 1')); U.atExit(() => console.log('atExit 2'));`;
    const exitTrap = `U.trap('EXIT', () => console.log('EXIT trap'));`;
    const expected = 'EXIT trap\natExit 2\natExit 1\n';
    for (const order of [`${atExits} ${exitTrap}`, `${exitTrap} ${atExits}`, `U.atExit(() => console.log('atExit 1')); U.trap(0, () => console.log('EXIT trap')); U.atExit(() => console.log('atExit 2'));`]) {
      // Through exit and through the end of the program.
      for (const end of ['U.exit(0);', '']) {
        const r = runScript(`${order}\n${end}`);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, expected, `${order} ${end}`);
      }
    }
    // Replacing the EXIT trap, and clearing it, leaves the atExit handlers alone.
    const r = runScript(`
      const first = () => console.log('old trap');
      U.trap('EXIT', first);
      console.log(U.trap('EXIT', () => console.log('new trap')) === first);
      U.atExit(() => console.log('atExit'));`);
    assert.equal(r.stdout, 'true\nnew trap\natExit\n');
    const cleared = runScript(`U.trap('EXIT', () => console.log('trap')); U.atExit(() => console.log('atExit')); U.trap('EXIT', 'DEFAULT');`);
    assert.equal(cleared.stdout, 'atExit\n');
  });
});

describe('TERM and INT at their default', () => {
  /** A script that removes a pid file in an atExit handler, then is sent sig by itself. */
  function pidFileScript(pidFile: string, sig: string, setup = ''): string {
    return `
      import { writeFileSync, rmSync } from 'node:fs';
      writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
      U.atExit(() => { rmSync(${JSON.stringify(pidFile)}); console.log('atExit ran'); });
      process.on('exit', (code) => console.log('exit listener ' + code));
      ${setup}
      U.kill(${JSON.stringify(sig)}, process.pid);
      setTimeout(() => console.log('not reached'), 20_000);`;
  }

  for (const [sig, num] of [['TERM', 15], ['INT', 2]] as const) {
    test(`SIG${sig}: atExit handlers and exit listeners run, then the process dies of SIG${sig}`, TIMEOUT, () => {
      const tmp = scratch();
      try {
        const pidFile = join(tmp.dir, 'app.pid');
        const r = runScript(pidFileScript(pidFile, sig));
        assert.equal(r.status, null, r.stderr);
        assert.equal(r.signal, `SIG${sig}`);
        assert.equal(r.stdout, `atExit ran\nexit listener ${128 + num}\n`);
        assert.equal(existsSync(pidFile), false, 'the pid file was cleaned up');
      } finally {
        tmp.cleanup();
      }
    });
  }

  test('in a forked child, with handlers it inherited and its own: termsig 15 for the parent', TIMEOUT, async () => {
    const r = runScript(`
      U.atExit(() => console.log('inherited handler in ' + (process.pid === parent ? 'parent' : 'child')));
      const parent = process.pid;
      const pid = U.fork();
      if (pid === null) {
        U.atExit(() => console.log('own handler'));
        process.on('exit', () => console.log('child exit listener'));
        U.kill('TERM', process.pid);
        setTimeout(() => console.log('not reached'), 20_000);
        await new Promise(() => {});
      }
      const [, st] = await U.wait2(pid);
      console.log('termsig ' + st.termsig + ' exited ' + st.exited);`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'own handler\ninherited handler in child\nchild exit listener\ntermsig 15 exited false\ninherited handler in parent\n');
    await assertNoChildren();
  });

  test('a forked child sent INT by its parent dies of INT after its handlers ran', TIMEOUT, async () => {
    const r = runScript(`
      const [rd, wr] = U.pipe();
      const pid = U.fork();
      if (pid === null) {
        rd.close();
        U.atExit(() => console.log('child cleanup'));
        wr.write('ready');
        wr.close();
        setTimeout(() => console.log('not reached'), 20_000);
        await new Promise(() => {});
      }
      wr.close();
      rd.read(5);
      rd.close();
      U.kill('INT', pid);
      const [, st] = await U.wait2(pid);
      console.log(String(st).replace(/\\d+/, 'N'));`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'child cleanup\npid N SIGINT (signal 2)\n');
    await assertNoChildren();
  });

  test('without atExit handlers or an EXIT trap, TERM is the bare kernel default: no exit listeners', TIMEOUT, () => {
    const r = runScript(`
      process.on('exit', () => console.log('exit listener'));
      console.log('listeners ' + process.listenerCount('SIGTERM'));
      U.kill('TERM', process.pid);
      setTimeout(() => {}, 20_000);`);
    assert.equal(r.signal, 'SIGTERM', r.stderr);
    assert.equal(r.stdout, 'listeners 0\n');
  });

  test("the user's own process.on('SIGTERM') listener keeps the signal: nothing dies, handlers run once at exit", TIMEOUT, () => {
    const r = runScript(`
      U.atExit(() => console.log('atExit ran'));
      const idle = setTimeout(() => {}, 20_000);
      process.on('SIGTERM', () => {
        console.log('user listener');
        clearTimeout(idle);
        setTimeout(() => console.log('still alive'), 50);
      });
      U.kill('TERM', process.pid);`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.signal, null);
    assert.equal(r.stdout, 'user listener\nstill alive\natExit ran\n');
  });

  test("SYSTEM_DEFAULT is the bare kernel default; trap(sig, 'DEFAULT') brings the Ruby default back", TIMEOUT, () => {
    const tmp = scratch();
    try {
      const pidFile = join(tmp.dir, 'app.pid');
      const bare = runScript(pidFileScript(pidFile, 'TERM', `U.trap('TERM', 'SYSTEM_DEFAULT');`));
      assert.equal(bare.signal, 'SIGTERM', bare.stderr);
      assert.equal(bare.stdout, '');
      assert.equal(existsSync(pidFile), true, 'no handler ran');

      const back = runScript(pidFileScript(pidFile, 'TERM', `U.trap('TERM', () => {}); console.log(U.trap('TERM', 'DEFAULT') !== 'DEFAULT');`));
      assert.equal(back.signal, 'SIGTERM', back.stderr);
      assert.equal(back.stdout, 'true\natExit ran\nexit listener 143\n');
      assert.equal(existsSync(pidFile), false);

      // A trap function keeps the signal; the process goes on and exits normally.
      writeFileSync(pidFile, '');
      const trapped = runScript(pidFileScript(pidFile, 'TERM', `U.trap('TERM', (n) => { console.log('trapped ' + n); U.exit(4); });`));
      assert.equal(trapped.status, 4, trapped.stderr);
      assert.equal(trapped.stdout, 'trapped 15\natExit ran\nexit listener 4\n');
    } finally {
      tmp.cleanup();
    }
  });

  test('the EXIT trap alone is enough; exit(n) in a handler during a TERM death chooses status n', TIMEOUT, () => {
    const r = runScript(`
      U.trap('EXIT', () => console.log('EXIT trap'));
      U.kill('TERM', process.pid);
      setTimeout(() => {}, 20_000);`);
    assert.equal(r.signal, 'SIGTERM', r.stderr);
    assert.equal(r.stdout, 'EXIT trap\n');
    // As in Ruby, where exit in an at_exit block replaces the SignalException with SystemExit.
    const chosen = runScript(`
      U.atExit(() => console.log('then this one'));
      U.atExit(() => U.exit(9));
      U.kill('INT', process.pid);
      setTimeout(() => {}, 20_000);`);
    assert.equal(chosen.status, 9, chosen.stderr);
    assert.equal(chosen.stdout, 'then this one\n');
  });
});
