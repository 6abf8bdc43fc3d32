// `unixproc serve` driven by signals, against a real server and a real HTTP client:
// QUIT (graceful), TERM/INT (quick), HUP (reload app and config), USR2 (re-exec upgrade,
// and a failed one), WINCH, TTIN/TTOU, USR1 (reopen logs).
//
// Signals sent while the master is forking used to be lost (libuv's handler in the new
// child wrote to the signal pipe still shared with the parent, about 1 run in 7); fork
// now blocks signals across fork(2). The last test sends WINCH right at master.ready,
// while workers boot, to keep it that way; the others signal once every worker is ready.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { scratch, sleep, waitFor } from './helpers.js';
import { alive, appDir, appSource, describeProcess, freePort, get, parseLines, processesWith, requestOnce, Server, status, withServer } from './serve-harness.js';

const T = { timeout: 90_000 };

test('QUIT: an in-flight slow request completes, the master exits 0, nothing is left', T, () =>
  withServer(['-w', '2'], async ({ srv, port }) => {
    const workers = srv.liveWorkers();
    assert.equal(workers.length, 2);
    const started = Date.now();
    const slow = get({ port }, '/slow');
    await sleep(300); // the request is in a worker's hands
    srv.signal('QUIT');
    const reply = await slow;
    assert.equal(reply.status, 200);
    assert.match(reply.body, /^v1 \d+ slow$/);
    assert.ok(Date.now() - started >= 900);
    const exit = await srv.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(srv.find('master.exit'));
    for (const w of workers) assert.ok(srv.find('worker.exit', 0, (l) => l.worker === w && l.status === `pid ${w} exit 0`), `worker ${w} exited 0`);
    await srv.assertGone();
  }));

for (const sig of ['TERM', 'INT'] as const) {
  test(`${sig}: quick stop, in-flight requests are cut, the master exits 0, nothing is left`, T, () =>
    withServer(['-w', '2'], async ({ srv, port }) => {
      assert.equal((await get({ port })).status, 200);
      const slow = requestOnce({ port }, '/slow').then(
        () => 'answered',
        () => 'cut',
      );
      await sleep(300);
      const t0 = Date.now();
      srv.signal(sig);
      const exit = await srv.exited;
      const took = Date.now() - t0;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.equal(await slow, 'cut');
      assert.ok(srv.find('master.stopping', 0, (l) => l.graceful === false));
      console.log(`# ${sig}: stopped in ${took} ms`);
      await srv.assertGone();
    }));
}

test('HUP reloads a changed app file: new code, new worker pids, the old workers exit', T, () =>
  withServer(['-w', '2'], async ({ srv, app, port }) => {
    const old = srv.liveWorkers();
    assert.match((await get({ port })).body, /^v1 /);
    writeFileSync(app, appSource('v2'));
    const m = srv.mark();
    srv.signal('HUP');
    await srv.waitLog('master.reload', { from: m });
    await waitFor(() => srv.all('worker.ready', m, (l) => l.generation === 1).length === 2, 15_000, 'two generation-1 workers');
    // Exited, and reaped by the master (its worker.exit lines).
    await waitFor(() => old.every((p) => !alive(p)) && srv.liveWorkers().length === 2, 15_000, 'the old workers to exit');
    const fresh = srv.liveWorkers();
    assert.equal(fresh.length, 2);
    assert.ok(fresh.every((p) => !old.includes(p)));
    for (let i = 0; i < 10; i++) {
      const r = await get({ port });
      assert.match(r.body, /^v2 /);
      assert.ok(fresh.includes(Number(r.body.split(' ')[1])), `answered by a new worker: ${r.body}`);
    }
    for (const p of old) assert.ok(srv.find('worker.exit', m, (l) => l.worker === p && l.expected === true));
  }));

