/**
 * The narrow port through which every stage reaches Kafka (STYLE.md rule 4, BullMQ's "only the
 * commands we actually use"). One adapter implements it: `kafka/io/client.ts`, over
 * @platformatic/kafka 2.x. `test/e2e/shared/kafka/port.test.ts` is its conformance suite, run
 * against the real broker (one node and the three-node cluster).
 *
 * What the port promises, so callers never infer delivery from a resolved promise:
 * - `send` resolves only with one acknowledgement per partition it wrote, each with the base
 *   offset Kafka assigned; a record Kafka refuses for good (too large for the topic, invalid) is
 *   returned in `refused`, never silently dropped and never retried; anything else that fails
 *   rejects the whole call with `KAFKA_PUBLISH_FAILED` and `details.written` naming the
 *   partitions that were written before the failure.
 * - Requests are split so that no partition's record batch exceeds the topic's
 *   `max.message.bytes` (read from the cluster when the producer opens), whatever the caller
 *   hands in (issue 13: a large fetch must never yield one oversized request).
 * - A transaction either commits all of its records and offsets or none; a zombie (a member of
 *   an older group generation, or a fenced producer epoch) gets `KAFKA_FENCED` and its records
 *   are aborted by the broker.
 * - Group consumers and `readToEnd` read `read_committed` unless told otherwise.
 */

import type { ConsumedRecord, Isolation, RecordHeader } from '../core/records.ts';

export type { ConsumedRecord, Isolation, RecordHeader };

