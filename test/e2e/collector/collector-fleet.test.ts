import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Counter } from 'prom-client';
import { startCollector } from '../../../services/collector/main.ts';
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

const VMS = 1000;
const ROUNDS = 5;

test(
  '1,000 VMs on one collector: all connect, every event arrives in order',
  { timeout: 180_000 },
  async (t) => {
    const brokers = brokersFromEnv();
    const topic = await uniqueTopic(t, 'collector-fleet', { numPartitions: 6 });
    const fleet = await startFakeFleet(t, VMS);
    const collector = await startCollector(
      collectorConfig(brokers, topic, {
        'socket-dir': fleet.dir,
        'spool-dir': tempDir(t, 'spool-'),
      }),
      quietLogger(),
    );
    t.after(() => collector.stop());
    await waitFor(() => fleet.servers.every((s) => s.negotiated), {
      description: 'all 1,000 VMs negotiated',
      timeoutMs: 60_000,
    });
    assert.equal(collector.vms().length, VMS);
    for (let round = 0; round < ROUNDS; round++) assert.equal(fleet.emitRound(round), VMS);
    const records = await consumeUntil(t, brokers, topic, (r) => r.length >= VMS * ROUNDS, 120_000);
    assert.equal(records.length, VMS * ROUNDS);
    assertDeliveredInOrder(records, fleet.emitted);
    const reconnects = collector.registry.getSingleMetric(
      'vfio_collector_reconnects_total',
    ) as Counter;
    assert.equal((await reconnects.get()).values[0]?.value, 0);
  },
);
