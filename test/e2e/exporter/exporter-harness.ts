/**
 * Shared by the exporter e2e tests: transition records to produce, an in-process exporter on a
 * unique topic and group of the real broker, and a /metrics scrape parsed into series.
 */
import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import { parseExporterConfig } from '../../../services/exporter/config.ts';
import { startExporter, type RunningExporter } from '../../../services/exporter/main.ts';
import type {
  PrepareOutcome,
  TransitionRecord,
} from '../../../services/shared/core/transition-record.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { createKafkaPort } from '../../../services/shared/kafka/io/client.ts';
import type { KafkaPort } from '../../../services/shared/kafka/io/port.ts';
import { brokersFromEnv } from '../../helpers/kafka.ts';
import { fetchMetricsText, metricsBySeries, seriesKey } from '../../helpers/metrics-text.ts';

const device = { vm: 'vm-a', qomPath: '/machine/peripheral/nic0', deviceId: 'nic0' };

/** A prepare record; seconds are binary fractions, so histogram sums are exact in any order. */
export function prepareRecord(
  host: string,
  outcome: PrepareOutcome,
  seconds: number | null,
  target = 'pre-copy-p2p',
): TransitionRecord {
  const start = Date.now() * 1000 - 5_000_000;
  return {
    ...device,
    host,
    type: 'prepare',
    target,
    prepareState: `${target}-prepare`,
    outcome,
    next: seconds === null ? null : target,
    seconds,
    startMicros: start,
    endMicros: seconds === null ? null : start + Math.round(seconds * 1e6),
  };
}

export function dwellRecord(
  host: string,
  state: string,
  next: string,
  seconds: number,
): TransitionRecord {
  const start = Date.now() * 1000 - 10_000_000;
  return {
    ...device,
    host,
    type: 'dwell',
    state,
    next,
    seconds,
    startMicros: start,
    endMicros: start + Math.round(seconds * 1e6),
  };
}

/** A Kafka port on the test broker, closed after the test. */
export function testPort(t: TestContext): KafkaPort {
  const port = createKafkaPort({
    brokers: brokersFromEnv(),
    clientId: 'vfio-telemetry-test',
    logger: createLogger({ level: 'warn' }),
  });
  t.after(() => port.close());
  return port;
}

/** Produces `values` in order, record i to partition i mod `partitions`; none may be refused. */
export async function produce(
  t: TestContext,
  topic: string,
  values: readonly (Buffer | null)[],
  partitions = 1,
): Promise<void> {
  const producer = await testPort(t).producer();
  try {
    const { refused } = await producer.send(
      values.map((value, i) => ({
        topic,
        partition: i % partitions,
        key: Buffer.from(`k${i % 3}`),
        value,
      })),
    );
    if (refused.length > 0) throw new Error(`refused: ${JSON.stringify(refused)}`);
  } finally {
    await producer.close();
  }
}

export async function startTestExporter(
  t: TestContext,
  topic: string,
  flags: Record<string, string | boolean> = {},
  groupId = `exporter-${randomUUID()}`,
): Promise<RunningExporter> {
  const config = parseExporterConfig({
    env: { KAFKA_BROKERS: brokersFromEnv().join(',') },
    flags: { topic, 'group-id': groupId, 'http-port': '0', ...flags },
  });
  const exporter = await startExporter(config, createLogger({ level: 'warn' }));
  // t.after hooks run in registration order, so the topic (registered earlier) would be deleted
  // under a running consumer; tests also stop the exporter themselves once done.
  t.after(() => exporter.stop());
  return exporter;
}

/** `/metrics` as a map from series (`series`: labels sorted by name) to value. */
export async function scrape(url: string): Promise<Map<string, number>> {
  return metricsBySeries(await fetchMetricsText(url));
}

export { seriesKey as series };
