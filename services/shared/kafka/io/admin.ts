/**
 * The port's cluster-level operations over one @platformatic/kafka `Admin`: topic description and
 * management, end offsets, committed offsets (asked for as stable, KIP-447), broker ids and the
 * transaction coordinator's view of transactional ids.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigResourceTypes,
  FetchIsolationLevels,
  FindCoordinatorKeyTypes,
  IncrementalAlterConfigOperationTypes,
  ListOffsetTimestamps,
  describeTransactionsV0,
  type Admin,
} from '@platformatic/kafka';
import { TelemetryError } from '../../core/errors.ts';
import { hasKafkaError, kafkaError, mapKafkaFailure } from './errors.ts';
import type {
  Isolation,
  TopicDescription,
  TopicPartition,
  TopicPartitionOffset,
  TopicToCreate,
  TransactionDescription,
} from './port.ts';

const LEADER_WAIT_MS = 30_000;
const UNSTABLE_OFFSET_WAIT_MS = 30_000;
const POLL_MS = 100;

function groupByTopic(partitions: readonly TopicPartition[]): Map<string, number[]> {
  const byTopic = new Map<string, number[]>();
  for (const { topic, partition } of partitions) {
    const list = byTopic.get(topic);
    if (list === undefined) byTopic.set(topic, [partition]);
    else if (!list.includes(partition)) list.push(partition);
  }
  return byTopic;
}

/** Effective configs of `topics` (topic overrides, else the broker's values), sensitive ones left out. */
export async function describeTopicConfigs(
  admin: Admin,
  topics: readonly string[],
): Promise<Map<string, Record<string, string>>> {
  const result = new Map<string, Record<string, string>>();
  if (topics.length === 0) return result;
  const described = await admin.describeConfigs({
    resources: topics.map((name) => ({
      resourceType: ConfigResourceTypes.TOPIC,
      resourceName: name,
    })),
  });
  for (const resource of described) {
    const configs: Record<string, string> = {};
    for (const config of resource.configs) {
      if (typeof config.value === 'string' && !config.isSensitive)
        configs[config.name] = config.value;
    }
    result.set(resource.resourceName, configs);
  }
  return result;
}

/**
 * Kafka lists only the topics a principal may DESCRIBE, so a topic it may not see looks missing.
 * Asking for the missing ones by name tells the two apart: an unknown topic answers
 * UNKNOWN_TOPIC_OR_PARTITION (left to the caller as missing), a hidden one
 * TOPIC_AUTHORIZATION_FAILED, which is thrown as the refusal it is.
 */
async function refuseHiddenTopics(admin: Admin, missing: readonly string[]): Promise<void> {
  if (missing.length === 0) return;
  try {
    await admin.metadata({
      topics: [...missing],
      autocreateTopics: false,
      forceUpdate: true,
      retries: 0,
    });
  } catch (error) {
    if (hasKafkaError(error, ['TOPIC_AUTHORIZATION_FAILED']))
      throw kafkaError('KAFKA_UNAVAILABLE', 'Kafka refused access to the topics.', error, {
        topics: missing,
      });
  }
}

export async function describeTopics(
  admin: Admin,
  names: readonly string[],
): Promise<Map<string, TopicDescription>> {
  return mapKafkaFailure(
    'Describing topics failed.',
    async () => {
      const result = new Map<string, TopicDescription>();
      const existing = new Set(await admin.listTopics({ includeInternals: true }));
      const wanted = [...new Set(names)].filter((name) => existing.has(name));
      await refuseHiddenTopics(
        admin,
        [...new Set(names)].filter((name) => !existing.has(name)),
      );
      if (wanted.length === 0) return result;
      const metadata = await admin.metadata({ topics: wanted, forceUpdate: true });
      const configs = await describeTopicConfigs(admin, wanted);
      for (const name of wanted) {
        const topic = metadata.topics.get(name);
        if (topic === undefined) continue;
        result.set(name, {
          name,
          partitions: topic.partitionsCount,
          replicationFactor: topic.partitions[0]?.replicas.length ?? 0,
          configs: configs.get(name) ?? {},
          leaders: Array.from(
            { length: topic.partitionsCount },
            (_, i) => topic.partitions[i]?.leader ?? -1,
          ),
        });
      }
      return result;
    },
    { topics: names },
  );
}

