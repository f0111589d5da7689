/**
 * The Kafka Streams reference of the processor entries: bench/kafka-streams (a Java topology with
 * `processing.guarantee=exactly_once_v2` and a RocksDB store per device computing the same
 * prepare/dwell records) built once with `mvn -q package` into a cache outside git, then run as a
 * JVM against the bench's broker on a pre-filled events topic.
 *
 * Drain time ends when the application's committed offsets (asked for as stable) cover every
 * input: under exactly-once v2 the offsets commit in the same transaction as the outputs, so
 * that is the moment every output is readable `read_committed`. Two rates: from JVM launch
 * (start-up, group join, RocksDB open, included) and from the first record the topology processed
 * (what a Kafka user measures as steady throughput). The outputs are then read back
 * `read_committed` through the Kafka port, counted and decoded with our transition codec, so the
 * reference is shown to do the same work.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createTransitionCodec } from '../services/shared/io/avro-codec.ts';
import {
  benchDir,
  cpuPercent,
  sampleProcess,
  sleep,
  type BenchAdmin,
} from './kafka-bench-support.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROJECT = join(ROOT, 'bench/kafka-streams');
const MAIN_CLASS = 'io.vfiotelemetry.bench.ReferenceProcessor';

function cacheRoot(): string {
  return (
    process.env['VFIO_CACHE_DIR'] ??
    join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'vfio-telemetry')
  );
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => !f.includes('/target/'))
    .sort();
}

/**
 * Builds the reference (once per content of bench/kafka-streams) and returns its classpath.
 * The build directory is named by a hash of the pom and sources, so an edit builds afresh.
 */
export async function buildKafkaStreamsReference(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of sourceFiles(PROJECT))
    hash.update(file.slice(PROJECT.length)).update(readFileSync(file));
  const dir = join(cacheRoot(), `kafka-streams-reference-${hash.digest('hex').slice(0, 16)}`);
  const jar = join(dir, 'kafka-streams-reference-0.jar');
  const stamp = join(dir, 'built');
  if (!existsSync(stamp)) {
    mkdirSync(dir, { recursive: true });
    process.stderr.write(`bench: building the Kafka Streams reference into ${dir}...\n`);
    await promisify(execFile)(
      'mvn',
      [
        '-B',
        '-q',
        '-Dstyle.color=never',
        `-Dvfio.build.dir=${dir}`,
        '-f',
        join(PROJECT, 'pom.xml'),
        'package',
      ],
      { cwd: PROJECT, maxBuffer: 16 * 1024 * 1024 },
    );
    if (!existsSync(jar)) throw new Error(`mvn package finished without ${jar}`);
    writeFileSync(stamp, new Date().toISOString());
  }
  return `${jar}:${join(dir, 'libs')}/*`;
}

export interface StreamsDrain {
  /** Events/s from the first record processed to all inputs committed. */
  perSecond: number;
  /** Events/s from JVM launch to all inputs committed. */
  perSecondWithStart: number;
  wallSeconds: number;
  /** JVM launch → first record processed. */
  startSeconds: number;
  cpuPercent: number;
  /** Output records read back read_committed, and how many our codec decoded. */
  outputs: number;
  decoded: number;
}

export interface StreamsRun {
  brokers: readonly string[];
  admin: BenchAdmin;
  eventsTopic: string;
  transitionsTopic: string;
  partitions: number;
  total: number;
  /** `num.stream.threads` (default 1). */
  threads?: number;
  timeoutMs?: number;
}

function javaBinary(): string {
  if (process.env['JAVA_HOME'] !== undefined) return join(process.env['JAVA_HOME'], 'bin/java');
  const debian = '/usr/lib/jvm/java-17-openjdk-amd64/bin/java';
  return existsSync(debian) ? debian : 'java';
}

export async function runKafkaStreamsReference(run: StreamsRun): Promise<StreamsDrain> {
  const classpath = await buildKafkaStreamsReference();
  const stateDir = benchDir('kafka-streams-state');
  const applicationId = `bench-streams-${Date.now().toString(36)}`;
  const launched = performance.now();
  const child = spawn(
    javaBinary(),
    [
      '-Xms256m',
      '-Xmx768m',
      '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
      '-cp',
      classpath,
      MAIN_CLASS,
      run.brokers.join(','),
      applicationId,
      run.eventsTopic,
      run.transitionsTopic,
      stateDir,
      join(ROOT, 'schemas/vfio-event.avsc'),
      join(ROOT, 'schemas/vfio-transition.avsc'),
      String(run.threads ?? 1),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the Kafka Streams reference JVM');
  let firstRecordAt: number | undefined;
  let exited = false;
  child.once('exit', () => (exited = true));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) {
      // The JVM prints wall-clock ms; translate to this process's monotonic clock.
      const match = /^first-record (\d+)/.exec(line);
      if (match !== null) firstRecordAt = Number(match[1]) - performance.timeOrigin;
    }
  });
  try {
    const before = await sampleProcess(pid);
    for (;;) {
      if (exited) throw new Error('the Kafka Streams reference exited before draining the topic');
      const committed = await run.admin.committedTotal(
        applicationId,
        run.eventsTopic,
        run.partitions,
      );
      const now = performance.now();
      if (committed >= run.total && firstRecordAt !== undefined) {
        const after = await sampleProcess(pid);
        const { outputs, decoded } = await readOutputs(run);
        return {
          perSecond: run.total / ((now - firstRecordAt) / 1000),
          perSecondWithStart: run.total / ((now - launched) / 1000),
          wallSeconds: (now - launched) / 1000,
          startSeconds: (firstRecordAt - launched) / 1000,
          cpuPercent: cpuPercent(before, after),
          outputs,
          decoded,
        };
      }
      if (now - launched > (run.timeoutMs ?? 300_000))
        throw new Error(`the Kafka Streams reference stalled at ${committed} of ${run.total}`);
      await sleep(20);
    }
  } finally {
    if (!exited) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** Reads the output topic `read_committed` to its last stable offset, counting and decoding. */
async function readOutputs(run: StreamsRun): Promise<{ outputs: number; decoded: number }> {
  const codec = createTransitionCodec();
  let outputs = 0;
  let decoded = 0;
  await run.admin.port.readToEnd(
    Array.from({ length: run.partitions }, (_, partition) => ({
      topic: run.transitionsTopic,
      partition,
      offset: 0n,
    })),
    (record) => {
      outputs++;
      if (record.value !== null && codec.decode(record.value).kind === 'record') decoded++;
    },
    'read_committed',
  );
  return { outputs, decoded };
}
