import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bucketIndex,
  DURATION_BUCKETS_SECONDS,
  LAG_BUCKETS_SECONDS,
  RDMA_BUDGET_SECONDS,
} from '../../../../services/shared/core/bucket-policy.ts';

test('duration buckets run from 1 ms to beyond 10 s, strictly increasing', () => {
  for (const buckets of [DURATION_BUCKETS_SECONDS, LAG_BUCKETS_SECONDS]) {
    assert.equal(buckets[0], 0.001);
    assert.ok((buckets.at(-1) as number) > 10);
    for (let i = 1; i < buckets.length; i++)
      assert.ok((buckets[i] as number) > (buckets[i - 1] as number));
  }
});

test('dense where RDMA timeouts live: at least 8 bounds between 10 ms and 100 ms, the budget among them', () => {
  const tens = DURATION_BUCKETS_SECONDS.filter((b) => b >= 0.01 && b <= 0.1);
  assert.ok(tens.length >= 8, `only ${tens.length}`);
  assert.ok(DURATION_BUCKETS_SECONDS.includes(RDMA_BUDGET_SECONDS));
});

test('bucketIndex finds the first bound that holds the value (le semantics)', () => {
  const b = [0.001, 0.01, 0.1];
  assert.equal(bucketIndex(b, 0), 0);
  assert.equal(bucketIndex(b, 0.001), 0);
  assert.equal(bucketIndex(b, 0.0011), 1);
  assert.equal(bucketIndex(b, 0.1), 2);
  assert.equal(bucketIndex(b, 5), 3);
});
