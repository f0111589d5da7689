import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseVmState } from '../../../services/processor/core/state-changelog.ts';
import {
  newVmRecord,
  restoreVmRecord,
  vmStateValue,
} from '../../../services/processor/core/vm-record.ts';
import { NO_EARLIER_SESSIONS } from '../../../services/processor/core/vm-sessions.ts';
import { prepareTimeoutMicros } from '../../../services/shared/core/transition-engine.ts';

/**
 * A VM's state value as the processor wrote it before the engine state and the session
 * bookkeeping became one record (`new session s2` after `s1`, an open prepare on vf0): a
 * processor upgraded in place restores it.
 */
const WRITTEN_BEFORE =
  '{"host":"h1","vm":"vm1","watermarkMicros":1795798176025000,"devices":[{"qomPath":"/machine/peripheral/vf0","deviceId":"vf0","state":"pre-copy","stateSinceMicros":1795798176010000,"lastState":"pre-copy-p2p-prepare","lastMicros":1795798176020000,"prepareState":"pre-copy-p2p-prepare","prepareMicros":1795798176020000},{"qomPath":"/machine/peripheral/vf1","deviceId":"","state":"running","stateSinceMicros":1795798176025000,"lastState":"running","lastMicros":1795798176025000,"prepareState":null,"prepareMicros":0}],"sessionId":"s2","lastSequence":3,"earlierSessions":["s1"],"lastReceivedMicros":1795798176000700}';

describe('VM record', () => {
  test("a state value written before the one-record change restores and is written back the same, plus the earlier sessions' sequences (unknown)", () => {
    const value = parseVmState(WRITTEN_BEFORE);
    assert.notEqual(value, null);
    const record = restoreVmRecord(value!);
    assert.equal(record.transitions.openPrepares, 1);
    assert.equal(record.transitions.deviceCount, 2);
    assert.deepEqual(record.earlierSequences, [Number.MAX_SAFE_INTEGER]);
    assert.equal(
      JSON.stringify(vmStateValue(record)),
      `${WRITTEN_BEFORE.slice(0, -1)},"earlierSequences":[${Number.MAX_SAFE_INTEGER}]}`,
    );
  });

  test('a record continues identically after a round trip through its state value', () => {
    const timeout = prepareTimeoutMicros(10);
    const record = newVmRecord('h1', 'vm1', 's1', 1, 700);
    assert.equal(record.earlierSessions, NO_EARLIER_SESSIONS);
    const vfio = (atMicros: number, deviceState: string) =>
      ({
        kind: 'vfio',
        host: 'h1',
        vm: 'vm1',
        timestampMicros: atMicros,
        qomPath: '/machine/peripheral/vf0',
        deviceId: 'vf0',
        deviceState,
      }) as const;
    record.transitions.apply(vfio(1_000, 'pre-copy'), timeout);
    record.transitions.apply(vfio(2_000, 'pre-copy-p2p-prepare'), timeout);
    const copy = restoreVmRecord(
      parseVmState(JSON.stringify(vmStateValue(record))) ?? assert.fail('not a state value'),
    );
    assert.deepEqual(vmStateValue(copy), vmStateValue(record));
    assert.equal(copy.earlierSessions, NO_EARLIER_SESSIONS, 'no array per VM after a restore');
    assert.deepEqual(
      copy.transitions.apply(vfio(5_000, 'pre-copy-p2p'), timeout),
      record.transitions.apply(vfio(5_000, 'pre-copy-p2p'), timeout),
    );
  });
});
