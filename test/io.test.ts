// Tests for IO and pipe(): fd numbering, synchronous read/write/gets/puts, EOF semantics
// (including across fork), stream hand-over, close and argument errors.
// Run with `node --single-threaded --test` (the fork tests need it).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { IO, IOError, pipe } from '../src/io.js';
import { SystemCallError } from '../src/errors.js';
import { native } from '../src/native.js';
import { fork, wait2 } from '../src/index.js';

const T = { timeout: 20000 };
const openFds = (): number => readdirSync('/proc/self/fd').length;
// Probed with fcntl, not by listing /proc/self/fd: the listing's own directory fd takes
// the lowest free number while it runs.
const isOpen = (fd: number): boolean => native.getFdFlags(fd) >= 0;
const lowestFreeAbove = (n: number): number => {
  let k = n + 1;
  while (isOpen(k)) k++;
  return k;
};
const lowestFree = (): number => lowestFreeAbove(-1);
const fdsAtStart = openFds();

describe('IO.pipe', () => {
  test('takes the lowest free fd numbers and reuses them after close', T, () => {
    const first = lowestFree();
    const second = lowestFreeAbove(first);
    const [r, w] = pipe();
    assert.equal(r.fileno, first);
    assert.equal(w.fileno, second);
    const numbers = [r.fileno, w.fileno];
    r.close();
    w.close();
    const [r2, w2] = IO.pipe();
    assert.deepEqual([r2.fileno, w2.fileno], numbers);
    r2.close();
    w2.close();
  });

  test('sets close-on-exec on both ends, and setCloexec changes it', T, () => {
    const [r, w] = pipe();
    assert.equal(r.cloexec, true);
    assert.equal(w.cloexec, true);
    assert.equal(w.setCloexec(false), w);
    assert.equal(w.cloexec, false);
    assert.equal(r.cloexec, true, 'FD_CLOEXEC is per descriptor, not per pipe');
    w.setCloexec(true);
    assert.equal(w.cloexec, true);
    assert.equal(r.mode, 'r');
    assert.equal(w.mode, 'w');
    r.close();
    w.close();
  });
});

describe('reading and writing', () => {
  test('write, puts, gets, read(n), readpartial and read to EOF', T, () => {
    const [r, w] = pipe();
    assert.equal(w.write('hello '), 6);
    assert.equal(w.write(Buffer.from('world\n')), 6);
    w.puts('second', 'third\n');
    w.puts();
    w.write(new Uint8Array([0x61, 0x62, 0x63]));
    assert.equal(r.gets(), 'hello world\n');
    assert.equal(r.gets(), 'second\n');
    assert.equal(r.read(3)?.toString(), 'thi', 'read(n) drains what gets() read ahead');
    assert.equal(r.gets(), 'rd\n');
    assert.equal(r.readpartial(100)?.toString(), '\nabc');
    w.write('tail without newline');
    w.close();
    assert.equal(r.read(4)?.toString(), 'tail');
    assert.equal(r.gets(), ' without newline', 'the last line may lack its newline');
    assert.equal(r.gets(), null);
    assert.equal(r.read(1), null, 'read(n) at EOF is null');
    assert.equal(r.readpartial(), null);
    assert.deepEqual(r.read(), Buffer.alloc(0), 'read() at EOF is empty, as in Ruby');
    r.close();
  });

  test('EOF comes only after every copy of the writer is closed', T, () => {
    const [r, w] = pipe();
    // A second fd on the same pipe, as fork or dup would give.
    const dup = new IO(native.dup(w.fileno));
    assert.notEqual(dup.fileno, w.fileno);
    w.write('a');
    w.close();
    assert.equal(r.readpartial()?.toString(), 'a');
    // With the dup still open, read would block: poll says nothing is ready.
    assert.equal(native.pollIn([r.fileno], 0), 0);
    dup.write('b');
    dup.close();
    assert.equal(r.read()?.toString(), 'b');
    r.close();
  });

  test('writing to a pipe with no reader is EPIPE, not a fatal SIGPIPE', T, () => {
    const [r, w] = pipe();
    r.close();
    assert.throws(
      () => w.write('x'),
      (e: unknown) => e instanceof SystemCallError && e.code === 'EPIPE' && e.errno === 32 && e.syscall === 'write',
    );
    w.close();
  });
});

describe('stream', () => {
  test('writes through the stream arrive for a synchronous read', T, async () => {
    const [r, w] = pipe();
    const s = w.stream;
    assert.equal(w.stream, s, 'created once');
    assert.equal(s.readable, false);
    assert.equal(s.writable, true);
    await new Promise<void>((res, rej) => s.write('via libuv\n', (e) => (e ? rej(e) : res())));
    assert.equal(r.gets(), 'via libuv\n');
    // Synchronous writes still work on a streaming IO.
    w.write('sync\n');
    assert.equal(r.gets(), 'sync\n');
    const fd = w.fileno;
    w.close();
    assert.equal(w.closed, true);
    assert.equal(s.destroyed, true, 'close() destroys the stream, which closed the fd');
    assert.equal(isOpen(fd), false);
    assert.equal(r.read()?.length, 0);
    r.close();
  });

  test('a reading stream sees data and end; sync reads are refused meanwhile', T, async () => {
    const [r, w] = pipe();
    const s = r.stream;
    assert.throws(() => r.read(), IOError);
    assert.throws(() => r.gets(), /owned by its stream/);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    w.puts('one');
    w.close();
    await once(s, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'one\n');
    r.close();
  });

  test('a stream that ends both sides closes its fd, and the IO reports closed', T, async () => {
    const [r, w] = pipe();
    const s = r.stream;
    s.resume();
    w.close();
    await once(s, 'close');
    assert.equal(r.closed, true);
    assert.throws(() => r.fileno, IOError);
    r.close(); // no-op
  });
});

