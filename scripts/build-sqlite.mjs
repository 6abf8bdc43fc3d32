// Builds better-sqlite3's native addon for each Node in tools/node-versions into
// build-abi/<ABI>/better_sqlite3.node. npm builds it only for the Node that ran
// `npm install`, and a Node-API-free addon (it uses V8 and node.h directly) does not load
// in any other ABI; jobs/sqlite.ts picks the build for the running ABI when there is one.
// Built from the sources npm installed (node_modules/better-sqlite3: binding.gyp, deps/
// with the SQLite amalgamation, src/), so nothing is downloaded.
//
// Node 24.19 and later ship a node_object_wrap.h whose ObjectWrap registers an environment
// cleanup hook in its constructor and removes it in its destructor (nodejs/node#63642).
// The header is compiled into the addon, and the destructor runs from V8's weak callbacks,
// where no context is entered: RemoveEnvironmentCleanupHook then aborts the process
// ("Assertion failed: (env) != nullptr", nodejs/node#65446) as soon as the GC collects a
// closed Database or a Statement. better-sqlite3 12 derives both from node::ObjectWrap, so
// against those headers it compiles but kills the process within a few thousand statements.
// The build force-includes a copy of the header without the two calls: ObjectWrap as every
// Node up to 24.18 had it (better-sqlite3's own cleanup hook still closes open databases).
import { execFileSync } from 'node:child_process';
import { cpSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { otherNodes } from './build-addon.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const pkgDir = join(root, 'node_modules', 'better-sqlite3');

const abiOf = (bin) => execFileSync(bin, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim();

// npm dates every file it unpacks 1985-10-26, so mtimes cannot tell a stale build: a stamp
// beside the binary names the better-sqlite3 version it was built from (its first line,
// which jobs/sqlite.ts checks) and how (this recipe's number: bump it when the build changes).
const RECIPE = 2;
function stampText() {
  return `${JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version}\nrecipe ${RECIPE}\n`;
}

/** Writes node_object_wrap.h without the cleanup hook calls into dir; null when the header has none. */
function objectWrapWithoutCleanupHooks(nodeDir, dir) {
  const header = readFileSync(join(nodeDir, 'include', 'node', 'node_object_wrap.h'), 'utf8');
  if (!header.includes('AddCleanupHook')) return null;
  const patched = header.replace(/^[ \t]*AddCleanupHook\(\);\n/m, '').replace(/^[ \t]*RemoveCleanupHook\(\);\n/m, '');
  if (/^[ \t]*(Add|Remove)CleanupHook\(\);/m.test(patched) || patched === header) {
    throw new Error(`build-sqlite: ${nodeDir}/include/node/node_object_wrap.h calls its cleanup hooks in a way this script does not know; update objectWrapWithoutCleanupHooks()`);
  }
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'node_object_wrap.h');
  writeFileSync(file, `// node_object_wrap.h of ${nodeDir}, without registering cleanup hooks (see scripts/build-sqlite.mjs).\n${patched}`);
  return file;
}

/**
 * Builds better-sqlite3 for `node` ({dir, bin}: headers in dir/include/node) into
 * build-abi/<ABI>/better_sqlite3.node, unless a build of the installed version is there.
 * Returns the path.
 */
export function buildSqliteFor(node, { force = false } = {}) {
  const abi = abiOf(node.bin);
  const out = join(root, 'build-abi', abi, 'better_sqlite3.node');
  const stamp = `${out}.version`;
  const wanted = stampText();
  if (!force && existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return out;
  // node-gyp builds into ./build of its cwd: a staging copy per process, so two runs at
  // once (two `npm test`s) never compile in the same directory.
  const stage = join(root, 'build-abi', abi, `sqlite-stage-${process.pid}`);
  try {
    mkdirSync(stage, { recursive: true });
    copyFileSync(join(pkgDir, 'binding.gyp'), join(stage, 'binding.gyp'));
    // Its package.json too: without it the stage sits under this ESM package and the
    // build's CommonJS helper (deps/copy.js) fails to load.
    copyFileSync(join(pkgDir, 'package.json'), join(stage, 'package.json'));
    cpSync(join(pkgDir, 'deps'), join(stage, 'deps'), { recursive: true });
    cpSync(join(pkgDir, 'src'), join(stage, 'src'), { recursive: true });
    // Under `npm test` npm exports npm_config_nodedir and friends, which would make node-gyp
    // build against the headers of the Node that runs npm instead of the ones asked for.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)));
    // Forced first, its include guard makes better-sqlite3's own #include of the header a no-op.
    const objectWrap = objectWrapWithoutCleanupHooks(node.dir, join(stage, 'compat'));
    if (objectWrap) env.CXXFLAGS = `${env.CXXFLAGS ?? ''} -include ${objectWrap}`.trim();
    // A vendored dependency's warnings (a page of -Wimplicit-fallthrough) would bury the test output.
    env.CXXFLAGS = `${env.CXXFLAGS ?? ''} -w`.trim();
    // Only the addon: the test_extension target is better-sqlite3's own test fixture.
    execFileSync(process.execPath, [gyp, 'configure', `--nodedir=${node.dir}`, '--loglevel=warn'], { cwd: stage, env, stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync(process.execPath, [gyp, 'build', '--jobs=max', '--loglevel=warn', '--', 'better_sqlite3'], { cwd: stage, env, stdio: ['ignore', 'ignore', 'inherit'] });
    // Copy then rename: a test starting meanwhile never loads half a file.
    mkdirSync(dirname(out), { recursive: true });
    copyFileSync(join(stage, 'build', 'Release', 'better_sqlite3.node'), `${out}.${process.pid}.tmp`);
    renameSync(`${out}.${process.pid}.tmp`, out);
    writeFileSync(stamp, wanted);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const node of otherNodes()) console.log(`built ${buildSqliteFor(node, { force: process.argv.includes('--force') })}`);
}