/** Creates the topics and waits until every partition has a leader. */
export async function createTopics(admin: Admin, topics: readonly TopicToCreate[]): Promise<void> {
  if (topics.length === 0) return;
  await mapKafkaFailure(
    'Creating topics failed.',
    async () => {
      // One request per topic: the client sends one config list for all the topics of a request.
      for (const topic of topics) {
        await admin.createTopics({
          topics: [topic.name],
          partitions: topic.numPartitions,
          replicas: topic.replicationFactor,
          configs: Object.entries(topic.configs).map(([name, value]) => ({ name, value })),
        });
      }
      const names = topics.map((topic) => topic.name);
      const deadline = Date.now() + LEADER_WAIT_MS;
      for (;;) {
        const metadata = await admin
          .metadata({ topics: names, forceUpdate: true })
          .catch(() => undefined);
        const ready =
          metadata !== undefined &&
          names.every((name) => {
            const topic = metadata.topics.get(name);
            return topic !== undefined && topic.partitions.every((p) => p.leader >= 0);
          });
        if (ready) return;
        if (Date.now() > deadline) {
          throw new TelemetryError('KAFKA_UNAVAILABLE', 'Created topics have no leader yet.', {
            details: { topics: names, waitedMs: LEADER_WAIT_MS },
          });
        }
        await sleep(POLL_MS);
      }
    },
    { topics: topics.map((topic) => topic.name) },
  );
}

/** Sets the given configs of a topic, leaving its other configs as they are. */
export async function alterTopicConfigs(
  admin: Admin,
  name: string,
  configs: Readonly<Record<string, string>>,
): Promise<void> {
  await mapKafkaFailure(
    'Altering topic configs failed.',
    () =>
      admin.incrementalAlterConfigs({
        resources: [
          {
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName: name,
            configs: Object.entries(configs).map(([configName, value]) => ({
              name: configName,
              configOperation: IncrementalAlterConfigOperationTypes.SET,
              value,
            })),
          },
        ],
      }),
    { topic: name },
  );
}

/** Deletes the topics that exist; deleting a missing topic is not an error. */
export async function deleteTopics(admin: Admin, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await mapKafkaFailure(
    'Deleting topics failed.',
    async () => {
      const existing = new Set(await admin.listTopics());
      const present = names.filter((name) => existing.has(name));
      if (present.length === 0) return;
      try {
        await admin.deleteTopics({ topics: present });
      } catch (error) {
        if (!hasKafkaError(error, ['UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID'])) throw error;
      }
    },
    { topics: names },
  );
}

export async function endOffsets(
  admin: Admin,
  partitions: readonly TopicPartition[],
  isolation: Isolation,
): Promise<TopicPartitionOffset[]> {
  if (partitions.length === 0) return [];
  return mapKafkaFailure(
    'Listing end offsets failed.',
    async () => {
      const listed = await admin.listOffsets({
        topics: [...groupByTopic(partitions)].map(([name, indexes]) => ({
          name,
          partitions: indexes.map((partitionIndex) => ({
            partitionIndex,
            timestamp: ListOffsetTimestamps.LATEST,
          })),
        })),
        isolationLevel:
          isolation === 'read_committed'
            ? FetchIsolationLevels.READ_COMMITTED
            : FetchIsolationLevels.READ_UNCOMMITTED,
      });
      const byKey = new Map<string, bigint>();
      for (const topic of listed) {
        for (const p of topic.partitions) byKey.set(`${topic.name}:${p.partitionIndex}`, p.offset);
      }
      return partitions.map(({ topic, partition }) => {
        const offset = byKey.get(`${topic}:${partition}`);
        if (offset === undefined) {
          throw new TelemetryError('KAFKA_UNAVAILABLE', 'The broker did not list an end offset.', {
            details: { topic, partition },
          });
        }
        return { topic, partition, offset };
      });
    },
    { isolation },
  );
}

/**
 * Offsets committed for `groupId`, with `requireStable` so that an offset still pending in an
 * open transaction is not returned stale (Kafka answers UNSTABLE_OFFSET_COMMIT until the
 * transaction ends; we retry). Partitions without a committed offset are left out.
 */
export async function committedOffsets(
  admin: Admin,
  groupId: string,
  partitions: readonly TopicPartition[],
): Promise<TopicPartitionOffset[]> {
  if (partitions.length === 0) return [];
  const deadline = Date.now() + UNSTABLE_OFFSET_WAIT_MS;
  for (;;) {
    try {
      const groups = await admin.listConsumerGroupOffsets({
        groups: [
          {
            groupId,
            topics: [...groupByTopic(partitions)].map(([name, partitionIndexes]) => ({
              name,
              partitionIndexes,
            })),
          },
        ],
        requireStable: true,
      });
      const byKey = new Map<string, bigint>();
      for (const group of groups) {
        for (const topic of group.topics) {
          for (const p of topic.partitions)
            byKey.set(`${topic.name}:${p.partitionIndex}`, p.committedOffset);
        }
      }
      const result: TopicPartitionOffset[] = [];
      for (const { topic, partition } of partitions) {
        const offset = byKey.get(`${topic}:${partition}`);
        if (offset !== undefined && offset >= 0n) result.push({ topic, partition, offset });
      }
      return result;
    } catch (error) {
      if (hasKafkaError(error, ['UNSTABLE_OFFSET_COMMIT']) && Date.now() < deadline) {
        await sleep(POLL_MS);
        continue;
      }
      throw kafkaError('KAFKA_UNAVAILABLE', 'Fetching committed offsets failed.', error, {
        groupId,
      });
    }
  }
}

