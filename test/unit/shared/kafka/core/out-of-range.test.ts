import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outOfRangeAction } from '../../../../../services/shared/kafka/core/out-of-range.ts';

test('below the log start (records gone by retention): move to the log start', () => {
  assert.deepEqual(outOfRangeAction(10n, 500n), { kind: 'move_to_log_start', offset: 500n });
});

test('at or after the log start: the broker asked is behind; retry, never skip ahead', () => {
  assert.deepEqual(outOfRangeAction(500n, 500n), { kind: 'retry' });
  assert.deepEqual(outOfRangeAction(9_000n, 0n), { kind: 'retry' });
});
