import { parseArgs } from 'node:util';
import type { CommandIo } from '../cli/command-io.ts';
import { flagOptions, renderOptionsHelp } from '../shared/core/config-spec.ts';
import { TelemetryError } from '../shared/core/errors.ts';
import { readConfigFile } from '../shared/io/config-file.ts';
import { createLifecycle } from '../shared/io/lifecycle.ts';
import { createLogger, type LogLevel } from '../shared/io/logger.ts';
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
export async function runExport(
  args: readonly string[],
  io: CommandIo,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const spec = exporterConfigSpec();
  // Booleans that default to true need a way off on the command line: --no-<flag>.
  const negatable = Object.values(spec).flatMap((o) =>
    o.type === 'boolean' && o.flag !== undefined ? [o.flag] : [],
  );
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        ...flagOptions(spec),
        ...Object.fromEntries(negatable.map((f) => [`no-${f}`, { type: 'boolean' as const }])),
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new TelemetryError('USAGE', (error as Error).message, { cause: error });
  }
  const {
    config: configFile,
    help,
    ...given
  } = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (help === true) {
    await io.write(exportHelp());
    return 0;
  }
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
  const config = parseExporterConfig({
    file,
    ...(configFile === undefined ? {} : { fileName: configFile }),
    env,
    flags,
  });
  const logger = createLogger({
    level: config.logLevel as LogLevel,
    fields: { service: 'exporter' },
  });
  const lifecycle = createLifecycle({ logger, timeoutMs: config.shutdownTimeoutMs });
  const removeSignals = lifecycle.handleSignals();
  let failed = false;
  try {
    const exporter = await startExporter(config, logger, {
      onFatal: () => {
        failed = true;
        void lifecycle.shutdown('consumer crashed');
      },
    });
    lifecycle.onClose('exporter', () => exporter.stop());
    await io.write(`${exporter.http.url}\n`);
  } catch (error) {
    logger.error('The exporter failed to start.', { error });
    await lifecycle.shutdown('start failed');
    removeSignals();
    throw error;
  }
  const status = await lifecycle.done;
  removeSignals();
  return failed ? 1 : status;
}
