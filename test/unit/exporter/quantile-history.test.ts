import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createQuantileHistory } from '../../../services/exporter/core/quantile-history.ts';

const bounds = [0.01, 0.02, 0.05];
const history = (capacity = 10, windowMs = 10_000) =>
  createQuantileHistory({ bounds, windowMs, capacity, startMs: 0 });

test('the first point covers everything since start', () => {
  const h = history();
  // 10 observations in (0.01, 0.02]: p50 at the middle of that bucket.
  const p = h.record(5000, [0, 10, 10, 10]);
  assert.equal(p.atMs, 5000);
  assert.equal(p.count, 10);
  for (const [actual, expected] of [
    [p.p50, 0.015],
    [p.p90, 0.019],
    [p.p99, 0.0199],
  ] as const) {
    assert.ok(actual !== null && Math.abs(actual - expected) < 1e-12, `${actual} ≉ ${expected}`);
  }
});

test('a point covers only the window: older observations drop out', () => {
  const h = history(10, 10_000);
  h.record(5000, [10, 10, 10, 10]); // 10 fast ones
  h.record(10_000, [10, 10, 10, 10]);
  // At 15 s the baseline is the 5 s snapshot: only the 10 new slow ones count.
  const p = h.record(15_000, [10, 10, 20, 20]);
  assert.equal(p.count, 10);
  assert.equal(p.p50, 0.035);
});

test('a window without observations gives null quantiles, not NaN', () => {
  const h = history(10, 1000);
  h.record(1000, [1, 1, 1, 1]);
  const p = h.record(3000, [1, 1, 1, 1]);
  assert.deepEqual(p, { atMs: 3000, count: 0, p50: null, p90: null, p99: null });
  assert.doesNotThrow(() => JSON.stringify(h.points()));
});

test('the ring keeps the newest points, oldest first', () => {
  const h = history(3);
  for (let t = 1; t <= 5; t++) h.record(t * 1000, [t, t, t, t]);
  assert.deepEqual(
    h.points().map((p) => p.atMs),
    [3000, 4000, 5000],
  );
});

test('after a histogram reset, what was counted since is new (like PromQL increase)', () => {
  const h = history(10, 1000);
  h.record(1000, [5, 5, 5, 5]);
  const p = h.record(2000, [0, 2, 2, 2]);
  assert.equal(p.count, 2);
  assert.equal(p.p50, 0.015);
});

test('rejects counts that do not match the bounds', () => {
  assert.throws(() => history().record(1, [1, 2]), RangeError);
});
