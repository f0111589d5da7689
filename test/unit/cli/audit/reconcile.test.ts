import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  countEvents,
  differencesOf,
  hasDifferences,
  reconcileTransitions,
  type ActualTransition,
  type ExpectedTransition,
} from '../../../../services/cli/audit/reconcile.ts';
import type { EventRecord } from '../../../../services/shared/core/event-record.ts';
import type {
  DwellRecord,
  PrepareRecord,
  TransitionRecord,
} from '../../../../services/shared/core/transition-record.ts';

const T0 = 1_795_798_176_000_000;

function prepare(startOffsetMicros: number, overrides: Partial<PrepareRecord> = {}): PrepareRecord {
  return {
    type: 'prepare',
    host: 'h1',
    vm: 'vm-a',
    qomPath: '/machine/peripheral/vf0',
    deviceId: 'vf0',
    target: 'pre-copy-p2p',
    prepareState: 'pre-copy-p2p-prepare',
    outcome: 'completed',
    next: 'pre-copy-p2p',
    seconds: 0.0125,
    startMicros: T0 + startOffsetMicros,
    endMicros: T0 + startOffsetMicros + 12_500,
    ...overrides,
  };
}

function dwell(startOffsetMicros: number, overrides: Partial<DwellRecord> = {}): DwellRecord {
  return {
    type: 'dwell',
    host: 'h1',
    vm: 'vm-a',
    qomPath: '/machine/peripheral/vf0',
    deviceId: 'vf0',
    state: 'running',
    next: 'pre-copy-p2p-prepare',
    seconds: 2,
    startMicros: T0 + startOffsetMicros,
    endMicros: T0 + startOffsetMicros + 2_000_000,
    ...overrides,
  };
}

const expected = (record: TransitionRecord, closedAtMs: number | null = 1000, partition = 0) =>
  ({ partition, record, closedAtMs }) satisfies ExpectedTransition;

let nextOffset = 0n;
const actual = (record: TransitionRecord, timestampMs = 1001, partition = 0) =>
  ({ partition, offset: nextOffset++, timestampMs, record }) satisfies ActualTransition;

