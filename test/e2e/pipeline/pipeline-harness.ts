/**
 * Pieces for whole-pipeline tests against the real broker: per-test topics, a seeded simulated
 * fleet read by a real collector into Kafka, processors run in-process or as child processes,
 * and the expectation every such test checks: the transitions `replay` computes from the
 * simulator's own transcripts.
 */
import { BROKER_TIME_CONFIGS } from '../../../services/shared/core/topics.ts';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ReplaySession } from '../../../services/cli/replay/replay-session.ts';
import { startCollector } from '../../../services/collector/main.ts';
import { parseProcessorConfig } from '../../../services/processor/config.ts';
import { startProcessor, type RunningProcessor } from '../../../services/processor/main.ts';
import type { TransitionRecord } from '../../../services/shared/core/transition-record.ts';
import { createTransitionCodec } from '../../../services/shared/io/avro-codec.ts';
import { startSimulator, type Simulator } from '../../../services/simulator/io/simulator.ts';
import type { FleetConfig } from '../../../services/simulator/core/fleet-config.ts';
import { collectorConfig, quietLogger, tempDir } from '../collector/collector-harness.ts';
import { tailTopic, testKafkaPort, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  DURATION_BUCKETS_SECONDS,
  bucketIndex,
} from '../../../services/shared/core/bucket-policy.ts';
import { metricValue, parseMetricsText } from '../../helpers/metrics-text.ts';

const BIN = fileURLToPath(new URL('../../../bin/vfio-telemetry.js', import.meta.url));

export interface PipelineTopics {
  events: string;
  transitions: string;
  state: string;
  deadLetter: string;
}

export async function pipelineTopics(
  t: TestContext,
  brokers: readonly string[],
  partitions = 3,
): Promise<PipelineTopics> {
  const [events, transitions, state, deadLetter] = await Promise.all([
    uniqueTopic(t, 'events', { brokers, numPartitions: partitions, configs: BROKER_TIME_CONFIGS }),
    uniqueTopic(t, 'transitions', { brokers, numPartitions: partitions }),
    uniqueTopic(t, 'state', {
      brokers,
      numPartitions: partitions,
      configs: { 'cleanup.policy': 'compact' },
    }),
    uniqueTopic(t, 'dlq', { brokers, numPartitions: 1 }),
  ]);
  return { events: events, transitions, state, deadLetter };
}

export interface FleetRun {
  simulator: Simulator;
  transcripts: string;
  /** Resolves when the simulator finished and the collector published every event it sent. */
  delivered: Promise<number>;
}

/**
 * Starts a seeded simulated fleet and a real collector publishing it to `topic`. The simulator
 * waits for the collector to connect to every VM, so nothing is dropped and the transcripts hold
 * exactly what reached Kafka.
 */
export async function runFleet(
  t: TestContext,
  brokers: readonly string[],
  topic: string,
  fleet: Partial<FleetConfig> & { migrations: number; speed: number | 'max' },
): Promise<FleetRun> {
  const sockets = tempDir(t, 'pipeline-vms-');
  const transcripts = tempDir(t, 'pipeline-transcripts-');
  const spool = tempDir(t, 'pipeline-spool-');
  const { migrations, speed, ...fleetConfig } = fleet;
  const simulator = await startSimulator({
    dir: sockets,
    fleet: fleetConfig,
    speed,
    maxMigrations: migrations,
    transcriptsDir: transcripts,
    waitForClients: true,
    logger: quietLogger(),
  });
  t.after(() => simulator.close());
  const collector = await startCollector(
    collectorConfig(brokers, topic, {
      'socket-dir': sockets,
      'spool-dir': spool,
      'linger-ms': '2',
    }),
    quietLogger(),
  );
  t.after(() => collector.stop(1000));
  const delivered = (async () => {
    await simulator.done;
    const sent = simulator.stats().eventsSent;
    try {
      await waitFor(
        async () =>
          (await counter(collector.registry, 'vfio_collector_events_published_total')) >= sent,
        {
          timeoutMs: 120_000,
          description: `collector publishing ${sent} events`,
        },
      );
    } catch (error) {
      // Say where the events are, so a failure here is a diagnosis, not a mystery.
      const names = [
        'events_received_total',
        'events_published_total',
        'spool_events',
        'qmp_rejected_total',
        'events_dropped_total',
        'reconnects_total',
      ];
      const counts = await Promise.all(
        names.map(async (n) => `${n}=${await counter(collector.registry, `vfio_collector_${n}`)}`),
      );
      throw new Error(
        `${(error as Error).message}; simulator ${JSON.stringify(simulator.stats())}; collector ${counts.join(' ')}`,
        { cause: error },
      );
    }
    return sent;
  })();
  return { simulator, transcripts, delivered };
}

async function counter(registry: RunningProcessor['registry'], name: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
}

