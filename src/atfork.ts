// What each module must reset in a freshly forked child (pthread_atfork's child
// handlers, for JS state): lists of children, pending waits, caches of the parent's pid.
const childHandlers: Array<() => void> = [];

/** Registers a function that runs in the child right after fork, before any user code. */
export function onForkChild(fn: () => void): void {
  childHandlers.push(fn);
}

export function runForkChildHandlers(): void {
  // Each one runs whatever another threw: a skipped handler could leave the child reading
  // from a socket or pipe of the parent's.
  for (const fn of childHandlers) {
    try {
      fn();
    } catch (err) {
      process.stderr.write(`unixproc: an onForkChild handler failed in the child: ${(err as Error)?.stack ?? String(err)}\n`);
    }
  }
}
