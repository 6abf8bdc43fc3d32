// `unixproc serve` refusing to start, with the reason and nothing left running: bad
// config, missing app, address in use, a live pid file (and a stale one replaced), and
// daemonizing (-D returns once the server answers, or fails with the reason).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { procInfo, waitFor } from './helpers.js';
import { alive, appDir, freePort, get, processesWith, runServe, Server } from './serve-harness.js';

const T = { timeout: 60_000 };

async function failsWith(args: string[], pattern: RegExp, dir: string, cwd?: string): Promise<string> {
  const r = await runServe(args, { cwd });
  assert.notEqual(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  assert.equal(r.signal, null);
  assert.match(r.stderr, pattern);
  await waitFor(() => processesWith(dir).length === 0, 5_000, `nothing left running: ${JSON.stringify(processesWith(dir))}`);
  return r.stderr;
}

test('a config file with a syntax error: a clear error, non-zero exit, nothing left', T, async () => {
  const { dir, cleanup } = appDir();
  try {
    const config = join(dir, 'bad.config.mjs');
    writeFileSync(config, `export default { workers: 2, app: './app.mjs', \n`);
    const port = await freePort();
    const err = await failsWith(['-c', config, '-l', `127.0.0.1:${port}`], /^unixproc serve: .*(SyntaxError|Unexpected|expected)/im, dir);
    console.log(`# syntax error: ${err.trim().split('\n')[0]}`);
  } finally {
    cleanup();
  }
});

test('bad numbers: one line naming the flag (or the config file and its key), exit 2, nothing left', T, async () => {
  const { dir, app, cleanup } = appDir();
  try {
    const config = join(dir, 'neg.config.mjs');
    const port = await freePort();
    const usage = async (args: string[], line: RegExp) => {
      const r = await runServe([...args, '-l', `127.0.0.1:${port}`]);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.match(r.stderr.trim(), line);
      await waitFor(() => processesWith(dir).length === 0, 5_000, `nothing left running: ${JSON.stringify(processesWith(dir))}`);
    };
    writeFileSync(config, `export default { workers: -1, app: './app.mjs' };\n`);
    await usage(['-c', config], /^unixproc serve: .*neg\.config\.mjs: workers must be an integer >= 1, got -1$/);
    writeFileSync(config, `export default { spare: -1, app: './app.mjs' };\n`);
    await usage(['-c', config], /^unixproc serve: .*neg\.config\.mjs: spare must be an integer >= 0, got -1$/);
    await usage([app, '-w', '-1'], /^unixproc serve: --workers must be an integer >= 1, got -1$/);
    // No workers would leave every request waiting: refused.
    await usage([app, '-w', '0'], /^unixproc serve: --workers must be an integer >= 1, got 0$/);
    await usage([app, '-w', 'abc'], /^unixproc: --workers must be a whole number, got "abc"$/);
    await usage([app, '-w', '2.5'], /^unixproc: --workers must be a whole number, got "2\.5"$/);
    await usage([app, '--spare', '1.5'], /^unixproc: --spare must be a whole number, got "1\.5"$/);
    await usage([app, '--shutdown-timeout', '-3'], /^unixproc serve: --shutdown-timeout must be an integer >= 0, got -3$/);
  } finally {
    cleanup();
  }
});

test('a syntax error in the app, in a file it imports, or in a .ts app names the file, line and column', T, async () => {
  const { dir, cleanup } = appDir();
  try {
    const port = await freePort();
    writeFileSync(join(dir, 'broken.mjs'), `export default function (req, res) {\n  res.end('x'\n}\n`);
    await failsWith([join(dir, 'broken.mjs'), '-l', `127.0.0.1:${port}`], new RegExp(`^unixproc serve: ${dir}/broken\\.mjs:3:1: Expected "\\)" but found "}"`, 'm'), dir);
    writeFileSync(join(dir, 'entry.mjs'), `import { f } from './helper.mjs';\nexport default (req, res) => res.end(f());\n`);
    writeFileSync(join(dir, 'helper.mjs'), `export function f() {\n  return 1 +;\n}\n`);
    await failsWith([join(dir, 'entry.mjs'), '-l', `127.0.0.1:${port}`], new RegExp(`^unixproc serve: ${dir}/helper\\.mjs:2:13: Unexpected ";"`, 'm'), dir);
    writeFileSync(join(dir, 'broken.ts'), `export default function (req: unknown, res: { end(s: string): void }) {\n  res.end('x'\n}\n`);
    await failsWith([join(dir, 'broken.ts'), '-l', `127.0.0.1:${port}`], new RegExp(`^unixproc serve: ${dir}/broken\\.ts:3:1: Expected "\\)" but found "}"`, 'm'), dir);
  } finally {
    cleanup();
  }
});

test('a missing app, and an app that throws at load: a clear error, non-zero exit', T, async () => {
  const { dir, cleanup } = appDir();
  try {
    const port = await freePort();
    await failsWith([join(dir, 'nope.mjs'), '-l', `127.0.0.1:${port}`], /unixproc serve: no such file: .*nope\.mjs/, dir);
    writeFileSync(join(dir, 'throws.mjs'), `throw new Error('cannot load me');\n`);
    await failsWith([join(dir, 'throws.mjs'), '-l', `127.0.0.1:${port}`], /unixproc serve: cannot load me/, dir);
    writeFileSync(join(dir, 'notapp.mjs'), `export default 42;\n`);
    await failsWith([join(dir, 'notapp.mjs'), '-l', `127.0.0.1:${port}`], /default export must be a request listener/, dir);
    // The port is free again: nothing kept it.
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer().once('error', reject);
      s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
    });
  } finally {
    cleanup();
  }
});

