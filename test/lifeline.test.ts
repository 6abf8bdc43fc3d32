// dieWithParent(): a child that must not outlive its parent gets the kernel's signal when
// the parent dies, even when the parent was already gone at the call.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dieWithParent } from '../src/index.js';
import { runScript, TIMEOUT } from './helpers.js';

describe('dieWithParent', () => {
  test('a grandchild dies with its parent (SIGKILLed), and one whose parent is already gone dies at the call', TIMEOUT, () => {
    const r = runScript(`
      import { readFileSync } from 'node:fs';
      const alive = (pid) => { try { const s = readFileSync('/proc/' + pid + '/stat', 'utf8'); return s.slice(s.lastIndexOf(')') + 2)[0] !== 'Z'; } catch { return false; } };
      U.setSubreaper(true); // orphans come to this process, which can see and reap them
      const [r1, w1] = U.pipe();
      // A fork block's process ends when the block settles (Ruby's fork do ... end), so each
      // block here waits on a promise that never settles until a signal ends it.
      const forever = () => new Promise(() => setInterval(() => {}, 1000));
      const middle = U.fork(async () => {
        const me = process.pid;
        const g = U.fork(async () => { U.dieWithParent(me); await forever(); });
        w1.puts(String(g));
        await forever();
      });
      w1.close();
      const grandchild = Number(r1.gets());
      U.kill('KILL', middle);
      await U.waitpid2(middle);
      const [, st] = await U.waitpid2(grandchild);
      // The parent is gone before the call: the child signals itself at once.
      const late = U.fork(async () => { U.dieWithParent(1); await forever(); });
      const [, st2] = await U.waitpid2(late);
      console.log(JSON.stringify({ grandchild: st.termsig ?? st.inspect(), late: st2.termsig ?? st2.inspect(), left: alive(grandchild) }));
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { grandchild: 9, late: 9, left: false });
  });

  test('bad arguments are TypeError and RangeError naming them', () => {
    assert.throws(() => dieWithParent(0), (e: Error) => e instanceof TypeError && /expectedParent/.test(e.message));
    assert.throws(() => dieWithParent(1.5 as number), TypeError);
    assert.throws(() => dieWithParent(process.ppid, 'NOPE'), RangeError);
  });
});
