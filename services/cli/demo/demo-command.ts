import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import {
  option,
  parseConfig,
  renderOptionsHelp,
  type ConfigOf,
} from '../../shared/core/config-spec.ts';
import { TelemetryError } from '../../shared/core/errors.ts';
import type { CommandIo } from '../../shared/io/command-io.ts';
import { runsFromBundle } from '../../shared/io/packaged-files.ts';
import { runStage, type RunningStage, type StageContext } from '../../shared/io/stage-runner.ts';
import { startLocalKafka, type LocalKafka } from './local-kafka.ts';
import { startPipeline } from './pipeline.ts';
import { kafkaSecurityEnv } from '../../shared/kafka/core/options.ts';

const DEFAULT_KAFKA_DIR = fileURLToPath(new URL('../../../.cache/demo-kafka', import.meta.url));

/** `demo`'s options: flags only; KAFKA_BROKERS picks an existing cluster. */
export function demoConfigSpec(kafkaDir: string) {
  return {
    vms: option({ type: 'integer', default: 20, min: 1, flag: 'vms', doc: 'simulated VMs' }),
    devices: option({
      type: 'integer',
      default: 2,
      min: 1,
      flag: 'devices',
      doc: 'VFIO devices per VM',
    }),
    rate: option({
      type: 'number',
      default: 6,
      min: 0.01,
      flag: 'rate',
      metavar: 'R',
      doc: 'migrations per VM per minute',
    }),
    speed: option({
      type: 'number',
      default: 1,
      min: 0.01,
      flag: 'speed',
      metavar: 'X',
      doc: 'simulated time per real second (1: real time)',
    }),
    seed: option({
      type: 'integer',
      default: 1,
      min: 0,
      flag: 'seed',
      metavar: 'S',
      doc: 'fleet seed; the same seed replays the same fleet',
    }),
    httpPort: option({
      type: 'integer',
      default: 9466,
      min: 0,
      flag: 'http-port',
      doc: "port of the exporter's live page and /metrics",
    }),
    duration: option({
      type: 'number',
      optional: true,
      min: 1,
      flag: 'duration',
      metavar: 'S',
      doc: 'stop by itself after S seconds (default: run until Ctrl-C)',
    }),
    kafkaDir: option({
      type: 'string',
      default: kafkaDir,
      flag: 'kafka-dir',
      metavar: 'DIR',
      doc: 'state directory of the local broker',
    }),
    logLevel: option({
      type: 'string',
      default: 'warn',
      oneOf: ['debug', 'info', 'warn', 'error'],
      flag: 'log-level',
      doc: 'least severe log level written to stderr (progress is always shown)',
    }),
  } as const;
}

export function demoHelp(): string {
  return `Usage: vfio-telemetry demo [options]

Runs the whole pipeline on this machine: a simulated fleet of QEMU VMs migrating VFIO devices
→ collector → Kafka → processor → Kafka → exporter, and prints the live page and /metrics URLs.
Starts a fresh local Kafka broker (downloaded once from Maven Central) unless KAFKA_BROKERS
points at a cluster with the project's topics. Ctrl-C stops everything.

Options:
${renderOptionsHelp(demoConfigSpec('.cache/demo-kafka'), [
  { flag: '-h, --help', text: 'show this help' },
])}
`;
}

type DemoConfig = ConfigOf<ReturnType<typeof demoConfigSpec>> & { shutdownTimeoutMs: number };

async function counter(registry: Registry, name: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

/** `vfio-telemetry demo` (`npm run demo`): the whole pipeline with a simulated fleet. */
export function runDemo(
  args: readonly string[],
  io: CommandIo,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const progress = (line: string): void => io.error(`demo: ${line}\n`);
  return runStage(
    {
      name: 'demo',
      spec: demoConfigSpec(DEFAULT_KAFKA_DIR),
      help: demoHelp,
      configFile: false,
      parseConfig: (sources): DemoConfig => ({
        ...parseConfig(demoConfigSpec(DEFAULT_KAFKA_DIR), sources),
        shutdownTimeoutMs: 30_000,
      }),
      logFields: () => ({ command: 'demo' }),
      start: (config, context) => startDemo(config, context, env, progress),
      stopped: (status) =>
        progress(
          status === 0 ? 'stopped cleanly' : 'stopped with errors (see the log lines above)',
        ),
    },
    args,
    io,
    env,
  );
}

async function startDemo(
  options: DemoConfig,
  { io, logger, onClose, shutdown }: StageContext,
  env: Readonly<Record<string, string | undefined>>,
  progress: (line: string) => void,
): Promise<RunningStage> {
  let kafka: LocalKafka | null = null;
  let brokers = (env['KAFKA_BROKERS'] ?? '').split(',').filter((b) => b !== '');
  if (brokers.length === 0) {
    if (runsFromBundle()) {
      throw new TelemetryError(
        'USAGE',
        'the built vfio-telemetry has no local Kafka to start (that needs a clone of the repo: `npm run demo`); set KAFKA_BROKERS to a cluster with the topics',
      );
    }
    kafka = await startLocalKafka(options.kafkaDir, progress);
    const local = kafka;
    onClose('kafka', () => local.stop());
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
    // A cluster of one's own (KAFKA_BROKERS) may be secured: every stage takes its settings.
    ...(kafka === null ? { kafkaEnv: () => kafkaSecurityEnv(env) } : {}),
    logger,
  });
  onClose('pipeline', () => pipeline.stop());
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
  onClose('progress', () => clearInterval(timer));
  if (options.duration !== undefined) {
    const stopAfter = setTimeout(() => shutdown('duration reached'), options.duration * 1000);
    onClose('duration', () => clearTimeout(stopAfter));
  }
  return {};
}