test('an address already in use: a clear error naming EADDRINUSE and the address', T, async () => {
  const { dir, app, cleanup } = appDir();
  const blocker = net.createServer();
  try {
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as net.AddressInfo;
    const other = await freePort();
    // The second address is the busy one: the first, bound already, must be let go too.
    const err = await failsWith([app, '-l', `127.0.0.1:${other}`, '-l', `127.0.0.1:${port}`], new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${port}`), dir);
    console.log(`# in use: ${err.trim()}`);
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer().once('error', reject);
      s.listen(other, '127.0.0.1', () => s.close(() => resolve()));
    });
  } finally {
    blocker.close();
    cleanup();
  }
});

test('--pid refuses to start over a live master, and replaces a stale pid file', T, async () => {
  const { dir, app, cleanup } = appDir();
  const pidFile = join(dir, 'server.pid');
  const port = await freePort();
  // A pid that is surely dead: a child that has exited and been reaped.
  const dead = spawnSync('/bin/true').pid!;
  assert.ok(!alive(dead));
  writeFileSync(pidFile, `${dead}\n`);
  const srv = new Server([app, '-w', '1', '-l', `127.0.0.1:${port}`, '--pid', pidFile], { marker: dir });
  try {
    await srv.ready();
    assert.equal(Number(readFileSync(pidFile, 'utf8')), srv.pid, 'the stale pid file was replaced');
    const port2 = await freePort();
    const r = await runServe([app, '-w', '1', '-l', `127.0.0.1:${port2}`, '--pid', pidFile]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`already running as pid ${srv.pid}`));
    assert.equal(Number(readFileSync(pidFile, 'utf8')), srv.pid, 'the pid file is untouched');
    assert.equal((await get({ port })).status, 200);
    srv.signal('QUIT');
    await srv.exited;
    assert.ok(!existsSync(pidFile), 'the master removed its pid file');
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('-D daemonizes: returns 0 once the server answers, detached; QUIT via the pid file', T, async () => {
  const { dir, cleanup } = appDir();
  const port = await freePort();
  let daemonPid = 0;
  try {
    // Relative paths, resolved against the directory the command ran in (the daemon chdirs to /).
    const r = await runServe(['app.mjs', '-D', '-w', '2', '-l', `127.0.0.1:${port}`, '--pid', 'server.pid', '--stderr', 'server.log'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    // Returned only once ready: the very next request is answered.
    const reply = await get({ port }, '/', { timeout: 5000 });
    assert.equal(reply.status, 200);
    daemonPid = Number(readFileSync(join(dir, 'server.pid'), 'utf8'));
    const info = procInfo(daemonPid)!;
    assert.ok(info, 'the daemon runs');
    assert.notEqual(info.ppid, process.pid);
    assert.notEqual(info.session, procInfo(process.pid)!.session, 'a session of its own');
    const log = readFileSync(join(dir, 'server.log'), 'utf8');
    assert.match(log, /"event":"master.ready"/);
    // USR2 in a daemon started with relative paths (it runs in /): the new master starts
    // from the original directory, takes over the pid file; QUIT the old one.
    process.kill(daemonPid, 'SIGUSR2');
    const pidNow = () => (existsSync(join(dir, 'server.pid')) ? Number(readFileSync(join(dir, 'server.pid'), 'utf8')) : 0);
    await waitFor(() => pidNow() !== 0 && pidNow() !== daemonPid, 20_000, `a new master's pid file\n${readFileSync(join(dir, 'server.log'), 'utf8')}`);
    const newMaster = pidNow();
    process.kill(daemonPid, 'SIGQUIT');
    await waitFor(() => !alive(daemonPid), 15_000, 'the old daemon master to stop');
    assert.equal((await get({ port }, '/', { timeout: 5000 })).status, 200);
    daemonPid = newMaster;
    process.kill(daemonPid, 'SIGQUIT');
    await waitFor(() => !alive(daemonPid), 15_000, 'the daemon to stop');
    await waitFor(() => processesWith(dir).length === 0, 10_000, 'no process of the daemon left');
    assert.ok(!existsSync(join(dir, 'server.pid')));
  } finally {
    if (daemonPid && alive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    for (const p of processesWith(dir)) process.kill(p.pid, 'SIGKILL');
    cleanup();
  }
});

test('-D with a broken app returns non-zero with the reason', T, async () => {
  const { dir, cleanup } = appDir();
  try {
    writeFileSync(join(dir, 'broken.mjs'), `throw new Error('broken at load');\n`);
    const port = await freePort();
    const r = await runServe([join(dir, 'broken.mjs'), '-D', '-l', `127.0.0.1:${port}`, '--pid', join(dir, 'server.pid')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unixproc serve: broken at load/);
    await waitFor(() => processesWith(dir).length === 0, 10_000, 'nothing left running');
    assert.ok(!existsSync(join(dir, 'server.pid')));
  } finally {
    cleanup();
  }
});
