/**
 * The transitions-topic consumer: a group consumer of the Kafka port, read `read_committed`.
 *
 * The processor writes transitions in Kafka transactions; `read_committed` stops each fetch at
 * the last stable offset and skips aborted records, so a transition of a transaction that a
 * fenced or crashed processor never committed is never observed (test/e2e/exporter).
 *
 * Offsets of observed records are committed once a second in the background and at stop, so a
 * commit never holds the next fetch back and never covers a record not yet observed. If the
 * process dies between observing and committing, the member that takes the partition observes
 * those records again: at-least-once into memory, which a restart resets anyway (README,
 * "Delivery semantics"). A fetch is bounded by `maxBytes` and a batch by `maxRecords`, so a large
 * backlog is observed in slices rather than held in memory at once.
 *
 * Ready means: a member of the group holding at least one partition of the topic. While Kafka
 * refuses the consumer (no READ on the group or the topic, a login or certificate refused), it
 * waits and tries again, and `/readyz` says why (kafka/io/kafka-refusals.ts).
 */
import { isTelemetryError } from '../../shared/core/errors.ts';
import { nowMicros as wallClockMicros } from '../../shared/io/clock.ts';
import type { Readiness } from '../../shared/io/http-server.ts';
import type {
  GroupConsumer,
  GroupMembership,
  KafkaPort,
  TopicPartitionOffset,
} from '../../shared/kafka/io/port.ts';
import type { Logger } from '../../shared/io/logger.ts';
import { describeRefusal } from '../../shared/kafka/core/refusal.ts';
import type { KafkaRefusals } from '../../shared/kafka/io/kafka-refusals.ts';
import type { TransitionSink } from './transition-sink.ts';

export interface TransitionConsumerOptions {
  port: Pick<KafkaPort, 'groupConsumer'>;
  topic: string;
  groupId: string;
  fromBeginning: boolean;
  sink: TransitionSink;
  logger: Logger;
  /** Most records observed per batch. */
  maxRecords: number;
  /** Most bytes one fetch returns. */
  maxBytes: number;
  /** Called when the consumer fails for good (an error that retrying cannot fix). */
  onFatal: (error: unknown) => void;
  /** Clock for the delivery lag, µs since the epoch. */
  nowMicros?: () => number;
  /** Background commit period (default 1000 ms). */
  commitIntervalMs?: number;
  /** Kafka's refusals, told and waited out (without: a refusal fails as any error). */
  refusals?: KafkaRefusals;
}

export interface RunningTransitionConsumer {
  readiness(): Readiness;
  stop(): Promise<void>;
}

type ConsumerState =
  | { kind: 'member'; membership: GroupMembership | null }
  | { kind: 'retrying'; error: string }
  | { kind: 'refused'; reason: string }
  | { kind: 'failed'; error: string }
  | { kind: 'stopped' };

/** How long one `nextBatch` may wait for records; bounds how long `stop` waits for the loop. */
const BATCH_WAIT_MS = 250;
/** Delay before fetching again after a retriable error. */
const RETRY_DELAY_MS = 1000;

