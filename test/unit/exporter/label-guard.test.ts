import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createLabelGuard,
  FOLDED_LABEL_VALUE,
} from '../../../services/exporter/core/label-guard.ts';

test('admits the first max distinct values, folds later new ones into "other" and counts them', () => {
  const guard = createLabelGuard(2);
  const labels = ['a', 'b', 'a', 'c', 'b', 'd', 'c'].map((v) => guard.admit(v));
  assert.deepEqual(labels, [
    'a',
    'b',
    'a',
    FOLDED_LABEL_VALUE,
    'b',
    FOLDED_LABEL_VALUE,
    FOLDED_LABEL_VALUE,
  ]);
  assert.equal(guard.admitted, 2);
  assert.equal(guard.folded, 3);
});

test('known values are always admitted and do not use the budget', () => {
  const guard = createLabelGuard(1, ['running', 'stop']);
  assert.deepEqual(
    ['x', 'running', 'y', 'stop', 'x'].map((v) => guard.admit(v)),
    ['x', 'running', FOLDED_LABEL_VALUE, 'stop', 'x'],
  );
  assert.equal(guard.admitted, 1);
  assert.equal(guard.folded, 1);
});

test('max 0 admits only the known values', () => {
  const guard = createLabelGuard(0, ['completed']);
  assert.equal(guard.admit('completed'), 'completed');
  assert.equal(guard.admit('new_outcome'), FOLDED_LABEL_VALUE);
});
