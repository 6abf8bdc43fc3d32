// Memory a process shares with the children it forks afterwards: fork copies private
// memory, but an anonymous MAP_SHARED mapping stays one set of pages, so what one
// process writes there the others read at once, with no message in between.
import { check, integer } from './errors.js';
import { native } from './native.js';

/**
 * An ArrayBuffer of `bytes` bytes, zero-filled, shared with every child forked after
 * this call (the kernel rounds the mapping up to whole pages). Plain reads and writes
 * of aligned 32-bit values are seen whole by the other processes; read-modify-write by
 * several processes needs Atomics on a view of it.
 */
export function sharedMemory(bytes: number): ArrayBuffer {
  integer(bytes, 'bytes', 1, 2 ** 30);
  return check(native.mapShared(bytes), 'mmap');
}
