import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  afterFailure,
  commitHung,
  holeAction,
  MAX_HOLE_RESTORES,
  settleUnknownCommit,
  transactionFull,
} from '../../../services/processor/core/transaction-policy.ts';

const options = {
  commitIntervalMs: 100,
  maxRecordsPerTransaction: 5,
  transactionTimeoutMs: 10_000,
  retryMaxMs: 5000,
};

test('transactionFull: nothing gathered never closes, however late', () => {
  assert.equal(transactionFull({ count: 0, firstAtMs: 0 }, 1e9, options), false);
});

test('transactionFull: closes when the first record has waited the commit interval', () => {
  assert.equal(transactionFull({ count: 1, firstAtMs: 1000 }, 1099, options), false);
  assert.equal(transactionFull({ count: 1, firstAtMs: 1000 }, 1100, options), true);
});

test('transactionFull: closes at the record cap at once', () => {
  assert.equal(transactionFull({ count: 5, firstAtMs: 1000 }, 1000, options), true);
  assert.equal(transactionFull({ count: 4, firstAtMs: 1000 }, 1000, options), false);
});

test('afterFailure: the same records under the same membership are retried after a growing back-off', () => {
  const facts = { kind: 'failed' as const, stopping: false, sameRecordsAndMembership: true };
  const delays = [1, 2, 3, 4].map((n) => afterFailure({ ...facts, failuresInARow: n }, options));
  assert.ok(delays.every((d) => d.retry && d.reinitProducer));
  assert.deepEqual(
    delays.map((d) => d.delayMs),
    [200, 400, 800, 1600],
  );
  assert.equal(afterFailure({ ...facts, failuresInARow: 50 }, options).delayMs, 5000);
});

test('afterFailure: a fenced member retries like a failure until it sees the rebalance', () => {
  const d = afterFailure(
    { kind: 'fenced', failuresInARow: 1, stopping: false, sameRecordsAndMembership: true },
    options,
  );
  assert.deepEqual(d, { retry: true, delayMs: 200, reinitProducer: true });
});

test('afterFailure: a new membership or a stop drops the records, without waiting', () => {
  for (const facts of [
    { stopping: true, sameRecordsAndMembership: true },
    { stopping: false, sameRecordsAndMembership: false },
  ]) {
    assert.deepEqual(afterFailure({ kind: 'failed', failuresInARow: 3, ...facts }, options), {
      retry: false,
      delayMs: 0,
      reinitProducer: true,
    });
  }
});

test('afterFailure: an unknown outcome is settled at once (InitProducerId, then the restore)', () => {
  assert.deepEqual(
    afterFailure(
      {
        kind: 'outcome_unknown',
        failuresInARow: 4,
        stopping: false,
        sameRecordsAndMembership: true,
      },
      options,
    ),
    { retry: true, delayMs: 0, reinitProducer: true },
  );
});

test('holeAction: restore again five times in a row, then fill', () => {
  assert.equal(MAX_HOLE_RESTORES, 5);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(holeAction), [
    'restore_again',
    'restore_again',
    'restore_again',
    'restore_again',
    'restore_again',
    'fill',
  ]);
});

const sent = {
  next: new Map([
    [0, 120],
    [2, 40],
  ]),
  generationId: 7,
  memberId: 'm-1',
};
const same = { generationId: 7, memberId: 'm-1' };

test('settleUnknownCommit: every partition at exactly its next offset: committed', () => {
  assert.equal(
    settleUnknownCommit(
      sent,
      new Map([
        [0, 120],
        [1, 9],
        [2, 40],
      ]),
      same,
    ),
    'committed',
  );
});

test('settleUnknownCommit: every partition before its next offset: not committed', () => {
  assert.equal(
    settleUnknownCommit(
      sent,
      new Map([
        [0, 100],
        [2, 31],
      ]),
      same,
    ),
    'not_committed',
  );
});

test('settleUnknownCommit: a mix, a partition not restored, or one beyond: undecided', () => {
  assert.equal(
    settleUnknownCommit(
      sent,
      new Map([
        [0, 120],
        [2, 31],
      ]),
      same,
    ),
    'undecided',
  );
  assert.equal(settleUnknownCommit(sent, new Map([[0, 120]]), same), 'undecided');
  assert.equal(
    settleUnknownCommit(
      sent,
      new Map([
        [0, 130],
        [2, 40],
      ]),
      same,
    ),
    'undecided',
  );
});

test('settleUnknownCommit: another membership cannot tell (another member may have counted it)', () => {
  const restored = new Map([
    [0, 120],
    [2, 40],
  ]);
  assert.equal(settleUnknownCommit(sent, restored, null), 'undecided');
  assert.equal(settleUnknownCommit(sent, restored, { ...same, generationId: 8 }), 'undecided');
  assert.equal(settleUnknownCommit(sent, restored, { ...same, memberId: 'm-2' }), 'undecided');
});

test('commitHung: only a commit under way for longer than the transaction timeout', () => {
  assert.equal(commitHung(null, 1e9, options), false);
  assert.equal(commitHung(1000, 11_000, options), false);
  assert.equal(commitHung(1000, 11_001, options), true);
});
