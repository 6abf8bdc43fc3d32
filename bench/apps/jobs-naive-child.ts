// The child of bench/apps/jobs-naive.ts: a fresh node that loads the jobs module, runs
// one job and exits 0 (1 if it threw).
// Usage (from child_process.fork): jobs-naive-child.js MODULE_FILE NAME ARGS_JSON
type Handler = (...args: unknown[]) => unknown;
const [file, name, argsJson] = process.argv.slice(2);
const jobs = (await import(file!)) as Record<string, Handler>;
try {
  await jobs[name!]!(...(JSON.parse(argsJson!) as unknown[]));
  process.exit(0);
} catch (err) {
  process.stderr.write(`naive job ${name} failed: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
}
