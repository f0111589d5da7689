import { parseArgs } from 'node:util';
import { flagOptions, type ConfigSources, type ConfigSpec } from '../shared/core/config-spec.ts';
import { TelemetryError } from '../shared/core/errors.ts';
import { readConfigFile } from '../shared/io/config-file.ts';
import { createLifecycle } from '../shared/io/lifecycle.ts';
import type { Logger } from '../shared/io/logger.ts';
import type { CommandIo } from './command-io.ts';

/**
 * What the long-running stage commands (collect, process, export) share: the same flags
 * (`--config FILE`, `--help`, one flag per config option, `--no-<flag>` for booleans), the same
 * config sources, and the same life: start, print the HTTP URL as the first line on stdout, run
 * until SIGINT/SIGTERM, close in order within a deadline.
 */
export type ServiceArgs = { help: true } | { help: false; sources: ConfigSources };

export async function parseServiceArgs(
  args: readonly string[],
  spec: ConfigSpec,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ServiceArgs> {
  // Booleans that default to true need a way off on the command line: --no-<flag>.
  const negatable = Object.values(spec).flatMap((o) =>
    o.type === 'boolean' && o.flag !== undefined ? [o.flag] : [],
  );
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        ...flagOptions(spec),
        ...Object.fromEntries(negatable.map((f) => [`no-${f}`, { type: 'boolean' as const }])),
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new TelemetryError('USAGE', (error as Error).message, { cause: error });
  }
  const {
    config: configFile,
    help,
    ...given
  } = values as Record<string, string | boolean | string[] | undefined>;
  if (help === true) return { help: true };
  const flags: Record<string, string | boolean | string[] | undefined> = { ...given };
  for (const flag of negatable) {
    if (given[`no-${flag}`] !== true) continue;
    if (given[flag] === true) {
      throw new TelemetryError('USAGE', `--${flag} and --no-${flag} contradict each other`);
    }
    delete flags[`no-${flag}`];
    flags[flag] = false;
  }
  if (typeof configFile !== 'string' && configFile !== undefined) {
    throw new TelemetryError('USAGE', '--config takes one FILE');
  }
  const file = configFile === undefined ? undefined : await readConfigFile(configFile);
  return {
    help: false,
    sources: { file, ...(configFile === undefined ? {} : { fileName: configFile }), env, flags },
  };
}

export interface RunningService {
  http: { url: string };
  stop(): Promise<void>;
}

export interface RunServiceOptions {
  /** For log lines: "collector", "processor", ... */
  name: string;
  io: CommandIo;
  logger: Logger;
  shutdownTimeoutMs: number;
  /** Starts the stage; `fail` shuts the process down with exit status 1 (a fatal runtime error). */
  start(fail: (reason: string) => void): Promise<RunningService>;
}

/** Runs a stage until SIGINT/SIGTERM (or `fail`); resolves with the exit status. */
export async function runService(options: RunServiceOptions): Promise<number> {
  const { logger, io } = options;
  const lifecycle = createLifecycle({ logger, timeoutMs: options.shutdownTimeoutMs });
  const removeSignals = lifecycle.handleSignals();
  let failed = false;
  try {
    const service = await options.start((reason) => {
      failed = true;
      void lifecycle.shutdown(reason);
    });
    lifecycle.onClose(options.name, () => service.stop());
    await io.write(`${service.http.url}\n`);
  } catch (error) {
    logger.error(`The ${options.name} failed to start.`, { error });
    await lifecycle.shutdown('start failed');
    removeSignals();
    throw error;
  }
  const status = await lifecycle.done;
  removeSignals();
  return failed ? 1 : status;
}
