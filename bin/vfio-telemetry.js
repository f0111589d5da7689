#!/usr/bin/env node
// The CLI runs from TypeScript sources through tsx: no build step between a clone and a run.
import './require-node.js';
import { register } from 'tsx/esm/api';

// `collect` runs on every hypervisor host, where memory is sold: it re-executes itself (same PID,
// process.execve) with a 1 MiB young generation, unless the launch set one. Node's default lets
// it grow to 32 MiB while modules load and never gives it back (docs/decisions.md, "Footprint").
const SEMI_SPACE = '--max-semi-space-size';
const launchFlags = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)];
if (
  process.argv[2] === 'collect' &&
  typeof process.execve === 'function' &&
  !launchFlags.some((flag) => flag.startsWith(SEMI_SPACE))
) {
  process.execve(process.execPath, [
    process.execPath,
    `${SEMI_SPACE}=1`,
    ...process.execArgv,
    ...process.argv.slice(1),
  ]);
}

register();
const { main } = await import('../services/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
