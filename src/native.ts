// Loads the native addon built for this Node ABI and describes its shape. The addon
// is a set of thin syscall wrappers: each returns a negative errno on failure, and
// src/errors.ts turns that into a SystemCallError.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Native {
  fork(platformTasks: number, platformParked: number, uvPoolSize: number, timeoutMs: number): number | [number, string];
  platformThreads(): number;
  clearDontfork(): number;
  lowMemoryNotification(): void;
  mapShared(bytes: number): ArrayBuffer | number;
  armExitWatch(beforeExit: () => void, exit: () => void): void;
  abandonStack(run: () => void, beforeReset: () => Error, afterReset: () => void): void;
  warmAsyncStackReset(beforeReset: () => Error, afterReset: () => void): void;
  strerror(errno: number): string;

  getpid(): number;
  getppid(): number;
  kill(pid: number, sig: number): number;
  setsid(): number;
  getpgrp(): number;
  setpgid(pid: number, pgid: number): number;
  getpgid(pid: number): number;
  getsid(pid: number): number;
  exitNow(code: number): never;
  setSubreaper(on: boolean): number;
  setParentDeathSignal(sig: number): number;
  getSubreaper(): number;
  exec(file: string, argv: string[]): number;

  waitpid(pid: number, flags: number): [number, number] | number;
  peekExited(pid: number): [number, number] | number;
  pidfdOpen(pid: number): number;
  pollIn(fds: number[], timeoutMs: number): number;
  WNOHANG: number;
  WUNTRACED: number;
  WCONTINUED: number;

  setDisposition(sig: number, ignore: 0 | 1): number;
  getDisposition(sig: number): number;

  getrlimit(resource: number): [number, number] | number;
  setrlimit(resource: number, soft: number, hard: number): number;
  RLIMIT: Record<string, number>;

  setTitle(title: string): number;

  pipe(cloexec: boolean): [number, number] | number;
  socketPair(type: number, cloexec: boolean): [number, number] | number;
  close(fd: number): number;
  dup2(from: number, to: number): number;
  dup(fd: number): number;
  setCloexec(fd: number, on: boolean): number;
  getFdFlags(fd: number): number;
  setNonblock(fd: number, on: boolean): number;
  sendMsg(fd: number, data: Buffer, fds: number[], flags: number): number;
  recvMsg(fd: number, maxBytes: number, maxFds: number, flags: number): [Buffer, number[], boolean] | number;
  listenInet(ip: string, port: number, backlog: number, ipv6Only: boolean): number;
  listenUnix(path: string, backlog: number): number;
  sockName(fd: number): ['inet' | 'inet6' | 'unix', string, number] | number;
  sockType(fd: number): number;
  SOCK_STREAM: number;
  SOCK_DGRAM: number;
  SOCK_SEQPACKET: number;
  MSG_DONTWAIT: number;
  MSG_PEEK: number;
}

function load(): Native {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const abi = process.versions.modules;
  const target = `${process.platform}-${process.arch}`;
  // A git checkout builds from source (its native/ may be newer than any prebuild from
  // an earlier `npm pack`); an installed package ships prebuilds (scripts/prebuild.mjs).
  const checkout = existsSync(join(root, '.git'));
  // build-abi/<ABI> holds builds for the other supported Node versions (scripts/build-addon.mjs);
  // build/Release is what the install script built from source for the Node that
  // installed the package (none when a prebuild served); the prebuild for this ABI last,
  // so a source build (`npm rebuild --build-from-source`) wins. The prebuild is found
  // here even when npm never ran the install script.
  const candidates = [
    join(root, 'build-abi', abi, 'unixproc.node'),
    join(root, 'build', 'Release', 'unixproc.node'),
    ...(checkout ? [] : [join(root, 'prebuilds', target, `node-abi${abi}.node`)]),
  ];
  const require = createRequire(import.meta.url);
  const errors: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    try {
      const addon = require(file) as Native & { builtForModules: string };
      if (addon.builtForModules !== abi) {
        errors.push(`${file}: built for Node ABI ${addon.builtForModules}`);
        continue;
      }
      return addon;
    } catch (err) {
      errors.push(`${file}: ${(err as Error).message}`);
    }
  }
  const how = checkout
    ? 'In this git checkout the addon is built from source: `npm ci` (or `npx node-gyp rebuild`) for this Node, ' +
      '`node scripts/build-addon.mjs` for the versions in tools/node-versions.'
    : 'Prebuilt addons ship for linux-x64 with Node 20, 22 and 24; for any other Node or platform the addon is built ' +
      'from source, which needs a C++ compiler, make and python3 (Debian/Ubuntu: apt-get install g++ make python3): ' +
      'install them, then run `npm rebuild unixproc`.';
  throw new Error(
    `unixproc: no native addon loads for Node ${process.version} (ABI ${abi}) on ${target}. ${how}` +
      (errors.length ? `\n${errors.join('\n')}` : ''),
  );
}

export const native: Native = load();
