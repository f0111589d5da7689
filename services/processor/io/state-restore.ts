import { setTimeout as sleep } from 'node:timers/promises';
import { TelemetryError } from '../../shared/core/errors.ts';
import type { KafkaPort, TopicPartition } from '../../shared/kafka/io/port.ts';
import { PartitionProcessor } from '../core/partition-processor.ts';
import { ChangelogFold } from '../core/state-changelog.ts';

/**
 * Rebuilds partitions from the state topic, for a processor that just got them (start, or any
 * new group generation: all state is dropped on a membership change, because a member stopped
 * past its session timeout may get the same partitions back and its memory is stale).
 *
 * 1. Wait until the state partition's last stable offset reaches its high watermark as of the
 *    start of the restore: no transaction that wrote to it before we began is still open. A
 *    transaction of the previous owner that is still committing ends within its transaction
 *    timeout (aborted by the broker otherwise).
 * 2. Read it read_committed from 0 to its end and fold it: newest value per key, tombstones delete.
 * 3. The partition's meta says `nextOffset`: records below it are already applied
 *    (`processBatch` skips them).
 *
 * Why this is enough without trusting the committed offset: every transaction writes the meta
 * record of each of its input partitions before it commits their offsets (the port produces the
 * records, then TxnOffsetCommit, then EndTxn), and a TxnOffsetCommit from an older generation is
 * fenced. So any transaction whose offsets can still commit has already written its meta record
 * when the new generation exists — below the high watermark we wait for. Once it is resolved,
 * the meta we read is at least as new as any offset the group will ever show for the partition,
 * and a consumer position that is older (stale committed offset, read while the old owner's
 * transaction was pending) only makes us skip records, never apply them twice.
 */
export interface RestoreOptions {
  readonly stateTopic: string;
  readonly groupId: string;
  readonly prepareTimeoutSeconds: number;
  readonly vmRetentionMs: number;
  /** Give up (and retry the transaction later) when a transaction stays open this long. */
  readonly openTransactionWaitMs: number;
}

export interface RestoredPartition {
  processor: PartitionProcessor;
  vms: number;
  invalid: number;
  millis: number;
}

const STABLE_POLL_MS = 100;

export async function restorePartitions(
  port: KafkaPort,
  partitions: readonly number[],
  options: RestoreOptions,
): Promise<Map<number, RestoredPartition>> {
  const started = Date.now();
  const state: TopicPartition[] = partitions.map((partition) => ({
    topic: options.stateTopic,
    partition,
  }));
  const highWatermarks = await port.endOffsets(state, 'read_uncommitted');
  const wanted = new Map(highWatermarks.map((p) => [p.partition, p.offset]));
  for (;;) {
    const stable = await port.endOffsets(state, 'read_committed');
    if (stable.every((p) => p.offset >= (wanted.get(p.partition) ?? 0n))) break;
    if (Date.now() - started > options.openTransactionWaitMs) {
      throw new TelemetryError(
        'KAFKA_UNAVAILABLE',
        'A transaction on the state topic stayed open; restore postponed.',
        {
          details: {
            topic: options.stateTopic,
            partitions: stable.map((p) => ({
              partition: p.partition,
              stable: String(p.offset),
              wanted: String(wanted.get(p.partition)),
            })),
          },
        },
      );
    }
    await sleep(STABLE_POLL_MS);
  }
  const folds = new Map(partitions.map((p) => [p, new ChangelogFold(options.groupId)]));
  await port.readToEnd(
    state.map((p) => ({ ...p, offset: 0n })),
    (record) => {
      if (record.key === null) return;
      folds
        .get(record.partition)
        ?.add(record.key.toString(), record.value === null ? null : record.value.toString());
    },
    'read_committed',
  );
  const restored = new Map<number, RestoredPartition>();
  for (const [partition, fold] of folds) {
    const { vms, meta, invalid } = fold.result();
    const processor = new PartitionProcessor(partition, {
      prepareTimeoutSeconds: options.prepareTimeoutSeconds,
      vmRetentionMs: options.vmRetentionMs,
    });
    processor.restore(vms, meta);
    restored.set(partition, { processor, vms: vms.length, invalid, millis: Date.now() - started });
  }
  return restored;
}
