/**
 * Check (a) of the fault matrix, pure: the events topic holds every event the collector accepted.
 * The collector numbers each QMP session's accepted events 1, 2, 3, ... with no gap, so a session
 * whose records (deduplicated by `(sessionId, sequence)`) are not exactly 1..max lost something
 * between acceptance and Kafka. The only gaps allowed are records Kafka refused for good, which
 * the collector kept in `rejected.jsonl` (`allowedMissing`, as `sessionId/sequence`).
 *
 * A lost tail of a session (its last events) leaves no gap; the count of distinct events against
 * what the simulator sent catches that when the collector was not killed.
 */

export interface SequencedEvent {
  readonly sessionId: string;
  readonly sequence: number;
}

export interface SequenceGap {
  readonly sessionId: string;
  /** Inclusive range of the sequence numbers absent from the topic. */
  readonly from: number;
  readonly to: number;
}

export interface SequenceCheck {
  /** Distinct `(sessionId, sequence)` pairs. */
  readonly distinct: number;
  /** Records beyond the first copy of their pair (at-least-once resends). */
  readonly duplicates: number;
  readonly sessions: number;
  /** Absent ranges, per session in order, minus `allowedMissing`. */
  readonly gaps: readonly SequenceGap[];
  /** Entries of `allowedMissing` that were in the topic after all (a rejected record that was not). */
  readonly presentButAllowedMissing: readonly string[];
}

export function checkSequences(
  events: Iterable<SequencedEvent>,
  allowedMissing: ReadonlySet<string> = new Set(),
): SequenceCheck {
  const bySession = new Map<string, Set<number>>();
  let total = 0;
  for (const { sessionId, sequence } of events) {
    total++;
    let seen = bySession.get(sessionId);
    if (seen === undefined) bySession.set(sessionId, (seen = new Set()));
    seen.add(sequence);
  }
  const gaps: SequenceGap[] = [];
  const presentButAllowedMissing: string[] = [];
  let distinct = 0;
  for (const [sessionId, seen] of [...bySession].sort(([a], [b]) => (a < b ? -1 : 1))) {
    distinct += seen.size;
    const max = Math.max(...seen);
    let open: number | null = null;
    for (let sequence = 1; sequence <= max + 1; sequence++) {
      const id = `${sessionId}/${sequence}`;
      if (seen.has(sequence) && allowedMissing.has(id)) presentButAllowedMissing.push(id);
      const absent = sequence <= max && !seen.has(sequence) && !allowedMissing.has(id);
      if (absent) {
        open ??= sequence;
      } else if (open !== null) {
        gaps.push({ sessionId, from: open, to: sequence - 1 });
        open = null;
      }
    }
  }
  return {
    distinct,
    duplicates: total - distinct,
    sessions: bySession.size,
    gaps,
    presentButAllowedMissing,
  };
}
