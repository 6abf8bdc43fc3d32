// Builds the prebuilt addons shipped in the npm package, prebuilds/linux-x64/node-abi<ABI>.node
// for Node 20, 22 and 24 (the addon uses Node's embedder API, so one binary per ABI), and
// checks that each loads in its Node. Run by `npm pack` and `npm publish` (prepack);
// `--force` (prepublishOnly) rebuilds even the ones newer than every source.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { abiOf, addonLoadError, buildFor, otherNodes, thisNode } from './build-addon.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
// The ABIs promised in README; a pack without one of them would ship a package that
// builds from source on that Node, so it fails instead.
const SUPPORTED = { 115: 'Node 20', 127: 'Node 22', 137: 'Node 24' };
const target = `${process.platform}-${process.arch}`;

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

if (target !== 'linux-x64') fail(`prebuilt addons are made on linux-x64 (tools/node-versions holds linux-x64 Node binaries), not ${target}`);
const versionsDir = join(root, 'tools', 'node-versions');
if (!existsSync(join(versionsDir, 'node_modules'))) {
  execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: versionsDir, stdio: 'inherit' });
}

const nodes = new Map();
const here = thisNode();
if (!here) fail(`no headers for Node ${process.version} (include/node/node.h beside ${process.execPath} or in ~/.cache/node-gyp): run \`npx node-gyp install\` to fetch them`);
for (const node of [here, ...otherNodes()]) {
  const abi = abiOf(node.bin);
  if (SUPPORTED[abi] && !nodes.has(abi)) nodes.set(abi, node);
}
const missing = Object.keys(SUPPORTED).filter((abi) => !nodes.has(abi));
if (missing.length) {
  fail(`no Node for ABI ${missing.join(', ')} (${missing.map((a) => SUPPORTED[a]).join(', ')}): run under Node 20, with 22 and 24 in tools/node-versions`);
}

const dir = join(root, 'prebuilds', target);
mkdirSync(dir, { recursive: true });
const made = new Set();
for (const [abi, node] of nodes) {
  const file = join(dir, `node-abi${abi}.node`);
  const started = Date.now();
  if (node === here) {
    // This Node's own build goes straight into prebuilds/: build-abi/<its ABI> would take
    // precedence over build/Release for it in this checkout (src/native.ts) and go stale.
    buildFor(node, { force, out: file });
  } else {
    // The same build `npm test` uses for this Node (build-abi/<ABI>), rebuilt when stale.
    const built = buildFor(node, { force });
    copyFileSync(built, `${file}.tmp`);
    renameSync(`${file}.tmp`, file);
  }
  const problem = addonLoadError(node.bin, file);
  if (problem) fail(`${relative(root, file)} does not load in ${node.bin}: ${problem}`);
  console.log(`prebuild: ${relative(root, file)} (${SUPPORTED[abi]}, ${statSync(file).size} bytes, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  made.add(`node-abi${abi}.node`);
}
// A binary left from an ABI no longer supported must not ship.
for (const name of readdirSync(dir)) if (!made.has(name)) rmSync(join(dir, name), { force: true });
