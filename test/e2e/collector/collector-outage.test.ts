import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { Gauge } from 'prom-client';
import { startCollector } from '../../../services/collector/main.ts';
import { startPrivateBroker, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  assertDeliveredInOrder,
  collectorConfig,
  consumeUntil,
  quietLogger,
  startFakeFleet,
  tempDir,
} from './collector-harness.ts';

const OUTAGE_MS = 20_000;

test(
  'Kafka down for 20 s mid-stream: every event arrives, in order per VM, via the spool',
  { timeout: 300_000 },
  async (t) => {
    const broker = await startPrivateBroker(t);
    const topic = await uniqueTopic(t, 'collector-outage', {
      brokers: broker.brokers,
      numPartitions: 3,
    });
    const fleet = await startFakeFleet(t, 10);
    const collector = await startCollector(
      collectorConfig(broker.brokers, topic, {
        'socket-dir': fleet.dir,
        'spool-dir': tempDir(t, 'spool-'),
        // Longer than the outage: this test checks that spooling alone keeps /readyz at 200.
        'stall-timeout-ms': '120000',
      }),
      quietLogger(),
    );
    t.after(() => collector.stop());
    const read = async (name: string): Promise<number> => {
      const metric = collector.registry.getSingleMetric(name) as Gauge | undefined;
      const values = (await metric?.get())?.values ?? [];
      return values.reduce((sum, v) => sum + v.value, 0);
    };

    await waitFor(() => fleet.servers.every((s) => s.negotiated), {
      description: 'VMs negotiated',
    });
    let round = 0;
    for (; round < 20; round++) fleet.emitRound(round);
    await waitFor(
      async () => (await read('vfio_collector_events_published_total')) === fleet.emitted.length,
      {
        description: 'first events published',
        timeoutMs: 30_000,
      },
    );

    await broker.stop();
    // The deliberate outage: VMs keep emitting the whole time.
    let maxSpooled = 0;
    const ticker = setInterval(() => {
      fleet.emitRound(round++);
      void read('vfio_collector_spool_events').then((n) => (maxSpooled = Math.max(maxSpooled, n)));
    }, 250);
    try {
      await sleep(OUTAGE_MS);
    } finally {
      clearInterval(ticker);
    }
    assert.equal(await read('vfio_collector_kafka_up'), 0);
    assert.ok(maxSpooled > 0, 'the spool held events during the outage');
    assert.equal((await fetch(`${collector.http.url}/readyz`)).status, 200, 'ready: spooling');
    await broker.start();
    for (let i = 0; i < 10; i++) fleet.emitRound(round++);

    const records = await consumeUntil(
      t,
      broker.brokers,
      topic,
      (r) => {
        const unique = new Set(r.map((x) => `${x.record.sessionId}/${x.record.sequence}`));
        return unique.size >= fleet.emitted.length;
      },
      120_000,
    );
    assertDeliveredInOrder(records, fleet.emitted);
    assert.ok((await read('vfio_collector_events_spooled_total')) > 0);
    assert.equal(await read('vfio_collector_events_dropped_total'), 0);
    await waitFor(async () => (await read('vfio_collector_spool_events')) === 0, {
      description: 'spool drained',
    });
    assert.equal(await read('vfio_collector_kafka_up'), 1);
  },
);
