import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventKey, fnv1a32, partitionFor } from '../../../services/collector/core/partitioner.ts';

test('FNV-1a 32 matches the reference vectors', () => {
  // From the FNV reference test suite (draft-eastlake-fnv): "" and "a" and "foobar".
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
});

test('the same key always maps to the same partition', () => {
  const key = eventKey('host-a', 'vm-17');
  assert.equal(key, 'host-a/vm-17');
  const p = partitionFor(key, 12);
  for (let i = 0; i < 5; i++) assert.equal(partitionFor(key, 12), p);
  assert.ok(p >= 0 && p < 12);
  assert.equal(partitionFor(key, 1), 0);
});

test('1,000 VM keys spread over 12 partitions without an empty or overloaded one', () => {
  const counts = new Array<number>(12).fill(0);
  for (let i = 0; i < 1000; i++) {
    const p = partitionFor(eventKey('host-a', `vm-${i}`), 12);
    counts[p] = (counts[p] ?? 0) + 1;
  }
  const expected = 1000 / 12;
  for (const c of counts)
    assert.ok(c > expected * 0.6 && c < expected * 1.4, `counts ${counts.join(',')}`);
});

test('a partition count below 1 is a programmer error', () => {
  assert.throws(() => partitionFor('k', 0), RangeError);
  assert.throws(() => partitionFor('k', 1.5), RangeError);
});