/** A record to produce. Partitions are always explicit: the stages choose them. */
export interface OutgoingRecord {
  readonly topic: string;
  readonly partition: number;
  readonly key: Buffer | null;
  /** `null` is a tombstone (compacted topics forget the key). */
  readonly value: Buffer | null;
  readonly headers?: readonly RecordHeader[];
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** Offset = the next offset to read (Kafka's committed-offset convention). */
export interface TopicPartitionOffset extends TopicPartition {
  readonly offset: bigint;
}

/** Kafka's acknowledgement of the records one `send` wrote to one partition. */
export interface PartitionAck extends TopicPartition {
  readonly baseOffset: bigint;
  readonly count: number;
}

/** A record Kafka will never take as it is (e.g. `MESSAGE_TOO_LARGE`, `INVALID_RECORD`). */
export interface RefusedRecord {
  /** Index of the record in the array handed to `send`. */
  readonly index: number;
  /** Kafka's error name, e.g. `MESSAGE_TOO_LARGE`. */
  readonly reason: string;
  readonly detail: string;
}

export interface SendResult {
  readonly acks: readonly PartitionAck[];
  readonly refused: readonly RefusedRecord[];
}

export interface TopicDescription {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Effective topic configs (`cleanup.policy`, `max.message.bytes`, `min.insync.replicas`...). */
  readonly configs: Readonly<Record<string, string>>;
  /** Partition → id of its current leader broker (-1 while it has none). */
  readonly leaders: readonly number[];
}

/** A transactional id as its transaction coordinator describes it (DescribeTransactions). */
export interface TransactionDescription {
  readonly transactionalId: string;
  /** Kafka's state name: `Empty`, `Ongoing`, `PrepareCommit`, `CompleteCommit`, `PrepareAbort`... */
  readonly state: string;
  readonly producerId: bigint;
  readonly producerEpoch: number;
  /** The partitions of the open transaction (none once it ended). */
  readonly partitions: readonly TopicPartition[];
}

export interface TopicToCreate {
  readonly name: string;
  readonly numPartitions: number;
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

/** The consumer-group facts a transaction's offset commit carries (KIP-447 fencing). */
export interface GroupMembership {
  readonly groupId: string;
  readonly generationId: number;
  readonly memberId: string;
  /** Partitions assigned to this member in this generation. */
  readonly assigned: readonly TopicPartition[];
}

/** What one call to `GroupConsumer.nextBatch` hands over. */
export interface ConsumedBatch {
  /** In offset order per partition; several partitions may be interleaved. */
  readonly records: readonly ConsumedRecord[];
  /** The membership the records were fetched under. */
  readonly membership: GroupMembership;
}

export interface GroupConsumerOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Default `read_committed`. */
  readonly isolation?: Isolation;
  /** Where a partition with no committed offset starts. Default `earliest`. */
  readonly startWith?: 'earliest' | 'latest';
  readonly sessionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly rebalanceTimeoutMs?: number;
  /**
   * `group.instance.id` (static membership, KIP-345): a member that restarts with the same id
   * takes its partitions back at once, without a rebalance and without waiting for its old
   * session to expire. Unique among the group's live members.
   */
  readonly groupInstanceId?: string;
  /** Upper bound of bytes one fetch returns (across partitions). */
  readonly maxBytes?: number;
  /** How long the broker may hold a fetch open waiting for data. */
  readonly maxWaitMs?: number;
}

export interface GroupConsumer {
  /**
   * The records fetched since the last call, at most `maxRecords`; waits up to `waitMs` for at
   * least one. Resolves `null` once the consumer is closed. Records from a previous generation
   * are never handed over after `membership()` has changed.
   */
  nextBatch(maxRecords: number, waitMs: number): Promise<ConsumedBatch | null>;
  /** The current membership, or `null` while not in the group. */
  membership(): GroupMembership | null;
  /** Called (synchronously) whenever the membership changes, including leaving the group. */
  onMembershipChange(listener: (membership: GroupMembership | null) => void): void;
  /**
   * Reads the given partitions again from `offsets` (fetched records of them not yet handed over
   * are dropped), if `membership` is still the current one; false (nothing moved) otherwise.
   */
  seek(membership: GroupMembership, offsets: readonly TopicPartitionOffset[]): boolean;
  /** Commits offsets outside any transaction (the exporter's path). */
  commit(offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /** Leaves the group and closes the connections. */
  close(): Promise<void>;
}

export interface ProducerOptions {
  /** Sets `transactional.id` (implies idempotence). Stable per process instance. */
  readonly transactionalId?: string;
  /** How long the broker lets a transaction stay open before aborting it. Default 10 000. */
  readonly transactionTimeoutMs?: number;
}

export interface Producer {
  /**
   * InitProducerId for the transactional id now (Java's `initTransactions`): bumps its epoch,
   * which fences any earlier producer with the same id and ends its open transaction (aborted
   * at once; one whose commit was already under way completes first). Transactional producers
   * only.
   */
  initTransactions(): Promise<void>;
  /**
   * Opens the connections now: a producer id (idempotent producers; transactional ones get theirs
   * from `initTransactions`) and the metadata of `topics`, so that the first `send` does not pay
   * for them. Optional: `send` connects by itself.
   */
  connect(topics: readonly string[]): Promise<void>;
  /** Idempotent produce with acks from all in-sync replicas. See the file comment. */
  send(records: readonly OutgoingRecord[]): Promise<SendResult>;
  /**
   * One transaction: the records, then the offsets committed for the group with its membership
   * (so a stale member is fenced by the broker), then commit. On failure the transaction is
   * aborted and the call rejects: `KAFKA_FENCED` when this producer or member is a zombie (drop
   * the state of the partitions involved, rejoin, restore), `KAFKA_PUBLISH_FAILED` otherwise.
   * Refused records are returned and were not part of the transaction.
   *
   * The commit itself (EndTxn) is retried while it fails retriably, until `commitDeadlineMs`
   * after the transaction began; if it has not been answered by then, the call rejects with
   * `KAFKA_OUTCOME_UNKNOWN` (with `details.refused`) and the transaction is NOT aborted: it may
   * have committed. The next `initTransactions` settles it (a commit under way completes, an
   * open transaction is aborted); reading the state it wrote tells which.
   */
  commitTransaction(transaction: {
    readonly records: readonly OutgoingRecord[];
    readonly offsets: readonly TopicPartitionOffset[];
    readonly membership: GroupMembership;
    readonly commitDeadlineMs?: number;
  }): Promise<SendResult>;
  close(): Promise<void>;
}

export interface KafkaPort {
  producer(options?: ProducerOptions): Promise<Producer>;
  groupConsumer(options: GroupConsumerOptions): Promise<GroupConsumer>;
  /**
   * Reads each partition from its start offset to its end as of the call (the last stable
   * offset for `read_committed`; control records and aborted records are skipped), calling
   * `onRecord` in offset order per partition. Resolves with the end offsets it read to. With
   * `until`, a partition listed there stops before that offset if it comes before the end.
   */
  readToEnd(
    from: readonly TopicPartitionOffset[],
    onRecord: (record: ConsumedRecord) => void,
    isolation?: Isolation,
    until?: readonly TopicPartitionOffset[],
  ): Promise<TopicPartitionOffset[]>;
  /** End offsets: the high watermark (`read_uncommitted`) or the last stable offset. */
  endOffsets(
    partitions: readonly TopicPartition[],
    isolation: Isolation,
  ): Promise<TopicPartitionOffset[]>;
  /** Offsets committed for a group, asked for as stable (KIP-447 `requireStable`). */
  committedOffsets(
    groupId: string,
    partitions: readonly TopicPartition[],
  ): Promise<TopicPartitionOffset[]>;
  /** Topics that do not exist are absent from the map. */
  describeTopics(names: readonly string[]): Promise<Map<string, TopicDescription>>;
  createTopics(topics: readonly TopicToCreate[]): Promise<void>;
  alterTopicConfigs(name: string, configs: Readonly<Record<string, string>>): Promise<void>;
  deleteTopics(names: readonly string[]): Promise<void>;
  /** Ids of the brokers the cluster metadata lists now. */
  brokerIds(): Promise<number[]>;
  /** Transactional ids as their coordinators know them; ids never seen are absent. */
  describeTransactions(
    transactionalIds: readonly string[],
  ): Promise<Map<string, TransactionDescription>>;
  close(): Promise<void>;
}
