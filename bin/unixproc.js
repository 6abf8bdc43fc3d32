#!/usr/bin/env node
// The unixproc command: the compiled CLI lives in dist/ (npm run build).
import { main } from '../dist/cli/main.js';

main(process.argv);
