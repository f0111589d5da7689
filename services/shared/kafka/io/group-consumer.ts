/**
 * The port's `GroupConsumer`: a @platformatic/kafka `Consumer` keeps the group membership (join,
 * sync, heartbeats, rejoin), and a fetch loop of ours reads the assigned partitions from
 * positions of ours into a bounded buffer that `nextBatch` drains.
 *
 * Group protocol: classic (JoinGroup/SyncGroup/Heartbeat, eager round-robin assignment), chosen
 * explicitly. Under the library's KIP-848 `consumer` protocol a failing ConsumerGroupHeartbeat is
 * rescheduled forever and `isActive()` stays true because the member id and epoch stay set
 * (platformatic/kafka#374), so a member cut off from its coordinator never learns it is a zombie;
 * the classic protocol rejoins on ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID / REBALANCE_IN_PROGRESS
 * and tells us through events. It also gives what KIP-447 fencing of TxnOffsetCommit checks: a
 * generation id and member id per rebalance. Heartbeats that keep failing for other reasons
 * (network) are retried forever under both protocols; 'consumer:heartbeat:stalled' (added for
 * #374) is logged as a warning, and the broker fences whatever such a member commits.
 *
 * Membership: 'consumer:group:join' (emitted after each SyncGroup) starts a new generation;
 * 'consumer:group:rebalance' and 'consumer:group:leave' end the current one. Every change bumps
 * an epoch, empties the buffer, and drops the positions; a fetch that was in flight across a
 * change is discarded when it returns. Positions of a new generation start at the group's
 * committed offsets read with `requireStable` (so an offset still pending in the previous owner's
 * transaction is waited for, not read stale), else at `startWith`.
 *
 * Backpressure: the loop stops fetching while the buffer holds BUFFER_HIGH_WATER_MARK records. The
 * library's `MessagesStream` (which we would pause instead) is not used: it labels records with the
 * generation current when a response is pushed, not the one they were fetched under
 * (messages-stream.js #pushRecords), it may push an in-flight response of revoked partitions
 * after a rejoin, and it reads committed offsets with requireStable=false (consumer.js
 * #listCommittedOffsets).
 *
 * Fairness: each fetch starts one partition further and takes at most DEFAULT_PARTITION_MAX_BYTES
 * of a partition (kafka/core/fetch-order.ts), so a partition with a backlog never starves the
 * others of the same member.
 *
 * Commits outside transactions are sent by us (OffsetCommit with the membership the caller saw):
 * the library's `commit` rejoins the group on ILLEGAL_GENERATION and commits again under the new
 * generation (consumer.js #commit), which would let a zombie overwrite its successor's offsets.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConnectionPool,
  Consumer,
  FetchIsolationLevels,
  offsetCommitV8,
  type GroupAssignment,
} from '@platformatic/kafka';
import { TelemetryError } from '../../core/errors.ts';
import { fetchOrder } from '../core/fetch-order.ts';
import { offsetCommitTopics } from '../core/offset-commit-topics.ts';
import { outOfRangeAction } from '../core/out-of-range.ts';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  baseOptions,
  observeClient,
  type KafkaClientOptions,
} from './base-options.ts';
import { FENCING_ERRORS, hasKafkaError, kafkaError } from './errors.ts';
import { fetchPositions } from './fetch.ts';
import type {
  ConsumedBatch,
  ConsumedRecord,
  GroupConsumer,
  GroupConsumerOptions,
  GroupMembership,
  Isolation,
  TopicPartition,
  TopicPartitionOffset,
} from './port.ts';
import type { Logger } from '../../io/logger.ts';

export interface GroupConsumerDeps {
  readonly client: KafkaClientOptions;
  readonly logger: Logger;
  committedOffsets(
    groupId: string,
    partitions: readonly TopicPartition[],
  ): Promise<TopicPartitionOffset[]>;
  boundaryOffsets(
    partitions: readonly TopicPartition[],
    which: 'earliest' | 'latest',
    isolation: Isolation,
  ): Promise<TopicPartitionOffset[]>;
  groupCoordinator(groupId: string, refresh: boolean): Promise<number>;
}

const DEFAULT_SESSION_TIMEOUT_MS = 30_000;
const DEFAULT_HEARTBEAT_INTERVAL_MS = 3_000;
const DEFAULT_REBALANCE_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_WAIT_MS = 500;
const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;
/** Java's `max.partition.fetch.bytes` default: a backlog of one partition fills 1/8 of a response. */
const DEFAULT_PARTITION_MAX_BYTES = 1024 * 1024;
/** Buffered records above which the fetch loop waits for `nextBatch` (backpressure). */
const BUFFER_HIGH_WATER_MARK = 10_000;
const RETRY_BACKOFF_MS = 500;
const REJOIN_BACKOFF_MS = 1_000;
/** How long a new member waits for a group coordinator that is still starting. */
const COORDINATOR_WAIT_MS = 60_000;
const COORDINATOR_RETRY_MS = 1000;

