/**
 * What TLS and SASL cost (issue 17): the collector's publish path (QMP → spool → idempotent
 * producer) and the processor's transactional path (read_committed consume → transitions and
 * state in a transaction → offsets) on a PLAINTEXT broker and on a SASL_SSL one (SCRAM-SHA-512,
 * `infra/kafka/start.sh --secure`), alternating in rounds in the same run, so that both sides see
 * the same periods of this shared machine. The secured broker has no PLAINTEXT listener, so
 * bench/main.ts starts two single-node brokers with the same heap (`KAFKA_BROKERS`, plaintext, and
 * `BENCH_SECURE_KAFKA_DIR`, secured); only one of them is working at a time. The stages run as the
 * secured broker's super user (`admin`): ACLs are not what is measured.
 *
 * Reported: events/s per side (median over the rounds) and the median of the per-round ratios
 * PLAINTEXT / SASL_SSL, which is what the 15 % target is about.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseKafkaSecurityEnv } from '../services/shared/kafka/core/options.ts';
import { runCollector, type Throughput } from './collector-throughput.ts';
import { encodedFleetRecords } from './fleet-events.ts';
import type { BenchSection } from './harness.ts';
import {
  benchBrokers,
  fmt,
  openBenchAdmin,
  processorStageFlags,
  prefillEvents,
  type BenchAdmin,
} from './kafka-bench-support.ts';
import { drain, type Drain } from './processor-throughput.ts';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const PROCESSOR_VMS = 1000;
const PROCESSOR_EVENTS_PER_VM = Number(process.env['BENCH_PROCESSOR_EVENTS_PER_VM'] ?? 200);
const PROCESSOR_DEVICES_PER_VM = 10;
/** The processor bench's partition count (its `drain` sums committed offsets over six). */
const PARTITIONS = 6;
const COLLECTOR_TOTAL =
  Number(process.env['BENCH_COLLECTOR_VMS'] ?? 100) *
  Number(process.env['BENCH_COLLECTOR_EVENTS_PER_VM'] ?? 2000);

type Side = 'PLAINTEXT' | 'SASL_SSL';

interface Target {
  side: Side;
  brokers: string[];
  /** `--kafka-…` flags of the stages (none on PLAINTEXT). */
  flags: Record<string, string>;
  admin: BenchAdmin;
  /** The pre-filled events topic the processor drains. */
  events?: string;
}

