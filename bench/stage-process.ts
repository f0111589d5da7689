/**
 * One pipeline stage (or one floor) in its own process for the Kafka benchmarks, so that stages
 * run on their own event loops as they would in production. Started by `spawnStage` in
 * bench/kafka-bench-support.ts with a JSON `StageSpec` as argv[2]; talks over the IPC channel:
 * reports `ready`, answers `query` with its counters, runs a floor on `start`, exits on `stop`.
 * Each role imports only its own stage, so a process holds one stage's code.
 */
import {
  Consumer,
  FetchIsolationLevels,
  Producer,
  type Message,
  type MessageToProduce,
} from '@platformatic/kafka';
import type { Registry } from 'prom-client';
import { partitionFor } from '../services/collector/core/partitioner.ts';
import { createTransitionCodec } from '../services/shared/io/avro-codec.ts';
import { createLogger } from '../services/shared/io/logger.ts';
import type { FleetConfig } from '../services/simulator/core/fleet-config.ts';
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
      /** The raw @platformatic/kafka idempotent producer sending the collector's records. */
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
      /**
       * A raw @platformatic/kafka consume → produce loop without transactions: per fetched batch,
       * `transitionsPerEvent` pre-encoded transitions per event (0: only counts), then the
       * offsets committed.
       */
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

const FLOOR_SEND_RECORDS = 5000;

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
      const { parseCollectorConfig } = await import('../services/collector/config.ts');
      const { startCollector } = await import('../services/collector/main.ts');
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
      const { parseProcessorConfig } = await import('../services/processor/config.ts');
      const { startProcessor } = await import('../services/processor/main.ts');
      const processor = await startProcessor(
        parseProcessorConfig({ env: {}, flags: spec.flags }),
        logger,
      );
      // When the first record arrived, to 5 ms: drain rates start there, whatever the join took.
      let firstAtEpochMs = 0;
      const watch = setInterval(() => {
        void counterSum(processor.registry, 'vfio_processor_records_consumed_total').then((n) => {
          if (n > 0 && firstAtEpochMs === 0) {
            firstAtEpochMs = Date.now();
            clearInterval(watch);
          }
        });
      }, 5);
      return {
        counters: async () => ({
          consumed: await counterSum(processor.registry, 'vfio_processor_records_consumed_total'),
          transitions: await counterSum(
            processor.registry,
            'vfio_processor_transitions_published_total',
          ),
          firstAtEpochMs,
        }),
        stop: () => {
          clearInterval(watch);
          return processor.stop();
        },
      };
    }
    case 'simulator': {
      const { startSimulator } = await import('../services/simulator/io/simulator.ts');
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
  const messages: MessageToProduce[] = records.map((r) => ({
    topic: spec.topic,
    key: Buffer.from(r.key),
    value: r.value,
    partition: partitionFor(r.key, spec.partitions),
  }));
  const producer = new Producer({
    clientId: 'bench-floor',
    bootstrapBrokers: spec.brokers,
    idempotent: true,
    acks: -1,
    autocreateTopics: false,
  });
  // Producer id and metadata before the clock starts, as the collector's sender has them.
  await producer.initIdempotentProducer({});
  await producer.metadata({ topics: [spec.topic] });
  let sent = 0;
  const run = async (): Promise<void> => {
    for (let i = 0; i < messages.length; i += spec.batch) {
      const batch = messages.slice(i, i + spec.batch);
      await producer.send({ messages: batch });
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
    stop: () => producer.close(),
  };
}

async function floorConsume(spec: Extract<StageSpec, { role: 'floor-consume' }>): Promise<Running> {
  const consumer = new Consumer({
    clientId: 'bench-floor',
    groupId: spec.groupId,
    bootstrapBrokers: spec.brokers,
    autocommit: false,
    maxWaitTime: 50,
    isolationLevel: FetchIsolationLevels.READ_COMMITTED,
  });
  const producer = new Producer({
    clientId: 'bench-floor',
    bootstrapBrokers: spec.brokers,
    idempotent: true,
    acks: -1,
    autocreateTopics: false,
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
  const key = Buffer.from('bench-host/vm-1');
  const perEvent = spec.transitionsPerEvent ?? 0;
  const produce = spec.transitionsTopic !== undefined && perEvent > 0;
  if (produce) await producer.initIdempotentProducer({});
  let consumed = 0;
  let produced = 0;
  let owed = 0;
  const stream = await consumer.consume({
    topics: [spec.topic],
    mode: 'committed',
    fallbackMode: 'earliest',
  });
  let pending: Message[] = [];
  // Everything the stream handed over since the last flush is one batch: produce, then commit.
  const flush = async (): Promise<void> => {
    const batch = pending;
    pending = [];
    consumed += batch.length;
    if (produce) {
      owed += batch.length * perEvent;
      const count = Math.floor(owed);
      owed -= count;
      if (count > 0) {
        const out: MessageToProduce[] = Array.from({ length: count }, (_, i) => ({
          topic: spec.transitionsTopic as string,
          key,
          value: transition,
          partition: (batch[Math.min(i, batch.length - 1)] as Message).partition,
        }));
        // One request per FLOOR_SEND_RECORDS: a partition's record batch must stay under the
        // broker's 1 MiB message.max.bytes.
        for (let i = 0; i < out.length; i += FLOOR_SEND_RECORDS)
          await producer.send({ messages: out.slice(i, i + FLOOR_SEND_RECORDS) });
        produced += count;
      }
    }
    const last = new Map<number, Message>();
    for (const m of batch) last.set(m.partition, m);
    await consumer.commit({
      offsets: [...last.values()].map((m) => ({
        topic: m.topic,
        partition: m.partition,
        offset: m.offset + 1n,
        leaderEpoch: m.leaderEpoch,
      })),
    });
  };
  let scheduled = false;
  let batches = 0;
  let firstAtEpochMs = 0;
  stream.on('data', (message: Message) => {
    if (firstAtEpochMs === 0) firstAtEpochMs = Date.now();
    pending.push(message);
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      stream.pause();
      batches++;
      flush()
        .then(() => {
          scheduled = false;
          stream.resume();
        })
        .catch((error: unknown) => {
          logger.error('The consume floor failed.', {
            error,
            errors: (error as { errors?: unknown[] }).errors?.map(String),
          });
          process.exit(1);
        });
    });
  });
  return {
    counters: () => Promise.resolve({ consumed, produced, batches, firstAtEpochMs }),
    stop: async () => {
      await stream.close();
      await consumer.close();
      await producer.close();
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
