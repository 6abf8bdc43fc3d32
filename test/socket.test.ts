// Tests for Socket: socketpair types, message boundaries (or their absence on STREAM), EOF
// and peer-closed errors, async receive through libuv, and fd passing with SCM_RIGHTS.
// Run with `node --single-threaded --test` (the fork tests need it).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Socket } from '../src/socket.js';
import { IO, IOError, pipe } from '../src/io.js';
import { SystemCallError } from '../src/errors.js';
import { native } from '../src/native.js';
import { fork, wait2 } from '../src/index.js';

const T = { timeout: 20000 };
const openFds = (): number => readdirSync('/proc/self/fd').length;
const isOpen = (fd: number): boolean => native.getFdFlags(fd) >= 0;
const fdsAtStart = openFds();
const sysErr = (code: string, syscall?: string) => (e: unknown) =>
  e instanceof SystemCallError && e.code === code && (syscall === undefined || e.syscall === syscall);
const str = (b: Buffer | null): string | null => (b === null ? null : b.toString());

describe('Socket.pair', () => {
  test('gives two connected, close-on-exec sockets of the asked type', T, () => {
    for (const [asked, type] of [
      [undefined, 'STREAM'],
      ['DGRAM', 'DGRAM'],
      ['seqpacket', 'SEQPACKET'],
      ['SOCK_DGRAM', 'DGRAM'],
    ] as const) {
      const [a, b] = asked === undefined ? Socket.pair() : Socket.pair(asked);
      assert.equal(a.type, type);
      assert.equal(b.type, type);
      assert.ok(Number.isInteger(a.fileno) && Number.isInteger(b.fileno) && a.fileno !== b.fileno);
      assert.equal(a.cloexec && b.cloexec, true);
      assert.ok(a instanceof IO);
      a.send('ping');
      assert.equal(str(b.recv()), 'ping');
      a.close();
      b.close();
    }
  });

  test('unknown types are a RangeError naming the value; non-strings a TypeError', T, () => {
    const before = openFds();
    assert.throws(() => Socket.pair('RAW'), { name: 'RangeError', message: /type must be .*"RAW"/ });
    assert.throws(() => Socket.pair(''), RangeError);
    assert.throws(() => Socket.pair(2 as unknown as 'DGRAM'), { name: 'TypeError', message: /type must be a string, got number 2/ });
    assert.equal(openFds(), before);
  });

  test('bad arguments to send, recv and sendIO name the argument', T, () => {
    const [a, b] = Socket.pair('DGRAM');
    assert.throws(() => a.send(5 as unknown as string), { name: 'TypeError', message: /data/ });
    assert.throws(() => a.send('x', -1), { name: 'RangeError', message: /flags/ });
    assert.throws(() => b.recv(0), { name: 'RangeError', message: /maxlen/ });
    assert.throws(() => b.recv('9' as unknown as number), { name: 'TypeError', message: /maxlen/ });
    assert.throws(() => a.sendIO('1' as unknown as number), { name: 'TypeError', message: /io must be/ });
    assert.throws(() => a.sendFds([1.5]), { name: 'RangeError', message: /fds\[0\]/ });
    assert.throws(() => a.sendFds(3 as unknown as number[]), { name: 'TypeError', message: /fds must be/ });
    assert.throws(() => b.recvFds(0), { name: 'RangeError', message: /maxFds/ });
    a.close();
    b.close();
    assert.throws(() => a.send('x'), IOError);
  });
});

