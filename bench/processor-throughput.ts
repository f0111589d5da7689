/**
 * Processor throughput against a real broker: events/s to drain a pre-filled events topic, side by
 * side with two floors reading the same topic in their own processes: a bare kafkajs `eachBatch`
 * loop that only counts, and the same loop producing as many pre-encoded transition records as
 * the processor published (same partitions, acks -1, idempotent, awaited per batch).
 */
import { randomUUID } from 'node:crypto';
import { partitionFor } from '../services/collector/core/partitioner.ts';
import { createKafkaClient } from '../services/shared/io/kafka-client.ts';
import type { BenchSection } from './harness.ts';
import {
  benchBrokers,
  cpuPercent,
  createTopics,
  fmt,
  quietLogger,
  ratioText,
  sampleProcess,
  sleep,
  spawnStage,
  type StageChild,
} from './kafka-bench-support.ts';
import { encodedFleetRecords } from './fleet-events.ts';
import type { StageSpec } from './stage-process.ts';

const VMS = Number(process.env['BENCH_PROCESSOR_VMS'] ?? 1000);
const DEVICES_PER_VM = 10;
const EVENTS_PER_VM = Number(process.env['BENCH_PROCESSOR_EVENTS_PER_VM'] ?? 200);
const PARTITIONS = 6;
const TOTAL = VMS * EVENTS_PER_VM;

interface Drain {
  /** Events/s from the first record consumed to the last offset committed. */
  perSecond: number;
  /** Seconds from process start to the last offset committed (group join included). */
  wallSeconds: number;
  cpuPercent: number;
  counters: Record<string, number>;
}

