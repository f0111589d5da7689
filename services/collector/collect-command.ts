import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { CommandIo } from '../cli/command-io.ts';
import { flagOptions, renderOptionsHelp } from '../shared/core/config-spec.ts';
import { TelemetryError } from '../shared/core/errors.ts';
import { readConfigFile } from '../shared/io/config-file.ts';
import { createLifecycle } from '../shared/io/lifecycle.ts';
import { createLogger, type LogLevel } from '../shared/io/logger.ts';
import { collectorConfigSpec, parseCollectorConfig } from './config.ts';
import { startCollector } from './main.ts';

export function collectHelp(): string {
  return `Usage: vfio-telemetry collect [--config FILE] [options]

Reads QMP events from QEMU monitor sockets and publishes them to Kafka as Avro records
(at-least-once, through an on-disk spool). Settings come from flags, then the environment,
then the config file (YAML or JSON, keys as in parentheses below), then the defaults.
The first line on stdout is the URL of /metrics, /healthz and /readyz.

Options:
${renderOptionsHelp(collectorConfigSpec(hostname()), [
  { flag: '--config FILE', text: 'YAML or JSON config file' },
  { flag: '-h, --help', text: 'show this help' },
])}

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 on a runtime failure or a shutdown
that overran its deadline, 2 on bad usage or configuration.
`;
}

/** `vfio-telemetry collect`: runs until SIGINT/SIGTERM, then flushes and exits. */
export async function runCollect(args: readonly string[], io: CommandIo): Promise<number> {
  const spec = collectorConfigSpec(hostname());
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        ...flagOptions(spec),
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new TelemetryError('USAGE', (error as Error).message, { cause: error });
  }
  const { config: configFile, help, ...flags } = parsed.values;
  if (help === true) {
    await io.write(collectHelp());
    return 0;
  }
  const file = configFile === undefined ? undefined : await readConfigFile(configFile);
  const config = parseCollectorConfig(hostname(), {
    file,
    ...(configFile === undefined ? {} : { fileName: configFile }),
    env: process.env,
    flags,
  });
  const logger = createLogger({
    level: config.logLevel as LogLevel,
    fields: { service: 'collector', host: config.host },
  });
  const lifecycle = createLifecycle({ logger, timeoutMs: config.shutdownTimeoutMs });
  const removeSignals = lifecycle.handleSignals();
  try {
    const collector = await startCollector(config, logger);
    // Leave a margin of the deadline for closing files and the HTTP server.
    lifecycle.onClose('collector', () =>
      collector.stop(Math.max(0, config.shutdownTimeoutMs - 1000)),
    );
    await io.write(`${collector.http.url}\n`);
  } catch (error) {
    logger.error('The collector failed to start.', { error });
    await lifecycle.shutdown('start failed');
    removeSignals();
    throw error;
  }
  const status = await lifecycle.done;
  removeSignals();
  return status;
}
