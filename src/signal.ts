// kill(2) and Ruby's Signal.trap on top of Node's signal delivery. Node (through libuv)
// runs handlers on the event loop, never in signal context, which is what Unicorn's
// self-pipe achieves by hand. Ignoring and the system default need sigaction(2), which
// Node does not expose; trap also restores Node's own default of ignoring SIGPIPE.
import { check, describe, integer } from './errors.js';
import { exit } from './exit.js';
import { native } from './native.js';
import { list, parseSignal, signame } from './signals-table.js';

export { list, signame };

/**
 * Ruby's Process.kill(signal, *pids): sends signal (a name like 'TERM' or 'SIGTERM',
 * a number, or 0 to probe) to each pid; a negative pid, or a negative signal, means
 * a process group. Returns how many processes were signalled.
 */
export function kill(signal: string | number, ...pids: number[]): number {
  let sig = parseSignal(signal);
  let group = false;
  if (sig < 0) {
    group = true;
    sig = -sig;
  }
  if (pids.length === 0) throw new TypeError('kill(signal, ...pids): at least one pid is required');
  for (const pid of pids) integer(pid, 'pid', -(2 ** 31) + 1, 2 ** 31 - 1);
  for (const pid of pids) check(native.kill(group ? -Math.abs(pid) : pid, sig), 'kill', `(pid ${pid})`);
  return pids.length;
}

export type TrapCommand = 'IGNORE' | 'SIG_IGN' | '' | 'DEFAULT' | 'SIG_DFL' | 'SYSTEM_DEFAULT' | 'EXIT';
export type TrapHandler = ((signo: number) => void) | TrapCommand;
/** What trap returns: the previous handler, or the command string that stood for it. */
export type TrapPrevious = ((signo: number) => void) | 'IGNORE' | 'DEFAULT' | 'SYSTEM_DEFAULT' | 'EXIT';
type Previous = TrapPrevious;

// Signals the kernel will not let a process catch, and those a JS handler cannot
// meaningfully handle: they are raised by the faulting instruction itself.
const untrappable = new Set(['KILL', 'STOP']);
const synchronous = new Set(['SEGV', 'BUS', 'ILL', 'FPE']);
// Node ignores these at start-up; its 'default' for them is to ignore.
const nodeIgnores = new Set(['PIPE', 'XFSZ']);

interface Trap {
  handler: Previous;
  listener?: (...args: unknown[]) => void;
}
const traps = new Map<number, Trap>();
const exitTraps: Array<(signo: number) => void> = [];

function normalise(handler: unknown): Previous {
  if (typeof handler === 'function') return handler as (signo: number) => void;
  if (handler === undefined || handler === null) return 'DEFAULT';
  if (typeof handler !== 'string') throw new TypeError(`trap handler must be a function or a command string, got ${describe(handler)}`);
  switch (handler.toUpperCase()) {
    case 'IGNORE':
    case 'SIG_IGN':
    case '':
      return 'IGNORE';
    case 'DEFAULT':
    case 'SIG_DFL':
      return 'DEFAULT';
    case 'SYSTEM_DEFAULT':
      return 'SYSTEM_DEFAULT';
    case 'EXIT':
      return 'EXIT';
    default:
      throw new RangeError(`unknown trap command ${JSON.stringify(handler)} (use a function, 'IGNORE', 'DEFAULT', 'SYSTEM_DEFAULT' or 'EXIT')`);
  }
}

/**
 * Ruby's Signal.trap: installs handler for sig and returns the previous one (a
 * function or a command string) so handlers can be chained. The handler receives the
 * signal number. 'EXIT' (signal 0) registers a handler that runs when the process exits.
 */
export function trap(sig: string | number, handler: TrapHandler | ((signo: number) => void)): Previous {
  const num = parseSignal(sig);
  if (num < 0) throw new RangeError(`invalid signal ${String(sig)}`);
  const next = normalise(handler);
  if (num === 0) return trapExit(next);
  const name = signame(num)!;
  if (untrappable.has(name)) throw new RangeError(`cannot trap SIG${name}: the kernel never lets a process catch or ignore it`);
  if (synchronous.has(name)) throw new RangeError(`cannot trap SIG${name}: it is raised by a faulting instruction and cannot be handled from JavaScript`);

  const event = `SIG${name}` as NodeJS.Signals;
  const previous = traps.get(num);
  const before: Previous = previous ? previous.handler : native.getDisposition(num) === 1 ? 'IGNORE' : 'DEFAULT';

  const entry: Trap = { handler: next };
  if (typeof next === 'function') {
    entry.listener = () => next(num);
  } else if (next === 'EXIT') {
    entry.listener = () => exit(0);
  }
  // The new listener goes on before the old one comes off: with none in between, Node
  // would close its signal handle, and a signal already caught for it (not yet run on
  // the loop) would be dropped instead of reaching the new handler. A forked child that
  // replaces its parent's traps right away relies on this.
  if (entry.listener) process.on(event, entry.listener);
  if (previous?.listener) process.removeListener(event, previous.listener);
  if (!entry.listener && (process.listenerCount(event) === 0 || next === 'IGNORE')) {
    // With no listener left, libuv has restored SIG_DFL; set what was asked for.
    const ignore = next === 'IGNORE' || (next === 'DEFAULT' && nodeIgnores.has(name));
    check(native.setDisposition(num, ignore ? 1 : 0), 'sigaction', `(SIG${name})`);
  }
  traps.set(num, entry);
  return before;
}

let exitHookInstalled = false;
function trapExit(next: Previous): Previous {
  const before = exitTraps.length ? exitTraps[exitTraps.length - 1] : 'DEFAULT';
  exitTraps.length = 0;
  if (typeof next === 'function') {
    exitTraps.push(next);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const fn of exitTraps.splice(0)) fn(0);
      });
    }
  }
  return before;
}
