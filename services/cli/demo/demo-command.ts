import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { TelemetryError } from '../../shared/core/errors.ts';
import { createLifecycle } from '../../shared/io/lifecycle.ts';
import { createLogger, isLogLevel } from '../../shared/io/logger.ts';
import type { CommandIo } from '../../shared/io/command-io.ts';
import { startLocalKafka, type LocalKafka } from './local-kafka.ts';
import { startPipeline } from './pipeline.ts';

const DEFAULT_KAFKA_DIR = fileURLToPath(new URL('../../../.cache/demo-kafka', import.meta.url));

export const DEMO_HELP = `Usage: vfio-telemetry demo [options]

Runs the whole pipeline on this machine: a simulated fleet of QEMU VMs migrating VFIO devices
→ collector → Kafka → processor → Kafka → exporter, and prints the live page and /metrics URLs.
Starts a fresh local Kafka broker (downloaded once from Maven Central) unless KAFKA_BROKERS
points at a cluster with the project's topics. Ctrl-C stops everything.

Options:
  --vms N             simulated VMs (default 20)
  --devices N         VFIO devices per VM (default 2)
  --rate R            migrations per VM per minute (default 6)
  --speed X           simulated time per real second (default 1: real time)
  --seed S            fleet seed; the same seed replays the same fleet (default 1)
  --http-port N       port of the exporter's live page and /metrics (default 9466)
  --duration S        stop by itself after S seconds (default: run until Ctrl-C)
  --kafka-dir DIR     state directory of the local broker (default .cache/demo-kafka)
  --log-level LEVEL   debug, info, warn, error (default warn; progress is always shown)
  -h, --help          show this help
`;

interface DemoOptions {
  vms: number;
  devices: number;
  rate: number;
  speed: number;
  seed: number;
  httpPort: number;
  durationSeconds: number | null;
  kafkaDir: string;
  logLevel: string;
}

function parseDemoArgs(args: readonly string[]): DemoOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      options: {
        vms: { type: 'string' },
        devices: { type: 'string' },
        rate: { type: 'string' },
        speed: { type: 'string' },
        seed: { type: 'string' },
        'http-port': { type: 'string' },
        duration: { type: 'string' },
        'kafka-dir': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new TelemetryError('USAGE', (error as Error).message, { cause: error });
  }
  if (values.help === true) return 'help';
  const problems: string[] = [];
  const number = (
    flag: string,
    raw: string | undefined,
    fallback: number,
    min: number,
    integer: boolean,
  ): number => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (
      raw.trim() === '' ||
      !Number.isFinite(value) ||
      value < min ||
      (integer && !Number.isInteger(value))
    ) {
      problems.push(
        `--${flag} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, got "${raw}"`,
      );
    }
    return value;
  };
  const options: DemoOptions = {
    vms: number('vms', values.vms, 20, 1, true),
    devices: number('devices', values.devices, 2, 1, true),
    rate: number('rate', values.rate, 6, 0.01, false),
    speed: number('speed', values.speed, 1, 0.01, false),
    seed: number('seed', values.seed, 1, 0, true),
    httpPort: number('http-port', values['http-port'], 9466, 0, true),
    durationSeconds:
      values.duration === undefined ? null : number('duration', values.duration, 0, 1, false),
    kafkaDir: values['kafka-dir'] ?? DEFAULT_KAFKA_DIR,
    logLevel: values['log-level'] ?? 'warn',
  };
  if (!isLogLevel(options.logLevel))
    problems.push(`--log-level must be debug, info, warn or error`);
  if (problems.length > 0) throw new TelemetryError('USAGE', problems.join('; '));
  return options;
}

async function counter(registry: Registry, name: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

/** `vfio-telemetry demo` (`npm run demo`): the whole pipeline with a simulated fleet. */
export async function runDemo(args: readonly string[], io: CommandIo): Promise<number> {
  const options = parseDemoArgs(args);
  if (options === 'help') {
    await io.write(DEMO_HELP);
    return 0;
  }
  const logger = createLogger({ level: options.logLevel as 'warn', fields: { command: 'demo' } });
  const progress = (line: string): void => io.error(`demo: ${line}\n`);
  const lifecycle = createLifecycle({ logger, timeoutMs: 30_000 });
  const removeSignals = lifecycle.handleSignals();

  let kafka: LocalKafka | null = null;
  let brokers = (process.env['KAFKA_BROKERS'] ?? '').split(',').filter((b) => b !== '');
  try {
    if (brokers.length === 0) {
      kafka = await startLocalKafka(options.kafkaDir, progress);
      const local = kafka;
      lifecycle.onClose('kafka', () => local.stop());
      brokers = local.brokers;
      progress(`Kafka is up at ${brokers.join(',')}`);
    } else {
      progress(`using the Kafka cluster at ${brokers.join(',')} (KAFKA_BROKERS)`);
    }
    progress(`starting ${options.vms} simulated VMs, collector, processor and exporter...`);
    const pipeline = await startPipeline({
      brokers,
      fleet: {
        vms: options.vms,
        devicesPerVm: options.devices,
        migrationsPerVmPerMinute: options.rate,
        seed: options.seed,
      },
      speed: options.speed,
      exporterPort: options.httpPort,
      groupSuffix: kafka === null ? `-demo-${Date.now()}` : '',
      logger,
    });
    lifecycle.onClose('pipeline', () => pipeline.stop());
    const page = pipeline.exporter.http.url;
    await io.write(
      `Live page:  ${page}/\nMetrics:    ${page}/metrics (exporter), ${pipeline.processor.http.url}/metrics (processor), ${pipeline.collector.http.url}/metrics (collector)\nStop with Ctrl-C.\n`,
    );
    const started = Date.now();
    const timer = setInterval(() => {
      void (async () => {
        const summary = await pipeline.exporter.summary();
        const outcomes =
          summary.outcomes.map((o) => `${o.outcome} ${o.count}`).join(', ') || 'none yet';
        const p99 = summary.quantiles.at(-1)?.p99;
        progress(
          `${Math.round((Date.now() - started) / 1000)}s: ${pipeline.simulator.stats().migrations} migrations, ` +
            `${await counter(pipeline.collector.registry, 'vfio_collector_events_published_total')} events in Kafka, ` +
            `${await counter(pipeline.processor.registry, 'vfio_processor_transitions_published_total')} transitions; ` +
            `prepares: ${outcomes}${p99 === undefined || p99 === null ? '' : `; p99 ${(p99 * 1000).toFixed(1)} ms`}`,
        );
      })().catch(() => undefined);
    }, 5000);
    lifecycle.onClose('progress', () => clearInterval(timer));
    if (options.durationSeconds !== null) {
      const stopAfter = setTimeout(
        () => void lifecycle.shutdown('duration reached'),
        options.durationSeconds * 1000,
      );
      lifecycle.onClose('duration', () => clearTimeout(stopAfter));
    }
  } catch (error) {
    await lifecycle.shutdown('start failed');
    removeSignals();
    throw error;
  }
  const status = await lifecycle.done;
  removeSignals();
  progress(status === 0 ? 'stopped cleanly' : 'stopped with errors (see the log lines above)');
  return status;
}
