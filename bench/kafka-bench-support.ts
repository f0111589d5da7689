/**
 * Pieces shared by the benchmarks that need a real broker: the broker address, per-run topics
 * (created with a random suffix, deleted afterwards), the stage child processes (bench/
 * stage-process.ts) and their counters over IPC, and CPU/RSS read from /proc.
 */
import { BROKER_TIME_CONFIGS } from '../services/shared/core/topics.ts';
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditTopics } from '../services/cli/audit/audit-topics.ts';
import { partitionFor } from '../services/collector/core/partitioner.ts';
import { DEFAULT_PREPARE_TIMEOUT_SECONDS } from '../services/shared/core/transition-engine.ts';
import type { KafkaSecurity } from '../services/shared/kafka/core/options.ts';
import { createKafkaPort } from '../services/shared/kafka/io/client.ts';
import type {
  KafkaPort,
  TopicPartition,
  TopicPartitionOffset,
} from '../services/shared/kafka/io/port.ts';
import { createLogger, type Logger } from '../services/shared/io/logger.ts';
import type { EncodedEvent } from './fleet-events.ts';
import type { StageReport, StageRequest, StageSpec } from './stage-process.ts';

const STAGE_SCRIPT = fileURLToPath(new URL('./stage-process.ts', import.meta.url));

export function benchBrokers(): string[] {
  const value = process.env['KAFKA_BROKERS']?.trim() ?? '';
  if (value === '') throw new Error('KAFKA_BROKERS is not set (bench/main.ts starts a broker)');
  return value.split(',').map((b) => b.trim());
}

/** Replication factor of bench topics: 3 on the three-node cluster (`BENCH_KAFKA_NODES`). */
export function benchReplicationFactor(): number {
  return Number(process.env['BENCH_KAFKA_NODES'] ?? 1) >= 3 ? 3 : 1;
}

export function quietLogger(): Logger {
  return createLogger({
    level: 'warn',
    write: (line) => process.stderr.write(line + '\n'),
  });
}

export function benchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `vfio-bench-${prefix}-`));
}

/** The 1-minute load average with the machine's core count, e.g. `1.42 on 2 cores`. */
export function loadText(): string {
  return `${(loadavg()[0] ?? 0).toFixed(2)}`;
}

export interface TopicRequest {
  prefix: string;
  partitions: number;
  compact?: boolean;
  /** Broker time (`message.timestamp.type=LogAppendTime`): the processor's events topic. */
  brokerTime?: boolean;
}

/**
 * The bench's own instruments on the cluster (topics, committed and end offsets, pre-filling),
 * through the Kafka port every stage uses.
 */
export interface BenchAdmin {
  readonly port: KafkaPort;
  /** Creates `bench-<prefix>-<uuid>` topics; `drop()` deletes them all. */
  createTopics(
    requests: readonly TopicRequest[],
  ): Promise<{ names: string[]; drop: () => Promise<void> }>;
  /** Sum over the topic's partitions of the group's committed offsets (asked for as stable). */
  committedTotal(groupId: string, topic: string, partitions: number): Promise<number>;
  close(): Promise<void>;
}

const partitionsOf = (topic: string, partitions: number): TopicPartition[] =>
  Array.from({ length: partitions }, (_, partition) => ({ topic, partition }));

const sumOffsets = (offsets: readonly TopicPartitionOffset[]): number =>
  offsets.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);

/** `security`: the admin's settings on a secured broker (the kafka-security entry). */
export function openBenchAdmin(brokers: readonly string[], security?: KafkaSecurity): BenchAdmin {
  const port = createKafkaPort({
    brokers,
    clientId: 'bench-admin',
    logger: quietLogger(),
    ...(security === undefined ? {} : { security }),
  });
  const replicationFactor = benchReplicationFactor();
  return {
    port,
    createTopics: async (requests) => {
      const names = requests.map((r) => `bench-${r.prefix}-${randomUUID()}`);
      await port.createTopics(
        requests.map((r, i) => ({
          name: names[i] as string,
          numPartitions: r.partitions,
          replicationFactor,
          configs: {
            ...(r.compact === true ? { 'cleanup.policy': 'compact' } : {}),
            ...(r.brokerTime === true ? BROKER_TIME_CONFIGS : {}),
            ...(replicationFactor > 1 ? { 'min.insync.replicas': '2' } : {}),
          },
        })),
      );
      return {
        names,
        drop: async () => {
          try {
            await port.deleteTopics(names);
          } catch {
            // A topic left behind on the bench broker is harmless; its directory is per run.
          }
        },
      };
    },
    committedTotal: async (groupId, topic, partitions) =>
      sumOffsets(await port.committedOffsets(groupId, partitionsOf(topic, partitions))),
    close: () => port.close(),
  };
}

/** Writes pre-encoded event records through the port's producer, 10,000 per call. */
export async function prefillEvents(
  admin: BenchAdmin,
  topic: string,
  partitions: number,
  records: readonly EncodedEvent[],
): Promise<void> {
  const producer = await admin.port.producer();
  try {
    for (let i = 0; i < records.length; i += 10_000) {
      const result = await producer.send(
        records.slice(i, i + 10_000).map((r) => ({
          topic,
          partition: partitionFor(r.key, partitions),
          key: Buffer.from(r.key),
          value: r.value,
        })),
      );
      if (result.refused.length > 0)
        throw new Error(`pre-filling ${topic}: ${result.refused.length} records refused`);
    }
  } finally {
    await producer.close();
  }
}

