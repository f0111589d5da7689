import { hostname } from 'node:os';
import { renderOptionsHelp } from '../shared/core/config-spec.ts';
import type { CommandIo } from '../shared/io/command-io.ts';
import { runStage } from '../shared/io/stage-runner.ts';
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
that overran its deadline (an internal error exits at once, after writing the spool: restart
it), 2 on bad usage or configuration, or a spool directory that another collector holds (the
message names its PID) or that cannot be written (the message names the path and the errno):
fix it before restarting.
`;
}

/** `vfio-telemetry collect`: runs until SIGINT/SIGTERM, then flushes and exits. */
export function runCollect(args: readonly string[], io: CommandIo): Promise<number> {
  return runStage(
    {
      name: 'collector',
      spec: collectorConfigSpec(hostname()),
      help: collectHelp,
      parseConfig: (sources) => parseCollectorConfig(hostname(), sources),
      logFields: (config) => ({ service: 'collector', host: config.host }),
      start: async (config, { logger }) => {
        const collector = await startCollector(config, logger);
        // Leave a margin of the deadline for closing files and the HTTP server.
        return {
          http: collector.http,
          stop: () => collector.stop(Math.max(0, config.shutdownTimeoutMs - 1000)),
          fatalFlush: () => collector.flushSpool(),
        };
      },
    },
    args,
    io,
  );
}
