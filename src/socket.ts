// Socket: a connected UNIX-domain socket (the book's chapter on sockets; Ruby's Socket.pair
// and UNIXSocket#send_io/#recv_io): message-preserving send/recv, async receive through
// libuv, and fd passing with SCM_RIGHTS.
import { writeSync } from 'node:fs';
import { check, describe, errnoOf, integer } from './errors.js';
import { IO, IOError, fromNodeError, toBuffer } from './io.js';
import { native } from './native.js';

export type SocketType = 'STREAM' | 'DGRAM' | 'SEQPACKET';

const TYPES: Record<string, SocketType> = {
  STREAM: 'STREAM',
  DGRAM: 'DGRAM',
  SEQPACKET: 'SEQPACKET',
  SOCK_STREAM: 'STREAM',
  SOCK_DGRAM: 'DGRAM',
  SOCK_SEQPACKET: 'SEQPACKET',
};

function socketType(type: unknown): SocketType {
  if (typeof type !== 'string') throw new TypeError(`type must be a string, got ${describe(type)}`);
  const t = TYPES[type.toUpperCase()];
  if (!t) throw new RangeError(`type must be 'STREAM', 'DGRAM' or 'SEQPACKET', got ${describe(type)}`);
  return t;
}

const MAX = 65536;
const EAGAIN = errnoOf('EAGAIN');
// Messages read by libuv but not yet asked for; past this the stream is paused, so the
// kernel's queue (and the sender's blocking) provide the back-pressure.
const QUEUE_LIMIT = 64;

export class Socket extends IO {
  static readonly MSG_DONTWAIT = native.MSG_DONTWAIT;
  static readonly MSG_PEEK = native.MSG_PEEK;

  readonly type: SocketType;
  #queue: Buffer[] = [];
  #waiters: { resolve(m: Buffer | null): void; reject(e: unknown): void }[] = [];
  #ended = false;
  #error: unknown;
  #attached = false;

  /**
   * Wraps a connected UNIX socket fd (e.g. one received with recvIO). Without a type, the
   * kernel is asked (SO_TYPE); a fd that is not a socket is ENOTSOCK.
   */
  constructor(fd: number, type?: SocketType | string) {
    super(fd, 'r+');
    this.type = type === undefined ? typeOfFd(fd) : socketType(type);
  }

  /** socketpair(2): two connected sockets, close-on-exec like every fd Node opens. */
  static pair(type: SocketType | string = 'STREAM'): [Socket, Socket] {
    const t = socketType(type);
    const [a, b] = check(native.socketPair(native[`SOCK_${t}`], true), 'socketpair');
    return [new Socket(a, t), new Socket(b, t)];
  }

  /**
   * One send(2): for DGRAM and SEQPACKET exactly one message. Returns the bytes sent.
   * MSG_NOSIGNAL is always set, so a closed peer is an EPIPE error rather than SIGPIPE.
   */
  send(data: string | Uint8Array, flags = 0): number {
    const fd = this.fileno;
    const buf = toBuffer(data, 'data');
    integer(flags, 'flags', 0);
    if (buf.length === 0) {
      // The native sendMsg pads an empty payload to one byte (needed when passing fds
      // over STREAM); write(2) of nothing still sends an empty datagram on DGRAM/SEQPACKET.
      try {
        return writeSync(fd, buf);
      } catch (err) {
        throw fromNodeError(err, 'write');
      }
    }
    return check(native.sendMsg(fd, buf, [], flags), 'sendmsg');
  }

  /**
   * One recv(2), blocking: a whole message for DGRAM/SEQPACKET (the kernel drops what does
   * not fit in maxlen), up to maxlen bytes for STREAM. An empty Buffer at EOF (peer closed
   * a STREAM or SEQPACKET socket; a DGRAM peer's close is never seen as EOF).
   */
  recv(maxlen = MAX, flags = 0): Buffer {
    const fd = this.#syncFd();
    integer(maxlen, 'maxlen', 1, 0x7fffffff);
    integer(flags, 'flags', 0);
    const [data] = check(native.recvMsg(fd, maxlen, 0, flags), 'recvmsg');
    return data;
  }

  /** recv without blocking: null when nothing is waiting (EAGAIN). */
  recvNonblock(maxlen = MAX): Buffer | null {
    const fd = this.#syncFd();
    integer(maxlen, 'maxlen', 1, 0x7fffffff);
    const r = native.recvMsg(fd, maxlen, 0, native.MSG_DONTWAIT);
    if (r === -EAGAIN) return null;
    return check(r, 'recvmsg')[0];
  }

