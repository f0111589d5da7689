import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REJECT_REASONS } from '../../../../services/shared/core/qmp-message.ts';
import {
  emptyRejectCounts,
  totalRejected,
} from '../../../../services/shared/core/reject-counts.ts';

test('every reject reason starts at zero and the total sums them all', () => {
  const counts = emptyRejectCounts();
  assert.deepEqual(Object.keys(counts).sort(), [...REJECT_REASONS].sort());
  assert.equal(totalRejected(counts), 0);
  for (const reason of REJECT_REASONS) counts[reason] += 2;
  assert.equal(totalRejected(counts), 2 * REJECT_REASONS.length);
});
