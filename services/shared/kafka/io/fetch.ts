/**
 * Fetching from explicit positions with @platformatic/kafka's `Consumer.fetch`, for `readToEnd`
 * and the group consumer. Positions are ours, never the client's: the library's `MessagesStream`
 * keeps its own and labels records with the generation current when a response arrives, not the
 * one they were fetched under (messages-stream.js #pushRecords), which fencing cannot work with.
 *
 * `read_committed` filtering is done here, as Kafka's Java consumer does it (Fetcher: a batch of
 * an aborted producer is skipped from the aborted transaction's first offset until that producer's
 * ABORT marker). The client's own filter (consumer.js #filterUncommittedMessages) must never run:
 * it ends a producer's aborted range at that producer's LAST abort marker in the response, so with
 * two aborted transactions of one producer in a response it drops every committed transaction
 * between them (the fault matrix's rolling restart found it: a processor's restore missed 270
 * offsets of its state partition, 196 committed records, and recomputed transitions it had already
 * published). See `wireIsolation` for how it is kept from running.
 */
import type { ConnectionPool, Consumer, fetchV17 } from '@platformatic/kafka';
import { FetchIsolationLevels } from '@platformatic/kafka';
import { committedRecords } from '../core/committed-records.ts';
import { errorResponses } from './errors.ts';
import type { ConsumedRecord, Isolation, TopicPartition, TopicPartitionOffset } from './port.ts';

type FetchResponse = fetchV17.FetchResponse;

const OFFSET_OUT_OF_RANGE = 1;

export interface FetchSettings {
  readonly isolation: Isolation;
  readonly maxWaitMs: number;
  readonly maxBytes: number;
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

/**
 * The isolation level put on the wire. For read_committed it is a Number object holding 1: the
 * broker reads read_committed (it stops at the last stable offset and lists the aborted
 * transactions), and @platformatic/kafka 2.12's `Consumer.fetch`, which runs its aborted-message
 * filter only when the level `=== READ_COMMITTED`, leaves the batches to `committedRecords` (kafka/core/committed-records.ts). The
 * level is written with `Buffer.writeInt8`, which takes the object's value. A real-broker test
 * (test/e2e/shared/kafka/port.test.ts, "regression: committed transactions between two aborted
 * ones") fails if the library's filter runs again.
 */
export function wireIsolation(isolation: Isolation): number {
  return isolation === 'read_committed'
    ? (Object(FetchIsolationLevels.READ_COMMITTED) as number)
    : FetchIsolationLevels.READ_UNCOMMITTED;
}

/**
 * One fetch of every position, one request per partition leader (concurrently). Rejects only when
 * no response came back at all (the caller backs off and retries); per-partition errors are in
 * the result.
 */
export async function fetchPositions(
  consumer: Consumer,
  positions: readonly TopicPartitionOffset[],
  settings: FetchSettings,
): Promise<FetchedPartition[]> {
  const topics = [...new Set(positions.map((p) => p.topic))];
  const metadata = await consumer.metadata({ topics });
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
      return [
        await consumer.fetch({
          node: Math.max(node, 0),
          topics: [...byTopic].map(([topicId, list]) => ({
            topicId,
            partitions: list.map((p) => ({
              partition: p.partition,
              fetchOffset: p.offset,
              partitionMaxBytes: settings.maxBytes,
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            })),
          })),
          maxWaitTime: settings.maxWaitMs,
          minBytes: 1,
          maxBytes: settings.maxBytes,
          isolationLevel: wireIsolation(settings.isolation),
          ...(settings.connectionPool === undefined
            ? {}
            : { connectionPool: settings.connectionPool }),
        }),
      ];
    } catch (error) {
      const responses = errorResponses(error).filter(isFetchResponse);
      if (responses.length === 0) throw error;
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