describe('message boundaries', () => {
  for (const type of ['DGRAM', 'SEQPACKET'] as const) {
    test(`${type}: one send is one recv, in both directions`, T, () => {
      const [a, b] = Socket.pair(type);
      for (const [from, to] of [
        [a, b],
        [b, a],
      ]) {
        assert.equal(from.send('one'), 3);
        from.send(Buffer.from('two'));
        from.send('three');
        assert.deepEqual([to.recv(), to.recv(), to.recv()].map(str), ['one', 'two', 'three']);
        assert.equal(to.recvNonblock(), null, 'nothing left over');
      }
      // A message longer than maxlen is cut, and its rest is gone (not the next recv's).
      a.send('truncated');
      a.send('next');
      assert.equal(str(b.recv(5)), 'trunc');
      assert.equal(str(b.recv()), 'next');
      a.close();
      b.close();
    });
  }

  test('STREAM: a byte stream, so two sends can arrive as one recv', T, () => {
    const [a, b] = Socket.pair('STREAM');
    a.send('one');
    a.send('two');
    assert.equal(str(b.recv(100)), 'onetwo');
    b.send('abcdef');
    assert.equal(str(a.recv(4)), 'abcd');
    assert.equal(str(a.recv(4)), 'ef', 'the rest stays for the next recv');
    a.close();
    b.close();
  });

  test('an empty message on DGRAM is a real, empty datagram; on STREAM nothing', T, () => {
    const [a, b] = Socket.pair('DGRAM');
    assert.equal(a.send(''), 0);
    assert.equal(b.recvNonblock()?.length, 0);
    assert.equal(b.recvNonblock(), null);
    a.close();
    b.close();
    const [c, d] = Socket.pair('STREAM');
    assert.equal(c.send(''), 0);
    assert.equal(d.recvNonblock(), null);
    c.close();
    d.close();
  });

  test('recvNonblock is null when nothing waits; recv with MSG_DONTWAIT throws EAGAIN', T, () => {
    const [a, b] = Socket.pair('SEQPACKET');
    assert.equal(b.recvNonblock(), null);
    assert.throws(() => b.recv(10, Socket.MSG_DONTWAIT), sysErr('EAGAIN', 'recvmsg'));
    a.send('peeked');
    assert.equal(str(b.recv(100, Socket.MSG_PEEK)), 'peeked');
    assert.equal(str(b.recvNonblock()), 'peeked');
    a.close();
    b.close();
  });
});

describe('closed peers', () => {
  test('STREAM and SEQPACKET: recv gives EOF (empty), send gives EPIPE without SIGPIPE', T, () => {
    for (const type of ['STREAM', 'SEQPACKET'] as const) {
      const [a, b] = Socket.pair(type);
      a.send('last words');
      a.close();
      assert.equal(str(b.recv()), 'last words', 'queued data outlives the sender');
      assert.equal(b.recv().length, 0);
      assert.equal(b.recv().length, 0, 'EOF repeats');
      assert.throws(() => b.send('anyone?'), sysErr('EPIPE', 'sendmsg'));
      b.close();
    }
  });

  test('DGRAM: no EOF ever arrives; send is refused with ECONNREFUSED', T, () => {
    const [a, b] = Socket.pair('DGRAM');
    a.close();
    // A datagram socket has no connection to end, so recv would block forever.
    assert.equal(b.recvNonblock(), null);
    assert.throws(() => b.send('anyone?'), sysErr('ECONNREFUSED', 'sendmsg'));
    b.close();
  });
});

