/**
 * The one place the Kafka port (kafka/io/port.ts) is built, over @platformatic/kafka: one `Admin`
 * for cluster-level calls, a `Producer` per `producer()`, a `Consumer` per `groupConsumer()` and
 * per `readToEnd()`. Every client shares the connection and retry settings of
 * base-options.ts and logs through our logger.
 *
 * Retry settings are bounded so that a call to an unreachable cluster returns an error to the
 * caller in seconds instead of retrying for minutes inside the client: stages have their own
 * outer retry (the collector spools, consumers back off).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin, Consumer } from '@platformatic/kafka';
import { TelemetryError } from '../../core/errors.ts';
import { outOfRangeAction } from '../core/out-of-range.ts';
import * as admin from './admin.ts';
import { baseOptions, observeClient, type KafkaClientOptions } from './base-options.ts';
import { kafkaError } from './errors.ts';
import { fetchPositions } from './fetch.ts';
import { checkKafkaSecurityFiles } from './security.ts';
import { PortGroupConsumer } from './group-consumer.ts';
import type {
  ConsumedRecord,
  GroupConsumer,
  GroupConsumerOptions,
  Isolation,
  KafkaPort,
  Producer,
  ProducerOptions,
  TopicPartitionOffset,
} from './port.ts';
import { PortProducer, type TopicLimits } from './producer.ts';

export type { KafkaClientOptions } from './base-options.ts';

/** `message.max.bytes`'s default (1 MiB + the 12-byte log overhead) if a topic reports none. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
const READ_MAX_WAIT_MS = 200;
const READ_MAX_BYTES = 8 * 1024 * 1024;
/** `readToEnd` fails when no fetch made progress for this long. */
const READ_STALL_MS = 30_000;
const READ_BACKOFF_MS = 200;

