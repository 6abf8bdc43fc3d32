// Loading the app once, in the master, so workers share it copy-on-write. TypeScript is
// compiled with esbuild into one ESM bundle (lazy imports become chunks of it) rather
// than through loader hooks, which run on a thread that a forked worker does not have.
// Each load (HUP) gets a new bundle, so the app's own modules are re-read.
// The build is synchronous, in an esbuild process that exits when it is done: esbuild's
// async API keeps a service process whose stdio pipes every forked worker would inherit,
// and a worker reading the master's pipe steals (and chokes on) the master's next build
// result, so a HUP hung the master's signal queue and crashed a worker.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';

const cacheRoot = join(tmpdir(), `unixproc-build-${process.getuid?.() ?? 0}`);
/** Bundles this process wrote; workers import their lazy chunks from them while the server runs. */
const builtDirs = new Set<string>();

/** Removes the bundles this master built (at its exit: no worker needs them any more). */
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

type FetchApp = { fetch: (req: Request) => Response | Promise<Response> };

/** Turns the app module's default export into a node:http request listener. */
export async function loadApp(file: string, generation: number): Promise<RequestListener> {
  const mod = (await loadModule(file, generation)) as { default?: unknown };
  let exp: unknown = mod.default ?? mod;
  // A function of no arguments is a factory (sync or async) of the real app.
  if (typeof exp === 'function' && exp.length === 0) exp = await (exp as () => unknown)();
  if (typeof exp === 'function') return exp as RequestListener;
  if (exp && typeof (exp as FetchApp).fetch === 'function') return fetchListener(exp as FetchApp);
  throw new TypeError(
    `${file}: the default export must be a request listener (req, res), an object with fetch(request), ` +
      'or a function returning one of them',
  );
}

/** Adapts a fetch-style app (Hono and friends) to node:http. */
function fetchListener(app: FetchApp): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (Array.isArray(v)) for (const x of v) headers.append(k, x);
      else if (v !== undefined) headers.set(k, v);
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const request = new Request(url, {
      method: req.method,
      headers,
      body: hasBody ? (Readable.toWeb(req) as ReadableStream) : undefined,
      ...(hasBody ? { duplex: 'half' } : {}),
    } as RequestInit);
    Promise.resolve(app.fetch(request))
      .then(async (response) => {
        res.statusCode = response.status;
        response.headers.forEach((value, key) => {
          if (key !== 'set-cookie') res.setHeader(key, value);
        });
        const cookies = response.headers.getSetCookie?.() ?? [];
        if (cookies.length) res.setHeader('set-cookie', cookies);
        if (!response.body) return res.end();
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
        res.end();
      })
      .catch((err) => {
        if (!res.headersSent) res.statusCode = 500;
        res.end();
        process.stderr.write(`${JSON.stringify({ event: 'app.error', pid: process.pid, error: String(err?.stack ?? err) })}\n`);
      });
  };
}
