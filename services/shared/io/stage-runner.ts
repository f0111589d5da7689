import type { ConfigSources, ConfigSpec } from '../core/config-spec.ts';
import { isTelemetryError, TelemetryError } from '../core/errors.ts';
import { parseCommandArgs } from './command-args.ts';
import type { CommandIo } from './command-io.ts';
import { createLifecycle } from './lifecycle.ts';
import { createLogger, type LogLevel, type Logger } from './logger.ts';

/**
 * What every command shares, so that a command file is only its wiring: the command line
 * (`parseCommandArgs`), `--help`, one validated and frozen config (every problem listed, exit 2),
 * a JSON logger on the command's stderr, and — for the long-running stages — the life: start,
 * print the HTTP URL (/metrics, /healthz, /readyz) as the first line on stdout, run until
 * SIGINT/SIGTERM or until the stage ends itself, close in order within a deadline; SIGHUP reloads
 * the HTTP server's web config (services/shared/io/stage.ts owns the server); and the last
 * resort (lifecycle.ts): an uncaught exception or unhandled rejection is logged, the stage's
 * `fatalFlush` runs, and the process exits with status 1.
 */
export interface CommandDefinition<C> {
  /** Names the command in log lines: "collector", "audit". */
  name: string;
  /** Flags, env names, config keys and defaults of the command's options. */
  spec: ConfigSpec;
  help: () => string;
  /** Validates every source whole; throws one CONFIG_INVALID listing every problem. */
  parseConfig: (sources: ConfigSources, positionals: readonly string[]) => C;
  /** Takes FILE... arguments (replay). */
  positionals?: boolean;
  /** Takes `--config FILE`; on unless false. */
  configFile?: boolean;
  /** Fields on every log line; `{ service: name }` without. */
  logFields?: (config: C) => Record<string, unknown>;
}

export interface CommandContext {
  io: CommandIo;
  logger: Logger;
}

/** A command that runs once and exits: `run` resolves with the exit status. */
export interface OneShotCommand<C> extends CommandDefinition<C> {
  run: (config: C, context: CommandContext & { positionals: readonly string[] }) => Promise<number>;
}

export interface StageConfig {
  readonly logLevel: string;
  readonly shutdownTimeoutMs: number;
}

export interface StageContext extends CommandContext {
  /** Registers a part to close at shutdown; later registrations close first. */
  onClose: (name: string, close: () => Promise<void> | void) => void;
  /** Shuts the stage down cleanly (a duration reached, a simulation finished). */
  shutdown: (reason: string) => void;
  /** Shuts the stage down with exit status 1 (a fatal runtime error). */
  fail: (reason: string) => void;
}

export interface RunningStage {
  /** Its URL is printed as the first line on stdout; SIGHUP reloads its web config. */
  http?: { url: string; reloadWebConfig?: () => Promise<boolean> };
  /** Closes the stage at shutdown, before the parts registered during start. */
  stop?: () => Promise<void>;
  /**
   * Synchronous; run by the last resort before the process exits after an uncaught error: keep
   * what must not be lost (the collector writes and syncs its spool's queue).
   */
  fatalFlush?: () => void;
}

/** A command that runs until SIGINT/SIGTERM (or until it shuts itself down). */
export interface StageCommand<C extends StageConfig> extends CommandDefinition<C> {
  start: (config: C, context: StageContext) => Promise<RunningStage>;
  /** Called with the exit status once every part is closed. */
  stopped?: (status: number, context: CommandContext) => void;
}

type Env = Readonly<Record<string, string | undefined>>;

async function prepare<C>(
  command: CommandDefinition<C>,
  args: readonly string[],
  io: CommandIo,
  env: Env,
): Promise<{ config: C; logger: Logger; positionals: readonly string[] } | 'help'> {
  const parsed = await parseCommandArgs(args, command.spec, {
    env,
    ...(command.positionals === undefined ? {} : { positionals: command.positionals }),
    ...(command.configFile === undefined ? {} : { configFile: command.configFile }),
  });
  if (parsed.help) {
    await io.write(command.help());
    return 'help';
  }
  const config = parseConfigReportingUsage(command, parsed);
  const level = (config as { logLevel?: string }).logLevel ?? 'info';
  const logger = createLogger({
    level: level as LogLevel,
    write: (line) => io.error(`${line}\n`),
    fields: command.logFields?.(config) ?? { service: command.name },
  });
  return { config, logger, positionals: parsed.positionals };
}

/** One USAGE error listing the bad arguments and the config's problems, when there are any. */
function parseConfigReportingUsage<C>(
  command: CommandDefinition<C>,
  parsed: { sources: ConfigSources; positionals: readonly string[]; problems: readonly string[] },
): C {
  let config: C;
  try {
    config = command.parseConfig(parsed.sources, parsed.positionals);
  } catch (error) {
    if (parsed.problems.length === 0 || !isTelemetryError(error, 'CONFIG_INVALID')) throw error;
    const more = error.details['problems'];
    const problems = [...parsed.problems, ...(Array.isArray(more) ? (more as string[]) : [])];
    throw new TelemetryError('USAGE', problems.join('; '), { cause: error });
  }
  if (parsed.problems.length > 0) throw new TelemetryError('USAGE', parsed.problems.join('; '));
  return config;
}

/** Runs a one-shot command; resolves with its exit status (0 after --help). */
export async function runCommand<C>(
  command: OneShotCommand<C>,
  args: readonly string[],
  io: CommandIo,
  env: Env = process.env,
): Promise<number> {
  const prepared = await prepare(command, args, io, env);
  if (prepared === 'help') return 0;
  const { config, logger, positionals } = prepared;
  return command.run(config, { io, logger, positionals });
}

/** Runs a stage until SIGINT/SIGTERM (or its own shutdown); resolves with the exit status. */
export async function runStage<C extends StageConfig>(
  command: StageCommand<C>,
  args: readonly string[],
  io: CommandIo,
  env: Env = process.env,
): Promise<number> {
  const prepared = await prepare(command, args, io, env);
  if (prepared === 'help') return 0;
  const { config, logger } = prepared;
  const lifecycle = createLifecycle({ logger, timeoutMs: config.shutdownTimeoutMs });
  const removeSignals = lifecycle.handleSignals();
  const removeFatal = lifecycle.handleFatalErrors();
  let failed = false;
  let removeHangup = (): void => {};
  try {
    const stage = await command.start(config, {
      io,
      logger,
      onClose: (name, close) => lifecycle.onClose(name, close),
      shutdown: (reason) => void lifecycle.shutdown(reason),
      fail: (reason) => {
        failed = true;
        void lifecycle.shutdown(reason);
      },
    });
    const { stop, fatalFlush } = stage;
    if (stop !== undefined) lifecycle.onClose(command.name, () => stop());
    if (fatalFlush !== undefined) lifecycle.onFatal(command.name, fatalFlush);
    const reload = stage.http?.reloadWebConfig;
    if (reload !== undefined) {
      const onHangup = (): void => void reload();
      process.on('SIGHUP', onHangup);
      removeHangup = () => process.off('SIGHUP', onHangup);
    }
    if (stage.http !== undefined) await io.write(`${stage.http.url}\n`);
  } catch (error) {
    logger.error(`The ${command.name} failed to start.`, { error });
    await lifecycle.shutdown('start failed');
    removeHangup();
    removeSignals();
    removeFatal();
    throw error;
  }
  const status = await lifecycle.done;
  removeHangup();
  removeSignals();
  removeFatal();
  const exitStatus = failed ? 1 : status;
  command.stopped?.(exitStatus, { io, logger });
  return exitStatus;
}
