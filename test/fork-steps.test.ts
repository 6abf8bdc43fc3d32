// The native steps around fork(2) report what they cannot do: a refusal before fork(2)
// is a SystemCallError in the caller, which loses nothing and can fork again later.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runScript, TIMEOUT } from './helpers.js';

describe('fork refusals from the native steps', () => {
  test('a forked child at its RLIMIT_NPROC gets EAGAIN from fork(), not SIGABRT from libuv', TIMEOUT, () => {
    // A child's libuv threadpool starts afresh on its first request; libuv aborts the
    // process when it cannot. root is exempt from RLIMIT_NPROC, so the child drops to nobody.
    const r = runScript(`
      const pid = U.fork(() => {
        if (process.getuid() === 0) { process.setgid(65534); process.setuid(65534); }
        U.setrlimit('NPROC', 1);
        try {
          U.fork(() => {});
          console.log('forked');
        } catch (e) {
          console.log(JSON.stringify({ name: e.name, code: e.code, errno: e.errno, syscall: e.syscall }));
        }
      });
      const [, st] = await U.waitpid2(pid);
      console.log(String(st).replace(/^pid \\d+ /, ''));
    `);
    assert.equal(r.status, 0, r.stderr);
    const [line, status] = r.stdout.trim().split('\n');
    assert.deepEqual(JSON.parse(line), { name: 'SystemCallError', code: 'EAGAIN', errno: 11, syscall: 'fork' });
    assert.equal(status, 'exit 0');
  });

  test('out of fds, fork() fails with EMFILE naming the call, and forks again once fds are free', TIMEOUT, () => {
    const r = runScript(`
      import { openSync, closeSync } from 'node:fs';
      const [soft, hard] = U.getrlimit('NOFILE');
      U.setrlimit('NOFILE', 64, hard);
      const held = [];
      try { for (;;) held.push(openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
      let refusal;
      try { U.fork(() => {}); } catch (e) { refusal = { name: e.name, code: e.code, syscall: e.syscall }; }
      for (const fd of held) closeSync(fd);
      U.setrlimit('NOFILE', soft, hard);
      const [, st] = await U.waitpid2(U.fork(() => process.exit(4)));
      console.log(JSON.stringify({ refusal, after: st.exitstatus }));
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { refusal: { name: 'SystemCallError', code: 'EMFILE', syscall: 'open' }, after: 4 });
  });
});
