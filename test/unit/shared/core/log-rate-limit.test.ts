import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogRateLimit } from '../../../../services/shared/core/log-rate-limit.ts';

test('one line per key per interval, then the number held back', () => {
  const limit = createLogRateLimit(10_000);
  assert.equal(limit.admit('a', 1_000), 0);
  assert.equal(limit.admit('a', 1_001), null);
  assert.equal(limit.admit('a', 10_999), null);
  assert.equal(limit.admit('b', 10_999), 0);
  assert.equal(limit.admit('a', 11_000), 2);
  assert.equal(limit.admit('a', 21_000), 0);
});

test('a clock that steps back keeps suppressing until the interval has passed again', () => {
  const limit = createLogRateLimit(10_000);
  assert.equal(limit.admit('a', 50_000), 0);
  assert.equal(limit.admit('a', 20_000), null);
  assert.equal(limit.admit('a', 60_000), 1);
});
