// Opens the job store a URL names: sqlite:PATH (the default, ./unixproc-jobs.db or
// $UNIXPROC_JOBS_URL) or redis://host:port/db. Each backend lives in its own file and is
// loaded only when used, so a SQLite user needs no Redis client and the reverse.
import type { Backend } from './backend.js';

export const DEFAULT_URL = 'sqlite:./unixproc-jobs.db';

export function defaultUrl(): string {
  return process.env.UNIXPROC_JOBS_URL || DEFAULT_URL;
}

export async function openBackend(url: string = defaultUrl()): Promise<Backend> {
  if (typeof url !== 'string' || url === '') throw new TypeError(`backend URL must be a non-empty string, got ${String(url)}`);
  if (url.startsWith('sqlite:')) {
    const { SqliteBackend } = await import('./sqlite.js');
    return new SqliteBackend(url.slice('sqlite:'.length));
  }
  if (url.startsWith('redis://') || url.startsWith('rediss://')) {
    const { RedisBackend } = await import('./redis.js');
    return new RedisBackend(url);
  }
  throw new RangeError(`unknown backend URL ${JSON.stringify(url)}: use sqlite:PATH or redis://host:port/db`);
}
