/**
 * Sequence numbers as the whole collector assigns them (QMP socket → spool → Kafka), with an
 * in-memory Kafka so that the spool can be filled on purpose: gap-free per session, and a new
 * session after events of the VM were dropped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector } from '../../../services/collector/main.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { compareSessionIds, isOrderedSessionId } from '../../../services/shared/core/session-id.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startFakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from './fake-kafka-port.ts';

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('events dropped by a full spool: no sequence gap, the VM continues in a new session', async (t) => {
  const vmDir = tempDir(t, 'numbering-vm-');
  const server = await startFakeQmpServer(join(vmDir, 'vm-1.qmp'));
  t.after(() => server.close());
  const behaviour = { send: ackAll, down: true };
  const kafka = fakeKafka(behaviour, 1);
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      socket: [`vm-1=${server.path}`],
      'spool-dir': tempDir(t, 'numbering-spool-'),
      'spool-max-bytes': String(64 * 1024),
      'spool-segment-bytes': String(16 * 1024),
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      'kafka-retry-max-ms': '50',
    },
  });
  const collector = await startCollector(
    config,
    createLogger({ level: 'error', write: () => {} }),
    kafka.port,
  );
  t.after(() => collector.stop());
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const values = (await collector.registry.getSingleMetric(name)?.get())?.values ?? [];
    return values
      .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
      .reduce((sum, v) => sum + v.value, 0);
  };
  await waitFor(() => server.negotiated, { description: 'negotiated' });

  // ~2 KB per event: the 64 KiB spool takes a few dozen while Kafka is down.
  const padding = 'x'.repeat(2000);
  let emitted = 0;
  const emit = (): void => {
    server.emit('STOP', { padding, n: ++emitted });
  };
  for (let i = 0; i < 60; i++) emit();
  await waitFor(async () => (await metric('vfio_collector_events_dropped_total')) > 0, {
    description: 'the spool full',
  });
  for (let i = 0; i < 10; i++) emit();
  await waitFor(
    async () =>
      (await metric('vfio_collector_events_received_total')) +
        (await metric('vfio_collector_events_dropped_total')) ===
      emitted,
    { description: 'every event accepted or dropped' },
  );
  const dropped = await metric('vfio_collector_events_dropped_total', { reason: 'spool_full' });
  behaviour.down = false;
  await waitFor(() => collector.telemetry.kafkaIsUp && kafka.stored.length > 0, {
    description: 'Kafka up',
  });
  await waitFor(async () => (await metric('vfio_collector_spool_events')) === 0, {
    description: 'spool drained',
  });
  for (let i = 0; i < 5; i++) emit();
  await waitFor(() => kafka.stored.length === emitted - dropped, {
    description: 'the accepted events in Kafka',
  });

  const codec = createEventCodec();
  const records = kafka.stored.map((r) => {
    const decoded = codec.decode(r.value ?? Buffer.alloc(0));
    assert.equal(decoded.kind, 'record');
    return (decoded as { value: EventRecord }).value;
  });
  const sessions = [...new Set(records.map((r) => r.sessionId))];
  assert.equal(sessions.length, 2, 'one QMP session, renewed once after the drops');
  // UUIDv7 from one source: the renewed session sorts after the one it replaces, so the
  // processor knows which is newer.
  assert.ok(
    sessions.every((id) => isOrderedSessionId(id)),
    sessions.join(', '),
  );
  assert.equal(compareSessionIds(sessions[1] as string, sessions[0] as string), 1);
  for (const session of sessions) {
    const sequences = records.filter((r) => r.sessionId === session).map((r) => r.sequence);
    assert.deepEqual(
      sequences,
      sequences.map((_, i) => i + 1),
      'gap-free from 1',
    );
  }
  const ns = records.map((r) => (JSON.parse(r.data ?? '{}') as { n: number }).n);
  const firstOfRenewed = records.findIndex((r) => r.sessionId === sessions[1]);
  assert.ok(
    (ns[firstOfRenewed] as number) - (ns[firstOfRenewed - 1] as number) > 1,
    'the new session starts after the hole',
  );
  assert.equal(await metric('vfio_collector_sessions_renewed_total', { reason: 'spool_full' }), 1);
});