/** STATE_DIR/tls/admin.env of the secured broker: its bootstrap list and the super user's settings. */
function secureTarget(dir: string): Omit<Target, 'admin'> & { env: Record<string, string> } {
  const env: Record<string, string> = {};
  for (const line of readFileSync(join(dir, 'tls', 'admin.env'), 'utf8').split('\n')) {
    const match = /^(KAFKA_[A-Z_]+)=(.*)$/.exec(line);
    if (match !== null) env[match[1] as string] = (match[2] as string).replace(/^"(.*)"$/, '$1');
  }
  const flags: Record<string, string> = {};
  for (const [key, value] of Object.entries(env))
    if (key !== 'KAFKA_BROKERS') flags[key.toLowerCase().replaceAll('_', '-')] = value;
  return {
    side: 'SASL_SSL',
    brokers: (env['KAFKA_BROKERS'] ?? '').split(','),
    flags,
    env,
  };
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

async function collectorRound(target: Target): Promise<Throughput> {
  const topics = await target.admin.createTopics([
    { prefix: 'security-collector', partitions: PARTITIONS },
  ]);
  try {
    return await runCollector(target.brokers, topics.names[0] as string, target.flags);
  } finally {
    await topics.drop();
  }
}

async function processorRound(target: Target, total: number): Promise<Drain> {
  const out = await target.admin.createTopics([
    { prefix: 'security-transitions', partitions: PARTITIONS },
    { prefix: 'security-state', partitions: PARTITIONS, compact: true },
    { prefix: 'security-dlq', partitions: 1 },
  ]);
  const [transitions, state, dlq] = out.names as [string, string, string];
  const group = `bench-processor-${randomUUID()}`;
  try {
    return await drain(target.admin, target.events as string, total, group, {
      role: 'processor',
      flags: {
        ...processorStageFlags({
          brokers: target.brokers,
          events: target.events as string,
          transitions,
          state,
          deadLetter: dlq,
          group,
        }),
        ...target.flags,
      },
    });
  } finally {
    await out.drop();
  }
}

export async function runKafkaSecurity(): Promise<BenchSection> {
  const dir = process.env['BENCH_SECURE_KAFKA_DIR'] ?? '';
  if (dir === '') throw new Error('BENCH_SECURE_KAFKA_DIR is not set (bench/main.ts starts one)');
  const plainBrokers = benchBrokers();
  const secure = secureTarget(dir);
  const targets: Target[] = [
    { side: 'PLAINTEXT', brokers: plainBrokers, flags: {}, admin: openBenchAdmin(plainBrokers) },
    { ...secure, admin: openBenchAdmin(secure.brokers, parseKafkaSecurityEnv(secure.env)) },
  ];
  const total = PROCESSOR_VMS * PROCESSOR_EVENTS_PER_VM;
  const drops: (() => Promise<void>)[] = [];
  const collector: Record<Side, Throughput[]> = { PLAINTEXT: [], SASL_SSL: [] };
  const processor: Record<Side, Drain[]> = { PLAINTEXT: [], SASL_SSL: [] };
  try {
    const records = encodedFleetRecords(
      'bench-host',
      PROCESSOR_VMS,
      PROCESSOR_EVENTS_PER_VM,
      PROCESSOR_DEVICES_PER_VM,
    );
    for (const target of targets) {
      const events = await target.admin.createTopics([
        { prefix: 'security-events', partitions: PARTITIONS, brokerTime: true },
      ]);
      drops.push(events.drop);
      target.events = events.names[0] as string;
      await prefillEvents(target.admin, target.events, PARTITIONS, records);
    }
    for (let round = 0; round < ROUNDS; round++) {
      // Which side goes first alternates too: neither always gets the quieter half of a round.
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        process.stderr.write(`kafka-security: round ${round + 1} collector ${target.side}\n`);
        collector[target.side].push(await collectorRound(target));
      }
      for (const target of order) {
        process.stderr.write(`kafka-security: round ${round + 1} processor ${target.side}\n`);
        processor[target.side].push(await processorRound(target, total));
      }
    }
  } finally {
    for (const drop of drops) await drop();
    for (const target of targets) await target.admin.close();
  }
  const ratios = (list: Record<Side, { perSecond: number }[]>): number[] =>
    list.PLAINTEXT.map(
      (p, i) => p.perSecond / (list.SASL_SSL[i] as { perSecond: number }).perSecond,
    );
  const row = (
    name: string,
    list: Record<Side, { perSecond: number; load: string; cpuPercent: number }[]>,
  ): string[] => {
    const r = ratios(list);
    const slower = (median(r) - 1) * 100;
    return [
      name,
      fmt(median(list.PLAINTEXT.map((d) => d.perSecond))),
      fmt(median(list.SASL_SSL.map((d) => d.perSecond))),
      list.PLAINTEXT.map(
        (p, i) =>
          `${fmt(p.perSecond)} / ${fmt((list.SASL_SSL[i] as { perSecond: number }).perSecond)} (load ${p.load})`,
      ).join(', '),
      `${Math.round(median(list.PLAINTEXT.map((d) => d.cpuPercent)))}% / ${Math.round(median(list.SASL_SSL.map((d) => d.cpuPercent)))}%`,
      `${median(r).toFixed(2)}x (${slower >= 0 ? `${slower.toFixed(1)} % slower` : `${(-slower).toFixed(1)} % faster`})`,
    ];
  };
  return {
    title: 'Kafka security: SASL_SSL beside PLAINTEXT (issue 17)',
    columns: [
      'path',
      'PLAINTEXT events/s (median)',
      'SASL_SSL events/s (median)',
      'rounds: PLAINTEXT / SASL_SSL (loadavg 1 min)',
      'stage CPU PLAINTEXT / SASL_SSL',
      'PLAINTEXT/SASL_SSL (median of rounds)',
    ],
    rows: [row('collector publish', collector), row('processor transactional', processor)],
    notes: [
      `${ROUNDS} rounds; in each, the collector then the processor on both brokers, the side that goes first alternating by round. Collector: ${fmt(COLLECTOR_TOTAL)} events per run from 100 feeder VMs (as the collector entry), fresh 6-partition topic. Processor: drains ${fmt(total)} pre-filled events (${PROCESSOR_VMS} VMs × ${PROCESSOR_EVENTS_PER_VM}, ${PROCESSOR_DEVICES_PER_VM} devices each) with exactly-once transactions, fresh output topics and group, rate from its first record to the last committed offset (as the processor entry).`,
      'Two single-node brokers from `infra/kafka/start.sh` on the same 2 cores, same heap: one plaintext, one `--secure` (SASL_SSL listener, SCRAM-SHA-512, TLS 1.3 with the CA start.sh made; the stages log in as its super user `admin`, so no ACL lookup beyond the authorizer’s super-user check). Only one broker works at a time; the idle one costs little.',
      'The absolute figures are from a loaded, shared machine (see the load per round): the ratio of each round, taken between runs seconds apart, is the figure to read. Target: SASL_SSL at most 15 % slower (ratio ≤ 1.15).',
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await runKafkaSecurity();
  process.stdout.write(JSON.stringify(section) + '\n');
}
