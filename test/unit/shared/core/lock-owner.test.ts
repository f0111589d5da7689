import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatLockOwner,
  lockHolderAlive,
  parseLockOwner,
  procStartTime,
} from '../../../../services/shared/core/lock-owner.ts';

const owner = { pid: 4242, start: '37624', boot: 'boot-a' };

test('a lock file names its holder and reads back; a torn or foreign file names nobody', () => {
  assert.deepEqual(parseLockOwner(formatLockOwner(owner)), owner);
  assert.deepEqual(parseLockOwner('{"pid":7,"start":null,"boot":null}'), {
    pid: 7,
    start: null,
    boot: null,
  });
  for (const text of ['', '{"pid":', '{}', '{"pid":0}', '{"pid":1.5}', '{"pid":1,"start":3}']) {
    assert.equal(parseLockOwner(text), null, text);
  }
});

test('starttime is field 22 of /proc/PID/stat, counted after the last ")" of the command name', () => {
  const stat = (comm: string, state = 'S') =>
    `10412 (${comm}) ${state} 10410 10410 2396 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 37624 3133440 388`;
  assert.equal(procStartTime(stat('node')), '37624');
  assert.equal(procStartTime(stat('a) b (c')), '37624');
  assert.equal(procStartTime(stat('node', 'Z')), null, 'a zombie holds nothing');
  assert.equal(procStartTime(stat('node', 'X')), null);
  assert.equal(procStartTime('garbage'), null);
  assert.equal(procStartTime('1 (x) S 2 3'), null);
});

test('a holder is alive while its PID runs with the start time it wrote, in the same boot', () => {
  const now = { boot: 'boot-a', start: '37624', signalable: true };
  assert.equal(lockHolderAlive(owner, now), true);
  assert.equal(lockHolderAlive(owner, { ...now, start: '99999' }), false, 'PID reused');
  assert.equal(lockHolderAlive(owner, { ...now, start: null }), false, 'no such process');
  assert.equal(lockHolderAlive(owner, { ...now, boot: 'boot-b' }), false, 'rebooted since');
  assert.equal(lockHolderAlive(owner, { ...now, boot: null }), true, 'boot unknown');
  // Without /proc, the PID alone decides.
  assert.equal(lockHolderAlive(owner, { boot: null, start: undefined, signalable: true }), true);
  assert.equal(lockHolderAlive(owner, { boot: null, start: undefined, signalable: false }), false);
  // A lock written without /proc, read with it: the PID's existence decides.
  assert.equal(lockHolderAlive({ ...owner, start: null }, now), true);
});
