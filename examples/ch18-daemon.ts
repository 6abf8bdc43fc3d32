// Chapter 18: daemon processes. Process.daemon() is the book's recipe in one call:
//   exit if fork   - the caller exits, so the shell gets its prompt back, and the child
//                    is not a process-group leader (so setsid may succeed);
//   setsid         - new session and process group, no controlling terminal;
//   exit if fork   - the session leader exits; its child is in that session but not its
//                    leader, so opening a terminal can never make it the controlling one;
//   chdir '/'      - the daemon does not pin a directory that may be unmounted;
//   stdio to /dev/null - code that writes to stdout keeps working, into nothing.
// The daemon is an orphan: re-parented to init (pid 1) or to a subreaper above us.
// Shows, first, process groups: a child inherits its parent's group, and a signal sent
// to a group reaches every member (which is how a terminal's Ctrl-C reaches a whole
// pipeline); then daemon() in a forked child (this process must survive to report):
// the daemon writes its facts to a temp file and exits; we wait for it and print them.
import { existsSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fork, pipe, Process } from '../src/index.js';
import { finish, pollUntil, sleepMs, statOf } from './_proc.js';

const created: number[] = [];

// ---- process groups ------------------------------------------------------------------
// Ruby: puts Process.getpgrp; puts Process.pid
console.log(`our pgrp: ${Process.getpgrp()}, our pid: ${Process.pid}, our sid: ${Process.getsid()}`);
{
  // A child starts in its parent's group.
  const [reader, writer] = pipe();
  const child = fork(() => {
    reader.close();
    writer.puts(String(Process.getpgrp()));
  });
  writer.close();
  const childGroup = Number(reader.gets());
  reader.close();
  Process.waitSync(child);
  created.push(child);
  console.log(`child ${child} was in our group: ${childGroup === Process.getpgrp()}`);

  // A job of two processes in a group of their own, as a shell sets up a pipeline: the
  // group is named after its first process, and both the shell and each child call
  // setpgid, so the child is in the group before either side goes on, whoever runs first.
  // (Signalling the group we were started in would hit whoever started us as well.)
  const leader = fork(() => {
    Process.setpgid(0, 0);
    sleepMs(10_000);
  });
  Process.setpgid(leader, leader);
  const member = fork(() => {
    Process.setpgid(0, leader);
    sleepMs(10_000);
  });
  Process.setpgid(member, leader);
  created.push(leader, member);
  console.log(`job: leader ${leader} in group ${Process.getpgid(leader)}, member ${member} in group ${Process.getpgid(member)}`);
  // A negative pid names a process group: one kill(2) reaches every member, the way a
  // terminal's Ctrl-C reaches every process of the foreground job.
  Process.kill('TERM', -leader);
  const [, leaderStatus] = Process.wait2Sync(leader)!;
  const [, memberStatus] = Process.wait2Sync(member)!;
  console.log(`after kill(TERM, -${leader}): leader ${leaderStatus}; member ${memberStatus}`);
}

// ---- daemon --------------------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'unixproc-ch18-'));
const factsFile = join(dir, 'daemon.json');
let facts: Record<string, unknown> | null = null;
let starter = 0;
try {
  starter = fork(() => {
    Process.daemon();
    // From here on we are the daemon: the grandchild of `starter`.
    const sessionLeader = Process.getsid();
    // The session leader exits right after forking us; wait to see the re-parenting.
    pollUntil(() => Process.ppid !== sessionLeader, 5000);
    const stat = statOf(Process.pid)!;
    const ttyNr = Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[4]);
    const out = {
      pid: Process.pid,
      ppid: Process.ppid,
      sid: Process.getsid(),
      pgid: Process.getpgrp(),
      statPgrp: stat.pgrp,
      ttyNr,
      cwd: process.cwd(),
      stdin: readlinkSync('/proc/self/fd/0'),
      stdout: readlinkSync('/proc/self/fd/1'),
      stderr: readlinkSync('/proc/self/fd/2'),
    };
    // rename(2) is atomic: the parent never reads a half-written file.
    writeFileSync(`${factsFile}.tmp`, JSON.stringify(out));
    renameSync(`${factsFile}.tmp`, factsFile);
  });
  const [, status] = Process.wait2Sync(starter)!;
  console.log(`the process that called daemon() returned at once: ${status}`);

  if (pollUntil(() => existsSync(factsFile), 5000)) facts = JSON.parse(readFileSync(factsFile, 'utf8'));
} finally {
  if (facts) {
    // The daemon and its session leader are not our children: watch them leave the table.
    pollUntil(() => statOf(facts!.pid as number) === null && statOf(facts!.sid as number) === null, 10_000);
  }
  rmSync(dir, { recursive: true, force: true });
}

function ancestors(pid: number): number[] {
  const out: number[] = [];
  for (let p = statOf(pid)?.ppid ?? 0; p > 0; p = statOf(p)?.ppid ?? 0) out.push(p);
  return out;
}

if (!facts) {
  console.log('the daemon never reported');
  process.exitCode = 1;
} else {
  const f = facts as { pid: number; ppid: number; sid: number; pgid: number; ttyNr: number; cwd: string; stdin: string; stdout: string; stderr: string };
  const adopter = f.ppid === 1 ? 'init' : ancestors(Process.pid).includes(f.ppid) ? 'a subreaper among our ancestors' : 'someone unexpected';
  console.log(`this process ${Process.pid} is still running`);
  console.log(`daemon pid: ${f.pid}`);
  console.log(`daemon ppid: ${f.ppid} (${adopter})`);
  console.log(`daemon sid: ${f.sid} (session leader: ${f.sid === f.pid}; the starter was ${starter}, our session is ${Process.getsid()})`);
  console.log(`daemon pgid: ${f.pgid} (process group leader: ${f.pgid === f.pid})`);
  console.log(`daemon controlling tty: ${f.ttyNr === 0 ? 'none' : f.ttyNr}`);
  console.log(`daemon cwd: ${f.cwd}`);
  console.log(`daemon stdin: ${f.stdin}, stdout: ${f.stdout}, stderr: ${f.stderr}`);
  console.log(`daemon and its session leader gone: ${statOf(f.pid) === null && statOf(f.sid) === null}`);
  console.log(`temp dir removed: ${!existsSync(dir)}`);
  finish([...created, starter, f.sid, f.pid]);
}