describe('close and errors', () => {
  test('a second close is a no-op and never closes a reused number', T, () => {
    const [r, w] = pipe();
    const number = r.fileno;
    r.close();
    assert.equal(r.closed, true);
    const [r2, w2] = pipe();
    assert.equal(r2.fileno, number, 'the kernel reuses the lowest free number');
    r.close();
    w2.write('still open');
    assert.equal(r2.readpartial()?.toString(), 'still open');
    for (const op of [() => r.fileno, () => r.read(), () => r.gets(), () => r.cloexec, () => r.stream]) {
      assert.throws(op, (e: unknown) => e instanceof IOError && e.message === 'closed stream');
    }
    w.close();
    assert.throws(() => w.write('x'), /closed stream/);
    r2.close();
    w2.close();
  });

  test('bad arguments are TypeError or RangeError naming them', T, () => {
    assert.throws(() => new IO('3' as unknown as number), { name: 'TypeError', message: /fd must be an integer/ });
    assert.throws(() => IO.for(-1), { name: 'RangeError', message: /fd/ });
    assert.throws(() => IO.for(1.5), RangeError);
    assert.throws(() => new IO(0, 'rw' as 'r'), { name: 'RangeError', message: /mode/ });
    const [r, w] = pipe();
    assert.throws(() => w.write(42 as unknown as string), { name: 'TypeError', message: /data must be/ });
    assert.throws(() => w.puts('a', 7 as unknown as string), { name: 'TypeError', message: /lines\[1\]/ });
    assert.throws(() => r.read(-1), { name: 'RangeError', message: /length/ });
    assert.throws(() => r.readpartial(0), { name: 'RangeError', message: /maxlen/ });
    assert.throws(() => w.setCloexec(1 as unknown as boolean), { name: 'TypeError', message: /on must be a boolean/ });
    r.close();
    w.close();
  });

  test('wrapping an fd that is not open is EBADF', T, () => {
    const n = lowestFree() + 50;
    assert.throws(() => IO.for(n), (e: unknown) => e instanceof SystemCallError && e.code === 'EBADF');
  });
});

describe('with fork', () => {
  test("the reader sees EOF only when the child's copy of the writer is closed too", T, async () => {
    const [r, w] = pipe();
    const [go, goW] = pipe();
    const pid = fork(() => {
      r.close();
      goW.close();
      w.puts(`child ${native.getpid()}`);
      // Hold our copy of the writer until the parent says go.
      go.read();
      w.puts('last');
      w.close();
    });
    go.close();
    w.close();
    assert.equal(r.gets(), `child ${pid}\n`);
    // The parent's writer is closed, but the child's copy keeps the pipe open: no EOF yet.
    assert.equal(native.pollIn([r.fileno], 200), 0);
    goW.close();
    assert.equal(r.read()?.toString(), 'last\n');
    r.close();
    const [wpid, status] = (await wait2(pid))!;
    assert.equal(wpid, pid);
    assert.equal(status.success, true);
  });

  test('read() gathers many pipe-buffers of data from a child until EOF', T, async () => {
    const [r, w] = pipe();
    const pid = fork(() => {
      r.close();
      // 300 KB is several times the 64 KiB pipe buffer: the child blocks until we read.
      for (let i = 0; i < 300; i++) w.write(Buffer.alloc(1000, 97 + (i % 26)));
      w.close();
    });
    w.close();
    const all = r.read()!;
    assert.equal(all.length, 300_000);
    assert.equal(all[299_999], 97 + (299 % 26));
    r.close();
    assert.equal((await wait2(pid))![1].success, true);
  });
});

after(() => {
  assert.equal(openFds(), fdsAtStart, 'every fd opened by these tests is closed');
});

describe('IO.open and reopen', () => {
  test('open a file, write, reopen another IO onto it', { timeout: 20_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'unixproc-io-'));
    try {
      const a = IO.open(join(dir, 'a.txt'), 'w');
      a.write('first\n');
      const b = IO.open(join(dir, 'b.txt'), 'a');
      b.reopen(join(dir, 'a.txt'));
      b.write('second\n');
      a.close();
      b.close();
      const r = IO.open(join(dir, 'a.txt'));
      assert.equal(r.read()!.toString(), 'first\nsecond\n');
      assert.equal(r.mode, 'r');
      r.close();
      assert.throws(() => IO.open(join(dir, 'missing', 'x')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
      assert.throws(() => IO.open(5 as unknown as string), TypeError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
