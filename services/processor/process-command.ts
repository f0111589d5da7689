import { parseArgs } from 'node:util';
import type { CommandIo } from '../cli/command-io.ts';
import { flagOptions, renderOptionsHelp } from '../shared/core/config-spec.ts';
import { TelemetryError } from '../shared/core/errors.ts';
import { readConfigFile } from '../shared/io/config-file.ts';
import { createLifecycle } from '../shared/io/lifecycle.ts';
import { createLogger, type LogLevel } from '../shared/io/logger.ts';
import { parseProcessorConfig, processorConfigSpec } from './config.ts';
import { startProcessor } from './io/processor-service.ts';

export function processHelp(): string {
  return `Usage: vfio-telemetry process [--config FILE] [options]

Consumes event records, computes prepare-to-completion latency and time in each state with
the same transition engine as "replay", and publishes transition records. Exactly once per
transition across crashes and rebalances (see README, "Delivery guarantees"). Processors in
one consumer group share the partitions. Settings come from flags, then the environment, then
the config file (YAML or JSON, keys as in parentheses below), then the defaults. The first line
on stdout is the URL of /metrics, /healthz and /readyz.

Options:
${renderOptionsHelp(processorConfigSpec(), [
  { flag: '--config FILE', text: 'YAML or JSON config file' },
  { flag: '-h, --help', text: 'show this help' },
])}

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 on a runtime failure, 2 on bad usage
or configuration.
`;
}

export async function runProcess(args: readonly string[], io: CommandIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        ...flagOptions(processorConfigSpec()),
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new TelemetryError('USAGE', (error as Error).message, { cause: error });
  }
  const { config: configFile, help, ...flags } = parsed.values;
  if (help === true) {
    await io.write(processHelp());
    return 0;
  }
  const file = configFile === undefined ? undefined : await readConfigFile(configFile);
  const config = parseProcessorConfig({
    file,
    ...(configFile === undefined ? {} : { fileName: configFile }),
    env: process.env,
    flags,
  });
  const logger = createLogger({
    level: config.logLevel as LogLevel,
    fields: { service: 'processor' },
  });
  const lifecycle = createLifecycle({ logger, timeoutMs: config.shutdownTimeoutMs });
  const removeSignals = lifecycle.handleSignals();
  try {
    const processor = await startProcessor(config, logger);
    lifecycle.onClose('processor', () => processor.stop());
    await io.write(`${processor.http.url}\n`);
  } catch (error) {
    logger.error('The processor failed to start.', { error });
    await lifecycle.shutdown('start failed');
    removeSignals();
    throw error;
  }
  const status = await lifecycle.done;
  removeSignals();
  return status;
}
