// The README's TypeScript examples, as a user would paste them: every ```ts block is a module
// of its own in a project where `unixproc` is this package, checked by tsc --strict.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { scratch } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test("every ```ts block of the README compiles with tsc --strict against the package's types", { timeout: 120_000 }, () => {
  const blocks = [...readFileSync(join(root, 'README.md'), 'utf8').matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  assert.ok(blocks.length >= 4, `found ${blocks.length} blocks`);
  const tmp = scratch();
  try {
    mkdirSync(join(tmp.dir, 'node_modules', '@types'), { recursive: true });
    symlinkSync(root, join(tmp.dir, 'node_modules', 'unixproc'), 'dir');
    symlinkSync(join(root, 'node_modules', '@types', 'node'), join(tmp.dir, 'node_modules', '@types', 'node'), 'dir');
    writeFileSync(join(tmp.dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const files = blocks.map((text, i) => {
      const file = join(tmp.dir, `block-${i + 1}.ts`);
      // A block without import or export is still a module (top-level await needs one).
      writeFileSync(file, /^\s*(import|export)\b/m.test(text) ? text : `${text}\nexport {};\n`);
      return file;
    });
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipLibCheck', ...files];
    const r = spawnSync(process.execPath, [tsc, ...args], { cwd: tmp.dir, encoding: 'utf8', timeout: 100_000 });
    assert.equal(r.status, 0, `tsc --strict on the README's blocks:\n${r.stdout}${r.stderr}\n${files.map((f, i) => `--- block-${i + 1}.ts\n${blocks[i]}`).join('\n')}`);
  } finally {
    tmp.cleanup();
  }
});
