/**
 * Fetching from explicit positions, for `readToEnd` and the group consumer: one Fetch (v17)
 * request per partition leader, sent by us on the client's connections, as the group consumer
 * sends OffsetCommit. Positions are ours, never the client's: the library's `MessagesStream`
 * keeps its own and labels records with the generation current when a response arrives, not the
 * one they were fetched under (messages-stream.js #pushRecords), which fencing cannot work with.
 *
 * `read_committed` filtering is ours too (kafka/core/committed-records.ts), as Kafka's Java
 * consumer does it. The client's `Consumer.fetch` must not be used: at read_committed it runs its
 * own filter (consumer.js #filterUncommittedMessages), which ends a producer's aborted range at
 * that producer's LAST abort marker in the response and so drops every committed transaction
 * between two aborted ones (the fault matrix's rolling restart found it: a processor's restore
 * missed 196 committed records of its state partition). Sending the request ourselves keeps the
 * batches as the broker sent them, with no trick on the isolation level (docs/decisions.md).
 *
 * Fetch sessions (KIP-227) are not used: every request is a full, sessionless fetch
 * (session id 0, epoch -1), so nothing is cached between requests but the cluster metadata,
 * which is refreshed after an error that says the leader moved.
 */
import type { ConnectionPool, Connection, Consumer } from '@platformatic/kafka';
import { FetchIsolationLevels, fetchV17 } from '@platformatic/kafka';
import { committedRecords } from '../core/committed-records.ts';
import { errorResponses } from './errors.ts';
import type { ConsumedRecord, Isolation, TopicPartition, TopicPartitionOffset } from './port.ts';

type FetchResponse = fetchV17.FetchResponse;

const OFFSET_OUT_OF_RANGE = 1;

export interface FetchSettings {
  readonly isolation: Isolation;
  readonly maxWaitMs: number;
  readonly maxBytes: number;
  /** Bytes of one partition in a response at most (default `maxBytes`): see core/fetch-order.ts. */
  readonly partitionMaxBytes?: number;
  readonly connectionPool?: ConnectionPool;
}

export interface FetchedPartition extends TopicPartition {
  /** Records at or after the requested offset, in offset order, aborted and control ones removed. */
  readonly records: ConsumedRecord[];
  /** Where the next fetch starts (past control and aborted batches too). */
  readonly nextOffset: bigint;
  /** Kafka's error name for this partition, if it had one (`OFFSET_OUT_OF_RANGE`, ...). */
  readonly error?: { readonly code: number; readonly outOfRange: boolean };
  readonly logStartOffset: bigint;
  readonly highWatermark: bigint;
}

function isFetchResponse(value: unknown): value is FetchResponse {
  const responses = (value as { responses?: unknown } | null)?.responses;
  return (
    Array.isArray(responses) &&
    responses.every((r) => Array.isArray((r as { partitions?: unknown }).partitions))
  );
}

const SESSIONLESS_ID = 0;
const SESSIONLESS_EPOCH = -1;

/** Partition errors after which the leader is elsewhere: the next fetch re-reads the metadata. */
const LEADERSHIP_ERRORS = new Set([
  3, // UNKNOWN_TOPIC_OR_PARTITION
  5, // LEADER_NOT_AVAILABLE
  6, // NOT_LEADER_OR_FOLLOWER
  74, // FENCED_LEADER_EPOCH
  75, // UNKNOWN_LEADER_EPOCH
]);

/** Consumers whose cached metadata a failed or misdirected fetch showed to be stale. */
const staleMetadata = new WeakSet<Consumer>();

export function wireIsolation(isolation: Isolation): number {
  return isolation === 'read_committed'
    ? FetchIsolationLevels.READ_COMMITTED
    : FetchIsolationLevels.READ_UNCOMMITTED;
}

async function connectionTo(
  consumer: Consumer,
  node: number,
  broker: { host: string; port: number } | undefined,
  pool: ConnectionPool | undefined,
): Promise<Connection> {
  if (pool !== undefined && broker !== undefined) return pool.get(broker);
  const connection = (await consumer.connectToBrokers([node])).get(node);
  if (connection === undefined) throw new Error(`No connection to broker ${node}.`);
  return connection;
}

