import { backoffCeilingMs } from '../../shared/core/backoff.ts';

/**
 * The processor's transaction decisions, apart from the Kafka calls that carry them out
 * (io/transaction-runner.ts): when gathered records become a transaction, what follows a failed
 * one, when a hole before the records in hand is read again rather than believed, how a commit
 * whose answer never came is settled, and when a commit has hung too long to call the processor
 * ready. Time is data: every function takes the clock readings it needs (milliseconds), none
 * reads a clock or waits.
 */
export interface TransactionPolicyOptions {
  /** The longest the first record of a transaction waits for it (group commit). */
  readonly commitIntervalMs: number;
  readonly maxRecordsPerTransaction: number;
  /** The broker aborts a transaction open this long; also the budget of one commit. */
  readonly transactionTimeoutMs: number;
  /** Longest back-off before a failed transaction is tried again. */
  readonly retryMaxMs: number;
}

/** Failed transactions in a row beyond which the back-off stops growing. */
const BACKOFF_STEPS = 10;
/** Restores in a row that found the same hole before it is believed (see `holeAction`). */
export const MAX_HOLE_RESTORES = 5;

/**
 * Whether the records gathered so far make a transaction now. A transaction closes as soon as
 * no more records are waiting (the caller's part), when it holds `maxRecordsPerTransaction`, or
 * when its first record (gathered at `firstAtMs`) has waited the commit interval. At low rates
 * a record waits one commit round trip; at high rates records pile up while the previous
 * transaction commits, so transactions grow (up to the interval or the cap) and throughput holds.
 */
export function transactionFull(
  gathered: { readonly count: number; readonly firstAtMs: number },
  nowMs: number,
  options: Pick<TransactionPolicyOptions, 'commitIntervalMs' | 'maxRecordsPerTransaction'>,
): boolean {
  if (gathered.count >= options.maxRecordsPerTransaction) return true;
  return gathered.count > 0 && nowMs >= gathered.firstAtMs + options.commitIntervalMs;
}

/** What happened to a transaction that did not report success. */
export type FailureKind =
  /** Aborted (by us or the broker): nothing of it is visible. */
  | 'failed'
  /** This producer or member is a zombie: the broker aborted it. */
  | 'fenced'
  /** The commit was sent and never answered: it may have committed. */
  | 'outcome_unknown';

export interface FailureFacts {
  readonly kind: FailureKind;
  /** Failed transactions in a row, this one included. */
  readonly failuresInARow: number;
  readonly stopping: boolean;
  /** The records are still the ones in hand and the group membership has not changed. */
  readonly sameRecordsAndMembership: boolean;
}

export interface FailureDecision {
  /** Process the same records again (from freshly restored state) after `delayMs`. */
  readonly retry: boolean;
  readonly delayMs: number;
  /**
   * InitProducerId before the next restore: it settles the transaction left behind (a commit
   * under way completes, an open one is aborted), so the restore reads the truth at once rather
   * than waiting for the broker's transaction timeout.
   */
  readonly reinitProducer: boolean;
}

/**
 * After a failed transaction every partition's state is dropped (memory is ahead of what Kafka
 * holds) and read again. The same records are retried while the membership holds, after a
 * back-off; a fenced member retries the same way until the consumer sees the rebalance that
 * fenced it. An unknown outcome is retried at once: the restore decides what it was.
 */
export function afterFailure(
  facts: FailureFacts,
  options: Pick<TransactionPolicyOptions, 'retryMaxMs'>,
): FailureDecision {
  const retry = !facts.stopping && facts.sameRecordsAndMembership;
  const delayMs =
    retry && facts.kind !== 'outcome_unknown'
      ? backoffCeilingMs(
          { initialMs: 100, maxMs: options.retryMaxMs, multiplier: 2 },
          Math.min(facts.failuresInARow, BACKOFF_STEPS),
        )
      : 0;
  return { retry, delayMs, reinitProducer: true };
}

/**
 * The restored state starts after the records in hand on some partition (core/input-holes.ts).
 * A stale read heals by reading again, so the first `MAX_HOLE_RESTORES` times in a row the
 * transaction fails and the state is restored again; after that the state read is believed
 * and the hole's records are read from the events topic.
 */
export function holeAction(restoresInARow: number): 'restore_again' | 'fill' {
  return restoresInARow <= MAX_HOLE_RESTORES ? 'restore_again' : 'fill';
}

/** A transaction whose commit was never answered, kept until a restore tells what it did. */
export interface UnknownCommit<T> {
  /** Per input partition, the offset the transaction committed as next (its meta record). */
  readonly next: ReadonlyMap<number, number>;
  /** The membership it was sent under. */
  readonly generationId: number;
  readonly memberId: string;
  /** What to count if it committed (its telemetry). */
  readonly counted: T;
}

export type UnknownOutcome = 'committed' | 'not_committed' | 'undecided';

/**
 * What an unanswered commit did, from the state restored after it (each partition's `nextOffset`
 * from its meta record). Every transaction writes the meta record of each input partition, so a
 * committed one left `nextOffset` exactly at its `next`, an aborted one left the value before.
 * Only a restore under the same membership can tell: in a new generation another member may
 * have processed (and counted) the same records since.
 */
export function settleUnknownCommit(
  commit: Omit<UnknownCommit<unknown>, 'counted'>,
  restored: ReadonlyMap<number, number>,
  membership: { readonly generationId: number; readonly memberId: string } | null,
): UnknownOutcome {
  if (
    membership === null ||
    membership.generationId !== commit.generationId ||
    membership.memberId !== commit.memberId
  ) {
    return 'undecided';
  }
  let committed = 0;
  let notCommitted = 0;
  for (const [partition, next] of commit.next) {
    const now = restored.get(partition);
    if (now === undefined) return 'undecided';
    if (now === next) committed++;
    else if (now < next) notCommitted++;
    else return 'undecided';
  }
  if (committed > 0 && notCommitted === 0) return 'committed';
  if (notCommitted > 0 && committed === 0) return 'not_committed';
  return 'undecided';
}

/**
 * Whether a commit begun at `startedAtMs` (null: none under way) has hung: longer than the
 * transaction timeout, after which the broker has aborted whatever it did not receive and the
 * processor is not ready.
 */
export function commitHung(
  startedAtMs: number | null,
  nowMs: number,
  options: Pick<TransactionPolicyOptions, 'transactionTimeoutMs'>,
): boolean {
  return startedAtMs !== null && nowMs - startedAtMs > options.transactionTimeoutMs;
}
