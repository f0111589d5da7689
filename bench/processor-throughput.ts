/**
 * Processor throughput against a real broker: events/s to drain a pre-filled events topic, at two
 * sizes (200,000 events, and 1,000,000 for steady state, issue 13), each side by side with what
 * reads the same topic in its own process:
 * - floor: a raw @platformatic/kafka consume → produce loop without transactions, producing as
 *   many pre-encoded transition records as the processor published, offsets committed per batch;
 * - the same raw loop that only counts and commits (the fetch ceiling, for scale);
 * - reference: Kafka Streams (bench/kafka-streams-reference.ts), exactly-once v2 with a RocksDB
 *   store, computing the same records.
 */
import { randomUUID } from 'node:crypto';
import type { BenchSection } from './harness.ts';
import {
  benchBrokers,
  checkPublishedEqualsAudit,
  cpuPercent,
  fmt,
  loadText,
  openBenchAdmin,
  processorStageFlags,
  prefillEvents,
  ratioText,
  sampleProcess,
  sleep,
  spawnStage,
  type BenchAdmin,
  type StageChild,
} from './kafka-bench-support.ts';
import { runKafkaStreamsReference, type StreamsDrain } from './kafka-streams-reference.ts';
import { encodedFleetRecords } from './fleet-events.ts';
import type { StageSpec } from './stage-process.ts';

const VMS = Number(process.env['BENCH_PROCESSOR_VMS'] ?? 1000);
const DEVICES_PER_VM = 10;
/** Events per VM of each entry; `BENCH_PROCESSOR_EVENTS_PER_VM` (one size) overrides. */
const SIZES_PER_VM = (process.env['BENCH_PROCESSOR_EVENTS_PER_VM'] ?? '200,1000')
  .split(',')
  .map(Number);
const PARTITIONS = 6;
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const DRAIN_TIMEOUT_MS = 600_000;
/** The commit the services were at (`BENCH_TREE` when the bench runs from a snapshot). */
const TREE = process.env['BENCH_TREE'] ?? 'the working tree';

export interface Drain {
  /** Events/s from the first record consumed to the last offset committed. */
  perSecond: number;
  /** Seconds from process start to the last offset committed (group join included). */
  wallSeconds: number;
  cpuPercent: number;
  counters: Record<string, number>;
  load: string;
}

/** Runs one consumer stage until its group committed the whole topic. */
export async function drain(
  admin: BenchAdmin,
  topic: string,
  total: number,
  groupId: string,
  spec: StageSpec,
): Promise<Drain> {
  const spawned = performance.now();
  const stage: StageChild = spawnStage(spec);
  try {
    await stage.ready;
    const before = await sampleProcess(stage.pid);
    let first: { at: number; count: number } | undefined;
    let counters: Record<string, number> = {};
    for (;;) {
      const [report, committed] = await Promise.all([
        stage.query(),
        admin.committedTotal(groupId, topic, PARTITIONS),
      ]);
      const now = performance.now();
      counters = report.counters;
      const consumed = counters['consumed'] ?? 0;
      if (first === undefined && consumed > 0) {
        // The stage's own stamp of its first record, on this process's clock.
        const stamped = counters['firstAtEpochMs'] ?? 0;
        first =
          stamped > 0
            ? { at: stamped - performance.timeOrigin, count: 0 }
            : { at: now, count: consumed };
      }
      if (committed >= total && first !== undefined) {
        const after = await sampleProcess(stage.pid);
        // The stage counts a transaction right after its commit answered, which can be a moment
        // after its offsets show: the counters are final once two reads 100 ms apart agree.
        let final = (await stage.query()).counters;
        for (;;) {
          await sleep(100);
          const again = (await stage.query()).counters;
          if (JSON.stringify(again) === JSON.stringify(final)) break;
          final = again;
        }
        return {
          perSecond: (total - first.count) / ((now - first.at) / 1000),
          wallSeconds: (now - spawned) / 1000,
          cpuPercent: cpuPercent(before, after),
          counters: final,
          load: loadText(),
        };
      }
      if (now - spawned > DRAIN_TIMEOUT_MS)
        throw new Error(`drain stalled at ${committed} of ${total}: ${JSON.stringify(counters)}`);
      await sleep(20);
    }
  } finally {
    await stage.stop();
  }
}

interface SizeResult {
  total: number;
  processor: Drain[];
  floor: Drain[];
  counting: Drain[];
  streams: (StreamsDrain & { load: string })[];
  /** Transition records per run: Kafka Streams' outputs, decoded by our codec. */
  transitions: number;
  processorFailure?: string;
  /** Per processor run: its transitions_published_total and what audit counted in the topic. */
  audited: { published: number; audited: number }[];
}

