import type { CommandIo } from '../cli/command-io.ts';
import { renderOptionsHelp } from '../shared/core/config-spec.ts';
import { createLogger, type LogLevel } from '../shared/io/logger.ts';
import { parseProcessorConfig, processorConfigSpec } from './config.ts';
import { startProcessor } from './main.ts';
import { parseServiceArgs, runService } from '../cli/service-command.ts';

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
  const parsed = await parseServiceArgs(args, processorConfigSpec());
  if (parsed.help) {
    await io.write(processHelp());
    return 0;
  }
  const config = parseProcessorConfig(parsed.sources);
  const logger = createLogger({
    level: config.logLevel as LogLevel,
    fields: { service: 'processor' },
  });
  return runService({
    name: 'processor',
    io,
    logger,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    start: () => startProcessor(config, logger),
  });
}
