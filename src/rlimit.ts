// Resource limits (getrlimit(2)/setrlimit(2)) with Ruby's names: 'NOFILE' or
// 'RLIMIT_NOFILE' (any case) or the number, and RLIM_INFINITY carried as Infinity.
import { check, describe } from './errors.js';
import { native } from './native.js';

export const RLIM_INFINITY = Infinity;
export const RESOURCES = ['AS', 'CORE', 'CPU', 'DATA', 'FSIZE', 'MEMLOCK', 'MSGQUEUE', 'NICE', 'NOFILE', 'NPROC', 'RSS', 'RTPRIO', 'RTTIME', 'SIGPENDING', 'STACK'] as const;
export type Resource = (typeof RESOURCES)[number];
export const RLIMIT: Readonly<Record<Resource, number>> = Object.freeze({ ...(native.RLIMIT as Record<Resource, number>) });
/** Ruby's Process::RLIMIT_NOFILE and friends. */
export const RLIMIT_CONSTANTS = Object.fromEntries(RESOURCES.map((r) => [`RLIMIT_${r}`, RLIMIT[r]])) as {
  readonly [K in Resource as `RLIMIT_${K}`]: number;
};

function resourceOf(resource: unknown): number {
  if (typeof resource === 'number') {
    if (!Object.values(RLIMIT).includes(resource)) throw new RangeError(`unknown resource number ${resource}`);
    return resource;
  }
  if (typeof resource !== 'string') throw new TypeError(`resource must be a name like 'NOFILE' or a number, got ${describe(resource)}`);
  const name = resource.toUpperCase().replace(/^RLIMIT_/, '');
  const num = RLIMIT[name as Resource];
  if (num === undefined) throw new RangeError(`unknown resource ${JSON.stringify(resource)} (known: ${Object.keys(RLIMIT).join(', ')})`);
  return num;
}

function limitOf(value: unknown, what: string): number {
  if (value === 'INFINITY' || value === Infinity) return Infinity;
  if (typeof value !== 'number') throw new TypeError(`${what} must be a non-negative integer or Infinity, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${what} must be a non-negative integer or Infinity, got ${value}`);
  return value;
}

/** Returns [soft, hard]; Infinity stands for RLIM_INFINITY. */
export function getrlimit(resource: string | number): [number, number] {
  return check(native.getrlimit(resourceOf(resource)), 'getrlimit', `(${String(resource)})`);
}

/** Sets the soft and hard limits (hard defaults to soft). Raising the hard limit needs privilege (EPERM). */
export function setrlimit(resource: string | number, soft: number, hard?: number): void {
  const res = resourceOf(resource);
  const s = limitOf(soft, 'soft limit');
  const h = hard === undefined ? s : limitOf(hard, 'hard limit');
  if (s > h) throw new RangeError(`soft limit ${s} is above hard limit ${h}`);
  check(native.setrlimit(res, s, h), 'setrlimit', `(${String(resource)})`);
}
