import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AVRO_DECODE_INVALID_REASONS } from '../../../services/shared/core/avro/decode-reasons.ts';
import { INVALID_REASONS } from '../../../services/exporter/core/invalid-reason.ts';

test('every Avro decode reason is a label of the fixed set as it is, no conversion', () => {
  for (const reason of AVRO_DECODE_INVALID_REASONS) assert.ok(INVALID_REASONS.includes(reason));
});

test('labels are snake_case, as Prometheus label values, and unique', () => {
  for (const reason of INVALID_REASONS) assert.match(reason, /^[a-z]+(_[a-z]+)*$/);
  assert.equal(new Set(INVALID_REASONS).size, INVALID_REASONS.length);
});
