import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCollector } from '../../../services/collector/main.ts';
import { CAPABILITIES_COMMAND } from '../../../services/collector/io/qmp-connection.ts';
import { brokersFromEnv, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  assertDeliveredInOrder,
  collectorConfig,
  consumeUntil,
  quietLogger,
  startFakeFleet,
  tempDir,
} from './collector-harness.ts';
import { fetchMetricsText, metricValue } from '../../helpers/metrics-text.ts';

const VMS = 20;
const ROUNDS = 50;

test('QMP sockets → collector → Kafka: every event, exact contents, in order per VM', async (t) => {
  const brokers = brokersFromEnv();
  const topic = await uniqueTopic(t, 'collector-e2e', { numPartitions: 3 });
  const fleet = await startFakeFleet(t, VMS);
  const collector = await startCollector(
    collectorConfig(brokers, topic, { 'socket-dir': fleet.dir, 'spool-dir': tempDir(t, 'spool-') }),
    quietLogger(),
  );
  t.after(() => collector.stop());

  await waitFor(() => fleet.servers.every((s) => s.negotiated), {
    description: 'all VMs negotiated',
  });
  const ready = await waitFor(
    async () => (await fetch(`${collector.http.url}/readyz`)).status === 200,
    {
      description: '/readyz 200',
    },
  );
  assert.equal(ready, true);
  for (let round = 0; round < ROUNDS; round++) {
    assert.equal(fleet.emitRound(round), VMS);
    if (round % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  // One malformed message in the middle: counted, not fatal, not published.
  fleet.servers[0]?.sendRaw(
    '{"event": "VFIO_MIGRATION", "timestamp": {"seconds": 1, "microseconds": 2}, "data": {}}\r\n',
  );
  fleet.emitRound(ROUNDS);

  const records = await consumeUntil(t, brokers, topic, (r) => r.length >= fleet.emitted.length);
  assert.equal(records.length, fleet.emitted.length);
  assertDeliveredInOrder(records, fleet.emitted);
  for (const r of records) {
    assert.equal(r.record.host, 'test-host');
    assert.ok(
      r.record.receivedMicros >= r.record.qemuTimestampMicros ||
        r.record.qemuTimestampMicros > Date.now() * 1000,
    );
    if (r.record.event === 'VFIO_MIGRATION') {
      assert.equal(r.record.qomPath, '/machine/peripheral/vf0');
      assert.equal(r.record.deviceId, 'vf0');
    }
    if (r.record.event === 'MIGRATION') assert.equal(r.record.migrationStatus, 'active');
  }

  await waitFor(
    async () =>
      metricValue(
        await fetchMetricsText(collector.http.url),
        'vfio_collector_events_published_total',
      ) === fleet.emitted.length,
    { description: 'published counter' },
  );
  const metrics = await fetchMetricsText(collector.http.url);
  const value = (name: string, labels: Record<string, string> = {}): number =>
    metricValue(metrics, name, labels, NaN);
  assert.equal(value('vfio_collector_events_received_total'), fleet.emitted.length);
  assert.equal(value('vfio_collector_vms_connected'), VMS);
  assert.equal(value('vfio_collector_vms_known'), VMS);
  assert.equal(value('vfio_collector_kafka_up'), 1);
  assert.equal(value('vfio_collector_qmp_rejected_total', { reason: 'bad_vfio_data' }), 1);
  assert.ok(value('vfio_collector_process_cpu_seconds_total') >= 0);
  assert.equal((await fetch(`${collector.http.url}/healthz`)).status, 200);

  for (const server of fleet.servers) {
    for (const bytes of server.written) assert.equal(bytes.toString(), CAPABILITIES_COMMAND);
  }
});

test('a VM whose socket vanishes is dropped, a new one is picked up', async (t) => {
  const brokers = brokersFromEnv();
  const topic = await uniqueTopic(t, 'collector-e2e-watch');
  const fleet = await startFakeFleet(t, 3);
  const collector = await startCollector(
    collectorConfig(brokers, topic, { 'socket-dir': fleet.dir, 'spool-dir': tempDir(t, 'spool-') }),
    quietLogger(),
  );
  t.after(() => collector.stop());
  await waitFor(() => collector.vms().length === 3, { description: 'three VMs' });
  await fleet.servers[1]?.close();
  await waitFor(() => collector.vms().length === 2, { description: 'the closed VM dropped' });
  assert.deepEqual(collector.vms().sort(), ['vm-0', 'vm-2']);
  const { startFakeQmpServer } = await import('../../helpers/qmp-server.ts');
  const late = await startFakeQmpServer(`${fleet.dir}/late-vm.qmp`);
  t.after(() => late.close());
  await waitFor(() => late.negotiated, { description: 'the new VM negotiated' });
  const ts = late.emit('RESUME');
  const records = await consumeUntil(t, brokers, topic, (r) => r.length >= 1);
  assert.equal(records[0]?.record.vm, 'late-vm');
  assert.equal(records[0]?.record.qemuTimestampMicros, ts);
});
