// What each module must reset in a freshly forked child (pthread_atfork's child
// handlers, for JS state): lists of children, pending waits, caches of the parent's pid.
const childHandlers: Array<() => void> = [];

/** Registers a function that runs in the child right after fork, before any user code. */
export function onForkChild(fn: () => void): void {
  childHandlers.push(fn);
}

export function runForkChildHandlers(): void {
  for (const fn of childHandlers) fn();
}
