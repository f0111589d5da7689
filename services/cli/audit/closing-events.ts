/**
 * When the event that closed each recomputed transition was written (its Kafka timestamp), so a
 * time range can select transitions by their closing event. Pure.
 *
 * A transition with an end (`completed`, `failed`, a dwell) was closed by an event of the same VM
 * whose QEMU timestamp is that end: a lookup. One without (`timed_out`, `aborted`) was closed by
 * whichever event made the engine give up on it; that event is found as the shortest prefix of
 * the partition whose recomputation already holds the transition as it is in the full one
 * (binary search: an emitted transition is never taken back by later events). One still open
 * at the end (`unfinished`) has no closing event.
 */
import type { EventRecord } from '../../shared/core/event-record.ts';
import type { TransitionRecord } from '../../shared/core/transition-record.ts';
import { transitionIdentity } from '../../processor/core/transition-identity.ts';
import { differencesOf } from './reconcile.ts';

/** One record of a partition of the events topic. */
export interface PartitionEvent {
  readonly offset: bigint;
  readonly timestampMs: number;
  readonly value: Buffer | null;
  /** The decoded record, or null when it is not one. */
  readonly record: EventRecord | null;
}

export type Recompute = (
  records: readonly { offset: bigint; value: Buffer | null; timestampMs: number }[],
) => readonly TransitionRecord[];

/** The closing event's Kafka timestamp of each transition, or null when none closed it. */
export function closingEventTimes(
  events: readonly PartitionEvent[],
  transitions: readonly TransitionRecord[],
  recompute: Recompute,
): (number | null)[] {
  const byQemuTime = new Map<string, number>();
  for (const event of events) {
    if (event.record === null) continue;
    const key = `${event.record.host}\u0000${event.record.vm}\u0000${event.record.qemuTimestampMicros}`;
    if (!byQemuTime.has(key)) byQemuTime.set(key, event.timestampMs);
  }
  const prefixes = new Map<number, Map<string, TransitionRecord>>();
  const recomputedUpTo = (length: number): Map<string, TransitionRecord> => {
    let found = prefixes.get(length);
    if (found === undefined) {
      found = new Map(
        recompute(events.slice(0, length)).map((t) => [transitionIdentity(t), t] as const),
      );
      prefixes.set(length, found);
    }
    return found;
  };
  const holds = (length: number, transition: TransitionRecord): boolean => {
    const t = recomputedUpTo(length).get(transitionIdentity(transition));
    return t !== undefined && differencesOf(transition, t).length === 0;
  };

  return transitions.map((transition) => {
    if (transition.type === 'prepare' && transition.outcome === 'unfinished') return null;
    if (transition.endMicros !== null) {
      const at = byQemuTime.get(
        `${transition.host}\u0000${transition.vm}\u0000${transition.endMicros}`,
      );
      if (at !== undefined) return at;
    }
    if (!holds(events.length, transition)) return null;
    let lo = 1;
    let hi = events.length;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (holds(mid, transition)) hi = mid;
      else lo = mid + 1;
    }
    return (events[lo - 1] as PartitionEvent).timestampMs;
  });
}
