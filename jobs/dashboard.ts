// The job dashboard (`unixproc jobs web`, or `dashboard()` mounted in an app): a plain
// node:http request listener over a Backend that renders every page on the server, streams
// the stats to the client script over server-sent events, and, only when asked to, retries
// and removes failures through POSTs that carry a CSRF token.
import { createHmac, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';
import { openBackend } from './open.js';
import { nextRun } from './schedule.js';
import type { Html } from './dashboard/html.js';
import {
  delayedPage,
  errorPage,
  failedPage,
  jobPage,
  overviewPage,
  runningPage,
  schedulesPage,
  workersPage,
  CHART_MINUTES,
  type PageContext,
  type Paging,
} from './dashboard/pages.js';

export interface DashboardOptions {
  /** The store, or a URL for openBackend (then the dashboard opens it on first use and closes it in close()). */
  backend: Backend | string;
  /** Allow retry, remove and retry-all (POSTs with a CSRF token). Default false: read-only. */
  actions?: boolean;
  /** Where the app mounts it, e.g. '/jobs'; every URL it emits starts with this. Default: the root. */
  basePath?: string;
  /** HTTP basic credentials, or a bearer token, asked of every request. */
  auth?: { user: string; password: string } | { token: string };
  /** How often /events polls the store for changed stats (ms, default 1000). */
  refreshMs?: number;
  /** How long an /events stream may stay silent before a keep-alive comment (ms, default 15000). */
  keepAliveMs?: number;
}

export interface DashboardListener {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Ends the event streams, answers 503 from now on, and closes a backend opened from a URL. */
  close(): Promise<void>;
  /** The mount path as normalized ('' for the root). */
  readonly basePath: string;
}

/** Rows per page on /failed and /delayed. */
export const PAGE_SIZE = 25;

const SECURITY_HEADERS: Record<string, string> = {
  // No inline script or style anywhere: the client script and the CSS are assets of ours.
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
};

interface Asset {
  body: Buffer;
  type: string;
  hash: string;
}

/**
 * The client script and stylesheet live in jobs/dashboard-assets/, which the package ships
 * as is: from dist/jobs/ it is ../../jobs/dashboard-assets/, from jobs/ (run as TypeScript)
 * ./dashboard-assets/.
 */
function loadAssets(): Record<'dashboard.js' | 'dashboard.css' | 'favicon.svg', Asset> {
  const dirs = ['../../jobs/dashboard-assets/', './dashboard-assets/'].map((d) => fileURLToPath(new URL(d, import.meta.url)));
  const dir = dirs.find((d) => existsSync(`${d}dashboard.js`));
  if (!dir) throw new Error(`dashboard: its assets are missing (looked for dashboard.js in ${dirs.join(' and ')})`);
  const load = (name: string, type: string): Asset => {
    const body = readFileSync(dir + name);
    return { body, type, hash: createHash('sha256').update(body).digest('base64url').slice(0, 16) };
  };
  return {
    'dashboard.js': load('dashboard.js', 'text/javascript; charset=utf-8'),
    'dashboard.css': load('dashboard.css', 'text/css; charset=utf-8'),
    'favicon.svg': load('favicon.svg', 'image/svg+xml'),
  };
}

const describe = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? (Array.isArray(v) ? 'an array' : 'an object') : String(v));

