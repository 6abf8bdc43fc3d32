// The scoreboard (Apache httpd's name for it): memory the master shares with every
// worker it forks, where each worker publishes whether it is accepting and how many
// connections it holds. A worker reads the others' counts to decide whether to take
// the next connection, and the master reads them for `unixproc status`, with no
// message in between.
import { sharedMemory } from '../src/index.js';

const ACCEPTING = 0;
const CONNECTIONS = 1;
const FIELDS = 2;
/** Cells for workers alive at once (spares and workers still stopping included). */
export const CELLS = 1024;
// Word 0 holds one more than the highest cell in use, so that a worker looking at the
// others (on every connection it accepts) reads a few cells, not all of them.
const HEADER = 1;

export class Scoreboard {
  private readonly words = new Int32Array(sharedMemory((HEADER + CELLS * FIELDS) * 4));
  /** The master's record of cells in use (a worker's copy of it goes stale: unused there). */
  private readonly taken = new Set<number>();

  /** Master: a free cell for the worker about to be forked, or -1 when all are in use. */
  claim(): number {
    for (let cell = 0; cell < CELLS; cell++) {
      if (this.taken.has(cell)) continue;
      this.taken.add(cell);
      this.clear(cell);
      this.setInUse();
      return cell;
    }
    return -1;
  }

  /** Master: the cell of a reaped worker (whatever it left there is stale). */
  release(cell: number): void {
    if (cell < 0) return;
    this.clear(cell);
    this.taken.delete(cell);
    this.setInUse();
  }

  private setInUse(): void {
    Atomics.store(this.words, 0, this.taken.size ? Math.max(...this.taken) + 1 : 0);
  }

  private at(cell: number, field: number): number {
    return HEADER + cell * FIELDS + field;
  }

  private clear(cell: number): void {
    Atomics.store(this.words, this.at(cell, ACCEPTING), 0);
    Atomics.store(this.words, this.at(cell, CONNECTIONS), 0);
  }

  // Each cell has one writer, its worker: plain atomic loads and stores suffice.

  setAccepting(cell: number, on: boolean): void {
    if (cell >= 0) Atomics.store(this.words, this.at(cell, ACCEPTING), on ? 1 : 0);
  }

  opened(cell: number): void {
    if (cell >= 0) Atomics.add(this.words, this.at(cell, CONNECTIONS), 1);
  }

  closed(cell: number): void {
    if (cell >= 0) Atomics.sub(this.words, this.at(cell, CONNECTIONS), 1);
  }

  connections(cell: number): number {
    return cell >= 0 ? Atomics.load(this.words, this.at(cell, CONNECTIONS)) : 0;
  }

  /** The fewest connections held by another accepting worker; null when no other accepts. */
  fewestOthers(cell: number): number | null {
    let least: number | null = null;
    const inUse = Atomics.load(this.words, 0);
    for (let s = 0; s < inUse; s++) {
      if (s === cell || Atomics.load(this.words, this.at(s, ACCEPTING)) !== 1) continue;
      const n = Atomics.load(this.words, this.at(s, CONNECTIONS));
      if (least === null || n < least) least = n;
    }
    return least;
  }
}
