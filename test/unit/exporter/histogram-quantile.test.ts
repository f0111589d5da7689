import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  cumulativeBuckets,
  histogramQuantile,
  type CumulativeBucket,
} from '../../../services/exporter/core/histogram-quantile.ts';

const INF = Number.POSITIVE_INFINITY;
const b = (pairs: [number, number][]): CumulativeBucket[] =>
  pairs.map(([le, count]) => ({ le, count }));

/**
 * Expected values are Prometheus's own results: prometheus/prometheus
 * promql/promqltest/testdata/histograms.test, evaluated at 50m (each series is 10× its step).
 */
const testhistogramPositive = b([
  [0.1, 50],
  [0.2, 70],
  [1, 110],
  [INF, 120],
]);
const testhistogramNegative = b([
  [-0.2, 10],
  [-0.1, 20],
  [0.3, 20],
  [INF, 30],
]);
const testhistogram2 = b([
  [0, 0],
  [2, 1],
  [4, 2],
  [6, 3],
  [INF, 3],
]);
const testhistogram3Positive = b([
  [0, 0],
  [0.1, 50],
  [0.2, 70],
  [1, 110],
  [INF, 110],
]);
const testhistogram3Negative = b([
  [-0.25, 0],
  [-0.2, 10],
  [-0.1, 20],
  [0.3, 20],
  [INF, 20],
]);
// sum by (le) (rate(request_duration_seconds_bucket[10m])), scaled: the ratios are what counts.
const requestDurationSum = b([
  [0.1, 10],
  [0.2, 19],
  [INF, 25],
]);

function close(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≉ ${expected}`);
}

describe('histogramQuantile matches Prometheus histogram_quantile', () => {
  const cases: [string, number, CumulativeBucket[], number][] = [
    ['testhistogram positive q=0', 0, testhistogramPositive, 0],
    ['testhistogram positive q=0.2', 0.2, testhistogramPositive, 0.048],
    ['testhistogram positive q=0.5', 0.5, testhistogramPositive, 0.15],
    ['testhistogram positive q=0.8', 0.8, testhistogramPositive, 0.72],
    ['testhistogram positive q=1', 1, testhistogramPositive, 1],
    ['testhistogram negative q=0', 0, testhistogramNegative, -0.2],
    ['testhistogram negative q=0.2', 0.2, testhistogramNegative, -0.2],
    ['testhistogram negative q=0.5', 0.5, testhistogramNegative, -0.15],
    ['testhistogram negative q=0.8', 0.8, testhistogramNegative, 0.3],
    ['testhistogram negative q=1', 1, testhistogramNegative, 0.3],
    ['testhistogram2 q=1/6 (middle of a bucket)', 1 / 6, testhistogram2, 1],
    ['testhistogram2 q=0.5', 0.5, testhistogram2, 3],
    ['testhistogram2 q=5/6', 5 / 6, testhistogram2, 5],
    ['testhistogram3 positive q=0.25', 0.25, testhistogram3Positive, 0.055],
    ['testhistogram3 positive q=0.5', 0.5, testhistogram3Positive, 0.125],
    ['testhistogram3 positive q=0.75', 0.75, testhistogram3Positive, 0.45],
    ['testhistogram3 negative q=0', 0, testhistogram3Negative, -0.25],
    ['testhistogram3 negative q=0.25', 0.25, testhistogram3Negative, -0.225],
    ['testhistogram3 negative q=1', 1, testhistogram3Negative, -0.1],
    ['request_duration sum by (le) q=0.3', 0.3, requestDurationSum, 0.075],
    ['request_duration sum by (le) q=0.5', 0.5, requestDurationSum, 0.1277777777777778],
  ];
  for (const [name, q, buckets, expected] of cases) {
    test(name, () => close(histogramQuantile(q, buckets), expected));
  }

  test('q out of range gives ±Inf, NaN q gives NaN', () => {
    assert.equal(histogramQuantile(-0.1, testhistogramPositive), -INF);
    assert.equal(histogramQuantile(1.01, testhistogramPositive), INF);
    assert.ok(Number.isNaN(histogramQuantile(Number.NaN, testhistogramPositive)));
  });

  test('NaN without observations, without a +Inf bucket, or with fewer than 2 buckets', () => {
    assert.ok(
      Number.isNaN(
        histogramQuantile(
          0.5,
          b([
            [1, 0],
            [INF, 0],
          ]),
        ),
      ),
    );
    assert.ok(
      Number.isNaN(
        histogramQuantile(
          0.5,
          b([
            [1, 3],
            [2, 5],
          ]),
        ),
      ),
    );
    assert.ok(Number.isNaN(histogramQuantile(0.5, b([[INF, 5]]))));
    assert.ok(Number.isNaN(histogramQuantile(0.5, [])));
  });

  test('a rank in the +Inf bucket returns the highest finite bound', () => {
    assert.equal(
      histogramQuantile(
        0.99,
        b([
          [0.1, 1],
          [0.2, 2],
          [INF, 10],
        ]),
      ),
      0.2,
    );
  });

  test('unsorted input, equal bounds merged, dipping counts lifted (the "mixed" series)', () => {
    // mixed_bucket: le 0.1, 0.2, 2e-1, 2.0e-1 each 1, +Inf 4 → equal bounds sum to 3.
    const mixed = b([
      [INF, 4],
      [0.2, 1],
      [0.1, 1],
      [0.2, 1],
      [0.2, 1],
    ]);
    close(histogramQuantile(0.5, mixed), 0.1 + 0.1 * ((2 - 1) / 2));
    close(
      histogramQuantile(
        0.5,
        b([
          [0.1, 4],
          [0.2, 3],
          [INF, 8],
        ]),
      ),
      0.1,
    );
  });
});

test('cumulativeBuckets sums per-bucket counts and ends with +Inf', () => {
  assert.deepEqual(
    cumulativeBuckets([1, 2], [1, 0, 2]),
    b([
      [1, 1],
      [2, 1],
      [INF, 3],
    ]),
  );
});
