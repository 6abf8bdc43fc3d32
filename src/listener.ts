// Listening sockets as bare fds (Unicorn's listeners): made with socket/bind/listen so
// the process that owns them does not accept on them, and so they can be inherited
// by forked workers and by a re-executed program (clear close-on-exec first).
// Addresses: "host:port", "[v6]:port", ":port" or "port" (all IPv4 interfaces),
// "unix:/path", or a path ("/tmp/app.sock", "./app.sock").
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { check, describe, integer, SystemCallError } from './errors.js';
import { native } from './native.js';

export interface ListenAddress {
  kind: 'tcp' | 'unix';
  host?: string;
  port?: number;
  path?: string;
}

/** Parses a listen address, throwing a RangeError that quotes it when it is malformed. */
export function parseAddress(address: string): ListenAddress {
  if (typeof address !== 'string' || address === '') throw new TypeError(`listen address must be a non-empty string, got ${describe(address)}`);
  if (address.startsWith('unix:')) return { kind: 'unix', path: resolve(address.slice(5)) };
  if (address.startsWith('/') || address.startsWith('.')) return { kind: 'unix', path: resolve(address) };
  let host = '0.0.0.0';
  let portText = address;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(address);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if (address.includes(':')) {
    const i = address.lastIndexOf(':');
    host = address.slice(0, i) || '0.0.0.0';
    portText = address.slice(i + 1);
  }
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) throw new RangeError(`bad port in listen address ${JSON.stringify(address)}`);
  return { kind: 'tcp', host, port: Number(portText) };
}

export class Listener {
  /** The listening socket's fd. */
  readonly fd: number;
  /** The address as given (or as found, for an inherited fd). */
  readonly address: string;
  private closed = false;

  constructor(fd: number, address?: string) {
    this.fd = integer(fd, 'fd', 0);
    this.address = address ?? Listener.describeFd(fd);
  }

  /** What the socket is bound to, as "host:port" or a path. */
  static describeFd(fd: number): string {
    const [family, addr, port] = check(native.sockName(fd), 'getsockname');
    if (family === 'unix') return addr;
    return family === 'inet6' ? `[${addr}]:${port}` : `${addr}:${port}`;
  }

  /** The bound port (useful after listening on port 0), or null for a UNIX socket. */
  get port(): number | null {
    const [family, , port] = check(native.sockName(this.fd), 'getsockname');
    return family === 'unix' ? null : port;
  }

  get boundAddress(): string {
    return Listener.describeFd(this.fd);
  }

  /** Lets the fd survive exec (for a re-executed master), or not. */
  setInheritable(on: boolean): void {
    check(native.setCloexec(this.fd, !on), 'fcntl');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native.close(this.fd);
  }
}

export interface ListenOptions {
  backlog?: number;
  /** File mode for a UNIX socket, e.g. 0o660. */
  mode?: number;
}

/** Binds and listens; EADDRINUSE and friends are SystemCallErrors naming the address. */
export async function listen(address: string, opts: ListenOptions = {}): Promise<Listener> {
  const parsed = parseAddress(address);
  const backlog = integer(opts.backlog ?? 1024, 'backlog', 1);
  if (parsed.kind === 'unix') {
    await removeStaleSocket(parsed.path!);
    const fd = check(native.listenUnix(parsed.path!, backlog), 'bind', parsed.path);
    if (opts.mode !== undefined) chmodSync(parsed.path!, opts.mode);
    return new Listener(fd, parsed.path);
  }
  let ip = parsed.host!;
  if (!isIP(ip)) ip = (await lookup(ip)).address;
  const fd = native.listenInet(ip, parsed.port!, backlog, true);
  if (fd === -22 /* EINVAL from the address parser */ && !isIP(ip)) throw new RangeError(`bad host in listen address ${JSON.stringify(address)}`);
  check(fd, 'bind', address);
  return new Listener(fd, address);
}

/**
 * A socket file left by a process that died is removed; one that a live server answers
 * on is an error (EADDRINUSE), as binding a TCP port in use would be.
 */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new SystemCallError(17 /* EEXIST */, 'bind', `${path} (not a socket)`);
  const live = await new Promise<boolean>((res) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
  if (live) throw new SystemCallError(98 /* EADDRINUSE */, 'bind', path);
  unlinkSync(path);
}
