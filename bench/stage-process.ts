/**
 * One pipeline stage (or one floor) in its own process for the Kafka benchmarks, so that stages
 * run on their own event loops as they would in production. Started by `spawnStage` in
 * bench/kafka-bench-support.ts with a JSON `StageSpec` as argv[2]; talks over the IPC channel:
 * reports `ready`, answers `query` with its counters, runs a floor on `start`, exits on `stop`.
 */
import type { Producer } from 'kafkajs';
import type { Registry } from 'prom-client';
import { parseCollectorConfig } from '../services/collector/config.ts';
import { partitionFor } from '../services/collector/core/partitioner.ts';
import { startCollector } from '../services/collector/main.ts';
import { parseProcessorConfig } from '../services/processor/config.ts';
import { startProcessor } from '../services/processor/io/processor-service.ts';
import { createTransitionCodec } from '../services/shared/io/avro-codec.ts';
import { createKafkaClient } from '../services/shared/io/kafka-client.ts';
import { createLogger } from '../services/shared/io/logger.ts';
import type { FleetConfig } from '../services/simulator/core/fleet-config.ts';
import { startSimulator } from '../services/simulator/io/simulator.ts';
import { encodedFleetRecords } from './fleet-events.ts';

export type StageSpec =
  | { role: 'collector'; flags: Record<string, string | string[]> }
  | { role: 'processor'; flags: Record<string, string | string[]> }
  | {
      role: 'simulator';
      dir: string;
      fleet: Partial<FleetConfig>;
      speed: number | 'max';
      maxMigrations?: number;
      durationSeconds?: number;
    }
  | {
      /** kafkajs producing pre-encoded event records the way the collector's sender does. */
      role: 'floor-produce';
      brokers: string[];
      topic: string;
      partitions: number;
      vms: number;
      eventsPerVm: number;
      devicesPerVm: number;
      batch: number;
    }
  | {
      /** A bare `eachBatch` loop that counts; optionally produces `transitionsPerEvent` records. */
      role: 'floor-consume';
      brokers: string[];
      topic: string;
      groupId: string;
      transitionsTopic?: string;
      transitionsPerEvent?: number;
    };

export type StageRequest = { kind: 'query' } | { kind: 'start' } | { kind: 'stop' };

export interface StageReport {
  kind: 'ready' | 'stats' | 'done';
  counters: Record<string, number>;
}

const logger = createLogger({
  level: 'warn',
  write: (line) => process.stderr.write(line + '\n'),
});

