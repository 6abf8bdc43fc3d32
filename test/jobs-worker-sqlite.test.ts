// `unixproc work` on the embedded store: a SQLite file per test.
import { after } from 'node:test';
import { join } from 'node:path';
import { scratch } from './helpers.js';
import { workerSuite } from './jobs-worker-suite.js';

const tmp = scratch();
after(() => tmp.cleanup());
let n = 0;
workerSuite('sqlite', async () => `sqlite:${join(tmp.dir, `jobs-${n++}.db`)}`);
