// The dashboard's HTTP tests (test/jobs-web-suite.ts) on SQLite: a fresh database file per test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { SqliteBackend } from '../jobs/sqlite.js';
import { dashboardSuite } from './jobs-web-suite.js';

const tmp = mkdtempSync(join(tmpdir(), 'unixproc-web-sqlite-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
let current = join(tmp, `web-${n}.db`);
dashboardSuite(
  'sqlite',
  async () => new SqliteBackend(current),
  async () => {
    for (const suffix of ['', '-wal', '-shm']) rmSync(current + suffix, { force: true });
    current = join(tmp, `web-${++n}.db`);
  },
  () => `sqlite:${current}`,
);
