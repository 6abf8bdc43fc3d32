// The unixproc command line. `run` starts a script in a Node that can fork safely
// (V8 without background threads), replacing this process with exec so signals and
// the exit status go straight to the script, with no wrapper process in between.
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { exec, isSingleThreaded } from '../src/index.js';
import { serve } from '../server/index.js';
import type { ServeOptions } from '../server/options.js';
import { addJobCommands } from './jobs.js';

/** Node options a forking process needs (docs/fork-in-node.md): no V8 background threads. */
export const FORK_SAFE_NODE_FLAGS = ['--single-threaded'];

function nodeSupportsTypeStripping(): boolean {
  const [major, minor] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 18);
}

export function runScript(script: string, args: string[], nodeArgs: string[]): never {
  const file = resolve(script);
  if (!existsSync(file)) {
    process.stderr.write(`unixproc run: no such file: ${script}\n`);
    process.exit(2);
  }
  const flags = [...FORK_SAFE_NODE_FLAGS, ...nodeArgs];
  if (/\.(c|m)?ts$/.test(file) && !nodeSupportsTypeStripping()) {
    process.stderr.write(
      `unixproc run: ${script} is TypeScript, which Node ${process.version} cannot run by itself ` +
        '(loader hooks such as tsx run on a thread a forked child does not have). ' +
        'Compile it with tsc first, or use Node 22.18 or later.\n',
    );
    process.exit(2);
  }
  return exec(process.execPath, [...flags, file, ...args]);
}

/**
 * Node options of the serve master, which its workers inherit. Besides fork safety: no
 * V8 memory reducer. It runs a compacting full GC some seconds after allocation slows
 * down; in the master that moves objects out of pages the workers share (measured with
 * the 200 MB app: total PSS 320 → 440-490 MiB), and in a worker it stops the loop for
 * a few hundred ms while the other workers take every new connection. Without it V8
 * still collects as the heap grows; it only stops shrinking an idle heap on a timer.
 */
export const SERVE_NODE_FLAGS = [...FORK_SAFE_NODE_FLAGS, '--no-memory-reducer'];

/** `--no-foo`, `--foo` and `--foo=x` all name the flag foo (dashes or underscores). */
const flagName = (arg: string): string => arg.replace(/=.*$/, '').replace(/^--(no-)?/, '').replace(/_/g, '-');

/** The serve command forks: a CLI started without its flags re-executes itself with them (same pid). */
function ensureServeFlags(): void {
  const given = new Set(process.execArgv.map(flagName));
  // An explicit --memory-reducer (or any spelling of a flag) is the user's choice: kept.
  const missing = SERVE_NODE_FLAGS.filter((f) => !given.has(flagName(f)) && !(f === '--single-threaded' && isSingleThreaded()));
  if (missing.length) exec(process.execPath, [...missing, ...process.execArgv, ...process.argv.slice(1)]);
}

// A bad number is a usage error: one line naming the flag, status 2 (no stack trace).
const int = (name: string) => (v: string) => {
  const n = /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) {
    process.stderr.write(`unixproc: ${name} must be a whole number, got ${JSON.stringify(v)}\n`);
    process.exit(2);
  }
  return n;
};
const collect = (v: string, all: string[] | undefined) => [...(all ?? []), v];

interface ServeFlags {
  workers?: number;
  spare?: number;
  listen?: string[];
  backlog?: number;
  timeout?: number;
  shutdownTimeout?: number;
  config?: string;
  daemonize?: boolean;
  pid?: string;
  stdout?: string;
  stderr?: string;
  control?: string;
  socketMode?: string;
}

async function serveCommand(app: string | undefined, flags: ServeFlags): Promise<void> {
  ensureServeFlags();
  const options: Partial<ServeOptions> = {
    app,
    workers: flags.workers,
    spare: flags.spare,
    listen: flags.listen,
    backlog: flags.backlog,
    timeout: flags.timeout,
    shutdownTimeout: flags.shutdownTimeout,
    config: flags.config,
    daemonize: flags.daemonize,
    pid: flags.pid,
    stdout: flags.stdout,
    stderr: flags.stderr,
    control: flags.control,
    socketMode: flags.socketMode === undefined ? undefined : parseInt(flags.socketMode, 8),
  };
  try {
    await serve(options);
  } catch (err) {
    process.stderr.write(`unixproc serve: ${(err as Error).message}\n`);
    // A bad option (from a flag or the config file) is a usage error; the rest (an address in use, an app that throws) is not.
    process.exit(err instanceof TypeError || err instanceof RangeError ? 2 : 1);
  }
}

