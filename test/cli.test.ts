// The command line (`unixproc run`) and exec: the script runs in a fork-safe node in
// the same process (exec keeps the pid), with its arguments and its exit status.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exec, fork, pipe, wait2 } from '../src/index.js';
import { indexUrl, scratch, TIMEOUT } from './helpers.js';

const bin = fileURLToPath(new URL('../../bin/unixproc.js', import.meta.url));
const tmp = scratch();
after(() => tmp.cleanup());

test('unixproc run starts the script with --single-threaded, its args, and its status', TIMEOUT, () => {
  const script = join(tmp.dir, 'forks.mjs');
  writeFileSync(
    script,
    `import { fork, wait2 } from ${JSON.stringify(indexUrl)};
     const pid = fork(() => process.exit(3));
     const [, st] = await wait2(pid);
     console.log(JSON.stringify({ argv: process.argv.slice(2), execArgv: process.execArgv, child: st.exitstatus }));
     process.exit(7);`,
  );
  const r = spawnSync(process.execPath, [bin, 'run', script, 'a', '--b'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 7, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { argv: ['a', '--b'], execArgv: ['--single-threaded'], child: 3 });
});

test('unixproc run names a missing script', TIMEOUT, () => {
  const r = spawnSync(process.execPath, [bin, 'run', join(tmp.dir, 'nope.js')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no such file: .*nope\.js/);
});

test('exec replaces the process image and keeps the pid and inherited fds', TIMEOUT, async () => {
  const [r, w] = pipe();
  const pid = fork(() => {
    r.close();
    w.setCloexec(false);
    exec("/bin/sh", ["-c", `echo "$$" > /proc/self/fd/${w.fileno}`]);
  })!;
  w.close();
  const out = r.read()!.toString().trim();
  r.close();
  assert.equal((await wait2(pid))![1].exitstatus, 0);
  assert.equal(Number(out), pid);
});

test('exec of a missing program is ENOENT, and bad arguments are TypeErrors', () => {
  assert.throws(() => exec('/nonexistent/program'), (e: Error & { code?: string }) => e.code === 'ENOENT' && /execvp/.test(e.message));
  assert.throws(() => exec(''), TypeError);
  assert.throws(() => exec('/bin/true', [1 as unknown as string]), TypeError);
});
