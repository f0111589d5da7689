import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  encodedEntryLength,
  encodeSpoolEntries,
  ENTRY_HEADER_BYTES,
  MAX_ENTRY_BODY_BYTES,
  readSpoolEntry,
  resumeAfterDamage,
  unwritableEntry,
  type SpoolEntry,
} from '../../../services/collector/core/spool-entry.ts';
import { crc32 } from '../../../services/shared/core/crc32.ts';

const entries: SpoolEntry[] = [
  {
    receivedMicros: 1_795_798_179_270_001,
    key: 'host-a/vm-1',
    value: Buffer.from([0xc3, 1, 2, 3]),
  },
  { receivedMicros: 1_795_798_179_270_002, key: 'höst/vm-ü', value: Buffer.alloc(0) },
  { receivedMicros: 0, key: '', value: Buffer.alloc(70_000, 7) },
];

function readAll(buf: Buffer): SpoolEntry[] {
  const out: SpoolEntry[] = [];
  let at = 0;
  for (;;) {
    const r = readSpoolEntry(buf, at);
    if (r.kind !== 'entry') return out;
    out.push({ ...r.entry, value: Buffer.from(r.entry.value) });
    at = r.next;
  }
}

test('CRC-32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('entries round-trip through one group-commit buffer', () => {
  const buf = encodeSpoolEntries(entries);
  assert.equal(
    buf.length,
    entries.reduce((n, e) => n + encodedEntryLength(e.key, e.value), 0),
  );
  assert.deepEqual(
    readAll(buf),
    entries.map((e) => ({ ...e, value: Buffer.from(e.value) })),
  );
});

test('the header is length then CRC-32 of the body, little-endian', () => {
  const buf = encodeSpoolEntries([entries[0] as SpoolEntry]);
  assert.equal(buf.readUInt32LE(0), buf.length - ENTRY_HEADER_BYTES);
  assert.equal(buf.readUInt32LE(4), crc32(buf, ENTRY_HEADER_BYTES));
});

test('every truncation of an entry reads as incomplete, never as an entry', () => {
  const buf = encodeSpoolEntries([entries[0] as SpoolEntry]);
  for (let cut = 0; cut < buf.length; cut++) {
    assert.equal(readSpoolEntry(buf.subarray(0, cut), 0).kind, 'incomplete', `cut at ${cut}`);
  }
});

test('a flipped bit in the body is a CRC mismatch', () => {
  const buf = encodeSpoolEntries([entries[0] as SpoolEntry]);
  for (let i = ENTRY_HEADER_BYTES; i < buf.length; i++) {
    const copy = Buffer.from(buf);
    copy[i] = (copy[i] as number) ^ 0x10;
    assert.deepEqual(readSpoolEntry(copy, 0), { kind: 'corrupt', reason: 'bad_crc' });
  }
});

test('a zero-filled tail (OS crash after the file grew) is a bad length', () => {
  assert.deepEqual(readSpoolEntry(Buffer.alloc(64), 0), { kind: 'corrupt', reason: 'bad_length' });
  const huge = Buffer.alloc(16);
  huge.writeUInt32LE(0xffffffff, 0);
  assert.deepEqual(readSpoolEntry(huge, 0), { kind: 'corrupt', reason: 'bad_length' });
});

test('an entry the format cannot hold is named, never thrown at write time', () => {
  const ok = { receivedMicros: 1, key: 'k'.repeat(0xffff), value: Buffer.alloc(1) };
  assert.equal(unwritableEntry(ok), null);
  assert.match(unwritableEntry({ ...ok, key: 'k'.repeat(0x10000) }) ?? '', /key of 65536 bytes/);
  // Multi-byte characters count as bytes: 21,846 three-byte characters are 65,538 bytes.
  assert.match(unwritableEntry({ ...ok, key: '€'.repeat(21_846) }) ?? '', /key of 65538 bytes/);
  assert.match(
    unwritableEntry({ ...ok, key: 'k', value: Buffer.alloc(MAX_ENTRY_BODY_BYTES) }) ?? '',
    /entry of/,
  );
  assert.ok(encodeSpoolEntries([ok]).length > 0xffff);
});

describe('resumeAfterDamage', () => {
  const five = Array.from({ length: 5 }, (_, i) => ({
    receivedMicros: i,
    key: `h/vm-${i}`,
    value: Buffer.alloc(30 + i, i),
  }));
  const flip = (buf: Buffer, at: number): void => {
    buf.writeUInt8(buf.readUInt8(at) ^ 0xff, at);
  };
  const starts = (buf: Buffer): number[] => {
    const out = [0];
    for (let r = readSpoolEntry(buf, 0); r.kind === 'entry'; r = readSpoolEntry(buf, r.next)) {
      out.push(r.next);
    }
    return out;
  };

  test('a damaged body with its length intact costs that entry only', () => {
    const buf = encodeSpoolEntries(five);
    const at = starts(buf);
    flip(buf, (at[2] as number) + 20);
    assert.equal(readSpoolEntry(buf, at[2] as number).kind, 'corrupt');
    assert.equal(resumeAfterDamage(buf, at[2] as number), at[3]);
    // The last entry damaged: the end.
    flip(buf, (at[4] as number) + 20);
    assert.equal(resumeAfterDamage(buf, at[4] as number), buf.length);
  });

  test('a damaged length: the search finds the next whole entry', () => {
    const buf = encodeSpoolEntries(five);
    const at = starts(buf);
    buf.fill(0, at[1] as number, (at[2] as number) + 3);
    assert.equal(resumeAfterDamage(buf, at[1] as number), at[3]);
  });

  test('damage to the end: nothing follows', () => {
    const buf = encodeSpoolEntries(five);
    const at = starts(buf);
    buf.fill(0xee, at[3] as number);
    assert.equal(resumeAfterDamage(buf, at[3] as number), buf.length);
  });

  test('never throws, and always moves forward, on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (bytes, offset) => {
        const buf = Buffer.from(bytes);
        const from = Math.min(offset, buf.length);
        const next = resumeAfterDamage(buf, from);
        assert.ok(next > from || next === buf.length);
        assert.ok(next <= buf.length);
      }),
      { seed: 9, numRuns: 500 },
    );
  });
});
