import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  backoffCeilingMs,
  backoffDelayMs,
  DEFAULT_BACKOFF,
} from '../../../../services/shared/core/backoff.ts';

const policy = { initialMs: 100, maxMs: 5000, multiplier: 2 };

test('the ceiling doubles per attempt and stops at maxMs', () => {
  const ceilings = [0, 1, 2, 3, 4, 5, 6, 50].map((a) => backoffCeilingMs(policy, a));
  assert.deepEqual(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
});

test('equal jitter: a delay lies between half the ceiling and the ceiling', () => {
  for (const attempt of [0, 3, 10]) {
    const ceiling = backoffCeilingMs(policy, attempt);
    assert.equal(backoffDelayMs(policy, attempt, 0), ceiling / 2);
    assert.equal(backoffDelayMs(policy, attempt, 0.999999), ceiling);
    const mid = backoffDelayMs(policy, attempt, 0.5);
    assert.ok(mid > ceiling / 2 && mid < ceiling);
  }
});

test('random values outside [0, 1) are clamped', () => {
  assert.equal(backoffDelayMs(policy, 0, -3), 50);
  assert.equal(backoffDelayMs(policy, 0, 7), 100);
});

test('the default policy reaches its 30 s cap after nine attempts and never exceeds it', () => {
  assert.equal(backoffCeilingMs(DEFAULT_BACKOFF, 8), 25_600);
  assert.equal(backoffCeilingMs(DEFAULT_BACKOFF, 9), 30_000);
  assert.equal(backoffDelayMs(DEFAULT_BACKOFF, 10_000, 0.999), 29_985);
});
