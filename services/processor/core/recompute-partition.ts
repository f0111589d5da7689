import { DEFAULT_PREPARE_TIMEOUT_SECONDS } from '../../shared/core/transition-engine.ts';
import { PartitionProcessor } from './partition-processor.ts';
import { processBatch } from './process-batch.ts';
import type { EventDecodeResult, PublishedTransition } from './published-transition.ts';

export interface RecomputeOptions {
  /** Decodes an events-topic value; `createEventCodec().decode` in production. */
  readonly decodeEvent: (value: Uint8Array) => EventDecodeResult;
  /** The processor's `--prepare-timeout` (default 10 s). */
  readonly prepareTimeoutSeconds?: number;
  /** The processor's `--vm-retention-ms` (default 7 days). */
  readonly vmRetentionMs?: number;
}

/**
 * The transitions the processor publishes for one partition of the events topic, given all of
 * its records in offset order (for an offline audit: `vfio-telemetry audit`). The processor is
 * deterministic from the topic, so this equals the partition of the transitions topic exactly,
 * whatever batches, crashes and rebalances the live processor went through.
 */
export function recomputePartition(
  records: readonly {
    readonly offset: bigint | number;
    readonly value: Buffer | null;
    /** The record's Kafka timestamp (broker time): it drives the partition clock. */
    readonly timestampMs: number;
  }[],
  options: RecomputeOptions,
): PublishedTransition[] {
  const processor = new PartitionProcessor(0, {
    prepareTimeoutSeconds: options.prepareTimeoutSeconds ?? DEFAULT_PREPARE_TIMEOUT_SECONDS,
    ...(options.vmRetentionMs === undefined ? {} : { vmRetentionMs: options.vmRetentionMs }),
  });
  const partitions = new Map([[0, processor]]);
  const batch = records.map((r) => ({
    partition: 0,
    offset: r.offset,
    key: null,
    value: r.value,
    timestampMs: r.timestampMs,
  }));
  const { transitions } = processBatch(partitions, batch, {
    groupId: '',
    decodeEvent: options.decodeEvent,
  });
  return transitions.map((t) => t.transition);
}
