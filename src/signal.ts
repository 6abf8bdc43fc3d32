// kill(2) and Ruby's Signal.trap on top of Node's signal delivery. Node (through libuv)
// runs handlers on the event loop, never in signal context, which is what Unicorn's
// self-pipe achieves by hand. Ignoring and the system default need sigaction(2), which
// Node does not expose; trap also restores Node's own default of ignoring SIGPIPE.
// The default of TERM and INT (run the exit sequence, then die of the signal) and the
// EXIT trap belong to src/exit.ts, which owns the exit sequence.
import { check, describe, integer } from './errors.js';
import { exit, getExitTrap, setExitTrap, setRubyDefault } from './exit.js';
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

function normalise(handler: unknown): Previous {
  if (typeof handler === 'function') return handler as (signo: number) => void;
  // Ruby's trap(sig, nil) ignores the signal.
  if (handler === null) return 'IGNORE';
  // Ruby's trap without a handler is an error too; a forgotten argument must not silently pick a disposition.
  if (handler === undefined) throw new TypeError("trap(sig, handler): handler is required (a function, a command string, or null to ignore)");
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
 * signal number. 'IGNORE' ('SIG_IGN', '' or null, Ruby's nil) ignores the signal;
 * undefined is a TypeError. 'DEFAULT' ('SIG_DFL') is Ruby's default: for TERM and INT,
 * while atExit handlers or an EXIT trap exist, they run and then the process dies of
 * the signal; otherwise, and for other signals, the kernel's default (Node's, for PIPE
 * and XFSZ: ignored). 'SYSTEM_DEFAULT' is always the bare kernel default. 'EXIT' as a
 * handler exits 0 on the signal. trap('EXIT', fn) or trap(0, fn) sets the one EXIT trap,
 * which runs at exit before the atExit handlers.
 */
export function trap(sig: string | number, handler: TrapHandler | ((signo: number) => void) | null): Previous {
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
  // For TERM and INT, this adds or removes exit.ts's listener; also before the old one comes off.
  setRubyDefault(num, next === 'DEFAULT');
  if (previous?.listener) process.removeListener(event, previous.listener);
  if (!entry.listener && (process.listenerCount(event) === 0 || next === 'IGNORE')) {
    // With no listener left, libuv has restored SIG_DFL; set what was asked for.
    const ignore = next === 'IGNORE' || (next === 'DEFAULT' && nodeIgnores.has(name));
    check(native.setDisposition(num, ignore ? 1 : 0), 'sigaction', `(SIG${name})`);
  }
  traps.set(num, entry);
  return before;
}

function trapExit(next: Previous): Previous {
  const before = getExitTrap() ?? 'DEFAULT';
  setExitTrap(typeof next === 'function' ? next : null);
  return before;
}
