import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  RecordNumbering,
  type RecordNumber,
} from '../../../services/collector/core/record-numbering.ts';

function numbering(): RecordNumbering {
  let n = 0;
  return new RecordNumbering(() => `renewed-${++n}`);
}

/** Numbers `count` events of `key` that the spool accepts. */
function acceptAll(r: RecordNumbering, key: string, qmp: string, count: number): RecordNumber[] {
  const out: RecordNumber[] = [];
  for (let i = 0; i < count; i++) {
    const number = r.next(key, qmp);
    r.accepted(key, number);
    out.push(number);
  }
  return out;
}

test('accepted records are numbered 1, 2, 3 in the QMP session', () => {
  const r = numbering();
  const numbers = acceptAll(r, 'h/vm-1', 'qmp-a', 3);
  assert.deepEqual(
    numbers.map((n) => [n.sessionId, n.sequence, n.renewed]),
    [
      ['qmp-a', 1, null],
      ['qmp-a', 2, null],
      ['qmp-a', 3, null],
    ],
  );
});

test('a proposed number that the spool did not take is proposed again (no gap)', () => {
  const r = numbering();
  acceptAll(r, 'h/vm-1', 'qmp-a', 2);
  assert.equal(r.next('h/vm-1', 'qmp-a').sequence, 3);
  assert.equal(r.next('h/vm-1', 'qmp-a').sequence, 3);
});

test('after a drop the next accepted record starts a new session at 1; later ones follow it', () => {
  const r = numbering();
  acceptAll(r, 'h/vm-1', 'qmp-a', 2);
  r.next('h/vm-1', 'qmp-a');
  r.dropped('h/vm-1', 'spool_full');
  // Further drops before anything is accepted keep the first cause.
  const refusedAgain = r.next('h/vm-1', 'qmp-a');
  r.dropped('h/vm-1', 'spool_io');
  const first = r.next('h/vm-1', 'qmp-a');
  assert.equal(first.sessionId, refusedAgain.sessionId, 'one new id however many drops');
  assert.deepEqual(first, {
    sessionId: 'renewed-1',
    sequence: 1,
    renewed: { after: 'spool_full', previousSessionId: 'qmp-a' },
  });
  r.accepted('h/vm-1', first);
  const after = acceptAll(r, 'h/vm-1', 'qmp-a', 2);
  assert.deepEqual(
    after.map((n) => [n.sessionId, n.sequence, n.renewed]),
    [
      ['renewed-1', 2, null],
      ['renewed-1', 3, null],
    ],
  );
});

test('a drop of one VM leaves the numbering of another untouched', () => {
  const r = numbering();
  acceptAll(r, 'h/vm-1', 'qmp-a', 1);
  acceptAll(r, 'h/vm-2', 'qmp-b', 1);
  r.dropped('h/vm-1', 'spool_full');
  assert.deepEqual(r.next('h/vm-2', 'qmp-b'), { sessionId: 'qmp-b', sequence: 2, renewed: null });
});

test('a new QMP session starts over with its own id, whatever was dropped before', () => {
  const r = numbering();
  acceptAll(r, 'h/vm-1', 'qmp-a', 5);
  r.dropped('h/vm-1', 'spool_io');
  r.ended('h/vm-1', 'qmp-a');
  assert.deepEqual(r.next('h/vm-1', 'qmp-b'), { sessionId: 'qmp-b', sequence: 1, renewed: null });
});
