import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AVRO_DECODE_INVALID_REASONS,
  AVRO_FRAME_INVALID_REASONS,
} from '../../../../../services/shared/core/avro/decode-reasons.ts';
import { createEventCodec } from '../../../../../services/shared/io/avro-codec.ts';

test('one spelling: every reason is snake_case (a Prometheus label value as it is)', () => {
  for (const reason of AVRO_DECODE_INVALID_REASONS) assert.match(reason, /^[a-z]+(_[a-z]+)*$/);
  for (const reason of AVRO_FRAME_INVALID_REASONS) {
    assert.ok(AVRO_DECODE_INVALID_REASONS.includes(reason));
  }
});

test('the codec reports its reasons in that spelling', () => {
  const codec = createEventCodec();
  const bad = codec.decode(Uint8Array.from([0x00, 0x01, 0x02]));
  assert.equal(bad.kind, 'invalid');
  assert.ok(bad.kind === 'invalid' && AVRO_DECODE_INVALID_REASONS.includes(bad.reason));
  assert.equal(bad.kind === 'invalid' && bad.reason, 'bad_marker');
});
