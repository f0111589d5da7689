/**
 * The whole pipeline on this machine: simulator → collector → Kafka → processor → Kafka →
 * exporter, every stage in its own process except the exporter, which runs here through its
 * programmatic API with the real transition consumer and a sink wrapped to time each observation
 * (now − the QEMU timestamp that closed the transition). Two runs: events/s at the simulator's
 * max speed, and latency at a steady ~1,000 events/s in real time (speed 1, so QEMU timestamps
 * are wall-clock times).
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { parseExporterConfig } from '../services/exporter/config.ts';
import { startTransitionConsumer } from '../services/exporter/io/transition-consumer.ts';
import type { TransitionSink } from '../services/exporter/io/transition-sink.ts';
import { startExporter, type RunningExporter } from '../services/exporter/main.ts';
import { createEventCodec, createTransitionCodec } from '../services/shared/io/avro-codec.ts';
import { createKafkaPort } from '../services/shared/kafka/io/client.ts';
import type { FleetConfig } from '../services/simulator/core/fleet-config.ts';
import { quantile, type BenchSection } from './harness.ts';
import type { GroupConsumer } from '../services/shared/kafka/io/port.ts';
import {
  benchBrokers,
  benchDir,
  benchReplicationFactor,
  checkPublishedEqualsAudit,
  fmt,
  loadText,
  openBenchAdmin,
  processorStageFlags,
  quietLogger,
  sleep,
  spawnStage,
  type BenchAdmin,
  type StageChild,
} from './kafka-bench-support.ts';

const PARTITIONS = 6;
const MAX_SPEED_FLEET: Partial<FleetConfig> = { vms: 100, devicesPerVm: 4 };
const MAX_SPEED_MIGRATIONS = Number(process.env['BENCH_E2E_MIGRATIONS'] ?? 8000);
/** About 22 events per migration with 4 devices: 500 VMs × 7/min ≈ 1,000 events/s once ramped up. */
const STEADY_FLEET: Partial<FleetConfig> = {
  vms: 500,
  devicesPerVm: 4,
  migrationsPerVmPerMinute: 7,
};
const STEADY_SECONDS = Number(process.env['BENCH_E2E_STEADY_SECONDS'] ?? 20);

const wallMicros = (): number => (performance.timeOrigin + performance.now()) * 1000;

interface Pipeline {
  simulator: StageChild;
  collector: StageChild;
  processor: StageChild;
  exporter: RunningExporter;
  processorGroup: string;
  eventsTopic: string;
  transitionsTopic: string;
  /** Exporter observations: count, and (observed at ms, latency ms) when timing. */
  observed: () => number;
  latencies: { atMs: number; ms: number }[];
  /** Events topic read back here: QEMU → collector read, collector read → readable in Kafka. */
  hops: { atMs: number; toCollectorMs: number; toKafkaMs: number }[];
  close(): Promise<void>;
}