/** Throws CONFIG_INVALID when a file of `options.security` cannot be used (exit 2 at start). */
export function createKafkaPort(options: KafkaClientOptions): KafkaPort {
  checkKafkaSecurityFiles(options.security);
  const logger = options.logger.child({ component: 'kafka' });
  const adminClient = new Admin(baseOptions(options, 'admin'));
  observeClient(adminClient, logger.child({ component: 'kafka-admin' }));
  const limits = new Map<string, TopicLimits>();
  const coordinators = new Map<string, number>();
  const open = new Set<{ close(): Promise<void> }>();
  let closed = false;

  const checkOpen = (): void => {
    if (closed) throw new TelemetryError('KAFKA_UNAVAILABLE', 'The Kafka port is closed.');
  };

  /** `max.message.bytes` and partition count of each topic, read once and cached. */
  const topicLimits = async (
    topics: readonly string[],
    refresh: boolean,
  ): Promise<Map<string, TopicLimits>> => {
    const missing = topics.filter((topic) => refresh || !limits.has(topic));
    if (missing.length > 0) {
      const described = await admin.describeTopics(adminClient, missing);
      for (const topic of missing) {
        const description = described.get(topic);
        if (description === undefined) {
          throw new TelemetryError('KAFKA_PUBLISH_FAILED', 'The topic does not exist.', {
            details: { topic, written: [] },
          });
        }
        const configured = Number(description.configs['max.message.bytes']);
        limits.set(topic, {
          maxMessageBytes:
            Number.isFinite(configured) && configured > 0 ? configured : DEFAULT_MAX_MESSAGE_BYTES,
          partitions: description.partitions,
        });
      }
    }
    return new Map(topics.map((topic) => [topic, limits.get(topic)!]));
  };

  const groupCoordinator = async (groupId: string, refresh: boolean): Promise<number> => {
    const cached = coordinators.get(groupId);
    if (cached !== undefined && !refresh) return cached;
    const id = await admin.groupCoordinator(adminClient, groupId);
    coordinators.set(groupId, id);
    return id;
  };

  const track = <T extends { close(): Promise<void> }>(resource: T): T => {
    const close = resource.close.bind(resource);
    open.add(resource);
    resource.close = async () => {
      open.delete(resource);
      await close();
    };
    return resource;
  };

  const readToEnd = async (
    from: readonly TopicPartitionOffset[],
    onRecord: (record: ConsumedRecord) => void,
    isolation: Isolation = 'read_committed',
    until: readonly TopicPartitionOffset[] = [],
  ): Promise<TopicPartitionOffset[]> => {
    checkOpen();
    if (from.length === 0) return [];
    const stops = new Map(until.map((p) => [`${p.topic}:${p.partition}`, p.offset]));
    const ends = (await admin.endOffsets(adminClient, from, isolation)).map((p) => {
      const stop = stops.get(`${p.topic}:${p.partition}`);
      return stop !== undefined && stop < p.offset ? { ...p, offset: stop } : p;
    });
    const end = new Map(ends.map((p) => [`${p.topic}:${p.partition}`, p.offset]));
    const positions = new Map(from.map((p) => [`${p.topic}:${p.partition}`, { ...p }]));
    const reader = new Consumer({
      ...baseOptions(options, 'reader'),
      groupId: `${options.clientId}-reader-${randomUUID()}`,
    });
    observeClient(reader, logger.child({ component: 'kafka-reader' }));
    reader.topics.trackAll(...new Set(from.map((p) => p.topic)));
    try {
      let lastProgress = Date.now();
      for (;;) {
        const pending = [...positions.values()].filter(
          (p) => p.offset < end.get(`${p.topic}:${p.partition}`)!,
        );
        if (pending.length === 0) return ends;
        let fetched;
        try {
          fetched = await fetchPositions(reader, pending, {
            isolation,
            maxWaitMs: READ_MAX_WAIT_MS,
            maxBytes: READ_MAX_BYTES,
          });
        } catch (error) {
          if (Date.now() - lastProgress > READ_STALL_MS) throw error;
          reader.clearMetadata();
          await sleep(READ_BACKOFF_MS);
          continue;
        }
        const outOfRange: TopicPartitionOffset[] = [];
        for (const partition of fetched) {
          const key = `${partition.topic}:${partition.partition}`;
          const position = positions.get(key)!;
          const stop = end.get(key)!;
          if (partition.error !== undefined) {
            if (partition.error.outOfRange) outOfRange.push(position);
            continue;
          }
          for (const record of partition.records) {
            if (record.offset >= stop) break;
            onRecord(record);
          }
          if (partition.nextOffset > position.offset) {
            position.offset = partition.nextOffset;
            lastProgress = Date.now();
          }
        }
        if (outOfRange.length > 0) {
          // shared/kafka/core/out-of-range.ts: move to the log start or retry, never skip ahead.
          const starts = await admin.boundaryOffsets(
            adminClient,
            outOfRange,
            'earliest',
            isolation,
          );
          let behind = false;
          for (const start of starts) {
            const position = positions.get(`${start.topic}:${start.partition}`)!;
            const action = outOfRangeAction(position.offset, start.offset);
            if (action.kind === 'move_to_log_start') {
              logger.warn('Records before the log start are gone; reading on from the start.', {
                topic: start.topic,
                partition: start.partition,
                from: String(position.offset),
                logStart: String(action.offset),
              });
              position.offset = action.offset;
              lastProgress = Date.now();
            } else {
              behind = true;
            }
          }
          if (behind) {
            reader.clearMetadata();
            await sleep(READ_BACKOFF_MS);
          }
        }
        if (Date.now() - lastProgress > READ_STALL_MS) {
          throw new TelemetryError(
            'KAFKA_UNAVAILABLE',
            'Reading to the end of the partitions made no progress.',
            {
              details: {
                pending: pending.map((p) => ({ ...p, offset: String(p.offset) })),
                stalledMs: READ_STALL_MS,
              },
            },
          );
        }
        if (
          fetched.length === 0 ||
          fetched.some((p) => p.error !== undefined && !p.error.outOfRange)
        ) {
          reader.clearMetadata();
          await sleep(READ_BACKOFF_MS);
        }
      }
    } catch (error) {
      throw kafkaError('KAFKA_UNAVAILABLE', 'Reading partitions to their end failed.', error);
    } finally {
      await reader.close(true).catch(() => undefined);
    }
  };

  return {
    producer(producerOptions: ProducerOptions = {}): Promise<Producer> {
      if (closed)
        return Promise.reject(new TelemetryError('KAFKA_UNAVAILABLE', 'The Kafka port is closed.'));
      return Promise.resolve(
        track(
          new PortProducer(
            { client: options, logger, topicLimits, groupCoordinator },
            producerOptions,
          ),
        ),
      );
    },
    async groupConsumer(consumerOptions: GroupConsumerOptions): Promise<GroupConsumer> {
      checkOpen();
      const consumer = await PortGroupConsumer.open(
        {
          client: options,
          logger,
          committedOffsets: (groupId, partitions) =>
            admin.committedOffsets(adminClient, groupId, partitions),
          boundaryOffsets: (partitions, which, isolation) =>
            admin.boundaryOffsets(adminClient, partitions, which, isolation),
          groupCoordinator,
        },
        consumerOptions,
      );
      return track(consumer);
    },
    readToEnd,
    endOffsets: (partitions, isolation) => admin.endOffsets(adminClient, partitions, isolation),
    committedOffsets: (groupId, partitions) =>
      admin.committedOffsets(adminClient, groupId, partitions),
    describeTopics: (names) => admin.describeTopics(adminClient, names),
    createTopics: (topics) => admin.createTopics(adminClient, topics),
    async alterTopicConfigs(name, configs) {
      await admin.alterTopicConfigs(adminClient, name, configs);
      limits.delete(name);
    },
    async deleteTopics(names) {
      await admin.deleteTopics(adminClient, names);
      for (const name of names) limits.delete(name);
    },
    brokerIds: () => admin.brokerIds(adminClient),
    describeTransactions: (ids) => admin.describeTransactions(adminClient, ids),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...open].map((resource) => resource.close()));
      await adminClient.close().catch((error: unknown) => {
        logger.debug('Closing the Kafka admin client failed.', { error });
      });
    },
  };
}
