import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compareSessionIds,
  formatSessionId,
  isOrderedSessionId,
  nextSessionIdState,
  sessionIdMillis,
  type SessionIdState,
} from '../../../../services/shared/core/session-id.ts';

const random = (byte: number) => new Uint8Array(8).fill(byte);

test('a session id is a UUIDv7: time, version, counter, variant, random', () => {
  const ms = Date.UTC(2026, 11, 7, 18, 0, 0, 123);
  const id = formatSessionId({ ms, counter: 5 }, random(0xff));
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7005-bfff-ffffffffffff$/);
  assert.equal(isOrderedSessionId(id), true);
  assert.equal(sessionIdMillis(id), ms);
  assert.equal(
    formatSessionId({ ms: 0, counter: 0 }, random(0)),
    '00000000-0000-7000-8000-000000000000',
  );
  for (const legacy of ['0f8fad5b-d9cb-469f-a165-70867728950e', 's1', '', 'x'.repeat(36)]) {
    assert.equal(isOrderedSessionId(legacy), false, legacy);
    assert.equal(sessionIdMillis(legacy), null);
  }
});

test('ids increase while the clock stands still, steps back, or the counter overflows', () => {
  let state: SessionIdState | null = null;
  const ids: string[] = [];
  const clock = [1000, 1000, 1000, 999, 500, 1001, 1001];
  for (const now of clock) {
    state = nextSessionIdState(state, now);
    // The random part sorts downwards here: order must come from time and counter alone.
    ids.push(formatSessionId(state, random(0xff - ids.length)));
  }
  assert.deepEqual([...ids].sort(), ids);
  assert.deepEqual(nextSessionIdState({ ms: 7, counter: 0xfff }, 7), { ms: 8, counter: 0 });
  assert.deepEqual(nextSessionIdState({ ms: 7, counter: 0xfff }, 3), { ms: 8, counter: 0 });
  assert.deepEqual(nextSessionIdState({ ms: 7, counter: 2 }, 9), { ms: 9, counter: 0 });
});

test('v7 ids compare by age; a legacy id is older than any v7 id; two legacy ids have no order', () => {
  const older = formatSessionId({ ms: 1000, counter: 0 }, random(0xff));
  const newer = formatSessionId({ ms: 1000, counter: 1 }, random(0));
  const legacy = '0f8fad5b-d9cb-469f-a165-70867728950e';
  assert.equal(compareSessionIds(older, newer), -1);
  assert.equal(compareSessionIds(newer, older), 1);
  assert.equal(compareSessionIds(newer, newer), 0);
  assert.equal(compareSessionIds(legacy, older), -1);
  assert.equal(compareSessionIds(older, legacy), 1);
  assert.equal(compareSessionIds(legacy, 's2'), null);
  assert.equal(compareSessionIds(legacy, legacy), 0);
});
