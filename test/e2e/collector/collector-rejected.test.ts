import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startCollector } from '../../../services/collector/main.ts';
import { REJECTED_FILE } from '../../../services/collector/io/rejected-record-file.ts';
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

const MAX_MESSAGE_BYTES = 4096;

test('a record over the topic max.message.bytes mid-stream goes to rejected.jsonl; every other record arrives', async (t) => {
  const brokers = brokersFromEnv();
  const topic = await uniqueTopic(t, 'collector-rejected', {
    numPartitions: 2,
    configs: { 'max.message.bytes': String(MAX_MESSAGE_BYTES) },
  });
  const fleet = await startFakeFleet(t, 4);
  const spoolDir = tempDir(t, 'spool-');
  const collector = await startCollector(
    collectorConfig(brokers, topic, { 'socket-dir': fleet.dir, 'spool-dir': spoolDir }),
    quietLogger(),
  );
  t.after(() => collector.stop());
  await waitFor(() => fleet.servers.every((s) => s.negotiated), { description: 'negotiated' });

  for (let round = 0; round < 20; round++) fleet.emitRound(round);
  // In the same spool batch as the rounds around it (the default linger, 50 ms).
  const bigTs = fleet.servers[1]?.emit('STOP', { padding: 'x'.repeat(3 * MAX_MESSAGE_BYTES) });
  assert.ok(bigTs !== undefined && bigTs > 0);
  for (let round = 20; round < 40; round++) fleet.emitRound(round);

  const rejectedPath = join(spoolDir, REJECTED_FILE);
  const line = await waitFor(
    () => {
      try {
        return readFileSync(rejectedPath, 'utf8');
      } catch {
        return null;
      }
    },
    { description: 'the rejected file', timeoutMs: 30_000 },
  );
  const lines = line.trim().split('\n');
  assert.equal(lines.length, 1, 'exactly one record rejected');
  const rejected = JSON.parse(lines[0] as string) as Record<string, unknown>;
  assert.equal(rejected['reason'], 'MESSAGE_TOO_LARGE');
  assert.equal(rejected['key'], 'test-host/vm-1');
  assert.ok((rejected['bytes'] as number) > MAX_MESSAGE_BYTES);
  assert.equal(typeof rejected['sessionId'], 'string');
  assert.equal(rejected['sequence'], 21);

  const records = await consumeUntil(t, brokers, topic, (r) => r.length >= fleet.emitted.length);
  assertDeliveredInOrder(
    records,
    fleet.emitted,
    new Set([`${rejected['sessionId'] as string}/${rejected['sequence'] as number}`]),
  );
  const metrics = await fetchMetricsText(collector.http.url);
  assert.equal(
    metricValue(metrics, 'vfio_collector_records_rejected_total', { reason: 'MESSAGE_TOO_LARGE' }),
    1,
  );
  await waitFor(async () => (await fetch(`${collector.http.url}/readyz`)).status === 200, {
    description: 'still ready',
  });
  assert.equal(
    metricValue(await fetchMetricsText(collector.http.url), 'vfio_collector_spool_events', {}, NaN),
    0,
  );
});