async function runSize(brokers: string[], admin: BenchAdmin, perVm: number): Promise<SizeResult> {
  const total = VMS * perVm;
  const topics = await admin.createTopics([
    { prefix: 'processor-events', partitions: PARTITIONS, brokerTime: true },
  ]);
  const events = topics.names[0] as string;
  const result: SizeResult = {
    total,
    processor: [],
    floor: [],
    counting: [],
    streams: [],
    transitions: 0,
    audited: [],
  };
  try {
    await prefillEvents(
      admin,
      events,
      PARTITIONS,
      encodedFleetRecords('bench-host', VMS, perVm, DEVICES_PER_VM),
    );
    for (let round = 0; round < ROUNDS; round++) {
      const out = await admin.createTopics([
        { prefix: 'processor-transitions', partitions: PARTITIONS },
        { prefix: 'processor-state', partitions: PARTITIONS, compact: true },
        { prefix: 'processor-dlq', partitions: 1 },
        { prefix: 'floor-transitions', partitions: PARTITIONS },
        { prefix: 'streams-transitions', partitions: PARTITIONS },
      ]);
      const [transitions, state, dlq, floorTransitions, streamsTransitions] = out.names as [
        string,
        string,
        string,
        string,
        string,
      ];
      try {
        // Kafka Streams first: its output count (decoded by our codec) is what the floor produces.
        const streams = await runKafkaStreamsReference({
          brokers,
          admin,
          eventsTopic: events,
          transitionsTopic: streamsTransitions,
          partitions: PARTITIONS,
          total,
          timeoutMs: DRAIN_TIMEOUT_MS,
        });
        result.streams.push({ ...streams, load: loadText() });
        result.transitions = streams.decoded;
        const processorGroup = `bench-processor-${randomUUID()}`;
        let drained: Drain | undefined;
        try {
          drained = await drain(admin, events, total, processorGroup, {
            role: 'processor',
            flags: processorStageFlags({
              brokers,
              events,
              transitions,
              state,
              deadLetter: dlq,
              group: processorGroup,
            }),
          });
        } catch (error) {
          // The processor is being rewritten; a tree where it cannot run still gets its floors.
          result.processorFailure = error instanceof Error ? error.message : String(error);
        }
        if (drained !== undefined) {
          // Outside the catch above: a count that disagrees with the topic fails the bench.
          const counted = drained.counters['transitions'] ?? 0;
          result.audited.push(
            await checkPublishedEqualsAudit(admin, { events, transitions }, () =>
              Promise.resolve(counted),
            ),
          );
          result.processor.push(drained);
        }
        const floorGroup = `bench-floor-${randomUUID()}`;
        result.floor.push(
          await drain(admin, events, total, floorGroup, {
            role: 'floor-consume',
            brokers,
            topic: events,
            groupId: floorGroup,
            transitionsTopic: floorTransitions,
            transitionsPerEvent: result.transitions / total,
          }),
        );
        const countingGroup = `bench-floor-${randomUUID()}`;
        result.counting.push(
          await drain(admin, events, total, countingGroup, {
            role: 'floor-consume',
            brokers,
            topic: events,
            groupId: countingGroup,
          }),
        );
      } finally {
        await out.drop();
      }
    }
  } finally {
    await topics.drop();
  }
  return result;
}

const best = <T extends { perSecond: number }>(list: readonly T[]): T =>
  list.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
const range = (list: readonly { perSecond: number }[]): string => {
  const rates = list.map((d) => d.perSecond);
  return `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`;
};

