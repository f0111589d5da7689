/**
 * The fault matrix's harness (Jepsen's shape: faults while data flows, then an exact count). One
 * three-node cluster per test file (`startFaultCluster`), healed between scenarios; per scenario
 * fresh topics (RF 3, min ISR 2), an in-process seeded simulated fleet, and the stages as child
 * processes of the real CLI (`bin/vfio-telemetry.js collect|process|export`) so a scenario can
 * SIGKILL or SIGSTOP them by PID. After the fault the pipeline drains and `verifyPipeline` checks:
 *
 *  (a) the events topic holds every event the collector accepted: per session 1..n without gap
 *      (records Kafka refused for good, listed in the spool's rejected.jsonl, aside); when the
 *      collector was not killed, as many distinct (session, sequence) as the fleet sent;
 *  (b) `auditTopics` is clean: the read_committed transitions topic equals the recomputation;
 *  (c) the exporter observed every transition of the topic: its records and prepare outcomes
 *      equal the topic's count.
 *
 * On failure the scenario prints where everything is (its log directory, kept, with the stages'
 * stderr and the brokers' logs copied in; the audit report; each stage's counters).
 *
 * `VFIO_FAULT_CLI=/path/to/bin/vfio-telemetry.js` runs the stages from another checkout.
 */
import { BROKER_TIME_CONFIGS } from '../../../services/shared/core/topics.ts';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync } from 'node:fs';
import { copyFile, cp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';
import { auditTopics, type AuditReport } from '../../../services/cli/audit/audit-topics.ts';
import type { FleetConfig } from '../../../services/simulator/core/fleet-config.ts';
import { startSimulator, type Simulator } from '../../../services/simulator/io/simulator.ts';
import { createEventCodec, createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import { createKafkaPort } from '../../../services/shared/kafka/io/client.ts';
import type {
  KafkaPort,
  TopicPartition,
  TransactionDescription,
} from '../../../services/shared/kafka/io/port.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startCluster, type KafkaCluster } from '../../helpers/kafka-cluster.ts';
import {
  fetchMetricsText,
  metricValue,
  parseMetricsText,
  seriesKey,
  type Sample,
} from '../../helpers/metrics-text.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { checkSequences, type SequenceCheck } from './sequence-gaps.ts';

const CLI =
  process.env['VFIO_FAULT_CLI'] ??
  fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));
export const PARTITIONS = 3;
export const PREPARE_TIMEOUT_SECONDS = 10;
/** The broker's minimum (`group.min.session.timeout.ms`): a hung processor loses its partitions fast. */
export const PROCESSOR_SESSION_TIMEOUT_MS = 6000;
export const TRANSACTION_TIMEOUT_MS = 5000;
const HEAL_TIMEOUT_MS = 180_000;
const DRAIN_TIMEOUT_MS = 180_000;
const FAILURE_LOG_LINES = 40;
/** How long a SIGSTOPped process's last requests get to reach the broker before it is asked. */
const STOPPED_SETTLE_MS = 500;
const verbose = process.env['VFIO_TEST_LOG'] === '1';

/** Deterministic pseudo-random numbers in [0, 1) from a seed (mulberry32), so a failure reproduces. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultCluster {
  readonly cluster: KafkaCluster;
  readonly brokers: readonly string[];
  /** The test's own client: topics, reading back, audit. */
  readonly port: KafkaPort;
}

/** The file's cluster: three nodes, stopped after `t` (the file-level test). */
export async function startFaultCluster(t: TestContext): Promise<FaultCluster> {
  const cluster = await startCluster(t, { nodes: 3 });
  const brokers = cluster.brokers.split(',');
  const port = createKafkaPort({
    brokers,
    clientId: 'vfio-fault-test',
    logger: createLogger({ level: verbose ? 'warn' : 'error' }),
    retries: 10,
  });
  t.after(() => port.close());
  return { cluster, brokers, port };
}

