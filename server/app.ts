// Loading the app once, in the master, so workers share it copy-on-write (loadModule in
// the process API bundles TypeScript without loader hooks), and adapting its default
// export to a node:http request listener.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { loadModule } from '../src/index.js';

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
