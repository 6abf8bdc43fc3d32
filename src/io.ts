// IO: Ruby's IO over a raw file descriptor (fileno, read, write, gets, puts, close), and
// IO.pipe. Reads and writes are synchronous read(2)/write(2) calls, as in the book; `stream`
// hands the fd to libuv when the event loop must not block.
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import net from 'node:net';
import { SystemCallError, check, describe, integer } from './errors.js';
import { native } from './native.js';

/** Raised by any operation on a closed IO, as Ruby raises IOError ('closed stream'). */
export class IOError extends Error {
  constructor(message = 'closed stream') {
    super(message);
    this.name = 'IOError';
  }
}

/** Which directions the fd is open for; decides the `stream`'s readable/writable sides. */
export type IOMode = 'r' | 'w' | 'r+';

const CHUNK = 65536;

/** @internal Turns an error from node:fs (negative errno, code, syscall) into a SystemCallError. */
export function fromNodeError(err: unknown, fallbackSyscall: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.errno === 'number' && typeof e.code === 'string') {
    return new SystemCallError(Math.abs(e.errno), e.syscall ?? fallbackSyscall);
  }
  return err;
}

/** The fd's access mode from /proc (Linux): the kernel knows it, so the caller need not say. */
function modeOf(fd: number): IOMode {
  try {
    const m = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (m) return (['r', 'w', 'r+'] as const)[parseInt(m[1]!, 8) & 3] ?? 'r+';
  } catch {
    // no /proc: assume both directions
  }
  return 'r+';
}

let pipeHandle: (new (type: number) => { open(fd: number): number; close(): void }) | undefined;

/**
 * A net.Socket over any pipe or UNIX socket fd. Node only accepts fds that libuv's
 * uv_guess_handle recognises (pipes and SOCK_STREAM sockets); for SOCK_DGRAM and
 * SOCK_SEQPACKET it says UNKNOWN, although uv_pipe_open works on them and each read(2)
 * then returns one whole datagram. So those are opened through node's own Pipe handle.
 */
