/**
 * The processor's state is behind its consumer: the group's committed offset is past the meta
 * record of the state topic (here moved by hand; in the fault matrix's rolling restart it came
 * from transactions that did not commit while the consumer fetched on). After the restores agree,
 * the records between them are read again from the events topic and processed first — nothing
 * is skipped, so the transitions topic still equals the recomputation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { EventRecord } from '../../../services/shared/core/event-record.ts';
import { createEventCodec } from '../../../services/shared/io/avro-codec.ts';
import type { OutgoingRecord } from '../../../services/shared/kafka/io/port.ts';
import { brokersFromEnv, testKafkaPort } from '../../helpers/kafka.ts';
import { waitFor } from '../../helpers/wait-for.ts';
import { pipelineTopics, startProcessorInProcess } from '../pipeline/pipeline-harness.ts';
import { publishedAndRecomputed } from './processor-e2e.ts';
import { metricValue } from '../../helpers/metrics-text.ts';

const VMS = 6;
const WALK = ['running', 'pre-copy-prepare', 'pre-copy', 'stop-copy-prepare', 'stop-copy', 'stop'];
const T0 = 1_795_798_176_000_000;

test('a group offset past the restored state: the hole is read again, no transition is lost', async (t) => {
  const brokers = brokersFromEnv();
  const topics = await pipelineTopics(t, brokers, 1);
  const groupId = `processor-${randomUUID()}`;
  const codec = createEventCodec();
  const port = testKafkaPort(t, brokers);
  const producer = await port.producer();
  t.after(() => producer.close());
  const events = (from: number, to: number): OutgoingRecord[] => {
    const records: OutgoingRecord[] = [];
    for (let s = from; s <= to; s++) {
      for (let vm = 0; vm < VMS; vm++) {
        const event: EventRecord = {
          host: 'h',
          vm: `vm${vm}`,
          sessionId: 's1',
          sequence: s,
          qemuTimestampMicros: T0 + s * 10_000,
          receivedMicros: T0 + s * 10_000 + 500,
          event: 'VFIO_MIGRATION',
          qomPath: '/machine/peripheral/vf0',
          deviceId: 'vf0',
          deviceState: WALK[s % WALK.length]!,
          migrationStatus: null,
          data: null,
        };
        records.push({
          topic: topics.events,
          partition: 0,
          key: Buffer.from(`h/vm${vm}`),
          value: codec.encode(event),
        });
      }
    }
    return records;
  };
  const consumed = async (processor: { registry: { metrics(): Promise<string> } }) =>
    metricValue(await processor.registry.metrics(), 'vfio_processor_records_consumed_total');

  // 1. 20 events per VM processed and committed (state meta: nextOffset 120), then stopped.
  assert.deepEqual((await producer.send(events(1, 20))).refused, []);
  const first = await startProcessorInProcess(t, brokers, topics, groupId);
  await waitFor(async () => (await consumed(first)) >= 20 * VMS, {
    timeoutMs: 60_000,
    intervalMs: 100,
    description: 'the first 120 events processed',
  });
  await first.stop();

  // 2. 40 more per VM; the group's offset is moved past 30 of them, outside any transaction.
  assert.deepEqual((await producer.send(events(21, 60))).refused, []);
  const mover = await port.groupConsumer({ groupId, topics: [topics.events] });
  await waitFor(async () => mover.membership() !== null || (await mover.nextBatch(1, 200), false), {
    timeoutMs: 30_000,
    intervalMs: 100,
    description: 'the offset mover in the group',
  });
  await mover.commit([{ topic: topics.events, partition: 0, offset: BigInt(50 * VMS) }]);
  await mover.close();

  // 3. The restarted processor starts at offset 300 with state saying 120.
  const second = await startProcessorInProcess(t, brokers, topics, groupId);
  const holes = async (result: string): Promise<number> =>
    metricValue(
      await second.registry.metrics(),
      'vfio_processor_input_holes_total',
      { result },
      NaN,
    );
  await waitFor(async () => (await holes('filled')) + (await holes('accepted')) >= 1, {
    timeoutMs: 60_000,
    intervalMs: 200,
    description: 'the restores agreeing on the hole',
  });
  // Then until the transitions topic stops growing (2 s without a new record).
  let last = -1;
  let still = 0;
  await waitFor(
    async () => {
      const count = (await publishedAndRecomputed(t, brokers, topics)).published.get(0)?.length;
      still = count === last ? still + 1 : 0;
      last = count ?? 0;
      return still >= 4;
    },
    { timeoutMs: 60_000, intervalMs: 500, description: 'the transitions topic settled' },
  );
  const after = await publishedAndRecomputed(t, brokers, topics);
  assert.ok((after.recomputed.get(0)?.length ?? 0) > 100, 'the events make transitions');
  assert.deepEqual(after.published, after.recomputed);
  assert.equal(await holes('filled'), 1);
  assert.equal(await holes('accepted'), 0, 'nothing taken as gone');
  assert.equal(await holes('restored_again'), 5, 'the state was read again five times first');
});
