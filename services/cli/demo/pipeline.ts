import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCollectorConfig } from '../../collector/config.ts';
import { startCollector, type RunningCollector } from '../../collector/main.ts';
import { parseExporterConfig } from '../../exporter/config.ts';
import { startExporter, type RunningExporter } from '../../exporter/main.ts';
import { parseProcessorConfig } from '../../processor/config.ts';
import { startProcessor, type RunningProcessor } from '../../processor/main.ts';
import {
  EVENTS_DLQ_TOPIC,
  EVENTS_TOPIC,
  PROCESSOR_STATE_TOPIC,
  TRANSITIONS_TOPIC,
} from '../../shared/core/topics.ts';
import type { Logger } from '../../shared/io/logger.ts';
import type { FleetConfig } from '../../simulator/core/fleet-config.ts';
import { startSimulator, type Simulator } from '../../simulator/io/simulator.ts';

/**
 * The whole pipeline in one process, for the demo and for whole-pipeline tests: a simulated
 * fleet → collector → Kafka → processor → Kafka → exporter. Each stage is the same code the
 * stage commands run; only the wiring is shared here.
 */
export interface PipelineOptions {
  brokers: readonly string[];
  topics?: Partial<PipelineTopics>;
  fleet: Partial<FleetConfig>;
  speed: number | 'max';
  maxMigrations?: number;
  /** Write each VM's QMP transcript here (what `replay` reads). */
  transcriptsDir?: string;
  exporterPort: number;
  /** Consumer group suffix, so runs against a shared cluster do not mix. */
  groupSuffix?: string;
  host?: string;
  /**
   * The Kafka security settings of each stage as environment variables (`KAFKA_SECURITY_PROTOCOL`,
   * `KAFKA_SASL_USERNAME`...), so each may run on its own principal; plaintext without.
   */
  kafkaEnv?: (stage: PipelineStage) => Readonly<Record<string, string | undefined>>;
  logger: Logger;
}

export type PipelineStage = 'collector' | 'processor' | 'exporter';

export interface PipelineTopics {
  events: string;
  transitions: string;
  state: string;
  deadLetter: string;
}

export interface RunningPipeline {
  simulator: Simulator;
  collector: RunningCollector;
  processor: RunningProcessor;
  exporter: RunningExporter;
  /** Stops the stages from the source on, so what is in flight drains; removes temp dirs. */
  stop(): Promise<void>;
}

export async function startPipeline(options: PipelineOptions): Promise<RunningPipeline> {
  const topics: PipelineTopics = {
    events: EVENTS_TOPIC,
    transitions: TRANSITIONS_TOPIC,
    state: PROCESSOR_STATE_TOPIC,
    deadLetter: EVENTS_DLQ_TOPIC,
    ...options.topics,
  };
  const brokers = [...options.brokers];
  const suffix = options.groupSuffix ?? '';
  const env = (stage: PipelineStage) => options.kafkaEnv?.(stage) ?? {};
  // A stage's own KAFKA_BROKERS (e.g. the SSL listener for a client certificate) wins.
  const brokersOf = (stage: PipelineStage): string[] =>
    env(stage)['KAFKA_BROKERS']?.split(',') ?? brokers;
  const work = await mkdtemp(join(tmpdir(), 'vfio-telemetry-pipeline-'));
  const stops: Array<() => Promise<void>> = [() => rm(work, { recursive: true, force: true })];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const exporter = await startExporter(
      parseExporterConfig({
        env: env('exporter'),
        flags: {
          brokers: brokersOf('exporter'),
          topic: topics.transitions,
          'group-id': `vfio-exporter${suffix}`,
          'http-port': String(options.exporterPort),
          'quantile-interval-ms': '2000',
          'quantile-window-seconds': '30',
        },
      }),
      options.logger.child({ service: 'exporter' }),
    );
    stops.push(() => exporter.stop());
    const processor = await startProcessor(
      parseProcessorConfig({
        env: env('processor'),
        flags: {
          brokers: brokersOf('processor'),
          'events-topic': topics.events,
          'transitions-topic': topics.transitions,
          'state-topic': topics.state,
          'dead-letter-topic': topics.deadLetter,
          'group-id': `vfio-processor${suffix}`,
          'http-port': '0',
        },
      }),
      options.logger.child({ service: 'processor' }),
    );
    stops.push(() => processor.stop());
    const sockets = join(work, 'sockets');
    const simulator = await startSimulator({
      dir: sockets,
      fleet: options.fleet,
      speed: options.speed,
      waitForClients: true,
      ...(options.maxMigrations === undefined ? {} : { maxMigrations: options.maxMigrations }),
      ...(options.transcriptsDir === undefined ? {} : { transcriptsDir: options.transcriptsDir }),
      logger: options.logger.child({ service: 'simulator' }),
    });
    stops.push(() => simulator.close());
    const collector = await startCollector(
      parseCollectorConfig(options.host ?? 'demo-host', {
        env: env('collector'),
        flags: {
          brokers: brokersOf('collector'),
          topic: topics.events,
          'socket-dir': sockets,
          'spool-dir': join(work, 'spool'),
          'http-port': '0',
          'linger-ms': '2',
          'rescan-interval-ms': '200',
        },
      }),
      options.logger.child({ service: 'collector' }),
    );
    stops.push(() => collector.stop(2000));
    return { simulator, collector, processor, exporter, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