export async function runProcessorThroughput(): Promise<BenchSection> {
  const brokers = benchBrokers();
  const admin = openBenchAdmin(brokers);
  const results: SizeResult[] = [];
  try {
    for (const perVm of SIZES_PER_VM) results.push(await runSize(brokers, admin, perVm));
  } finally {
    await admin.close();
  }
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const r of results) {
    const processor = r.processor.length > 0 ? best(r.processor) : undefined;
    const floor = best(r.floor);
    const counting = best(r.counting);
    const streams = best(r.streams);
    const vsFloor = processor === undefined ? Number.NaN : processor.perSecond / floor.perSecond;
    const vsStreams =
      processor === undefined ? Number.NaN : processor.perSecond / streams.perSecond;
    const loads = (list: readonly { load: string }[]): string => list.map((d) => d.load).join(', ');
    const size = `${fmt(r.total)} events`;
    rows.push(
      processor === undefined
        ? [
            `**${size}** — processor (\`services/processor\` at ${TREE}): did not run`,
            '—',
            '',
            '',
            '',
            '',
            (r.processorFailure ?? '').split('\n')[0]?.slice(0, 160) ?? '',
          ]
        : [
            `**${size}** — processor (\`services/processor\` at ${TREE}): ${fmt(processor.counters['transitions'] ?? 0)} transitions`,
            fmt(processor.perSecond),
            range(r.processor),
            `${processor.wallSeconds.toFixed(1)} s`,
            `${Math.round(processor.cpuPercent)}%`,
            loads(r.processor),
            `${ratioText(vsFloor)} of floor, ${ratioText(vsStreams)} of Kafka Streams`,
          ],
      [
        `${size} — floor: raw @platformatic/kafka consume → produce ${fmt(floor.counters['produced'] ?? 0)} records → commit, no transactions`,
        fmt(floor.perSecond),
        range(r.floor),
        `${floor.wallSeconds.toFixed(1)} s`,
        `${Math.round(floor.cpuPercent)}%`,
        loads(r.floor),
        '1.00x',
      ],
      [
        `${size} — raw consume → commit only (fetch ceiling)`,
        fmt(counting.perSecond),
        range(r.counting),
        `${counting.wallSeconds.toFixed(1)} s`,
        `${Math.round(counting.cpuPercent)}%`,
        loads(r.counting),
        ratioText(counting.perSecond / floor.perSecond),
      ],
      [
        `${size} — reference: Kafka Streams 4.1.1, exactly_once_v2, RocksDB; ${fmt(streams.outputs)} outputs (${fmt(streams.decoded)} decoded by our codec)`,
        fmt(streams.perSecond),
        range(r.streams),
        `${streams.wallSeconds.toFixed(1)} s (first record at ${streams.startSeconds.toFixed(1)} s); ${fmt(streams.perSecondWithStart)} events/s with start-up`,
        `${Math.round(streams.cpuPercent)}%`,
        loads(r.streams),
        ratioText(streams.perSecond / floor.perSecond),
      ],
    );
    verdicts.push(
      processor === undefined
        ? `${size}: processor targets (≥ 1.0x of Kafka Streams exactly_once_v2, ≥ 0.6x of the floor) not measured: the processor did not run.`
        : `${size}: processor ≥ 1.0x of Kafka Streams exactly_once_v2 in the same run (${vsStreams >= 1 ? 'met' : 'NOT met'}, ${ratioText(vsStreams)}); ≥ 0.6x of the non-transactional floor (${vsFloor >= 0.6 ? 'met' : 'NOT met'}, ${ratioText(vsFloor)}) (issue 18).`,
    );
  }
  return {
    title: 'Processor throughput, events topic → transitions (real broker, 2 cores shared with it)',
    columns: [
      'consumer',
      'events/s to drain (best)',
      'range over runs',
      'wall incl. start + join',
      'process CPU',
      'loadavg (1 min) per run',
      'ratio',
    ],
    rows,
    notes: [
      `Events topics pre-filled with ${SIZES_PER_VM.map((n) => fmt(n * VMS)).join(' and ')} records (${fmt(VMS)} VMs × ${DEVICES_PER_VM} devices = ${fmt(VMS * DEVICES_PER_VM)} devices; 90% VFIO_MIGRATION, ${PARTITIONS} partitions), read from the beginning by each consumer in turn with its own group, each in its own process; ${ROUNDS} rounds per size. Rate: from the first record consumed (Kafka Streams: the first record its topology processed; it runs first in each round) to the moment the group's committed offsets, asked for as stable, cover the topic (polled every 20 ms), so every consumer is timed until its last batch is published and committed.`,
      'The floor does the same Kafka work as the processor without a framework and without transactions: it reads the same records, produces as many pre-encoded transition records as the Kafka Streams reference wrote for the same input (acks -1, idempotent; the processor publishes the same records), and commits the offsets after each produce. The processor additionally decodes, runs the engine, and commits each batch in a Kafka transaction (records + offsets).',
      'Kafka Streams: one JVM (heap 256–768 MB), one stream thread, 6 tasks; same topic, same computation (prepare and dwell records, Avro single-object encoded), exactly_once_v2 with the default commit interval (100 ms), a persistent RocksDB store keyed by device with its changelog topic. Its wall time includes JVM start, group join and RocksDB open; its steady rate starts at its first processed record.',
      `Correctness (each processor run, checked after its drain; the bench fails if they differ): transitions_published_total / transitions audit counts in the topic: ${results
        .map(
          (r) =>
            `${fmt(r.total)} events: ${r.audited.map((a) => `${fmt(a.published)} / ${fmt(a.audited)}`).join(', ') || 'no run'}`,
        )
        .join('; ')}.`,
      `Targets: ${verdicts.join(' ')}`,
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await runProcessorThroughput();
  process.stdout.write(JSON.stringify(section) + '\n');
  setImmediate(() => process.exit(0));
}
