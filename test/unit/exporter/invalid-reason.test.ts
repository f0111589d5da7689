import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  INVALID_REASONS,
  invalidReasonOfDecode,
} from '../../../services/exporter/core/invalid-reason.ts';

test('Avro decode reasons become snake_case labels of the fixed set', () => {
  assert.equal(invalidReasonOfDecode('short-frame'), 'short_frame');
  assert.equal(invalidReasonOfDecode('unknown-schema'), 'unknown_schema');
  assert.equal(invalidReasonOfDecode('trailing_bytes'), 'trailing_bytes');
  for (const reason of INVALID_REASONS) assert.equal(invalidReasonOfDecode(reason), reason);
});

test('a reason the set does not know counts as bad_body', () => {
  assert.equal(invalidReasonOfDecode('brand-new-reason'), 'bad_body');
  assert.equal(invalidReasonOfDecode(''), 'bad_body');
});
