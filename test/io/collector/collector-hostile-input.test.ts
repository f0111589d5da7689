/**
 * Hostile input against the whole collector (QMP socket → spool → Kafka) with an in-memory Kafka:
 * a bad input costs that input only — counted, never the process, never the next event, never
 * another VM's events.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseCollectorConfig } from '../../../services/collector/config.ts';
import { startCollector, type RunningCollector } from '../../../services/collector/main.ts';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { createLogger } from '../../../services/shared/io/logger.ts';
import { startFakeQmpServer, type FakeQmpServer } from '../../helpers/qmp-server.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { ackAll, fakeKafka } from './fake-kafka-port.ts';

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Setup {
  collector: RunningCollector;
  servers: FakeQmpServer[];
  spoolDir: string;
  records: () => EventRecord[];
  metric: (name: string, labels?: Record<string, string>) => Promise<number>;
  logs: string[];
}

async function setup(
  t: TestContext,
  vms: readonly string[],
  flags: Record<string, string> = {},
): Promise<Setup> {
  const vmDir = tempDir(t, 'hostile-vm-');
  const spoolDir = join(tempDir(t, 'hostile-spool-'), 'spool');
  const servers = await Promise.all(vms.map((vm) => startFakeQmpServer(join(vmDir, `${vm}.qmp`))));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const kafka = fakeKafka({ send: ackAll }, 2);
  const config = parseCollectorConfig('test-host', {
    env: {},
    flags: {
      socket: servers.map((s, i) => `${vms[i]}=${s.path}`),
      'spool-dir': spoolDir,
      'http-port': '0',
      brokers: ['127.0.0.1:9'],
      ...flags,
    },
  });
  const logs: string[] = [];
  const collector = await startCollector(
    config,
    createLogger({ level: 'info', write: (line) => logs.push(line) }),
    kafka.port,
  );
  t.after(() => collector.stop());
  await waitFor(() => servers.every((s) => s.negotiated), { description: 'negotiated' });
  const codec = createEventCodec();
  return {
    collector,
    servers,
    spoolDir,
    logs,
    records: () =>
      kafka.stored.map((r) => {
        const decoded = codec.decode(r.value ?? Buffer.alloc(0));
        assert.equal(decoded.kind, 'record');
        return (decoded as { value: EventRecord }).value;
      }),
    metric: async (name, labels = {}) => {
      const values = (await collector.registry.getSingleMetric(name)?.get())?.values ?? [];
      return values
        .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
        .reduce((sum, v) => sum + v.value, 0);
    },
  };
}

test('regression: deeply nested QMP data is rejected as too_deep; the process, the session and the other VM carry on', async (t) => {
  const { servers, records, metric } = await setup(t, ['vm-a', 'vm-b']);
  const [a, b] = servers as [FakeQmpServer, FakeQmpServer];
  a.emit('STOP', { n: 1 });
  const depth = 200_000;
  a.sendRaw(
    `{"event": "X", "timestamp": {"seconds": 1795798000, "microseconds": 0}, "data": {"a": ${'['.repeat(depth)}${']'.repeat(depth)}}}\r\n`,
  );
  a.emit('STOP', { n: 2 });
  b.emit('RESUME', { n: 3 });
  await waitFor(() => records().length === 3, { description: 'three events in Kafka' });
  assert.equal(await metric('vfio_collector_qmp_rejected_total', { reason: 'too_deep' }), 1);
  const got = records();
  const ofA = got.filter((r) => r.vm === 'vm-a');
  assert.deepEqual(
    ofA.map((r) => [r.sequence, r.data]),
    [
      [1, '{"n":1}'],
      [2, '{"n":2}'],
    ],
  );
  assert.equal(new Set(ofA.map((r) => r.sessionId)).size, 1, 'one session: no reconnect');
  assert.equal(got.find((r) => r.vm === 'vm-b')?.data, '{"n":3}');
});

test('regression: a spool segment that cannot be created costs those events only: counted as spool_io (not as received), the collector keeps retrying, later events flow in a new session', async (t) => {
  // Segments of 16 KiB: each ~17 KB event rolls to a new segment file, so each write opens one.
  const { servers, records, metric, spoolDir } = await setup(t, ['vm-a'], {
    'spool-segment-bytes': '16384',
  });
  const [a] = servers as [FakeQmpServer];
  const padding = 'x'.repeat(17_000);
  a.emit('STOP', { n: 1, padding });
  await waitFor(() => records().length === 1, { description: 'the first event in Kafka' });
  // A real failure: the directory is gone, so the next segment's openSync throws ENOENT.
  rmSync(spoolDir, { recursive: true, force: true });
  a.emit('STOP', { n: 2, padding });
  await waitFor(
    async () => (await metric('vfio_collector_events_dropped_total', { reason: 'spool_io' })) === 1,
    { description: 'the lost event counted' },
  );
  // (The acknowledged position of event 1 was made durable when its segment was deleted, before
  // the directory vanished: no background write is left to fail.)
  mkdirSync(spoolDir);
  a.emit('STOP', { n: 3, padding });
  await waitFor(() => records().length === 2, { description: 'the next event in Kafka' });
  const got = records();
  assert.deepEqual(
    got.map((r) => (JSON.parse(r.data ?? '{}') as { n: number }).n),
    [1, 3],
  );
  assert.notEqual(got[1]?.sessionId, got[0]?.sessionId, 'the hole starts a new session');
  assert.equal(got[1]?.sequence, 1);
  assert.equal(await metric('vfio_collector_events_received_total'), 2, 'received: on disk only');
  assert.equal(await metric('vfio_collector_sessions_renewed_total', { reason: 'spool_io' }), 1);
});
