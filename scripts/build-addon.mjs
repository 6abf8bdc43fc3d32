// Builds the native addon for every Node.js this project supports: the running one
// into build/Release (what `npm install` does), and each version installed under
// tools/node-versions into build-abi/<ABI>/, since the addon uses Node's embedder API
// (node.h) and so is tied to one Node ABI.
import { execFileSync } from 'node:child_process';
import { cpSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const versionsDir = join(root, 'tools', 'node-versions', 'node_modules');

function abiOf(nodeBin) {
  return execFileSync(nodeBin, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim();
}

export function otherNodes() {
  if (!existsSync(versionsDir)) return [];
  return readdirSync(versionsDir)
    .map((name) => join(versionsDir, name))
    .filter((dir) => existsSync(join(dir, 'bin', 'node')) && existsSync(join(dir, 'include', 'node', 'node.h')))
    .map((dir) => ({ dir, bin: join(dir, 'bin', 'node') }));
}

// A build older than any of the addon's sources is stale (an edit since the last run).
function sourcesNewerThan(file) {
  const built = statSync(file).mtimeMs;
  const sources = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native')).map((f) => join(root, 'native', f))];
  return sources.some((f) => statSync(f).mtimeMs > built);
}

export function buildFor(node, { force = false } = {}) {
  const abi = abiOf(node.bin);
  const out = join(root, 'build-abi', abi, 'unixproc.node');
  if (existsSync(out) && !force && !sourcesNewerThan(out)) return out;
  // node-gyp always builds into ./build, so each ABI gets a staging copy of the sources.
  const stage = join(root, 'build-abi', abi, 'stage');
  mkdirSync(stage, { recursive: true });
  copyFileSync(join(root, 'binding.gyp'), join(stage, 'binding.gyp'));
  cpSync(join(root, 'native'), join(stage, 'native'), { recursive: true });
  // Under `npm test`, npm exports its own config (npm_config_nodedir among it) and node-gyp
  // would build against those headers, not the ones asked for: the addon then loads but
  // its embedder calls read the wrong layouts.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)));
  execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${node.dir}`], { cwd: stage, env, stdio: ['ignore', 'ignore', 'inherit'] });
  copyFileSync(join(stage, 'build', 'Release', 'unixproc.node'), out);
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const node of otherNodes()) console.log(`built ${buildFor(node, { force: process.argv.includes('--force') })}`);
}