test("HUP reloads a .ts app's own files (its bundle is rebuilt), so an edited helper it imports serves new code", T, async () => {
  const tmp = scratch();
  const app = join(tmp.dir, 'app.ts');
  const helper = join(tmp.dir, 'helper.ts');
  writeFileSync(helper, `export const version = (): string => 'helper v1';\n`);
  writeFileSync(app, `import { version } from './helper.js';\nexport default (req: unknown, res: { end(s: string): void }): void => res.end(version());\n`);
  const port = await freePort();
  const srv = new Server([app, '-w', '1', '-l', `127.0.0.1:${port}`], { marker: tmp.dir });
  try {
    await srv.ready();
    assert.equal((await get({ port })).body, 'helper v1');
    writeFileSync(helper, `export const version = (): string => 'helper v2';\n`);
    const m = srv.mark();
    srv.signal('HUP');
    await srv.waitLog('worker.ready', { from: m, ms: 20_000, pred: (l) => l.generation === 1 });
    await waitFor(() => srv.liveWorkers().length === 1 && srv.readyWorkers().length === 1, 15_000, 'the old worker to go');
    // The old worker may still finish a kept-alive request: ask on new connections until the new code answers.
    const deadline = Date.now() + 15_000;
    let body = '';
    while (Date.now() < deadline && (body = (await get({ port }, '/', { agent: false })).body) !== 'helper v2') await sleep(100);
    assert.equal(body, 'helper v2');
  } finally {
    await srv.stop();
    tmp.cleanup();
  }
});