/** The topics and group a processor stage of a bench works on. */
export interface ProcessorBenchTopics {
  readonly brokers: readonly string[];
  readonly events: string;
  readonly transitions: string;
  readonly state: string;
  readonly deadLetter: string;
  readonly group: string;
}

/** The flags of a bench's processor stage: its topics and group, an ephemeral port, quiet logs. */
export function processorStageFlags(
  topics: ProcessorBenchTopics,
): Record<string, string | string[]> {
  return {
    brokers: [...topics.brokers],
    'events-topic': topics.events,
    'transitions-topic': topics.transitions,
    'state-topic': topics.state,
    'dead-letter-topic': topics.deadLetter,
    'group-id': topics.group,
    'http-port': '0',
    'log-level': 'warn',
  };
}

/** A stage running in its own Node process, answering `query` with its counters. */
export interface StageChild {
  child: ChildProcess;
  pid: number;
  /** Resolves when the stage reported `ready`. */
  ready: Promise<StageReport>;
  query(): Promise<StageReport>;
  /** Waits for the next unsolicited report of this kind (e.g. a floor's `result`). */
  next(kind: StageReport['kind']): Promise<StageReport>;
  stop(): Promise<void>;
}

export function spawnStage(spec: StageSpec): StageChild {
  const child = fork(STAGE_SCRIPT, [JSON.stringify(spec)], {
    // BENCH_STAGE_NODE_FLAGS: extra Node flags for the stage (e.g. --trace-gc, --cpu-prof).
    execArgv: [
      ...(process.env['BENCH_STAGE_NODE_FLAGS'] ?? '').split(' ').filter(Boolean),
      '--import',
      'tsx',
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  if (child.pid === undefined) throw new Error(`could not start stage ${spec.role}`);
  const pid = child.pid;
  const waiters: { kind: StageReport['kind']; resolve: (r: StageReport) => void }[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('message', (message: StageReport) => {
    const i = waiters.findIndex((w) => w.kind === message.kind);
    if (i !== -1) waiters.splice(i, 1)[0]?.resolve(message);
  });
  const next = (kind: StageReport['kind']): Promise<StageReport> =>
    new Promise((resolve, reject) => {
      waiters.push({ kind, resolve });
      void exited.then(() =>
        reject(new Error(`stage ${spec.role} exited while waiting for ${kind}`)),
      );
    });
  const send = (request: StageRequest): void => {
    child.send(request);
  };
  return {
    child,
    pid,
    ready: next('ready'),
    next,
    query: () => {
      const reply = next('stats');
      send({ kind: 'query' });
      return reply;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      send({ kind: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `query` until `done` holds; returns the report that satisfied it. */
export async function pollUntil(
  stage: StageChild,
  done: (r: StageReport) => boolean,
  options: { intervalMs?: number; timeoutMs?: number; onReport?: (r: StageReport) => void } = {},
): Promise<StageReport> {
  const deadline = performance.now() + (options.timeoutMs ?? 120_000);
  for (;;) {
    const report = await stage.query();
    options.onReport?.(report);
    if (done(report)) return report;
    if (performance.now() > deadline)
      throw new Error(`stage ${stage.pid}: condition not met; last ${JSON.stringify(report)}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
}

export interface ProcSample {
  atMs: number;
  /** utime + stime, seconds. */
  cpuSeconds: number;
  rssBytes: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time and RSS of a process from /proc (Linux). */
export async function sampleProcess(pid: number): Promise<ProcSample> {
  const [stat, status] = await Promise.all([
    readFile(`/proc/${pid}/stat`, 'utf8'),
    readFile(`/proc/${pid}/status`, 'utf8'),
  ]);
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return {
    atMs: performance.now(),
    cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND,
    rssBytes: rssKb * 1024,
  };
}

/** CPU use between two samples, as a percentage of one core. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  return ((b.cpuSeconds - a.cpuSeconds) / ((b.atMs - a.atMs) / 1000)) * 100;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en');
}

export function ratioText(value: number): string {
  return `${value.toFixed(2)}x`;
}

/**
 * A bench correctness check, not a timing (issue 18, "Unknown commit outcomes"): after a run,
 * the processor's `vfio_processor_transitions_published_total` must equal the transitions `audit`
 * counts in the topic (read_committed), and the audit must be clean. Prints both counts; throws
 * when they differ, so the bench fails loudly instead of printing figures of a wrong run.
 * `published` is read after the audit, when the processor has nothing left to count.
 */
export async function checkPublishedEqualsAudit(
  admin: BenchAdmin,
  topics: { events: string; transitions: string },
  published: () => Promise<number>,
): Promise<{ published: number; audited: number }> {
  const report = await auditTopics({
    port: admin.port,
    eventsTopic: topics.events,
    transitionsTopic: topics.transitions,
    prepareTimeoutSeconds: DEFAULT_PREPARE_TIMEOUT_SECONDS,
  });
  const counted = await published();
  const audited = report.transitions.inTopic;
  const t = report.transitions;
  process.stderr.write(
    `bench: transitions_published_total ${counted}, audit counts ${audited} in ${topics.transitions} (recomputed ${t.recomputed}, clean: ${report.clean})\n`,
  );
  if (counted !== audited || !report.clean) {
    throw new Error(
      `bench correctness check failed: the processor counted ${counted} transitions published, audit counts ${audited} in ${topics.transitions} ` +
        `(recomputed ${t.recomputed}; missing ${t.missing.length}, duplicated ${t.duplicated.length}, mismatched ${t.mismatched.length}, unexpected ${t.unexpected.length}, undecodable ${t.undecodable.length})`,
    );
  }
  return { published: counted, audited };
}
