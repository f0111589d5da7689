import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildEventRecord } from '../../../../services/shared/core/event-record-builder.ts';
import { decodeQmpBytes } from '../../../../services/shared/core/qmp-decoder.ts';
import { MAX_JSON_DEPTH, type QmpEvent } from '../../../../services/shared/core/qmp-message.ts';

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

test('regression: deeply nested data is rejected as too_deep instead of throwing RangeError', () => {
  const depth = 200_000;
  const line = `{"event": "X", "timestamp": {"seconds": 1, "microseconds": 0}, "data": {"a": ${'['.repeat(depth)}${']'.repeat(depth)}}}\n`;
  const [message] = decodeQmpBytes(Buffer.from(line));
  assert.ok(message !== undefined);
  const outcome = message.kind === 'event' ? buildEventRecord(origin, message) : message;
  assert.ok('kind' in outcome, 'no record for a message nested deeper than QEMU allows');
  assert.equal(outcome.kind === 'invalid' && outcome.reason, 'too_deep');
});

test(`data nested ${MAX_JSON_DEPTH} levels (QEMU's own limit) still becomes a record`, () => {
  let data: Record<string, unknown> = {};
  for (let i = 1; i < MAX_JSON_DEPTH - 1; i++) data = { d: data };
  const line = JSON.stringify({ event: 'X', timestamp: { seconds: 1, microseconds: 0 }, data });
  const [message] = decodeQmpBytes(Buffer.from(`${line}\n`));
  assert.equal(message?.kind, 'event');
  const record = buildEventRecord(origin, message);
  assert.ok(!('kind' in record));
  assert.equal(record.data, JSON.stringify(data));
});

test('seconds too large to be an exact µs count are rejected as bad_timestamp', () => {
  for (const seconds of [9_007_199_254, 1e300]) {
    const line = `{"event": "STOP", "timestamp": {"seconds": ${seconds}, "microseconds": 999999}}\n`;
    const [message] = decodeQmpBytes(Buffer.from(line));
    assert.equal(message?.kind === 'invalid' && message.reason, 'bad_timestamp', String(seconds));
  }
});

test('regression (fuzz): a name with a lone surrogate escape is invalid_utf8, never published as U+FFFD', () => {
  const decode = (line: string) => {
    const [message] = decodeQmpBytes(Buffer.from(`${line}\n`));
    assert.equal(message?.kind, 'event');
    return buildEventRecord(origin, message);
  };
  const ts = '"timestamp": {"seconds": 1, "microseconds": 0}';
  for (const line of [
    `{"event": "\\ud800", ${ts}}`,
    `{"event": "VFIO_MIGRATION", ${ts}, "data": {"qom-path": "/m/\\udfff", "device-state": "stop"}}`,
    `{"event": "VFIO_MIGRATION", ${ts}, "data": {"qom-path": "/m/vf0", "device-state": "stop", "device-id": "\\ud800x"}}`,
  ]) {
    const r = decode(line);
    assert.equal('kind' in r && r.reason, 'invalid_utf8', line);
  }
  // A pair is fine; a lone one in other data stays as an escape in the JSON text.
  const pair = decode(
    `{"event": "VFIO_MIGRATION", ${ts}, "data": {"qom-path": "/m/\\ud83d\\ude00", "device-state": "stop"}}`,
  );
  assert.ok(!('kind' in pair) && pair.qomPath === '/m/😀');
  const status = decode(`{"event": "MIGRATION", ${ts}, "data": {"status": "\\ud800"}}`);
  assert.ok(!('kind' in status));
  assert.equal(status.migrationStatus, null);
  assert.equal(status.data, '{"status":"\\ud800"}');
});

test('regression (fuzz): a rejection detail is an excerpt even when the event name is 20 KB', () => {
  const [message] = decodeQmpBytes(
    Buffer.from(
      `{"event": "${'E'.repeat(20_000)}", "timestamp": {"seconds": -1, "microseconds": 0}}\n`,
    ),
  );
  assert.equal(message?.kind === 'invalid' && message.reason, 'bad_timestamp');
  assert.ok(message?.kind === 'invalid' && message.detail.length <= 80);
});