export async function brokerIds(admin: Admin): Promise<number[]> {
  return mapKafkaFailure('Listing brokers failed.', async () => {
    const metadata = await admin.metadata({ topics: [], forceUpdate: true });
    return [...metadata.brokers.keys()].sort((a, b) => a - b);
  });
}

/** The first (`earliest`) or next (`latest`: high watermark, or LSO for read_committed) offsets. */
export async function boundaryOffsets(
  admin: Admin,
  partitions: readonly TopicPartition[],
  which: 'earliest' | 'latest',
  isolation: Isolation,
): Promise<TopicPartitionOffset[]> {
  if (which === 'latest') return endOffsets(admin, partitions, isolation);
  if (partitions.length === 0) return [];
  return mapKafkaFailure('Listing start offsets failed.', async () => {
    const listed = await admin.listOffsets({
      topics: [...groupByTopic(partitions)].map(([name, indexes]) => ({
        name,
        partitions: indexes.map((partitionIndex) => ({
          partitionIndex,
          timestamp: ListOffsetTimestamps.EARLIEST,
        })),
      })),
    });
    const byKey = new Map<string, bigint>();
    for (const topic of listed) {
      for (const p of topic.partitions) byKey.set(`${topic.name}:${p.partitionIndex}`, p.offset);
    }
    return partitions.map(({ topic, partition }) => ({
      topic,
      partition,
      offset: byKey.get(`${topic}:${partition}`) ?? 0n,
    }));
  });
}

/** Id of the broker coordinating `groupId`. */
export async function groupCoordinator(admin: Admin, groupId: string): Promise<number> {
  return mapKafkaFailure(
    'Finding the group coordinator failed.',
    async () => {
      const found = await admin.findCoordinator({
        keyType: FindCoordinatorKeyTypes.GROUP,
        keys: [groupId],
      });
      const coordinator = found.find((c) => c.key === groupId);
      if (coordinator === undefined || coordinator.nodeId < 0) {
        throw new TelemetryError('KAFKA_UNAVAILABLE', 'The group has no coordinator.', {
          details: { groupId },
        });
      }
      return coordinator.nodeId;
    },
    { groupId },
  );
}

/**
 * The transactions of `transactionalIds` as their coordinators know them (DescribeTransactions,
 * KIP-664): state (`Ongoing`, `PrepareCommit`, `CompleteCommit`, `CompleteAbort`, `Empty`...),
 * producer id and epoch, and the partitions of an open transaction. An id its coordinator has
 * never seen (TRANSACTIONAL_ID_NOT_FOUND) is absent from the map.
 */
export async function describeTransactions(
  admin: Admin,
  transactionalIds: readonly string[],
): Promise<Map<string, TransactionDescription>> {
  return mapKafkaFailure(
    'Describing transactions failed.',
    async () => {
      const result = new Map<string, TransactionDescription>();
      for (const id of new Set(transactionalIds)) {
        const [found] = await admin.findCoordinator({
          keyType: FindCoordinatorKeyTypes.TRANSACTION,
          keys: [id],
        });
        if (found === undefined || found.nodeId < 0) {
          throw new TelemetryError(
            'KAFKA_UNAVAILABLE',
            'The transactional id has no coordinator.',
            {
              details: { transactionalId: id },
            },
          );
        }
        const connection = (await admin.connectToBrokers([found.nodeId])).get(found.nodeId);
        if (connection === undefined) {
          throw new TelemetryError('KAFKA_UNAVAILABLE', 'No connection to the coordinator.', {
            details: { transactionalId: id, coordinator: found.nodeId },
          });
        }
        try {
          const response = await describeTransactionsV0.api.async(connection, [id]);
          for (const state of response.transactionStates) {
            result.set(state.transactionalId, {
              transactionalId: state.transactionalId,
              state: state.transactionState,
              producerId: state.producerId,
              producerEpoch: state.producerEpoch,
              partitions: state.topics.flatMap(({ topic, partitions }) =>
                partitions.map((partition) => ({ topic, partition })),
              ),
            });
          }
        } catch (error) {
          if (!hasKafkaError(error, ['TRANSACTIONAL_ID_NOT_FOUND'])) throw error;
        }
      }
      return result;
    },
    { transactionalIds },
  );
}
