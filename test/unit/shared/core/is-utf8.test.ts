import assert from 'node:assert/strict';
import * as buffer from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import { isUtf8 } from '../../../../services/shared/core/is-utf8.ts';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

test('well-formed UTF-8 is accepted, ASCII and multi-byte alike', () => {
  assert.equal(isUtf8(new TextEncoder().encode('{"event": "STOP", "vm": "vm-ä€😀"}')), true);
  assert.equal(isUtf8(bytes()), true);
  assert.equal(isUtf8(bytes(0xef, 0xbb, 0xbf, 0x7b, 0x7d)), true);
});

test('overlong forms, surrogates, code points past U+10FFFF and truncated sequences are not', () => {
  assert.equal(isUtf8(bytes(0xc0, 0xaf)), false);
  assert.equal(isUtf8(bytes(0xed, 0xa0, 0x80)), false);
  assert.equal(isUtf8(bytes(0xf4, 0x90, 0x80, 0x80)), false);
  assert.equal(isUtf8(bytes(0xe2, 0x82)), false);
  assert.equal(isUtf8(bytes(0xff)), false);
});

test('agrees with node:buffer isUtf8 on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 32 }), (b) => {
      assert.equal(isUtf8(b), buffer.isUtf8(b));
    }),
    { numRuns: 5000 },
  );
});
