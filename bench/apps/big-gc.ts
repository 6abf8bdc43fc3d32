// demo/big.ts with a full garbage collection right after the catalogue is built (node
// needs --expose-gc), so that the master forks its workers from a collected heap, with
// no garbage and no incremental marking in progress for every worker to finish on its
// own copy-on-write pages. Compare the PSS of
//   node --expose-gc --max-old-space-size=1024 bin/unixproc.js serve bench/apps/big-gc.ts -w 2
// with the same command serving demo/big.ts (unixproc status --json lists each worker's PSS).
import big from '../../demo/big.js';

(globalThis as { gc?: () => void }).gc?.();
export default big;
