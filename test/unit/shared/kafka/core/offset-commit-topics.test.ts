import assert from 'node:assert/strict';
import { test } from 'node:test';
import { offsetCommitTopics } from '../../../../../services/shared/kafka/core/offset-commit-topics.ts';

test('offsets are grouped by topic in the order topics first appear, partitions in the order given', () => {
  assert.deepEqual(
    offsetCommitTopics([
      { topic: 'b', partition: 2, offset: 7n },
      { topic: 'a', partition: 0, offset: 1n },
      { topic: 'b', partition: 0, offset: 3n },
    ]),
    [
      {
        name: 'b',
        partitions: [
          { partitionIndex: 2, committedOffset: 7n, committedLeaderEpoch: -1 },
          { partitionIndex: 0, committedOffset: 3n, committedLeaderEpoch: -1 },
        ],
      },
      {
        name: 'a',
        partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1 }],
      },
    ],
  );
});

test('no offsets, no topics', () => {
  assert.deepEqual(offsetCommitTopics([]), []);
});
