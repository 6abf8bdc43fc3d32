// `unixproc serve` listening where it is told (IPv6, a UNIX socket, two addresses), the
// shapes an app may take (fetch-style, async factory, .js, .ts, a lazy import after the
// fork), the process titles, and `unixproc status`.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { scratch, waitFor } from './helpers.js';
import { alive, appDir, bin, freePort, get, processesWith, Server, status, withServer } from './serve-harness.js';

const T = { timeout: 60_000 };

async function hasIPv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

test('listens on IPv6 [::1]:port', T, async (t) => {
  if (!(await hasIPv6Loopback())) {
    t.skip('this machine has no IPv6 loopback (binding ::1 failed)');
    return;
  }
  const { dir, app, cleanup } = appDir();
  const port = await freePort('::1');
  const srv = new Server([app, '-w', '1', '-l', `[::1]:${port}`], { marker: dir });
  try {
    await srv.ready();
    assert.deepEqual(srv.find('master.start')!.listen, [`[::1]:${port}`]);
    const r = await get({ host: '::1', port });
    assert.equal(r.status, 200);
    assert.match(r.body, /^v1 \d+ \/$/);
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('listens on a UNIX socket path, and removes it on exit', T, async () => {
  const { dir, app, cleanup } = appDir();
  const sock = join(dir, 'http.sock');
  const srv = new Server([app, '-w', '2', '-l', `unix:${sock}`, '--socket-mode', '660'], { marker: dir });
  try {
    await srv.ready();
    const r = await get({ socketPath: sock }, '/over-unix');
    assert.equal(r.status, 200);
    assert.match(r.body, /^v1 \d+ \/over-unix$/);
    const { statSync, existsSync } = await import('node:fs');
    assert.equal(statSync(sock).mode & 0o777, 0o660);
    srv.signal('QUIT');
    await srv.exited;
    assert.ok(!existsSync(sock), 'the socket file is removed');
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('listens on two addresses at once (TCP and a UNIX socket, two TCP ports)', T, async () => {
  const { dir, app, cleanup } = appDir();
  const [p1, p2] = [await freePort(), await freePort()];
  const sock = join(dir, 'b.sock');
  const srv = new Server([app, '-w', '2', '-l', `127.0.0.1:${p1}`, '-l', `127.0.0.1:${p2}`, '-l', sock], { marker: dir });
  try {
    await srv.ready();
    for (const target of [{ port: p1 }, { port: p2 }, { socketPath: sock }]) {
      for (let i = 0; i < 4; i++) assert.match((await get(target, '/two')).body, /^v1 \d+ \/two$/, JSON.stringify(target));
    }
  } finally {
    await srv.stop();
    cleanup();
  }
});

const shapes: Array<{ name: string; files: Record<string, string>; entry: string; path?: string; expect: RegExp }> = [
  {
    name: 'a fetch-style object ({ fetch(req) })',
    entry: 'fetch.mjs',
    files: {
      'fetch.mjs': `export default { async fetch(req) { const u = new URL(req.url); return new Response('hi ' + u.pathname + ' ' + req.method, { headers: { 'x-app': 'fetch' } }); } };\n`,
    },
    path: '/f',
    expect: /^hi \/f GET$/,
  },
  {
    name: 'an async factory returning a listener',
    entry: 'factory.mjs',
    files: {
      'factory.mjs': `export default async function makeApp() {
  await new Promise((r) => setTimeout(r, 50));
  const made = 'factory@' + process.pid;
  return (req, res) => res.end(made + ' served by ' + process.pid);
}
`,
    },
    expect: /^factory@\d+ served by \d+$/,
  },
  {
    name: 'a .js (CommonJS-free ESM .js with a package.json type module) app',
    entry: 'app.js',
    files: {
      'package.json': '{ "type": "module" }\n',
      'app.js': `export default (req, res) => res.end('js app ' + req.url);\n`,
    },
    path: '/j',
    expect: /^js app \/j$/,
  },
  {
    name: 'a .ts app',
    entry: 'app.ts',
    files: {
      'app.ts': `import type { IncomingMessage, ServerResponse } from 'node:http';
const greeting: string = 'ts app';
export default function (req: IncomingMessage, res: ServerResponse): void {
  res.end(\`\${greeting} \${req.url}\`);
}
`,
    },
    path: '/t',
    expect: /^ts app \/t$/,
  },
  {
    name: "a .ts app that lazily imports './lazy.ts' in a request, after the fork",
    entry: 'app.ts',
    files: {
      'app.ts': `import type { IncomingMessage, ServerResponse } from 'node:http';
export default async function (req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { lazy } = await import('./lazy.ts');
  res.end(lazy(req.url ?? ''));
}
`,
      'lazy.ts': `export function lazy(url: string): string { return \`lazy \${url} in \${process.pid}\`; }\n`,
    },
    path: '/l',
    expect: /^lazy \/l in \d+$/,
  },
];

for (const shape of shapes) {
  test(`app shape: ${shape.name}`, T, async () => {
    const { dir, cleanup } = appDir();
    for (const [name, text] of Object.entries(shape.files)) writeFileSync(join(dir, name), text);
    const port = await freePort();
    const srv = new Server([join(dir, shape.entry), '-w', '2', '-l', `127.0.0.1:${port}`], { marker: dir });
    try {
      await srv.ready();
      for (let i = 0; i < 4; i++) {
        const r = await get({ port }, shape.path ?? '/');
        assert.equal(r.status, 200, r.body);
        assert.match(r.body, shape.expect);
      }
      assert.ok(!srv.find('app.error') && !srv.find('worker.error'), srv.stderr);
    } finally {
      await srv.stop();
      cleanup();
    }
  });
}

test('the master and its workers run with --single-threaded and --no-memory-reducer; a --memory-reducer given is kept', T, async () => {
  for (const nodeArgs of [[], ['--memory-reducer']]) {
    const s = scratch();
    const app = join(s.dir, 'flags.mjs');
    writeFileSync(app, 'export default (req, res) => res.end(JSON.stringify(process.execArgv));\n');
    const port = await freePort();
    const srv = new Server([app, '-w', '1', '-l', `127.0.0.1:${port}`], { marker: s.dir, nodeArgs });
    try {
      await srv.ready();
      const flags = JSON.parse((await get({ port })).body) as string[];
      assert.ok(flags.includes('--single-threaded'), flags.join(' '));
      if (nodeArgs.length === 0) assert.ok(flags.includes('--no-memory-reducer'), flags.join(' '));
      else assert.ok(flags.includes('--memory-reducer') && !flags.includes('--no-memory-reducer'), flags.join(' '));
    } finally {
      await srv.stop();
      s.cleanup();
    }
  }
});

test('serve() called in code serves, hints at --no-memory-reducer when node lacks it, and QUIT stops it', T, async () => {
  const { dir, app, cleanup } = appDir();
  const script = join(dir, 'main.mjs');
  const serverUrl = new URL('../server/index.js', import.meta.url).href;
  writeFileSync(script, `import { serve } from ${JSON.stringify(serverUrl)};\nawait serve({ app: process.argv[2], workers: 1, listen: ['127.0.0.1:' + process.argv[3]] });\n`);
  const port = await freePort();
  const srv = new Server([app, String(port)], { marker: dir, script, nodeArgs: ['--single-threaded'] });
  try {
    await srv.ready();
    assert.match((await get({ port })).body, /^v1 \d+ \/$/);
    assert.ok(srv.find('master.hint', 0, (l) => String(l.hint).includes('--no-memory-reducer')), srv.stderr);
    await srv.quit();
  } finally {
    await srv.stop();
    cleanup();
  }
});

test("process titles: 'unixproc master ...' and 'unixproc worker[N] ...' in ps", T, () =>
  withServer(['-w', '2'], async ({ srv, app, port }) => {
    await waitFor(() => srv.readyWorkers().length === 2, 10_000, 'two workers');
    const ps = (pid: number) => execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    const master = ps(srv.pid);
    assert.match(master, new RegExp(`^unixproc master -w 2 -l 127\\.0\\.0\\.1:${port} .*app\\.mjs$`));
    const titles = srv.liveWorkers().map(ps).sort();
    assert.match(titles[0], /^unixproc worker\[0\] serving requests=\d+ .*app\.mjs$/);
    assert.match(titles[1], /^unixproc worker\[1\] serving requests=\d+ .*app\.mjs$/);
    console.log(`# titles: ${master} | ${titles.join(' | ')}`);
  }));

test('unixproc status (--control and --pid) lists the workers: pid, age, requests, heartbeat, PSS', T, async () => {
  const { dir, app, cleanup } = appDir();
  const port = await freePort();
  const control = join(dir, 'ctl.sock');
  const srv = new Server([app, '-w', '2', '-l', `127.0.0.1:${port}`, '--control', control], { marker: dir });
  const pidFile = join(dir, 'second.pid');
  const port2 = await freePort();
  // A second server with --pid and the default control socket, for `status --pid`.
  const srv2 = new Server([app, '-w', '1', '-l', `127.0.0.1:${port2}`, '--pid', pidFile], { marker: dir });
  try {
    await Promise.all([srv.ready(), srv2.ready()]);
    await waitFor(() => srv.readyWorkers().length === 2, 10_000, 'two workers');
    for (let i = 0; i < 10; i++) await get({ port });
    // Request counts travel with the heartbeats: wait for them.
    let json: { master: { pid: number }; workers: Array<{ pid: number; requests: number; pssKiB: number | null; ageSeconds: number; lastHeartbeatSecondsAgo: number; state: string }> };
    const deadline = Date.now() + 10_000;
    for (;;) {
      const st = await status(['--json', '--control', control]);
      assert.equal(st.code, 0, st.stderr);
      json = JSON.parse(st.stdout);
      if (json.workers.reduce((n, w) => n + w.requests, 0) === 10 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(json.master.pid, srv.pid);
    assert.deepEqual(json.workers.map((w) => w.pid).sort(), srv.liveWorkers().sort());
    assert.equal(json.workers.reduce((n, w) => n + w.requests, 0), 10);
    for (const w of json.workers) {
      assert.equal(w.state, 'serving');
      assert.ok(w.ageSeconds >= 0 && w.lastHeartbeatSecondsAgo >= 0 && w.lastHeartbeatSecondsAgo < 5);
      assert.ok(typeof w.pssKiB === 'number' && w.pssKiB > 0, `PSS ${w.pssKiB}`);
    }
    const table = await status(['--control', control]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^master ${srv.pid} `));
    assert.match(table.stdout, /worker\s+pid\s+state\s+age\(s\)\s+requests\s+last beat\(s\)\s+PSS\(MiB\)/);
    for (const w of json.workers) assert.match(table.stdout, new RegExp(`\\n${w.pid === json.workers[0].pid ? 0 : 1}\\s+${w.pid}\\s+serving\\s+[\\d.]+\\s+\\d+\\s+[\\d.]+\\s+[\\d.]+\\n`));
    console.log(`# status:\n${table.stdout.replace(/^/gm, '#   ')}`);
    const byPid = await status(['--pid', pidFile]);
    assert.equal(byPid.code, 0, byPid.stderr);
    assert.match(byPid.stdout, new RegExp(`^master ${srv2.pid} `));
    assert.match(byPid.stdout, new RegExp(`\\n0\\s+${srv2.liveWorkers()[0]}\\s+serving`));
    // A reader that is gone before the table is written (`| head -1`, here `| true`): no stack trace, status 0.
    for (const args of [['--json'], []]) {
      const piped = spawnSync('bash', ['-c', `"${process.execPath}" "${bin}" status ${args.join(' ')} --control "${control}" | true; exit \${PIPESTATUS[0]}`], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(piped.status, 0, `status ${args.join(' ')} into a closed pipe: ${piped.stderr}`);
      assert.equal(piped.stderr, '', 'nothing on stderr');
    }
    const none = await status(['--control', join(dir, 'nothing.sock')]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /cannot reach the master/);
  } finally {
    await Promise.all([srv.stop(), srv2.stop()]);
    cleanup();
  }
});

test('a TS config file: every hook runs in the right process, with the right worker', T, async () => {
  const { dir, cleanup } = appDir();
  const port = await freePort();
  const out = join(dir, 'hooks.log');
  const config = join(dir, 'unixproc.config.ts');
  writeFileSync(
    config,
    `import { appendFileSync } from 'node:fs';
     type W = { index: number; pid?: number; generation: number };
     const note = (s: string): void => appendFileSync(${JSON.stringify(out)}, s + '\\n');
     export default {
       app: './app.mjs',
       workers: 1,
       beforeFork: (w: W) => note(\`beforeFork \${w.index} in \${process.pid}\`),
       afterFork: (w: W) => note(\`afterFork \${w.index} \${w.pid} in \${process.pid}\`),
       afterWorkerReady: (w: W) => note(\`ready \${w.index} \${w.pid} in \${process.pid}\`),
       onWorkerExit: (w: W, st: { exitstatus: number | null }) => note(\`exit \${w.index} \${w.pid} status \${st.exitstatus} in \${process.pid}\`),
       beforeExec: () => note(\`beforeExec in \${process.pid}\`),
     };\n`,
  );
  const srv = new Server(['-c', config, '-l', `127.0.0.1:${port}`], { marker: dir });
  try {
    await srv.ready();
    await srv.signalAndWait('TTIN');
    await srv.workersReady(2);
    const [w0, w1] = srv.all('worker.spawn', 0, (l) => l.pid === srv.pid).map((l) => l.worker as number);
    await srv.signalAndWait('TTOU');
    await waitFor(() => srv.liveWorkers().length === 1, 15_000, 'worker 1 to exit');
    const m = srv.mark();
    srv.signal('USR2');
    await srv.waitLog('master.upgrade', { from: m });
    // Let the new master come up, so that stopping finds it too.
    await srv.waitLog('master.ready', { from: m, ms: 20_000, pred: (l) => l.pid !== srv.pid });
    const master = srv.pid;
    await waitFor(() => readFileSync(out, 'utf8').includes(`exit 1 ${w1}`), 10_000, 'the exit hook');
    const lines = readFileSync(out, 'utf8').split('\n');
    for (const expected of [
      `beforeFork 0 in ${master}`,
      `afterFork 0 ${w0} in ${w0}`,
      `ready 0 ${w0} in ${master}`,
      `beforeFork 1 in ${master}`,
      `afterFork 1 ${w1} in ${w1}`,
      `ready 1 ${w1} in ${master}`,
      `exit 1 ${w1} status 0 in ${master}`,
      `beforeExec in ${master}`,
    ]) {
      assert.ok(lines.includes(expected), `missing "${expected}" in:\n${lines.join('\n')}`);
    }
  } finally {
    await srv.stop();
    cleanup();
  }
});

test('at a terminal the master says in one plain line where it serves; into a pipe only JSON lines', T, async () => {
  const { dir, app, cleanup } = appDir();
  const port = await freePort();
  const command = `"${process.execPath}" "${bin}" serve "${app}" -w 2 -l 127.0.0.1:${port}`;
  // script(1) runs the server on a pseudo-terminal, as a person's shell would.
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let master = 0;
  try {
    await waitFor(() => /unixproc serve: serving .* \(master \d+;/.test(out), 20_000, `the plain line; got ${JSON.stringify(out)}`);
    const line = out.split(/\r?\n/).find((l) => l.startsWith('unixproc serve: serving'))!;
    master = Number(/\(master (\d+);/.exec(line)![1]);
    assert.equal(line.trim(), `unixproc serve: serving ${app} on http://127.0.0.1:${port}/ with 2 workers (master ${master}; Ctrl-C stops, QUIT stops gracefully)`);
    assert.equal((await get({ port })).status, 200);
  } finally {
    if (master) process.kill(master, 'SIGTERM');
    else child.kill('SIGKILL');
    await exited;
  }
  await waitFor(() => processesWith(dir).length === 0, 10_000, 'the server gone');
  const srv = new Server([app, '-w', '1', '-l', `127.0.0.1:${await freePort()}`], { marker: dir });
  try {
    await srv.ready();
    for (const l of srv.stderr.trim().split('\n')) assert.doesNotThrow(() => JSON.parse(l), `a JSON line: ${l}`);
  } finally {
    await srv.stop();
    cleanup();
  }
});

test("a hook that throws or rejects never kills the master: each is logged as hook.error naming it, and serving goes on", { timeout: 120_000 }, async () => {
  for (const mode of ['throw', 'reject'] as const) {
    const { dir, cleanup } = appDir();
    const port = await freePort();
    const config = join(dir, `hooks-${mode}.config.mjs`);
    const fail = mode === 'throw' ? (hook: string) => `{ throw new Error('${hook} ${mode}s'); }` : (hook: string) => `Promise.reject(new Error('${hook} ${mode}s'))`;
    writeFileSync(
      config,
      `export default {
         app: './app.mjs',
         workers: 2,
         beforeFork: () => ${fail('beforeFork')},
         afterWorkerReady: () => ${fail('afterWorkerReady')},
         onWorkerExit: () => ${fail('onWorkerExit')},
         beforeExec: () => { throw new Error('beforeExec throws'); },
       };\n`,
    );
    const srv = new Server(['-c', config, '-l', `127.0.0.1:${port}`], { marker: dir });
    try {
      await srv.ready();
      assert.equal((await get({ port })).status, 200);
      await srv.signalAndWait('TTOU');
      await waitFor(() => srv.liveWorkers().length === 1, 15_000, 'a worker to exit on TTOU');
      const hooks = ['beforeFork', 'afterWorkerReady', 'onWorkerExit'];
      await waitFor(() => hooks.every((h) => srv.find('hook.error', 0, (l) => l.hook === h && l.pid === srv.pid)), 10_000, `hook.error for ${hooks.join(', ')}:\n${srv.stderr}`);
      for (const h of hooks) assert.match(String(srv.find('hook.error', 0, (l) => l.hook === h)!.error), new RegExp(`${h} ${mode}s`));
      assert.equal((await get({ port })).status, 200, 'still serving');
      if (mode === 'throw') {
        // USR2 goes ahead although beforeExec threw: a new master comes up.
        const m = srv.mark();
        srv.signal('USR2');
        await srv.waitLog('master.ready', { from: m, ms: 20_000, pred: (l) => l.pid !== srv.pid });
        assert.ok(srv.find('hook.error', m, (l) => l.hook === 'beforeExec'), srv.stderr);
      }
      assert.ok(!/unhandled|UnhandledPromiseRejection/i.test(srv.stderr), srv.stderr);
      assert.ok(!srv.find('master.exit'), 'the master did not exit');
    } finally {
      await srv.stop();
      cleanup();
    }
  }
});

test('an afterFork that throws fails its worker (exit 1, the error logged), the master backs off and lives on', T, async () => {
  const { dir, cleanup } = appDir();
  const port = await freePort();
  const config = join(dir, 'afterfork.config.mjs');
  writeFileSync(config, `export default { app: './app.mjs', workers: 1, afterFork: () => { throw new Error('afterFork throws'); } };\n`);
  const srv = new Server(['-c', config, '-l', `127.0.0.1:${port}`], { marker: dir });
  try {
    await srv.waitLog('master.backoff', { ms: 20_000 });
    const err = srv.find('worker.error')!;
    assert.match(String(err.error), /afterFork throws/);
    assert.ok(srv.all('worker.exit').every((l) => /exit 1$/.test(String(l.status))), srv.stderr);
    assert.ok(alive(srv.pid), 'the master lives on');
  } finally {
    await srv.stop();
    cleanup();
  }
});
