/**
 * The live page's "p50/p90/p99 over time": every few seconds the exporter takes the cumulative
 * bucket counts of its latency histogram and records one point, the quantiles of what was
 * observed during the last `windowMs` — what `histogram_quantile(q, sum by (le)
 * (increase(x_bucket[window])))` would show. Kept in memory in a ring of `capacity` points.
 *
 * Pure: the caller passes the time and the counts; nothing here reads a clock or prom-client.
 */
import { histogramQuantile, type CumulativeBucket } from './histogram-quantile.ts';

export const LIVE_QUANTILES = [0.5, 0.9, 0.99] as const;

export interface QuantilePoint {
  atMs: number;
  /** Observations in the window ending at `atMs`. */
  count: number;
  /** Seconds; null when the window holds no observation (NaN does not survive JSON). */
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface QuantileHistoryOptions {
  /** Upper bounds of the finite buckets; counts carry one more entry, for +Inf. */
  bounds: readonly number[];
  windowMs: number;
  capacity: number;
  /** When the histogram was empty (process start): the first baseline. */
  startMs: number;
}

export interface QuantileHistory {
  /** Records the histogram's cumulative counts (per bound, then +Inf) at `atMs`. */
  record(atMs: number, cumulative: readonly number[]): QuantilePoint;
  /** Oldest first. */
  points(): QuantilePoint[];
}

interface Snapshot {
  atMs: number;
  cumulative: readonly number[];
}

export function createQuantileHistory(options: QuantileHistoryOptions): QuantileHistory {
  const { bounds, windowMs, capacity } = options;
  const width = bounds.length + 1;
  // Snapshots of the last window plus the newest one older than it, which is the baseline.
  const snapshots: Snapshot[] = [
    { atMs: options.startMs, cumulative: new Array<number>(width).fill(0) },
  ];
  const ring: QuantilePoint[] = [];
  let head = 0;

  const record = (atMs: number, cumulative: readonly number[]): QuantilePoint => {
    if (cumulative.length !== width) {
      throw new RangeError(`expected ${width} cumulative counts, got ${cumulative.length}`);
    }
    while (snapshots.length > 1 && (snapshots[1] as Snapshot).atMs <= atMs - windowMs) {
      snapshots.shift();
    }
    const baseline = (snapshots[0] as Snapshot).cumulative;
    const buckets: CumulativeBucket[] = cumulative.map((count, i) => ({
      le: bounds[i] ?? Number.POSITIVE_INFINITY,
      // A count below the baseline means the histogram was reset: like PromQL's increase(),
      // everything counted since the reset is new.
      count: count < (baseline[i] as number) ? count : count - (baseline[i] as number),
    }));
    snapshots.push({ atMs, cumulative: [...cumulative] });
    const [p50, p90, p99] = LIVE_QUANTILES.map((q) => finiteOrNull(histogramQuantile(q, buckets)));
    const point: QuantilePoint = {
      atMs,
      count: (buckets[buckets.length - 1] as CumulativeBucket).count,
      p50: p50 ?? null,
      p90: p90 ?? null,
      p99: p99 ?? null,
    };
    if (ring.length < capacity) ring.push(point);
    else {
      ring[head] = point;
      head = (head + 1) % capacity;
    }
    return point;
  };

  return {
    record,
    points: () => [...ring.slice(head), ...ring.slice(0, head)],
  };
}

function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}