function streamFor(fd: number, readable: boolean, writable: boolean): net.Socket {
  try {
    return new net.Socket({ fd, readable, writable, allowHalfOpen: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_INVALID_FD_TYPE') throw err;
  }
  pipeHandle ??= (process as unknown as { binding(name: string): { Pipe: typeof pipeHandle } }).binding('pipe_wrap').Pipe;
  const handle = new pipeHandle!(0 /* SOCKET */);
  const r = handle.open(fd);
  if (r < 0) {
    handle.close();
    throw new SystemCallError(-r, 'uv_pipe_open');
  }
  // `handle` is accepted by net.Socket but missing from @types/node.
  return new net.Socket({ handle, readable, writable, allowHalfOpen: true } as net.SocketConstructorOpts);
}

export class IO {
  #fd: number;
  #closed = false;
  #mode: IOMode | undefined;
  #stream: net.Socket | undefined;
  // Bytes read ahead by gets(); read() and readpartial() drain them first.
  #buffered: Buffer = Buffer.alloc(0);

  /** Wraps an fd that is already open (inherited, dup'ed, or received over a socket). */
  constructor(fd: number, mode?: IOMode) {
    integer(fd, 'fd', 0, 0x7fffffff);
    if (mode !== undefined && mode !== 'r' && mode !== 'w' && mode !== 'r+') {
      throw new RangeError(`mode must be 'r', 'w' or 'r+', got ${describe(mode)}`);
    }
    check(native.getFdFlags(fd), 'fcntl', `(fd ${fd})`);
    this.#fd = fd;
    this.#mode = mode;
  }

  /**
   * Ruby's File.open: opens path with fs flags ('r', 'w', 'a', 'r+', 'w+', 'a+', ...)
   * and wraps the fd. Node opens it close-on-exec, as Ruby does.
   */
  static open(path: string, flags = 'r', mode = 0o666): IO {
    if (typeof path !== 'string') throw new TypeError(`path must be a string, got ${describe(path)}`);
    if (typeof flags !== 'string') throw new TypeError(`flags must be a string like 'r' or 'a', got ${describe(flags)}`);
    const fd = openSync(path, flags, mode);
    return new IO(fd, flags.includes('+') ? 'r+' : flags.startsWith('r') ? 'r' : 'w');
  }

  /** Ruby's IO#dup: a new fd (close-on-exec) for the same open file description. */
  dup(): IO {
    this.#open();
    return new IO(check(native.dup(this.#fd), 'dup'), this.#mode);
  }

  /** Ruby's IO.for_fd. */
  static for(fd: number, mode?: IOMode): IO {
    return new IO(fd, mode);
  }

  /** Ruby's IO.pipe: [reader, writer], both close-on-exec (fork keeps them; exec drops them). */
  static pipe(): [IO, IO] {
    const [r, w] = check(native.pipe(true), 'pipe');
    return [new IO(r, 'r'), new IO(w, 'w')];
  }

  get fileno(): number {
    this.#open();
    return this.#fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** 'r', 'w' or 'r+': given at construction, else the fd's access mode as the kernel reports it. */
  get mode(): IOMode {
    this.#open();
    return (this.#mode ??= modeOf(this.#fd));
  }

  /**
   * Closes the fd. A second close is a no-op, as in Ruby since 2.3: the IO remembers that
   * it is closed, so it never closes the number again, which by then may belong to
   * another file. Every other operation on a closed IO throws IOError.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffered = Buffer.alloc(0);
    if (this.#stream) {
      // libuv owns the fd now; destroying the handle closes it (synchronously, in uv_close).
      this.#stream.destroy();
      this.#stream = undefined;
    } else {
      check(native.close(this.#fd), 'close', `(fd ${this.#fd})`);
    }
  }

  /**
   * Ruby's IO#reopen: makes this fd refer to another open file (a path, opened for
   * appending when the IO writes, or another IO), keeping its number, as dup2(2) does.
   * This is how stdout and stderr are pointed at log files, and reopened after rotation.
   */
  reopen(target: string | IO): this {
    this.#open();
    if (this.#stream) throw new IOError('cannot reopen an IO whose stream is in use');
    if (target instanceof IO) {
      check(native.dup2(target.fileno, this.#fd), 'dup2');
      return this;
    }
    if (typeof target !== 'string') throw new TypeError(`reopen target must be a path or an IO, got ${describe(target)}`);
    const fd = openSync(target, this.mode === 'r' ? 'r' : 'a');
    try {
      check(native.dup2(fd, this.#fd), 'dup2');
    } finally {
      closeSync(fd);
    }
    this.#buffered = Buffer.alloc(0);
    return this;
  }

  get cloexec(): boolean {
    this.#open();
    return (check(native.getFdFlags(this.#fd), 'fcntl') & 1) !== 0;
  }

  /** Sets or clears FD_CLOEXEC: whether the fd survives exec(2). fork(2) copies it either way. */
  setCloexec(on: boolean): this {
    this.#open();
    if (typeof on !== 'boolean') throw new TypeError(`on must be a boolean, got ${describe(on)}`);
    check(native.setCloexec(this.#fd, on), 'fcntl');
    return this;
  }

  /**
   * Without length: everything up to EOF (an empty Buffer when already at EOF), as Ruby's
   * read. With length: up to `length` bytes, blocking until they all arrive or EOF; null
   * when EOF comes before any byte.
   */
  read(length?: number): Buffer | null {
    this.#readable();
    if (length === undefined) {
      const parts: Buffer[] = [this.#take(this.#buffered.length)];
      for (let chunk; (chunk = this.#read1(CHUNK)) !== null; ) parts.push(chunk);
      return Buffer.concat(parts);
    }
    integer(length, 'length', 0);
    const parts: Buffer[] = [this.#take(length)];
    let got = parts[0]!.length;
    while (got < length) {
      const chunk = this.#read1(Math.min(length - got, CHUNK));
      if (chunk === null) break;
      parts.push(chunk);
      got += chunk.length;
    }
    return got === 0 && length > 0 ? null : Buffer.concat(parts, got);
  }

  /** At most `maxlen` bytes from a single read(2) (or what gets() read ahead); null at EOF. */
  readpartial(maxlen = CHUNK): Buffer | null {
    this.#readable();
    integer(maxlen, 'maxlen', 1);
    if (this.#buffered.length) return this.#take(maxlen);
    return this.#read1(maxlen);
  }

  /** One line including its '\n' (the last line may lack it); null at EOF. */
  gets(): string | null {
    this.#readable();
    let from = 0;
    for (;;) {
      const nl = this.#buffered.indexOf(10, from);
      if (nl !== -1) return this.#take(nl + 1).toString('utf8');
      from = this.#buffered.length;
      const chunk = this.#read1(CHUNK);
      if (chunk === null) return this.#buffered.length ? this.#take(this.#buffered.length).toString('utf8') : null;
      this.#buffered = Buffer.concat([this.#buffered, chunk]);
    }
  }

  /** Writes all of `data` (looping over short writes); returns the byte count. */
  write(data: string | Uint8Array): number {
    this.#open();
    const buf = toBuffer(data, 'data');
    let off = 0;
    do {
      try {
        off += writeSync(this.#fd, buf, off, buf.length - off);
      } catch (err) {
        // EPIPE arrives as an error, not a signal: Node ignores SIGPIPE.
        throw fromNodeError(err, 'write');
      }
    } while (off < buf.length);
    return buf.length;
  }

  /** Ruby's puts: each line followed by '\n' unless it already ends with one. */
  puts(...lines: string[]): void {
    if (lines.length === 0) lines = [''];
    for (const [i, line] of lines.entries()) {
      if (typeof line !== 'string') throw new TypeError(`lines[${i}] must be a string, got ${describe(line)}`);
    }
    this.write(lines.map((l) => (l.endsWith('\n') ? l : `${l}\n`)).join(''));
  }

  /**
   * A net.Socket on this fd, created on first use. libuv makes the fd O_NONBLOCK, which is
   * a property of the open file description and so also seen by every dup and forked copy.
   * allowHalfOpen is set, so the end of input does not shut down or close the fd. From then on the stream owns the fd: close() destroys it, and the synchronous read
   * methods throw (libuv is reading the same fd). Synchronous writes stay allowed but
   * may throw EAGAIN when the kernel buffer is full.
   */
  get stream(): net.Socket {
    this.#open();
    if (!this.#stream) {
      const mode = this.mode;
      const s = (this.#stream = streamFor(this.#fd, mode !== 'w', mode !== 'r'));
      // A stream that finishes both sides destroys itself and libuv closes the fd; from then
      // on the number may belong to another file, so this IO must count as closed.
      s.once('close', () => {
        this.#closed = true;
      });
    }
    return this.#stream;
  }

  /** Whether `stream` has taken over the fd. */
  get streaming(): boolean {
    return this.#stream !== undefined;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `#<${this.constructor.name}:${this.#closed ? '(closed)' : `fd ${this.#fd}`}>`;
  }

  #open(): void {
    if (this.#closed) throw new IOError();
  }

  #readable(): void {
    this.#open();
    if (this.#stream) throw new IOError(`fd ${this.#fd} is owned by its stream; read through .stream`);
  }

  #take(n: number): Buffer {
    const out = this.#buffered.subarray(0, n);
    this.#buffered = this.#buffered.subarray(out.length);
    return out;
  }

  /** One read(2): a Buffer of 1..max bytes, or null at EOF. */
  #read1(max: number): Buffer | null {
    const buf = Buffer.allocUnsafe(max);
    for (;;) {
      try {
        const n = readSync(this.#fd, buf, 0, max, null);
        return n === 0 ? null : buf.subarray(0, n);
      } catch (err) {
        // Someone (a stream on a dup, or in another process) made the shared open file
        // description non-blocking: wait for data instead of failing.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          check(native.pollIn([this.#fd], -1), 'poll');
          continue;
        }
        throw fromNodeError(err, 'read');
      }
    }
  }
}

/** @internal */
export function toBuffer(data: unknown, name: string): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`${name} must be a string, Buffer or Uint8Array, got ${describe(data)}`);
}

/** Ruby's IO.pipe. */
export function pipe(): [IO, IO] {
  return IO.pipe();
}
