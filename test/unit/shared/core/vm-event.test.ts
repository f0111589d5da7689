import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildEventRecord } from '../../../../services/shared/core/event-record-builder.ts';
import type { QmpEvent } from '../../../../services/shared/core/qmp-message.ts';
import {
  KNOWN_PREPARE_TARGETS,
  prepareTarget,
  toVmEvent,
  VFIO_MIGRATION_STATES,
  vmEventFromRecord,
} from '../../../../services/shared/core/vm-event.ts';

const event = (name: string, data: Record<string, unknown> = {}): QmpEvent => ({
  kind: 'event',
  name,
  timestampMicros: 1_700_000_000_000_123,
  data,
});

test('a prepare state announces the state without its suffix; a bare suffix announces nothing', () => {
  assert.equal(prepareTarget('pre-copy-p2p-prepare'), 'pre-copy-p2p');
  assert.equal(prepareTarget('stop-copy-prepare'), 'stop-copy');
  assert.equal(prepareTarget('-prepare'), null);
  assert.equal(prepareTarget('running'), null);
});

test('the known prepare targets are the QEMU states that are not prepare states', () => {
  assert.deepEqual(KNOWN_PREPARE_TARGETS, VFIO_MIGRATION_STATES.slice(0, -1));
});

test('a QMP event of one VM in the event model', () => {
  const at = {
    host: 'h',
    vm: 'vm-1',
    timestampMicros: 1_700_000_000_000_123,
    receivedMicros: undefined,
  };
  const cases: Array<[QmpEvent, unknown]> = [
    [
      event('VFIO_MIGRATION', { 'qom-path': '/m/vf0', 'device-state': 'stop' }),
      { kind: 'vfio', ...at, qomPath: '/m/vf0', deviceId: '', deviceState: 'stop' },
    ],
    [
      event('VFIO_MIGRATION', { 'qom-path': '/m/vf0', 'device-id': 'vf0', 'device-state': 'x' }),
      { kind: 'vfio', ...at, qomPath: '/m/vf0', deviceId: 'vf0', deviceState: 'x' },
    ],
    [
      event('VFIO_MIGRATION', { 'device-state': 'stop' }),
      {
        kind: 'invalid',
        reason: 'bad_vfio_data',
        detail: 'VFIO_MIGRATION without a string qom-path and device-state',
      },
    ],
    [event('SHUTDOWN', { guest: false }), { kind: 'shutdown', ...at }],
    [event('MIGRATION', { status: 'active' }), { kind: 'other', ...at, name: 'MIGRATION' }],
    [event('STOP'), { kind: 'other', ...at, name: 'STOP' }],
  ];
  for (const [e, expected] of cases) assert.deepEqual(toVmEvent('h', 'vm-1', e), expected);
});

test('a record with a timestamp QEMU cannot send is rejected as bad_timestamp', () => {
  const origin = { host: 'h', vm: 'vm-1', sessionId: 's', sequence: 1, receivedMicros: 0 };
  const record = buildEventRecord(origin, event('STOP'));
  assert.ok(!('kind' in record));
  const result = vmEventFromRecord({ ...record, qemuTimestampMicros: -1 });
  assert.equal(result.kind === 'invalid' && result.reason, 'bad_timestamp');
});
