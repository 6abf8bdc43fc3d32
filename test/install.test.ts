// Installing unixproc as a dependency: packs this checkout with `npm pack` (whose prepack
// builds the prebuilt addons), installs the tarball into fresh projects whose PATH holds
// node, npm and sh but no compiler, make or python3, and forks there with the Node under
// test. The prebuild for that Node's ABI must serve with the install script and without
// it (npm may block dependencies' scripts); without one, the install must fail with a
// single message naming what to install.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const abi = process.versions.modules;
const prebuild = `prebuilds/linux-x64/node-abi${abi}.node`;

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  return null;
}

// npm exports its config and lifecycle state (npm_config_*, npm_lifecycle_*) to `npm test`;
// handed on, they would configure the inner npm runs instead of their own flags.
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && !/^(CXX|CC|PYTHON)$/.test(k)));

const show = (r: SpawnSyncReturns<string>) => `status ${r.status} signal ${r.signal}${r.error ? ` ${r.error.message}` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe('npm install of the packed package on a machine without a compiler', () => {
  let work = '';
  let tarball = '';
  let npmCli = '';
  let env: NodeJS.ProcessEnv = {};

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'unixproc-install-'));
    // Packed with the usual PATH: prepack compiles the prebuilds (reused when newer than native/).
    const packDir = join(work, 'pack');
    mkdirSync(packDir);
    const started = Date.now();
    const pack = spawnSync('npm', ['pack', '--pack-destination', packDir], { cwd: root, env: baseEnv, encoding: 'utf8', timeout: 12 * 60_000 });
    assert.equal(pack.status, 0, `npm pack failed: ${show(pack)}`);
    const tgz = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
    assert.equal(tgz.length, 1, `npm pack made ${tgz.join(', ') || 'no tarball'}`);
    tarball = join(packDir, tgz[0]);
    console.log(`# npm pack: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The machine path: node (the one under test), npm and sh, nothing else.
    const npmOnPath = onPath('npm');
    assert.ok(npmOnPath, 'npm is not on PATH');
    npmCli = realpathSync(npmOnPath);
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(npmCli, join(bin, 'npm'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    env = { ...baseEnv, PATH: bin };
  }, { timeout: 13 * 60_000 });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** A fresh project in its own dir, with a script that forks and waits with unixproc. */
  function project(name: string): string {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
    writeFileSync(
      join(dir, 'fork.mjs'),
      `import { readFileSync } from 'node:fs';
import { Process } from 'unixproc';
const pid = Process.fork(() => {
  console.log(\`child \${Process.pid} of \${Process.ppid}\`);
  Process.exit(7);
});
const [waited, status] = await Process.waitpid2(pid);
// The addon this process mapped: proof of which binary served.
const addon = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).find((f) => f?.endsWith('.node'));
console.log(JSON.stringify({ parent: Process.pid, pid, waited, exitstatus: status.exitstatus, addon }));
`,
    );
    return dir;
  }

  const npm = (dir: string, args: string[]) =>
    spawnSync(process.execPath, [npmCli, ...args, '--no-audit', '--no-fund', '--foreground-scripts'], { cwd: dir, env, encoding: 'utf8', timeout: 5 * 60_000 });
  // The dependencies come from the npm cache that `npm ci` filled; the registry only for what it lacks.
  const install = (dir: string, extra: string[] = []) => npm(dir, ['install', '--prefer-offline', ...extra, tarball]);
  const runFork = (dir: string) => spawnSync(process.execPath, ['--single-threaded', 'fork.mjs'], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });

  function assertForked(dir: string) {
    const r = runFork(dir);
    assert.equal(r.status, 0, show(r));
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, show(r));
    const out = JSON.parse(lines[1]);
    assert.equal(lines[0], `child ${out.pid} of ${out.parent}`);
    assert.notEqual(out.pid, out.parent);
    assert.equal(out.waited, out.pid);
    assert.equal(out.exitstatus, 7);
    assert.equal(out.addon, realpathSync(join(dir, 'node_modules', 'unixproc', prebuild)));
  }

  it('the machine path finds no g++, cc, make or python3', () => {
    for (const tool of ['g++', 'cc', 'make', 'python3']) {
      const r = spawnSync(tool, ['--version'], { env, encoding: 'utf8' });
      assert.equal((r.error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT', `${tool} ran: ${show(r)}`);
    }
    const sh = spawnSync('sh', ['-c', 'command -v g++ || command -v cc || command -v make || command -v python3'], { env, encoding: 'utf8' });
    // dash's `command -v` fails with 127 for a name it cannot find.
    assert.notEqual(sh.status, 0, show(sh));
    assert.equal(sh.stdout, '', show(sh));
  });

  it('the tarball holds a prebuild per supported ABI and no build output', () => {
    const r = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
    assert.equal(r.status, 0, show(r));
    const files = r.stdout.split('\n');
    for (const a of ['115', '127', '137']) assert.ok(files.includes(`package/prebuilds/linux-x64/node-abi${a}.node`), `no prebuild for ABI ${a}`);
    assert.ok(files.includes('package/scripts/install.mjs'));
    assert.ok(files.includes('package/dist/src/native.js'));
    // The dashboard reads its script and stylesheet from the package at run time.
    for (const a of ['dashboard.js', 'dashboard.css', 'favicon.svg']) assert.ok(files.includes(`package/jobs/dashboard-assets/${a}`), `no dashboard asset ${a}`);
    // Only what a user runs: no build output, no compiled tests, benches, book examples or demos.
    assert.deepEqual(files.filter((f) => /^package\/(build|build-abi|dist\/(test|bench|examples|demo))\//.test(f)), []);
  });

  it('installs with its install script using the prebuild, compiling nothing, and forks', { timeout: 6 * 60_000 }, () => {
    const dir = project('with-script');
    // Named explicitly so that a later npm that blocks unreviewed scripts still runs this one.
    const r = install(dir, ['--dangerously-allow-all-scripts']);
    assert.equal(r.status, 0, show(r));
    assert.match(r.stdout, new RegExp(`unixproc: using the prebuilt addon ${prebuild} for Node ${process.version.replace(/\./g, '\\.')} \\(ABI ${abi}\\)`), show(r));
    assert.equal(existsSync(join(dir, 'node_modules', 'unixproc', 'build')), false, 'a build/ dir: something was compiled');
    assertForked(dir);
  });

  it('finds the prebuild when npm never ran the install script', { timeout: 6 * 60_000 }, () => {
    const dir = project('no-scripts');
    const r = install(dir, ['--ignore-scripts']);
    assert.equal(r.status, 0, show(r));
    assert.doesNotMatch(r.stdout, /unixproc: /);
    assertForked(dir);
  });

  it('without a prebuild for this Node, fails with one message naming what to install', { timeout: 6 * 60_000 }, () => {
    const dir = project('no-prebuild');
    const r = install(dir, ['--ignore-scripts']);
    assert.equal(r.status, 0, show(r));
    // What a Node with no prebuild sees: the package without the binary for its ABI.
    unlinkSync(join(dir, 'node_modules', 'unixproc', prebuild));
    const rebuild = npm(dir, ['rebuild', 'unixproc', '--dangerously-allow-all-scripts']);
    assert.notEqual(rebuild.status, 0, show(rebuild));
    const all = rebuild.stdout + rebuild.stderr;
    const messages = all.split('\n').filter((l) => l.startsWith('unixproc: cannot install'));
    assert.equal(messages.length, 1, show(rebuild));
    assert.match(messages[0], /g\+\+, make and python3 are not on PATH/);
    assert.match(messages[0], /apt-get install g\+\+ make python3/);
    assert.doesNotMatch(all, /gyp ERR!/, 'node-gyp ran although it could not build');
    assert.equal(existsSync(join(dir, 'node_modules', 'unixproc', 'build')), false);

    // And importing it says the same, rather than a bare dlopen error.
    const f = runFork(dir);
    assert.notEqual(f.status, 0, show(f));
    assert.match(f.stderr, new RegExp(`no native addon loads for Node ${process.version.replace(/\./g, '\\.')} \\(ABI ${abi}\\)`));
    assert.match(f.stderr, /apt-get install g\+\+ make python3/);
  });
});
