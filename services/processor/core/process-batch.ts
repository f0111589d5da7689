import {
  emptyApplyCounts,
  PartitionProcessor,
  type ApplyCounts,
  type DuplicateWriter,
  type SequenceGap,
} from './partition-processor.ts';
import type { EventDecodeResult, PublishedTransition } from './published-transition.ts';
import { metaEntry, vmStateEntry, vmTombstone, type ChangelogEntry } from './state-changelog.ts';

/**
 * One transaction's worth of work, pure: records of the events topic (several partitions,
 * each in offset order) → what the transaction must write. Every partition in `records` must
 * be in `partitions`, restored from its changelog. Records below a partition's `nextOffset`
 * are already reflected in its state (the committed offset the consumer started from may be
 * older than the state: see `io/state-restore.ts`) and are skipped.
 *
 * The output, for one transaction: the transitions (to the same partition of the transitions
 * topic), the dead letters, the changelog entries of every changed or forgotten VM, and for
 * EVERY partition in the batch its meta entry and the offset to commit, both `nextOffset`.
 */
export interface BatchRecord {
  readonly partition: number;
  readonly offset: bigint | number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** The record's Kafka timestamp, ms: broker time on the events topic (LogAppendTime). */
  readonly timestampMs: number;
}

export interface ProcessBatchOptions {
  readonly groupId: string;
  readonly decodeEvent: (value: Uint8Array) => EventDecodeResult;
}

export interface DeadLetter {
  readonly partition: number;
  readonly offset: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** The decoder's or the event model's reason, e.g. `bad_marker`, `bad_vfio_data`, `empty`. */
  readonly reason: string;
  readonly detail: string;
}

export interface BatchCounts extends ApplyCounts {
  consumed: number;
  /** Records below their partition's `nextOffset`: applied by an earlier transaction. */
  alreadyApplied: number;
}

export interface BatchOutput {
  transitions: Array<{ partition: number; transition: PublishedTransition }>;
  deadLetters: DeadLetter[];
  changelog: Array<ChangelogEntry & { partition: number }>;
  /** Per partition of the batch: the next offset to read, committed with the transaction. */
  offsets: Array<{ partition: number; nextOffset: number }>;
  counts: BatchCounts;
  gaps: Array<SequenceGap & { partition: number }>;
  /** Records of a second writer of one host/VM key (a duplicate `--host`). */
  duplicateWriters: Array<DuplicateWriter & { partition: number }>;
  /** Collector receive times of the event records applied (for the latency histogram). */
  receivedMicros: number[];
  /**
   * Per collector host of the batch, its clock offset estimate, µs: the largest
   * `receivedMicros − broker time` among its event records. Each is the host's offset minus the
   * time the event took from the collector to the broker, so the largest is the closest.
   */
  hostClockOffsets: Map<string, number>;
}

/** Declared once, not as a closure per record (issue 18: the hot loop allocates what it must). */
function deadLetter(
  record: BatchRecord,
  offset: number,
  reason: string,
  detail: string,
): DeadLetter {
  return {
    partition: record.partition,
    offset,
    key: record.key,
    value: record.value,
    reason,
    detail,
  };
}

export function processBatch(
  partitions: ReadonlyMap<number, PartitionProcessor>,
  records: readonly BatchRecord[],
  options: ProcessBatchOptions,
): BatchOutput {
  const counts: BatchCounts = { ...emptyApplyCounts(), consumed: 0, alreadyApplied: 0 };
  const output: BatchOutput = {
    transitions: [],
    deadLetters: [],
    changelog: [],
    offsets: [],
    counts,
    gaps: [],
    duplicateWriters: [],
    receivedMicros: [],
    hostClockOffsets: new Map(),
  };
  const touched = new Set<PartitionProcessor>();
  const out: PublishedTransition[] = [];
  for (const record of records) {
    const processor = partitions.get(record.partition);
    if (processor === undefined) {
      throw new Error(`processBatch: partition ${record.partition} was not restored`);
    }
    touched.add(processor);
    counts.consumed++;
    const offset = Number(record.offset);
    const brokerMicros = record.timestampMs * 1000;
    if (offset < processor.nextOffset) {
      counts.alreadyApplied++;
      continue;
    }
    const decoded =
      record.value === null
        ? ({ kind: 'invalid', reason: 'empty' } as const)
        : options.decodeEvent(record.value);
    if (decoded.kind === 'invalid') {
      processor.skip(offset, brokerMicros);
      output.deadLetters.push(
        deadLetter(record, offset, decoded.reason, decoded.error?.message ?? decoded.reason),
      );
      continue;
    }
    const event = decoded.value;
    const result = processor.apply(offset, brokerMicros, event, out, counts);
    output.receivedMicros.push(event.receivedMicros);
    const clockOffset = event.receivedMicros - brokerMicros;
    if (Number.isSafeInteger(clockOffset) && typeof event.host === 'string') {
      const seen = output.hostClockOffsets.get(event.host);
      if (seen === undefined || clockOffset > seen)
        output.hostClockOffsets.set(event.host, clockOffset);
    }
    if (result.kind === 'invalid')
      output.deadLetters.push(deadLetter(record, offset, result.reason, result.detail));
    else if (result.kind === 'gap')
      output.gaps.push({ ...result.gap, partition: record.partition });
    else if (result.kind === 'duplicate_writer')
      output.duplicateWriters.push({ ...result.writer, partition: record.partition });
    for (const transition of out)
      output.transitions.push({ partition: record.partition, transition });
    out.length = 0;
  }
  const { groupId } = options;
  for (const processor of touched) {
    const { partition } = processor;
    const { values, forgotten } = processor.takeChanges();
    for (const [host, vm] of forgotten) {
      output.changelog.push({ partition, ...vmTombstone(groupId, host, vm) });
    }
    for (const value of values)
      output.changelog.push({ partition, ...vmStateEntry(groupId, value) });
    output.changelog.push({ partition, ...metaEntry(groupId, processor.meta()) });
    output.offsets.push({ partition, nextOffset: processor.nextOffset });
  }
  return output;
}
