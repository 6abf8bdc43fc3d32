// A TypeScript app (or jobs module) bundled by loadModule keeps its package imports, and
// Node resolves them from where the bundle lies: these tests give an app in a project of
// its own a package from its node_modules, one hoisted above it (a monorepo) and unixproc
// itself, served by `unixproc serve`, with the bundle in node_modules/.cache or, when that
// cannot be written, in the temp dir; and serve the demo that mounts the job dashboard.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { scratch } from './helpers.js';
import { freePort, get, Server } from './serve-harness.js';

const T = { timeout: 90_000 };
const root = fileURLToPath(new URL('../..', import.meta.url));

/** A fake npm package: index.js exporting its name and the pid that loaded it. */
function pkg(nodeModules: string, name: string): void {
  const dir = join(nodeModules, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', type: 'module', exports: './index.js' }));
  writeFileSync(join(dir, 'index.js'), `export const who = ${JSON.stringify(name)}; export const loadedBy = process.pid;\n`);
}

/** A monorepo: repo/node_modules/hoisted, repo/app/node_modules/local, and repo/app/server.ts importing both and unixproc. */
function project(dir: string): { app: string; appModules: string } {
  pkg(join(dir, 'node_modules'), 'hoisted');
  const appDir = join(dir, 'app');
  pkg(join(appDir, 'node_modules'), 'local');
  const app = join(appDir, 'server.ts');
  writeFileSync(
    app,
    `import { who as a, loadedBy } from 'local';
import { who as b } from 'hoisted';
import { isForkedChild } from 'unixproc';
import { Queue } from 'unixproc/jobs';
export default function (req: any, res: any): void {
  // isForkedChild is true only in the instance of unixproc that forked this worker: a second copy would say false.
  res.end([a, b, typeof Queue, loadedBy === process.pid ? 'loaded here' : 'loaded in the master', isForkedChild() ? 'forked' : 'not forked'].join(' '));
}
`,
  );
  return { app, appModules: join(appDir, 'node_modules') };
}

async function serveAndGet(app: string, marker: string): Promise<{ bodies: string[]; srv: Server }> {
  const port = await freePort();
  const srv = new Server([app, '-w', '2', '-l', `127.0.0.1:${port}`], { marker });
  await srv.ready();
  const bodies: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await get({ port });
    assert.equal(r.status, 200, `${r.body}\n${srv.stderr}`);
    bodies.push(r.body);
  }
  return { bodies, srv };
}

test("a TS app's imports of its packages, a hoisted one and unixproc resolve; the bundle is in node_modules/.cache and goes at exit", T, async () => {
  const tmp = scratch();
  const { app, appModules } = project(tmp.dir);
  const { bodies, srv } = await serveAndGet(app, tmp.dir);
  try {
    // Loaded once in the master, before the fork: the workers share it.
    for (const b of bodies) assert.equal(b, 'local hoisted function loaded in the master forked');
    const cache = join(appModules, '.cache', 'unixproc');
    const bundles = readdirSync(cache).flatMap((h) => readdirSync(join(cache, h)));
    assert.deepEqual(bundles, [`${srv.pid}-0`]);
  } finally {
    await srv.stop();
  }
  try {
    const cache = join(appModules, '.cache', 'unixproc');
    assert.deepEqual(readdirSync(cache).flatMap((h) => readdirSync(join(cache, h))), [], 'the bundle is removed at exit');
  } finally {
    tmp.cleanup();
  }
});

test('where node_modules/.cache cannot be written, the bundle goes to the temp dir and the imports still resolve', T, async () => {
  const tmp = scratch();
  const { app, appModules } = project(tmp.dir);
  // A file where the cache directory would be: mkdir fails as on a read-only image (as root, a mode would not stop it).
  writeFileSync(join(appModules, '.cache'), 'not a directory');
  const { bodies, srv } = await serveAndGet(app, tmp.dir);
  try {
    for (const b of bodies) assert.equal(b, 'local hoisted function loaded in the master forked');
  } finally {
    await srv.stop();
    tmp.cleanup();
  }
});

test('demo/jobs-dashboard.ts under `unixproc serve`: its own page, and the dashboard under /jobs with the store it is given', T, async () => {
  const tmp = scratch();
  const url = `sqlite:${join(tmp.dir, 'jobs.db')}`;
  const port = await freePort();
  const srv = new Server([join(root, 'demo', 'jobs-dashboard.ts'), '-w', '2', '-l', `127.0.0.1:${port}`], { marker: 'demo/jobs-dashboard.ts', cwd: tmp.dir, env: { UNIXPROC_JOBS_URL: url } });
  try {
    await srv.ready();
    assert.match((await get({ port }, '/')).body, /^the app's own page, from worker \d+/);
    const page = await get({ port }, '/jobs/');
    assert.equal(page.status, 200);
    assert.match(page.body, /<title>Overview · unixproc jobs<\/title>/);
    assert.match(page.body, /href="\/jobs\/failed"/);
    const stats = JSON.parse((await get({ port }, '/jobs/api/stats')).body);
    assert.equal(stats.processed, 0);
    assert.ok(existsSync(join(tmp.dir, 'jobs.db')), 'the store the app was given');
  } finally {
    await srv.stop();
    tmp.cleanup();
  }
});
