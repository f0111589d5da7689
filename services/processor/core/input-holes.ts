import type { PartitionMeta } from './state-changelog.ts';

/**
 * A hole between a partition's restored state and the records in hand: the state says every
 * record below `nextOffset` is applied, so the records of the partition must start at or below
 * it (below it: read again from a stale committed offset, and skipped). Records that start after
 * it mean the consumer moved past records the state never saw — a restore that read stale state,
 * or records gone by retention — and applying them would compute transitions across the hole.
 *
 * A partition whose state holds no offset yet (`nextOffset` 0: nothing was ever committed for
 * it) cannot have a hole: its log may legitimately start later.
 */
export interface InputHole {
  readonly partition: number;
  readonly nextOffset: number;
  readonly firstOffset: number;
}

export function findInputHoles(
  nextOffsets: ReadonlyMap<number, number>,
  records: readonly { readonly partition: number; readonly offset: bigint | number }[],
): InputHole[] {
  const first = new Map<number, number>();
  for (const { partition, offset } of records) {
    const value = Number(offset);
    const seen = first.get(partition);
    if (seen === undefined || value < seen) first.set(partition, value);
  }
  const holes: InputHole[] = [];
  for (const [partition, firstOffset] of first) {
    const nextOffset = nextOffsets.get(partition) ?? 0;
    if (nextOffset > 0 && firstOffset > nextOffset)
      holes.push({ partition, nextOffset, firstOffset });
  }
  return holes.sort((a, b) => a.partition - b.partition);
}

/**
 * Skipping input on purpose (`vfio-telemetry process skip`): the partition's state is told that
 * every record below `to` is applied, by a new meta record with `nextOffset: to` and the same
 * clock. Only forward: going back would apply records a second time. The VMs' state stays, so
 * sessions and sequence numbers after the skipped records read as gaps (counted), as after any
 * lost input.
 */
export type SkipPlan =
  { kind: 'skip'; meta: PartitionMeta; skipped: number } | { kind: 'refused'; reason: string };

export function planSkip(meta: PartitionMeta | null, to: number): SkipPlan {
  if (!Number.isSafeInteger(to) || to < 0) {
    return { kind: 'refused', reason: `--to must be an offset (a whole number ≥ 0), got ${to}` };
  }
  const from = meta?.nextOffset ?? 0;
  if (to <= from) {
    return {
      kind: 'refused',
      reason: `the state is at offset ${from} already; skipping only moves forward (--to ${to})`,
    };
  }
  return {
    kind: 'skip',
    meta: { nextOffset: to, clockMicros: meta?.clockMicros ?? 0 },
    skipped: to - from,
  };
}
