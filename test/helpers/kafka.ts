/**
 * Kafka helpers for tests against a real broker (never a mock: STYLE.md rule 10).
 *
 * - `brokersFromEnv()`: the suite's shared broker, `KAFKA_BROKERS` (set by `start_test_kafka` in
 *   infra/test-services.sh, or by hand: `KAFKA_BROKERS=$(infra/kafka/start.sh)`).
 * - `testKafkaPort(t)`: the Kafka port (services/shared/kafka/io/port.ts) for a test, closed after it.
 * - `uniqueTopic(t, prefix)`: a fresh topic per test, deleted after it.
 * - `tailTopic(port, topic)`: reads a topic from its start, a bit further at each `next()`.
 * - `startPrivateBroker(t)`: a broker of the test's own, for tests that stop and restart one.
 *
 * Everything a helper creates is undone in `t.after`, including on failure.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createKafkaPort } from '../../services/shared/kafka/io/client.ts';
import type {
  ConsumedRecord,
  Isolation,
  KafkaPort,
  TopicPartitionOffset,
} from '../../services/shared/kafka/io/port.ts';
import { createLogger } from '../../services/shared/io/logger.ts';

const KAFKA_SCRIPTS = fileURLToPath(new URL('../../infra/kafka/', import.meta.url));
const START_TIMEOUT_MS = 180_000;
const STOP_TIMEOUT_MS = 60_000;

/** `KAFKA_BROKERS` split on commas; throws saying how to set it when it is missing. */
export function brokersFromEnv(): string[] {
  const value = process.env['KAFKA_BROKERS']?.trim();
  if (value === undefined || value === '') {
    throw new Error(
      'KAFKA_BROKERS is not set: run the suite through `npm test` (infra/test-services.sh starts ' +
        'a broker), or start one with `infra/kafka/start.sh` and pass its address as ' +
        'KAFKA_BROKERS=HOST:PORT',
    );
  }
  return value.split(',').map((broker) => broker.trim());
}

/** A Kafka port for tests, quiet unless something goes wrong; the caller closes it. */
export function kafkaPortFor(
  brokers: readonly string[],
  clientId = 'vfio-telemetry-test',
): KafkaPort {
  return createKafkaPort({ brokers, clientId, logger: createLogger({ level: 'error' }) });
}

/** A Kafka port for the test, closed after it. */
export function testKafkaPort(
  t: TestContext,
  brokers: readonly string[] = brokersFromEnv(),
  clientId = 'vfio-telemetry-test',
): KafkaPort {
  const port = kafkaPortFor(brokers, clientId);
  t.after(() => port.close());
  return port;
}

export interface TopicTail {
  /** The records added since the previous call (the first call: since the start), in offset order per partition. */
  next(): Promise<ConsumedRecord[]>;
}

/** Follows every partition of `topic` from offset 0 with `readToEnd` (default `read_committed`). */
export async function tailTopic(
  port: KafkaPort,
  topic: string,
  isolation: Isolation = 'read_committed',
): Promise<TopicTail> {
  const description = (await port.describeTopics([topic])).get(topic);
  if (description === undefined) throw new Error(`topic ${topic} does not exist`);
  let positions: TopicPartitionOffset[] = Array.from(
    { length: description.partitions },
    (_, partition) => ({ topic, partition, offset: 0n }),
  );
  return {
    async next() {
      const records: ConsumedRecord[] = [];
      positions = await port.readToEnd(positions, (record) => records.push(record), isolation);
      return records;
    },
  };
}

export interface UniqueTopicOptions {
  /** Default `brokersFromEnv()`. */
  brokers?: readonly string[];
  /** Default 1. */
  numPartitions?: number;
  configs?: Readonly<Record<string, string>>;
}

/**
 * Creates `<prefix>-<uuid>` (replication factor 1) and deletes it after the test. The deletion is
 * best effort: the broker may already be gone, e.g. a private broker whose cleanup ran first.
 */
export async function uniqueTopic(
  t: TestContext,
  prefix = 'test',
  options: UniqueTopicOptions = {},
): Promise<string> {
  const brokers = options.brokers ?? brokersFromEnv();
  const topic = `${prefix}-${randomUUID()}`;
  t.after(async () => {
    const port = createKafkaPort({
      brokers,
      clientId: 'vfio-telemetry-test-topics',
      logger: createLogger({ write: () => undefined }),
      connectTimeoutMs: 1000,
      retries: 1,
    });
    try {
      await port.deleteTopics([topic]);
    } catch {
      // Nothing to undo on a broker that is gone; a stale topic on a live one is harmless.
    } finally {
      await port.close().catch(() => undefined);
    }
  });
  const port = kafkaPortFor(brokers, 'vfio-telemetry-test-topics');
  try {
    await port.createTopics([
      {
        name: topic,
        numPartitions: options.numPartitions ?? 1,
        replicationFactor: 1,
        configs: options.configs ?? {},
      },
    ]);
  } finally {
    await port.close();
  }
  return topic;
}

export interface PrivateBrokerOptions {
  /** Broker port for the first start (default: a free one). Restarts keep the first port. */
  port?: number;
}

export interface PrivateBroker {
  /** The state directory given to start.sh/stop.sh (removed after the test). */
  readonly dir: string;
  /** `[HOST:PORT]`; the same across `stop()`/`start()`. */
  readonly brokers: string[];
  /** Starts the broker again on the same directory, port and data (start.sh). */
  start(): Promise<void>;
  /** Stops the broker by its PID (stop.sh); resolves once the process is gone. */
  stop(): Promise<void>;
  /** The PID in `kafka.pid`, or undefined while stopped. */
  readPid(): Promise<number | undefined>;
}

function runScript(script: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [join(KAFKA_SCRIPTS, script), ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null) {
          reject(new Error(`${script} ${args.join(' ')} failed:\n${stderr}`, { cause: error }));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/**
 * Starts a broker of the test's own with infra/kafka/start.sh in a fresh temporary directory. After
 * the test, stop.sh stops it by PID and the directory is removed.
 */
export async function startPrivateBroker(
  t: TestContext,
  options: PrivateBrokerOptions = {},
): Promise<PrivateBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'vfio-kafka-'));
  const stop = async (): Promise<void> => {
    await runScript('stop.sh', ['--dir', dir], STOP_TIMEOUT_MS);
  };
  t.after(async () => {
    try {
      await stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const startArgs = ['--dir', dir];
  if (options.port !== undefined) startArgs.push('--port', String(options.port));
  const addressOf = (stdout: string): string => stdout.trimEnd().split('\n').at(-1) ?? '';
  const address = addressOf(await runScript('start.sh', startArgs, START_TIMEOUT_MS));

  return {
    dir,
    brokers: [address],
    async start() {
      const again = addressOf(await runScript('start.sh', ['--dir', dir], START_TIMEOUT_MS));
      if (again !== address) {
        throw new Error(`private broker in ${dir} came back on ${again}, not ${address}`);
      }
    },
    stop,
    async readPid() {
      try {
        return Number((await readFile(join(dir, 'kafka.pid'), 'utf8')).trim());
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
  };
}