  /**
   * The next message without blocking the event loop; null at EOF. Reads go through
   * `stream` (libuv), where each read(2) of a DGRAM/SEQPACKET socket is one datagram, so each
   * chunk is one message. libuv reads into 64 KiB buffers: longer datagrams are truncated,
   * and an empty datagram looks like EOF to it. After the first call the socket is in
   * stream mode: the synchronous recv methods throw.
   */
  recvAsync(maxlen = MAX): Promise<Buffer | null> {
    try {
      integer(maxlen, 'maxlen', 1, 0x7fffffff);
      this.#attach();
    } catch (err) {
      return Promise.reject(err);
    }
    const trim = (m: Buffer | null): Buffer | null => {
      if (m === null || m.length <= maxlen) return m;
      // A byte stream keeps the rest for the next call; a datagram's rest is lost, as in recv(2).
      if (this.type === 'STREAM') this.#queue.unshift(m.subarray(maxlen));
      return m.subarray(0, maxlen);
    };
    if (this.#queue.length) {
      const m = this.#queue.shift()!;
      if (this.#queue.length < QUEUE_LIMIT && this.stream.isPaused()) this.stream.resume();
      return Promise.resolve(trim(m));
    }
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#ended || this.closed) return Promise.resolve(null);
    return new Promise<Buffer | null>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.stream.ref();
    }).then(trim);
  }

  /** Every message until EOF, without blocking the event loop. */
  async *messages(maxlen = MAX): AsyncGenerator<Buffer, void, undefined> {
    for (let m; (m = await this.recvAsync(maxlen)) !== null; ) yield m;
  }

  /** Ruby's send_io: passes a duplicate of the fd (the kernel installs a new number in the receiver). */
  sendIO(io: IO | number): number {
    const fd = typeof io === 'number' ? integer(io, 'io', 0) : io instanceof IO ? io.fileno : NaN;
    if (Number.isNaN(fd)) throw new TypeError(`io must be an IO or an fd number, got ${describe(io)}`);
    return this.sendFds([fd]);
  }

  /** Ruby's recv_io: the next passed fd as an IO (close-on-exec), blocking until it arrives. */
  recvIO(): IO {
    const { fds } = this.recvFds(1, 1);
    if (fds.length === 0) throw new IOError('no file descriptor was passed');
    return new IO(fds[0]!);
  }

  /**
   * sendmsg(2) with SCM_RIGHTS. Some data must travel with the fds (one byte at least on a
   * STREAM socket); an empty payload is sent as a single zero byte.
   */
  sendFds(fds: readonly number[], data: string | Uint8Array = ''): number {
    const fd = this.fileno;
    if (!Array.isArray(fds)) throw new TypeError(`fds must be an array of fd numbers, got ${describe(fds)}`);
    fds.forEach((f, i) => integer(f, `fds[${i}]`, 0, 0x7fffffff));
    return check(native.sendMsg(fd, toBuffer(data, 'data'), [...fds], 0), 'sendmsg');
  }

  /**
   * recvmsg(2) accepting up to maxFds passed fds, which arrive close-on-exec and are the
   * caller's to close. `truncated` means data or fds did not fit (the kernel closes the
   * fds it could not deliver).
   */
  recvFds(maxFds = 16, maxlen = MAX): { data: Buffer; fds: number[]; truncated: boolean } {
    const fd = this.#syncFd();
    integer(maxFds, 'maxFds', 1, 253 /* SCM_MAX_FD */);
    integer(maxlen, 'maxlen', 1, 0x7fffffff);
    const [data, fds, truncated] = check(native.recvMsg(fd, maxlen, maxFds, 0), 'recvmsg');
    // The control buffer is padded to CMSG_SPACE (8-byte alignment), so the kernel may
    // deliver one fd more than asked for an odd maxFds: close it, as the kernel would have.
    if (fds.length > maxFds) {
      for (const extra of fds.splice(maxFds)) native.close(extra);
      return { data, fds, truncated: true };
    }
    return { data, fds, truncated };
  }

  #syncFd(): number {
    const fd = this.fileno;
    if (this.streaming) throw new IOError(`fd ${fd} is owned by its stream; use recvAsync()`);
    return fd;
  }

  #attach(): void {
    if (this.#attached) return;
    const s = this.stream;
    this.#attached = true;
    // Only a pending recvAsync keeps the process alive, not a socket that was once read.
    s.unref();
    const idle = (): void => {
      if (this.#waiters.length === 0 && !s.destroyed) s.unref();
    };
    s.on('data', (chunk: Buffer) => {
      const w = this.#waiters.shift();
      if (w) {
        w.resolve(chunk);
        idle();
      } else if (this.#queue.push(chunk) >= QUEUE_LIMIT) s.pause();
    });
    const finish = (err?: unknown): void => {
      if (err !== undefined) this.#error ??= err;
      this.#ended = true;
      for (const w of this.#waiters.splice(0)) {
        if (this.#error !== undefined) w.reject(this.#error);
        else w.resolve(null);
      }
    };
    s.on('end', () => finish());
    s.on('error', (err) => finish(fromNodeError(err, 'read')));
    s.on('close', () => finish());
  }
}

function typeOfFd(fd: number): SocketType {
  const t = check(native.sockType(fd), 'getsockopt', `(fd ${fd})`);
  if (t === native.SOCK_DGRAM) return 'DGRAM';
  if (t === native.SOCK_SEQPACKET) return 'SEQPACKET';
  return 'STREAM';
}