async function startPipeline(
  brokers: string[],
  admin: BenchAdmin,
  simulator: {
    fleet: Partial<FleetConfig>;
    speed: number | 'max';
    maxMigrations?: number;
    durationSeconds?: number;
  },
  timing: boolean,
  processorFlags: Record<string, string> = {},
): Promise<Pipeline> {
  const topics = await admin.createTopics([
    { prefix: 'e2e-events', partitions: PARTITIONS, brokerTime: true },
    { prefix: 'e2e-transitions', partitions: PARTITIONS },
    { prefix: 'e2e-state', partitions: PARTITIONS, compact: true },
    { prefix: 'e2e-dlq', partitions: 1 },
  ]);
  const [events, transitions, state, dlq] = topics.names as [string, string, string, string];
  const sockets = benchDir('e2e-vms');
  const spool = benchDir('e2e-spool');
  const logger = quietLogger();
  const processorGroup = `bench-processor-${randomUUID()}`;
  const processor = spawnStage({
    role: 'processor',
    flags: {
      ...processorStageFlags({
        brokers,
        events,
        transitions,
        state,
        deadLetter: dlq,
        group: processorGroup,
      }),
      ...processorFlags,
    },
  });
  await processor.ready;

  let observed = 0;
  const latencies: Pipeline['latencies'] = [];
  const transitionCodec = createTransitionCodec();
  const exporterConfig = parseExporterConfig({
    env: {},
    flags: {
      brokers,
      topic: transitions,
      'group-id': `bench-exporter-${randomUUID()}`,
      'http-port': '0',
      'log-level': 'warn',
    },
  });
  const exporterPort = createKafkaPort({ brokers, clientId: 'bench-exporter', logger });
  const exporter = await startExporter(exporterConfig, logger, {
    startConsumer: (sink: TransitionSink) =>
      startTransitionConsumer({
        port: exporterPort,
        topic: transitions,
        groupId: exporterConfig.groupId,
        fromBeginning: true,
        logger,
        maxRecords: exporterConfig.batchMaxRecords,
        maxBytes: exporterConfig.fetchMaxBytes,
        onFatal: (error) => logger.error('The exporter consumer died.', { error }),
        sink: {
          observe(value, nowMicros, where) {
            sink.observe(value, nowMicros, where);
            observed++;
            if (!timing || value === null) return;
            const decoded = transitionCodec.decode(value);
            if (decoded.kind !== 'record' || decoded.value.endMicros === null) return;
            latencies.push({
              atMs: performance.now(),
              ms: (wallMicros() - decoded.value.endMicros) / 1000,
            });
          },
        },
      }),
  });

  const hops: Pipeline['hops'] = [];
  const eventCodec = createEventCodec();
  const hopPort = createKafkaPort({ brokers, clientId: 'bench-hops', logger });
  let hopLoop: Promise<void> = Promise.resolve();
  let hopConsumer: GroupConsumer | undefined;
  if (timing) {
    const consumer = await hopPort.groupConsumer({
      groupId: `bench-hops-${randomUUID()}`,
      topics: [events],
      startWith: 'earliest',
      maxWaitMs: 100,
    });
    hopConsumer = consumer;
    // No commits: this consumer only reads, and a commit per batch would add a round trip.
    hopLoop = (async () => {
      for (;;) {
        const batch = await consumer.nextBatch(10_000, 100);
        if (batch === null) return;
        const now = wallMicros();
        for (const record of batch.records) {
          const decoded = record.value === null ? null : eventCodec.decode(record.value);
          if (decoded?.kind !== 'record') continue;
          hops.push({
            atMs: performance.now(),
            toCollectorMs:
              (decoded.value.receivedMicros - decoded.value.qemuTimestampMicros) / 1000,
            toKafkaMs: (now - decoded.value.receivedMicros) / 1000,
          });
        }
      }
    })();
  }

  const sim = spawnStage({ role: 'simulator', dir: sockets, ...simulator });
  await sim.ready;
  const collector = spawnStage({
    role: 'collector',
    flags: {
      brokers,
      topic: events,
      'socket-dir': sockets,
      'spool-dir': spool,
      'http-port': '0',
      'rescan-interval-ms': '200',
      'log-level': 'warn',
    },
  });
  await collector.ready;
  return {
    simulator: sim,
    collector,
    processor,
    exporter,
    processorGroup,
    eventsTopic: events,
    transitionsTopic: transitions,
    observed: () => observed,
    latencies,
    hops,
    close: async () => {
      await sim.stop();
      await collector.stop();
      await processor.stop();
      await exporter.stop();
      await exporterPort.close();
      await hopConsumer?.close();
      await hopLoop.catch(() => undefined);
      await hopPort.close();
      await topics.drop();
      rmSync(sockets, { recursive: true, force: true });
      rmSync(spool, { recursive: true, force: true });
    },
  };
}

interface MaxSpeed {
  /** Events the collector received (the simulator's own count is `sent`). */
  events: number;
  sent: number;
  transitions: number;
  perSecond: number;
  collectorPerSecond: number;
  load: string;
}