/** Every record `replay` computes from the transcripts (the VM is the file name). */
export function replayRecords(transcripts: string): TransitionRecord[] {
  const session = new ReplaySession();
  const records: TransitionRecord[] = [];
  for (const file of readdirSync(transcripts).sort()) {
    const replay = session.openTranscript(file.replace(/\.qmp$/, ''));
    records.push(...replay.push(readFileSync(join(transcripts, file))), ...replay.end());
  }
  records.push(...session.finish().records);
  return records;
}

/** What `replay` computes from the transcripts, minus `unfinished` (a live processor waits instead). */
export function expectedTransitions(transcripts: string): string[] {
  return replayRecords(transcripts)
    .filter((r) => !(r.type === 'prepare' && r.outcome === 'unfinished'))
    .map(describeTransition)
    .sort();
}

/** A transition as text without where it was computed (host, session): equal means the same. */
export function describeTransition(r: TransitionRecord): string {
  const what = r.type === 'prepare' ? `${r.target} ${r.outcome}` : `${r.state}`;
  return `${r.type} ${r.vm} ${r.qomPath} ${what} ->${r.next} ${r.seconds} ${r.startMicros}..${r.endMicros}`;
}

/** Reads the whole transitions topic from the start (waiting until it holds `count` records). */
export async function readTransitions(
  t: TestContext,
  brokers: readonly string[],
  topic: string,
  count: number,
  timeoutMs = 90_000,
): Promise<string[]> {
  const codec = createTransitionCodec();
  const tail = await tailTopic(testKafkaPort(t, brokers, 'pipeline-reader'), topic);
  const seen: string[] = [];
  const readMore = async (): Promise<void> => {
    for (const message of await tail.next()) {
      const decoded = codec.decode(message.value ?? Buffer.alloc(0));
      assert.equal(
        decoded.kind,
        'record',
        `undecodable transition at ${message.partition}/${message.offset}`,
      );
      if (decoded.kind === 'record') seen.push(describeTransition(decoded.value));
    }
  };
  await waitFor(
    async () => {
      await readMore();
      return seen.length >= count;
    },
    { timeoutMs, intervalMs: 100, description: `${count} transitions` },
  );
  // Anything beyond the expected count would be a duplicate: give it a moment to show up.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await readMore();
  return seen.sort();
}

export function processorFlags(
  brokers: readonly string[],
  topics: PipelineTopics,
  groupId: string,
): string[] {
  return [
    '--brokers',
    brokers.join(','),
    '--events-topic',
    topics.events,
    '--transitions-topic',
    topics.transitions,
    '--state-topic',
    topics.state,
    '--dead-letter-topic',
    topics.deadLetter,
    '--group-id',
    groupId,
    '--http-port',
    '0',
    '--tick-interval-ms',
    '200',
    // A killed processor's partitions move after this long (the broker's minimum).
    '--session-timeout-ms',
    '6000',
  ];
}

export async function startProcessorInProcess(
  t: TestContext,
  brokers: readonly string[],
  topics: PipelineTopics,
  groupId = `processor-${randomUUID()}`,
): Promise<RunningProcessor> {
  const flags: Record<string, string | string[]> = {};
  const list = processorFlags(brokers, topics, groupId);
  for (let i = 0; i < list.length; i += 2)
    flags[(list[i] as string).slice(2)] = list[i + 1] as string;
  flags['brokers'] = [...brokers];
  const processor = await startProcessor(parseProcessorConfig({ env: {}, flags }), quietLogger());
  // A test may stop it early (to restart it); the after-hook then waits for that same stop.
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= processor.stop());
  t.after(stop);
  return { ...processor, stop };
}

export interface ChildProcessor {
  child: ChildProcess;
  /** Resolves with the metrics URL the process printed. */
  url: Promise<string>;
  exited: Promise<number | null>;
}

/** The processor as its own OS process (to kill it for real); stopped by PID after the test. */
export function spawnProcessor(
  t: TestContext,
  brokers: readonly string[],
  topics: PipelineTopics,
  groupId: string,
  options: {
    /** Flags besides `processorFlags`' (`--log-level debug`, ...). */
    readonly flags?: readonly string[];
    /** Node's own options (`--max-old-space-size=N`, ...). */
    readonly nodeOptions?: readonly string[];
    /** Every line the processor logs (JSON on stderr), as it comes. */
    readonly onLogLine?: (line: string) => void;
  } = {},
): ChildProcessor {
  const { onLogLine } = options;
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeOptions ?? []),
      BIN,
      'process',
      ...processorFlags(brokers, topics, groupId),
      ...(options.flags ?? []),
    ],
    {
      stdio: [
        'ignore',
        'pipe',
        onLogLine !== undefined
          ? 'pipe'
          : process.env['VFIO_TEST_LOG'] === '1'
            ? 'inherit'
            : 'ignore',
      ],
    },
  );
  if (onLogLine !== undefined && child.stderr !== null) {
    createInterface({ input: child.stderr }).on('line', onLogLine);
  }
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const url = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line !== undefined) resolve(line.trim());
    });
    child.once('exit', (code) => reject(new Error(`processor exited (${code}) before it started`)));
  });
  return { child, url, exited };
}

