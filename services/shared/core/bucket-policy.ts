/**
 * Histogram buckets for transition durations, in seconds: the one place they are defined.
 *
 * Why these bounds: the pre-copy-p2p transition normally takes a few ms, "can take hundreds of
 * milliseconds" under load (QEMU's prepare patch), and RDMA peers time out after tens of ms. So
 * the buckets are dense from 10 ms to 100 ms, where an alert threshold will sit, coarser up to
 * 10 s, and one beyond it (30 s) so that `+Inf` only holds what is truly stuck. The default RDMA
 * budget (50 ms) is a bound, so an SLO ratio needs no interpolation. 1 ms is the floor of
 * interest: below it the QMP timestamp resolution and event-building cost dominate.
 * KubeVirt's migration buckets start at 0.5 s, too coarse for this.
 */
export const DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075, 0.1, 0.15, 0.2,
  0.25, 0.35, 0.5, 0.75, 1, 2.5, 5, 10, 30,
]);

/** The default RDMA budget for prepare-to-completion latency; alert rules use the same value. */
export const RDMA_BUDGET_SECONDS = 0.05;

/**
 * Buckets for delivery lag (QEMU timestamp → observed by the exporter): the same fine range at
 * the bottom, wider at the top because a backlog after an outage lasts minutes.
 */
export const LAG_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
]);

/** Index of the first bucket whose upper bound holds `seconds`; `buckets.length` means +Inf. */
export function bucketIndex(buckets: readonly number[], seconds: number): number {
  let lo = 0;
  let hi = buckets.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (seconds <= (buckets[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