const keyOf = (topic: string, partition: number): string => `${topic}:${partition}`;

/** A signal the fetch loop and `nextBatch` wait on; `notify` wakes every waiter. */
class Signal {
  #waiters: (() => void)[] = [];
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const waiters = this.#waiters;
      function done(): void {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
    });
  }
  notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

export class PortGroupConsumer implements GroupConsumer {
  readonly #deps: GroupConsumerDeps;
  readonly #options: GroupConsumerOptions;
  readonly #isolation: Isolation;
  readonly #logger: Logger;
  readonly #consumer: Consumer;
  readonly #fetchPool: ConnectionPool;
  readonly #listeners: ((membership: GroupMembership | null) => void)[] = [];
  readonly #loopSignal = new Signal();
  readonly #dataSignal = new Signal();
  #membership: GroupMembership | null = null;
  #epoch = 0;
  /** Bumped by every membership change and `seek`: a fetch in flight across one is dropped. */
  #fetchEpoch = 0;
  /** Positions of the current generation; `undefined` until they are loaded. */
  #positions: Map<string, TopicPartitionOffset> | undefined;
  #buffer: ConsumedRecord[] = [];
  #bufferStart = 0;
  #closed = false;
  #loop: Promise<void> | undefined;
  #rejoining = false;

  private constructor(deps: GroupConsumerDeps, options: GroupConsumerOptions) {
    this.#deps = deps;
    this.#options = options;
    this.#isolation = options.isolation ?? 'read_committed';
    this.#logger = deps.logger.child({
      component: 'kafka-group-consumer',
      groupId: options.groupId,
    });
    const base = baseOptions(deps.client, 'consumer');
    try {
      this.#consumer = new Consumer({
        ...base,
        groupId: options.groupId,
        groupProtocol: 'classic',
        ...(options.groupInstanceId === undefined
          ? {}
          : { groupInstanceId: options.groupInstanceId }),
        autocommit: false,
        sessionTimeout: options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
        heartbeatInterval: options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
        rebalanceTimeout: options.rebalanceTimeoutMs ?? DEFAULT_REBALANCE_TIMEOUT_MS,
        isolationLevel:
          this.#isolation === 'read_committed'
            ? FetchIsolationLevels.READ_COMMITTED
            : FetchIsolationLevels.READ_UNCOMMITTED,
      });
    } catch (error) {
      throw new TelemetryError('CONFIG_INVALID', 'Invalid consumer group settings.', {
        cause: error,
        details: { groupId: options.groupId },
      });
    }
    // Fetches get connections of their own: a long-polling fetch must not hold heartbeats and
    // commits back on the coordinator's connection (Kafka answers a connection's requests in order).
    // They log in as the consumer does (TLS, SASL).
    this.#fetchPool = new ConnectionPool(base.clientId, {
      connectTimeout: deps.client.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      requestTimeout: deps.client.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      ...(base.tls === undefined ? {} : { tls: base.tls }),
      ...(base.sasl === undefined ? {} : { sasl: base.sasl }),
    });
    observeClient(this.#consumer, this.#logger);
    this.#consumer.on('consumer:group:join', (payload) => this.#onJoin(payload));
    this.#consumer.on('consumer:group:rebalance', () => this.#setMembership(null));
    this.#consumer.on('consumer:group:leave', () => this.#setMembership(null));
    // A rejoin that failed for good (after the client's retries) leaves no heartbeat running.
    this.#consumer.on('error', () => this.#rejoinAfterFailure());
  }

  static async open(
    deps: GroupConsumerDeps,
    options: GroupConsumerOptions,
  ): Promise<PortGroupConsumer> {
    const consumer = new PortGroupConsumer(deps, options);
    try {
      consumer.#consumer.topics.trackAll(...options.topics);
      await consumer.#joinWhenCoordinatorReady();
    } catch (error) {
      await consumer.close().catch(() => undefined);
      throw kafkaError('KAFKA_UNAVAILABLE', 'Joining the consumer group failed.', error, {
        groupId: options.groupId,
      });
    }
    consumer.#loop = consumer.#run();
    return consumer;
  }

  /**
   * JoinGroup, again while the group coordinator is not ready: on a cluster that has just
   * started, `__consumer_offsets` is still being created or loaded (COORDINATOR_NOT_AVAILABLE,
   * COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR) for seconds — longer than the client's own
   * retries — and a stage started with its cluster must wait for it, not exit. Anything else, or
   * a coordinator still not ready after COORDINATOR_WAIT_MS, fails the open.
   */
  async #joinWhenCoordinatorReady(): Promise<void> {
    const deadline = Date.now() + COORDINATOR_WAIT_MS;
    for (;;) {
      try {
        await this.#consumer.joinGroup({});
        return;
      } catch (error) {
        const notReady = hasKafkaError(error, [
          'COORDINATOR_NOT_AVAILABLE',
          'COORDINATOR_LOAD_IN_PROGRESS',
          'NOT_COORDINATOR',
        ]);
        if (!notReady || this.#closed || Date.now() + COORDINATOR_RETRY_MS > deadline) throw error;
        this.#logger.info('The group coordinator is not ready yet; joining again.', {
          retryInMs: COORDINATOR_RETRY_MS,
        });
        await sleep(COORDINATOR_RETRY_MS);
      }
    }
  }

  membership(): GroupMembership | null {
    return this.#membership;
  }

  onMembershipChange(listener: (membership: GroupMembership | null) => void): void {
    this.#listeners.push(listener);
  }

  async nextBatch(maxRecords: number, waitMs: number): Promise<ConsumedBatch | null> {
    if (this.#closed) return null;
    if (this.#buffered() === 0 && waitMs > 0) {
      const deadline = Date.now() + waitMs;
      while (!this.#closed && this.#buffered() === 0 && Date.now() < deadline) {
        await this.#dataSignal.wait(deadline - Date.now());
      }
      if (this.#closed) return null;
    }
    const count = Math.min(Math.max(0, maxRecords), this.#buffered());
    const records = this.#buffer.slice(this.#bufferStart, this.#bufferStart + count);
    this.#bufferStart += count;
    if (this.#bufferStart === this.#buffer.length) {
      this.#buffer = [];
      this.#bufferStart = 0;
    } else if (this.#bufferStart >= this.#buffered()) {
      // Drop the handed-over prefix once it is as long as the rest (amortized: each record is
      // copied at most once more). The buffer used to be reset only when drained to the end,
      // which a consumer behind a backlog never is: it held every record fetched since (and the
      // fetch responses their bytes point into) — 400 MiB of heap in a 500k-record hole fill.
      this.#buffer = this.#buffer.slice(this.#bufferStart);
      this.#bufferStart = 0;
    }
    this.#loopSignal.notify();
    return { records, membership: this.#membership ?? this.#noMembership() };
  }

  seek(membership: GroupMembership, offsets: readonly TopicPartitionOffset[]): boolean {
    const current = this.#membership;
    if (
      current === null ||
      current.generationId !== membership.generationId ||
      current.memberId !== membership.memberId ||
      this.#positions === undefined
    ) {
      return false;
    }
    const moved = new Set<string>();
    for (const p of offsets) {
      const key = keyOf(p.topic, p.partition);
      moved.add(key);
      this.#positions.set(key, { topic: p.topic, partition: p.partition, offset: p.offset });
    }
    const kept: ConsumedRecord[] = [];
    for (let i = this.#bufferStart; i < this.#buffer.length; i++) {
      const record = this.#buffer[i] as ConsumedRecord;
      if (!moved.has(keyOf(record.topic, record.partition))) kept.push(record);
    }
    this.#buffer = kept;
    this.#bufferStart = 0;
    this.#fetchEpoch += 1;
    this.#loopSignal.notify();
    return true;
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const membership = this.#membership;
    if (membership === null) {
      throw new TelemetryError(
        'KAFKA_FENCED',
        'Not a member of the group: offsets not committed.',
        {
          details: { groupId: this.#options.groupId },
        },
      );
    }
    if (offsets.length === 0) return;
    const topics = offsetCommitTopics(offsets);
    let refresh = false;
    for (let attempt = 0; ; attempt++) {
      try {
        const coordinator = await this.#deps.groupCoordinator(membership.groupId, refresh);
        const connections = await this.#consumer.connectToBrokers([coordinator]);
        const connection = connections.get(coordinator);
        if (connection === undefined) {
          throw new TelemetryError('KAFKA_UNAVAILABLE', 'No connection to the group coordinator.', {
            details: { coordinator },
          });
        }
        await offsetCommitV8.api.async(
          connection,
          membership.groupId,
          membership.generationId,
          membership.memberId,
          null,
          topics,
        );
        return;
      } catch (error) {
        if (hasKafkaError(error, FENCING_ERRORS)) {
          throw kafkaError(
            'KAFKA_FENCED',
            'The group membership is stale: offsets not committed.',
            error,
            {
              groupId: membership.groupId,
              generationId: membership.generationId,
            },
          );
        }
        const retriable = hasKafkaError(error, [
          'NOT_COORDINATOR',
          'COORDINATOR_NOT_AVAILABLE',
          'COORDINATOR_LOAD_IN_PROGRESS',
        ]);
        if (!retriable || attempt >= 3 || this.#closed) {
          throw kafkaError('KAFKA_UNAVAILABLE', 'Committing offsets failed.', error, {
            groupId: membership.groupId,
          });
        }
        refresh = true;
        await sleep(RETRY_BACKOFF_MS);
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#loopSignal.notify();
    this.#dataSignal.notify();
    await this.#fetchPool.close().catch((error: unknown) => {
      this.#logger.debug('Closing the fetch connections failed.', { error });
    });
    await this.#loop?.catch(() => undefined);
    try {
      await this.#consumer.close(true);
    } catch (error) {
      this.#logger.warn('Leaving the consumer group failed.', { error });
    }
    this.#setMembership(null);
  }

  #buffered(): number {
    return this.#buffer.length - this.#bufferStart;
  }

  /** Stands for "no membership" in a batch that was waited for while outside the group. */
  #noMembership(): GroupMembership {
    return { groupId: this.#options.groupId, generationId: -1, memberId: '', assigned: [] };
  }

  #onJoin(payload: unknown): void {
    const { memberId, generationId, assignments } = payload as {
      memberId: string;
      generationId: number;
      assignments: GroupAssignment[] | null;
    };
    const assigned: TopicPartition[] = [];
    for (const { topic, partitions } of assignments ?? []) {
      for (const partition of [...partitions].sort((a, b) => a - b))
        assigned.push({ topic, partition });
    }
    this.#setMembership({ groupId: this.#options.groupId, generationId, memberId, assigned });
  }

  #setMembership(membership: GroupMembership | null): void {
    const previous = this.#membership;
    if (
      previous === membership ||
      (previous !== null &&
        membership !== null &&
        previous.generationId === membership.generationId &&
        previous.memberId === membership.memberId)
    ) {
      return;
    }
    this.#membership = membership;
    this.#epoch += 1;
    this.#fetchEpoch += 1;
    this.#positions = undefined;
    this.#buffer = [];
    this.#bufferStart = 0;
    for (const listener of this.#listeners) {
      try {
        listener(membership);
      } catch (error) {
        this.#logger.error('A membership listener threw.', { error });
      }
    }
    this.#loopSignal.notify();
    this.#dataSignal.notify();
  }

  #rejoinAfterFailure(): void {
    this.#setMembership(null);
    if (this.#rejoining || this.#closed) return;
    this.#rejoining = true;
    void (async () => {
      while (!this.#closed && this.#membership === null) {
        await sleep(REJOIN_BACKOFF_MS);
        if (this.#closed) break;
        try {
          await this.#consumer.joinGroup({});
        } catch (error) {
          this.#logger.warn('Rejoining the consumer group failed; retrying.', { error });
        }
      }
      this.#rejoining = false;
    })();
  }

  async #loadPositions(epoch: number, membership: GroupMembership): Promise<void> {
    const committed = await this.#deps.committedOffsets(membership.groupId, membership.assigned);
    const positions = new Map(committed.map((p) => [keyOf(p.topic, p.partition), p]));
    const missing = membership.assigned.filter((p) => !positions.has(keyOf(p.topic, p.partition)));
    if (missing.length > 0) {
      const start = await this.#deps.boundaryOffsets(
        missing,
        this.#options.startWith ?? 'earliest',
        this.#isolation,
      );
      for (const p of start) positions.set(keyOf(p.topic, p.partition), p);
    }
    if (epoch === this.#epoch) this.#positions = positions;
  }

  /** OFFSET_OUT_OF_RANGE: shared/kafka/core/out-of-range.ts; true when a fetch must be retried. */
  async #resetOutOfRange(epoch: number, partitions: readonly TopicPartition[]): Promise<boolean> {
    const start = await this.#deps.boundaryOffsets(partitions, 'earliest', this.#isolation);
    if (epoch !== this.#epoch || this.#positions === undefined) return false;
    let behind = false;
    for (const p of start) {
      const key = keyOf(p.topic, p.partition);
      const position = this.#positions.get(key);
      const action =
        position === undefined
          ? ({ kind: 'move_to_log_start', offset: p.offset } as const)
          : outOfRangeAction(position.offset, p.offset);
      if (action.kind === 'retry') {
        behind = true;
        continue;
      }
      this.#logger.warn('Records before the log start are gone; reading on from the start.', {
        ...p,
        offset: String(action.offset),
      });
      this.#positions.set(key, p);
    }
    return behind;
  }

  async #run(): Promise<void> {
    const maxWaitMs = this.#options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    const maxBytes = this.#options.maxBytes ?? DEFAULT_MAX_BYTES;
    const partitionMaxBytes = Math.min(maxBytes, DEFAULT_PARTITION_MAX_BYTES);
    let round = 0;
    while (!this.#closed) {
      const epoch = this.#epoch;
      const membership = this.#membership;
      if (
        membership === null ||
        membership.assigned.length === 0 ||
        this.#buffered() >= BUFFER_HIGH_WATER_MARK
      ) {
        await this.#loopSignal.wait(maxWaitMs);
        continue;
      }
      try {
        if (this.#positions === undefined) {
          await this.#loadPositions(epoch, membership);
          continue;
        }
        const fetchEpoch = this.#fetchEpoch;
        const positions = fetchOrder([...this.#positions.values()], round++);
        const fetched = await fetchPositions(this.#consumer, positions, {
          isolation: this.#isolation,
          maxWaitMs,
          maxBytes,
          partitionMaxBytes,
          connectionPool: this.#fetchPool,
        });
        if (epoch !== this.#epoch || fetchEpoch !== this.#fetchEpoch || this.#closed) continue;
        const outOfRange: TopicPartition[] = [];
        let retry = false;
        for (const partition of fetched) {
          if (partition.error !== undefined) {
            if (partition.error.outOfRange) outOfRange.push(partition);
            else retry = true;
            continue;
          }
          for (const record of partition.records) this.#buffer.push(record);
          this.#positions.set(keyOf(partition.topic, partition.partition), {
            topic: partition.topic,
            partition: partition.partition,
            offset: partition.nextOffset,
          });
        }
        if (this.#buffered() > 0) this.#dataSignal.notify();
        if (outOfRange.length > 0 && (await this.#resetOutOfRange(epoch, outOfRange))) {
          retry = true;
        }
        if (retry) {
          this.#consumer.clearMetadata();
          await sleep(RETRY_BACKOFF_MS);
        }
      } catch (error) {
        if (this.#closed) break;
        this.#logger.warn('Fetching from Kafka failed; retrying.', { error });
        this.#consumer.clearMetadata();
        await sleep(RETRY_BACKOFF_MS);
      }
    }
  }
}
