// `unixproc serve --spare N`: idle workers forked ahead of need. A spare accepts nothing
// until the master gives it a slot (TTIN, or a worker that died), then serves at once
// with the same pid; a new spare is forked behind it, HUP retires spares of the old app,
// and every stop takes the spares with it.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sleep, waitFor } from './helpers.js';
import { alive, appDir, appSource, freePort, get, processesWith, sendSignal, Server, status, withServer } from './serve-harness.js';

const T = { timeout: 90_000 };

async function statusJson(control: string): Promise<{ workers: Array<{ index: number; pid: number; state: string }>; spares: Array<{ pid: number; state: string; generation: number }> }> {
  const st = await status(['--json', '--control', control]);
  assert.equal(st.code, 0, st.stderr);
  return JSON.parse(st.stdout);
}

async function until(cond: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Waits for a spare of this generation that is ready, and returns its pid. */
async function readySpare(srv: Server, from: number, generation: number): Promise<number> {
  const line = await srv.waitLog('spare.ready', { from, pred: (l) => l.generation === generation && alive(l.worker as number) });
  return line.worker as number;
}

test('a spare accepts nothing until TTIN gives it a slot, then serves with the same pid; a new spare follows', T, async () => {
  const { dir, app, cleanup } = appDir();
  const port = await freePort();
  const control = join(dir, 'ctl.sock');
  const srv = new Server([app, '-w', '2', '--spare', '1', '-l', `127.0.0.1:${port}`, '--control', control], { marker: dir });
  try {
    await srv.ready();
    const spare = await readySpare(srv, 0, 0);
    const workers = srv.liveWorkers();
    assert.equal(workers.length, 2);
    assert.ok(!workers.includes(spare));
    const titles = processesWith(dir).map((p) => p.args);
    assert.ok(titles.some((t) => t.startsWith('unixproc worker[spare] waiting')), titles.join('\n'));
    let st = await statusJson(control);
    assert.deepEqual(st.spares.map((s) => [s.pid, s.state]), [[spare, 'spare']]);
    assert.deepEqual(st.workers.map((w) => w.pid).sort(), [...workers].sort());

    // 40 requests on fresh connections: none reaches the spare.
    const servedBy = new Set<number>();
    for (let i = 0; i < 40; i++) servedBy.add(Number((await get({ port }, '/')).body.split(' ')[1]));
    assert.ok(!servedBy.has(spare), `the spare ${spare} served a request`);
    assert.ok([...servedBy].every((p) => workers.includes(p)));

    const m = srv.mark();
    await srv.signalAndWait('TTIN');
    const spawned = await srv.waitLog('worker.spawn', { from: m, pred: (l) => l.index === 2 });
    assert.equal(spawned.worker, spare);
    assert.equal(spawned.spare, true);
    await srv.workersReady(3);
    await until(async () => (await Promise.all(Array.from({ length: 6 }, () => get({ port }, '/')))).some((r) => r.body.split(' ')[1] === String(spare)), 'the former spare serves');
    const next = await readySpare(srv, m, 0);
    assert.notEqual(next, spare);
    st = await statusJson(control);
    assert.equal(st.workers.find((w) => w.index === 2)?.pid, spare);
    assert.deepEqual(st.spares.map((s) => s.pid), [next]);
    assert.ok(processesWith(dir).some((p) => p.pid === spare && p.args.startsWith('unixproc worker[2] serving')));

    await srv.quit();
    assert.ok(srv.find('spare.exit', 0, (l) => l.worker === next && l.expected === true));
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('a SIGKILLed worker is replaced by the spare; HUP retires the old spare; TTOU to 0 and WINCH leave none', T, () =>
  withServer(['-w', '2', '--spare', '1'], async ({ srv, dir, app, port }) => {
    const spare = await readySpare(srv, 0, 0);
    const [victim] = srv.liveWorkers();
    const victimIndex = srv.find('worker.spawn', 0, (l) => l.worker === victim)!.index;
    let m = srv.mark();
    sendSignal(victim, 'KILL');
    const spawned = await srv.waitLog('worker.spawn', { from: m, pred: (l) => l.index === victimIndex });
    assert.equal(spawned.worker, spare, 'the slot went to the spare');
    await srv.workersReady(2);
    const second = await readySpare(srv, m, 0);

    // HUP: a new app generation; the old spare goes, a new-generation spare comes.
    writeFileSync(app, appSource('v2'));
    m = srv.mark();
    await srv.signalAndWait('HUP');
    const fresh = await readySpare(srv, m, 1);
    await srv.waitLog('spare.exit', { from: m, pred: (l) => l.worker === second && l.expected === true });
    await until(async () => (await get({ port }, '/')).body.startsWith('v2 '), 'v2 served');
    assert.ok(alive(fresh));

    // No worker wanted, no spare kept.
    m = srv.mark();
    await srv.signalAndWait('TTOU');
    await srv.signalAndWait('TTOU');
    await srv.waitLog('spare.exit', { from: m, pred: (l) => l.worker === fresh });
    await waitFor(() => processesWith(dir).every((p) => !p.args.startsWith('unixproc worker')), 15_000, 'no worker and no spare left');
    m = srv.mark();
    await srv.signalAndWait('TTIN');
    const spare3 = await readySpare(srv, m, 1);
    await srv.signalAndWait('WINCH');
    await waitFor(() => !alive(spare3) && srv.liveWorkers().length === 0, 15_000, 'WINCH stopped the workers and the spare');
    await srv.quit();
  }));
