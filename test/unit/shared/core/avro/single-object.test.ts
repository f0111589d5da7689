import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc64Avro } from '../../../../../services/shared/core/avro/crc64-avro.ts';
import {
  createSingleObjectHeader,
  parseSingleObjectFrame,
  SINGLE_OBJECT_HEADER_LENGTH,
  writeSingleObjectHeader,
} from '../../../../../services/shared/core/avro/single-object.ts';

const INT_FINGERPRINT = crc64Avro('"int"');

void test('the header is C3 01 and the little-endian fingerprint', () => {
  const header = createSingleObjectHeader(INT_FINGERPRINT);
  assert.equal(SINGLE_OBJECT_HEADER_LENGTH, 10);
  assert.deepEqual([...header], [0xc3, 0x01, ...INT_FINGERPRINT]);
});

void test('writeSingleObjectHeader writes at an offset and returns where the datum goes', () => {
  const target = new Uint8Array(16).fill(0xee);
  assert.equal(writeSingleObjectHeader(target, INT_FINGERPRINT, 3), 13);
  assert.deepEqual([...target.subarray(0, 3)], [0xee, 0xee, 0xee]);
  assert.deepEqual([...target.subarray(3, 13)], [0xc3, 0x01, ...INT_FINGERPRINT]);
  assert.deepEqual([...target.subarray(13)], [0xee, 0xee, 0xee]);
});

void test('writeSingleObjectHeader rejects a wrong fingerprint length or a small target', () => {
  assert.throws(() => writeSingleObjectHeader(new Uint8Array(10), new Uint8Array(7)), RangeError);
  assert.throws(() => writeSingleObjectHeader(new Uint8Array(9), INT_FINGERPRINT), RangeError);
  assert.throws(() => writeSingleObjectHeader(new Uint8Array(12), INT_FINGERPRINT, 3), RangeError);
});

void test('a frame parses to its fingerprint and body offset', () => {
  // "int" 27 in Avro binary is the zig-zag varint 0x36.
  const frame = Uint8Array.from([...createSingleObjectHeader(INT_FINGERPRINT), 0x36]);
  assert.deepEqual(parseSingleObjectFrame(frame), {
    kind: 'frame',
    fingerprint: BigInt.asUintN(64, 8247732601305521295n),
    bodyOffset: 10,
  });
});

void test('a frame inside a larger buffer is read from its own offset', () => {
  const backing = new Uint8Array(32);
  writeSingleObjectHeader(backing, INT_FINGERPRINT, 5);
  const result = parseSingleObjectFrame(backing.subarray(5, 16));
  assert.equal(result.kind, 'frame');
  assert.equal(result.kind === 'frame' && result.fingerprint, 8247732601305521295n);
});

void test('a header with an empty body is still a frame; the datum decoder judges the body', () => {
  assert.equal(parseSingleObjectFrame(createSingleObjectHeader(INT_FINGERPRINT)).kind, 'frame');
});

const INVALID_FRAMES: readonly { name: string; bytes: number[]; reason: string }[] = [
  { name: 'empty', bytes: [], reason: 'short_frame' },
  { name: 'marker only', bytes: [0xc3, 0x01], reason: 'short_frame' },
  { name: 'one marker byte', bytes: [0xc3], reason: 'short_frame' },
  {
    name: 'fingerprint cut short',
    bytes: [0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7],
    reason: 'short_frame',
  },
  { name: 'JSON text', bytes: [...Buffer.from('{"host":"a"}')], reason: 'bad_marker' },
  { name: 'wrong version', bytes: [0xc3, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 0], reason: 'bad_marker' },
  {
    name: 'marker bytes swapped',
    bytes: [0x01, 0xc3, 1, 2, 3, 4, 5, 6, 7, 8],
    reason: 'bad_marker',
  },
  { name: 'short and not Avro', bytes: [0x7b], reason: 'bad_marker' },
  {
    name: 'object container file',
    bytes: [0x4f, 0x62, 0x6a, 1, 0, 0, 0, 0, 0, 0],
    reason: 'bad_marker',
  },
];

for (const { name, bytes, reason } of INVALID_FRAMES) {
  void test(`invalid frame: ${name}`, () => {
    assert.deepEqual(parseSingleObjectFrame(Uint8Array.from(bytes)), { kind: 'invalid', reason });
  });
}
