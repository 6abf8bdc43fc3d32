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
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const tmpRoot = join(tmpdir(), `unixproc-build-${process.getuid?.() ?? 0}`);
/** This package's root (dist/src/ is two levels down): what `unixproc` resolves to in a bundle. */
const ownRoot = fileURLToPath(new URL('../..', import.meta.url));
/** Bundles this process wrote; its children import their lazy chunks from them while it runs. */
const builtDirs = new Set<string>();

/** Removes the bundles this process built (at its exit: no child needs them any more). */
export function removeBuilds(): void {
  for (const dir of builtDirs) rmSync(dir, { recursive: true, force: true });
  builtDirs.clear();
}

/** The node_modules dirs that Node's resolution would search from a file, nearest first. */
function nodeModulesAbove(file: string): string[] {
  const found: string[] = [];
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules');
    try {
      if (statSync(candidate).isDirectory()) found.push(candidate);
    } catch {
      /* not here */
    }
    if (dirname(dir) === dir) return found;
  }
}

/** A symlink that another process may be making at the same moment (two masters, one app). */
function linkOnce(target: string, path: string): void {
  try {
    symlinkSync(target, path, 'dir');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Where a bundle of `file` goes. The bundle keeps every package import (`packages:
 * 'external'`), and Node resolves those from the bundle's own path, so it must sit where
 * they resolve as they do from the source: in node_modules/.cache/unixproc of the nearest
 * node_modules (walking up from there reaches that node_modules and every hoisted one
 * above it, as a monorepo needs). Where that is not writable (a read-only image), it goes
 * under the temp dir, in a nest of dirs with a node_modules symlink at each level to the
 * source's node_modules dirs in their order, nearest innermost. In both, a
 * node_modules/unixproc symlink in the bundle's dir makes `unixproc/...` this running
 * package, so the app shares its module instances (fork hooks, the addon) with the CLI.
 */
function bundleDir(file: string, generation: number): string {
  const hash = createHash('sha1').update(file).digest('hex').slice(0, 12);
  const above = nodeModulesAbove(file);
  let parent: string | null = null;
  if (above.length) {
    try {
      parent = join(above[0], '.cache', 'unixproc', hash);
      mkdirSync(parent, { recursive: true });
    } catch {
      parent = null;
    }
  }
  if (!parent) {
    parent = join(tmpRoot, hash);
    for (let i = above.length - 1; i >= 0; i--) {
      parent = join(parent, `m${i}`);
      mkdirSync(parent, { recursive: true });
      linkOnce(above[i], join(parent, 'node_modules'));
    }
    mkdirSync(parent, { recursive: true });
  }
  // Bundles of processes that died without their exit (SIGKILL) are of no use to anyone.
  for (const name of readdirSync(parent)) {
    const pid = Number(/^(\d+)-\d+$/.exec(name)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) rmSync(join(parent, name), { recursive: true, force: true });
  }
  const dir = join(parent, `${process.pid}-${generation}`);
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  linkOnce(ownRoot, join(dir, 'node_modules', 'unixproc'));
  return dir;
}

type BuildMessage = { text: string; location: { file: string; line: number; column: number; lineText: string } | null };

/** esbuild's errors as `file:line:column: message` lines (a full path, 1-based column), with the source line. */
function describeBuildErrors(errors: BuildMessage[]): string {
  return errors
    .slice(0, 5)
    .map((e) => (e.location ? `${resolve(e.location.file)}:${e.location.line}:${e.location.column + 1}: ${e.text}\n    ${e.location.lineText.trim()}` : e.text))
    .join('\n');
}

/** A build of `file` and what it imports by relative path: throws with esbuild's located errors. */
async function build(file: string, options: Record<string, unknown>): Promise<void> {
  const { buildSync } = await esbuild();
  let result;
  try {
    result = buildSync({
      entryPoints: { index: file },
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      packages: 'external',
      logLevel: 'silent',
      ...options,
    });
  } catch (err) {
    // buildSync throws on errors, with them in err.errors.
    const errors = (err as { errors?: BuildMessage[] }).errors;
    if (errors?.length) throw new SyntaxError(describeBuildErrors(errors));
    throw err;
  }
  if (result.errors.length) throw new SyntaxError(describeBuildErrors(result.errors as BuildMessage[]));
}

/** Imports a module (TS through esbuild); generation busts the module cache on reloads. */
export async function loadModule(file: string, generation: number): Promise<unknown> {
  if (!existsSync(file)) throw new Error(`no such file: ${file}`);
  if (/\.(c|m)?tsx?$/.test(extname(file))) {
    const dir = bundleDir(file, generation);
    builtDirs.add(dir);
    await build(file, { outdir: dir, splitting: true, sourcemap: 'inline', outExtension: { '.js': '.mjs' } });
    return import(pathToFileURL(join(dir, 'index.mjs')).href);
  }
  try {
    return await import(`${pathToFileURL(file).href}?generation=${generation}`);
  } catch (err) {
    // Node 20's SyntaxError from import() carries no file or line (only an uncaught one prints
    // them): have esbuild parse the module and what it imports, and name the place.
    if (err instanceof SyntaxError) {
      try {
        await build(file, { write: false });
      } catch (located) {
        if (located instanceof SyntaxError) throw located;
      }
    }
    throw err;
  }
}

let esbuildModule: Promise<typeof import('esbuild')> | undefined;
/** esbuild, told not to run buildSync on a worker thread (which a fork does not copy). */
function esbuild(): Promise<typeof import('esbuild')> {
  process.env.ESBUILD_WORKER_THREADS = '0';
  return (esbuildModule ??= import('esbuild'));
}
