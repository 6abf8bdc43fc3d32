// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core
// (which never downloads a browser), with its home, caches and temp files in a dir of its own,
// and a close() that kills the browser and every process it started and removes what it wrote.
import { readdirSync, readFileSync, readlinkSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { childrenOf, sleep } from './helpers.js';

export const CHROMIUM = process.env.UNIXPROC_CHROMIUM ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  readonly browser: Browser;
  /** The dir that holds the browser's HOME, XDG dirs and TMPDIR (its crash reporter's database too). */
  readonly dir: string;
  /** The --user-data-dir playwright gave the browser. */
  readonly profileDir: string;
  /** The browser's main process. */
  readonly pid: number;
  /** Live processes of this browser: its process group, and anything naming its dirs (the crash reporter leaves the group). */
  pids(): number[];
  /** Closes the browser, kills whatever of it is left, and removes its dirs; fails if a process of it outlives the kill. */
  close(): Promise<void>;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** [state, pgid] from /proc/PID/stat, or null once it is gone. */
function stat(pid: number): { state: string; pgid: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], pgid: Number(rest[2]) };
  } catch {
    return null;
  }
}

function isChromium(pid: number): boolean {
  try {
    return /chrom/i.test(readlinkSync(`/proc/${pid}/exe`));
  } catch {
    return false;
  }
}

function processesOf(leader: number, markers: string[]): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = stat(pid);
    // A zombie is done; those reparented to init are reaped by it.
    if (!st || st.state === 'Z') continue;
    if ((st.pgid === leader && isChromium(pid)) || markers.some((m) => cmdline(pid).includes(m))) out.push(pid);
  }
  return out;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

const owner = process.pid;

/** Launches headless Chromium; the caller must close() it (an exit handler kills it if a test process ends first). */
export async function launchBrowser(): Promise<TestBrowser> {
  const dir = mkdtempSync(join(tmpdir(), 'unixproc-chromium-'));
  const before = new Set(childrenOf().map((c) => c.pid));
  let browser: Browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ARGS,
      timeout: 60_000,
      // Chromium writes its crash database under $HOME/.config and its singleton sockets under
      // $TMPDIR: both go to our dir, so nothing is left in the real home or /tmp.
      env: { ...process.env, HOME: dir, TMPDIR: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache'), XDG_DATA_HOME: join(dir, 'data') },
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not launch ${CHROMIUM} through playwright-core (is Debian's chromium installed? apt-get install chromium): ${(err as Error).message}`);
  }
  const leader = childrenOf()
    .map((c) => c.pid)
    .find((pid) => !before.has(pid) && isChromium(pid) && cmdline(pid).includes('--remote-debugging-pipe'));
  const profileDir = leader ? /--user-data-dir=(\S+)/.exec(cmdline(leader))?.[1] : undefined;
  if (!leader || !profileDir) {
    await browser.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`launched ${CHROMIUM} but found no browser process with a --user-data-dir among this process's children`);
  }
  const markers = [dir, `--user-data-dir=${profileDir}`];
  const pids = () => processesOf(leader, markers);
  const removeDirs = () => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(profileDir, { recursive: true, force: true });
  };
  // A test process that exits without close() (a failed hook, process.exit) still takes the browser down.
  const onExit = () => {
    if (process.pid !== owner) return;
    killAll(pids());
    removeDirs();
  };
  process.on('exit', onExit);

  let closed = false;
  return {
    browser,
    dir,
    profileDir,
    pid: leader,
    pids,
    async close() {
      if (closed) return;
      closed = true;
      process.off('exit', onExit);
      // A browser stuck closing is killed below anyway: do not wait on it for long.
      await Promise.race([browser.close().catch(() => {}), sleep(10_000)]);
      const deadline = Date.now() + 15_000;
      for (let left = pids(); left.length > 0; left = pids()) {
        if (Date.now() > deadline) {
          removeDirs();
          throw new Error(`chromium processes outlived SIGKILL: ${left.map((p) => `${p} ${cmdline(p).slice(0, 120)}`).join('; ')}`);
        }
        killAll(left);
        await sleep(50);
      }
      removeDirs();
    },
  };
}
