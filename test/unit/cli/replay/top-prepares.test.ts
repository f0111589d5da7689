import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TopPrepares } from '../../../../services/cli/replay/top-prepares.ts';
import type { TransitionRecord } from '../../../../services/shared/core/transition-record.ts';

function prepare(vm: string, seconds: number | null, outcome = 'completed'): TransitionRecord {
  return {
    type: 'prepare',
    host: '',
    vm,
    qomPath: '/machine/peripheral/vf0',
    deviceId: 'vf0',
    target: 'pre-copy-p2p',
    prepareState: 'pre-copy-p2p-prepare',
    outcome: outcome as 'completed',
    next: seconds === null ? null : 'pre-copy-p2p',
    seconds,
    startMicros: 1,
    endMicros: seconds === null ? null : 2,
  };
}

test('TopPrepares keeps the n slowest closed prepares, slowest first, earlier first on ties', () => {
  const top = new TopPrepares(3);
  const dwell: TransitionRecord = {
    type: 'dwell',
    host: '',
    vm: 'd',
    qomPath: '/q',
    deviceId: '',
    state: 'running',
    next: 'stop',
    seconds: 99,
    startMicros: 1,
    endMicros: 2,
  };
  for (const r of [
    prepare('a', 0.01),
    prepare('b', 0.3),
    dwell,
    prepare('c', null, 'timed_out'),
    prepare('d', 0.02),
    prepare('e', 0.3),
    prepare('f', 0.001),
    prepare('g', 0.5, 'failed'),
  ]) {
    top.add(r);
  }
  assert.deepEqual(
    top.slowest().map((p) => [p.vm, p.seconds]),
    [
      ['g', 0.5],
      ['b', 0.3],
      ['e', 0.3],
    ],
  );
});

test('TopPrepares(0) keeps nothing; memory is n records whatever arrives', () => {
  const none = new TopPrepares(0);
  none.add(prepare('a', 1));
  assert.deepEqual(none.slowest(), []);
  const top = new TopPrepares(5);
  for (let i = 0; i < 10_000; i++) top.add(prepare(`vm-${i}`, (i * 7919) % 10_000));
  assert.equal(top.slowest().length, 5);
  assert.deepEqual(
    top.slowest().map((p) => p.seconds),
    [9999, 9998, 9997, 9996, 9995],
  );
});