function normalizeBasePath(value: unknown): string {
  if (value === undefined || value === '' || value === '/') return '';
  if (typeof value !== 'string') throw new TypeError(`dashboard: basePath must be a string such as '/jobs', got ${describe(value)}`);
  const trimmed = value.replace(/\/+$/, '');
  if (!/^(\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$/.test(trimmed)) {
    throw new RangeError(`dashboard: basePath must be a path such as '/jobs' (segments of letters, digits and -._~), got ${describe(value)}`);
  }
  return trimmed;
}

function checkOptions(opts: DashboardOptions): void {
  if (!opts || typeof opts !== 'object') throw new TypeError(`dashboard: options must be an object, got ${describe(opts)}`);
  const b = opts.backend as unknown;
  if (typeof b === 'string') {
    if (b === '') throw new TypeError('dashboard: backend must be a Backend or a non-empty URL, got ""');
  } else if (!b || typeof (b as Backend).stats !== 'function' || typeof (b as Backend).failed !== 'function') {
    throw new TypeError(`dashboard: backend must be a Backend (from openBackend) or a URL such as sqlite:./unixproc-jobs.db, got ${describe(b)}`);
  }
  if (opts.actions !== undefined && typeof opts.actions !== 'boolean') throw new TypeError(`dashboard: actions must be a boolean, got ${describe(opts.actions)}`);
  for (const key of ['refreshMs', 'keepAliveMs'] as const) {
    const v = opts[key];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 50)) throw new RangeError(`dashboard: ${key} must be a number of ms >= 50, got ${describe(v)}`);
  }
  const auth = opts.auth as Record<string, unknown> | undefined;
  if (auth !== undefined) {
    if (!auth || typeof auth !== 'object') throw new TypeError(`dashboard: auth must be { user, password } or { token }, got ${describe(auth)}`);
    if ('token' in auth) {
      if (typeof auth.token !== 'string' || auth.token === '') throw new TypeError(`dashboard: auth.token must be a non-empty string, got ${describe(auth.token)}`);
    } else {
      if (typeof auth.user !== 'string' || auth.user === '' || auth.user.includes(':')) throw new TypeError(`dashboard: auth.user must be a non-empty string without ':', got ${describe(auth.user)}`);
      if (typeof auth.password !== 'string' || auth.password === '') throw new TypeError(`dashboard: auth.password must be a non-empty string, got ${describe(auth.password)}`);
    }
  }
}

/** An answer of the router: a page, JSON, a redirect, or an asset. */
class Reply {
  constructor(
    readonly status: number,
    readonly body: string | Buffer,
    readonly headers: Record<string, string>,
  ) {}
}

/** A request refused with a status and a message shown on the error page (or as JSON). */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
  ) {
    super(message);
  }
}

