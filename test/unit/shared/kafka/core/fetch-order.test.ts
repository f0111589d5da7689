import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fetchOrder } from '../../../../../services/shared/kafka/core/fetch-order.ts';

test('each round starts one partition further, so every partition is first in turn', () => {
  const partitions = [0, 1, 2];
  assert.deepEqual(fetchOrder(partitions, 0), [0, 1, 2]);
  assert.deepEqual(fetchOrder(partitions, 1), [1, 2, 0]);
  assert.deepEqual(fetchOrder(partitions, 2), [2, 0, 1]);
  assert.deepEqual(fetchOrder(partitions, 3), [0, 1, 2]);
  const firsts = new Set(Array.from({ length: 6 }, (_, round) => fetchOrder(partitions, round)[0]));
  assert.deepEqual([...firsts].sort(), partitions);
});

test('every partition is asked for once, whatever the round (also huge or negative rounds)', () => {
  for (const round of [0, 7, -1, Number.MAX_SAFE_INTEGER]) {
    assert.deepEqual([...fetchOrder([5, 6, 7, 8], round)].sort(), [5, 6, 7, 8]);
  }
  assert.deepEqual(fetchOrder([], 3), []);
  assert.deepEqual(fetchOrder([4], 3), [4]);
});

test('the input is left as it was', () => {
  const partitions = [0, 1];
  fetchOrder(partitions, 1);
  assert.deepEqual(partitions, [0, 1]);
});
