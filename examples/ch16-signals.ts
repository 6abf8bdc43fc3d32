// Chapter 16: processes can get signals. A signal is an asynchronous message delivered
// through the kernel (usually sent by another process); the receiver ignores it, runs a
// handler, or gets the default action (for INT: terminate). Node runs handlers on the
// event loop, never inside the signal itself, so a handler may do anything.
// Shows:
//   - a CHLD handler that reaps with `while (pid = wait(-1, WNOHANG))`: signals of the
//     same kind coalesce (five children ending together may raise fewer than five CHLD),
//     so one signal must reap every child that is ready, and no child is lost;
//   - the default action of INT (the child dies of SIGINT);
//   - a child that traps INT survives it (the book's wait-block.rb), but not KILL;
//   - "clean up, then die of the signal": restore DEFAULT and re-send it to yourself;
//   - trap returning the previous handler, so a new INT handler can chain the old one.
import { fork, Process, pipe, Signal, SystemCallError } from '../src/index.js';
import { finish, sleepMs, statOf } from './_proc.js';

const created: number[] = [];

// ---- CHLD: several children ending at once --------------------------------------
{
  console.log('== CHLD handler reaping in a WNOHANG loop');
  const N = 5;
  const reaped: number[] = [];
  let signals = 0;
  let done!: () => void;
  const allReaped = new Promise<void>((resolve) => (done = resolve));
  Signal.trap('CHLD', () => {
    signals++;
    // Reap every child that has ended, not one per signal: the others' CHLD may have
    // been merged into this one while a signal of the same kind was already pending.
    try {
      for (let pid; (pid = Process.waitSync(-1, Process.WNOHANG)); ) reaped.push(pid);
    } catch (err) {
      if ((err as SystemCallError).code !== 'ECHILD') throw err; // ECHILD: none left at all
    }
    if (reaped.length === N) done();
  });

  // The children block on a pipe; closing its last writer releases them all at once.
  const [gate, opener] = pipe();
  const kids: number[] = [];
  for (let i = 0; i < N; i++) {
    const pid = fork(() => {
      opener.close(); // our copy of the writer would keep EOF away from ourselves
      gate.read();
    });
    kids.push(pid);
    created.push(pid);
  }
  gate.close();
  opener.close();
  const timer = setTimeout(() => done(), 5000);
  await allReaped;
  clearTimeout(timer);
  Signal.trap('CHLD', 'DEFAULT');
  const sameSet = reaped.length === N && kids.every((k) => reaped.includes(k));
  console.log(`children reaped by the handler: ${reaped.length} of ${N} (exactly our children: ${sameSet})`);
  console.log(`CHLD handler runs: ${signals} (at most ${N}; fewer means signals were merged)`);
}

// ---- INT with its default action --------------------------------------------------
{
  console.log('== default INT');
  const child = fork(() => {
    Process.kill('INT', Process.pid);
    sleepMs(5000); // the signal ends us long before this does
  });
  created.push(child);
  const [, status] = Process.wait2Sync(child)!;
  console.log(`child with default INT: ${status}`);
}

// ---- a trapped INT is survived; KILL cannot be trapped ----------------------------
{
  console.log('== trapped INT, then KILL');
  const [reader, writer] = pipe();
  const child = fork(async () => {
    reader.close();
    Signal.trap('INT', () => writer.puts('child: got INT, carrying on'));
    writer.puts('ready');
    await new Promise(() => setInterval(() => {}, 1000)); // Ruby: sleep forever
  });
  created.push(child);
  writer.close();
  reader.gets(); // ready: the trap is in place
  Process.kill('INT', child);
  console.log(reader.gets()!.trimEnd());
  sleepMs(100);
  console.log(`after INT the child is still running: ${Process.waitSync(child, Process.WNOHANG) === null && statOf(child)?.state !== 'Z'}`);
  Process.kill('KILL', child);
  const [, status] = Process.wait2Sync(child)!;
  console.log(`after KILL: ${status}`);
  reader.close();
}

// ---- clean up, then die of the signal as if untrapped ------------------------------
{
  console.log('== handler that restores the default and re-raises');
  const [reader, writer] = pipe();
  const child = fork(async () => {
    reader.close();
    Signal.trap('INT', (signo) => {
      writer.puts(`child: cleaning up, then dying of signal ${signo}`);
      Signal.trap('INT', 'DEFAULT');
      Process.kill('INT', Process.pid);
    });
    writer.puts('ready');
    await new Promise(() => setInterval(() => {}, 1000));
  });
  created.push(child);
  writer.close();
  reader.gets();
  Process.kill('INT', child);
  console.log(reader.gets()!.trimEnd());
  const [, status] = Process.wait2Sync(child)!;
  console.log(`child: ${status} (termsig ${status.termsig})`);
  reader.close();
}

// ---- chaining: trap returns the previous handler -----------------------------------
{
  console.log('== chaining INT handlers in this process');
  let fired!: () => void;
  const handled = new Promise<void>((resolve) => (fired = resolve));
  const first = Signal.trap('INT', () => console.log('original INT handler'));
  console.log(`first trap replaced: ${typeof first === 'function' ? 'a handler' : first}`);
  const original = Signal.trap('INT', (signo) => {
    console.log(`new INT handler (signal ${signo}), then the one it replaced:`);
    if (typeof original === 'function') original(signo);
    fired();
  });
  console.log(`second trap replaced: ${typeof original === 'function' ? 'a handler' : original}`);
  Process.kill('INT', Process.pid);
  const timer = setTimeout(() => fired(), 5000);
  await handled;
  clearTimeout(timer);
  Signal.trap('INT', 'DEFAULT');
  console.log('still alive after INT');
}

finish(created);
