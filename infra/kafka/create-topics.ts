/**
 * Creates the project's topics (services/shared/core/topics.ts) on a cluster, idempotently:
 * missing topics are created, existing ones get their configs set back to the spec, and a
 * partition count or replication factor that differs from the spec is reported but left alone
 * (changing the partition count would move keys to other partitions and break per-VM order).
 *
 * `min.insync.replicas` follows the replication factor: 2 from three replicas up, so that an
 * acknowledged write (acks=all) is on two brokers and survives losing one while the topic stays
 * writable with one broker down; 1 below that, where 2 would make a single replica's absence stop
 * every write.
 *
 *   node --import tsx infra/kafka/create-topics.ts --brokers HOST:PORT[,HOST:PORT] [--prefix P]
 *     [--replication-factor N]
 *
 * A secured cluster: the KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_TLS_* variables of the
 * stages (docs/operations.md), e.g. those of STATE_DIR/tls/admin.env from `start.sh --secure`.
 */
import '../../bin/require-node.js';
import { parseArgs } from 'node:util';
import { isTelemetryError } from '../../services/shared/core/errors.ts';
import { topicSpecs, type TopicSpec } from '../../services/shared/core/topics.ts';
import { parseKafkaSecurityEnv } from '../../services/shared/kafka/core/options.ts';
import { createKafkaPort } from '../../services/shared/kafka/io/client.ts';
import type { KafkaPort } from '../../services/shared/kafka/io/port.ts';
import { createLogger } from '../../services/shared/io/logger.ts';

/** The spec's configs plus the durability setting that depends on the replication factor. */
function configsFor(spec: TopicSpec, replicationFactor: number): Record<string, string> {
  return {
    ...spec.configs,
    'min.insync.replicas': replicationFactor >= 3 ? '2' : '1',
  };
}

async function ensureTopics(port: KafkaPort, specs: readonly TopicSpec[]): Promise<void> {
  const existing = await port.describeTopics(specs.map((spec) => spec.name));
  const missing = specs.filter((spec) => !existing.has(spec.name));
  if (missing.length > 0) {
    await port.createTopics(
      missing.map((spec) => ({
        name: spec.name,
        numPartitions: spec.numPartitions,
        replicationFactor: spec.replicationFactor,
        configs: configsFor(spec, spec.replicationFactor),
      })),
    );
    for (const spec of missing) {
      console.log(
        `created ${spec.name} (${spec.numPartitions} partitions, replication factor ${spec.replicationFactor})`,
      );
    }
  }

  for (const spec of specs) {
    const topic = existing.get(spec.name);
    if (topic === undefined) continue;
    if (topic.partitions !== spec.numPartitions) {
      console.warn(
        `warning: ${spec.name} has ${topic.partitions} partitions, the spec says ${spec.numPartitions}; left as is`,
      );
    }
    if (topic.replicationFactor !== spec.replicationFactor) {
      console.warn(
        `warning: ${spec.name} has replication factor ${topic.replicationFactor}, the spec says ${spec.replicationFactor}; left as is`,
      );
    }
    // From the replicas the topic has, not the spec's: 2 on a one-replica topic stops all writes.
    const wanted = configsFor(spec, topic.replicationFactor);
    const differing = Object.entries(wanted)
      .filter(([key, value]) => topic.configs[key] !== value)
      .map(([key]) => key);
    if (differing.length === 0) {
      console.log(`exists ${spec.name}`);
      continue;
    }
    // Only the spec's keys are set; configs the spec does not mention are left as they are.
    await port.alterTopicConfigs(spec.name, wanted);
    console.log(`updated ${spec.name}: ${differing.join(', ')}`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      brokers: { type: 'string' },
      prefix: { type: 'string', default: '' },
      'replication-factor': { type: 'string', default: '1' },
    },
  });
  if (values.brokers === undefined) {
    console.error('create-topics: --brokers HOST:PORT[,HOST:PORT] is required');
    return 64;
  }
  let specs: readonly TopicSpec[];
  try {
    specs = topicSpecs({
      prefix: values.prefix,
      replicationFactor: Number(values['replication-factor']),
    });
  } catch (error) {
    if (!isTelemetryError(error, 'CONFIG_INVALID')) throw error;
    console.error(`create-topics: ${error.message}: ${JSON.stringify(error.details)}`);
    return 64;
  }
  const port = createKafkaPort({
    brokers: values.brokers.split(','),
    clientId: 'vfio-telemetry-create-topics',
    logger: createLogger({ level: 'warn' }),
    security: parseKafkaSecurityEnv(process.env),
  });
  try {
    await ensureTopics(port, specs);
  } finally {
    await port.close();
  }
  return 0;
}

process.exitCode = await main();
