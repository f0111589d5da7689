import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkSequences } from '../../e2e/faults/sequence-gaps.ts';

const events = (session: string, ...sequences: number[]) =>
  sequences.map((sequence) => ({ sessionId: session, sequence }));

test('gap-free sessions pass, duplicates are counted, not gaps', () => {
  const check = checkSequences([...events('a', 1, 2, 2, 3), ...events('b', 1, 1, 2)]);
  assert.deepEqual(check, {
    distinct: 5,
    duplicates: 2,
    sessions: 2,
    gaps: [],
    presentButAllowedMissing: [],
  });
});

test('a planted gap (a spool loss) is reported as its range, in any arrival order', () => {
  const check = checkSequences([...events('a', 5, 1, 2, 6), ...events('b', 2, 3)]);
  assert.deepEqual(check.gaps, [
    { sessionId: 'a', from: 3, to: 4 },
    { sessionId: 'b', from: 1, to: 1 },
  ]);
  assert.equal(check.distinct, 6);
});

test('records Kafka refused (rejected.jsonl) are the only gaps allowed', () => {
  const allowed = new Set(['a/3']);
  assert.deepEqual(checkSequences(events('a', 1, 2, 4), allowed).gaps, []);
  assert.deepEqual(checkSequences(events('a', 1, 2, 5), allowed).gaps, [
    { sessionId: 'a', from: 4, to: 4 },
  ]);
  assert.deepEqual(checkSequences(events('a', 1, 2, 3), allowed).presentButAllowedMissing, ['a/3']);
});
