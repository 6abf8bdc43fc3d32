// unixproc's npm install script. A packed unixproc carries prebuilt addons
// (prebuilds/<platform>-<arch>/node-abi<ABI>.node, from scripts/prebuild.mjs): when the
// one for this Node loads, nothing is built and no compiler is needed. Otherwise the
// addon is built from source with node-gyp, and when g++, make or python3 is missing
// the install fails with one message saying what to install, not pages of gyp errors.
// A git checkout always builds from source: its native/ may be newer than any prebuild.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonLoadError } from './build-addon.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const abi = process.versions.modules;
const target = `${process.platform}-${process.arch}`;
const prebuilt = join('prebuilds', target, `node-abi${abi}.node`);
const what = `Node ${process.version} (ABI ${abi}) on ${target}`;
const say = (line) => console.log(`unixproc: ${line}`);

// `npm install --build-from-source` (the flag prebuild-install and node-pre-gyp honour) sets this.
const forced = /^(true|1|unixproc)$/i.test(process.env.npm_config_build_from_source ?? '');
const checkout = existsSync(join(root, '.git'));

if (!forced && !checkout) {
  if (existsSync(join(root, prebuilt))) {
    const problem = addonLoadError(process.execPath, join(root, prebuilt));
    if (!problem) {
      say(`using the prebuilt addon ${prebuilt} for ${what}`);
      process.exit(0);
    }
    say(`the prebuilt addon ${prebuilt} does not load here (${problem}); building from source`);
  } else {
    const dir = join(root, 'prebuilds', target);
    const have = existsSync(dir) ? readdirSync(dir).map((f) => f.replace(/^node-abi(\d+)\.node$/, '$1')) : [];
    const shipped = have.length ? `this package has them for ${target} with ABI ${have.join(', ')}` : `this package has none for ${target}`;
    say(`no prebuilt addon for ${what} (${shipped}); building from source`);
  }
}

/** The executable `name` resolves to on PATH (or `name` itself when it is a path), or null. */
function which(name) {
  const dirs = isAbsolute(name) ? [''] : (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of dirs) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  return null;
}

// What node-gyp's build needs on Linux: the C++ compiler its Makefile uses ($CXX, else
// g++), make, and a Python for gyp ($PYTHON or npm's `python` setting, else python3 or python).
const cxx = (process.env.CXX ?? '').trim().split(/\s+/)[0] || 'g++';
const python = process.env.npm_config_python || process.env.PYTHON;
const lacking = [
  which(cxx) ? null : cxx,
  which('make') ? null : 'make',
  (python ? which(python) : which('python3') || which('python')) ? null : python || 'python3',
].filter(Boolean);
const listed = (xs) => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}` : xs[0]);
if (lacking.length) {
  console.error(
    `unixproc: cannot install: there is no prebuilt addon that loads for ${what}, and building it from source ` +
      `needs a C++ compiler, make and python3, and ${listed(lacking)} ${lacking.length === 1 ? 'is' : 'are'} not on PATH. ` +
      `Install them (Debian/Ubuntu: apt-get install g++ make python3; Fedora: dnf install gcc-c++ make python3; ` +
      `Alpine: apk add g++ make python3), or use Node 20, 22 or 24 on linux-x64, which need none; then run \`npm rebuild unixproc\`.`,
  );
  process.exit(1);
}

const gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
const r = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
// A build against the wrong headers (a nodedir for another Node) compiles but is refused at load.
const problem = addonLoadError(process.execPath, join(root, 'build', 'Release', 'unixproc.node'));
if (problem) {
  console.error(`unixproc: the addon built from source does not load in ${what}: ${problem}`);
  process.exit(1);
}
