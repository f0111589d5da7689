import { BROKER_TIME_CONFIGS } from '../../../services/shared/core/topics.ts';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import { brokersFromEnv, testKafkaPort, uniqueTopic } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { startProcessorInProcess } from '../pipeline/pipeline-harness.ts';
import { publishedAndRecomputed } from './processor-e2e.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

const PARTITIONS = 3;
const VMS = 30;
const EVENTS_PER_VM = 120;
const WALK = ['running', 'pre-copy-prepare', 'pre-copy', 'stop-copy-prepare', 'stop-copy', 'stop'];
const T0 = 1_795_798_176_000_000;

// Issue 13: whatever one fetch yields, no produce request may exceed the topics' limits, and a
// single record too large for its topic is refused and counted without blocking the partition.
test('a backlog on topics with max.message.bytes=4096 drains exactly; an oversized transition is refused, not retried', async (t) => {
  const brokers = brokersFromEnv();
  const small = { 'max.message.bytes': '4096' };
  const [events, transitions, state, deadLetter] = await Promise.all([
    uniqueTopic(t, 'events', {
      brokers,
      numPartitions: PARTITIONS,
      configs: { ...small, ...BROKER_TIME_CONFIGS },
    }),
    uniqueTopic(t, 'transitions', { brokers, numPartitions: PARTITIONS, configs: small }),
    uniqueTopic(t, 'state', {
      brokers,
      numPartitions: PARTITIONS,
      configs: { ...small, 'cleanup.policy': 'compact' },
    }),
    uniqueTopic(t, 'dlq', { brokers, numPartitions: 1, configs: small }),
  ]);
  const topics = { events, transitions, state, deadLetter };

  const codec = createEventCodec();
  const port = testKafkaPort(t, brokers);
  const producer = await port.producer();
  t.after(() => producer.close());
  const event = (vm: number, sequence: number, deviceState: string): EventRecord => ({
    host: 'h',
    vm: vm < 0 ? 'huge' : `vm${vm}`,
    sessionId: 's1',
    sequence,
    qemuTimestampMicros: T0 + sequence * 10_000,
    receivedMicros: T0 + sequence * 10_000 + 500,
    event: 'VFIO_MIGRATION',
    qomPath: vm < 0 ? `/machine/peripheral/${'q'.repeat(1000)}` : '/machine/peripheral/vf0',
    deviceId: vm < 0 ? 'd'.repeat(1024) : 'vf0',
    deviceState,
    migrationStatus: null,
    data: null,
  });
  const records = [];
  for (let s = 1; s <= EVENTS_PER_VM; s++) {
    for (let vm = 0; vm < VMS; vm++) {
      records.push({
        topic: events,
        partition: vm % PARTITIONS,
        key: Buffer.from(`h/vm${vm}`),
        value: codec.encode(event(vm, s, WALK[s % WALK.length] as string)),
      });
    }
  }
  // A prepare whose transition record (prepare state, target, qom-path, device id; each within
  // the processor's 1,024-character limit on identifiers) is larger than 4096 bytes.
  const long = `${'x'.repeat(1016)}-prepare`;
  for (const [s, deviceState] of [long, 'running', 'stop'].entries()) {
    records.push({
      topic: events,
      partition: 0,
      key: Buffer.from('h/huge'),
      value: codec.encode(event(-1, s + 1, deviceState)),
    });
  }
  const sent = await producer.send(records);
  assert.deepEqual(sent.refused, []);

  const processor = await startProcessorInProcess(t, brokers, topics, `processor-${randomUUID()}`);
  const metric = async (name: string): Promise<number> =>
    metricValue(await processor.registry.metrics(), name);
  await waitFor(
    async () => (await metric('vfio_processor_records_consumed_total')) >= records.length,
    {
      timeoutMs: 120_000,
      intervalMs: 200,
      description: `${records.length} events processed`,
    },
  );
  const { published, recomputed } = await publishedAndRecomputed(t, brokers, topics);
  const fits = new Map(
    [...recomputed].map(([p, list]) => [p, list.filter((s) => !s.includes(long.slice(0, 50)))]),
  );
  assert.deepEqual(published, fits);
  assert.ok((await metric('vfio_processor_transitions_published_total')) > 3000);
  const text = await processor.registry.metrics();
  const value = (name: string, labels: Record<string, string>) =>
    metricValue(text, name, labels, NaN);
  assert.equal(value('vfio_processor_records_refused_total', { topic: 'transitions' }), 1);
  assert.equal(value('vfio_processor_transaction_failures_total', { kind: 'failed' }), 0);
  assert.equal(value('vfio_processor_transaction_failures_total', { kind: 'fenced' }), 0);
});
