import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildEventRecord } from '../../../../services/shared/core/event-record-builder.ts';
import type { QmpEvent } from '../../../../services/shared/core/qmp-message.ts';

const origin = { host: 'h', vm: 'vm1', sessionId: 's', sequence: 3, receivedMicros: 2_000_000 };
const event = (name: string, data: Record<string, unknown> = {}): QmpEvent => ({
  kind: 'event',
  name,
  timestampMicros: 1_000_000,
  data,
});

test('VFIO_MIGRATION fills qom-path, device-id and device-state', () => {
  const r = buildEventRecord(
    origin,
    event('VFIO_MIGRATION', { 'qom-path': '/m/vf0', 'device-state': 'pre-copy-p2p-prepare' }),
  );
  assert.deepEqual(r, {
    ...origin,
    qemuTimestampMicros: 1_000_000,
    event: 'VFIO_MIGRATION',
    qomPath: '/m/vf0',
    deviceId: '',
    deviceState: 'pre-copy-p2p-prepare',
    migrationStatus: null,
    data: null,
  });
});

test('VFIO_MIGRATION without a string qom-path is rejected as bad_vfio_data', () => {
  const r = buildEventRecord(origin, event('VFIO_MIGRATION', { 'device-state': 'stop' }));
  assert.equal('kind' in r && r.reason, 'bad_vfio_data');
});

test('MIGRATION carries its status; STOP has no data; others keep data as JSON', () => {
  const m = buildEventRecord(origin, event('MIGRATION', { status: 'completed' }));
  assert.ok(!('kind' in m));
  assert.equal(m.migrationStatus, 'completed');
  assert.equal(m.data, null);
  const s = buildEventRecord(origin, event('STOP'));
  assert.ok(!('kind' in s));
  assert.equal(s.data, null);
  const d = buildEventRecord(origin, event('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' }));
  assert.ok(!('kind' in d));
  assert.equal(d.data, '{"guest":false,"reason":"host-qmp-quit"}');
});