async function counterSum(registry: Registry, name: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

interface Running {
  counters(): Promise<Record<string, number>>;
  start?(): void;
  stop(): Promise<void>;
}

async function startStage(spec: StageSpec): Promise<Running> {
  switch (spec.role) {
    case 'collector': {
      const collector = await startCollector(
        parseCollectorConfig('bench-host', { env: {}, flags: spec.flags }),
        logger,
      );
      return {
        counters: async () => ({
          received: await counterSum(collector.registry, 'vfio_collector_events_received_total'),
          published: await counterSum(collector.registry, 'vfio_collector_events_published_total'),
          connected: await counterSum(collector.registry, 'vfio_collector_vms_connected'),
        }),
        stop: () => collector.stop(0),
      };
    }
    case 'processor': {
      const processor = await startProcessor(
        parseProcessorConfig({ env: {}, flags: spec.flags }),
        logger,
      );
      return {
        counters: async () => ({
          consumed: await counterSum(processor.registry, 'vfio_processor_records_consumed_total'),
          transitions: await counterSum(
            processor.registry,
            'vfio_processor_transitions_published_total',
          ),
        }),
        stop: () => processor.stop(),
      };
    }
    case 'simulator': {
      const simulator = await startSimulator({
        dir: spec.dir,
        fleet: spec.fleet,
        speed: spec.speed,
        waitForClients: true,
        ...(spec.maxMigrations === undefined ? {} : { maxMigrations: spec.maxMigrations }),
        ...(spec.durationSeconds === undefined ? {} : { durationSeconds: spec.durationSeconds }),
        logger,
      });
      let finished = 0;
      void simulator.done.then(() => (finished = 1));
      return {
        counters: () => {
          const stats = simulator.stats();
          return Promise.resolve({
            sent: stats.eventsSent,
            dropped: stats.eventsDropped,
            connected: stats.clientsConnected,
            finished,
          });
        },
        stop: () => simulator.close(),
      };
    }
    case 'floor-produce':
      return floorProduce(spec);
    case 'floor-consume':
      return floorConsume(spec);
  }
}

async function floorProduce(spec: Extract<StageSpec, { role: 'floor-produce' }>): Promise<Running> {
  const records = encodedFleetRecords('bench-host', spec.vms, spec.eventsPerVm, spec.devicesPerVm);
  const messages = records.map((r) => ({
    key: r.key,
    value: r.value,
    partition: partitionFor(r.key, spec.partitions),
  }));
  const kafka = createKafkaClient({ brokers: spec.brokers, clientId: 'bench-floor', logger });
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  let sent = 0;
  const run = async (): Promise<void> => {
    for (let i = 0; i < messages.length; i += spec.batch) {
      const batch = messages.slice(i, i + spec.batch);
      await producer.send({ topic: spec.topic, acks: -1, messages: batch });
      sent += batch.length;
    }
  };
  return {
    counters: () => Promise.resolve({ sent, total: messages.length }),
    start: () => {
      run().catch((error: unknown) => {
        logger.error('The producer floor failed.', { error });
        process.exit(1);
      });
    },
    stop: () => producer.disconnect(),
  };
}

async function floorConsume(spec: Extract<StageSpec, { role: 'floor-consume' }>): Promise<Running> {
  const kafka = createKafkaClient({ brokers: spec.brokers, clientId: 'bench-floor', logger });
  const consumer = kafka.consumer({ groupId: spec.groupId, maxWaitTimeInMs: 50 });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  const codec = createTransitionCodec();
  const transition = codec.encode({
    type: 'dwell',
    host: 'bench-host',
    vm: 'vm-1',
    qomPath: '/machine/peripheral/vf0',
    deviceId: 'vf0',
    state: 'pre-copy',
    next: 'pre-copy-p2p-prepare',
    seconds: 0.0123,
    startMicros: 1_795_798_176_000_000,
    endMicros: 1_795_798_176_012_300,
  });
  const produce = spec.transitionsTopic !== undefined && (spec.transitionsPerEvent ?? 0) > 0;
  if (produce) await producer.connect();
  let consumed = 0;
  let produced = 0;
  let owed = 0;
  await consumer.connect();
  await consumer.subscribe({ topic: spec.topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      consumed += batch.messages.length;
      if (!produce) return;
      owed += batch.messages.length * (spec.transitionsPerEvent as number);
      const count = Math.floor(owed);
      owed -= count;
      if (count === 0) return;
      const messages = Array.from({ length: count }, () => ({
        key: 'bench-host/vm-1',
        value: transition,
        partition: batch.partition,
      }));
      await producer.send({ topic: spec.transitionsTopic as string, acks: -1, messages });
      produced += count;
    },
  });
  return {
    counters: () => Promise.resolve({ consumed, produced }),
    stop: async () => {
      await consumer.disconnect();
      if (produce) await producer.disconnect();
    },
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as StageSpec;
  const running = await startStage(spec);
  const report = async (kind: StageReport['kind']): Promise<void> => {
    process.send?.({ kind, counters: await running.counters() } satisfies StageReport);
  };
  process.on('message', (request: StageRequest) => {
    if (request.kind === 'query') void report('stats');
    else if (request.kind === 'start') running.start?.();
    else {
      running
        .stop()
        .catch((error: unknown) => logger.error('Stopping the stage failed.', { error }))
        .finally(() => process.exit(0));
    }
  });
  // The parent going away (Ctrl-C, a crash) must not leave this process behind.
  process.on('disconnect', () => process.exit(0));
  await report('ready');
}

await main();
