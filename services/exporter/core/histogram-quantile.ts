/**
 * Prometheus's `histogram_quantile` for classic histograms (prometheus/prometheus
 * `promql/quantile.go`, `bucketQuantile`), so the live page shows what a PromQL query over the
 * same buckets would:
 *
 * - q < 0 → -Inf, q > 1 → +Inf, q NaN → NaN;
 * - buckets are sorted by upper bound, equal bounds merged, counts forced non-decreasing;
 * - NaN when the highest bound is not +Inf, fewer than 2 buckets remain, or the count is 0;
 * - the rank q·count is found in the first bucket whose cumulative count reaches it, and the
 *   value is interpolated linearly inside that bucket, whose lower bound is the previous bucket's
 *   upper bound (0 for the first bucket, unless its upper bound is ≤ 0: then that bound);
 * - a rank in the +Inf bucket returns the highest finite bound.
 */
export interface CumulativeBucket {
  /** Upper bound (`le`); the last bucket must be +Inf. */
  le: number;
  /** Observations ≤ le (cumulative, as in `_bucket` series). */
  count: number;
}

export function histogramQuantile(q: number, input: readonly CumulativeBucket[]): number {
  if (Number.isNaN(q)) return Number.NaN;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  if (input.length === 0) return Number.NaN;
  const sorted = [...input].sort((a, b) => a.le - b.le);
  if (sorted[sorted.length - 1]?.le !== Number.POSITIVE_INFINITY) return Number.NaN;

  const buckets: CumulativeBucket[] = [];
  for (const b of sorted) {
    const last = buckets[buckets.length - 1];
    if (last !== undefined && last.le === b.le) last.count += b.count;
    else buckets.push({ le: b.le, count: b.count });
  }
  // Counts scraped non-atomically can dip; Prometheus lifts them to the running maximum.
  let max = 0;
  for (const b of buckets) {
    max = Math.max(max, b.count);
    b.count = max;
  }
  if (buckets.length < 2) return Number.NaN;
  const observations = (buckets[buckets.length - 1] as CumulativeBucket).count;
  if (observations === 0) return Number.NaN;

  let rank = q * observations;
  let b = buckets.findIndex((x, i) => i < buckets.length - 1 && x.count >= rank);
  if (b === -1) b = buckets.length - 1;
  if (b === buckets.length - 1) return (buckets[buckets.length - 2] as CumulativeBucket).le;
  const bucket = buckets[b] as CumulativeBucket;
  if (b === 0 && bucket.le <= 0) return bucket.le;
  let start = 0;
  let count = bucket.count;
  if (b > 0) {
    const previous = buckets[b - 1] as CumulativeBucket;
    start = previous.le;
    count -= previous.count;
    rank -= previous.count;
  }
  return start + (bucket.le - start) * (rank / count);
}

/** Cumulative buckets from per-bucket counts over `bounds` plus a final +Inf count. */
export function cumulativeBuckets(
  bounds: readonly number[],
  perBucket: readonly number[],
): CumulativeBucket[] {
  let total = 0;
  return perBucket.map((n, i) => {
    total += n;
    return { le: bounds[i] ?? Number.POSITIVE_INFINITY, count: total };
  });
}
