// `npm test`: compiles the TypeScript, builds the addon for Node 22 and 24 (from
// tools/node-versions, installed from the npm registry), runs every suite on the Node
// running this script and on the other versions, then prints one closing line with
// the totals.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFor, otherNodes } from './build-addon.mjs';
import { buildSqliteFor } from './build-sqlite.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });

sh(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
const versionsDir = join(root, 'tools', 'node-versions');
if (!process.env.UNIXPROC_ONLY_THIS_NODE && !existsSync(join(versionsDir, 'node_modules'))) {
  sh('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: versionsDir });
}

const testDir = join(root, 'dist', 'test');
const filter = process.argv.slice(2);
const all = readdirSync(testDir)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => filter.length === 0 || filter.some((x) => f.includes(x)))
  .sort()
  .map((f) => join(testDir, f));
// Every suite that forks, waits or signals runs on every supported Node. Two kinds run
// once, on this Node, to keep a CI run under its 30 minutes: the dashboard's (node:http
// and a store in the test process; the worker they start is covered by the jobs-worker
// suites everywhere) and install (npm pack and three npm installs, over a minute; it
// loads the prebuild of this Node's ABI, and checks the tarball holds all three); and
// readme-examples, which only type-checks.
const onceOnly = /^(install|jobs-web|readme)/;
const forkSuites = all.filter((f) => !onceOnly.test(f.slice(testDir.length + 1)));

const plan = [{ label: `Node ${process.version}`, bin: process.execPath, files: all }];
if (!process.env.UNIXPROC_ONLY_THIS_NODE) {
  for (const node of otherNodes()) {
    buildFor(node);
    buildSqliteFor(node);
    const version = execFileSync(node.bin, ['--version'], { encoding: 'utf8' }).trim();
    if (forkSuites.length) plan.push({ label: `Node ${version}`, bin: node.bin, files: forkSuites });
  }
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const scratch = mkdtempSync(join(tmpdir(), 'unixproc-test-'));
for (const [i, step] of plan.entries()) {
  console.log(`\n=== ${step.label}: ${step.files.length} files ===`);
  const countsFile = join(scratch, `counts-${i}.json`);
  const r = spawnSync(step.bin, ['--single-threaded', join(root, 'scripts', 'run-tests.mjs'), ...step.files], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, UNIXPROC_TEST_COUNTS: countsFile },
  });
  if (existsSync(countsFile)) {
    const c = JSON.parse(readFileSync(countsFile, 'utf8'));
    for (const k of Object.keys(totals)) totals[k] += c[k];
  } else {
    totals.failed++;
    console.log(`${step.label}: the test runner ended without results (status ${r.status}, signal ${r.signal})`);
  }
}
rmSync(scratch, { recursive: true, force: true });
console.log(`\nunixproc: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed > 0 ? 1 : 0;
