// The scoreboard (Apache httpd's name for it): memory the master shares with every
// worker it forks, where each worker publishes whether it is accepting and how many
// connections it holds. A worker reads the others' counts to decide whether to take
// the next connection, and the master reads them for `unixproc status`, with no
// message in between.
import { sharedMemory } from '../src/index.js';

const ACCEPTING = 0;
const CONNECTIONS = 1;
const FIELDS = 2;
/** Slots for workers alive at once (spares and workers still stopping included). */
export const SLOTS = 1024;
// Cell 0 holds one more than the highest slot in use, so that a worker looking at the
// others (on every connection it accepts) reads a few cells, not every slot.
const HEADER = 1;

export class Scoreboard {
  private readonly cells = new Int32Array(sharedMemory((HEADER + SLOTS * FIELDS) * 4));
  /** The master's record of slots in use (a worker's copy of it goes stale: unused there). */
  private readonly taken = new Set<number>();

  /** Master: a free slot for the worker about to be forked, or -1 when all are in use. */
  claim(): number {
    for (let slot = 0; slot < SLOTS; slot++) {
      if (this.taken.has(slot)) continue;
      this.taken.add(slot);
      this.clear(slot);
      this.setInUse();
      return slot;
    }
    return -1;
  }

  /** Master: the slot of a reaped worker (whatever it left there is stale). */
  release(slot: number): void {
    if (slot < 0) return;
    this.clear(slot);
    this.taken.delete(slot);
    this.setInUse();
  }

  private setInUse(): void {
    Atomics.store(this.cells, 0, this.taken.size ? Math.max(...this.taken) + 1 : 0);
  }

  private at(slot: number, field: number): number {
    return HEADER + slot * FIELDS + field;
  }

  private clear(slot: number): void {
    Atomics.store(this.cells, this.at(slot, ACCEPTING), 0);
    Atomics.store(this.cells, this.at(slot, CONNECTIONS), 0);
  }

  // Each slot has one writer, its worker: plain atomic loads and stores suffice.

  setAccepting(slot: number, on: boolean): void {
    if (slot >= 0) Atomics.store(this.cells, this.at(slot, ACCEPTING), on ? 1 : 0);
  }

  opened(slot: number): void {
    if (slot >= 0) Atomics.add(this.cells, this.at(slot, CONNECTIONS), 1);
  }

  closed(slot: number): void {
    if (slot >= 0) Atomics.sub(this.cells, this.at(slot, CONNECTIONS), 1);
  }

  connections(slot: number): number {
    return slot >= 0 ? Atomics.load(this.cells, this.at(slot, CONNECTIONS)) : 0;
  }

  /** The fewest connections held by another accepting worker; null when no other accepts. */
  fewestOthers(slot: number): number | null {
    let least: number | null = null;
    const inUse = Atomics.load(this.cells, 0);
    for (let s = 0; s < inUse; s++) {
      if (s === slot || Atomics.load(this.cells, this.at(s, ACCEPTING)) !== 1) continue;
      const n = Atomics.load(this.cells, this.at(s, CONNECTIONS));
      if (least === null || n < least) least = n;
    }
    return least;
  }
}
