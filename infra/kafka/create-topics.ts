/**
 * Creates the project's topics (services/shared/core/topics.ts) on a cluster, idempotently:
 * missing topics are created, existing ones get their configs set back to the spec, and a
 * partition count that differs from the spec is reported but left alone (changing it would move
 * keys to other partitions and break per-VM order).
 *
 *   node --import tsx infra/kafka/create-topics.ts --brokers HOST:PORT[,HOST:PORT] [--prefix P]
 *     [--replication-factor N]
 */
import { parseArgs } from 'node:util';
import kafkajs, { Kafka, logLevel, type Admin } from 'kafkajs';
import { isTelemetryError } from '../../services/shared/core/errors.ts';
import { topicSpecs, type TopicSpec } from '../../services/shared/core/topics.ts';

// Not a named export under Node's ESM loader: kafkajs builds module.exports as one object literal
// that cjs-module-lexer does not see through.
const { ConfigResourceTypes } = kafkajs;

async function configsDiffering(admin: Admin, spec: TopicSpec): Promise<string[]> {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [
      { type: ConfigResourceTypes.TOPIC, name: spec.name, configNames: Object.keys(spec.configs) },
    ],
  });
  const actual = new Map(
    described.resources[0]?.configEntries.map((entry) => [entry.configName, entry.configValue]),
  );
  return Object.entries(spec.configs)
    .filter(([key, value]) => actual.get(key) !== value)
    .map(([key]) => key);
}

async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.name));
  if (missing.length > 0) {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((spec) => ({
        topic: spec.name,
        numPartitions: spec.numPartitions,
        replicationFactor: spec.replicationFactor,
        configEntries: Object.entries(spec.configs).map(([name, value]) => ({ name, value })),
      })),
    });
    for (const spec of missing) {
      console.log(`created ${spec.name} (${spec.numPartitions} partitions)`);
    }
  }

  const present = specs.filter((spec) => existing.has(spec.name));
  if (present.length === 0) return;
  const metadata = await admin.fetchTopicMetadata({ topics: present.map((spec) => spec.name) });
  for (const spec of present) {
    const partitions = metadata.topics.find((t) => t.name === spec.name)?.partitions.length;
    if (partitions !== spec.numPartitions) {
      console.warn(
        `warning: ${spec.name} has ${partitions} partitions, the spec says ${spec.numPartitions}; left as is`,
      );
    }
    const differing = await configsDiffering(admin, spec);
    if (differing.length === 0) {
      console.log(`exists ${spec.name}`);
      continue;
    }
    // AlterConfigs replaces the topic's whole config set, which is what converging to the spec means.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: spec.name,
          configEntries: Object.entries(spec.configs).map(([name, value]) => ({ name, value })),
        },
      ],
    });
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
  const admin = new Kafka({
    clientId: 'vfio-telemetry-create-topics',
    brokers: values.brokers.split(','),
    logLevel: logLevel.WARN,
  }).admin();
  await admin.connect();
  try {
    await ensureTopics(admin, specs);
  } finally {
    await admin.disconnect();
  }
  return 0;
}

process.exitCode = await main();
