import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nearestRankQuantile } from '../../../../services/shared/core/quantile.ts';

test('nearest-rank quantiles', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(nearestRankQuantile(values, 0.5), 50);
  assert.equal(nearestRankQuantile(values, 0.9), 90);
  assert.equal(nearestRankQuantile(values, 0.99), 99);
  assert.equal(nearestRankQuantile(values, 1), 100);
  assert.equal(nearestRankQuantile([7], 0.5), 7);
  assert.ok(Number.isNaN(nearestRankQuantile([], 0.5)));
});
