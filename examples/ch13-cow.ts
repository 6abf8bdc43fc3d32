// Chapter 13: processes are friendly (copy-on-write). fork(2) does not copy the parent's
// memory: parent and child map the same physical pages, marked read-only, and the kernel
// copies a page only when one of them writes to it. Shows the book's `arr << 4` in the
// child leaving the parent's array alone, then a 64 MiB buffer: right after fork the
// child's pages are Shared with the parent (/proc/self/smaps_rollup), and once the child
// overwrites the buffer, about 64 MiB more are its Private_Dirty copy; the parent's
// buffer still holds the old bytes.
import { readFileSync } from 'node:fs';
import { fork, Process, pipe } from '../src/index.js';
import { finish } from './_proc.js';

const MiB = 1024 * 1024;
const created: number[] = [];

function rollup(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync('/proc/self/smaps_rollup', 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)) out[m[1]!] = Number(m[2]) * 1024;
  return out;
}
const mib = (bytes: number): string => (bytes / MiB).toFixed(1);

// Ruby: arr = [1,2,3]; fork { p arr; arr << 4 }
const arr = [1, 2, 3];
const [r1, w1] = pipe();
created.push(
  fork(() => {
    r1.close();
    w1.puts(`child sees arr = ${JSON.stringify(arr)}`);
    arr.push(4);
    w1.puts(`child after arr.push(4): ${JSON.stringify(arr)}`);
  }),
);
w1.close();
process.stdout.write(r1.read()!.toString());
r1.close();
Process.waitSync(created[0]);
console.log(`parent after the child: arr = ${JSON.stringify(arr)}`);

// fill() writes every page, so the buffer is resident in the parent before the fork.
const big = new Uint8Array(64 * MiB).fill(1);
const [r2, w2] = pipe();
created.push(
  fork(() => {
    r2.close();
    const before = rollup();
    big.fill(2);
    const after = rollup();
    w2.puts(
      JSON.stringify({
        sharedBefore: before.Shared_Clean! + before.Shared_Dirty!,
        privateBefore: before.Private_Dirty!,
        sharedAfter: after.Shared_Clean! + after.Shared_Dirty!,
        privateAfter: after.Private_Dirty!,
        childByte: big[12345],
      }),
    );
  }),
);
w2.close();
const facts = JSON.parse(r2.read()!.toString());
r2.close();
Process.waitSync(created[1]);
console.log(`child right after fork: Shared ${mib(facts.sharedBefore)} MiB, Private_Dirty ${mib(facts.privateBefore)} MiB`);
console.log(`child after writing 64 MiB: Shared ${mib(facts.sharedAfter)} MiB, Private_Dirty ${mib(facts.privateAfter)} MiB`);
console.log(`Private_Dirty grew by ${mib(facts.privateAfter - facts.privateBefore)} MiB`);
console.log(`Shared shrank by ${mib(facts.sharedBefore - facts.sharedAfter)} MiB`);
console.log(`child's byte: ${facts.childByte}; parent's byte: ${big[12345]}; parent's buffer all 1s: ${big.every((b) => b === 1)}`);
finish(created);
