// Runs the given compiled test files with node:test, one file at a time (the suites
// fork and reap real processes and would race each other run in parallel), and writes
// the counts to $UNIXPROC_TEST_COUNTS for scripts/test.mjs. Started by scripts/test.mjs
// with --single-threaded, which node:test passes on to each test file's process.
import { writeFileSync } from 'node:fs';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const files = process.argv.slice(2);
const counts = { passed: 0, failed: 0, skipped: 0 };
const stream = run({ files, concurrency: 1, timeout: 15 * 60_000 });
stream.on('test:pass', (t) => {
  if (t.details?.type === 'suite') return;
  if (t.skip || t.todo) counts.skipped++;
  else counts.passed++;
});
stream.on('test:fail', (t) => {
  if (t.details?.type === 'suite' && t.details?.error?.failureType === 'subtestsFailed') return;
  counts.failed++;
});
stream.compose(typeof spec === 'function' && spec.prototype?._transform ? new spec() : spec).pipe(process.stdout);
stream.on('end', () => {
  if (process.env.UNIXPROC_TEST_COUNTS) writeFileSync(process.env.UNIXPROC_TEST_COUNTS, JSON.stringify(counts));
  if (counts.failed > 0) process.exitCode = 1;
});
