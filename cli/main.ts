// The unixproc command line. `run` starts a script in a Node that can fork safely
// (V8 without background threads), replacing this process with exec so signals and
// the exit status go straight to the script, with no wrapper process in between.
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { exec } from '../src/index.js';

/** Node options a forking process needs (docs/fork-in-node.md): no V8 background threads. */
export const FORK_SAFE_NODE_FLAGS = ['--single-threaded'];

function nodeSupportsTypeStripping(): boolean {
  const [major, minor] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 18);
}

export function runScript(script: string, args: string[], nodeArgs: string[]): never {
  const file = resolve(script);
  if (!existsSync(file)) {
    process.stderr.write(`unixproc run: no such file: ${script}\n`);
    process.exit(2);
  }
  const flags = [...FORK_SAFE_NODE_FLAGS, ...nodeArgs];
  if (/\.(c|m)?ts$/.test(file) && !nodeSupportsTypeStripping()) {
    process.stderr.write(
      `unixproc run: ${script} is TypeScript, which Node ${process.version} cannot run by itself ` +
        '(loader hooks such as tsx run on a thread a forked child does not have). ' +
        'Compile it with tsc first, or use Node 22.18 or later.\n',
    );
    process.exit(2);
  }
  return exec(process.execPath, [...flags, file, ...args]);
}

export function main(argv: string[]): void {
  const program = new Command();
  program.name('unixproc').description('The Unix process model for Node.js').version('0.1.0').enablePositionalOptions();
  program
    .command('run')
    .description('run a script with the Node flags that make fork() safe (--single-threaded)')
    .argument('<script>', 'the JavaScript (or, on Node 22.18+, TypeScript) file to run')
    .argument('[args...]', 'arguments passed to the script')
    .option('--node-arg <flag>', 'an extra flag for node (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .passThroughOptions()
    .action((script: string, args: string[], opts: { nodeArg: string[] }) => runScript(script, args, opts.nodeArg));
  program.parse(argv);
}
