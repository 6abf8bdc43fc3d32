// Chapter 17: processes can communicate. A pipe is a one-way byte stream shared through
// fork (both ends are fds, inherited like any other); its reader sees EOF only when
// EVERY copy of the write end is closed, the parent's own included. A UNIX socket pair
// is two-way, and with DGRAM each send is one message: the receiver gets whole messages,
// never merged or split, so no delimiter is needed. STREAM sockets, like pipes, merge.
// Shows: the book's pipe-parent.rb; what happens when the parent keeps its writer open
// (no EOF until it closes it); three datagrams from a child received as three, then a
// reply; and the same three sends merged by a STREAM pair.
import { fork, IO, Process, pipe, Socket } from '../src/index.js';
import { finish } from './_proc.js';

const created: number[] = [];
const spawn = (fn: () => void): number => {
  const pid = fork(fn);
  created.push(pid);
  return pid;
};

// ---- pipe-parent.rb --------------------------------------------------------------
{
  console.log('== pipe: child writes, parent reads to EOF');
  const [reader, writer] = IO.pipe();
  console.log(`IO.pipe -> reader fd ${reader.fileno}, writer fd ${writer.fileno}`);
  const child = spawn(() => {
    reader.close();
    for (let i = 0; i < 10; i++) writer.puts('Another one bites the dust');
  });
  writer.close();
  let lines = 0;
  for (let message; (message = reader.gets()) !== null; ) {
    lines++;
    if (lines === 1) process.stdout.write(`first line: ${message}`);
  }
  console.log(`parent read ${lines} lines, then EOF`);
  reader.close();
  const [, status] = Process.wait2Sync(child)!;
  console.log(`child ${status}`);
}

// ---- forgetting the parent's writer ------------------------------------------------
{
  console.log("== pipe: the parent's own writer keeps EOF away");
  const [reader, writer] = pipe();
  const child = spawn(() => {
    reader.close();
    writer.puts('hello and goodbye');
  });
  const [, status] = Process.wait2Sync(child)!;
  console.log(`child ${status}; it closed its writer by exiting`);
  // A blocking read() would hang here for good, so read through the event loop instead.
  const stream = reader.stream;
  let got = '';
  let eof = false;
  stream.on('data', (d: Buffer) => (got += d.toString()));
  stream.on('end', () => (eof = true));
  await new Promise((resolve) => setTimeout(resolve, 300));
  console.log(`300 ms later: read ${JSON.stringify(got)}, EOF seen: ${eof}`);
  writer.close();
  await new Promise<void>((resolve) => (eof ? resolve() : stream.once('end', () => resolve())));
  console.log(`after the parent closed its writer: EOF seen: ${eof}`);
  reader.close();
}

// ---- DGRAM socket pair ------------------------------------------------------------
{
  console.log('== DGRAM socket pair: message boundaries kept');
  const [parentSock, childSock] = Socket.pair('DGRAM');
  const [sent, sentWriter] = pipe();
  const child = spawn(() => {
    parentSock.close();
    sent.close();
    for (const msg of ['one', 'two', 'three']) childSock.send(msg);
    // Tell the parent all three are queued, so its recvs cannot race the sends.
    sentWriter.close();
    const reply = childSock.recv(1024).toString();
    console.log(`child received reply: ${JSON.stringify(reply)}`);
  });
  childSock.close();
  sentWriter.close();
  sent.read(); // EOF: the child has sent all three
  sent.close();
  const messages: string[] = [];
  for (let i = 0; i < 3; i++) messages.push(parentSock.recv(1024).toString());
  console.log(`parent received ${messages.length} messages: ${JSON.stringify(messages)}`);
  parentSock.send(`got ${messages.length}: ${messages.join(',')}`);
  const [, status] = Process.wait2Sync(child)!;
  console.log(`child ${status}`);
  parentSock.close();
}

// ---- the same over STREAM ---------------------------------------------------------
{
  console.log('== STREAM socket pair: a byte stream, sends merge');
  const [parentSock, childSock] = Socket.pair('STREAM');
  const child = spawn(() => {
    parentSock.close();
    for (const msg of ['one', 'two', 'three']) childSock.send(msg);
  });
  childSock.close();
  Process.waitSync(child); // all three sent, and the child's end closed
  const first = parentSock.recv(1024).toString();
  const after = parentSock.recv(1024).toString();
  console.log(`first recv: ${JSON.stringify(first)}; next recv: ${JSON.stringify(after)} (EOF)`);
  parentSock.close();
}

finish(created);