interface Expected {
  count: number;
  sum: number;
  buckets: number[];
}

/** Parses the exporter's histogram samples, summed over hosts, keyed by the other labels. */
function histograms(metrics: string, name: string, keyLabels: string[]): Map<string, Expected> {
  const out = new Map<string, Expected>();
  const get = (key: string): Expected => {
    let e = out.get(key);
    if (e === undefined) {
      e = { count: 0, sum: 0, buckets: new Array<number>(DURATION_BUCKETS_SECONDS.length).fill(0) };
      out.set(key, e);
    }
    return e;
  };
  for (const sample of parseMetricsText(metrics)) {
    const part = /^(?:bucket|sum|count)$/.exec(sample.name.slice(name.length + 1))?.[0];
    if (!sample.name.startsWith(`${name}_`) || part === undefined) continue;
    const { labels, value } = sample;
    const e = get(keyLabels.map((l) => labels[l]).join(' '));
    if (part === 'count') e.count += value;
    else if (part === 'sum') e.sum += value;
    else if (labels['le'] !== '+Inf')
      e.buckets[DURATION_BUCKETS_SECONDS.indexOf(Number(labels['le']))]! += value;
  }
  return out;
}

function expectFrom(values: Map<string, number[]>): Map<string, Expected> {
  const out = new Map<string, Expected>();
  for (const [key, list] of values) {
    const buckets = new Array<number>(DURATION_BUCKETS_SECONDS.length).fill(0);
    for (const v of list) {
      // Cumulative (le) buckets, as Prometheus exposes them.
      for (let i = bucketIndex(DURATION_BUCKETS_SECONDS, v); i < buckets.length; i++) buckets[i]!++;
    }
    out.set(key, { count: list.length, sum: list.reduce((a, b) => a + b, 0), buckets });
  }
  return out;
}

function assertSameHistograms(
  actual: Map<string, Expected>,
  expected: Map<string, Expected>,
  what: string,
): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: label sets`);
  for (const [key, e] of expected) {
    const a = actual.get(key) as Expected;
    assert.equal(a.count, e.count, `${what} ${key}: count`);
    assert.deepEqual(a.buckets, e.buckets, `${what} ${key}: buckets`);
    assert.ok(
      Math.abs(a.sum - e.sum) <= 1e-9 * Math.max(1, e.count),
      `${what} ${key}: sum ${a.sum} vs ${e.sum}`,
    );
  }
}

/**
 * Waits until the exporter behind `url` (/metrics) consumed every transition `replay` computes
 * from `transcripts`, then checks its histograms and outcome counters equal replay's exactly.
 */
export async function assertExporterMatchesReplay(url: string, transcripts: string): Promise<void> {
  const records = replayRecords(transcripts).filter(
    (r) => !(r.type === 'prepare' && r.outcome === 'unfinished'),
  );
  const prepareValues = new Map<string, number[]>();
  const dwellValues = new Map<string, number[]>();
  const outcomeCounts = new Map<string, number>();
  for (const r of records) {
    if (r.type === 'prepare') {
      outcomeCounts.set(
        `${r.target} ${r.outcome}`,
        (outcomeCounts.get(`${r.target} ${r.outcome}`) ?? 0) + 1,
      );
      if (r.seconds === null) continue;
      const key = `${r.target} ${r.outcome}`;
      prepareValues.set(key, [...(prepareValues.get(key) ?? []), r.seconds]);
    } else {
      const key = `${r.state} ${r.next}`;
      dwellValues.set(key, [...(dwellValues.get(key) ?? []), r.seconds]);
    }
  }
  assert.ok((outcomeCounts.get('pre-copy-p2p failed') ?? 0) > 0, 'the fleet has failed prepares');

  const metrics = await waitFor(
    async () => {
      const text = await (await fetch(url)).text();
      return metricValue(text, 'vfio_exporter_records_consumed_total') >= records.length
        ? text
        : null;
    },
    {
      timeoutMs: 90_000,
      intervalMs: 200,
      description: `${records.length} transitions in the exporter`,
    },
  );
  assert.equal(metricValue(metrics, 'vfio_exporter_records_consumed_total'), records.length);
  assertSameHistograms(
    histograms(metrics, 'vfio_prepare_duration_seconds', ['target', 'outcome']),
    expectFrom(prepareValues),
    'prepare',
  );
  assertSameHistograms(
    histograms(metrics, 'vfio_state_dwell_seconds', ['state', 'next']),
    expectFrom(dwellValues),
    'dwell',
  );
  for (const [key, count] of outcomeCounts) {
    const [target, outcome] = key.split(' ');
    const total = metricValue(metrics, 'vfio_prepare_outcomes_total', {
      target: target ?? '',
      outcome: outcome ?? '',
    });
    assert.equal(total, count, `outcomes ${key}`);
  }
}
