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

export class Scoreboard {
  private readonly cells = new Int32Array(sharedMemory(SLOTS * FIELDS * 4));
  /** The master's record of slots in use (a worker's copy of it goes stale: unused there). */
  private readonly taken = new Set<number>();

  /** Master: a free slot for the worker about to be forked, or -1 when all are in use. */
  claim(): number {
    for (let slot = 0; slot < SLOTS; slot++) {
      if (this.taken.has(slot)) continue;
      this.taken.add(slot);
      this.clear(slot);
      return slot;
    }
    return -1;
  }

  /** Master: the slot of a reaped worker (whatever it left there is stale). */
  release(slot: number): void {
    if (slot < 0) return;
    this.clear(slot);
    this.taken.delete(slot);
  }

  private clear(slot: number): void {
    Atomics.store(this.cells, slot * FIELDS + ACCEPTING, 0);
    Atomics.store(this.cells, slot * FIELDS + CONNECTIONS, 0);
  }

  // Each slot has one writer, its worker: plain atomic loads and stores suffice.

  setAccepting(slot: number, on: boolean): void {
    if (slot >= 0) Atomics.store(this.cells, slot * FIELDS + ACCEPTING, on ? 1 : 0);
  }

  opened(slot: number): void {
    if (slot >= 0) Atomics.add(this.cells, slot * FIELDS + CONNECTIONS, 1);
  }

  closed(slot: number): void {
    if (slot >= 0) Atomics.sub(this.cells, slot * FIELDS + CONNECTIONS, 1);
  }

  connections(slot: number): number {
    return slot >= 0 ? Atomics.load(this.cells, slot * FIELDS + CONNECTIONS) : 0;
  }

  /** The fewest connections held by another accepting worker; null when no other accepts. */
  fewestOthers(slot: number): number | null {
    let least: number | null = null;
    for (let s = 0; s < SLOTS; s++) {
      if (s === slot || Atomics.load(this.cells, s * FIELDS + ACCEPTING) !== 1) continue;
      const n = Atomics.load(this.cells, s * FIELDS + CONNECTIONS);
      if (least === null || n < least) least = n;
    }
    return least;
  }
}
