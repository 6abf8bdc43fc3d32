// The data set both sides of the fork benchmark hold: an array of small records made of
// objects, strings, arrays and numbers, like an app's loaded catalogue or config, built
// deterministically from the record index so that a fresh process can build the very
// same heap from nothing but a record count.

export interface Rec {
  id: number;
  name: string;
  email: string;
  tags: string[];
  score: number;
  visits: number;
  active: boolean;
  address: { city: string; zip: string; lat: number; lon: number };
}

const CITIES = ['Lisbon', 'Oslo', 'Quito', 'Kyoto', 'Dakar', 'Perth', 'Lima', 'Graz'];

/** Record i; every string is built at run time, so each record owns its own heap strings. */
export function makeRecord(i: number): Rec {
  const h = Math.imul(i, 2654435761) >>> 0;
  return {
    id: i,
    name: `user-${i}-${h.toString(36)}`,
    email: `u${i}.${(h >>> 7).toString(36)}@example.org`,
    tags: [`t${h & 63}`, `g${(h >>> 6) & 255}-${i & 7}`, `k${i % 1000}`],
    score: (h % 100_000) / 100 + 0.5, // a fractional number: a heap number, not a small integer
    visits: h & 0xffff,
    active: (h & 1) === 1,
    address: {
      city: `${CITIES[h & 7]} ${i % 97}`,
      zip: String(10_000 + (h % 90_000)),
      lat: ((h % 18_000) - 9_000) / 100 + 0.001,
      lon: ((h % 36_000) - 18_000) / 100 + 0.001,
    },
  };
}

/** Appends records [data.length, count) to data. */
export function grow(data: Rec[], count: number): void {
  for (let i = data.length; i < count; i++) data.push(makeRecord(i));
}

/** Reads a field of every record (and a nested one): what a worker does when it uses its data. */
export function touch(data: Rec[]): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) {
    const r = data[i]!;
    sum += r.score + r.address.lat + r.name.length + r.tags.length;
  }
  return sum;
}

export const MiB = 1024 * 1024;

export function gcNow(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run node with --expose-gc');
  gc();
}

/**
 * Grows data until the heap in use has grown by targetBytes over baseBytes (a heapUsed
 * measured after a full GC before the first record), measuring after a full GC so that
 * garbage from building does not count. Returns the record count.
 */
export function growToHeap(data: Rec[], baseBytes: number, targetBytes: number): number {
  // A first small batch gives the bytes per record on this node, so the rest lands near the target.
  if (data.length < 5_000) grow(data, 5_000);
  for (;;) {
    gcNow();
    const used = process.memoryUsage().heapUsed - baseBytes;
    if (used >= targetBytes) return data.length;
    const perRecord = Math.max(64, used / data.length);
    const more = Math.max(1_000, Math.ceil(((targetBytes - used) / perRecord) * 1.005));
    grow(data, data.length + more);
  }
}