const BODY_LIMIT = 64 * 1024;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        reject(new Refusal(413, 'Too large', `the request body is over ${BODY_LIMIT} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function dashboard(opts: DashboardOptions): DashboardListener {
  checkOptions(opts);
  const base = normalizeBasePath(opts.basePath);
  const actions = opts.actions === true;
  const refreshMs = opts.refreshMs ?? 1000;
  const keepAliveMs = opts.keepAliveMs ?? 15_000;
  const assets = loadAssets();
  const assetUrl = (name: keyof typeof assets) => `${base}/assets/${name}?v=${assets[name].hash}`;

  // One random secret per dashboard: the CSRF token is derived from it, and comparisons go
  // through HMACs under it, so they take the same time whatever the lengths.
  const secret = randomBytes(32);
  const csrf = createHmac('sha256', secret).update('csrf').digest('base64url');
  const mac = (s: string) => createHmac('sha256', secret).update(s).digest();
  const sameSecret = (a: string, b: string) => timingSafeEqual(mac(a), mac(b));

  const ownsBackend = typeof opts.backend === 'string';
  let opened: Promise<Backend> | null = typeof opts.backend === 'string' ? null : Promise.resolve(opts.backend);
  const backend = (): Promise<Backend> => {
    // Opened on first use: an app that forks after mounting the dashboard opens it in the worker.
    opened ??= openBackend(opts.backend as string);
    return opened;
  };
  let closed = false;

  // ---- auth -------------------------------------------------------------------------------

  const auth = opts.auth;
  function authorized(req: IncomingMessage): boolean {
    if (!auth) return true;
    const header = req.headers.authorization ?? '';
    if ('token' in auth) {
      const m = /^Bearer +(\S+) *$/i.exec(header);
      return m !== null && sameSecret(m[1], auth.token);
    }
    const m = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
    if (!m) return false;
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    // Both compared, always: how long it takes says nothing about which one was wrong.
    const userOk = sameSecret(decoded.slice(0, colon), auth.user);
    const passwordOk = sameSecret(decoded.slice(colon + 1), auth.password);
    return userOk && passwordOk;
  }

  // ---- server-sent events -----------------------------------------------------------------

  interface Client {
    res: ServerResponse;
    lastData: string | null;
    lastWrite: number;
  }
  const clients = new Set<Client>();
  let poll: NodeJS.Timeout | null = null;
  let polling = false;

  const write = (c: Client, text: string) => {
    c.res.write(text);
    c.lastWrite = Date.now();
  };

  const statsJson = async (): Promise<string> => JSON.stringify(await (await backend()).stats());

  /** One read of the stats for every client: each is sent it only when it differs from what that client has. */
  async function pollOnce(): Promise<void> {
    poll = null;
    if (closed || clients.size === 0) return;
    polling = true;
    try {
      const data = await statsJson();
      for (const c of clients) if (c.lastData !== data) {
        c.lastData = data;
        write(c, `event: stats\ndata: ${data}\n\n`);
      }
    } catch (err) {
      for (const c of clients) write(c, `event: store-error\ndata: ${JSON.stringify(String((err as Error)?.message ?? err))}\n\n`);
    } finally {
      polling = false;
    }
    const now = Date.now();
    for (const c of clients) if (now - c.lastWrite >= keepAliveMs) write(c, ': keep-alive\n\n');
    schedulePoll();
  }

  function schedulePoll(): void {
    if (poll || polling || closed || clients.size === 0) return;
    poll = setTimeout(() => void pollOnce(), refreshMs);
    poll.unref();
  }

  async function events(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const data = await statsJson();
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      // Proxies such as nginx would otherwise hold the stream back.
      'X-Accel-Buffering': 'no',
    });
    // HEAD has no body to stream; a client that left while the stats were read is not kept.
    if (req.method === 'HEAD' || req.socket.destroyed) {
      res.end();
      return;
    }
    req.socket.setNoDelay(true);
    const client: Client = { res, lastData: data, lastWrite: 0 };
    clients.add(client);
    const gone = () => {
      clients.delete(client);
      if (clients.size === 0 && poll) {
        clearTimeout(poll);
        poll = null;
      }
    };
    res.on('close', gone);
    write(client, `retry: ${Math.max(1000, refreshMs)}\nevent: stats\ndata: ${data}\n\n`);
    schedulePoll();
  }

  // ---- pages --------------------------------------------------------------------------------

  async function context(here: string): Promise<PageContext> {
    const stats = await (await backend()).stats();
    return { base, actions, csrf, assets: { css: assetUrl('dashboard.css'), js: assetUrl('dashboard.js'), icon: assetUrl('favicon.svg') }, stats, here, now: Date.now() };
  }

  const page = (status: number, body: Html) =>
    new Reply(status, body.text, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });

  const json = (status: number, value: unknown) =>
    new Reply(status, `${JSON.stringify(value, null, 2)}\n`, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });

  function pageNumber(query: URLSearchParams): number {
    const v = query.get('page');
    if (v === null || v === '') return 1;
    if (!/^[1-9]\d{0,8}$/.test(v)) throw new Refusal(400, 'Bad page', `page must be an integer >= 1, got ${JSON.stringify(v)}`);
    return Number(v);
  }

  /** The page's rows as [offset, limit] of a list of `total`, and where the page stands. */
  function paging(query: URLSearchParams, total: number): Paging {
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    return { page: Math.min(pageNumber(query), pages), pages, total };
  }

  async function getPage(path: string, query: URLSearchParams, here: string): Promise<Reply> {
    const b = await backend();
    if (path === '/') {
      const ctx = await context(here);
      const since = ctx.now - (ctx.now % 60_000) - (CHART_MINUTES - 1) * 60_000;
      const minutes = typeof b.minutes === 'function' ? await b.minutes(since) : null;
      return page(200, overviewPage(ctx, minutes));
    }
    if (path === '/workers' || path === '/running') {
      const ctx = await context(here);
      const workers = await b.workers();
      return page(200, path === '/workers' ? workersPage(ctx, workers) : runningPage(ctx, workers));
    }
    if (path === '/failed') {
      const ctx = await context(here);
      const p = paging(query, ctx.stats.failedKept);
      // The store keeps failures oldest first; the page shows them newest first.
      const end = Math.max(0, p.total - (p.page - 1) * PAGE_SIZE);
      const start = Math.max(0, end - PAGE_SIZE);
      const failures = end > start ? (await b.failed(start, end - start)).reverse() : [];
      return page(200, failedPage(ctx, failures, p));
    }
    if (path === '/delayed') {
      const ctx = await context(here);
      const p = paging(query, ctx.stats.delayed);
      return page(200, delayedPage(ctx, await b.delayed((p.page - 1) * PAGE_SIZE, PAGE_SIZE), p));
    }
    if (path === '/schedules') {
      const ctx = await context(here);
      const list = (await b.schedules()).map((s) => {
        try {
          return { ...s, next: nextRun(s, new Date(ctx.now))?.getTime() ?? null, nextError: null };
        } catch (err) {
          return { ...s, next: null, nextError: String((err as Error)?.message ?? err) };
        }
      });
      return page(200, schedulesPage(ctx, list));
    }
    const jobMatch = /^\/jobs\/([^/]+)$/.exec(path);
    if (jobMatch) {
      const id = decodeSegment(jobMatch[1]);
      const ctx = await context(here);
      const job = await b.job(id);
      if (!job) return page(404, errorPage(ctx, 404, 'No such job', `There is no job ${JSON.stringify(id)} in this store (done jobs are pruned after a while).`));
      let where = null;
      if (job.state === 'running') {
        for (const w of await b.workers()) {
          const r = w.running.find((x) => x.job.id === job.id);
          if (r) where = { worker: w.id, childPid: r.childPid, since: r.since, rss: r.rss };
        }
      }
      return page(200, jobPage(ctx, job, where));
    }
    if (path === '/api/stats') return json(200, await b.stats());
    const ctx = await context(here);
    return page(404, errorPage(ctx, 404, 'Not found', `There is no page ${path} here.`));
  }

  function assetReply(name: keyof typeof assets, query: URLSearchParams, ifNoneMatch?: string): Reply {
    const a = assets[name];
    const etag = `"${a.hash}"`;
    // A URL with the content hash never changes; a bare one is revalidated every time.
    const cache = query.get('v') === a.hash ? 'public, max-age=31536000, immutable' : 'no-cache';
    if (ifNoneMatch !== undefined && ifNoneMatch.split(/\s*,\s*/).includes(etag)) return new Reply(304, '', { ETag: etag, 'Cache-Control': cache });
    return new Reply(200, a.body, { 'Content-Type': a.type, ETag: etag, 'Cache-Control': cache });
  }

  function decodeSegment(segment: string): string {
    try {
      return decodeURIComponent(segment);
    } catch {
      throw new Refusal(400, 'Bad URL', `the path segment ${JSON.stringify(segment)} is not valid percent-encoding`);
    }
  }

  // ---- actions --------------------------------------------------------------------------------

  /** Where a form asked to come back to: a path inside the mount, never another site. */
  function returnTo(value: string | null): string {
    const fallback = `${base}/failed`;
    if (!value || !value.startsWith(`${base}/`) || value.startsWith('//') || /[\\\r\n]/.test(value)) return fallback;
    return value;
  }

  async function post(req: IncomingMessage, path: string): Promise<Reply> {
    if (!actions) throw new Refusal(403, 'Read-only', 'This dashboard is read-only: start it with --actions (actions: true) to retry or remove failed jobs.');
    const m = /^\/failed\/(?:(retry-all)|([^/]+)\/(retry|remove))$/.exec(path);
    if (!m) throw new Refusal(404, 'Not found', `There is no action ${path} here.`);
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const text = await readBody(req);
    const form = type === 'application/x-www-form-urlencoded' || type === '' ? new URLSearchParams(text) : new URLSearchParams();
    const token = form.get('csrf') ?? (req.headers['x-csrf-token'] as string | undefined) ?? '';
    if (!token) throw new Refusal(403, 'Missing CSRF token', 'The form carried no CSRF token: reload the page and try again.');
    if (!sameSecret(token, csrf)) throw new Refusal(403, 'Wrong CSRF token', 'The CSRF token does not match this dashboard (it changes when the dashboard restarts): reload the page and try again.');
    const b = await backend();
    let result: Record<string, unknown>;
    if (m[1]) {
      result = { retried: await b.retryAll() };
    } else {
      const id = decodeSegment(m[2]);
      const ok = m[3] === 'retry' ? await b.retry(id) : await b.removeFailure(id);
      if (!ok) throw new Refusal(404, 'No such failure', `There is no failed job ${JSON.stringify(id)} (already retried or removed?).`);
      result = m[3] === 'retry' ? { retried: 1 } : { removed: 1 };
    }
    if (wantsJson(req)) return json(200, { ok: true, ...result });
    return new Reply(303, '', { Location: returnTo(form.get('return')) });
  }

  const wantsJson = (req: IncomingMessage) => /\bapplication\/json\b/.test(String(req.headers.accept ?? ''));

  // ---- the listener ---------------------------------------------------------------------------

  async function refusalReply(req: IncomingMessage, r: Refusal, here: string): Promise<Reply> {
    if (wantsJson(req) || here.startsWith('/api/')) return json(r.status, { error: r.message });
    try {
      return page(r.status, errorPage(await context(here), r.status, r.title, r.message));
    } catch {
      return new Reply(r.status, `${r.message}\n`, { 'Content-Type': 'text/plain; charset=utf-8' });
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (r: Reply) => {
      res.writeHead(r.status, { ...SECURITY_HEADERS, ...r.headers, 'Content-Length': String(Buffer.byteLength(r.body)) });
      res.end(r.body);
    };
    const text = (status: number, message: string, headers: Record<string, string> = {}) =>
      send(new Reply(status, `${message}\n`, { 'Content-Type': 'text/plain; charset=utf-8', ...headers }));

    if (closed) return text(503, 'the dashboard is closed');
    // Express's app.use('/jobs', listener) strips the mount from req.url and keeps the whole path in originalUrl.
    const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
    const rawUrl = typeof original === 'string' ? original : (req.url ?? '/');
    let url: URL;
    try {
      url = new URL(rawUrl.startsWith('/') ? `http://dashboard${rawUrl}` : rawUrl);
    } catch {
      return text(400, `bad request URL ${JSON.stringify(rawUrl)}`);
    }
    const pathname = url.pathname;
    if (pathname !== base && !pathname.startsWith(`${base}/`)) return text(404, `not found: ${pathname} is outside the dashboard (${base || '/'})`);
    if (!authorized(req)) {
      const challenge = auth && 'token' in auth ? 'Bearer realm="unixproc jobs"' : 'Basic realm="unixproc jobs", charset="UTF-8"';
      return text(401, 'authentication required', { 'WWW-Authenticate': challenge });
    }
    const path = pathname.slice(base.length).replace(/(.)\/+$/, '$1') || '/';
    const here = path + url.search;
    try {
      if (req.method === 'POST') return send(await post(req, path));
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, `method ${req.method} is not allowed here`, { Allow: 'GET, HEAD, POST' });
      if (path === '/events') return await events(req, res);
      const asset = /^\/assets\/(dashboard\.js|dashboard\.css|favicon\.svg)$/.exec(path);
      if (asset) return send(assetReply(asset[1] as keyof typeof assets, url.searchParams, req.headers['if-none-match']));
      send(await getPage(path, url.searchParams, here));
    } catch (err) {
      if (err instanceof Refusal) return send(await refusalReply(req, err, here));
      throw err;
    }
  }

  const listener = ((req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      const message = `the dashboard failed: ${String((err as Error)?.message ?? err)}`;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(500, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`${message}\n`);
    });
  }) as DashboardListener;

  listener.close = async () => {
    if (closed) return;
    closed = true;
    if (poll) clearTimeout(poll);
    poll = null;
    for (const c of clients) c.res.end();
    clients.clear();
    if (ownsBackend && opened) await (await opened.catch(() => null))?.close();
  };
  Object.defineProperty(listener, 'basePath', { value: base, enumerable: true });
  return listener;
}
