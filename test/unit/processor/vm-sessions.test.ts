import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  judgeEvent,
  MAX_SEQUENCE_JUMP,
  MAX_SESSION_AHEAD_MICROS,
  recordApplied,
  type VmSessionState,
} from '../../../services/processor/core/vm-sessions.ts';
import { formatSessionId } from '../../../services/shared/core/session-id.ts';

const NOW_MS = Date.UTC(2026, 11, 7, 18);
const NOW_MICROS = NOW_MS * 1000;
const v7 = (msAgo: number, counter = 0) =>
  formatSessionId({ ms: NOW_MS - msAgo, counter }, new Uint8Array(8).fill(0x42));

const state = (sessionId: string, lastSequence: number): VmSessionState => ({
  sessionId,
  lastSequence,
  earlierSessions: [],
  earlierSequences: [],
});

test('sequences that no collector writes are rejected before anything else', () => {
  for (const sequence of [0, -1, 1.5, Number.NaN, 2 ** 53, Number.MAX_VALUE]) {
    assert.equal(judgeEvent(undefined, 's1', sequence, NOW_MICROS), 'bad_sequence', `${sequence}`);
    assert.equal(judgeEvent(state('s1', 5), 's1', sequence, NOW_MICROS), 'bad_sequence');
  }
  assert.equal(judgeEvent(undefined, 's1', Number.MAX_SAFE_INTEGER, NOW_MICROS), 'apply');
});

test('a step beyond MAX_SEQUENCE_JUMP in the current session is a jump, not a gap', () => {
  const s = state('s1', 10);
  assert.equal(judgeEvent(s, 's1', 11, NOW_MICROS), 'apply');
  assert.equal(judgeEvent(s, 's1', 10 + MAX_SEQUENCE_JUMP, NOW_MICROS), 'gap');
  assert.equal(judgeEvent(s, 's1', 11 + MAX_SEQUENCE_JUMP, NOW_MICROS), 'sequence_jump');
  assert.equal(judgeEvent(s, 's1', Number.MAX_SAFE_INTEGER, NOW_MICROS), 'sequence_jump');
  // A new session may start anywhere (the processor may first see it mid-way).
  assert.equal(judgeEvent(s, 's2', 5_000_000, NOW_MICROS), 'new_session');
});

test('a v7 session made after its record was received (beyond the tolerance) is from the future', () => {
  const ahead = formatSessionId(
    { ms: NOW_MS + MAX_SESSION_AHEAD_MICROS / 1000 + 1, counter: 0 },
    new Uint8Array(8),
  );
  assert.equal(judgeEvent(undefined, ahead, 1, NOW_MICROS), 'future_session');
  assert.equal(judgeEvent(undefined, v7(-1000), 1, NOW_MICROS), 'apply', 'a clock a second off');
});

test('an older session never demotes the current one; an earlier one that advances is a second writer', () => {
  const first = v7(60_000);
  const second = v7(1000);
  const s = state(first, 3);
  assert.equal(judgeEvent(s, second, 1, NOW_MICROS), 'new_session');
  recordApplied(s, second, 1);
  assert.deepEqual(s.earlierSessions, [first]);
  assert.deepEqual(s.earlierSequences, [3]);
  assert.equal(judgeEvent(s, first, 3, NOW_MICROS), 'redelivery', 'a re-send up to where it was');
  assert.equal(judgeEvent(s, first, 4, NOW_MICROS), 'duplicate_writer', 'it still advances');
  // Unknown and older: a re-send of a session long gone, or a second writer: never newer.
  assert.equal(judgeEvent(s, v7(120_000), 1, NOW_MICROS), 'stale_session');
  assert.equal(
    judgeEvent(s, '0f8fad5b-d9cb-469f-a165-70867728950e', 1, NOW_MICROS),
    'stale_session',
  );
  assert.equal(judgeEvent(s, v7(0), 1, NOW_MICROS), 'new_session');
});

test('legacy (unordered) session ids keep the old rules: any unknown session is new', () => {
  const s = state('s1', 2);
  assert.equal(judgeEvent(s, 's2', 1, NOW_MICROS), 'new_session');
  recordApplied(s, 's2', 1);
  assert.equal(judgeEvent(s, 's1', 2, NOW_MICROS), 'redelivery');
  assert.equal(judgeEvent(s, 's0', 1, NOW_MICROS), 'new_session');
  // Earlier sessions restored from state written before their sequences were kept: unknown,
  // never taken as advancing.
  const restored: VmSessionState = {
    sessionId: 's2',
    lastSequence: 1,
    earlierSessions: ['s1'],
    earlierSequences: [Number.MAX_SAFE_INTEGER],
  };
  assert.equal(judgeEvent(restored, 's1', 1_000, NOW_MICROS), 'redelivery');
});

test('the earlier sessions kept are bounded, with their sequences', () => {
  const s = state('a', 1);
  for (const [i, id] of ['b', 'c', 'd', 'e', 'f'].entries()) recordApplied(s, id, i + 2);
  assert.deepEqual(s.earlierSessions, ['b', 'c', 'd', 'e']);
  assert.deepEqual(s.earlierSequences, [2, 3, 4, 5]);
  assert.equal(s.sessionId, 'f');
});
