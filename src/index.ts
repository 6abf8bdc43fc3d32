// unixproc: the Unix process model of "Working with Unix Processes" for Node.js.
// Namespaces with the book's names (Process, Signal, IO, Socket) and the same
// functions as named exports.
import { warmForkBlock } from './fork.js';
import { install } from './install.js';
import * as signal from './signal.js';
import { trackForeignChild } from './wait.js';

install({ trackForeignChild, warmForkBlock });

export { Process } from './process.js';
export { Status } from './status.js';
export { SystemCallError } from './errors.js';
export { compactHeap, fork, ForkSafetyError, isForkedChild, isSingleThreaded } from './fork.js';
export { onForkChild } from './atfork.js';
export * from './wait.js';
export { exit, exitNow, abort, atExit } from './exit.js';
export { exec } from './exec.js';
export { kill, trap } from './signal.js';
export type { TrapHandler, TrapPrevious } from './signal.js';
export { getrlimit, setrlimit, RLIM_INFINITY, RLIMIT } from './rlimit.js';
export { getTitle, setTitle } from './title.js';
export { setsid, getpgrp, setpgid, getpgid, getsid, daemon, setSubreaper, isSubreaper } from './session.js';
export { IO, IOError, pipe } from './io.js';
export type { IOMode } from './io.js';
export { Socket } from './socket.js';
export { listen, Listener, parseAddress } from './listener.js';
export { readPss } from './meminfo.js';
export { dieWithParent } from './lifeline.js';
export { loadModule, removeBuilds } from './module-loader.js';
export { sharedMemory } from './shared-memory.js';
export type { ListenAddress, ListenOptions } from './listener.js';
export type { SocketType } from './socket.js';

export const Signal = { trap: signal.trap, list: signal.list, signame: signal.signame };
