import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findInputHoles, planSkip } from '../../../services/processor/core/input-holes.ts';

const records = (partition: number, ...offsets: number[]) =>
  offsets.map((offset) => ({ partition, offset: BigInt(offset) }));

test('records that start at the state offset, or below it (a stale committed offset), leave no hole', () => {
  const next = new Map([
    [0, 100],
    [1, 50],
  ]);
  assert.deepEqual(findInputHoles(next, [...records(0, 100, 101), ...records(1, 40, 41)]), []);
});

test('records that start after the state offset are a hole, named per partition', () => {
  const next = new Map([
    [0, 100],
    [1, 50],
  ]);
  assert.deepEqual(findInputHoles(next, [...records(1, 52, 53), ...records(0, 101)]), [
    { partition: 0, nextOffset: 100, firstOffset: 101 },
    { partition: 1, nextOffset: 50, firstOffset: 52 },
  ]);
});

test('a partition with no committed offset in its state cannot have a hole (its log may start later)', () => {
  assert.deepEqual(findInputHoles(new Map([[0, 0]]), records(0, 5000)), []);
  assert.deepEqual(findInputHoles(new Map(), records(3, 7)), []);
});

test('the earliest record of a partition counts, whatever the order in hand', () => {
  assert.deepEqual(findInputHoles(new Map([[0, 10]]), records(0, 12, 10, 11)), []);
});

describe('planSkip', () => {
  test('moves the meta forward, keeping the clock', () => {
    assert.deepEqual(planSkip({ nextOffset: 120, clockMicros: 7 }, 300), {
      kind: 'skip',
      meta: { nextOffset: 300, clockMicros: 7 },
      skipped: 180,
    });
    assert.deepEqual(planSkip(null, 5), {
      kind: 'skip',
      meta: { nextOffset: 5, clockMicros: 0 },
      skipped: 5,
    });
  });

  test('never backwards, never to a non-offset', () => {
    assert.equal(planSkip({ nextOffset: 120, clockMicros: 7 }, 120).kind, 'refused');
    assert.equal(planSkip({ nextOffset: 120, clockMicros: 7 }, 100).kind, 'refused');
    assert.equal(planSkip(null, -1).kind, 'refused');
    assert.equal(planSkip(null, 1.5).kind, 'refused');
  });
});
