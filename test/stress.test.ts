// Stress: 2,000 fork/exit cycles from a busy parent (timers, fs, crypto, zlib and
// allocation running while it forks), children that allocate, collect garbage and use
// the threadpool before exiting with a known status. No child may hang or crash, and
// nothing may be left behind: no zombie, no child, no fd.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzip } from 'node:zlib';
import { fork, kill, Process, wait2 } from '../src/index.js';
import { assertNoChildren, childrenOf, fdCount } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CYCLES = Number(process.env.UNIXPROC_STRESS_CYCLES ?? 2000);
const CONCURRENCY = 4;
const CHILD_DEADLINE_MS = 30_000;

test(`${CYCLES} fork/exit cycles from a busy parent`, { timeout: 20 * 60_000 }, async () => {
  const fdsBefore = fdCount();
  let busy = true;
  const keep: unknown[] = [];
  // The parent's own work, in flight while it forks.
  const churn = setInterval(() => {
    keep.push(Array.from({ length: 2000 }, (_, i) => ({ i, s: `x${i}` })));
    if (keep.length > 50) keep.splice(0, 25);
  }, 1);
  const background = (async () => {
    while (busy) {
      await Promise.all([
        readFile('/proc/self/status'),
        new Promise((res) => crypto.pbkdf2('p', 's', 2000, 32, 'sha256', res)),
        new Promise((res) => gzip(Buffer.alloc(64 * 1024, 7), res)),
      ]);
    }
  })();

  const failures: string[] = [];
  const parent = process.pid;
  let next = 0;
  async function one(i: number): Promise<void> {
    // A lane whose one() had settled but whose loop had not resumed when another lane
    // forked resumes in that child too: only the test process may fork. (Without this,
    // a grandchild's copy of the child's readFile shares the fd's offset with the child,
    // which then reads EOF: fork's semantics, found the hard way.)
    if (process.pid !== parent) return new Promise<never>(() => {});
    const pid = fork(() => {
      // Allocate, collect, use the threadpool and a timer, then exit with a known code.
      const me = process.pid;
      const junk = Array.from({ length: 20_000 }, (_, k) => ({ k, t: `y${k}` }));
      gc();
      return readFile('/proc/self/stat', 'utf8').then(async (stat) => {
        // Continuations are copied by fork like everything else: a grandchild forked by
        // a copied lane below would run this one too. Only the child that began it goes on.
        if (process.pid !== me) return new Promise<never>(() => {});
        await new Promise((res) => setTimeout(res, 1));
        if (Number(stat.split(' ')[0]) !== process.pid || junk.length !== 20_000) {
          process.stderr.write(
            `child ${i}: /proc/self/stat says pid ${stat.split(' ')[0]} (${stat.length} chars), getpid says ${process.pid}, ppid ${Process.ppid}, ` +
              `read again: ${readFileSync('/proc/self/stat', 'utf8').split(' ')[0]}\n`,
          );
          Process.exitNow(200);
        }
        Process.exit(i % 200);
      });
    });
    if (pid === null) return new Promise<never>(() => {}); // the child's copy of this test stops here
    const deadline = setTimeout(() => {
      failures.push(`child ${i} (pid ${pid}) hung`);
      try {
        kill('KILL', pid);
      } catch {
        /* already gone */
      }
    }, CHILD_DEADLINE_MS);
    const [, st] = (await wait2(pid))!;
    // A lane whose wait had resolved but not yet resumed when another lane forked
    // resumes in that child too: only the test process goes on forking.
    if (process.pid !== parent) return new Promise<never>(() => {});
    clearTimeout(deadline);
    if (st.exitstatus !== i % 200) failures.push(`child ${i}: ${st}`);
  }
  async function lane(): Promise<void> {
    while (next < CYCLES) await one(next++);
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  busy = false;
  clearInterval(churn);
  await background;

  assert.deepEqual(failures, []);
  await assertNoChildren();
  assert.deepEqual(childrenOf(), []);
  assert.equal(fdCount(), fdsBefore);
});
