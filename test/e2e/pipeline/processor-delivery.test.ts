import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { brokersFromEnv, tailTopic, testKafkaPort } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import {
  expectedTransitions,
  pipelineTopics,
  readTransitions,
  runFleet,
  spawnProcessor,
  startProcessorInProcess,
} from './pipeline-harness.ts';
import { assertEqualsRecomputation } from '../processor/processor-e2e.ts';
import { fetchMetricsText, metricSamples, metricValue } from '../../helpers/metrics-text.ts';

// At speed 20, 8 VMs × 2 migrations per simulated minute run about 5 migrations per second.
const FLEET = { vms: 8, devicesPerVm: 2, migrationsPerVmPerMinute: 2, failureRate: 0.1, seed: 11 };

describe('processor: live transitions equal replay of the same events', () => {
  test('simulator → collector → Kafka → processor: exactly the transitions replay computes', async (t) => {
    const brokers = brokersFromEnv();
    const topics = await pipelineTopics(t, brokers);
    // The processor first, as in production: its start-up (group join, restore) then does not
    // share this process's event loop with a fleet running at full speed.
    await startProcessorInProcess(t, brokers, topics);
    const fleet = await runFleet(t, brokers, topics.events, {
      ...FLEET,
      migrations: 60,
      speed: 'max',
    });
    await fleet.delivered;
    const expected = expectedTransitions(fleet.transcripts);
    assert.ok(expected.length > 300, `only ${expected.length} transitions expected`);
    assert.ok(
      expected.some((e) => e.includes(' failed ')),
      'the fleet includes failed prepares',
    );
    const actual = await readTransitions(t, brokers, topics.transitions, expected.length);
    assert.deepEqual(actual, expected);
  });

  test('processor killed with SIGKILL three times mid-stream: no transition lost or doubled', async (t) => {
    const brokers = brokersFromEnv();
    const topics = await pipelineTopics(t, brokers);
    const group = `processor-${randomUUID()}`;
    // Slow enough that the stream is still flowing while the processor dies and comes back.
    const fleet = await runFleet(t, brokers, topics.events, {
      ...FLEET,
      seed: 12,
      migrations: 240,
      speed: 20,
    });
    for (let kill = 0; kill < 3; kill++) {
      const processor = spawnProcessor(t, brokers, topics, group);
      const url = await processor.url;
      // Kill it mid-stream: only once it has published, at a different moment each time.
      await waitFor(
        async () =>
          metricValue(
            await (await fetch(`${url}/metrics`)).text(),
            'vfio_processor_transitions_published_total',
          ) > 0,
        { timeoutMs: 60_000, intervalMs: 100, description: `processor ${kill + 1} publishing` },
      );
      await sleep(150 * kill);
      processor.child.kill('SIGKILL');
      await processor.exited;
    }
    assert.equal(
      fleet.simulator.stats().migrations < 240,
      true,
      'the fleet was still migrating during the kills',
    );
    const last = spawnProcessor(t, brokers, topics, group);
    await last.url;
    await fleet.delivered;
    const expected = expectedTransitions(fleet.transcripts);
    const actual = await readTransitions(t, brokers, topics.transitions, expected.length);
    assert.deepEqual(actual, expected);
    await assertEqualsRecomputation(t, brokers, topics);
  });

  test('a second processor joining (rebalance) keeps the numbers exact', async (t) => {
    const brokers = brokersFromEnv();
    const topics = await pipelineTopics(t, brokers);
    const group = `processor-${randomUUID()}`;
    const fleet = await runFleet(t, brokers, topics.events, {
      ...FLEET,
      seed: 13,
      migrations: 120,
      speed: 20,
    });
    const first = spawnProcessor(t, brokers, topics, group);
    await first.url;
    await sleep(2000);
    const second = spawnProcessor(t, brokers, topics, group);
    const secondUrl = await second.url;
    await fleet.delivered;
    const expected = expectedTransitions(fleet.transcripts);
    const actual = await readTransitions(t, brokers, topics.transitions, expected.length);
    assert.deepEqual(actual, expected);
    await assertEqualsRecomputation(t, brokers, topics);
    // The newcomer really took partitions over (on a loaded machine its join may finish after the
    // fleet's last event: wait for it rather than read once).
    await waitFor(
      async () =>
        metricSamples(await fetchMetricsText(secondUrl), 'vfio_processor_consumer_lag').length > 0,
      { timeoutMs: 60_000, description: 'the second processor owning a partition' },
    );
  });

  test('a poison record goes to the dead-letter topic with its origin, and the pipeline goes on', async (t) => {
    const brokers = brokersFromEnv();
    const topics = await pipelineTopics(t, brokers, 1);
    const processor = await startProcessorInProcess(t, brokers, topics);
    const codec = createEventCodec();
    const port = testKafkaPort(t, brokers);
    const producer = await port.producer();
    t.after(() => producer.close());
    const event = (sequence: number, ms: number, state: string) =>
      codec.encode({
        host: 'h',
        vm: 'vm1',
        sessionId: 's1',
        sequence,
        qemuTimestampMicros: 1_795_798_176_000_000 + ms * 1000,
        receivedMicros: Date.now() * 1000,
        event: 'VFIO_MIGRATION',
        qomPath: '/machine/peripheral/vf0',
        deviceId: 'vf0',
        deviceState: state,
        migrationStatus: null,
        data: null,
      });
    const poisoned = (value: Buffer) => ({
      topic: topics.events,
      partition: 0,
      key: Buffer.from('h/vm1'),
      value,
    });
    const sent = await producer.send([
      poisoned(event(1, 0, 'pre-copy-p2p-prepare')),
      poisoned(Buffer.from('definitely not avro')),
      poisoned(event(2, 25, 'pre-copy-p2p')),
    ]);
    assert.deepEqual(sent.refused, []);
    const transitions = await readTransitions(t, brokers, topics.transitions, 1);
    assert.deepEqual(
      transitions.map((s) => s.split(' ').slice(0, 6).join(' ')),
      ['prepare vm1 /machine/peripheral/vf0 pre-copy-p2p completed ->pre-copy-p2p'],
    );
    const dlq = await tailTopic(port, topics.deadLetter);
    const letters: Array<{ value: string; headers: Record<string, string> }> = [];
    await waitFor(
      async () => {
        for (const message of await dlq.next()) {
          const headers = Object.fromEntries(
            message.headers.map((h) => [h.key, h.value.toString()]),
          );
          letters.push({ value: message.value?.toString() ?? '', headers });
        }
        return letters.length >= 1;
      },
      { timeoutMs: 20_000, description: 'a dead letter' },
    );
    assert.equal(letters.length, 1);
    assert.equal(letters[0]?.value, 'definitely not avro');
    assert.deepEqual(letters[0]?.headers, {
      'vfio-source-topic': topics.events,
      'vfio-source-partition': '0',
      'vfio-source-offset': '1',
      'vfio-error': 'bad_marker',
    });
    const metrics = await processor.registry.metrics();
    assert.equal(
      metricValue(metrics, 'vfio_processor_records_dead_lettered_total', { reason: 'bad_marker' }),
      1,
    );
  });
});
