import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MAX_TEXT,
  createSlowestPrepares,
  type SlowPrepare,
} from '../../../services/exporter/core/slowest-prepares.ts';

const MIN = 60_000;
const T0 = 1_700_000_000_000;

function prepare(seconds: number, observedAtMs: number, vm = `vm-${seconds}`): SlowPrepare {
  return {
    host: 'h1',
    vm,
    device: 'vf0',
    target: 'pre-copy-p2p',
    outcome: 'completed',
    seconds,
    closedAtMs: observedAtMs - 5,
    observedAtMs,
  };
}

describe('createSlowestPrepares', () => {
  test('the slowest of the window, slowest first, at most keep', () => {
    const ring = createSlowestPrepares({ windowMs: 10 * MIN, slots: 10, keep: 3 });
    for (const [i, s] of [0.01, 0.2, 0.03, 0.5, 0.004, 0.07].entries()) {
      ring.add(prepare(s, T0 + i * MIN));
    }
    assert.deepEqual(
      ring.top(T0 + 6 * MIN).map((p) => p.seconds),
      [0.5, 0.2, 0.07],
    );
    assert.deepEqual(
      ring.top(T0 + 6 * MIN, 2).map((p) => p.vm),
      ['vm-0.5', 'vm-0.2'],
    );
  });

  test('prepares leave the table once older than the window', () => {
    const ring = createSlowestPrepares({ windowMs: 10 * MIN, slots: 10, keep: 5 });
    ring.add(prepare(9, T0));
    ring.add(prepare(0.01, T0 + 9 * MIN));
    assert.deepEqual(
      ring.top(T0 + 9 * MIN).map((p) => p.seconds),
      [9, 0.01],
    );
    assert.deepEqual(
      ring.top(T0 + 10 * MIN).map((p) => p.seconds),
      [0.01],
    );
    assert.deepEqual(ring.top(T0 + 20 * MIN), []);
    // The slot of T0 is reused for T0 + 10 min; the old entry is gone, not merged.
    ring.add(prepare(0.02, T0 + 10 * MIN + 1));
    assert.deepEqual(
      ring.top(T0 + 10 * MIN + 1).map((p) => p.seconds),
      [0.02, 0.01],
    );
  });

  test('memory stays at slots × keep entries whatever arrives', () => {
    const ring = createSlowestPrepares({ windowMs: 5 * MIN, slots: 5, keep: 4 });
    for (let i = 0; i < 100_000; i++) {
      ring.add(prepare(((i * 7919) % 1000) / 1000, T0 + (i % 600) * 1000, `vm-${i}`));
    }
    assert.ok(ring.size <= 20, String(ring.size));
    const top = ring.top(T0 + 600_000);
    assert.equal(top.length, 4);
    assert.deepEqual(
      top.map((p) => p.seconds),
      [0.999, 0.999, 0.999, 0.999],
    );
  });

  test('late prepares for a reused slot, NaN seconds and huge names are handled', () => {
    const ring = createSlowestPrepares({ windowMs: 2 * MIN, slots: 2, keep: 2 });
    ring.add(prepare(1, T0 + 2 * MIN));
    ring.add(prepare(5, T0)); // same slot, older time: dropped, the slot holds newer ones
    ring.add(prepare(Number.NaN, T0 + 2 * MIN));
    ring.add({ ...prepare(2, T0 + 2 * MIN), vm: 'x'.repeat(100_000) });
    const top = ring.top(T0 + 2 * MIN);
    assert.deepEqual(
      top.map((p) => p.seconds),
      [2, 1],
    );
    assert.equal(top[0]?.vm.length, MAX_TEXT);
  });
});
