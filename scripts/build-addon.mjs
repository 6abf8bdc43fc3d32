// Builds the native addon for every Node.js this project supports: the running one
// into build/Release (what `npm install` does), and each version installed under
// tools/node-versions into build-abi/<ABI>/, since the addon uses Node's embedder API
// (node.h) and so is tied to one Node ABI. scripts/prebuild.mjs uses buildFor() for the
// prebuilt addons shipped in the npm package.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const versionsDir = join(root, 'tools', 'node-versions', 'node_modules');

export function abiOf(nodeBin) {
  return execFileSync(nodeBin, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim();
}

const hasHeaders = (dir) => existsSync(join(dir, 'include', 'node', 'node.h'));

export function otherNodes() {
  if (!existsSync(versionsDir)) return [];
  return readdirSync(versionsDir)
    .map((name) => join(versionsDir, name))
    .filter((dir) => existsSync(join(dir, 'bin', 'node')) && hasHeaders(dir))
    .map((dir) => ({ dir, bin: join(dir, 'bin', 'node') }));
}

/**
 * The running Node with its headers: beside it (official tarballs, distro packages with
 * their headers), else the copy node-gyp downloaded for it; null when neither is there.
 */
export function thisNode() {
  const dirs = [join(dirname(process.execPath), '..'), join(homedir(), '.cache', 'node-gyp', process.versions.node)];
  const dir = dirs.find(hasHeaders);
  return dir ? { dir, bin: process.execPath } : null;
}

// A build older than any of the addon's sources is stale (an edit since the last run).
function sourcesNewerThan(file) {
  const built = statSync(file).mtimeMs;
  const sources = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native')).map((f) => join(root, 'native', f))];
  return sources.some((f) => statSync(f).mtimeMs > built);
}

/**
 * Why the addon at `file` does not load in `nodeBin` (a message), or null when it loads
 * and was built for that node's ABI. Tried in a child process: a bad binary must not
 * take the caller down, and the caller may be a different Node.
 */
export function addonLoadError(nodeBin, file) {
  const probe =
    'const a = require(process.argv[1]); if (a.builtForModules !== process.versions.modules) ' +
    '{ console.error(`built for Node ABI ${a.builtForModules}, not ${process.versions.modules}`); process.exit(1); }';
  const r = spawnSync(nodeBin, ['-e', probe, file], { encoding: 'utf8', timeout: 30_000 });
  if (r.status === 0) return null;
  const lines = `${r.stderr ?? ''}${r.error ? r.error.message : ''}`.split('\n').map((l) => l.trim());
  // Node prints the thrown error's source line first; the line naming the error is the useful one.
  return lines.find((l) => /^Error:|built for Node ABI/.test(l))?.replace(/^Error: /, '') ?? lines.find(Boolean) ?? `exit status ${r.status}`;
}

/**
 * Builds the addon for `node` ({dir, bin}: headers in dir/include/node) into `out`
 * (default build-abi/<ABI>/unixproc.node) unless `out` is newer than every source.
 */
export function buildFor(node, { force = false, out } = {}) {
  const abi = abiOf(node.bin);
  out ??= join(root, 'build-abi', abi, 'unixproc.node');
  if (existsSync(out) && !force && !sourcesNewerThan(out)) return out;
  // node-gyp always builds into ./build, so each build gets a staging copy of the sources,
  // one per process: two runs at once (two `npm test`s, a test's `npm pack`) would
  // otherwise clean and compile in the same directory.
  const stage = join(root, 'build-abi', abi, `stage-${process.pid}`);
  try {
    mkdirSync(stage, { recursive: true });
    const copied = new Date();
    copyFileSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'));
    cpSync(join(root, 'native'), join(stage, 'native'), { recursive: true });
    // Under `npm test`, npm exports its own config (npm_config_nodedir among it) and node-gyp
    // would build against those headers, not the ones asked for: the addon then loads but
    // its embedder calls read the wrong layouts.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)));
    const args = [gyp, 'rebuild', `--nodedir=${node.dir}`, '--jobs=max', '--loglevel=warn'];
    execFileSync(process.execPath, args, { cwd: stage, env, stdio: ['ignore', 'ignore', 'inherit'] });
    // Copy then rename, so a reader (a loader, a concurrent `npm pack`) never sees half a file.
    // Dated when the sources were copied: an edit made during the compile leaves it stale.
    mkdirSync(dirname(out), { recursive: true });
    copyFileSync(join(stage, 'build', 'Release', 'unixproc.node'), `${out}.${process.pid}.tmp`);
    utimesSync(`${out}.${process.pid}.tmp`, copied, copied);
    renameSync(`${out}.${process.pid}.tmp`, out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const node of otherNodes()) console.log(`built ${buildFor(node, { force: process.argv.includes('--force') })}`);
}