describe('async receive', () => {
  for (const type of ['DGRAM', 'SEQPACKET'] as const) {
    test(`${type}: messages queued before reading still arrive one per recvAsync`, T, async () => {
      const [a, b] = Socket.pair(type);
      // Several datagrams wait in the kernel, so libuv reads them in one burst of read(2)s.
      for (let i = 0; i < 20; i++) a.send(`m${i}:${'x'.repeat(i * 100)}`);
      const got: string[] = [];
      for (let i = 0; i < 20; i++) got.push(str(await b.recvAsync())!);
      assert.deepEqual(
        got,
        Array.from({ length: 20 }, (_, i) => `m${i}:${'x'.repeat(i * 100)}`),
      );
      // The other direction, with the async side sending synchronously as well.
      b.send('reply 1');
      b.send('reply 2');
      assert.deepEqual([a.recv(), a.recv()].map(str), ['reply 1', 'reply 2']);
      assert.throws(() => b.recv(), /owned by its stream/);
      a.close();
      b.close();
    });
  }

  test('recvAsync does not block the event loop and wakes on a later message', T, async () => {
    const [a, b] = Socket.pair('SEQPACKET');
    const order: string[] = [];
    const pending = b.recvAsync().then((m) => order.push(`message ${str(m)}`));
    await new Promise((res) => setTimeout(res, 30));
    order.push('timer');
    a.send('late');
    await pending;
    assert.deepEqual(order, ['timer', 'message late']);
    a.close();
    b.close();
  });

  test('messages() yields each message and ends at EOF', T, async () => {
    const [a, b] = Socket.pair('SEQPACKET');
    a.send('alpha');
    a.send('beta');
    setTimeout(() => {
      a.send('gamma');
      a.close();
    }, 20);
    const got: string[] = [];
    for await (const m of b.messages()) got.push(m.toString());
    assert.deepEqual(got, ['alpha', 'beta', 'gamma']);
    assert.equal(await b.recvAsync(), null);
    b.close();
  });

  test('STREAM: recvAsync(maxlen) keeps the rest for the next call', T, async () => {
    const [a, b] = Socket.pair('STREAM');
    a.send('abcdefgh');
    assert.equal(str(await b.recvAsync(3)), 'abc');
    assert.equal(str(await b.recvAsync(100)), 'defgh');
    a.close();
    assert.equal(await b.recvAsync(), null);
    b.close();
  });

  test('libuv reads into 64 KiB buffers: a longer message arrives cut to 65536 bytes', T, async () => {
    const [a, b] = Socket.pair('SEQPACKET');
    a.send(Buffer.alloc(100_000, 7));
    a.send('after');
    assert.equal((await b.recvAsync())!.length, 65536);
    assert.equal(str(await b.recvAsync()), 'after', 'the rest of the long message is gone');
    a.close();
    b.close();
  });

  test('writes through the stream of a SEQPACKET socket are received as messages', T, async () => {
    const [a, b] = Socket.pair('SEQPACKET');
    await new Promise<void>((res, rej) => a.stream.write('through libuv', (e) => (e ? rej(e) : res())));
    assert.equal(str(b.recv()), 'through libuv');
    const fd = a.fileno;
    a.close();
    assert.equal(isOpen(fd), false, 'close() destroyed the stream, and libuv closed the fd');
    assert.equal(b.recv().length, 0);
    b.close();
  });
});

describe('fd passing', () => {
  test("sendIO/recvIO pass a pipe's write end; writes through the copy reach the reader", T, () => {
    const [a, b] = Socket.pair('STREAM');
    const [r, w] = pipe();
    assert.equal(a.sendIO(w), 1, 'one byte of data carries the fd');
    const got = b.recvIO();
    assert.notEqual(got.fileno, w.fileno, 'the kernel installs the fd under a new number');
    assert.equal(got.cloexec, true);
    assert.equal(got.mode, 'w', 'the access mode travels with the open file description');
    got.puts('via the passed fd');
    assert.equal(r.gets(), 'via the passed fd\n');
    w.close();
    // The received fd is a full reference to the pipe: no EOF while it is open.
    assert.equal(native.pollIn([r.fileno], 0), 0);
    got.close();
    assert.equal(r.read()?.length, 0);
    r.close();
    a.close();
    b.close();
  });

  test('a passed file shares the file offset with the original (one open file description)', T, () => {
    const dir = mkdtempSync(join(tmpdir(), 'unixproc-socket-'));
    const path = join(dir, 'shared.txt');
    const fd = openSync(path, 'w+');
    try {
      const [a, b] = Socket.pair('DGRAM');
      a.sendIO(fd);
      const got = b.recvIO();
      writeSync(fd, 'written by the original, ');
      got.write('then by the received fd');
      assert.equal(readFileSync(path, 'utf8'), 'written by the original, then by the received fd');
      got.close();
      a.close();
      b.close();
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true });
    }
  });

  test('sendFds/recvFds carry data and several fds; extra fds are truncated and closed', T, () => {
    const [a, b] = Socket.pair('SEQPACKET');
    const [r, w] = pipe();
    a.sendFds([r.fileno, w.fileno], 'two ends');
    const { data, fds, truncated } = b.recvFds();
    assert.equal(data.toString(), 'two ends');
    assert.equal(fds.length, 2);
    assert.equal(truncated, false);
    const [r2, w2] = [new IO(fds[0]!), new IO(fds[1]!)];
    w2.write('loop');
    assert.equal(str(r.readpartial()), 'loop');
    r2.close();
    w2.close();

    const before = openFds();
    a.sendFds([r.fileno, w.fileno, r.fileno], 'three');
    const cut = b.recvFds(1);
    assert.equal(cut.fds.length, 1);
    assert.equal(cut.truncated, true);
    assert.equal(openFds(), before + 1, 'the kernel closed the fds that did not fit');
    closeSync(cut.fds[0]!);

    a.send('no fd here');
    assert.throws(() => b.recvIO(), { name: 'IOError', message: /no file descriptor/ });
    r.close();
    w.close();
    a.close();
    b.close();
  });

  test('passing a closed fd is EBADF from sendmsg', T, () => {
    const [a, b] = Socket.pair('STREAM');
    const [r, w] = pipe();
    const n = w.fileno;
    w.close();
    r.close();
    assert.throws(() => a.sendIO(n), sysErr('EBADF', 'sendmsg'));
    a.close();
    b.close();
  });
});

