import { renderOptionsHelp } from '../shared/core/config-spec.ts';
import type { CommandIo } from '../shared/io/command-io.ts';
import { runStage } from '../shared/io/stage-runner.ts';
import { exporterConfigSpec, parseExporterConfig } from './config.ts';
import { startExporter } from './main.ts';

export function exportHelp(): string {
  return `Usage: vfio-telemetry export [--config FILE] [options]

Consumes transition records from Kafka into Prometheus metrics: prepare-to-completion latency,
prepare outcomes, time in each state and delivery lag (docs/metrics.md). Serves /metrics,
/healthz, /readyz and a live page at /. Settings come from flags, then the environment, then
the config file (YAML or JSON, keys as in parentheses below), then the defaults.
The first line on stdout is the URL of the server.

Options:
${renderOptionsHelp(exporterConfigSpec(), [
  { flag: '--no-host-label', text: 'no host label on the prepare metrics (very large fleets)' },
  { flag: '--no-from-beginning', text: 'a new group starts at the newest records' },
  { flag: '--config FILE', text: 'YAML or JSON config file' },
  { flag: '-h, --help', text: 'show this help' },
])}

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 on a runtime failure or a shutdown
that overran its deadline, 2 on bad usage or configuration.
`;
}

/** `vfio-telemetry export`: runs until SIGINT/SIGTERM, then leaves the group and exits. */
export function runExport(
  args: readonly string[],
  io: CommandIo,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  return runStage(
    {
      name: 'exporter',
      spec: exporterConfigSpec(),
      help: exportHelp,
      parseConfig: parseExporterConfig,
      start: (config, { logger, fail, onClose }) => {
        // A stop while Kafka refuses the start ends the wait (the start then fails).
        const starting = new AbortController();
        onClose('refused start', () => starting.abort());
        return startExporter(config, logger, {
          onFatal: () => fail('consumer crashed'),
          signal: starting.signal,
        });
      },
    },
    args,
    io,
    env,
  );
}
