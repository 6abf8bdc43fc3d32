// The chapter examples (examples/chNN-*.ts), each run as its own program the way a reader
// runs it: exit status 0, the lines that show the chapter's behaviour, and nothing left
// behind (no process it created still in the table, no descendant still running, no
// process still carrying its title, no temp file, no unreaped child at its end).
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const OPTS = { timeout: 90_000 };

interface Run {
  pid: number;
  out: string;
  err: string;
  lines: string[];
}

/** Live processes (other than ourselves) whose environment holds `token`. */
function processesWithToken(token: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').includes(token)) out.push(`${d}: ${readFileSync(`/proc/${d}/stat`, 'latin1').trim()}`);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

/**
 * Processes whose title starts with `title`. Setting a title may overwrite the
 * environment block too (it is contiguous with argv), so the token cannot find those.
 */
function processesTitled(title: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmdline = readFileSync(`/proc/${d}/cmdline`, 'latin1');
      if (cmdline.startsWith(title)) out.push(`${d}: ${cmdline.replace(/\0+/g, ' ')}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

let runs = 0;

/**
 * Runs dist/examples/<name>.js and checks what every example shares: status 0, the
 * `created:` pids all gone from /proc, `children left: 0`, no live process carrying
 * this run's token in its environment (fork copies the environment, exec passes it on,
 * so every descendant has it, orphans and daemons included) or the example's title,
 * and nothing left in the private TMPDIR the example was given.
 */
function run(name: string, title?: string): Run {
  const file = fileURLToPath(new URL(`../examples/${name}.js`, import.meta.url));
  const token = `unixproc-example-run-${process.pid}-${++runs}`;
  const scratch = mkdtempSync(join(tmpdir(), 'unixproc-examples-'));
  const tmp = join(scratch, 'tmp');
  mkdirSync(tmp);
  // Output goes to files rather than pipes: spawnSync waits for a pipe's every writer to
  // close, so a stray process holding the example's stdout would make the run last until
  // it exits, and the checks below would find nothing. With files, spawnSync returns
  // when the example's own process exits, and whatever outlived it is still there.
  const outFd = openSync(join(scratch, 'out'), 'w+');
  const errFd = openSync(join(scratch, 'err'), 'w+');
  try {
    const r: SpawnSyncReturns<string> = spawnSync(process.execPath, ['--single-threaded', file], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', outFd, errFd],
      env: { ...process.env, UNIXPROC_EXAMPLE_RUN: token, TMPDIR: tmp },
    });
    r.stdout = readFileSync(join(scratch, 'out'), 'utf8');
    r.stderr = readFileSync(join(scratch, 'err'), 'utf8');
    assert.equal(r.error, undefined, `${name} could not run: ${r.error}`);
    const detail = `\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
    assert.equal(r.signal, null, `${name} was killed by ${r.signal}${detail}`);
    assert.equal(r.status, 0, `${name} exited ${r.status}${detail}`);
    const lines = r.stdout.split('\n');

    const created = lines.find((l) => l.startsWith('created: '));
    assert.ok(created, `${name} printed no created: line${detail}`);
    const pids = created === 'created: (none)' ? [] : created.slice('created: '.length).split(' ').map(Number);
    for (const pid of pids) {
      assert.ok(Number.isInteger(pid) && pid > 1, `bad pid in ${created}`);
      let stat: string | null = null;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        // gone: what we want
      }
      assert.equal(stat, null, `${name} left process ${pid} behind: ${stat}`);
    }
    assert.ok(lines.includes('children left: 0'), `${name} ended with unreaped children${detail}`);
    assert.deepEqual(processesWithToken(token), [], `${name}: processes it started are still running`);
    if (title) assert.deepEqual(processesTitled(title), [], `${name}: a process still carries its title`);
    assert.deepEqual(readdirSync(tmp), [], `${name} left files in its TMPDIR`);
    return { pid: r.pid!, out: r.stdout, err: r.stderr, lines };
  } finally {
    closeSync(outFd);
    closeSync(errFd);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The one line matching re, with its groups; fails when there is none. */
function line(r: Run, re: RegExp): RegExpExecArray {
  for (const l of r.lines) {
    const m = re.exec(l);
    if (m) return m;
  }
  assert.fail(`no line matches ${re}\n--- stdout\n${r.out}\n--- stderr\n${r.err}`);
}

/** Asserts that `expected` lines appear in this order (others may come between). */
function inOrder(r: Run, expected: string[]): void {
  let at = 0;
  for (const want of expected) {
    const i = r.lines.indexOf(want, at);
    assert.ok(i !== -1, `missing (or out of order): ${JSON.stringify(want)}\n--- stdout\n${r.out}`);
    at = i + 1;
  }
}

function limitFromProc(label: string): [string, string] {
  const l = readFileSync('/proc/self/limits', 'utf8').split('\n').find((x) => x.startsWith(label))!;
  const [soft, hard] = l.slice(label.length).trim().split(/\s+/);
  return [soft!, hard!];
}

test('ch02: syscalls and the errno they return', OPTS, () => {
  const r = run('ch02-syscalls');
  inOrder(r, ['hello from userland, via write(2) on fd 1', 'write(2) reported 42 bytes written']);
  const [, pid, self] = line(r, /^getpid\(2\) = (\d+), \/proc\/self -> (\d+)$/);
  assert.equal(Number(pid), r.pid);
  assert.equal(Number(self), r.pid);
  inOrder(r, ['kill(2) refused: code=ESRCH errno=3 syscall=kill', 'waitpid(2) refused: code=ECHILD errno=10 syscall=waitpid', 'created: (none)']);
});

test('ch03: pid, and a forked child with a pid of its own', OPTS, () => {
  const r = run('ch03-pid');
  for (const re of [/^Process\.pid = (\d+)$/, /^process\.pid = (\d+)$/, /^\/proc\/self -> (\d+)$/, /^ps -o pid= -p \d+ -> (\d+)$/]) {
    assert.equal(Number(line(r, re)[1]), r.pid, String(re));
  }
  const child = Number(line(r, /^fork returned child pid (\d+)$/)[1]);
  assert.notEqual(child, r.pid);
  const [, a, b, c] = line(r, /^child says Process\.pid = (\d+), process\.pid = (\d+), \/proc\/self -> (\d+)$/);
  assert.deepEqual([a, b, c].map(Number), [child, child, child]);
  inOrder(r, ['child pid differs from ours: true', `reaped ${child}: pid ${child} exit 0`, `created: ${child}`]);
});

test('ch04: ppid of this process and of a forked child', OPTS, () => {
  const r = run('ch04-ppid');
  const [, pid, ppid] = line(r, /^Process\.pid = (\d+), Process\.ppid = (\d+)$/);
  assert.equal(Number(pid), r.pid);
  // spawnSync made the example our child.
  assert.equal(Number(ppid), process.pid);
  assert.equal(Number(line(r, /^ps -o ppid= -p \d+ -> (\d+)$/)[1]), process.pid);
  assert.equal(line(r, /^our parent is: (.*)$/)[1], readFileSync('/proc/self/comm', 'utf8').trim());
  const [, childPid, childPpid] = line(r, /^child (\d+): Process\.ppid = (\d+)$/);
  assert.equal(Number(childPpid), r.pid);
  inOrder(r, ["child's parent is us: true", `child pid ${childPid} exit 0`]);
});

test('ch05: the lowest free fd is handed out: 3, 4, then 3 again', OPTS, () => {
  const r = run('ch05-fileno');
  const base = Number(line(r, /^lowest free fd: (\d+)$/)[1]);
  assert.ok(base >= 3);
  assert.equal(Number(line(r, /^passwd\.fileno = (\d+) \(lowest free taken\)$/)[1]), base);
  const hosts = Number(line(r, /^hosts\.fileno = (\d+) \(lowest free taken\)$/)[1]);
  assert.ok(hosts > base);
  assert.equal(Number(line(r, /^after passwd\.close, null\.fileno = (\d+) \(reuses passwd's number: true\)$/)[1]), base);
  inOrder(r, ['child: open fds now 0 1 2', 'child: passwd.fileno = 3', 'child: hosts.fileno = 4', 'child: null.fileno = 3']);
  line(r, /^child pid \d+ exit 0$/);
});

test('ch06: getrlimit, and EMFILE at NOFILE=3 in a child', OPTS, () => {
  const r = run('ch06-rlimits');
  // The example inherited our limits; /proc says what they are.
  const want: Record<string, string> = { NOFILE: 'Max open files', NPROC: 'Max processes', FSIZE: 'Max file size', STACK: 'Max stack size' };
  for (const [res, label] of Object.entries(want)) {
    const [soft, hard] = limitFromProc(label);
    inOrder(r, [`getrlimit(${res}) = soft ${soft}, hard ${hard}`]);
  }
  inOrder(r, [
    'child: setrlimit(NOFILE, 3); getrlimit(NOFILE) = soft 3, hard 3',
    'child: open(/dev/null) failed: EMFILE (EMFILE: too many open files)',
    'child: pipe() failed: EMFILE errno 24 from pipe',
  ]);
  line(r, /^child pid \d+ exit 0$/);
  line(r, /^parent NOFILE unchanged: true /);
});

test('ch07: the environment is strings, inherited through fork and exec, copied not shared', OPTS, () => {
  const r = run('ch07-env');
  inOrder(r, [
    'UNIXPROC_COUNT = "42" (typeof string)',
    "after delete, 'UNIXPROC_COUNT' in env: false",
    'sh sees MESSAGE=wing it',
  ]);
  line(r, /^sh pid \d+ exit 0$/);
  inOrder(r, ['child: MESSAGE=changed by the child', 'parent: MESSAGE=wing it']);
});

test('ch08: ARGV as exec handed it, parsed by hand', OPTS, () => {
  const r = run('ch08-argv');
  const [, program] = line(r, /^program (\d+): ARGV = \["--verbose","notes\.txt","--","--not-a-flag\.txt"\]$/);
  inOrder(r, ['program: verbose = true', 'program: files = ["notes.txt","--not-a-flag.txt"]']);
  // exec(2) keeps the pid: the program is the forked child itself.
  assert.equal(line(r, /^child pid (\d+) exit 0$/)[1], program);
  assert.notEqual(Number(program), r.pid);
});

test('ch09: the title ps shows', OPTS, () => {
  const r = run('ch09-title', 'unixproc-ch09');
  assert.match(line(r, /^ps at start: (.*)$/)[1]!, /--single-threaded .*ch09-title\.js$/);
  const countdown = r.lines.filter((l) => l.startsWith('title = '));
  assert.deepEqual(
    countdown,
    [10, 9, 8, 7, 6, 5, 4, 3, 2, 1].map((n) => `title = Process: ${n} | ps shows: Process: ${n}`),
  );
  line(r, /^\/proc\/self\/cmdline: "Process: 1" followed by \d+ NUL bytes$/);
  line(r, /^long title \(\d+ chars\) shown in full by ps: true$/);
  line(r, /^worker \d+: ps shows: unixproc-ch09 worker: processing job 42$/);
  line(r, /^parent still: unixproc-ch09 long-title-/);
  line(r, /^worker pid \d+ exit 0$/);
});

test('ch10: exit, atExit order, exitNow, abort and an uncaught error', OPTS, () => {
  const r = run('ch10-exit');
  inOrder(r, [
    '[exit] calling exit(0)',
    '[exit] atExit handler registered second',
    '[exit] atExit handler registered first',
  ]);
  line(r, /^\[exit\] parent: pid \d+ exit 0 \(exitstatus 0\)$/);
  inOrder(r, ['[exit 42] atExit handler ran']);
  line(r, /^\[exit 42\] parent: pid \d+ exit 42 \(exitstatus 42\)$/);
  inOrder(r, ['[end of program] returning', '[end of program] atExit handler ran']);
  line(r, /^\[end of program\] parent: pid \d+ exit 0 /);
  inOrder(r, ['[exitNow] calling exitNow()']);
  assert.ok(!r.out.includes('[exitNow] atExit handler ran'), 'exitNow ran an atExit handler');
  line(r, /^\[exitNow\] parent: pid \d+ exit 1 \(exitstatus 1\)$/);
  inOrder(r, ['[abort] atExit handler ran']);
  line(r, /^\[abort\] parent: pid \d+ exit 1 \(exitstatus 1\)$/);
  assert.ok(r.err.includes('[abort] Something went wrong, aborting\n'), `abort's message is not on stderr:\n${r.err}`);
  inOrder(r, ['[raise] a caught error does not end the process: rescued', '[raise] atExit handler ran']);
  line(r, /^\[raise\] parent: pid \d+ exit 1 \(exitstatus 1\)$/);
  assert.ok(r.err.includes('[raise] uncaught: ends the process'), `the uncaught error is not on stderr:\n${r.err}`);
  // Each child's output comes before its parent's report, in the order run.
  const reports = r.lines.filter((l) => / parent: pid \d+ /.test(l)).map((l) => l.slice(0, l.indexOf(']') + 1));
  assert.deepEqual(reports, ['[exit]', '[exit 42]', '[end of program]', '[exitNow]', '[abort]', '[raise]']);
});

test('ch11: fork returns twice; the block form; fds shared with their offset', OPTS, () => {
  const r = run('ch11-fork');
  const opened = Number(line(r, /^parent (\d+) opened the log$/)[1]);
  assert.equal(opened, r.pid);
  const [, child, loadedBy] = line(r, /^child (\d+): fork returned null; config\.loadedBy = (\d+) \(copied, not reloaded\)$/);
  assert.equal(Number(loadedBy), r.pid);
  const log = r.lines.slice(0, 5);
  assert.equal(log[2], `parent ${r.pid}: fork returned ${child}`);
  assert.equal(log[3], `child ${line(r, /^child (\d+): in the block/)[1]}: in the block, my parent is ${r.pid}`);
  assert.match(log[4]!, /^parent: block child pid \d+ exit 0; only the parent gets here$/);
});

test('ch12: an orphan outlives its parent and is re-parented', OPTS, () => {
  const r = run('ch12-orphans');
  const [, middle] = line(r, /^middle (\d+) died: pid \d+ exit 1$/);
  assert.ok(r.err.includes('Parent process died...'));
  const [, orphan, firstPpid] = line(r, /^orphan says: pid (\d+) ppid (\d+) \(my parent is alive\)$/);
  assert.equal(firstPpid, middle);
  const later = r.lines.filter((l) => l.startsWith("orphan says: I'm an orphan!"));
  assert.equal(later.length, 3);
  for (const l of later) {
    const [, pid, ppid, orphaned] = /pid (\d+) ppid (\d+) \(orphaned: (\w+)\)/.exec(l)!;
    assert.equal(pid, orphan);
    assert.notEqual(ppid, middle);
    assert.equal(orphaned, 'true');
  }
  line(r, /^orphan adopted by \d+: (init|a subreaper among our ancestors)$/);
  inOrder(r, [`orphan ${orphan} gone from the process table: true`, `created: ${middle} ${orphan}`]);
});

test('ch13: copy-on-write: the child writes its own copy, the parent keeps the original', OPTS, () => {
  const r = run('ch13-cow');
  inOrder(r, ['child sees arr = [1,2,3]', 'child after arr.push(4): [1,2,3,4]', 'parent after the child: arr = [1,2,3]']);
  const shared = Number(line(r, /^child right after fork: Shared ([\d.]+) MiB/)[1]);
  assert.ok(shared >= 64, `only ${shared} MiB shared right after fork`);
  const grew = Number(line(r, /^Private_Dirty grew by ([\d.]+) MiB$/)[1]);
  // Each of the 16384 pages written is copied: 64 MiB, plus whatever else the child dirtied.
  assert.ok(grew >= 63 && grew < 100, `Private_Dirty grew by ${grew} MiB`);
  const shrank = Number(line(r, /^Shared shrank by ([\d.]+) MiB$/)[1]);
  assert.ok(shrank >= 60, `Shared shrank by ${shrank} MiB`);
  inOrder(r, ["child's byte: 2; parent's byte: 1; parent's buffer all 1s: true"]);
});

test('ch14: wait, wait2 with 111/112, waitpid2 on the favourite, queued exits', OPTS, () => {
  const r = run('ch14-wait');
  inOrder(r, ['I am an orphan!', 'I am an orphan!', 'I am an orphan!', 'Parent process died... (only after its child finished)']);
  const order = r.lines.filter((l) => l.startsWith('wait -> ') && l.includes('slept')).map((l) => Number(/slept (\d+)/.exec(l)![1]));
  assert.deepEqual(order, [150, 300, 450]);
  const w2 = r.lines.filter((l) => l.includes(' encountered '));
  assert.equal(w2.length, 5);
  const statuses = w2.map((l) => {
    const [, kind, drew, status] = /encountered an (even|odd) number! \(drew (\d), exitstatus (\d+)\)$/.exec(l)!;
    assert.equal(Number(status), Number(drew) % 2 === 0 ? 111 : 112, l);
    assert.equal(kind, Number(status) === 111 ? 'even' : 'odd', l);
    return Number(status);
  });
  assert.deepEqual(statuses.sort(), [111, 111, 111, 112, 112]);
  const [, fav, favPid] = line(r, /^waitpid2\(favourite (\d+)\) -> (\d+), exitstatus 77$/);
  assert.equal(fav, favPid);
  inOrder(r, ['then wait2 -> middle child yes, exitstatus 1']);
  assert.ok(r.err.includes('I want to be waited on!'));
  const [, first] = line(r, /^wait -> (\d+)$/);
  const [, other] = line(r, /^while we slept, child (\d+) is in state Z \(its exit is queued\)$/);
  assert.notEqual(first, other);
  inOrder(r, [`wait -> ${other} (the queued one: true)`, 'wait with no children left: ECHILD']);
  assert.equal(r.err.split('Finished!').length - 1, 2);
});

test('ch15: a zombie shows as Z, and detach makes it go away', OPTS, () => {
  const r = run('ch15-zombies');
  const [, pid] = line(r, /^forked (\d+); parent \d+ does not wait$/);
  inOrder(r, [
    'child became a zombie: true',
    `ps -o pid=,state= -p ${pid}: ${pid} Z`,
    `detach(${pid}) reaped it: pid ${pid} exit 0`,
    `ps -o pid=,state= -p ${pid} after detach: (nothing: the zombie is gone)`,
  ]);
  line(r, /^stats child \d+ in the process table: no \(reaped\)$/);
});

test('ch16: CHLD handler loses no child; INT default, trapped, re-raised, chained', OPTS, () => {
  const r = run('ch16-signals');
  inOrder(r, ['children reaped by the handler: 5 of 5 (exactly our children: true)']);
  const runs = Number(line(r, /^CHLD handler runs: (\d+) /)[1]);
  assert.ok(runs >= 1 && runs <= 5, `${runs} handler runs`);
  line(r, /^child with default INT: pid \d+ SIGINT \(signal 2\)$/);
  inOrder(r, ['child: got INT, carrying on', 'after INT the child is still running: true']);
  line(r, /^after KILL: pid \d+ SIGKILL \(signal 9\)$/);
  inOrder(r, ['child: cleaning up, then dying of signal 2']);
  line(r, /^child: pid \d+ SIGINT \(signal 2\) \(termsig 2\)$/);
  inOrder(r, [
    'first trap replaced: DEFAULT',
    'second trap replaced: a handler',
    'new INT handler (signal 2), then the one it replaced:',
    'original INT handler',
    'still alive after INT',
  ]);
});

test('ch17: pipe to EOF, the writer the parent forgot, DGRAM boundaries, STREAM merging', OPTS, () => {
  const r = run('ch17-ipc');
  inOrder(r, ['first line: Another one bites the dust', 'parent read 10 lines, then EOF']);
  inOrder(r, [
    '300 ms later: read "hello and goodbye\\n", EOF seen: false',
    'after the parent closed its writer: EOF seen: true',
  ]);
  inOrder(r, ['parent received 3 messages: ["one","two","three"]', 'child received reply: "got 3: one,two,three"']);
  inOrder(r, ['first recv: "onetwothree"; next recv: "" (EOF)']);
  assert.equal(r.lines.filter((l) => /^child pid \d+ exit 0/.test(l)).length, 3);
});

test('ch18: a daemon: re-parented, own session but not its leader, cwd /, stdio on /dev/null', OPTS, () => {
  const r = run('ch18-daemon');
  const [, pgrp, pid] = line(r, /^our pgrp: (\d+), our pid: (\d+), our sid: \d+$/);
  assert.equal(Number(pid), r.pid);
  // spawnSync starts the example in our own process group.
  assert.equal(Number(pgrp), Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[2]));
  const [, child] = line(r, /^child (\d+) was in our group: true$/);
  const [, leader, leaderGroup, member, memberGroup] = line(r, /^job: leader (\d+) in group (\d+), member (\d+) in group (\d+)$/);
  assert.equal(leaderGroup, leader);
  assert.equal(memberGroup, leader);
  assert.notEqual(Number(leader), Number(pgrp));
  inOrder(r, [`after kill(TERM, -${leader}): leader pid ${leader} SIGTERM (signal 15); member pid ${member} SIGTERM (signal 15)`]);
  const [, starter] = line(r, /^the process that called daemon\(\) returned at once: pid (\d+) exit 0$/);
  inOrder(r, [`this process ${r.pid} is still running`]);
  const [, daemon] = line(r, /^daemon pid: (\d+)$/);
  const [, ppid] = line(r, /^daemon ppid: (\d+) \((init|a subreaper among our ancestors)\)$/);
  assert.notEqual(ppid, starter);
  assert.notEqual(Number(ppid), r.pid);
  const [, sid] = line(r, /^daemon sid: (\d+) \(session leader: false; the starter was (\d+), our session is (\d+)\)$/);
  assert.notEqual(sid, daemon);
  assert.notEqual(sid, starter);
  assert.notEqual(Number(sid), Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[3]));
  inOrder(r, [
    `daemon pgid: ${sid} (process group leader: false)`,
    'daemon controlling tty: none',
    'daemon cwd: /',
    'daemon stdin: /dev/null, stdout: /dev/null, stderr: /dev/null',
    'daemon and its session leader gone: true',
    'temp dir removed: true',
    `created: ${child} ${leader} ${member} ${starter} ${sid} ${daemon}`,
  ]);
});