export async function startTransitionConsumer(
  options: TransitionConsumerOptions,
): Promise<RunningTransitionConsumer> {
  const { topic, groupId, sink, logger } = options;
  const nowMicros = options.nowMicros ?? wallClockMicros;
  const join = (): Promise<GroupConsumer> =>
    options.port.groupConsumer({
      groupId,
      topics: [topic],
      isolation: 'read_committed',
      startWith: options.fromBeginning ? 'earliest' : 'latest',
      maxBytes: options.maxBytes,
    });
  const consumer: GroupConsumer =
    options.refusals === undefined
      ? await join()
      : await options.refusals.retryWhileRefused('joining the consumer group', join, {
          groupId,
          topics: [topic],
        });
  let state: ConsumerState = { kind: 'member', membership: consumer.membership() };
  /** Partition → offset of the last observed record, not committed yet. */
  const observed = new Map<number, bigint>();

  const partitionsOf = (membership: GroupMembership): number[] =>
    membership.assigned
      .filter((a) => a.topic === topic)
      .map((a) => a.partition)
      .sort((a, b) => a - b);

  consumer.onMembershipChange((membership) => {
    if (state.kind === 'stopped') return;
    state = { kind: 'member', membership };
    if (membership === null) {
      observed.clear();
      logger.info('Left the consumer group.', { groupId, topic });
      return;
    }
    const partitions = partitionsOf(membership);
    // Offsets of partitions another member now owns are its to commit.
    for (const partition of [...observed.keys()]) {
      if (!partitions.includes(partition)) observed.delete(partition);
    }
    logger.info('Joined the consumer group.', {
      groupId,
      topic,
      partitions,
      generationId: membership.generationId,
    });
  });

  let committing: Promise<void> = Promise.resolve();
  const commitObserved = (): Promise<void> => {
    if (observed.size === 0) return committing;
    const offsets: TopicPartitionOffset[] = [...observed].map(([partition, offset]) => ({
      topic,
      partition,
      offset: offset + 1n,
    }));
    observed.clear();
    committing = committing
      .then(() => consumer.commit(offsets))
      .catch((error: unknown) => {
        // The next commit covers these offsets (or the next owner reads them again).
        logger.warn('Committing offsets failed; the next commit covers them.', { topic, error });
      });
    return committing;
  };
  const commitTimer = setInterval(() => void commitObserved(), options.commitIntervalMs ?? 1000);

  let running = true;
  let wakeRetry: (() => void) | undefined;
  const loop = async (): Promise<void> => {
    while (running) {
      let batch;
      try {
        batch = await consumer.nextBatch(options.maxRecords, BATCH_WAIT_MS);
      } catch (error) {
        if (!running) return;
        const refusal = await options.refusals?.observe(error, {
          what: 'fetching transitions',
          details: { groupId, topics: [topic] },
        });
        const retriable = isTelemetryError(error) && error.retriable;
        if (refusal !== undefined || retriable) {
          state =
            refusal === undefined
              ? { kind: 'retrying', error: (error as Error).message }
              : { kind: 'refused', reason: describeRefusal(refusal) };
          if (refusal === undefined)
            logger.warn('Fetching transitions failed; retrying.', { groupId, topic, error });
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, RETRY_DELAY_MS);
            wakeRetry = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          if (running) state = { kind: 'member', membership: consumer.membership() };
          continue;
        }
        state = { kind: 'failed', error: error instanceof Error ? error.message : String(error) };
        logger.error('The consumer failed.', { groupId, topic, error });
        options.onFatal(error);
        return;
      }
      if (batch === null) return;
      options.refusals?.cleared();
      const now = nowMicros();
      for (const record of batch.records) {
        sink.observe(record.value, now, {
          partition: record.partition,
          offset: record.offset.toString(),
        });
        observed.set(record.partition, record.offset);
      }
    }
  };
  const looping = loop();

  return {
    readiness: () => {
      switch (state.kind) {
        case 'member': {
          if (state.membership === null) {
            return { ready: false, reasons: [`kafka: joining ${groupId}`] };
          }
          const partitions = partitionsOf(state.membership);
          return partitions.length > 0
            ? { ready: true, reasons: [`kafka: ${topic} partitions ${partitions.join(',')}`] }
            : {
                ready: false,
                reasons: [`kafka: joined ${groupId} but no partition of ${topic} is assigned`],
              };
        }
        case 'retrying':
          return { ready: false, reasons: [`kafka: fetching failed, retrying: ${state.error}`] };
        case 'refused':
          return { ready: false, reasons: [state.reason] };
        case 'failed':
          return { ready: false, reasons: [`kafka: consumer failed: ${state.error}`] };
        case 'stopped':
          return { ready: false, reasons: ['kafka: consumer stopped'] };
      }
    },
    stop: async () => {
      // Stop fetching, commit what was observed while still a member, then leave the group.
      running = false;
      wakeRetry?.();
      clearInterval(commitTimer);
      await looping;
      await commitObserved();
      state = { kind: 'stopped' };
      await consumer.close();
    },
  };
}
