import type { PrepareRecord, TransitionRecord } from '../../shared/core/transition-record.ts';

/**
 * The `n` slowest prepares of a replay (`replay --top N`): those an event closed (completed or
 * failed; the others have no duration), slowest first, the earlier one first on a tie. Holds at
 * most `n` records whatever the transcript's size.
 */
export class TopPrepares {
  private readonly kept: PrepareRecord[] = [];

  constructor(private readonly n: number) {}

  add(record: TransitionRecord): void {
    if (record.type !== 'prepare' || record.seconds === null || this.n <= 0) return;
    const seconds = record.seconds;
    const kept = this.kept;
    if (
      kept.length === this.n &&
      ((kept[kept.length - 1] as PrepareRecord).seconds ?? 0) >= seconds
    ) {
      return;
    }
    let at = kept.length;
    while (at > 0 && ((kept[at - 1] as PrepareRecord).seconds ?? 0) < seconds) at--;
    kept.splice(at, 0, record);
    if (kept.length > this.n) kept.pop();
  }

  slowest(): readonly PrepareRecord[] {
    return this.kept;
  }
}