describe('with fork', () => {
  test('a pipe created after fork reaches the child through sendIO', T, async () => {
    const [parentSide, childSide] = Socket.pair('STREAM');
    const pid = fork(() => {
      parentSide.close();
      const out = childSide.recvIO();
      out.puts(`hello from ${native.getpid()}`);
      out.close();
      childSide.send('done');
      childSide.close();
    });
    childSide.close();
    // Created after fork, so the child could not have inherited it.
    const [r, w] = pipe();
    parentSide.sendIO(w);
    w.close();
    assert.equal(r.gets(), `hello from ${pid}\n`);
    assert.equal(str(parentSide.recv()), 'done');
    assert.equal(r.read()?.length, 0, "EOF: the child's copy was its only other reference");
    r.close();
    parentSide.close();
    const [wpid, status] = (await wait2(pid))!;
    assert.equal(wpid, pid);
    assert.equal(status.exitstatus, 0);
  });

  test('a child writing to a socket whose reader is gone gets EPIPE, not a SIGPIPE death', T, async () => {
    const [a, b] = Socket.pair('SEQPACKET');
    const [r, w] = pipe();
    a.close();
    const pid = fork(() => {
      r.close();
      try {
        b.send('x');
        w.puts('sent');
      } catch (e) {
        w.puts(e instanceof SystemCallError ? e.code : String(e));
      }
    });
    b.close();
    w.close();
    assert.equal(r.gets(), 'EPIPE\n');
    r.close();
    const [, status] = (await wait2(pid))!;
    assert.equal(status.exitstatus, 0, 'the child lived on (SIGPIPE would have killed it)');
  });
});

after(() => {
  assert.equal(openFds(), fdsAtStart, 'every fd opened by these tests is closed');
});

describe('wrapping an fd', () => {
  test('a Socket made from a bare fd learns its type from the kernel; a pipe is ENOTSOCK', { timeout: 20_000 }, () => {
    for (const type of ['STREAM', 'DGRAM', 'SEQPACKET'] as const) {
      const [a, b] = Socket.pair(type);
      const copy = new Socket(a.dup().fileno);
      assert.equal(copy.type, type);
      copy.close();
      a.close();
      b.close();
    }
    const [r, w] = IO.pipe();
    assert.throws(
      () => new Socket(r.fileno),
      (e: unknown) => e instanceof SystemCallError && e.code === 'ENOTSOCK' && e.syscall === 'getsockopt',
    );
    r.close();
    w.close();
  });
});
