import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodedEntryLength,
  encodeSpoolEntries,
  ENTRY_HEADER_BYTES,
  readSpoolEntry,
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
