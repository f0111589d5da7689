import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { CRC32_TABLE, crc32 } from '../../../../services/shared/core/crc32.ts';

test('the CRC-32 check value of "123456789" is 0xCBF43926', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('agrees with zlib on arbitrary bytes and ranges', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.nat(), (bytes, a, b) => {
      const start = bytes.length === 0 ? 0 : a % bytes.length;
      const end = start + (bytes.length === 0 ? 0 : b % (bytes.length - start + 1));
      assert.equal(crc32(bytes, start, end), zlibCrc32(bytes.subarray(start, end)));
    }),
  );
});

test('the written-out table is the reflected polynomial 0xEDB88320, byte by byte', () => {
  const computed = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    computed[n] = c >>> 0;
  }
  assert.deepEqual(CRC32_TABLE, computed);
});