/** Every partition of the cluster (internal topics included) whose ISR lacks a node, as text. */
async function partitionsOutOfSync(brokers: readonly string[]): Promise<string[]> {
  const admin = new Admin({
    clientId: 'vfio-fault-test-isr',
    bootstrapBrokers: [...brokers],
    connectTimeout: 1000,
    requestTimeout: 5000,
    retries: 1,
  });
  try {
    const topics = await admin.listTopics({ includeInternals: true });
    const metadata = await admin.metadata({ topics, forceUpdate: true });
    const out: string[] = [];
    if (metadata.brokers.size !== brokers.length)
      out.push(`${metadata.brokers.size} brokers in the metadata`);
    for (const [name, topic] of metadata.topics) {
      // A topic being deleted is still listed, without metadata.
      const partitions = (topic as typeof topic | undefined)?.partitions ?? [];
      partitions.forEach((p, i) => {
        if (p.leader < 0 || p.isr.length !== brokers.length)
          out.push(`${name}/${i} leader ${p.leader} isr [${p.isr.join(',')}]`);
      });
    }
    return out;
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** Resolves once every node is in the metadata and in the ISR of every partition. */
export async function awaitInSync(fc: FaultCluster, timeoutMs = HEAL_TIMEOUT_MS): Promise<void> {
  let last: string[] = [];
  await waitFor(
    async () => {
      last = await partitionsOutOfSync(fc.brokers);
      return last.length === 0;
    },
    { timeoutMs, intervalMs: 500, description: 'every partition with all nodes in sync' },
  ).catch((error: unknown) => {
    const cause = (error as Error).cause;
    const why = cause instanceof Error ? cause.message : last.slice(0, 10).join('; ');
    throw new Error(`${(error as Error).message}: ${why}`, { cause: error });
  });
}

/** Brings every node back (resumed if paused, started if down) and waits until all are in sync. */
export async function healCluster(fc: FaultCluster): Promise<void> {
  for (const { id } of fc.cluster.nodes) {
    if ((await fc.cluster.pidOf(id)) === undefined) await fc.cluster.start(id);
    else await fc.cluster.resume(id);
  }
  await awaitInSync(fc);
}

export interface ScenarioTopics {
  readonly events: string;
  readonly transitions: string;
  readonly state: string;
  readonly deadLetter: string;
}

export interface FleetOptions extends Partial<FleetConfig> {
  readonly seed: number;
  /** Simulated seconds per real second. */
  readonly speed: number;
  /** Real seconds of traffic. */
  readonly seconds: number;
}

export interface StageProcess {
  readonly kind: 'collect' | 'process' | 'export';
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The stage's HTTP base URL (/metrics). */
  readonly url: string;
  readonly exited: Promise<void>;
  /** Whether the process is still running (a stopped process is running). */
  running(): boolean;
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /**
   * Sum of a metric's samples on /metrics (every label set, or those with `labels`), 0 when
   * absent.
   */
  metric(name: string, labels?: Readonly<Record<string, string>>): Promise<number>;
  /** The stage's /metrics page, parsed. */
  metrics(): Promise<Sample[]>;
}

export interface ScenarioOptions {
  readonly fleet: FleetOptions;
  /** Configs of the events topic (e.g. a small `max.message.bytes`). */
  readonly eventsConfigs?: Readonly<Record<string, string>>;
  /** Extra collector flags (after the defaults, so they win). */
  readonly collectorFlags?: readonly string[];
}

export interface Pipeline {
  readonly collector: StageProcess;
  readonly processors: StageProcess[];
  readonly exporter: StageProcess;
  readonly simulator: Simulator;
}

export interface VerifyOptions {
  /** The collector was killed: events it had read but not spooled are gone (no count check). */
  readonly collectorKilled?: boolean;
  /** Events sent besides the simulator's (e.g. a raw QMP server in the socket dir). */
  readonly extraEventsSent?: number;
}

export interface Verification {
  readonly sequences: SequenceCheck;
  readonly sent: number;
  readonly rejected: readonly string[];
  readonly audit: AuditReport;
  readonly transitions: { prepare: number; dwell: number };
  readonly seconds: number;
}

/**
 * One scenario: its topics on the file's cluster, its log directory, its fleet and stages, and
 * `verify` (a)–(c). Every process it started is stopped by PID after the test.
 */
export class Scenario {
  readonly topics: ScenarioTopics;
  readonly logDir: string;
  readonly socketDir: string;
  readonly spoolDir: string;
  readonly processorGroup = `fault-processor-${randomUUID()}`;
  readonly exporterGroup = `fault-exporter-${randomUUID()}`;
  readonly stages: StageProcess[] = [];
  simulator: Simulator | undefined;
  /** The fleet has sent everything (or failed). */
  fleetDone = false;
  private failed = false;
  private readonly started = Date.now();
  private readonly counts = new Map<string, number>();

  private constructor(
    t: TestContext,
    readonly fc: FaultCluster,
    readonly name: string,
    private readonly options: ScenarioOptions,
  ) {
    // Short: unix socket paths (the VMs' are under it) are limited to 107 bytes.
    const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 24);
    this.logDir = mkdtempSync(join(tmpdir(), `vfio-fault-${slug}-`));
    this.socketDir = join(this.logDir, 'vms');
    this.spoolDir = join(this.logDir, 'spool');
    mkdirSync(this.socketDir);
    const id = randomUUID().slice(0, 8);
    this.topics = {
      events: `fault-events-${id}`,
      transitions: `fault-transitions-${id}`,
      state: `fault-state-${id}`,
      deadLetter: `fault-dlq-${id}`,
    };
    t.after(async () => {
      await Promise.all(this.stages.map((s) => s.kill()));
      await this.simulator?.close();
      if (this.failed) {
        console.error(`[fault] ${name}: logs kept in ${this.logDir}`);
      } else {
        await rm(this.logDir, { recursive: true, force: true });
        await fc.port.deleteTopics(Object.values(this.topics)).catch(() => undefined);
      }
    });
  }

  /** Heals the cluster, then creates the scenario's topics and waits until they are in sync. */
  static async create(
    t: TestContext,
    fc: FaultCluster,
    options: ScenarioOptions,
  ): Promise<Scenario> {
    await healCluster(fc);
    const scenario = new Scenario(t, fc, t.name, options);
    const topic = (name: string, numPartitions: number, configs: Record<string, string> = {}) => ({
      name,
      numPartitions,
      replicationFactor: 3,
      configs: { 'min.insync.replicas': '2', ...configs },
    });
    const { events, transitions, state, deadLetter } = scenario.topics;
    await fc.port.createTopics([
      topic(events, PARTITIONS, { ...BROKER_TIME_CONFIGS, ...options.eventsConfigs }),
      topic(transitions, PARTITIONS),
      topic(state, PARTITIONS, { 'cleanup.policy': 'compact' }),
      topic(deadLetter, 1),
    ]);
    await awaitInSync(fc, 60_000);
    scenario.log(`topics ${events} ...; logs in ${scenario.logDir}`);
    return scenario;
  }

  log(message: string): void {
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    console.error(`[fault] ${this.name} +${seconds}s: ${message}`);
  }

  /** Runs the scenario's body; on failure prints the diagnosis and keeps the logs. */
  async run(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (error) {
      this.failed = true;
      await this.diagnose().catch((e: unknown) => this.log(`diagnosis failed: ${String(e)}`));
      throw error;
    }
  }

  /** The seeded fleet, in process; its schedule starts once the collector negotiated every VM. */
  async startFleet(): Promise<Simulator> {
    const { seed, speed, seconds, ...fleet } = this.options.fleet;
    const simulator = await startSimulator({
      dir: this.socketDir,
      fleet: { ...fleet, seed },
      speed,
      durationSeconds: seconds * speed,
      waitForClients: true,
      logger: createLogger({ level: verbose ? 'info' : 'error' }),
    });
    this.simulator = simulator;
    void simulator.done.then(
      () => (this.fleetDone = true),
      () => (this.fleetDone = true),
    );
    return simulator;
  }

  private spawnStage(
    kind: StageProcess['kind'],
    args: readonly string[],
    cwd?: string,
  ): Promise<StageProcess> {
    const n = (this.counts.get(kind) ?? 0) + 1;
    this.counts.set(kind, n);
    const name = `${kind}-${n}`;
    const child = spawn(process.execPath, [CLI, kind, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(cwd === undefined ? {} : { cwd }),
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${name} did not start`);
    const log = createWriteStream(join(this.logDir, `${name}.log`));
    child.stderr?.pipe(log);
    if (verbose) child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const running = (): boolean => child.exitCode === null && child.signalCode === null;
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const url = new Promise<string>((resolve, reject) => {
      lines.once('line', (line) => resolve(line.trim()));
      child.once('exit', (code, signal) =>
        reject(new Error(`${name} exited (${code ?? signal}) before it started; see ${name}.log`)),
      );
    });
    const stage = (base: string): StageProcess => ({
      kind,
      name,
      child,
      pid,
      url: base,
      exited,
      running,
      signal: (signal) => {
        if (running()) process.kill(pid, signal);
      },
      kill: async () => {
        if (!running()) return;
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
        await exited;
      },
      metric: async (metricName, labels) =>
        metricValue(await fetchMetricsText(base, 5000), metricName, labels),
      metrics: async () => parseMetricsText(await fetchMetricsText(base, 5000)),
    });
    const placeholder = stage('');
    this.stages.push(placeholder);
    return url.then((base) => {
      const started = stage(base);
      this.stages[this.stages.indexOf(placeholder)] = started;
      this.log(`${name} pid ${pid} at ${base}`);
      return started;
    });
  }

  private brokerFlags(logLevel = 'info'): string[] {
    return ['--brokers', this.fc.brokers.join(','), '--http-port', '0', '--log-level', logLevel];
  }

  startCollector(): Promise<StageProcess> {
    return this.spawnStage('collect', [
      ...this.brokerFlags(),
      '--host',
      'fault-host',
      '--topic',
      this.topics.events,
      '--socket-dir',
      this.socketDir,
      '--spool-dir',
      this.spoolDir,
      '--reconnect-initial-ms',
      '20',
      '--reconnect-max-ms',
      '500',
      '--rescan-interval-ms',
      '100',
      '--kafka-retry-max-ms',
      '1000',
      ...(this.options.collectorFlags ?? []),
    ]);
  }

  /**
   * A processor started in the scenario's directory, as systemd would start it in its own: its
   * identity is the first free slot of `.vfio-telemetry/processor/` there, so a processor
   * restarted after another one died takes over the dead one's identity (transactional id,
   * static group membership). `flags` come last and win.
   */
  startProcessor(flags: readonly string[] = []): Promise<StageProcess> {
    return this.spawnStage(
      'process',
      [
        // Debug: each committed transaction's input ranges, kept with the logs of a failed scenario
        // to tell a range never processed from a commit that did not hold.
        ...this.brokerFlags('debug'),
        '--events-topic',
        this.topics.events,
        '--transitions-topic',
        this.topics.transitions,
        '--state-topic',
        this.topics.state,
        '--dead-letter-topic',
        this.topics.deadLetter,
        '--group-id',
        this.processorGroup,
        '--session-timeout-ms',
        String(PROCESSOR_SESSION_TIMEOUT_MS),
        '--prepare-timeout',
        String(PREPARE_TIMEOUT_SECONDS),
        // A dead or hung processor's open transaction holds read_committed readers back this long.
        '--transaction-timeout-ms',
        String(TRANSACTION_TIMEOUT_MS),
        ...flags,
      ],
      this.logDir,
    );
  }

  startExporter(): Promise<StageProcess> {
    return this.spawnStage('export', [
      ...this.brokerFlags(),
      '--topic',
      this.topics.transitions,
      '--group-id',
      this.exporterGroup,
    ]);
  }

  /**
   * The whole pipeline: processors and exporter first (their group joins do not compete with a
   * fleet at full speed), then the collector, then the fleet (which starts once every VM is read).
   */
  async startPipeline(processors = 1, processorFlags: readonly string[] = []): Promise<Pipeline> {
    const started = await Promise.all([
      ...Array.from({ length: processors }, () => this.startProcessor(processorFlags)),
      this.startExporter(),
    ]);
    const exporter = started.pop() as StageProcess;
    const collector = await this.startCollector();
    const simulator = await this.startFleet();
    return { collector, processors: started, exporter, simulator };
  }

  /** The time (ms since the epoch) of the first line of `stage`'s log: when it began its work. */
  async firstLogTime(stage: StageProcess): Promise<number> {
    return waitFor(
      async () => {
        const text = await readFile(join(this.logDir, `${stage.name}.log`), 'utf8');
        const first = text.split('\n').find((line) => line.startsWith('{'));
        const time =
          first === undefined ? undefined : (JSON.parse(first) as { time?: string }).time;
        return time === undefined ? null : Date.parse(time);
      },
      { timeoutMs: 10_000, intervalMs: 50, description: `a line in ${stage.name}.log` },
    );
  }

  /** The `transactional.id` `processor` logged when it claimed its identity. */
  async transactionalIdOf(processor: StageProcess): Promise<string> {
    return waitFor(
      async () => {
        const text = await readFile(join(this.logDir, `${processor.name}.log`), 'utf8');
        for (const line of text.split('\n')) {
          if (!line.includes('The processor has its identity.')) continue;
          const id = (JSON.parse(line) as { transactionalId?: unknown }).transactionalId;
          if (typeof id === 'string') return id;
        }
        return null;
      },
      { timeoutMs: 30_000, intervalMs: 50, description: `${processor.name}'s transactional id` },
    );
  }

  /**
   * SIGSTOPs `processor` while the broker says it has a transaction open: polls its transaction
   * coordinator (DescribeTransactions) until the state is `Ongoing`, stops the process, and asks
   * again; if the transaction ended in between, SIGCONT and try again. Resolves with the open
   * transaction, the process stopped inside it; rejects "fault did not happen" when no open
   * transaction was caught within `timeoutMs`.
   */
  async stopInsideTransaction(
    processor: StageProcess,
    timeoutMs = 60_000,
  ): Promise<TransactionDescription> {
    const id = await this.transactionalIdOf(processor);
    const open = async (): Promise<TransactionDescription | undefined> => {
      const txn = (await this.fc.port.describeTransactions([id])).get(id);
      return txn?.state === 'Ongoing' && txn.partitions.length > 0 ? txn : undefined;
    };
    let tries = 0;
    let last = 'never described';
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      tries++;
      if ((await open()) === undefined) {
        last = (await this.fc.port.describeTransactions([id])).get(id)?.state ?? 'unknown id';
        continue;
      }
      processor.signal('SIGSTOP');
      // A request the process wrote just before the stop (its EndTxn) still reaches the broker:
      // give it time to land, so "still Ongoing" means frozen inside the transaction, not
      // "commit not processed yet" (seen as PrepareCommit after the kill once transactions
      // became shorter, issue 18).
      await sleep(STOPPED_SETTLE_MS);
      const caught = await open();
      if (caught !== undefined) {
        this.log(
          `${processor.name} stopped inside transaction ${id} (producer ${caught.producerId} ` +
            `epoch ${caught.producerEpoch}, ${caught.partitions.length} partitions, ${tries} tries)`,
        );
        return caught;
      }
      processor.signal('SIGCONT');
    }
    const fleet = this.simulator?.stats();
    throw new Error(
      `fault did not happen: ${processor.name} (${id}) never stopped inside an open transaction ` +
        `in ${timeoutMs} ms (${tries} tries; last state ${last}; the fleet had sent ` +
        `${fleet?.eventsSent ?? 0} events${this.fleetDone ? ' and ended' : ''})`,
    );
  }

  /** Partition → leader broker id of `topic` now, as the admin port describes the topic. */
  async leaders(topic: string): Promise<readonly number[]> {
    const description = (await this.fc.port.describeTopics([topic])).get(topic);
    assert.ok(description !== undefined, `${topic} is described`);
    return description.leaders;
  }

  /**
   * Resolves with the new leader once `topic/partition` is led by a node other than `from`;
   * rejects "fault did not happen" when the leadership has not moved within `timeoutMs`.
   */
  async awaitLeaderMoved(
    topic: string,
    partition: number,
    from: number,
    timeoutMs = 60_000,
  ): Promise<number> {
    let leader = from;
    try {
      return await waitFor(
        async () => {
          leader = (await this.leaders(topic))[partition] ?? -1;
          return leader >= 0 && leader !== from ? leader : null;
        },
        { timeoutMs, intervalMs: 250, description: `a new leader of ${topic}/${partition}` },
      );
    } catch (error) {
      throw new Error(
        `fault did not happen: ${topic}/${partition} still led by ${leader} (was ${from}) ` +
          `${timeoutMs} ms later`,
        { cause: error },
      );
    }
  }

  /**
   * How many events `collector` had acknowledged by Kafka more than `seconds` after it received
   * them (its publish latency histogram above that bucket): produce requests left pending that
   * long, as for a partition whose leader hangs until the controller moves the leadership.
   */
  async slowPublishes(collector: StageProcess, seconds = 5): Promise<number> {
    const page = await collector.metrics();
    const value = (name: string, le?: string) =>
      page
        .filter((m) => m.name === name && (le === undefined || m.labels['le'] === le))
        .reduce((sum, m) => sum + m.value, 0);
    const name = 'vfio_collector_publish_latency_seconds';
    return value(`${name}_count`) - value(`${name}_bucket`, String(seconds));
  }

  /** The JSON lines `stage` logged so far. */
  async logRecords(stage: StageProcess): Promise<Record<string, unknown>[]> {
    const text = await readFile(join(this.logDir, `${stage.name}.log`), 'utf8');
    return text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** Every node of the cluster in the ISR of every partition (after a node came back). */
  awaitInSync(): Promise<void> {
    return awaitInSync(this.fc);
  }

  /** The partition of `topic` holding the most records now. */
  async busiestPartition(topic: string): Promise<number> {
    const ends = await this.fc.port.endOffsets(this.partitions(topic), 'read_uncommitted');
    ends.sort((a, b) => (a.offset === b.offset ? 0 : a.offset > b.offset ? -1 : 1));
    return (ends[0] as { partition: number }).partition;
  }

  /** The stages started last of each kind that still run. */
  live(kind: StageProcess['kind']): StageProcess[] {
    return this.stages.filter((s) => s.kind === kind && s.running() && s.url !== '');
  }

  /** Resolves once the live collector(s) acknowledged at least `count` events from Kafka. */
  async awaitPublished(count: number, timeoutMs = 120_000): Promise<void> {
    await waitFor(
      async () => {
        const [collector] = this.live('collect');
        return (
          collector !== undefined &&
          (await collector.metric('vfio_collector_events_published_total')) >= count
        );
      },
      { timeoutMs, intervalMs: 200, description: `${count} events published` },
    );
  }

  /** Resolves once the live processors published at least `count` transitions in all. */
  async awaitTransitions(count: number, timeoutMs = 120_000): Promise<void> {
    await waitFor(
      async () => {
        let total = 0;
        for (const p of this.live('process'))
          total += await p.metric('vfio_processor_transitions_published_total');
        return total >= count;
      },
      { timeoutMs, intervalMs: 200, description: `${count} transitions published` },
    );
  }

  partitions(topic: string): TopicPartition[] {
    return Array.from({ length: PARTITIONS }, (_, partition) => ({ topic, partition }));
  }

  /** Records Kafka refused for good, as `sessionId/sequence`, from the spool's rejected.jsonl. */
  async rejectedRecords(): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(join(this.spoolDir, 'rejected.jsonl'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const entry = JSON.parse(line) as { sessionId: string; sequence: number };
        return `${entry.sessionId}/${entry.sequence}`;
      });
  }

  /**
   * Waits for the fleet to finish and every stage to drain (the collector's spool empty, the
   * processor group's committed offsets at the events topic's end, the exporter at the
   * transitions topic's end), then checks (a)–(c).
   */
  async verify(options: VerifyOptions = {}): Promise<Verification> {
    const { sequences, sent, rejected, eventEnds } = await this.checkEvents(options);
    await waitFor(
      async () => {
        const committed = await this.fc.port.committedOffsets(
          this.processorGroup,
          this.partitions(this.topics.events),
        );
        return eventEnds.every(
          (end) => committed.find((c) => c.partition === end.partition)?.offset === end.offset,
        );
      },
      { timeoutMs: DRAIN_TIMEOUT_MS, intervalMs: 250, description: 'the processors caught up' },
    );
    const failures = await Promise.all(
      this.live('process').map(
        async (p) => `${p.name} ${await p.metric('vfio_processor_transaction_failures_total')}`,
      ),
    );
    this.log(`processors caught up; failed transactions: ${failures.join(', ')}`);
    // A commit returns before the coordinator has written its markers to every partition: until
    // it has, read_committed readers stop at the last stable offset. Wait until no transaction
    // is open on the transitions topic, so the audit reads everything committed.
    const transitionPartitions = this.partitions(this.topics.transitions);
    const waitedFrom = Date.now();
    await waitFor(
      async () => {
        const [stable, high] = await Promise.all([
          this.fc.port.endOffsets(transitionPartitions, 'read_committed'),
          this.fc.port.endOffsets(transitionPartitions, 'read_uncommitted'),
        ]);
        return stable.every(
          (p) => p.offset === high.find((h) => h.partition === p.partition)?.offset,
        );
      },
      { timeoutMs: 60_000, intervalMs: 100, description: 'no open transaction on the transitions' },
    );
    this.log(`transitions stable after ${Date.now() - waitedFrom} ms`);
    const { audit, transitions } = await this.checkTransitions();
    const seconds = (Date.now() - this.started) / 1000;
    this.log(`verified: ${JSON.stringify(transitions)} transitions in ${seconds.toFixed(0)} s`);
    return { sequences, sent, rejected, audit, transitions, seconds };
  }

  /** (a), once the fleet finished and the collector's spool is empty. */
  async checkEvents(options: VerifyOptions = {}) {
    const { port } = this.fc;
    const simulator = this.simulator;
    assert.ok(simulator !== undefined, 'the scenario has a fleet');
    await simulator.done;
    const sent = simulator.stats().eventsSent + (options.extraEventsSent ?? 0);
    this.log(`fleet done: ${JSON.stringify(simulator.stats())}`);

    await waitFor(
      async () => {
        const [collector] = this.live('collect');
        return (
          collector !== undefined &&
          (await collector.metric('vfio_collector_vms_connected')) === 0 &&
          (await collector.metric('vfio_collector_spool_events')) === 0
        );
      },
      { timeoutMs: DRAIN_TIMEOUT_MS, intervalMs: 250, description: "the collector's spool empty" },
    );
    const eventEnds = await port.endOffsets(
      this.partitions(this.topics.events),
      'read_uncommitted',
    );
    this.log(`collector drained; events topic ends ${eventEnds.map((o) => o.offset).join(',')}`);
    // (a) every accepted event is in the events topic.
    const eventCodec = createEventCodec();
    const events: { sessionId: string; sequence: number }[] = [];
    let undecodable = 0;
    await port.readToEnd(
      this.partitions(this.topics.events).map((tp) => ({ ...tp, offset: 0n })),
      (record) => {
        const decoded = record.value === null ? null : eventCodec.decode(record.value);
        if (decoded?.kind === 'record') events.push(decoded.value);
        else undecodable++;
      },
      'read_uncommitted',
    );
    const rejected = await this.rejectedRecords();
    const sequences = checkSequences(events, new Set(rejected));
    this.log(
      `events: ${events.length} records, ${sequences.distinct} distinct in ${sequences.sessions} ` +
        `sessions, ${sequences.duplicates} duplicates; sent ${sent}; rejected ${rejected.length}`,
    );
    assert.equal(undecodable, 0, 'undecodable records in the events topic');
    assert.deepEqual(sequences.gaps, [], 'sequence gaps in the events topic (lost events)');
    assert.deepEqual(sequences.presentButAllowedMissing, [], 'rejected records found in the topic');
    if (options.collectorKilled !== true) {
      assert.equal(
        sequences.distinct,
        sent - rejected.length,
        'distinct (session, sequence) in the topic = events the fleet sent - records refused',
      );
    }

    return { sequences, sent, rejected, eventEnds };
  }

  /** (b) and (c), once the processors caught up. */
  async checkTransitions(): Promise<Pick<Verification, 'audit' | 'transitions'>> {
    const { port } = this.fc;
    // (b) the transitions topic equals the recomputation.
    const audit = await auditTopics({
      port,
      eventsTopic: this.topics.events,
      transitionsTopic: this.topics.transitions,
      prepareTimeoutSeconds: PREPARE_TIMEOUT_SECONDS,
    });
    this.lastAudit = audit;
    const t = audit.transitions;
    this.log(
      `audit: ${t.recomputed} recomputed, ${t.inTopic} in topic, ${t.matched} matched, ` +
        `${t.missing.length} missing, ${t.duplicated.length} duplicated, ` +
        `${t.mismatched.length} mismatched, ${t.unexpected.length} unexpected`,
    );
    assert.ok(t.recomputed > 0, 'the fleet produced transitions');
    assert.equal(audit.clean, true, 'audit clean');

    // (c) the exporter observed every transition once.
    const transitions = { prepare: 0, dwell: 0 };
    const transitionCodec = createTransitionCodec();
    await port.readToEnd(
      this.partitions(this.topics.transitions).map((tp) => ({ ...tp, offset: 0n })),
      (record) => {
        const decoded = record.value === null ? null : transitionCodec.decode(record.value);
        if (decoded?.kind === 'record') transitions[decoded.value.type]++;
      },
      'read_committed',
    );
    const [exporter] = this.live('export');
    assert.ok(exporter !== undefined, 'the exporter runs');
    const total = transitions.prepare + transitions.dwell;
    await waitFor(
      async () => (await exporter.metric('vfio_exporter_records_consumed_total')) >= total,
      { timeoutMs: 60_000, intervalMs: 250, description: `the exporter at ${total} records` },
    );
    // Anything beyond would be a record observed twice: give it a moment to show.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(
      await exporter.metric('vfio_exporter_records_consumed_total'),
      total,
      'exporter records consumed = transitions in the topic',
    );
    assert.equal(
      await exporter.metric('vfio_prepare_outcomes_total'),
      transitions.prepare,
      'exporter prepare outcomes = prepares in the topic',
    );
    return { audit, transitions };
  }

  private lastAudit: AuditReport | undefined;

  /**
   * Per partition of the transitions and state topics: high watermark, last stable offset and
   * how many records a read_committed and a read_uncommitted reader see, to tell "never
   * committed" from "committed but not read".
   */
  private async describeOutputTopics(): Promise<void> {
    const { port } = this.fc;
    for (const topic of [this.topics.transitions, this.topics.state]) {
      const partitions = this.partitions(topic);
      const [high, stable] = await Promise.all([
        port.endOffsets(partitions, 'read_uncommitted'),
        port.endOffsets(partitions, 'read_committed'),
      ]);
      const counts = async (isolation: 'read_committed' | 'read_uncommitted') => {
        const n = partitions.map(() => 0);
        await port.readToEnd(
          partitions.map((tp) => ({ ...tp, offset: 0n })),
          (r) => n[r.partition]!++,
          isolation,
        );
        return n;
      };
      const [committed, uncommitted] = [
        await counts('read_committed'),
        await counts('read_uncommitted'),
      ];
      const rows = partitions.map(
        ({ partition }) =>
          `${partition}: hw ${high.find((o) => o.partition === partition)?.offset} ` +
          `lso ${stable.find((o) => o.partition === partition)?.offset} ` +
          `read_committed ${committed[partition]} read_uncommitted ${uncommitted[partition]}`,
      );
      this.log(`${topic}:\n  ${rows.join('\n  ')}`);
    }
  }

  /** Prints where things are: stage counters, the audit's differences, the brokers' logs. */
  private async diagnose(): Promise<void> {
    await this.describeOutputTopics().catch((e: unknown) =>
      this.log(`output topics unavailable: ${String(e)}`),
    );
    for (const stage of this.stages) {
      let counters = 'not running';
      if (stage.running() && stage.url !== '') {
        try {
          counters = parseMetricsText(await fetchMetricsText(stage.url, 3000))
            .filter((m) => /^vfio_(collector|processor|exporter)_/.test(m.name))
            .filter((m) => !/_(process|nodejs)_/.test(m.name))
            .map((m) => `${seriesKey(m.name, m.labels)} ${m.value}`)
            .join('\n  ');
        } catch (error) {
          counters = `metrics unavailable: ${String(error)}`;
        }
      }
      this.log(`${stage.name} (pid ${stage.pid}):\n  ${counters}`);
    }
    if (this.lastAudit !== undefined) {
      const t = this.lastAudit.transitions;
      const sample = {
        events: this.lastAudit.events,
        missing: t.missing.slice(0, 5),
        duplicated: t.duplicated.slice(0, 5),
        mismatched: t.mismatched.slice(0, 5),
        unexpected: t.unexpected.slice(0, 5),
        undecodable: t.undecodable.slice(0, 5),
      };
      this.log(
        `audit report (first 5 of each):\n${JSON.stringify(sample, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v), 2)}`,
      );
    }
    for (const { id } of this.fc.cluster.nodes) {
      const source = join(this.fc.cluster.dir, `node-${id}`, 'kafka.log');
      await copyFile(source, join(this.logDir, `broker-${id}.log`)).catch(() => undefined);
      // The output topics' partition logs as each node holds them, for kafka-dump-log.sh
      // (batches, producer ids, control markers): the cluster's directory goes with the file.
      for (const topic of [this.topics.transitions, this.topics.state]) {
        for (const { partition } of this.partitions(topic)) {
          const name = `${topic}-${partition}`;
          await cp(
            join(this.fc.cluster.dir, `node-${id}`, 'data', name),
            join(this.logDir, `data-node-${id}`, name),
            { recursive: true },
          ).catch(() => undefined);
        }
      }
    }
    for (const stage of this.stages) {
      const text = await readFile(join(this.logDir, `${stage.name}.log`), 'utf8').catch(() => '');
      const tail = text
        .split('\n')
        .filter((line) => !line.includes('"level":"info"') && line.trim() !== '')
        .slice(-FAILURE_LOG_LINES)
        .join('\n');
      if (tail !== '')
        this.log(`${stage.name}.log (last ${FAILURE_LOG_LINES} warnings and errors):\n${tail}`);
    }
    this.log(`stage and broker logs: ${this.logDir}; topics ${JSON.stringify(this.topics)}`);
  }
}
