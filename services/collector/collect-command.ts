import { hostname } from 'node:os';
import type { CommandIo } from '../cli/command-io.ts';
import { renderOptionsHelp } from '../shared/core/config-spec.ts';
import { createLogger, type LogLevel } from '../shared/io/logger.ts';
import { collectorConfigSpec, parseCollectorConfig } from './config.ts';
import { startCollector } from './main.ts';
import { parseServiceArgs, runService } from '../cli/service-command.ts';

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
  const parsed = await parseServiceArgs(args, collectorConfigSpec(hostname()));
  if (parsed.help) {
    await io.write(collectHelp());
    return 0;
  }
  const config = parseCollectorConfig(hostname(), parsed.sources);
  const logger = createLogger({
    level: config.logLevel as LogLevel,
    fields: { service: 'collector', host: config.host },
  });
  return runService({
    name: 'collector',
    io,
    logger,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    start: async () => {
      const collector = await startCollector(config, logger);
      // Leave a margin of the deadline for closing files and the HTTP server.
      return {
        http: collector.http,
        stop: () => collector.stop(Math.max(0, config.shutdownTimeoutMs - 1000)),
      };
    },
  });
}