async function prefill(brokers: string[], topic: string): Promise<void> {
  const kafka = createKafkaClient({ brokers, clientId: 'bench-prefill', logger: quietLogger() });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const records = encodedFleetRecords('bench-host', VMS, EVENTS_PER_VM, DEVICES_PER_VM);
    for (let i = 0; i < records.length; i += 10_000) {
      await producer.send({
        topic,
        acks: -1,
        messages: records.slice(i, i + 10_000).map((r) => ({
          key: r.key,
          value: r.value,
          partition: partitionFor(r.key, PARTITIONS),
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** Runs one consumer stage until its group committed the whole topic. */
async function drain(
  brokers: string[],
  topic: string,
  groupId: string,
  spec: StageSpec,
  consumedCounter: string,
): Promise<Drain> {
  const kafka = createKafkaClient({ brokers, clientId: 'bench-offsets', logger: quietLogger() });
  const admin = kafka.admin();
  await admin.connect();
  const spawned = performance.now();
  const stage: StageChild = spawnStage(spec);
  try {
    await stage.ready;
    const before = await sampleProcess(stage.pid);
    let first: { at: number; count: number } | undefined;
    let counters: Record<string, number> = {};
    for (;;) {
      const [report, offsets] = await Promise.all([
        stage.query(),
        admin.fetchOffsets({ groupId, topics: [topic] }),
      ]);
      const now = performance.now();
      counters = report.counters;
      const consumed = counters[consumedCounter] ?? 0;
      if (first === undefined && consumed > 0) first = { at: now, count: consumed };
      const committed = (offsets[0]?.partitions ?? []).reduce(
        (sum, p) => sum + Math.max(0, Number(p.offset)),
        0,
      );
      if (committed >= TOTAL && first !== undefined) {
        const after = await sampleProcess(stage.pid);
        return {
          perSecond: (TOTAL - first.count) / ((now - first.at) / 1000),
          wallSeconds: (now - spawned) / 1000,
          cpuPercent: cpuPercent(before, after),
          counters: (await stage.query()).counters,
        };
      }
      if (now - spawned > 120_000) throw new Error(`drain stalled: ${JSON.stringify(counters)}`);
      await sleep(20);
    }
  } finally {
    await stage.stop();
    await admin.disconnect();
  }
}

export async function runProcessorThroughput(): Promise<BenchSection> {
  const brokers = benchBrokers();
  const topics = await createTopics(brokers, [
    { prefix: 'processor-events', partitions: PARTITIONS },
    { prefix: 'processor-transitions', partitions: PARTITIONS },
    { prefix: 'processor-state', partitions: PARTITIONS, compact: true },
    { prefix: 'processor-dlq', partitions: 1 },
    { prefix: 'floor-transitions', partitions: PARTITIONS },
  ]);
  const [events, transitions, state, dlq, floorTransitions] = topics.names as [
    string,
    string,
    string,
    string,
    string,
  ];
  try {
    await prefill(brokers, events);
    const floorGroup = `bench-floor-${randomUUID()}`;
    const floor = await drain(
      brokers,
      events,
      floorGroup,
      { role: 'floor-consume', brokers, topic: events, groupId: floorGroup },
      'consumed',
    );
    const processorGroup = `bench-processor-${randomUUID()}`;
    const processor = await drain(
      brokers,
      events,
      processorGroup,
      {
        role: 'processor',
        flags: {
          brokers,
          'events-topic': events,
          'transitions-topic': transitions,
          'state-topic': state,
          'dead-letter-topic': dlq,
          'group-id': processorGroup,
          'http-port': '0',
          'log-level': 'warn',
        },
      },
      'consumed',
    );
    const published = processor.counters['transitions'] ?? 0;
    const producingGroup = `bench-floor-${randomUUID()}`;
    const producing = await drain(
      brokers,
      events,
      producingGroup,
      {
        role: 'floor-consume',
        brokers,
        topic: events,
        groupId: producingGroup,
        transitionsTopic: floorTransitions,
        transitionsPerEvent: published / TOTAL,
      },
      'consumed',
    );
    const ratio = processor.perSecond / floor.perSecond;
    const ratio2 = processor.perSecond / producing.perSecond;
    const row = (name: string, d: Drain, vs: string): string[] => [
      name,
      fmt(d.perSecond),
      `${d.wallSeconds.toFixed(1)} s`,
      `${Math.round(d.cpuPercent)}%`,
      vs,
    ];
    return {
      title:
        'Processor throughput, events topic → transitions (real broker, 2 cores shared with it)',
      columns: ['consumer', 'events/s to drain', 'wall incl. start + join', 'process CPU', 'ratio'],
      rows: [
        row('floor: bare kafkajs `eachBatch` loop that only counts', floor, '1.00x'),
        row(
          `reference: same loop + producing ${fmt(producing.counters['produced'] ?? 0)} pre-encoded transitions per partition batch`,
          producing,
          ratioText(producing.perSecond / floor.perSecond),
        ),
        row(
          `processor: decode + engine + publish ${fmt(published)} transitions + state changelog + commit, per batch`,
          processor,
          `${ratioText(ratio)} of floor, ${ratioText(ratio2)} of reference`,
        ),
      ],
      notes: [
        `One events topic pre-filled with ${fmt(TOTAL)} records (${fmt(VMS)} VMs × ${DEVICES_PER_VM} devices = ${fmt(VMS * DEVICES_PER_VM)} devices, ${EVENTS_PER_VM} events per VM, 90% VFIO_MIGRATION, ${PARTITIONS} partitions), read from the beginning by each consumer in turn with its own group, each in its own process. Rate: from the first record consumed to the moment the group's committed offsets cover the topic (admin \`fetchOffsets\` polled every 20 ms), so the processor is timed until its last batch is published, saved and committed.`,
        `The processor does more than its floor: per group of partition batches (kafkajs hands over up to 6 partitions at once) it publishes the transitions (\`sendBatch\`, acks -1), then writes the changed VMs' state and each partition's meta to the compacted state topic (a second produce, acks -1); offsets are committed in the background. The reference row adds the first of these produces to the floor.`,
        `Target: ≥ 0.75x of the floor (${ratio >= 0.75 ? 'met' : 'NOT met'}, ${ratioText(ratio)}).`,
      ],
    };
  } finally {
    await topics.drop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await runProcessorThroughput();
  process.stdout.write(JSON.stringify(section) + '\n');
  setImmediate(() => process.exit(0));
}
