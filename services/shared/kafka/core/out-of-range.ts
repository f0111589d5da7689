/**
 * What a reader does when a fetch answers OFFSET_OUT_OF_RANGE, given the partition's log start.
 *
 * Below the log start the records are gone (retention): move to the start. Anything else means
 * the broker asked is behind the offset (a replica that just restarted and still believes it
 * leads, stale metadata): keep the position and fetch again after fresh metadata. Never jump to
 * the end — skipping ahead once made a restore read 20 s old state and the processor lose
 * transitions during a rolling restart (test/e2e/faults/broker-faults.test.ts).
 */
export type OutOfRangeAction =
  { readonly kind: 'move_to_log_start'; readonly offset: bigint } | { readonly kind: 'retry' };

export function outOfRangeAction(position: bigint, logStart: bigint): OutOfRangeAction {
  return logStart > position ? { kind: 'move_to_log_start', offset: logStart } : { kind: 'retry' };
}
