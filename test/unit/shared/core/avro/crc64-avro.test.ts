import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  FP_TABLE_HI,
  FP_TABLE_LO,
  crc64Avro,
  crc64AvroValue,
} from '../../../../../services/shared/core/avro/crc64-avro.ts';

/**
 * Parsing Canonical Forms and their 64-bit Rabin fingerprints from the Avro project's
 * `share/test/data/schema-tests.txt` (apache/avro, cases 000-033; Java prints the fingerprints
 * as signed longs). Cases without a fingerprint line are left out.
 */
const SCHEMA_TESTS: readonly { case: string; canonical: string; fingerprint: string }[] = [
  { case: '000', canonical: '"null"', fingerprint: '7195948357588979594' },
  { case: '002', canonical: '"boolean"', fingerprint: '-6970731678124411036' },
  { case: '004', canonical: '"int"', fingerprint: '8247732601305521295' },
  { case: '006', canonical: '"long"', fingerprint: '-3434872931120570953' },
  { case: '008', canonical: '"float"', fingerprint: '5583340709985441680' },
  { case: '010', canonical: '"double"', fingerprint: '-8181574048448539266' },
  { case: '012', canonical: '"bytes"', fingerprint: '5746618253357095269' },
  { case: '014', canonical: '"string"', fingerprint: '-8142146995180207161' },
  { case: '016', canonical: '[]', fingerprint: '-1241056759729112623' },
  { case: '017', canonical: '["int"]', fingerprint: '-5232228896498058493' },
  { case: '018', canonical: '["int","boolean"]', fingerprint: '5392556393470105090' },
  {
    case: '019',
    canonical: '{"name":"foo","type":"record","fields":[]}',
    fingerprint: '-4824392279771201922',
  },
  {
    case: '020',
    canonical: '{"name":"x.y.foo","type":"record","fields":[]}',
    fingerprint: '5916914534497305771',
  },
  {
    case: '021',
    canonical: '{"name":"a.b.foo","type":"record","fields":[]}',
    fingerprint: '-4616218487480524110',
  },
  {
    case: '025',
    canonical: '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
    fingerprint: '7843277075252814651',
  },
  {
    case: '026',
    canonical:
      '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
    fingerprint: '-4860222112080293046',
  },
  {
    case: '027',
    canonical: '{"name":"foo","type":"enum","symbols":["A1"]}',
    fingerprint: '-6342190197741309591',
  },
  {
    case: '028',
    canonical: '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
    fingerprint: '-4448647247586288245',
  },
  {
    case: '029',
    canonical: '{"name":"foo","type":"fixed","size":15}',
    fingerprint: '1756455273707447556',
  },
  {
    case: '030',
    canonical: '{"name":"x.y.z.foo","type":"fixed","size":32}',
    fingerprint: '-3064184465700546786',
  },
  {
    case: '031',
    canonical: '{"type":"array","items":"null"}',
    fingerprint: '-589620603366471059',
  },
  {
    case: '032',
    canonical: '{"type":"map","values":"string"}',
    fingerprint: '-8732877298790414990',
  },
  {
    case: '033',
    canonical:
      '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
    fingerprint: '-1759257747318642341',
  },
];

const unsigned = (signedLong: string): bigint => BigInt.asUintN(64, BigInt(signedLong));

for (const { case: id, canonical, fingerprint } of SCHEMA_TESTS) {
  void test(`schema-tests.txt case ${id}: ${canonical}`, () => {
    assert.equal(crc64AvroValue(canonical), unsigned(fingerprint));
  });
}

void test('the fingerprint of no bytes is EMPTY', () => {
  assert.equal(crc64AvroValue(new Uint8Array(0)), 0xc15d213aa4d7a795n);
});

void test('crc64Avro gives the value as 8 little-endian bytes', () => {
  for (const { canonical } of SCHEMA_TESTS) {
    const bytes = crc64Avro(canonical);
    assert.equal(bytes.length, 8);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    assert.equal(view.getBigUint64(0, true), crc64AvroValue(canonical));
  }
  assert.deepEqual([...crc64Avro('"null"')], [0x8a, 0x8f, 0x25, 0xcc, 0xe7, 0x24, 0xdd, 0x63]);
});

void test('a string is fingerprinted as its UTF-8 bytes', () => {
  const text = '{"name":"héllo.wörld","type":"fixed","size":1}';
  assert.equal(crc64AvroValue(text), crc64AvroValue(new TextEncoder().encode(text)));
  assert.notEqual(crc64AvroValue(text), crc64AvroValue(Buffer.from(text, 'latin1')));
});

void test('a byte view is fingerprinted from its own offset', () => {
  const backing = new TextEncoder().encode('xx"int"yy');
  assert.equal(crc64AvroValue(backing.subarray(2, 7)), unsigned('8247732601305521295'));
});

test('the written-out FP_TABLE is the specification initFPTable, in 64-bit arithmetic', () => {
  const EMPTY = 0xc15d213aa4d7a795n;
  const MASK = (1n << 64n) - 1n;
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) fp = ((fp >> 1n) ^ (EMPTY & (-(fp & 1n) & MASK))) & MASK;
    assert.equal(BigInt(FP_TABLE_HI[i]!), fp >> 32n, `high half of entry ${i}`);
    assert.equal(BigInt(FP_TABLE_LO[i]!), fp & 0xffffffffn, `low half of entry ${i}`);
  }
});