async function runMaxSpeed(brokers: string[], admin: BenchAdmin): Promise<MaxSpeed> {
  const pipeline = await startPipeline(
    brokers,
    admin,
    { fleet: MAX_SPEED_FLEET, speed: 'max', maxMigrations: MAX_SPEED_MIGRATIONS },
    false,
  );
  try {
    let start: number | undefined;
    let collectorDone: number | undefined;
    for (;;) {
      const [sim, collector, processor, committed] = await Promise.all([
        pipeline.simulator.query(),
        pipeline.collector.query(),
        pipeline.processor.query(),
        admin.committedTotal(pipeline.processorGroup, pipeline.eventsTopic, PARTITIONS),
      ]);
      const now = performance.now();
      const sent = sim.counters['sent'] ?? 0;
      if (start === undefined && sent > 0) start = now;
      // Once the simulator closed every monitor, what the collector received is the run's input.
      const final = sim.counters['finished'] === 1 && (collector.counters['connected'] ?? 0) === 0;
      const received = collector.counters['received'] ?? 0;
      if (
        final &&
        collectorDone === undefined &&
        (collector.counters['published'] ?? 0) >= received
      )
        collectorDone = now;
      const transitions = processor.counters['transitions'] ?? 0;
      if (
        start !== undefined &&
        collectorDone !== undefined &&
        committed >= received &&
        pipeline.observed() >= transitions
      ) {
        const perSecond = received / ((now - start) / 1000);
        const check = await checkPublishedEqualsAudit(
          admin,
          { events: pipeline.eventsTopic, transitions: pipeline.transitionsTopic },
          async () => (await pipeline.processor.query()).counters['transitions'] ?? 0,
        );
        return {
          events: received,
          sent,
          transitions: check.published,
          perSecond,
          collectorPerSecond: received / ((collectorDone - start) / 1000),
          load: loadText(),
        };
      }
      if (start !== undefined && now - start > 60_000)
        throw new Error(
          `pipeline stalled: ${JSON.stringify([sim.counters, collector.counters, processor.counters, committed, pipeline.observed()])}`,
        );
      await sleep(20);
    }
  } finally {
    await pipeline.close();
  }
}

interface Steady {
  rate: number;
  observations: number;
  excludedSeconds: number;
  total: number[];
  toCollector: number[];
  toKafka: number[];
  load: string;
}

async function runSteady(
  brokers: string[],
  admin: BenchAdmin,
  processorFlags: Record<string, string> = {},
): Promise<Steady> {
  const pipeline = await startPipeline(
    brokers,
    admin,
    { fleet: STEADY_FLEET, speed: 1, durationSeconds: STEADY_SECONDS },
    true,
    processorFlags,
  );
  try {
    let first: { atMs: number; sent: number } | undefined;
    for (;;) {
      const sim = await pipeline.simulator.query();
      const sent = sim.counters['sent'] ?? 0;
      if (first === undefined && sent > 0) first = { atMs: performance.now(), sent };
      if (sim.counters['finished'] === 1) break;
      await sleep(100);
    }
    const end = performance.now();
    const sent = (await pipeline.simulator.query()).counters['sent'] ?? 0;
    // Let the last transitions arrive; they are not needed for the figures but must not be cut.
    await sleep(1000);
    const start = first?.atMs ?? end;
    const excludedMs = Math.max(3000, 0.2 * (end - start));
    const after = <T extends { atMs: number }>(list: T[]): T[] =>
      list.filter((x) => x.atMs >= start + excludedMs && x.atMs <= end);
    const sorted = (values: number[]): number[] => values.sort((a, b) => a - b);
    const kept = after(pipeline.latencies);
    const hops = after(pipeline.hops);
    return {
      rate: (sent - (first?.sent ?? 0)) / ((end - start) / 1000),
      observations: kept.length,
      excludedSeconds: excludedMs / 1000,
      total: sorted(kept.map((l) => l.ms)),
      toCollector: sorted(hops.map((h) => h.toCollectorMs)),
      toKafka: sorted(hops.map((h) => h.toKafkaMs)),
      load: loadText(),
    };
  } finally {
    await pipeline.close();
  }
}

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
/** A shorter processor commit interval for one more latency run per round (its default: 100). */
const SHORT_COMMIT_INTERVAL_MS = Number(process.env['BENCH_E2E_SHORT_COMMIT_INTERVAL_MS'] ?? 10);

