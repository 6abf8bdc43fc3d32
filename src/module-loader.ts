// Loading a module once, in a process that will fork, so that its children share it
// copy-on-write. TypeScript is compiled with esbuild into one ESM bundle (lazy imports
// become chunks of it) rather than through loader hooks, which run on a thread that a
// forked child does not have. Each load gets a new bundle, so a reload re-reads the
// module's own files.
// The build is synchronous, in an esbuild process that exits when it is done: esbuild's
// async API keeps a service process whose stdio pipes every forked child would inherit,
// and a child reading the parent's pipe steals (and chokes on) the parent's next build
// result (seen as a server master hanging on HUP).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const cacheRoot = join(tmpdir(), `unixproc-build-${process.getuid?.() ?? 0}`);
/** Bundles this process wrote; its children import their lazy chunks from them while it runs. */
const builtDirs = new Set<string>();

/** Removes the bundles this process built (at its exit: no child needs them any more). */
export function removeBuilds(): void {
  for (const dir of builtDirs) rmSync(dir, { recursive: true, force: true });
  builtDirs.clear();
}

/** Imports a module (TS through esbuild); generation busts the module cache on reloads. */
export async function loadModule(file: string, generation: number): Promise<unknown> {
  if (!existsSync(file)) throw new Error(`no such file: ${file}`);
  if (/\.(c|m)?tsx?$/.test(extname(file))) {
    const dir = join(cacheRoot, createHash('sha1').update(file).digest('hex').slice(0, 12), `${process.pid}-${generation}`);
    mkdirSync(dir, { recursive: true });
    builtDirs.add(dir);
    const { buildSync } = await esbuild();
    const result = buildSync({
      entryPoints: { index: file },
      outdir: dir,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      packages: 'external',
      sourcemap: 'inline',
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
    });
    if (result.errors.length) throw new Error(result.errors.map((e) => e.text).join('\n'));
    return import(pathToFileURL(join(dir, 'index.mjs')).href);
  }
  return import(`${pathToFileURL(file).href}?generation=${generation}`);
}

let esbuildModule: Promise<typeof import('esbuild')> | undefined;
/** esbuild, told not to run buildSync on a worker thread (which a fork does not copy). */
function esbuild(): Promise<typeof import('esbuild')> {
  process.env.ESBUILD_WORKER_THREADS = '0';
  return (esbuildModule ??= import('esbuild'));
}