/**
 * One fetch of every position, one request per partition leader (concurrently), the partitions
 * asked for in the order given. Rejects only when
 * no response came back at all (the caller backs off and retries); per-partition errors are in
 * the result.
 */
export async function fetchPositions(
  consumer: Consumer,
  positions: readonly TopicPartitionOffset[],
  settings: FetchSettings,
): Promise<FetchedPartition[]> {
  const topics = [...new Set(positions.map((p) => p.topic))];
  const forceUpdate = staleMetadata.has(consumer);
  staleMetadata.delete(consumer);
  const metadata = await consumer.metadata({ topics, forceUpdate });
  const byNode = new Map<number, Map<string, TopicPartitionOffset[]>>();
  const names = new Map<string, string>();
  for (const position of positions) {
    const topic = metadata.topics.get(position.topic);
    if (topic === undefined) continue;
    names.set(topic.id, position.topic);
    const leader = topic.partitions[position.partition]?.leader ?? -1;
    let node = byNode.get(leader);
    if (node === undefined) byNode.set(leader, (node = new Map<string, TopicPartitionOffset[]>()));
    const list = node.get(topic.id);
    if (list === undefined) node.set(topic.id, [position]);
    else list.push(position);
  }
  const wanted = new Map(positions.map((p) => [`${p.topic}:${p.partition}`, p.offset]));
  const requests = [...byNode].map(async ([node, byTopic]): Promise<FetchResponse[]> => {
    try {
      // No known leader: ask any broker, whose per-partition error refreshes the metadata.
      const target = node >= 0 ? node : ([...metadata.brokers.keys()][0] ?? 0);
      const connection = await connectionTo(
        consumer,
        target,
        metadata.brokers.get(target),
        settings.connectionPool,
      );
      return [
        await fetchV17.api.async(
          connection,
          settings.maxWaitMs,
          1,
          settings.maxBytes,
          wireIsolation(settings.isolation),
          SESSIONLESS_ID,
          SESSIONLESS_EPOCH,
          [...byTopic].map(([topicId, list]) => ({
            topicId,
            partitions: list.map((p) => ({
              partition: p.partition,
              fetchOffset: p.offset,
              partitionMaxBytes: settings.partitionMaxBytes ?? settings.maxBytes,
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            })),
          })),
          [],
          '',
        ),
      ];
    } catch (error) {
      const responses = errorResponses(error).filter(isFetchResponse);
      if (responses.length === 0) {
        staleMetadata.add(consumer);
        throw error;
      }
      return responses.slice(-1);
    }
  });
  const settled = await Promise.allSettled(requests);
  const failures = settled.filter((s) => s.status === 'rejected');
  if (failures.length === settled.length && failures.length > 0) {
    throw (failures[0] as PromiseRejectedResult).reason;
  }
  const result: FetchedPartition[] = [];
  for (const outcome of settled) {
    if (outcome.status !== 'fulfilled') continue;
    for (const response of outcome.value) {
      for (const topicResponse of response.responses) {
        const topic = names.get(topicResponse.topicId);
        if (topic === undefined) continue;
        for (const partition of topicResponse.partitions) {
          const fetchOffset = wanted.get(`${topic}:${partition.partitionIndex}`);
          // A fetch session may echo partitions nobody asked for this time.
          if (fetchOffset === undefined) continue;
          const common = {
            topic,
            partition: partition.partitionIndex,
            logStartOffset: partition.logStartOffset,
            highWatermark: partition.highWatermark,
          };
          if (partition.errorCode !== 0) {
            if (LEADERSHIP_ERRORS.has(partition.errorCode)) staleMetadata.add(consumer);
            result.push({
              ...common,
              records: [],
              nextOffset: fetchOffset,
              error: {
                code: partition.errorCode,
                outOfRange: partition.errorCode === OFFSET_OUT_OF_RANGE,
              },
            });
            continue;
          }
          result.push({
            ...common,
            ...committedRecords(topic, partition, fetchOffset, settings.isolation),
          });
        }
      }
    }
  }
  return result;
}