export async function runPipelineEndToEnd(): Promise<BenchSection> {
  const brokers = benchBrokers();
  const nodes = benchReplicationFactor() > 1 ? 'three-node cluster' : 'single broker';
  const admin = openBenchAdmin(brokers);
  const maxRuns: MaxSpeed[] = [];
  const steadyRuns: Steady[] = [];
  const shortRuns: Steady[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      maxRuns.push(await runMaxSpeed(brokers, admin));
      steadyRuns.push(await runSteady(brokers, admin));
      shortRuns.push(
        await runSteady(brokers, admin, { 'commit-interval-ms': String(SHORT_COMMIT_INTERVAL_MS) }),
      );
    }
  } finally {
    await admin.close();
  }
  const ms = (v: number): string => `${v.toFixed(2)} ms`;
  const max = maxRuns.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
  // The run with the median p99 is shown in full; the others as ranges.
  const byP99 = [...steadyRuns].sort((a, b) => quantile(a.total, 0.99) - quantile(b.total, 0.99));
  const steady = byP99[(byP99.length - 1) >> 1] as Steady;
  const spread = (values: number[]): string =>
    values.length < 2 ? '' : ` (runs ${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`;
  const msSpread = (values: number[]): string =>
    values.length < 2
      ? ''
      : ` (runs ${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
  const q = (pick: (s: Steady) => number[], runs = steadyRuns, shown = steady): string[] => {
    const p50s = runs.map((r) => quantile(pick(r), 0.5));
    const p99s = runs.map((r) => quantile(pick(r), 0.99));
    return [
      `${ms(quantile(pick(shown), 0.5))}${msSpread(p50s)}`,
      `${ms(quantile(pick(shown), 0.99))}${msSpread(p99s)}`,
      ms(pick(shown).at(-1) ?? Number.NaN),
    ];
  };
  const shortByP99 = [...shortRuns].sort(
    (a, b) => quantile(a.total, 0.99) - quantile(b.total, 0.99),
  );
  const short = shortByP99[(shortByP99.length - 1) >> 1] as Steady;
  const worstP50 = Math.max(...steadyRuns.map((r) => quantile(r.total, 0.5)));
  const worstP99 = Math.max(...steadyRuns.map((r) => quantile(r.total, 0.99)));
  const bestP50 = Math.min(...steadyRuns.map((r) => quantile(r.total, 0.5)));
  const bestP99 = Math.min(...steadyRuns.map((r) => quantile(r.total, 0.99)));
  const verdict = (best: number, worst: number, limit: number): string =>
    worst <= limit ? 'met in every run' : best <= limit ? 'met in some runs only' : 'NOT met';
  return {
    title: `End to end on the ${nodes}: simulator → collector → Kafka → processor → Kafka → exporter (2 cores)`,
    columns: ['measurement', 'value / p50', 'p99', 'max'],
    rows: [
      [
        `events/s end to end at max speed (${fmt(max.events)} events, ${fmt(max.transitions)} transitions, each run's transitions_published_total equal to what audit counts in the topic; loadavg ${maxRuns.map((r) => r.load).join(', ')})`,
        `${fmt(max.perSecond)}${spread(maxRuns.map((r) => r.perSecond))}`,
        '',
        '',
      ],
      [
        '  of which: events/s into Kafka by the collector in the same run',
        `${fmt(max.collectorPerSecond)}${spread(maxRuns.map((r) => r.collectorPerSecond))}`,
        '',
        '',
      ],
      [
        '  simulator events sent that never reached the collector',
        `${fmt(max.sent - max.events)} of ${fmt(max.sent)}`,
        '',
        '',
      ],
      [
        `latency, QEMU timestamp → exporter histogram observation, at ${fmt(steady.rate)} events/s (${fmt(steady.observations)} transitions; loadavg ${steadyRuns.map((r) => r.load).join(', ')})`,
        ...q((r) => r.total),
      ],
      ['  hop: QEMU timestamp → collector read (`receivedMicros`)', ...q((r) => r.toCollector)],
      [
        '  hop: collector read → consumed from the events topic by a bench consumer',
        ...q((r) => r.toKafka),
      ],
      [
        `latency as above with the processor's \`commit-interval-ms\` ${SHORT_COMMIT_INTERVAL_MS} (default 100), at ${fmt(short.rate)} events/s (${fmt(short.observations)} transitions; loadavg ${shortRuns.map((r) => r.load).join(', ')})`,
        ...q((r) => r.total, shortRuns, short),
      ],
    ],
    notes: [
      `Every stage is a separate Node process (simulator, collector, processor; the exporter runs in the bench process through \`startExporter\` with its real transition consumer on the Kafka port), plus Kafka (${nodes === 'single broker' ? 'one JVM' : 'three JVMs, topics with replication factor 3 and min.insync.replicas 2'}): all on the same 2 vCPUs. Topics: events, transitions, state (compacted) with ${PARTITIONS} partitions, dead letters 1. Service defaults throughout (collector \`linger-ms\` 2, \`batch-max-events\` 1000; processor transactions every 100 ms (\`commit-interval-ms\`) or 5,000 records; exporter offsets committed once a second in the background). ${ROUNDS} rounds; the figures are the best max-speed run and the steady run with the median p99, with the range over runs in brackets.`,
      `Max speed: simulator at \`speed: 'max'\`, ${MAX_SPEED_FLEET.vms} VMs × ${MAX_SPEED_FLEET.devicesPerVm} devices, ${fmt(MAX_SPEED_MIGRATIONS)} migrations, starting once the collector negotiated every monitor; the clock runs from the first event sent to the moment the processor group has committed every event (its transactions) and the exporter observed every transition the processor published.`,
      `Latency: simulator at speed 1 (QEMU timestamps are the wall clock at the scheduled time) for ${STEADY_SECONDS} s, ${STEADY_FLEET.vms} VMs × ${STEADY_FLEET.devicesPerVm} devices at ${STEADY_FLEET.migrationsPerVmPerMinute} migrations per VM per minute; the first ${steady.excludedSeconds.toFixed(1)} s (max of 3 s and 20%) are excluded. Each transition with an end timestamp is timed in a wrapper around the exporter's sink, right after prom-client observed it: wall clock now − \`endMicros\` (the QEMU timestamp of the event that closed it). The processor's transactions are read \`read_committed\`, so its commit interval is part of the latency. The simulator stamps the scheduled time, so its timer lateness counts as latency. The hop rows come from a second consumer of the events topic in the bench process (its own fetch wait 100 ms).`,
      `The last row repeats the latency run with the processor committing its transactions every ${SHORT_COMMIT_INTERVAL_MS} ms instead of 100 ms (more transactions, each with its commit round trips), to show how much of the latency is the commit interval. The targets are judged on the defaults.`,
      `Targets: ≥ 40k events/s end to end (${max.perSecond >= 40_000 ? 'met' : 'NOT met'}, ${fmt(max.perSecond)}); p50 ≤ 15 ms (${verdict(bestP50, worstP50, 15)}, ${bestP50.toFixed(1)}–${worstP50.toFixed(1)} ms); p99 ≤ 50 ms (${verdict(bestP99, worstP99, 50)}, ${bestP99.toFixed(1)}–${worstP99.toFixed(1)} ms) at about 1,000 events/s after warm-up.`,
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await runPipelineEndToEnd();
  process.stdout.write(JSON.stringify(section) + '\n');
  setImmediate(() => process.exit(0));
}
