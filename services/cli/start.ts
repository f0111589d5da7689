/**
 * The process entry of the built CLI (infra/package/bundle.ts bundles this file into
 * dist/vfio-telemetry.cjs, which the single executable, the npm package and the .deb run). From a
 * clone, bin/vfio-telemetry.js does the same through tsx.
 *
 * `collect` runs on every hypervisor host, where memory is sold: it re-executes itself (same PID,
 * process.execve) with a 1 MiB young generation unless the launch set one. Node's default lets it
 * grow to 32 MiB while modules load and never gives it back (docs/decisions.md, "Footprint"). A
 * single executable takes Node.js options only from NODE_OPTIONS (its arguments are all the
 * application's), so there the option goes into the environment of the new image.
 */
import { isSea } from 'node:sea';

const SEMI_SPACE = '--max-semi-space-size';

export interface Launch {
  readonly argv: readonly string[];
  readonly execArgv: readonly string[];
  readonly nodeOptions: string | undefined;
  /**
   * A single executable application: its process.argv is [execPath, ...the raw argv], so its
   * argv[1] is the program name it was started by.
   */
  readonly sea: boolean;
}

/**
 * How to re-execute this launch for a small young generation, or null to run as is: only
 * `collect`, and only when neither the command line nor NODE_OPTIONS already set the size.
 */
export function youngGenerationRelaunch(
  launch: Launch,
): { args: string[]; nodeOptions: string | undefined } | null {
  const flags = [...launch.execArgv, ...(launch.nodeOptions ?? '').split(/\s+/)];
  if (launch.argv[2] !== 'collect' || flags.some((flag) => flag.startsWith(SEMI_SPACE))) {
    return null;
  }
  const [execPath = '', ...rest] = launch.argv;
  if (launch.sea) {
    const nodeOptions = [launch.nodeOptions, `${SEMI_SPACE}=1`].filter(Boolean).join(' ');
    return { args: rest, nodeOptions };
  }
  return {
    args: [execPath, `${SEMI_SPACE}=1`, ...launch.execArgv, ...rest],
    nodeOptions: launch.nodeOptions,
  };
}

/** Runs the CLI as this process: relaunched for `collect` if need be, then `main`. */
export async function start(): Promise<void> {
  const relaunch = youngGenerationRelaunch({
    argv: process.argv,
    execArgv: process.execArgv,
    nodeOptions: process.env['NODE_OPTIONS'],
    sea: isSea(),
  });
  if (relaunch !== null && typeof process.execve === 'function') {
    const env = { ...process.env };
    if (relaunch.nodeOptions === undefined) delete env['NODE_OPTIONS'];
    else env['NODE_OPTIONS'] = relaunch.nodeOptions;
    process.execve(process.execPath, relaunch.args, env);
  }
  const { main } = await import('./main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