test('HUP re-reads the config file: worker count and app change', T, async () => {
  const { dir, cleanup } = appDir('v1');
  writeFileSync(join(dir, 'app2.mjs'), appSource('v2'));
  const config = join(dir, 'unixproc.config.mjs');
  writeFileSync(config, `export default { app: './app.mjs', workers: 1 };\n`);
  const port = await freePort();
  const srv = new Server(['-c', config, '-l', `127.0.0.1:${port}`], { marker: dir });
  try {
    await srv.ready();
    assert.equal(srv.liveWorkers().length, 1);
    assert.match((await get({ port })).body, /^v1 /);
    writeFileSync(config, `export default { app: './app2.mjs', workers: 3 };\n`);
    const m = srv.mark();
    srv.signal('HUP');
    await srv.waitLog('master.reload', { from: m, pred: (l) => l.workers === 3 });
    await waitFor(() => srv.readyWorkers().length === 3 && srv.liveWorkers().length === 3, 20_000, 'three new workers, the old one gone');
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) seen.add((await get({ port })).body.split(' ')[0]);
    assert.deepEqual([...seen], ['v2']);
    const st = await status(['--json', '--control', srv.find('master.start')!.control as string]);
    assert.equal(st.code, 0, st.stderr);
    const json = JSON.parse(st.stdout);
    assert.equal(json.master.generation, 1);
    assert.equal(json.workers.length, 3);
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('USR2 upgrade: .oldbin, the new master writes the pid file when ready, QUIT the old one', T, async () => {
  const { dir, app, cleanup } = appDir('v1');
  const port = await freePort();
  const pidFile = join(dir, 'server.pid');
  const control = join(dir, 'control.sock');
  const srv = new Server([app, '-w', '2', '-l', `127.0.0.1:${port}`, '--pid', pidFile, '--control', control], { marker: dir });
  try {
    await srv.ready();
    assert.equal(Number(readFileSync(pidFile, 'utf8')), srv.pid);
    writeFileSync(app, appSource('v2')); // the new master loads the app anew
    const m = srv.mark();
    srv.signal('USR2');
    const up = await srv.waitLog('master.upgrade', { from: m });
    const newMaster = up.newMaster as number;
    await waitFor(() => existsSync(`${pidFile}.oldbin`), 10_000, 'pid file renamed to .oldbin');
    assert.equal(Number(readFileSync(`${pidFile}.oldbin`, 'utf8')), srv.pid);
    await srv.waitLog('master.ready', { from: m, pred: (l) => l.pid === newMaster }).catch((err) => {
      throw new Error(`${err.message}\n${describeProcess(newMaster)}`);
    });
    await waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')) === newMaster, 10_000, 'the new pid file');
    // Both generations serve now, on the one listening socket.
    await waitFor(() => srv.readyWorkers(newMaster).length === 2, 10_000, 'the new workers');
    const m2 = srv.mark();
    srv.signal('QUIT'); // the old master
    const exit = await srv.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(srv.all('worker.exit', m2, (l) => l.pid === srv.pid).length === 2);
    assert.ok(alive(newMaster));
    assert.equal(Number(readFileSync(pidFile, 'utf8')), newMaster);
    assert.ok(!existsSync(`${pidFile}.oldbin`));
    for (let i = 0; i < 6; i++) assert.match((await get({ port })).body, /^v2 /);
    // The old master left the control socket to the new one.
    const st = await status(['--json', '--control', control]);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(JSON.parse(st.stdout).master.pid, newMaster);
    process.kill(newMaster, 'SIGQUIT');
    await waitFor(() => !alive(newMaster), 15_000, 'the new master to stop');
    assert.ok(!existsSync(pidFile), 'the new master removed its pid file');
    await srv.assertGone();
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('USR2 with a new master that cannot start: the old one keeps serving, pid file renamed back', T, async () => {
  const { dir, app, cleanup } = appDir('v1');
  const port = await freePort();
  const pidFile = join(dir, 'server.pid');
  const srv = new Server([app, '-w', '2', '-l', `127.0.0.1:${port}`, '--pid', pidFile], { marker: dir });
  try {
    await srv.ready();
    writeFileSync(app, `throw new Error('boom at load');\n`);
    const m = srv.mark();
    srv.signal('USR2');
    const up = await srv.waitLog('master.upgrade', { from: m });
    const gone = await srv.waitLog('master.upgrade_exited', { from: m });
    assert.equal(gone.newMaster, up.newMaster);
    assert.match(gone.status as string, /exit 1/);
    assert.match(srv.stderr, /boom at load/);
    await waitFor(() => existsSync(pidFile), 5_000, 'the pid file back');
    assert.equal(Number(readFileSync(pidFile, 'utf8')), srv.pid);
    assert.ok(!existsSync(`${pidFile}.oldbin`));
    assert.ok(!alive(up.newMaster as number));
    for (let i = 0; i < 6; i++) assert.match((await get({ port })).body, /^v1 /);
    // And a second USR2 is not refused as "under way".
    writeFileSync(app, appSource('v3'));
    const m2 = srv.mark();
    srv.signal('USR2');
    const up2 = await srv.waitLog('master.upgrade', { from: m2 });
    await srv.waitLog('master.ready', { from: m2, pred: (l) => l.pid === up2.newMaster });
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('WINCH stops every worker, the master stays; TTIN brings one back', T, () =>
  withServer(['-w', '2'], async ({ srv, port }) => {
    const old = srv.liveWorkers();
    srv.signal('WINCH');
    await waitFor(() => srv.liveWorkers().length === 0 && old.every((p) => !alive(p)), 10_000, `no workers\n${srv.stderr}\n${old.map(describeProcess).join('\n')}`);
    assert.ok(alive(srv.pid));
    // The master still holds the listening socket: a connection is queued, never answered.
    await assert.rejects(requestOnce({ port }, '/', { timeout: 1500 }), (e: Error & { code?: string }) => ['ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET'].includes(e.code!));
    await sleep(1500);
    assert.equal(srv.liveWorkers().length, 0, 'WINCH keeps the count at zero');
    const m = srv.mark();
    srv.signal('TTIN');
    await srv.waitLog('worker.ready', { from: m });
    assert.equal(srv.liveWorkers().length, 1);
    const r = await get({ port }, '/', { timeout: 5000 });
    assert.equal(r.status, 200);
  }));

test('TTIN and TTOU change the worker count (seen by unixproc status and the process list)', T, async () => {
  const { dir, app, cleanup } = appDir();
  const port = await freePort();
  const control = join(dir, 'ctl.sock');
  const srv = new Server([app, '-w', '2', '-l', `127.0.0.1:${port}`, '--control', control], { marker: dir });
  const count = async () => {
    const st = await status(['--json', '--control', control]);
    assert.equal(st.code, 0, st.stderr);
    const j = JSON.parse(st.stdout);
    return { wanted: j.master.workersWanted as number, serving: (j.workers as Array<{ state: string }>).filter((w) => w.state === 'serving').length, all: j.workers.length as number };
  };
  const settle = async (n: number) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const c = await count();
      if (c.wanted === n && c.serving === n && c.all === n) return;
      if (Date.now() > deadline) throw new Error(`worker count did not settle at ${n}: ${JSON.stringify(c)}`);
      await sleep(100);
    }
  };
  try {
    await srv.ready();
    await settle(2);
    // One at a time, each awaited: TTIN makes the master fork (see workersReady()).
    await srv.signalAndWait('TTIN');
    await settle(3);
    await srv.signalAndWait('TTIN');
    await settle(4);
    assert.equal(srv.liveWorkers().length, 4);
    await srv.signalAndWait('TTOU');
    await srv.signalAndWait('TTOU');
    await srv.signalAndWait('TTOU');
    await settle(1);
    await waitFor(() => srv.liveWorkers().length === 1, 10_000, 'one worker in the log');
    const titles = processesWith(dir).filter((p) => p.args.startsWith('unixproc worker'));
    assert.equal(titles.length, 1, JSON.stringify(titles));
    await srv.signalAndWait('TTOU');
    await settle(0);
    await srv.signalAndWait('TTOU'); // at zero, a no-op
    await srv.signalAndWait('TTIN');
    await settle(1);
    assert.equal((await get({ port })).status, 200);
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('USR1 reopens the log files: new lines go to a new file at the path', T, async () => {
  const { dir, app, cleanup } = appDir();
  const port = await freePort();
  const logFile = join(dir, 'server.log');
  const srv = new Server([app, '-w', '2', '-l', `127.0.0.1:${port}`, '--stderr', logFile], { marker: dir });
  try {
    await waitFor(() => existsSync(logFile) && parseLines(readFileSync(logFile, 'utf8')).some((l) => l.event === 'master.ready'), 20_000, 'master.ready in the log file');
    const first = parseLines(readFileSync(logFile, 'utf8'));
    srv.take(first);
    await waitFor(() => (srv.take(parseLines(readFileSync(logFile, 'utf8')).slice(srv.lines.length)), srv.readyWorkers().length === 2), 10_000, 'two ready workers');
    const workers = srv.liveWorkers();
    assert.equal(workers.length, 2);
    for (const w of workers) assert.equal(readlinkSync(`/proc/${w}/fd/2`), logFile);
    renameSync(logFile, `${logFile}.1`);
    srv.signal('USR1');
    await waitFor(() => existsSync(logFile) && parseLines(readFileSync(logFile, 'utf8')).some((l) => l.event === 'master.logs_reopened'), 10_000, 'a new log file');
    // The workers reopened theirs too.
    await waitFor(() => workers.every((w) => readlinkSync(`/proc/${w}/fd/2`) === logFile), 10_000, "the workers' stderr on the new file");
    assert.equal(readlinkSync(`/proc/${srv.pid}/fd/2`), logFile);
    // Lines after the rotation land in the new file only.
    srv.signal('TTIN');
    await waitFor(() => parseLines(readFileSync(logFile, 'utf8')).some((l) => l.event === 'worker.ready'), 10_000, 'worker.ready in the new file');
    const rotated = parseLines(readFileSync(`${logFile}.1`, 'utf8'));
    assert.ok(!rotated.some((l) => l.event === 'master.logs_reopened' || (l.event === 'master.signal' && l.signal === 'TTIN')));
    srv.take(parseLines(readFileSync(logFile, 'utf8')));
    // No worker died of USR1.
    const all = [...parseLines(readFileSync(`${logFile}.1`, 'utf8')), ...parseLines(readFileSync(logFile, 'utf8'))];
    assert.deepEqual(all.filter((l) => l.event === 'worker.exit'), []);
    for (const w of workers) assert.ok(alive(w), `worker ${w} alive`);
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('WINCH and QUIT sent while workers are still being forked are not lost', { timeout: 180_000 }, async () => {
  for (let round = 0; round < 6; round++) {
    const { dir, app, cleanup } = appDir();
    const port = await freePort();
    const srv = new Server([app, '-w', '4', '-l', `127.0.0.1:${port}`], { marker: dir });
    try {
      // master.ready comes with the first ready worker, while the others may still be forking.
      await srv.waitLog('master.ready', { ms: 20_000 });
      srv.signal('WINCH');
      await waitFor(() => srv.find('master.signal', 0, (l) => l.signal === 'WINCH') !== undefined, 15_000, 'WINCH handled');
      await waitFor(() => srv.liveWorkers().length === 0, 20_000, `every worker stopped after WINCH (round ${round})`);
      srv.signal('QUIT');
      const exit = await Promise.race([srv.exited, sleep(20_000).then(() => null)]);
      assert.deepEqual(exit, { code: 0, signal: null }, `round ${round}: ${srv.stderr.slice(-2000)}`);
    } finally {
      await srv.stop();
      cleanup();
    }
  }
});
