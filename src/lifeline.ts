// dieWithParent(): a child that must not outlive its parent (a job child of a worker
// master that is SIGKILLed) asks the kernel for a signal when the parent dies. Linux
// only (prctl PR_SET_PDEATHSIG); the parent may already be gone when it asks, which
// the ppid check after it catches.
import { check } from './errors.js';
import { native } from './native.js';
import { parseSignal } from './signals-table.js';

/**
 * Has the kernel send this process `signal` (default KILL) when its parent dies. Call it
 * in a forked child, passing the parent's pid as the fork saw it: if the parent died
 * before the call, the child was already re-parented and signals itself at once.
 */
export function dieWithParent(expectedParent: number, signal: string | number = 'KILL'): void {
  if (!Number.isInteger(expectedParent) || expectedParent <= 0) {
    throw new TypeError(`dieWithParent(expectedParent): expectedParent must be a positive integer pid, got ${String(expectedParent)}`);
  }
  const sig = parseSignal(signal);
  if (sig <= 0) throw new RangeError(`dieWithParent: invalid signal ${String(signal)}`);
  check(native.setParentDeathSignal(sig), 'prctl', '(PR_SET_PDEATHSIG)');
  if (native.getppid() !== expectedParent) native.kill(native.getpid(), sig);
}
