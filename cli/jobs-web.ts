// `unixproc jobs web`: serves the job dashboard (jobs/dashboard.ts) on node:http, on
// 127.0.0.1 unless told otherwise, read-only unless --actions, until INT or TERM.
import type { Command } from 'commander';
import { createServer } from 'node:http';
import { defaultUrl, openBackend } from '../jobs/open.js';
import { dashboard, type DashboardOptions } from '../jobs/dashboard.js';

export const DEFAULT_WEB_LISTEN = '127.0.0.1:5678';

interface WebFlags {
  backend?: string;
  listen: string;
  actions?: boolean;
  auth?: string;
  token?: string;
  basePath?: string;
  refresh?: string;
}

function fail(message: string, code = 2): never {
  process.stderr.write(`unixproc jobs web: ${message}\n`);
  process.exit(code);
}

/** host:port, [v6]:port, or a bare port (:5678, 5678) on 127.0.0.1: all interfaces only when named (0.0.0.0:5678). */
export function parseWebListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d+)$/.exec(value) ?? (/^(\d+)$/.test(value) ? [value, undefined, '', value] : null);
  if (!m) throw new Error(`--listen must be host:port, [::1]:port or :port, got ${JSON.stringify(value)}`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65535) throw new Error(`--listen has a bad port: ${JSON.stringify(value)} (0 to 65535)`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

// A password on the command line shows in ps and /proc/PID/cmdline to every user of the
// machine; from the environment it is readable only by the process's owner.
function authOption(cli: WebFlags): DashboardOptions['auth'] {
  const env = process.env;
  const flags: WebFlags = { ...cli };
  if (flags.auth === undefined && flags.token === undefined) {
    if (env.UNIXPROC_WEB_AUTH) flags.auth = env.UNIXPROC_WEB_AUTH;
    if (env.UNIXPROC_WEB_TOKEN) flags.token = env.UNIXPROC_WEB_TOKEN;
  }
  if (flags.auth !== undefined && flags.token !== undefined) throw new Error('--auth and --token exclude each other: give one');
  if (flags.token !== undefined) {
    if (flags.token === '') throw new Error('--token must not be empty');
    return { token: flags.token };
  }
  if (flags.auth === undefined) return undefined;
  const colon = flags.auth.indexOf(':');
  if (colon <= 0 || colon === flags.auth.length - 1) throw new Error('--auth must be user:password, both non-empty');
  return { user: flags.auth.slice(0, colon), password: flags.auth.slice(colon + 1) };
}

async function webCommand(flags: WebFlags): Promise<void> {
  let listen: { host: string; port: number };
  let auth: DashboardOptions['auth'];
  let refreshMs: number | undefined;
  try {
    listen = parseWebListen(flags.listen);
    auth = authOption(flags);
    if (flags.refresh !== undefined) {
      refreshMs = Number(flags.refresh);
      if (!Number.isFinite(refreshMs) || refreshMs < 50) throw new Error(`--refresh must be a number of ms >= 50, got ${JSON.stringify(flags.refresh)}`);
    }
    if (flags.basePath !== undefined && !/^\/[^?#\s]*$/.test(flags.basePath)) throw new Error(`--base-path must start with / (e.g. /jobs), got ${JSON.stringify(flags.basePath)}`);
  } catch (err) {
    fail((err as Error).message);
  }
  let backend;
  try {
    backend = await openBackend(flags.backend || defaultUrl());
  } catch (err) {
    fail(`--backend: ${(err as Error).message}`);
  }
  let listener;
  try {
    listener = dashboard({ backend, actions: flags.actions === true, basePath: flags.basePath, auth, refreshMs });
  } catch (err) {
    await backend.close();
    fail((err as Error).message);
  }
  const server = createServer(listener);
  await new Promise<void>((resolve) => {
    server.once('error', async (err: NodeJS.ErrnoException) => {
      await listener.close();
      await backend.close();
      fail(`cannot listen on ${flags.listen}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`, 1);
    });
    server.listen(listen.port, listen.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : listen.port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  process.stdout.write(`unixproc jobs web: http://${host}:${port}${listener.basePath}/ (${backend.url}, ${flags.actions ? 'actions enabled' : 'read-only'})\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    // The event streams first: server.close() waits for every open connection.
    await listener.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await backend.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Registers `web` on the `jobs` command. */
export function addWebCommand(jobs: Command): void {
  jobs
    .command('web')
    .description('serve the job dashboard in a browser (read-only unless --actions)')
    .option('-b, --backend <url>', 'the store (default sqlite:./unixproc-jobs.db or $UNIXPROC_JOBS_URL)')
    .option('-l, --listen <address>', `host:port, [::1]:port or :port (a bare port binds 127.0.0.1; 0.0.0.0:PORT for every interface)`, DEFAULT_WEB_LISTEN)
    .option('--actions', 'allow retry, remove and retry-all of failed jobs (POSTs with a CSRF token)')
    .option('--auth <user:password>', 'ask for HTTP basic credentials (or $UNIXPROC_WEB_AUTH, which ps does not show)')
    .option('--token <token>', 'ask for Authorization: Bearer TOKEN (or $UNIXPROC_WEB_TOKEN)')
    .option('--base-path <path>', 'serve under this path, e.g. /jobs (behind a proxy)')
    .option('--refresh <ms>', 'how often live updates poll the store (default 1000)')
    // Commander has already printed its one-line error (unknown option, missing value): a usage error is status 2 here, as every other flag error.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .action((flags: WebFlags) => webCommand(flags));
}
