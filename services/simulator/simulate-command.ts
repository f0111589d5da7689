import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { CommandIo } from '../shared/io/command-io.ts';
import { TelemetryError } from '../shared/core/errors.ts';
import { createLogger } from '../shared/io/logger.ts';
import { parseSimulateArgs, resolveSimulateConfig, simulateHelp } from './config.ts';
import { startSimulator } from './io/simulator.ts';

/** `vfio-telemetry simulate`: the wiring — config, signals, progress, shutdown. */
export async function runSimulate(args: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseSimulateArgs(args);
  if (parsed === 'help') {
    await io.write(simulateHelp());
    return 0;
  }
  const fileValues = parsed.configFile === undefined ? {} : await readConfigFile(parsed.configFile);
  const config = resolveSimulateConfig(parsed.values, fileValues, parsed.configFile);
  const log = createLogger({
    write: (line) => io.error(line + '\n'),
    fields: { service: 'simulator' },
  });

  const simulator = await startSimulator({
    fleet: config.fleet,
    dir: config.dir,
    pretty: config.pretty,
    speed: config.speed,
    waitForClients: config.waitForClients,
    logger: log,
    ...(config.tcpPort === undefined ? {} : { tcpPort: config.tcpPort }),
    ...(config.durationSeconds === undefined ? {} : { durationSeconds: config.durationSeconds }),
    ...(config.migrations === undefined ? {} : { maxMigrations: config.migrations }),
    ...(config.transcripts === undefined ? {} : { transcriptsDir: config.transcripts }),
  });
  log.info('QMP servers listening.', {
    dir: config.dir,
    vms: simulator.vms.length,
    firstSocket: simulator.sockets[0],
    tcp: simulator.tcpAddresses.length > 0 ? simulator.tcpAddresses[0] : undefined,
  });

  const stop = (signal: NodeJS.Signals): void => {
    log.info('Stopping on signal.', { signal });
    void simulator.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const progress = setInterval(
    () => log.info('Simulation progress.', { ...simulator.stats() }),
    config.progressSeconds * 1000,
  );
  try {
    await simulator.done;
  } finally {
    clearInterval(progress);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  log.info('Simulation finished.', { ...simulator.stats() });
  return 0;
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TelemetryError(
      'FILE_UNREADABLE',
      `cannot read ${file}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (error) {
    throw new TelemetryError(
      'CONFIG_INVALID',
      `${file} is not JSON or YAML: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TelemetryError('CONFIG_INVALID', `${file} must hold a mapping of option keys`);
  }
  return value as Record<string, unknown>;
}
