/**
 * Nearest-rank quantile of an ascending array: the smallest value with at least q of the values
 * at or below it. Exact for what replay reports (it keeps every value), unlike the bucket
 * interpolation of Prometheus's `histogram_quantile`.
 */
export function nearestRankQuantile(sortedAscending: readonly number[], q: number): number {
  if (sortedAscending.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sortedAscending.length));
  return sortedAscending[Math.min(rank, sortedAscending.length) - 1] as number;
}
