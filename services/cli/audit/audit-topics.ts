/**
 * The audit's I/O: reads the events and transitions topics to their ends through the Kafka port
 * (`read_committed`: what an aborted processor transaction wrote is not there to compare),
 * decodes them, recomputes each partition with the processor's own code and hands both lists to
 * the pure `reconcileTransitions`.
 *
 * Partition p of the transitions topic holds what the processor computed from partition p of the
 * events topic, so they are compared partition by partition. Each partition is read whole, from
 * offset 0: a VM's transitions depend on its history from its first event.
 */
import { TelemetryError } from '../../shared/core/errors.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { createEventCodec, createTransitionCodec } from '../../shared/io/avro-codec.ts';
import type { ConsumedRecord, KafkaPort } from '../../shared/kafka/io/port.ts';
import { closingEventTimes, type PartitionEvent, type Recompute } from './closing-events.ts';
import {
  countEvents,
  hasDifferences,
  inRange,
  reconcileTransitions,
  type ActualTransition,
  type EventCounts,
  type ExpectedTransition,
  type TimeRange,
  type TransitionDiff,
} from './reconcile.ts';
import { recomputePartition } from '../../processor/core/recompute-partition.ts';

export interface AuditOptions {
  port: Pick<KafkaPort, 'describeTopics' | 'readToEnd'>;
  eventsTopic: string;
  transitionsTopic: string;
  /** As the processor was configured (`--prepare-timeout`). */
  prepareTimeoutSeconds: number;
  /** As the processor was configured (`--vm-retention-ms`); default 7 days. */
  vmRetentionMs?: number;
  /** Default: every partition of the events topic. */
  partitions?: readonly number[];
  /** Default: all time. */
  range?: TimeRange;
}

/** A record of the transitions topic that is not a transition record. */
export interface UndecodableTransition {
  partition: number;
  offset: bigint;
  reason: string;
}

export interface AuditReport {
  eventsTopic: string;
  transitionsTopic: string;
  partitions: number[];
  range: TimeRange;
  events: EventCounts;
  transitions: TransitionDiff & { undecodable: UndecodableTransition[] };
  /** No transition missing, duplicated, mismatched, unexpected or undecodable. */
  clean: boolean;
}

export async function auditTopics(options: AuditOptions): Promise<AuditReport> {
  const { port, eventsTopic, transitionsTopic } = options;
  const range = options.range ?? { sinceMs: null, untilMs: null };
  const described = await port.describeTopics([eventsTopic, transitionsTopic]);
  const events = described.get(eventsTopic);
  const transitions = described.get(transitionsTopic);
  const absent = [eventsTopic, transitionsTopic].filter((t) => !described.has(t));
  if (events === undefined || transitions === undefined) {
    throw new TelemetryError('USAGE', `no such topic: ${absent.join(', ')}`);
  }
  const partitions = [
    ...new Set(options.partitions ?? Array.from({ length: events.partitions }, (_, i) => i)),
  ].sort((a, b) => a - b);
  const beyond = partitions.filter((p) => p >= events.partitions || p >= transitions.partitions);
  if (beyond.length > 0) {
    throw new TelemetryError(
      'USAGE',
      `partition ${beyond.join(', ')} does not exist (${eventsTopic} has ${events.partitions}, ` +
        `${transitionsTopic} has ${transitions.partitions})`,
    );
  }

  const eventCodec = createEventCodec();
  const eventsByPartition = new Map<number, PartitionEvent[]>(partitions.map((p) => [p, []]));
  await port.readToEnd(
    partitions.map((partition) => ({ topic: eventsTopic, partition, offset: 0n })),
    (r: ConsumedRecord) => {
      const decoded = r.value === null ? null : eventCodec.decode(r.value);
      eventsByPartition.get(r.partition)?.push({
        offset: r.offset,
        timestampMs: r.timestampMs,
        value: r.value,
        record: decoded?.kind === 'record' ? decoded.value : null,
      });
    },
    'read_committed',
  );

  const transitionCodec = createTransitionCodec();
  const actual: ActualTransition[] = [];
  const undecodable: UndecodableTransition[] = [];
  await port.readToEnd(
    partitions.map((partition) => ({ topic: transitionsTopic, partition, offset: 0n })),
    (r: ConsumedRecord) => {
      const decoded = r.value === null ? null : transitionCodec.decode(r.value);
      if (decoded?.kind === 'record') {
        actual.push({
          partition: r.partition,
          offset: r.offset,
          timestampMs: r.timestampMs,
          record: decoded.value,
        });
      } else if (inRange(r.timestampMs, range)) {
        undecodable.push({
          partition: r.partition,
          offset: r.offset,
          reason: decoded === null ? 'empty_value' : decoded.reason,
        });
      }
    },
    'read_committed',
  );

  const recompute: Recompute = (records) =>
    recomputePartition(records, {
      decodeEvent: (value) => eventCodec.decode(value),
      prepareTimeoutSeconds: options.prepareTimeoutSeconds,
      ...(options.vmRetentionMs === undefined ? {} : { vmRetentionMs: options.vmRetentionMs }),
    });
  const expected: ExpectedTransition[] = [];
  const allEvents: PartitionEvent[] = [];
  const ranged = range.sinceMs !== null || range.untilMs !== null;
  for (const partition of partitions) {
    const partitionEvents = eventsByPartition.get(partition) ?? [];
    // No spread: a partition of more than ~10^5 events overflows the call stack.
    for (const event of partitionEvents) allEvents.push(event);
    const recomputed: readonly TransitionRecord[] = recompute(partitionEvents);
    const closedAt = ranged
      ? closingEventTimes(partitionEvents, recomputed, recompute)
      : recomputed.map(() => null);
    recomputed.forEach((record, i) =>
      expected.push({ partition, record, closedAtMs: closedAt[i] ?? null }),
    );
  }

  const diff = reconcileTransitions(expected, actual, range);
  return {
    eventsTopic,
    transitionsTopic,
    partitions,
    range,
    events: countEvents(allEvents, range),
    transitions: { ...diff, undecodable },
    clean: !hasDifferences(diff) && undecodable.length === 0,
  };
}