async function statusCommand(flags: { pid?: string; control?: string; json?: boolean }): Promise<void> {
  let path = flags.control;
  if (!path) {
    if (!flags.pid) {
      process.stderr.write('unixproc status: give --pid FILE or --control PATH\n');
      process.exit(2);
    }
    const pid = Number(readFileSync(flags.pid, 'utf8').trim());
    path = join(tmpdir(), `unixproc-${pid}.sock`);
  }
  const text = await new Promise<string>((resolve, reject) => {
    const conn = net.connect(path!);
    let buf = '';
    conn.on('connect', () => conn.write('status\n'));
    conn.on('data', (d) => (buf += d));
    conn.on('end', () => resolve(buf));
    conn.on('error', (e) => reject(new Error(`cannot reach the master at ${path}: ${e.message}`)));
  }).catch((err: Error) => {
    process.stderr.write(`unixproc status: ${err.message}\n`);
    process.exit(1);
  });
  // `unixproc status | head -1`: a reader that has gone is the end of the output, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));
  const status = JSON.parse(text);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return;
  }
  const m = status.master;
  process.stdout.write(`master ${m.pid}  generation ${m.generation}  workers wanted ${m.workersWanted}  listening ${status.listeners.join(', ')}\n`);
  process.stdout.write('worker  pid      state     age(s)  requests  last beat(s)  PSS(MiB)\n');
  for (const w of [...status.workers, ...(status.spares ?? []).map((sp: object) => ({ ...sp, index: 'spare', requests: 0 }))]) {
    const pss = w.pssKiB === null ? '-' : (w.pssKiB / 1024).toFixed(1);
    process.stdout.write(
      `${String(w.index).padEnd(7)} ${String(w.pid).padEnd(8)} ${w.state.padEnd(9)} ${String(w.ageSeconds).padStart(6)}  ${String(w.requests).padStart(8)}  ${String(w.lastHeartbeatSecondsAgo).padStart(12)}  ${pss.padStart(8)}\n`,
    );
  }
}

export function main(argv: string[]): void {
  const program = new Command();
  program.name('unixproc').description('The Unix process model for Node.js').version('0.1.0').enablePositionalOptions();
  program
    .command('run')
    .description('run a script with the Node flags that make fork() safe (--single-threaded)')
    .argument('<script>', 'the JavaScript (or, on Node 22.18+, TypeScript) file to run')
    .argument('[args...]', 'arguments passed to the script')
    .option('--node-arg <flag>', 'an extra flag for node (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .passThroughOptions()
    .action((script: string, args: string[], opts: { nodeArg: string[] }) => runScript(script, args, opts.nodeArg));
  program
    .command('serve')
    .description('preforking HTTP server: load the app once, fork workers that share it copy-on-write')
    .argument('[app]', 'the app module (.js or .ts): default export is a request listener, a { fetch } object, or a function returning one')
    .option('-w, --workers <n>', 'number of workers (default: the number of CPUs)', int('--workers'))
    .option('--spare <n>', 'idle workers kept forked, to replace a dead worker or add one (TTIN) at once (default 0)', int('--spare'))
    .option('-l, --listen <address>', 'host:port, [::1]:port, :port, or a UNIX socket path (repeatable)', collect)
    .option('--backlog <n>', 'listen backlog', int('--backlog'))
    .option('-t, --timeout <seconds>', 'kill a worker silent for this long (a blocked event loop)', int('--timeout'))
    .option('--shutdown-timeout <seconds>', 'how long a graceful stop (QUIT) waits for in-flight requests', int('--shutdown-timeout'))
    .option('--socket-mode <octal>', 'file mode of UNIX sockets, e.g. 660')
    .option('-c, --config <file>', 'config file (.js or .ts) exporting options and hooks')
    .option('-D, --daemonize', 'detach from the terminal; return once the server is ready')
    .option('--pid <file>', 'write the master pid here; refuse to start over a live one')
    .option('--stdout <file>', 'append stdout to this file (reopened on USR1)')
    .option('--stderr <file>', 'append stderr (and the lifecycle log) to this file (reopened on USR1)')
    .option('--control <path>', 'the control socket for `unixproc status` (default: in the temp dir, by pid)')
    .action((app: string | undefined, flags: ServeFlags) => serveCommand(app, flags));
  program
    .command('status')
    .description("list a running server's workers: pid, age, requests, last heartbeat, PSS")
    .option('--pid <file>', "the server's pid file")
    .option('--control <path>', "the server's control socket")
    .option('--json', 'print JSON')
    .action((flags: { pid?: string; control?: string; json?: boolean }) => statusCommand(flags));
  addJobCommands(program);
  program.parse(argv);
}
