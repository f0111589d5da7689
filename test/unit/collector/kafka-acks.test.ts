import assert from 'node:assert/strict';
import { test } from 'node:test';
import { donePrefix, storedRecords } from '../../../services/collector/core/kafka-acks.ts';

const cases: {
  name: string;
  partitions: number[];
  acks: { partition: number; count: number }[];
  refused: number[];
  stored: boolean[];
}[] = [
  {
    name: 'every partition acknowledged in full',
    partitions: [0, 1, 0, 1],
    acks: [
      { partition: 0, count: 2 },
      { partition: 1, count: 2 },
    ],
    refused: [],
    stored: [true, true, true, true],
  },
  {
    name: 'partition 1 not acknowledged: only partition 0 is stored',
    partitions: [0, 1, 0, 1, 0],
    acks: [{ partition: 0, count: 3 }],
    refused: [],
    stored: [true, false, true, false, true],
  },
  {
    name: 'a partition acknowledged in part covers its first records in call order',
    partitions: [2, 2, 2, 0],
    acks: [
      { partition: 2, count: 2 },
      { partition: 0, count: 1 },
    ],
    refused: [],
    stored: [true, true, false, true],
  },
  {
    name: 'acknowledgements of one partition split over several requests add up',
    partitions: [0, 0, 0, 0],
    acks: [
      { partition: 0, count: 1 },
      { partition: 0, count: 3 },
    ],
    refused: [],
    stored: [true, true, true, true],
  },
  {
    name: 'a refused record is not stored and does not use up its partition count',
    partitions: [0, 0, 0],
    acks: [{ partition: 0, count: 2 }],
    refused: [1],
    stored: [true, false, true],
  },
  {
    name: 'nothing acknowledged',
    partitions: [0, 1],
    acks: [],
    refused: [],
    stored: [false, false],
  },
];

for (const c of cases) {
  test(`storedRecords: ${c.name}`, () => {
    assert.deepEqual(storedRecords(c.partitions, c.acks, new Set(c.refused)), c.stored);
  });
}

test('donePrefix is the longest run of done entries from the start', () => {
  assert.equal(donePrefix([]), 0);
  assert.equal(donePrefix([true, true]), 2);
  assert.equal(donePrefix([true, false, true]), 1);
  assert.equal(donePrefix([false, true]), 0);
});