describe('reconcileTransitions', () => {
  test('the same transitions in any order: clean', () => {
    const records = [dwell(0), prepare(2_000_000), dwell(2_000_000)];
    const diff = reconcileTransitions(
      records.map((r) => expected(r)),
      [...records].reverse().map((r) => actual(r)),
    );
    assert.equal(hasDifferences(diff), false);
    assert.deepEqual(
      { recomputed: diff.recomputed, inTopic: diff.inTopic, matched: diff.matched },
      { recomputed: 3, inTopic: 3, matched: 3 },
    );
  });

  test('a prepare and a dwell with the same start are different transitions', () => {
    const diff = reconcileTransitions(
      [expected(prepare(0)), expected(dwell(0))],
      [actual(prepare(0))],
    );
    assert.equal(diff.missing.length, 1);
    assert.equal(diff.missing[0]?.type, 'dwell');
  });

  test('missing, duplicated, mismatched and unexpected, each named by its identity', () => {
    const a = actual(prepare(0));
    const dupFirst = actual(dwell(0));
    const dupSecond = actual(dwell(0));
    const wrong = actual(prepare(5_000_000, { outcome: 'failed', next: 'running' }));
    const stray = actual(prepare(9_000_000, { vm: 'vm-z' }));
    const diff = reconcileTransitions(
      [
        expected(prepare(0)),
        expected(dwell(0)),
        expected(prepare(5_000_000)),
        expected(dwell(7_000_000)),
      ],
      [a, dupFirst, wrong, dupSecond, stray],
    );
    assert.deepEqual(
      diff.missing.map((m) => [m.type, m.vm, m.startMicros]),
      [['dwell', 'vm-a', T0 + 7_000_000]],
    );
    assert.deepEqual(diff.duplicated, [
      {
        partition: 0,
        type: 'dwell',
        host: 'h1',
        vm: 'vm-a',
        qomPath: '/machine/peripheral/vf0',
        startMicros: T0,
        offsets: [dupFirst.offset, dupSecond.offset],
      },
    ]);
    assert.deepEqual(diff.mismatched, [
      {
        partition: 0,
        type: 'prepare',
        host: 'h1',
        vm: 'vm-a',
        qomPath: '/machine/peripheral/vf0',
        startMicros: T0 + 5_000_000,
        offset: wrong.offset,
        differences: [
          { field: 'outcome', expected: 'completed', actual: 'failed' },
          { field: 'next', expected: 'pre-copy-p2p', actual: 'running' },
        ],
      },
    ]);
    assert.deepEqual(
      diff.unexpected.map((u) => [u.vm, u.offsets]),
      [['vm-z', [stray.offset]]],
    );
    assert.equal(diff.matched, 2);
    assert.equal(diff.recomputed, 4);
    assert.equal(diff.inTopic, 5);
    assert.ok(hasDifferences(diff));
  });

  test('a duplicated unexpected transition is reported as both', () => {
    const diff = reconcileTransitions([], [actual(dwell(0)), actual(dwell(0))]);
    assert.equal(diff.unexpected.length, 1);
    assert.equal(diff.duplicated.length, 1);
    assert.equal(diff.duplicated[0]?.offsets.length, 2);
  });

  test('partitions are compared apart: the same transition on another partition is not a match', () => {
    const diff = reconcileTransitions(
      [expected(prepare(0), 1000, 1)],
      [actual(prepare(0), 1001, 2)],
    );
    assert.deepEqual(
      [diff.missing.map((m) => m.partition), diff.unexpected.map((u) => u.partition)],
      [[1], [2]],
    );
  });

  test('a range reports only transitions whose closing event is in it', () => {
    const early = prepare(0);
    const inside = prepare(5_000_000);
    const late = prepare(9_000_000);
    const open = prepare(12_000_000, {
      outcome: 'unfinished',
      next: null,
      seconds: null,
      endMicros: null,
    });
    const range = { sinceMs: 2000, untilMs: 3000 };
    const diff = reconcileTransitions(
      [expected(early, 1000), expected(inside, 2500), expected(late, 3000), expected(open, null)],
      // Only `late` and a stray are in the topic: `late` is out of range, the stray is in it.
      [actual(late, 3001), actual(prepare(7_000_000, { vm: 'vm-z' }), 2999)],
      range,
    );
    assert.deepEqual(
      diff.missing.map((m) => m.startMicros),
      [inside.startMicros],
    );
    assert.deepEqual(
      diff.unexpected.map((u) => u.vm),
      ['vm-z'],
    );
    assert.equal(diff.recomputed, 1);
    // Without an upper bound, what is still open at the end is in the range.
    const open2 = reconcileTransitions([expected(open, null)], [], {
      sinceMs: 2000,
      untilMs: null,
    });
    assert.equal(open2.missing.length, 1);
  });
});

describe('differencesOf', () => {
  test('fields one kind lacks count as null', () => {
    assert.deepEqual(
      differencesOf(
        prepare(0, { outcome: 'timed_out', next: null, seconds: null, endMicros: null }),
        prepare(0),
      ),
      [
        { field: 'outcome', expected: 'timed_out', actual: 'completed' },
        { field: 'next', expected: null, actual: 'pre-copy-p2p' },
        { field: 'seconds', expected: null, actual: 0.0125 },
        { field: 'endMicros', expected: null, actual: T0 + 12_500 },
      ],
    );
  });
});

describe('countEvents', () => {
  const event = (sessionId: string, sequence: number): EventRecord => ({
    host: 'h1',
    vm: 'vm-a',
    sessionId,
    sequence,
    qemuTimestampMicros: T0 + sequence,
    receivedMicros: T0 + sequence,
    event: 'STOP',
    qomPath: null,
    deviceId: null,
    deviceState: null,
    migrationStatus: null,
    data: null,
  });

  test('each (session, sequence) once; re-sends counted as duplicates; undecodable apart', () => {
    const counts = countEvents([
      { timestampMs: 1, record: event('s1', 1) },
      { timestampMs: 2, record: event('s1', 2) },
      { timestampMs: 3, record: event('s1', 2) },
      { timestampMs: 4, record: event('s2', 1) },
      { timestampMs: 5, record: null },
      { timestampMs: 6, record: event('s1', 1) },
    ]);
    assert.deepEqual(counts, { records: 6, distinct: 3, duplicates: 2, undecodable: 1 });
  });

  test('in a range, a re-send of an event seen before the range is a duplicate', () => {
    const counts = countEvents(
      [
        { timestampMs: 1, record: event('s1', 1) },
        { timestampMs: 5, record: event('s1', 1) },
        { timestampMs: 6, record: event('s1', 2) },
      ],
      { sinceMs: 5, untilMs: null },
    );
    assert.deepEqual(counts, { records: 2, distinct: 1, duplicates: 1, undecodable: 0 });
  });
});
