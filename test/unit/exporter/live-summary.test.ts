import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  aggregateHistogram,
  buildHostSummaries,
  buildLiveSummary,
  sumBy,
  type MetricSample,
} from '../../../services/exporter/core/live-summary.ts';

const bounds = [0.01, 0.05];
const series = (
  labels: Record<string, string>,
  cumulative: number[],
  sum: number,
): MetricSample[] => [
  ...cumulative.map((value, i) => ({
    labels: { ...labels, le: i < bounds.length ? (bounds[i] as number) : '+Inf' },
    value,
    metricName: 'x_bucket',
  })),
  { labels, value: sum, metricName: 'x_sum' },
  { labels, value: cumulative[cumulative.length - 1] as number, metricName: 'x_count' },
];

test('aggregateHistogram sums buckets by one label (sum by (outcome, le))', () => {
  const samples = [
    ...series({ target: 'a', outcome: 'completed' }, [1, 2, 3], 0.3),
    ...series({ target: 'b', outcome: 'completed' }, [0, 4, 4], 0.1),
    ...series({ target: 'a', outcome: 'failed' }, [0, 0, 1], 2),
  ];
  const agg = aggregateHistogram(samples, bounds, 'outcome');
  assert.deepEqual(agg.get('completed'), { cumulative: [1, 6, 7], sum: 0.4, count: 7 });
  assert.deepEqual(agg.get('failed'), { cumulative: [0, 0, 1], sum: 2, count: 1 });
});

test('buildLiveSummary: per-bucket counts, share within budget, all outcomes listed', () => {
  const s = buildLiveSummary({
    atMs: 1,
    ready: true,
    readiness: [],
    recordsConsumed: 12,
    recordsInvalid: 1,
    bounds,
    budgetSeconds: 0.05,
    latencyByOutcome: new Map([['completed', { cumulative: [1, 6, 8], sum: 1, count: 8 }]]),
    outcomeCounts: sumBy(
      [
        { labels: { outcome: 'completed', target: 'a' }, value: 5 },
        { labels: { outcome: 'completed', target: 'b' }, value: 3 },
        { labels: { outcome: 'weird' }, value: 1 },
      ],
      'outcome',
    ),
    quantileWindowSeconds: 60,
    quantiles: [],
  });
  assert.deepEqual(s.latency, [
    { outcome: 'completed', count: 8, sum: 1, perBucket: [1, 5, 2], withinBudget: 0.75 },
    { outcome: 'failed', count: 0, sum: 0, perBucket: [0, 0, 0], withinBudget: null },
  ]);
  assert.deepEqual(s.outcomes, [
    { outcome: 'completed', count: 8 },
    { outcome: 'failed', count: 0 },
    { outcome: 'timed_out', count: 0 },
    { outcome: 'aborted', count: 0 },
    { outcome: 'unfinished', count: 0 },
    { outcome: 'weird', count: 1 },
  ]);
});

describe('buildHostSummaries', () => {
  test('prepares, p99 and over-budget count per host', () => {
    const bounds = [0.01, 0.05, 0.1];
    const latency = new Map([
      // 10 completed: 5 ≤ 10 ms, 3 ≤ 50 ms, 2 ≤ 100 ms.
      ['h1', { cumulative: [5, 8, 10, 10], sum: 0.3, count: 10 }],
      ['h2', { cumulative: [0, 0, 0, 0], sum: 0, count: 0 }],
    ]);
    const prepares = new Map([
      ['h1', 12],
      ['h2', 3],
      ['', 4],
    ]);
    const rows = buildHostSummaries(bounds, 0.05, latency, prepares);
    assert.equal(rows.length, 2);
    const [h1, h2] = rows;
    assert.equal(h1?.host, 'h1');
    assert.equal(h1?.prepares, 12);
    assert.equal(h1?.completed, 10);
    assert.equal(h1?.overBudget, 2);
    // rank 9.9 in (0.05, 0.1]: 0.05 + 0.05 × (1.9 / 2)
    assert.ok(Math.abs((h1?.p99 ?? 0) - 0.0975) < 1e-12, String(h1?.p99));
    assert.deepEqual(h2, { host: 'h2', prepares: 3, completed: 0, p99: null, overBudget: 0 });
  });
});
